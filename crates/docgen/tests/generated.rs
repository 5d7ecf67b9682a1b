//! The generated man pages and completions, read by the programs that read them: `man`
//! (with groff's warnings on), bash, fish and an interactive zsh on a pseudo-terminal.
//! What each must show is derived from the clap definitions themselves: every visible
//! long flag of every command and subcommand, every subcommand name, every enumerated
//! value. A flag added to a binary is checked here without touching this file.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command as Proc,
};

use clap::Command;

/// The generator's output in a private directory, removed when the test ends.
struct Generated(PathBuf);

impl Generated {
    fn new(tag: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("hakit-docgen-test-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let status = Proc::new(env!("CARGO_BIN_EXE_hakit-docgen"))
            .arg("--out")
            .arg(&dir)
            .status()
            .expect("run hakit-docgen");
        assert!(status.success(), "hakit-docgen failed: {status}");
        Generated(dir)
    }
}

impl Drop for Generated {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A missing reader is a loud skip locally and a failure under CI (`make deps` installs
/// all of them).
fn have(test: &str, tool: &str) -> bool {
    hakit_lab::require(test, tool).is_some()
}

/// One command line to complete and the words its completion must offer.
struct Query {
    line: String,
    expect: BTreeSet<String>,
}

/// Every visible command path of every binary: `nat-notify`, `nat-notify master`, ...
fn paths() -> Vec<(Vec<String>, Command)> {
    fn walk(prefix: Vec<String>, cmd: &Command, out: &mut Vec<(Vec<String>, Command)>) {
        out.push((prefix.clone(), cmd.clone()));
        for sub in cmd.get_subcommands() {
            if sub.is_hide_set() || sub.get_name() == "help" {
                continue;
            }
            let mut p = prefix.clone();
            p.push(sub.get_name().to_string());
            walk(p, sub, out);
        }
    }
    let mut out = Vec::new();
    for mut cmd in hakit_docgen::commands() {
        cmd.build();
        walk(vec![cmd.get_name().to_string()], &cmd, &mut out);
    }
    out
}

fn visible_longs(cmd: &Command) -> BTreeSet<String> {
    cmd.get_arguments()
        .filter(|a| !a.is_hide_set())
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .collect()
}

/// For each command path: `path --` offers every long flag; `path ` offers every
/// subcommand; `path --flag ` offers every value of an enumerated flag.
fn queries() -> Vec<Query> {
    let mut q = Vec::new();
    for (path, cmd) in paths() {
        let base = path.join(" ");
        q.push(Query {
            line: format!("{base} --"),
            expect: visible_longs(&cmd),
        });
        let subs: BTreeSet<String> = cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help")
            .map(|s| s.get_name().to_string())
            .collect();
        if !subs.is_empty() {
            q.push(Query {
                line: format!("{base} "),
                expect: subs,
            });
        }
        for a in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
            let (Some(long), values) = (a.get_long(), a.get_possible_values()) else {
                continue;
            };
            if values.is_empty() || !a.get_action().takes_values() {
                continue;
            }
            q.push(Query {
                line: format!("{base} --{long} "),
                expect: values.iter().map(|v| v.get_name().to_string()).collect(),
            });
        }
    }
    q
}

fn missing(shown: &str, q: &Query, shell: &str) -> Vec<String> {
    let words: BTreeSet<&str> = shown
        .split(|c: char| c.is_whitespace() || c == '\t')
        .collect();
    let absent: Vec<String> = q
        .expect
        .iter()
        .filter(|w| !words.contains(w.as_str()))
        .cloned()
        .collect();
    if !absent.is_empty() {
        eprintln!("{shell}: `{}` offered:\n{shown}", q.line);
    }
    absent
}

fn assert_all(shell: &str, run: impl Fn(&Query) -> String) {
    let qs = queries();
    assert!(qs.len() >= 30, "too few completion queries: {}", qs.len());
    let mut failures = Vec::new();
    for q in &qs {
        let shown = run(q);
        let absent = missing(&shown, q, shell);
        if !absent.is_empty() {
            failures.push(format!("`{}` lacks {}", q.line, absent.join(" ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{shell} completion: {} of {} queries wrong:\n{}",
        failures.len(),
        qs.len(),
        failures.join("\n")
    );
}

fn output(cmd: &mut Proc) -> String {
    let o = cmd.output().expect("run shell");
    assert!(
        o.status.success(),
        "{cmd:?}: {}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn bash_completes_every_flag_subcommand_and_value() {
    if !have("bash_completes_every_flag_subcommand_and_value", "bash") {
        return;
    }
    let g = Generated::new("bash");
    let out = || g.0.as_path();
    assert_all("bash", |q| {
        let words: Vec<&str> = q.line.split(' ').collect();
        let bin = words[0];
        let file = out().join("completions/bash").join(bin);
        // What bash itself does on TAB: set COMP_WORDS/COMP_CWORD and call the function
        // `complete -p` names, with the command, the current and the previous word.
        let script = r#"
            source "$1"; shift
            COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 ))
            COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
            fn=$(complete -p "$1" | sed -n 's/.*-F \([^ ]*\) .*/\1/p')
            [ -n "$fn" ] || { echo "no completion registered for $1" >&2; exit 1; }
            "$fn" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
            printf '%s\n' "${COMPREPLY[@]}"
        "#;
        output(
            Proc::new("bash")
                .args(["--norc", "--noprofile", "-c", script, "bash"])
                .arg(&file)
                .args(&words),
        )
    });
}

#[test]
fn fish_completes_every_flag_subcommand_and_value() {
    if !have("fish_completes_every_flag_subcommand_and_value", "fish") {
        return;
    }
    let g = Generated::new("fish");
    let out = || g.0.as_path();
    assert_all("fish", |q| {
        let bin = q.line.split(' ').next().unwrap_or_default();
        let file = out().join(format!("completions/fish/{bin}.fish"));
        output(Proc::new("fish").args(["--no-config", "-c"]).arg(format!(
            "source {}; complete -C{}",
            shell_quote(&file.to_string_lossy()),
            shell_quote(&q.line)
        )))
    });
}

#[test]
fn zsh_completes_every_flag_subcommand_and_value() {
    if !have("zsh_completes_every_flag_subcommand_and_value", "zsh") {
        return;
    }
    let g = Generated::new("zsh");
    let out = || g.0.as_path();
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/zsh-complete.zsh");
    assert_all("zsh", |q| {
        let raw = output(
            Proc::new("timeout")
                .args(["20", "zsh", "-f"])
                .arg(&driver)
                .arg(out().join("completions/zsh"))
                .arg(&q.line),
        );
        strip_ansi(&raw)
    });
}

#[test]
fn man_pages_render_cleanly_and_document_every_flag() {
    if !have("man_pages_render_cleanly_and_document_every_flag", "man") {
        return;
    }
    let g = Generated::new("man");
    let out = || g.0.as_path();
    let mut pages = 0;
    for (path, cmd) in paths() {
        let page = out().join(format!("man/man8/{}.8", path.join("-")));
        let text = man_clean(&page);
        for flag in visible_longs(&cmd) {
            assert!(
                text.contains(&flag),
                "{} does not document {flag}",
                page.display()
            );
        }
        for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "FILES", "SEE ALSO"] {
            assert!(
                text.lines().any(|l| l == section),
                "{} has no {section} section",
                page.display()
            );
        }
        if path.len() == 1 {
            assert!(
                text.lines().any(|l| l == "EXIT STATUS"),
                "{} has no EXIT STATUS section",
                page.display()
            );
        }
        pages += 1;
    }
    // hakit.toml(5), from the configuration schema: renders cleanly, every table in it.
    let text = man_clean(&out().join("man/man5/hakit.toml.5"));
    for (table, _, _) in hakit_docgen::config_man::TABLES {
        assert!(
            text.lines().any(|l| l == table),
            "hakit.toml(5) has no {table} section"
        );
    }
    for key in [
        "pair",
        "fifo_heartbeat",
        "snat_to",
        "announce",
        "speaker",
        "watch_peer",
    ] {
        assert!(text.contains(key), "hakit.toml(5) does not document {key}");
    }
    let on_disk = std::fs::read_dir(out().join("man/man8"))
        .expect("man8")
        .count();
    assert_eq!(
        pages, on_disk,
        "a man page without a command, or the reverse"
    );
}

/// `man -l PAGE` with every groff warning on: the text, which must come without a warning.
fn man_clean(page: &std::path::Path) -> String {
    let o = Proc::new("man")
        .args(["--warnings=all", "-P", "cat", "-l"])
        .arg(page)
        .env("MANWIDTH", "200")
        .env("LC_ALL", "C")
        .output()
        .expect("run man");
    let warnings = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && warnings.trim().is_empty(),
        "{}: man says {}\n{warnings}",
        page.display(),
        o.status
    );
    // groff inserts backspace overstrikes for bold in -P cat output; drop them.
    strip_overstrike(&String::from_utf8_lossy(&o.stdout))
}

fn strip_overstrike(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '\u{8}' {
            out.pop();
        } else {
            out.push(c);
        }
    }
    out
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for d in chars.by_ref() {
                        if d.is_ascii_alphabetic() {
                            break;
                        }
                    }
                }
            }
            '\r' | '\u{7}' | '\u{8}' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}
