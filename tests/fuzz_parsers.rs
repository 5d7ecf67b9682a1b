//! Fuzzing every parser that takes outside input, on stable Rust, in-process.
//!
//! A mutation fuzzer without coverage feedback (cargo-fuzz and libFuzzer need a nightly
//! compiler): each target starts from seeds of real inputs (tests/fuzz/*, inline ones
//! below) and applies random mutations (bit flips, byte and token insertions, deletions,
//! duplications, splices of two seeds, interesting bytes and numbers). Every input runs
//! under `catch_unwind`: a panic, or a single input that takes more than a second, fails
//! the test and leaves the input in target/fuzz-crashes/ to replay.
//!
//! `make test` runs it for HAKIT_FUZZ_SECONDS (default 30, split across the targets);
//! `make fuzz` for ten minutes. The seed of the random generator is printed; set
//! HAKIT_FUZZ_SEED to replay a run.

mod util;

use std::{
    panic::{catch_unwind, AssertUnwindSafe},
    time::{Duration, Instant},
};

use util::{env_number, fuzz_seed, Rng};

/// Tokens that make mutations reach deeper than random bytes do: the grammar's own words.
const TOKENS: &[&str] = &[
    "\"",
    "[",
    "]",
    "{",
    "}",
    "=",
    "\n",
    "<",
    ">",
    "/>",
    "</",
    "&amp;",
    "&#x",
    "&#",
    ";",
    ":",
    ",",
    "0",
    "-1",
    "18446744073709551616",
    "1e309",
    "NaN",
    "ms",
    "s",
    "h",
    "us",
    ".",
    "INSTANCE",
    "GROUP",
    "MASTER",
    "BACKUP",
    "FAULT",
    "STOP",
    "MASTER_RX_LOWER_PRI",
    "hakit-peer 1 ",
    "\n1 ",
    "\n0 - ",
    "4294967296",
    "[profile ",
    "role_arn = ",
    "\"attrs\":",
    "\"communities\":[",
    "\"bgpState\":",
    "[[notify.instance]]",
    "[check]",
    "[[check.probe]]",
    "[fip]",
    "name",
    "interface",
    "floating_ips",
    "kind",
    "target",
    "\"nftables\"",
    "\"rule\"",
    "\"expr\"",
    "\"snat\"",
    "\"counter\"",
    "<item>",
    "</item>",
    "<?xml",
    "<!--",
    "]]>",
    "\u{0}",
    "\u{1b}",
    "\u{feff}",
    "€",
    "\r\n",
    "\\",
    "\\u0000",
    "null",
    "true",
    "{\"a\":",
    "commit has taken",
];

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&seeds[rng.below(seeds.len())]);
    for _ in 0..1 + rng.below(8) {
        let len = out.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                out[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                out[i] = rng.next() as u8;
            }
            2 => {
                let t = TOKENS[rng.below(TOKENS.len())].as_bytes();
                let i = rng.below(len + 1);
                out.splice(i..i, t.iter().copied());
            }
            3 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(16)).min(len);
                out.drain(a..b);
            }
            4 if len > 0 => {
                // Duplicate a run (nesting, repetition: depth and size limits).
                let a = rng.below(len);
                let b = (a + 1 + rng.below(64)).min(len);
                let run: Vec<u8> = out[a..b].to_vec();
                let many = rng.below(20) == 0;
                let times = 1 + rng.below(if many { 2000 } else { 4 });
                for _ in 0..times {
                    out.splice(b..b, run.iter().copied());
                }
            }
            5 => {
                // Splice with another seed.
                let other = &seeds[rng.below(seeds.len())];
                if !other.is_empty() {
                    let a = rng.below(other.len());
                    let i = rng.below(len + 1);
                    out.splice(i..i, other[a..].iter().copied());
                }
            }
            6 if len > 0 => {
                let i = rng.below(len);
                out.truncate(i);
            }
            7 => {
                let n: &[u8] = match rng.below(4) {
                    0 => b"4294967295",
                    1 => b"9223372036854775807",
                    2 => b"99999999999999999999999",
                    _ => b"-0",
                };
                let i = rng.below(len + 1);
                out.splice(i..i, n.iter().copied());
            }
            _ => {}
        }
        if out.len() > 1 << 20 {
            out.truncate(1 << 20);
        }
    }
}

type Target = (&'static str, Vec<Vec<u8>>, fn(&[u8]));

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn seeds_from(dir: &str, inline: &[&str]) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = inline.iter().map(|s| s.as_bytes().to_vec()).collect();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if let Ok(b) = std::fs::read(e.path()) {
                v.push(b);
            }
        }
    }
    v
}

fn targets() -> Vec<Target> {
    let mut configs = vec![std::fs::read("examples/hakit.toml").unwrap()];
    for d in util::nat_profiles()
        .into_iter()
        .chain(["drbd-nfs".to_string()])
    {
        if let Ok(b) = std::fs::read(format!("examples/{d}/hakit.toml")) {
            configs.push(b);
        }
    }
    vec![
        ("config", configs, |b| {
            let _ = hakit_core::config::parse::<hakit_core::config::File<hakit_net::garp::Garp, hakit_notify::config::Notify, hakit_check::config::Check, hakit_fip::config::Fip, hakit_bgp::Config>>(&text(b));
        }),
        (
            "duration",
            seeds_from("", &["200ms", "1.5s", "2562047788015216h", "0.000000001s", "24h"]),
            |b| {
                let _ = hakit_core::duration::parse(&text(b));
            },
        ),
        (
            "keepalived-event",
            seeds_from(
                "",
                &[
                    "INSTANCE \"VI_1\" MASTER 150",
                    "GROUP \"G 1\" BACKUP 100",
                    "INSTANCE \"VI_1\" MASTER_RX_LOWER_PRI 150",
                    "VS \"x\" UP",
                    "INSTANCE VI_1 FAULT",
                ],
            ),
            |b| {
                let t = text(b);
                let _ = hakit_notify::event::from_fifo_line(&t);
                let mut w = t.split_whitespace();
                let (k, n, s, p) = (w.next(), w.next(), w.next(), w.next());
                if let (Some(k), Some(n), Some(s)) = (k, n, s) {
                    let _ = hakit_notify::event::from_args(k, n, s, p);
                }
                for part in t.split_whitespace() {
                    let _ = hakit_notify::validate::instance_name(part);
                    let _ = hakit_notify::validate::interface(part);
                }
            },
        ),
        ("ec2-xml", seeds_from("tests/fuzz/ec2", &[
            "<DescribeAddressesResponse><addressesSet><item><publicIp>203.0.113.10</publicIp><instanceId>i-1</instanceId></item></addressesSet></DescribeAddressesResponse>",
            "<Response><Errors><Error><Code>AuthFailure</Code><Message>a &amp; b &#65;</Message></Error></Errors></Response>",
        ]), |b| {
            if let Ok(n) = hakit_fip::xml::parse(&text(b)) {
                let _ = n.get("Errors/Error/Code");
                let _ = n.items("addressesSet");
            }
        }),
        ("provider-json", seeds_from("tests/fuzz/json", &[
            r#"{"ipv4":{"shared":[{"address":"203.0.113.10"}]},"ipv6":{"global":[{"range":"2001:db8::","prefix":64}]}}"#,
            r#"{"errors":[{"reason":"Not found","field":"ip"}]}"#,
            r#"{"error":{"code":"locked","message":"x"}}"#,
            r#"{"id":"not_found","message":"The resource you requested could not be found."}"#,
        ]), |b| {
            let t = text(b);
            for p in [&hakit_fip::linode::SHAPE, &hakit_fip::hetzner::SHAPE, &hakit_fip::digitalocean::SHAPE] {
                let e = hakit_fip::rest::error_text(p, &t);
                assert!(e.len() <= 700, "{}: error text not capped ({} bytes)", p.name, e.len());
            }
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&t) {
                let _ = hakit_fip::linode::shared_set(&v);
            }
        }),
        ("nft-json", seeds_from("tests/fuzz/nft", &[
            r#"{"nftables":[{"metainfo":{"json_schema_version":1}},{"table":{"family":"ip","name":"hakit","handle":1}},{"rule":{"family":"ip","table":"hakit","chain":"postrouting","handle":3,"comment":"hakit:VI_1","expr":[{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":{"prefix":{"addr":"198.51.100.0","len":24}}}},{"match":{"op":"==","left":{"meta":{"key":"oifname"}},"right":"eth0"}},{"snat":{"addr":"203.0.113.10"}}]}},{"counter":{"family":"inet","name":"input_drop","table":"hakit_filter","handle":2,"packets":5,"bytes":300}}]}"#,
        ]), |b| {
            let t = text(b);
            let _ = hakit_net::nft::parse_ruleset(&t);
            let table: hakit_net::nft::counters::NftTable = "inet hakit_filter".parse().unwrap();
            let _ = hakit_net::nft::counters::parse(&t, &table);
        }),
        ("conntrackd-output", seeds_from("", &[
            "cache internal:\ncurrent active connections:            4\nconnections created:                 10    failed:            0\ncache external:\ncurrent active connections:            7\n",
            "[Sat Nov 28 17:30:16 2026] (pid=35) [notice] committing all external caches\n[Sat Nov 28 17:30:16 2026] (pid=35) [notice] Committed 7 new entries\n[Sat Nov 28 17:30:16 2026] (pid=35) [notice] commit has taken 0.000123 seconds\n",
        ]), |b| {
            let t = text(b);
            let _ = hakit_notify::conntrackd::external_entries(&t);
            let _ = hakit_notify::conntrackd::commit_finished(&t);
        }),
        ("arp-frame", {
            let mac = hakit_net::Mac([2, 0, 0, 0, 0, 1]);
            let ip = "203.0.113.10".parse().unwrap();
            vec![
                hakit_net::frames::garp(mac, ip, true),
                hakit_net::frames::garp(mac, ip, false),
                hakit_net::frames::arp_probe(mac, ip),
            ]
        }, |b| {
            let _ = hakit_net::frames::arp_claimant(b, "203.0.113.10".parse().unwrap());
        }),
        ("url", seeds_from("", &["http://203.0.113.80:8080/generate_204", "https://[2001:db8::1]/x", "http://a@b/"]), |b| {
            let _ = hakit_check::http::parse_url(&text(b));
        }),
        // What a BGP speaker prints (gobgp and vtysh run as root children; their output is
        // parsed for the announcement step, the bgp probe and status).
        ("speaker-json", seeds_from("", &[
            r#"{"203.0.113.10/32":[{"nlri":{"prefix":"203.0.113.10/32"},"age":1795901306,"best":true,"attrs":[{"type":1,"value":2},{"type":8,"communities":[4259840002]},{"type":3,"nexthop":"0.0.0.0"}],"stale":false}]}"#,
            r#"{"prefix":"203.0.113.10/32","paths":[{"aspath":{"string":"65001"},"community":{"string":"65000:1","list":["65000:1"]},"peer":{"peerId":"2001:db8:ff::3"}},{"aspath":{"string":"Local"},"sourced":true,"local":true,"community":{"string":"no-export 65000:2","list":["no-export","65000:2"]}}]}"#,
            r#"[{"conf":{"neighbor_address":"2001:db8:ff::1"},"state":{"session_state":6}},{"conf":{"neighbor_address":"2001:db8:ff::4"},"state":{"session_state":3}}]"#,
            r#"{"2001:db8:ff::1":{"bgpState":"Established"},"2001:db8:ff::4":{"bgpState":"Active"}}"#,
        ]), |b| {
            let t = text(b);
            let _ = hakit_bgp::parse_gobgp_rib(&t, "203.0.113.10/32");
            let _ = hakit_bgp::parse_frr_prefix(&t);
            let _ = hakit_bgp::parse_gobgp_neighbors(&t);
            let _ = hakit_bgp::parse_frr_neighbors(&t);
        }),
        // The AWS shared credentials and config files (root's, but written by tools).
        ("aws-ini", seeds_from("", &[
            "[default]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = x\n\n[hakit]\naws_access_key_id = y\n",
            "[default]\nregion = us-east-1\n\n[profile hakit]\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = base\ns3 =\n  max_concurrent_requests = 2\n# c\n; c\n",
        ]), |b| {
            let t = text(b);
            for config in [true, false] {
                for (name, kv) in hakit_fip::aws_credentials::parse_ini(&t, config) {
                    assert!(!name.contains('\n'), "a profile name with a newline: {name:?}");
                    for (k, _) in kv {
                        assert!(!k.contains('\n') && !k.contains('='), "a key {k:?}");
                    }
                }
            }
        }),
        // The monitor's report to its peer, a UDP datagram from the sync link: the one
        // network input that decides whether a node gives its role away.
        ("peer-report", seeds_from("", &[
            "hakit-peer 1 42 1\n1 5000 - gateway\n0 - 1200 ext-1\n- - - ext-2\n",
            "hakit-peer 1 7 0\n",
        ]), |b| {
            if let Ok(r) = hakit_check::peer::Report::parse(b) {
                // What parses, encodes back to something that parses to the same.
                let again = hakit_check::peer::Report::parse(&r.encode()).expect("re-parse");
                assert_eq!(again.encode(), r.encode());
            }
        }),
        // The monitor's heartbeat file as nat-notify status reads it.
        ("heartbeat", seeds_from("", &[
            r#"{"pid":42,"at_ms":1764800000000,"healthy":false,"since_ms":1764799990000,"failing":["gateway: timeout"],"probes":3,"held":"the peer is unhealthy too"}"#,
            r#"{"pid":1,"at_ms":18446744073709551615,"healthy":null,"since_ms":0,"failing":[],"probes":0}"#,
            r#"{"pid":7,"at_ms":1764800000000,"healthy":false,"since_ms":0,"failing":[],"probes":2,"standing_down":"the VRRP path is cut:\nx","drained":"a\u0000b"}"#,
        ]), |b| {
            let _ = serde_json::from_slice::<hakit_core::heartbeat::Heartbeat>(b);
            let dir = std::env::temp_dir().join(format!("hakit-fuzz-hb-{}", std::process::id()));
            let _ = std::fs::create_dir_all(&dir);
            let track = dir.join("uplink");
            if std::fs::write(hakit_core::heartbeat::path(&track), b).is_ok() {
                let (line, _) = hakit_notify::status::uplink_monitor(&track);
                assert!(!line.contains('\n'), "a status line with a newline: {line:?}");
            }
        }),
        // A packet of IP protocol 112 as the monitor's raw socket receives it, from anyone
        // on the VRRP link.
        ("vrrp-advert", vec![
            vec![0x45, 0xc0, 0, 0x20, 5, 0x69, 0, 0, 0xff, 0x70, 0xaa, 0xfc, 198, 51, 100, 2, 224, 0, 0, 18, 0x31, 51, 150, 1, 0, 2, 3, 0xcf, 198, 51, 100, 1],
            vec![0x46, 0, 0, 0x24, 0, 0, 0, 0, 0xff, 0x70, 0, 0, 198, 51, 100, 3, 198, 51, 100, 2, 1, 1, 0, 0, 0x21, 7, 100, 1, 0, 1, 0, 0],
        ], |b| {
            if let Some(a) = hakit_net::vrrp::parse(b) {
                assert!(a.interval <= std::time::Duration::from_secs(255), "{a:?}");
                assert_eq!(a.source.octets(), [b[12], b[13], b[14], b[15]]);
            }
        }),
        // A DNS server's answer to the dns probe (the ID taken from the input itself, so
        // mutations reach past the ID check).
        ("dns-answer", vec![
            [&[0x12u8, 0x34, 0x85, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 2][..], b"gw\x07example\x00\x00\x01\x00\x01\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x00\x00\x04\xcb\x00\x71\x4d"].concat(),
            [&[0xab, 0xcd, 0x81, 0x83, 0, 1, 0, 0, 0, 0, 0, 0, 2][..], b"nx\x07example\x00\x00\x1c\x00\x01"].concat(),
        ], |b| {
            let id = b.get(..2).map_or(0, |i| u16::from_be_bytes([i[0], i[1]]));
            if let Ok(Some(a)) = hakit_check::kinds::dns::parse(id, b) {
                assert!(a.addrs.len() <= b.len() / 14, "{} addresses from {} bytes", a.addrs.len(), b.len());
            }
        }),
    ]
}

#[test]
fn every_parser_survives_mutated_input() {
    let total = env_number("HAKIT_FUZZ_SECONDS", 30);
    let seed = fuzz_seed();
    let targets = targets();
    let per = Duration::from_secs(total) / targets.len() as u32;
    // Panics are expected to be caught and reported here, not printed by the hook.
    std::panic::set_hook(Box::new(|_| {}));
    let crashes = std::path::Path::new("target/fuzz-crashes");
    let mut failures = Vec::new();
    let mut report = Vec::new();
    for (name, seeds, run) in &targets {
        assert!(!seeds.is_empty(), "{name}: no seeds");
        let mut rng = Rng(seed ^ (name.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut input = Vec::new();
        let (start, mut n) = (Instant::now(), 0u64);
        // Every seed as it is first, then mutations until the target's share of time is up.
        for s in seeds {
            let _ = catch_unwind(AssertUnwindSafe(|| run(s)));
        }
        while start.elapsed() < per {
            mutate(&mut rng, seeds, &mut input);
            n += 1;
            let t = Instant::now();
            let res = catch_unwind(AssertUnwindSafe(|| run(&input)));
            let slow = t.elapsed() > Duration::from_secs(1);
            if res.is_err() || slow {
                let _ = std::fs::create_dir_all(crashes);
                let file = crashes.join(format!("{name}-{seed}-{n}"));
                let _ = std::fs::write(&file, &input);
                failures.push(format!(
                    "{name}: {} on input {} ({} bytes)",
                    if slow {
                        "took over a second"
                    } else {
                        "panicked"
                    },
                    file.display(),
                    input.len()
                ));
                if failures.len() > 20 {
                    break;
                }
            }
        }
        report.push(format!("{name}: {n} inputs"));
    }
    let _ = std::panic::take_hook();
    // The heartbeat target's scratch directory.
    let _ = std::fs::remove_dir_all(
        std::env::temp_dir().join(format!("hakit-fuzz-hb-{}", std::process::id())),
    );
    println!("fuzz seed {seed}: {}", report.join(", "));
    assert!(failures.is_empty(), "seed {seed}:\n{}", failures.join("\n"));
}
