//! The trust boundary, attack by attack: each test plays a hostile local user (a second uid,
//! by `setpriv` or `Command::uid` as root) or a hostile network peer (a raw socket) against
//! the real binaries, and proves the attack is refused without breaking the victim's build.
//! See docs/Security.md for the threat model these tests hold hoard to.

#[path = "../common/mod.rs"]
mod common;

mod client_verifies_server;
mod gateway_flood;
mod secrets;
mod server_identity;
mod tier_bytes;

/// A uid and gid no account on the machine uses: the other local user, the attacker.
pub const ATTACKER: u32 = 40001;

/// A second uid for tests that need two users besides root (a victim that is not root).
pub const VICTIM: u32 = 40002;

/// Whether this process can act as another uid (it must be root). When it cannot, says so
/// loudly; under `HOARD_TEST_REQUIRE=all` (CI) that is a failure, not a skip.
pub fn can_switch_uid(test: &str) -> bool {
    if effective_uid() == 0 {
        return true;
    }
    let message = format!("SKIPPED {test}: needs root to act as a second uid");
    assert!(
        std::env::var("HOARD_TEST_REQUIRE").as_deref() != Ok("all"),
        "{message} (HOARD_TEST_REQUIRE=all)"
    );
    eprintln!("{message}");
    false
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

/// `program args...` run as `uid` (and the same gid, no supplementary groups).
pub fn as_user(uid: u32, program: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new("setpriv");
    cmd.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .arg("--clear-groups")
        .arg("--")
        .arg(program);
    cmd
}
