//! Where the apiserver is: `--server URL`, `$RKUBE_SERVER`, a
//! kubeconfig-style file (`--kubeconfig`, `$RKUBECONFIG`, `~/.rkube/config`),
//! or, inside a pod, the `kubernetes` Service the kubelet names in
//! `$KUBERNETES_SERVICE_HOST` and `$KUBERNETES_SERVICE_PORT`; and who we
//! are to it: the kubeconfig user's certificates and token
//! ([`Credentials`]), read from the standard fields so the real kubectl
//! uses the same file. In a pod with a service account token volume
//! (`/var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt,namespace}`)
//! the client speaks https to the `kubernetes` Service, trusting that
//! `ca.crt`, and shows that token, read again every minute as the kubelet
//! renews it (client-go and kube-rs do the same).

use base64::Engine as _;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The apiserver to talk to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientConfig {
    /// Its URL, e.g. `http://127.0.0.1:8080`.
    pub server: String,
    /// The namespace of the current context ("" if none).
    pub namespace: String,
    /// How to check the server and prove who we are.
    pub credentials: Credentials,
}

/// The PEM data and token of a kubeconfig cluster and user, read in (files
/// named by the kubeconfig are read when it is, so a missing one is reported
/// at start).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// The CA that signed the server's certificate (PEM).
    pub certificate_authority: Option<Vec<u8>>,
    /// Our client certificate (PEM).
    pub client_certificate: Option<Vec<u8>>,
    /// Its private key (PEM).
    pub client_key: Option<Vec<u8>>,
    /// A bearer token.
    pub token: Option<String>,
    /// A file holding a bearer token, read again every minute (a pod's
    /// service account token, which the kubelet renews); used when `token`
    /// is not set.
    pub token_file: Option<PathBuf>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key or the token: a Debug print may end up in a log.
        f.debug_struct("Credentials")
            .field("certificate_authority", &self.certificate_authority.is_some())
            .field("client_certificate", &self.client_certificate.is_some())
            .field("client_key", &self.client_key.as_ref().map(|_| "<redacted>"))
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_file", &self.token_file)
            .finish()
    }
}

/// Why no server could be found.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The kubeconfig file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The kubeconfig file is not valid YAML of the expected shape.
    #[error("{path} is not a valid kubeconfig: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct KubeConfig {
    #[serde(default)]
    current_context: String,
    #[serde(default)]
    clusters: Vec<Named<Cluster>>,
    #[serde(default)]
    contexts: Vec<Named<Context>>,
    #[serde(default)]
    users: Vec<Named<User>>,
}

#[derive(Deserialize)]
struct Named<T> {
    name: String,
    #[serde(alias = "cluster", alias = "context")]
    #[serde(flatten)]
    inner: T,
}

#[derive(Deserialize)]
struct Cluster {
    cluster: ClusterInfo,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct ClusterInfo {
    server: String,
    #[serde(default)]
    certificate_authority: Option<String>,
    #[serde(default)]
    certificate_authority_data: Option<String>,
}

#[derive(Deserialize)]
struct User {
    #[serde(default)]
    user: UserInfo,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct UserInfo {
    #[serde(default)]
    client_certificate: Option<String>,
    #[serde(default)]
    client_certificate_data: Option<String>,
    #[serde(default)]
    client_key: Option<String>,
    #[serde(default)]
    client_key_data: Option<String>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default, rename = "tokenFile")]
    token_file: Option<String>,
}

#[derive(Deserialize)]
struct Context {
    context: ContextInfo,
}

#[derive(Deserialize)]
struct ContextInfo {
    cluster: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    user: String,
}

/// The flags every daemon uses to find the apiserver (flatten them into its
/// clap `Args`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServerArgs {
    /// The apiserver URL, or several comma-separated to fail over between
    /// (default: $RKUBE_SERVER, then the kubeconfig file,
    /// then, in a pod, $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT).
    #[arg(long, env = "RKUBE_SERVER")]
    pub server: Option<String>,
    /// A kubeconfig-style file naming the apiserver.
    #[arg(long, env = "RKUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
}

impl ServerArgs {
    /// Resolves the apiserver as [`ClientConfig::resolve`] does.
    pub fn resolve(&self) -> Result<ClientConfig, ConfigError> {
        ClientConfig::resolve(self.server.as_deref(), self.kubeconfig.as_deref())
    }
}

/// The default apiserver when nothing else is configured.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

impl ClientConfig {
    /// Resolves the server: an explicit `server` wins, then `$RKUBE_SERVER`,
    /// then the kubeconfig file (explicit path, `$RKUBECONFIG`, `~/.rkube/config`),
    /// then the in-cluster `kubernetes` Service ([`in_cluster_config`]),
    /// then [`DEFAULT_SERVER`].
    pub fn resolve(server: Option<&str>, kubeconfig: Option<&Path>) -> Result<ClientConfig, ConfigError> {
        let from_file = match kubeconfig {
            Some(p) => Some(ClientConfig::from_kubeconfig(p)?),
            None => match default_kubeconfig().filter(|p| p.exists()) {
                Some(p) => Some(ClientConfig::from_kubeconfig(&p)?),
                None => None,
            },
        };
        let env = |name: &str| std::env::var(name).ok();
        let in_cluster = in_cluster_config(env, Path::new(SERVICE_ACCOUNT_DIR));
        Ok(pick(server, env("RKUBE_SERVER"), from_file, in_cluster))
    }

    /// Reads a kubeconfig-style file: the current context's cluster server
    /// and namespace (or the first cluster's server if there is no context).
    pub fn from_kubeconfig(path: &Path) -> Result<ClientConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        let cfg: KubeConfig = serde_yaml_ng::from_str(&text)
            .map_err(|e| ConfigError::Invalid { path: path.into(), message: e.to_string() })?;
        let invalid = |message: String| ConfigError::Invalid { path: path.into(), message };
        let (cluster_name, namespace, user_name) = match cfg.contexts.iter().find(|c| c.name == cfg.current_context) {
            Some(ctx) => {
                let c = &ctx.inner.context;
                (c.cluster.clone(), c.namespace.clone(), Some(c.user.clone()))
            }
            None if cfg.current_context.is_empty() => {
                (cfg.clusters.first().map(|c| c.name.clone()).unwrap_or_default(), String::new(), None)
            }
            None => {
                return Err(invalid(format!("current-context \"{}\" is not among the contexts", cfg.current_context)));
            }
        };
        let cluster = cfg
            .clusters
            .iter()
            .find(|c| c.name == cluster_name)
            .ok_or_else(|| invalid(format!("cluster \"{cluster_name}\" is not among the clusters")))?;
        let user = match user_name.as_deref() {
            None | Some("") => None,
            Some(name) => Some(
                &cfg.users
                    .iter()
                    .find(|u| u.name == name)
                    .ok_or_else(|| invalid(format!("user \"{name}\" is not among the users")))?
                    .inner
                    .user,
            ),
        };
        // Relative file names are relative to the kubeconfig, as kubectl reads them.
        let dir = path.parent().unwrap_or(Path::new("."));
        let pem = |file: &Option<String>, data: &Option<String>, field: &str| -> Result<Option<Vec<u8>>, ConfigError> {
            if let Some(data) = data.as_deref().filter(|d| !d.is_empty()) {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(data.trim())
                    .map_err(|e| invalid(format!("{field}-data is not base64: {e}")))?;
                return Ok(Some(bytes));
            }
            match file.as_deref().filter(|f| !f.is_empty()) {
                Some(f) => {
                    let p = dir.join(f);
                    std::fs::read(&p).map(Some).map_err(|source| ConfigError::Read { path: p, source })
                }
                None => Ok(None),
            }
        };
        let c = &cluster.inner.cluster;
        let mut credentials = Credentials {
            certificate_authority: pem(
                &c.certificate_authority,
                &c.certificate_authority_data,
                "certificate-authority",
            )?,
            ..Credentials::default()
        };
        if let Some(u) = user {
            credentials.client_certificate =
                pem(&u.client_certificate, &u.client_certificate_data, "client-certificate")?;
            credentials.client_key = pem(&u.client_key, &u.client_key_data, "client-key")?;
            if credentials.client_certificate.is_some() != credentials.client_key.is_some() {
                return Err(invalid(format!(
                    "user \"{}\" has a client certificate without its key or a key without its certificate",
                    user_name.unwrap_or_default()
                )));
            }
            credentials.token = match (&u.token, &u.token_file) {
                (Some(t), _) if !t.is_empty() => Some(t.clone()),
                (_, Some(f)) if !f.is_empty() => {
                    let p = dir.join(f);
                    let t = std::fs::read_to_string(&p).map_err(|source| ConfigError::Read { path: p, source })?;
                    Some(t.trim().to_string())
                }
                _ => None,
            };
        }
        Ok(ClientConfig { server: normalize(&c.server), namespace, credentials })
    }
}

/// Chooses among the sources, in [`ClientConfig::resolve`]'s order.
fn pick(
    explicit: Option<&str>,
    env: Option<String>,
    from_file: Option<ClientConfig>,
    in_cluster: Option<ClientConfig>,
) -> ClientConfig {
    let namespace = from_file.as_ref().map(|c| c.namespace.clone()).unwrap_or_default();
    // A --server given beside a kubeconfig still uses its credentials.
    let credentials = from_file.as_ref().map(|c| c.credentials.clone()).unwrap_or_default();
    let server = match (explicit, env.filter(|s| !s.is_empty()), from_file, in_cluster) {
        (Some(s), ..) => s.to_string(),
        (None, Some(env), ..) => env,
        (None, None, Some(file), _) => file.server,
        (None, None, None, Some(in_cluster)) => return in_cluster,
        (None, None, None, None) => DEFAULT_SERVER.to_string(),
    };
    ClientConfig { server: normalize(&server), namespace, credentials }
}

/// Where the ServiceAccount admission plugin mounts a pod's token volume.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The apiserver and credentials of a pod: the `kubernetes` Service
/// ([`in_cluster_server`]); when `dir` holds a `token`, over https with
/// `dir/ca.crt` as the CA and the token file (re-read as it is renewed),
/// and the namespace of `dir/namespace`. Plain http without a token (a
/// cluster without TLS). None outside a pod.
pub fn in_cluster_config(env: impl Fn(&str) -> Option<String>, dir: &Path) -> Option<ClientConfig> {
    let server = in_cluster_server(env)?;
    let token = dir.join("token");
    if !token.is_file() {
        return Some(ClientConfig { server, ..ClientConfig::default() });
    }
    let namespace = std::fs::read_to_string(dir.join("namespace")).map(|n| n.trim().to_string()).unwrap_or_default();
    let credentials = Credentials {
        certificate_authority: std::fs::read(dir.join("ca.crt")).ok(),
        token_file: Some(token),
        ..Credentials::default()
    };
    let server = format!("https://{}", server.trim_start_matches("http://"));
    Some(ClientConfig { server, namespace, credentials })
}

/// The apiserver as a pod sees it: `http://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`
/// (the `kubernetes` Service, whose address the kubelet puts in every
/// container's environment), with `env` reading a variable. None unless both
/// are set. [`in_cluster_config`] turns it to https when the pod has a token.
pub fn in_cluster_server(env: impl Fn(&str) -> Option<String>) -> Option<String> {
    let host = env("KUBERNETES_SERVICE_HOST").filter(|h| !h.trim().is_empty())?;
    let port = env("KUBERNETES_SERVICE_PORT").filter(|p| !p.trim().is_empty())?;
    let (host, port) = (host.trim(), port.trim());
    // An IPv6 address needs brackets in a URL.
    let host = if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host.to_string() };
    Some(format!("http://{host}:{port}"))
}

fn default_kubeconfig() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("RKUBECONFIG")
        && !p.is_empty()
    {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".rkube").join("config"))
}

/// `127.0.0.1:8080` → `http://127.0.0.1:8080`; a comma-separated list of
/// servers (for failover) is normalized server by server.
pub fn normalize(server: &str) -> String {
    let one = |s: &str| {
        let s = s.trim().trim_end_matches('/');
        if s.contains("://") { s.to_string() } else { format!("http://{s}") }
    };
    server.split(',').filter(|s| !s.trim().is_empty()).map(one).collect::<Vec<_>>().join(",")
}

/// A kubeconfig-style file pointing at `server`, as the local cluster writes it.
pub fn kubeconfig_yaml(server: &str, name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: {name}\nclusters:\n- name: {name}\n  cluster:\n    server: {server}\ncontexts:\n- name: {name}\n  context:\n    cluster: {name}\n    namespace: default\nusers: []\n"
    )
}

/// A kubeconfig for `server` as user `user`, with the credentials embedded
/// (`-data` fields), in the standard format the real kubectl reads too.
pub fn kubeconfig_with_credentials(server: &str, name: &str, user: &str, creds: &Credentials) -> String {
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    let mut cluster = format!("    server: {server}\n");
    if let Some(ca) = &creds.certificate_authority {
        cluster.push_str(&format!("    certificate-authority-data: {}\n", b64(ca)));
    }
    let mut fields = String::new();
    if let Some(cert) = &creds.client_certificate {
        fields.push_str(&format!("    client-certificate-data: {}\n", b64(cert)));
    }
    if let Some(key) = &creds.client_key {
        fields.push_str(&format!("    client-key-data: {}\n", b64(key)));
    }
    if let Some(token) = &creds.token {
        // A token is opaque text: quote it as a YAML string.
        fields.push_str(&format!("    token: {}\n", serde_json::Value::String(token.clone())));
    }
    if fields.is_empty() {
        fields.push_str("    {}\n");
    }
    format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: {name}\nclusters:\n- name: {name}\n  cluster:\n{cluster}contexts:\n- name: {name}\n  context:\n    cluster: {name}\n    namespace: default\n    user: {user}\nusers:\n- name: {user}\n  user:\n{fields}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_current_context_picks_the_server() {
        let dir = std::env::temp_dir().join(format!("rkube-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("config");
        std::fs::write(&path, kubeconfig_yaml("http://127.0.0.1:9999", "local")).expect("write");
        let cfg = ClientConfig::from_kubeconfig(&path).expect("valid");
        assert_eq!(cfg.server, "http://127.0.0.1:9999");
        assert_eq!(cfg.namespace, "default");
        std::fs::write(&path, "current-context: nope\nclusters: []\ncontexts: []\n").expect("write");
        let e = ClientConfig::from_kubeconfig(&path).expect_err("missing context");
        assert!(e.to_string().contains("nope"), "{e}");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn kubeconfig_users_give_certificates_and_tokens_inline_or_from_files() {
        let dir = std::env::temp_dir().join(format!("rkube-cfg-creds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("ca.crt"), "CA PEM").expect("write");
        std::fs::write(dir.join("token"), "s3cret\n").expect("write");
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let creds = Credentials {
            certificate_authority: Some(b"CA PEM".to_vec()),
            client_certificate: Some(b"CERT".to_vec()),
            client_key: Some(b"KEY".to_vec()),
            token: None,
            token_file: None,
        };
        let path = dir.join("inline");
        std::fs::write(&path, kubeconfig_with_credentials("https://127.0.0.1:6443", "c", "admin", &creds))
            .expect("write");
        let cfg = ClientConfig::from_kubeconfig(&path).expect("valid");
        assert_eq!(cfg.server, "https://127.0.0.1:6443");
        assert_eq!(cfg.credentials, creds);
        let debug = format!("{:?}", cfg.credentials);
        assert!(!debug.contains("KEY"), "the key is not printed: {debug}");

        let path = dir.join("files");
        let text = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: c\n  cluster:\n    server: https://h:6443\n    certificate-authority: ca.crt\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\nusers:\n- name: u\n  user:\n    tokenFile: token\n    client-key-data: {}\n",
            b64("KEY")
        );
        std::fs::write(&path, text).expect("write");
        let e = ClientConfig::from_kubeconfig(&path).expect_err("a key without a certificate");
        assert!(e.to_string().contains("without its"), "{e}");
        let text = std::fs::read_to_string(&path).expect("read").replace("    client-key-data", "    x-key-data");
        std::fs::write(&path, text).expect("write");
        let cfg = ClientConfig::from_kubeconfig(&path).expect("valid");
        assert_eq!(cfg.credentials.certificate_authority.as_deref(), Some(&b"CA PEM"[..]), "relative to the file");
        assert_eq!(cfg.credentials.token.as_deref(), Some("s3cret"));
        std::fs::write(&path, std::fs::read_to_string(&path).expect("read").replace("user: u", "user: v"))
            .expect("write");
        let e = ClientConfig::from_kubeconfig(&path).expect_err("unknown user");
        assert!(e.to_string().contains("user \"v\" is not among the users"), "{e}");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn in_cluster_server_comes_from_the_kubernetes_service_variables() {
        let both = [("KUBERNETES_SERVICE_HOST", "10.254.0.1"), ("KUBERNETES_SERVICE_PORT", "443")];
        assert_eq!(in_cluster_server(env(&both)).as_deref(), Some("http://10.254.0.1:443"));
        let v6 = [("KUBERNETES_SERVICE_HOST", "fd00::1"), ("KUBERNETES_SERVICE_PORT", "8080")];
        assert_eq!(in_cluster_server(env(&v6)).as_deref(), Some("http://[fd00::1]:8080"));
        assert_eq!(in_cluster_server(env(&both[..1])), None, "no port, not in a pod");
        assert_eq!(in_cluster_server(env(&[("KUBERNETES_SERVICE_HOST", ""), both[1]])), None);
    }

    #[test]
    fn in_a_pod_with_a_token_the_client_speaks_https_with_its_ca_token_and_namespace() {
        let dir = std::env::temp_dir().join(format!("rkube-in-cluster-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let vars = [("KUBERNETES_SERVICE_HOST", "10.254.0.1"), ("KUBERNETES_SERVICE_PORT", "443")];
        let plain = in_cluster_config(env(&vars), &dir).expect("in a pod");
        assert_eq!(plain.server, "http://10.254.0.1:443", "no token: plain http");
        assert_eq!(plain.credentials, Credentials::default());
        std::fs::write(dir.join("token"), "jwt").expect("write");
        std::fs::write(dir.join("ca.crt"), "CA").expect("write");
        std::fs::write(dir.join("namespace"), "team").expect("write");
        let secure = in_cluster_config(env(&vars), &dir).expect("in a pod");
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(secure.server, "https://10.254.0.1:443");
        assert_eq!(secure.namespace, "team");
        assert_eq!(secure.credentials.certificate_authority.as_deref(), Some(&b"CA"[..]));
        assert_eq!(secure.credentials.token_file, Some(dir.join("token")));
        assert_eq!(secure.credentials.token, None, "read per request, not once");
        assert_eq!(in_cluster_config(env(&vars[..1]), &dir), None, "not in a pod");
    }

    #[test]
    fn in_cluster_comes_after_flags_and_kubeconfig_and_before_the_default() {
        let in_cluster =
            || Some(ClientConfig { server: "http://10.254.0.1:443".to_string(), ..ClientConfig::default() });
        let file = || {
            let credentials = Credentials { token: Some("t".into()), ..Credentials::default() };
            Some(ClientConfig { server: "http://file:1".into(), namespace: "dev".into(), credentials })
        };
        let flagged = pick(Some("flag:1"), Some("http://env:1".into()), file(), in_cluster());
        assert_eq!(flagged.server, "http://flag:1");
        assert_eq!(flagged.credentials.token.as_deref(), Some("t"), "--server keeps the kubeconfig's user");
        assert_eq!(pick(None, Some("http://env:1".into()), file(), in_cluster()).server, "http://env:1");
        assert_eq!(pick(None, Some(String::new()), file(), in_cluster()), file().unwrap(), "empty env is unset");
        assert_eq!(pick(None, None, None, in_cluster()).server, "http://10.254.0.1:443");
        assert_eq!(pick(None, None, None, None).server, DEFAULT_SERVER);
    }

    #[test]
    fn a_server_list_is_normalized_server_by_server() {
        assert_eq!(normalize(" 10.0.0.1:8080/, http://10.0.0.2:8080 ,"), "http://10.0.0.1:8080,http://10.0.0.2:8080");
        assert_eq!(normalize("127.0.0.1:8080"), "http://127.0.0.1:8080");
    }

    #[test]
    fn explicit_server_wins() {
        let cfg = ClientConfig::resolve(Some("10.0.0.1:8080"), None).expect("resolves");
        assert_eq!(cfg.server, "http://10.0.0.1:8080");
    }
}
