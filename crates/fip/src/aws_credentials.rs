//! AWS credentials, found where the AWS CLI and SDKs find them, in the AWS CLI's order:
//!
//! 1. `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`);
//! 2. the profile (`AWS_PROFILE`, else `default`) when it is a **role profile**: `role_arn`
//!    with `source_profile` (chained up to four deep), `credential_source`
//!    (`Environment` or `Ec2InstanceMetadata`) or `web_identity_token_file`: STS
//!    `AssumeRole` / `AssumeRoleWithWebIdentity`, for 15 minutes (one claim needs seconds);
//! 3. **web identity** from the environment: `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`
//!    (+ `AWS_ROLE_SESSION_NAME`);
//! 4. the profile's static keys: `~/.aws/credentials` (`AWS_SHARED_CREDENTIALS_FILE`), then
//!    `~/.aws/config` (`AWS_CONFIG_FILE`; sections `[profile NAME]` and `[default]`);
//! 5. the instance role from IMDSv2.
//!
//! STS is `https://sts.{region}.amazonaws.com` (regional, as AWS recommends), or
//! `AWS_ENDPOINT_URL_STS`, else `AWS_ENDPOINT_URL`, as the SDKs read them. Secrets never reach
//! a log, a `--dry-run` text or a child: the web identity token travels in a request body,
//! which fip-claim never prints; STS errors are reported by code and message only.
//! Not supported (a clear error): `credential_source = EcsContainer`, SSO profiles,
//! `credential_process` (it would run a program as root from a file).

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use log::info;

use crate::{
    aws_query::Imds,
    http::{Client, Request},
    sigv4::{self, Credentials},
    xml,
};

/// STS API version.
pub const STS_VERSION: &str = "2011-06-15";
/// Assumed-role credentials live this long: STS's minimum.
const DURATION_SECONDS: &str = "900";
/// Role chains longer than this are refused (a loop in the files, or a mistake).
const MAX_CHAIN: usize = 4;
/// Files larger than this are not AWS configuration.
const MAX_FILE: u64 = 1 << 20;

type Profile = BTreeMap<String, String>;

/// `[section]` → key → value of an AWS configuration file. `config` files name profiles
/// `[profile NAME]` (and `[default]`); credentials files `[NAME]`. Nested sub-sections
/// (`s3 =` followed by indented lines), comments and other section kinds are skipped.
pub fn parse_ini(text: &str, config: bool) -> BTreeMap<String, Profile> {
    let mut out: BTreeMap<String, Profile> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut nested = false;
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if nested && raw.starts_with([' ', '\t']) {
            continue;
        }
        nested = false;
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            current = if !config || name == "default" {
                Some(name.to_string())
            } else {
                name.strip_prefix("profile ").map(|n| n.trim().to_string())
            };
            continue;
        }
        let (Some(p), Some((k, v))) = (&current, line.split_once('=')) else {
            continue;
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        if v.is_empty() {
            nested = true;
            continue;
        }
        out.entry(p.clone()).or_default().insert(k, v.to_string());
    }
    out
}

/// An AWS file, with the checks a token file has: never blocking (a FIFO), never through a
/// link, root's (or the caller's), mode 0600 or stricter, in a directory no other user can
/// write. These files say who fip-claim acts as; `aws configure` writes them 0600.
fn read_small(path: &str, what: &str) -> anyhow::Result<Option<String>> {
    hakit_core::runtime::read_secret_if_exists(std::path::Path::new(path), MAX_FILE, what)
        .context("aws")
}

fn home_file(var: &str, name: &str) -> Option<String> {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| {
            std::env::var("HOME")
                .ok()
                .map(|h| format!("{h}/.aws/{name}"))
        })
}

/// Both files, with the credentials file's values over the config file's for one profile.
pub struct Files {
    profiles: BTreeMap<String, Profile>,
    /// The files read, for messages.
    pub read: Vec<String>,
}

impl Files {
    pub fn load() -> anyhow::Result<Files> {
        let mut profiles: BTreeMap<String, Profile> = BTreeMap::new();
        let mut read = Vec::new();
        for (var, name, config, what) in [
            ("AWS_CONFIG_FILE", "config", true, "config file"),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                "credentials",
                false,
                "credentials file",
            ),
        ] {
            let Some(path) = home_file(var, name) else {
                continue;
            };
            if let Some(text) = read_small(&path, what)? {
                for (p, kv) in parse_ini(&text, config) {
                    profiles.entry(p).or_default().extend(kv);
                }
                read.push(path);
            }
        }
        Ok(Files { profiles, read })
    }

    pub fn profile(&self, name: &str) -> Option<&Profile> {
        self.profiles.get(name)
    }
}

/// The profile to use, and whether it was named (a named profile must exist).
fn profile_name() -> (String, bool) {
    match std::env::var("AWS_PROFILE") {
        Ok(p) if !p.is_empty() => (p, true),
        _ => ("default".into(), false),
    }
}

/// The region of the profile in use (`region = ...`), when it has a region's shape.
pub fn profile_region() -> Option<String> {
    let files = Files::load().ok()?;
    let r = files.profile(&profile_name().0)?.get("region")?.clone();
    region_shape(&r).then_some(r)
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`: lower case, digits and dashes.
pub fn region_shape(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 32
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `arn:PARTITION:iam::ACCOUNT:role/NAME` (IAM's own limits: the ARN at most 2048).
fn check_role_arn(arn: &str) -> anyhow::Result<()> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = arn.len() <= 2048
        && parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "iam"
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && parts[5].starts_with("role/")
        && parts[5].len() > 5
        && parts[5].bytes().all(|b| b.is_ascii_graphic());
    if !ok {
        bail!(
            "aws: {:?} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)",
            crate::rest::clip(arn)
        );
    }
    Ok(())
}

/// STS's session-name rule: 2–64 of `[A-Za-z0-9+=,.@_-]`.
fn session_name(given: Option<&String>) -> anyhow::Result<String> {
    let n = given.cloned().unwrap_or_else(|| "hakit-fip-claim".into());
    if !(2..=64).contains(&n.len())
        || !n
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
    {
        bail!(
            "aws: role session name {:?} is not 2-64 of [A-Za-z0-9+=,.@_-]",
            crate::rest::clip(&n)
        );
    }
    Ok(n)
}

fn static_keys(p: &Profile) -> Option<Credentials> {
    Some(Credentials {
        access_key: p.get("aws_access_key_id")?.clone(),
        secret_key: p.get("aws_secret_access_key")?.clone(),
        token: p.get("aws_session_token").cloned(),
    })
}

/// The variables credentials are read from (kept from every child: `hakit_core::exec::is_secret`).
pub const SECRET_ENV: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

fn env_keys() -> Option<Credentials> {
    let [key, secret, token] = [SECRET_ENV[0], SECRET_ENV[1], SECRET_ENV[2]];
    match (std::env::var(key), std::env::var(secret)) {
        (Ok(a), Ok(s)) if !a.is_empty() && !s.is_empty() => Some(Credentials {
            access_key: a,
            secret_key: s,
            token: std::env::var(token).ok().filter(|t| !t.is_empty()),
        }),
        _ => None,
    }
}

/// Everything resolution may need, opened lazily.
pub(crate) struct Resolver<'a, 'b> {
    pub client: &'a Client,
    pub imds: &'b mut Option<Imds<'a>>,
    pub meta: &'b str,
    pub region: &'b str,
}

impl<'a> Resolver<'a, '_> {
    /// Credentials, and where they came from (for the log).
    pub fn resolve(&mut self) -> anyhow::Result<(Credentials, String)> {
        if let Some(c) = env_keys() {
            return Ok((c, "the environment (AWS_ACCESS_KEY_ID)".into()));
        }
        let files = Files::load()?;
        let (name, named) = profile_name();
        let profile = files.profile(&name);
        if named && profile.is_none() {
            bail!(
                "aws: AWS_PROFILE={name:?}: no such profile in {}",
                if files.read.is_empty() {
                    "any file (no ~/.aws/config or ~/.aws/credentials)".to_string()
                } else {
                    files.read.join(", ")
                }
            );
        }
        if let Some(p) = profile.filter(|p| p.contains_key("role_arn")) {
            let c = self.role_profile(&files, &name, p, 0)?;
            return Ok((c, format!("profile {name} (role {})", p["role_arn"])));
        }
        if let (Ok(file), Ok(arn)) = (
            std::env::var("AWS_WEB_IDENTITY_TOKEN_FILE"),
            std::env::var("AWS_ROLE_ARN"),
        ) {
            let session = std::env::var("AWS_ROLE_SESSION_NAME").ok();
            let c = self.web_identity(&file, &arn, session.as_ref())?;
            return Ok((c, format!("web identity (AWS_ROLE_ARN {arn})")));
        }
        if let Some(c) = profile.and_then(static_keys) {
            return Ok((c, format!("profile {name} ({})", files.read.join(", "))));
        }
        let c = self
            .instance_role()
            .context("no credentials in the environment, the profile or a web identity; IMDS")?;
        Ok((c, "the instance role (IMDS)".into()))
    }

    fn role_profile(
        &mut self,
        files: &Files,
        name: &str,
        p: &Profile,
        depth: usize,
    ) -> anyhow::Result<Credentials> {
        if depth >= MAX_CHAIN {
            bail!(
                "aws: profile {name}: role chain longer than {MAX_CHAIN} (a source_profile loop?)"
            );
        }
        let arn = &p["role_arn"];
        check_role_arn(arn)?;
        let session = session_name(p.get("role_session_name"))?;
        if let Some(file) = p.get("web_identity_token_file") {
            return self.web_identity(file, arn, Some(&session));
        }
        let source = match (p.get("source_profile"), p.get("credential_source")) {
            (Some(_), Some(_)) => bail!(
                "aws: profile {name}: source_profile and credential_source are exclusive"
            ),
            (Some(src), None) if src == name => static_keys(p).with_context(|| {
                format!("aws: profile {name} is its own source_profile but has no static keys")
            })?,
            (Some(src), None) => {
                let sp = files
                    .profile(src)
                    .with_context(|| format!("aws: profile {name}: source_profile {src:?} does not exist"))?;
                if sp.contains_key("role_arn") {
                    self.role_profile(files, src, sp, depth + 1)?
                } else {
                    static_keys(sp).with_context(|| {
                        format!("aws: profile {name}: source_profile {src} has no static keys")
                    })?
                }
            }
            (None, Some(cs)) => match cs.as_str() {
                "Environment" => env_keys().with_context(|| {
                    format!("aws: profile {name}: credential_source Environment, but AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are not set")
                })?,
                "Ec2InstanceMetadata" => self.instance_role()?,
                other => bail!(
                    "aws: profile {name}: credential_source {:?} is not supported (Environment, Ec2InstanceMetadata)",
                    crate::rest::clip(other)
                ),
            },
            (None, None) => bail!(
                "aws: profile {name}: role_arn needs source_profile, credential_source or web_identity_token_file"
            ),
        };
        let mut params = vec![
            ("RoleArn", arn.clone()),
            ("RoleSessionName", session),
            ("DurationSeconds", DURATION_SECONDS.to_string()),
        ];
        if let Some(x) = p.get("external_id") {
            params.push(("ExternalId", x.clone()));
        }
        self.sts("AssumeRole", &params, Some(&source))
    }

    fn web_identity(
        &mut self,
        file: &str,
        arn: &str,
        session: Option<&String>,
    ) -> anyhow::Result<Credentials> {
        check_role_arn(arn)?;
        let session = session_name(session)?;
        let token = read_small(file, "web identity token file")?
            .with_context(|| format!("aws: web identity token file {file} does not exist"))?;
        let token = token.trim();
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            bail!("aws: web identity token file {file} does not hold a token (one line of visible ASCII)");
        }
        self.sts(
            "AssumeRoleWithWebIdentity",
            &[
                ("RoleArn", arn.to_string()),
                ("RoleSessionName", session),
                ("DurationSeconds", DURATION_SECONDS.to_string()),
                ("WebIdentityToken", token.to_string()),
            ],
            None,
        )
    }

    fn instance_role(&mut self) -> anyhow::Result<Credentials> {
        if self.imds.is_none() {
            *self.imds = Some(Imds::open(self.client, self.meta)?);
        }
        let m = self.imds.as_ref().context("IMDS")?;
        let role = m.get("iam/security-credentials/")?;
        let role = role.lines().next().context("no instance role")?.to_string();
        // The document IMDS serves (pretty-printed, with a session token of ~1 KB).
        let body = m.get_raw(&format!("iam/security-credentials/{role}"))?;
        if body.len() > 16 * 1024 {
            bail!("aws IMDS: role credentials larger than 16 KiB");
        }
        parse_imds_credentials(&body)
    }

    /// One STS call: signed with `signer`, or unsigned (AssumeRoleWithWebIdentity).
    fn sts(
        &self,
        action: &str,
        params: &[(&str, String)],
        signer: Option<&Credentials>,
    ) -> anyhow::Result<Credentials> {
        let url = ["AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"]
            .iter()
            .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
            .unwrap_or_else(|| format!("https://sts.{}.amazonaws.com", self.region))
            .trim_end_matches('/')
            .to_string();
        let host = crate::aws_query::host_of(&url);
        let mut body = format!("Action={action}&Version={STS_VERSION}");
        for (k, v) in params {
            body.push_str(&format!("&{k}={}", crate::aws_query::encode(v)));
        }
        let mut req = Request::new("POST", format!("{url}/"), format!("sts:{action}"))
            .header("Content-Type", sigv4::CONTENT_TYPE);
        if let Some(creds) = signer {
            let now = hakit_core::clock::since_epoch().as_secs();
            let s = sigv4::sign(
                creds,
                self.region,
                "sts",
                &host,
                &sigv4::amz_date(now),
                &body,
            );
            req = req
                .header("X-Amz-Date", s.amz_date.clone())
                .secret("Authorization", s.authorization.clone());
            if let Some(t) = s.security_token {
                req = req.secret("X-Amz-Security-Token", t);
            }
        }
        let r = self
            .client
            .send(&req.body(body), crate::http::retry_status)
            .with_context(|| format!("aws sts {action}"))?;
        if r.status != 200 {
            bail!("aws sts {action}: {}", crate::aws_query::error_text(&r));
        }
        let n = xml::parse(&r.body)
            .with_context(|| format!("aws sts {action}: HTTP 200 but not STS XML"))?;
        if n.name != format!("{action}Response") {
            bail!("aws sts {action}: HTTP 200 but the body is <{}>", n.name);
        }
        let field = |k: &str| {
            n.get(&format!("{action}Result/Credentials/{k}"))
                .with_context(|| format!("aws sts {action}: the answer lacks Credentials/{k}"))
        };
        let c = Credentials {
            access_key: field("AccessKeyId")?,
            secret_key: field("SecretAccessKey")?,
            token: Some(field("SessionToken")?),
        };
        if let Some(who) = n.get(&format!("{action}Result/AssumedRoleUser/Arn")) {
            info!("aws: assumed {who}");
        }
        Ok(c)
    }
}

/// The instance role's credentials as IMDS serves them.
pub fn parse_imds_credentials(body: &str) -> anyhow::Result<Credentials> {
    let json: serde_json::Value =
        serde_json::from_str(body).context("aws IMDS: role credentials are not JSON")?;
    if let Some(code) = json["Code"].as_str().filter(|c| *c != "Success") {
        bail!(
            "aws IMDS: role credentials: Code {:?}",
            crate::rest::clip(code)
        );
    }
    let field = |k: &str| {
        json[k]
            .as_str()
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .with_context(|| format!("aws IMDS credentials lack {k}"))
    };
    Ok(Credentials {
        access_key: field("AccessKeyId")?,
        secret_key: field("SecretAccessKey")?,
        token: field("Token").ok(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_and_credentials_sections() {
        let config = "[default]\nregion = eu-west-1\n[profile hakit]\nrole_arn = arn:aws:iam::123456789012:role/r\nsource_profile = base\ns3 =\n  max_concurrent_requests = 2\nregion = us-east-2\n[sso-session x]\nsso_region = a\n[hakit]\nignored = 1\n";
        let p = parse_ini(config, true);
        assert_eq!(p["default"]["region"], "eu-west-1");
        assert_eq!(p["hakit"]["region"], "us-east-2");
        assert_eq!(p["hakit"]["source_profile"], "base");
        assert!(!p["hakit"].contains_key("max_concurrent_requests"));
        assert!(!p.contains_key("x") && !p["hakit"].contains_key("ignored"));
        let c = parse_ini(
            "# c\n[base]\naws_access_key_id = A\n; x\naws_secret_access_key=S\n",
            false,
        );
        assert_eq!(static_keys(&c["base"]).unwrap().secret_key, "S");
    }

    #[test]
    fn role_arns_and_session_names() {
        assert!(check_role_arn("arn:aws:iam::123456789012:role/hakit").is_ok());
        assert!(check_role_arn("arn:aws-cn:iam::123456789012:role/path/x").is_ok());
        for bad in [
            "arn:aws:iam::12345:role/x",
            "arn:aws:s3:::bucket",
            "arn:aws:iam::123456789012:user/x",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/a b",
        ] {
            assert!(check_role_arn(bad).is_err(), "{bad}");
        }
        assert_eq!(session_name(None).unwrap(), "hakit-fip-claim");
        assert!(session_name(Some(&"a b".to_string())).is_err());
        assert!(session_name(Some(&"x".to_string())).is_err());
    }

    #[test]
    fn imds_credentials_as_ec2_serves_them() {
        // The documented shape: pretty-printed, with spaces and a long token.
        let body = format!(
            "{{\n  \"Code\" : \"Success\",\n  \"LastUpdated\" : \"2026-11-28T16:39:16Z\",\n  \"Type\" : \"AWS-HMAC\",\n  \"AccessKeyId\" : \"ASIAEXAMPLE\",\n  \"SecretAccessKey\" : \"wJalr/K7MDENG\",\n  \"Token\" : \"{}\",\n  \"Expiration\" : \"2026-11-28T22:39:16Z\"\n}}",
            "T".repeat(1200)
        );
        let c = parse_imds_credentials(&body).unwrap();
        assert_eq!(c.access_key, "ASIAEXAMPLE");
        assert_eq!(c.token.unwrap().len(), 1200);
        assert!(parse_imds_credentials("{\"Code\":\"Failure\"}").is_err());
    }
}
