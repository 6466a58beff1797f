//! Service account tokens, as kube-apiserver issues and checks them
//! (`pkg/serviceaccount/jwt.go`, `claims.go`).
//!
//! A token is a JWT signed with `--service-account-signing-key-file`
//! ([`keys`], [`jwt`]): `iss` the first `--service-account-issuer`, `sub`
//! `system:serviceaccount:<ns>:<name>`, `aud`, `exp`, `iat`, `nbf`, `jti`,
//! and the private `kubernetes.io` claim naming the namespace, the
//! ServiceAccount (name, uid) and the object the token is bound to (a pod,
//! with its node, a secret or a node). [`request`] serves the TokenRequest
//! subresource that issues them; [`ServiceAccountTokens::authenticate`]
//! turns one back into a user: a valid signature from a
//! `--service-account-key-file` key, a known issuer, a time window that
//! holds (with kube's minute of leeway), an audience the apiserver accepts
//! (`--api-audiences`), and a ServiceAccount — and bound object — that
//! still exist with the uids the token names.

pub mod jwt;
pub mod keys;
pub mod request;

use crate::authn::UserInfo;
use crate::registry::Registry;
use keys::{SigningKey, VerifyingKey};
use rkube_api::resource::lookup;
use rkube_api::{ApiError, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::PathBuf;
use tracing::debug;

/// The issuer when `--service-account-issuer` is not given.
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// How far `exp` and `nbf` may be off (go-jose's default leeway, which kube uses).
pub const LEEWAY_SECONDS: i64 = 60;
/// The shortest lifetime a TokenRequest may ask for.
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
/// The lifetime of a TokenRequest that asks for none.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// The longest lifetime a TokenRequest may ask for (2^32 s).
pub const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;

/// The service account token flags of the apiserver.
#[derive(Debug, Clone, Default)]
pub struct TokenOptions {
    /// `--service-account-signing-key-file`.
    pub signing_key_file: Option<PathBuf>,
    /// `--service-account-key-file` (may repeat).
    pub key_files: Vec<PathBuf>,
    /// `--service-account-issuer` (may repeat; the first one is issued).
    pub issuers: Vec<String>,
    /// `--api-audiences`.
    pub api_audiences: Vec<String>,
    /// `--service-account-max-token-expiration` in seconds, if any.
    pub max_expiration_seconds: Option<i64>,
}

/// A reference in the `kubernetes.io` claim.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ref {
    /// The object's name.
    pub name: String,
    /// Its uid.
    pub uid: String,
}

/// The private `kubernetes.io` claim (kube's `claims.go` `kubernetes`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaim {
    /// The ServiceAccount's namespace.
    pub namespace: String,
    /// The ServiceAccount.
    pub serviceaccount: Ref,
    /// The pod the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Ref>,
    /// The secret the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Ref>,
    /// The node the token is bound to, or the bound pod's node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<Ref>,
}

/// A token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// `system:serviceaccount:<ns>:<name>`.
    pub sub: String,
    /// Audiences.
    pub aud: Vec<String>,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// A unique id.
    #[serde(default)]
    pub jti: String,
    /// What the token is about.
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaim,
}

/// What a new token says.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    /// The ServiceAccount's namespace, name and uid, and what it is bound to.
    pub kubernetes: KubernetesClaim,
    /// Audiences (empty: the apiserver's).
    pub audiences: Vec<String>,
    /// Lifetime in seconds.
    pub expiration_seconds: i64,
    /// Issued at (seconds since the epoch).
    pub now: i64,
}

/// The apiserver's service account token keys and settings.
#[derive(Debug)]
pub struct ServiceAccountTokens {
    signing: Option<SigningKey>,
    keys: Vec<VerifyingKey>,
    issuers: Vec<String>,
    audiences: Vec<String>,
    max_expiration_seconds: Option<i64>,
}

/// Why a token is not accepted: logged at debug, never shown to the client
/// (which sees `401 Unauthorized`) and never containing the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a valid JWT of one of our keys.
    #[error(transparent)]
    Jwt(#[from] jwt::JwtError),
    /// Claims missing or of the wrong type.
    #[error("the token's claims are not a service account's: {0}")]
    Claims(String),
    /// Another issuer's token.
    #[error("the token's issuer is not accepted")]
    Issuer,
    /// Past `exp` or before `nbf`.
    #[error("the token is expired or not yet valid")]
    Expired,
    /// None of the token's audiences is the apiserver's.
    #[error("the token's audiences are not accepted")]
    Audience,
    /// The ServiceAccount or the bound object is gone, or was recreated.
    #[error("{0}")]
    Stale(String),
}

impl ServiceAccountTokens {
    /// Reads the keys the flags name; None when no key flag is given (the
    /// apiserver then neither issues nor accepts service account tokens).
    pub fn from_options(options: &TokenOptions) -> anyhow::Result<Option<ServiceAccountTokens>> {
        if options.signing_key_file.is_none() && options.key_files.is_empty() {
            return Ok(None);
        }
        let signing = options.signing_key_file.as_deref().map(SigningKey::from_file).transpose()?;
        let mut keys = Vec::new();
        for file in &options.key_files {
            keys.extend(VerifyingKey::from_file(file)?);
        }
        if keys.is_empty() {
            keys.extend(signing.as_ref().map(|s| s.verifying_key().clone()));
        }
        if let Some(signing) = &signing
            && !keys.contains(signing.verifying_key())
        {
            anyhow::bail!(
                "--service-account-signing-key-file: its public key is not among the --service-account-key-file keys, so tokens it signs would be refused"
            );
        }
        let mut issuers: Vec<String> = options.issuers.iter().filter(|i| !i.is_empty()).cloned().collect();
        if issuers.is_empty() {
            issuers.push(DEFAULT_ISSUER.into());
        }
        let mut audiences: Vec<String> = options.api_audiences.iter().filter(|a| !a.is_empty()).cloned().collect();
        if audiences.is_empty() {
            audiences.push(issuers[0].clone());
        }
        if let Some(max) = options.max_expiration_seconds
            && max < MIN_EXPIRATION_SECONDS
        {
            anyhow::bail!("--service-account-max-token-expiration must be at least {MIN_EXPIRATION_SECONDS}s");
        }
        Ok(Some(ServiceAccountTokens {
            signing,
            keys,
            issuers,
            audiences,
            max_expiration_seconds: options.max_expiration_seconds,
        }))
    }

    /// Tokens signed by `signing`, for tests and embedders.
    pub fn new(signing: SigningKey, issuer: &str, audiences: Vec<String>) -> ServiceAccountTokens {
        let keys = vec![signing.verifying_key().clone()];
        ServiceAccountTokens {
            signing: Some(signing),
            keys,
            issuers: vec![issuer.into()],
            audiences,
            max_expiration_seconds: None,
        }
    }

    /// Whether this apiserver issues tokens (it has a signing key).
    pub fn issues(&self) -> bool {
        self.signing.is_some()
    }

    /// The audiences the apiserver accepts (`--api-audiences`).
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }

    /// Signs a token; returns it with its expiry (seconds since the epoch).
    pub fn issue(&self, spec: &TokenSpec) -> Result<(String, i64)> {
        let signing = self.signing.as_ref().ok_or_else(not_issuing)?;
        let k = &spec.kubernetes;
        let audiences = if spec.audiences.is_empty() { self.audiences.clone() } else { spec.audiences.clone() };
        let exp = spec.now.saturating_add(spec.expiration_seconds);
        let claims = Claims {
            iss: self.issuers[0].clone(),
            sub: subject(&k.namespace, &k.serviceaccount.name),
            aud: audiences,
            exp,
            iat: spec.now,
            nbf: spec.now,
            jti: uuid::Uuid::new_v4().to_string(),
            kubernetes: k.clone(),
        };
        let claims = serde_json::to_value(&claims).map_err(|e| ApiError::internal(e.to_string()))?;
        Ok((jwt::sign(signing, &claims), exp))
    }

    /// The lifetime a TokenRequest asking for `requested` seconds gets:
    /// `--service-account-max-token-expiration` caps it.
    pub fn lifetime(&self, requested: i64) -> i64 {
        self.max_expiration_seconds.map_or(requested, |max| requested.min(max))
    }

    /// Checks a token's signature, issuer, time window and audience at
    /// `now`; the claims if they hold. Does not look at the cluster.
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        let claims = jwt::verify(token, &self.keys)?;
        let iss = claims.get("iss").and_then(Value::as_str).unwrap_or_default();
        if !self.issuers.iter().any(|i| i == iss) {
            return Err(TokenError::Issuer);
        }
        // `aud` may be one string (RFC 7519); ours are always lists.
        let mut claims = claims;
        if let Some(aud @ Value::String(_)) = claims.get_mut("aud") {
            *aud = Value::Array(vec![aud.take()]);
        }
        let claims: Claims = serde_json::from_value(claims).map_err(|e| TokenError::Claims(e.to_string()))?;
        if now > claims.exp.saturating_add(LEEWAY_SECONDS) || now < claims.nbf.saturating_sub(LEEWAY_SECONDS) {
            return Err(TokenError::Expired);
        }
        if claims.iat > now.saturating_add(LEEWAY_SECONDS) {
            return Err(TokenError::Expired);
        }
        if !claims.aud.iter().any(|a| self.audiences.contains(a)) {
            return Err(TokenError::Audience);
        }
        let k = &claims.kubernetes;
        if k.namespace.is_empty() || k.serviceaccount.name.is_empty() || k.serviceaccount.uid.is_empty() {
            return Err(TokenError::Claims("no namespace or service account".into()));
        }
        if claims.sub != subject(&k.namespace, &k.serviceaccount.name) {
            return Err(TokenError::Claims("the subject is not the service account".into()));
        }
        Ok(claims)
    }

    /// The user a token stands for, checked against the cluster: its
    /// ServiceAccount and bound objects must exist with the uids it names
    /// and not be being deleted.
    pub async fn authenticate(&self, registry: &Registry, token: &str) -> Result<UserInfo, TokenError> {
        let claims = self.verify(token, unix_now())?;
        let k = &claims.kubernetes;
        let ns = k.namespace.as_str();
        check_live(registry, "serviceaccounts", ns, &k.serviceaccount).await?;
        if let Some(pod) = &k.pod {
            check_live(registry, "pods", ns, pod).await?;
        }
        if let Some(secret) = &k.secret {
            check_live(registry, "secrets", ns, secret).await?;
        }
        // The node of a pod-bound token is informational (kube checks it
        // only for node-bound tokens).
        if let (Some(node), None) = (&k.node, &k.pod) {
            check_live(registry, "nodes", "", node).await?;
        }
        Ok(UserInfo {
            name: claims.sub.clone(),
            uid: k.serviceaccount.uid.clone(),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{ns}"),
                "system:authenticated".into(),
            ],
        })
    }
}

/// `system:serviceaccount:<ns>:<name>`.
pub fn subject(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

pub(crate) fn not_issuing() -> ApiError {
    ApiError::new(
        rkube_api::Reason::NotFound,
        "the server does not issue service account tokens (no --service-account-signing-key-file)",
    )
}

/// Seconds since the epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Fails unless `plural/namespace/r.name` exists with uid `r.uid` and is not being deleted.
async fn check_live(registry: &Registry, plural: &str, namespace: &str, r: &Ref) -> Result<(), TokenError> {
    let info = lookup(plural).expect("a served resource");
    let what = format!("{} {namespace}/{}", info.kind, r.name);
    let object = match registry.get(info, namespace, &r.name).await {
        Ok(o) => o,
        Err(e) => {
            debug!(object = %what, error = %e.message, "service account token: bound object not found");
            return Err(TokenError::Stale(format!("{what} is gone: {}", e.message)));
        }
    };
    let object: Value = serde_json::from_slice(&object.json).unwrap_or_default();
    let uid = object.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or_default();
    if uid != r.uid {
        return Err(TokenError::Stale(format!("{what} has uid {uid}, the token names {}", r.uid)));
    }
    // As kube: an object being deleted keeps its tokens for a minute past its
    // deletion time (a pod's grace period, then a minute more).
    let deleted = object.pointer("/metadata/deletionTimestamp").and_then(Value::as_str);
    if let Some(at) = deleted.and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
        && at.as_second() < unix_now() - LEEWAY_SECONDS
    {
        return Err(TokenError::Stale(format!("{what} was deleted")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use keys::SigningKey;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;

    fn tokens() -> ServiceAccountTokens {
        ServiceAccountTokens::new(SigningKey::generate(), DEFAULT_ISSUER, vec!["api".into(), DEFAULT_ISSUER.into()])
    }

    fn spec(audiences: &[&str], seconds: i64) -> TokenSpec {
        TokenSpec {
            kubernetes: KubernetesClaim {
                namespace: "ns".into(),
                serviceaccount: Ref { name: "robot".into(), uid: "sa-uid".into() },
                pod: Some(Ref { name: "web".into(), uid: "pod-uid".into() }),
                secret: None,
                node: Some(Ref { name: "n1".into(), uid: "node-uid".into() }),
            },
            audiences: audiences.iter().map(|a| a.to_string()).collect(),
            expiration_seconds: seconds,
            now: NOW,
        }
    }

    fn parts(token: &str) -> (Value, Value, String) {
        let p: Vec<&str> = token.split('.').collect();
        let json = |s: &str| serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).expect("base64url")).expect("JSON");
        (json(p[0]), json(p[1]), p[2].to_string())
    }

    fn assemble(header: &Value, claims: &Value, signature: &str) -> String {
        format!(
            "{}.{}.{signature}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    }

    #[test]
    fn a_signed_token_verifies_with_kube_claims() {
        let t = tokens();
        let (token, exp) = t.issue(&spec(&[], 3600)).expect("issued");
        assert_eq!(exp, NOW + 3600);
        let (header, claims, _) = parts(&token);
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"].as_str().map(str::len), Some(43), "base64url of a SHA-256");
        assert_eq!(claims["iss"], DEFAULT_ISSUER);
        assert_eq!(claims["sub"], "system:serviceaccount:ns:robot");
        assert_eq!(claims["aud"], json!(["api", DEFAULT_ISSUER]), "the apiserver's audiences by default");
        assert_eq!(
            (claims["iat"].as_i64(), claims["nbf"].as_i64(), claims["exp"].as_i64()),
            (Some(NOW), Some(NOW), Some(exp))
        );
        assert_eq!(
            claims["kubernetes.io"],
            json!({"namespace": "ns", "serviceaccount": {"name": "robot", "uid": "sa-uid"},
                   "pod": {"name": "web", "uid": "pod-uid"}, "node": {"name": "n1", "uid": "node-uid"}})
        );
        let verified = t.verify(&token, NOW + 10).expect("valid");
        assert_eq!(verified.kubernetes.serviceaccount.uid, "sa-uid");
    }

    #[test]
    fn rsa_keys_sign_and_verify_too() {
        // A 2048-bit RSA PKCS#8 key, as `openssl genpkey -algorithm RSA` writes.
        let pem = include_str!("testdata/rsa.key");
        let dir = std::env::temp_dir().join(format!("rkube-sa-rsa-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("rsa.key");
        std::fs::write(&path, pem).expect("write");
        let key = SigningKey::from_file(&path).expect("an RSA key");
        let public = keys::VerifyingKey::from_file(&path).expect("its public key");
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(key.verifying_key().alg, keys::Algorithm::Rs256);
        assert_eq!(&public, &[key.verifying_key().clone()]);
        let t = ServiceAccountTokens::new(key, DEFAULT_ISSUER, vec![DEFAULT_ISSUER.into()]);
        let (token, _) = t.issue(&spec(&[], 600)).expect("issued");
        assert_eq!(parts(&token).0["alg"], "RS256");
        t.verify(&token, NOW).expect("valid");
    }

    #[test]
    fn tampering_other_keys_and_none_are_refused() {
        let t = tokens();
        let (token, _) = t.issue(&spec(&[], 3600)).expect("issued");
        let (header, claims, signature) = parts(&token);

        let mut admin = claims.clone();
        admin["sub"] = "system:serviceaccount:kube-system:admin".into();
        admin["kubernetes.io"]["namespace"] = "kube-system".into();
        assert_eq!(
            t.verify(&assemble(&header, &admin, &signature), NOW),
            Err(TokenError::Jwt(jwt::JwtError::Signature))
        );

        let mut sig = URL_SAFE_NO_PAD.decode(&signature).expect("base64url");
        sig[10] ^= 1;
        let flipped = assemble(&header, &claims, &URL_SAFE_NO_PAD.encode(&sig));
        assert_eq!(t.verify(&flipped, NOW), Err(TokenError::Jwt(jwt::JwtError::Signature)));

        for none in [json!({"alg": "none"}), json!({"alg": "HS256"}), json!({"alg": "none", "kid": header["kid"]})] {
            assert_eq!(t.verify(&assemble(&none, &claims, ""), NOW), Err(TokenError::Jwt(jwt::JwtError::Algorithm)));
        }
        let mut rs = header.clone();
        rs["alg"] = "RS256".into();
        assert_eq!(t.verify(&assemble(&rs, &claims, &signature), NOW), Err(TokenError::Jwt(jwt::JwtError::Signature)));

        let other = tokens();
        assert_eq!(other.verify(&token, NOW), Err(TokenError::Jwt(jwt::JwtError::Signature)), "another key");
    }

    #[test]
    fn expired_early_and_foreign_audience_tokens_are_refused() {
        let t = tokens();
        let (token, exp) = t.issue(&spec(&[], 600)).expect("issued");
        t.verify(&token, exp + LEEWAY_SECONDS).expect("within the leeway");
        assert_eq!(t.verify(&token, exp + LEEWAY_SECONDS + 1), Err(TokenError::Expired));
        assert_eq!(t.verify(&token, NOW - LEEWAY_SECONDS - 1), Err(TokenError::Expired), "before nbf");

        let (vault, _) = t.issue(&spec(&["vault"], 600)).expect("issued");
        assert_eq!(t.verify(&vault, NOW), Err(TokenError::Audience));
        let (both, _) = t.issue(&spec(&["vault", "api"], 600)).expect("issued");
        t.verify(&both, NOW).expect("one accepted audience is enough");

        let elsewhere = ServiceAccountTokens::new(SigningKey::generate(), "https://elsewhere", vec!["api".into()]);
        let (foreign, _) = elsewhere.issue(&spec(&[], 600)).expect("issued");
        let mut trusting = ServiceAccountTokens::new(SigningKey::generate(), DEFAULT_ISSUER, vec!["api".into()]);
        trusting.keys.extend(elsewhere.keys.clone());
        assert_eq!(trusting.verify(&foreign, NOW), Err(TokenError::Issuer));
    }

    #[test]
    fn malformed_and_huge_input_is_refused_without_panicking() {
        let t = tokens();
        let (token, _) = t.issue(&spec(&[], 600)).expect("issued");
        let (header, claims, signature) = parts(&token);
        let b64 = |s: &str| URL_SAFE_NO_PAD.encode(s);
        let huge = format!("{}.{}.{}", b64("{}"), "A".repeat(jwt::MAX_TOKEN_BYTES), signature);
        let bad = [
            String::new(),
            "..".into(),
            "a.b".into(),
            "a.b.c.d".into(),
            format!("{}.{}.{}", "!!!", b64(&claims.to_string()), signature),
            format!("{}.{}.{}", b64("not json"), b64(&claims.to_string()), signature),
            format!("{}.{}.{}", b64("[1]"), b64(&claims.to_string()), signature),
            format!("{}.{}.{}", b64(&header.to_string()), b64(&claims.to_string()), "*"),
            format!("{}.{}.{}=", b64(&header.to_string()), b64(&claims.to_string()), signature),
            huge,
            "\u{0}.\u{ff}.é".into(),
        ];
        for token in bad {
            assert!(matches!(t.verify(&token, NOW), Err(TokenError::Jwt(_))), "refused: {token:.40}");
        }
        // Well signed, but not a service account's claims.
        let signing = SigningKey::generate();
        let t = ServiceAccountTokens::new(signing, DEFAULT_ISSUER, vec![DEFAULT_ISSUER.into()]);
        let odd = jwt::sign(t.signing.as_ref().expect("a key"), &json!({"iss": DEFAULT_ISSUER, "exp": "soon"}));
        assert!(matches!(t.verify(&odd, NOW), Err(TokenError::Claims(_))));
    }
}
