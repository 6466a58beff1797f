//! Relaying logs, exec and stats to the kubelet of a pod's node.
//!
//! Clients never talk to kubelets: the apiserver looks up the pod's node, its
//! InternalIP and `status.daemonEndpoints.kubeletEndpoint.port`, and relays
//! the stream to the kubelet's `rkube.v1.Kubelet` service, over TLS with
//! the apiserver's kubelet client certificate when one is configured.

use crate::registry::Registry;
use rkube_api::resource::lookup;
use rkube_api::{ApiError, Result};
use rkube_proto::v1 as pb;
use rkube_proto::v1::kubelet_client::KubeletClient;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// Client TLS toward a kubelet or etcd: the CA that signed its serving
/// certificate, and our client certificate and key if it asks for one.
pub fn tls_config(ca: &Path, identity: Option<(&Path, &Path)>) -> anyhow::Result<ClientTlsConfig> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| anyhow::anyhow!("reading {}: {e}", p.display()));
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca)?));
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
    }
    Ok(tls)
}

/// Connections to kubelets, by address.
pub struct NodeProxy {
    registry: Arc<Registry>,
    tls: Option<ClientTlsConfig>,
    channels: Mutex<HashMap<String, Channel>>,
}

impl std::fmt::Debug for NodeProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeProxy")
    }
}

/// Where a pod's container runs.
#[derive(Debug)]
pub struct Target {
    /// The kubelet of the pod's node.
    pub kubelet: KubeletClient<Channel>,
    /// The container's name (resolved when the request named none).
    pub container: String,
}

impl NodeProxy {
    /// A proxy reading pods and nodes from `registry`.
    pub fn new(registry: Arc<Registry>, tls: Option<ClientTlsConfig>) -> Self {
        NodeProxy { registry, tls, channels: Mutex::new(HashMap::new()) }
    }

    /// The kubelet of node `name`.
    pub async fn kubelet(&self, name: &str) -> Result<KubeletClient<Channel>> {
        let nodes = lookup("nodes").expect("nodes are in the table");
        let node: Value = serde_json::from_slice(&self.registry.get(nodes, "", name).await?.json)
            .map_err(|e| ApiError::internal(format!("node {name}: {e}")))?;
        let ip = node
            .pointer("/status/addresses")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find(|x| x["type"] == "InternalIP"))
            .and_then(|x| x["address"].as_str())
            .ok_or_else(|| ApiError::bad_request(format!("node \"{name}\" has no InternalIP address")))?
            .to_string();
        let port = node.pointer("/status/daemonEndpoints/kubeletEndpoint/Port").and_then(Value::as_i64).unwrap_or(0);
        if port <= 0 {
            return Err(ApiError::bad_request(format!("node \"{name}\" reports no kubelet endpoint port")));
        }
        let host = if ip.contains(':') { format!("[{ip}]") } else { ip };
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let addr = format!("{scheme}://{host}:{port}");
        let channel = {
            let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
            match channels.get(&addr) {
                Some(c) => c.clone(),
                None => {
                    let mut endpoint = Endpoint::from_shared(addr.clone())
                        .map_err(|e| ApiError::internal(format!("kubelet address {addr}: {e}")))?
                        .connect_timeout(Duration::from_secs(5))
                        .tcp_nodelay(true);
                    if let Some(tls) = &self.tls {
                        endpoint = endpoint
                            .tls_config(tls.clone())
                            .map_err(|e| ApiError::internal(format!("TLS to the kubelet at {addr}: {e}")))?;
                    }
                    let c = endpoint.connect_lazy();
                    channels.insert(addr.clone(), c.clone());
                    c
                }
            }
        };
        Ok(KubeletClient::new(channel))
    }

    /// The kubelet and container for `container` of pod `namespace/pod`.
    pub async fn target(&self, namespace: &str, pod: &str, container: &str) -> Result<Target> {
        let pods = lookup("pods").expect("pods are in the table");
        let obj: Value = serde_json::from_slice(&self.registry.get(pods, namespace, pod).await?.json)
            .map_err(|e| ApiError::internal(format!("pod {pod}: {e}")))?;
        let node = obj.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or_default();
        if node.is_empty() {
            return Err(ApiError::bad_request(format!("pod {pod} does not have a host assigned")));
        }
        let names: Vec<String> = ["containers", "initContainers"]
            .iter()
            .flat_map(|list| {
                obj.pointer(&format!("/spec/{list}")).and_then(Value::as_array).cloned().unwrap_or_default()
            })
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect();
        let container = match container {
            "" => {
                let app: Vec<&str> = obj
                    .pointer("/spec/containers")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(|c| c["name"].as_str()).collect())
                    .unwrap_or_default();
                match app.as_slice() {
                    [only] => only.to_string(),
                    _ => {
                        return Err(ApiError::bad_request(format!(
                            "a container name must be specified for pod {pod}, choose one of: [{}]",
                            app.join(" ")
                        )));
                    }
                }
            }
            c if names.iter().any(|n| n == c) => c.to_string(),
            c => return Err(ApiError::bad_request(format!("container {c} is not valid for pod {pod}"))),
        };
        Ok(Target { kubelet: self.kubelet(node).await?, container })
    }
}

/// A kubelet's error, or a failure to reach it, as an API error.
pub fn kubelet_error(s: tonic::Status) -> ApiError {
    if s.details().is_empty() && s.code() == tonic::Code::Unavailable {
        return ApiError::unavailable(format!("the kubelet could not be reached: {}", s.message()));
    }
    ApiError::from(s)
}

/// Builds the message that starts an exec on the kubelet.
pub fn start_for(start: &pb::ExecStart, container: &str) -> pb::ExecInput {
    let mut start = start.clone();
    start.container = container.to_string();
    pb::ExecInput { input: Some(pb::exec_input::Input::Start(start)) }
}
