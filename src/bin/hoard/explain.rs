//! `hoard --explain -- <command>`: the explanation, and who signed the entries it names.

use std::ffi::OsString;

use hoard::config::Settings;

use crate::error::ControlError;

/// `hoard --explain -- <command>`: the report, read from this machine's cache directory.
pub(crate) async fn explain(
    settings: &Settings,
    command: &[OsString],
) -> Result<String, ControlError> {
    use std::fmt::Write as _;
    let Some((program, args)) = command.split_first() else {
        return Err(ControlError::NoCommand);
    };
    let cwd = std::env::current_dir().map_err(ControlError::CurrentDir)?;
    let command = hoard_compiler::CommandLine {
        program: program.clone(),
        args: args.to_vec(),
        cwd,
        env: hoard::path_settings::compile_env(std::env::vars_os().collect()),
    };
    let mut config = hoard_compiler::PipelineConfig::new(&settings.cache_dir);
    config.direct_mode = settings.direct_mode;
    // The local store the server keeps in `HOARD_DIR/cache`, as wrappers read manifests.
    let dir = settings.cache_dir.join("cache");
    let manifest = move |key: &hoard_compiler::CacheKey| {
        let bytes = hoard_storage::DiskStore::peek(&dir, key).ok()??;
        hoard_storage::entry::unpack_blob(&bytes).ok()
    };
    let explanation = hoard_compiler::explain(&command, &config, manifest).await;
    let mut report = explanation.to_string();
    let dir = settings.cache_dir.join("cache");
    let entries = [
        ("manifest", explanation.key),
        ("result", explanation.result_key),
    ];
    for (what, key) in entries {
        if let Some(key) = key
            && explanation.in_cache
            && let Ok(Some(bytes)) = hoard_storage::DiskStore::peek(&dir, &key)
        {
            let signed = signed_by(&bytes, &key, &settings.trust.trusted);
            let _ = writeln!(report, "{what} {signed}");
        }
    }
    Ok(report)
}

/// Who signed a local entry, in words for `--explain`.
fn signed_by(
    entry: &[u8],
    key: &hoard_storage::CacheKey,
    trusted: &hoard_storage::signing::TrustedKeys,
) -> String {
    use hoard_storage::entry::Untrusted;
    match hoard_storage::entry::signer_of(entry, key, trusted) {
        Some(Ok(name)) => format!("signed by: {name} (a trusted key)"),
        Some(Err(Untrusted::Unsigned)) => {
            "signed by: nobody (stored by this machine, or fetched from a tier not verified)"
                .to_owned()
        }
        Some(Err(why)) => format!("signed by: no trusted key ({why})"),
        None => "signed by: unknown (stored by this machine)".to_owned(),
    }
}
