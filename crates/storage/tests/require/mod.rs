//! What a test does when something it needs from the machine (a server program, `mkfifo`,
//! root) is missing: says so loudly and skips, or, under `HOARD_TEST_REQUIRE=all` (CI, after
//! installing everything), fails, so a missing tool cannot pass for a passing test.

// Each test binary compiles this module and uses what it needs of it.
#![allow(dead_code)]

/// Reports that `test` (or a case of it) cannot run because `missing`; returns only when
/// skipping is allowed.
pub fn unavailable(test: &str, missing: &str) {
    let message = format!("SKIPPED {test}: {missing}");
    assert!(
        std::env::var("HOARD_TEST_REQUIRE").as_deref() != Ok("all"),
        "{message} (HOARD_TEST_REQUIRE=all)"
    );
    eprintln!("{message}");
}

/// Makes a FIFO at `path` (and any missing parent directories), as `mkfifo` would.
pub fn mkfifo(path: &std::path::Path) -> std::io::Result<()> {
    use rustix::fs::{CWD, FileType, Mode, mknodat};
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    mknodat(CWD, path, FileType::Fifo, Mode::RUSR | Mode::WUSR, 0)?;
    Ok(())
}
