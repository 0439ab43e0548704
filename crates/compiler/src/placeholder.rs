//! Replacing directory prefixes by placeholders and back, for whichever compiler family makes
//! its keys and stored outputs independent of where a checkout is. A placeholder is opened and
//! closed by bytes that never occur in paths or compiler messages.

/// Opens a placeholder.
pub(crate) const OPEN: u8 = 0x01;
/// Closes a placeholder.
pub(crate) const CLOSE: u8 = 0x02;

/// Bytes that continue a path component: a directory followed by one of these is a longer name.
pub(crate) fn continues_name(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+' | b'@' | b'~')
}

/// Replaces each directory of `pairs` (`(placeholder, directory)`, longest directory first)
/// in `text` by its placeholder, where it is a whole path prefix: at the start or after a
/// byte that ends a name, and not followed by more of a name.
pub(crate) fn replace_prefixes(text: &[u8], pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    'scan: while i < text.len() {
        if text[i] == b'/' && (i == 0 || !(continues_name(text[i - 1]) || text[i - 1] == b'/')) {
            for (placeholder, dir) in pairs {
                if text[i..].starts_with(dir)
                    && text
                        .get(i + dir.len())
                        .is_none_or(|&next| !continues_name(next))
                {
                    out.extend_from_slice(placeholder);
                    i += dir.len();
                    continue 'scan;
                }
            }
        }
        out.push(text[i]);
        i += 1;
    }
    out
}

/// Replaces each placeholder of `pairs` in `text` by its directory (the inverse of
/// [`replace_prefixes`]); a placeholder `pairs` does not name is left as it is.
pub(crate) fn replace_placeholders(text: &[u8], pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    if !text.contains(&OPEN) {
        return text.to_vec();
    }
    let mut out = Vec::with_capacity(text.len() + 64);
    let mut i = 0;
    'scan: while i < text.len() {
        if text[i] == OPEN {
            for (placeholder, dir) in pairs {
                if text[i..].starts_with(placeholder) {
                    out.extend_from_slice(dir);
                    i += placeholder.len();
                    continue 'scan;
                }
            }
        }
        out.push(text[i]);
        i += 1;
    }
    out
}
