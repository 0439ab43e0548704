//! What a new user reads first: `--help`, `--version`, the manual pages and the shell
//! completions, from the real binaries.

use std::process::Command;

use crate::support::{HOARD, HOARD_SERVER, text, tools};

fn stdout_of(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn help_shows_wrapper_usage_first_then_grouped_commands_variables_and_the_config_file() {
    let help = stdout_of(HOARD, &["--help"]);
    let usage = help.find("hoard <COMPILER> [ARGS]").expect(&help);
    let rustc = help.find("RUSTC_WRAPPER=hoard").expect(&help);
    let options = help.find("Statistics and reports:").expect(&help);
    assert!(usage < options && rustc < options, "{help}");
    for heading in [
        "Cache management:",
        "Server:",
        "Diagnostics:",
        "Shell integration:",
    ] {
        assert!(help.contains(heading), "{heading} missing:\n{help}");
    }
    for word in [
        "HOARD_DIR",
        "HOARD_RECACHE",
        "HOARD_DISABLE",
        "Config file: /",
    ] {
        assert!(help.contains(word), "{word} missing:\n{help}");
    }
}

#[test]
fn each_binary_names_itself_and_the_protocols_it_speaks() {
    let hoard = stdout_of(HOARD, &["--version"]);
    assert!(hoard.starts_with("hoard 0."), "{hoard}");
    assert!(hoard.contains("v1") && hoard.contains("v2"), "{hoard}");
    let server = stdout_of(HOARD_SERVER, &["--version"]);
    assert!(server.starts_with("hoard-server 0."), "{server}");
    assert!(server.contains("v2"), "{server}");
    assert!(stdout_of(HOARD_SERVER, &["--help"]).contains("--metrics"));
}

#[test]
fn man_pages_render_and_name_every_command() {
    let page = stdout_of(HOARD, &["--man-page"]);
    assert!(
        page.starts_with(".ie") || page.contains(".TH hoard"),
        "{page}"
    );
    for flag in ["max\\-size", "evict\\-older\\-than", "show\\-stats"] {
        assert!(page.contains(flag), "{flag} missing from the man page");
    }
    let server = stdout_of(HOARD_SERVER, &["--man-page"]);
    assert!(server.contains(".TH hoard-server"), "{server}");
    if !tools::installed(&["man"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hoard.1");
    std::fs::write(&file, page).unwrap();
    let rendered = Command::new("man")
        .arg("-l")
        .arg(&file)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
        .unwrap();
    assert!(rendered.status.success(), "{}", text(&rendered.stderr));
    assert!(text(&rendered.stdout).contains("--evict-older-than"));
}

#[test]
fn completions_load_in_bash_and_offer_the_control_flags() {
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout_of(HOARD, &["--completions", shell]);
        assert!(script.contains("max-size"), "{shell}: {script}");
    }
    // bash sources its script and completes `hoard --ma`.
    let script = stdout_of(HOARD, &["--completions", "bash"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hoard.bash");
    std::fs::write(&file, script).unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {} && COMP_WORDS=(hoard --max) && COMP_CWORD=1 && COMP_LINE='hoard --max' \
             && COMP_POINT=11 && _hoard hoard --max hoard && printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            file.display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("--max-size"),
        "{}",
        text(&out.stdout)
    );
}
