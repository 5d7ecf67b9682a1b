//! Traffic for the failover lab: what a LAN client behind the NAT pair does, measured.
//!
//! ```text
//! hakit-lab-traffic server ADDR            TCP pattern stream on :5001, UDP echo on :5002;
//!                                          prints each client's source address (tcp/udp from)
//! hakit-lab-traffic client ADDR --stop-file F --out F.json [--tcp] [--udp-ms N ...]
//! ```
//!
//! The server sends every TCP client an endless byte pattern (byte *i* is `i % 251`, 1000
//! bytes every millisecond) and echoes every UDP datagram. The client checks the stream
//! byte by byte (a lost, duplicated or reordered byte shifts the pattern and is caught at
//! its offset), and runs one UDP flow per `--udp-ms` interval, each datagram carrying its
//! sequence number. It stops when the stop file appears, waits 300 ms for stragglers and
//! writes a JSON report: per flow, what was sent and received, the longest silence (the
//! blackout), and packets per 10 ms for the timeline.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{bail, Context};
use serde_json::{json, Value};

const TCP_PORT: u16 = 5001;
const UDP_PORT: u16 = 5002;
const CHUNK: usize = 1000;
const BIN: f64 = 0.010;

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

fn pattern(offset: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = ((offset + i as u64) % 251) as u8;
    }
}

fn server(addr: &str) -> anyhow::Result<()> {
    let tcp = TcpListener::bind((addr, TCP_PORT)).with_context(|| format!("bind {addr}"))?;
    let udp = UdpSocket::bind((addr, UDP_PORT)).with_context(|| format!("bind {addr}"))?;
    thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let mut sources = std::collections::HashSet::new();
        while let Ok((n, from)) = udp.recv_from(&mut buf) {
            // Each new source address once: the public address a NAT gave the client.
            if sources.insert(from.ip()) {
                let _ = writeln!(std::io::stdout(), "udp from {}", from.ip());
            }
            let _ = udp.send_to(&buf[..n], from);
        }
    });
    println!("serving on {addr}: tcp {TCP_PORT}, udp {UDP_PORT}");
    for conn in tcp.incoming().flatten() {
        if let Ok(peer) = conn.peer_addr() {
            let _ = writeln!(std::io::stdout(), "tcp from {}", peer.ip());
        }
        thread::spawn(move || {
            let _ = conn.set_nodelay(true);
            let mut conn = conn;
            let start = Instant::now();
            let mut buf = [0u8; CHUNK];
            let mut off = 0u64;
            for tick in 1u32.. {
                pattern(off, &mut buf);
                if conn.write_all(&buf).is_err() {
                    return;
                }
                off += CHUNK as u64;
                let due = start + Duration::from_millis(u64::from(tick));
                thread::sleep(due.saturating_duration_since(Instant::now()));
            }
        });
    }
    Ok(())
}

/// Arrival times (Unix seconds) into 10 ms bins from `t0`.
fn bins(t0: f64, t_end: f64, arrivals: &[(f64, u64)]) -> Vec<u64> {
    let n = (((t_end - t0) / BIN).ceil().max(0.0) as usize).min(100_000);
    let mut v = vec![0u64; n];
    for (t, amount) in arrivals {
        let i = ((t - t0) / BIN).floor();
        if i >= 0.0 && (i as usize) < n {
            v[i as usize] += amount;
        }
    }
    v
}

/// The longest silence between consecutive arrivals, beyond the nominal interval.
fn longest_gap(arrivals: &[f64], interval: f64) -> (f64, f64) {
    let (gap, at) = arrivals
        .windows(2)
        .map(|w| (w[1] - w[0], w[0]))
        .fold((0.0, 0.0), |best, g| if g.0 > best.0 { g } else { best });
    ((gap - interval).max(0.0), at)
}

fn tcp_flow(server: SocketAddr, stop: Arc<AtomicBool>, t0: f64) -> Value {
    let conn = match TcpStream::connect_timeout(&server, Duration::from_secs(3)) {
        Ok(c) => c,
        Err(e) => return json!({"connected": false, "error": format!("connect {server}: {e}")}),
    };
    let local = conn.local_addr().map(|a| a.port()).unwrap_or(0);
    let _ = conn.set_read_timeout(Some(Duration::from_millis(50)));
    let mut conn = conn;
    let mut buf = vec![0u8; 65536];
    let mut expect = vec![0u8; 65536];
    let (mut off, mut mismatch, mut error) = (0u64, None::<u64>, None::<String>);
    let mut arrivals: Vec<(f64, u64)> = Vec::new();
    // From the connection to the end: a stream that stops for good is one long stall, not
    // the longest gap between the bytes that did come.
    let mut times: Vec<f64> = vec![now_unix()];
    while !stop.load(Ordering::Relaxed) {
        match conn.read(&mut buf) {
            Ok(0) => {
                error = Some("closed by the peer".into());
                break;
            }
            Ok(n) => {
                let t = now_unix();
                pattern(off, &mut expect[..n]);
                if mismatch.is_none() {
                    if let Some(i) = (0..n).find(|&i| buf[i] != expect[i]) {
                        mismatch = Some(off + i as u64);
                    }
                }
                off += n as u64;
                arrivals.push((t, n as u64));
                times.push(t);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => {
                error = Some(format!("read: {e}"));
                break;
            }
        }
    }
    let end = now_unix();
    times.push(end);
    let (stall, stall_at) = longest_gap(&times, 0.001);
    // Alive: no error, and the stream still flowing (bytes within the last 2 s): a connection
    // that silently stopped delivering is not one that survived.
    let flowing = arrivals.last().is_some_and(|(t, _)| end - t < 2.0);
    json!({
        "connected": true,
        "local_port": local,
        "bytes": off,
        "first_mismatch_offset": mismatch,
        "error": error,
        "alive_at_end": error.is_none() && flowing,
        "flowing_at_end": flowing,
        "longest_stall_ms": stall * 1000.0,
        "longest_stall_at": stall_at,
        "bins_bytes": bins(t0, end, &arrivals),
    })
}

fn udp_flow(server: SocketAddr, every: Duration, stop: Arc<AtomicBool>, t0: f64) -> Value {
    let sock = match UdpSocket::bind("0.0.0.0:0").and_then(|s| s.connect(server).map(|()| s)) {
        Ok(s) => s,
        Err(e) => return json!({"error": format!("udp {server}: {e}")}),
    };
    let _ = sock.set_read_timeout(Some(Duration::from_millis(20)));
    let rx = match sock.try_clone() {
        Ok(s) => s,
        Err(e) => return json!({"error": format!("udp clone: {e}")}),
    };
    let done = Arc::new(AtomicBool::new(false));
    let done_rx = done.clone();
    let receiver = thread::spawn(move || {
        let mut got: Vec<(u64, f64)> = Vec::new();
        let mut buf = [0u8; 64];
        while !done_rx.load(Ordering::Relaxed) {
            if let Ok(n) = rx.recv(&mut buf) {
                if n >= 8 {
                    let seq = u64::from_be_bytes(buf[..8].try_into().unwrap_or_default());
                    got.push((seq, now_unix()));
                }
            }
        }
        got
    });
    let start = Instant::now();
    let mut sent = 0u64;
    let mut send_times = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let mut msg = [0u8; 32];
        msg[..8].copy_from_slice(&sent.to_be_bytes());
        let _ = sock.send(&msg);
        send_times.push(now_unix());
        sent += 1;
        let due = start + every * (sent as u32);
        thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    thread::sleep(Duration::from_millis(300));
    done.store(true, Ordering::Relaxed);
    let mut got = receiver.join().unwrap_or_default();
    let end = now_unix();
    got.sort_by(|a, b| a.1.total_cmp(&b.1));
    let mut seen = vec![false; sent as usize];
    let mut received = 0u64;
    for (seq, _) in &got {
        if let Some(s) = seen.get_mut(*seq as usize) {
            if !*s {
                *s = true;
                received += 1;
            }
        }
    }
    let times: Vec<f64> = got.iter().map(|g| g.1).collect();
    let (gap, gap_at) = longest_gap(&times, every.as_secs_f64());
    // Lost probes in their longest run, by send time.
    let (mut run, mut best, mut best_from) = (0u64, 0u64, 0.0);
    for (i, s) in seen.iter().enumerate() {
        if *s {
            run = 0;
        } else {
            run += 1;
            if run > best {
                best = run;
                best_from = send_times[i + 1 - run as usize];
            }
        }
    }
    // Probes lost at the end, after the last one answered: a flow that never came back.
    let tail_lost = seen.iter().rev().take_while(|s| !**s).count() as u64;
    let arrivals: Vec<(f64, u64)> = times.iter().map(|t| (*t, 1)).collect();
    json!({
        "interval_ms": every.as_secs_f64() * 1000.0,
        "sent": sent,
        "received": received,
        "lost": sent - received,
        "loss_pct": if sent > 0 { (sent - received) as f64 * 100.0 / sent as f64 } else { 0.0 },
        "blackout_ms": gap * 1000.0,
        "blackout_after": gap_at,
        "longest_loss_run": best,
        "longest_loss_run_from": best_from,
        "tail_lost": tail_lost,
        "bins": bins(t0, end, &arrivals),
    })
}

fn client(args: &[String]) -> anyhow::Result<()> {
    let host = args.first().context("client needs the server address")?;
    let opt = |n: &str| {
        args.iter()
            .position(|a| a == n)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let stop_file = PathBuf::from(opt("--stop-file").context("--stop-file is required")?);
    let out = PathBuf::from(opt("--out").context("--out is required")?);
    let tcp = args.iter().any(|a| a == "--tcp");
    let udp: Vec<u64> = args
        .windows(2)
        .filter(|w| w[0] == "--udp-ms")
        .map(|w| w[1].parse().context("--udp-ms takes milliseconds"))
        .collect::<anyhow::Result<_>>()?;
    let ip: std::net::IpAddr = host.parse().context("server address")?;
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = now_unix();
    let mut flows = Vec::new();
    if tcp {
        let stop = stop.clone();
        flows.push((
            "tcp".to_string(),
            thread::spawn(move || tcp_flow(SocketAddr::new(ip, TCP_PORT), stop, t0)),
        ));
    }
    for ms in udp {
        let stop = stop.clone();
        flows.push((
            format!("udp_{ms}ms"),
            thread::spawn(move || {
                udp_flow(
                    SocketAddr::new(ip, UDP_PORT),
                    Duration::from_millis(ms),
                    stop,
                    t0,
                )
            }),
        ));
    }
    if flows.is_empty() {
        bail!("nothing to do: give --tcp and/or --udp-ms N");
    }
    while !Path::new(&stop_file).exists() {
        thread::sleep(Duration::from_millis(5));
    }
    let stopped = now_unix();
    stop.store(true, Ordering::Relaxed);
    let mut report = serde_json::Map::new();
    report.insert("start_unix".into(), json!(t0));
    report.insert("stop_unix".into(), json!(stopped));
    report.insert("bin_ms".into(), json!(BIN * 1000.0));
    for (name, h) in flows {
        report.insert(name, h.join().unwrap_or(Value::Null));
    }
    let tmp = out.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(&Value::Object(report))?)?;
    std::fs::rename(&tmp, &out)?;
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("server") => args
            .get(1)
            .context("server needs a bind address")
            .and_then(|a| server(a)),
        Some("client") => client(&args[1..]),
        _ => Err(anyhow::anyhow!(
            "usage: hakit-lab-traffic server ADDR | client ADDR --stop-file F --out F [--tcp] [--udp-ms N]..."
        )),
    };
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hakit-lab-traffic: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
