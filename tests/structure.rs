//! Issue 11, structure points 7 and 9, checked on the source itself: the crate's module
//! dependency graph has no cycle among its top-level modules (no import circle: the
//! engine at the bottom, the facade on top), and no source file is over 700 lines.
//!
//! The graph is read from code, comments and doc comments excluded (and string and char
//! literals): every `crate::…` path (in `use` trees, grouped ones included, and in
//! expressions) and every `super::…` path is an edge from the module of the file it is in
//! to the module it names. Nodes are top-level modules (`src/core.rs` is `core`), and inside
//! `src/store/` its submodules (`store::memory`, `store::mongo` for all of
//! `src/store/mongo/`); a name re-exported by a parent counts as the parent
//! (`super::SlateDoc` from `store/intercept.rs` is `store`), and a name re-exported by
//! `lib.rs` counts as the module `lib.rs` takes it from. Module declarations (`mod x;`) are
//! not edges. The parser has its own tests below, on synthetic file sets, including the real
//! source with a `use crate::engine::Engine;` added to `core.rs`, which must fail.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The longest a source file may be.
const MAX_LINES: usize = 700;

/// Source files by path relative to `src/` (`/`-separated), with their text.
type Files = BTreeMap<String, String>;

/// One edge and where it comes from, for the report.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Edge {
    from: String,
    to: String,
    file: String,
    line: usize,
}

fn read_src() -> Files {
    fn walk(dir: &Path, root: &Path, files: &mut Files) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, files);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(root).unwrap();
                let rel: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                files.insert(rel.join("/"), std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Files::new();
    walk(&root, &root, &mut files);
    assert!(
        files.contains_key("lib.rs") && files.len() > 10,
        "read src/"
    );
    files
}

// ---------------------------------------------------------------- lexing

/// `source` with comments (doc comments included) and the contents of string and char
/// literals removed; line breaks are kept, so line numbers stay right.
fn strip(source: &str) -> String {
    let c: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let mut i = 0;
    while i < c.len() {
        let next = c.get(i + 1).copied();
        if c[i] == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if c[i] == '/' && next == Some('*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if c[i] == '\n' {
                        out.push('\n');
                    }
                    i += 1;
                }
            }
        } else if c[i] == 'r'
            && (i == 0 || !ident(c[i - 1]) || (c[i - 1] == 'b' && (i < 2 || !ident(c[i - 2]))))
            && matches!(next, Some('"' | '#'))
            && raw_string_end(&c, i + 1).is_some()
        {
            let end = raw_string_end(&c, i + 1).unwrap();
            out.push_str("\"\"");
            out.extend(c[i..end].iter().filter(|ch| **ch == '\n'));
            i = end;
        } else if c[i] == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    i += 1;
                }
                if c.get(i) == Some(&'\n') {
                    out.push('\n');
                }
                i += 1;
            }
            out.push_str("\"\"");
            i += 1;
        } else if c[i] == '\'' && next == Some('\\') {
            // An escaped char literal: '\n', '\'', '\u{1F600}' (the escaped character is
            // skipped first: it may be a quote).
            i += 3;
            while i < c.len() && c[i] != '\'' {
                i += 1;
            }
            out.push_str("' '");
            i += 1;
        } else if c[i] == '\'' && c.get(i + 2) == Some(&'\'') {
            // A one-character literal ('"', 'a'); otherwise a lifetime, kept as it is.
            out.push_str("' '");
            i += 3;
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// If a raw string starts at `c[i]` (`#`s then `"`), the index just past its end.
fn raw_string_end(c: &[char], mut i: usize) -> Option<usize> {
    let mut hashes = 0;
    while c.get(i) == Some(&'#') {
        hashes += 1;
        i += 1;
    }
    if c.get(i) != Some(&'"') {
        return None;
    }
    i += 1;
    while i < c.len() {
        if c[i] == '"' && (1..=hashes).all(|k| c.get(i + k) == Some(&'#')) {
            return Some(i + 1 + hashes);
        }
        i += 1;
    }
    None
}

/// A token of stripped code and its line (1-based): identifiers, `::`, and single
/// punctuation characters.
fn tokens(code: &str) -> Vec<(String, usize)> {
    let c: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < c.len() {
        if c[i] == '\n' {
            line += 1;
            i += 1;
        } else if c[i].is_whitespace() {
            i += 1;
        } else if c[i].is_alphanumeric() || c[i] == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push((c[start..i].iter().collect(), line));
        } else if c[i] == ':' && c.get(i + 1) == Some(&':') {
            out.push(("::".into(), line));
            i += 2;
        } else {
            out.push((c[i].to_string(), line));
            i += 1;
        }
    }
    out
}

fn is_ident(t: &str) -> bool {
    t.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// The paths of a use tree (or a plain path) starting at `t[i]`, each a list of segments;
/// and the index after it. `{a, b::{c, d}}`, `a::*`, `a::b as c` and `self` are handled.
fn use_tree(t: &[(String, usize)], mut i: usize) -> (Vec<Vec<String>>, usize) {
    let tok = |i: usize| t.get(i).map(|(s, _)| s.as_str()).unwrap_or("");
    if tok(i) == "{" {
        let mut all = Vec::new();
        i += 1;
        while i < t.len() && tok(i) != "}" {
            if tok(i) == "," {
                i += 1;
                continue;
            }
            let (paths, next) = use_tree(t, i);
            all.extend(paths);
            i = if next == i { i + 1 } else { next };
        }
        return (all, i + 1);
    }
    if tok(i) == "*" {
        return (vec![vec!["*".into()]], i + 1);
    }
    if !is_ident(tok(i)) {
        return (Vec::new(), i);
    }
    let head = tok(i).to_owned();
    i += 1;
    if tok(i) == "::" && (tok(i + 1) == "{" || tok(i + 1) == "*" || is_ident(tok(i + 1))) {
        let (rest, next) = use_tree(t, i + 1);
        let paths = rest
            .into_iter()
            .map(|mut p| {
                p.insert(0, head.clone());
                p
            })
            .collect();
        return (paths, next);
    }
    if tok(i) == "as" {
        i += 2;
    }
    (vec![vec![head]], i)
}

// ---------------------------------------------------------------- the graph

/// The module a file is (`["store", "memory"]` for `store/memory.rs`, `["store"]` for
/// `store/mod.rs`, `[]` for `lib.rs`).
fn file_module(file: &str) -> Vec<String> {
    let mut parts: Vec<String> = file
        .trim_end_matches(".rs")
        .split('/')
        .map(String::from)
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// What the crate's modules and root re-exports are.
struct Crate {
    /// Top-level module names.
    top: BTreeSet<String>,
    /// Modules under `store` (`memory`, `mongo`, …).
    store: BTreeSet<String>,
    /// `lib.rs`'s `pub use crate::…` re-exports: name → path.
    reexports: BTreeMap<String, Vec<String>>,
}

impl Crate {
    fn new(files: &Files) -> Self {
        let mut top = BTreeSet::new();
        let mut store = BTreeSet::new();
        for file in files.keys() {
            let module = file_module(file);
            match module.as_slice() {
                [m] => {
                    top.insert(m.clone());
                }
                [first, m, ..] if first == "store" => {
                    top.insert(first.clone());
                    store.insert(m.clone());
                }
                [first, ..] => {
                    top.insert(first.clone());
                }
                [] => {}
            }
        }
        let mut reexports = BTreeMap::new();
        if let Some(lib) = files.get("lib.rs") {
            let t = tokens(&strip(lib));
            for i in 0..t.len() {
                if t[i].0 == "use" && t.get(i + 1).is_some_and(|x| x.0 == "crate") {
                    let (paths, _) = use_tree(&t, i + 3);
                    for path in paths {
                        if let Some(name) = path.last().filter(|n| *n != "*") {
                            reexports.insert(name.clone(), path.clone());
                        }
                    }
                }
            }
        }
        Crate {
            top,
            store,
            reexports,
        }
    }

    /// The node an absolute path (segments from the crate root) names, if it names a
    /// module of the crate.
    fn node(&self, path: &[String]) -> Option<String> {
        let first = path.first()?;
        if !self.top.contains(first) {
            // A name re-exported by lib.rs: the module it comes from.
            let real = self.reexports.get(first)?;
            return self.node(real);
        }
        if first == "store" {
            if let Some(sub) = path.get(1).filter(|s| self.store.contains(*s)) {
                return Some(format!("store::{sub}"));
            }
        }
        Some(first.clone())
    }

    /// The node a file belongs to.
    fn file_node(&self, file: &str) -> Option<String> {
        let module = file_module(file);
        if module.is_empty() {
            None // lib.rs: the root, whose re-exports are resolved instead
        } else {
            self.node(&module)
        }
    }
}

/// Every edge of the graph (self-edges left out).
fn edges(files: &Files) -> Vec<Edge> {
    let krate = Crate::new(files);
    let mut out = BTreeSet::new();
    for (file, source) in files {
        let Some(from) = krate.file_node(file) else {
            continue;
        };
        let module = file_module(file);
        let t = tokens(&strip(source));
        // Inline modules (`mod tests { … }`) open at a brace depth.
        let mut inline: Vec<(String, usize)> = Vec::new();
        let mut depth = 0;
        let mut i = 0;
        while i < t.len() {
            let tok = t[i].0.as_str();
            match tok {
                "{" => depth += 1,
                "}" => {
                    depth -= 1;
                    while inline.last().is_some_and(|(_, d)| *d > depth) {
                        inline.pop();
                    }
                }
                "mod" if t.get(i + 2).is_some_and(|x| x.0 == "{") => {
                    inline.push((t[i + 1].0.clone(), depth + 1));
                }
                _ => {}
            }
            let after_dollar = i > 0 && t[i - 1].0 == "$";
            let is_root = tok == "crate" && !after_dollar;
            if (is_root || tok == "super") && t.get(i + 1).is_some_and(|x| x.0 == "::") {
                let line = t[i].1;
                let mut base: Vec<String> = if is_root {
                    Vec::new()
                } else {
                    module
                        .iter()
                        .chain(inline.iter().map(|(m, _)| m))
                        .cloned()
                        .collect()
                };
                let mut j = i;
                while t.get(j).is_some_and(|x| x.0 == "super")
                    && t.get(j + 1).is_some_and(|x| x.0 == "::")
                {
                    base.pop();
                    j += 2;
                }
                if is_root {
                    j = i + 2;
                }
                let (paths, next) = use_tree(&t, j);
                for path in paths {
                    let path: Vec<String> = path.into_iter().filter(|s| s != "self").collect();
                    let full: Vec<String> = base.iter().cloned().chain(path).collect();
                    if let Some(to) = krate.node(&full) {
                        if to != from {
                            out.insert(Edge {
                                from: from.clone(),
                                to,
                                file: file.clone(),
                                line,
                            });
                        }
                    }
                }
                i = next.max(i + 1);
                continue;
            }
            i += 1;
        }
    }
    out.into_iter().collect()
}

/// The top-level module of a node (`store::memory` is `store`).
fn top_level(node: &str) -> &str {
    node.split("::").next().unwrap()
}

/// A cycle in the graph of `edges` (as `[a, b, …, a]`), if there is one. Self-edges are
/// ignored.
fn find_cycle(edges: &[(String, String)]) -> Option<Vec<String>> {
    let mut next: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (a, b) in edges {
        if a != b {
            next.entry(a.as_str()).or_default().insert(b.as_str());
        }
    }
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit<'a>(
        node: &'a str,
        next: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        marks: &mut BTreeMap<&'a str, Mark>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        marks.insert(node, Mark::Open);
        stack.push(node);
        for &to in next.get(node).into_iter().flatten() {
            match marks.get(to) {
                Some(Mark::Open) => {
                    let start = stack.iter().position(|n| *n == to).unwrap();
                    let mut cycle: Vec<String> =
                        stack[start..].iter().map(|s| s.to_string()).collect();
                    cycle.push(to.to_owned());
                    return Some(cycle);
                }
                Some(Mark::Done) => {}
                None => {
                    if let Some(cycle) = visit(to, next, marks, stack) {
                        return Some(cycle);
                    }
                }
            }
        }
        stack.pop();
        marks.insert(node, Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    let nodes: Vec<&str> = next.keys().copied().collect();
    for node in nodes {
        if !marks.contains_key(node) {
            if let Some(cycle) = visit(node, &next, &mut marks, &mut Vec::new()) {
                return Some(cycle);
            }
        }
    }
    None
}

/// The edges between top-level modules.
fn top_level_edges(edges: &[Edge]) -> Vec<(String, String)> {
    edges
        .iter()
        .map(|e| (top_level(&e.from).to_owned(), top_level(&e.to).to_owned()))
        .filter(|(a, b)| a != b)
        .collect()
}

/// A cycle among the top-level modules, with the references that make each step of it.
fn top_level_cycle(files: &Files) -> Option<String> {
    let edges = edges(files);
    let cycle = find_cycle(&top_level_edges(&edges))?;
    let mut report = format!("import circle: {}\n", cycle.join(" -> "));
    for pair in cycle.windows(2) {
        for e in edges
            .iter()
            .filter(|e| top_level(&e.from) == pair[0] && top_level(&e.to) == pair[1])
        {
            report.push_str(&format!(
                "  src/{}:{}: {} -> {}\n",
                e.file, e.line, e.from, e.to
            ));
        }
    }
    Some(report)
}

// ---------------------------------------------------------------- the checks

#[test]
fn no_import_circle_among_top_level_modules() {
    let files = read_src();
    let edges = edges(&files);
    assert!(
        edges.len() > 30,
        "the parser found the crate's references: {edges:#?}"
    );
    if let Some(report) = top_level_cycle(&files) {
        panic!("{report}");
    }
}

/// Inside `src/store/`, the submodules (the `store` facade aside) form no cycle either.
#[test]
fn no_import_circle_among_store_submodules() {
    let edges: Vec<Edge> = edges(&read_src())
        .into_iter()
        .filter(|e| e.from.starts_with("store::") && e.to.starts_with("store::"))
        .collect();
    assert!(!edges.is_empty());
    let pairs: Vec<(String, String)> = edges
        .iter()
        .map(|e| (e.from.clone(), e.to.clone()))
        .collect();
    if let Some(cycle) = find_cycle(&pairs) {
        let mut report = format!("import circle in store: {}\n", cycle.join(" -> "));
        for pair in cycle.windows(2) {
            for e in edges
                .iter()
                .filter(|e| e.from == pair[0] && e.to == pair[1])
            {
                report.push_str(&format!(
                    "  src/{}:{}: {} -> {}\n",
                    e.file, e.line, e.from, e.to
                ));
            }
        }
        panic!("{report}");
    }
}

#[test]
fn no_source_file_is_over_700_lines() {
    let long: Vec<String> = read_src()
        .iter()
        .map(|(file, text)| (file, text.lines().count()))
        .filter(|(_, n)| *n > MAX_LINES)
        .map(|(file, n)| format!("src/{file}: {n} lines"))
        .collect();
    assert!(long.is_empty(), "over {MAX_LINES} lines: {long:#?}");
}

/// The engine is at the bottom: `core` and the stores import nothing of the facade.
#[test]
fn the_bottom_imports_nothing_above_it() {
    let edges = edges(&read_src());
    let facade = [
        "engine",
        "builder",
        "layer",
        "service",
        "current_user",
        "user_slates",
        "auth",
        "slate",
        "raw_slate",
        "workflow",
    ];
    for e in &edges {
        let bottom = e.from == "core" || e.from.starts_with("store");
        assert!(
            !(bottom && facade.contains(&top_level(&e.to))),
            "src/{}:{}: {} imports {}",
            e.file,
            e.line,
            e.from,
            e.to
        );
    }
}

// ---------------------------------------------------------------- the parser's own tests

fn files(list: &[(&str, &str)]) -> Files {
    list.iter()
        .map(|(f, s)| (f.to_string(), s.to_string()))
        .collect()
}

fn pairs(edges: &[Edge]) -> Vec<(String, String)> {
    let mut p: Vec<(String, String)> = edges
        .iter()
        .map(|e| (e.from.clone(), e.to.clone()))
        .collect();
    p.sort();
    p.dedup();
    p
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_owned(), b.to_owned())
}

/// The real source with one upward import added to `core.rs` (in a copy, not in the tree):
/// the check must fail and name the circle and the line that closes it.
#[test]
fn an_added_upward_import_is_caught() {
    let mut files = read_src();
    let core = files.get_mut("core.rs").expect("src/core.rs");
    core.push_str("\n#[allow(unused_imports)]\nuse crate::engine::Engine;\n");
    let line = core.lines().count();
    let report = top_level_cycle(&files).expect("the circle is found");
    assert!(
        report.contains("core") && report.contains("engine"),
        "{report}"
    );
    assert!(
        report.contains(&format!("src/core.rs:{line}: core -> engine")),
        "{report}"
    );
    // The same through a grouped import, a root re-export and an expression path.
    for added in [
        "use crate::{config::Config, engine::{self}};",
        "use crate::Engine;",
        "fn f() { let _ = crate::engine::stats_handler; }",
    ] {
        let mut files = read_src();
        files.get_mut("core.rs").unwrap().push_str(added);
        assert!(top_level_cycle(&files).is_some(), "{added}");
    }
    // And through the store: a store submodule importing the facade.
    let mut files = read_src();
    files
        .get_mut("store/memory/mod.rs")
        .unwrap()
        .push_str("use crate::user_slates::UserSlates;");
    assert!(top_level_cycle(&files).is_some());
}

#[test]
fn comments_strings_and_chars_are_not_code() {
    let set = files(&[
        ("lib.rs", "mod a; mod b; mod c; pub use crate::b::Bee;"),
        (
            "a.rs",
            "// use crate::c::X;\n\
             /// [`x`](crate::c::X)\n\
             //! crate::c\n\
             /* block /* nested crate::c */ crate::c */\n\
             const S: &str = \"crate::c::X\";\n\
             const R: &str = r#\"crate::c \"quoted\" \"#;\n\
             const Q: char = '\"'; const E: char = '\\'';\n\
             fn f<'a>(x: &'a str) -> &'a str { x }\n\
             use crate::Bee;\n",
        ),
        ("b.rs", "pub struct Bee;"),
        ("c.rs", ""),
    ]);
    let edges = edges(&set);
    assert_eq!(pairs(&edges), [pair("a", "b")], "{edges:#?}");
    assert_eq!(edges[0].line, 9, "line numbers survive stripping");
}

#[test]
fn use_trees_super_and_inline_modules() {
    let set = files(&[
        ("lib.rs", "mod a; mod b; mod c; mod d; mod store;"),
        (
            "a.rs",
            "use crate::{b::{self, Bee as B}, c};\nfn f() { crate::d::g::<u8>(); }",
        ),
        (
            "b.rs",
            "pub(crate) struct Bee;\n\
             #[cfg(test)]\nmod tests {\n    use super::*;\n    use super::super::c::Cee;\n}\n\
             fn later() { super::d::h(); }\n",
        ),
        ("c.rs", "macro_rules! m { () => { $crate::a::f() } }"),
        ("d.rs", ""),
        ("store/mod.rs", "mod x; mod y; pub use x::X; use crate::a;"),
        (
            "store/x.rs",
            "use super::y::Y;\nuse super::{X, Z};\nuse crate::d;",
        ),
        ("store/y.rs", "use crate::store::x::X;"),
        ("store/mongo/mod.rs", "mod w;"),
        ("store/mongo/w.rs", "use super::super::y::Y; use super::M;"),
    ]);
    let p = pairs(&edges(&set));
    let want = [
        pair("a", "b"),
        pair("a", "c"),
        pair("a", "d"),
        pair("b", "c"),
        pair("b", "d"),
        pair("store", "a"),
        pair("store::mongo", "store::y"),
        pair("store::x", "d"),
        pair("store::x", "store"),
        pair("store::x", "store::y"),
        pair("store::y", "store::x"),
    ];
    assert_eq!(p, want);
    let edges = edges(&set);
    assert_eq!(
        find_cycle(&top_level_edges(&edges)),
        None,
        "store's inside is one node"
    );
    let inside: Vec<(String, String)> = p
        .iter()
        .filter(|(a, b)| a.starts_with("store::") && b.starts_with("store::"))
        .cloned()
        .collect();
    let cycle = find_cycle(&inside).expect("x <-> y");
    assert_eq!(cycle.first(), cycle.last());
}

#[test]
fn find_cycle_reports_the_circle() {
    let e = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter().map(|(a, b)| pair(a, b)).collect()
    };
    assert_eq!(find_cycle(&e(&[("a", "b"), ("b", "c"), ("a", "c")])), None);
    assert_eq!(
        find_cycle(&e(&[("a", "a")])),
        None,
        "self-edges do not count"
    );
    let cycle = find_cycle(&e(&[("a", "b"), ("b", "c"), ("c", "d"), ("d", "b")])).unwrap();
    assert_eq!(cycle, ["b", "c", "d", "b"]);
}
