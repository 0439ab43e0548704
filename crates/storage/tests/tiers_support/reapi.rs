//! BuildGrid, a Bazel Remote Execution API server (PyPI `buildgrid`, pinned to 0.4.4 by
//! `scripts/test`), for the reapi tier's tests: an action cache, a CAS on disk and ByteStream
//! on a free loopback port. What hoard stored is read back with BuildGrid's own client (`bgd`)
//! and its own protobuf classes, so the tests check hoard's mapping against another
//! implementation of the API, not against hoard's.

use std::fmt::Write as _;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Daemon, find_program, free_port};

/// What is missing when BuildGrid is not installed.
pub const NO_BGD: &str = "no bgd (BuildGrid: pip install buildgrid==0.4.4; scripts/test installs it into target/test-venv)";

/// BuildGrid's limit on one gRPC message (and so on one batch of blobs): a blob over it can
/// only travel by ByteStream.
pub const GRPC_MESSAGE_LIMIT: usize = 4 << 20;

/// How long BuildGrid may take to listen: its startup is slow (seconds), slower still on a
/// machine busy with a test suite.
const STARTUP: Duration = Duration::from_secs(90);

/// A BuildGrid server, killed (with its whole process group) on drop. Its CAS is on disk in
/// a directory of its own and outlives a restart; its action cache is in memory and does not.
pub struct BuildGrid {
    pub daemon: Daemon,
    pub port: u16,
    program: PathBuf,
    dir: tempfile::TempDir,
    options: Options,
}

/// How a [`BuildGrid`] is set up beyond the default: its instances, authentication, TLS.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Instance names (`""` is the default instance); none means the default one only.
    pub instances: Vec<String>,
    /// Every call must carry `authorization: Bearer <a JWT signed with this secret (HS256)>`.
    pub jwt_secret: Option<String>,
    /// Serve TLS (and only TLS) with these files.
    pub tls: Option<Pki>,
    /// With [`Options::tls`]: every client must present a certificate the CA signed.
    pub client_certs: bool,
    /// BuildGrid's `thread-pool-size`, which is also the most RPCs it serves at once (it
    /// answers more with RESOURCE_EXHAUSTED, "Concurrent RPC limit exceeded!"); `None`: 10,
    /// what BuildGrid itself takes on a 2-core machine (5 per core).
    pub thread_pool_size: Option<u32>,
}

/// A throwaway CA and what it signed, for TLS tests (PEM files, made by `openssl`): a
/// server certificate for 127.0.0.1 and a client certificate.
#[derive(Debug, Clone)]
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

/// Makes a [`Pki`] in `dir` with `openssl`; `None` when `openssl` is not installed.
pub fn pki(dir: &Path) -> Option<Pki> {
    let openssl = find_program("HOARD_TEST_OPENSSL", "openssl")?;
    let run = |args: &[&str]| {
        let out = Command::new(&openssl)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let ca_args = [
        &["req", "-x509"][..],
        &ec,
        &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"],
        &[
            "-subj",
            "/CN=hoard test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
        ],
        &["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
    ]
    .concat();
    run(&ca_args);
    for (name, usage) in [
        (
            "server",
            "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
        ),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ] {
        let (key, csr, pem, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{name}.ext"),
        );
        std::fs::write(
            dir.join(&ext),
            format!("basicConstraints=CA:FALSE\n{usage}"),
        )
        .unwrap();
        let subject = format!("/CN=hoard test {name}");
        run(&[
            &["req"][..],
            &ec,
            &["-keyout", &key, "-out", &csr, "-subj", &subject],
        ]
        .concat());
        run(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &ext,
        ]);
    }
    Some(Pki {
        ca: dir.join("ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
        client_cert: dir.join("client.pem"),
        client_key: dir.join("client.key"),
    })
}

/// `bgd`: `HOARD_TEST_BGD`, else on PATH, else in the workspace's `target/test-venv` (where
/// `scripts/test` installs it).
pub fn bgd() -> Option<PathBuf> {
    find_program("HOARD_TEST_BGD", "bgd").or_else(|| {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        [manifest.join("target"), manifest.join("../../target")]
            .into_iter()
            .map(|target| target.join("test-venv/bin/bgd"))
            .find(|p| p.is_file())
    })
}

impl BuildGrid {
    /// BuildGrid serving the default instance (the empty name); `None` when `bgd` is not
    /// installed.
    pub fn start() -> Option<BuildGrid> {
        BuildGrid::with_instances(&[""])
    }

    /// BuildGrid serving each of `instances` (`""` is the default one), each with an action
    /// cache of its own over one shared CAS; `None` when `bgd` is not installed.
    pub fn with_instances(instances: &[&str]) -> Option<BuildGrid> {
        BuildGrid::with(Options {
            instances: instances.iter().map(|&i| i.to_owned()).collect(),
            ..Options::default()
        })
    }

    /// BuildGrid set up as `options` say; `None` when `bgd` is not installed.
    pub fn with(mut options: Options) -> Option<BuildGrid> {
        let program = bgd()?;
        if options.instances.is_empty() {
            options.instances.push(String::new());
        }
        let dir = tempfile::Builder::new()
            .prefix("hoard-buildgrid")
            .tempdir()
            .unwrap();
        let port = free_port();
        if let Some(secret) = &options.jwt_secret {
            std::fs::write(dir.path().join("jwt-secret"), secret).unwrap();
        }
        std::fs::write(
            dir.path().join("config.yml"),
            config(port, dir.path(), &options),
        )
        .unwrap();
        let daemon = spawn(&program, dir.path(), port);
        let server = BuildGrid {
            daemon,
            port,
            program,
            dir,
            options,
        };
        if server.options.jwt_secret.is_some() {
            let token = server.token(&server.options.jwt_secret.clone().unwrap(), 3600);
            std::fs::write(server.dir.path().join("client-token"), token).unwrap();
        }
        Some(server)
    }

    /// What `HOARD_REAPI_ENDPOINT` names to reach this server.
    pub fn endpoint(&self) -> String {
        let scheme = if self.options.tls.is_some() {
            "grpcs"
        } else {
            "grpc"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// A JWT for this server's calls, signed (HS256) with `secret`, expiring in `secs`
    /// seconds (negative: expired already); made with the PyJWT BuildGrid itself uses.
    pub fn token(&self, secret: &str, secs: i64) -> String {
        let out = Command::new(self.python())
            .args(["-c", MAKE_TOKEN, secret, &secs.to_string()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "making a JWT: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// Kills the server now (SIGKILL to its process group), as a crash would.
    pub fn kill(&mut self) {
        self.daemon.kill();
    }

    /// Kills the server if it runs and starts it again on the same port, with the same
    /// configuration and CAS directory (its action cache starts empty).
    pub fn restart(&mut self) {
        self.daemon.kill();
        self.daemon = spawn(&self.program, self.dir.path(), self.port);
    }

    /// What the server logged, across restarts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The CAS directory on disk (BuildGrid's `!disk-storage`).
    pub fn cas_dir(&self) -> PathBuf {
        self.dir.path().join("cas")
    }

    /// `bgd <service> --remote … [--instance-name …]`.
    fn client(&self, service: &str, instance: &str) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.arg(service);
        match &self.options.tls {
            None => cmd.args(["--remote", &format!("http://127.0.0.1:{}", self.port)]),
            Some(pki) => {
                cmd.args(["--remote", &format!("https://127.0.0.1:{}", self.port)])
                    .arg("--server-cert")
                    .arg(&pki.ca);
                if self.options.client_certs {
                    cmd.arg("--client-cert")
                        .arg(&pki.client_cert)
                        .arg("--client-key")
                        .arg(&pki.client_key);
                }
                &mut cmd
            }
        };
        if self.options.jwt_secret.is_some() {
            cmd.arg("--auth-token")
                .arg(self.dir.path().join("client-token"));
        }
        if !instance.is_empty() {
            cmd.args(["--instance-name", instance]);
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    /// The ActionResult stored under `action` (`hash/size`) in `instance`, as
    /// `bgd actioncache get --json` prints it; `None` on a miss.
    pub fn action_result(&self, instance: &str, action: &str) -> Option<serde_json::Value> {
        let out = self
            .client("actioncache", instance)
            .args(["get", "--json", action])
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(
            out.status.success(),
            "bgd actioncache get {action}: {stdout}{stderr}\nserver log:\n{}",
            self.log()
        );
        // A miss exits 0 too, saying so instead of printing a result.
        let json = stdout.trim();
        json.starts_with('{').then(|| {
            serde_json::from_str(json)
                .unwrap_or_else(|e| panic!("bgd printed no ActionResult ({e}): {stdout}{stderr}"))
        })
    }

    /// The blob `digest` (`hash/size`) from `instance`'s CAS, downloaded by
    /// `bgd cas download-file --verify` (which checks its SHA-256 and size).
    pub fn download(&self, instance: &str, digest: &str) -> Vec<u8> {
        let dest = tempfile::tempdir().unwrap();
        let path = dest.path().join("blob");
        let out = self
            .client("cas", instance)
            .args(["download-file", "--verify", digest])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success() && path.is_file(),
            "bgd cas download-file {digest}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read(&path).unwrap()
    }

    /// The action cache key (`hash/size`) of each of `keys` (hoard keys, in hex), computed
    /// with BuildGrid's own protobuf classes: the SHA-256 of the serialized
    /// `Action { command_digest: <Command { arguments: ["hoard", "entry", KEY] }>,
    /// input_root_digest: <no bytes> }`.
    pub fn action_digests(&self, keys: &[String]) -> Vec<String> {
        let out = Command::new(self.python())
            .args(["-c", ACTION_DIGESTS])
            .args(keys)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "action digests: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let digests: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        assert_eq!(digests.len(), keys.len());
        digests
    }

    /// The action cache key of one hoard key (see [`BuildGrid::action_digests`]).
    pub fn action_digest(&self, key: &str) -> String {
        self.action_digests(&[key.to_owned()]).remove(0)
    }

    /// The Python that runs `bgd` (its script's `#!` line), where BuildGrid's modules are.
    fn python(&self) -> PathBuf {
        let script = std::fs::read_to_string(&self.program).unwrap_or_default();
        script
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("#!"))
            .map(|l| PathBuf::from(l.split_whitespace().next().unwrap_or("python3")))
            .filter(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from("python3"))
    }
}

/// Prints the action cache key of each hoard key given as an argument.
const ACTION_DIGESTS: &str = r#"
import hashlib, sys
from buildgrid._protos.build.bazel.remote.execution.v2 import remote_execution_pb2 as re

def digest(data):
    return re.Digest(hash=hashlib.sha256(data).hexdigest(), size_bytes=len(data))

for key in sys.argv[1:]:
    command = re.Command(arguments=["hoard", "entry", key]).SerializeToString()
    action = re.Action(
        command_digest=digest(command), input_root_digest=digest(b"")
    ).SerializeToString()
    d = digest(action)
    print(f"{d.hash}/{d.size_bytes}")
"#;

/// Prints a JWT signed with the secret `argv[1]` (HS256), expiring in `argv[2]` seconds.
const MAKE_TOKEN: &str = r#"
import sys, time, jwt
claims = {"sub": "hoard-test", "exp": int(time.time()) + int(sys.argv[2])}
print(jwt.encode(claims, sys.argv[1], algorithm="HS256"))
"#;

/// A digest of bgd's JSON (`{"hash": …, "sizeBytes": "…"}`, the size left out when 0) as
/// `hash/size`.
pub fn digest_string(digest: &serde_json::Value) -> String {
    let hash = digest["hash"]
        .as_str()
        .unwrap_or_else(|| panic!("{digest}"));
    let size = match &digest["sizeBytes"] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => "0".to_owned(),
    };
    format!("{hash}/{size}")
}

/// The output files of an ActionResult (bgd's JSON): path and digest (`hash/size`), in the
/// result's order.
pub fn output_files(result: &serde_json::Value) -> Vec<(String, String)> {
    result["outputFiles"]
        .as_array()
        .map(|files| {
            files
                .iter()
                .map(|f| {
                    (
                        f["path"].as_str().unwrap().to_owned(),
                        digest_string(&f["digest"]),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The digest of output file `path` of an ActionResult; panics when it has none.
pub fn output_file(result: &serde_json::Value, path: &str) -> String {
    output_files(result)
        .into_iter()
        .find_map(|(p, d)| (p == path).then_some(d))
        .unwrap_or_else(|| panic!("no output file {path:?} in {result}"))
}

/// The YAML configuration of a server on `port` set up as `options` say, its files (CAS, JWT
/// secret) in `dir`.
fn config(port: u16, dir: &Path, options: &Options) -> String {
    let mut yaml = format!(
        "server:\n  - !channel\n    address: \"127.0.0.1:{port}\"\n    insecure-mode: {}\n",
        options.tls.is_none()
    );
    if let Some(pki) = &options.tls {
        write!(
            yaml,
            "    credentials:\n      tls-server-key: \"{}\"\n      tls-server-cert: \"{}\"\n",
            pki.server_key.display(),
            pki.server_cert.display()
        )
        .unwrap();
        if options.client_certs {
            writeln!(yaml, "      tls-client-certs: \"{}\"", pki.ca.display()).unwrap();
        }
    }
    match &options.jwt_secret {
        None => yaml.push_str("authorization:\n  method: none\n"),
        Some(_) => write!(
            yaml,
            "authorization:\n  method: jwt\n  secret: \"{}\"\n  algorithm: hs256\n",
            dir.join("jwt-secret").display()
        )
        .unwrap(),
    }
    write!(
        yaml,
        "monitoring:\n  enabled: false\n\
         storages:\n  - !disk-storage &cas\n    path: \"{}\"\n\
         caches:\n",
        dir.join("cas").display()
    )
    .unwrap();
    // One action cache per instance: a cache shared by two instances would share entries.
    for i in 0..options.instances.len() {
        write!(
            yaml,
            "  - !lru-action-cache &ac{i}\n    storage: *cas\n    max-cached-refs: 100000\n    \
             allow-updates: true\n    cache-failed-actions: true\n"
        )
        .unwrap();
    }
    yaml.push_str("instances:\n");
    for (i, name) in options.instances.iter().enumerate() {
        write!(
            yaml,
            "  - name: \"{name}\"\n    services:\n      - !action-cache\n        cache: *ac{i}\n      \
             - !cas\n        storage: *cas\n      - !bytestream\n        storage: *cas\n"
        )
        .unwrap();
    }
    writeln!(
        yaml,
        "thread-pool-size: {}",
        options.thread_pool_size.unwrap_or(10)
    )
    .unwrap();
    yaml
}

/// Starts `bgd server start` in `dir` (its configuration there, its output appended to
/// `server.log`) in a process group of its own, and waits until it listens on `port`.
fn spawn(program: &Path, dir: &Path, port: u16) -> Daemon {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))
        .unwrap();
    let mut child = Command::new(program)
        .args(["server", "start", "--pid-file"])
        .arg(dir.join("bgd.pid"))
        .arg(dir.join("config.yml"))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    let mut daemon = Daemon {
        child: None,
        port,
        process_group: true,
    };
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        let log = || std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "bgd exited ({status}) before listening on port {port}:\n{}",
                log()
            );
        }
        if start.elapsed() > STARTUP {
            daemon.child = Some(child);
            daemon.kill();
            panic!(
                "bgd does not listen on port {port} after {STARTUP:?}:\n{}",
                log()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    daemon.child = Some(child);
    daemon
}
