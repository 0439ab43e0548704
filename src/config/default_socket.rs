//! The default socket: its name, derived from the storage configuration, and its private
//! per-user directory.

use std::path::{Path, PathBuf};

use hoard_storage::TierConfig;

use super::ConfigError;
use super::socket_identity;

/// The default socket: in a per-user 0700 directory, named after the storage configuration so
/// two configurations never share a server by accident.
pub(super) fn default_socket(
    cache_dir: &Path,
    cache_size: u64,
    tiers: &[TierConfig],
    trust: &str,
) -> PathBuf {
    let mut recipe = blake3::Hasher::new();
    recipe.update(b"hoard-socket-v1\0");
    recipe.update(cache_dir.as_os_str().as_encoded_bytes());
    recipe.update(b"\0");
    recipe.update(&cache_size.to_le_bytes());
    // The tiers' full identity, credentials included (two configurations that differ only in
    // a password are two configurations), hashed and never shown: their `Debug` is redacted.
    recipe.update(socket_identity::tiers(tiers).as_bytes());
    // Signing settings only where they are set, so sockets without them keep their names: a
    // server that does not verify must never answer a client configured to.
    if !trust.is_empty() {
        recipe.update(b"\0trust\0");
        recipe.update(trust.as_bytes());
    }
    let name = format!("server-{}.sock", &recipe.finalize().to_hex()[..16]);
    let base = match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(runtime) => PathBuf::from(runtime).join("hoard"),
        None => std::env::temp_dir().join(format!("hoard-{}", effective_uid())),
    };
    base.join(name)
}

/// Creates the default socket's directory (0700) and checks that it is ours and private: in
/// a shared `/tmp`, another user could have created it first and put a server of theirs in it.
pub(super) fn private_socket_dir(socket: &Path) -> Result<(), ConfigError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let Some(dir) = socket.parent() else {
        return Ok(());
    };
    let created = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir);
    let meta = created
        .and_then(|()| std::fs::symlink_metadata(dir))
        .map_err(|source| ConfigError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
    let uid = effective_uid();
    let mode = meta.mode() & 0o7777;
    if meta.file_type().is_symlink() || meta.uid() != uid || mode & 0o077 != 0 {
        return Err(ConfigError::SocketDirNotPrivate {
            path: dir.to_owned(),
            owner: meta.uid(),
            mode,
            uid,
        });
    }
    Ok(())
}

#[allow(unsafe_code)]
fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hoard_storage::TierKind;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn two_storage_configurations_get_two_sockets() {
        let a = default_socket(Path::new("/a"), 1, &[], "");
        assert_ne!(a, default_socket(Path::new("/b"), 1, &[], ""));
        assert_ne!(a, default_socket(Path::new("/a"), 2, &[], ""));
        assert_eq!(a, default_socket(Path::new("/a"), 1, &[], ""));
        let shared = TierConfig::new(TierKind::SharedDir {
            path: PathBuf::from("/shared"),
        });
        assert_ne!(a, default_socket(Path::new("/a"), 1, &[shared], ""));
    }

    #[test]
    fn a_verifying_or_signing_configuration_never_shares_a_server_with_one_that_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("ci.key");
        let public = hoard_storage::signing::keygen(&key, "ci").unwrap();
        let key = key.display().to_string();
        let socket = |vars: &[(&str, &str)]| {
            let identity = socket_identity::trust(|name| {
                vars.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
            });
            default_socket(Path::new("/a"), 1, &[], &identity)
        };
        let all = [
            socket(&[]),
            socket(&[("HOARD_TRUSTED_KEYS", &public)]),
            socket(&[
                ("HOARD_TRUSTED_KEYS", &public),
                ("HOARD_VERIFY_TIERS", "none"),
            ]),
            socket(&[("HOARD_SIGNING_KEY", &key)]),
            socket(&[("HOARD_SIGNING_KEY", &key), ("HOARD_TRUSTED_KEYS", &public)]),
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // Empty values are unset, as everywhere.
        assert_eq!(socket(&[("HOARD_TRUSTED_KEYS", " ")]), all[0]);
        // A key file rewritten in place is a new configuration.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&key, std::fs::read(&key).unwrap()).unwrap();
        assert_ne!(socket(&[("HOARD_SIGNING_KEY", &key)]), all[3]);
    }

    fn redis(endpoint: &str) -> TierConfig {
        TierConfig::new(TierKind::Redis {
            endpoint: endpoint.to_owned(),
        })
    }

    #[test]
    fn the_socket_depends_on_the_password_that_debug_hides() {
        let one = [redis("redis://alice:one@h:1")];
        let two = [redis("redis://alice:two@h:1")];
        assert_eq!(format!("{one:?}"), format!("{two:?}"), "Debug hides both");
        assert_ne!(
            default_socket(Path::new("/a"), 1, &one, ""),
            default_socket(Path::new("/a"), 1, &two, "")
        );
    }

    #[test]
    fn a_private_directory_is_created_with_mode_0700() {
        let tmp = tempfile::tempdir().unwrap();
        let socket = tmp.path().join("hoard-x/server.sock");
        private_socket_dir(&socket).unwrap();
        let mode = std::fs::metadata(tmp.path().join("hoard-x"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn a_directory_others_can_write_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("hoard-x");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = private_socket_dir(&dir.join("server.sock")).unwrap_err();
        assert!(
            matches!(err, ConfigError::SocketDirNotPrivate { .. }),
            "{err}"
        );
    }

    #[test]
    fn a_directory_owned_by_another_user_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("hoard-x");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        if std::os::unix::fs::chown(&dir, Some(65534), None).is_err() {
            eprintln!("cannot chown without root: skipped");
            return;
        }
        assert!(private_socket_dir(&dir.join("server.sock")).is_err());
    }
}
