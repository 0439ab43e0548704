//! `hoard --report JOURNAL`: the journal of a real build (a small C project, then the cargo
//! workspace fixture), built cold and again after an edit so it holds hits and misses,
//! reported as JSON and as one HTML page that a real browser (headless Chromium) loads: the
//! page's DOM must hold one timeline bar per compile and the slowest misses with why they
//! missed, and a directory named like markup must stay text.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::support::{self, Sandbox, journal_lines, text, tools};

/// A directory name that would be an element if the page let it through.
const HOSTILE_DIR: &str = "<b id=\"injected\">";

/// `hoard --report journal --format format`, which must succeed; its standard output.
fn report(sandbox: &Sandbox, journal: &Path, format: &str) -> String {
    let out = sandbox
        .hoard()
        .arg("--report")
        .arg(journal)
        .args(["--format", format])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

/// Runs headless Chromium on `page` with `args` (`--dump-dom`, `--screenshot=...`) and its
/// own profile under `scratch`; its output. `None` (after a loud skip, or a failure under
/// `HOARD_TEST_REQUIRE=all`) when Chromium is not installed.
fn chromium(page: &Path, scratch: &Path, args: &[&str]) -> Option<Output> {
    if !tools::installed(&["chromium"]) {
        return None;
    }
    let profile = scratch.join(format!("chromium-profile-{}", args.len()));
    let mut child = Command::new("chromium")
        // No sandbox: the tests may run as root, where Chromium's own sandbox refuses to start.
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .current_dir(scratch)
        .env("HOME", scratch)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read while it runs: a DOM larger than a pipe's buffer would otherwise block it.
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut stdout = stdout;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut bytes).unwrap();
        bytes
    });
    // A bound only so that a wedged browser fails the test instead of hanging it.
    let status = support::wait_exit(&mut child, Duration::from_secs(180));
    let stdout = reader.join().unwrap();
    let mut stderr = Vec::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = std::io::Read::read_to_end(&mut err, &mut stderr);
    }
    let out = Output {
        status,
        stdout,
        stderr,
    };
    assert!(out.status.success(), "chromium: {}", text(&out.stderr));
    Some(out)
}

/// The page's DOM as Chromium built it.
fn rendered_dom(page: &Path, scratch: &Path) -> Option<String> {
    chromium(page, scratch, &["--dump-dom"]).map(|out| text(&out.stdout))
}

/// Checks that Chromium draws `page` into a PNG screenshot.
fn assert_screenshot(page: &Path, scratch: &Path) {
    let shot = scratch.join("report.png");
    let arg = format!("--screenshot={}", shot.display());
    if chromium(page, scratch, &[&arg, "--window-size=1280,1600"]).is_none() {
        return;
    }
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(png.len() > 10_000, "a blank page? {} bytes", png.len());
}

/// The journal lines with `result`.
fn with_result<'a>(lines: &'a [serde_json::Value], result: &str) -> Vec<&'a serde_json::Value> {
    lines.iter().filter(|l| l["result"] == result).collect()
}

/// Writes a small C project: `src/main.c` and `src/util.c` include `src/util.h`,
/// `src/extra.c` includes nothing of it, and `src/odd.c` is built into a directory whose
/// name is markup.
fn c_project(root: &Path) {
    let src = root.join("src");
    std::fs::create_dir_all(&src).unwrap();
    for (name, body) in [
        ("util.h", "int util(int x);\n#define SCALE 3\n"),
        (
            "util.c",
            "#include \"util.h\"\nint util(int x) { return x * SCALE; }\n",
        ),
        (
            "main.c",
            "#include \"util.h\"\nint extra(void);\nint odd(void);\n\
             int main(void) { return util(extra()) + odd() - 3; }\n",
        ),
        ("extra.c", "int extra(void) { return 1; }\n"),
        ("odd.c", "int odd(void) { return 0; }\n"),
    ] {
        std::fs::write(src.join(name), body).unwrap();
    }
}

/// Compiles `src/<stem>.c` to `out/<stem>.o` through hoard.
fn compile(sandbox: &Sandbox, root: &Path, stem: &str, out: &Path) {
    std::fs::create_dir_all(out).unwrap();
    let output = sandbox
        .hoard()
        .current_dir(root)
        .args(["gcc", "-O1", "-c"])
        .arg(format!("src/{stem}.c"))
        .arg("-o")
        .arg(out.join(format!("{stem}.o")))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
}

/// Builds the C project: four objects, then a link (not cacheable).
fn build_c(sandbox: &Sandbox, root: &Path) {
    let app = root.join("build/app");
    let odd = root.join("build").join(HOSTILE_DIR);
    for stem in ["main", "util", "extra"] {
        compile(sandbox, root, stem, &app);
    }
    compile(sandbox, root, "odd", &odd);
}

fn link_c(sandbox: &Sandbox, root: &Path) {
    let app = root.join("build/app");
    let linked = sandbox
        .hoard()
        .current_dir(root)
        .args(["gcc", "-o"])
        .arg(app.join("app"))
        .arg(app.join("main.o"))
        .arg(app.join("util.o"))
        .arg(app.join("extra.o"))
        .arg(root.join("build").join(HOSTILE_DIR).join("odd.o"))
        .output()
        .unwrap();
    assert!(linked.status.success(), "{}", text(&linked.stderr));
}

#[test]
fn an_html_report_of_a_real_c_build_renders_in_chromium_with_its_timeline_and_top_misses() {
    let mut sandbox = Sandbox::new();
    let journal = sandbox.dir.path().join("build.jsonl");
    sandbox.set_env("HOARD_JOURNAL", &journal.display().to_string());
    let root = sandbox.dir.path().join("project");
    c_project(&root);
    // Cold: four misses. Then a changed header: main and util miss, the rest hit.
    build_c(&sandbox, &root);
    std::fs::write(
        root.join("src/util.h"),
        "int util(int x);\n#define SCALE 4\n",
    )
    .unwrap();
    build_c(&sandbox, &root);
    link_c(&sandbox, &root);

    assert_c_journal(&journal_lines(&journal));
    let json: serde_json::Value =
        serde_json::from_str(&report(&sandbox, &journal, "json")).unwrap();
    assert_c_json(&json, &root);
    let page = sandbox.dir.path().join("report.html");
    std::fs::write(&page, report(&sandbox, &journal, "html")).unwrap();
    let Some(dom) = rendered_dom(&page, sandbox.dir.path()) else {
        return;
    };
    assert_c_dom(&dom);
    assert_screenshot(&page, sandbox.dir.path());
}

/// The C build's journal: four first compiles, two misses that name the changed header, two
/// hits that say what they saved, one link.
fn assert_c_journal(lines: &[serde_json::Value]) {
    assert_eq!(lines.len(), 9, "{lines:#?}");
    let misses = with_result(lines, "miss");
    assert_eq!(misses.len(), 6, "{lines:#?}");
    assert_eq!(with_result(lines, "hit").len(), 2, "{lines:#?}");
    assert_eq!(with_result(lines, "non_cacheable").len(), 1, "{lines:#?}");
    let first: Vec<_> = misses
        .iter()
        .filter(|l| l["miss_reason"] == "first compile of this output")
        .collect();
    assert_eq!(first.len(), 4, "{misses:#?}");
    let changed: Vec<_> = misses
        .iter()
        .filter(|l| {
            l["miss_reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("changed: "))
        })
        .collect();
    assert_eq!(changed.len(), 2, "{misses:#?}");
    for line in &changed {
        let reason = line["miss_reason"].as_str().unwrap();
        assert!(reason.contains("util.h"), "{line}");
        assert!(
            line["output"].as_str().unwrap().contains("build/app/"),
            "{line}"
        );
    }
    for hit in with_result(lines, "hit") {
        assert!(
            hit["saved_ms"].as_f64().unwrap() > 0.0,
            "a hit says what it saved: {hit}"
        );
    }
}

/// The C build's JSON report: the totals, a timeline entry per line, a group per output
/// directory.
fn assert_c_json(json: &serde_json::Value, root: &Path) {
    assert_eq!(json["timeline"].as_array().unwrap().len(), 9, "{json}");
    assert_eq!(
        (json["hits"].as_u64(), json["misses"].as_u64()),
        (Some(2), Some(6))
    );
    let group = |name: &Path| {
        json["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == name.display().to_string())
            .unwrap_or_else(|| panic!("no group {} in {json}", name.display()))
            .clone()
    };
    let app = group(&root.join("build/app"));
    assert_eq!(
        (app["kind"].as_str(), app["compiles"].as_u64()),
        (Some("directory"), Some(6))
    );
    assert_eq!(
        (app["hits"].as_u64(), app["misses"].as_u64()),
        (Some(1), Some(5))
    );
    let odd = group(&root.join("build").join(HOSTILE_DIR));
    assert_eq!(
        (odd["hits"].as_u64(), odd["misses"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(json["saved_ms"].as_f64().unwrap() > 0.0, "{json}");
}

/// The C build's page as Chromium built it: a bar per compile in its outcome's colour, the
/// legend, a row per slow miss with its reason, and the markup-named directory as text.
fn assert_c_dom(dom: &str) {
    assert!(
        dom.contains("id=\"timeline-chart\""),
        "no timeline in\n{dom}"
    );
    assert_eq!(
        dom.matches("<rect class=\"bar ").count(),
        9,
        "one bar per compile:\n{dom}"
    );
    for (outcome, n) in [
        ("hit", 2),
        ("miss", 6),
        ("non_cacheable", 1),
        ("fallback", 0),
    ] {
        assert_eq!(
            dom.matches(&format!("<rect class=\"bar {outcome}\""))
                .count(),
            n,
            "{outcome} bars"
        );
        assert!(
            dom.contains(&format!(
                "<li class=\"legend-item\" data-outcome=\"{outcome}\">"
            )),
            "no legend for {outcome}"
        );
    }
    assert_eq!(dom.matches("<tr class=\"top-miss\">").count(), 6, "{dom}");
    assert_eq!(
        dom.matches("<td class=\"reason\">first compile of this output</td>")
            .count(),
        4,
        "{dom}"
    );
    let changed_rows = dom
        .split("<tr class=\"top-miss\">")
        .filter(|row| row.contains("<td class=\"reason\">changed: ") && row.contains("util.h"))
        .count();
    assert_eq!(changed_rows, 2, "{dom}");
    assert!(
        dom.contains("<tr class=\"group\" data-kind=\"directory\">"),
        "{dom}"
    );
    // The directory named like markup is text, never an element.
    assert!(
        !dom.contains(HOSTILE_DIR),
        "markup from a path got through:\n{dom}"
    );
    assert!(dom.contains("&lt;b id=\"injected\"&gt;"), "{dom}");
}

#[test]
fn a_cargo_builds_report_groups_by_crate_and_says_why_an_edited_crate_missed() {
    let mut sandbox = Sandbox::new();
    let journal = sandbox.dir.path().join("cargo.jsonl");
    sandbox.set_env("HOARD_JOURNAL", &journal.display().to_string());
    let ws: PathBuf = crate::rust::cargo::workspace(&sandbox, "ws");
    let target = sandbox.dir.path().join("target");
    let cargo = |sandbox: &Sandbox| {
        support::cargo::succeeded(
            &mut support::cargo::cargo_build(sandbox, &ws, &target, true),
            sandbox,
        )
    };
    cargo(&sandbox);
    let lib = ws.join("crates/greeting/src/lib.rs");
    let mut source = std::fs::read_to_string(&lib).unwrap();
    source.push_str("\n/// Added by the test.\npub fn added() -> u32 { 7 }\n");
    std::fs::write(&lib, source).unwrap();
    cargo(&sandbox);

    let lines = journal_lines(&journal);
    let compiles: Vec<_> = lines
        .iter()
        .filter(|l| l["result"] != "non_cacheable")
        .collect();
    assert!(
        compiles.iter().all(|l| l["result"] == "miss"),
        "{compiles:#?}"
    );
    let crates: std::collections::BTreeSet<&str> = compiles
        .iter()
        .map(|l| {
            l["crate_name"]
                .as_str()
                .unwrap_or_else(|| panic!("no crate name: {l}"))
        })
        .collect();
    for name in [
        "greeting",
        "features",
        "shout",
        "generated",
        "app",
        "build_script_build",
    ] {
        assert!(crates.contains(name), "{name} not in {crates:?}");
    }
    // Cold, every crate is a first compile; after the edit greeting says what changed.
    let greeting: Vec<&str> = compiles
        .iter()
        .filter(|l| l["crate_name"] == "greeting")
        .map(|l| l["miss_reason"].as_str().unwrap())
        .collect();
    assert_eq!(greeting.len(), 2, "{compiles:#?}");
    assert_eq!(greeting[0], "first compile of this output");
    assert!(
        greeting[1].starts_with("changed: ") && greeting[1].contains("lib.rs"),
        "{greeting:?}"
    );

    let json: serde_json::Value =
        serde_json::from_str(&report(&sandbox, &journal, "json")).unwrap();
    let group = json["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["kind"] == "crate" && g["name"] == "greeting")
        .unwrap_or_else(|| panic!("no greeting group in {json}"));
    assert_eq!(group["misses"], 2, "{json}");
    // `--show-stats --since-journal` is the same report.
    let alias = sandbox
        .hoard()
        .args(["--show-stats", "--json", "--since-journal"])
        .arg(&journal)
        .output()
        .unwrap();
    assert!(alias.status.success(), "{}", text(&alias.stderr));
    let alias: serde_json::Value = serde_json::from_slice(&alias.stdout).unwrap();
    assert_eq!(alias, json);

    let page = sandbox.dir.path().join("cargo.html");
    std::fs::write(&page, report(&sandbox, &journal, "html")).unwrap();
    let Some(dom) = rendered_dom(&page, sandbox.dir.path()) else {
        return;
    };
    assert_eq!(
        dom.matches("<rect class=\"bar ").count(),
        lines.len(),
        "one bar per journal line:\n{dom}"
    );
    assert!(
        dom.contains("<td class=\"name\">crate greeting</td>"),
        "{dom}"
    );
    assert!(
        dom.split("<tr class=\"top-miss\">")
            .any(|row| row.contains("<td class=\"reason\">changed: ") && row.contains("lib.rs")),
        "{dom}"
    );
}
