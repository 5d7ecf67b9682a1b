//! The JSON providers (Linode, Hetzner, DigitalOcean): bearer tokens, metadata lookups and
//! calls whose errors carry the provider's own text.

use std::path::Path;

use anyhow::{bail, Context};
use hakit_core::{
    runtime::{read_file, Trust},
    usage_error,
};
use serde_json::Value;

use crate::http::{Client, Request, Response};

/// A provider's name and the shape of its JSON errors.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub name: &'static str,
    /// The provider's error text from its error body (the caller clips it).
    pub errors: fn(&Value) -> String,
}

/// A bearer token, from the provider's environment variable or a file of mode 0600 (or
/// stricter). Never from argv; never printed.
#[derive(Clone)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token([redacted])")
    }
}

impl Token {
    /// The token from `file`, else the first of `envs` that is set: hakit's own name first,
    /// then the provider CLI's (`LINODE_CLI_TOKEN` for linode-cli, `DIGITALOCEAN_ACCESS_TOKEN`
    /// for doctl), so a host already set up for the provider's tool needs nothing more.
    pub fn load(envs: &[&str], file: Option<&Path>) -> anyhow::Result<Token> {
        // A token variable that exec's rule does not know would be handed to nft,
        // systemctl and every user command: a bug of ours, refused before it is read.
        if let Some(v) = envs.iter().find(|v| !hakit_core::exec::is_secret(v)) {
            bail!("hakit bug: {v} is read as a token but exec would hand it to children");
        }
        let found = envs.iter().find_map(|e| match std::env::var(e) {
            Ok(t) if !t.trim().is_empty() => Some((t, e.to_string())),
            _ => None,
        });
        let (t, from) = match (file, found) {
            (Some(p), _) => (
                read_file(p, 4096, Trust::Secret)?,
                format!("token file {}", p.display()),
            ),
            (None, Some(f)) => f,
            (None, None) => bail!(
                "no API token: set {} or give --token-file (mode 0600)",
                envs.join(" or ")
            ),
        };
        let t = t.trim();
        if t.is_empty() {
            return Err(usage_error(format!("{from} is empty")));
        }
        // It goes into an Authorization header: visible ASCII only (never echoed).
        if !t.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(usage_error(format!(
                "{from}: the token has characters an HTTP header cannot carry"
            )));
        }
        Ok(Token(t.to_string()))
    }

    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.0)
    }
}

/// At most 300 characters of a provider's text, control characters escaped: an error line
/// quotes the provider, it does not carry its whole body (3 MiB was seen) or its escapes.
pub fn clip(text: &str) -> String {
    let mut out = String::new();
    for (n, c) in text.chars().enumerate() {
        if n >= 300 || out.len() >= 600 {
            out.push('…');
            break;
        }
        out.extend(c.escape_debug());
    }
    out
}

/// A provider's error text from its JSON error body, by its own shape.
pub fn error_text(shape: &Shape, body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(v) => clip(&(shape.errors)(&v)),
        Err(_) => {
            let snippet: String = body.chars().take(120).collect();
            // clip escapes already: quoting with {:?} would escape its escapes again
            // (a body of control characters grew past the cap).
            format!("unreadable error body \"{}\"", clip(&snippet))
        }
    }
}

/// Sends `req` and returns the JSON body of a 2xx answer; anything else is an error naming
/// the provider, the call, the status and the provider's text.
pub fn json(
    client: &Client,
    shape: &Shape,
    req: &Request,
    retry: fn(&Response) -> bool,
) -> anyhow::Result<Value> {
    let provider = shape.name;
    let r = client
        .send(req, retry)
        .with_context(|| provider.to_string())?;
    if !(200..300).contains(&r.status) {
        bail!(
            "{provider} {}: HTTP {} {}",
            req.call,
            r.status,
            error_text(shape, &r.body)
        );
    }
    if r.body.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&r.body).with_context(|| {
        format!(
            "{provider} {}: HTTP {} but the body is not JSON (truncated?): {:?}",
            req.call,
            r.status,
            r.body.chars().take(80).collect::<String>()
        )
    })
}

/// This node's numeric ID from a provider's metadata service (`GET base/path`, plain text,
/// never through a proxy); `name` and `what` for the error ("hetzner metadata: instance-id
/// \"x\" is not a number").
pub fn metadata_id(
    client: &Client,
    base: &str,
    path: &str,
    name: &'static str,
    what: &str,
) -> anyhow::Result<u64> {
    let req = Request::new(
        "GET",
        format!("{}{path}", base.trim_end_matches('/')),
        format!("metadata {what}"),
    )
    .metadata(name);
    let r = client.send(&req, crate::http::retry_status)?;
    if r.status != 200 {
        return Err(crate::http::metadata_hint(
            &req,
            anyhow::anyhow!("HTTP {}", r.status),
        ));
    }
    r.body.trim().parse().with_context(|| {
        format!(
            "{name} metadata: {what} {:?} is not a number",
            clip(r.body.trim())
        )
    })
}

/// The API request skeleton: bearer auth, JSON.
pub fn api(method: &'static str, base: &str, path: &str, call: &str, token: &Token) -> Request {
    Request::new(
        method,
        format!("{}{path}", base.trim_end_matches('/')),
        call,
    )
    .secret("Authorization", token.bearer())
    .header("Accept", "application/json")
}

#[cfg(test)]
mod tests {

    /// A body that is not JSON is quoted once, escaped once, and capped (the fuzzer found
    /// 120 control characters escaped twice: 840 bytes).
    #[test]
    fn unreadable_bodies_are_escaped_once_and_capped() {
        let shape = &crate::linode::SHAPE;
        let e = super::error_text(shape, &"\u{2}".repeat(1320));
        assert!(e.len() <= 700, "{} bytes", e.len());
        assert!(e.starts_with("unreadable error body \"\\u{2}\\u{2}"), "{e}");
        assert_eq!(
            super::error_text(shape, "<html>"),
            "unreadable error body \"<html>\""
        );
    }

    /// hakit's own variable wins; the provider CLI's is the fallback; neither: one line
    /// naming both.
    #[test]
    fn tokens_come_from_the_first_variable_set() {
        let (own, cli) = ("HAKIT_TEST_TOKEN_OWN_7", "HAKIT_TEST_TOKEN_CLI_7");
        std::env::remove_var(own);
        std::env::remove_var(cli);
        let e = Token::load(&[own, cli], None).unwrap_err().to_string();
        assert!(e.contains(own) && e.contains(cli), "{e}");
        std::env::set_var(cli, "from-cli");
        assert_eq!(Token::load(&[own, cli], None).unwrap().0, "from-cli");
        std::env::set_var(own, "from-own");
        assert_eq!(Token::load(&[own, cli], None).unwrap().0, "from-own");
        std::env::remove_var(own);
        std::env::remove_var(cli);
    }

    use super::*;

    /// A hostile provider answer is quoted, not carried: capped and escaped.
    #[test]
    fn provider_error_texts_are_capped_and_escaped() {
        let reason = format!("bad\n\u{1b}[2J{}", "y".repeat(3 << 20));
        let body = serde_json::json!({"errors": [{"reason": reason}]}).to_string();
        let t = error_text(&crate::linode::SHAPE, &body);
        assert!(t.chars().count() < 400, "{} chars", t.chars().count());
        assert!(!t.contains('\n') && !t.contains('\u{1b}'), "{t}");
        assert!(t.starts_with("bad\\n\\u{1b}[2J") && t.ends_with('…'), "{t}");
    }
}
