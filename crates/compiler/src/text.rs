//! Searching bytes: the one substring search the crate uses (`memchr::memmem`), for
//! assembler directives, time macros, paths in outputs and I/O errors in diagnostics.

/// Whether `haystack` contains `needle` (an empty needle is everywhere).
pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_needles() {
        assert!(contains(b"asm(\".incbin \\\"x\\\"\")", b".incbin"));
        assert!(!contains(b"a.inc bin", b".incbin"));
        assert!(!contains(b"", b".incbin"));
        assert!(contains(b"abc", b""));
    }
}
