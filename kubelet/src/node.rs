//! The node's registration and heartbeat.
//!
//! [`NodeAgent::run`] registers the Node (addresses, labels, capacity,
//! nodeInfo; `spec.podCIDR` from `--pod-cidr` when given), then every 10 s
//! renews its Lease in `kube-node-lease` and checks its health: the runtime
//! answers, and the pod network is set up on the node's podCIDR (assigned
//! by the controller-manager's node IPAM controller, or by `--pod-cidr`).
//! The Node's conditions are written when they change and at least every
//! 60 s. What it learns about the network is published as a
//! [`NetworkState`] for the pod workers.

use crate::host::HostInfo;
use crate::runtime::{Peer, Runtime};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use rkube_client::backoff::Backoff;
use rkube_client::reflector::Event;
use rkube_client::{Api, ApiError, Client, Informer, Reason};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The namespace of node Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// How long a node Lease lasts without renewal.
pub const LEASE_DURATION_SECONDS: i32 = 40;
/// The kubelet's version, as the apiserver's.
pub const KUBELET_VERSION: &str = concat!("v1.33.0-rkube.", env!("CARGO_PKG_VERSION"));

/// What the node knows about its pod network, for the pod workers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkState {
    /// The node's podCIDR, once known.
    pub pod_cidr: Option<String>,
    /// Whether pods can get an IP.
    pub ready: bool,
    /// Why not, when not.
    pub message: String,
}

/// Everything the Node object says about this node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The node's name.
    pub name: String,
    /// Its InternalIP.
    pub node_ip: IpAddr,
    /// Labels besides the well-known ones.
    pub labels: BTreeMap<String, String>,
    /// `--pod-cidr`: set as `spec.podCIDR` if the Node has none.
    pub pod_cidr: Option<String>,
    /// The cluster CIDR the pod CIDRs come from.
    pub cluster_cidr: String,
    /// Pods the node takes at most.
    pub max_pods: u32,
    /// The port the kubelet serves on (`daemonEndpoints.kubeletEndpoint`).
    pub kubelet_port: u16,
    /// The host's facts.
    pub host: HostInfo,
    /// Between Lease renewals (and health checks).
    pub heartbeat_period: Duration,
    /// Longest time between status writes when nothing changes.
    pub status_period: Duration,
}

impl NodeConfig {
    /// Allocatable CPU in millicores (the whole host: nothing is reserved).
    pub fn cpu_millis(&self) -> i64 {
        i64::from(self.host.cpus) * 1000
    }

    /// Allocatable memory in bytes.
    pub fn memory_bytes(&self) -> i64 {
        i64::try_from(self.host.memory_bytes).unwrap_or(i64::MAX)
    }

    fn resources(&self) -> BTreeMap<String, Quantity> {
        BTreeMap::from([
            ("cpu".to_string(), Quantity(self.host.cpus.to_string())),
            ("memory".to_string(), Quantity(format!("{}Ki", self.host.memory_bytes / 1024))),
            ("pods".to_string(), Quantity(self.max_pods.to_string())),
        ])
    }

    /// The labels the node carries: the well-known ones, then `--node-labels`.
    pub fn all_labels(&self) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::from([
            ("kubernetes.io/hostname".to_string(), self.name.clone()),
            ("kubernetes.io/os".to_string(), self.host.operating_system.clone()),
            ("kubernetes.io/arch".to_string(), self.host.architecture.clone()),
            ("beta.kubernetes.io/os".to_string(), self.host.operating_system.clone()),
            ("beta.kubernetes.io/arch".to_string(), self.host.architecture.clone()),
        ]);
        labels.extend(self.labels.clone());
        labels
    }

    /// The status fields other than conditions.
    pub fn status(&self, runtime_version: &str) -> NodeStatus {
        let h = &self.host;
        NodeStatus {
            addresses: Some(vec![
                NodeAddress { type_: "InternalIP".into(), address: self.node_ip.to_string() },
                NodeAddress { type_: "Hostname".into(), address: self.name.clone() },
            ]),
            capacity: Some(self.resources()),
            allocatable: Some(self.resources()),
            daemon_endpoints: Some(NodeDaemonEndpoints {
                kubelet_endpoint: Some(DaemonEndpoint { port: i32::from(self.kubelet_port) }),
            }),
            node_info: Some(NodeSystemInfo {
                architecture: h.architecture.clone(),
                boot_id: h.boot_id.clone(),
                container_runtime_version: runtime_version.to_string(),
                kernel_version: h.kernel_version.clone(),
                kube_proxy_version: String::new(),
                kubelet_version: KUBELET_VERSION.into(),
                machine_id: h.machine_id.clone(),
                operating_system: h.operating_system.clone(),
                os_image: h.os_image.clone(),
                system_uuid: h.system_uuid.clone(),
                swap: None,
            }),
            ..Default::default()
        }
    }

    /// The Node to create at registration.
    pub fn node(&self) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                labels: Some(self.all_labels()),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                pod_cidr: self.pod_cidr.clone(),
                pod_cidrs: self.pod_cidr.clone().map(|c| vec![c]),
                ..Default::default()
            }),
            status: None,
        }
    }
}

/// The node's health as one heartbeat sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The runtime's version, or why it does not answer.
    pub runtime: Result<String, String>,
    /// The pod network.
    pub network: NetworkState,
}

/// The node conditions for `health`: Ready (`KubeletReady`, or
/// `KubeletNotReady` saying why) and the pressure conditions, all False.
/// Conditions whose status did not change keep their transition time.
pub fn conditions(health: &Health, old: &[NodeCondition], now: Timestamp) -> Vec<NodeCondition> {
    let (ready, reason, message) = match (&health.runtime, health.network.ready) {
        (Err(e), _) => (false, "KubeletNotReady", e.clone()),
        (Ok(_), false) => (false, "KubeletNotReady", format!("network not ready: {}", health.network.message)),
        (Ok(_), true) => (true, "KubeletReady", "kubelet is posting ready status".to_string()),
    };
    let list = [
        (
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available".to_string(),
        ),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure".to_string()),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available".to_string()),
        ("Ready", if ready { "True" } else { "False" }, reason, message),
    ];
    list.into_iter()
        .map(|(type_, status, reason, message)| {
            let prior = old.iter().find(|c| c.type_ == type_);
            let transition = match prior {
                Some(p) if p.status == status && p.last_transition_time.is_some() => p.last_transition_time.clone(),
                _ => Some(Time(now)),
            };
            NodeCondition {
                type_: type_.into(),
                status: status.into(),
                reason: Some(reason.into()),
                message: Some(message),
                last_heartbeat_time: Some(Time(now)),
                last_transition_time: transition,
            }
        })
        .collect()
}

/// What makes two condition lists differ for the "write on change" rule:
/// (type, status, reason, message) of each.
type Summary = Vec<(String, String, Option<String>, Option<String>)>;

fn summary(conditions: &[NodeCondition]) -> Summary {
    conditions.iter().map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone(), c.message.clone())).collect()
}

/// Registers the node and keeps its Lease and status fresh.
pub struct NodeAgent<R: Runtime> {
    client: Client,
    config: Arc<NodeConfig>,
    runtime: Arc<R>,
    network: watch::Sender<NetworkState>,
}

impl<R: Runtime> std::fmt::Debug for NodeAgent<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeAgent").field("node", &self.config.name).finish_non_exhaustive()
    }
}

impl<R: Runtime> NodeAgent<R> {
    /// An agent for the node `config` describes; the network state is published on `network`.
    pub fn new(client: Client, config: Arc<NodeConfig>, runtime: Arc<R>, network: watch::Sender<NetworkState>) -> Self {
        NodeAgent { client, config, runtime, network }
    }

    /// Registers, then heartbeats until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        let mut offline = false;
        let node = loop {
            match self.register().await {
                Ok(node) => break node,
                Err(e) => warn!(node = %self.config.name, error = %e, "registering the node failed; retrying"),
            }
            if !offline {
                // Static pods run without the apiserver: meanwhile they get
                // the pod network of --pod-cidr (or none is needed).
                offline = true;
                self.publish(self.network_state(self.config.pod_cidr.clone()).await);
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff.next_delay()) => {}
            }
        };
        info!(node = %self.config.name, ip = %self.config.node_ip, "node registered");
        // Hollow nodes each say it; the service manager takes the first.
        rkube_client::daemon::notify_ready();
        let mut heartbeat = Heartbeat { node_uid: node.metadata.uid.clone().unwrap_or_default(), ..Default::default() };
        loop {
            self.beat(&mut heartbeat).await;
            let wait = if self.network.borrow().pod_cidr.is_none() && self.runtime_needs_cidr() {
                // Pick up the podCIDR soon after the IPAM controller assigns it.
                Duration::from_secs(1).min(self.config.heartbeat_period)
            } else {
                self.config.heartbeat_period
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    fn runtime_needs_cidr(&self) -> bool {
        self.runtime.needs_pod_cidr()
    }

    async fn register(&self) -> Result<Node, ApiError> {
        let api: Api<Node> = Api::all(self.client.clone());
        let desired = self.config.node();
        for _ in 0..5 {
            match api.get_opt(&self.config.name).await? {
                None => match api.create(&desired).await {
                    Err(e) if e.reason == Reason::AlreadyExists => continue,
                    other => return other,
                },
                Some(mut existing) => {
                    let mut changed = false;
                    let labels = existing.metadata.labels.get_or_insert_with(Default::default);
                    for (k, v) in self.config.all_labels() {
                        if labels.get(&k) != Some(&v) {
                            labels.insert(k, v);
                            changed = true;
                        }
                    }
                    let spec = existing.spec.get_or_insert_with(Default::default);
                    match (&self.config.pod_cidr, spec.pod_cidr.as_deref().filter(|c| !c.is_empty())) {
                        (Some(want), None) => {
                            spec.pod_cidr = Some(want.clone());
                            spec.pod_cidrs = Some(vec![want.clone()]);
                            changed = true;
                        }
                        (Some(want), Some(have)) if want != have => {
                            warn!(node = %self.config.name, flag = %want, node_pod_cidr = %have, "--pod-cidr differs from the node's podCIDR; using the node's");
                        }
                        _ => {}
                    }
                    if !changed {
                        return Ok(existing);
                    }
                    match api.replace(&existing).await {
                        Err(e) if e.reason == Reason::Conflict => continue,
                        other => return other,
                    }
                }
            }
        }
        Err(ApiError::conflict("nodes", &self.config.name, "the node kept changing during registration"))
    }

    /// One heartbeat: renew the Lease, check health, write the status if due.
    async fn beat(&self, hb: &mut Heartbeat) {
        if let Err(e) = self.renew_lease(hb).await {
            warn!(node = %self.config.name, error = %e, "renewing the node lease failed");
            hb.lease = None;
        }
        let runtime = self.runtime.version().await.map_err(|e| e.to_string());
        if let Ok(v) = &runtime {
            hb.runtime_version.clone_from(v);
        }
        let cidr_unknown = self.network.borrow().pod_cidr.is_none();
        let due = hb.posted.as_ref().is_none_or(|(_, at)| at.elapsed() >= self.config.status_period);
        let node = if cidr_unknown || due || hb.posted.is_none() {
            match Api::<Node>::all(self.client.clone()).get(&self.config.name).await {
                Ok(n) => Some(n),
                // Deleted behind our back (e.g. by an operator): register again.
                Err(e) if e.reason == Reason::NotFound => match self.register().await {
                    Ok(n) => {
                        info!(node = %self.config.name, "node was deleted; registered it again");
                        hb.node_uid = n.metadata.uid.clone().unwrap_or_default();
                        hb.lease = None;
                        Some(n)
                    }
                    Err(e) => {
                        warn!(node = %self.config.name, error = %e, "registering the node again failed");
                        None
                    }
                },
                Err(e) => {
                    warn!(node = %self.config.name, error = %e, "reading the node failed");
                    None
                }
            }
        } else {
            None
        };
        let pod_cidr = node
            .as_ref()
            .and_then(|n| n.spec.as_ref())
            .and_then(|s| s.pod_cidr.clone())
            .filter(|c| !c.is_empty())
            .or_else(|| self.network.borrow().pod_cidr.clone());
        let network = self.network_state(pod_cidr).await;
        self.publish(network.clone());
        let health = Health { runtime, network };
        let old = node
            .as_ref()
            .and_then(|n| n.status.as_ref())
            .and_then(|s| s.conditions.clone())
            .unwrap_or_else(|| hb.conditions.clone());
        let conditions = conditions(&health, &old, Timestamp::now());
        let changed = hb.posted.as_ref().is_none_or(|(s, _)| *s != summary(&conditions));
        if !(changed || due) {
            return;
        }
        let mut status = self.config.status(&hb.runtime_version);
        status.conditions = Some(conditions.clone());
        let patch = serde_json::json!({ "status": status });
        match Api::<Node>::all(self.client.clone()).patch_status(&self.config.name, &patch).await {
            Ok(_) => {
                if changed {
                    let ready = conditions.iter().find(|c| c.type_ == "Ready");
                    info!(node = %self.config.name, ready = ?ready.map(|c| &c.status), reason = ?ready.and_then(|c| c.message.as_ref()), "node status");
                }
                hb.posted = Some((summary(&conditions), Instant::now()));
                hb.conditions = conditions;
            }
            Err(e) => {
                warn!(node = %self.config.name, error = %e, "writing the node status failed");
                // Read the node afresh next time (it may be gone).
                hb.posted = None;
            }
        }
    }

    /// Tells the pod workers about the network, if that is news.
    fn publish(&self, network: NetworkState) {
        self.network.send_if_modified(|current| {
            let changed = *current != network;
            if changed {
                info!(node = %self.config.name, pod_cidr = ?network.pod_cidr, ready = network.ready, message = %network.message, "pod network");
                *current = network;
            }
            changed
        });
    }

    async fn network_state(&self, pod_cidr: Option<String>) -> NetworkState {
        match pod_cidr {
            None if self.runtime_needs_cidr() => NetworkState {
                pod_cidr: None,
                ready: false,
                message:
                    "the node has no podCIDR yet (assigned by rkube-controller-manager's node IPAM, or --pod-cidr)"
                        .into(),
            },
            None => NetworkState { pod_cidr: None, ready: true, message: String::new() },
            Some(cidr) => match self.runtime.setup_network(&cidr, &self.config.cluster_cidr).await {
                Ok(()) => NetworkState { pod_cidr: Some(cidr), ready: true, message: String::new() },
                Err(e) => NetworkState { pod_cidr: Some(cidr), ready: false, message: e.to_string() },
            },
        }
    }

    async fn renew_lease(&self, hb: &mut Heartbeat) -> Result<(), ApiError> {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), LEASE_NAMESPACE);
        let now = MicroTime(Timestamp::now());
        let lease = match hb.lease.take() {
            Some(l) => Some(l),
            None => api.get_opt(&self.config.name).await?,
        };
        let renewed = match lease {
            Some(mut l) => {
                let spec = l.spec.get_or_insert_with(Default::default);
                spec.holder_identity = Some(self.config.name.clone());
                spec.lease_duration_seconds = Some(LEASE_DURATION_SECONDS);
                spec.renew_time = Some(now);
                api.replace(&l).await?
            }
            None => {
                let owner = (!hb.node_uid.is_empty()).then(|| {
                    vec![OwnerReference {
                        api_version: "v1".into(),
                        kind: "Node".into(),
                        name: self.config.name.clone(),
                        uid: hb.node_uid.clone(),
                        ..Default::default()
                    }]
                });
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.name.clone()),
                        namespace: Some(LEASE_NAMESPACE.into()),
                        owner_references: owner,
                        ..Default::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.config.name.clone()),
                        lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
                        renew_time: Some(now),
                        ..Default::default()
                    }),
                };
                api.create(&lease).await?
            }
        };
        hb.lease = Some(renewed);
        Ok(())
    }
}

/// What the heartbeat carries from one beat to the next.
#[derive(Debug, Default)]
struct Heartbeat {
    node_uid: String,
    lease: Option<Lease>,
    runtime_version: String,
    conditions: Vec<NodeCondition>,
    posted: Option<(Summary, Instant)>,
}

/// Keeps the routes to other nodes' pod subnets current (host-gw): on every
/// change in `informer` (every Node) and every 30 s.
pub async fn sync_routes<R: Runtime>(
    informer: Informer<Node>,
    node: String,
    runtime: Arc<R>,
    shutdown: CancellationToken,
) {
    let mut events = informer.subscribe();
    let mut last: Option<Vec<Peer>> = None;
    let mut ticker = tokio::time::interval(Duration::from_secs(30));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            ev = events.recv() => match ev {
                None => return,
                Some(Event::Applied(_) | Event::Deleted(_) | Event::Restarted) => {}
            },
            _ = ticker.tick() => last = None,
        }
        if !informer.store().is_synced() {
            continue;
        }
        let peers: Vec<Peer> = informer
            .store()
            .list()
            .iter()
            .filter(|n| n.metadata.name.as_deref() != Some(node.as_str()))
            .filter_map(|n| {
                let pod_cidr = n.spec.as_ref()?.pod_cidr.clone().filter(|c| !c.is_empty())?;
                let ip = n.status.as_ref()?.addresses.iter().flatten().find(|a| a.type_ == "InternalIP")?;
                Some(Peer { node: n.metadata.name.clone()?, pod_cidr, node_ip: ip.address.parse().ok()? })
            })
            .collect();
        if last.as_ref() == Some(&peers) {
            continue;
        }
        match runtime.sync_routes(&peers).await {
            Ok(()) => last = Some(peers),
            Err(e) => warn!(node = %node, error = %e, "syncing routes to other nodes failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn ready_network() -> NetworkState {
        NetworkState { pod_cidr: Some("10.1.1.0/24".into()), ready: true, message: String::new() }
    }

    fn ready(c: &[NodeCondition]) -> &NodeCondition {
        c.iter().find(|c| c.type_ == "Ready").unwrap()
    }

    #[test]
    fn a_healthy_node_is_ready_without_pressure() {
        let h = Health { runtime: Ok("docker://20.10.24".into()), network: ready_network() };
        let c = conditions(&h, &[], at(0));
        let r = ready(&c);
        assert_eq!((r.status.as_str(), r.reason.as_deref()), ("True", Some("KubeletReady")));
        assert_eq!(r.message.as_deref(), Some("kubelet is posting ready status"));
        for t in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
            assert_eq!(c.iter().find(|c| c.type_ == t).unwrap().status, "False");
        }
    }

    #[test]
    fn an_unreachable_runtime_or_missing_network_makes_the_node_not_ready() {
        let down = Health { runtime: Err("container runtime is down: refused".into()), network: ready_network() };
        let r = conditions(&down, &[], at(0));
        assert_eq!((ready(&r).status.as_str(), ready(&r).reason.as_deref()), ("False", Some("KubeletNotReady")));
        assert_eq!(ready(&r).message.as_deref(), Some("container runtime is down: refused"));
        let no_cidr = Health {
            runtime: Ok("docker://x".into()),
            network: NetworkState { pod_cidr: None, ready: false, message: "no podCIDR".into() },
        };
        let r = conditions(&no_cidr, &[], at(0));
        assert_eq!(ready(&r).message.as_deref(), Some("network not ready: no podCIDR"));
    }

    #[test]
    fn transition_times_move_only_when_the_status_changes() {
        let h = Health { runtime: Ok("docker://x".into()), network: ready_network() };
        let first = conditions(&h, &[], at(0));
        let again = conditions(&h, &first, at(30));
        assert_eq!(ready(&again).last_transition_time, Some(Time(at(0))));
        assert_eq!(ready(&again).last_heartbeat_time, Some(Time(at(30))));
        let down = Health { runtime: Err("down".into()), network: ready_network() };
        let flipped = conditions(&down, &again, at(40));
        assert_eq!(ready(&flipped).last_transition_time, Some(Time(at(40))));
    }

    fn config() -> NodeConfig {
        NodeConfig {
            name: "n1".into(),
            node_ip: "10.0.0.5".parse().unwrap(),
            labels: BTreeMap::from([("zone".to_string(), "a".to_string())]),
            pod_cidr: Some("10.1.3.0/24".into()),
            cluster_cidr: "10.1.0.0/16".into(),
            max_pods: 110,
            kubelet_port: 10248,
            host: HostInfo {
                hostname: "n1".into(),
                os_image: "Debian GNU/Linux 12 (bookworm)".into(),
                kernel_version: "6.1.0".into(),
                architecture: "amd64".into(),
                operating_system: "linux".into(),
                machine_id: "m".into(),
                system_uuid: String::new(),
                boot_id: "b".into(),
                cpus: 4,
                memory_bytes: 8 << 30,
            },
            heartbeat_period: Duration::from_secs(10),
            status_period: Duration::from_secs(60),
        }
    }

    #[test]
    fn the_node_object_carries_labels_addresses_capacity_and_info() {
        let c = config();
        let node = c.node();
        let labels = node.metadata.labels.unwrap();
        assert_eq!(labels["kubernetes.io/hostname"], "n1");
        assert_eq!(labels["kubernetes.io/arch"], "amd64");
        assert_eq!(labels["zone"], "a");
        assert_eq!(node.spec.unwrap().pod_cidr.as_deref(), Some("10.1.3.0/24"));
        let status = c.status("docker://20.10.24");
        let addresses = status.addresses.unwrap();
        assert_eq!((addresses[0].type_.as_str(), addresses[0].address.as_str()), ("InternalIP", "10.0.0.5"));
        let capacity = status.capacity.unwrap();
        assert_eq!(capacity["cpu"].0, "4");
        assert_eq!(capacity["memory"].0, "8388608Ki");
        assert_eq!(capacity["pods"].0, "110");
        let info = status.node_info.unwrap();
        assert_eq!(info.container_runtime_version, "docker://20.10.24");
        assert_eq!(info.kubelet_version, KUBELET_VERSION);
        assert_eq!(status.daemon_endpoints.unwrap().kubelet_endpoint.unwrap().port, 10248);
    }
}
