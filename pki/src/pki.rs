//! A cluster's certificate directory, laid out like kubeadm's, created idempotently.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::DirBuilder;
use std::net::IpAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::ca::{read, write_new};
use crate::{Ca, Error, LeafSpec, Result, kubeconfig};

/// The cluster name in every kubeconfig, and the CA's common name (both as kubeadm has them).
const CLUSTER_NAME: &str = "kubernetes";

/// The names clients inside and outside the cluster use for the apiserver.
const APISERVER_NAMES: [&str; 6] = [
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
    "localhost",
    "127.0.0.1",
];

/// The etcd CA's common name, as kubeadm has it. etcd gets a CA of its own so that no certificate
/// of the cluster CA (a node's, say) is a client certificate etcd accepts.
const ETCD_CA_NAME: &str = "etcd-ca";

/// The names etcd is reached at on its own host.
const ETCD_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The control plane's client credentials: file name, user (CN), group (O).
const CONTROL_PLANE_CLIENTS: [(&str, &str, Option<&str>); 5] = [
    ("admin", "kubernetes-admin", Some("system:masters")),
    ("controller-manager", "system:kube-controller-manager", None),
    ("scheduler", "system:kube-scheduler", None),
    ("proxy", "system:kube-proxy", None),
    // The apiserver's client certificate toward kubelets (logs, exec, port-forward).
    ("apiserver-kubelet-client", "kube-apiserver-kubelet-client", Some("system:masters")),
];

/// What a cluster's PKI must contain. [`Pki::ensure`] makes the directory match it.
#[derive(Debug, Clone, Default)]
pub struct Pki {
    /// The certificate directory (created 0700).
    pub dir: PathBuf,
    /// The apiserver URL written into every kubeconfig, e.g. `https://127.0.0.1:6443`. Its host is
    /// also put in the apiserver's serving certificate, so the kubeconfigs work as written.
    pub server: String,
    /// Extra DNS names or IPs for the apiserver's serving certificate (load balancers, public names).
    pub apiserver_names: Vec<String>,
    /// The `kubernetes` Service's ClusterIP (the first address of the Service CIDR): pods reach the
    /// apiserver there, so it must be in the serving certificate.
    pub service_ip: Option<IpAddr>,
    /// Names of the nodes to issue kubelet credentials for.
    pub nodes: Vec<String>,
    /// Extra IPs per node name for its kubelet serving certificate.
    pub node_ips: BTreeMap<String, Vec<IpAddr>>,
    /// Extra DNS names or IPs for etcd's serving and peer certificates (the members' addresses),
    /// beside localhost, 127.0.0.1 and ::1.
    pub etcd_names: Vec<String>,
}

/// Whether [`Pki::ensure`] wrote a file or found it already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The file was missing and has been written.
    Created,
    /// The file existed and was left untouched.
    Kept,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Created => "created",
            Outcome::Kept => "kept",
        })
    }
}

/// The files [`Pki::ensure`] looked at, in order, and what it did with each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Every file with its outcome.
    pub files: Vec<(PathBuf, Outcome)>,
}

impl Report {
    /// The files that were written.
    pub fn created(&self) -> impl Iterator<Item = &Path> {
        self.with(Outcome::Created)
    }

    /// The files that already existed and were kept.
    pub fn kept(&self) -> impl Iterator<Item = &Path> {
        self.with(Outcome::Kept)
    }

    fn with(&self, wanted: Outcome) -> impl Iterator<Item = &Path> {
        self.files.iter().filter(move |(_, outcome)| *outcome == wanted).map(|(path, _)| path.as_path())
    }

    fn push(&mut self, path: PathBuf, outcome: Outcome) {
        self.files.push((path, outcome));
    }
}

/// One credential: `<name>.crt` and `<name>.key`, plus `<name>.kubeconfig` for clients. The name
/// is a path relative to the certificate directory (`etcd/server`).
struct Credential {
    name: String,
    spec: LeafSpec,
    kubeconfig: bool,
}

/// A CA (`<name>.crt`, `<name>.key`) and the credentials it issues.
struct Authority {
    name: &'static str,
    common_name: &'static str,
    credentials: Vec<Credential>,
}

impl Pki {
    /// Creates the directory and every missing file; existing files are kept as they are, so
    /// running it again (e.g. on every `up`) never invalidates credentials already handed out.
    ///
    /// Fails rather than guess when a cert/key pair is half there, or when the CA is gone but
    /// certificates it issued are not.
    pub fn ensure(&self) -> Result<Report> {
        for node in &self.nodes {
            validate_node_name(node).map_err(|reason| Error::InvalidNodeName { name: node.clone(), reason })?;
        }
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|source| Error::Io { path: self.dir.clone(), source })?;

        let etcd_dir = self.dir.join("etcd");
        DirBuilder::new().mode(0o700).create(&etcd_dir).or_else(|source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => Ok(()),
            _ => Err(Error::Io { path: etcd_dir, source }),
        })?;

        let mut report = Report::default();
        for authority in [self.cluster_authority(), self.etcd_authority()] {
            let ca = self.ensure_ca(&authority, &mut report)?;
            for credential in &authority.credentials {
                self.ensure_credential(&ca, credential, &mut report)?;
            }
        }
        self.ensure_service_account_key(&mut report)?;
        Ok(report)
    }

    /// etcd's own CA (`etcd/ca`) and what it issues, as kubeadm lays them out: etcd's serving
    /// certificate (`etcd/server`, also its client certificate toward itself), the certificate its
    /// members present to each other (`etcd/peer`), and the apiserver's client certificate toward
    /// etcd (`apiserver-etcd-client`).
    fn etcd_authority(&self) -> Authority {
        let names: Vec<&str> = ETCD_NAMES.into_iter().chain(self.etcd_names.iter().map(String::as_str)).collect();
        let both = |common_name: &str| LeafSpec { client: true, ..LeafSpec::server(common_name, &names) };
        let credential = |name: &str, spec| Credential { name: name.to_owned(), spec, kubeconfig: false };
        Authority {
            name: "etcd/ca",
            common_name: ETCD_CA_NAME,
            credentials: vec![
                credential("etcd/server", both("kube-etcd")),
                credential("etcd/peer", both("kube-etcd-peer")),
                credential("apiserver-etcd-client", LeafSpec::client("kube-apiserver-etcd-client", None)),
            ],
        }
    }

    /// `sa.key` and `sa.pub`, as kubeadm writes them: the key pair that signs and verifies
    /// service account tokens (`--service-account-signing-key-file`, `--service-account-key-file`).
    /// ECDSA P-256 (PKCS#8) like the certificates, where kubeadm uses RSA.
    fn ensure_service_account_key(&self, report: &mut Report) -> Result<()> {
        let key = self.dir.join("sa.key");
        let public = self.dir.join("sa.pub");
        if exists_pair(&public, &key)? {
            report.push(key, Outcome::Kept);
            report.push(public, Outcome::Kept);
            return Ok(());
        }
        let pair = rcgen::KeyPair::generate()
            .map_err(|source| Error::Issue { common_name: "service account signing key".to_owned(), source })?;
        write_new(&key, &pair.serialize_pem(), 0o600)?;
        write_new(&public, &pair.public_key_pem(), 0o644)?;
        report.push(key, Outcome::Created);
        report.push(public, Outcome::Created);
        Ok(())
    }

    fn cluster_authority(&self) -> Authority {
        Authority { name: "ca", common_name: CLUSTER_NAME, credentials: self.credentials() }
    }

    fn credentials(&self) -> Vec<Credential> {
        let mut apiserver_names: Vec<String> = APISERVER_NAMES.iter().map(|name| name.to_string()).collect();
        apiserver_names.extend(self.service_ip.map(|ip| ip.to_string()));
        apiserver_names.extend(server_host(&self.server).map(str::to_owned));
        apiserver_names.extend(self.apiserver_names.iter().cloned());
        let mut credentials = vec![Credential {
            name: "apiserver".to_owned(),
            spec: LeafSpec::server("kube-apiserver", apiserver_names),
            kubeconfig: false,
        }];
        for (name, user, group) in CONTROL_PLANE_CLIENTS {
            credentials.push(Credential {
                name: name.to_owned(),
                spec: LeafSpec::client(user, group),
                kubeconfig: true,
            });
        }
        for node in &self.nodes {
            credentials.push(Credential {
                name: format!("node-{node}"),
                spec: LeafSpec::client(format!("system:node:{node}"), Some("system:nodes")),
                kubeconfig: true,
            });
            let ips = self.node_ips.get(node).into_iter().flatten().map(|ip| ip.to_string());
            let names = [node.clone(), "localhost".to_owned(), "127.0.0.1".to_owned()].into_iter().chain(ips);
            credentials.push(Credential {
                name: format!("kubelet-{node}"),
                spec: LeafSpec::server(node.as_str(), names),
                kubeconfig: false,
            });
        }
        credentials
    }

    fn ensure_ca(&self, authority: &Authority, report: &mut Report) -> Result<Ca> {
        let cert = self.dir.join(format!("{}.crt", authority.name));
        let key = self.dir.join(format!("{}.key", authority.name));
        if exists_pair(&cert, &key)? {
            let ca = Ca::load(&cert, &key)?;
            report.push(cert, Outcome::Kept);
            report.push(key, Outcome::Kept);
            return Ok(ca);
        }
        for credential in &authority.credentials {
            for file in self.files(credential) {
                if exists(&file)? {
                    return Err(Error::OrphanedCertificate { ca: cert, existing: file });
                }
            }
        }
        let ca = Ca::generate(authority.common_name)?;
        ca.write(&cert, &key)?;
        report.push(cert, Outcome::Created);
        report.push(key, Outcome::Created);
        Ok(ca)
    }

    fn ensure_credential(&self, ca: &Ca, credential: &Credential, report: &mut Report) -> Result<()> {
        let cert = self.dir.join(format!("{}.crt", credential.name));
        let key = self.dir.join(format!("{}.key", credential.name));
        if exists_pair(&cert, &key)? {
            report.push(cert.clone(), Outcome::Kept);
            report.push(key.clone(), Outcome::Kept);
        } else {
            ca.issue(&credential.spec)?.write(&cert, &key)?;
            report.push(cert.clone(), Outcome::Created);
            report.push(key.clone(), Outcome::Created);
        }
        if !credential.kubeconfig {
            return Ok(());
        }
        let path = self.dir.join(format!("{}.kubeconfig", credential.name));
        if exists(&path)? {
            report.push(path, Outcome::Kept);
            return Ok(());
        }
        // Built from the files, so a kubeconfig that was deleted comes back with the kept pair.
        let user = &credential.spec.common_name;
        let config = kubeconfig(&self.server, CLUSTER_NAME, user, ca.cert_pem(), &read(&cert)?, &read(&key)?);
        // It embeds the private key.
        write_new(&path, &config, 0o600)?;
        report.push(path, Outcome::Created);
        Ok(())
    }

    fn files(&self, credential: &Credential) -> Vec<PathBuf> {
        let mut extensions = vec!["crt", "key"];
        if credential.kubeconfig {
            extensions.push("kubeconfig");
        }
        extensions.into_iter().map(|extension| self.dir.join(format!("{}.{extension}", credential.name))).collect()
    }
}

/// Whether both files of a cert/key pair exist; an error if only one does.
fn exists_pair(cert: &Path, key: &Path) -> Result<bool> {
    match (exists(cert)?, exists(key)?) {
        (true, true) => Ok(true),
        (false, false) => Ok(false),
        (true, false) => Err(Error::IncompletePair { present: cert.to_owned(), missing: key.to_owned() }),
        (false, true) => Err(Error::IncompletePair { present: key.to_owned(), missing: cert.to_owned() }),
    }
}

fn exists(path: &Path) -> Result<bool> {
    path.try_exists().map_err(|source| Error::Io { path: path.to_owned(), source })
}

/// Checks that a node name is a DNS-1123 subdomain, as Kubernetes requires of node names; that
/// also keeps it from escaping the certificate directory when used in a file name.
pub(crate) fn validate_node_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if name.len() > 253 {
        return Err("must be at most 253 characters".to_owned());
    }
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.') {
        return Err("must consist of lower case letters, digits, '-' and '.'".to_owned());
    }
    let alphanumeric = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
    if !alphanumeric(name.bytes().next()) || !alphanumeric(name.bytes().last()) {
        return Err("must start and end with a letter or digit".to_owned());
    }
    Ok(())
}

/// The host of a URL such as `https://[::1]:6443/path`, without brackets and port.
pub(crate) fn server_host(server: &str) -> Option<&str> {
    let rest = server.split_once("://").map_or(server, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => bracketed.split_once(']')?.0,
        None => authority.split(':').next().unwrap_or_default(),
    };
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::ScratchDir;
    use crate::ca::tests::{assert_issued_by, common_name, key_purposes, organizations, pem, sans};
    use crate::kubeconfig::{Config, decode};

    fn pki(dir: &Path) -> Pki {
        Pki {
            dir: dir.join("pki"),
            server: "https://10.0.0.5:6443".to_owned(),
            apiserver_names: vec!["api.example.com".to_owned(), "192.168.1.10".to_owned()],
            service_ip: Some("10.96.0.1".parse().expect("IP")),
            nodes: vec!["n1".to_owned()],
            node_ips: BTreeMap::from([("n1".to_owned(), vec!["10.0.0.11".parse().expect("IP")])]),
            etcd_names: vec!["10.0.0.5".to_owned()],
        }
    }

    fn file(pki: &Pki, name: &str) -> String {
        std::fs::read_to_string(pki.dir.join(name)).expect("read")
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    const FILES: [&str; 34] = [
        "ca.crt",
        "ca.key",
        "apiserver.crt",
        "apiserver.key",
        "admin.crt",
        "admin.key",
        "admin.kubeconfig",
        "controller-manager.crt",
        "controller-manager.key",
        "controller-manager.kubeconfig",
        "scheduler.crt",
        "scheduler.key",
        "scheduler.kubeconfig",
        "proxy.crt",
        "proxy.key",
        "proxy.kubeconfig",
        "apiserver-kubelet-client.crt",
        "apiserver-kubelet-client.key",
        "apiserver-kubelet-client.kubeconfig",
        "node-n1.crt",
        "node-n1.key",
        "node-n1.kubeconfig",
        "kubelet-n1.crt",
        "kubelet-n1.key",
        "etcd/ca.crt",
        "etcd/ca.key",
        "etcd/server.crt",
        "etcd/server.key",
        "etcd/peer.crt",
        "etcd/peer.key",
        "apiserver-etcd-client.crt",
        "apiserver-etcd-client.key",
        "sa.key",
        "sa.pub",
    ];

    fn expected_files(pki: &Pki) -> Vec<PathBuf> {
        FILES.iter().map(|name| pki.dir.join(name)).collect()
    }

    #[test]
    fn creates_every_file_once_then_keeps_them_byte_identical() {
        let scratch = ScratchDir::new("idempotent");
        let pki = pki(&scratch.0);
        let first = pki.ensure().expect("first ensure");
        assert_eq!(first.created().map(Path::to_path_buf).collect::<Vec<_>>(), expected_files(&pki));
        assert_eq!(first.kept().count(), 0);
        let contents: Vec<Vec<u8>> =
            expected_files(&pki).iter().map(|path| std::fs::read(path).expect("read")).collect();

        let second = pki.ensure().expect("second ensure");
        assert_eq!(second.kept().map(Path::to_path_buf).collect::<Vec<_>>(), expected_files(&pki));
        assert_eq!(second.created().count(), 0);
        let after: Vec<Vec<u8>> = expected_files(&pki).iter().map(|path| std::fs::read(path).expect("read")).collect();
        assert!(contents == after, "files changed on the second run");
    }

    #[test]
    fn secrets_are_owner_only() {
        let scratch = ScratchDir::new("modes");
        let pki = pki(&scratch.0);
        pki.ensure().expect("ensure");
        assert_eq!(mode(&pki.dir), 0o700);
        assert_eq!(mode(&pki.dir.join("etcd")), 0o700);
        for path in expected_files(&pki) {
            let name = path.to_string_lossy();
            if name.ends_with(".key") || name.ends_with(".kubeconfig") {
                assert_eq!(mode(&path), 0o600, "{name}");
            } else {
                assert_eq!(mode(&path) & 0o600, 0o600, "{name}");
                assert_eq!(mode(&path) & 0o133, 0, "{name}");
            }
        }
    }

    #[test]
    fn apiserver_cert_names_every_way_to_reach_it() {
        let scratch = ScratchDir::new("apiserver");
        let pki = pki(&scratch.0);
        pki.ensure().expect("ensure");
        let (ca_pem, leaf_pem) = (pem(&file(&pki, "ca.crt")), pem(&file(&pki, "apiserver.crt")));
        let (ca, cert) = (ca_pem.parse_x509().expect("CA"), leaf_pem.parse_x509().expect("leaf"));
        assert_issued_by(&cert, &file(&pki, "apiserver.key"), &ca);
        assert_eq!(key_purposes(&cert), (true, false));
        let mut names = sans(&cert);
        names.sort();
        let mut expected = [
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            "localhost",
            "api.example.com",
            "127.0.0.1",
            "10.96.0.1",
            "10.0.0.5",
            "192.168.1.10",
        ];
        expected.sort();
        assert_eq!(names, expected);
    }

    #[test]
    fn client_certs_carry_the_kubernetes_identities() {
        let scratch = ScratchDir::new("clients");
        let pki = pki(&scratch.0);
        pki.ensure().expect("ensure");
        let ca_pem = pem(&file(&pki, "ca.crt"));
        let ca = ca_pem.parse_x509().expect("CA");
        let expected: [(&str, &str, &[&str]); 6] = [
            ("admin", "kubernetes-admin", &["system:masters"]),
            ("controller-manager", "system:kube-controller-manager", &[]),
            ("scheduler", "system:kube-scheduler", &[]),
            ("proxy", "system:kube-proxy", &[]),
            ("apiserver-kubelet-client", "kube-apiserver-kubelet-client", &["system:masters"]),
            ("node-n1", "system:node:n1", &["system:nodes"]),
        ];
        for (name, user, groups) in expected {
            let leaf_pem = pem(&file(&pki, &format!("{name}.crt")));
            let cert = leaf_pem.parse_x509().expect("leaf");
            assert_eq!(common_name(&cert), user, "{name}");
            assert_eq!(organizations(&cert), groups, "{name}");
            assert_eq!(key_purposes(&cert), (false, true), "{name}");
            assert_issued_by(&cert, &file(&pki, &format!("{name}.key")), &ca);
        }
    }

    #[test]
    fn kubelet_serving_cert_names_the_node() {
        let scratch = ScratchDir::new("kubelet");
        let pki = pki(&scratch.0);
        pki.ensure().expect("ensure");
        let (ca_pem, leaf_pem) = (pem(&file(&pki, "ca.crt")), pem(&file(&pki, "kubelet-n1.crt")));
        let cert = leaf_pem.parse_x509().expect("leaf");
        assert_eq!(sans(&cert), ["n1", "localhost", "127.0.0.1", "10.0.0.11"]);
        assert_eq!(key_purposes(&cert), (true, false));
        assert_issued_by(&cert, &file(&pki, "kubelet-n1.key"), &ca_pem.parse_x509().expect("CA"));
    }

    #[test]
    fn etcd_has_a_ca_of_its_own() {
        let scratch = ScratchDir::new("etcd");
        let pki = pki(&scratch.0);
        pki.ensure().expect("ensure");
        let (cluster_pem, etcd_pem) = (pem(&file(&pki, "ca.crt")), pem(&file(&pki, "etcd/ca.crt")));
        let (cluster_ca, etcd_ca) = (cluster_pem.parse_x509().expect("CA"), etcd_pem.parse_x509().expect("etcd CA"));
        assert_eq!(common_name(&etcd_ca), "etcd-ca");
        assert_ne!(etcd_ca.public_key().raw, cluster_ca.public_key().raw, "a CA of its own");
        for name in ["etcd/server", "etcd/peer"] {
            let leaf_pem = pem(&file(&pki, &format!("{name}.crt")));
            let cert = leaf_pem.parse_x509().expect("leaf");
            assert_issued_by(&cert, &file(&pki, &format!("{name}.key")), &etcd_ca);
            assert_eq!(key_purposes(&cert), (true, true), "{name}");
            assert_eq!(sans(&cert), ["localhost", "127.0.0.1", "::1", "10.0.0.5"], "{name}");
        }
        let leaf_pem = pem(&file(&pki, "apiserver-etcd-client.crt"));
        let client = leaf_pem.parse_x509().expect("leaf");
        assert_eq!(common_name(&client), "kube-apiserver-etcd-client");
        assert_eq!(key_purposes(&client), (false, true));
        assert_issued_by(&client, &file(&pki, "apiserver-etcd-client.key"), &etcd_ca);
    }

    #[test]
    fn an_older_directory_gains_the_etcd_files() {
        let scratch = ScratchDir::new("etcd-later");
        let pki = pki(&scratch.0);
        pki.ensure().expect("ensure");
        let ca = file(&pki, "ca.crt");
        std::fs::remove_dir_all(pki.dir.join("etcd")).expect("remove etcd/");
        for name in ["apiserver-etcd-client.crt", "apiserver-etcd-client.key"] {
            std::fs::remove_file(pki.dir.join(name)).expect("remove");
        }
        let report = pki.ensure().expect("ensure again");
        assert_eq!(report.created().count(), 8, "{report:?}");
        assert_eq!(file(&pki, "ca.crt"), ca, "the cluster CA is kept");
    }

    #[test]
    fn kubeconfig_points_at_the_server_and_embeds_the_files() {
        let scratch = ScratchDir::new("kubeconfig");
        let pki = pki(&scratch.0);
        pki.ensure().expect("ensure");
        let config: Config = serde_yaml_ng::from_str(&file(&pki, "admin.kubeconfig")).expect("kubeconfig YAML");
        assert_eq!(config.current_context, "kubernetes-admin@kubernetes");
        assert_eq!(config.clusters[0].cluster.server, "https://10.0.0.5:6443");
        assert_eq!(decode(&config.clusters[0].cluster.certificate_authority_data), file(&pki, "ca.crt"));
        assert_eq!(config.users[0].name, "kubernetes-admin");
        assert_eq!(decode(&config.users[0].user.client_certificate_data), file(&pki, "admin.crt"));
        assert_eq!(decode(&config.users[0].user.client_key_data), file(&pki, "admin.key"));
    }

    #[test]
    fn deleted_kubeconfig_comes_back_with_the_kept_pair() {
        let scratch = ScratchDir::new("rekubeconfig");
        let pki = pki(&scratch.0);
        pki.ensure().expect("ensure");
        let before = file(&pki, "admin.kubeconfig");
        std::fs::remove_file(pki.dir.join("admin.kubeconfig")).expect("remove");
        let report = pki.ensure().expect("ensure again");
        assert_eq!(report.created().collect::<Vec<_>>(), [pki.dir.join("admin.kubeconfig")]);
        assert_eq!(file(&pki, "admin.kubeconfig"), before);
    }

    #[test]
    fn new_node_gets_credentials_from_the_existing_ca() {
        let scratch = ScratchDir::new("newnode");
        let mut pki = pki(&scratch.0);
        pki.ensure().expect("ensure");
        let ca = file(&pki, "ca.crt");
        pki.nodes.push("n2".to_owned());
        let report = pki.ensure().expect("ensure with n2");
        let created: Vec<_> = report.created().map(|path| path.file_name().expect("name").to_owned()).collect();
        assert_eq!(created, ["node-n2.crt", "node-n2.key", "node-n2.kubeconfig", "kubelet-n2.crt", "kubelet-n2.key"]);
        assert_eq!(file(&pki, "ca.crt"), ca);
        let (ca_pem, leaf_pem) = (pem(&ca), pem(&file(&pki, "node-n2.crt")));
        let cert = leaf_pem.parse_x509().expect("leaf");
        assert_issued_by(&cert, &file(&pki, "node-n2.key"), &ca_pem.parse_x509().expect("CA"));
    }

    #[test]
    fn missing_ca_key_with_existing_ca_cert_is_an_error() {
        let scratch = ScratchDir::new("nocakey");
        let pki = pki(&scratch.0);
        pki.ensure().expect("ensure");
        std::fs::remove_file(pki.dir.join("ca.key")).expect("remove");
        let err = pki.ensure().expect_err("ca.key is missing");
        assert!(matches!(&err, Error::IncompletePair { missing, .. } if missing.ends_with("ca.key")), "{err}");
        assert!(err.to_string().contains("ca.key is missing"), "{err}");
    }

    #[test]
    fn missing_leaf_key_is_an_error_not_a_silent_reissue() {
        let scratch = ScratchDir::new("noleafkey");
        let pki = pki(&scratch.0);
        pki.ensure().expect("ensure");
        std::fs::remove_file(pki.dir.join("admin.key")).expect("remove");
        let err = pki.ensure().expect_err("admin.key is missing");
        assert!(matches!(&err, Error::IncompletePair { missing, .. } if missing.ends_with("admin.key")), "{err}");
    }

    #[test]
    fn certificates_without_their_ca_are_an_error() {
        let scratch = ScratchDir::new("orphans");
        let pki = pki(&scratch.0);
        pki.ensure().expect("ensure");
        std::fs::remove_file(pki.dir.join("ca.crt")).expect("remove");
        std::fs::remove_file(pki.dir.join("ca.key")).expect("remove");
        let err = pki.ensure().expect_err("orphaned certificates");
        assert!(matches!(err, Error::OrphanedCertificate { .. }), "{err}");
        assert!(!pki.dir.join("ca.crt").exists(), "no new CA was written");
    }

    #[test]
    fn node_names_cannot_escape_the_directory() {
        let scratch = ScratchDir::new("badnode");
        let pki = Pki { nodes: vec!["../evil".to_owned()], ..pki(&scratch.0) };
        assert!(matches!(pki.ensure(), Err(Error::InvalidNodeName { .. })));
        assert!(!pki.dir.exists());
    }

    #[test]
    fn server_host_strips_scheme_port_and_brackets() {
        assert_eq!(server_host("https://127.0.0.1:6443"), Some("127.0.0.1"));
        assert_eq!(server_host("https://[::1]:6443/x"), Some("::1"));
        assert_eq!(server_host("https://api.example.com"), Some("api.example.com"));
        assert_eq!(server_host("https://:6443"), None);
    }
}
