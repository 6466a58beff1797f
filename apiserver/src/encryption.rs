//! Encryption at rest (`--encryption-provider-config`): Kubernetes'
//! `EncryptionConfiguration` (apiserver.config.k8s.io/v1), with the
//! `aesgcm`, `secretbox` and `identity` providers.
//!
//! For each resource the configuration names, the first provider encrypts
//! what is written, and every provider may decrypt what is read: a stored
//! value says which provider and key sealed it
//! (`k8s:enc:aesgcm:v1:<key name>:<nonce><ciphertext>`, as kube-apiserver
//! writes it), and a value without the `k8s:enc:` prefix is plain JSON,
//! read by `identity`. So adding a key first, then rewriting every object,
//! then dropping the old key rotates without downtime (docs/security.md).
//!
//! AES-GCM binds each value to its etcd key (the key is the authenticated
//! data), so a value copied to another key does not decrypt. Key material
//! never appears in errors or logs: only key names do.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm};
use base64::Engine as _;
use bytes::Bytes;
use crypto_secretbox::XSalsa20Poly1305;
use rkube_api::resource::RESOURCES;
use rkube_api::{ApiError, Result};
use serde::Deserialize;
use std::path::Path;
use std::sync::Arc;

/// What every encrypted value starts with.
const ENCRYPTED: &[u8] = b"k8s:enc:";

type Aes192Gcm = AesGcm<aes_gcm::aes::Aes192, aes_gcm::aead::consts::U12>;

/// How values under each etcd prefix are sealed and opened.
#[derive(Default)]
pub struct Encryption {
    /// etcd key prefix → its providers (one entry per resource).
    rules: Vec<(String, Arc<Providers>)>,
}

impl std::fmt::Debug for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key names only, never their secrets.
        let rules: Vec<String> = self.rules.iter().map(|(p, providers)| format!("{p}: {providers:?}")).collect();
        f.debug_struct("Encryption").field("rules", &rules).finish()
    }
}

struct Providers(Vec<Provider>);

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.0.iter().map(Provider::describe).collect();
        write!(f, "[{}]", names.join(", "))
    }
}

enum Provider {
    Identity,
    AesGcm(Vec<(String, AesKey)>),
    Secretbox(Vec<(String, XSalsa20Poly1305)>),
}

enum AesKey {
    A128(Box<Aes128Gcm>),
    A192(Box<Aes192Gcm>),
    A256(Box<Aes256Gcm>),
}

impl AesKey {
    fn encrypt(&self, nonce: &[u8], payload: Payload<'_, '_>) -> std::result::Result<Vec<u8>, aes_gcm::Error> {
        let nonce = aes_gcm::Nonce::from_slice(nonce);
        match self {
            AesKey::A128(k) => k.encrypt(nonce, payload),
            AesKey::A192(k) => k.encrypt(nonce, payload),
            AesKey::A256(k) => k.encrypt(nonce, payload),
        }
    }

    fn decrypt(&self, nonce: &[u8], payload: Payload<'_, '_>) -> std::result::Result<Vec<u8>, aes_gcm::Error> {
        let nonce = aes_gcm::Nonce::from_slice(nonce);
        match self {
            AesKey::A128(k) => k.decrypt(nonce, payload),
            AesKey::A192(k) => k.decrypt(nonce, payload),
            AesKey::A256(k) => k.decrypt(nonce, payload),
        }
    }
}

const AES_NONCE: usize = 12;
const SECRETBOX_NONCE: usize = 24;

impl Provider {
    fn describe(&self) -> String {
        let names = |keys: Vec<&str>| keys.join(",");
        match self {
            Provider::Identity => "identity".into(),
            Provider::AesGcm(keys) => format!("aesgcm({})", names(keys.iter().map(|(n, _)| n.as_str()).collect())),
            Provider::Secretbox(keys) => {
                format!("secretbox({})", names(keys.iter().map(|(n, _)| n.as_str()).collect()))
            }
        }
    }

    /// Seals `plain` with this provider's first key.
    fn seal(&self, key: &str, plain: &[u8]) -> Result<Vec<u8>> {
        let failed = |what: &str| ApiError::internal(format!("encrypting {key} with {what} failed"));
        match self {
            Provider::Identity => Ok(plain.to_vec()),
            Provider::AesGcm(keys) => {
                let (name, cipher) = &keys[0];
                let nonce = random::<AES_NONCE>()?;
                let sealed = cipher
                    .encrypt(&nonce, Payload { msg: plain, aad: key.as_bytes() })
                    .map_err(|_| failed(&format!("aesgcm key {name}")))?;
                Ok([format!("k8s:enc:aesgcm:v1:{name}:").as_bytes(), &nonce, &sealed].concat())
            }
            Provider::Secretbox(keys) => {
                let (name, cipher) = &keys[0];
                let nonce = random::<SECRETBOX_NONCE>()?;
                let sealed = cipher
                    .encrypt(crypto_secretbox::Nonce::from_slice(&nonce), plain)
                    .map_err(|_| failed(&format!("secretbox key {name}")))?;
                Ok([format!("k8s:enc:secretbox:v1:{name}:").as_bytes(), &nonce, &sealed].concat())
            }
        }
    }

    /// Opens `stored` if one of this provider's keys sealed it (None when
    /// it is not this provider's): the plain value, and whether a key other
    /// than the first sealed it.
    fn open(&self, key: &str, stored: &[u8]) -> Option<Result<(Vec<u8>, bool)>> {
        let failed = |what: String| {
            Some(Err(ApiError::internal(format!(
                "{key} does not decrypt with {what}: the value was changed, moved from another key, or the key's secret is not the one that sealed it"
            ))))
        };
        match self {
            Provider::Identity => (!stored.starts_with(ENCRYPTED)).then(|| Ok((stored.to_vec(), false))),
            Provider::AesGcm(keys) => keys.iter().enumerate().find_map(|(i, (name, cipher))| {
                let rest = stored.strip_prefix(format!("k8s:enc:aesgcm:v1:{name}:").as_bytes())?;
                if rest.len() < AES_NONCE {
                    return failed(format!("aesgcm key {name}"));
                }
                let (nonce, sealed) = rest.split_at(AES_NONCE);
                match cipher.decrypt(nonce, Payload { msg: sealed, aad: key.as_bytes() }) {
                    Ok(plain) => Some(Ok((plain, i > 0))),
                    Err(_) => failed(format!("aesgcm key {name}")),
                }
            }),
            Provider::Secretbox(keys) => keys.iter().enumerate().find_map(|(i, (name, cipher))| {
                let rest = stored.strip_prefix(format!("k8s:enc:secretbox:v1:{name}:").as_bytes())?;
                if rest.len() < SECRETBOX_NONCE {
                    return failed(format!("secretbox key {name}"));
                }
                let (nonce, sealed) = rest.split_at(SECRETBOX_NONCE);
                match cipher.decrypt(crypto_secretbox::Nonce::from_slice(nonce), sealed) {
                    Ok(plain) => Some(Ok((plain, i > 0))),
                    Err(_) => failed(format!("secretbox key {name}")),
                }
            }),
        }
    }
}

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::internal(format!("no random nonce: {e}")))?;
    Ok(bytes)
}

/// The prefix of an encrypted value up to its key name, for messages.
fn sealed_by(stored: &[u8]) -> String {
    let head = &stored[..stored.len().min(64)];
    let fields: Vec<&[u8]> = head.splitn(6, |b| *b == b':').take(5).collect();
    String::from_utf8_lossy(&fields.join(&b':')).into_owned()
}

impl Encryption {
    /// No encryption: every value is stored as it is.
    pub fn none() -> Encryption {
        Encryption::default()
    }

    /// Reads an EncryptionConfiguration file (YAML or JSON).
    pub fn from_file(path: &Path) -> anyhow::Result<Encryption> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("--encryption-provider-config {}: {e}", path.display()))?;
        Encryption::parse(&text).map_err(|e| anyhow::anyhow!("--encryption-provider-config {}: {e}", path.display()))
    }

    /// Parses an EncryptionConfiguration; errors name the field.
    pub fn parse(text: &str) -> std::result::Result<Encryption, String> {
        let cfg: Config = serde_yaml_ng::from_str(text).map_err(|e| format!("not an EncryptionConfiguration: {e}"))?;
        if cfg.kind != "EncryptionConfiguration" {
            return Err(format!("kind: must be EncryptionConfiguration, not \"{}\"", cfg.kind));
        }
        if !matches!(cfg.api_version.as_str(), "apiserver.config.k8s.io/v1" | "apiserver.config.k8s.io/v1beta1") {
            return Err(format!("apiVersion: must be apiserver.config.k8s.io/v1, not \"{}\"", cfg.api_version));
        }
        let mut rules: Vec<(String, Arc<Providers>)> = Vec::new();
        for (i, entry) in cfg.resources.iter().enumerate() {
            let at = format!("resources[{i}]");
            if entry.resources.is_empty() {
                return Err(format!("{at}.resources: must name at least one resource"));
            }
            if entry.providers.is_empty() {
                return Err(format!("{at}.providers: must name at least one provider"));
            }
            let providers = Arc::new(Providers(
                entry
                    .providers
                    .iter()
                    .enumerate()
                    .map(|(j, p)| p.build(&format!("{at}.providers[{j}]")))
                    .collect::<std::result::Result<_, _>>()?,
            ));
            for (j, pattern) in entry.resources.iter().enumerate() {
                let matched =
                    matching_prefixes(pattern).map_err(|e| format!("{at}.resources[{j}]: \"{pattern}\" {e}"))?;
                for prefix in matched {
                    // The first entry naming a resource wins, as in Kubernetes.
                    if !rules.iter().any(|(p, _)| *p == prefix) {
                        rules.push((prefix, providers.clone()));
                    }
                }
            }
        }
        Ok(Encryption { rules })
    }

    fn providers(&self, key: &str) -> Option<&Providers> {
        self.rules.iter().find(|(prefix, _)| key.starts_with(prefix.as_str())).map(|(_, p)| p.as_ref())
    }

    /// Whether values under `key` are sealed by a provider other than identity.
    pub fn encrypts(&self, key: &str) -> bool {
        self.providers(key).is_some_and(|p| !matches!(p.0[0], Provider::Identity))
    }

    /// The value to store under `key` for `plain`.
    pub fn seal(&self, key: &str, plain: Vec<u8>) -> Result<Vec<u8>> {
        match self.providers(key) {
            Some(providers) => providers.0[0].seal(key, &plain),
            None => Ok(plain),
        }
    }

    /// The plain value of what is stored under `key`.
    pub fn open(&self, key: &str, stored: Bytes) -> Result<Bytes> {
        self.open_marked(key, stored).map(|(plain, _)| plain)
    }

    /// The plain value of what is stored under `key`, and whether it is
    /// stale: sealed otherwise than a write would seal it now (by a key or
    /// provider that is not the first), so that an unchanged update must
    /// still be written, as a rotation needs.
    pub fn open_marked(&self, key: &str, stored: Bytes) -> Result<(Bytes, bool)> {
        let Some(providers) = self.providers(key) else {
            if stored.starts_with(ENCRYPTED) {
                return Err(ApiError::internal(format!(
                    "{key} is encrypted ({}), but the encryption configuration has no provider for it",
                    sealed_by(&stored)
                )));
            }
            return Ok((stored, false));
        };
        for (i, provider) in providers.0.iter().enumerate() {
            if let Some(result) = provider.open(key, &stored) {
                return result.map(|(plain, later_key)| (Bytes::from(plain), i > 0 || later_key));
            }
        }
        Err(ApiError::internal(if stored.starts_with(ENCRYPTED) {
            format!(
                "{key} is encrypted ({}), which no provider of the encryption configuration lists",
                sealed_by(&stored)
            )
        } else {
            format!("{key} is stored unencrypted, and the encryption configuration has no identity provider to read it")
        }))
    }
}

/// The etcd prefixes of the resources `pattern` names: `secrets`,
/// `deployments.apps`, `*.apps` (a group), `*.` (the core group) or `*.*`.
fn matching_prefixes(pattern: &str) -> std::result::Result<Vec<String>, String> {
    let (resource, group) = pattern.split_once('.').unwrap_or((pattern, ""));
    let matched: Vec<String> = RESOURCES
        .iter()
        .filter(|r| (resource == "*" || r.plural == resource) && (group == "*" || r.group == group))
        .map(|r| r.key_prefix())
        .collect();
    if resource == "*" && group.is_empty() && !pattern.ends_with('.') {
        return Err("is not a resource: use \"*.\" for the core group, \"*.<group>\" or \"*.*\"".into());
    }
    if matched.is_empty() {
        return Err("names no resource this apiserver serves".into());
    }
    Ok(matched)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    resources: Vec<ResourceConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceConfig {
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    providers: Vec<ProviderConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderConfig {
    identity: Option<serde_json::Value>,
    aesgcm: Option<KeysConfig>,
    secretbox: Option<KeysConfig>,
    aescbc: Option<serde_json::Value>,
    kms: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysConfig {
    #[serde(default)]
    keys: Vec<KeyConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyConfig {
    #[serde(default)]
    name: String,
    #[serde(default)]
    secret: String,
}

impl ProviderConfig {
    fn build(&self, at: &str) -> std::result::Result<Provider, String> {
        let given = [
            self.identity.is_some(),
            self.aesgcm.is_some(),
            self.secretbox.is_some(),
            self.aescbc.is_some(),
            self.kms.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err(format!("{at}: must be exactly one of identity, aesgcm, secretbox"));
        }
        if self.aescbc.is_some() || self.kms.is_some() {
            let name = if self.aescbc.is_some() { "aescbc" } else { "kms" };
            return Err(format!("{at}.{name}: not supported by rkube: use aesgcm or secretbox"));
        }
        if self.identity.is_some() {
            return Ok(Provider::Identity);
        }
        if let Some(keys) = &self.aesgcm {
            let at = format!("{at}.aesgcm");
            let keys = decode_keys(&keys.keys, &at, |secret, field| match secret.len() {
                16 => Ok(AesKey::A128(Box::new(Aes128Gcm::new_from_slice(secret).map_err(|_| field.to_string())?))),
                24 => Ok(AesKey::A192(Box::new(Aes192Gcm::new_from_slice(secret).map_err(|_| field.to_string())?))),
                32 => Ok(AesKey::A256(Box::new(Aes256Gcm::new_from_slice(secret).map_err(|_| field.to_string())?))),
                n => Err(format!("{field}: must be 16, 24 or 32 bytes (base64-encoded), not {n}")),
            })?;
            return Ok(Provider::AesGcm(keys));
        }
        let keys = self.secretbox.as_ref().map(|k| k.keys.as_slice()).unwrap_or_default();
        let at = format!("{at}.secretbox");
        let keys = decode_keys(keys, &at, |secret, field| match secret.len() {
            32 => XSalsa20Poly1305::new_from_slice(secret).map_err(|_| field.to_string()),
            n => Err(format!("{field}: must be 32 bytes (base64-encoded), not {n}")),
        })?;
        Ok(Provider::Secretbox(keys))
    }
}

/// Decodes and checks a provider's keys: at least one, named uniquely,
/// each secret base64 of the right length.
fn decode_keys<K>(
    keys: &[KeyConfig],
    at: &str,
    make: impl Fn(&[u8], &str) -> std::result::Result<K, String>,
) -> std::result::Result<Vec<(String, K)>, String> {
    if keys.is_empty() {
        return Err(format!("{at}.keys: must hold at least one key"));
    }
    let mut out: Vec<(String, K)> = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let field = format!("{at}.keys[{i}]");
        if k.name.is_empty() || k.name.contains(':') {
            return Err(format!("{field}.name: must be non-empty and contain no ':'"));
        }
        if out.iter().any(|(n, _)| *n == k.name) {
            return Err(format!("{field}.name: \"{}\" is used twice", k.name));
        }
        let secret = base64::engine::general_purpose::STANDARD
            .decode(k.secret.trim())
            .map_err(|_| format!("{field}.secret: is not base64"))?;
        out.push((k.name.clone(), make(&secret, &format!("{field}.secret"))?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY1: &str = "c2VjcmV0IGlzIHNlY3VyZSwgb3IgaXMgaXQ/Pz8/Pz8="; // 32 bytes
    const KEY2: &str = "MDEyMzQ1Njc4OWFiY2RlZg=="; // 16 bytes

    fn config(providers: &str) -> String {
        format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n{providers}"
        )
    }

    fn aesgcm(names: &[(&str, &str)]) -> String {
        let keys: Vec<String> =
            names.iter().map(|(n, s)| format!("      - {{name: {n}, secret: \"{s}\"}}\n")).collect();
        format!("  - aesgcm:\n      keys:\n{}", keys.concat())
    }

    const SECRET: &str = "/registry/secrets/default/s";

    #[test]
    fn aesgcm_seals_with_the_first_key_and_opens_with_any() {
        let one = Encryption::parse(&config(&aesgcm(&[("k1", KEY1)]))).expect("valid");
        let sealed = one.seal(SECRET, b"{\"data\":1}".to_vec()).expect("sealed");
        assert!(sealed.starts_with(b"k8s:enc:aesgcm:v1:k1:"), "{}", String::from_utf8_lossy(&sealed));
        assert!(!sealed.windows(8).any(|w| w == b"\"data\":1"), "the plain text is not in the value");
        assert_eq!(one.open(SECRET, Bytes::from(sealed.clone())).expect("opens"), Bytes::from_static(b"{\"data\":1}"));
        // A rotation: k2 first seals, k1 still opens what it sealed.
        let two = Encryption::parse(&config(&aesgcm(&[("k2", KEY2), ("k1", KEY1)]))).expect("valid");
        let (plain, stale) = two.open_marked(SECRET, Bytes::from(sealed.clone())).expect("k1 opens");
        assert_eq!(
            (plain, stale),
            (Bytes::from_static(b"{\"data\":1}"), true),
            "sealed by a key that no longer writes"
        );
        assert!(!one.open_marked(SECRET, Bytes::from(sealed.clone())).expect("opens").1);
        assert!(two.seal(SECRET, b"{}".to_vec()).expect("sealed").starts_with(b"k8s:enc:aesgcm:v1:k2:"));
        // Bound to its key: moved elsewhere, it does not open.
        let e = one.open("/registry/secrets/default/other", Bytes::from(sealed.clone())).expect_err("moved");
        assert!(e.message.contains("does not decrypt with aesgcm key k1"), "{}", e.message);
        // Tampered: refused.
        let mut bad = sealed;
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(one.open(SECRET, Bytes::from(bad)).is_err());
        // Other resources are untouched.
        assert_eq!(one.seal("/registry/configmaps/default/c", b"{}".to_vec()).expect("plain"), b"{}");
    }

    #[test]
    fn secretbox_and_identity_read_and_write_as_listed() {
        let cfg =
            config(&format!("  - secretbox:\n      keys: [{{name: sb, secret: \"{KEY1}\"}}]\n  - identity: {{}}\n"));
        let enc = Encryption::parse(&cfg).expect("valid");
        let sealed = enc.seal(SECRET, b"{}".to_vec()).expect("sealed");
        assert!(sealed.starts_with(b"k8s:enc:secretbox:v1:sb:"));
        assert_eq!(enc.open(SECRET, Bytes::from(sealed)).expect("opens"), Bytes::from_static(b"{}"));
        // Written before encryption was on: identity reads it.
        assert_eq!(
            enc.open(SECRET, Bytes::from_static(b"{\"old\":1}")).expect("plain"),
            Bytes::from_static(b"{\"old\":1}")
        );
        // Without identity, plain text is refused; an unknown key is named.
        let strict = Encryption::parse(&config(&aesgcm(&[("k1", KEY1)]))).expect("valid");
        let e = strict.open(SECRET, Bytes::from_static(b"{}")).expect_err("no identity");
        assert!(e.message.contains("no identity provider"), "{}", e.message);
        let e = strict.open(SECRET, Bytes::from_static(b"k8s:enc:aesgcm:v1:gone:0123456789abcdef")).expect_err("gone");
        assert!(e.message.contains("k8s:enc:aesgcm:v1:gone"), "{}", e.message);
    }

    #[test]
    fn bad_configurations_name_the_field() {
        let cases = [
            (
                config(&aesgcm(&[("k1", "c2hvcnQ=")])),
                "resources[0].providers[0].aesgcm.keys[0].secret: must be 16, 24 or 32",
            ),
            (config(&aesgcm(&[("k1", "!!")])), "resources[0].providers[0].aesgcm.keys[0].secret: is not base64"),
            (
                config(&aesgcm(&[("k1", KEY1), ("k1", KEY2)])),
                "resources[0].providers[0].aesgcm.keys[1].name: \"k1\" is used twice",
            ),
            (config("  - aescbc: {keys: []}\n"), "resources[0].providers[0].aescbc: not supported"),
            (config("  - {}\n"), "resources[0].providers[0]: must be exactly one of"),
            (
                config(&format!("  - secretbox:\n      keys: [{{name: sb, secret: \"{KEY2}\"}}]\n")),
                "secretbox.keys[0].secret: must be 32 bytes",
            ),
            (
                config(&aesgcm(&[("k1", KEY1)])).replace("[secrets]", "[sekrets]"),
                "resources[0].resources[0]: \"sekrets\" names no resource",
            ),
            ("kind: Config\napiVersion: v1\n".to_string(), "kind: must be EncryptionConfiguration"),
        ];
        for (text, want) in cases {
            let e = Encryption::parse(&text).expect_err(want);
            assert!(e.contains(want), "{e}\nwanted: {want}");
            assert!(!e.contains(KEY1) && !e.contains(KEY2), "no key material in errors: {e}");
        }
    }

    #[test]
    fn resource_patterns_cover_groups() {
        let cfg = config(&aesgcm(&[("k1", KEY1)])).replace("[secrets]", "[\"*.apps\", configmaps]");
        let enc = Encryption::parse(&cfg).expect("valid");
        assert!(enc.encrypts("/registry/deployments/default/d"));
        assert!(enc.encrypts("/registry/configmaps/default/c"));
        assert!(!enc.encrypts("/registry/secrets/default/s"));
        assert!(
            Encryption::parse(&cfg.replace("\"*.apps\"", "\"*.*\""))
                .expect("valid")
                .encrypts("/registry/pods/default/p")
        );
    }
}
