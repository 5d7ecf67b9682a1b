//! `dns`: a DNS server answers a query over UDP (the resolver the LAN's clients use, often
//! on the gateway itself, or the upstream's). Written by the recipe in [`super`]: this file
//! and two lines in the registry.
//!
//! The answer is hostile input: [`parse`] reads it with every length checked and never
//! panics (a fuzz target drives it), and only an answer to our own question (same ID, on a
//! socket connected to the server) counts.

use std::{
    hash::{BuildHasher, Hasher},
    net::{IpAddr, SocketAddr},
    os::fd::AsRawFd,
    time::Instant,
};

use anyhow::{bail, Context};
use nix::{
    poll::PollFlags,
    sys::socket::{connect, recv, send, socket, MsgFlags, SockFlag, SockType},
};

use super::{Cx, Def, Key, Kind, Reader, Ty};
use hakit_net::sock;

pub const KIND: Def = Def {
    name: "dns",
    about: "A DNS server answers a query over UDP: NOERROR, with the expected address if one is given.",
    keys: &[
        Key {
            name: "target",
            ty: Ty::Text("IP address or IP:port"),
            doc: "The server (required); port 53 unless given.",
        },
        Key {
            name: "query",
            ty: Ty::Text("string"),
            doc: "The name asked for (required), e.g. \"gw.example\".",
        },
        Key {
            name: "address",
            ty: Ty::Text("IP address"),
            doc: "An address the answer must hold; its family picks the question (A or AAAA) [default: A, any NOERROR answer passes].",
        },
        Key { name: "interface", ty: Ty::Text("string"), doc: "Bind to this interface." },
        Key { name: "source", ty: Ty::Text("IP address"), doc: "Source address to bind." },
    ],
    args: &["target"],
    build,
};

/// Question types.
const A: u16 = 1;
const AAAA: u16 = 28;

fn build(r: &Reader) -> Result<Box<dyn Kind>, String> {
    let t = r.need("target")?;
    let server = t
        .parse::<SocketAddr>()
        .or_else(|_| t.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| format!("dns probe: target {t:?} is not an IP address or IP:port"))?;
    let name = r.need("query")?;
    let qname = encode_name(&name).map_err(|e| format!("dns probe: query {name:?}: {e}"))?;
    let address = r.ip("address")?;
    Ok(Box::new(Dns {
        server,
        name,
        qname,
        qtype: if address.is_some_and(|a| a.is_ipv6()) {
            AAAA
        } else {
            A
        },
        address,
        iface: r.string("interface")?,
        source: r.ip("source")?,
    }))
}

#[derive(Debug)]
struct Dns {
    server: SocketAddr,
    name: String,
    qname: Vec<u8>,
    qtype: u16,
    address: Option<IpAddr>,
    iface: Option<String>,
    source: Option<IpAddr>,
}

impl Kind for Dns {
    fn detail(&self) -> String {
        format!("{}@{}", self.name, self.server)
    }

    fn run(&self, cx: &mut Cx<'_>) -> anyhow::Result<String> {
        let (start, server, name) = (Instant::now(), self.server, &self.name);
        let deadline = start + cx.timeout;
        let fd = socket(
            sock::family(server.ip()),
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .context("open UDP socket")?;
        sock::bind_to(&fd, self.iface.as_deref(), self.source)?;
        // Connected: only the server's datagrams arrive, and a closed port is an error at
        // once (ICMP port unreachable) rather than a timeout.
        connect(fd.as_raw_fd(), &sock::sockaddr(server))
            .with_context(|| format!("connect to {server}"))?;
        let id = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish() as u16;
        send(
            fd.as_raw_fd(),
            &query(id, &self.qname, self.qtype),
            MsgFlags::empty(),
        )
        .with_context(|| format!("send to {server}"))?;
        let mut buf = [0u8; 4096];
        let answer = loop {
            if !sock::wait(&fd, PollFlags::POLLIN, deadline)? {
                bail!("no answer from {server} within {:?}", cx.timeout);
            }
            let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty())
                .with_context(|| format!("no answer from {server}"))?;
            match parse(id, &buf[..n]) {
                Ok(Some(a)) => break a,
                // Not our question's ID: a late answer to an earlier run; keep waiting.
                Ok(None) => continue,
                Err(e) => bail!("{server} sent a malformed answer: {e}"),
            }
        };
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        if answer.rcode != 0 {
            bail!("{server} answered {} for {name}", rcode_name(answer.rcode));
        }
        match self.address {
            Some(want) if answer.addrs.contains(&want) => {
                Ok(format!("{name} is {want} at {server} ({ms:.3} ms)"))
            }
            Some(want) => bail!(
                "{name} is {} at {server}, expected {want}",
                if answer.addrs.is_empty() {
                    "no address".to_string()
                } else {
                    answer
                        .addrs
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
            None => Ok(format!(
                "{server} answered {name}: {} address(es) in {ms:.3} ms",
                answer.addrs.len()
            )),
        }
    }
}

/// `name` in DNS wire form: labels of 1 to 63 letters, digits, `-` or `_`, at most 255
/// bytes in all; a trailing dot is allowed.
pub fn encode_name(name: &str) -> Result<Vec<u8>, &'static str> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err("empty name");
    }
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("a label is empty or longer than 63 bytes");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err("only letters, digits, '-' and '_' in a name");
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    if out.len() > 255 {
        return Err("longer than 255 bytes");
    }
    Ok(out)
}

/// A query: one question, recursion desired.
pub fn query(id: u16, qname: &[u8], qtype: u16) -> Vec<u8> {
    let mut q = Vec::with_capacity(12 + qname.len() + 4);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    q.extend_from_slice(qname);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q
}

/// What an answer said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub rcode: u8,
    /// The A and AAAA records of the answer section.
    pub addrs: Vec<IpAddr>,
}

/// Reads a response to question `id`: `Ok(None)` if it answers another ID, an error if it
/// is not a well-formed response.
pub fn parse(id: u16, m: &[u8]) -> Result<Option<Answer>, &'static str> {
    let be16 = |at: usize| -> Result<u16, &'static str> {
        m.get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or("truncated")
    };
    if m.len() < 12 {
        return Err("shorter than a header");
    }
    if be16(0)? != id {
        return Ok(None);
    }
    if m[2] & 0x80 == 0 {
        return Err("a query, not a response");
    }
    let (qd, an) = (be16(4)?, be16(6)?);
    let mut pos = 12;
    for _ in 0..qd {
        pos = skip_name(m, pos).ok_or("bad name in the question")? + 4;
    }
    let mut addrs = Vec::new();
    for _ in 0..an {
        pos = skip_name(m, pos).ok_or("bad name in an answer")?;
        let (rtype, len) = (be16(pos)?, usize::from(be16(pos + 8)?));
        let data = m.get(pos + 10..pos + 10 + len).ok_or("truncated record")?;
        match (rtype, data.len()) {
            (A, 4) => addrs.push(IpAddr::from([data[0], data[1], data[2], data[3]])),
            (AAAA, 16) => {
                let mut b = [0u8; 16];
                b.copy_from_slice(data);
                addrs.push(IpAddr::from(b));
            }
            _ => {}
        }
        pos += 10 + len;
    }
    Ok(Some(Answer {
        rcode: m[3] & 0x0f,
        addrs,
    }))
}

/// The position after the name at `pos` (a compression pointer ends it).
fn skip_name(m: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = *m.get(pos)?;
        match len & 0xc0 {
            0 if len == 0 => return Some(pos + 1),
            0 => pos += 1 + usize::from(len),
            0xc0 => return m.get(pos + 1).map(|_| pos + 2),
            _ => return None,
        }
    }
}

fn rcode_name(rcode: u8) -> String {
    match rcode {
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        n => format!("RCODE {n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer for `gw.example A` (id 0x1234) in the shape resolvers send (RFC 1035
    /// 4.1): the question, then one A record whose name is a pointer to it.
    const ANSWER: [u8; 38] = [
        0x12, 0x34, 0x85, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, // header: QR AA RD RA, NOERROR
        2, b'g', b'w', 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0, 0, 1, 0, 1, // question
        0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 0, // answer: ->12, A, IN, TTL 0
    ];

    #[test]
    fn reads_an_answer_and_ignores_other_ids() {
        let mut m = ANSWER.to_vec();
        m.extend_from_slice(&[0, 4, 203, 0, 113, 77]);
        let a = parse(0x1234, &m).unwrap().unwrap();
        assert_eq!(a.rcode, 0);
        assert_eq!(a.addrs, vec!["203.0.113.77".parse::<IpAddr>().unwrap()]);
        assert_eq!(parse(0x4321, &m), Ok(None));
        assert_eq!(
            &query(0x1234, &encode_name("gw.example.").unwrap(), A)[12..28],
            &m[12..28]
        );
    }

    #[test]
    fn hostile_answers_are_errors_not_panics() {
        let mut m = ANSWER.to_vec();
        m.extend_from_slice(&[0, 200, 203]);
        assert_eq!(parse(0x1234, &m), Err("truncated record"));
        let mut q = ANSWER.to_vec();
        q[2] = 0x01;
        assert_eq!(parse(0x1234, &q), Err("a query, not a response"));
        for cut in 0..ANSWER.len() {
            let _ = parse(0x1234, &ANSWER[..cut]);
        }
        let mut looped = ANSWER[..12].to_vec();
        looped[5] = 1;
        looped.extend_from_slice(&[0x40, 0]);
        assert_eq!(parse(0x1234, &looped), Err("bad name in the question"));
    }

    #[test]
    fn names_are_checked() {
        assert!(encode_name("").is_err());
        assert!(encode_name("a..b").is_err());
        assert!(encode_name("a b").is_err());
        assert!(encode_name(&"x".repeat(64)).is_err());
        assert!(encode_name(&["abc"; 70].join(".")).is_err());
        assert_eq!(encode_name("gw.example").unwrap().len(), 12);
    }
}
