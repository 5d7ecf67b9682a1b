//! A tiny server for the lab: answers every HTTP request with a fixed status (default 204),
//! or, with `--banner TEXT`, writes TEXT on every connection (an SSH-like banner). Runs
//! until killed. Usage: hakit-lab-http ADDR:PORT [--status N] [--banner TEXT] [--pidfile P]

use std::{
    io::{Read, Write},
    net::TcpListener,
    thread,
};

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(addr) = args.first() else {
        eprintln!("usage: hakit-lab-http ADDR:PORT [--status N] [--banner TEXT] [--pidfile P]");
        return std::process::ExitCode::from(2);
    };
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let status: u16 = opt("--status").and_then(|s| s.parse().ok()).unwrap_or(204);
    let banner = opt("--banner");
    if let Some(p) = opt("--pidfile") {
        let _ = std::fs::write(p, format!("{}\n", std::process::id()));
    }
    let listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("hakit-lab-http: bind {addr}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("listening on {addr}");
    for conn in listener.incoming().flatten() {
        let banner = banner.clone();
        thread::spawn(move || {
            let mut c = conn;
            if let Some(b) = banner {
                let _ = c.write_all(format!("{b}\r\n").as_bytes());
                return;
            }
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 65536 {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let _ = c.write_all(
                format!("HTTP/1.1 {status} Lab\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
        });
    }
    std::process::ExitCode::SUCCESS
}
