//! `http`: an HTTP(S) GET answers with the expected status.

use std::{net::IpAddr, path::PathBuf};

use anyhow::bail;

use super::{Cx, Def, Key, Kind, Reader, Ty};
use crate::http::{self, Url};

pub const KIND: Def = Def {
    name: "http",
    about: "An HTTP or HTTPS GET answers with the expected status.",
    keys: &[
        Key {
            name: "url",
            ty: Ty::Text("string"),
            doc: "http:// or https:// URL (required).",
        },
        Key {
            name: "status",
            ty: Ty::Int,
            doc: "The status expected [default: 204].",
        },
        Key {
            name: "interface",
            ty: Ty::Text("string"),
            doc: "Bind to this interface (http:// only).",
        },
        Key {
            name: "source",
            ty: Ty::Text("IP address"),
            doc: "Source address to bind (http:// only).",
        },
        Key {
            name: "ca_file",
            ty: Ty::Text("path"),
            doc: "https: verify against this CA bundle instead of the system's.",
        },
    ],
    args: &["url"],
    build,
};

fn build(r: &Reader) -> Result<Box<dyn Kind>, String> {
    let url = http::parse_url(&r.need("url")?)?;
    let (iface, source) = (r.string("interface")?, r.ip("source")?);
    if url.https && (iface.is_some() || source.is_some()) {
        return Err(
            "http probe: interface/source binding is supported for http:// URLs only".into(),
        );
    }
    Ok(Box::new(Http {
        url,
        status: r.int("status")?.unwrap_or(204),
        iface,
        source,
        ca_file: r.string("ca_file")?.map(PathBuf::from),
    }))
}

#[derive(Debug)]
struct Http {
    url: Url,
    status: u16,
    iface: Option<String>,
    source: Option<IpAddr>,
    ca_file: Option<PathBuf>,
}

impl Kind for Http {
    fn detail(&self) -> String {
        let u = &self.url;
        format!(
            "{}://{}:{}{}",
            if u.https { "https" } else { "http" },
            u.host,
            u.port,
            u.path
        )
    }

    fn run(&self, cx: &mut Cx<'_>) -> anyhow::Result<String> {
        let (got, t) = http::get(
            &self.url,
            self.iface.as_deref(),
            self.source,
            self.ca_file.as_deref(),
            cx.timeout,
        )?;
        if got != self.status {
            bail!("status {got}, expected {}", self.status);
        }
        Ok(format!(
            "status {got} in {:.3} ms",
            t.as_secs_f64() * 1000.0
        ))
    }
}
