//! `ha-check`: keepalived's `vrrp_script` for a NAT gateway. Thin main: parse (hakit-cli's
//! definitions and the probe kinds' shortcuts), hand over to `hakit_check::app`, map the
//! outcome to an exit code.

use hakit_cli::ha_check::IDENT;
use hakit_core::cli;

fn main() -> std::process::ExitCode {
    let (cli, shortcut) = hakit_check::shortcut::parse(IDENT);
    cli::finish(IDENT, hakit_check::app::run(cli, shortcut))
}
