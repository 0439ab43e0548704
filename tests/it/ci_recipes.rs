//! The CI recipes of `docs/ci/` and `.github/actions/setup-hoard`, run here as CI runs them:
//! the composite action's shell steps in order, with `GITHUB_ENV`, `GITHUB_PATH` and
//! `GITHUB_STEP_SUMMARY` files applied between steps as the runner applies them; the
//! workflows' summary step; the container shim and host setup; GitLab's `before_script`.
//! Steps that are other actions (`actions/cache`, `actions/github-script`) cannot run here
//! and are named in [`NOT_RUN_HERE`]; each such step only restores files or copies two
//! variables, which the tests put in place themselves.
//!
//! The YAML is read by [`steps`], a reader for the subset these files use (a `steps:` list
//! of `name`/`uses`/`run`/`env` maps, `run: |` blocks), so a step added to a recipe is run
//! by these tests or fails them.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::tiers::cloud;
use crate::support::{HOARD, HOARD_SERVER, Sandbox, server_pids_of, text, tier, tools};

/// The repository's root, where the recipes live.
fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo().join(relative)).unwrap()
}

/// The action steps the tests cannot run, by what they use: the install cache (the tests
/// put the binaries where it restores them) and the step that hands the Actions cache
/// service's two variables to later steps (the tests set them, or leave them out).
const NOT_RUN_HERE: [&str; 2] = ["actions/cache@", "actions/github-script@"];

/// One step of a workflow or an action.
#[derive(Debug, Default)]
struct Step {
    name: String,
    uses: Option<String>,
    run: Option<String>,
    env: Vec<(String, String)>,
}

/// Leading spaces of `line`.
fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// Whether `line` carries nothing (blank or a comment).
fn is_blank(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

/// `key: value` with quotes taken off the value.
fn key_value(s: &str) -> (String, String) {
    let (k, v) = s.split_once(':').unwrap_or((s, ""));
    let v = v.trim();
    let v = v
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v);
    (k.trim().to_owned(), v.to_owned())
}

/// The steps of the first `steps:` list in `yaml`, in order.
fn steps(yaml: &str) -> Vec<Step> {
    let lines: Vec<&str> = yaml.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim() == "steps:")
        .expect("a steps: list");
    let mut steps = Vec::new();
    let mut item = None;
    let mut i = start + 1;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        if is_blank(line) {
            continue;
        }
        let at = indent(line);
        let item_indent = *item.get_or_insert(at);
        if at < item_indent {
            break;
        }
        let body = if at == item_indent {
            let rest = line.trim_start().strip_prefix("- ").expect("a step");
            steps.push(Step::default());
            rest
        } else {
            line.trim_start()
        };
        let step = steps.last_mut().unwrap();
        let key_indent = item_indent + 2;
        let (key, value) = key_value(body);
        let nested = block(&lines, &mut i, key_indent);
        match key.as_str() {
            "name" => step.name = value,
            "uses" => step.uses = Some(value),
            "run" if value == "|" => step.run = Some(nested.join("\n")),
            "run" => step.run = Some(value),
            "env" => step.env = nested.iter().map(|l| key_value(l)).collect(),
            _ => {}
        }
    }
    steps
}

/// The lines after a key that are indented deeper than `key_indent` (its block), dedented;
/// advances `i` past them.
fn block(lines: &[&str], i: &mut usize, key_indent: usize) -> Vec<String> {
    let mut found = Vec::new();
    let mut dedent = None;
    while *i < lines.len() {
        let line = lines[*i];
        if !line.trim().is_empty() && indent(line) <= key_indent {
            break;
        }
        *i += 1;
        if line.trim().is_empty() {
            found.push(String::new());
            continue;
        }
        let d = *dedent.get_or_insert(indent(line));
        found.push(line[d.min(indent(line))..].to_owned());
    }
    while found.last().is_some_and(String::is_empty) {
        found.pop();
    }
    found
}

/// The step of `steps` named `name`.
fn step<'a>(steps: &'a [Step], name: &str) -> &'a Step {
    steps
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no step {name:?} in {steps:#?}"))
}

/// The default of every input of an action file.
fn input_defaults(yaml: &str) -> BTreeMap<String, String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut defaults = BTreeMap::new();
    let mut input = None;
    for line in lines
        .iter()
        .skip_while(|l| l.trim() != "inputs:")
        .skip(1)
        .take_while(|l| is_blank(l) || indent(l) > 0)
    {
        match indent(line) {
            2 => input = Some(key_value(line).0),
            4 if line.trim_start().starts_with("default:") => {
                let name = input.clone().unwrap();
                defaults.insert(name, key_value(line).1);
            }
            _ => {}
        }
    }
    defaults
}

/// A job on a pretend runner: its directory, the files a runner gives every step, and the
/// environment every step starts from.
struct Job {
    dir: tempfile::TempDir,
    base: Vec<(String, String)>,
}

impl Job {
    /// A job whose steps see `path` as `PATH` and `sandbox`'s cache directory and socket.
    fn new(sandbox: &Sandbox, path: &str) -> Self {
        let dir = tempfile::Builder::new().prefix("ci-job").tempdir().unwrap();
        for f in ["github_env", "github_path", "summary.md"] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        std::fs::create_dir(dir.path().join("home")).unwrap();
        let file = |f: &str| dir.path().join(f).display().to_string();
        let base = vec![
            ("PATH".into(), path.into()),
            ("HOME".into(), file("home")),
            ("GITHUB_ENV".into(), file("github_env")),
            ("GITHUB_PATH".into(), file("github_path")),
            ("GITHUB_STEP_SUMMARY".into(), file("summary.md")),
            (
                "HOARD_DIR".into(),
                sandbox.cache_dir().display().to_string(),
            ),
            (
                "HOARD_SERVER_UDS".into(),
                sandbox.socket().display().to_string(),
            ),
            // Nothing here may reach the network, cargo least of all.
            ("CARGO_NET_OFFLINE".into(), "true".into()),
        ];
        Self { dir, base }
    }

    fn path(&self, f: &str) -> PathBuf {
        self.dir.path().join(f)
    }

    fn file(&self, f: &str) -> String {
        std::fs::read_to_string(self.path(f)).unwrap()
    }

    /// What the runner adds for later steps: `GITHUB_ENV`'s variables, `GITHUB_PATH`'s
    /// directories in front of `PATH` (the latest first).
    fn env(&self) -> Vec<(String, String)> {
        let mut env = self.base.clone();
        for line in self.file("github_env").lines() {
            let (k, v) = line.split_once('=').unwrap();
            env.push((k.to_owned(), v.to_owned()));
        }
        let mut path: Vec<String> = self
            .file("github_path")
            .lines()
            .map(str::to_owned)
            .collect();
        path.reverse();
        path.extend(
            self.base
                .iter()
                .find(|(k, _)| k == "PATH")
                .map(|(_, v)| v.clone()),
        );
        env.push(("PATH".into(), path.join(":")));
        env
    }

    /// A command in the job's directory with the job's environment and nothing else.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(self.dir.path())
            .env_clear()
            .envs(self.env());
        cmd
    }

    /// Runs `step` as GitHub runs a `shell: bash` step, `inputs` giving `${{ inputs.* }}`
    /// in its `env`; `extra` is what the job or an earlier action exported. Must succeed.
    fn run(
        &self,
        step: &Step,
        inputs: &BTreeMap<String, String>,
        extra: &[(&str, &str)],
    ) -> Output {
        let script = step.run.as_deref().expect("a run step");
        let mut cmd = self.command("bash");
        cmd.args(["--noprofile", "--norc", "-eo", "pipefail", "-c", script])
            .env(
                "GITHUB_ACTION_PATH",
                repo().join(".github/actions/setup-hoard"),
            )
            .envs(extra.iter().copied());
        for (k, v) in &step.env {
            cmd.env(k, expand(v, inputs));
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "step {:?} failed: {}{}",
            step.name,
            text(&out.stdout),
            text(&out.stderr)
        );
        out
    }

    /// Runs every step of the setup action: the shell steps, each with its inputs, and none
    /// of the others but the two of [`NOT_RUN_HERE`]. Returns what the steps printed.
    fn setup_hoard(&self, inputs: &[(&str, &str)], extra: &[(&str, &str)]) -> String {
        let action = read(".github/actions/setup-hoard/action.yml");
        let mut values = input_defaults(&action);
        values.extend(
            inputs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let mut printed = String::new();
        for step in steps(&action) {
            if let Some(uses) = &step.uses {
                assert!(
                    NOT_RUN_HERE.iter().any(|n| uses.starts_with(n)),
                    "step {:?} uses {uses}, which these tests neither run nor stand in for",
                    step.name
                );
                continue;
            }
            let out = self.run(&step, &values, extra);
            printed += &text(&out.stdout);
            printed += &text(&out.stderr);
        }
        printed
    }

    /// A two-file C build, as a build step with the job's `CC` would run it (plain `gcc`
    /// when the job has none); must succeed.
    fn build(&self) {
        for (name, body) in [
            ("a", "int a(void) { return 1; }\n"),
            ("b", "int b(void) { return 2; }\n"),
        ] {
            std::fs::write(self.path(&format!("{name}.c")), body).unwrap();
            let _ = std::fs::remove_file(self.path(&format!("{name}.o")));
        }
        let out = self
            .command("bash")
            .args([
                "-ec",
                "${CC:-gcc} -c a.c -o a.o && ${CC:-gcc} -c b.c -o b.o",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "build: {}", text(&out.stderr));
        assert!(self.path("a.o").exists() && self.path("b.o").exists());
    }

    /// The variable `name` as the job's later steps see it.
    fn var(&self, name: &str) -> Option<String> {
        self.env()
            .into_iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// `value` with `${{ inputs.NAME }}` replaced; any other expression fails the test (it
/// would need a runner to evaluate).
fn expand(value: &str, inputs: &BTreeMap<String, String>) -> String {
    let Some(inner) = value.strip_prefix("${{").and_then(|v| v.strip_suffix("}}")) else {
        assert!(!value.contains("${{"), "expression in {value:?}");
        return value.to_owned();
    };
    let name = inner.trim().strip_prefix("inputs.").expect("an input");
    inputs.get(name).cloned().unwrap_or_default()
}

/// The system's directories, without hoard or cargo: a runner where neither is installed.
const BARE_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Puts the hoard binaries under test where an install cache restores them: `root`'s
/// `bin/`, `root` relative to the job's directory (`home/.hoard/VERSION` for the action).
fn restore_install_cache(job: &Job, root: &str) {
    let bin = job.path(&format!("{root}/bin"));
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(HOARD, bin.join("hoard")).unwrap();
    std::os::unix::fs::symlink(HOARD_SERVER, bin.join("hoard-server")).unwrap();
}

/// The summary step shared by the workflows, as `workflow` has it.
fn summary_step(workflow: &str) -> Step {
    steps(&read(workflow))
        .into_iter()
        .find(|s| s.name == "hoard summary")
        .unwrap_or_else(|| panic!("{workflow} has no summary step"))
}

#[test]
fn setup_action_with_hoard_wraps_the_compilers_and_the_second_build_hits() {
    let sandbox = Sandbox::new();
    let job = Job::new(&sandbox, BARE_PATH);
    restore_install_cache(&job, "home/.hoard/v-test");

    let printed = job.setup_hoard(&[("version", "v-test")], &[]);

    let bin = job.path("home/.hoard/v-test/bin");
    let hoard = bin.join("hoard").display().to_string();
    assert_eq!(job.file("github_path").trim(), bin.display().to_string());
    assert_eq!(job.var("RUSTC_WRAPPER").as_deref(), Some(hoard.as_str()));
    assert_eq!(job.var("CC"), Some(format!("{hoard} gcc")));
    assert_eq!(job.var("CXX"), Some(format!("{hoard} g++")));
    assert_eq!(
        job.var("CMAKE_C_COMPILER_LAUNCHER").as_deref(),
        Some(hoard.as_str())
    );
    assert_eq!(job.var("CARGO_INCREMENTAL").as_deref(), Some("0"));
    // The action's default is the Actions cache; without the service's variables (no
    // github-script step ran) it says so and goes on with the local cache.
    assert!(printed.contains("ACTIONS_RESULTS_URL"), "{printed}");
    assert_eq!(job.var("HOARD_GHA"), None);
    assert!(
        sandbox.server_pid().is_some(),
        "the action started the server"
    );

    job.build();
    job.build();
    let stats = sandbox.stats();
    assert_eq!(stats["cache_misses"], 2, "{stats}");
    assert_eq!(stats["cache_hits"], 2, "{stats}");

    // A hoard that renders Markdown (`--format markdown`) must be the one the summary shows;
    // an older one's text table goes in a code block.
    let markdown = sandbox
        .hoard()
        .args(["--show-stats", "--format", "markdown"])
        .output()
        .unwrap()
        .status
        .success();
    for workflow in ["docs/ci/github/build.yml", "docs/ci/github/warm-caches.yml"] {
        std::fs::write(job.path("summary.md"), "").unwrap();
        job.run(&summary_step(workflow), &BTreeMap::new(), &[]);
        let summary = job.file("summary.md");
        assert!(
            summary.to_lowercase().contains("hit"),
            "{workflow}: {summary}"
        );
        assert!(!summary.contains("did not run"), "{workflow}: {summary}");
        assert_eq!(
            summary.contains("```text"),
            !markdown,
            "{workflow}, markdown {markdown}: {summary}"
        );
        if markdown {
            assert!(summary.contains('|'), "a table: {summary}");
        }
    }
}

#[test]
fn setup_action_without_hoard_sets_no_wrapper_and_the_build_runs_uncached() {
    let sandbox = Sandbox::new();
    // No hoard, and no cargo to install one with: every step warns and succeeds.
    let job = Job::new(&sandbox, BARE_PATH);

    let printed = job.setup_hoard(&[("version", "v-test")], &[]);

    assert!(printed.contains("could not install hoard"), "{printed}");
    assert!(printed.contains("no compiler wrapper is set"), "{printed}");
    assert_eq!(job.file("github_path"), "");
    for var in ["RUSTC_WRAPPER", "CC", "CXX", "CMAKE_C_COMPILER_LAUNCHER"] {
        assert_eq!(job.var(var), None, "{var} must stay unset");
    }
    job.build();
    assert!(sandbox.server_pids().is_empty(), "no server without hoard");
    assert!(!sandbox.cache_dir().exists(), "nothing cached");

    job.run(
        &summary_step("docs/ci/github/build.yml"),
        &BTreeMap::new(),
        &[],
    );
    let summary = job.file("summary.md");
    assert!(summary.contains("did not run"), "{summary}");
    assert!(!summary.contains("command not found"), "{summary}");
}

#[test]
fn a_restored_hoard_that_does_not_run_is_never_put_in_front_of_the_compilers() {
    let sandbox = Sandbox::new();
    let mut job = Job::new(&sandbox, BARE_PATH);
    // What a cache restore for another architecture or a truncated file looks like, found
    // both where the install cache restores it and first on PATH.
    let bin = job.path("home/.hoard/v-test/bin");
    std::fs::create_dir_all(&bin).unwrap();
    job.base.retain(|(k, _)| k != "PATH");
    job.base
        .push(("PATH".into(), format!("{}:{BARE_PATH}", bin.display())));
    std::fs::write(bin.join("hoard"), "#!/bin/sh\nexit 126\n").unwrap();
    std::fs::set_permissions(bin.join("hoard"), std::fs::Permissions::from_mode(0o755)).unwrap();

    let printed = job.setup_hoard(&[("version", "v-test")], &[]);

    assert!(printed.contains("no compiler wrapper is set"), "{printed}");
    assert_eq!(job.var("CC"), None);
    assert_eq!(job.var("RUSTC_WRAPPER"), None);
    job.build();
}

#[test]
fn configure_step_enables_the_actions_cache_tier_read_only_for_untrusted_runs() {
    let sandbox = Sandbox::new();
    let action = read(".github/actions/setup-hoard/action.yml");
    let configure = steps(&action)
        .into_iter()
        .find(|s| s.name == "Configure the cache tiers")
        .unwrap();
    let service = [
        ("ACTIONS_RESULTS_URL", "http://127.0.0.1:9/"),
        ("ACTIONS_RUNTIME_TOKEN", "secret-token-value"),
    ];
    for (read_only, tiers) in [("true", Some("gha")), ("false", None)] {
        let job = Job::new(&sandbox, BARE_PATH);
        let mut inputs = input_defaults(&action);
        inputs.insert("gha-version".into(), "v7".into());
        inputs.insert("read-only".into(), read_only.into());
        let out = job.run(&configure, &inputs, &service);
        assert_eq!(job.var("HOARD_GHA").as_deref(), Some("on"));
        assert_eq!(job.var("HOARD_GHA_VERSION").as_deref(), Some("v7"));
        assert_eq!(
            job.var("HOARD_READ_ONLY_TIERS").as_deref(),
            tiers,
            "read-only {read_only}"
        );
        let printed = text(&out.stdout) + &text(&out.stderr);
        assert!(!printed.contains("secret-token-value"), "{printed}");
        assert!(!job.file("github_env").contains("secret-token-value"));
    }
}

#[test]
fn workflows_read_only_for_forks_and_warm_caches_on_main_and_weekly() {
    let build = read("docs/ci/github/build.yml");
    let read_only = build
        .lines()
        .find_map(|l| l.trim().strip_prefix("read-only:"))
        .expect("build.yml passes read-only");
    assert!(
        read_only.contains("github.event.pull_request.head.repo.full_name != github.repository"),
        "{read_only}"
    );
    let warm = read("docs/ci/github/warm-caches.yml");
    assert!(
        warm.contains("branches: [main]") && warm.contains("- cron:"),
        "{warm}"
    );
    assert!(!warm.contains("read-only:"), "warm-caches writes");
    for workflow in [&build, &warm] {
        let setup = step(&steps(workflow), "Set up hoard").uses.clone();
        assert_eq!(setup.as_deref(), Some("./.github/actions/setup-hoard"));
    }
}

#[test]
fn ci_files_pass_zizmor_and_action_validator() {
    if !tools::installed(&["zizmor", "action-validator"]) {
        return;
    }
    let out = Command::new(repo().join("scripts/lint-ci"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// `dir` with the container recipe's shims installed, by its own script.
fn install_shims(dir: &Path) {
    let out = Command::new(repo().join("docs/ci/container/install-shim.sh"))
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "install-shim.sh: {}",
        text(&out.stderr)
    );
}

/// `gcc -c <name>.c` in `dir` through the shim directory `shims`, with `env`; must succeed.
fn shim_compile(dir: &Path, shims: &Path, env: &[(&str, String)], name: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(format!("{name}.c")), "int f(void) { return 3; }\n").unwrap();
    let out = Command::new("gcc")
        .current_dir(dir)
        .env_clear()
        .env("PATH", format!("{}:{BARE_PATH}", shims.display()))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(["-c", &format!("{name}.c"), "-o", &format!("{name}.o")])
        .output()
        .unwrap();
    assert!(out.status.success(), "shim gcc: {}", text(&out.stderr));
    assert!(dir.join(format!("{name}.o")).exists());
}

#[test]
fn container_shim_compiles_through_hoard_when_it_runs_and_plainly_when_it_is_absent() {
    let sandbox = Sandbox::new();
    let dir = sandbox.dir.path().join("container");
    let shims = dir.join("shim");
    install_shims(&shims);
    let cache = |sandbox: &Sandbox| {
        vec![
            ("HOARD_DIR", sandbox.cache_dir().display().to_string()),
            ("HOARD_SERVER_UDS", sandbox.socket().display().to_string()),
        ]
    };

    let mut with_hoard = cache(&sandbox);
    with_hoard.push(("HOARD_BIN", HOARD.to_owned()));
    shim_compile(&dir, &shims, &with_hoard, "x");
    shim_compile(&dir, &shims, &with_hoard, "x");
    let stats = sandbox.stats();
    assert_eq!(stats["cache_misses"], 1, "{stats}");
    assert_eq!(stats["cache_hits"], 1, "{stats}");

    let absent = Sandbox::new();
    let mut without = cache(&absent);
    without.push(("HOARD_BIN", "/nonexistent/hoard".to_owned()));
    shim_compile(&dir, &shims, &without, "y");
    assert!(absent.server_pids().is_empty(), "no hoard, no server");
    assert!(!absent.cache_dir().exists(), "nothing cached");
}

#[test]
fn container_host_setup_serves_the_shims_from_a_root_server_and_exports_the_mounts() {
    if !tools::root("to run the server as the container's uid (root)") {
        return;
    }
    let sandbox = Sandbox::new();
    let job = Job::new(
        &sandbox,
        &format!(
            "{}:{BARE_PATH}",
            Path::new(HOARD).parent().unwrap().display()
        ),
    );
    let mount = job.path("mount");
    let sock_dir = job.path("sock");
    let out = job
        .command("bash")
        .arg(repo().join("docs/ci/container/host-setup.sh"))
        .env("HOARD_MOUNT", &mount)
        .env("HOARD_CONTAINER_SOCKET_DIR", &sock_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let socket = sock_dir.join("server.sock");
    let server = server_pids_of(&socket);
    let stop = Stop(&socket);
    assert_eq!(server.len(), 1, "one root server: {}", text(&out.stdout));

    let engine = job.var("CIBW_CONTAINER_ENGINE").unwrap();
    assert!(
        engine.contains(&format!("--volume {}:/opt/hoard:ro", mount.display())),
        "{engine}"
    );
    assert!(
        engine.contains(&format!("--volume {0}:{0}", sock_dir.display())),
        "{engine}"
    );
    let environment = job.var("CIBW_ENVIRONMENT_LINUX").unwrap();
    assert!(
        environment.contains("PATH=/opt/hoard/shim:$PATH"),
        "{environment}"
    );

    // The container's view, without a container: the mounted shim and hoard, the socket.
    let env = [
        ("HOARD_BIN", mount.join("bin/hoard").display().to_string()),
        ("HOARD_SERVER_UDS", socket.display().to_string()),
        (
            "HOARD_DIR",
            job.path("container-cache").display().to_string(),
        ),
    ];
    shim_compile(&job.path("src"), &mount.join("shim"), &env, "z");
    let stats = Command::new(HOARD)
        .args(["--show-stats", "--json"])
        .env("HOARD_SERVER_UDS", &socket)
        .env("HOARD_DIR", sandbox.cache_dir())
        .output()
        .unwrap();
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(stats["cache_misses"], 1, "{stats}");
    drop(stop);
}

/// Stops the server of a socket when dropped.
struct Stop<'a>(&'a Path);

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        let _ = Command::new(HOARD)
            .arg("--stop-server")
            .env("HOARD_SERVER_UDS", self.0)
            .output();
        for pid in server_pids_of(self.0) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

/// The items of the list under `key:` (at any depth) in `yaml`, one line each.
fn list(yaml: &str, key: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.trim() == format!("{key}:"))
        .unwrap_or_else(|| panic!("no {key}"));
    let mut i = at + 1;
    block(&lines, &mut i, indent(lines[at]))
        .iter()
        .filter(|l| !is_blank(l))
        .map(|l| l.strip_prefix("- ").expect("a list item").to_owned())
        .collect()
}

#[test]
fn gitlab_before_script_sets_up_hoard_and_the_job_builds_through_it() {
    let sandbox = Sandbox::new();
    let job = Job::new(&sandbox, BARE_PATH);
    restore_install_cache(&job, ".hoard-bin/v-test");
    let yaml = read("docs/ci/gitlab/.gitlab-ci.yml");
    // The project's checkout, holding the script where the recipe says to copy it.
    std::fs::create_dir_all(job.path("docs/ci")).unwrap();
    std::fs::copy(
        repo().join("docs/ci/setup-hoard.sh"),
        job.path("docs/ci/setup-hoard.sh"),
    )
    .unwrap();
    let setup = list(&yaml, "before_script").join("\n");
    let after = list(&yaml, "after_script").join("\n");
    // What GitLab gives the job: its variables (as .gitlab-ci.yml sets them, expanded) in one
    // shell for before_script and script, and a new shell for after_script.
    let project = job.dir.path().display().to_string();
    let vars = [
        ("CI_PROJECT_DIR", project.clone()),
        ("CI_COMMIT_REF_PROTECTED", "false".to_owned()),
        ("SETUP_HOARD_VERSION", "v-test".to_owned()),
        ("SETUP_HOARD_ROOT", format!("{project}/.hoard-bin/v-test")),
        ("SETUP_HOARD_ENV_FILE", format!("{project}/.hoard-env")),
        ("GITHUB_ENV", String::new()),
        ("GITHUB_PATH", String::new()),
    ];
    let script = format!(
        "{setup}\nprintf 'int g(void) {{ return 4; }}\\n' > g.c\n\
         for i in 1 2; do $CC -c g.c -o g.o; done\n\
         echo \"wrapper=$RUSTC_WRAPPER read_only=$HOARD_READ_ONLY_TIERS\""
    );
    let out = job
        .command("bash")
        .args(["-ec", &script])
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let printed = text(&out.stdout);
    assert!(
        printed.contains(&format!("wrapper={project}/.hoard-bin/v-test/bin/hoard")),
        "{printed}"
    );
    assert!(
        printed.contains("read_only=s3"),
        "unprotected refs only read: {printed}"
    );
    let stats = sandbox.stats();
    assert_eq!(stats["cache_hits"], 1, "{stats}");

    let out = job
        .command("bash")
        .args(["-c", &after])
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(text(&out.stdout).contains("Hits"), "{}", text(&out.stdout));
}

/// What the action's `actions/github-script` step does: hands the Actions cache service's
/// URL and the job's token to the later steps through `GITHUB_ENV`.
fn expose_actions_cache(job: &Job, url: &str, token: &str) {
    let lines = format!("ACTIONS_RESULTS_URL={url}\nACTIONS_RUNTIME_TOKEN={token}\n");
    std::fs::write(job.path("github_env"), lines).unwrap();
}

#[test]
fn warm_caches_writes_the_actions_cache_and_a_fork_build_reads_it_without_writing() {
    if !tools::installed(&["azurite-blob", "python3"]) {
        return;
    }
    // The Actions cache: the STAND-IN for GitHub's service (tests/fixtures), bytes on
    // Azurite; it refuses writes with `fork-token`, as GitHub does for a fork's pull request.
    let data = tempfile::tempdir().unwrap();
    let azurite = cloud::azurite(data.path()).expect("azurite-blob is installed");
    let service = cloud::gha_standin(azurite.port, "fork-token");
    let url = format!("http://127.0.0.1:{}/", service.port);

    // warm-caches.yml on main: writes.
    let warm = Sandbox::new();
    let job = Job::new(&warm, BARE_PATH);
    restore_install_cache(&job, "home/.hoard/v-test");
    expose_actions_cache(&job, &url, "main-token");
    job.setup_hoard(&[("version", "v-test"), ("gha-version", "e2e")], &[]);
    assert_eq!(job.var("HOARD_GHA").as_deref(), Some("on"));
    job.build();
    warm.wait_for_stats("both entries written to the Actions cache", |s| {
        tier(s, "gha")["writes"].as_u64() >= Some(2)
    });

    // build.yml on a pull request from a fork, on another runner: reads only.
    let fork = Sandbox::new();
    let job = Job::new(&fork, BARE_PATH);
    restore_install_cache(&job, "home/.hoard/v-test");
    expose_actions_cache(&job, &url, "fork-token");
    let printed = job.setup_hoard(
        &[
            ("version", "v-test"),
            ("gha-version", "e2e"),
            ("read-only", "true"),
        ],
        &[],
    );
    assert_eq!(job.var("HOARD_READ_ONLY_TIERS").as_deref(), Some("gha"));
    job.build();
    let stats = fork.stats();
    assert_eq!(stats["cache_hits"], 2, "{stats}\n{printed}\n{}", fork.log());
    let gha = tier(&stats, "gha");
    assert_eq!(stats["cache_misses"], 0, "{stats}");
    // Each direct-mode hit reads its manifest and then its entry from the tier.
    assert!(gha["hits"].as_u64() >= Some(2), "{stats}");
    assert_eq!(gha["writes"], 0, "{stats}");
    assert_eq!(gha["read_only"], true, "{stats}");
}

#[test]
fn container_host_setup_without_hoard_mounts_only_the_pass_through_shims() {
    let sandbox = Sandbox::new();
    let job = Job::new(&sandbox, BARE_PATH);
    let mount = job.path("mount");
    let out = job
        .command("bash")
        .arg(repo().join("docs/ci/container/host-setup.sh"))
        .env("HOARD_MOUNT", &mount)
        .env("HOARD_CONTAINER_SOCKET_DIR", job.path("sock"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("run uncached"),
        "{}",
        text(&out.stdout)
    );
    assert!(!mount.join("bin/hoard").exists());
    assert!(!job.path("sock").exists(), "no server, no socket directory");
    let environment = job.var("CIBW_ENVIRONMENT_LINUX").unwrap();
    assert!(!environment.contains("HOARD_SERVER_UDS"), "{environment}");
    let engine = job.var("CIBW_CONTAINER_ENGINE").unwrap();
    assert!(!engine.contains("sock"), "{engine}");

    // Inside the container: the shims find no hoard and run the real compiler.
    let env = [("HOARD_BIN", "/opt/hoard/bin/hoard".to_owned())];
    shim_compile(&job.path("src"), &mount.join("shim"), &env, "w");
    assert!(sandbox.server_pids().is_empty());
}
