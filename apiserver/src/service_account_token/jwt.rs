//! Compact JWS (RFC 7515) with JSON claims: what a service account token is
//! on the wire, `base64url(header).base64url(claims).base64url(signature)`.
//!
//! Verification is strict: three unpadded base64url parts, a header whose
//! `alg` is one of ours (never `none`) and matches the key, JSON objects in
//! header and payload, and a bounded size, so hostile input costs little
//! and is refused rather than panicking.

use super::keys::{Algorithm, SigningKey, VerifyingKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// The longest token looked at (kube's are about 1 KB).
pub const MAX_TOKEN_BYTES: usize = 8 << 10;

/// Why a token was refused. Never carries the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url parts of JSON, or too long.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The header's `alg` is `none` or one rkube does not verify.
    #[error("unsupported signature algorithm")]
    Algorithm,
    /// No key verifies the signature.
    #[error("invalid signature")]
    Signature,
}

/// Signs `claims` with `key`: the token's text.
pub fn sign(key: &SigningKey, claims: &Value) -> String {
    let public = key.verifying_key();
    let header = json!({"alg": public.alg.name(), "kid": public.kid});
    let mut token =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let signature = key.sign(token.as_bytes());
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(signature));
    token
}

/// Checks `token`'s signature against `keys` (the one its `kid` names, or
/// every key of its algorithm) and returns its claims.
pub fn verify(token: &str, keys: &[VerifyingKey]) -> Result<Value, JwtError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtError::Malformed("too long"));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed("not three dot-separated parts"));
    };
    let header: Value = decode_json(header)?;
    let alg = header.get("alg").and_then(Value::as_str).ok_or(JwtError::Malformed("no alg in the header"))?;
    let alg = Algorithm::parse(alg).ok_or(JwtError::Algorithm)?;
    if header.get("crit").is_some() {
        return Err(JwtError::Malformed("critical header extensions are not supported"));
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.as_str()),
        Some(_) => return Err(JwtError::Malformed("kid is not a string")),
    };
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| JwtError::Malformed("signature is not base64url"))?;
    let signed = &token[..header_and_payload_len(token)];
    let verified = keys
        .iter()
        .filter(|k| k.alg == alg && kid.is_none_or(|kid| kid == k.kid))
        .any(|k| k.verify(signed.as_bytes(), &signature));
    if !verified {
        return Err(JwtError::Signature);
    }
    decode_json(payload)
}

/// The length of `header.payload`, the signed part.
fn header_and_payload_len(token: &str) -> usize {
    token.rfind('.').expect("three parts were found")
}

fn decode_json(part: &str) -> Result<Value, JwtError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| JwtError::Malformed("a part is not base64url"))?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed("a part is not JSON"))?;
    if !value.is_object() {
        return Err(JwtError::Malformed("a part is not a JSON object"));
    }
    Ok(value)
}
