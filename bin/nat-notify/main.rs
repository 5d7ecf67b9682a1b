//! `nat-notify`: keepalived's notify hook for a NAT gateway. Thin main: parse, hand over
//! to `hakit_notify::run`, map the outcome to an exit code.

use hakit_cli::nat_notify::{Cli, IDENT};
use hakit_core::cli;

fn main() -> std::process::ExitCode {
    let cli: Cli = cli::parse(IDENT);
    cli::finish(IDENT, hakit_notify::run::run(cli))
}
