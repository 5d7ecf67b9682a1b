//! Renders the man pages and the bash, zsh and fish completions of the four binaries
//! from their own clap definitions, so the documentation cannot drift from the flags.
//! `make install` and `make deb` run `hakit-docgen`; nothing it writes is committed.
//!
//! The definitions are `hakit-cli`'s, the crate the mains parse with: this crate depends
//! on it, never the other way, which keeps the generators out of the shipped binaries,
//! whose size budget has no room for them.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

pub mod config_man;
pub mod examples;
#[cfg(test)]
mod snippets;
use clap::{Command, CommandFactory};
use clap_complete::Shell;
use roff::{bold, roman, Roff};

use hakit_cli::{fip_claim, garp_burst, nat_notify};

/// Man section 8: the binaries are system administration commands installed in /usr/sbin.
pub const SECTION: &str = "8";

/// The four command lines, each as its binary builds it.
pub fn commands() -> Vec<Command> {
    vec![
        garp_burst::Cli::command(),
        nat_notify::Cli::command(),
        hakit_check::shortcut::command(),
        fip_claim::Cli::command(),
    ]
}

/// Renders one man page per command and per visible subcommand. A built command gives
/// its subcommands the display name `parent-sub` (the page's name) and the bin name
/// `parent sub` (the synopsis).
pub fn man_pages(cmd: &Command, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut cmd = cmd.clone().disable_help_subcommand(true);
    cmd.build();
    let mut written = Vec::new();
    render_man(&cmd, dir, &[], &mut written)?;
    Ok(written)
}

fn render_man(
    cmd: &Command,
    dir: &Path,
    inherited: &[Section],
    written: &mut Vec<PathBuf>,
) -> Result<()> {
    let man = clap_mangen::Man::new(cmd.clone())
        .section(SECTION)
        .manual("hakit")
        .source(format!("hakit {}", env!("CARGO_PKG_VERSION")));
    let file = man.get_filename();
    let page = dir.join(&file);
    let name = file.strip_suffix(&format!(".{SECTION}")).unwrap_or(&file);
    let sections = page_sections(cmd, name, inherited);
    let mut buf = Vec::new();
    render_page(&man, cmd, &sections, &mut buf)
        .with_context(|| format!("rendering {}", page.display()))?;
    write(&page, &buf)?;
    written.push(page);
    // A subcommand's page has its parent's EXIT STATUS unless its help says its own.
    let exit: Vec<Section> = sections
        .into_iter()
        .filter(|s| s.title == "EXIT STATUS")
        .collect();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        render_man(sub, dir, &exit, written)?;
    }
    Ok(())
}

/// A man section made from help text (or the examples table): its title, an optional
/// first line naming it in full, and its lines, set without filling.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub title: String,
    pub lead: Option<String>,
    pub lines: Vec<String>,
}

/// The sections of page `name` after clap's: its help text's, then EXIT STATUS from its
/// parent if it has none of its own, then EXAMPLES from [`examples`] if it has none, then
/// the problems `nat-notify status` reports on its own page.
fn page_sections(cmd: &Command, name: &str, inherited: &[Section]) -> Vec<Section> {
    let mut sections = match cmd.get_after_long_help().or_else(|| cmd.get_after_help()) {
        Some(text) => after_help_sections(&text.to_string()),
        None => Vec::new(),
    };
    let has = |v: &[Section], t: &str| v.iter().any(|s| s.title == t);
    if !has(&sections, "EXAMPLES") {
        if let Some(lines) = examples::lines(name) {
            sections.push(Section {
                title: "EXAMPLES".into(),
                lead: None,
                lines,
            });
        }
    }
    if !has(&sections, "EXIT STATUS") {
        sections.extend(inherited.iter().cloned());
    }
    if name == "nat-notify-status" {
        sections.push(Section {
            title: "PROBLEMS".into(),
            lead: Some(
                "Each problem is one line after the instance's; any problem makes the exit status 1"
                    .into(),
            ),
            lines: hakit_notify::status::PROBLEMS
                .iter()
                .flat_map(|(line, why)| [format!("  {}", readable(line)), format!("      {why}")])
                .collect(),
        });
    }
    sections
}

/// clap_mangen's sections, then the after-help text as real man sections (EXIT STATUS,
/// EXAMPLES, ...) kept in no-fill mode so tables and keepalived snippets stay aligned,
/// then FILES and SEE ALSO.
fn render_page(
    man: &clap_mangen::Man,
    cmd: &Command,
    sections: &[Section],
    w: &mut Vec<u8>,
) -> std::io::Result<()> {
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(w)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(w)?;
    }
    let mut roff = Roff::new();
    for sec in sections {
        roff.control("SH", [sec.title.as_str()]);
        if let Some(lead) = &sec.lead {
            roff.text([roman(format!("{lead}:"))]);
        }
        roff.control("PP", []);
        roff.control("nf", []);
        for line in &sec.lines {
            roff.text([roman(line.as_str())]);
        }
        roff.control("fi", []);
    }
    let top = cmd
        .get_name()
        .split('-')
        .take(2)
        .collect::<Vec<_>>()
        .join("-");
    roff.control("SH", ["FILES"]);
    roff.control("TP", []);
    roff.text([bold("/etc/hakit/hakit.toml")]);
    roff.text([roman(
        "Configuration file (TOML, mode 0600 when it holds secrets); flags and HAKIT_* \
         variables override it. Annotated example: /usr/share/hakit/examples/hakit.toml.",
    )]);
    roff.control("TP", []);
    roff.text([bold("/usr/share/hakit/")]);
    roff.text([roman(
        "keepalived, nftables, conntrackd and sysctl templates (keepalived/), per-cloud \
         examples, alert rules and dashboard (examples/); the failover runbook is in \
         /usr/share/doc/hakit/docs/.",
    )]);
    roff.control("SH", ["SEE ALSO"]);
    let mut see: Vec<String> = ["garp-burst", "nat-notify", "ha-check", "fip-claim"]
        .iter()
        .filter(|n| **n != top || cmd.get_name() != top)
        .map(|n| format!("{n}(8)"))
        .collect();
    see.extend(["keepalived(8)".into(), "keepalived.conf(5)".into()]);
    roff.text([roman(see.join(", "))]);
    roff.to_writer(w)
}

/// A format string as a reader sees it: each `{…}` placeholder as "..." (ASCII: groff
/// in the C locale has no ellipsis).
fn readable(fmt: &str) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for c in fmt.chars() {
        match c {
            '{' => {
                if depth == 0 {
                    out.push_str("...");
                }
                depth += 1;
            }
            '}' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// Splits help text like "Exit codes:\n  0  ...\n\nExamples:\n  ..." into sections. A
/// paragraph whose first line is unindented and ends in ':' starts one: "Exit codes"
/// becomes EXIT STATUS, "keepalived.conf, three ways (...)" becomes KEEPALIVED.CONF with
/// the full line kept as its lead; any other paragraph continues the section before it.
pub fn after_help_sections(text: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    for para in text.split("\n\n") {
        let mut lines = para.lines().peekable();
        let Some(first) = lines.peek().copied() else {
            continue;
        };
        let heading = !first.starts_with(' ') && first.ends_with(':');
        match out.last_mut() {
            Some(last) if !heading => {
                last.lines.push(String::new());
                last.lines.extend(lines.map(str::to_string));
                continue;
            }
            _ => {}
        }
        lines.next();
        let head = first.trim_end_matches(':');
        let short = head
            .split([',', '(', ':'])
            .next()
            .unwrap_or(head)
            .trim()
            .to_uppercase();
        let title = match short.as_str() {
            "EXIT CODES" => "EXIT STATUS".to_string(),
            _ => short,
        };
        let lead = (!head.eq_ignore_ascii_case(&title) && head.to_uppercase() != "EXIT CODES")
            .then(|| head.to_string());
        out.push(Section {
            title,
            lead,
            lines: lines.map(str::to_string).collect(),
        });
    }
    out
}

pub fn completions(cmd: &Command, dir: &Path) -> Result<Vec<PathBuf>> {
    let name = cmd.get_name().to_string();
    let mut written = Vec::new();
    for (shell, file) in [
        (Shell::Bash, format!("bash/{name}")),
        (Shell::Zsh, format!("zsh/_{name}")),
        (Shell::Fish, format!("fish/{name}.fish")),
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), &name, &mut buf);
        match shell {
            Shell::Bash => buf = fix_bash_hyphen(&name, buf)?,
            Shell::Fish => buf = fix_fish_pending_value(buf)?,
            _ => {}
        }
        let path = dir.join(file);
        write(&path, &buf)?;
        written.push(path);
    }
    Ok(written)
}

/// clap_complete 4.6's bash script spells a subcommand's state two ways when the binary
/// name has a hyphen: the word loop sets `ha__check__subcmd__watch`, the case arms test
/// `ha__subcmd__check__subcmd__watch`, so nothing after a subcommand ever completes
/// (clap-rs/clap#6421, open). Respell the arms the way the loop does; once clap fixes it
/// this matches nothing and changes nothing. The completion test drives bash to prove it.
fn fix_bash_hyphen(name: &str, script: Vec<u8>) -> Result<Vec<u8>> {
    let script = String::from_utf8(script).context("bash completion is not UTF-8")?;
    let wrong = format!("{}__subcmd__", name.replace('-', "__subcmd__"));
    let right = format!("{}__subcmd__", name.replace('-', "__"));
    Ok(script.replace(&wrong, &right).into_bytes())
}

/// clap_complete 4.6's fish script guards every top-level completion with
/// `__fish_X_needs_command`, which runs `argparse` over the words typed so far and gives up
/// when that fails. It fails exactly when the last word is an option still waiting for its
/// value (`nat-notify --unknown-instance <TAB>`), so the value list is never offered.
/// A line that cannot be parsed yet has no subcommand yet: say so instead of giving up.
fn fix_fish_pending_value(script: Vec<u8>) -> Result<Vec<u8>> {
    let script = String::from_utf8(script).context("fish completion is not UTF-8")?;
    let give_up = "2>/dev/null\n    or return\n";
    Ok(script
        .replacen(give_up, "2>/dev/null\n    or return 0\n", 1)
        .into_bytes())
}

fn write(path: &Path, data: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    fs::write(path, data).with_context(|| format!("writing {}", path.display()))
}

/// Writes every man page under `out/man/man8` (and `hakit.toml(5)` under `out/man/man5`)
/// and every completion under
/// `out/completions/{bash,zsh,fish}`; returns the files written.
pub fn generate(out: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for cmd in commands() {
        written.extend(man_pages(&cmd, &out.join("man/man8"))?);
        written.extend(completions(&cmd, &out.join("completions"))?);
    }
    let page = out.join("man/man5/hakit.toml.5");
    write(&page, config_man::render().as_bytes())?;
    written.push(page);
    Ok(written)
}

#[cfg(test)]
mod tests {
    /// clap's own consistency checks (conflicting names, bad defaults, …) on all four command
    /// lines, in one place: the binaries and this crate compile the same definitions.
    #[test]
    fn every_command_line_is_consistent() {
        let cmds = super::commands();
        assert_eq!(cmds.len(), 4);
        for c in cmds {
            c.debug_assert();
        }
    }

    /// Every page of section 8 has EXAMPLES and EXIT STATUS (a subcommand's page its
    /// parent's exit codes unless it has its own), no section without a title, and
    /// nat-notify-status(8) names every problem status can report.
    #[test]
    fn every_page_has_examples_and_exit_status() {
        let dir = std::env::temp_dir().join(format!("hakit-docgen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        super::generate(&dir).unwrap();
        let mut pages = 0;
        for e in std::fs::read_dir(dir.join("man/man8")).unwrap() {
            let p = e.unwrap().path();
            let page = std::fs::read_to_string(&p).unwrap();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            for want in [".SH EXAMPLES", ".SH \"EXIT STATUS\""] {
                assert!(page.contains(want), "{name}: no {want}");
            }
            assert!(
                !page.lines().any(|l| l.trim_end() == ".SH"),
                "{name}: a section without a title"
            );
            pages += 1;
        }
        assert!(pages >= 29, "only {pages} pages");
        let status = std::fs::read_to_string(dir.join("man/man8/nat-notify-status.8")).unwrap();
        assert!(status.contains(".SH PROBLEMS"));
        for (line, _) in hakit_notify::status::PROBLEMS {
            let shown = super::readable(line)
                .replace('-', "\\-")
                .replace('\'', "\\*(Aq");
            assert!(
                status.contains(&shown),
                "nat-notify-status(8) lacks {shown}"
            );
        }
        assert!(
            status.contains("every instance is consistent"),
            "nat-notify-status(8) has nat-notify's exit codes, not its own"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
