//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    process::{Command, Output},
    time::Duration,
};

use hakit_lab::{Lab, Ns};

/// The built binary; with `HAKIT_TEST_BIN_DIR` set, that directory's (tests/arm64.sh points
/// it at wrappers that run the aarch64 binaries under qemu-user).
pub fn bin(name: &str) -> String {
    if let Some(dir) = std::env::var_os("HAKIT_TEST_BIN_DIR") {
        let p = std::path::Path::new(&dir).join(name);
        assert!(p.is_file(), "HAKIT_TEST_BIN_DIR has no {name}");
        return p.to_string_lossy().into_owned();
    }
    match name {
        "garp-burst" => env!("CARGO_BIN_EXE_garp-burst").to_string(),
        "nat-notify" => env!("CARGO_BIN_EXE_nat-notify").to_string(),
        "ha-check" => env!("CARGO_BIN_EXE_ha-check").to_string(),
        "fip-claim" => env!("CARGO_BIN_EXE_fip-claim").to_string(),
        other => panic!("unknown binary {other}"),
    }
}

/// A lab, or `None` (with a loud message) where namespaces are not available; under
/// CI=true `hakit_lab::available` panics instead.
pub fn lab(test: &str) -> Option<Lab> {
    if !hakit_lab::available(test) {
        return None;
    }
    Some(Lab::new().expect("create lab"))
}

/// Two namespaces joined by a veth: `a` (192.0.2.1/24, 2001:db8::1/64) and `b`
/// (192.0.2.2/24, 2001:db8::2/64), both on `eth0`.
pub fn pair(lab: &mut Lab) -> (Ns, Ns) {
    let a = lab.ns("a").unwrap();
    let b = lab.ns("b").unwrap();
    lab.veth(&a, "eth0", &b, "eth0").unwrap();
    a.ip(&["addr", "add", "192.0.2.1/24", "dev", "eth0"])
        .unwrap();
    a.ip(&["addr", "add", "2001:db8::1/64", "dev", "eth0", "nodad"])
        .unwrap();
    b.ip(&["addr", "add", "192.0.2.2/24", "dev", "eth0"])
        .unwrap();
    b.ip(&["addr", "add", "2001:db8::2/64", "dev", "eth0", "nodad"])
        .unwrap();
    (a, b)
}

/// Runs a hakit binary inside `ns` (60 s timeout).
pub fn run_in(ns: &Ns, name: &str, args: &[&str]) -> Output {
    let b = bin(name);
    let mut argv = vec![b.as_str()];
    argv.extend_from_slice(args);
    hakit_lab::run(&mut ns.command(&argv), Duration::from_secs(60)).expect("run binary")
}

/// Runs a hakit binary in the test's own namespace with extra environment.
pub fn run_host(name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(bin(name));
    // Hermetic: the caller's config, AWS region, profiles and credentials never leak into
    // a test (HOME too: ~/.aws is read).
    c.args(args)
        .env_remove("HAKIT_CONFIG")
        .env("HOME", "/nonexistent");
    for k in [
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_PROFILE",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_ROLE_SESSION_NAME",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_STS",
    ] {
        c.env_remove(k);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    hakit_lab::run(&mut c, Duration::from_secs(60)).expect("run binary")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Asserts that the run exited with `code` and that its stderr contains `text` ("" for
/// anything); a failure shows the code, both streams and the caller's line. Returns stderr.
#[track_caller]
pub fn assert_exit(out: &Output, code: i32, text: &str) -> String {
    let err = stderr(out);
    assert!(
        out.status.code() == Some(code) && err.contains(text),
        "want exit {code} and stderr containing {text:?}; got exit {:?}\n--- stderr\n{err}--- stdout\n{}",
        out.status.code(),
        stdout(out)
    );
    err
}

/// An ARP frame as the test reads it, independently of hakit's builder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arp {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    pub op: u16,
    pub sha: [u8; 6],
    pub spa: Ipv4Addr,
    pub tha: [u8; 6],
    pub tpa: Ipv4Addr,
}

fn mac_at(d: &[u8], o: usize) -> [u8; 6] {
    d[o..o + 6].try_into().unwrap()
}

pub fn parse_arp(d: &[u8]) -> Option<Arp> {
    if d.len() < 42 || d[12..14] != [0x08, 0x06] {
        return None;
    }
    assert_eq!(&d[14..20], &[0, 1, 8, 0, 6, 4], "Ethernet/IPv4 ARP header");
    Some(Arp {
        dst: mac_at(d, 0),
        src: mac_at(d, 6),
        op: u16::from_be_bytes([d[20], d[21]]),
        sha: mac_at(d, 22),
        spa: Ipv4Addr::new(d[28], d[29], d[30], d[31]),
        tha: mac_at(d, 32),
        tpa: Ipv4Addr::new(d[38], d[39], d[40], d[41]),
    })
}

/// A neighbour advertisement as the test reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Na {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub hop_limit: u8,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub flags: u8,
    pub target: Ipv6Addr,
    pub opt_type: u8,
    pub opt_len: u8,
    pub lladdr: [u8; 6],
    pub checksum_ok: bool,
}

pub fn parse_na(d: &[u8]) -> Option<Na> {
    if d.len() < 86 || d[12..14] != [0x86, 0xdd] || d[20] != 58 || d[54] != 136 {
        return None;
    }
    let v6 = |o: usize| Ipv6Addr::from(<[u8; 16]>::try_from(&d[o..o + 16]).unwrap());
    let plen = u16::from_be_bytes([d[18], d[19]]) as usize;
    // Independent one's-complement check over pseudo-header + ICMPv6 message.
    let mut sum: u64 = 0;
    let mut words = |b: &[u8]| {
        for c in b.chunks(2) {
            sum += u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
    };
    words(&d[22..54]);
    words(&(plen as u32).to_be_bytes());
    words(&[0, 0, 0, 58]);
    words(&d[54..54 + plen]);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    Some(Na {
        dst_mac: mac_at(d, 0),
        src_mac: mac_at(d, 6),
        hop_limit: d[21],
        src: v6(22),
        dst: v6(38),
        flags: d[58],
        target: v6(62),
        opt_type: d[78],
        opt_len: d[79],
        lladdr: mac_at(d, 80),
        checksum_ok: sum == 0xffff,
    })
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A binary of the hakit-lab crate (HTTP/banner server, fake provider), built once per
/// test process so a local `cargo test --test X` never runs a stale one.
pub fn lab_bin(name: &str) -> String {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let ok = std::process::Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "hakit-lab", "--bins"])
            .status()
            .unwrap();
        assert!(ok.success(), "cannot build the lab binaries");
    });
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join(name)
        .to_string_lossy()
        .to_string()
}

/// The lab HTTP server binary.
pub fn lab_http() -> String {
    lab_bin("hakit-lab-http")
}

/// A small deterministic generator (xorshift64*): fast, and a failing seed can be replayed.
pub struct Rng(pub u64);

#[allow(dead_code)]
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (0 for 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }

    /// True one time in `n`.
    pub fn chance(&mut self, n: u64) -> bool {
        self.next() % n == 0
    }
}

/// A number from the environment, or `default`.
#[allow(dead_code)]
pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The fuzzers' seed: HAKIT_FUZZ_SEED to replay a run, else the clock (odd, never 0).
#[allow(dead_code)]
pub fn fuzz_seed() -> u64 {
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    env_number("HAKIT_FUZZ_SEED", clock | 1)
}

/// A free TCP port on loopback (for a server the test starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The body of `GET path` from a server on loopback (HTTP/1.0), if it answered.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

/// A child killed (and reaped) when dropped.
pub struct Proc(pub std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A Prometheus on a free loopback port that scrapes and evaluates every second with the
/// shipped rules (`examples/monitoring/hakit-alerts.yml`); `scrape_configs` is the YAML
/// under `scrape_configs:`. Its configuration, storage and log go in `dir`.
pub fn start_prometheus(
    bin: &std::path::Path,
    dir: &std::path::Path,
    scrape_configs: &str,
) -> (Proc, u16) {
    let rules = std::fs::canonicalize("examples/monitoring/hakit-alerts.yml").unwrap();
    let conf = dir.join("prometheus.yml");
    std::fs::write(
        &conf,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n{scrape_configs}",
            rules.display()
        ),
    )
    .unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new(bin)
        .args([
            &format!("--config.file={}", conf.display()),
            &format!("--storage.tsdb.path={}", dir.join("tsdb").display()),
            &format!("--web.listen-address=127.0.0.1:{port}"),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start prometheus");
    (Proc(child), port)
}

/// The NAT profiles: the example directories with a `hakit.toml.in` (hakit-setup's list),
/// sorted. A new profile is a new directory; no test keeps a list of its own.
#[allow(dead_code)]
pub fn nat_profiles() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("examples")
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("hakit.toml.in").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}
