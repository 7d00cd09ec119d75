//! The module graph as the README draws it: dependencies point one way, so
//! the top-level modules of `src/` form no cycle, and neither do the files
//! of one module folder. Read from the sources (each path a module's
//! non-test code names: `crate::a::b`, `super::b`, `self::b`, and in a
//! folder's `mod.rs` a child's name), so a new back edge fails here with the
//! cycle it closes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Folders whose `mod.rs` is a hub: it routes to its files (subcommands,
/// pages, endpoints) and they share its helpers, so cycles through `mod.rs`
/// are how they are built; cycles among their files still fail.
const HUBS: [&str; 3] = ["cli", "console", "mgmt"];

/// The label of a folder's own file (`mod.rs`, or `name.rs` beside `name/`).
const MOD: &str = "mod";

/// A source file: its module path (`src/keys/store.rs` is `keys::store`,
/// `src/keys/mod.rs` is `keys`) and the code that counts.
struct SourceFile {
    module: Vec<String>,
    code: String,
}

/// The module path of a file under `src/`.
fn module_path(relative: &Path) -> Vec<String> {
    let mut path: Vec<String> = relative
        .iter()
        .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if path.last().is_some_and(|last| last == "mod") {
        path.pop();
    }
    path
}

/// The code before the file's test module, comments left out.
fn code_of(source: &str) -> String {
    let before_tests = source.split("#[cfg(test)]").next().unwrap_or(source);
    before_tests
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Whether `at` starts a path of its own, not the tail of another.
fn starts_path(code: &str, at: usize) -> bool {
    !code[..at].ends_with(|c: char| is_ident(c) || c == ':')
}

/// The module paths written at the start of `rest` (after a prefix such as
/// `crate::`): `a::b::C` is one, `{a, b::{c, d}}` several. A name followed
/// by `!` is a macro, not a module, and is left out; `*` names the prefix.
fn paths_in(rest: &str) -> Vec<Vec<String>> {
    let mut chain = Vec::new();
    let mut at = rest;
    loop {
        let name: String = at.chars().take_while(|c| is_ident(*c)).collect();
        if name.is_empty() {
            break;
        }
        at = &at[name.len()..];
        if at.starts_with('!') {
            return vec![chain];
        }
        chain.push(name);
        match at.strip_prefix("::") {
            Some(next) => at = next,
            None => return vec![chain],
        }
    }
    let Some(group) = at.strip_prefix('{') else {
        return vec![chain];
    };
    let mut depth = 0;
    let mut items = vec![String::new()];
    for c in group.chars() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(String::new());
                continue;
            }
            _ => {}
        }
        if let Some(item) = items.last_mut() {
            item.push(c);
        }
    }
    items
        .iter()
        .flat_map(|item| paths_in(item.trim()))
        .map(|tail| chain.iter().cloned().chain(tail).collect())
        .collect()
}

/// Every module path the code names, made absolute from `module`, the
/// path of the module the code belongs to.
fn references(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for prefix in ["crate::", "super::", "self::"] {
        for (at, _) in code.match_indices(prefix) {
            if !starts_path(code, at) {
                continue;
            }
            let mut base: Vec<String> = match prefix {
                "crate::" => Vec::new(),
                _ => module.to_vec(),
            };
            let mut rest = &code[at + prefix.len()..];
            if prefix == "super::" {
                base.pop();
                while let Some(next) = rest.strip_prefix("super::") {
                    base.pop();
                    rest = next;
                }
            }
            for tail in paths_in(rest) {
                found.push(base.iter().cloned().chain(tail).collect());
            }
        }
    }
    found
}

fn source_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn read_sources() -> Vec<SourceFile> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&src, &mut files);
    files
        .into_iter()
        .map(|file| SourceFile {
            module: module_path(file.strip_prefix(&src).unwrap()),
            code: code_of(&std::fs::read_to_string(&file).unwrap()),
        })
        .filter(|f| !matches!(f.module[..], [ref only] if only == "lib" || only == "main"))
        // A module's tests in a file of their own (`render/tests.rs`) are
        // test code, like an inline `#[cfg(test)] mod tests`.
        .filter(|f| f.module.last().is_none_or(|last| last != "tests"))
        .collect()
}

/// The top-level modules and what each names of the others.
fn module_graph_of(files: &[SourceFile]) -> Graph {
    let mut graph = Graph::new();
    for file in files {
        let module = &file.module[0];
        let edges = graph.entry(module.clone()).or_default();
        for path in references(&file.code, &file.module) {
            if let Some(first) = path.first().filter(|m| *m != module) {
                edges.insert(first.clone());
            }
        }
    }
    graph
}

fn module_graph() -> Graph {
    module_graph_of(&read_sources())
}

/// A folder's own file split into its re-exports (`pub use a::{B, C}`,
/// each the path after `use`) and the rest: a facade names its files
/// without depending on them.
fn split_reexports(code: &str) -> (Vec<&str>, String) {
    let mut reexports = Vec::new();
    let mut rest_of_code = String::new();
    let mut rest = code;
    loop {
        let start_of_word = |before: &str| {
            before
                .rfind(|c: char| c.is_whitespace() || matches!(c, ';' | '{' | '}'))
                .map_or(0, |i| i + 1)
        };
        let found = rest.match_indices("use ").find(|(at, _)| {
            let before = rest[..*at].trim_end();
            starts_path(rest, *at) && before[start_of_word(before)..].starts_with("pub")
        });
        let Some((at, _)) = found else {
            rest_of_code.push_str(rest);
            return (reexports, rest_of_code);
        };
        let before = rest[..at].trim_end();
        rest_of_code.push_str(&before[..start_of_word(before)]);
        let (statement, after) = rest[at + "use ".len()..]
            .split_once(';')
            .unwrap_or((&rest[at..], ""));
        reexports.push(statement.trim());
        rest = after;
    }
}

/// Which child each name a folder's own file re-exports comes from.
fn reexported(statements: &[&str], children: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    for statement in statements {
        for path in paths_in(statement.trim_start_matches("self::")) {
            if let [child, name, ..] = &path[..]
                && children.contains(child)
            {
                found.entry(name.clone()).or_insert_with(|| child.clone());
            }
        }
    }
    found
}

/// The files of the folder `folder` (a child module's whole subtree is one
/// node; the folder's own file is [`MOD`]) and which name which.
fn folder_graph(files: &[SourceFile], folder: &[String]) -> Graph {
    let depth = folder.len();
    let children: BTreeSet<String> = files
        .iter()
        .filter(|f| f.module.len() > depth && f.module.starts_with(folder))
        .map(|f| f.module[depth].clone())
        .collect();
    let (statements, facade_code) = files
        .iter()
        .find(|f| f.module == folder)
        .map_or_else(Default::default, |f| split_reexports(&f.code));
    let exported = reexported(&statements, &children);
    let node_of = |name: &String| {
        if children.contains(name) {
            name.clone()
        } else {
            exported
                .get(name)
                .cloned()
                .unwrap_or_else(|| MOD.to_owned())
        }
    };
    let mut graph = Graph::new();
    for file in files.iter().filter(|f| f.module.starts_with(folder)) {
        let is_own = file.module.len() == depth;
        let from = if is_own {
            MOD.to_owned()
        } else {
            file.module[depth].clone()
        };
        let code = if is_own { &facade_code } else { &file.code };
        let mut named: Vec<String> = references(code, &file.module)
            .into_iter()
            .filter(|path| path.len() > depth && path.starts_with(folder))
            .map(|path| node_of(&path[depth]))
            .collect();
        if is_own {
            // In a folder's own file a bare `child::` names its child.
            named.extend(
                children
                    .iter()
                    .filter(|child| {
                        let pattern = format!("{child}::");
                        code.match_indices(&pattern)
                            .any(|(at, _)| starts_path(code, at))
                    })
                    .cloned(),
            );
        }
        let edges = graph.entry(from.clone()).or_default();
        edges.extend(named.into_iter().filter(|to| *to != from));
    }
    graph
}

/// Every folder of `src/` with files of its own, and the cycles among them
/// (see [`HUBS`]).
fn folder_cycles(files: &[SourceFile]) -> Vec<String> {
    let folders: BTreeSet<Vec<String>> = files
        .iter()
        .filter(|f| f.module.len() > 1)
        .map(|f| f.module[..f.module.len() - 1].to_vec())
        .collect();
    let mut cycles = Vec::new();
    for folder in folders {
        let name = folder.join("::");
        let mut graph = folder_graph(files, &folder);
        if folder
            .last()
            .is_some_and(|last| HUBS.contains(&last.as_str()))
        {
            graph.remove(MOD);
            for edges in graph.values_mut() {
                edges.remove(MOD);
            }
        }
        cycles.extend(
            graph
                .keys()
                .filter_map(|m| cycle_through(&graph, m))
                .map(|c| format!("{name}: {}", c.join(" -> "))),
        );
    }
    cycles
}

/// A cycle through `start`, if there is one: the path back to it.
fn cycle_through(graph: &Graph, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_owned(), vec![start.to_owned()])];
    let mut seen = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        for next in graph.get(&node).into_iter().flatten() {
            if next == start {
                let mut cycle = path.clone();
                cycle.push(start.to_owned());
                return Some(cycle);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

#[test]
fn the_module_graph_has_no_cycle() {
    let graph = module_graph();
    assert!(graph.contains_key("token"), "the sources were read");
    let cycles: Vec<String> = graph
        .keys()
        .filter_map(|m| cycle_through(&graph, m))
        .map(|c| c.join(" -> "))
        .collect();
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_files_of_a_folder_form_no_cycle() {
    let files = read_sources();
    let keys = folder_graph(&files, &["keys".to_owned()]);
    assert!(
        keys.get("service").is_some_and(|e| e.contains("model")),
        "the folders were read: {keys:?}"
    );
    let cycles = folder_cycles(&files);
    assert!(
        cycles.is_empty(),
        "cycles within a folder:\n{}",
        cycles.join("\n")
    );
}

fn graph_of(edges: &[(&str, &str)]) -> Graph {
    edges.iter().fold(Graph::new(), |mut g, (from, to)| {
        g.entry((*from).into()).or_default().insert((*to).into());
        g
    })
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let graph = graph_of(&[("a", "b"), ("b", "c"), ("c", "a"), ("d", "a")]);
    assert_eq!(
        cycle_through(&graph, "a").unwrap(),
        ["a", "b", "c", "a"].map(String::from)
    );
    assert_eq!(cycle_through(&graph, "d"), None);
    let file = |path: &str, source: &str| SourceFile {
        module: module_path(Path::new(path)),
        code: code_of(source),
    };
    let top = |f: &SourceFile| -> BTreeSet<String> {
        module_graph_of(std::slice::from_ref(f))
            .into_values()
            .flatten()
            .collect()
    };
    assert_eq!(
        top(&file(
            "x.rs",
            "use crate::db::x;\n//! crate::app\ncrate::text_column!(X);\n#[cfg(test)] crate::mail"
        )),
        names(&["db"])
    );
    // `super::` from a file two folders down reaches the top level.
    assert_eq!(
        top(&file("a/b/c.rs", "use super::super::super::mail::X;")),
        names(&["mail"])
    );
}

#[test]
fn a_folder_graph_sees_super_self_groups_and_reexports() {
    let file = |path: &str, source: &str| SourceFile {
        module: module_path(Path::new(path)),
        code: code_of(source),
    };
    let files = [
        file(
            "f/mod.rs",
            "mod a;\nmod b;\nmod c;\nmod d;\npub use a::{Shown, Other};\n\
             pub(crate) use self::b::Inner;\nuse d::Used;\npub fn root() {}",
        ),
        file("f/a.rs", "use super::{c::{X, Y}, root};"),
        file("f/b.rs", "use crate::f::Shown;"),
        file("f/c.rs", "fn g() { self::inner::h() }"),
        file("f/c/inner.rs", "use super::super::d::Z;"),
        file("f/d.rs", ""),
    ];
    let graph = folder_graph(&files, &["f".to_owned()]);
    assert_eq!(graph["a"], names(&["c", MOD]));
    // `Shown` is re-exported from `a`: `b` depends on `a`, not on the facade.
    assert_eq!(graph["b"], names(&["a"]));
    // A child folder is one node, whichever of its files names what.
    assert_eq!(graph["c"], names(&["d"]));
    // The facade's `pub use` of its files is no dependency; its `use` is.
    assert_eq!(graph[MOD], names(&["d"]));
    assert!(folder_cycles(&files).is_empty(), "{graph:?}");
    let looped = [
        file("g/mod.rs", "mod p;\nmod q;"),
        file("g/p.rs", "use super::q::X;"),
        file("g/q.rs", "fn f() { super::p::y() }"),
    ];
    assert_eq!(folder_cycles(&looped), ["g: p -> q -> p", "g: q -> p -> q"]);
}
