//! Who wrote an entry, proven with Ed25519: the keys. A writer holding a [`Signer`] signs
//! every entry and manifest it puts into a remote tier; a reader holding [`TrustedKeys`]
//! accepts from a verifying tier only what one of them signed. What is signed, and where the
//! signature travels inside an entry, is [`crate::entry::signature`]'s part; here are the keys,
//! the files they live in and the policy of which tiers are checked ([`Trust`]).
//!
//! Keys are OpenSSH's: `hoard keygen PATH` writes an unencrypted OpenSSH private key and a
//! `ssh-ed25519 AAAA... name` public line, and an existing `ssh-keygen -t ed25519` key works
//! as well (as `git`'s SSH commit signing uses them).

mod config;

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, SigningKey, Verifier, VerifyingKey};
use ssh_key::{HashAlg, LineEnding, PrivateKey, PublicKey};

pub use config::{TrustConfigError, trust_from_env};

/// A key could not be read, parsed or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SigningError {
    /// A key file could not be read or written.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`read`, `create`, `write`).
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The signing key file is not an OpenSSH ed25519 private key hoard can use.
    #[error("{path}: {reason}")]
    BadPrivateKey {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A trusted key line is not an OpenSSH ed25519 public key.
    #[error("{origin}, key {line}: {reason}")]
    BadPublicKey {
        /// Where the line came from (`HOARD_TRUSTED_KEYS`, or a file).
        origin: String,
        /// Its number among the keys given, from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// The key a writer signs with: an Ed25519 secret key, with the name its public line carries.
#[derive(Clone)]
pub struct Signer {
    key: SigningKey,
    name: String,
}

impl fmt::Debug for Signer {
    // Never the secret: the name and the public key's fingerprint.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("name", &self.name)
            .field("fingerprint", &fingerprint(&self.public_bytes()))
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Reads an unencrypted OpenSSH ed25519 private key (what `hoard keygen` or
    /// `ssh-keygen -t ed25519 -N ''` writes). A file others can read is used, with a warning:
    /// the key is still this user's, and refusing it would only leave the build unsigned.
    pub fn from_file(path: &Path) -> Result<Self, SigningError> {
        let text = read_bounded(path, MAX_KEY_FILE).map_err(|source| SigningError::Io {
            op: "read",
            path: path.to_owned(),
            source,
        })?;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), mode = format!("{:o}", meta.permissions().mode() & 0o777),
                "the signing key is readable by other users; chmod 600 it");
        }
        Self::from_openssh(&text).map_err(|reason| SigningError::BadPrivateKey {
            path: path.to_owned(),
            reason,
        })
    }

    /// Parses an OpenSSH private key's text; the error says what is wrong with it.
    pub fn from_openssh(text: &str) -> Result<Self, String> {
        let key = PrivateKey::from_openssh(text.trim()).map_err(|e| {
            format!("not an OpenSSH private key ({e}); `hoard keygen PATH` writes one")
        })?;
        if key.is_encrypted() {
            return Err(
                "the key is encrypted with a passphrase, which a build cannot type; \
                 `ssh-keygen -p -N '' -f PATH` removes it"
                    .into(),
            );
        }
        let Some(pair) = key.key_data().ed25519() else {
            return Err(format!(
                "a {} key; hoard signs with ed25519 keys only",
                key.algorithm()
            ));
        };
        let signing = SigningKey::try_from(pair)
            .map_err(|e| format!("the ed25519 key pair does not match itself: {e}"))?;
        let name = match key.comment().trim() {
            "" => fingerprint(signing.verifying_key().as_bytes()),
            comment => comment.to_owned(),
        };
        Ok(Self { key: signing, name })
    }

    /// A signer from the 32 bytes of an Ed25519 secret key, for an embedder that keeps its
    /// keys elsewhere than in an OpenSSH file (and for tests and fuzzing, from a fixed seed).
    pub fn from_secret_bytes(secret: &[u8; 32], name: &str) -> Self {
        Self {
            key: SigningKey::from_bytes(secret),
            name: name.to_owned(),
        }
    }

    /// The name the public line carries (its comment), or the key's fingerprint.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The public key's 32 bytes, as signatures name their signer.
    pub fn public_bytes(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The public key as an OpenSSH line (`ssh-ed25519 AAAA... name`): what readers put in
    /// `HOARD_TRUSTED_KEYS`.
    pub fn public_line(&self) -> String {
        public_line(&self.key, &self.name)
    }

    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer as _;
        self.key.sign(message).to_bytes()
    }
}

/// The most a key file may hold: a private key is under 500 bytes and a public line under 200,
/// so a megabyte is thousands of keys. More (a path to `/dev/zero`, a log file named by
/// mistake) is refused before it is read into memory.
const MAX_KEY_FILE: u64 = 1 << 20;

/// The text of `path`, refused when it holds more than `limit` bytes.
fn read_bounded(path: &Path, limit: u64) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(limit + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > limit {
        return Err(std::io::Error::other(format!(
            "more than {limit} bytes: not a key file"
        )));
    }
    Ok(text)
}

fn public_line(key: &SigningKey, name: &str) -> String {
    let pair = ssh_key::private::Ed25519Keypair::from(key);
    let public = PublicKey::new(ssh_key::public::KeyData::Ed25519(pair.public), name);
    public
        .to_openssh()
        .unwrap_or_else(|_| format!("ssh-ed25519 (unencodable) {name}"))
}

/// The `SHA256:...` fingerprint `ssh-keygen -l` prints for an ed25519 public key.
pub fn fingerprint(public: &[u8; 32]) -> String {
    let key = PublicKey::new(
        ssh_key::public::KeyData::Ed25519(ssh_key::public::Ed25519PublicKey(*public)),
        "",
    );
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// One key a reader trusts, with its name (the public line's comment, else its fingerprint).
#[derive(Clone, PartialEq, Eq)]
pub struct TrustedKey {
    /// Who it is, as `--explain`, the journal and the logs name a signer.
    pub name: String,
    key: VerifyingKey,
}

impl fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, fingerprint(self.key.as_bytes()))
    }
}

impl TrustedKey {
    /// The public key's 32 bytes.
    pub fn public_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Whether `signature` over `message` is this key's.
    pub(crate) fn verifies(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        self.key
            .verify(message, &Signature::from_bytes(signature))
            .is_ok()
    }
}

/// The public keys a reader accepts signatures from (`HOARD_TRUSTED_KEYS`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedKeys {
    keys: Vec<TrustedKey>,
}

impl TrustedKeys {
    /// `HOARD_TRUSTED_KEYS`'s value: OpenSSH public key lines separated by newlines or
    /// commas, or the path of a file of them (blank lines and `#` comments skipped, as in
    /// `authorized_keys`).
    pub fn parse(value: &str) -> Result<Self, SigningError> {
        let value = value.trim();
        if value.starts_with("ssh-") || value.contains("ssh-ed25519 ") {
            return Self::from_lines(value, "HOARD_TRUSTED_KEYS", true);
        }
        let path = Path::new(value);
        let text = read_bounded(path, MAX_KEY_FILE).map_err(|source| SigningError::Io {
            op: "read trusted keys (neither `ssh-ed25519 ...` lines nor a file) from",
            path: path.to_owned(),
            source,
        })?;
        Self::from_lines(&text, &path.display().to_string(), false)
    }

    /// Parses key lines; inline values may also separate keys with commas.
    fn from_lines(text: &str, origin: &str, commas: bool) -> Result<Self, SigningError> {
        let mut keys: Vec<TrustedKey> = Vec::new();
        let lines = text
            .lines()
            .flat_map(|line| {
                if commas {
                    line.split(',').collect()
                } else {
                    vec![line]
                }
            })
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'));
        for (i, line) in lines.enumerate() {
            let bad = |reason: String| SigningError::BadPublicKey {
                origin: origin.to_owned(),
                line: i + 1,
                reason,
            };
            let public = PublicKey::from_openssh(line)
                .map_err(|e| bad(format!("not an OpenSSH public key line ({e}): {line:.40}")))?;
            let Some(ed) = public.key_data().ed25519() else {
                return Err(bad(format!(
                    "a {} key; hoard verifies ed25519 keys only",
                    public.algorithm()
                )));
            };
            let key = VerifyingKey::from_bytes(&ed.0)
                .map_err(|e| bad(format!("not a valid ed25519 point: {e}")))?;
            let name = match public.comment().trim() {
                "" => fingerprint(&ed.0),
                comment => comment.to_owned(),
            };
            // The same key twice keeps its first name.
            if !keys.iter().any(|k| k.key == key) {
                keys.push(TrustedKey { name, key });
            }
        }
        Ok(Self { keys })
    }

    /// The trusted key whose public bytes these are.
    pub fn get(&self, public: &[u8; 32]) -> Option<&TrustedKey> {
        self.keys.iter().find(|k| k.key.as_bytes() == public)
    }

    /// Whether no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys, in the order given.
    pub fn iter(&self) -> impl Iterator<Item = &TrustedKey> {
        self.keys.iter()
    }
}

/// What a chain signs with and what it accepts: the signing key, when this machine writes
/// signed entries, and the keys it trusts. Which tiers are verified is each tier's
/// [`crate::TierConfig::verify`]. Build it with [`Trust::new`] (or take the default: no key,
/// no one trusted); more settings may be added.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Trust {
    /// Signs every entry and manifest this machine puts into a remote tier.
    pub signer: Option<Signer>,
    /// Whose signatures a verifying tier's entries must carry.
    pub trusted: TrustedKeys,
}

impl Trust {
    /// Signs remote puts with `signer`, when given, and accepts from verifying tiers what one
    /// of `trusted` signed.
    pub fn new(signer: Option<Signer>, trusted: TrustedKeys) -> Self {
        Self { signer, trusted }
    }
}

/// Creates a new signing key: the OpenSSH private key at `path` (created 0600, never over an
/// existing file) and its public line at `path.pub`, named `name`; returns the public line.
pub fn keygen(path: &Path, name: &str) -> Result<String, SigningError> {
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut()).map_err(|e| SigningError::Io {
        op: "get randomness for",
        path: path.to_owned(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let signing = SigningKey::from_bytes(&seed);
    let pair = ssh_key::private::Ed25519Keypair::from(&signing);
    let private = PrivateKey::new(ssh_key::private::KeypairData::Ed25519(pair), name)
        .and_then(|key| key.to_openssh(LineEnding::LF))
        .map_err(|e| SigningError::BadPrivateKey {
            path: path.to_owned(),
            reason: format!("cannot encode the new key: {e}"),
        })?;
    let public = public_line(&signing, name);
    let mut pub_path = path.as_os_str().to_owned();
    pub_path.push(".pub");
    let pub_path = PathBuf::from(pub_path);
    write_new(path, private.as_bytes(), 0o600)?;
    write_new(&pub_path, format!("{public}\n").as_bytes(), 0o644)?;
    Ok(public)
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), SigningError> {
    let io = |op: &'static str| {
        move |source| SigningError::Io {
            op,
            path: path.to_owned(),
            source,
        }
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io("create (it must not exist yet)"))?;
    file.write_all(bytes).map_err(io("write"))?;
    file.sync_all().map_err(io("write"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_writes_a_private_key_0600_and_a_public_line_a_reader_trusts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ci.key");
        let line = keygen(&path, "ci@example").unwrap();
        assert!(line.starts_with("ssh-ed25519 AAAA") && line.ends_with(" ci@example"));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let pub_text = std::fs::read_to_string(dir.path().join("ci.key.pub")).unwrap();
        assert_eq!(pub_text.trim(), line);
        let signer = Signer::from_file(&path).unwrap();
        assert_eq!(signer.name(), "ci@example");
        assert_eq!(signer.public_line(), line);
        let trusted = TrustedKeys::parse(&line).unwrap();
        let key = trusted.get(&signer.public_bytes()).unwrap();
        assert_eq!(key.name, "ci@example");
        assert!(key.verifies(b"m", &signer.sign(b"m")));
        assert!(!key.verifies(b"n", &signer.sign(b"m")));
        // Never over an existing key.
        let err = keygen(&path, "again").unwrap_err();
        assert!(err.to_string().contains("ci.key"), "{err}");
        assert!(format!("{signer:?}").contains("SHA256:"));
    }

    #[test]
    fn trusted_keys_come_inline_with_commas_or_from_a_file_with_comments() {
        let dir = tempfile::tempdir().unwrap();
        let a = keygen(&dir.path().join("a"), "ci-2026").unwrap();
        let b = keygen(&dir.path().join("b"), "").unwrap();
        let inline = TrustedKeys::parse(&format!("{a}, {b}")).unwrap();
        let names: Vec<_> = inline.iter().map(|k| k.name.clone()).collect();
        assert_eq!(names[0], "ci-2026");
        assert!(names[1].starts_with("SHA256:"), "{names:?}");
        let file = dir.path().join("trusted");
        std::fs::write(&file, format!("# the CI keys\n\n{a}\n{b}\n{a}\n")).unwrap();
        let from_file = TrustedKeys::parse(file.to_str().unwrap()).unwrap();
        assert_eq!(from_file, inline);
    }

    #[test]
    fn bad_keys_are_errors_that_say_which_and_why() {
        let err = TrustedKeys::parse("ssh-ed25519 notbase64 x").unwrap_err();
        assert!(
            err.to_string().contains("HOARD_TRUSTED_KEYS, key 1"),
            "{err}"
        );
        let err = TrustedKeys::parse("/nonexistent/keys").unwrap_err();
        assert!(err.to_string().contains("/nonexistent/keys"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, "hello").unwrap();
        let err = Signer::from_file(&path).unwrap_err();
        assert!(
            err.to_string().contains("not an OpenSSH private key"),
            "{err}"
        );
    }
}
