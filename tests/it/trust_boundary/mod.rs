//! The trust boundary, attack by attack: each test plays a hostile local user (a second uid,
//! by `setpriv` or `Command::uid` as root) or a hostile network peer (a raw socket) against
//! the real binaries, and proves the attack is refused without breaking the victim's build.
//! See docs/Security.md for the threat model these tests hold hoard to.

use crate::support::tools;

mod client_verifies_server;
mod gateway_flood;
mod secrets;
mod server_identity;
mod tier_bytes;

/// A uid and gid no account on the machine uses: the other local user, the attacker.
pub const ATTACKER: u32 = 40001;

/// A second uid for tests that need two users besides root (a victim that is not root).
pub const VICTIM: u32 = 40002;

/// Whether this process can act as another uid: it must be root, with `setpriv`. When it
/// cannot, the test is skipped loudly, or fails under `HOARD_TEST_REQUIRE=all` (CI).
pub fn can_switch_uid() -> bool {
    tools::root("to act as a second uid") && tools::installed(&["setpriv"])
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
