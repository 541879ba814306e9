//! Webhook authentication shared by every sender: the `sha256=<hex HMAC-SHA256 of the raw
//! body>` header of GitHub (`X-Hub-Signature-256`) and Jira Cloud (`X-Hub-Signature`), and
//! shared secrets presented as they are (GitLab's `X-Gitlab-Token`, Jira Data Center's
//! `?secret=`). Every comparison takes constant time.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Whether `header` is `sha256=` and the hex HMAC-SHA256 of `body` keyed with `secret`.
pub fn hmac_sha256_header_valid(secret: &str, body: &[u8], header: Option<&str>) -> bool {
    let Some(hex) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else { return false };
    let Some(expected) = decode_hex(hex) else { return false };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return false };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// The `sha256=<hex>` header a sender holding `secret` would attach to `body`.
pub fn hmac_sha256_header(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex(&mac.finalize().into_bytes()))
}

/// Whether a secret presented as it is equals the configured one. Both sides are hashed
/// first, so the comparison takes the same time whatever their lengths.
pub fn secret_equals(secret: &str, presented: &str) -> bool {
    bool::from(Sha256::digest(presented.as_bytes()).ct_eq(&Sha256::digest(secret.as_bytes())))
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A SHA-256 MAC in hex: exactly 64 hex digits.
fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_verify_only_the_body_and_secret_they_were_made_with() {
        let header = hmac_sha256_header("s3cret", b"body");
        assert!(hmac_sha256_header_valid("s3cret", b"body", Some(&header)));
        assert!(!hmac_sha256_header_valid("s3cret", b"body!", Some(&header)));
        assert!(!hmac_sha256_header_valid("other", b"body", Some(&header)));
        assert!(!hmac_sha256_header_valid("s3cret", b"body", Some(&header.replace("sha256=", "sha1="))));
        assert!(!hmac_sha256_header_valid("s3cret", b"body", Some("sha256=zz")));
        assert!(!hmac_sha256_header_valid("s3cret", b"body", None));
        assert!(secret_equals("s3cret", "s3cret") && !secret_equals("s3cret", "s3cre") && !secret_equals("s3cret", ""));
    }
}
