//! Where the apiserver is: `--server URL`, `$RKUBE_SERVER`, a
//! kubeconfig-style file (`--kubeconfig`, `$RKUBECONFIG`, `~/.rkube/config`),
//! or, inside a pod, the `kubernetes` Service the kubelet names in
//! `$KUBERNETES_SERVICE_HOST` and `$KUBERNETES_SERVICE_PORT`.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The apiserver to talk to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Its URL, e.g. `http://127.0.0.1:8080`.
    pub server: String,
    /// The namespace of the current context ("" if none).
    pub namespace: String,
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
struct ClusterInfo {
    server: String,
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
    /// then the in-cluster `kubernetes` Service ([`in_cluster_server`]),
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
        Ok(pick(server, env("RKUBE_SERVER"), from_file, in_cluster_server(env)))
    }

    /// Reads a kubeconfig-style file: the current context's cluster server
    /// and namespace (or the first cluster's server if there is no context).
    pub fn from_kubeconfig(path: &Path) -> Result<ClientConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        let cfg: KubeConfig = serde_yaml_ng::from_str(&text)
            .map_err(|e| ConfigError::Invalid { path: path.into(), message: e.to_string() })?;
        let invalid = |message: String| ConfigError::Invalid { path: path.into(), message };
        let (cluster_name, namespace) = match cfg.contexts.iter().find(|c| c.name == cfg.current_context) {
            Some(ctx) => (ctx.inner.context.cluster.clone(), ctx.inner.context.namespace.clone()),
            None if cfg.current_context.is_empty() => {
                (cfg.clusters.first().map(|c| c.name.clone()).unwrap_or_default(), String::new())
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
        Ok(ClientConfig { server: normalize(&cluster.inner.cluster.server), namespace })
    }
}

/// Chooses among the sources, in [`ClientConfig::resolve`]'s order.
fn pick(
    explicit: Option<&str>,
    env: Option<String>,
    from_file: Option<ClientConfig>,
    in_cluster: Option<String>,
) -> ClientConfig {
    let namespace = from_file.as_ref().map(|c| c.namespace.clone()).unwrap_or_default();
    let server = match (explicit, env.filter(|s| !s.is_empty()), from_file, in_cluster) {
        (Some(s), ..) => s.to_string(),
        (None, Some(env), ..) => env,
        (None, None, Some(file), _) => file.server,
        (None, None, None, Some(in_cluster)) => in_cluster,
        (None, None, None, None) => DEFAULT_SERVER.to_string(),
    };
    ClientConfig { server: normalize(&server), namespace }
}

/// The apiserver as a pod sees it: `http://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`
/// (the `kubernetes` Service, whose address the kubelet puts in every
/// container's environment), with `env` reading a variable. None unless both
/// are set. Plain http until the apiserver serves TLS.
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
    fn in_cluster_comes_after_flags_and_kubeconfig_and_before_the_default() {
        let in_cluster = || Some("http://10.254.0.1:443".to_string());
        let file = || Some(ClientConfig { server: "http://file:1".into(), namespace: "dev".into() });
        assert_eq!(pick(Some("flag:1"), Some("http://env:1".into()), file(), in_cluster()).server, "http://flag:1");
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
