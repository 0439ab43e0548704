//! Finding the compiler a command names and knowing what it is. The identity (a digest of the
//! binary and of its `-v` output) costs a process spawn and reading the binary, so it is kept
//! on disk under a digest of the binary's path, size, mtime and inode: a later wrapper process
//! only stats the compiler and reads one small file.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::program::{CompilerKind, resolve_program};
use crate::reason::NonCacheable;

/// Why a compiler could not be identified.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IdentifyError {
    /// The binary could not be stat'ed.
    #[error("stat {path}: {source}")]
    Stat {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `compiler -v` could not be run.
    #[error("running {path} -v: {source}")]
    Run {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `compiler -v` names no family hoard knows.
    #[error("its -v output names neither gcc nor clang")]
    UnknownFamily,
    /// The binary could not be read to digest it.
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A detected compiler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Compiler {
    /// The program found on `PATH` (or named with a slash), made absolute but not
    /// canonicalised: clang picks its driver mode from the name it is run under.
    pub path: PathBuf,
    /// The file name the command used, e.g. `clang++` or `x86_64-linux-gnu-gcc-12`.
    pub driver: String,
    pub kind: CompilerKind,
    /// Digest of the binary and its `-v` output.
    pub identity: [u8; 32],
}

/// The name a driver is known by, once recognised: whether it is a C++ driver.
fn recognise(file_name: &str) -> Option<bool> {
    let mut name = file_name;
    // Versioned names: gcc-12, clang++-14, x86_64-linux-gnu-gcc-12.
    if let Some((head, tail)) = name.rsplit_once('-')
        && !tail.is_empty()
        && tail.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    {
        name = head;
    }
    // Target prefixes: x86_64-linux-gnu-gcc.
    let family = name.rsplit_once('-').map_or(name, |(_, last)| last);
    match family {
        "gcc" | "cc" | "clang" => Some(false),
        "g++" | "c++" | "clang++" => Some(true),
        _ => None,
    }
}

/// A program found and named like a compiler, not yet identified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Program {
    /// As the command named it, for messages.
    shown: String,
    path: PathBuf,
    canonical: PathBuf,
    driver: String,
    /// Whether the driver compiles `.c` files as C++ (`g++`, `c++`, `clang++`).
    pub cxx_driver: bool,
}

/// Finds the program a command names and checks it is named like gcc or clang. Cheap: it
/// only looks at the file system, so a non-cacheable command costs no identification.
pub(crate) fn find(
    program: &OsStr,
    cwd: &Path,
    env: &[(OsString, OsString)],
) -> Result<Program, NonCacheable> {
    let shown = program.to_string_lossy().into_owned();
    let not_found = || NonCacheable::CompilerNotFound {
        program: shown.clone(),
    };
    let path = resolve_program(program, cwd, env).ok_or_else(not_found)?;
    let canonical = path.canonicalize().map_err(|_| not_found())?;
    let driver = file_name(&path);
    let cxx_driver = recognise(&driver)
        .or_else(|| recognise(&file_name(&canonical)))
        .ok_or_else(|| NonCacheable::UnsupportedCompiler {
            program: shown.clone(),
            detail: "not named like gcc, g++, cc, c++, clang or clang++".to_owned(),
        })?;
    Ok(Program {
        shown,
        path,
        canonical,
        driver,
        cxx_driver,
    })
}

impl Program {
    /// Identifies the compiler, reusing the identity kept under `state_dir` while the binary
    /// is unchanged.
    pub(crate) fn identify(self, state_dir: &Path) -> Result<Compiler, NonCacheable> {
        let (kind, identity) = identify(&self.canonical, state_dir).map_err(|e| {
            NonCacheable::UnsupportedCompiler {
                program: self.shown,
                detail: e.to_string(),
            }
        })?;
        Ok(Compiler {
            path: self.path,
            driver: self.driver,
            kind,
            identity,
        })
    }
}

impl Compiler {
    /// The directories the compiler searches for `<...>` headers on its own (its
    /// `-E -v` search list, without options or environment), C's or C++'s, kept under
    /// `state_dir` per compiler identity; `None` when they cannot be learnt (the caller
    /// then keys the compile by the preprocessor's output).
    pub(crate) fn system_include_dirs(&self, cxx: bool, state_dir: &Path) -> Option<Vec<PathBuf>> {
        let language = if cxx { "c++" } else { "c" };
        let record = state_dir.join("compilers").join(format!(
            "include-{language}-{}",
            blake3::Hash::from_bytes(self.identity).to_hex()
        ));
        if let Some(known) = std::fs::read(&record)
            .ok()
            .and_then(|bytes| parse_dirs_record(&bytes))
        {
            return Some(known);
        }
        let output = Command::new(&self.path)
            .args(["-x", language, "-E", "-v", "/dev/null"])
            .env_clear()
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())?;
        let dirs = search_list(&output.stderr)?;
        if let Err(e) = write_dirs_record(&record, &dirs) {
            tracing::debug!(
                "cannot keep include directories in {}: {e}",
                record.display()
            );
        }
        Some(dirs)
    }
}

/// Whether the compiler's own include directories for a command with preprocessor
/// arguments `args` and environment `env` are the ones [`Compiler::system_include_dirs`]
/// learns without them: not under options or variables that move them (a sysroot, another
/// target or word size, another C++ library, prefixes, options passed on unseen).
pub(crate) fn default_include_dirs_apply(args: &[OsString], env: &[(OsString, OsString)]) -> bool {
    const KNOWN_I: [&[u8]; 5] = [
        b"-iquote",
        b"-isystem",
        b"-idirafter",
        b"-include",
        b"-imacros",
    ];
    const MOVING: [&[u8]; 15] = [
        b"-isystem-after",
        b"--sysroot",
        b"-target",
        b"--target",
        b"-m32",
        b"-mx32",
        b"-m16",
        b"-B",
        b"-stdlib",
        b"--gcc-toolchain",
        b"-specs",
        b"--specs",
        b"-Xpreprocessor",
        b"-Wp,",
        b"-Xclang",
    ];
    let moves = |arg: &[u8]| {
        (arg.starts_with(b"-i") && !KNOWN_I.iter().any(|k| arg.starts_with(k)))
            || MOVING.iter().any(|m| arg.starts_with(m))
            || arg.starts_with(b"--driver-mode")
            || arg.starts_with(b"-F")
    };
    // A directory under the sysroot (`-I=dir`, `-I$SYSROOT/dir`) is not where the search
    // path looks.
    let sysroot_relative = |arg: &[u8]| {
        [&b"-I"[..], b"-iquote", b"-isystem", b"-idirafter"]
            .iter()
            .any(|f| {
                arg.strip_prefix(*f)
                    .is_some_and(|v| v.starts_with(b"=") || v.starts_with(b"$SYSROOT"))
            })
    };
    let moving_var = |name: &OsStr| {
        ["GCC_EXEC_PREFIX", "COMPILER_PATH", "SDKROOT", "GCC_ROOT"]
            .iter()
            .any(|v| name == OsStr::new(v))
    };
    !args
        .iter()
        .any(|a| moves(a.as_bytes()) || sysroot_relative(a.as_bytes()))
        && !args.windows(2).any(|w| {
            [&b"-I"[..], b"-iquote", b"-isystem", b"-idirafter"].contains(&w[0].as_bytes())
                && (w[1].as_bytes().starts_with(b"=") || w[1].as_bytes().starts_with(b"$SYSROOT"))
        })
        && !env.iter().any(|(name, _)| moving_var(name))
}

/// The `#include <...>` search list of a `-v` run's messages.
fn search_list(messages: &[u8]) -> Option<Vec<PathBuf>> {
    let mut lines = messages.split(|&b| b == b'\n');
    lines.find(|l| l.trim_ascii() == b"#include <...> search starts here:")?;
    let mut dirs = Vec::new();
    for line in lines {
        let line = line.trim_ascii();
        if line == b"End of search list." {
            return Some(dirs);
        }
        let dir = line.strip_suffix(b" (framework directory)").unwrap_or(line);
        if !dir.starts_with(b"/") {
            // Not a search list this parser knows.
            return None;
        }
        dirs.push(PathBuf::from(OsStr::from_bytes(dir)));
    }
    None
}

const DIRS_HEADER: &[u8] = b"hoard-compiler-include-dirs v1\n";

fn parse_dirs_record(bytes: &[u8]) -> Option<Vec<PathBuf>> {
    let body = bytes.strip_prefix(DIRS_HEADER)?;
    let body = body.strip_suffix(b"end\n")?;
    Some(
        body.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| PathBuf::from(OsStr::from_bytes(l)))
            .collect(),
    )
}

fn write_dirs_record(record: &Path, dirs: &[PathBuf]) -> std::io::Result<()> {
    let mut text = DIRS_HEADER.to_vec();
    for dir in dirs {
        text.extend_from_slice(dir.as_os_str().as_bytes());
        text.push(b'\n');
    }
    text.extend_from_slice(b"end\n");
    let dir = record.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    temp.write_all(&text)?;
    temp.persist(record).map_err(|e| e.error)?;
    Ok(())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The identity of the binary at `canonical`, from the on-disk cache or by running it.
fn identify(canonical: &Path, state_dir: &Path) -> Result<(CompilerKind, [u8; 32]), IdentifyError> {
    let meta = std::fs::metadata(canonical).map_err(|source| IdentifyError::Stat {
        path: canonical.to_path_buf(),
        source,
    })?;
    let mut stat_key = blake3::Hasher::new();
    stat_key.update(b"hoard-compiler-stat-v1\0");
    stat_key.update(canonical.as_os_str().as_bytes());
    stat_key.update(b"\0");
    stat_key.update(&meta.size().to_le_bytes());
    stat_key.update(&meta.mtime().to_le_bytes());
    stat_key.update(&meta.mtime_nsec().to_le_bytes());
    stat_key.update(&meta.ino().to_le_bytes());
    stat_key.update(&meta.dev().to_le_bytes());
    let record = state_dir
        .join("compilers")
        .join(stat_key.finalize().to_hex().as_str());

    if let Some(known) = std::fs::read_to_string(&record)
        .ok()
        .and_then(|text| parse_record(&text))
    {
        return Ok(known);
    }
    let (kind, identity) = run_identification(canonical)?;
    if let Err(e) = write_record(&record, kind, &identity) {
        // Only the next process pays for this: it identifies the compiler again.
        tracing::debug!("cannot keep compiler identity in {}: {e}", record.display());
    }
    Ok((kind, identity))
}

const RECORD_HEADER: &str = "hoard-compiler-identity v1";

fn parse_record(text: &str) -> Option<(CompilerKind, [u8; 32])> {
    let mut lines = text.lines();
    if lines.next()? != RECORD_HEADER {
        return None;
    }
    let kind = CompilerKind::from_name(lines.next()?.strip_prefix("kind ")?)?;
    let identity = blake3::Hash::from_hex(lines.next()?.strip_prefix("identity ")?).ok()?;
    Some((kind, *identity.as_bytes()))
}

fn write_record(record: &Path, kind: CompilerKind, identity: &[u8; 32]) -> std::io::Result<()> {
    let dir = record.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    write!(
        temp,
        "{RECORD_HEADER}\nkind {}\nidentity {}\n",
        kind.name(),
        blake3::Hash::from_bytes(*identity).to_hex()
    )?;
    temp.persist(record).map_err(|e| e.error)?;
    Ok(())
}

/// Runs `compiler -v` in a fixed environment (a translated "gcc version" would hide the kind,
/// and a varying one would vary the identity) and digests it with the binary.
fn run_identification(canonical: &Path) -> Result<(CompilerKind, [u8; 32]), IdentifyError> {
    let output = Command::new(canonical)
        .arg("-v")
        .env_clear()
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .map_err(|source| IdentifyError::Run {
            path: canonical.to_path_buf(),
            source,
        })?;
    let mut version = output.stdout;
    version.extend_from_slice(&output.stderr);
    let text = String::from_utf8_lossy(&version);
    let kind = if text.contains("clang version") {
        CompilerKind::Clang
    } else if text.contains("gcc version") {
        CompilerKind::Gcc
    } else {
        return Err(IdentifyError::UnknownFamily);
    };
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"hoard-compiler-identity-v1\0");
    let unreadable = |source| IdentifyError::Read {
        path: canonical.to_path_buf(),
        source,
    };
    let mut binary = std::fs::File::open(canonical).map_err(unreadable)?;
    std::io::copy(&mut binary, &mut hasher).map_err(unreadable)?;
    hasher.update(b"\0");
    hasher.update(&version);
    Ok((kind, *hasher.finalize().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_plain_versioned_and_prefixed_names() {
        for (name, cxx) in [
            ("gcc", false),
            ("cc", false),
            ("clang", false),
            ("g++", true),
            ("c++", true),
            ("clang++", true),
            ("gcc-12", false),
            ("clang++-14", true),
            ("clang-14.0.6", false),
            ("x86_64-linux-gnu-gcc-12", false),
            ("x86_64-linux-gnu-g++", true),
        ] {
            assert_eq!(recognise(name), Some(cxx), "{name}");
        }
        for name in ["ld", "rustc", "gcc-ar", "ccache", "clang-tidy", "gcc-"] {
            assert_eq!(recognise(name), None, "{name}");
        }
    }

    #[test]
    fn search_lists_parse_and_their_records_round_trip() {
        let messages =
            b"ignoring nonexistent directory \"/x\"\n#include \"...\" search starts here:\n\
            #include <...> search starts here:\n /usr/lib/gcc/x86_64-linux-gnu/12/include\n\
             /usr/local/include\n /System/Library/Frameworks (framework directory)\n\
            End of search list.\n";
        let dirs = search_list(messages).unwrap();
        assert_eq!(
            dirs,
            [
                "/usr/lib/gcc/x86_64-linux-gnu/12/include",
                "/usr/local/include",
                "/System/Library/Frameworks"
            ]
            .map(PathBuf::from)
        );
        assert_eq!(
            search_list(b"#include <...> search starts here:\n /a\n"),
            None
        );
        assert_eq!(search_list(b"nothing"), None);
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("compilers").join("include-c-x");
        write_dirs_record(&record, &dirs).unwrap();
        assert_eq!(
            parse_dirs_record(&std::fs::read(&record).unwrap()),
            Some(dirs)
        );
        assert_eq!(
            parse_dirs_record(b"hoard-compiler-include-dirs v1\n/a\n"),
            None
        );
    }

    #[test]
    fn the_installed_gcc_lists_its_include_directories() {
        let Ok(program) = find(
            OsStr::new("gcc"),
            Path::new("/"),
            &[(OsString::from("PATH"), OsString::from("/usr/bin:/bin"))],
        ) else {
            return;
        };
        let state = tempfile::tempdir().unwrap();
        let compiler = program.identify(state.path()).unwrap();
        let dirs = compiler.system_include_dirs(false, state.path()).unwrap();
        assert!(
            dirs.iter().any(|d| d == Path::new("/usr/include")),
            "{dirs:?}"
        );
        // The second ask reads the record.
        assert_eq!(
            compiler.system_include_dirs(false, state.path()),
            Some(dirs)
        );
    }

    #[test]
    fn options_that_move_the_compilers_directories_are_seen() {
        let args = |list: &[&str]| list.iter().map(OsString::from).collect::<Vec<_>>();
        let none: &[(OsString, OsString)] = &[];
        assert!(default_include_dirs_apply(
            &args(&[
                "-Iinc", "-iquote", "q", "-isystem", "s", "-include", "p.h", "-DX", "-O2"
            ]),
            none
        ));
        for moving in [
            &["--sysroot=/s"][..],
            &["-isysroot", "/s"],
            &["-m32"],
            &["-stdlib=libc++"],
            &["-iprefix", "/p"],
            &["-I=/inc"],
            &["-I", "=/inc"],
            &["-target", "arm"],
        ] {
            assert!(
                !default_include_dirs_apply(&args(moving), none),
                "{moving:?}"
            );
        }
        let env = [(OsString::from("GCC_EXEC_PREFIX"), OsString::from("/x"))];
        assert!(!default_include_dirs_apply(&[], &env));
    }

    #[test]
    fn records_round_trip_and_garbage_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("compilers").join("x");
        write_record(&record, CompilerKind::Clang, &[7; 32]).unwrap();
        let text = std::fs::read_to_string(&record).unwrap();
        assert_eq!(parse_record(&text), Some((CompilerKind::Clang, [7; 32])));
        assert_eq!(parse_record("junk"), None);
        assert_eq!(parse_record(&text.replace("clang", "tcc")), None);
    }
}
