//! The node's Docker bridge network: its name, options and labels, and how
//! an existing network is adopted, replaced or refused.

use crate::error::{Error, Result};
use bollard::Docker;
use bollard::models::{Ipam, IpamConfig, NetworkCreateRequest, NetworkInspect};
use rkube_api::cidr::Ipv4Cidr;
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// Docker's option naming the Linux bridge device.
pub const OPT_BRIDGE_NAME: &str = "com.docker.network.bridge.name";
/// Docker's option that, when "true" (the default), masquerades everything
/// leaving the bridge; rkube sets it "false" and masquerades itself.
pub const OPT_MASQUERADE: &str = "com.docker.network.bridge.enable_ip_masquerade";
/// Label on rkube's pod networks: the node.
pub const LABEL_NODE: &str = "io.rkube.node";
/// Label on rkube's pod networks: the pod CIDR.
pub const LABEL_POD_CIDR: &str = "io.rkube.pod-cidr";
/// Label on rkube's pod networks: the cluster CIDR.
pub const LABEL_CLUSTER_CIDR: &str = "io.rkube.cluster-cidr";

/// The Docker network of `node`: `rkube-<node>`.
pub fn network_name(node: &str) -> String {
    format!("rkube-{node}")
}

/// The Linux bridge of `node` (at most 15 bytes, the kernel's limit):
/// `rk-<node>` for names of up to 11 characters of `[a-z0-9-]`, else
/// `rk-` and 12 hex digits of a hash of the name (so the two forms never meet).
pub fn bridge_name(node: &str) -> String {
    let plain = node.len() <= 11 && node.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if plain && !node.is_empty() {
        return format!("rk-{node}");
    }
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let hash = node.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("rk-{:012x}", hash & 0xffff_ffff_ffff)
}

/// What the node's Docker network must look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSpec {
    /// `rkube-<node>`.
    pub name: String,
    /// The bridge device.
    pub bridge: String,
    /// The subnet: the node's pod CIDR.
    pub subnet: Ipv4Cidr,
    /// The bridge's address: the subnet's first address.
    pub gateway: Ipv4Addr,
    /// Labels naming node, pod CIDR and cluster CIDR.
    pub labels: HashMap<String, String>,
}

impl NetworkSpec {
    /// The spec of `node`'s network.
    pub fn new(node: &str, subnet: Ipv4Cidr, gateway: Ipv4Addr, cluster: &Ipv4Cidr) -> Self {
        let labels = HashMap::from([
            (LABEL_NODE.to_string(), node.to_string()),
            (LABEL_POD_CIDR.to_string(), subnet.to_string()),
            (LABEL_CLUSTER_CIDR.to_string(), cluster.to_string()),
        ]);
        NetworkSpec { name: network_name(node), bridge: bridge_name(node), subnet, gateway, labels }
    }

    /// The Docker create request.
    pub fn request(&self) -> NetworkCreateRequest {
        NetworkCreateRequest {
            name: self.name.clone(),
            driver: Some("bridge".into()),
            ipam: Some(Ipam {
                driver: Some("default".into()),
                config: Some(vec![IpamConfig {
                    subnet: Some(self.subnet.to_string()),
                    gateway: Some(self.gateway.to_string()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            options: Some(HashMap::from([
                (OPT_BRIDGE_NAME.to_string(), self.bridge.clone()),
                (OPT_MASQUERADE.to_string(), "false".to_string()),
            ])),
            labels: Some(self.labels.clone()),
            ..Default::default()
        }
    }

    /// How an existing network differs from this spec (None: it fits).
    pub fn mismatch(&self, found: &NetworkInspect) -> Option<String> {
        let driver = found.driver.as_deref().unwrap_or_default();
        if driver != "bridge" {
            return Some(format!("uses driver \"{driver}\", not \"bridge\""));
        }
        let configs = found.ipam.as_ref().and_then(|i| i.config.as_deref()).unwrap_or_default();
        let subnets: Vec<&str> = configs.iter().filter_map(|c| c.subnet.as_deref()).collect();
        if subnets != [self.subnet.to_string().as_str()] {
            return Some(format!("has subnet(s) {subnets:?}, not the pod CIDR {}", self.subnet));
        }
        let gateway = configs.first().and_then(|c| c.gateway.as_deref()).unwrap_or_default();
        if gateway != self.gateway.to_string() {
            return Some(format!("has gateway \"{gateway}\", not {}", self.gateway));
        }
        let options = found.options.clone().unwrap_or_default();
        let option = |k: &str| options.get(k).map(String::as_str).unwrap_or_default();
        if option(OPT_MASQUERADE) != "false" {
            return Some(format!("does not set {OPT_MASQUERADE}=false"));
        }
        if option(OPT_BRIDGE_NAME) != self.bridge {
            return Some(format!("uses bridge \"{}\", not \"{}\"", option(OPT_BRIDGE_NAME), self.bridge));
        }
        None
    }
}

/// Whether Docker's error is an HTTP 404 (`not found`).
fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(e, bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })
}

/// Whether Docker's error is an HTTP 409 (`already exists`).
fn is_conflict(e: &bollard::errors::Error) -> bool {
    matches!(e, bollard::errors::Error::DockerResponseServerError { status_code: 409, .. })
}

/// The network `name`, or None if Docker has none by that name.
pub async fn inspect(docker: &Docker, name: &str) -> Result<Option<NetworkInspect>> {
    match docker.inspect_network(name, None).await {
        Ok(n) => Ok(Some(n)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(source) => Err(Error::Docker { action: format!("inspecting network \"{name}\""), source }),
    }
}

fn container_count(n: &NetworkInspect) -> usize {
    n.containers.as_ref().map_or(0, HashMap::len)
}

/// Creates the network, adopts an existing one that fits, or replaces one
/// that does not fit when no container uses it.
pub async fn ensure(docker: &Docker, spec: &NetworkSpec) -> Result<()> {
    for _ in 0..3 {
        if let Some(found) = inspect(docker, &spec.name).await? {
            let Some(mismatch) = spec.mismatch(&found) else {
                tracing::debug!(network = %spec.name, "adopted existing Docker network");
                return Ok(());
            };
            if container_count(&found) > 0 {
                return Err(Error::Conflict { network: spec.name.clone(), mismatch });
            }
            tracing::warn!(network = %spec.name, %mismatch, "replacing unused Docker network that does not fit");
            remove(docker, &spec.name).await?;
        }
        match docker.create_network(spec.request()).await {
            Ok(_) => {
                tracing::info!(network = %spec.name, bridge = %spec.bridge, subnet = %spec.subnet, "created Docker network");
                return Ok(());
            }
            // Created by someone else meanwhile: look again.
            Err(e) if is_conflict(&e) => continue,
            Err(source) => {
                return Err(Error::Docker {
                    action: format!(
                        "creating network \"{}\" (subnet {}, bridge {}); if the subnet overlaps another Docker \
                         network, remove that network or give the node another pod CIDR",
                        spec.name, spec.subnet, spec.bridge
                    ),
                    source,
                });
            }
        }
    }
    Err(Error::Conflict { network: spec.name.clone(), mismatch: "keeps changing while being set up".into() })
}

/// Removes the network `name`; one that is gone already is fine.
pub async fn remove(docker: &Docker, name: &str) -> Result<()> {
    match docker.remove_network(name).await {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(source) => Err(Error::Docker { action: format!("removing network \"{name}\""), source }),
    }
}

/// Removes the network `name` unless containers use it; true if it is gone.
pub async fn remove_if_unused(docker: &Docker, name: &str) -> Result<bool> {
    let Some(found) = inspect(docker, name).await? else { return Ok(true) };
    let users = container_count(&found);
    if users > 0 {
        tracing::info!(network = name, containers = users, "Docker network still in use; kept");
        return Ok(false);
    }
    remove(docker, name).await?;
    Ok(true)
}

/// The names of rkube's pod networks on this host for `cluster`.
pub async fn cluster_networks(docker: &Docker, cluster: &Ipv4Cidr) -> Result<Vec<String>> {
    let label = format!("{LABEL_CLUSTER_CIDR}={cluster}");
    let filters = HashMap::from([("label".to_string(), vec![label])]);
    let options = bollard::query_parameters::ListNetworksOptions { filters: Some(filters) };
    let networks = docker
        .list_networks(Some(options))
        .await
        .map_err(|source| Error::Docker { action: "listing networks".into(), source })?;
    Ok(networks.into_iter().filter_map(|n| n.name).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_names_fit_the_kernel_limit_and_differ_per_node() {
        assert_eq!(bridge_name("node-1"), "rk-node-1");
        assert_eq!(bridge_name("abcdefghijk"), "rk-abcdefghijk");
        let long = bridge_name("worker-17.example.com");
        assert_eq!(long.len(), 15, "{long}");
        assert!(long.starts_with("rk-"));
        assert_ne!(long, bridge_name("worker-18.example.com"));
        assert_eq!(long, bridge_name("worker-17.example.com"), "stable");
        assert_eq!(bridge_name("Node_1").len(), 15, "names that are not plain are hashed");
    }

    #[test]
    fn network_is_a_bridge_on_the_pod_cidr_without_docker_masquerade() {
        let spec = NetworkSpec::new(
            "n1",
            "10.1.1.0/24".parse().unwrap(),
            Ipv4Addr::new(10, 1, 1, 1),
            &"10.1.0.0/16".parse().unwrap(),
        );
        let req = spec.request();
        assert_eq!(req.name, "rkube-n1");
        assert_eq!(req.driver.as_deref(), Some("bridge"));
        let ipam = &req.ipam.as_ref().unwrap().config.as_ref().unwrap()[0];
        assert_eq!((ipam.subnet.as_deref(), ipam.gateway.as_deref()), (Some("10.1.1.0/24"), Some("10.1.1.1")));
        let opts = req.options.as_ref().unwrap();
        assert_eq!(opts[OPT_MASQUERADE], "false");
        assert_eq!(opts[OPT_BRIDGE_NAME], "rk-n1");
        assert_eq!(req.labels.as_ref().unwrap()[LABEL_CLUSTER_CIDR], "10.1.0.0/16");
    }

    #[test]
    fn mismatch_explains_what_differs() {
        let spec = NetworkSpec::new(
            "n1",
            "10.1.1.0/24".parse().unwrap(),
            Ipv4Addr::new(10, 1, 1, 1),
            &"10.1.0.0/16".parse().unwrap(),
        );
        let req = spec.request();
        let fitting = NetworkInspect {
            name: Some(req.name.clone()),
            driver: req.driver.clone(),
            ipam: req.ipam.clone(),
            options: req.options.clone(),
            ..Default::default()
        };
        assert_eq!(spec.mismatch(&fitting), None);
        let mut other_subnet = fitting.clone();
        other_subnet.ipam.as_mut().unwrap().config.as_mut().unwrap()[0].subnet = Some("10.1.2.0/24".into());
        assert!(spec.mismatch(&other_subnet).unwrap().contains("not the pod CIDR 10.1.1.0/24"));
        let mut masquerading = fitting.clone();
        masquerading.options.as_mut().unwrap().remove(OPT_MASQUERADE);
        assert!(spec.mismatch(&masquerading).unwrap().contains("enable_ip_masquerade=false"));
    }
}
