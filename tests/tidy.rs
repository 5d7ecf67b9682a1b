//! The architecture's invariants (docs/ARCHITECTURE.md), checked from `cargo metadata` and
//! the sources, rust-analyzer's "tidy" way: which crate may depend on which, `unsafe` only in
//! hakit-sys, a `//!` on every file, the function-length and file-length budgets (ratchets:
//! nothing new over budget, nothing over budget grows, and what is brought within budget
//! leaves its list) and no numbered steps in comments (they drift from the code; the order
//! lives in the code and the README's step table). Each checker is a function over text, and
//! each is shown to fail on a planted violation below. Import rings between a crate's files:
//! tests/architecture.rs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The shipped crates by layer: a crate depends only on crates of lower layers.
/// hakit-notify and hakit-check share a layer: neither depends on the other.
const LAYERS: &[(&str, u32)] = &[
    ("hakit-sys", 0),
    ("hakit-core", 1),
    ("hakit-net", 2),
    ("hakit-bgp", 2),
    ("hakit-fip", 3),
    ("hakit-cli", 4),
    ("hakit-notify", 5),
    ("hakit-check", 5),
    ("hakit", 6),
];
/// Tools: used by tests and the build, never by a shipped crate (dev-dependencies only).
const TOOLS: &[&str] = &["hakit-lab", "hakit-docgen"];

/// Longest function, in lines from `fn` to its closing brace.
const FN_BUDGET: usize = 120;
const FN_BUDGET_LAB: usize = 200;
/// The functions over budget today, with their length now: none may grow, none may join,
/// and one brought within budget must leave this list (#31 point 6 emptied it).
const OVER_BUDGET: &[(&str, usize)] = &[];

/// Longest source file, in lines before its tests; a BGP speaker's file is shorter (one
/// dialect each, behind the one trait: #31 point 5).
const FILE_BUDGET: usize = 700;
const FILE_BUDGET_BGP: usize = 300;

/// The budget of the file at `path`.
fn file_budget(path: &str) -> usize {
    if path.starts_with("crates/bgp/") {
        FILE_BUDGET_BGP
    } else {
        FILE_BUDGET
    }
}
/// The files over it today, with their length now: a ratchet as [`OVER_BUDGET`].
const FILES_OVER_BUDGET: &[(&str, usize)] = &[];

/// A file's length before its tests (`#[cfg(test)]` at the start of a line).
fn lines_before_tests(text: &str) -> usize {
    text.lines()
        .take_while(|l| !l.starts_with("#[cfg(test)]"))
        .count()
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every source file of the shipped crates, the tools and the thin mains.
fn sources() -> Vec<PathBuf> {
    let mut v = Vec::new();
    for d in ["crates", "bin"] {
        rs_files(Path::new(d), &mut v);
    }
    v.retain(|p| p.components().any(|c| c.as_os_str() == "src") || p.starts_with("bin"));
    v.sort();
    v
}

/// The code of a file without comments, strings and char literals (each replaced by spaces,
/// newlines kept), and without its `#[cfg(test)] mod tests` (tests are not the architecture).
fn code_only(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let blank = |out: &mut Vec<u8>, s: &[u8]| {
        out.extend(s.iter().map(|&c| if c == b'\n' { b'\n' } else { b' ' }))
    };
    let mut i = 0;
    while i < b.len() {
        let rest = &b[i..];
        let end = if rest.starts_with(b"//") {
            rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len())
        } else if rest.starts_with(b"/*") {
            rest.windows(2)
                .position(|w| w == b"*/")
                .map_or(rest.len(), |p| p + 2)
        } else if rest.starts_with(b"r#\"") || rest.starts_with(b"r\"") {
            let hashes = rest[1..].iter().take_while(|&&c| c == b'#').count();
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            let from = 2 + hashes;
            rest[from..]
                .windows(close.len())
                .position(|w| w == close.as_slice())
                .map_or(rest.len(), |p| from + p + close.len())
        } else if rest[0] == b'"' {
            let mut j = 1;
            while j < rest.len() && rest[j] != b'"' {
                j += if rest[j] == b'\\' { 2 } else { 1 };
            }
            (j + 1).min(rest.len())
        } else if rest[0] == b'\'' && rest.len() > 2 && (rest[2] == b'\'' || rest[1] == b'\\') {
            // A char literal ('x', '\n', '\u{..}'), not a lifetime ('a).
            rest[1..]
                .iter()
                .skip(1)
                .position(|&c| c == b'\'')
                .map_or(rest.len(), |p| p + 3)
        } else {
            out.push(rest[0]);
            i += 1;
            continue;
        };
        blank(&mut out, &rest[..end]);
        i += end;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every `fn` with a body, as (name, first line, length in lines).
fn functions(code: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = code.lines().collect();
    let mut out = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let Some(at) = line.find("fn ") else { continue };
        let before = line[..at].trim();
        let words_ok = before.split_whitespace().all(|w| {
            matches!(
                w,
                "pub" | "const" | "async" | "unsafe" | "extern" | "default"
            ) || w.starts_with("pub(")
        });
        if !words_ok || (at > 0 && !line.as_bytes()[at - 1].is_ascii_whitespace()) {
            continue;
        }
        let name: String = line[at + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            continue;
        }
        // The body: the first `{` before a `;` (a declaration without a body has none).
        let mut depth = 0usize;
        let mut started = false;
        'scan: for (m, l) in lines.iter().enumerate().skip(n) {
            let from = if m == n { at } else { 0 };
            for c in l[from..].chars() {
                match c {
                    ';' if !started => break 'scan,
                    '{' => {
                        depth += 1;
                        started = true;
                    }
                    '}' if started => {
                        depth -= 1;
                        if depth == 0 {
                            out.push((name.clone(), n + 1, m - n + 1));
                            break 'scan;
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    out
}

/// Functions over their budget, as "path:line name (N lines)".
fn over_budget(path: &str, code: &str) -> Vec<(String, usize)> {
    let budget = if path.starts_with("crates/lab/") {
        FN_BUDGET_LAB
    } else {
        FN_BUDGET
    };
    functions(code)
        .into_iter()
        .filter(|(_, _, len)| *len > budget)
        .map(|(name, _, len)| (format!("{path}::{name}"), len))
        .collect()
}

/// Where `unsafe` appears in code (not in comments or strings).
fn unsafe_uses(code: &str) -> Vec<usize> {
    code.lines()
        .enumerate()
        .filter(|(_, l)| {
            l.match_indices("unsafe").any(|(i, _)| {
                let before = l[..i].chars().last();
                let after = l[i + 6..].chars().next();
                !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
                    && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
            })
        })
        .map(|(n, _)| n + 1)
        .collect()
}

/// A comment that numbers a step ("Step 4:", "step 2 of"): the numbers drift from the code.
fn numbered_steps(text: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let t = l.trim_start();
            (t.starts_with("//") || t.starts_with("#")) && {
                let low = t.to_ascii_lowercase();
                low.match_indices("step ").any(|(i, _)| {
                    low[i + 5..]
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_digit())
                })
            }
        })
        .map(|(n, _)| n + 1)
        .collect()
}

/// The workspace's own dependency graph (normal dependencies only), from cargo metadata.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pkgs = m["packages"].as_array().unwrap();
    let ours: BTreeSet<String> = pkgs
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    pkgs.iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null())
                .filter_map(|d| d["name"].as_str())
                .filter(|d| ours.contains(*d))
                .map(str::to_string)
                .collect();
            (p["name"].as_str().unwrap().to_string(), deps)
        })
        .collect()
}

/// What breaks the layering: a dependency on a crate not below, on a tool, or an unknown crate.
fn layering(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let layer: BTreeMap<&str, u32> = LAYERS.iter().copied().collect();
    let mut bad = Vec::new();
    for (krate, deps) in graph {
        if TOOLS.contains(&krate.as_str()) {
            continue;
        }
        let Some(&own) = layer.get(krate.as_str()) else {
            bad.push(format!(
                "{krate}: not in LAYERS (docs/ARCHITECTURE.md): place it"
            ));
            continue;
        };
        for d in deps {
            match layer.get(d.as_str()) {
                Some(&l) if l < own => {}
                Some(_) => bad.push(format!("{krate} depends on {d}, which is not below it")),
                None => bad.push(format!(
                    "{krate} depends on {d}, a tool or an unknown crate"
                )),
            }
        }
    }
    bad
}

#[test]
fn crates_depend_only_downwards_and_never_on_the_tools() {
    let bad = layering(&dependencies());
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn unsafe_only_in_hakit_sys() {
    let mut bad = Vec::new();
    for p in sources() {
        let path = p.to_string_lossy().to_string();
        if path.starts_with("crates/sys/") {
            continue;
        }
        for n in unsafe_uses(&code_only(&std::fs::read_to_string(&p).unwrap())) {
            bad.push(format!("{path}:{n}"));
        }
    }
    assert!(
        bad.is_empty(),
        "unsafe outside hakit-sys:\n{}",
        bad.join("\n")
    );
}

#[test]
fn every_file_says_what_it_is() {
    let bad: Vec<String> = sources()
        .into_iter()
        .filter(|p| {
            let t = std::fs::read_to_string(p).unwrap();
            !t.lines()
                .find(|l| !l.trim().is_empty())
                .is_some_and(|l| l.starts_with("//!"))
        })
        .map(|p| p.to_string_lossy().to_string())
        .collect();
    assert!(
        bad.is_empty(),
        "files without a //! line first:\n{}",
        bad.join("\n")
    );
}

#[test]
fn no_function_over_its_budget_that_is_not_already_known() {
    let known: BTreeMap<&str, usize> = OVER_BUDGET.iter().copied().collect();
    let mut found = BTreeMap::new();
    for p in sources() {
        let path = p.to_string_lossy().to_string();
        if path.starts_with("crates/docgen/") {
            continue;
        }
        found.extend(over_budget(
            &path,
            &code_only(&std::fs::read_to_string(&p).unwrap()),
        ));
    }
    let mut bad = Vec::new();
    for (f, len) in &found {
        match known.get(f.as_str()) {
            None => bad.push(format!("{f}: {len} lines, over its budget ({FN_BUDGET}, the lab {FN_BUDGET_LAB}): split it")),
            Some(&was) if *len > was => bad.push(format!("{f}: grew from {was} to {len} lines")),
            Some(_) => {}
        }
    }
    for (f, was) in &known {
        if !found.contains_key(*f) {
            bad.push(format!(
                "{f} ({was} lines) is within budget now: remove it from OVER_BUDGET"
            ));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn no_file_over_its_budget_that_is_not_already_known() {
    let known: BTreeMap<&str, usize> = FILES_OVER_BUDGET.iter().copied().collect();
    let mut bad = Vec::new();
    let mut found = BTreeSet::new();
    for p in sources() {
        let path = p.to_string_lossy().to_string();
        let n = lines_before_tests(&std::fs::read_to_string(&p).unwrap());
        if n <= FILE_BUDGET {
            continue;
        }
        match known.get(path.as_str()) {
            None => bad.push(format!(
                "{path}: {n} lines, over the budget of {FILE_BUDGET}: split it"
            )),
            Some(&was) if n > was => bad.push(format!("{path}: grew from {was} to {n} lines")),
            Some(_) => {}
        }
        found.insert(path);
    }
    for (f, was) in &known {
        if !found.contains(*f) {
            bad.push(format!(
                "{f} ({was} lines) is within budget now: remove it from FILES_OVER_BUDGET"
            ));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn no_numbered_steps_in_comments() {
    let mut bad = Vec::new();
    for p in sources() {
        for n in numbered_steps(&std::fs::read_to_string(&p).unwrap()) {
            bad.push(format!("{}:{n}", p.display()));
        }
    }
    assert!(
        bad.is_empty(),
        "numbered steps (they drift; say what, not which number):\n{}",
        bad.join("\n")
    );
}

/// Each checker fails on a planted violation, and passes what is allowed.
#[test]
fn every_checker_bites() {
    // Layering: a core that reaches up, a shipped crate on a tool, a crate nobody placed.
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.insert("hakit-core".into(), ["hakit-sys".into()].into());
    assert!(layering(&g).is_empty());
    g.insert("hakit-core".into(), ["hakit-notify".into()].into());
    g.insert(
        "hakit-check".into(),
        ["hakit-lab".into(), "hakit-notify".into()].into(),
    );
    g.insert("hakit-new".into(), BTreeSet::new());
    let bad = layering(&g);
    assert_eq!(bad.len(), 4, "{bad:?}");
    // unsafe: in code, not in a comment, a string or a longer word.
    let code = code_only(
        "// unsafe here\nlet s = \"unsafe\";\nfn not_unsafe_at_all() {}\nunsafe { f() }\n",
    );
    assert_eq!(unsafe_uses(&code), [4]);
    // Function length: braces in strings, chars and comments do not count; a
    // declaration without a body is not a function; the test module is skipped.
    let long = format!(
        "pub(crate) fn long() {{\n    let c = '{{';\n    let s = \"}}\";\n    // }}\n{}}}\nfn decl();\nfn short<'a>(x: &'a str) -> &'a str {{ x }}\n#[cfg(test)]\nmod tests {{\n    fn huge() {{\n{}    }}\n}}\n",
        "    x();\n".repeat(FN_BUDGET),
        "    y();\n".repeat(500)
    );
    let f = functions(&code_only(&long));
    assert_eq!(
        f,
        [
            ("long".to_string(), 1, FN_BUDGET + 5),
            ("short".to_string(), FN_BUDGET + 7, 1)
        ]
    );
    assert_eq!(
        over_budget("crates/core/src/x.rs", &code_only(&long)),
        [("crates/core/src/x.rs::long".to_string(), FN_BUDGET + 5)]
    );
    assert!(over_budget("crates/lab/src/x.rs", &code_only(&long)).is_empty());
    // File length: the tests do not count; a speaker's file has the smaller budget.
    assert_eq!(
        (
            file_budget("crates/bgp/src/x.rs"),
            file_budget("crates/notify/src/x.rs")
        ),
        (FILE_BUDGET_BGP, FILE_BUDGET)
    );
    assert_eq!(
        lines_before_tests("//! x\nfn a() {}\n#[cfg(test)]\nmod tests {}\n"),
        2
    );
    // Numbered steps in comments, not in code or in words like "steps".
    assert_eq!(
        numbered_steps("/// Step 4: claim\n// two steps 3 times\nlet step = 4;\n# step 2 of 3\n"),
        [1, 4]
    );
}
