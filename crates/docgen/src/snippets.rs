//! The keepalived.conf snippets in the binaries' help texts (and so in their man pages)
//! are the shipped templates' (keepalived/): the same block names, scripts, paths,
//! intervals, timeouts and weights. A help text that teaches a weight or a FIFO path the
//! templates do not use fails here.

use std::{collections::BTreeMap, path::Path};

/// Directive lines without comments or repeated blanks.
fn normal(line: &str) -> String {
    let code = line.split('#').next().unwrap_or("");
    code.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The `vrrp_script NAME { ... }` and `track_file NAME { ... }` blocks of `text`: header to
/// normalised body lines; and the other directive lines (those outside any block).
fn parse(text: &str) -> (BTreeMap<String, Vec<String>>, Vec<String>) {
    let (mut blocks, mut lines) = (BTreeMap::new(), Vec::new());
    let mut open: Option<(String, Vec<String>)> = None;
    for raw in text.lines() {
        let l = normal(raw);
        if l.is_empty() {
            continue;
        }
        match &mut open {
            Some((head, body)) if l == "}" => {
                blocks.insert(std::mem::take(head), std::mem::take(body));
                open = None;
            }
            Some((_, body)) => body.push(l),
            None if l.ends_with('{')
                && (l.starts_with("vrrp_script ") || l.starts_with("track_file ")) =>
            {
                open = Some((l.trim_end_matches('{').trim().to_string(), Vec::new()))
            }
            None => lines.push(l),
        }
    }
    (blocks, lines)
}

/// The keepalived directives of a help text: from its "keepalived.conf" paragraph(s) to
/// the next section. Annotation lines (indented deeper than the directives, outside a
/// block) explain and are skipped.
fn help_keepalived(help: &str) -> String {
    let sections = crate::after_help_sections(help);
    let mut out = String::new();
    for s in sections.iter().filter(|s| s.title == "KEEPALIVED.CONF") {
        let mut depth = 0;
        for line in &s.lines {
            let indent = line.len() - line.trim_start().len();
            if depth == 0 && indent > 2 && !line.trim_start().starts_with('}') {
                continue;
            }
            depth += line.matches('{').count();
            depth -= line.matches('}').count().min(depth);
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[test]
fn help_snippets_are_the_shipped_templates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../keepalived");
    let mut templates = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".conf") || name.ends_with(".conf.in") {
            templates.push((name, parse(&std::fs::read_to_string(&p).unwrap())));
        }
    }
    let helps = [
        ("nat-notify", hakit_cli::nat_notify::AFTER_HELP),
        ("ha-check", hakit_cli::ha_check::AFTER_HELP),
    ];
    for (bin, help) in helps {
        let (blocks, lines) = parse(&help_keepalived(help));
        assert!(
            !blocks.is_empty() || !lines.is_empty(),
            "{bin}: no keepalived.conf snippet found in its help"
        );
        for (head, body) in &blocks {
            let same: Vec<_> = templates
                .iter()
                .filter_map(|(t, (b, _))| b.get(head).map(|tb| (t, tb)))
                .collect();
            assert!(
                !same.is_empty(),
                "{bin}'s help shows `{head}`, which no template has"
            );
            for (t, tb) in same {
                assert_eq!(body, tb, "{bin}'s help and {t} disagree on `{head}`");
            }
        }
        for l in &lines {
            assert!(
                templates.iter().any(|(_, (_, tl))| tl.contains(l)),
                "{bin}'s help shows `{l}`, which no template has"
            );
        }
    }
}

#[test]
fn a_help_text_that_disagrees_is_caught() {
    let (help, _) = parse("vrrp_script chk_hakit_monitor {\n  weight -60\n}\n");
    let (tpl, _) = parse("vrrp_script chk_hakit_monitor {\n  weight -30 # comment\n}\n");
    assert_ne!(help, tpl);
    let (_, lines) = parse("  vrrp_notify_fifo /run/keepalived.fifo\n");
    assert_eq!(lines, ["vrrp_notify_fifo /run/keepalived.fifo"]);
}
