//! The directories the preprocessor searches for the compile's headers, in the order it
//! searches them, and the one direct-mode rule they give: a header found in one directory is
//! only the header the compile would read if no directory searched before it now holds a file
//! of the same name (a header shadowed by a new file in an earlier include directory, in this
//! checkout or another).

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::command::env_value;
use crate::language::Language;

/// The compile's search directories, absolute, in search order: the source's own directory
/// (quoted includes), `-iquote`, `-I`, `CPATH`, `-isystem`, `C_INCLUDE_PATH` (or the C++ and
/// Objective-C ones), `-idirafter`. The compiler's own directories come last and are not
/// listed (`__has_include` answers add them, from [`super::detect`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SearchPath {
    dirs: Vec<PathBuf>,
}

impl SearchPath {
    /// The search path of a compile of `source` (absolute) run in `cwd` with `env`, given
    /// its preprocessor arguments `args`.
    pub(crate) fn new(
        source: &Path,
        cwd: &Path,
        env: &[(OsString, OsString)],
        language: Language,
        args: &[OsString],
    ) -> Self {
        let mut lists: [Vec<PathBuf>; 4] = Default::default();
        let mut i = 0;
        while i < args.len() {
            let arg = args[i].as_bytes();
            i += 1;
            let flags: [(&[u8], usize); 5] = [
                (b"-iquote", 0),
                (b"-isystem", 2),
                (b"-idirafter", 3),
                (b"--include-directory=", 1),
                (b"-I", 1),
            ];
            let Some((flag, list)) = flags.iter().find(|(f, _)| arg.starts_with(f)) else {
                continue;
            };
            let value = match &arg[flag.len()..] {
                [] => match args.get(i) {
                    Some(next) => {
                        i += 1;
                        next.as_bytes()
                    }
                    None => continue,
                },
                joined => joined,
            };
            lists[*list].push(cwd.join(std::ffi::OsStr::from_bytes(value)));
        }
        let from_env = |name: &str| -> Vec<PathBuf> {
            env_value(env, name)
                .map(|v| {
                    v.as_bytes()
                        .split(|&b| b == b':')
                        .map(|d| {
                            cwd.join(std::ffi::OsStr::from_bytes(if d.is_empty() {
                                b"."
                            } else {
                                d
                            }))
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let system_var = match language {
            Language::Cxx | Language::PreprocessedCxx => "CPLUS_INCLUDE_PATH",
            Language::ObjC
            | Language::ObjCxx
            | Language::PreprocessedObjC
            | Language::PreprocessedObjCxx => "OBJC_INCLUDE_PATH",
            _ => "C_INCLUDE_PATH",
        };
        let [quote, angle, system, after] = lists;
        let mut dirs = vec![source.parent().unwrap_or(cwd).to_path_buf()];
        dirs.extend(quote);
        dirs.extend(angle);
        dirs.extend(from_env("CPATH"));
        dirs.extend(system);
        dirs.extend(from_env(system_var));
        dirs.extend(after);
        Self { dirs }
    }

    /// The directories, in search order.
    pub(crate) fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Whether a directory searched before the one `header` (absolute) was found in now holds
    /// a file of the same name, which the compile would read instead. A few `stat`s per user
    /// header; system headers are in no listed directory and cost nothing.
    pub(crate) fn shadowed(&self, header: &Path) -> bool {
        let Some(at) = self.dirs.iter().position(|d| header.starts_with(d)) else {
            return false;
        };
        let Ok(name) = header.strip_prefix(&self.dirs[at]) else {
            return false;
        };
        self.dirs[..at]
            .iter()
            .any(|earlier| earlier.join(name).exists())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_come_in_search_order_and_earlier_files_shadow() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["src", "q", "i", "c", "s"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let args: Vec<OsString> = ["-isystem", "s", "-Ii", "-iquote", "q", "-DX"]
            .iter()
            .map(OsString::from)
            .collect();
        let env = vec![(OsString::from("CPATH"), OsString::from("c"))];
        let search = SearchPath::new(&d.join("src/a.c"), d, &env, Language::C, &args);
        let order: Vec<_> = search
            .dirs
            .iter()
            .map(|p| p.strip_prefix(d).unwrap())
            .collect();
        assert_eq!(order, ["src", "q", "i", "c", "s"].map(Path::new).to_vec());
        std::fs::write(d.join("s/h.h"), "").unwrap();
        assert!(!search.shadowed(&d.join("s/h.h")));
        std::fs::write(d.join("c/h.h"), "").unwrap();
        assert!(search.shadowed(&d.join("s/h.h")));
        assert!(!search.shadowed(Path::new("/usr/include/stdio.h")));
    }
}
