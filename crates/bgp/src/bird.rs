//! BIRD 2 through `birdc`: BIRD has no command that adds a route at run time, so the roles
//! live in a file hakit owns, included from `bird.conf`: one static protocol per family
//! (`hakit4`, `hakit6`), one `route PREFIX blackhole { bgp_community.add((ASN,VALUE)); };`
//! per announced prefix. A role is written by rewriting that file (atomically) and asking
//! BIRD to `configure`: BIRD's static protocol compares the old and new route lists and
//! re-announces only the routes that changed, without restarting a BGP session (BIRD's
//! `proto/static/static.c`, "Static not only compares the two configurations, but it also
//! calculates difference between the lists of static routes"); measured at ~2 ms.
//!
//! `birdc -v` prefixes every reply line with BIRD's reply code: 8xxx are run-time errors
//! and 9xxx parse errors (`8002 /etc/bird/hakit-roles.conf:5:1 syntax error`), the
//! speaker's runner treats them as refusals. The local path is read back from BIRD's own
//! table (`show route protocol hakit4 where net = PREFIX all`), so a file BIRD did not
//! take (not included, a queued reconfiguration) is a failed step, never a silent one.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context};

use crate::{Community, Dialect, Seen, Session, Target};

/// The static protocols hakit owns in the roles file, by family.
const PROTO4: &str = "hakit4";
const PROTO6: &str = "hakit6";
/// The roles file is small: one line per shared prefix.
const ROLES_CAP: u64 = 64 << 10;
/// How long a write waits for another instance's rewrite of the roles file.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// BIRD 2 reached through its control socket, and the roles file `bird.conf` includes.
#[derive(Debug)]
pub struct Bird {
    pub roles: PathBuf,
    /// birdc's `-s` control socket [default: BIRD's own, /run/bird/bird.ctl].
    pub socket: Option<PathBuf>,
}

impl Dialect for Bird {
    fn name(&self) -> &'static str {
        "bird"
    }

    fn program(&self) -> &'static str {
        "birdc"
    }

    fn connect_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(s) = &self.socket {
            a.extend(["-s".to_string(), s.to_string_lossy().to_string()]);
        }
        a.push("-v".into());
        a
    }

    fn at(&self) -> String {
        format!(
            "BIRD socket {} (roles file {})",
            self.socket
                .as_ref()
                .map_or("(default)".into(), |d| d.display().to_string()),
            self.roles.display()
        )
    }

    fn read_args(&self, family: &str, prefix: &str) -> Vec<String> {
        let proto = if family == "ipv6" { PROTO6 } else { PROTO4 };
        vec![
            "show".into(),
            "route".into(),
            "protocol".into(),
            proto.into(),
            "where".into(),
            "net".into(),
            "=".into(),
            prefix.into(),
            "all".into(),
        ]
    }

    fn parse_read(&self, out: &str, prefix: &str) -> anyhow::Result<Seen> {
        parse_bird_route(out, prefix)
    }

    fn write(
        &self,
        prefixes: &[(&str, String)],
        target: Target,
        community: Option<Community>,
    ) -> anyhow::Result<Vec<Vec<String>>> {
        // Two instances (per-IP roles) may change their own prefixes at once: the read,
        // change and rewrite of the one file is theirs in turn.
        let mut lock = self.roles.clone().into_os_string();
        lock.push(".lock");
        let _lock = hakit_core::runtime::Lock::acquire(Path::new(&lock), LOCK_WAIT)
            .context("BIRD roles file")?;
        let text = match std::fs::symlink_metadata(&self.roles) {
            Ok(_) => hakit_core::runtime::read_file(
                &self.roles,
                ROLES_CAP,
                hakit_core::runtime::Trust::Config,
            )?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).with_context(|| format!("{}", self.roles.display())),
        };
        let mut roles = parse_roles(&text).with_context(|| {
            format!(
                "BIRD roles file {} (hakit writes it; was it edited by hand?)",
                self.roles.display()
            )
        })?;
        for (_, prefix) in prefixes {
            match (target, community) {
                (Target::Announce(_), Some(c)) => roles.insert(prefix.clone(), c),
                _ => roles.remove(prefix),
            };
        }
        // One rewrite and one `configure` for every prefix of the transition.
        hakit_core::runtime::write_atomic(&self.roles, render_roles(&roles).as_bytes(), 0o644)
            .with_context(|| format!("BIRD roles file {}", self.roles.display()))?;
        Ok(vec![vec!["configure".into()]])
    }

    fn refused<'a>(&self, out: &'a str) -> Option<&'a str> {
        out.lines().find(|l| {
            l.len() >= 5
                && l.as_bytes()[..4].iter().all(u8::is_ascii_digit)
                && matches!(l.as_bytes()[0], b'8' | b'9')
        })
    }

    fn sessions_args(&self) -> Vec<String> {
        vec!["show".into(), "protocols".into()]
    }

    fn parse_sessions(&self, out: &str) -> anyhow::Result<Vec<Session>> {
        Ok(parse_bird_protocols(out))
    }
}

/// One reply line of `birdc -v` without its code (`1007-`, `0000 `) or continuation indent.
fn body(line: &str) -> &str {
    let b = line.as_bytes();
    if b.len() >= 5 && b[..4].iter().all(u8::is_ascii_digit) && matches!(b[4], b'-' | b' ') {
        &line[5..]
    } else {
        line
    }
}

/// `birdc -v show route protocol hakit4 where net = PREFIX all`: the route line (first word
/// the prefix) and its `BGP.community: (65000,1) (65000,2)` attribute line.
pub fn parse_bird_route(out: &str, prefix: &str) -> anyhow::Result<Seen> {
    let mut found = false;
    let mut comms = Vec::new();
    for line in out.lines() {
        let b = body(line).trim();
        if b.split_whitespace().next() == Some(prefix) {
            found = true;
        } else if let Some(list) = b.strip_prefix("BGP.community:") {
            for t in list.split_whitespace() {
                let c = t
                    .strip_prefix('(')
                    .and_then(|t| t.strip_suffix(')'))
                    .map(|t| t.replace(',', ":"))
                    .with_context(|| {
                        format!(
                            "birdc show route: community {:?} is not (ASN,VALUE)",
                            hakit_core::logging::one_line(t)
                        )
                    })?;
                comms.push(
                    c.parse::<Community>()
                        .map_err(|e| anyhow::anyhow!("birdc show route: {e}"))?,
                );
            }
        }
    }
    Ok(if found {
        Seen::Path(comms)
    } else {
        Seen::Absent
    })
}

/// `birdc -v show protocols`: `Name Proto Table State Since Info`; a BGP protocol's Info
/// ends with its session state (`Established`, `Active`, …). BIRD names the peer by the
/// protocol's name.
pub fn parse_bird_protocols(out: &str) -> Vec<Session> {
    const STATES: [&str; 7] = [
        "Idle",
        "Connect",
        "Active",
        "OpenSent",
        "OpenConfirm",
        "Established",
        "Close",
    ];
    out.lines()
        .filter(|l| !l.starts_with("2002"))
        .filter_map(|l| {
            let t: Vec<&str> = body(l).split_whitespace().collect();
            if t.len() < 4 || t[1] != "BGP" {
                return None;
            }
            let state = t[4..]
                .iter()
                .rev()
                .find(|w| STATES.contains(w))
                .copied()
                .unwrap_or(t[3]);
            Some(Session {
                peer: hakit_core::logging::one_line(t[0]),
                established: t[3] == "up" && state == "Established",
                state: state.to_string(),
            })
        })
        .collect()
}

/// The roles file as hakit writes it: prefix → community. Anything else is refused.
fn parse_roles(text: &str) -> anyhow::Result<BTreeMap<String, Community>> {
    let mut roles = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let l = line.trim();
        let skeleton = l.is_empty()
            || l.starts_with('#')
            || l == "}"
            || l == "ipv4;"
            || l == "ipv6;"
            || l == format!("protocol static {PROTO4} {{")
            || l == format!("protocol static {PROTO6} {{");
        if skeleton {
            continue;
        }
        let route = l
            .strip_prefix("route ")
            .and_then(|r| r.strip_suffix(")); };"))
            .and_then(|r| r.split_once(" blackhole { bgp_community.add(("));
        let Some((prefix, c)) = route else {
            bail!(
                "line {}: {:?} is not a role",
                n + 1,
                hakit_core::logging::one_line(l)
            );
        };
        let c: Community = c
            .replace(',', ":")
            .parse()
            .map_err(|e| anyhow::anyhow!("line {}: {e}", n + 1))?;
        let p: hakit_core::config::Cidr = prefix
            .parse()
            .map_err(|_| anyhow::anyhow!("line {}: {prefix:?} is not a prefix", n + 1))?;
        roles.insert(p.to_string(), c);
    }
    Ok(roles)
}

/// The roles file for `roles`: both protocols always (an empty static protocol is valid),
/// so `bird.conf` can include it before the first transition.
fn render_roles(roles: &BTreeMap<String, Community>) -> String {
    let mut s = String::from(
        "# The role of each shared address, written by hakit's nat-notify (announcement step)\n\
         # and taken by `birdc configure`. Include it from bird.conf; do not edit it.\n",
    );
    for (proto, v6) in [(PROTO4, false), (PROTO6, true)] {
        s.push_str(&format!(
            "protocol static {proto} {{\n\t{};\n",
            if v6 { "ipv6" } else { "ipv4" }
        ));
        for (p, c) in roles.iter().filter(|(p, _)| p.contains(':') == v6) {
            s.push_str(&format!(
                "\troute {p} blackhole {{ bgp_community.add(({},{})); }};\n",
                c.0 >> 16,
                c.0 & 0xffff
            ));
        }
        s.push_str("}\n");
    }
    s
}

/// The roles file announcing each `(prefix, community)`: what bird.conf can include before
/// the first transition (the lab's and a README's first file).
pub fn bird_roles(roles: &[(String, Community)]) -> String {
    render_roles(&roles.iter().cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::path_ok;
    use crate::{Role, PRIMARY, SECONDARY};

    // Recorded from Debian's BIRD 2.0.12 (`birdc -v`).
    const ROUTE: &str = "0001 BIRD 2.0.12 ready.\n1007-Table master4:\n     203.0.113.10/32      blackhole [hakit4 08:58:05.246] * (200)\n1008-\tType: static univ\n1012-\tBGP.community: (65000,1)\n0000 \n";
    const PROTOCOLS: &str = "0001 BIRD 2.0.12 ready.\n2002-Name       Proto      Table      State  Since         Info\n1002-device1    Device     ---        up     08:58:05.246  \n     hakit4     Static     master4    up     08:58:05.246  \n     rs1        BGP        ---        up     08:58:06.010  Established   \n     rs2        BGP        ---        start  08:58:05.246  Active        Socket: Connection refused\n0000 \n";
    const ERROR: &str = "0001 BIRD 2.0.12 ready.\n0002-Reading configuration from /etc/bird/bird.conf\n8002 /etc/bird/hakit-roles.conf:5:1 syntax error, unexpected ROUTE\n";

    #[test]
    fn bird_route_and_sessions_parse() {
        let seen = parse_bird_route(ROUTE, "203.0.113.10/32").unwrap();
        assert_eq!(seen, Seen::Path(vec![PRIMARY]));
        assert_eq!(
            parse_bird_route("0001 BIRD 2.0.12 ready.\n", "203.0.113.10/32").unwrap(),
            Seen::Absent
        );
        assert!(parse_bird_route(
            "     203.0.113.10/32 x\n\tBGP.community: 65000:1\n",
            "203.0.113.10/32"
        )
        .is_err());
        let s = parse_bird_protocols(PROTOCOLS);
        assert_eq!(s.len(), 2, "{s:?}");
        assert!(s[0].established && s[0].peer == "rs1");
        assert!(!s[1].established && s[1].state == "Active");
        let b = Bird {
            roles: "/x".into(),
            socket: None,
        };
        assert_eq!(b.refused(ERROR).map(|l| &l[..4]), Some("8002"));
        assert_eq!(b.refused(ROUTE), None);
    }

    #[test]
    fn the_roles_file_changes_one_prefix_and_reads_back() {
        let dir = std::env::temp_dir().join(format!("hakit-bird-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let b = Bird {
            roles: dir.join("roles.conf"),
            socket: Some("/run/x.ctl".into()),
        };
        assert_eq!(b.connect_args(), ["-s", "/run/x.ctl", "-v"]);
        let one = |p: &str| [(if p.contains(':') { "ipv6" } else { "ipv4" }, p.to_string())];
        let w = b
            .write(
                &one("203.0.113.10/32"),
                Target::Announce(Role::Primary),
                Some(PRIMARY),
            )
            .unwrap();
        assert_eq!(w, [["configure"]]);
        // Two prefixes at once: one rewrite, one configure.
        let two = [
            ("ipv6", "2001:db8:1::/64".to_string()),
            ("ipv4", "203.0.113.11/32".to_string()),
        ];
        let w = b
            .write(&two, Target::Announce(Role::Secondary), Some(SECONDARY))
            .unwrap();
        assert_eq!(w, [["configure"]]);
        b.write(&one("203.0.113.11/32"), Target::Withdraw, None)
            .unwrap();
        let text = std::fs::read_to_string(&b.roles).unwrap();
        assert_eq!(
            text.lines()
                .filter(|l| l.contains("route"))
                .collect::<Vec<_>>(),
            [
                "\troute 203.0.113.10/32 blackhole { bgp_community.add((65000,1)); };",
                "\troute 2001:db8:1::/64 blackhole { bgp_community.add((65000,2)); };"
            ]
        );
        // IPv6 in hakit6 only.
        let v6 = text.find("protocol static hakit6").unwrap();
        assert!(text.find("2001:db8:1::/64").unwrap() > v6);
        assert_eq!(parse_roles(&text).unwrap().len(), 2);
        // A line hakit did not write is refused, naming the file; nothing is rewritten.
        std::fs::write(&b.roles, text.clone() + "protocol bgp x {}\n").unwrap();
        let e = b
            .write(&one("203.0.113.10/32"), Target::Withdraw, None)
            .unwrap_err();
        assert!(
            format!("{e:#}").contains("edited by hand") && format!("{e:#}").contains("line 11"),
            "{e:#}"
        );
        assert!(std::fs::read_to_string(&b.roles)
            .unwrap()
            .contains("protocol bgp x"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn paths_are_checked() {
        assert!(path_ok(Path::new("/etc/bird/hakit-roles.conf")));
        for bad in ["etc/x.conf", "/etc/../x", "/etc/x\".conf", "/"] {
            assert!(!path_ok(Path::new(bad)), "{bad}");
        }
    }
}
