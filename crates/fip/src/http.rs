//! HTTP for the provider APIs: bounded, retried, verified, recorded.
//!
//! Every request has a connect and a read timeout, and all attempts of one operation share
//! one overall deadline. 429, 5xx, transport errors and provider throttling answers are
//! retried with exponential backoff and full jitter, honouring `Retry-After`; anything else
//! is final. TLS is verified against the system CA bundle plus an optional extra CA file.
//! Every call is recorded (method, URL, status, time) for `--json` and request counts.
//! Secrets: the caller passes them as headers marked secret; they never appear in records,
//! dry-run output or errors.

use std::{
    cell::RefCell,
    path::Path,
    sync::Arc,
    thread,
    time::{Duration, Instant},
};

use anyhow::anyhow;
use hakit_core::debug;
use hakit_core::usage_error;
use log::warn;
use serde::Serialize;

/// System CA bundle (Debian's ca-certificates).
pub const SYSTEM_CA: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Certificates of the system bundle plus `extra`. `extra` is configuration: missing,
/// unreadable or without a single certificate, it is a usage error (exit 2), never a
/// silent fall-back to the system bundle alone.
pub fn root_certs(extra: Option<&Path>) -> anyhow::Result<ureq::tls::RootCerts> {
    use ureq::tls::{parse_pem, PemItem, RootCerts};
    let mut certs = Vec::new();
    let mut add = |pem: &[u8], name: &Path| -> anyhow::Result<usize> {
        let mut n = 0;
        for item in parse_pem(pem) {
            let item = item.map_err(|e| usage_error(format!("CA file {}: {e}", name.display())))?;
            if let PemItem::Certificate(c) = item {
                certs.push(c.to_owned());
                n += 1;
            }
        }
        Ok(n)
    };
    if let Ok(pem) = std::fs::read(SYSTEM_CA) {
        add(&pem, Path::new(SYSTEM_CA))?;
    }
    if let Some(p) = extra {
        let pem = hakit_core::runtime::read_file_bytes(p, 4 << 20)?;
        if add(&pem, p)? == 0 {
            return Err(usage_error(format!(
                "CA file {}: no PEM certificate in it",
                p.display()
            )));
        }
    }
    Ok(RootCerts::Specific(Arc::new(certs)))
}

/// Whether a failed request may succeed when sent again: lost connections, timeouts and
/// name lookups may; a certificate that does not verify, a malformed answer or one that is
/// too large will not, and is reported at once instead of spending the deadline.
pub fn transient(e: &ureq::Error) -> bool {
    use ureq::Error as E;
    match e {
        E::Io(io) => io.kind() != std::io::ErrorKind::InvalidData,
        E::Timeout(_) | E::HostNotFound | E::ConnectionFailed => true,
        _ => false,
    }
}

/// rustls on *ring* with the AES-GCM cipher suites only (TLS 1.3 and 1.2), X25519 and the
/// NIST curves, and webpki's signature algorithms, as rustls's own ring provider lists them.
/// Every provider API (and metadata and probe endpoint worth the name) offers AES-GCM;
/// leaving ChaCha20-Poly1305 out keeps ~45 KB of code out of each binary's size budget.
pub fn crypto() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    use rustls::{
        crypto::{ring as r, WebPkiSupportedAlgorithms},
        SignatureScheme as S,
    };
    use webpki::ring as w;
    static SIG_ALGS: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
        all: &[
            w::ECDSA_P256_SHA256,
            w::ECDSA_P256_SHA384,
            w::ECDSA_P384_SHA256,
            w::ECDSA_P384_SHA384,
            w::ED25519,
            w::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
            w::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
            w::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
            w::RSA_PKCS1_2048_8192_SHA256,
            w::RSA_PKCS1_2048_8192_SHA384,
            w::RSA_PKCS1_2048_8192_SHA512,
            w::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
            w::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
            w::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
        ],
        mapping: &[
            (
                S::ECDSA_NISTP384_SHA384,
                &[w::ECDSA_P384_SHA384, w::ECDSA_P256_SHA384],
            ),
            (
                S::ECDSA_NISTP256_SHA256,
                &[w::ECDSA_P256_SHA256, w::ECDSA_P384_SHA256],
            ),
            (S::ED25519, &[w::ED25519]),
            (S::RSA_PSS_SHA512, &[w::RSA_PSS_2048_8192_SHA512_LEGACY_KEY]),
            (S::RSA_PSS_SHA384, &[w::RSA_PSS_2048_8192_SHA384_LEGACY_KEY]),
            (S::RSA_PSS_SHA256, &[w::RSA_PSS_2048_8192_SHA256_LEGACY_KEY]),
            (S::RSA_PKCS1_SHA512, &[w::RSA_PKCS1_2048_8192_SHA512]),
            (S::RSA_PKCS1_SHA384, &[w::RSA_PKCS1_2048_8192_SHA384]),
            (S::RSA_PKCS1_SHA256, &[w::RSA_PKCS1_2048_8192_SHA256]),
        ],
    };
    std::sync::Arc::new(rustls::crypto::CryptoProvider {
        cipher_suites: vec![
            r::cipher_suite::TLS13_AES_256_GCM_SHA384,
            r::cipher_suite::TLS13_AES_128_GCM_SHA256,
            r::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            r::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            r::cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            r::cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ],
        kx_groups: vec![
            r::kx_group::X25519,
            r::kx_group::SECP256R1,
            r::kx_group::SECP384R1,
        ],
        signature_verification_algorithms: SIG_ALGS,
        secure_random: &SystemRandom,
        key_provider: &NoClientKeys,
    })
}

/// The operating system's randomness, through *ring*.
#[derive(Debug)]
struct SystemRandom;

impl rustls::crypto::SecureRandom for SystemRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), rustls::crypto::GetRandomFailed> {
        use ring::rand::SecureRandom;
        ring::rand::SystemRandom::new()
            .fill(buf)
            .map_err(|_| rustls::crypto::GetRandomFailed)
    }
}

/// hakit never authenticates with a client certificate.
#[derive(Debug)]
struct NoClientKeys;

impl rustls::crypto::KeyProvider for NoClientKeys {
    fn load_private_key(
        &self,
        _key: rustls::pki_types::PrivateKeyDer<'static>,
    ) -> Result<std::sync::Arc<dyn rustls::sign::SigningKey>, rustls::Error> {
        Err(rustls::Error::General(
            "client certificates are not supported".into(),
        ))
    }
}

/// A ureq agent: timeouts, verified TLS, statuses returned rather than raised.
pub fn agent(
    connect: Duration,
    read: Duration,
    ca_file: Option<&Path>,
) -> anyhow::Result<ureq::Agent> {
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(root_certs(ca_file)?)
        .unversioned_rustls_crypto_provider(crypto())
        .build();
    Ok(ureq::Agent::config_builder()
        .timeout_connect(Some(connect))
        .timeout_recv_response(Some(read))
        .timeout_recv_body(Some(read))
        .http_status_as_error(false)
        // Provider and metadata APIs never redirect: a redirect is an answer to report, not
        // to follow (an IMDSv2 token request sent on to another host, or an https request
        // continued over http, would hand a credential to whoever answered).
        .max_redirects(0)
        .tls_config(tls)
        .user_agent(concat!("hakit/", env!("CARGO_PKG_VERSION")))
        .build()
        .into())
}

/// Whether `url`'s host is link-local (169.254.0.0/16, fe80::/10) or AWS's IPv6 IMDS
/// (fd00:ec2::254): metadata endpoints, never reached through a proxy.
fn link_local(url: &str) -> bool {
    let host = url
        .split_once("://")
        .map_or(url, |(_, r)| r)
        .split('/')
        .next()
        .unwrap_or("");
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    // A zone (`fe80::1%25eth0`) is not part of the address.
    let host = host.split('%').next().unwrap_or(host);
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(a)) => a.is_link_local(),
        Ok(std::net::IpAddr::V6(a)) => {
            (a.segments()[0] & 0xffc0) == 0xfe80
                || a == std::net::Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
        }
        Err(_) => false,
    }
}

/// One request.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// Header names whose values are secrets (shown as `[redacted]`).
    pub secret_headers: Vec<String>,
    pub body: Option<String>,
    /// The operation's name for messages, e.g. `AssociateAddress` or `POST /networking/ips/share`.
    pub call: String,
    /// Never through a proxy (instance metadata: see [`Request::metadata`]).
    pub direct: bool,
    /// The provider whose instance metadata service this asks (errors then say where,
    /// and what usually causes it).
    pub metadata_of: Option<&'static str>,
}

impl Request {
    /// An instance-metadata request: sent straight to the metadata service, never through
    /// `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY` (which the API calls honour, with `NO_PROXY`):
    /// a proxy would answer with its own host's metadata, or see an IMDSv2 token.
    pub fn metadata(mut self, provider: &'static str) -> Request {
        self.direct = true;
        self.metadata_of = Some(provider);
        self
    }

    pub fn new(method: &'static str, url: impl Into<String>, call: impl Into<String>) -> Request {
        Request {
            method,
            url: url.into(),
            headers: Vec::new(),
            secret_headers: Vec::new(),
            body: None,
            metadata_of: None,
            call: call.into(),
            direct: false,
        }
    }

    pub fn header(mut self, k: &str, v: impl Into<String>) -> Request {
        self.headers.push((k.to_string(), v.into()));
        self
    }

    pub fn secret(mut self, k: &str, v: impl Into<String>) -> Request {
        self.secret_headers.push(k.to_ascii_lowercase());
        self.header(k, v)
    }

    pub fn body(mut self, b: impl Into<String>) -> Request {
        self.body = Some(b.into());
        self
    }

    /// The request as `--dry-run` prints it, secrets redacted.
    pub fn shown(&self) -> String {
        let mut s = format!("{} {}", self.method, self.url);
        for (k, v) in &self.headers {
            let v = if self.secret_headers.contains(&k.to_ascii_lowercase()) {
                "[redacted]"
            } else {
                v
            };
            s.push_str(&format!("\n  {k}: {v}"));
        }
        if let Some(b) = &self.body {
            s.push_str(&format!("\n  {b}"));
        }
        s
    }
}

/// A response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: String,
    pub retry_after: Option<Duration>,
}

/// A recorded call.
#[derive(Debug, Clone, Serialize)]
pub struct Call {
    pub call: String,
    pub method: &'static str,
    pub url: String,
    pub status: Option<u16>,
    pub ms: f64,
    pub attempt: u32,
}

/// Whether a response asks to be retried.
pub type Retry = fn(&Response) -> bool;

/// Default: 429 and 5xx.
pub fn retry_status(r: &Response) -> bool {
    r.status == 429 || r.status >= 500
}

/// The client of one operation: agent, deadline, retry budget, call log.
pub struct Client {
    agent: ureq::Agent,
    deadline: Instant,
    max_attempts: u32,
    base_delay: Duration,
    calls: RefCell<Vec<Call>>,
    seed: std::cell::Cell<u64>,
}

impl Client {
    pub fn new(agent: ureq::Agent, overall: Duration, max_attempts: u32) -> Client {
        let seed = hakit_core::clock::since_epoch().as_nanos() as u64 | 1;
        Client {
            agent,
            deadline: Instant::now() + overall,
            max_attempts: max_attempts.max(1),
            base_delay: Duration::from_millis(100),
            calls: RefCell::new(Vec::new()),
            seed: std::cell::Cell::new(seed),
        }
    }

    /// Time left before the overall deadline.
    pub fn time_left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// The calls made so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.borrow().clone()
    }

    fn jitter(&self, max: Duration) -> Duration {
        // xorshift: full jitter needs no cryptographic randomness.
        let mut x = self.seed.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.seed.set(x);
        let ms = max.as_millis().max(1) as u64;
        Duration::from_millis(x % ms)
    }

    fn once(&self, req: &Request) -> Result<Response, ureq::Error> {
        let mut b = ureq::http::Request::builder()
            .method(req.method)
            .uri(&req.url);
        for (k, v) in &req.headers {
            b = b.header(k, v);
        }
        let r = b
            .body(req.body.clone().unwrap_or_default())
            .map_err(ureq::Error::from)?;
        // One attempt never outlives the overall deadline: its connect, response and body
        // timeouts are each capped by the time that is left (they could add up to twice
        // --timeout past --deadline).
        let left = self.deadline.saturating_duration_since(Instant::now());
        let mut cfg = self
            .agent
            .configure_request(r)
            .timeout_global(Some(left.max(Duration::from_millis(1))));
        if req.direct || link_local(&req.url) {
            cfg = cfg.proxy(None);
        }
        let r = cfg.build();
        let mut resp = self.agent.run(r)?;
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        // Retry-After (seconds), or Hetzner's RateLimit-Reset (the Unix time the limit
        // resets; its 429s carry no Retry-After, and five quick retries spent the attempts
        // in 1.8 s while the reset was 3 s away).
        let retry_after = header("retry-after").map(Duration::from_secs).or_else(|| {
            (status == 429)
                .then(|| header("ratelimit-reset"))
                .flatten()
                .map(|reset| {
                    let now = hakit_core::clock::since_epoch();
                    Duration::from_secs(reset).saturating_sub(now) + Duration::from_millis(100)
                })
        });
        let body = resp
            .body_mut()
            .with_config()
            .limit(4 << 20)
            .read_to_string()?;
        Ok(Response {
            status,
            body,
            retry_after,
        })
    }

    /// Sends `req`, retrying as `retry` says, within the deadline. Returns the last response
    /// (which may be an error status: the provider module interprets it).
    pub fn send(&self, req: &Request, retry: Retry) -> anyhow::Result<Response> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            if Instant::now() >= self.deadline {
                return Err(metadata_hint(
                    req,
                    anyhow!("{}: deadline passed before attempt {attempt}", req.call),
                ));
            }
            let t = Instant::now();
            let result = self.once(req);
            self.calls.borrow_mut().push(Call {
                call: req.call.clone(),
                method: req.method,
                url: req.url.clone(),
                status: result.as_ref().ok().map(|r| r.status),
                ms: t.elapsed().as_secs_f64() * 1000.0,
                attempt,
            });
            let (again, why, after) = match &result {
                Ok(r) if retry(r) => (true, format!("HTTP {}", r.status), r.retry_after),
                Ok(r) => {
                    debug!("{}: HTTP {} in {:?}", req.call, r.status, t.elapsed());
                    return Ok(r.clone());
                }
                Err(e) => (transient(e), e.to_string(), None),
            };
            let delay = after.unwrap_or_else(|| {
                self.jitter(self.base_delay * 2u32.saturating_pow(attempt.min(8)))
            });
            if !again || attempt >= self.max_attempts || Instant::now() + delay >= self.deadline {
                return match result {
                    Ok(r) => Ok(r),
                    Err(e) => Err(metadata_hint(
                        req,
                        anyhow!("{}: {e} (after {attempt} attempt(s))", req.call),
                    )),
                };
            }
            warn!(
                "{}: {why}; retry {attempt}/{} in {delay:?}",
                req.call,
                self.max_attempts - 1
            );
            thread::sleep(delay);
        }
    }
}

/// What usually keeps a provider's instance metadata service from answering.
pub fn metadata_cause(provider: &str) -> &'static str {
    match provider {
        "aws" => "is this an EC2 instance? In a container the IMDS hop limit must be 2 or more (HttpPutResponseHopLimit); with IMDS off, give --instance-id, --eni and --region (or AWS_REGION) and credentials another way",
        "linode" => "is this a Linode, in a region with the Metadata service? Or give --instance-id (the Linode's ID)",
        "hetzner" => "is this a Hetzner Cloud server? Or give --instance-id (the server's ID)",
        "digitalocean" => "is this a droplet? Or give --instance-id (the droplet's ID)",
        _ => "is this an instance of that provider? Or give --instance-id",
    }
}

/// An error of a metadata request, with the provider, the URL and the likely cause.
pub fn metadata_hint(req: &Request, e: anyhow::Error) -> anyhow::Error {
    match req.metadata_of {
        Some(p) => anyhow!(
            "{p} metadata service {} {}: {e:#}: {}",
            req.method,
            req.url,
            metadata_cause(p)
        ),
        None => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that accepts and never answers costs the deadline, not the per-request
    /// timeouts (2 s here) on top of it.
    #[test]
    fn an_attempt_never_outlives_the_deadline() {
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        let client = Client::new(
            agent(Duration::from_secs(2), Duration::from_secs(2), None).unwrap(),
            Duration::from_millis(400),
            5,
        );
        let t = Instant::now();
        let req = Request::new("GET", format!("http://127.0.0.1:{port}/"), "silent");
        assert!(client.send(&req, |_| false).is_err());
        assert!(
            t.elapsed() < Duration::from_millis(1000),
            "took {:?} for a 400 ms deadline",
            t.elapsed()
        );
        drop(silent);
    }

    /// A certificate that does not verify or a malformed answer is final; a lost
    /// connection is worth another attempt.
    #[test]
    fn only_transport_trouble_is_retried() {
        use std::io::{Error as IoError, ErrorKind};
        assert!(transient(&ureq::Error::ConnectionFailed));
        assert!(transient(&ureq::Error::HostNotFound));
        assert!(transient(&ureq::Error::Io(IoError::from(
            ErrorKind::ConnectionReset
        ))));
        assert!(!transient(&ureq::Error::Io(IoError::from(
            ErrorKind::InvalidData
        ))));
        assert!(!transient(&ureq::Error::Tls("certificate")));
        assert!(!transient(&ureq::Error::BodyExceedsLimit(4 << 20)));
        assert!(!transient(&ureq::Error::LargeResponseHeader(1, 2)));
    }

    /// A redirect comes back as the response it is; its target is never contacted.
    #[test]
    fn redirects_are_not_followed() {
        use std::io::{Read, Write};
        let target = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let target_port = target.local_addr().unwrap().port();
        target.set_nonblocking(true).unwrap();
        let origin = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = origin.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut c, _) = origin.accept().unwrap();
            let mut buf = [0u8; 2048];
            let _ = c.read(&mut buf);
            let _ = write!(
                c,
                "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{target_port}/token\r\nContent-Length: 0\r\n\r\n"
            );
        });
        let client = Client::new(
            agent(Duration::from_secs(2), Duration::from_secs(2), None).unwrap(),
            Duration::from_secs(5),
            1,
        );
        let req = Request::new(
            "GET",
            format!("http://127.0.0.1:{port}/latest/meta-data"),
            "metadata",
        )
        .secret("X-aws-ec2-metadata-token-ttl-seconds", "60");
        let r = client.send(&req, |_| false).unwrap();
        server.join().unwrap();
        assert_eq!(r.status, 302);
        assert!(
            target.accept().is_err(),
            "the redirect's target was contacted"
        );
    }

    /// API calls go through the configured proxy (HTTPS_PROXY and friends); instance
    /// metadata never does, whatever the environment says.
    #[test]
    fn metadata_never_goes_through_the_proxy() {
        use std::io::{Read, Write};
        // An "HTTP proxy" that answers every request itself, and counts them.
        let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy_port = proxy.local_addr().unwrap().port();
        let origin = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = origin.local_addr().unwrap().port();
        let serve = |l: std::net::TcpListener, who: &'static str| {
            std::thread::spawn(move || {
                let (mut c, _) = l.accept().unwrap();
                let (mut got, mut buf) = (Vec::new(), [0u8; 4096]);
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = write!(
                    c,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{who}",
                    who.len()
                );
                String::from_utf8_lossy(&got).to_string()
            })
        };
        let (p, o) = (serve(proxy, "proxy"), serve(origin, "origin"));
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .proxy(Some(
                ureq::Proxy::new(&format!("http://127.0.0.1:{proxy_port}")).unwrap(),
            ))
            .http_status_as_error(false)
            .build()
            .into();
        let client = Client::new(agent, Duration::from_secs(5), 1);
        let url = format!("http://127.0.0.1:{port}/v1/token");
        let meta = client
            .send(
                &Request::new("PUT", url.as_str(), "token").metadata("aws"),
                |_| false,
            )
            .unwrap();
        assert_eq!(meta.body, "origin", "metadata went through the proxy");
        // ureq tunnels through the proxy (CONNECT); this one does not, so the call fails,
        // but the proxy is what it asked.
        let _ = client.send(&Request::new("GET", url.as_str(), "api"), |_| false);
        assert!(o.join().unwrap().starts_with("PUT /v1/token"));
        let asked = p.join().unwrap();
        assert!(
            asked.starts_with(&format!("CONNECT 127.0.0.1:{port}")),
            "the API call did not use the proxy: {asked}"
        );
        // Link-local hosts are metadata services even if a call site forgot to say so.
        assert!(link_local("http://169.254.169.254/latest/api/token"));
        assert!(link_local("http://[fd00:ec2::254]/latest"));
        assert!(link_local("http://[fe80::1%25eth0]:80/"));
        assert!(!link_local("https://api.linode.com/v4"));
        assert!(!link_local("http://203.0.113.253:8080"));
    }

    #[test]
    fn dry_run_text_redacts_secrets() {
        let r = Request::new(
            "POST",
            "https://api.linode.com/v4/networking/ips/share",
            "share",
        )
        .secret("Authorization", "Bearer abcdef")
        .header("Content-Type", "application/json")
        .body("{\"linode_id\":1}");
        let s = r.shown();
        assert!(
            s.contains("Authorization: [redacted]") && !s.contains("abcdef"),
            "{s}"
        );
        assert!(s.contains("{\"linode_id\":1}"));
    }
}
