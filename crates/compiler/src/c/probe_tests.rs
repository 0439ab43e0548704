use proptest::prelude::*;

use super::*;

fn angle(name: &str) -> Question {
    Question {
        name: name.as_bytes().to_vec(),
        quoted: false,
    }
}

fn quoted(name: &str) -> Question {
    Question {
        name: name.as_bytes().to_vec(),
        quoted: true,
    }
}

fn asked(files: &[&str]) -> Option<Vec<(usize, Question)>> {
    let files: Vec<&[u8]> = files.iter().map(|f| f.as_bytes()).collect();
    questions(&files)
}

#[test]
fn calls_with_literal_names_are_questions() {
    let file = "#if __has_include(<a.h>)\n#elif __has_include ( \"b/c.h\" )\n#endif\n\
                #if __has_include_next(<d.h>) && __has_include__(<e.h>)\n#endif\n";
    assert_eq!(
        asked(&[file]),
        Some(vec![
            (0, angle("a.h")),
            (0, quoted("b/c.h")),
            (0, angle("d.h")),
            (0, angle("e.h")),
        ])
    );
}

#[test]
fn uses_that_ask_nothing_are_dropped() {
    let file = "#if defined(__has_include) && defined __has_include_next\n\
                #ifdef __has_include\n#ifndef __has_include_next\n#endif\n#endif\n#endif\n\
                #if defined ( __has_include )\n#endif\n\
                // __has_include(FOO) in a comment\n/* and __has_include here\n too */\n\
                const char *s = \"__has_include(X)\"; char c = '_';\n";
    assert_eq!(asked(&[file]), Some(vec![]));
    assert_eq!(asked(&["int x;\n"]), Some(vec![]));
}

#[test]
fn a_call_across_a_backslash_newline_is_read() {
    let file = "#if defined(X) \\\n  || __has_include(<y.h>) \\ \n  || 0\n#endif\n";
    assert_eq!(asked(&[file]), Some(vec![(0, angle("y.h"))]));
}

#[test]
fn aliases_ask_from_any_file_and_chain() {
    let header = "#ifndef HAS\n#  ifdef __has_include\n#    define HAS __has_include\n\
                  #  else\n#    define HAS(x) 0\n#  endif\n#endif\n";
    let user = "#if defined(HAS) && HAS(<neon.h>)\n#endif\n";
    assert_eq!(asked(&[header, user]), Some(vec![(1, angle("neon.h"))]));
    let chained = "#define ASK HAS\n";
    let caller = "#if ASK(\"q.h\")\n#endif\n";
    assert_eq!(
        asked(&[caller, chained, header]),
        Some(vec![(0, quoted("q.h"))])
    );
}

#[test]
fn the_zstd_and_libstdcxx_forms_are_read() {
    let zstd = "#if defined(__CET__) \\\n    && defined(__has_include)\n# if __has_include(<cet.h>)\n\
                #  include <cet.h>\n# endif\n#endif\n";
    assert_eq!(asked(&[zstd]), Some(vec![(0, angle("cet.h"))]));
    let libstdcxx = "/* before __has_include argument (GCC PR 80005).  */\n\
                     #  define _GLIBCXX_USE_TBB_PAR_BACKEND __has_include(<tbb/tbb.h>)\n";
    assert_eq!(asked(&[libstdcxx]), Some(vec![(0, angle("tbb/tbb.h"))]));
}

#[test]
fn unreadable_forms_fall_back() {
    for file in [
        "#define NAME <x.h>\n#if __has_include(NAME)\n#endif\n",
        "#define HAS(x) __has_include(x)\n",
        "#define Q __has_include(\"x.h\")\n",
        "#if __has_include\n#endif\n",
        "#if __has_include(< x.h>)\n#endif\n",
        "#define H __has_include ## _next\n",
        "#error don't __has_include(<x.h>)\n",
        "/* unterminated __has_include\n",
        "#if __has_include(<x.h>\n)\n#endif\n",
        "#if __has_embed(\"x.bin\")\n#endif\n",
        "#if __has_include(<a??/\nb.h>)\n",
        "int __has_include;\n",
    ] {
        assert_eq!(asked(&[file]), None, "{file}");
    }
    // A wrapper of an alias cannot be read either.
    assert_eq!(
        asked(&["#define HAS __has_include\n", "#define W(x) HAS(x)\n"]),
        None
    );
}

#[test]
fn lexing_keeps_literals_numbers_and_header_names_whole() {
    let file = "#include <it's.h>\nint n = 1'000'000;\nconst char *r = R\"x(__has_include(Z))x\";\n\
                char q = '\\'';\n%:if __has_include(<p.h>)\n%:endif\n";
    assert_eq!(asked(&[file]), Some(vec![(0, angle("p.h"))]));
    // An apostrophe in an error message, on a line that asks nothing.
    let file = "#error can't go on\n#if __has_include(<p.h>)\n#endif\n";
    assert_eq!(asked(&[file]), Some(vec![(0, angle("p.h"))]));
}

#[test]
fn a_define_comment_across_lines_keeps_the_alias() {
    let file = "/* a\n */ #define HAS __has_include\n";
    assert_eq!(
        asked(&[file, "#if HAS(<k.h>)\n#endif\n"]),
        Some(vec![(1, angle("k.h"))])
    );
}

proptest! {
    #[test]
    fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400), cut in 0usize..400) {
        let mut with_operator = bytes.clone();
        let at = cut.min(with_operator.len());
        with_operator.splice(at..at, b"#define A __has_include\nA(<x.h>) __has_include(".iter().copied());
        let _ = questions(&[&bytes, &with_operator]);
    }

    #[test]
    fn never_panics_on_c_like_text(text in "[#a-z_(<>\"'/*\\\\\n .0-9%:R]{0,300}") {
        let with_operator = format!("__has_include {text} __has_include_next");
        let _ = questions(&[with_operator.as_bytes(), text.as_bytes()]);
    }
}
