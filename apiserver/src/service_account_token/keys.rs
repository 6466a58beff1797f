//! The keys that sign and verify service account tokens: ES256 (ECDSA
//! P-256, what `rkube-certs` writes) and RS256 (RSA, what kubeadm writes),
//! read from PEM files with `ring` doing the cryptography.
//!
//! A key's id (`kid`) is what kube-apiserver uses: the unpadded base64url
//! SHA-256 of its DER SubjectPublicKeyInfo, so tokens name the key that
//! signed them and other verifiers can pick it without trying every key.

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair, UnparsedPublicKey};
use std::path::{Path, PathBuf};
use tokio_rustls::rustls::pki_types::pem::SectionKind;

/// The DER prefix of a P-256 SubjectPublicKeyInfo, before the 65-byte point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// The DER AlgorithmIdentifier of rsaEncryption (with its NULL parameters).
const RSA_ALGORITHM: [u8; 15] =
    [0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00];
const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_RSA: &str = "1.2.840.113549.1.1.1";

/// Why a key file could not be used. Never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read.
    #[error("reading {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file holds no usable key, or a key of a kind rkube does not support.
    #[error("{}: {reason}", path.display())]
    Unusable {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
}

/// A signature algorithm of tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
}

impl Algorithm {
    /// The JOSE name (`alg`).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Es256 => "ES256",
            Algorithm::Rs256 => "RS256",
        }
    }

    /// The algorithm called `name`; `none` and everything else is None.
    pub fn parse(name: &str) -> Option<Algorithm> {
        match name {
            "ES256" => Some(Algorithm::Es256),
            "RS256" => Some(Algorithm::Rs256),
            _ => None,
        }
    }
}

enum Signer {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// The private key tokens are signed with (`--service-account-signing-key-file`).
pub struct SigningKey {
    signer: Signer,
    rng: SystemRandom,
    public: VerifyingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("alg", &self.public.alg).field("kid", &self.public.kid).finish()
    }
}

impl SigningKey {
    /// Reads a PEM private key: PKCS#8 (`PRIVATE KEY`, ECDSA P-256 or RSA)
    /// or PKCS#1 (`RSA PRIVATE KEY`).
    pub fn from_file(path: &Path) -> Result<SigningKey, KeyError> {
        let sections = pem_sections(path)?;
        let unusable = |reason: &str| KeyError::Unusable { path: path.to_owned(), reason: reason.to_owned() };
        for (kind, der) in sections {
            return match kind {
                SectionKind::PrivateKey | SectionKind::RsaPrivateKey => {
                    SigningKey::from_der(kind == SectionKind::RsaPrivateKey, &der).map_err(|e| unusable(&e))
                }
                SectionKind::EcPrivateKey => Err(unusable(
                    "an `EC PRIVATE KEY` (SEC1) is not supported; convert it to PKCS#8 with `openssl pkcs8 -topk8 -nocrypt`",
                )),
                _ => continue,
            };
        }
        Err(unusable("no PEM `PRIVATE KEY` or `RSA PRIVATE KEY` block"))
    }

    /// A new ECDSA P-256 key (tests and tools; clusters read theirs from a file).
    pub fn generate() -> SigningKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("key generation fails only when the RNG does");
        SigningKey::from_der(false, pkcs8.as_ref()).expect("ring reads the PKCS#8 it wrote")
    }

    /// A key from its DER: PKCS#8, or PKCS#1 RSA when `pkcs1`.
    pub fn from_der(pkcs1: bool, der: &[u8]) -> Result<SigningKey, String> {
        let rng = SystemRandom::new();
        let signer = if pkcs1 {
            Signer::Rsa(RsaKeyPair::from_der(der).map_err(|e| format!("not an RSA private key: {e}"))?)
        } else if let Ok(ec) = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng) {
            Signer::Ec(ec)
        } else {
            Signer::Rsa(
                RsaKeyPair::from_pkcs8(der)
                    .map_err(|e| format!("neither an ECDSA P-256 nor an RSA PKCS#8 private key: {e}"))?,
            )
        };
        let public = match &signer {
            Signer::Ec(k) => VerifyingKey::new(Algorithm::Es256, k.public_key().as_ref().to_vec()),
            Signer::Rsa(k) => VerifyingKey::new(Algorithm::Rs256, k.public().as_ref().to_vec()),
        };
        Ok(SigningKey { signer, rng, public })
    }

    /// The matching public key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.public
    }

    /// Signs `message` (JWS: the raw `r‖s` for ECDSA, as JOSE wants it).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match &self.signer {
            Signer::Ec(k) => {
                k.sign(&self.rng, message).expect("ECDSA signing fails only when the RNG does").as_ref().to_vec()
            }
            Signer::Rsa(k) => {
                let mut signature = vec![0; k.public().modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &self.rng, message, &mut signature)
                    .expect("RSA signing fails only when the RNG does");
                signature
            }
        }
    }
}

/// A public key tokens are verified with (`--service-account-key-file`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    /// The algorithm it verifies.
    pub alg: Algorithm,
    /// Its key id (see the module docs).
    pub kid: String,
    /// The key as ring reads it: the uncompressed point (EC) or the DER
    /// RSAPublicKey (RSA).
    public: Vec<u8>,
}

impl VerifyingKey {
    fn new(alg: Algorithm, public: Vec<u8>) -> VerifyingKey {
        let spki = match alg {
            Algorithm::Es256 => [&P256_SPKI_PREFIX[..], &public].concat(),
            Algorithm::Rs256 => {
                let mut bits = vec![0];
                bits.extend_from_slice(&public);
                der_tlv(0x30, &[&RSA_ALGORITHM[..], &der_tlv(0x03, &bits)].concat())
            }
        };
        let digest = ring::digest::digest(&ring::digest::SHA256, &spki);
        let kid = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref());
        VerifyingKey { alg, kid, public }
    }

    /// Reads every public key of a PEM file: `PUBLIC KEY` blocks,
    /// certificates, and private keys (their public halves), as
    /// kube-apiserver's `--service-account-key-file` does.
    pub fn from_file(path: &Path) -> Result<Vec<VerifyingKey>, KeyError> {
        let unusable = |reason: String| KeyError::Unusable { path: path.to_owned(), reason };
        let mut keys = Vec::new();
        for (kind, der) in pem_sections(path)? {
            match kind {
                SectionKind::PublicKey => keys.push(VerifyingKey::from_spki(&der).map_err(unusable)?),
                SectionKind::Certificate => {
                    let (_, cert) = x509_parser::parse_x509_certificate(&der)
                        .map_err(|e| unusable(format!("a certificate that cannot be read: {e}")))?;
                    keys.push(VerifyingKey::from_spki(cert.public_key().raw).map_err(unusable)?);
                }
                SectionKind::PrivateKey | SectionKind::RsaPrivateKey => {
                    let key = SigningKey::from_der(kind == SectionKind::RsaPrivateKey, &der).map_err(unusable)?;
                    keys.push(key.public);
                }
                _ => {}
            }
        }
        if keys.is_empty() {
            return Err(unusable("no PEM `PUBLIC KEY`, `CERTIFICATE` or private key block".into()));
        }
        Ok(keys)
    }

    /// A key from its DER SubjectPublicKeyInfo (ECDSA P-256 or RSA).
    pub fn from_spki(der: &[u8]) -> Result<VerifyingKey, String> {
        use x509_parser::prelude::FromDer as _;
        let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(der)
            .map_err(|e| format!("a public key that cannot be read: {e}"))?;
        let algorithm = spki.algorithm.algorithm.to_id_string();
        let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok()).map(|o| o.to_id_string());
        let public = spki.subject_public_key.data.to_vec();
        match (algorithm.as_str(), curve.as_deref()) {
            (OID_EC_PUBLIC_KEY, Some(OID_P256)) => Ok(VerifyingKey::new(Algorithm::Es256, public)),
            (OID_RSA, _) => Ok(VerifyingKey::new(Algorithm::Rs256, public)),
            (OID_EC_PUBLIC_KEY, _) => Err("only the P-256 curve is supported for ECDSA keys".into()),
            (other, _) => Err(format!("unsupported public key algorithm {other} (want ECDSA P-256 or RSA)")),
        }
    }

    /// Whether `signature` is this key's over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let alg: &dyn signature::VerificationAlgorithm = match self.alg {
            Algorithm::Es256 => &signature::ECDSA_P256_SHA256_FIXED,
            Algorithm::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        };
        UnparsedPublicKey::new(alg, &self.public).verify(message, signature).is_ok()
    }
}

/// A DER TLV.
fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn pem_sections(path: &Path) -> Result<Vec<(SectionKind, Vec<u8>)>, KeyError> {
    let text = std::fs::read(path).map_err(|source| KeyError::Io { path: path.to_owned(), source })?;
    let mut reader = std::io::BufReader::new(&text[..]);
    let mut sections = Vec::new();
    loop {
        match tokio_rustls::rustls::pki_types::pem::from_buf(&mut reader) {
            Ok(Some(section)) => sections.push(section),
            Ok(None) => return Ok(sections),
            Err(e) => {
                return Err(KeyError::Unusable { path: path.to_owned(), reason: format!("not valid PEM: {e}") });
            }
        }
    }
}
