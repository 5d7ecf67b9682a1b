//! AWS Signature Version 4 for the EC2 Query API (`POST /`, form-encoded body).
//!
//! Implemented here rather than through an SDK: the EC2 calls fip-claim makes are five
//! form posts, and an SDK would multiply the binary's size. Signed headers are
//! `content-type`, `host` and `x-amz-date` (plus `x-amz-security-token` with temporary
//! credentials from IMDS), the canonical query string is empty and the payload is hashed.
//! Reference: AWS "Create a signed AWS API request" (sigv4-create-canonical-request).

use ring::{digest, hmac};

/// Credentials; `token` is the session token of temporary (role) credentials.
#[derive(Clone)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
    pub token: Option<String>,
}

// Never print the secret or the token.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"[redacted]")
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// The form content type the Query API expects (and that is signed).
pub const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
        .as_ref()
        .to_vec()
}

/// The headers to send with a signed request.
#[derive(Clone, PartialEq, Eq)]
pub struct Signed {
    pub amz_date: String,
    pub authorization: String,
    pub security_token: Option<String>,
}

// The session token is a credential: never in logs or `--dry-run` output.
impl std::fmt::Debug for Signed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signed")
            .field("amz_date", &self.amz_date)
            .field("authorization", &self.authorization)
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// Signs `POST https://{host}/` with `body` for `service` in `region` at `amz_date`
/// (`YYYYMMDDTHHMMSSZ`).
pub fn sign(
    creds: &Credentials,
    region: &str,
    service: &str,
    host: &str,
    amz_date: &str,
    body: &str,
) -> Signed {
    let date = &amz_date[..amz_date.len().min(8)];
    let mut headers = vec![
        ("content-type", CONTENT_TYPE.to_string()),
        ("host", host.to_string()),
        ("x-amz-date", amz_date.to_string()),
    ];
    if let Some(t) = &creds.token {
        headers.push(("x-amz-security-token", t.clone()));
    }
    headers.sort();
    let canonical_headers: String = headers
        .iter()
        .map(|(k, v)| format!("{k}:{}\n", v.trim()))
        .collect();
    let signed_headers = headers
        .iter()
        .map(|(k, _)| *k)
        .collect::<Vec<_>>()
        .join(";");
    let canonical = format!(
        "POST\n/\n\n{canonical_headers}\n{signed_headers}\n{}",
        sha256_hex(body.as_bytes())
    );
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let mut key = hmac_sha256(
        format!("AWS4{}", creds.secret_key).as_bytes(),
        date.as_bytes(),
    );
    for part in [region, service, "aws4_request"] {
        key = hmac_sha256(&key, part.as_bytes());
    }
    let signature = hex(&hmac_sha256(&key, to_sign.as_bytes()));
    Signed {
        amz_date: amz_date.to_string(),
        authorization: format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            creds.access_key
        ),
        security_token: creds.token.clone(),
    }
}

/// `YYYYMMDDTHHMMSSZ` for a Unix time (UTC), without a date library.
pub fn amz_date(unix: u64) -> String {
    let (days, secs) = (unix / 86_400, unix % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm), valid for the Unix era.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector from the fip-claim issue: AssociateAddress signed at 2015-08-30 12:36:00.
    #[test]
    fn issue_vector() {
        let creds = Credentials {
            access_key: "AKIDEXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            token: None,
        };
        let body = "Action=AssociateAddress&Version=2016-11-15&AllocationId=eipalloc-0123456789abcdef0&InstanceId=i-0abc1234def567890&AllowReassociation=true";
        let s = sign(
            &creds,
            "us-east-1",
            "ec2",
            "ec2.us-east-1.amazonaws.com",
            "20150830T123600Z",
            body,
        );
        assert_eq!(
            s.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/ec2/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=1a2276266666eb733686d2a875534fff1fa92d64da2d9ec940c88ebe95aae4af"
        );
    }

    #[test]
    fn session_token_is_signed_and_never_printed() {
        let creds = Credentials {
            access_key: "AKID".into(),
            secret_key: "s3cr3t".into(),
            token: Some("t0k3n".into()),
        };
        let s = sign(
            &creds,
            "eu-west-1",
            "ec2",
            "ec2.eu-west-1.amazonaws.com",
            "20260101T000000Z",
            "Action=DescribeAddresses",
        );
        assert!(s
            .authorization
            .contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token"));
        let shown = format!("{creds:?} {s:?}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("t0k3n"),
            "{shown}"
        );
        assert_eq!(
            s.security_token.as_deref(),
            Some("t0k3n"),
            "sent, just never shown"
        );
    }

    #[test]
    fn dates() {
        assert_eq!(amz_date(1_440_938_160), "20150830T123600Z");
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(amz_date(951_782_400), "20000229T000000Z");
    }
}
