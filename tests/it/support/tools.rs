//! Tools and privileges a test needs that a machine may lack (clang, memcached, redis, `ip`,
//! `unshare`, `setpriv`, root). A test asks first and returns at once when something is
//! missing, after a loud `SKIPPED` line; under `HOARD_TEST_REQUIRE=all` (set by
//! `scripts/test` once it has installed everything) the missing piece fails the test
//! instead, so CI never passes a test that did not run.

use std::io::Write as _;
use std::path::Path;

/// The variable that turns a skip into a failure when it is `all`.
pub const REQUIRE: &str = "HOARD_TEST_REQUIRE";

/// Whether every one of `tools` is installed (an executable of that name on `PATH`). When
/// one is not, the test is skipped (see [`skipped`]).
pub fn installed(tools: &[&str]) -> bool {
    match tools.iter().find(|tool| !on_path(tool)) {
        None => true,
        Some(missing) => skipped(&format!("{missing} not installed")),
    }
}

/// Whether this process runs as root, which `why` needs (to act as another uid, to mount, to
/// make namespaces). When it does not, the test is skipped (see [`skipped`]).
pub fn root(why: &str) -> bool {
    effective_uid() == 0 || skipped(&format!("needs root {why}"))
}

/// Says that the running test cannot run because `missing` (a server that is not
/// installed); under `HOARD_TEST_REQUIRE=all`, fails it.
pub fn unavailable(missing: &str) {
    skipped(missing);
}

/// Says that the running test is skipped and why, and returns `false`; under
/// `HOARD_TEST_REQUIRE=all`, fails the test instead.
fn skipped(reason: &str) -> bool {
    // libtest names each test's thread after the test.
    let test = match std::thread::current().name() {
        Some(name) if name != "main" => name.to_owned(),
        _ => "this test".to_owned(),
    };
    let message = format!("SKIPPED {test}: {reason}");
    assert!(
        std::env::var(REQUIRE).as_deref() != Ok("all"),
        "{message} ({REQUIRE}=all)"
    );
    // To the process's own stderr: libtest captures what `eprintln!` prints, and a skip must
    // show in a plain `cargo test`.
    let _ = writeln!(std::io::stderr(), "{message}");
    false
}

/// Whether `tool` is an executable file in one of `PATH`'s directories.
fn on_path(tool: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Some(paths) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&paths).any(|dir| {
        Path::new(&dir)
            .join(tool)
            .metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// The effective uid, read from /proc so the tests need no unsafe code.
fn effective_uid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|uid| uid.parse().ok())
        .unwrap_or(u32::MAX)
}
