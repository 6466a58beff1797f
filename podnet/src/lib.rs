//! rkube-podnet: the pod network of one node, as the kubelet sets it up
//! (flannel's job in the walkthrough, with flannel's host-gw backend).
//!
//! Every node gets a Docker bridge network `rkube-<node>` whose subnet is the
//! node's `spec.podCIDR` (allocated by rkube-controller-manager's node IPAM
//! controller from the cluster CIDR), so each pod gets a cluster-unique IP.
//! Pods reach pods on every node by IP and see each other's real address:
//! Docker's own masquerade is switched off for these networks, forwarding
//! between pod CIDRs is accepted before Docker's network isolation, and only
//! traffic from pods to outside the cluster CIDR is masqueraded. Nodes on
//! other hosts are reached through plain routes via their InternalIP.
//!
//! Start with [`PodNetwork::ensure`]; [`rules`] and [`routes`] hold the exact
//! host rules and routes, computed by pure functions; `docs/pod-network.md`
//! explains them and how to remove them by hand.

pub mod bridge;
pub mod command;
mod error;
pub mod routes;
pub mod rules;

pub use error::{Error, Result};

use bollard::Docker;
use rkube_api::cidr::Ipv4Cidr;
use std::net::{IpAddr, Ipv4Addr};

/// Another node of the cluster, as [`PodNetwork::sync_routes`] needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The node's name.
    pub node: String,
    /// The node's `spec.podCIDR`.
    pub pod_cidr: String,
    /// The node's InternalIP.
    pub node_ip: IpAddr,
}

/// One node's pod network on this host: a Docker bridge network on the
/// node's pod CIDR plus rkube's host rules. Several nodes (kubelets) on one
/// host each have their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNetwork {
    node: String,
    docker_network: String,
    bridge: String,
    pod_cidr: Ipv4Cidr,
    pod_cidr_text: String,
    cluster_cidr: Ipv4Cidr,
    cluster_cidr_text: String,
    gateway: Ipv4Addr,
}

/// The kernel switch for routing between interfaces (Docker turns it on too).
const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

async fn enable_ip_forwarding() -> Result<()> {
    let sysctl = |source| Error::Sysctl { path: IP_FORWARD.into(), source };
    if tokio::fs::read_to_string(IP_FORWARD).await.map_err(sysctl)?.trim() != "1" {
        tokio::fs::write(IP_FORWARD, "1\n").await.map_err(sysctl)?;
        tracing::info!("enabled IPv4 forwarding ({IP_FORWARD})");
    }
    Ok(())
}

impl PodNetwork {
    /// Checks the arguments and works out names and addresses, without
    /// touching the host.
    fn plan(node: &str, pod_cidr: &str, cluster_cidr: &str) -> Result<PodNetwork> {
        let invalid = |message: String| Error::Invalid { node: node.to_string(), message };
        let valid_name = !node.is_empty()
            && node.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && node.as_bytes()[0].is_ascii_alphanumeric();
        if !valid_name {
            return Err(invalid("the node name must be non-empty and consist of [a-zA-Z0-9_.-]".into()));
        }
        let pod: Ipv4Cidr = pod_cidr.parse().map_err(|e| invalid(format!("pod CIDR: {e}")))?;
        let cluster: Ipv4Cidr = cluster_cidr.parse().map_err(|e| invalid(format!("cluster CIDR: {e}")))?;
        if !cluster.contains_cidr(&pod) {
            return Err(invalid(format!("the pod CIDR {pod} is not inside the cluster CIDR {cluster}")));
        }
        let gateway = pod
            .first_host()
            .ok_or_else(|| invalid(format!("the pod CIDR {pod} is too small (a /30 or larger is needed)")))?;
        Ok(PodNetwork {
            node: node.to_string(),
            docker_network: bridge::network_name(node),
            bridge: bridge::bridge_name(node),
            pod_cidr_text: pod.to_string(),
            pod_cidr: pod,
            cluster_cidr_text: cluster.to_string(),
            cluster_cidr: cluster,
            gateway,
        })
    }

    /// Creates (or adopts) the Docker bridge network `rkube-<node>` with
    /// subnet = pod_cidr, gateway = first address, and the host rules below.
    /// Idempotent.
    ///
    /// The network has Docker's masquerade switched off
    /// (`com.docker.network.bridge.enable_ip_masquerade=false`) and a bridge
    /// named after the node ([`bridge::bridge_name`]). The host rules
    /// ([`rules::node_rules`]) accept forwarding between this pod CIDR and
    /// the cluster CIDR ahead of Docker's isolation chains, and masquerade
    /// this pod CIDR's traffic to destinations outside the cluster CIDR.
    /// IPv4 forwarding is switched on if it is off. Host bits in the CIDRs
    /// are cleared (`10.1.1.5/24` means `10.1.1.0/24`). Needs root.
    pub async fn ensure(docker: &Docker, node: &str, pod_cidr: &str, cluster_cidr: &str) -> Result<PodNetwork> {
        let net = Self::plan(node, pod_cidr, cluster_cidr)?;
        enable_ip_forwarding().await?;
        let spec = bridge::NetworkSpec::new(&net.node, net.pod_cidr, net.gateway, &net.cluster_cidr);
        bridge::ensure(docker, &spec).await?;
        // Another kubelet on this host tearing down its network may remove
        // the shared chains between our steps: start over (a few times,
        // pausing a little longer each time so that its teardown can end).
        let mut attempt = 1;
        while let Err(e) = net.install_rules().await {
            if attempt == 5 {
                return Err(e);
            }
            tracing::debug!(node = %net.node, error = %e, attempt, "installing rules failed; retrying");
            tokio::time::sleep(std::time::Duration::from_millis(100 * attempt)).await;
            attempt += 1;
        }
        tracing::info!(node = %net.node, network = %net.docker_network, pod_cidr = %net.pod_cidr, cluster_cidr = %net.cluster_cidr, "pod network ready");
        Ok(net)
    }

    /// rkube's chains (and jumps) and this node's rules, each added if missing.
    async fn install_rules(&self) -> Result<()> {
        for chain in rules::chains() {
            rules::ensure_chain(&chain).await?;
        }
        for rule in rules::node_rules(&self.node, &self.pod_cidr, &self.cluster_cidr) {
            rules::ensure_rule(&rule, rules::Position::Append).await?;
        }
        Ok(())
    }

    /// The node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The Docker network to attach the node's pods to: `rkube-<node>`.
    pub fn docker_network(&self) -> &str {
        &self.docker_network
    }

    /// The Linux bridge device of the network.
    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    /// The node's pod CIDR (normalised, e.g. `10.1.1.0/24`).
    pub fn pod_cidr(&self) -> &str {
        &self.pod_cidr_text
    }

    /// The cluster CIDR (normalised, e.g. `10.1.0.0/16`).
    pub fn cluster_cidr(&self) -> &str {
        &self.cluster_cidr_text
    }

    /// The bridge's address, the pods' default gateway: the pod CIDR's
    /// first address.
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    /// host-gw: routes to other nodes' pod CIDRs via their InternalIP
    /// (skipping nodes whose IP is local to this host).
    ///
    /// Runs `ip -4 route replace <podCIDR> via <nodeIP> proto 157` for each
    /// peer on another host whose route is missing or different, and
    /// `ip -4 route del` for rkube routes inside the cluster CIDR that no
    /// peer accounts for any more (see [`routes::plan_routes`]). Every
    /// command is tried; the error names each one that failed (a peer's
    /// InternalIP must be on a directly connected network, as with flannel's
    /// host-gw).
    pub async fn sync_routes(&self, peers: &[Peer]) -> Result<(), Error> {
        let local = routes::parse_addresses(&routes::list_addresses().run().await?.stdout);
        let existing = routes::parse_routes(&routes::list_routes().run().await?.stdout);
        let plan = routes::plan_routes(&self.node, &self.pod_cidr, &self.cluster_cidr, peers, &local, &existing);
        for (peer, why) in &plan.skipped {
            if !matches!(why, routes::Skip::Own | routes::Skip::Local) {
                tracing::warn!(node = %self.node, peer = %peer, reason = ?why, "no route to peer's pods");
            }
        }
        run_all(&plan.commands).await
    }

    /// Removes the network's rules (and the network if no container uses it).
    ///
    /// Deletes this node's rules; deletes rkube's chains and their jumps when
    /// no node on this host has rules left in them; removes the Docker
    /// network unless containers are attached to it; and, when no other pod
    /// network of the same cluster remains on this host, deletes rkube's
    /// routes inside the cluster CIDR.
    pub async fn teardown(self, docker: &Docker) -> Result<(), Error> {
        for rule in rules::node_rules(&self.node, &self.pod_cidr, &self.cluster_cidr) {
            rules::delete_rule(&rule).await?;
        }
        for chain in rules::chains() {
            rules::remove_chain_if_empty(&chain).await?;
        }
        let removed = bridge::remove_if_unused(docker, &self.docker_network).await?;
        let others = bridge::cluster_networks(docker, &self.cluster_cidr).await?;
        if others.iter().all(|n| *n == self.docker_network) {
            let existing = routes::parse_routes(&routes::list_routes().run().await?.stdout);
            run_all(&routes::removal_commands(&self.cluster_cidr, &existing)).await?;
        }
        tracing::info!(node = %self.node, network = %self.docker_network, network_removed = removed, "pod network torn down");
        Ok(())
    }
}

/// Runs every command; the error lists each failure.
async fn run_all(commands: &[command::HostCommand]) -> Result<()> {
    let mut failures = Vec::new();
    for c in commands {
        match c.run().await {
            Ok(_) => tracing::info!(command = %c, "route updated"),
            Err(e) => failures.push(e),
        }
    }
    match failures.len() {
        0 => Ok(()),
        1 => Err(failures.remove(0)),
        _ => Err(Error::Command {
            command: format!("{} route commands", failures.len()),
            status: "failed".into(),
            stderr: failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_derives_names_and_gateway_from_node_and_pod_cidr() {
        let net = PodNetwork::plan("n1", "10.1.1.5/24", "10.1.0.0/16").unwrap();
        assert_eq!(net.docker_network(), "rkube-n1");
        assert_eq!(net.bridge(), "rk-n1");
        assert_eq!(net.pod_cidr(), "10.1.1.0/24");
        assert_eq!(net.cluster_cidr(), "10.1.0.0/16");
        assert_eq!(net.gateway(), Ipv4Addr::new(10, 1, 1, 1));
    }

    #[test]
    fn plan_rejects_pod_cidrs_outside_the_cluster_or_too_small() {
        let err = PodNetwork::plan("n1", "10.2.1.0/24", "10.1.0.0/16").unwrap_err().to_string();
        assert_eq!(
            err,
            "pod network for node \"n1\": the pod CIDR 10.2.1.0/24 is not inside the cluster CIDR 10.1.0.0/16"
        );
        let err = PodNetwork::plan("n1", "10.1.1.0/31", "10.1.0.0/16").unwrap_err().to_string();
        assert!(err.contains("too small"), "{err}");
        let err = PodNetwork::plan("n1", "", "10.1.0.0/16").unwrap_err().to_string();
        assert!(err.contains("pod CIDR: \"\" is not a CIDR block"), "{err}");
        assert!(PodNetwork::plan("", "10.1.1.0/24", "10.1.0.0/16").is_err());
        assert!(PodNetwork::plan("a/b", "10.1.1.0/24", "10.1.0.0/16").is_err());
    }
}
