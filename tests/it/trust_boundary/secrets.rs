//! Secrets are never printed or logged (issue 16, item 6). Every credential hoard can be given
//! (endpoint passwords for redis, memcached and WebDAV, an S3 endpoint's key and secret, the
//! AWS secret variables, the server token) is configured, through the environment and through
//! a config file, and hoard is driven through everything that prints or logs: a real compile
//! with every tier down, `--show-config` as text and JSON, server start and stop, malformed
//! endpoints, all at `HOARD_LOG=trace`. No output and no file under `HOARD_DIR` may then hold
//! a secret; the files hoard creates there are the user's alone.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

// Every endpoint is at a `free_port()`: every tier is down, and fails fast.
use crate::support::{HOARD_SERVER, Sandbox, files_under, free_port, text};

/// The redis password (the issue's own example).
const REDIS_PASSWORD: &str = "hunter2";
const MEMCACHED_PASSWORD: &str = "mcpass-q7";
const WEBDAV_PASSWORD: &str = "davpass-q7";
/// An S3 endpoint's userinfo: the access key id and the secret key.
const S3_KEY: &str = "AKIAURLKEYQ7";
const S3_SECRET: &str = "s3secret-q7";
/// What the AWS variables hold (read by OpenDAL's S3 client when the endpoint has no keys).
const AWS_SECRET: &str = "awsenvsecret-q7";
const TOKEN: &str = "server-token-q7";

/// Every secret, and how each may not appear anywhere.
const SECRETS: &[&str] = &[
    REDIS_PASSWORD,
    MEMCACHED_PASSWORD,
    WEBDAV_PASSWORD,
    S3_KEY,
    S3_SECRET,
    AWS_SECRET,
    TOKEN,
];

/// The user names, which `--show-config` still shows.
const USERS: &[&str] = &["alice", "mcuser", "davuser"];

/// Where the configuration comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// `HOARD_*` environment variables; the S3 keys in the endpoint URL.
    Environment,
    /// A `HOARD_CONFIG` file; the S3 keys from the AWS variables.
    File,
}

/// The endpoints, each with credentials, at closed ports.
fn endpoints() -> [(&'static str, String); 4] {
    [
        (
            "HOARD_REDIS_ENDPOINT",
            format!("redis://alice:{REDIS_PASSWORD}@127.0.0.1:{}", free_port()),
        ),
        (
            "HOARD_MEMCACHED_ENDPOINT",
            format!(
                "tcp://mcuser:{MEMCACHED_PASSWORD}@127.0.0.1:{}",
                free_port()
            ),
        ),
        (
            "HOARD_WEBDAV_ENDPOINT",
            format!(
                "http://davuser:{WEBDAV_PASSWORD}@127.0.0.1:{}/dav",
                free_port()
            ),
        ),
        ("HOARD_S3_BUCKET", "hoard-test".to_owned()),
    ]
}

/// A sandbox holding every kind of credential, at `HOARD_LOG=trace`.
fn configured(via: Via) -> Sandbox {
    let mut sandbox = Sandbox::new();
    sandbox.set_env("HOARD_LOG", "trace");
    sandbox.set_env("AWS_ACCESS_KEY_ID", "AKIAENVKEYQ7");
    sandbox.set_env("AWS_SECRET_ACCESS_KEY", AWS_SECRET);
    sandbox.set_env("AWS_REGION", "us-east-1");
    let s3_port = free_port();
    match via {
        Via::Environment => {
            for (name, value) in endpoints() {
                sandbox.set_env(name, &value);
            }
            sandbox.set_env(
                "HOARD_S3_ENDPOINT",
                &format!("http://{S3_KEY}:{S3_SECRET}@127.0.0.1:{s3_port}"),
            );
            sandbox.set_env("HOARD_SERVER_TOKEN", TOKEN);
        }
        Via::File => {
            let mut lines: Vec<String> = endpoints()
                .into_iter()
                .map(|(name, value)| {
                    let key = name.trim_start_matches("HOARD_").to_ascii_lowercase();
                    format!("{key} = \"{value}\"")
                })
                .collect();
            lines.push(format!("s3_endpoint = \"http://127.0.0.1:{s3_port}\""));
            lines.push(format!("server_token = \"{TOKEN}\""));
            let toml = lines.join("\n") + "\n";
            let file = sandbox.dir.path().join("config.toml");
            std::fs::write(&file, toml).unwrap();
            sandbox.set_env("HOARD_CONFIG", file.to_str().unwrap());
        }
    }
    sandbox
}

/// What a run printed, for the leak check.
fn printed(out: &Output) -> String {
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

/// Fails naming the secret and where it was found.
fn assert_no_secret(what: &str, haystack: &str) {
    for secret in SECRETS {
        assert!(
            !haystack.contains(secret),
            "{what} holds the secret {secret:?}:\n{haystack}"
        );
    }
}

/// No file under `HOARD_DIR` holds a secret, in any form a log line could give it.
fn assert_cache_dir_clean(sandbox: &Sandbox) {
    for file in files_under(&sandbox.cache_dir()) {
        let bytes = std::fs::read(&file).unwrap();
        assert_no_secret(&file.display().to_string(), &text(&bytes));
    }
}

/// A C file to compile, and where its object goes.
fn source(sandbox: &Sandbox) -> (PathBuf, PathBuf) {
    let src = sandbox.dir.path().join("leak.c");
    std::fs::write(&src, "int leak(int x) { return x * 7; }\n").unwrap();
    (src, sandbox.dir.path().join("leak.o"))
}

/// `hoard gcc -c` of a small file, which must build.
fn compile(sandbox: &Sandbox) -> Output {
    let (src, obj) = source(sandbox);
    let out = sandbox
        .hoard()
        .args(["gcc", "-c"])
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .output()
        .unwrap();
    assert!(out.status.success(), "compile failed: {}", printed(&out));
    assert!(obj.exists());
    out
}

fn run(mut cmd: Command) -> Output {
    cmd.output().unwrap()
}

#[test]
fn show_config_never_prints_endpoint_passwords_s3_keys_or_the_token() {
    for via in [Via::Environment, Via::File] {
        let sandbox = configured(via);
        let mut cmd = sandbox.hoard();
        cmd.arg("--show-config");
        let out = run(cmd);
        assert!(out.status.success(), "{via:?}: {}", printed(&out));
        let shown = printed(&out);
        assert_no_secret(&format!("--show-config ({via:?})"), &shown);
        for user in USERS {
            assert!(
                shown.contains(user),
                "{via:?}: user {user} not shown:\n{shown}"
            );
        }
        assert!(
            shown.contains(":***@"),
            "{via:?}: no masked password:\n{shown}"
        );

        let mut cmd = sandbox.hoard();
        cmd.args(["--show-config", "--json"]);
        let out = run(cmd);
        assert!(out.status.success(), "{via:?}: {}", printed(&out));
        let shown = printed(&out);
        assert_no_secret(&format!("--show-config --json ({via:?})"), &shown);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let redis = json["HOARD_REDIS_ENDPOINT"]["value"].as_str().unwrap();
        assert!(redis.starts_with("redis://alice:***@127.0.0.1:"), "{redis}");
        if via == Via::Environment {
            let s3 = json["HOARD_S3_ENDPOINT"]["value"].as_str().unwrap();
            assert!(s3.starts_with("http://***:***@127.0.0.1:"), "{s3}");
        }
        if sandbox.cache_dir().exists() {
            assert_cache_dir_clean(&sandbox);
        }
    }
}

#[test]
fn trace_logs_and_state_files_never_hold_a_secret() {
    for via in [Via::Environment, Via::File] {
        let mut sandbox = configured(via);
        let mut cmd = sandbox.hoard();
        cmd.arg("--start-server");
        let out = run(cmd);
        assert!(out.status.success(), "{via:?}: {}", printed(&out));
        assert_no_secret("--start-server", &printed(&out));
        // A miss asks every tier (the S3 request is signed before it fails to connect), then
        // stores; the second compile asks again. A v1 compile sends the whole environment to
        // the server; the journal records every compile.
        let journal = sandbox.cache_dir().join("journal.jsonl");
        sandbox.set_env("HOARD_JOURNAL", journal.to_str().unwrap());
        assert_no_secret("a compile", &printed(&compile(&sandbox)));
        assert_no_secret("a compile", &printed(&compile(&sandbox)));
        sandbox.set_env("HOARD_PROTOCOL", "1");
        assert_no_secret("a v1 compile", &printed(&compile(&sandbox)));
        sandbox.set_env("HOARD_PROTOCOL", "2");
        for flag in ["--show-stats", "--stop-server"] {
            let mut cmd = sandbox.hoard();
            cmd.arg(flag);
            assert_no_secret(flag, &printed(&run(cmd)));
        }
        assert!(!files_under(&sandbox.cache_dir()).is_empty());
        let log = sandbox.log();
        assert!(
            log.contains("TRACE") || log.contains("DEBUG"),
            "{via:?}: HOARD_LOG=trace logged nothing:\n{log}"
        );
        assert_cache_dir_clean(&sandbox);
    }
}

#[test]
fn a_malformed_endpoint_never_puts_its_password_in_an_error_or_a_log() {
    // Refused by the configuration check (client and server), and accepted by it but
    // refused when the server builds the tier (a database that is not a number).
    let endpoints = [
        format!("redis://alice:{REDIS_PASSWORD}@[bad"),
        format!(
            "redis://alice:{REDIS_PASSWORD}@127.0.0.1:{}/db",
            free_port()
        ),
    ];
    for endpoint in endpoints {
        let mut sandbox = Sandbox::new();
        sandbox.set_env("HOARD_LOG", "trace");
        sandbox.set_env("HOARD_REDIS_ENDPOINT", &endpoint);
        std::fs::create_dir_all(sandbox.cache_dir()).unwrap();
        // The build goes on without the cache either way.
        assert_no_secret("a compile", &printed(&compile(&sandbox)));
        let mut cmd = sandbox.hoard();
        cmd.arg("--show-config");
        let shown = printed(&run(cmd));
        assert_no_secret("--show-config", &shown);
        assert!(shown.contains("alice"), "{shown}");
        let mut server = sandbox.hoard();
        server.arg("--start-server");
        assert_no_secret("--start-server", &printed(&run(server)));
        // The server as an operator starts it by hand.
        let mut server = Command::new(HOARD_SERVER);
        server
            .env("HOARD_DIR", sandbox.cache_dir())
            .env("HOARD_SERVER_UDS", sandbox.socket())
            .env("HOARD_LOG", "trace")
            .env("HOARD_IDLE_TIMEOUT", "1")
            .env("HOARD_REDIS_ENDPOINT", &endpoint);
        let out = run(server);
        assert_no_secret(&format!("hoard-server with {endpoint}"), &printed(&out));
        assert_cache_dir_clean(&sandbox);
    }
}

/// The permission bits of `path`.
fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn logs_and_state_files_are_readable_by_their_user_alone() {
    let mut sandbox = configured(Via::Environment);
    assert!(!sandbox.cache_dir().exists());
    compile(&sandbox);
    compile(&sandbox);
    let mut cmd = sandbox.hoard();
    cmd.arg("--stop-server");
    run(cmd);
    // A server that cannot start: the wrapper compiles alone and writes down the event and
    // the unresponsive server.
    sandbox.set_env("HOARD_SERVER_BIN", "/bin/false");
    compile(&sandbox);
    let dir = sandbox.cache_dir();
    assert_eq!(mode(&dir), 0o700, "HOARD_DIR, created by hoard");
    for required in [
        "hoard.log",
        "server.log",
        "stats.json",
        hoard_protocol::CLIENT_EVENTS_FILE,
        hoard_client::UNRESPONSIVE_FILE,
    ] {
        assert!(dir.join(required).exists(), "no {required}");
    }
    // Whatever hoard's own state files there are (the shared-filesystem records are made
    // only when needed).
    let state = [
        "hoard.log",
        "server.log",
        "stats.json",
        hoard_protocol::CLIENT_EVENTS_FILE,
        hoard_client::PROBE_FILE,
        hoard_client::NOT_SHARED_FILE,
        hoard_client::UNRESPONSIVE_FILE,
    ];
    for name in state {
        let path = dir.join(name);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{name}");
        }
    }
}
