//! Where the apiserver is: `--server URL`, `$RKUBE_SERVER`, or a
//! kubeconfig-style file (`--kubeconfig`, `$RKUBECONFIG`, `~/.rkube/config`).

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
    /// The apiserver URL (default: $RKUBE_SERVER, then the kubeconfig file).
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
    /// then [`DEFAULT_SERVER`].
    pub fn resolve(server: Option<&str>, kubeconfig: Option<&Path>) -> Result<ClientConfig, ConfigError> {
        let from_file = match kubeconfig {
            Some(p) => Some(ClientConfig::from_kubeconfig(p)?),
            None => match default_kubeconfig().filter(|p| p.exists()) {
                Some(p) => Some(ClientConfig::from_kubeconfig(&p)?),
                None => None,
            },
        };
        let namespace = from_file.as_ref().map(|c| c.namespace.clone()).unwrap_or_default();
        let server = match (server, std::env::var("RKUBE_SERVER").ok().filter(|s| !s.is_empty()), from_file) {
            (Some(s), _, _) => s.to_string(),
            (None, Some(env), _) => env,
            (None, None, Some(file)) => file.server,
            (None, None, None) => DEFAULT_SERVER.to_string(),
        };
        Ok(ClientConfig { server: normalize(&server), namespace })
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

fn default_kubeconfig() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("RKUBECONFIG")
        && !p.is_empty()
    {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".rkube").join("config"))
}

/// `127.0.0.1:8080` → `http://127.0.0.1:8080`.
pub fn normalize(server: &str) -> String {
    let s = server.trim().trim_end_matches('/');
    if s.contains("://") { s.to_string() } else { format!("http://{s}") }
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

    #[test]
    fn explicit_server_wins() {
        let cfg = ClientConfig::resolve(Some("10.0.0.1:8080"), None).expect("resolves");
        assert_eq!(cfg.server, "http://10.0.0.1:8080");
    }
}
