use super::*;
use proptest::prelude::*;

fn os(args: &str) -> Vec<OsString> {
    args.split_whitespace().map(OsString::from).collect()
}

#[test]
fn reads_a_cargo_command() {
    let parsed = parse(&os(
        "--crate-name serde --edition=2021 /r/serde/src/lib.rs \
        --error-format=json --json=diagnostic-rendered-ansi,artifacts,future-incompat \
        --crate-type lib --emit=dep-info,metadata,link -C embed-bitcode=no -C debuginfo=2 \
        --cfg feature=\"std\" -C metadata=9bdf -C extra-filename=-f8aa \
        --out-dir /t/debug/deps -L dependency=/t/debug/deps \
        --extern memchr=/t/debug/deps/libmemchr-1.rmeta --extern proc_macro \
        -L native=/t/debug/build/x/out -l static=foo --cap-lints allow -Clinker=clang",
    ))
    .unwrap();
    assert_eq!(parsed.source, "/r/serde/src/lib.rs");
    assert_eq!(parsed.crate_name.as_deref(), Some("serde"));
    assert_eq!(parsed.crate_types, vec!["lib"]);
    let kinds: Vec<&str> = parsed.emits.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, vec!["dep-info", "metadata", "link"]);
    assert_eq!(parsed.extra_filename, "-f8aa");
    assert_eq!(parsed.out_dir.as_deref(), Some(OsStr::new("/t/debug/deps")));
    assert_eq!(
        parsed.externs,
        vec![
            Extern {
                name: "memchr".into(),
                path: Some("/t/debug/deps/libmemchr-1.rmeta".into())
            },
            Extern {
                name: "proc_macro".into(),
                path: None
            }
        ]
    );
    assert_eq!(
        parsed.lib_dirs,
        vec![
            ("dependency".to_owned(), "/t/debug/deps".into()),
            ("native".to_owned(), "/t/debug/build/x/out".into())
        ]
    );
    assert_eq!(parsed.libs, vec![("static".to_owned(), "foo".to_owned())]);
    assert_eq!(parsed.linker.as_deref(), Some(OsStr::new("clang")));
    assert!(parsed.hashed.contains(&"-Cmetadata=9bdf".into()));
    assert!(parsed.hashed.contains(&"--cfg=feature=\"std\"".into()));
    assert!(
        !parsed
            .hashed
            .iter()
            .any(|a| a.to_string_lossy().contains("/t/"))
    );
}

#[test]
fn probes_stdin_and_incremental_are_named() {
    for (args, reason) in [
        ("-vV", "rustc_probe"),
        (
            "- --crate-name ___ --print=file-names --crate-type bin",
            "stdin_source",
        ),
        ("--crate-name x --print=cfg x.rs", "rustc_probe"),
        ("--version", "rustc_probe"),
        ("--explain E0308", "rustc_probe"),
        ("x.rs --crate-type lib -C incremental=/t/inc", "incremental"),
        ("x.rs -Csave-temps", "save_temps"),
        ("x.rs y.rs", "multiple_sources"),
        ("--crate-type lib", "no_source"),
        ("x.rs --crate-name", "missing_argument"),
    ] {
        assert_eq!(parse(&os(args)).unwrap_err().name(), reason, "{args}");
    }
}

#[test]
fn argfiles_hold_one_argument_per_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("args"),
        "--cfg\nfeature=\"a b\"\nsrc/lib.rs\n",
    )
    .unwrap();
    let expanded = expand_argfiles(&os("--crate-name x @args"), dir.path()).unwrap();
    assert_eq!(
        expanded,
        os("--crate-name x --cfg")
            .into_iter()
            .chain(["feature=\"a b\"".into(), "src/lib.rs".into()])
            .collect::<Vec<_>>()
    );
    assert_eq!(
        expand_argfiles(&os("@missing"), dir.path())
            .unwrap_err()
            .name(),
        "unreadable_response_file"
    );
}

#[test]
fn outputs_can_be_left_out_for_a_dependency_file_pass() {
    assert_eq!(
        without_outputs(&os(
            "--crate-name x --emit link,obj -o a --emit=metadata -ob x.rs --cfg y"
        )),
        os("--crate-name x x.rs --cfg y")
    );
}

proptest! {
    #[test]
    fn never_panics(args in prop::collection::vec("(-[-a-zA-Z]{0,12}(=[a-z/,=]{0,8})?|[a-z./]{1,8})", 0..12)) {
        let args: Vec<OsString> = args.into_iter().map(OsString::from).collect();
        let _ = parse(&args);
    }

    #[test]
    fn separate_and_joined_values_mean_the_same(name in "[a-z_]{1,10}", cfg in "[a-z]{1,8}") {
        let joined = parse(&os(&format!("--crate-name={name} --cfg={cfg} -Cextra-filename=-x a.rs"))).unwrap();
        let separate = parse(&os(&format!("--crate-name {name} --cfg {cfg} -C extra-filename=-x a.rs"))).unwrap();
        prop_assert_eq!(joined, separate);
    }
}
