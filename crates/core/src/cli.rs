//! Command-line pieces every binary shares, and the end of every `main`.

use std::path::PathBuf;

use clap::Args;

use crate::{exit::Exit, logging};

/// Flags every hakit binary accepts.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Configuration file [default: /etc/hakit/hakit.toml if present]
    #[arg(long, global = true, env = "HAKIT_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// More log detail (-v debug, -vv trace) and log to stderr too; RUST_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Syslog datagram socket [default: /dev/log]
    #[arg(long, global = true, env = "HAKIT_SYSLOG_SOCKET", value_name = "PATH")]
    pub syslog_socket: Option<PathBuf>,

    /// When parsing finished: the origin of `-v` log timestamps.
    #[arg(skip = std::time::Instant::now())]
    pub start: std::time::Instant,
}

impl Common {
    /// Loads the config file and starts logging; the syslog socket follows the usual
    /// precedence (flag > env > file > default).
    pub fn init<F: crate::config::ConfigFile>(&self, ident: &'static str) -> anyhow::Result<F> {
        // Run by keepalived, a hook or check inherits its real time (hakit's unit drop-in):
        // none of hakit's work needs it but the monitor's, which sets its own. Before any
        // thread or child exists, so that all of them are normal too.
        let normal = hakit_sys::sched::normal();
        // Log set-up must not depend on a file that may be broken: start with flag/env,
        // then re-read the socket path from the file only if neither gave one.
        let file = crate::config::load::<F>(self.config.as_deref());
        let socket = self.syslog_socket.clone().or_else(|| {
            file.as_ref()
                .ok()
                .and_then(|f| f.general().syslog_socket.clone())
        });
        logging::init(&logging::Options {
            ident,
            verbose: self.verbose,
            syslog_socket: socket,
            start: self.start,
        });
        if let Err(e) = normal {
            log::warn!("still real-time as started: {e:#}");
        }
        file
    }
}

/// Turns the result of a binary's `run` into its exit status, reporting an error once.
pub fn finish(ident: &'static str, result: anyhow::Result<Exit>) -> std::process::ExitCode {
    match result {
        Ok(code) => code.into(),
        Err(err) => {
            logging::report_fatal(ident, &err);
            Exit::of_error(&err).into()
        }
    }
}

/// Parses the command line; a usage error is printed by clap with exit status 2 and also
/// sent to syslog, since under keepalived nobody reads stderr.
pub fn parse<P: clap::Parser>(ident: &'static str) -> P {
    match P::try_parse() {
        Ok(p) => p,
        Err(e) => usage_exit(ident, e),
    }
}

/// [`parse`] with a command built at run time (ha-check adds its probe kinds' shortcuts to
/// its derived definitions): the parsed definitions and the matches, for what they lack.
pub fn parse_command<P: clap::FromArgMatches>(
    ident: &'static str,
    mut cmd: clap::Command,
) -> (P, clap::ArgMatches) {
    let parsed = cmd
        .try_get_matches_from_mut(std::env::args_os())
        .and_then(|m| P::from_arg_matches(&m).map(|p| (p, m)))
        .map_err(|e| e.format(&mut cmd));
    match parsed {
        Ok(p) => p,
        Err(e) => usage_exit(ident, e),
    }
}

/// Reports a command-line error clap found and exits: a usage error is one line on stderr
/// and in syslog, exit 2; `--help` and `--version` print and exit 0.
fn usage_exit(ident: &'static str, e: clap::Error) -> ! {
    if e.use_stderr() {
        // One line, as every usage error of ours: clap's own adds a "try --help"
        // paragraph (and usage blocks for some errors).
        let text = e.to_string();
        let first = text.lines().next().unwrap_or_default();
        let socket = std::env::var_os("HAKIT_SYSLOG_SOCKET").map(PathBuf::from);
        logging::syslog_once(ident, socket, &format!("usage error: {first}"));
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "{first} (see {ident} --help)");
        std::process::exit(Exit::Usage as i32);
    }
    e.exit()
}

/// Set once standard output has been closed by its reader (`nat-notify status | head -1`).
static STDOUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Writes one line to standard output. A reader that went away (`| head -1`, `| true`) is
/// a normal end of output, never a panic: later lines are dropped and the exit status
/// stays the one the work earned. Other write errors are logged once.
pub fn write_line(args: std::fmt::Arguments<'_>) {
    use std::{io::Write, sync::atomic::Ordering};
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    let res = out
        .write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    if let Err(e) = res {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            log::warn!("standard output: {e}");
        }
    }
}

/// `println!` that survives a closed pipe: see [`write_line`].
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::write_line(format_args!($($arg)*))
    };
}
