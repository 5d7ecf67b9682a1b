//! The configuration file shared by all hakit binaries: the loader, `[general]` and the
//! value types every table may use ([`Cidr`]). Each other table's types live in the crate
//! that uses them: `[garp]` in hakit-net (`garp::Garp`), `[notify]` in hakit-notify,
//! `[check]` in hakit-check, `[fip]` in hakit-fip, `[bgp]` in hakit-bgp; a binary names
//! the tables it reads as [`File`]'s type parameters.
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

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::exit::usage_error;

/// Where the file is looked for when neither `--config` nor `HAKIT_CONFIG` is given.
pub const DEFAULT_PATH: &str = "/etc/hakit/hakit.toml";

/// The whole file. Absent tables are empty.
///
/// Each binary reads the tables it uses with their types and the others' as
/// [`Skip`], so a binary links only its own tables' parsers (garp-burst must stay under
/// 1 MiB). Unknown *tables* are refused by every binary; unknown keys inside a table are
/// refused by the binaries that read that table.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File<G = Skip, N = Skip, C = Skip, F = Skip, B = Skip> {
    #[serde(default)]
    pub general: General,
    /// `[garp]`: its type lives in `hakit-net`, with the frames it configures.
    #[serde(default)]
    pub garp: G,
    /// `[notify]`: its types live in `hakit-notify`, which owns them.
    #[serde(default)]
    pub notify: N,
    /// `[check]`: its types live in `hakit-check`, which owns them.
    #[serde(default)]
    pub check: C,
    /// `[fip]`: its types live in `hakit-fip`, which owns them.
    #[serde(default)]
    pub fip: F,
    /// `[bgp]`: the local BGP speaker (its type lives in `hakit-bgp`, which owns it).
    #[serde(default)]
    pub bgp: B,
}

/// A table another binary reads: accepted as is, checked by that binary.
pub type Skip = serde::de::IgnoredAny;

/// A configuration view with the shared `[general]` table.
pub trait ConfigFile: for<'de> Deserialize<'de> + Default {
    fn general(&self) -> &General;
}

impl<G, N, C, F, B> ConfigFile for File<G, N, C, F, B>
where
    B: for<'de> Deserialize<'de> + Default,
    G: for<'de> Deserialize<'de> + Default,
    N: for<'de> Deserialize<'de> + Default,
    C: for<'de> Deserialize<'de> + Default,
    F: for<'de> Deserialize<'de> + Default,
{
    fn general(&self) -> &General {
        &self.general
    }
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
    /// The pair's name, on every metric as `pair="…"` (alerts count MASTERs per pair).
    pub pair: Option<String>,
}

/// An address with a prefix length, `203.0.113.10/32` or `2001:db8::10/128`; a bare
/// address means a host prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub addr: std::net::IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// The first and the last address of the prefix (`198.51.100.0/24`: `.0` and `.255`).
    pub fn bounds(&self) -> (std::net::IpAddr, std::net::IpAddr) {
        use std::net::IpAddr::{V4, V6};
        match self.addr {
            V4(n) => {
                let host = u32::MAX.checked_shr(u32::from(self.prefix)).unwrap_or(0);
                let first = u32::from(n) & !host;
                (V4(first.into()), V4((first | host).into()))
            }
            V6(n) => {
                let host = u128::MAX.checked_shr(u32::from(self.prefix)).unwrap_or(0);
                let first = u128::from(n) & !host;
                (V6(first.into()), V6((first | host).into()))
            }
        }
    }

    /// Whether `ip` falls inside this prefix.
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr::{V4, V6};
        match (self.addr, ip) {
            (V4(n), V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (V6(n), V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let bad = || format!("invalid address/prefix {s:?}: expected e.g. 203.0.113.10/32");
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: std::net::IpAddr = a.trim().parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.trim().parse::<u8>().map_err(|_| bad())?,
            None => max,
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(Cidr { addr, prefix })
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Flag-or-env (already merged by clap), then file, then default.
pub fn pick<T>(cli: Option<T>, file: Option<T>, default: T) -> T {
    cli.or(file).unwrap_or(default)
}

/// The largest configuration file read (the annotated example is ~5 KB).
pub const MAX_CONFIG: u64 = 1 << 20;

/// Loads the configuration. `explicit` is `--config`/`HAKIT_CONFIG`: when given, the file
/// must exist; otherwise [`DEFAULT_PATH`] is read if present and an absent file means
/// "all defaults". Every error is a usage error (exit 2) naming the file.
pub fn load<F: ConfigFile>(explicit: Option<&Path>) -> anyhow::Result<F> {
    let (path, required) = match explicit {
        Some(p) => (p, true),
        None => (Path::new(DEFAULT_PATH), false),
    };
    if !required && !path.exists() {
        return Ok(F::default());
    }
    let text = crate::runtime::read_file(path, MAX_CONFIG, crate::runtime::Trust::Config)
        .map_err(|e| usage_error(format!("cannot read {e:#}")))?;
    parse(&text).map_err(|msg| usage_error(format!("config {}:{msg}", path.display())))
}

/// Parses file text; the error is one line, `LINE:COL: message`.
pub fn parse<F: ConfigFile>(text: &str) -> Result<F, String> {
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
    use crate::HDuration;
    use std::{net::IpAddr, time::Duration};

    /// A table as the owning crates write theirs (the loader's tests need one).
    #[derive(Debug, Default, Clone, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Garp {
        interface: Option<String>,
        ips: Option<Vec<IpAddr>>,
        count: Option<u32>,
        interval: Option<HDuration>,
        reply: Option<bool>,
    }
    type File = super::File<Garp>;

    #[test]
    fn parses_a_full_file() {
        let f: File = parse(
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
        let err = parse::<File>("[garp]\ninterface = \"eth0\"\ncuont = 3\n").unwrap_err();
        assert!(err.starts_with("3:1:"), "{err}");
        assert!(err.contains("unknown field `cuont`"), "{err}");
        assert!(!err.contains('\n'));
        let err = parse::<File>("[garpp]\n").unwrap_err();
        assert!(err.contains("unknown field `garpp`"), "{err}");
    }

    #[test]
    fn bad_values_are_refused() {
        let err = parse::<File>("[garp]\ninterval = \"200\"\n").unwrap_err();
        assert!(err.contains("invalid duration"), "{err}");
        let err = parse::<File>("[garp]\nips = [\"192.0.2.300\"]\n").unwrap_err();
        assert!(err.starts_with("2:"), "{err}");
    }

    #[test]
    fn cidr_parses_and_matches() {
        let c: Cidr = "198.51.100.0/24".parse().unwrap();
        assert!(c.contains("198.51.100.77".parse().unwrap()));
        assert!(!c.contains("198.51.101.1".parse().unwrap()));
        assert!("0.0.0.0/0"
            .parse::<Cidr>()
            .unwrap()
            .contains("203.0.113.1".parse().unwrap()));
        for bad in ["198.51.100.0/33", "x/24", "2001:db8::/129", "1.2.3.4/"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn precedence_is_flag_then_file_then_default() {
        assert_eq!(pick(Some(1), Some(2), 3), 1);
        assert_eq!(pick(None, Some(2), 3), 2);
        assert_eq!(pick(None::<u32>, None, 3), 3);
    }

    #[test]
    fn missing_explicit_file_is_a_usage_error() {
        let e = load::<File>(Some(Path::new("/nonexistent/hakit.toml"))).unwrap_err();
        assert_eq!(crate::Exit::of_error(&e), crate::Exit::Usage);
        assert!(format!("{e:#}").contains("/nonexistent/hakit.toml"));
    }
}
