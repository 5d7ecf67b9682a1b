//! GoBGP (lelastic's daemon, or any gobgpd) through its `gobgp` CLI, which talks to the
//! daemon's gRPC API: the local path of a prefix from `global rib`, a role written by
//! `global rib add` (it replaces the locally originated path in place), the sessions from
//! `neighbor`.

use std::net::SocketAddr;

use anyhow::{bail, Context};
use serde_json::Value;

use crate::{args, json, Community, Dialect, Seen, Session, Target};

/// A GoBGP daemon reached at its API address.
#[derive(Debug)]
pub struct Gobgp {
    pub api: SocketAddr,
}

impl Dialect for Gobgp {
    fn name(&self) -> &'static str {
        "gobgp"
    }

    fn program(&self) -> &'static str {
        "gobgp"
    }

    fn connect_args(&self) -> Vec<String> {
        args(&[
            "-u",
            &self.api.ip().to_string(),
            "-p",
            &self.api.port().to_string(),
        ])
    }

    fn at(&self) -> String {
        format!("GoBGP API {}", self.api)
    }

    fn read_args(&self, family: &str, prefix: &str) -> Vec<String> {
        args(&["global", "rib", "-a", family, prefix, "-j"])
    }

    fn parse_read(&self, out: &str, prefix: &str) -> anyhow::Result<Seen> {
        parse_gobgp_rib(out, prefix)
    }

    fn write(
        &self,
        prefixes: &[(&str, String)],
        target: Target,
        community: Option<Community>,
    ) -> anyhow::Result<Vec<Vec<String>>> {
        Ok(prefixes
            .iter()
            .map(|(f, p)| rib_write(f, p, target, community))
            .collect())
    }

    fn sessions_args(&self) -> Vec<String> {
        args(&["neighbor", "-j"])
    }

    fn parse_sessions(&self, out: &str) -> anyhow::Result<Vec<Session>> {
        parse_gobgp_neighbors(out)
    }
}

/// `gobgp global rib add` (it replaces the locally originated path) or `del`, one prefix.
fn rib_write(
    family: &str,
    prefix: &str,
    target: Target,
    community: Option<Community>,
) -> Vec<String> {
    match (target, community) {
        (Target::Announce(_), Some(c)) => args(&[
            "global",
            "rib",
            "add",
            "-a",
            family,
            prefix,
            "origin",
            "incomplete",
            "community",
            &c.to_string(),
        ]),
        _ => args(&["global", "rib", "del", "-a", family, prefix]),
    }
}

/// `gobgp global rib -a FAMILY PREFIX -j`: `{"PREFIX": [path, ...]}`, each path with
/// `attrs` (type 8: `communities` as 32-bit numbers). The locally originated path has no
/// `neighbor-ip` (or GoBGP's `<nil>`); paths learned from peers are not ours to judge.
pub fn parse_gobgp_rib(out: &str, prefix: &str) -> anyhow::Result<Seen> {
    let v = json(out, "gobgp global rib")?;
    let paths = match &v {
        Value::Null => return Ok(Seen::Absent),
        Value::Object(m) => match m.get(prefix) {
            Some(Value::Array(a)) => a,
            Some(_) => bail!("gobgp global rib: {prefix} is not a list of paths"),
            None => return Ok(Seen::Absent),
        },
        _ => bail!("gobgp global rib: not an object"),
    };
    for path in paths {
        let from_peer = ["neighbor-ip", "source-id"].iter().any(|k| {
            path.get(*k)
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty() && s != "<nil>" && s != "0.0.0.0")
        });
        if from_peer || path.get("withdrawal") == Some(&Value::Bool(true)) {
            continue;
        }
        let mut comms = Vec::new();
        for a in path["attrs"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
            if a["type"].as_u64() == Some(8) {
                for c in a["communities"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
                {
                    let n = c
                        .as_u64()
                        .and_then(|n| u32::try_from(n).ok())
                        .context("gobgp global rib: a community is not a 32-bit number")?;
                    comms.push(Community(n));
                }
            }
        }
        return Ok(Seen::Path(comms));
    }
    Ok(Seen::Absent)
}

/// `gobgp neighbor -j`: `[{conf: {neighbor_address}, state: {session_state}}]`, state 6 is
/// ESTABLISHED (GoBGP's API enum).
pub fn parse_gobgp_neighbors(out: &str) -> anyhow::Result<Vec<Session>> {
    let v = json(out, "gobgp neighbor")?;
    let list = match &v {
        Value::Null => return Ok(Vec::new()),
        Value::Array(a) => a,
        _ => bail!("gobgp neighbor: not a list"),
    };
    const STATES: [&str; 7] = [
        "Unknown",
        "Idle",
        "Connect",
        "Active",
        "OpenSent",
        "OpenConfirm",
        "Established",
    ];
    Ok(list
        .iter()
        .map(|n| {
            let s = n["state"]["session_state"].as_u64().unwrap_or(0);
            Session {
                peer: hakit_core::logging::one_line(
                    n["conf"]["neighbor_address"].as_str().unwrap_or("?"),
                ),
                established: s == 6,
                state: STATES
                    .get(usize::try_from(s).unwrap_or(0))
                    .unwrap_or(&"Unknown")
                    .to_string(),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Role, PRIMARY, SECONDARY};

    fn speaker() -> crate::Speaker {
        crate::Speaker::new(&crate::Config {
            speaker: Some(crate::Kind::Gobgp),
            prefixes: vec!["203.0.113.10/32".parse().unwrap()],
            ..crate::Config::default()
        })
        .unwrap()
    }

    // Captured from Debian's gobgp 3.10 (`gobgp global rib -a ipv4 203.0.113.10/32 -j`)
    // after `gobgp global rib add ... community 65000:2`.
    const GOBGP_RIB: &str = r#"{"203.0.113.10/32":[{"nlri":{"prefix":"203.0.113.10/32"},"age":1795901306,"best":true,"attrs":[{"type":1,"value":2},{"type":8,"communities":[4259840002]},{"type":3,"nexthop":"0.0.0.0"}],"stale":false}]}"#;

    #[test]
    fn gobgp_rib_gives_the_local_path_role() {
        let s = speaker();
        let seen = parse_gobgp_rib(GOBGP_RIB, "203.0.113.10/32").unwrap();
        assert_eq!(seen, Seen::Path(vec![SECONDARY]));
        assert_eq!(s.role_of(&seen), Some(Role::Secondary));
        assert!(s.is(&seen, Target::Announce(Role::Secondary)));
        assert!(!s.is(&seen, Target::Announce(Role::Primary)));
        assert!(!s.is(&seen, Target::Withdraw));
        assert_eq!(
            parse_gobgp_rib("", "203.0.113.10/32").unwrap(),
            Seen::Absent
        );
        assert_eq!(
            parse_gobgp_rib("{}", "203.0.113.10/32").unwrap(),
            Seen::Absent
        );
    }

    #[test]
    fn gobgp_paths_from_peers_are_not_ours() {
        let out = r#"{"203.0.113.10/32":[{"attrs":[{"type":8,"communities":[4259840001]}],"neighbor-ip":"2001:db8:ff::1","source-id":"203.0.113.1"}]}"#;
        assert_eq!(
            parse_gobgp_rib(out, "203.0.113.10/32").unwrap(),
            Seen::Absent
        );
    }

    #[test]
    fn gobgp_commands_name_the_api_and_the_role() {
        let g = Gobgp {
            api: "127.0.0.1:50051".parse().unwrap(),
        };
        assert_eq!(g.connect_args(), ["-u", "127.0.0.1", "-p", "50051"]);
        let two = [
            ("ipv4", "203.0.113.10/32".to_string()),
            ("ipv6", "2001:db8::/64".to_string()),
        ];
        let add = g
            .write(&two, Target::Announce(Role::Primary), Some(PRIMARY))
            .unwrap();
        assert_eq!(
            add[0].join(" "),
            "global rib add -a ipv4 203.0.113.10/32 origin incomplete community 65000:1"
        );
        assert_eq!(add.len(), 2, "one command per prefix");
        let del = g.write(&two[1..], Target::Withdraw, None).unwrap();
        assert_eq!(del[0].join(" "), "global rib del -a ipv6 2001:db8::/64");
    }

    #[test]
    fn gobgp_sessions_parse() {
        let g = r#"[{"conf":{"neighbor_address":"2001:db8:ff::1"},"state":{"session_state":6}},{"conf":{"neighbor_address":"2001:db8:ff::4"},"state":{"session_state":3}}]"#;
        let s = parse_gobgp_neighbors(g).unwrap();
        assert_eq!(s.len(), 2);
        assert!(s[0].established && !s[1].established);
        assert_eq!(s[1].state, "Active");
        assert!(parse_gobgp_rib("[", "203.0.113.10/32").is_err());
        assert!(parse_gobgp_neighbors("{}").is_err());
    }

    /// Where the CLI reads one prefix per start, the reads of a transition run side by
    /// side: the fake gobgp answers only once all three reads have started (a rendezvous,
    /// bounded at 3 s), and each read may take 1 s, so reads one after the other fail.
    #[test]
    fn the_reads_of_several_prefixes_run_side_by_side() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("hakit-gobgp-reads-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let prog = dir.join("gobgp");
        let d = dir.display();
        let rib = GOBGP_RIB.replace("203.0.113.10/32", "PREFIX");
        std::fs::write(
            &prog,
            format!(
                "#!/bin/sh\ntouch {d}/m.$$\ni=0\nwhile [ $(ls {d} | grep -c '^m\\.') -lt 3 ] && [ $i -lt 150 ]; do sleep 0.02; i=$((i+1)); done\nfor a in \"$@\"; do case \"$a\" in */*) p=$a;; esac; done\necho '{rib}' | sed \"s#PREFIX#$p#g\"\n"
            ),
        )
        .unwrap();
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
        let s = crate::Speaker::new(&crate::Config {
            speaker: Some(crate::Kind::Gobgp),
            prefixes: ["203.0.113.10/32", "203.0.113.11/32", "2001:db8:1::/64"]
                .iter()
                .map(|p| p.parse().unwrap())
                .collect(),
            program: Some(prog.display().to_string()),
            timeout: Some(hakit_core::HDuration(std::time::Duration::from_secs(1))),
            ..crate::Config::default()
        })
        .unwrap();
        let seen = s.read_all(&s.prefixes, &|| None).unwrap();
        assert_eq!(seen, vec![Seen::Path(vec![SECONDARY]); 3]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
