//! Logging to syslog and, when someone is watching, to stderr.
//!
//! keepalived runs notify hooks and `vrrp_script`s with no terminal and discards their
//! output, so the system logger is the only place their story can be told. Lines go to the
//! datagram socket `/dev/log` (overridable, so tests bind their own) with the binary's name
//! as ident and facility `daemon`. They also go to stderr when stderr is a terminal, when
//! `-v` is given, or when no syslog socket answers (a line on a discarded stderr costs
//! nothing; a lost line at 3 a.m. costs a lot).
//!
//! Levels: `info` by default, `-v` debug, `-vv` trace; `RUST_LOG` (env_logger syntax,
//! e.g. `hakit_net=trace`) overrides both. The message format carries no timestamp:
//! syslog and journald add their own.

use std::{
    io::{IsTerminal, Write},
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
    sync::{Mutex, OnceLock},
};

use log::{Level, LevelFilter, Log, Metadata, Record};

/// Default syslog socket.
pub const DEFAULT_SYSLOG_SOCKET: &str = "/dev/log";

/// RFC 3164 facility `daemon` (3), shifted into the PRI field.
const FACILITY_DAEMON: u8 = 3 << 3;

/// The largest datagram we send; longer messages are cut (rsyslog's default limit is 8 KiB,
/// some relays use 2 KiB).
const MAX_DATAGRAM: usize = 2048;

/// How [`init`] sets logging up.
#[derive(Debug, Clone)]
pub struct Options {
    /// Syslog ident: the binary's name.
    pub ident: &'static str,
    /// Number of `-v` flags.
    pub verbose: u8,
    /// Syslog socket path; `None` means [`DEFAULT_SYSLOG_SOCKET`].
    pub syslog_socket: Option<PathBuf>,
    /// When the process started its work (for `-v` timestamps).
    pub start: std::time::Instant,
}

struct Syslog {
    sock: UnixDatagram,
    ident: &'static str,
    pid: u32,
}

impl Syslog {
    fn connect(path: &Path, ident: &'static str) -> Option<Syslog> {
        let sock = UnixDatagram::unbound().ok()?;
        sock.connect(path).ok()?;
        Some(Syslog {
            sock,
            ident,
            pid: std::process::id(),
        })
    }

    fn send(&self, level: Level, msg: &str) {
        let severity: u8 = match level {
            Level::Error => 3,
            Level::Warn => 4,
            Level::Info => 6,
            Level::Debug | Level::Trace => 7,
        };
        let mut line = format!(
            "<{}>{}[{}]: ",
            FACILITY_DAEMON | severity,
            self.ident,
            self.pid
        );
        line.push_str(&one_line(msg));
        if line.len() > MAX_DATAGRAM {
            let mut cut = MAX_DATAGRAM;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
        }
        // A full or vanished logger must never stall a failover: drop the line.
        let _ = self.sock.send(line.as_bytes());
    }
}

struct Logger {
    filter: env_logger::Logger,
    ident: &'static str,
    stderr: bool,
    syslog: Option<Syslog>,
    stderr_lock: Mutex<()>,
    /// With -v, stderr lines carry the time since start: where a slow failover spent it.
    timed: bool,
    start: std::time::Instant,
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        self.filter.enabled(metadata)
    }

    fn log(&self, record: &Record) {
        if !self.filter.matches(record) {
            return;
        }
        let msg = one_line(&record.args().to_string());
        if let Some(s) = &self.syslog {
            s.send(record.level(), &msg);
        }
        if self.stderr {
            let _g = self.stderr_lock.lock();
            let level = record.level().as_str().to_ascii_lowercase();
            if self.timed {
                let ms = self.start.elapsed().as_secs_f64() * 1000.0;
                let _ = writeln!(
                    std::io::stderr(),
                    "{}: {level}: [+{ms:.3}ms] {msg}",
                    self.ident
                );
            } else {
                let _ = writeln!(std::io::stderr(), "{}: {level}: {msg}", self.ident);
            }
        }
    }

    fn flush(&self) {}
}

static LOGGER: OnceLock<&'static Logger> = OnceLock::new();

/// Installs the global logger. Calling it twice keeps the first set-up.
pub fn init(opts: &Options) {
    let base = match opts.verbose {
        0 => LevelFilter::Info,
        1 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    };
    let mut b = env_logger::Builder::new();
    b.filter_level(base);
    if let Ok(spec) = std::env::var("RUST_LOG") {
        b.parse_filters(&spec);
    }
    let filter = b.build();
    let path = opts
        .syslog_socket
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SYSLOG_SOCKET));
    let syslog = Syslog::connect(&path, opts.ident);
    let stderr = std::io::stderr().is_terminal() || opts.verbose > 0 || syslog.is_none();
    let max = filter.filter();
    let logger: &'static Logger = Box::leak(Box::new(Logger {
        filter,
        ident: opts.ident,
        stderr,
        syslog,
        stderr_lock: Mutex::new(()),
        timed: opts.verbose > 0,
        start: opts.start,
    }));
    if LOGGER.set(logger).is_ok() && log::set_logger(logger).is_ok() {
        log::set_max_level(max);
    }
}

/// The longest log line: provider error texts and metadata bodies (3 MiB seen) quoted in
/// an error are cut here.
pub const MAX_LINE: usize = 2000;

/// A message as one log line: newlines become spaces, other control characters (terminal
/// escapes included) are escaped, and it is cut at [`MAX_LINE`] characters. Whatever a
/// provider, a config file or keepalived sent, it cannot forge lines or drive a terminal.
pub fn one_line(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len().min(MAX_LINE));
    for (n, c) in msg.chars().enumerate() {
        if n >= MAX_LINE {
            out.push_str("… (cut)");
            break;
        }
        match c {
            '\n' | '\r' => out.push(' '),
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out
}

/// Reports the error that ends the process: once on stderr (always, scripts read it) and
/// once to syslog, never twice on the same stream.
pub fn report_fatal(ident: &str, err: &anyhow::Error) {
    let msg = one_line(&format!("{err:#}"));
    if let Some(l) = LOGGER.get() {
        if let Some(s) = &l.syslog {
            s.send(Level::Error, &msg);
        }
    }
    let _ = writeln!(std::io::stderr(), "{ident}: error: {msg}");
}

/// Sends one error line to syslog without installing a logger (for failures that happen
/// before logging is set up, such as a command line clap refused).
pub fn syslog_once(ident: &'static str, socket: Option<PathBuf>, msg: &str) {
    let path = socket.unwrap_or_else(|| PathBuf::from(DEFAULT_SYSLOG_SOCKET));
    if let Some(s) = Syslog::connect(&path, ident) {
        s.send(Level::Error, msg);
    }
}

/// hakit's own debug lines (`-v`). The `log` crate is built with `release_max_level_info`,
/// which compiles the dependencies' debug lines out of release builds (rustls's handshake,
/// ureq's and neli's internals: ~25 KB of formatting in each binary, and nothing an
/// operator of hakit reads); this macro hands hakit's own to the logger directly, so `-v`
/// still shows them.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => {
        if ::log::max_level() >= ::log::LevelFilter::Debug {
            ::log::logger().log(
                &::log::Record::builder()
                    .args(format_args!($($arg)+))
                    .level(::log::Level::Debug)
                    .target(module_path!())
                    .module_path_static(Some(module_path!()))
                    .file_static(Some(file!()))
                    .line(Some(line!()))
                    .build(),
            );
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_messages_become_one_short_clean_line() {
        let body = format!("line1\nline2\u{1b}[31mred{}", "x".repeat(3 << 20));
        let l = one_line(&body);
        assert!(l.starts_with("line1 line2\\u{1b}[31mred"), "{}", &l[..40]);
        assert!(l.chars().count() <= MAX_LINE + 20 && l.ends_with("(cut)"));
        assert!(!l.contains('\u{1b}') && !l.contains('\n'));
    }

    #[test]
    fn syslog_lines_are_single_and_prefixed() {
        let dir = std::env::temp_dir().join(format!("hakit-log-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("log.sock");
        let _ = std::fs::remove_file(&path);
        let server = UnixDatagram::bind(&path).unwrap();
        let s = Syslog::connect(&path, "garp-burst").unwrap();
        s.send(Level::Warn, "two\nlines");
        s.send(Level::Info, &"x".repeat(5000));
        let mut buf = [0u8; 8192];
        let n = server.recv(&mut buf).unwrap();
        let line = std::str::from_utf8(&buf[..n]).unwrap();
        assert_eq!(
            line,
            format!("<28>garp-burst[{}]: two lines", std::process::id())
        );
        let n = server.recv(&mut buf).unwrap();
        assert!(n <= MAX_DATAGRAM, "{n}");
        assert!(std::str::from_utf8(&buf[..n]).unwrap().ends_with("… (cut)"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
