use super::*;
use proptest::prelude::*;
use std::path::PathBuf;

fn rebase(cwd: &str) -> Rebase {
    Rebase::new(&[PathBuf::from(cwd), PathBuf::from("/w/proj")])
}

fn shown(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .replace('\u{1}', "<")
        .replace('\u{2}', ">")
}

#[test]
fn bases_become_placeholders_naming_which_base() {
    let r = rebase("/w/proj/build");
    assert_eq!(
        shown(&r.normalise(b"/w/proj/src/a.c:1: /w/proj/build/x.o /w/projx /usr/include")),
        "<1>/src/a.c:1: <0>/x.o /w/projx /usr/include"
    );
    assert_eq!(
        shown(&r.normalise_arg(b"-I/w/proj/include")),
        "-I<1>/include"
    );
    assert_eq!(
        shown(&r.normalise_arg(b"-ffile-prefix-map=/w/proj=.")),
        "-ffile-prefix-map=<1>=."
    );
    assert_eq!(shown(&r.normalise_arg(b"-DX=\"/w/proj\"")), "-DX=\"<1>\"");
}

#[test]
fn a_directory_keeps_its_place_within_the_checkout() {
    let r = rebase("/w/proj/build");
    assert_eq!(shown(&r.normalise_within(b"/w/proj/build")), "<1>/build");
    assert_eq!(shown(&r.normalise_within(b"/w/other")), "/w/other");
}

#[test]
fn a_second_checkout_gets_its_own_paths_back() {
    let a = Rebase::new(&[PathBuf::from("/a/proj/build"), PathBuf::from("/a/proj")]);
    // Out of tree, and deeper: the same placeholders.
    let b = Rebase::new(&[PathBuf::from("/b/out"), PathBuf::from("/b/other/clone")]);
    let d = b"x.o: /a/proj/src/x.c /a/proj/include/h.h /usr/include/stdio.h\n";
    let normal = a.normalise(d);
    assert_eq!(normal, b.normalise(&b.resolve(&normal)));
    assert_eq!(
        b.resolve(&normal),
        b"x.o: /b/other/clone/src/x.c /b/other/clone/include/h.h /usr/include/stdio.h\n".to_vec()
    );
}

#[test]
fn only_line_markers_are_rewritten() {
    let r = rebase("/w/proj");
    let text = b"# 1 \"/w/proj/a.c\"\nchar *f = \"/w/proj/a.c\";\n# 3 \"/w/proj/in\\\\c.h\" 2\n";
    assert_eq!(
        shown(&r.normalise_markers(text)),
        "# 1 \"<0>/a.c\"\nchar *f = \"/w/proj/a.c\";\n# 3 \"/w/proj/in\\\\c.h\" 2\n"
    );
}

#[test]
fn odd_or_missing_bases_change_nothing() {
    let r = Rebase::new(&[PathBuf::from("/w/my proj")]);
    assert!(!r.active());
    assert_eq!(r.normalise(b"/w/my proj/a"), b"/w/my proj/a".to_vec());
    let r = Rebase::new(&[PathBuf::from("/w/p/../q")]);
    assert!(!r.active());
    assert!(!Rebase::keep(PathsKept::DebugInfo).active());
}

proptest! {
    #[test]
    fn resolve_inverts_normalise(text in "[a-z/ .\"{}:]{0,80}") {
        let r = rebase("/w/proj/build");
        prop_assert_eq!(r.resolve(&r.normalise(text.as_bytes())), text.as_bytes().to_vec());
    }
}
