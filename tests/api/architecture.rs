//! The crate's top-level modules import each other in one direction: no module
//! reaches, directly or through others, back to one that imports it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::support::project_path;

/// Every source file: its top-level module (`api`, `midi`, `app`, …) and its text.
fn sources() -> Vec<(String, std::path::PathBuf, String)> {
    fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, files)
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path)
            }
        }
    }
    let src = project_path("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    files
        .into_iter()
        .map(|file| {
            let first = file.strip_prefix(&src).unwrap().components().next().unwrap();
            let top = first.as_os_str().to_string_lossy().trim_end_matches(".rs").to_owned();
            let text = std::fs::read_to_string(&file).unwrap();
            (top, file, text)
        })
        .collect()
}

/// Top-level module → the top-level modules its non-test code names as `crate::x`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (top, _, text) in sources() {
        if top == "lib" || top == "main" {
            continue;
        }
        let code = text.split("#[cfg(test)]").next().unwrap();
        let named = graph.entry(top.clone()).or_default();
        for (index, _) in code.match_indices("crate::") {
            let rest = &code[index + "crate::".len()..];
            let module: String =
                rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            let is_macro = rest[module.len()..].starts_with('!');
            if !module.is_empty() && module != top && !is_macro {
                named.insert(module);
            }
        }
    }
    graph
}

/// A cycle through `start`, if there is one.
fn cycle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_owned(), vec![start.to_owned()])];
    let mut seen = BTreeSet::new();
    while let Some((module, path)) = stack.pop() {
        for next in graph.get(&module).into_iter().flatten() {
            if next == start {
                return Some([path.clone(), vec![start.to_owned()]].concat());
            }
            if seen.insert(next.clone()) {
                stack.push((next.clone(), [path.clone(), vec![next.clone()]].concat()));
            }
        }
    }
    None
}

#[test]
fn no_top_level_module_imports_back_into_one_that_imports_it() {
    let graph = imports();
    assert!(graph.len() >= 15, "every top-level module is read: {:?}", graph.keys());
    let cycles: Vec<String> =
        graph.keys().filter_map(|module| cycle_from(&graph, module)).map(|cycle| cycle.join(" → ")).collect();
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

/// The layers, top first, as `lib.rs` and the README draw them. A module may
/// import its own layer and the ones below it, never one above.
const LAYERS: [(&str, &[&str]); 8] = [
    ("HTTP and commands", &["app", "api", "cli", "observability"]),
    ("services", &["datasets", "jobs", "generate"]),
    ("trainer", &["train"]),
    ("networks, artifacts and their registry", &["model"]),
    ("representations", &["repr"]),
    ("analysis", &["analysis"]),
    ("MIDI and audio", &["midi", "audio"]),
    ("storage, settings and leaf helpers", &["store", "objects", "config", "devices", "shared"]),
];

fn layer_of(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
        .unwrap_or_else(|| panic!("`{module}` is in no layer: add it to LAYERS, lib.rs and the README"))
}

#[test]
fn no_module_imports_a_layer_above_its_own() {
    let upward: Vec<String> = imports()
        .into_iter()
        .flat_map(|(module, named)| named.into_iter().map(move |import| (module.clone(), import)))
        .filter(|(module, import)| layer_of(import) < layer_of(module))
        .map(|(module, import)| {
            format!(
                "{module} ({}) imports {import} ({})",
                LAYERS[layer_of(&module)].0,
                LAYERS[layer_of(&import)].0
            )
        })
        .collect();
    assert!(upward.is_empty(), "imports against the layers:\n{}", upward.join("\n"));
}

#[test]
fn lib_rs_declares_exactly_the_layered_modules() {
    let lib = std::fs::read_to_string(project_path("src/lib.rs")).unwrap();
    let declared: BTreeSet<&str> =
        lib.lines().filter_map(|line| line.strip_prefix("pub mod ")?.strip_suffix(';')).collect();
    let layered: BTreeSet<&str> = LAYERS.iter().flat_map(|(_, modules)| modules.iter().copied()).collect();
    assert_eq!(declared, layered);
}

#[test]
fn the_http_error_type_stays_in_the_http_layer() {
    let below: Vec<String> = sources()
        .into_iter()
        .filter(|(top, _, text)| !["api", "app", "main"].contains(&top.as_str()) && text.contains("ApiError"))
        .map(|(_, file, _)| file.display().to_string())
        .collect();
    assert!(below.is_empty(), "ApiError used below the HTTP layer: {below:?}");
}
