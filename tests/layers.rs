//! The engine's top-level modules form layers: no import cycle among them. The graph is
//! read from the source: module `a` depends on `b` when a file of `a` (`rust-src/a.rs`
//! or anything under `rust-src/a/`) names `crate::b` outside a comment, in a path or a
//! `use crate::{b, ...}` group; test modules count, since they are compiled into the
//! crate too. A cycle fails the test and is printed with the files behind each edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module → module it names → files of the first that name it.
type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// The top-level modules `lib.rs` declares.
fn top_level_modules(src: &Path) -> BTreeSet<String> {
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    lib.lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod ").or_else(|| l.trim().strip_prefix("mod ")))
        .map(|l| l.trim_end_matches(';').trim().to_string())
        .collect()
}

/// The code of a line, without its comment (doc comments included). Good enough for
/// this source: no string literal holds `//` before a `crate::` path.
fn code(line: &str) -> &str {
    match line.find("//") {
        Some(i) => &line[..i],
        None => line,
    }
}

/// The modules a line of code names: `crate::x...` and `crate::{x, y::z, ...}`.
fn named_modules(code: &str) -> Vec<String> {
    let ident = |s: &str| s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>();
    let mut out = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            out.extend(group.split(',').map(|p| ident(p.trim())).filter(|m| !m.is_empty()));
        } else {
            out.push(ident(rest));
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn dependency_graph(src: &Path, modules: &BTreeSet<String>) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph = Graph::new();
    for file in files {
        let rel = file.strip_prefix(src).unwrap().to_string_lossy().into_owned();
        let top = rel.split('/').next().unwrap().trim_end_matches(".rs").to_string();
        if top == "lib" {
            continue;
        }
        assert!(modules.contains(&top), "{rel} belongs to no module lib.rs declares");
        let text = std::fs::read_to_string(&file).unwrap();
        for named in text.lines().flat_map(|l| named_modules(code(l))) {
            assert!(modules.contains(&named), "{rel} names `crate::{named}`, which lib.rs does not declare");
            if named != top {
                graph.entry(top.clone()).or_default().entry(named).or_default().insert(rel.clone());
            }
        }
    }
    graph
}

/// A cycle of `graph` (its modules in order, the first repeated at the end), if any.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        m: &str,
        graph: &Graph,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(m) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let from = path.iter().position(|p| p == m).unwrap();
                let mut cycle = path[from..].to_vec();
                cycle.push(m.to_string());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(m.to_string(), Mark::Open);
        path.push(m.to_string());
        for next in graph.get(m).into_iter().flat_map(|e| e.keys()) {
            if let Some(cycle) = visit(next, graph, marks, path) {
                return Some(cycle);
            }
        }
        path.pop();
        marks.insert(m.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    graph.keys().find_map(|m| visit(m, graph, &mut marks, &mut Vec::new()))
}

#[test]
fn top_level_modules_import_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("rust-src");
    let modules = top_level_modules(&src);
    assert!(modules.len() >= 18, "lib.rs declares the engine's modules: {modules:?}");
    let graph = dependency_graph(&src, &modules);
    if let Some(cycle) = find_cycle(&graph) {
        let edges: Vec<String> =
            cycle.windows(2).map(|e| format!("  {} -> {} in {:?}", e[0], e[1], graph[&e[0]][&e[1]])).collect();
        panic!("import cycle among rust-src's modules: {}\n{}", cycle.join(" -> "), edges.join("\n"));
    }
}

/// The reader and the cycle search on a made-up graph, so that the test above cannot
/// pass by reading nothing.
#[test]
fn the_cycle_search_finds_a_cycle() {
    assert_eq!(named_modules("use crate::llvm::{Module, Value};"), ["llvm"]);
    assert_eq!(named_modules("use crate::{error::Error, names};"), ["error", "names"]);
    assert_eq!(named_modules(code("let x = 1; // crate::ffi is the top")), Vec::<String>::new());
    let mut graph = Graph::new();
    for (a, b) in [("ffi", "pipeline"), ("pipeline", "error"), ("error", "ffi"), ("pipeline", "llvm")] {
        graph.entry(a.into()).or_default().entry(b.into()).or_default().insert(format!("{a}.rs"));
    }
    assert_eq!(find_cycle(&graph).unwrap(), ["error", "ffi", "pipeline", "error"]);
    graph.get_mut("error").unwrap().remove("ffi");
    assert_eq!(find_cycle(&graph), None);
}
