//! FRR through `vtysh`: the local path of a prefix from `show bgp`, a role written as
//! `network PREFIX route-map ROLE` under `router bgp ASN` (bgpd re-applies the route-map to
//! the path it originates and sends the update: no soft refresh, which re-sends every
//! route to every peer and measurably widened the tail), the sessions from `show bgp
//! neighbors`. vtysh answers some refusals with exit 0 and a `%` line: the speaker's
//! runner treats both as errors. Each vtysh start costs ~20 ms of CPU (its own command
//! tree, whatever it connects to), so the reads of all prefixes are one call (one `-c`
//! each, the JSON documents printed one after the other) and an announcement is one call
//! whatever the number of shared prefixes: the reads, one configuration session, the
//! reads again (a withdrawal reads first: `no network` of an absent prefix is refused).

use std::path::PathBuf;

use anyhow::{bail, Context};
use serde_json::Value;

use crate::{args, json, Community, Dialect, Role, Seen, Session, Target};

/// FRR's bgpd, its `router bgp` AS and the route-maps that set each role's community.
#[derive(Debug)]
pub struct Frr {
    pub asn: u32,
    /// The route-maps of the primary and the secondary role.
    pub maps: [String; 2],
    /// vtysh's `--vty_socket` directory (FRR's own by default).
    pub vty_socket: Option<PathBuf>,
}

impl Frr {
    /// The `network` line that gives `prefix` the role `target` (or withdraws it).
    fn network(&self, prefix: &str, target: Target) -> String {
        match target {
            Target::Announce(Role::Primary) => {
                format!("network {prefix} route-map {}", self.maps[0])
            }
            Target::Announce(Role::Secondary) => {
                format!("network {prefix} route-map {}", self.maps[1])
            }
            Target::Withdraw => format!("no network {prefix}"),
        }
    }
}

impl Dialect for Frr {
    fn name(&self) -> &'static str {
        "frr"
    }

    fn program(&self) -> &'static str {
        "vtysh"
    }

    fn connect_args(&self) -> Vec<String> {
        match &self.vty_socket {
            Some(d) => vec!["--vty_socket".into(), d.to_string_lossy().to_string()],
            None => Vec::new(),
        }
    }

    fn at(&self) -> String {
        format!(
            "FRR vty {}",
            self.vty_socket
                .as_ref()
                .map_or("(default)".into(), |d| d.display().to_string())
        )
    }

    fn read_args(&self, family: &str, prefix: &str) -> Vec<String> {
        args(&["-c", &format!("show bgp {family} unicast {prefix} json")])
    }

    fn parse_read(&self, out: &str, _prefix: &str) -> anyhow::Result<Seen> {
        parse_frr_prefix(out)
    }

    fn refused<'a>(&self, out: &'a str) -> Option<&'a str> {
        out.lines().find(|l| l.trim_start().starts_with('%'))
    }

    fn read_many_args(&self, prefixes: &[(&str, String)]) -> Option<Vec<String>> {
        Some(
            prefixes
                .iter()
                .flat_map(|(f, p)| ["-c".to_string(), format!("show bgp {f} unicast {p} json")])
                .collect(),
        )
    }

    fn parse_read_many(&self, out: &str, prefixes: &[(&str, String)]) -> anyhow::Result<Vec<Seen>> {
        // vtysh prints one JSON document per command, one after the other.
        let docs = serde_json::Deserializer::from_str(out)
            .into_iter::<Value>()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("vtysh show bgp: not JSON ({e})"))?;
        if docs.len() != prefixes.len() {
            bail!(
                "vtysh show bgp: {} answers for {} prefixes",
                docs.len(),
                prefixes.len()
            );
        }
        docs.iter().map(frr_local_path).collect()
    }

    fn write(
        &self,
        prefixes: &[(&str, String)],
        target: Target,
        _community: Option<Community>,
    ) -> anyhow::Result<Vec<Vec<String>>> {
        let mut cmds = vec![
            "configure terminal".to_string(),
            format!("router bgp {}", self.asn),
        ];
        let mut families: Vec<&str> = Vec::new();
        for (f, _) in prefixes {
            if !families.contains(f) {
                families.push(f);
            }
        }
        for f in &families {
            cmds.push(format!("address-family {f} unicast"));
            for (_, p) in prefixes.iter().filter(|(pf, _)| pf == f) {
                cmds.push(self.network(p, target));
            }
            cmds.push("exit-address-family".into());
        }
        cmds.push("end".into());
        // The reads before and after, in the same call (see `write_reads_around`).
        let reads = self.read_many_args(prefixes).unwrap_or_default();
        let mut call = reads.clone();
        call.extend(cmds.into_iter().flat_map(|c| ["-c".to_string(), c]));
        call.extend(reads);
        Ok(vec![call])
    }

    /// Re-applying `network PREFIX route-map ROLE` with the role it has changes nothing in
    /// bgpd (no update is sent for unchanged attributes).
    fn write_reads_around(&self) -> bool {
        true
    }

    fn sessions_args(&self) -> Vec<String> {
        args(&["-c", "show bgp neighbors json"])
    }

    fn parse_sessions(&self, out: &str) -> anyhow::Result<Vec<Session>> {
        parse_frr_neighbors(out)
    }
}

/// `vtysh -c 'show bgp FAMILY unicast PREFIX json'`: `paths[]`, the local one with
/// `"sourced": true` (or `"local": true`), communities under `community.list`.
pub fn parse_frr_prefix(out: &str) -> anyhow::Result<Seen> {
    frr_local_path(&json(out, "vtysh show bgp")?)
}

/// The local path in one `show bgp … json` answer.
fn frr_local_path(v: &Value) -> anyhow::Result<Seen> {
    let paths = v["paths"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    for path in paths {
        let local = path["sourced"] == Value::Bool(true) || path["local"] == Value::Bool(true);
        if !local {
            continue;
        }
        let mut comms = Vec::new();
        for c in path["community"]["list"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            let s = c
                .as_str()
                .context("vtysh show bgp: a community is not a string")?;
            // Well-known names (no-export, …) are not role communities: skipped.
            if let Ok(c) = s.parse::<Community>() {
                comms.push(c);
            }
        }
        return Ok(Seen::Path(comms));
    }
    Ok(Seen::Absent)
}

/// `vtysh -c 'show bgp neighbors json'`: `{ADDRESS: {bgpState}}`.
pub fn parse_frr_neighbors(out: &str) -> anyhow::Result<Vec<Session>> {
    let v = json(out, "vtysh show bgp neighbors")?;
    let map = match &v {
        Value::Null => return Ok(Vec::new()),
        Value::Object(m) => m,
        _ => bail!("vtysh show bgp neighbors: not an object"),
    };
    Ok(map
        .iter()
        .filter(|(_, n)| n.get("bgpState").is_some())
        .map(|(k, n)| {
            let state = n["bgpState"].as_str().unwrap_or("Unknown");
            Session {
                peer: hakit_core::logging::one_line(k),
                established: state == "Established",
                state: hakit_core::logging::one_line(state),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SECONDARY;

    // Trimmed from Debian's FRR 8.4 `show bgp ipv4 unicast 203.0.113.10/32 json`.
    const FRR_PREFIX: &str = r#"{"prefix":"203.0.113.10/32","paths":[
      {"aspath":{"string":"65001"},"community":{"string":"65000:1","list":["65000:1"]},"peer":{"peerId":"2001:db8:ff::3"}},
      {"aspath":{"string":"Local"},"sourced":true,"local":true,"community":{"string":"no-export 65000:2","list":["no-export","65000:2"]}}]}"#;

    #[test]
    fn frr_gives_the_sourced_path_role() {
        let s = crate::Speaker::new(&crate::Config {
            speaker: Some(crate::Kind::Frr),
            prefixes: vec!["203.0.113.10/32".parse().unwrap()],
            frr_asn: Some(65001),
            ..crate::Config::default()
        })
        .unwrap();
        let seen = parse_frr_prefix(FRR_PREFIX).unwrap();
        assert_eq!(seen, Seen::Path(vec![SECONDARY]));
        assert_eq!(s.describe(&seen), "secondary (65000:2)");
        assert_eq!(parse_frr_prefix("{}").unwrap(), Seen::Absent);
    }

    #[test]
    fn frr_commands_read_configure_the_route_map_and_read_again() {
        let f = Frr {
            asn: 65001,
            maps: ["primary".into(), "secondary".into()],
            vty_socket: Some("/run/frr-lab".into()),
        };
        assert_eq!(f.connect_args(), ["--vty_socket", "/run/frr-lab"]);
        let w = f
            .write(
                &[("ipv4", "203.0.113.10/32".to_string())],
                Target::Announce(Role::Secondary),
                None,
            )
            .unwrap();
        assert_eq!(w.len(), 1, "one vtysh call");
        let cmds: Vec<&String> = w[0].iter().skip(1).step_by(2).collect();
        assert_eq!(cmds[0], "show bgp ipv4 unicast 203.0.113.10/32 json");
        assert_eq!(cmds[1], "configure terminal");
        assert_eq!(cmds[2], "router bgp 65001");
        assert_eq!(cmds[4], "network 203.0.113.10/32 route-map secondary");
        assert_eq!(cmds[6], "end");
        assert_eq!(cmds[7], "show bgp ipv4 unicast 203.0.113.10/32 json");
        assert_eq!(cmds.len(), 8, "no soft refresh");
        assert!(f.write_reads_around());
        assert!(w[0].iter().step_by(2).all(|a| a == "-c"));
    }

    #[test]
    fn frr_reads_and_writes_every_prefix_in_one_call() {
        let f = Frr {
            asn: 65001,
            maps: ["primary".into(), "secondary".into()],
            vty_socket: None,
        };
        let list = [
            ("ipv4", "203.0.113.10/32".to_string()),
            ("ipv6", "2001:db8:1::/64".to_string()),
            ("ipv4", "203.0.113.11/32".to_string()),
        ];
        let r = f.read_many_args(&list).unwrap();
        assert_eq!(r.len(), 6);
        assert_eq!(r[3], "show bgp ipv6 unicast 2001:db8:1::/64 json");
        // Three documents, one after the other, as vtysh prints them.
        let out = format!("{FRR_PREFIX}\n{{}}\n{FRR_PREFIX}\n");
        let seen = f.parse_read_many(&out, &list).unwrap();
        assert_eq!(
            seen,
            [
                Seen::Path(vec![SECONDARY]),
                Seen::Absent,
                Seen::Path(vec![SECONDARY])
            ]
        );
        assert!(
            f.parse_read_many("{}", &list).is_err(),
            "one answer for three prefixes"
        );
        let w = f
            .write(&list, Target::Announce(Role::Primary), None)
            .unwrap();
        assert_eq!(w.len(), 1, "one vtysh call for every prefix");
        let cmds: Vec<&str> = w[0].iter().skip(1).step_by(2).map(String::as_str).collect();
        assert_eq!(
            cmds,
            [
                "show bgp ipv4 unicast 203.0.113.10/32 json",
                "show bgp ipv6 unicast 2001:db8:1::/64 json",
                "show bgp ipv4 unicast 203.0.113.11/32 json",
                "configure terminal",
                "router bgp 65001",
                "address-family ipv4 unicast",
                "network 203.0.113.10/32 route-map primary",
                "network 203.0.113.11/32 route-map primary",
                "exit-address-family",
                "address-family ipv6 unicast",
                "network 2001:db8:1::/64 route-map primary",
                "exit-address-family",
                "end",
                "show bgp ipv4 unicast 203.0.113.10/32 json",
                "show bgp ipv6 unicast 2001:db8:1::/64 json",
                "show bgp ipv4 unicast 203.0.113.11/32 json",
            ]
        );
    }

    /// A speaker whose vtysh is `script` (a shell fake that logs its calls).
    fn fake_vtysh(tag: &str, script: &str) -> (crate::Speaker, std::path::PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("hakit-frr-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (prog, calls) = (dir.join("vtysh"), dir.join("calls"));
        let script = script.replace("CALLS", &calls.display().to_string());
        std::fs::write(
            &prog,
            format!("#!/bin/sh\necho \"$*\" >> {}\n{script}", calls.display()),
        )
        .unwrap();
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
        let s = crate::Speaker::new(&crate::Config {
            speaker: Some(crate::Kind::Frr),
            prefixes: vec![
                "203.0.113.10/32".parse().unwrap(),
                "203.0.113.11/32".parse().unwrap(),
            ],
            frr_asn: Some(65001),
            program: Some(prog.display().to_string()),
            ..crate::Config::default()
        })
        .unwrap();
        (s, calls)
    }

    /// An announcement is one vtysh start (the reads, the write, the reads again): a prefix
    /// already in its role is unchanged, the other says what it was; an answer after the
    /// write that does not show the new role yet is read once more.
    #[test]
    fn an_announcement_is_one_vtysh_start() {
        let primary = FRR_PREFIX.replace("65000:2", "65000:1");
        let docs = |d: &[&str]| d.join("\n");
        let (s, calls) = fake_vtysh(
            "one",
            &format!(
                "cat <<'EOF'\n{}\nEOF\n",
                docs(&[FRR_PREFIX, &primary, &primary, &primary])
            ),
        );
        let a = s.ensure(Target::Announce(Role::Primary), &|| None).unwrap();
        let log = std::fs::read_to_string(&calls).unwrap();
        assert_eq!(log.lines().count(), 1, "one vtysh start: {log}");
        assert!(
            log.starts_with("-c show bgp ipv4 unicast 203.0.113.10/32 json"),
            "{log}"
        );
        assert_eq!(a.unchanged, ["203.0.113.11/32".parse().unwrap()]);
        assert_eq!(a.changed.len(), 1);
        assert_eq!(a.changed[0].1, "secondary (65000:2)");
        // The first answer still shows the old role: read again, once.
        let stale = docs(&[FRR_PREFIX, FRR_PREFIX, FRR_PREFIX, FRR_PREFIX]);
        let (s, calls) = fake_vtysh(
            "again",
            &format!(
                "if [ $(wc -l < CALLS) -gt 1 ]; then cat <<'EOF'\n{}\nEOF\nelse cat <<'EOF'\n{stale}\nEOF\nfi\n",
                docs(&[&primary, &primary])
            ),
        );
        let a = s.ensure(Target::Announce(Role::Primary), &|| None).unwrap();
        assert_eq!(std::fs::read_to_string(&calls).unwrap().lines().count(), 2);
        assert_eq!(a.changed.len(), 2);
        // And still the old role then: the step fails, naming it.
        let (s, _) = fake_vtysh(
            "never",
            &format!(
                "case \"$*\" in *configure*) cat <<'EOF'\n{stale}\nEOF\n;; *) cat <<'EOF'\n{}\nEOF\n;; esac\n",
                docs(&[FRR_PREFIX, FRR_PREFIX])
            ),
        );
        let e = s
            .ensure(Target::Announce(Role::Primary), &|| None)
            .unwrap_err();
        assert!(
            format!("{e:#}").contains("did not take 203.0.113.10/32"),
            "{e:#}"
        );
        for tag in ["one", "again", "never"] {
            let dir = format!("hakit-frr-{tag}-{}", std::process::id());
            let _ = std::fs::remove_dir_all(std::env::temp_dir().join(dir));
        }
    }

    #[test]
    fn frr_sessions_parse() {
        let f = r#"{"2001:db8:ff::1":{"bgpState":"Established"},"2001:db8:ff::4":{"bgpState":"Active"}}"#;
        let s = parse_frr_neighbors(f).unwrap();
        assert_eq!(s.iter().filter(|s| s.established).count(), 1);
    }
}
