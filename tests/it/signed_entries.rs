//! Signed entries end to end, on real memcached, redis and a shared directory. Machine A
//! (CI) holds the signing key and fills the tier; an attacker with write access to the tier
//! then plants, each on its own unit: a forged entry (other code under a copied signature),
//! a signed entry moved to another key, a signed manifest moved to another source's manifest
//! key (it would point that compile at another compile's validly signed result), an entry
//! signed by a key nobody trusts, and an unsigned entry. Machine B, trusting only A's public
//! key, builds exactly what plain gcc builds and counts each refusal as `untrusted`; a
//! machine that does not verify is served every one of them, which is what the signatures
//! are for.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use hoard_storage::signing::Signer;
use hoard_storage::{CacheKey, DiskStore, Storage, TieredStorage, entry, tiers_from_env};

use crate::support::tiers::Daemon;
use crate::support::{Sandbox, journal_lines, text, tier, tools};

/// Units of the tree; each attack takes one, and the last is left alone.
const UNITS: usize = 6;

/// A tree of units that all include one header: the same include list, so a manifest moved
/// from one unit to another still fits there.
fn tree(dir: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("common.h"), "#define SCALE 7\n").unwrap();
    (0..UNITS)
        .map(|i| {
            let path = dir.join(format!("unit{i}.c"));
            std::fs::write(
                &path,
                format!(
                    "#include \"common.h\"\nint unit{i}(int x) {{ return x * SCALE + {i}; }}\n"
                ),
            )
            .unwrap();
            path
        })
        .collect()
}

fn gcc_args(source: &Path, out: &Path) -> Vec<String> {
    let object = out.join(source.file_name().unwrap()).with_extension("o");
    ["-O1", "-c"]
        .iter()
        .map(|s| (*s).to_owned())
        .chain([
            source.display().to_string(),
            "-o".into(),
            object.display().to_string(),
        ])
        .collect()
}

/// Each unit's object as `sandbox` (or plain gcc) builds it into `out`.
fn objects(sandbox: Option<&Sandbox>, sources: &[PathBuf], out: &Path) -> Vec<Vec<u8>> {
    std::fs::create_dir_all(out).unwrap();
    sources
        .iter()
        .map(|source| {
            let args = gcc_args(source, out);
            let output = match sandbox {
                Some(s) => s.hoard().arg("gcc").args(&args).output(),
                None => Command::new("gcc").args(&args).output(),
            }
            .unwrap();
            assert!(output.status.success(), "{}", text(&output.stderr));
            std::fs::read(args.last().unwrap()).unwrap()
        })
        .collect()
}

/// The manifest key and the result key of `source`'s compile, as `hoard --explain` on the
/// machine that built it reports them.
fn keys_of(sandbox: &Sandbox, source: &Path, out: &Path) -> (CacheKey, CacheKey) {
    let output = sandbox
        .hoard()
        .args(["--explain", "--", "gcc"])
        .args(gcc_args(source, out))
        .output()
        .unwrap();
    let report = text(&output.stdout);
    let field = |name: &str| -> CacheKey {
        report
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name:?} in: {report}"))
            .trim()
            .parse()
            .unwrap()
    };
    (field("key:"), field("result key:"))
}

/// Whoever can write to the tier: reads and writes its objects with hoard's own tier client,
/// signing nothing and verifying no signature.
struct Attacker {
    runtime: tokio::runtime::Runtime,
    tier: TieredStorage,
}

impl Attacker {
    fn new(env: &[(&str, String)], dir: &Path) -> Self {
        let vars: HashMap<&str, String> = env.iter().cloned().collect();
        let tiers = tiers_from_env(|name| vars.get(name).cloned()).unwrap();
        let local = DiskStore::open(dir, 1 << 30).unwrap();
        Self {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            tier: TieredStorage::new(local, tiers)
                .unwrap()
                .with_prefetch(false),
        }
    }

    fn get(&self, key: &CacheKey) -> Vec<u8> {
        self.runtime
            .block_on(self.tier.get(key))
            .unwrap()
            .unwrap_or_else(|| panic!("the tier holds no {key}"))
    }

    fn put(&self, key: &CacheKey, bytes: Vec<u8>) {
        self.runtime.block_on(async {
            self.tier.put(key, bytes).await.unwrap();
            assert!(self.tier.flush(std::time::Duration::from_secs(10)).await);
        });
    }
}

/// Which attack each unit suffers, and the object it would deliver if believed.
struct Planted {
    /// The object machine B would get for each attacked unit without verification.
    evil: Vec<(usize, Vec<u8>)>,
}

/// Plants the five attacks on units 0..5, from what A stored (`keys` per unit), and returns
/// what each would deliver.
fn plant(attacker: &Attacker, keys: &[(CacheKey, CacheKey)], plain: &[Vec<u8>]) -> Planted {
    // What A stored, read before anything is replaced.
    let results: Vec<Vec<u8>> = keys
        .iter()
        .map(|(_, result)| attacker.get(result))
        .collect();
    let manifest_3 = attacker.get(&keys[3].0);
    // 0: a forged entry: unit 1's code under unit 0's copied signature.
    let forged = entry::forge::with_signature_of(&results[1], &results[0]).unwrap();
    attacker.put(&keys[0].1, forged);
    // 1: a signed entry moved: unit 2's validly signed result under unit 1's key.
    attacker.put(&keys[1].1, results[2].clone());
    // 2: a signed manifest moved: unit 3's manifest (leading to unit 3's validly signed
    // result) under unit 2's manifest key.
    attacker.put(&keys[2].0, manifest_3);
    // 4: signed by a key no one trusts: unit 5's code, signed as unit 4's entry.
    let mallory = Signer::from_secret_bytes(&[0x66; 32], "mallory");
    let foreign = entry::for_remote(&results[5], &keys[4].1, Some(&mallory))
        .unwrap()
        .into_owned();
    attacker.put(&keys[4].1, foreign);
    // 5: unsigned: unit 0's code, no signature, as an old or keyless writer leaves it.
    attacker.put(&keys[5].1, entry::forge::unsigned(&results[0]).unwrap());
    Planted {
        evil: vec![
            (0, plain[1].clone()),
            (1, plain[2].clone()),
            (2, plain[3].clone()),
            (4, plain[5].clone()),
            (5, plain[0].clone()),
        ],
    }
}

/// The whole scenario on the tier `env` names (`tier_name` in statistics).
fn refused_where_verified_served_where_not(env: &[(&str, String)], tier_name: &str) {
    let work = tempfile::tempdir().unwrap();
    let sources = tree(&work.path().join("src"));
    let out = work.path().join("out");
    let plain = objects(None, &sources, &out);
    let key_path = work.path().join("ci.key");
    let public = hoard_storage::signing::keygen(&key_path, "ci").unwrap();
    let machine = |extra: &[(&str, &str)]| {
        let mut sandbox = Sandbox::new();
        for (var, value) in env {
            sandbox.set_env(var, value);
        }
        // Every hit from the tier itself: the attacks are looked up, not read ahead.
        sandbox.set_env("HOARD_PREFETCH", "off");
        for (var, value) in extra {
            sandbox.set_env(var, value);
        }
        sandbox
    };

    let a = machine(&[("HOARD_SIGNING_KEY", key_path.to_str().unwrap())]);
    assert_eq!(objects(Some(&a), &sources, &out), plain, "machine A");
    let keys: Vec<_> = sources.iter().map(|s| keys_of(&a, s, &out)).collect();
    a.stop_server();

    let attacker = Attacker::new(env, &work.path().join("attacker"));
    let planted = plant(&attacker, &keys, &plain);

    // Readers do not write (as the recommended setup has it): what B compiles itself must
    // not replace what the attacker planted before the last machine reads it.
    let journal = work.path().join("b.jsonl");
    let b = machine(&[
        ("HOARD_TRUSTED_KEYS", &public),
        ("HOARD_JOURNAL", journal.to_str().unwrap()),
        ("HOARD_READ_ONLY_TIERS", tier_name),
    ]);
    assert_eq!(
        objects(Some(&b), &sources, &out),
        plain,
        "a verifying machine builds what gcc builds"
    );
    let stats = b.stats();
    let from_tier = tier(&stats, tier_name);
    assert_eq!(
        from_tier["untrusted"], 5,
        "each attack refused once: {stats}"
    );
    assert_eq!(from_tier["errors"], 0, "refusals are not errors: {stats}");
    let table = b.hoard().arg("--show-stats").output().unwrap();
    let table = text(&table.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.trim_start().starts_with(tier_name) && l.contains("5 untrusted")),
        "{table}"
    );
    // The attacked units compiled; the one left alone (unit 3, whose entries were only
    // copied elsewhere) came from the tier, signed by A's key.
    let lines = journal_lines(&journal);
    let hits: Vec<&serde_json::Value> = lines.iter().filter(|l| l["result"] == "hit").collect();
    assert_eq!(hits.len(), 1, "{lines:?}");
    for hit in hits {
        assert_eq!(hit["tier"], tier_name, "{hit}");
        assert_eq!(hit["signer"], "ci", "{hit}");
    }
    b.stop_server();

    // The same tier read without verification: every planted entry is delivered.
    let trusting_all = machine(&[("HOARD_READ_ONLY_TIERS", tier_name)]);
    let served = objects(Some(&trusting_all), &sources, &out);
    for (unit, evil) in &planted.evil {
        assert_eq!(
            &served[*unit], evil,
            "unit {unit}: served where verification is off"
        );
        assert_ne!(&served[*unit], &plain[*unit]);
    }
    let stats = trusting_all.stats();
    assert_eq!(tier(&stats, tier_name)["untrusted"], 0, "{stats}");
}

#[test]
fn a_shared_directory_s_forged_moved_foreign_and_unsigned_entries_are_refused_where_verified() {
    let shared = tempfile::tempdir().unwrap();
    refused_where_verified_served_where_not(
        &[("HOARD_SHARED_DIR", shared.path().display().to_string())],
        "shared_dir",
    );
}

#[test]
fn memcached_s_forged_moved_foreign_and_unsigned_entries_are_refused_where_verified() {
    if !tools::installed(&["memcached"]) {
        return;
    }
    let memcached = Daemon::memcached();
    refused_where_verified_served_where_not(
        &[(
            "HOARD_MEMCACHED_ENDPOINT",
            format!("tcp://127.0.0.1:{}", memcached.port),
        )],
        "memcached",
    );
}

#[test]
fn redis_s_forged_moved_foreign_and_unsigned_entries_are_refused_where_verified() {
    if !tools::installed(&["redis-server"]) {
        return;
    }
    let redis = Daemon::redis();
    refused_where_verified_served_where_not(
        &[(
            "HOARD_REDIS_ENDPOINT",
            format!("redis://127.0.0.1:{}", redis.port),
        )],
        "redis",
    );
}

/// A key pair in `dir`: the secret key's path and the public line.
fn ci_key(dir: &Path) -> (String, String) {
    let path = dir.join("ci.key");
    let public = hoard_storage::signing::keygen(&path, "ci").unwrap();
    (path.display().to_string(), public)
}

#[test]
fn a_verifying_machine_builds_the_c_corpus_all_from_a_signing_machine_s_memcached() {
    if !tools::installed(&["memcached"]) {
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    let (secret, public) = ci_key(keys.path());
    let memcached = Daemon::memcached();
    let endpoint = format!("tcp://127.0.0.1:{}", memcached.port);
    let on = ("HOARD_MEMCACHED_ENDPOINT", endpoint.as_str());
    // Prefetched entries are verified like looked-up ones: B trusting only the CI key still
    // reads ahead everything A stored.
    crate::remote_tiers::two_machines_share_a_tree_as(
        &[on, ("HOARD_SIGNING_KEY", &secret)],
        &[on, ("HOARD_TRUSTED_KEYS", &public)],
        "memcached",
        true,
    );
}

#[test]
fn a_verifying_machine_builds_the_cargo_workspace_all_from_a_signing_machine_s_redis() {
    if !tools::installed(&["redis-server"]) {
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    let (secret, public) = ci_key(keys.path());
    let redis = Daemon::redis();
    let endpoint = format!("redis://127.0.0.1:{}", redis.port);
    let on = ("HOARD_REDIS_ENDPOINT", endpoint.as_str());
    let stats = crate::rust::cargo::second_machine_builds_from_as(
        "signed redis",
        &[on, ("HOARD_SIGNING_KEY", &secret)],
        &[on, ("HOARD_TRUSTED_KEYS", &public)],
    );
    assert_eq!(tier(&stats, "redis")["untrusted"], 0, "{stats}");
}

/// A verifying machine given a tier an unsigned writer filled (a writer from before
/// signatures, or without a key) compiles everything, correctly, and counts every entry it
/// was offered as untrusted; with verification off for that tier, the same tier serves it.
#[test]
fn an_unsigned_writer_s_entries_are_refused_where_verified_and_served_where_verification_is_off() {
    let work = tempfile::tempdir().unwrap();
    let shared = work.path().join("shared");
    let sources = tree(&work.path().join("src"));
    let out = work.path().join("out");
    let plain = objects(None, &sources, &out);
    let on = ("HOARD_SHARED_DIR", shared.display().to_string());
    let machine = |extra: &[(&str, &str)]| {
        let mut sandbox = Sandbox::new();
        sandbox.set_env(on.0, &on.1);
        sandbox.set_env("HOARD_PREFETCH", "off");
        sandbox.set_env("HOARD_READ_ONLY_TIERS", "shared_dir");
        for (var, value) in extra {
            sandbox.set_env(var, value);
        }
        sandbox
    };
    let mut writer = machine(&[]);
    writer.env.retain(|(k, _)| k != "HOARD_READ_ONLY_TIERS");
    assert_eq!(objects(Some(&writer), &sources, &out), plain);
    writer.stop_server();

    let (_, public) = ci_key(work.path());
    let b = machine(&[("HOARD_TRUSTED_KEYS", &public)]);
    assert_eq!(objects(Some(&b), &sources, &out), plain);
    let stats = b.stats();
    // Each unit's manifest is refused; the result is then never asked for.
    assert_eq!(
        tier(&stats, "shared_dir")["untrusted"],
        UNITS as u64,
        "{stats}"
    );
    assert_eq!(stats["cache_hits"], 0, "{stats}");
    b.stop_server();
    // Verification off for that tier (`HOARD_VERIFY_TIERS=none`, keys still trusted).
    let c = machine(&[
        ("HOARD_TRUSTED_KEYS", &public),
        ("HOARD_VERIFY_TIERS", "none"),
    ]);
    assert_eq!(objects(Some(&c), &sources, &out), plain);
    let stats = c.stats();
    assert_eq!(stats["cache_hits"], UNITS as u64, "{stats}");
}

/// A signing setting that cannot be used is an error naming the variable and what is wrong
/// with it, from `--show-config`; a compile with it still succeeds, uncached, as with any
/// broken configuration.
#[test]
fn a_bad_key_setting_is_named_and_the_compile_still_succeeds() {
    let work = tempfile::tempdir().unwrap();
    let sources = tree(&work.path().join("src"));
    let out = work.path().join("out");
    let plain = objects(None, &sources[..1], &out);
    let shared = work.path().join("shared");
    let cases: [(&str, &str, &str); 4] = [
        (
            "HOARD_TRUSTED_KEYS",
            "ssh-ed25519 not-base64 ci",
            "HOARD_TRUSTED_KEYS, key 1: not an OpenSSH public key line",
        ),
        (
            "HOARD_TRUSTED_KEYS",
            "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC7 rsa",
            "HOARD_TRUSTED_KEYS, key 1",
        ),
        (
            "HOARD_SIGNING_KEY",
            "/nonexistent/ci.key",
            "HOARD_SIGNING_KEY: read /nonexistent/ci.key",
        ),
        (
            "HOARD_VERIFY_TIERS",
            "shared_dir",
            "HOARD_VERIFY_TIERS asks to verify shared_dir, but HOARD_TRUSTED_KEYS is not set",
        ),
    ];
    for (var, value, says) in cases {
        let mut sandbox = Sandbox::new();
        sandbox.set_env("HOARD_SHARED_DIR", shared.to_str().unwrap());
        sandbox.set_env(var, value);
        let report = sandbox.hoard().arg("--show-config").output().unwrap();
        assert!(!report.status.success(), "{var}={value}");
        let stderr = text(&report.stderr);
        assert!(stderr.contains(says), "{var}={value}: {stderr}");
        assert_eq!(
            objects(Some(&sandbox), &sources[..1], &out),
            plain,
            "{var}={value}: the compile"
        );
    }
}
