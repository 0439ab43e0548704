//! Client and server that do not see the same filesystem at the build's paths: a build in its
//! own mount namespace (as in a container) on a private tmpfs, talking to a server in the host
//! namespace through the shared socket. Its hits and puts must travel inline (entry bytes over
//! the socket), be byte-identical to plain gcc and share entries with host-side builds, while
//! a build on the host keeps using the shared filesystem.

use std::fmt::Write as _;
use std::path::Path;

use crate::support::namespaces::{MountNsBuild, Step, copy_tree, stderr_by_stem};
use crate::support::{
    Sandbox, c_files, clean, counter, gcc_c, local_hits, lua_sources, plain_build, snapshot, tools,
    transfers,
};

const FLAGS: &[&str] = &["-O1", "-g", "-Wall"];

/// The client's record of directories the server does not see (empty when it has none).
fn not_shared_dirs(sandbox: &Sandbox) -> String {
    std::fs::read_to_string(sandbox.cache_dir().join("not-shared-dirs")).unwrap_or_default()
}

/// Whether that record names `dir`, as text or hex-encoded bytes.
fn remembers(record: &str, dir: &Path) -> bool {
    let path = dir.to_str().unwrap();
    let hex: String = path.bytes().fold(String::new(), |mut hex, b| {
        write!(hex, "{b:02x}").unwrap();
        hex
    });
    record.contains(path) || record.to_ascii_lowercase().contains(&hex)
}

#[test]
fn a_build_in_its_own_mount_namespace_is_byte_identical_all_hits_warm_and_every_transfer_inline() {
    if !tools::root("to make a mount namespace") || !tools::installed(&["unshare"]) {
        return;
    }
    let sandbox = Sandbox::new();
    // The server lives in the host namespace; the build below runs in another one.
    sandbox.start_server();
    let server = sandbox.server_pid().expect("a server pid file");
    let ns = MountNsBuild {
        sandbox: &sandbox,
        compiler: "gcc",
        tree: lua_sources(),
        root: sandbox.dir.path().join("ns-build"),
        flags: FLAGS,
        results: sandbox.dir.path().join("results"),
    };
    let n = ns.sources().len() as u64;
    ns.run(&[
        Step::Plain("plain"),
        Step::Hoard("cold"),
        Step::Stats("cold"),
        Step::ZeroStats,
        Step::Hoard("warm"),
        Step::Stats("warm"),
    ]);

    // The build really happened on a filesystem the host does not see.
    assert_eq!(
        std::fs::read_dir(&ns.root).unwrap().count(),
        0,
        "the tmpfs build directory leaked into the host namespace"
    );

    let results = &ns.results;
    let expected = snapshot(&results.join("plain"));
    assert_eq!(
        expected.len() as u64,
        n * 2,
        "an object and a .d per source"
    );
    assert_eq!(
        snapshot(&results.join("cold")),
        expected,
        "cold build outputs differ from plain gcc"
    );
    assert_eq!(
        snapshot(&results.join("warm")),
        expected,
        "warm build outputs differ from plain gcc"
    );
    let plain_stderr = ns.stderr_of("plain");
    assert_eq!(ns.stderr_of("cold"), plain_stderr, "diagnostics on a miss");
    assert_eq!(ns.stderr_of("warm"), plain_stderr, "diagnostics on a hit");

    let cold = ns.stats("cold");
    assert_eq!(counter(&cold, "cache_misses"), n, "{cold}");
    assert_eq!(counter(&cold, "cache_writes"), n, "{cold}");
    assert_eq!(
        counter(&cold, "local_fallbacks"),
        0,
        "{cold}\n{}",
        sandbox.log()
    );
    assert_eq!(
        transfers(&cold),
        (0, n),
        "every put went inline: {cold}\n{}",
        sandbox.log()
    );

    let warm = ns.stats("warm");
    assert_eq!(counter(&warm, "cache_hits"), n, "{warm}\n{}", sandbox.log());
    assert_eq!(counter(&warm, "cache_misses"), 0, "{warm}");
    assert_eq!(counter(&warm, "cache_writes"), 0, "{warm}");
    assert_eq!(
        counter(&warm, "local_fallbacks"),
        0,
        "{warm}\n{}",
        sandbox.log()
    );
    // Another mount namespace than the server's: no hit is served from the local store, and
    // every one travels inline.
    assert_eq!(
        (transfers(&warm), local_hits(&warm)),
        ((0, n), 0),
        "every hit went inline: {warm}\n{}",
        sandbox.log()
    );

    // Served by the host's server throughout: the namespace started none of its own.
    assert_eq!(sandbox.server_pids(), vec![server]);
    let remembered = not_shared_dirs(&sandbox);
    let out_dir = ns.root.join("out");
    assert!(
        remembers(&remembered, &out_dir),
        "the client does not remember {} as not shared: {remembered:?}",
        out_dir.display()
    );
}

#[test]
fn a_build_on_the_servers_filesystem_moves_every_hit_and_put_through_the_shared_filesystem() {
    let sandbox = Sandbox::new();
    let sources = c_files(&lua_sources());
    let n = sources.len() as u64;
    let out = sandbox.dir.path().join("out");
    let plain = plain_build("gcc", &sources, &out, FLAGS, &sandbox);

    plain.again_through(&sandbox, "cold build");
    let stats = sandbox.stats();
    assert_eq!(counter(&stats, "cache_misses"), n, "{stats}");
    assert_eq!(counter(&stats, "cache_writes"), n, "{stats}");
    assert_eq!(
        transfers(&stats),
        (n, 0),
        "every put through the shared filesystem: {stats}\n{}",
        sandbox.log()
    );

    sandbox.zero_stats();
    let warm = plain.again_through(&sandbox, "warm build");
    plain.assert_same_diagnostics(&warm, "on a hit");
    let stats = sandbox.stats();
    assert_eq!(counter(&stats, "cache_hits"), n, "{stats}");
    assert_eq!(counter(&stats, "cache_misses"), 0, "{stats}");
    assert_eq!(counter(&stats, "local_fallbacks"), 0, "{stats}");
    // The server's own mount namespace: each hit is read by the client from the local store
    // itself, nothing crosses the connection.
    assert_eq!(
        (transfers(&stats), local_hits(&stats)),
        ((0, 0), n),
        "every hit from the client's own cache directory: {stats}\n{}",
        sandbox.log()
    );
    let remembered = not_shared_dirs(&sandbox);
    assert!(
        !remembers(&remembered, &out),
        "a shared directory was remembered as not shared: {remembered:?}"
    );
}

#[test]
fn a_mount_namespace_build_at_the_hosts_path_hits_what_the_host_built_and_gets_it_inline() {
    if !tools::root("to make a mount namespace") || !tools::installed(&["unshare"]) {
        return;
    }
    let sandbox = Sandbox::new();
    // The same path on both sides: a real directory on the host, a private tmpfs mounted
    // over it in the namespace.
    let root = sandbox.dir.path().join("tree");
    copy_tree(&lua_sources(), &root.join("src"));
    let sources = c_files(&root.join("src"));
    let n = sources.len() as u64;
    let out = root.join("out");
    let plain = plain_build("gcc", &sources, &out, FLAGS, &sandbox);

    plain.again_through(&sandbox, "host build");
    let stats = sandbox.stats();
    assert_eq!(counter(&stats, "cache_writes"), n, "{stats}");
    assert_eq!(transfers(&stats), (n, 0), "{stats}\n{}", sandbox.log());
    clean(&out);
    sandbox.zero_stats();

    let ns = MountNsBuild {
        sandbox: &sandbox,
        compiler: "gcc",
        tree: lua_sources(),
        root: root.clone(),
        flags: FLAGS,
        results: sandbox.dir.path().join("results"),
    };
    assert_eq!(ns.sources(), sources, "the same paths in the namespace");
    ns.run(&[Step::Hoard("container"), Step::Stats("container")]);

    assert_eq!(
        snapshot(&ns.results.join("container")),
        plain.files,
        "container build outputs differ from plain gcc on the host"
    );
    assert_eq!(
        ns.stderr_of("container"),
        stderr_by_stem(&sources, &plain.outputs),
        "diagnostics on a hit"
    );
    // The hits were written into the namespace's tmpfs, not the host's directory.
    assert!(
        snapshot(&out).is_empty(),
        "outputs appeared in the host's {}",
        out.display()
    );
    let stats = ns.stats("container");
    assert_eq!(
        counter(&stats, "cache_hits"),
        n,
        "{stats}\n{}",
        sandbox.log()
    );
    assert_eq!(counter(&stats, "cache_misses"), 0, "{stats}");
    assert_eq!(counter(&stats, "cache_writes"), 0, "{stats}");
    assert_eq!(counter(&stats, "local_fallbacks"), 0, "{stats}");
    assert_eq!(
        (transfers(&stats), local_hits(&stats)),
        ((0, n), 0),
        "every hit went inline: {stats}\n{}",
        sandbox.log()
    );
}

/// The flake this file once had: on a fresh cache directory the first wrappers race to write
/// the probe nonce, and a wrapper whose nonce was replaced by another's was told it shares no
/// filesystem with the server, so its put went inline (`transfers` showed one inline put on
/// the host). Eight wrappers at once, twenty times over: every put on the shared filesystem.
#[test]
fn wrappers_racing_on_a_fresh_cache_directory_all_prove_the_shared_filesystem() {
    let sandbox = Sandbox::new();
    let dir = sandbox.dir.path();
    sandbox.start_server();
    let (rounds, wrappers) = (20, 8);
    for round in 0..rounds {
        // As fresh as a new cache directory: no nonce yet.
        let _ = std::fs::remove_file(sandbox.cache_dir().join("probe"));
        let children: Vec<_> = (0..wrappers)
            .map(|i| {
                let name = format!("r{round}w{i}");
                std::fs::write(
                    dir.join(format!("{name}.c")),
                    format!("int {name}(void) {{ return {i}; }}\n"),
                )
                .unwrap();
                sandbox
                    .hoard()
                    .current_dir(dir)
                    .args(gcc_c(&name))
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut child in children {
            assert!(child.wait().unwrap().success(), "{}", sandbox.log());
        }
    }
    let stats = sandbox.stats();
    let n = rounds * wrappers;
    assert_eq!(counter(&stats, "cache_misses"), n, "{stats}");
    assert_eq!(
        transfers(&stats),
        (n, 0),
        "a wrapper was denied the shared filesystem: {stats}\n{}",
        sandbox.log()
    );
}
