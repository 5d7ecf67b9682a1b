//! The lab's Linode routing configurations (`hakit_lab::bgp`), printed for labs built
//! outside Rust (the systemd lab installs the Linode example in two containers):
//!
//!   hakit-lab-conf route-server LINODE_ADDR6...  FRR's configuration of the route server
//!                                                that accepts the shared IP from those peers
//!   hakit-lab-conf lelastic                      gobgpd's configuration as lelastic makes it
//!
//! Exit 2 on a usage error.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let text = match args.first().map(String::as_str) {
        Some("route-server") if args.len() > 1 => {
            let peers: Vec<&str> = args[1..].iter().map(String::as_str).collect();
            hakit_lab::bgp::route_server_conf(hakit_lab::bgp::SHARED, &peers)
        }
        Some("lelastic") if args.len() == 1 => hakit_lab::bgp::lelastic_conf(),
        _ => {
            eprintln!("usage: hakit-lab-conf route-server LINODE_ADDR6... | lelastic");
            return ExitCode::from(2);
        }
    };
    print!("{text}");
    ExitCode::SUCCESS
}
