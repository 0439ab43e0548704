//! The compiler crate's layering, checked from its source. Every module under `src/` is read
//! (not its tests: a `#[cfg(test)]` section and `*_tests.rs` files are skipped), its `use`
//! lines and inline `crate::`/`super::` paths are resolved to the modules they name (through
//! `pub use` re-exports, which are aliases, not imports), and the graph must keep three rules:
//!
//! - `c/` and `rust/` never import each other;
//! - the bottom layer (everything but `c/`, `rust/` and the top) imports neither a family
//!   nor the top, and a family never imports the top (`classify`, `pipeline`, `explain`);
//! - no module imports in a circle.
//!
//! A failure names the offending edge (with its file) or the circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Modules that know every family: the dispatcher, the pipeline, `hoard --explain`.
const TOP: &[&str] = &["classify", "pipeline", "explain"];
/// The compiler families, beside each other.
const FAMILIES: &[&str] = &["c", "rust"];

/// A module path, e.g. `["c", "key"]`; the crate root is `[]`.
type Module = Vec<String>;

/// One source file's module and the code that counts (tests left out).
struct Source {
    module: Module,
    file: String,
    code: String,
}

fn module_of(relative: &Path) -> Module {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_owned());
    }
    parts
}

/// The code of a file without full-line comments and without its tests.
fn code_of(text: &str) -> String {
    let mut code = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        code.push_str(line);
        code.push('\n');
    }
    code
}

fn read_sources(dir: &Path, root: &Path, out: &mut Vec<Source>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("source directory")
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            read_sources(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs")
            && !path.to_string_lossy().ends_with("_tests.rs")
        {
            let relative = path.strip_prefix(root).expect("under src");
            out.push(Source {
                module: module_of(relative),
                file: relative.to_string_lossy().into_owned(),
                code: code_of(&std::fs::read_to_string(&path).expect("readable source")),
            });
        }
    }
}

/// Expands a use tree (`crate::{a, b::{c, d as e}}`) into `(path, name it binds)` pairs.
fn expand_tree(tree: &str) -> Vec<(Vec<String>, String)> {
    // `x as y` becomes `x@y`, then no whitespace is left.
    let words: Vec<&str> = tree.split_whitespace().collect();
    let tree = words.join(" ").replace(" as ", "@").replace(' ', "");
    let mut out = Vec::new();
    expand_into(&tree, &mut Vec::new(), &mut out);
    out
}

fn expand_into(tree: &str, prefix: &mut Vec<String>, out: &mut Vec<(Vec<String>, String)>) {
    let Some(open) = tree.find('{') else {
        let (path, alias) = match tree.split_once('@') {
            Some((path, alias)) => (path, Some(alias)),
            None => (tree, None),
        };
        let mut full = prefix.clone();
        full.extend(
            path.split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        );
        let name = alias.map_or_else(|| full.last().cloned().unwrap_or_default(), str::to_owned);
        if !full.is_empty() {
            out.push((full, name));
        }
        return;
    };
    let head = tree[..open].trim_end_matches("::");
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let added: Vec<String> = head
        .split("::")
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let depth = prefix.len();
    prefix.extend(added);
    for part in split_top_level(inner) {
        if part == "self" {
            out.push((prefix.clone(), prefix.last().cloned().unwrap_or_default()));
        } else if !part.is_empty() {
            expand_into(part, prefix, out);
        }
    }
    prefix.truncate(depth);
}

/// Splits at commas outside braces.
fn split_top_level(text: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// What one module's code names: `use` statements (imports and re-exports) and inline paths.
struct Named {
    imports: Vec<Vec<String>>,
    reexports: Vec<(Vec<String>, String)>,
}

fn named_in(code: &str) -> Named {
    let mut named = Named {
        imports: Vec::new(),
        reexports: Vec::new(),
    };
    let mut rest = code;
    let mut outside_use = String::new();
    // `use` statements, which may span lines, up to their `;`.
    while let Some(at) = find_use(rest) {
        outside_use.push_str(&rest[..at.start]);
        let statement = &rest[at.body..];
        let end = statement.find(';').unwrap_or(statement.len());
        for (path, name) in expand_tree(&statement[..end]) {
            if at.public {
                named.reexports.push((path, name));
            } else {
                named.imports.push(path);
            }
        }
        rest = &statement[end..];
    }
    outside_use.push_str(rest);
    // Inline paths: `crate::a::b(...)`, `super::x::Y`.
    for anchor in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(i) = outside_use[from..].find(anchor) {
            let start = from + i;
            let before = outside_use[..start].chars().next_back();
            from = start + anchor.len();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let path: String = outside_use[start..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            named.imports.push(
                path.split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            );
        }
    }
    named
}

struct UseAt {
    start: usize,
    body: usize,
    public: bool,
}

/// The next `use` statement: where it starts, where its tree starts, whether it re-exports.
fn find_use(code: &str) -> Option<UseAt> {
    let mut from = 0;
    while let Some(i) = code[from..].find("use ") {
        let at = from + i;
        from = at + 4;
        let line_start = code[..at].rfind('\n').map_or(0, |n| n + 1);
        let lead = code[line_start..at].trim();
        let public = lead.starts_with("pub");
        if lead.is_empty() || (public && lead.ends_with(')')) || lead == "pub" {
            return Some(UseAt {
                start: line_start,
                body: at + 4,
                public,
            });
        }
    }
    None
}

/// The crate's modules, the re-exports each declares, and each module's import edges.
struct Graph {
    modules: BTreeSet<Module>,
    reexports: BTreeMap<Module, Vec<(Vec<String>, String)>>,
    edges: BTreeMap<Module, BTreeSet<Module>>,
    files: BTreeMap<Module, String>,
}

impl Graph {
    fn build(sources: &[Source]) -> Self {
        let mut graph = Self {
            modules: sources.iter().map(|s| s.module.clone()).collect(),
            reexports: BTreeMap::new(),
            edges: BTreeMap::new(),
            files: sources
                .iter()
                .map(|s| (s.module.clone(), s.file.clone()))
                .collect(),
        };
        let named: Vec<(Module, Named)> = sources
            .iter()
            .map(|s| (s.module.clone(), named_in(&s.code)))
            .collect();
        for (module, n) in &named {
            graph.reexports.insert(module.clone(), n.reexports.clone());
        }
        for (module, n) in &named {
            let targets: BTreeSet<Module> = n
                .imports
                .iter()
                .filter_map(|path| graph.resolve(module, path, 0))
                .filter(|target| target != module && !target.is_empty())
                .collect();
            graph.edges.insert(module.clone(), targets);
        }
        graph
    }

    /// The module a path used in `from` names, if it is one of this crate's.
    fn resolve(&self, from: &Module, path: &[String], depth: usize) -> Option<Module> {
        let (mut base, mut rest): (Module, &[String]) = match path.first().map(String::as_str) {
            Some("crate") => (Vec::new(), &path[1..]),
            Some("super" | "self") => {
                let mut base = from.clone();
                let mut rest = path;
                while let Some(first) = rest.first() {
                    match first.as_str() {
                        "super" => {
                            base.pop();
                        }
                        "self" => {}
                        _ => break,
                    }
                    rest = &rest[1..];
                }
                (base, rest)
            }
            // A child module named without `self::`, as re-exports in `mod.rs` do.
            Some(first)
                if self
                    .modules
                    .contains(&[from.clone(), vec![first.to_owned()]].concat()) =>
            {
                (from.clone(), path)
            }
            _ => return None,
        };
        // Walk down while the next segment is a module.
        while let Some(next) = rest.first() {
            let mut deeper = base.clone();
            deeper.push(next.clone());
            if !self.modules.contains(&deeper) {
                break;
            }
            base = deeper;
            rest = &rest[1..];
        }
        // An item a module re-exports is the module it comes from.
        if let (Some(item), true) = (rest.first(), depth < 8)
            && let Some((target, _)) = self
                .reexports
                .get(&base)
                .and_then(|r| r.iter().find(|(_, name)| name == item))
        {
            return self.resolve(&base, target, depth + 1);
        }
        Some(base)
    }

    /// Every rule broken, each as one line naming the edge or the circle.
    fn violations(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (from, targets) in &self.edges {
            for to in targets {
                if let Some(rule) = broken_rule(from, to) {
                    out.push(format!(
                        "{} -> {} ({}): {rule}",
                        show(from),
                        show(to),
                        self.files[from]
                    ));
                }
            }
        }
        if let Some(circle) = self.circle() {
            let names: Vec<String> = circle.iter().map(show).collect();
            out.push(format!("module circle: {}", names.join(" -> ")));
        }
        out
    }

    /// A circle of imports, if any (depth-first search).
    fn circle(&self) -> Option<Vec<Module>> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            Open,
            Done,
        }
        fn visit(
            graph: &Graph,
            node: &Module,
            marks: &mut BTreeMap<Module, Mark>,
            stack: &mut Vec<Module>,
        ) -> Option<Vec<Module>> {
            marks.insert(node.clone(), Mark::Open);
            stack.push(node.clone());
            for next in graph.edges.get(node).into_iter().flatten() {
                match marks.get(next) {
                    Some(Mark::Open) => {
                        let at = stack.iter().position(|m| m == next).unwrap_or(0);
                        let mut circle = stack[at..].to_vec();
                        circle.push(next.clone());
                        return Some(circle);
                    }
                    Some(Mark::Done) => {}
                    None => {
                        if let Some(circle) = visit(graph, next, marks, stack) {
                            return Some(circle);
                        }
                    }
                }
            }
            stack.pop();
            marks.insert(node.clone(), Mark::Done);
            None
        }
        let mut marks = BTreeMap::new();
        for node in self.edges.keys() {
            if !marks.contains_key(node)
                && let Some(circle) = visit(self, node, &mut marks, &mut Vec::new())
            {
                return Some(circle);
            }
        }
        None
    }
}

fn show(module: &Module) -> String {
    if module.is_empty() {
        "crate".to_owned()
    } else {
        module.join("::")
    }
}

/// The layer a module is in: 0 bottom, 1 a family (with its name), 2 top.
fn layer(module: &Module) -> (u8, Option<&str>) {
    match module.first().map(String::as_str) {
        Some(first) if TOP.contains(&first) => (2, None),
        Some(first) if FAMILIES.contains(&first) => {
            (1, FAMILIES.iter().copied().find(|f| *f == first))
        }
        _ => (0, None),
    }
}

fn broken_rule(from: &Module, to: &Module) -> Option<&'static str> {
    match (layer(from), layer(to)) {
        ((1, Some(a)), (1, Some(b))) if a != b => Some("c/ and rust/ never import each other"),
        ((0, _), (1, _)) => Some("the bottom layer never imports a compiler family"),
        ((0 | 1, _), (2, _)) => Some("only the top imports the top (classify, pipeline, explain)"),
        _ => None,
    }
}

fn check(sources: &[Source]) -> Vec<String> {
    Graph::build(sources).violations()
}

#[test]
fn the_compiler_crate_keeps_its_layers_and_has_no_module_circles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut sources = Vec::new();
    read_sources(&root, &root, &mut sources);
    let graph = Graph::build(&sources);
    // The parser must see the crate as it is, or the rules would pass vacuously.
    let edge = |a: &[&str], b: &[&str]| {
        let (a, b): (Module, Module) = (
            a.iter().map(|s| (*s).to_owned()).collect(),
            b.iter().map(|s| (*s).to_owned()).collect(),
        );
        graph.edges.get(&a).is_some_and(|t| t.contains(&b))
    };
    assert!(sources.len() > 30, "only {} modules read", sources.len());
    assert!(
        edge(&["pipeline"], &["session"]),
        "pipeline -> session unseen"
    );
    assert!(
        edge(&["pipeline"], &["c", "family"]),
        "re-export not followed"
    );
    assert!(edge(&["c", "family"], &["c", "key"]), "super:: path unseen");
    assert!(edge(&["rust", "key"], &["recipe"]), "grouped use unseen");
    let violations = graph.violations();
    assert!(
        violations.is_empty(),
        "layering broken:\n{}",
        violations.join("\n")
    );
}

fn source(file: &str, text: &str) -> Source {
    Source {
        module: module_of(Path::new(file)),
        file: file.to_owned(),
        code: code_of(text),
    }
}

#[test]
fn a_family_importing_the_other_is_named() {
    let violations = check(&[
        source("lib.rs", "mod c;\nmod rust;\nmod text;\n"),
        source("c/mod.rs", "mod key;\npub(crate) use key::common;\n"),
        source(
            "c/key.rs",
            "use crate::{text::contains, rust::{paths::Roots}};\n",
        ),
        source("rust/mod.rs", "mod paths;\n"),
        source("rust/paths.rs", "pub struct Roots;\n"),
        source("text.rs", "pub fn contains() {}\n"),
    ]);
    assert_eq!(
        violations,
        vec!["c::key -> rust::paths (c/key.rs): c/ and rust/ never import each other"]
    );
}

#[test]
fn the_bottom_importing_upwards_and_circles_are_named() {
    let violations = check(&[
        source(
            "lib.rs",
            "mod c;\nmod digest;\nmod pipeline;\nmod record;\n",
        ),
        source("c/mod.rs", "mod key;\npub(crate) use key::Key;\n"),
        source("c/key.rs", "pub struct Key;\n"),
        source("digest.rs", "fn f() { let _ = crate::c::Key; }\n"),
        source("pipeline.rs", "pub fn run() {}\n"),
        source(
            "record.rs",
            "use super::pipeline;\n// use crate::c;\n#[cfg(test)]\nuse crate::c;\n",
        ),
    ]);
    assert_eq!(
        violations,
        vec![
            "digest -> c::key (digest.rs): the bottom layer never imports a compiler family",
            "record -> pipeline (record.rs): only the top imports the top (classify, pipeline, explain)",
        ]
    );
    let circle = check(&[
        source("lib.rs", "mod a;\nmod b;\n"),
        source("a.rs", "use crate::b::B;\npub struct A;\n"),
        source("b.rs", "pub(crate) struct B(crate::a::A);\n"),
    ]);
    assert_eq!(circle, vec!["module circle: a -> b -> a"]);
}
