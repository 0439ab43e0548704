//! Extracting an entry onto paths: everything verified, streamed through a bounded buffer
//! into temporary files beside the targets, and renamed into place only when all passed.

use std::fs::{File, Permissions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tempfile::NamedTempFile;

use super::{EntryError, EntryKind, EntryLimits, EntryMeta, MODE_MASK, open};
use crate::OutputPath;

/// Verifies `entry` completely, then writes each stored file to the path of the output with
/// its role, and returns the stored stdout, stderr and exit status.
///
/// `outputs` must name exactly the stored roles, in any order. Nothing is written unless
/// everything verified. Each file goes to a temporary file in the target's directory, gets
/// the stored mode and is renamed over the target, so a target path never holds a partial
/// file and a symbolic link at the target is replaced, not written through.
pub fn extract(entry: &[u8], outputs: &[OutputPath]) -> Result<EntryMeta, EntryError> {
    extract_with_digests(entry, outputs).map(|extracted| extracted.meta)
}

/// What [`extract_with_digests`] delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// What the compile printed, returned and took.
    pub meta: EntryMeta,
    /// The blake3 of each output as written, in the order of the `outputs` asked for: from
    /// the verified entry, so a reader of the outputs need not hash them again.
    pub digests: Vec<[u8; 32]>,
}

/// [`extract`], also returning each output's blake3.
pub fn extract_with_digests(entry: &[u8], outputs: &[OutputPath]) -> Result<Extracted, EntryError> {
    extract_with_limits(entry, outputs, &EntryLimits::default())
}

/// [`extract_with_digests`] under `limits`: an entry whose header declares more, or other
/// roles than `outputs` names, is refused before any of its files is decompressed. The
/// files then stream, a bounded buffer at a time, into temporary files beside their
/// targets, each checked against its size and blake3 on the way; only when all passed are
/// they renamed into place.
pub fn extract_with_limits(
    entry: &[u8],
    outputs: &[OutputPath],
    limits: &EntryLimits,
) -> Result<Extracted, EntryError> {
    let opened = open::open(entry, limits)?;
    if opened.header.kind != EntryKind::Outputs {
        return Err(EntryError::Corrupt {
            reason: format!("entry is a {:?}, not outputs", opened.header.kind),
        });
    }
    check_roles(opened.header.files.iter().map(|f| f.role.clone()), outputs)?;

    // Every target is staged (an empty temporary file in its directory, in header order)
    // before a byte is written, so a failure part-way (a full disk, a missing directory, a
    // file that does not verify) leaves the targets as they were.
    let mut staged = Vec::with_capacity(outputs.len());
    for record in &opened.header.files {
        let out = outputs
            .iter()
            .find(|o| o.role == record.role)
            .ok_or_else(|| EntryError::Corrupt {
                reason: format!("role {:?} vanished from the request", record.role),
            })?;
        staged.push(Some(temp_beside(&out.path)?));
    }
    let header = opened.stream(|i, chunk| {
        let Some(tmp) = staged.get_mut(i).and_then(Option::as_mut) else {
            return Ok(());
        };
        tmp.write_all(chunk)
            .map_err(|source| EntryError::io("write", tmp.path())(source))
    })?;
    for (tmp, record) in staged.iter().zip(&header.files) {
        if let Some(tmp) = tmp {
            tmp.as_file()
                .set_permissions(Permissions::from_mode(record.mode & MODE_MASK))
                .map_err(EntryError::io("chmod", tmp.path()))?;
        }
    }
    let mut digests = Vec::with_capacity(outputs.len());
    let mut ready = Vec::with_capacity(outputs.len());
    for out in outputs {
        let i = header
            .files
            .iter()
            .position(|f| f.role == out.role)
            .ok_or_else(|| EntryError::Corrupt {
                reason: format!("role {:?} vanished from the header", out.role),
            })?;
        // Each file's digest was checked as it streamed (compressed) or the frame's
        // (raw), so the header's per-file digest is the written file's.
        digests.push(header.files[i].blake3.as_slice().try_into().map_err(|_| {
            EntryError::Corrupt {
                reason: format!("file {:?}: digest is not 32 bytes", out.role),
            }
        })?);
        let tmp = staged[i].take().ok_or_else(|| EntryError::Corrupt {
            reason: format!("role {:?} requested twice", out.role),
        })?;
        ready.push((tmp, out));
    }
    for (tmp, out) in ready {
        tmp.persist(&out.path)
            .map_err(|e| EntryError::io("rename onto", &out.path)(e.error))?;
    }
    Ok(Extracted {
        meta: EntryMeta {
            stdout: header.stdout,
            stderr: header.stderr,
            exit_status: header.exit_status,
            compile_ms: header.compile_ms,
        },
        digests,
    })
}

/// Checks an entry completely under `limits` (preamble, digest, header, every file's size
/// and blake3) without writing or keeping any of its files: what the tiered chain does to
/// bytes from a remote tier before it delivers them or copies them into another tier.
pub fn verify(entry: &[u8], limits: &EntryLimits) -> Result<(), EntryError> {
    open::verify(entry, limits).map(|_| ())
}

/// [`verify`], and then that the entry is signed as the entry under `key` by one of
/// `trusted`, whose name it returns ([`super::signature`]). An entry that is sound but not
/// so signed is [`EntryError::Untrusted`].
pub fn verify_signed(
    entry: &[u8],
    limits: &EntryLimits,
    key: &crate::CacheKey,
    trusted: &crate::signing::TrustedKeys,
) -> Result<String, EntryError> {
    let header = open::verify(entry, limits)?;
    super::signature::check(&header, key, trusted).map_err(|why| EntryError::Untrusted { why })
}

/// Refuses an entry whose roles are not exactly those asked for.
pub(super) fn check_roles(
    stored: impl Iterator<Item = String>,
    outputs: &[OutputPath],
) -> Result<(), EntryError> {
    let mut stored: Vec<String> = stored.collect();
    let mut requested: Vec<String> = outputs.iter().map(|o| o.role.clone()).collect();
    stored.sort();
    requested.sort();
    if stored == requested {
        Ok(())
    } else {
        Err(EntryError::RoleMismatch { stored, requested })
    }
}

pub(super) fn stage(target: &Path, mode: u32, data: &[u8]) -> Result<NamedTempFile, EntryError> {
    let mut tmp = temp_beside(target)?;
    tmp.write_all(data)
        .map_err(EntryError::io("write", tmp.path()))?;
    let file: &File = tmp.as_file();
    file.set_permissions(Permissions::from_mode(mode))
        .map_err(EntryError::io("chmod", tmp.path()))?;
    Ok(tmp)
}

/// An empty temporary file in `target`'s directory, to be renamed over it.
fn temp_beside(target: &Path) -> Result<NamedTempFile, EntryError> {
    let dir = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    tempfile::Builder::new()
        .prefix(".hoard-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(EntryError::io("create a temporary file in", dir))
}
