//! The core crate's modules import each other without cycles: every `crate::…` and `super::…`
//! path (and a parent's use of its child) of the non-test code is an edge, and the graph must
//! be acyclic, so a module can be read (and changed) knowing only the ones below it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn modules(dir: &Path, prefix: &str, out: &mut BTreeMap<String, String>) {
    for e in std::fs::read_dir(dir).expect("src readable").flatten() {
        let p = e.path();
        let name = p
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("")
            .to_string();
        if p.is_dir() {
            modules(&p, &format!("{prefix}{name}::"), out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let module = match name.as_str() {
                "lib" => String::new(),
                "mod" => prefix.trim_end_matches("::").to_string(),
                _ => format!("{prefix}{name}"),
            };
            let text = std::fs::read_to_string(&p).expect("readable");
            // Only the library code: tests may reach anywhere.
            let code = text.split("#[cfg(test)]").next().unwrap_or("").to_string();
            out.insert(module, code);
        }
    }
}

/// The `a::b::c` path following each occurrence of `marker`.
fn paths<'a>(code: &'a str, marker: &str) -> Vec<Vec<&'a str>> {
    code.match_indices(marker)
        .filter(|(i, _)| !code[..*i].ends_with(|c: char| c.is_alphanumeric() || c == '_'))
        .map(|(i, _)| {
            let rest = &code[i + marker.len()..];
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            rest[..end].split("::").filter(|s| !s.is_empty()).collect()
        })
        .collect()
}

#[test]
fn core_modules_have_no_import_cycles() {
    let mut mods = BTreeMap::new();
    modules(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        "",
        &mut mods,
    );
    let resolve = |parts: &[&str]| -> Option<String> {
        (1..=parts.len())
            .rev()
            .map(|n| parts[..n].join("::"))
            .find(|c| mods.contains_key(c))
    };
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, code) in &mods {
        let parent: Vec<&str> = m.split("::").filter(|s| !s.is_empty()).collect();
        let parent = &parent[..parent.len().saturating_sub(1)];
        let mut targets: Vec<Option<String>> =
            paths(code, "crate::").iter().map(|p| resolve(p)).collect();
        for p in paths(code, "super::") {
            let full: Vec<&str> = parent.iter().copied().chain(p).collect();
            targets.push(resolve(&full));
        }
        for line in code.lines().map(str::trim) {
            if let Some(child) = line
                .strip_suffix(';')
                .and_then(|l| l.rsplit("mod ").next())
                .filter(|_| line.starts_with("mod ") || line.contains(" mod "))
            {
                if code.contains(&format!("{child}::")) {
                    let c = if m.is_empty() {
                        child.to_string()
                    } else {
                        format!("{m}::{child}")
                    };
                    targets.push(Some(c));
                }
            }
        }
        for t in targets
            .into_iter()
            .flatten()
            .filter(|t| t != m && !t.is_empty())
        {
            edges.entry(m.clone()).or_default().insert(t);
        }
    }
    // Depth-first search for a back edge.
    fn visit(
        v: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(v.to_string(), 1);
        stack.push(v.to_string());
        for w in edges.get(v).into_iter().flatten() {
            match state.get(w.as_str()).copied() {
                Some(1) => {
                    let from = stack.iter().position(|s| s == w).unwrap_or(0);
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(w.clone());
                    return Some(cycle);
                }
                None => {
                    if let Some(c) = visit(w, edges, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(v.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for m in mods.keys() {
        if !state.contains_key(m.as_str()) {
            if let Some(cycle) = visit(m, &edges, &mut state, &mut vec![]) {
                panic!("import cycle: {}", cycle.join(" → "));
            }
        }
    }
    assert!(mods.len() > 50, "found only {} modules", mods.len());
}
