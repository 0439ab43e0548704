//! Whether a crate root reads nothing but itself, judged from its text: what lets a compile
//! that failed before writing its dependency file be stored. rustc writes that file once
//! every module is loaded, so a compile that stops earlier (a syntax error) leaves the
//! cache nothing to learn its inputs from; for a root with no out-of-line `mod`, no
//! `include!`-family macro and only literal `env!` names, the root and those variables are
//! the whole of it. Cargo's build scripts probe rustc with such
//! files on every build (anyhow, thiserror and proc-macro2 each compile one that is meant to
//! fail on stable), so a warm build can answer them without running rustc.
//!
//! The scan is deliberately coarse: anything it does not understand (a raw string naming a
//! variable, `include` anywhere, even in a comment) makes the root not standalone, which
//! only costs a cache hit.

/// Roots larger than this are never scanned: probes are a few hundred bytes.
pub(crate) const MAX_STANDALONE_SOURCE: usize = 256 * 1024;

/// Words whose presence anywhere means the root may read another file: the `include!`
/// family, `#[path]`, and `#[debugger_visualizer]`.
const READS_FILES: &[&[u8]] = &[b"include", b"path", b"debugger_visualizer"];

/// The variables a standalone root reads with `env!` or `option_env!`, in order of first
/// use; `None` when the root may read anything besides itself and those variables.
pub(crate) fn env_reads(source: &[u8]) -> Option<Vec<Vec<u8>>> {
    if source.len() > MAX_STANDALONE_SOURCE || std::str::from_utf8(source).is_err() {
        return None;
    }
    if READS_FILES
        .iter()
        .any(|word| crate::text::contains(source, word))
    {
        return None;
    }
    let mut names: Vec<Vec<u8>> = Vec::new();
    let mut at = 0;
    while let Some((start, word)) = next_word(source, at) {
        at = start + word.len();
        match word {
            b"mod" => {
                // `mod name;` loads another file; `mod name { ... }` does not.
                let (name_end, name) = ident_after(source, at);
                if name.is_empty() {
                    continue;
                }
                if source.get(skip_space(source, name_end)) == Some(&b';') {
                    return None;
                }
            }
            b"env" | b"option_env" => {
                let bang = skip_space(source, at);
                if source.get(bang) != Some(&b'!') {
                    continue;
                }
                let name = literal_argument(source, bang + 1)?;
                if !names.contains(&name) {
                    names.push(name);
                }
            }
            _ => {}
        }
    }
    Some(names)
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The next identifier-like word at or after `from`, with its start.
fn next_word(source: &[u8], from: usize) -> Option<(usize, &[u8])> {
    let mut i = from;
    while i < source.len() {
        if is_ident(source[i]) && (i == 0 || !is_ident(source[i - 1])) {
            let end = source[i..]
                .iter()
                .position(|b| !is_ident(*b))
                .map_or(source.len(), |n| i + n);
            return Some((i, &source[i..end]));
        }
        i += 1;
    }
    None
}

fn skip_space(source: &[u8], mut i: usize) -> usize {
    while source.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

/// The identifier after `from` (`r#` allowed) and where it ends; an empty name when what
/// follows is not an identifier (`mod` as part of a path or in prose).
fn ident_after(source: &[u8], from: usize) -> (usize, &[u8]) {
    let mut start = skip_space(source, from);
    if source[start..].starts_with(b"r#") {
        start += 2;
    }
    let len = source[start..].iter().take_while(|b| is_ident(**b)).count();
    (start + len, &source[start..start + len])
}

/// The string literal that is the whole first argument of a macro call beginning at
/// `from` (`("NAME")`, `["NAME"]`, `{"NAME"}`, optionally followed by `, "message"`).
/// `None` for anything else: a raw string, an escape, a macro producing the name.
fn literal_argument(source: &[u8], from: usize) -> Option<Vec<u8>> {
    let open = skip_space(source, from);
    if !matches!(source.get(open), Some(b'(' | b'[' | b'{')) {
        return None;
    }
    let quote = skip_space(source, open + 1);
    if source.get(quote) != Some(&b'"') {
        return None;
    }
    let body = &source[quote + 1..];
    let len = body.iter().position(|b| *b == b'"')?;
    let name = &body[..len];
    if name.contains(&b'\\') {
        return None;
    }
    let after = skip_space(source, quote + 1 + len + 1);
    matches!(source.get(after), Some(b')' | b']' | b'}' | b',')).then(|| name.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_probe_with_a_feature_gate_and_option_env_is_standalone() {
        let probe = br#"
            // Exercises the surface area that we expect of the API.
            #![cfg_attr(probe, feature(error_generic_member_access))]
            use core::error::{self, Error};
            mod inline { pub fn f() {} }
            const _: Option<&str> = option_env!("RUSTC_BOOTSTRAP");
            const _: &str = env!["CARGO_PKG_NAME", "a message"];
            const _: Option<&str> = option_env! ( "RUSTC_BOOTSTRAP" );
        "#;
        assert_eq!(
            env_reads(probe),
            Some(vec![
                b"RUSTC_BOOTSTRAP".to_vec(),
                b"CARGO_PKG_NAME".to_vec()
            ])
        );
    }

    #[test]
    fn a_root_that_may_read_another_file_is_not_standalone() {
        for source in [
            &b"mod other;"[..],
            b"pub mod r#other ;",
            b"#[cfg(x)]\nmod other\n;",
            b"const S: &str = include_str!(\"a.txt\");",
            b"include!(concat!(env!(\"OUT_DIR\"), \"/gen.rs\"));",
            b"#[path = \"x.rs\"] mod x { }",
            b"#![debugger_visualizer(natvis_file = \"a.natvis\")]",
            b"const V: &str = env!(r\"NAME\");",
            b"const V: &str = env!(\"NA\\x4dE\");",
            b"const V: &str = env!(concat!(\"A\", \"B\"));",
            b"\xff not utf-8",
        ] {
            assert_eq!(
                env_reads(source),
                None,
                "{}",
                String::from_utf8_lossy(source)
            );
        }
        let huge = vec![b' '; MAX_STANDALONE_SOURCE + 1];
        assert_eq!(env_reads(&huge), None);
    }

    #[test]
    fn words_that_only_contain_mod_or_env_are_not_items() {
        assert_eq!(
            env_reads(b"fn module() { let env = 1; let x = env; my_mod::f(); }"),
            Some(Vec::new())
        );
        assert_eq!(env_reads(b"mod"), Some(Vec::new()));
    }

    proptest! {
        #[test]
        fn any_text_scans_without_panicking(source in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = env_reads(&source);
        }

        #[test]
        fn rust_like_text_scans_without_panicking(
            source in "[a-z_!;(){}\\[\\]\" ,#r]{0,200}"
        ) {
            let _ = env_reads(source.as_bytes());
        }
    }
}
