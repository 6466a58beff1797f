//! One invocation's connection to the apiserver and its namespace, resolved
//! from `--server`, `--kubeconfig`, `-n` and the environment.

use crate::cli::Global;
use rkube_api::ResourceInfo;
use rkube_client::{Client, ClientConfig};

/// The server and namespace a command works against.
#[derive(Debug, Clone)]
pub struct Session {
    /// The apiserver client.
    pub client: Client,
    /// The namespace: `-n`, the kubeconfig context's, or "default".
    pub namespace: String,
    /// Whether `-n` was given (a manifest's own namespace must then agree).
    pub namespace_explicit: bool,
}

impl Session {
    /// Resolves the global flags.
    pub fn connect(global: &Global) -> anyhow::Result<Session> {
        let cfg = ClientConfig::resolve(global.server.as_deref(), global.kubeconfig.as_deref())?;
        let client = Client::from_config(&cfg)?;
        let (namespace, namespace_explicit) = match global.namespace.as_deref().filter(|n| !n.is_empty()) {
            Some(ns) => (ns.to_string(), true),
            None if !cfg.namespace.is_empty() => (cfg.namespace.clone(), false),
            None => ("default".to_string(), false),
        };
        Ok(Session { client, namespace, namespace_explicit })
    }

    /// The namespace to use for `info`: "" for cluster-scoped resources and
    /// for `all_namespaces`, otherwise the session's.
    pub fn namespace_for(&self, info: &ResourceInfo, all_namespaces: bool) -> String {
        if !info.namespaced || all_namespaces { String::new() } else { self.namespace.clone() }
    }
}
