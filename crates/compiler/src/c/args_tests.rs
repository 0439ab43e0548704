use super::*;
use proptest::prelude::*;
use std::os::unix::ffi::OsStringExt;

fn args(line: &str) -> Vec<OsString> {
    line.split_whitespace().map(OsString::from).collect()
}

fn ok(line: &str) -> ParsedArgs {
    parse(&args(line), false).unwrap_or_else(|e| panic!("{line}: {e}"))
}

fn reason(line: &str) -> &'static str {
    match parse(&args(line), false) {
        Ok(parsed) => panic!("{line} was cacheable: {parsed:?}"),
        Err(e) => e.name(),
    }
}

fn strings(args: &[OsString]) -> Vec<&str> {
    args.iter().map(|a| a.to_str().unwrap()).collect()
}

#[test]
fn a_plain_compile_splits_into_hashed_preprocessor_and_outputs() {
    let p = ok("-c -O2 -Iinc -I other -DX=1 -include pre.h src/a.c -o obj/a.o -Wall -std=c11");
    assert_eq!(p.source, "src/a.c");
    assert_eq!(p.language, Language::C);
    assert_eq!(p.object.as_deref(), Some(OsStr::new("obj/a.o")));
    assert_eq!(strings(&p.hashed), ["-O2", "-Wall", "-std=c11"]);
    assert_eq!(
        strings(&p.preprocessor),
        ["-Iinc", "-I", "other", "-DX=1", "-include", "pre.h"]
    );
    assert_eq!(
        strings(&p.preprocess),
        [
            "-O2", "-Iinc", "-I", "other", "-DX=1", "-include", "pre.h", "src/a.c", "-Wall",
            "-std=c11"
        ]
    );
    assert!(!p.debug_info);
    assert!(p.direct_mode_possible);
    assert_eq!(p.dependency, None);
}

#[test]
fn dependency_options_are_hashed_but_kept_from_the_preprocessor_run() {
    let p = ok("-c a.c -MD -MF deps/a.d -MT tgt -MP -o a.o");
    assert_eq!(strings(&p.hashed), ["-MD", "-MT", "tgt", "-MP"]);
    assert_eq!(strings(&p.preprocess), ["a.c"]);
    assert_eq!(
        p.dependency,
        Some(DependencyFile {
            path: Some("deps/a.d".into()),
            explicit_target: true,
            user_headers_only: false,
        })
    );
    let p = ok("-c a.c -MMD -MFdeps/a.d");
    assert_eq!(
        p.dependency,
        Some(DependencyFile {
            path: Some("deps/a.d".into()),
            explicit_target: false,
            user_headers_only: true,
        })
    );
}

#[test]
fn joined_and_separate_values_are_both_understood() {
    assert_eq!(
        ok("-c -oa.o a.c").object.as_deref(),
        Some(OsStr::new("a.o"))
    );
    assert_eq!(
        ok("-c --output=b.o a.c").object.as_deref(),
        Some(OsStr::new("b.o"))
    );
    assert_eq!(
        ok("-c --output b.o a.c").object.as_deref(),
        Some(OsStr::new("b.o"))
    );
    assert_eq!(ok("-c -xc++ a.x").language, Language::Cxx);
    assert_eq!(ok("-c -x c a.x").language, Language::C);
    assert_eq!(
        ok("-c -isystem sys --sysroot /sr a.c").preprocessor.len(),
        2
    );
    assert_eq!(ok("-c -isystem sys --sysroot /sr a.c").hashed.len(), 2);
}

#[test]
fn the_longest_matching_name_wins() {
    assert_eq!(reason("-c a.c -fprofile-arcs"), "coverage");
    assert_eq!(reason("-c a.c -fprofile-generate"), "profile");
    assert_eq!(reason("-c a.c -gsplit-dwarf"), "split_dwarf");
    assert!(ok("-c a.c -ggdb3").debug_info);
    assert!(!ok("-c a.c -g0").debug_info);
    assert_eq!(strings(&ok("-c a.c -MMD").hashed), ["-MMD"]);
}

#[test]
fn unknown_flags_are_kept_and_hashed() {
    let p = ok("-c a.c --frobnicate -fno-strict-aliasing -mavx2");
    assert_eq!(
        strings(&p.hashed),
        ["--frobnicate", "-fno-strict-aliasing", "-mavx2"]
    );
}

#[test]
fn language_follows_x_and_the_driver() {
    assert_eq!(
        parse(&args("-c a.c"), true).unwrap().language,
        Language::Cxx
    );
    assert_eq!(ok("-c a.S").language, Language::Assembler);
    assert_eq!(ok("-c a.s").language, Language::RawAssembler);
    assert_eq!(ok("-c a.i").language, Language::PreprocessedC);
    assert_eq!(ok("-c a.ii").language, Language::PreprocessedCxx);
    assert_eq!(ok("-c a.mm").language, Language::ObjCxx);
    assert_eq!(ok("-x c -x none -c a.cpp").language, Language::Cxx);
}

#[test]
fn preprocessor_passthrough_turns_direct_mode_off() {
    assert!(!ok("-c a.c -Wp,-DX").direct_mode_possible);
    assert!(!ok("-c a.c -Xpreprocessor -DX").direct_mode_possible);
    assert_eq!(
        reason("-c a.c -Wp,-MD,a.d"),
        "preprocessor_dependency_option"
    );
    assert_eq!(
        reason("-c a.c -Xpreprocessor -MMD"),
        "preprocessor_dependency_option"
    );
}

#[test]
fn each_reason_is_named() {
    for (line, name) in [
        ("a.c -o a", "linking"),
        ("-E a.c", "preprocess_only"),
        ("-c -E a.c", "preprocess_only"),
        ("-M a.c", "preprocess_only"),
        ("-c -MM a.c", "preprocess_only"),
        ("-S a.c", "assembly_output"),
        ("-c a.c b.c", "multiple_sources"),
        ("-c -O2", "no_source"),
        ("-c a.c -o -", "output_to_stdout"),
        ("-c a.c -MD -MF -", "dependency_to_stdout"),
        ("-c a.f90", "unknown_language"),
        ("-c -x cuda a.cu", "unknown_language"),
        ("-c a.c lib.o", "unknown_language"),
        ("-c a.h", "precompiled_header"),
        ("-c -x c-header a", "precompiled_header"),
        ("-c a.c -save-temps", "save_temps"),
        ("-c a.c -save-temps=obj", "save_temps"),
        ("-c -x c -", "stdin_source"),
        ("-c a.c --coverage", "coverage"),
        ("-c a.c -ftest-coverage", "coverage"),
        ("-c a.c -fprofile-use=x", "profile"),
        ("-c a.c -gsplit-dwarf", "split_dwarf"),
        ("-c a.c -fsyntax-only", "no_object"),
        ("-c a.c -###", "no_object"),
        ("-c a.c -print-search-dirs", "no_object"),
        ("-c a.c -fmodules", "modules"),
        ("-c a.c -fstack-usage", "extra_outputs"),
        ("-c a.c -fdump-tree-all", "extra_outputs"),
        ("-c a.c -arch x86_64 -arch arm64", "multiple_arch"),
        ("-c a.c -o", "missing_argument"),
        ("-c a.c -MF", "missing_argument"),
    ] {
        assert_eq!(reason(line), name, "{line}");
    }
}

#[test]
fn a_single_arch_is_hashed() {
    assert_eq!(
        strings(&ok("-c a.c -arch arm64").hashed),
        ["-arch", "arm64"]
    );
}

#[test]
fn non_utf8_arguments_are_handled() {
    let mut argv = args("-c a.c");
    argv.push(OsString::from_vec(b"-D\xffX".to_vec()));
    assert_eq!(parse(&argv, false).unwrap().hashed.len(), 1);
    let source = OsString::from_vec(b"\xff.c".to_vec());
    let argv = vec![OsString::from("-c"), source.clone()];
    assert_eq!(parse(&argv, false).unwrap().source, source);
}

fn arbitrary_arg() -> impl Strategy<Value = OsString> {
    let flag = proptest::sample::select(FLAGS.iter().map(|s| s.name).collect::<Vec<_>>());
    prop_oneof![
        flag.clone().prop_map(OsString::from),
        (flag, "[a-z./=,-]{0,6}").prop_map(|(f, v)| OsString::from(format!("{f}{v}"))),
        "[a-z./@-]{0,8}(\\.[cshiCS]{1,3})?".prop_map(OsString::from),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(OsString::from_vec),
    ]
}

proptest! {
    #[test]
    fn parsing_arbitrary_arguments_never_panics(
        argv in proptest::collection::vec(arbitrary_arg(), 0..24),
        cxx in any::<bool>(),
    ) {
        let _ = parse(&argv, cxx);
    }

    #[test]
    fn a_cacheable_parse_never_hashes_output_paths(
        extra in proptest::collection::vec(arbitrary_arg(), 0..12),
    ) {
        let mut argv = args("-c src.c -o OUT.o -MD -MF DEP.d");
        argv.extend(extra);
        if let Ok(parsed) = parse(&argv, false) {
            prop_assert!(!parsed.hashed.iter().any(|a| a == "OUT.o"));
            prop_assert!(!parsed.preprocess.iter().any(|a| a == "OUT.o" || a == "DEP.d"));
        }
    }
}
