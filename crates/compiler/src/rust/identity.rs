//! rustc's identity: `rustc -vV`, the sysroot and the sysroot's libraries for each target.
//! Learning it costs two rustc runs and hashing the standard library, so it is kept on disk
//! like the C compiler identity: under a digest of the binary's path and stat, plus what
//! selects a toolchain when the binary is the rustup proxy. A later wrapper only stats.

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::command::env_value;
use crate::digest::{DigestError, Digests};

/// Why a rustc or its target could not be identified.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IdentityError {
    /// The binary's path could not be resolved.
    #[error("resolving {path}: {source}")]
    Resolve {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The binary could not be stat'ed.
    #[error("stat {path}: {source}")]
    Stat {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// rustc could not be run.
    #[error("running {path} {args}: {source}")]
    Run {
        path: PathBuf,
        args: String,
        #[source]
        source: std::io::Error,
    },
    /// rustc ran and failed.
    #[error("{path} {args} failed: {stderr}")]
    Failed {
        path: PathBuf,
        args: String,
        stderr: String,
    },
    /// `rustc -vV` printed no host line.
    #[error("rustc -vV names no host")]
    NoHost,
    /// The binary could not be read.
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A target spec file could not be digested.
    #[error(transparent)]
    Digest(#[from] DigestError),
}

/// What a rustc is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rustc {
    /// Digest of `rustc -vV`, the binary and the sysroot path.
    pub identity: [u8; 32],
    /// The host triple.
    pub host: String,
    pub sysroot: PathBuf,
}

const RECORD_HEADER: &str = "hoard-rustc-identity v1";

/// The environment variables that select what the rustup proxy runs.
const TOOLCHAIN_ENV: &[&str] = &["RUSTUP_TOOLCHAIN", "RUSTUP_HOME", "HOME"];

/// Identifies the rustc at `path` (absolute), from the record under `state_dir` or by
/// running it.
pub(crate) fn identify(
    path: &Path,
    cwd: &Path,
    env: &[(OsString, OsString)],
    state_dir: &Path,
) -> Result<Rustc, IdentityError> {
    let canonical = path
        .canonicalize()
        .map_err(|source| IdentityError::Resolve {
            path: path.to_path_buf(),
            source,
        })?;
    let meta = std::fs::metadata(&canonical).map_err(|source| IdentityError::Stat {
        path: canonical.clone(),
        source,
    })?;
    let mut key = blake3::Hasher::new();
    key.update(b"hoard-rustc-stat-v1\0");
    key.update(canonical.as_os_str().as_bytes());
    for value in [
        meta.size(),
        meta.mtime().cast_unsigned(),
        meta.mtime_nsec().cast_unsigned(),
        meta.ino(),
        meta.dev(),
    ] {
        key.update(&value.to_le_bytes());
    }
    let proxy = canonical
        .file_name()
        .is_some_and(|n| n.as_bytes().starts_with(b"rustup"));
    if proxy {
        // The proxy picks a toolchain from the environment and from rust-toolchain files.
        for name in TOOLCHAIN_ENV {
            key.update(name.as_bytes());
            key.update(env_value(env, name).map_or(&b"\xff"[..], OsStr::as_bytes));
        }
        for dir in cwd.ancestors() {
            for file in ["rust-toolchain", "rust-toolchain.toml"] {
                if let Ok(text) = std::fs::read(dir.join(file)) {
                    key.update(dir.as_os_str().as_bytes());
                    key.update(&text);
                }
            }
        }
    }
    let record = state_dir
        .join("compilers")
        .join(format!("rustc-{}", key.finalize().to_hex()));
    if let Some(known) = std::fs::read_to_string(&record)
        .ok()
        .and_then(|t| parse_record(&t))
    {
        return Ok(known);
    }
    let rustc = run_identification(path, &canonical, cwd, env)?;
    if let Err(e) = write_record(&record, &rustc) {
        tracing::debug!("cannot keep rustc identity in {}: {e}", record.display());
    }
    Ok(rustc)
}

fn parse_record(text: &str) -> Option<Rustc> {
    let mut lines = text.lines();
    if lines.next()? != RECORD_HEADER {
        return None;
    }
    let identity = blake3::Hash::from_hex(lines.next()?.strip_prefix("identity ")?).ok()?;
    let host = lines.next()?.strip_prefix("host ")?.to_owned();
    let sysroot = hex_decode(lines.next()?.strip_prefix("sysroot ")?)?;
    Some(Rustc {
        identity: *identity.as_bytes(),
        host,
        sysroot: PathBuf::from(OsStr::from_bytes(&sysroot)),
    })
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn write_record(record: &Path, rustc: &Rustc) -> std::io::Result<()> {
    let dir = record.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    let mut sysroot = String::new();
    for b in rustc.sysroot.as_os_str().as_bytes() {
        write!(sysroot, "{b:02x}").map_err(std::io::Error::other)?;
    }
    write!(
        temp,
        "{RECORD_HEADER}\nidentity {}\nhost {}\nsysroot {sysroot}\n",
        blake3::Hash::from_bytes(rustc.identity).to_hex(),
        rustc.host,
    )?;
    temp.persist(record).map_err(|e| e.error)?;
    Ok(())
}

/// Runs `rustc -vV` and `rustc --print sysroot` with only what selects the toolchain.
fn run_identification(
    path: &Path,
    canonical: &Path,
    cwd: &Path,
    env: &[(OsString, OsString)],
) -> Result<Rustc, IdentityError> {
    let run = |args: &[&str]| -> Result<Vec<u8>, IdentityError> {
        let mut command = Command::new(path);
        command
            .args(args)
            .current_dir(cwd)
            .env_clear()
            .env("LC_ALL", "C")
            .stdin(Stdio::null());
        for name in TOOLCHAIN_ENV.iter().chain(&["PATH"]) {
            if let Some(value) = env_value(env, name) {
                command.env(name, value);
            }
        }
        let output = command.output().map_err(|source| IdentityError::Run {
            path: path.to_path_buf(),
            args: args.join(" "),
            source,
        })?;
        if !output.status.success() {
            return Err(IdentityError::Failed {
                path: path.to_path_buf(),
                args: args.join(" "),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        Ok(output.stdout)
    };
    let version = run(&["-vV"])?;
    let text = String::from_utf8_lossy(&version);
    let host = text
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .ok_or(IdentityError::NoHost)?
        .trim()
        .to_owned();
    let sysroot = run(&["--print", "sysroot"])?;
    let sysroot = PathBuf::from(OsStr::from_bytes(sysroot.trim_ascii_end()));
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"hoard-rustc-identity-v1\0");
    hasher.update(&version);
    hasher.update(b"\0");
    hasher.update(sysroot.as_os_str().as_bytes());
    hasher.update(b"\0");
    let binary = std::fs::read(canonical).map_err(|source| IdentityError::Read {
        path: canonical.to_path_buf(),
        source,
    })?;
    hasher.update(&binary);
    Ok(Rustc {
        identity: *hasher.finalize().as_bytes(),
        host,
        sysroot,
    })
}

/// The digest of a target's standard library in the sysroot (every file under
/// `lib/rustlib/<target>/lib`, by name, size and mtime), or of a target spec file's content.
/// Kept beside the identity so it is computed once per toolchain and target.
pub(crate) fn target_digest(
    rustc: &Rustc,
    target: Option<&OsStr>,
    cwd: &Path,
    digests: &Digests,
    state_dir: &Path,
) -> Result<[u8; 32], IdentityError> {
    let target = target.unwrap_or(OsStr::new(&rustc.host));
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"hoard-rust-target-v2\0");
    hasher.update(&rustc.identity);
    hasher.update(target.as_bytes());
    hasher.update(b"\0");
    let triple = if target.as_bytes().ends_with(b".json") {
        // A target spec file: its content is the target.
        let spec = cwd.join(target);
        let digest = digests.digest_file(&spec)?;
        hasher.update(&digest);
        spec.file_stem().unwrap_or_default().to_owned()
    } else {
        target.to_owned()
    };
    let libs = rustc.sysroot.join("lib/rustlib").join(&triple).join("lib");
    let record = state_dir.join("compilers").join(format!(
        "rust-target-v2-{}",
        blake3::hash(&[&rustc.identity[..], libs.as_os_str().as_bytes()].concat()).to_hex()
    ));
    let known = std::fs::read(&record)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok());
    let libs_digest = if let Some(known) = known {
        known
    } else {
        let digest = digest_dir(&libs);
        if let Some(dir) = record.parent()
            && std::fs::create_dir_all(dir).is_ok()
            && let Ok(temp) = tempfile::NamedTempFile::new_in(dir)
            && std::fs::write(temp.path(), digest).is_ok()
        {
            let _ = temp.persist(&record);
        }
        digest
    };
    hasher.update(&libs_digest);
    Ok(*hasher.finalize().as_bytes())
}

/// Digest of every regular file in `dir` by name, size and modification time, sorted; a
/// missing directory (a target without an installed standard library) digests as empty.
/// Not by content: a toolchain's standard library is 150+ MB, its files never change in place
/// (rustup replaces a toolchain wholesale, and a rebuilt one has new mtimes), and reading it
/// all cost every cold build a third of a second. ccache checks compilers the same way.
fn digest_dir(dir: &Path) -> [u8; 32] {
    use std::os::unix::fs::MetadataExt;
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"name-size-mtime\0");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return *hasher.finalize().as_bytes();
    };
    let mut files: Vec<(PathBuf, std::fs::Metadata)> = entries
        .flatten()
        .filter_map(|e| Some((e.path(), e.metadata().ok()?)))
        .filter(|(_, meta)| meta.is_file())
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    for (file, meta) in files {
        hasher.update(file.file_name().unwrap_or_default().as_bytes());
        hasher.update(b"\0");
        hasher.update(&meta.size().to_le_bytes());
        hasher.update(&meta.mtime().to_le_bytes());
        hasher.update(&meta.mtime_nsec().to_le_bytes());
    }
    *hasher.finalize().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("compilers/rustc-x");
        let rustc = Rustc {
            identity: [3; 32],
            host: "x86_64-unknown-linux-gnu".into(),
            sysroot: PathBuf::from("/opt/rust toolchain"),
        };
        write_record(&record, &rustc).unwrap();
        let text = std::fs::read_to_string(&record).unwrap();
        assert_eq!(parse_record(&text), Some(rustc));
        assert_eq!(parse_record("junk"), None);
    }
}
