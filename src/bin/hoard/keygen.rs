//! `hoard keygen PATH`.

use std::path::PathBuf;

use clap::Parser;

use crate::error::ControlError;

/// `hoard keygen PATH`: a new signing key for `HOARD_SIGNING_KEY`, and the public line
/// readers put in `HOARD_TRUSTED_KEYS`.
#[derive(Debug, Parser)]
#[command(
    about = "Create a signing key: the secret key at PATH (mode 0600; HOARD_SIGNING_KEY on the \
             machines that write the shared cache, such as CI), its public line at PATH.pub \
             (HOARD_TRUSTED_KEYS on every machine that reads it), and print the public line"
)]
pub(crate) struct Keygen {
    /// Where to write the secret key; it must not exist yet.
    path: PathBuf,
    /// The key's name, as `--explain`, the journal and logs name a signer (default: the
    /// file's name and this host's, `ci-key@runner`).
    #[arg(long)]
    name: Option<String>,
}

pub(crate) fn keygen(args: &Keygen) -> Result<(), ControlError> {
    let name = args.name.clone().unwrap_or_else(|| {
        let stem = args
            .path
            .file_stem()
            .map_or_else(|| "hoard".into(), |s| s.to_string_lossy().into_owned());
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        if host.is_empty() {
            stem
        } else {
            format!("{stem}@{host}")
        }
    });
    let line = hoard_storage::signing::keygen(&args.path, &name)?;
    println!("{line}");
    eprintln!(
        "hoard: signing key written to {path} (secret: HOARD_SIGNING_KEY={path} where the shared \
         cache is written), its public line to {path}.pub (HOARD_TRUSTED_KEYS on every reader)",
        path = args.path.display()
    );
    Ok(())
}
