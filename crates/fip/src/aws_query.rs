//! What EC2 and STS share: the AWS Query protocol's parameter encoding, endpoint host and
//! error texts, and the instance metadata service (IMDSv2), which tells the EC2 provider
//! who this node is and the credential chain its instance role.

use anyhow::bail;

use crate::http::{Client, Request, Response};
use crate::xml;

/// RFC 3986 unreserved characters pass; everything else is %XX (as SigV4 requires).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An AWS Query API error as "HTTP 403 Code: message": EC2 answers
/// `<Response><Errors><Error>`, STS `<ErrorResponse><Error>` (moto's STS as EC2 does).
pub fn error_text(r: &Response) -> String {
    let (code, msg) = match xml::parse(&r.body) {
        Ok(n) => (
            n.get("Errors/Error/Code").or(n.get("Error/Code")),
            n.get("Errors/Error/Message").or(n.get("Error/Message")),
        ),
        Err(_) => (None, None),
    };
    format!(
        "HTTP {} {}: {}",
        r.status,
        code.unwrap_or_else(|| "(no error code)".into()),
        crate::rest::clip(&msg.unwrap_or_else(|| r.body.clone()))
    )
}

/// The host of an endpoint URL (what SigV4 signs).
pub fn host_of(url: &str) -> String {
    url.split("://")
        .nth(1)
        .unwrap_or(url)
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The instance metadata service, IMDSv2 (a session token first, then reads with it).
pub(crate) struct Imds<'a> {
    client: &'a Client,
    base: String,
    token: String,
}

impl<'a> Imds<'a> {
    pub(crate) fn open(client: &'a Client, base: &str) -> anyhow::Result<Imds<'a>> {
        let base = base.trim_end_matches('/').to_string();
        let req = Request::new("PUT", format!("{base}/latest/api/token"), "token")
            .metadata("aws")
            .header("X-aws-ec2-metadata-token-ttl-seconds", "300");
        let r = client.send(&req, crate::http::retry_status)?;
        if r.status != 200 || r.body.trim().is_empty() {
            return Err(crate::http::metadata_hint(
                &req,
                anyhow::anyhow!("IMDSv2 session token: HTTP {}", r.status),
            ));
        }
        Ok(Imds {
            client,
            base,
            token: r.body.trim().to_string(),
        })
    }

    /// The body of `meta-data/{path}`, unchecked (the role's credentials are a JSON document).
    pub(crate) fn get_raw(&self, path: &str) -> anyhow::Result<String> {
        let req = Request::new(
            "GET",
            format!("{}/latest/meta-data/{path}", self.base),
            format!("GET meta-data/{path}"),
        )
        .metadata("aws")
        .secret("X-aws-ec2-metadata-token", self.token.clone());
        let r = self.client.send(&req, crate::http::retry_status)?;
        if r.status != 200 {
            return Err(crate::http::metadata_hint(
                &req,
                anyhow::anyhow!("HTTP {}", r.status),
            ));
        }
        Ok(r.body)
    }

    /// A metadata value: an ID, MAC, region or role name.
    pub(crate) fn get(&self, path: &str) -> anyhow::Result<String> {
        let body = self.get_raw(path)?;
        // IDs, MACs, regions and names: short, visible ASCII. Anything else is not the
        // metadata service, and must not travel on into requests, logs or JSON.
        let v = body.trim();
        if v.is_empty() || v.len() > 256 || !v.bytes().all(|b| b.is_ascii_graphic() || b == b'\n') {
            bail!(
                "aws IMDS GET meta-data/{path}: not a metadata value ({} bytes{})",
                v.len(),
                if v.len() > 256 {
                    ""
                } else {
                    ", unexpected characters"
                }
            );
        }
        Ok(v.to_string())
    }
}
