//! The cluster CA and the leaf certificates it issues.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use crate::{Error, Result};

/// Days a CA certificate is valid: kubeadm's ten years, so the trust root outlives many leaf rotations.
const CA_VALIDITY_DAYS: i64 = 3650;

/// Days a leaf certificate is valid unless its [`LeafSpec`] says otherwise (kubeadm's one year).
pub const LEAF_VALIDITY_DAYS: u32 = 365;

/// How far `notBefore` is backdated (as kubeadm does), so a peer whose clock runs a little behind
/// accepts a certificate issued a moment ago.
const BACKDATE: Duration = Duration::minutes(5);

/// A certificate authority: its certificate plus the key that signs what it issues.
///
/// Every component trusts the cluster through this one certificate (`ca.crt`), so it is generated
/// once and afterwards [loaded](Ca::load) to issue more.
#[derive(Debug)]
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

impl Ca {
    /// Generates a self-signed CA (ECDSA P-256, ten years, keyUsage certSign/crlSign/digitalSignature).
    pub fn generate(common_name: &str) -> Result<Ca> {
        let issue_error = |source| Error::Issue { common_name: common_name.to_owned(), source };
        let key = KeyPair::generate().map_err(issue_error)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(common_name, None);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + Duration::days(CA_VALIDITY_DAYS);
        let cert = params.self_signed(&key).map_err(issue_error)?;
        Ok(Ca { cert_pem: cert.pem(), issuer: Issuer::new(params, key) })
    }

    /// Loads a CA from its PEM certificate and private key so it can keep issuing certificates that
    /// chain to the `ca.crt` already handed out. Fails if the certificate is not a CA or the key is
    /// not the certificate's.
    pub fn load(cert_pem_path: &Path, key_pem_path: &Path) -> Result<Ca> {
        let cert_pem = read(cert_pem_path)?;
        let key = KeyPair::from_pem(&read(key_pem_path)?)
            .map_err(|source| Error::Parse { path: key_pem_path.to_owned(), source })?;
        let bad_ca = |reason: String| Error::BadCa { path: cert_pem_path.to_owned(), reason };
        let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
            .map_err(|err| bad_ca(format!("not a PEM certificate: {err}")))?;
        let cert = pem.parse_x509().map_err(|err| bad_ca(format!("not an X.509 certificate: {err}")))?;
        if !cert.is_ca() {
            return Err(bad_ca("not a CA certificate (basicConstraints CA:TRUE is missing)".to_owned()));
        }
        if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(bad_ca(format!("does not belong to the private key in {}", key_pem_path.display())));
        }
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)
            .map_err(|source| Error::Parse { path: cert_pem_path.to_owned(), source })?;
        Ok(Ca { issuer, cert_pem })
    }

    /// The CA certificate in PEM: what clients and servers put in their trust store.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key in PEM (PKCS#8).
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Issues a leaf certificate with a fresh ECDSA P-256 key.
    pub fn issue(&self, spec: &LeafSpec) -> Result<Leaf> {
        let invalid =
            |reason: &str| Error::InvalidSpec { common_name: spec.common_name.clone(), reason: reason.to_owned() };
        if !spec.server && !spec.client {
            return Err(invalid("a certificate must be for a server, a client or both"));
        }
        if spec.validity_days == 0 {
            return Err(invalid("validity_days must be at least 1"));
        }
        // rcgen keeps one value per attribute type in a distinguished name.
        if spec.organizations.len() > 1 {
            return Err(invalid("at most one organization (group) is supported"));
        }
        let issue_error = |source| Error::Issue { common_name: spec.common_name.clone(), source };

        let key = KeyPair::generate().map_err(issue_error)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(&spec.common_name, spec.organizations.first());
        for name in &spec.dns_names {
            let name = Ia5String::try_from(name.as_str()).map_err(issue_error)?;
            params.subject_alt_names.push(SanType::DnsName(name));
        }
        params.subject_alt_names.extend(spec.ip_addresses.iter().map(|ip| SanType::IpAddress(*ip)));
        // ECDSA keys sign; they never encipher keys, so keyEncipherment would be wrong (RFC 5480).
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if spec.server {
            params.extended_key_usages.push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        if spec.client {
            params.extended_key_usages.push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + Duration::days(spec.validity_days.into());
        let cert = params.signed_by(&key, &self.issuer).map_err(issue_error)?;
        Ok(Leaf { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }

    /// Writes `ca.crt` (0644) and `ca.key` (0600). Refuses to overwrite existing files: replacing a
    /// CA invalidates every credential it issued.
    pub fn write(&self, cert_path: &Path, key_path: &Path) -> Result<()> {
        write_new(key_path, &self.key_pem(), 0o600)?;
        write_new(cert_path, &self.cert_pem, 0o644)
    }
}

/// What to put in a leaf certificate.
///
/// Kubernetes authenticates a client certificate as user = CN and groups = O; a serving
/// certificate is checked against its SANs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafSpec {
    /// Subject CN: the user name of a client certificate.
    pub common_name: String,
    /// Subject O: the groups of a client certificate (at most one, an rcgen limit).
    pub organizations: Vec<String>,
    /// DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// IP subject alternative names.
    pub ip_addresses: Vec<IpAddr>,
    /// Adds extendedKeyUsage serverAuth.
    pub server: bool,
    /// Adds extendedKeyUsage clientAuth.
    pub client: bool,
    /// Days from now until the certificate expires.
    pub validity_days: u32,
}

impl Default for LeafSpec {
    fn default() -> Self {
        LeafSpec {
            common_name: String::new(),
            organizations: Vec::new(),
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            server: false,
            client: false,
            validity_days: LEAF_VALIDITY_DAYS,
        }
    }
}

impl LeafSpec {
    /// A client certificate for `user`, member of `group` if given.
    pub fn client(user: impl Into<String>, group: Option<&str>) -> LeafSpec {
        LeafSpec {
            common_name: user.into(),
            organizations: group.map(str::to_owned).into_iter().collect(),
            client: true,
            ..LeafSpec::default()
        }
    }

    /// A serving certificate for `names`: each one that parses as an IP becomes an IP SAN, the rest
    /// DNS SANs; duplicates are dropped.
    pub fn server(common_name: impl Into<String>, names: impl IntoIterator<Item = impl AsRef<str>>) -> LeafSpec {
        let mut spec = LeafSpec { common_name: common_name.into(), server: true, ..LeafSpec::default() };
        for name in names {
            let name = name.as_ref();
            match name.parse::<IpAddr>() {
                Ok(ip) if !spec.ip_addresses.contains(&ip) => spec.ip_addresses.push(ip),
                Ok(_) => {}
                Err(_) if !spec.dns_names.iter().any(|known| known == name) => spec.dns_names.push(name.to_owned()),
                Err(_) => {}
            }
        }
        spec
    }
}

/// An issued certificate and its private key, both PEM.
#[derive(Clone)]
pub struct Leaf {
    /// The certificate.
    pub cert_pem: String,
    /// The private key (PKCS#8).
    pub key_pem: String,
}

impl Leaf {
    /// Writes the certificate (0644) and the key (0600). Refuses to overwrite existing files.
    pub fn write(&self, cert_path: &Path, key_path: &Path) -> Result<()> {
        write_new(key_path, &self.key_pem, 0o600)?;
        write_new(cert_path, &self.cert_pem, 0o644)
    }
}

fn distinguished_name(common_name: &str, organization: Option<&String>) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    if let Some(organization) = organization {
        name.push(DnType::OrganizationName, organization.as_str());
    }
    name.push(DnType::CommonName, common_name);
    name
}

/// Creates `path` with `mode` and writes `contents`; fails if it exists. The mode is set at creation,
/// so a private key is never readable by others, not even for a moment.
pub(crate) fn write_new(path: &Path, contents: &str, mode: u32) -> Result<()> {
    let io_error = |source| Error::Io { path: path.to_owned(), source };
    let mut file = OpenOptions::new().write(true).create_new(true).mode(mode).open(path).map_err(io_error)?;
    file.write_all(contents.as_bytes()).map_err(io_error)?;
    file.sync_all().map_err(io_error)
}

pub(crate) fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_owned(), source })
}

#[cfg(test)]
pub(crate) mod tests {
    use std::net::Ipv4Addr;

    use x509_parser::certificate::X509Certificate;
    use x509_parser::extensions::GeneralName;
    use x509_parser::pem::Pem;

    use super::*;
    use crate::ScratchDir;

    /// Parses a PEM certificate; the returned `Pem` owns the DER that `X509Certificate` borrows.
    pub(crate) fn pem(cert_pem: &str) -> Pem {
        x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).expect("PEM").1
    }

    pub(crate) fn common_name(cert: &X509Certificate<'_>) -> String {
        cert.subject().iter_common_name().map(|cn| cn.as_str().expect("UTF-8").to_owned()).collect()
    }

    pub(crate) fn organizations(cert: &X509Certificate<'_>) -> Vec<String> {
        cert.subject().iter_organization().map(|o| o.as_str().expect("UTF-8").to_owned()).collect()
    }

    /// The SANs as strings: DNS names as they are, IPs formatted.
    pub(crate) fn sans(cert: &X509Certificate<'_>) -> Vec<String> {
        let Some(extension) = cert.subject_alternative_name().expect("valid SAN extension") else {
            return Vec::new();
        };
        extension
            .value
            .general_names
            .iter()
            .map(|name| match name {
                GeneralName::DNSName(dns) => dns.to_string(),
                GeneralName::IPAddress(bytes) => match bytes.len() {
                    4 => IpAddr::from(<[u8; 4]>::try_from(*bytes).expect("4 bytes")).to_string(),
                    _ => IpAddr::from(<[u8; 16]>::try_from(*bytes).expect("16 bytes")).to_string(),
                },
                other => panic!("unexpected SAN {other:?}"),
            })
            .collect()
    }

    /// (serverAuth, clientAuth)
    pub(crate) fn key_purposes(cert: &X509Certificate<'_>) -> (bool, bool) {
        let eku = cert.extended_key_usage().expect("valid EKU").expect("EKU present").value;
        (eku.server_auth, eku.client_auth)
    }

    /// Asserts `leaf` was issued and signed by `ca` and that `key_pem` is its key.
    pub(crate) fn assert_issued_by(leaf: &X509Certificate<'_>, key_pem: &str, ca: &X509Certificate<'_>) {
        assert_eq!(leaf.issuer().as_raw(), ca.subject().as_raw(), "issuer is the CA's subject");
        leaf.verify_signature(Some(ca.public_key())).expect("signature verifies with the CA key");
        let key = KeyPair::from_pem(key_pem).expect("key PEM");
        assert_eq!(leaf.public_key().subject_public_key.data.as_ref(), key.public_key_raw(), "key matches cert");
        assert!(!leaf.is_ca());
    }

    fn validity_days(cert: &X509Certificate<'_>) -> i64 {
        let validity = cert.validity();
        (validity.not_after.timestamp() - validity.not_before.timestamp()) / 86_400
    }

    #[test]
    fn generates_a_ten_year_ca() {
        let ca = Ca::generate("kubernetes").expect("CA");
        let pem = pem(ca.cert_pem());
        let cert = pem.parse_x509().expect("X.509");
        assert!(cert.is_ca());
        assert_eq!(common_name(&cert), "kubernetes");
        assert_eq!(cert.subject().as_raw(), cert.issuer().as_raw());
        cert.verify_signature(None).expect("self-signed");
        let usage = cert.key_usage().expect("valid").expect("keyUsage present").value;
        assert!(usage.key_cert_sign() && usage.crl_sign() && usage.digital_signature());
        assert_eq!(validity_days(&cert), 3650);
    }

    #[test]
    fn client_cert_carries_user_and_group() {
        let ca = Ca::generate("kubernetes").expect("CA");
        let leaf = ca.issue(&LeafSpec::client("jane", Some("devs"))).expect("issue");
        let (ca_pem, leaf_pem) = (pem(ca.cert_pem()), pem(&leaf.cert_pem));
        let (ca_cert, cert) = (ca_pem.parse_x509().expect("CA"), leaf_pem.parse_x509().expect("leaf"));
        assert_eq!(common_name(&cert), "jane");
        assert_eq!(organizations(&cert), ["devs"]);
        assert_eq!(key_purposes(&cert), (false, true));
        assert!(sans(&cert).is_empty());
        assert_eq!(validity_days(&cert), i64::from(LEAF_VALIDITY_DAYS));
        assert_issued_by(&cert, &leaf.key_pem, &ca_cert);
    }

    #[test]
    fn serving_cert_sorts_names_into_dns_and_ip_sans() {
        let ca = Ca::generate("kubernetes").expect("CA");
        let spec = LeafSpec::server("web", ["web.example", "10.0.0.1", "web.example", "::1"]);
        assert_eq!(spec.dns_names, ["web.example"]);
        assert_eq!(spec.ip_addresses, [IpAddr::from(Ipv4Addr::new(10, 0, 0, 1)), "::1".parse().expect("IP")]);
        let leaf = ca.issue(&LeafSpec { validity_days: 30, ..spec }).expect("issue");
        let (ca_pem, leaf_pem) = (pem(ca.cert_pem()), pem(&leaf.cert_pem));
        let (ca_cert, cert) = (ca_pem.parse_x509().expect("CA"), leaf_pem.parse_x509().expect("leaf"));
        assert_eq!(sans(&cert), ["web.example", "10.0.0.1", "::1"]);
        assert_eq!(key_purposes(&cert), (true, false));
        assert_eq!(validity_days(&cert), 30);
        assert_issued_by(&cert, &leaf.key_pem, &ca_cert);
    }

    #[test]
    fn loaded_ca_keeps_issuing_certs_that_chain_to_the_original() {
        let dir = ScratchDir::new("load");
        let (cert_path, key_path) = (dir.0.join("ca.crt"), dir.0.join("ca.key"));
        let original = Ca::generate("kubernetes").expect("CA");
        original.write(&cert_path, &key_path).expect("write");
        let loaded = Ca::load(&cert_path, &key_path).expect("load");
        assert_eq!(loaded.cert_pem(), original.cert_pem());
        let leaf = loaded.issue(&LeafSpec::client("jane", None)).expect("issue");
        let (ca_pem, leaf_pem) = (pem(original.cert_pem()), pem(&leaf.cert_pem));
        assert_issued_by(&leaf_pem.parse_x509().expect("leaf"), &leaf.key_pem, &ca_pem.parse_x509().expect("CA"));
    }

    #[test]
    fn load_rejects_a_key_that_is_not_the_cas() {
        let dir = ScratchDir::new("mismatch");
        let (cert_path, key_path) = (dir.0.join("ca.crt"), dir.0.join("ca.key"));
        std::fs::write(&cert_path, Ca::generate("a").expect("CA").cert_pem()).expect("write");
        std::fs::write(&key_path, Ca::generate("b").expect("CA").key_pem()).expect("write");
        let err = Ca::load(&cert_path, &key_path).expect_err("mismatched key");
        assert!(matches!(err, Error::BadCa { .. }), "{err}");
    }

    #[test]
    fn load_rejects_a_leaf_as_ca() {
        let dir = ScratchDir::new("notca");
        let (cert_path, key_path) = (dir.0.join("leaf.crt"), dir.0.join("leaf.key"));
        let leaf = Ca::generate("a").expect("CA").issue(&LeafSpec::client("jane", None)).expect("issue");
        leaf.write(&cert_path, &key_path).expect("write");
        let err = Ca::load(&cert_path, &key_path).expect_err("not a CA");
        assert!(err.to_string().contains("not a CA"), "{err}");
    }

    #[test]
    fn write_refuses_to_overwrite() {
        let dir = ScratchDir::new("overwrite");
        let (cert_path, key_path) = (dir.0.join("ca.crt"), dir.0.join("ca.key"));
        Ca::generate("a").expect("CA").write(&cert_path, &key_path).expect("write");
        let before = std::fs::read(&key_path).expect("read");
        assert!(Ca::generate("b").expect("CA").write(&cert_path, &key_path).is_err());
        assert_eq!(std::fs::read(&key_path).expect("read"), before);
    }

    #[test]
    fn rejects_specs_it_cannot_express() {
        let ca = Ca::generate("kubernetes").expect("CA");
        let two_groups = LeafSpec { organizations: vec!["a".into(), "b".into()], ..LeafSpec::client("jane", None) };
        assert!(matches!(ca.issue(&two_groups), Err(Error::InvalidSpec { .. })));
        let no_purpose = LeafSpec { common_name: "x".into(), ..LeafSpec::default() };
        assert!(matches!(ca.issue(&no_purpose), Err(Error::InvalidSpec { .. })));
        let non_ascii = LeafSpec { dns_names: vec!["bücher.example".into()], ..LeafSpec::server("x", ["a"]) };
        assert!(matches!(ca.issue(&non_ascii), Err(Error::Issue { .. })));
    }
}
