//! `tcp`: a TCP connection to host:port is accepted.

use std::net::IpAddr;

use super::{Cx, Def, Key, Kind, Reader, Ty};
use hakit_net::sock;

pub const KIND: Def = Def {
    name: "tcp",
    about: "A TCP connection to host:port is accepted.",
    keys: &[
        Key {
            name: "target",
            ty: Ty::Text("host:port"),
            doc: "Where to connect (required).",
        },
        Key {
            name: "interface",
            ty: Ty::Text("string"),
            doc: "Bind to this interface.",
        },
        Key {
            name: "source",
            ty: Ty::Text("IP address"),
            doc: "Source address to bind.",
        },
    ],
    args: &["target"],
    build,
};

fn build(r: &Reader) -> Result<Box<dyn Kind>, String> {
    let t = r.need("target")?;
    let (host, port) = t
        .rsplit_once(':')
        .ok_or_else(|| format!("tcp probe: target {t:?} is not host:port"))?;
    let port = port
        .parse()
        .map_err(|_| format!("tcp probe: bad port in {t:?}"))?;
    Ok(Box::new(Tcp {
        target: t.clone(),
        host: host.to_string(),
        port,
        iface: r.string("interface")?,
        source: r.ip("source")?,
    }))
}

#[derive(Debug)]
struct Tcp {
    target: String,
    host: String,
    port: u16,
    iface: Option<String>,
    source: Option<IpAddr>,
}

impl Kind for Tcp {
    fn detail(&self) -> String {
        self.target.clone()
    }

    fn run(&self, cx: &mut Cx<'_>) -> anyhow::Result<String> {
        let to = sock::resolve(&self.host, self.port)?;
        let (_, t) = sock::tcp_connect(to, self.iface.as_deref(), self.source, cx.timeout)?;
        Ok(format!(
            "connected to {to} in {:.3} ms",
            t.as_secs_f64() * 1000.0
        ))
    }
}
