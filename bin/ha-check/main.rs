//! `ha-check`: keepalived's `vrrp_script` for a NAT gateway. Thin main: parse, hand over
//! to `hakit_check::app`, map the outcome to an exit code.

use hakit_cli::ha_check::{Cli, IDENT};
use hakit_core::cli;

fn main() -> std::process::ExitCode {
    let cli: Cli = cli::parse(IDENT);
    cli::finish(IDENT, hakit_check::app::run(cli))
}
