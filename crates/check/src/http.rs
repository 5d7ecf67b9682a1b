//! HTTP probes: GET a URL, expect a status (default 204, the "generate_204" convention).
//!
//! `http://` URLs use a minimal HTTP/1.1 GET over a socket hakit opens itself, so the probe
//! can be bound to an interface or a source address (a BACKUP checks its own uplink). Only
//! the status line is read. `https://` goes through ureq with rustls, verifying against the
//! system CA bundle plus an optional extra CA file; binding is not offered there (ureq
//! opens its own sockets), and the configuration check says so.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};

use hakit_net::sock::{resolve, tcp_connect};

/// A parsed `http(s)://host[:port]/path` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub https: bool,
    pub host: String,
    pub port: u16,
    pub path: String,
}

pub fn parse_url(url: &str) -> Result<Url, String> {
    let bad = || format!("invalid URL {url:?}: expected http://host[:port]/path or https://…");
    let (https, rest) = if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else {
        return Err(bad());
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') || path.contains([' ', '\r', '\n']) {
        return Err(bad());
    }
    let default = if https { 443 } else { 80 };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, tail) = v6.split_once(']').ok_or_else(bad)?;
        let port = match tail.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad())?,
            None if tail.is_empty() => default,
            None => return Err(bad()),
        };
        (format!("[{h}]"), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad())?),
            None => (authority.to_string(), default),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err(bad());
    }
    Ok(Url {
        https,
        host,
        port,
        path: path.to_string(),
    })
}

/// GETs `url` and returns (status, elapsed).
pub fn get(
    url: &Url,
    iface: Option<&str>,
    source: Option<std::net::IpAddr>,
    ca_file: Option<&Path>,
    timeout: Duration,
) -> anyhow::Result<(u16, Duration)> {
    let start = Instant::now();
    if url.https {
        return https_get(url, ca_file, timeout).map(|s| (s, start.elapsed()));
    }
    let to = resolve(&url.host, url.port)?;
    let (fd, _) = tcp_connect(to, iface, source, timeout)?;
    let stream = TcpStream::from(fd);
    stream.set_nonblocking(false)?;
    // The timeout bounds the whole probe, not each read: a server that drips one byte at a
    // time must not keep an unhealthy probe passing (each read gets what is left).
    let left = || {
        timeout
            .checked_sub(start.elapsed())
            .filter(|l| !l.is_zero())
    };
    let first = left().with_context(|| format!("no response within {timeout:?}"))?;
    stream.set_read_timeout(Some(first))?;
    stream.set_write_timeout(Some(first))?;
    let mut s = stream;
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: hakit-ha-check\r\nConnection: close\r\n\r\n",
        url.path, url.host
    );
    s.write_all(req.as_bytes()).context("send request")?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    while !buf.windows(2).any(|w| w == b"\r\n") {
        if buf.len() > 8192 {
            bail!("status line longer than 8 KiB");
        }
        let Some(l) = left() else {
            bail!("no response within {timeout:?}")
        };
        s.set_read_timeout(Some(l))?;
        match s.read(&mut chunk) {
            Ok(0) => bail!("connection closed before a status line"),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                bail!("no response within {timeout:?}")
            }
            Err(e) => return Err(e).context("read response"),
        }
    }
    let line = String::from_utf8_lossy(&buf);
    let status = line
        .split_whitespace()
        .nth(1)
        .filter(|_| line.starts_with("HTTP/1."))
        .and_then(|c| c.parse::<u16>().ok())
        .with_context(|| {
            format!(
                "not an HTTP response: {:?}",
                line.lines().next().unwrap_or("")
            )
        })?;
    Ok((status, start.elapsed()))
}

fn https_get(url: &Url, ca_file: Option<&Path>, timeout: Duration) -> anyhow::Result<u16> {
    // The same verified agent fip-claim uses: system CA bundle plus the extra CA file.
    let agent = hakit_fip::http::agent(timeout, timeout, ca_file)?;
    let target = format!("https://{}:{}{}", url.host, url.port, url.path);
    let resp = agent
        .get(&target)
        .call()
        .map_err(|e| anyhow::anyhow!("GET {target}: {e}"))?;
    Ok(resp.status().as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = parse_url("http://198.51.100.9:8080/generate_204").unwrap();
        assert_eq!(
            (u.https, u.host.as_str(), u.port, u.path.as_str()),
            (false, "198.51.100.9", 8080, "/generate_204")
        );
        let u = parse_url("https://[2001:db8::1]/x").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("[2001:db8::1]", 443));
        assert_eq!(parse_url("http://example.test").unwrap().path, "/");
        for bad in [
            "ftp://x",
            "http://",
            "http://a:b/",
            "http://u@h/",
            "http://[::1/",
            "http://h/a b",
            "198.51.100.1",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
