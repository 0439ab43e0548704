//! `@file` expansion with the quoting rules of gcc's libiberty (`buildargv`), so hoard sees
//! exactly the arguments the compiler will.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use crate::reason::NonCacheable;

/// libiberty gives up after this many expansions; so does hoard, which also stops a file that
/// includes itself.
const EXPANSION_LIMIT: usize = 2000;

/// Replaces every `@file` argument by the arguments in that file, recursively. Relative names
/// are opened from `cwd`, as the compiler (which runs there) opens them.
pub(crate) fn expand(args: &[OsString], cwd: &Path) -> Result<Vec<OsString>, NonCacheable> {
    if !args.iter().any(|a| a.as_bytes().first() == Some(&b'@')) {
        return Ok(args.to_vec());
    }
    let mut pending: Vec<OsString> = args.iter().rev().cloned().collect();
    let mut expanded = Vec::with_capacity(args.len());
    let mut expansions = 0;
    while let Some(arg) = pending.pop() {
        let Some(name) = arg.as_bytes().strip_prefix(b"@") else {
            expanded.push(arg);
            continue;
        };
        let name = OsStr::from_bytes(name);
        expansions += 1;
        if expansions > EXPANSION_LIMIT {
            return Err(NonCacheable::UnreadableResponseFile {
                path: name.to_string_lossy().into_owned(),
                detail: format!("more than {EXPANSION_LIMIT} nested expansions"),
            });
        }
        let text =
            std::fs::read(cwd.join(name)).map_err(|e| NonCacheable::UnreadableResponseFile {
                path: name.to_string_lossy().into_owned(),
                detail: e.to_string(),
            })?;
        pending.extend(split(&text).into_iter().rev());
    }
    Ok(expanded)
}

/// Splits response-file text into arguments: whitespace separates, single and double quotes
/// group, and a backslash takes the next byte literally, inside quotes too.
pub(crate) fn split(text: &[u8]) -> Vec<OsString> {
    let mut args = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    let mut escaped = false;
    let mut quote: Option<u8> = None;
    for &byte in text {
        if escaped {
            escaped = false;
            current.get_or_insert_with(Vec::new).push(byte);
        } else if byte == b'\\' {
            escaped = true;
            current.get_or_insert_with(Vec::new);
        } else if let Some(q) = quote {
            if byte == q {
                quote = None;
            } else {
                current.get_or_insert_with(Vec::new).push(byte);
            }
        } else if byte.is_ascii_whitespace() || byte == 0x0b {
            if let Some(arg) = current.take() {
                args.push(OsString::from_vec(arg));
            }
        } else if byte == b'\'' || byte == b'"' {
            quote = Some(byte);
            current.get_or_insert_with(Vec::new);
        } else {
            current.get_or_insert_with(Vec::new).push(byte);
        }
    }
    if let Some(arg) = current {
        args.push(OsString::from_vec(arg));
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[OsString]) -> Vec<&str> {
        args.iter().map(|a| a.to_str().unwrap()).collect()
    }

    #[test]
    fn quotes_and_backslashes_follow_libiberty() {
        let args = split(br#"-DA="x y" 'single "q"' back\ slash "in\"side" '' -c"#);
        assert_eq!(
            strings(&args),
            [
                "-DA=x y",
                r#"single "q""#,
                "back slash",
                r#"in"side"#,
                "",
                "-c"
            ]
        );
    }

    #[test]
    fn whitespace_of_every_kind_separates() {
        assert_eq!(
            strings(&split(b"a\tb\nc\r\nd  \x0b e\x0c")),
            ["a", "b", "c", "d", "e"]
        );
    }

    #[test]
    fn nested_files_expand_in_place() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("outer.rsp"), "-c @inner.rsp -o x.o").unwrap();
        std::fs::write(dir.path().join("inner.rsp"), "-DX 'a b.c'").unwrap();
        let args = expand(
            &["-O2".into(), "@outer.rsp".into(), "-g".into()],
            dir.path(),
        )
        .unwrap();
        assert_eq!(
            strings(&args),
            ["-O2", "-c", "-DX", "a b.c", "-o", "x.o", "-g"]
        );
    }

    #[test]
    fn a_missing_or_self_including_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let missing = expand(&["@nope".into()], dir.path()).unwrap_err();
        assert_eq!(missing.name(), "unreadable_response_file");
        std::fs::write(dir.path().join("loop.rsp"), "-c @loop.rsp").unwrap();
        let looping = expand(&["@loop.rsp".into()], dir.path()).unwrap_err();
        assert_eq!(looping.name(), "unreadable_response_file");
    }
}
