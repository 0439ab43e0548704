//! Whether two keys' inputs differ only in where a tree stands (`hoard --explain`): the
//! earlier entry's inputs, with one directory replaced by another, are this compile's. Then
//! that directory is under no base (bases are rebased and never show), and
//! `HOARD_BASEDIRS` naming it would have shared the entry.

/// A directory that kept two keys apart: the earlier entry had `was` where this compile has
/// `now`, and nothing else differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedDirectory {
    /// The directory in the earlier entry's inputs.
    pub was: String,
    /// The directory in this compile's inputs.
    pub now: String,
}

/// The pair of directories that `was` and `now` (one input's values, or one argument each)
/// differ by: the longest common ending that starts at a `/`, and what comes before it on
/// each side, when both are absolute paths.
fn directories(was: &str, now: &str) -> Option<(String, String)> {
    let (w, n) = (was.as_bytes(), now.as_bytes());
    let common = w
        .iter()
        .rev()
        .zip(n.iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    // The common ending must start at a component boundary, and the directories be whole.
    let tail = &w[w.len() - common..];
    let cut = tail.iter().position(|&b| b == b'/')?;
    let was_dir = &was[..w.len() - common + cut];
    let now_dir = &now[..n.len() - common + cut];
    let start = |s: &str| {
        s.find('/')
            .filter(|&at| at == 0 || s[..at].ends_with(['=', 'I', ' ']))
    };
    let (ws, ns) = (start(was_dir)?, start(now_dir)?);
    if was_dir[..ws] != now_dir[..ns] {
        return None;
    }
    let (was_dir, now_dir) = (&was_dir[ws..], &now_dir[ns..]);
    (was_dir != now_dir && was_dir.len() > 1 && now_dir.len() > 1)
        .then(|| (was_dir.to_owned(), now_dir.to_owned()))
}

/// The directory that alone keeps `earlier`'s inputs from being `now`'s, if one does.
/// Inputs are `(name, value)` pairs as `hoard --explain` groups them.
pub fn moved_directory(
    earlier: &[(String, String)],
    now: &[(String, String)],
) -> Option<MovedDirectory> {
    if earlier == now || earlier.len() != now.len() {
        return None;
    }
    let (was, current) = earlier
        .iter()
        .zip(now)
        .find(|(a, b)| a != b)
        .map(|(a, b)| (format!("{} {}", a.0, a.1), format!("{} {}", b.0, b.1)))?;
    let (was_dir, now_dir) = directories(&was, &current)?;
    // Both sides are moved: `--explain` notes the earlier entry's headers by their earlier
    // paths, so this compile's inputs may name the earlier directory too.
    let moved = |s: &str| s.replace(&was_dir, &now_dir);
    earlier
        .iter()
        .zip(now)
        .all(|(a, b)| moved(&a.0) == moved(&b.0) && moved(&a.1) == moved(&b.1))
        .then_some(MovedDirectory {
            was: was_dir,
            now: now_dir,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn a_directory_under_no_base_is_named_when_it_alone_differs() {
        let was = inputs(&[
            ("arg", "-I/home/alice/deps/inc"),
            ("include /home/alice/deps/inc/d.h", "aa"),
            ("source \u{1}0\u{2}/a.c", "bb"),
        ]);
        let now = inputs(&[
            ("arg", "-I/ci/work/deps/inc"),
            ("include /ci/work/deps/inc/d.h", "aa"),
            ("source \u{1}0\u{2}/a.c", "bb"),
        ]);
        assert_eq!(
            moved_directory(&was, &now),
            Some(MovedDirectory {
                was: "/home/alice".into(),
                now: "/ci/work".into()
            })
        );
    }

    #[test]
    fn another_difference_beside_the_directory_is_not_a_move() {
        let was = inputs(&[("arg", "-I/a/deps/inc"), ("include /a/deps/inc/d.h", "aa")]);
        let now = inputs(&[("arg", "-I/b/deps/inc"), ("include /b/deps/inc/d.h", "cc")]);
        assert_eq!(moved_directory(&was, &now), None);
        let was = inputs(&[("arg", "-O2")]);
        let now = inputs(&[("arg", "-O3")]);
        assert_eq!(moved_directory(&was, &now), None);
        assert_eq!(moved_directory(&was, &was), None);
    }

    proptest::proptest! {
        #[test]
        fn any_two_values_are_judged_without_panicking(a in ".{0,40}", b in ".{0,40}") {
            let _ = directories(&a, &b);
            let _ = moved_directory(&inputs(&[("x", &a)]), &inputs(&[("x", &b)]));
        }
    }
}
