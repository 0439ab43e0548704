use super::*;
use crate::input::mentions_time_macros;
use crate::manifest::{MANIFEST_VERSION, MAX_CANDIDATES};
use proptest::prelude::*;
use std::time::Duration;

type Manifest = crate::manifest::Manifest<Candidate>;

/// The result key of the newest candidate whose files are unchanged under `cwd`.
fn find_in(manifest: &Manifest, cwd: &Path) -> Option<CacheKey> {
    let mut digests = Digests::default();
    manifest
        .find(|c| {
            c.fits(
                cwd,
                &Rebase::default(),
                &SearchPath::default(),
                || Some(&[]),
                &mut digests,
            )
        })
        .map(crate::manifest::Candidate::result_key)
}

/// A compile run in `cwd` at `started`, its paths as they are.
fn site(cwd: &Path, started: SystemTime) -> Site<'_> {
    static EXACT: std::sync::LazyLock<Rebase> = std::sync::LazyLock::new(Rebase::default);
    static NOWHERE: std::sync::LazyLock<SearchPath> = std::sync::LazyLock::new(SearchPath::default);
    Site {
        cwd,
        rebase: &EXACT,
        started,
        pinned: None,
        search: &NOWHERE,
        source: b"",
        system: &|| Some(&[]),
    }
}

fn key(byte: u8) -> CacheKey {
    CacheKey::from_bytes([byte; 32])
}

fn candidate_of(paths: &[(&str, [u8; 32])], result: u8) -> Candidate {
    Candidate {
        includes: paths
            .iter()
            .map(|(p, d)| Include {
                path: p.as_bytes().to_vec(),
                digest: *d,
            })
            .collect(),
        result_key: [result; 32],
        pinned: None,
        probes: false,
        asks: Vec::new(),
    }
}

#[test]
fn markers_give_the_files_read_once_each_in_order() {
    let output = br#"# 0 "src/a.c"
# 0 "<built-in>"
# 0 "<command-line>"
# 1 "/usr/include/stdc-predef.h" 1 3 4
# 1 "/work/dir//"
# 1 "src/a.c"
# 1 "inc/a\\b \"q\".h" 1
int x;
#pragma once
# 2 "src/a.c" 2
#line 7 "gen.y"
# 1 "<command line>" 1
# 1 "odd\303\251.h" 1
"#;
    let includes = includes_from_preprocessed(output, b"src/a.c");
    let expected: Vec<Vec<u8>> = vec![
        b"/usr/include/stdc-predef.h".to_vec(),
        br#"inc/a\b "q".h"#.to_vec(),
        b"gen.y".to_vec(),
        "odd\u{e9}.h".as_bytes().to_vec(),
    ];
    assert_eq!(includes, expected);
}

#[test]
fn time_macros_are_found_anywhere() {
    assert!(mentions_time_macros(b"const char *t = __TIME__;"));
    assert!(mentions_time_macros(b"__DATE__"));
    assert!(mentions_time_macros(b"x ___TIMESTAMP__ y"));
    assert!(!mentions_time_macros(
        b"__TIME_ __DATE _TIME__ __attribute__"
    ));
}

#[test]
fn a_candidate_matches_only_while_every_file_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.h"), "one").unwrap();
    let later = SystemTime::now() + Duration::from_secs(5);
    let mut manifest = Manifest::default();
    let includes = vec![b"a.h".to_vec()];
    manifest.add(candidate(&site(dir.path(), later), &includes, &key(9)).unwrap());

    let decoded = Manifest::decode(&manifest.encode().unwrap());
    assert_eq!(decoded, manifest);
    assert_eq!(find_in(&decoded, dir.path()), Some(key(9)));

    std::fs::write(dir.path().join("a.h"), "two").unwrap();
    assert_eq!(find_in(&decoded, dir.path()), None);
    std::fs::remove_file(dir.path().join("a.h")).unwrap();
    assert_eq!(find_in(&decoded, dir.path()), None);
}

#[test]
fn a_candidate_whose_headers_ask_fits_while_every_answer_is_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for sub in ["src", "early", "late", "inc", "sys"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    std::fs::write(
        d.join("inc/ask.h"),
        "#if __has_include(<x.h>) || __has_include(\"q.h\")\n#endif\n#define HAS __has_include\n",
    )
    .unwrap();
    let args: Vec<std::ffi::OsString> = ["-Iearly", "-Ilate", "-Iinc"].map(Into::into).to_vec();
    let search = SearchPath::new(
        &d.join("src/a.c"),
        d,
        &[],
        crate::language::Language::C,
        &args,
    );
    let system = [d.join("sys")];
    let site = Site {
        search: &search,
        source: b"#include \"ask.h\"\n#if HAS(<y.h>)\n#endif\n",
        system: &|| Some(&system[..]),
        ..site(d, SystemTime::now() + Duration::from_secs(5))
    };
    let made = candidate(&site, &[b"inc/ask.h".to_vec()], &key(3)).unwrap();
    assert!(!made.needs_preprocessor());
    assert_eq!(made.asks.len(), 3, "{:?}", made.asks);
    let decoded = Manifest::decode(&{
        let mut manifest = Manifest::default();
        manifest.add(made);
        manifest.encode().unwrap()
    });
    let fits = |digests: &mut Digests| {
        decoded
            .find(|c| {
                c.fits(
                    d,
                    &Rebase::default(),
                    &search,
                    || Some(&system[..]),
                    digests,
                )
            })
            .is_some()
    };
    assert!(fits(&mut Digests::default()));
    assert!(
        !decoded.candidates()[0].fits(
            d,
            &Rebase::default(),
            &search,
            || None,
            &mut Digests::default()
        ),
        "unknown compiler directories fit nothing"
    );
    for file in [
        "early/x.h",
        "late/x.h",
        "sys/x.h",
        "inc/q.h",
        "src/q.h",
        "late/y.h",
    ] {
        std::fs::write(d.join(file), "").unwrap();
        assert!(!fits(&mut Digests::default()), "{file} appeared");
        std::fs::remove_file(d.join(file)).unwrap();
        assert!(fits(&mut Digests::default()), "{file} went again");
    }
    // A directory of that name is no header.
    std::fs::create_dir(d.join("early/x.h")).unwrap();
    assert!(fits(&mut Digests::default()));
}

#[test]
fn unreadable_questions_or_unknown_directories_need_the_preprocessor() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.h"), "#if __has_include(NAME)\n#endif\n").unwrap();
    std::fs::write(dir.path().join("b.h"), "#if __has_include(<b>)\n#endif\n").unwrap();
    let later = SystemTime::now() + Duration::from_secs(5);
    let made = candidate(&site(dir.path(), later), &[b"a.h".to_vec()], &key(1)).unwrap();
    assert!(made.needs_preprocessor());
    let unknown = Site {
        system: &|| None,
        ..site(dir.path(), later)
    };
    let made = candidate(&unknown, &[b"b.h".to_vec()], &key(1)).unwrap();
    assert!(made.needs_preprocessor());
    let known = candidate(&site(dir.path(), later), &[b"b.h".to_vec()], &key(1)).unwrap();
    assert!(!known.needs_preprocessor());
}

/// The candidate as it was before questions were recorded.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct OldCandidate {
    includes: Vec<Include>,
    #[serde(with = "serde_bytes")]
    result_key: [u8; 32],
    #[serde(default)]
    pinned: Option<serde_bytes::ByteBuf>,
    #[serde(default)]
    probes: bool,
}

#[test]
fn old_candidates_still_decode_and_old_readers_never_see_questions_as_none() {
    let old = OldCandidate {
        includes: vec![Include {
            path: b"a.h".to_vec(),
            digest: [1; 32],
        }],
        result_key: [2; 32],
        pinned: None,
        probes: false,
    };
    let bytes = rmp_serde::to_vec(&(MANIFEST_VERSION, vec![&old])).unwrap();
    let decoded = Manifest::decode(&bytes);
    assert_eq!(decoded.candidates(), [candidate_of(&[("a.h", [1; 32])], 2)]);
    // A reader without the field must not take a candidate with questions for one
    // without: it fails to decode it (an empty manifest, a miss) rather than fit it.
    let mut new = candidate_of(&[("a.h", [1; 32])], 2);
    new.asks.push(Ask {
        asker: Some(0),
        quoted: false,
        name: b"x.h".to_vec(),
        found: vec![false],
    });
    let bytes = rmp_serde::to_vec(&(MANIFEST_VERSION, vec![&new])).unwrap();
    assert!(rmp_serde::from_slice::<(u32, Vec<OldCandidate>)>(&bytes).is_err());
}

#[test]
fn unsafe_inputs_make_no_candidate() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.h"), "__TIME__").unwrap();
    std::fs::write(dir.path().join("ok.h"), "fine").unwrap();
    let later = SystemTime::now() + Duration::from_secs(5);
    let err = candidate(&site(dir.path(), later), &[b"t.h".to_vec()], &key(1)).unwrap_err();
    assert!(matches!(err, Unrecordable::TimeMacro(_)), "{err}");
    let earlier = SystemTime::now() - Duration::from_secs(5);
    let err = candidate(&site(dir.path(), earlier), &[b"ok.h".to_vec()], &key(1)).unwrap_err();
    assert!(
        matches!(err, Unrecordable::ModifiedDuringCompile(_)),
        "{err}"
    );
    let err = candidate(&site(dir.path(), later), &[b"gone.h".to_vec()], &key(1)).unwrap_err();
    assert!(matches!(err, Unrecordable::Unreadable { .. }), "{err}");
}

#[test]
fn adding_puts_newest_first_dedupes_and_caps() {
    let mut manifest = Manifest::default();
    for i in 0..40u8 {
        manifest.add(candidate_of(&[("a.h", [i % 20; 32])], i % 20));
    }
    assert_eq!(manifest.candidates().len(), MAX_CANDIDATES);
    assert_eq!(manifest.candidates()[0].result_key, [39 % 20; 32]);
    let unique: std::collections::HashSet<_> =
        manifest.candidates().iter().map(|c| c.result_key).collect();
    assert_eq!(unique.len(), MAX_CANDIDATES);
}

#[test]
fn another_version_reads_as_empty() {
    let mut manifest = Manifest::default();
    manifest.add(candidate_of(&[("a.h", [1; 32])], 2));
    let other = Manifest::of_version(MANIFEST_VERSION + 1, manifest.candidates().to_vec());
    let bytes = rmp_serde::to_vec(&other).unwrap();
    assert_eq!(Manifest::decode(&bytes), Manifest::default());
}

fn arbitrary_ask() -> impl Strategy<Value = Ask> {
    (
        proptest::option::of(any::<u32>()),
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..20),
        proptest::collection::vec(any::<bool>(), 0..12),
    )
        .prop_map(|(asker, quoted, name, found)| Ask {
            asker,
            quoted,
            name,
            found,
        })
}

fn arbitrary_candidate() -> impl Strategy<Value = Candidate> {
    (
        proptest::collection::vec(
            (
                proptest::collection::vec(any::<u8>(), 0..40),
                any::<[u8; 32]>(),
            ),
            0..8,
        ),
        any::<[u8; 32]>(),
        proptest::collection::vec(arbitrary_ask(), 0..4),
    )
        .prop_map(|(includes, result_key, asks)| Candidate {
            includes: includes
                .into_iter()
                .map(|(path, digest)| Include { path, digest })
                .collect(),
            result_key,
            pinned: None,
            probes: false,
            asks,
        })
}

proptest! {
    #[test]
    fn manifests_round_trip(candidates in proptest::collection::vec(arbitrary_candidate(), 0..20)) {
        let mut manifest = Manifest::default();
        for c in candidates.into_iter().rev() {
            manifest.add(c);
        }
        let decoded = Manifest::decode(&manifest.encode().unwrap());
        prop_assert_eq!(decoded.candidates(), manifest.candidates());
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Manifest::decode(&bytes);
    }

    #[test]
    fn marker_parsing_never_panics(text in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut output = b"# 1 \"".to_vec();
        output.extend_from_slice(&text);
        let _ = includes_from_preprocessed(&output, b"");
    }
}

#[test]
fn a_wrapped_gcc_dependency_file_lists_every_header_once_without_the_source() {
    let text = b"out/a.o: src/a.c /usr/include/stdc-predef.h \\\n src/a.h \\\r\n /usr/include/my\\ dir/b.h src/a.h\n\nsrc/a.h:\n";
    assert_eq!(
        includes_from_depfile(text, b"src/a.c"),
        vec![
            b"/usr/include/stdc-predef.h".to_vec(),
            b"src/a.h".to_vec(),
            b"/usr/include/my dir/b.h".to_vec(),
        ]
    );
}

proptest! {
    #[test]
    fn dependency_file_parsing_never_panics_and_never_lists_the_source(
        text in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut file = b"x.o: main.c ".to_vec();
        file.extend_from_slice(&text);
        prop_assert!(!includes_from_depfile(&file, b"main.c").contains(&b"main.c".to_vec()));
    }
}
