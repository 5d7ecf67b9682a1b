//! The configuration file shared by all hakit binaries.
//!
//! One TOML file (default `/etc/hakit/hakit.toml`, `--config PATH` or `HAKIT_CONFIG`),
//! one table per binary plus `[general]`. Every key is also a flag and an environment
//! variable (`HAKIT_<TABLE>_<KEY>`); the precedence is flag > env > file > default. Flags
//! and env are resolved by clap (`env = …` on each argument, no clap default), the file and
//! the default by [`pick`], so each binary states its precedence in one line per key.
//!
//! Every table is `deny_unknown_fields`: a typo such as `cuont = 3` is a configuration
//! error naming the key and its line, never a silently ignored setting. Each binary parses
//! the whole file, so a typo in another binary's table is caught by whichever runs first.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use crate::{duration::HDuration, exit::usage_error};

/// Where the file is looked for when neither `--config` nor `HAKIT_CONFIG` is given.
pub const DEFAULT_PATH: &str = "/etc/hakit/hakit.toml";

/// The whole file. Absent tables are empty.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    #[serde(default)]
    pub general: General,
    #[serde(default)]
    pub garp: Garp,
}

/// `[general]`: settings every binary shares.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct General {
    /// Datagram socket of the system logger (`HAKIT_SYSLOG_SOCKET`, default `/dev/log`).
    pub syslog_socket: Option<PathBuf>,
    /// Runtime directory for locks and recorded state (`HAKIT_RUNTIME_DIR`, default `/run/hakit`).
    pub runtime_dir: Option<PathBuf>,
    /// Directory of the Prometheus node_exporter textfile collector (`HAKIT_TEXTFILE_DIR`).
    pub textfile_dir: Option<PathBuf>,
}

/// `[garp]`: defaults for `garp-burst` and for the GARP step of `nat-notify`.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Garp {
    pub interface: Option<String>,
    pub ips: Option<Vec<IpAddr>>,
    pub count: Option<u32>,
    pub interval: Option<HDuration>,
    pub reply: Option<bool>,
}

/// Flag-or-env (already merged by clap), then file, then default.
pub fn pick<T>(cli: Option<T>, file: Option<T>, default: T) -> T {
    cli.or(file).unwrap_or(default)
}

/// Loads the configuration. `explicit` is `--config`/`HAKIT_CONFIG`: when given, the file
/// must exist; otherwise [`DEFAULT_PATH`] is read if present and an absent file means
/// "all defaults". Every error is a usage error (exit 2) naming the file.
pub fn load(explicit: Option<&Path>) -> anyhow::Result<File> {
    let (path, required) = match explicit {
        Some(p) => (p, true),
        None => (Path::new(DEFAULT_PATH), false),
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(File::default())
        }
        Err(e) => {
            return Err(usage_error(format!(
                "cannot read config {}: {e}",
                path.display()
            )))
        }
    };
    parse(&text).map_err(|msg| usage_error(format!("config {}:{msg}", path.display())))
}

/// Parses file text; the error is one line, `LINE:COL: message`.
pub fn parse(text: &str) -> Result<File, String> {
    toml::from_str(text).map_err(|e| {
        let (line, col) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
        let msg = e.message().replace('\n', " ");
        format!("{line}:{col}: {}", msg.trim())
    })
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.chars().rev().take_while(|&c| c != '\n').count() + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn parses_a_full_file() {
        let f = parse(
            r#"
[general]
syslog_socket = "/tmp/log.sock"
runtime_dir = "/tmp/hakit"

[garp]
interface = "eth0"
ips = ["192.0.2.10", "2001:db8::10"]
count = 3
interval = "1.5s"
reply = true
"#,
        )
        .unwrap();
        assert_eq!(
            f.general.syslog_socket,
            Some(PathBuf::from("/tmp/log.sock"))
        );
        assert_eq!(f.garp.count, Some(3));
        assert_eq!(f.garp.interval.unwrap().get(), Duration::from_millis(1500));
        assert_eq!(f.garp.ips.as_ref().unwrap().len(), 2);
    }

    #[test]
    fn unknown_keys_are_named_with_their_line() {
        let err = parse("[garp]\ninterface = \"eth0\"\ncuont = 3\n").unwrap_err();
        assert!(err.starts_with("3:1:"), "{err}");
        assert!(err.contains("unknown field `cuont`"), "{err}");
        assert!(!err.contains('\n'));
        let err = parse("[garpp]\n").unwrap_err();
        assert!(err.contains("unknown field `garpp`"), "{err}");
    }

    #[test]
    fn bad_values_are_refused() {
        let err = parse("[garp]\ninterval = \"200\"\n").unwrap_err();
        assert!(err.contains("invalid duration"), "{err}");
        let err = parse("[garp]\nips = [\"192.0.2.300\"]\n").unwrap_err();
        assert!(err.starts_with("2:"), "{err}");
    }

    #[test]
    fn precedence_is_flag_then_file_then_default() {
        assert_eq!(pick(Some(1), Some(2), 3), 1);
        assert_eq!(pick(None, Some(2), 3), 2);
        assert_eq!(pick(None::<u32>, None, 3), 3);
    }

    #[test]
    fn missing_explicit_file_is_a_usage_error() {
        let e = load(Some(Path::new("/nonexistent/hakit.toml"))).unwrap_err();
        assert_eq!(crate::Exit::of_error(&e), crate::Exit::Usage);
        assert!(format!("{e:#}").contains("/nonexistent/hakit.toml"));
    }
}
