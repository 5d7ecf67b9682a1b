//! The modules of each crate depend on each other in one direction (#31): no two files (or
//! longer rings of them) import each other. A ring is one idea split in two, or a helper in
//! the wrong file; it makes the pieces impossible to read, test or move one at a time.
//!
//! Read as text: every `crate::NAME` path and every `use crate::{NAME, ...}` group, outside
//! comments and unit tests, makes the file's top-level module depend on module NAME.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The top-level modules a file's code names through `crate::`.
fn uses(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let code = match code.find("#[cfg(test)]\nmod tests") {
        Some(i) => &code[..i],
        None => code,
    };
    let text: String = code
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut rest = text.as_str();
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a::b, c, d::{e, f}}`: the names at depth 1.
            let mut depth = 1;
            let mut start = true;
            for (k, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => start = true,
                    c if start && depth == 1 && !c.is_whitespace() => {
                        out.insert(ident(&group[k..]));
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            out.insert(ident(rest));
        }
    }
    out.retain(|n| !n.is_empty() && n.chars().next().is_some_and(|c| c.is_ascii_lowercase()));
    out
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "bin") {
                files(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every ring among the modules of one crate, as "a -> b -> a".
fn rings(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    fn walk(
        g: &BTreeMap<String, BTreeSet<String>>,
        at: &str,
        path: &mut Vec<String>,
        found: &mut BTreeSet<String>,
    ) {
        for next in g.get(at).into_iter().flatten() {
            if let Some(i) = path.iter().position(|p| p == next) {
                let mut ring = path[i..].to_vec();
                // One spelling per ring: start at its smallest name.
                let m = ring.iter().enumerate().min_by_key(|(_, n)| *n).unwrap().0;
                ring.rotate_left(m);
                ring.push(ring[0].clone());
                found.insert(ring.join(" -> "));
            } else if g.contains_key(next.as_str()) && path.len() < 8 {
                path.push(next.clone());
                walk(g, next, path, found);
                path.pop();
            }
        }
    }
    let mut found = BTreeSet::new();
    for m in graph.keys() {
        walk(graph, m, &mut vec![m.clone()], &mut found);
    }
    found.into_iter().collect()
}

#[test]
fn no_module_ring_in_any_crate() {
    let mut all = Vec::new();
    for krate in std::fs::read_dir("crates").unwrap().flatten() {
        let src = krate.path().join("src");
        let mut fs = Vec::new();
        files(&src, &mut fs);
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for f in &fs {
            let rel = f.strip_prefix(&src).unwrap();
            let top = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string();
            if top == "lib" || top == "main" {
                continue;
            }
            let mut deps = uses(&std::fs::read_to_string(f).unwrap());
            deps.remove(&top);
            graph.entry(top).or_default().extend(deps);
        }
        let known: BTreeSet<String> = graph.keys().cloned().collect();
        for deps in graph.values_mut() {
            deps.retain(|d| known.contains(d));
        }
        for r in rings(&graph) {
            all.push(format!("{}: {r}", krate.file_name().to_string_lossy()));
        }
    }
    assert!(
        all.is_empty(),
        "modules that import each other:\n{}",
        all.join("\n")
    );
}

/// The reader itself: a group, a path, a comment and a unit test.
#[test]
fn uses_reads_groups_paths_and_skips_comments() {
    let code = "use crate::{a::B, c, d::{e, f}};\nfn x() { crate::g::h(); }\n// crate::i\n/// [`crate::j`]\n#[cfg(test)]\nmod tests { use crate::k; }\n";
    let got: Vec<String> = uses(code).into_iter().collect();
    assert_eq!(got, ["a", "c", "d", "g"]);
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    g.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    g.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(rings(&g), ["a -> b -> c -> a"]);
}
