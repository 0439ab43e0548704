//! Links the `hoard` wrapper as a static, non-PIE executable on glibc Linux.
//!
//! Why: `hoard` runs once per compile, and a hit costs a few milliseconds in all. Profiles of a
//! warm C build showed ~16 % of the wrapper's time in the dynamic loader (mapping libc, libm and
//! libgcc_s, and applying thousands of relative relocations). A static non-PIE wrapper starts in
//! about half the time (`hoard --version`: 0.58 ms against 1.23 ms, `perf stat -r 200`). The
//! server is long-lived, so it stays an ordinary dynamic executable.
//!
//! rustc names its system libraries itself (`-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc`, under
//! `-Bdynamic`), so `-static` alone still links them dynamically. This script writes, for this
//! binary's link only, a directory of one-line linker scripts named like those shared libraries
//! that point at the static archives instead (`libgcc_s` has none: it becomes `libgcc_eh`, the
//! static unwinder gcc itself uses for `-static`). glibc's own `libc.so` is such a script too.
//!
//! Set `HOARD_DYNAMIC_WRAPPER=1` at build time to link it dynamically instead. The static link
//! is also skipped when cross-compiling and where any static archive is missing (say, a distro
//! without glibc's static package).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=HOARD_DYNAMIC_WRAPPER");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    let wanted = std::env::var_os("HOARD_DYNAMIC_WRAPPER").is_none_or(|v| v.is_empty() || v == "0");
    if !wanted || os != "linux" || env != "gnu" || features.split(',').any(|f| f == "crt-static") {
        return;
    }
    let host = std::env::var("HOST").unwrap_or_default();
    if std::env::var("TARGET").unwrap_or_default() != host {
        return;
    }
    let Some(out_dir) = std::env::var_os("OUT_DIR").map(PathBuf::from) else {
        return;
    };
    match write_scripts(&out_dir.join("static-wrapper")) {
        Ok(dir) => {
            // `-L` here applies to this binary's link only; the server stays dynamic.
            println!("cargo:rustc-link-arg-bin=hoard=-L{}", dir.display());
            println!("cargo:rustc-link-arg-bin=hoard=-static");
            // After rustc's own `-pie`: the last of `-pie`/`-no-pie` wins.
            println!("cargo:rustc-link-arg-bin=hoard=-no-pie");
        }
        Err(why) => println!("cargo:warning=hoard is linked dynamically: {why}"),
    }
}

/// Writes `lib<name>.so` scripts naming the static archives; the directory, or why not.
fn write_scripts(dir: &Path) -> Result<PathBuf, String> {
    let archive = |name: &str| static_archive(name).ok_or(format!("no static {name}"));
    let (libc, gcc_eh, gcc) = (
        archive("libc.a")?,
        archive("libgcc_eh.a")?,
        archive("libgcc.a")?,
    );
    let mut scripts = vec![
        (
            "c",
            format!(
                "GROUP({} {} {})",
                libc.display(),
                gcc_eh.display(),
                gcc.display()
            ),
        ),
        ("gcc_s", format!("INPUT({})", gcc_eh.display())),
    ];
    for name in ["m", "util", "rt", "pthread", "dl"] {
        scripts.push((
            name,
            format!("INPUT({})", archive(&format!("lib{name}.a"))?.display()),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for (name, script) in scripts {
        let path = dir.join(format!("lib{name}.so"));
        std::fs::write(&path, format!("{script}\n"))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(dir.to_path_buf())
}

/// Where `cc`, which rustc links with here, finds a static archive of this name.
fn static_archive(name: &str) -> Option<PathBuf> {
    Command::new("cc")
        .arg(format!("-print-file-name={name}"))
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_owned()))
        // An unknown name is echoed back bare; a found one comes back as an existing path.
        .filter(|path| path.is_absolute() && path.exists())
}
