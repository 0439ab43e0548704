//! rustc's dependency file (`--emit=dep-info`): make rules naming every source file the
//! crate read (modules, `include!`, `include_str!`, `include_bytes!`), then one
//! `# env-dep:NAME[=value]` line per environment variable read by `env!`/`option_env!`.

/// What a dependency file says the compile read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DepInfo {
    /// Every prerequisite of every rule, unescaped, in order of first appearance.
    pub files: Vec<Vec<u8>>,
    /// Environment variables read, with the value seen (`None`: it was unset).
    pub env: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// Parses a dependency file. Targets are skipped; prerequisites of all rules are collected
/// once each.
pub(crate) fn parse(text: &[u8]) -> DepInfo {
    let mut info = DepInfo::default();
    let mut seen = std::collections::HashSet::new();
    for line in text.split(|&b| b == b'\n') {
        if let Some(env) = line.strip_prefix(b"# env-dep:") {
            let (name, value) = match env.iter().position(|&b| b == b'=') {
                Some(at) => (env[..at].to_vec(), Some(unescape_env(&env[at + 1..]))),
                None => (env.to_vec(), None),
            };
            info.env.push((name, value));
            continue;
        }
        if line.starts_with(b"#") {
            continue;
        }
        let Some(colon) = rule_colon(line) else {
            continue;
        };
        for file in split_paths(&line[colon + 1..]) {
            if seen.insert(file.clone()) {
                info.files.push(file);
            }
        }
    }
    info
}

/// The position of the `:` ending a rule's target: the first one not escaped by `\`.
fn rule_colon(line: &[u8]) -> Option<usize> {
    let mut escaped = false;
    for (i, &b) in line.iter().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b':' => return Some(i),
            _ => {}
        }
    }
    None
}

/// Splits a prerequisite list at unescaped spaces; `\ ` is a space within a path.
fn split_paths(list: &[u8]) -> Vec<Vec<u8>> {
    let mut paths = Vec::new();
    let mut current = Vec::new();
    let mut bytes = list.iter().copied().peekable();
    while let Some(b) = bytes.next() {
        match b {
            b'\\' if bytes.peek() == Some(&b' ') => {
                current.push(b' ');
                bytes.next();
            }
            b' ' | b'\t' | b'\r' => {
                if !current.is_empty() {
                    paths.push(std::mem::take(&mut current));
                }
            }
            other => current.push(other),
        }
    }
    if !current.is_empty() {
        paths.push(current);
    }
    paths
}

/// rustc writes `\n` for a newline and `\\` for a backslash in env-dep values.
fn unescape_env(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    let mut bytes = value.iter().copied();
    while let Some(b) = bytes.next() {
        if b == b'\\' {
            match bytes.next() {
                Some(b'n') => out.push(b'\n'),
                Some(b'r') => out.push(b'\r'),
                Some(other) => out.push(other),
                None => out.push(b'\\'),
            }
        } else {
            out.push(b);
        }
    }
    out
}

/// Escapes a path the way rustc writes it in a rule (spaces as `\ `).
#[cfg(test)]
fn escape_path(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in path {
        if b == b' ' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_rustcs_format() {
        let text = b"/t/e.d: lib.rs my\\ file.txt /o/gen.rs\n\n/t/libe.rmeta: lib.rs my\\ file.txt /o/gen.rs\n\nlib.rs:\nmy\\ file.txt:\n/o/gen.rs:\n\n# env-dep:MYV=a b\\nc\\\\d\n# env-dep:NOPE\n";
        let info = parse(text);
        assert_eq!(
            info.files,
            vec![
                b"lib.rs".to_vec(),
                b"my file.txt".to_vec(),
                b"/o/gen.rs".to_vec()
            ]
        );
        assert_eq!(
            info.env,
            vec![
                (b"MYV".to_vec(), Some(b"a b\nc\\d".to_vec())),
                (b"NOPE".to_vec(), None)
            ]
        );
    }

    #[test]
    fn empty_and_garbage_give_nothing() {
        assert_eq!(parse(b""), DepInfo::default());
        assert_eq!(parse(b"no rule here\n"), DepInfo::default());
    }

    proptest! {
        #[test]
        fn paths_round_trip(paths in prop::collection::vec("[a-z0-9 ./_-]{1,20}", 1..8)) {
            let paths: Vec<Vec<u8>> = paths
                .into_iter()
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty() && !p.starts_with('#'))
                .map(String::into_bytes)
                .collect();
            let mut text = b"/t/x.d:".to_vec();
            for p in &paths {
                text.push(b' ');
                text.extend(escape_path(p));
            }
            text.push(b'\n');
            let mut want = Vec::new();
            for p in paths {
                if !want.contains(&p) {
                    want.push(p);
                }
            }
            prop_assert_eq!(parse(&text).files, want);
        }

        #[test]
        fn never_panics(text in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&text);
        }
    }
}
