//! The node lifecycle controller: notices nodes whose kubelet has fallen
//! silent and taints nodes that are not Ready, as Kubernetes'
//! `pkg/controller/nodelifecycle` does. Evicting the pods of tainted nodes
//! is the [taint eviction controller](super::tainteviction)'s job.
//!
//! - **Health.** Every `--node-monitor-period` (5 s) each node is looked at
//!   ([`health::Probe`]): a renewed Lease in `kube-node-lease` or a new
//!   `lastHeartbeatTime` on its Ready condition counts as hearing from the
//!   kubelet. After `--node-monitor-grace-period` (40 s) of silence —
//!   `--node-startup-grace-period` (1 m) for a node that never posted Ready
//!   — its kubelet conditions turn Unknown (`NodeStatusUnknown`, "Kubelet
//!   stopped posting node status."), the `NodeNotReady` event is recorded
//!   and the Ready condition of its pods turns False.
//! - **NoSchedule taints** follow the conditions at once, on every node
//!   change ([`sync_condition_taints`]): `not-ready` (Ready False),
//!   `unreachable` (Ready Unknown), the pressure taints,
//!   `network-unavailable`, and `unschedulable` for cordoned nodes.
//! - **NoExecute taints** (`not-ready` / `unreachable`, with `timeAdded`)
//!   go on at a rate per zone ([`zones`]): `--node-eviction-rate` nodes a
//!   second, less or none when a zone is largely down, none at all when
//!   every node of the cluster is down. A node already tainted with one
//!   gets the other swapped in at once; a node Ready again loses both.

pub mod health;
pub mod zones;

use crate::controllers::pod_state::PodView;
use crate::controllers::{Controller, ControllerContext, Error};
use health::{
    Probe, excluded_from_disruption, grace_period, has_no_execute, ready_status, swap_no_execute, taints,
    unknown_conditions, with_condition_taints, without_no_execute, zone_key,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use rkube_api::scheduling::{TAINT_NOT_READY, TAINT_UNREACHABLE};
use rkube_client::controller::{Action, spawn_workers};
use rkube_client::events::EventRecorder;
use rkube_client::informers::{enqueue_all, forward};
use rkube_client::leader::parse_duration;
use rkube_client::{Api, ApiError, Client, ObjectKey, Reason, Store, WorkQueue};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};
use zones::{Rates, Tainter, ZoneState, zone_state};

/// The controller's name in `--controllers`.
pub const NAME: &str = "node-lifecycle";

/// The namespace of node Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// How often the nodes waiting for a `NoExecute` taint are let through
/// (Kubernetes' `NodeEvictionPeriod`).
const TAINTING_PERIOD: Duration = Duration::from_millis(100);

/// The registry entry.
pub const CONTROLLER: Controller = Controller {
    name: NAME,
    about: "marks nodes whose kubelet stopped posting Unknown and taints nodes that are not Ready",
    enabled_by_default: true,
    check,
    start,
};

/// The node lifecycle flags (kube-controller-manager's names).
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
#[command(next_help_heading = "Node lifecycle controller")]
pub struct Flags {
    /// How often node health is checked.
    #[arg(long, env = "RKUBE_NODE_MONITOR_PERIOD", default_value = "5s", value_parser = parse_duration)]
    pub node_monitor_period: Duration,
    /// How long a kubelet may go without renewing its Lease or posting its
    /// status before its node's conditions turn Unknown.
    #[arg(long, env = "RKUBE_NODE_MONITOR_GRACE_PERIOD", default_value = "40s", value_parser = parse_duration)]
    pub node_monitor_grace_period: Duration,
    /// The same for a node whose kubelet has not posted Ready yet.
    #[arg(long, env = "RKUBE_NODE_STARTUP_GRACE_PERIOD", default_value = "1m", value_parser = parse_duration)]
    pub node_startup_grace_period: Duration,
    /// Nodes a second tainted for eviction (NoExecute) in a healthy zone.
    #[arg(long, env = "RKUBE_NODE_EVICTION_RATE", default_value_t = 0.1)]
    pub node_eviction_rate: f32,
    /// Nodes a second tainted for eviction in an unhealthy zone larger than
    /// --large-cluster-size-threshold (smaller ones: none).
    #[arg(long, env = "RKUBE_SECONDARY_NODE_EVICTION_RATE", default_value_t = 0.01)]
    pub secondary_node_eviction_rate: f32,
    /// The share of not-Ready nodes (more than 2) that makes a zone unhealthy.
    #[arg(long, env = "RKUBE_UNHEALTHY_ZONE_THRESHOLD", default_value_t = 0.55)]
    pub unhealthy_zone_threshold: f32,
    /// Zones with more nodes keep evicting (at the secondary rate) when unhealthy.
    #[arg(long, env = "RKUBE_LARGE_CLUSTER_SIZE_THRESHOLD", default_value_t = 50)]
    pub large_cluster_size_threshold: usize,
}

fn check(flags: &crate::controllers::Flags) -> Result<(), String> {
    let f = &flags.nodelifecycle;
    if f.node_monitor_period.is_zero() {
        return Err("--node-monitor-period must be greater than 0".into());
    }
    if f.node_monitor_grace_period.is_zero() || f.node_startup_grace_period.is_zero() {
        return Err("--node-monitor-grace-period and --node-startup-grace-period must be greater than 0".into());
    }
    if f.node_eviction_rate < 0.0 || f.secondary_node_eviction_rate < 0.0 {
        return Err("--node-eviction-rate and --secondary-node-eviction-rate must not be negative".into());
    }
    if !(f.unhealthy_zone_threshold > 0.0 && f.unhealthy_zone_threshold <= 1.0) {
        return Err("--unhealthy-zone-threshold must be in (0, 1]".into());
    }
    Ok(())
}

/// Writes `node`'s taints as `f` computes them from the node, conditional
/// on its resourceVersion; on a conflict, reads the node again and retries.
/// Nothing is written when the taints do not change.
pub async fn update_taints(client: &Client, node: &Node, f: impl Fn(&Node) -> Vec<Taint>) -> Result<bool, ApiError> {
    let api = Api::<Node>::all(client.clone());
    let name = node.metadata.name.clone().unwrap_or_default();
    let mut current = node.clone();
    for attempt in 0..3 {
        let wanted = f(&current);
        if wanted.as_slice() == taints(&current) {
            return Ok(false);
        }
        let patch = json!({"metadata": {"resourceVersion": current.metadata.resource_version},
            "spec": {"taints": wanted}});
        match api.patch(&name, &patch).await {
            Ok(_) => return Ok(true),
            Err(e) if e.reason == Reason::Conflict && attempt < 2 => current = api.get(&name).await?,
            Err(e) => return Err(e),
        }
    }
    unreachable!("the last attempt returns")
}

/// The state of the `NoSchedule` workers.
pub struct Context {
    nodes: Store<Node>,
    client: Client,
}

/// Sets the node's `NoSchedule` taints as its conditions call for.
pub async fn sync_condition_taints(key: ObjectKey, ctx: Arc<Context>) -> Result<Action, Error> {
    let Some(node) = ctx.nodes.get(&key) else { return Ok(Action::AwaitChange) };
    if update_taints(&ctx.client, &node, with_condition_taints).await.map_err(Error::api(&key, "updating taints"))? {
        info!(controller = NAME, node = %key, "updated NoSchedule taints from its conditions");
    }
    Ok(Action::AwaitChange)
}

/// The health loop's state: what was last heard from each node, the zones'
/// states and their tainting queues.
struct Monitor {
    flags: Flags,
    client: Client,
    nodes: Store<Node>,
    leases: Store<Lease>,
    pods: Store<PodView>,
    recorder: Arc<EventRecorder>,
    probes: HashMap<String, Probe>,
    zone_states: HashMap<String, ZoneState>,
    tainters: HashMap<String, Tainter>,
    /// Nodes whose pods could not all be marked not Ready.
    retry_pods: HashSet<String>,
}

impl Monitor {
    fn rates(&self) -> Rates {
        Rates {
            healthy: self.flags.node_eviction_rate,
            secondary: self.flags.secondary_node_eviction_rate,
            large_cluster: self.flags.large_cluster_size_threshold,
        }
    }

    fn tainter(&mut self, zone: &str, now: Instant) -> &mut Tainter {
        let qps = f64::from(self.flags.node_eviction_rate);
        self.tainters.entry(zone.to_string()).or_insert_with(|| Tainter::new(qps, now))
    }

    /// One look at every node (Kubernetes' `monitorNodeHealth`).
    async fn monitor_pass(&mut self) {
        let now = Instant::now();
        let nodes = self.nodes.list();
        let names: HashSet<String> = nodes.iter().filter_map(|n| n.metadata.name.clone()).collect();
        self.probes.retain(|n, _| names.contains(n));
        self.retry_pods.retain(|n| names.contains(n));
        for tainter in self.tainters.values_mut() {
            tainter.retain(|n| names.contains(n));
        }
        let mut zone_ready: HashMap<String, Vec<Option<String>>> = HashMap::new();
        let mut seen = Vec::with_capacity(nodes.len());
        for mut node in nodes {
            let name = node.metadata.name.clone().unwrap_or_default();
            let lease = self.leases.get(&ObjectKey::new(LEASE_NAMESPACE, &name));
            let probe = Probe::observe(self.probes.get(&name), &node, lease.as_deref(), now);
            let grace = grace_period(&node, self.flags.node_monitor_grace_period, self.flags.node_startup_grace_period);
            let silent = probe.expired(grace, now);
            self.probes.insert(name.clone(), probe);
            let previous = ready_status(&node).map(str::to_string);
            if silent && let Some(conditions) = unknown_conditions(&node, Timestamp::now()) {
                let patch = json!({"metadata": {"resourceVersion": node.metadata.resource_version},
                    "status": {"conditions": conditions}});
                match Api::<Node>::all(self.client.clone()).patch_status(&name, &patch).await {
                    Ok(updated) => {
                        info!(controller = NAME, node = %name, silent_for = ?grace, "kubelet stopped posting node status; conditions Unknown");
                        node = Arc::new(updated);
                    }
                    Err(e) => {
                        warn!(controller = NAME, node = %name, error = %e, "marking the node's conditions Unknown failed; next pass");
                        continue;
                    }
                }
            }
            let current = ready_status(&node).map(str::to_string);
            let zone = zone_key(&node);
            self.tainter(&zone, now);
            if !excluded_from_disruption(&node) {
                zone_ready.entry(zone.clone()).or_default().push(current.clone());
            }
            if let Some(status) = current.as_deref() {
                self.taint_for_eviction(&node, &zone, status).await;
                let newly = status != "True" && previous.as_deref() == Some("True");
                if newly {
                    self.recorder.normal(&*node, "NodeNotReady", format!("Node {name} status is now: NodeNotReady"));
                }
                if status != "True" && (newly || self.retry_pods.contains(&name)) {
                    if self.mark_pods_not_ready(&name).await {
                        self.retry_pods.remove(&name);
                    } else {
                        self.retry_pods.insert(name.clone());
                    }
                }
            }
            seen.push(node);
        }
        self.handle_disruption(&zone_ready, &seen, now).await;
    }

    /// Kubernetes' `processTaintBaseEviction`: queue a not-Ready node for
    /// its `NoExecute` taint, swap the two taints at once when the node
    /// already carries the other, untaint a Ready node.
    async fn taint_for_eviction(&mut self, node: &Node, zone: &str, status: &str) {
        let (add, other) = match status {
            "False" => (TAINT_NOT_READY, TAINT_UNREACHABLE),
            "Unknown" => (TAINT_UNREACHABLE, TAINT_NOT_READY),
            _ => return self.mark_reachable(node, zone).await,
        };
        let name = node.metadata.name.as_deref().unwrap_or_default();
        if has_no_execute(node, other) {
            let swap = |n: &Node| swap_no_execute(taints(n), add, other, Timestamp::now());
            match update_taints(&self.client, node, swap).await {
                Ok(_) => info!(controller = NAME, node = %name, taint = add, "swapped NoExecute taint"),
                Err(e) => {
                    warn!(controller = NAME, node = %name, error = %e, "swapping NoExecute taints failed; next pass")
                }
            }
            return;
        }
        let tainter = self.tainter(zone, Instant::now());
        if !has_no_execute(node, add) {
            tainter.remove(name);
        }
        if tainter.add(name) {
            info!(controller = NAME, node = %name, ready = status, "node queued for its NoExecute taint");
        }
    }

    /// Removes the controller's `NoExecute` taints from `node` and forgets
    /// it in its zone's queue.
    async fn mark_reachable(&mut self, node: &Node, zone: &str) {
        let name = node.metadata.name.as_deref().unwrap_or_default();
        if let Some(t) = self.tainters.get_mut(zone) {
            t.remove(name);
        }
        if !(has_no_execute(node, TAINT_NOT_READY) || has_no_execute(node, TAINT_UNREACHABLE)) {
            return;
        }
        match update_taints(&self.client, node, |n| without_no_execute(taints(n))).await {
            Ok(_) => info!(controller = NAME, node = %name, "node is healthy again; removed its NoExecute taints"),
            Err(e) => warn!(controller = NAME, node = %name, error = %e, "removing NoExecute taints failed; next pass"),
        }
    }

    /// Turns the Ready condition of the pods on `node` False (Kubernetes'
    /// `MarkPodsNotReady`); whether every write succeeded.
    async fn mark_pods_not_ready(&self, node: &str) -> bool {
        let mut ok = true;
        let now = Time(Timestamp::now());
        for pod in self.pods.list() {
            if pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) != Some(node) {
                continue;
            }
            let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or_default();
            if !conditions.iter().any(|c| c.type_ == "Ready" && c.status != "False") {
                continue;
            }
            let key = ObjectKey::of(pod.as_ref());
            // Strategic: conditions merge by type, the others stay.
            let ready = json!({"type": "Ready", "status": "False", "lastTransitionTime": now});
            let patch = json!({"metadata": {"resourceVersion": pod.metadata.resource_version},
                "status": {"conditions": [ready]}});
            let api = Api::<Pod>::namespaced(self.client.clone(), &key.namespace);
            match api.patch_status_strategic(&key.name, &patch).await {
                Ok(_) => info!(controller = NAME, pod = %key, node, "marked pod not ready"),
                Err(e) if e.reason == Reason::NotFound => {}
                Err(e) => {
                    warn!(controller = NAME, pod = %key, node, error = %e, "marking the pod not ready failed");
                    ok = false;
                }
            }
        }
        ok
    }

    /// Zone states and rates from this pass's Ready statuses (Kubernetes'
    /// `handleDisruption`).
    async fn handle_disruption(
        &mut self,
        zone_ready: &HashMap<String, Vec<Option<String>>>,
        nodes: &[Arc<Node>],
        now: Instant,
    ) {
        let threshold = self.flags.unhealthy_zone_threshold;
        let mut new_states = HashMap::new();
        let mut all_full = true;
        for (zone, ready) in zone_ready {
            let (_, state) = zone_state(ready, threshold);
            all_full &= state == ZoneState::FullDisruption;
            new_states.insert(zone.clone(), state);
            self.zone_states.entry(zone.clone()).or_insert(ZoneState::Initial);
        }
        self.zone_states.retain(|z, _| zone_ready.contains_key(z));
        let all_were_full = self.zone_states.values().all(|s| *s == ZoneState::FullDisruption);
        if all_full && all_were_full {
            return;
        }
        if all_full {
            warn!(controller = NAME, "no node is Ready: entering master disruption mode, no evictions");
            for node in nodes {
                self.mark_reachable(node, &zone_key(node)).await;
            }
            for tainter in self.tainters.values_mut() {
                tainter.bucket.set_qps(0.0, now);
            }
            self.zone_states.values_mut().for_each(|s| *s = ZoneState::FullDisruption);
            return;
        }
        if all_were_full {
            info!(controller = NAME, "some nodes are Ready: leaving master disruption mode");
            // Every kubelet gets a fresh grace period.
            self.probes.values_mut().for_each(|p| p.at = now);
        }
        let rates = self.rates();
        let zones: Vec<String> = self.zone_states.keys().cloned().collect();
        for zone in zones {
            let new = new_states.get(&zone).copied().unwrap_or(ZoneState::Normal);
            if self.zone_states.get(&zone) == Some(&new) && !all_were_full {
                continue;
            }
            if !all_were_full {
                info!(controller = NAME, zone = %zone.replace('\0', ""), state = ?new, "zone state changed");
            }
            let size = zone_ready.get(&zone).map_or(0, Vec::len);
            let qps = rates.for_zone(new, size);
            self.tainter(&zone, now).bucket.set_qps(qps, now);
            self.zone_states.insert(zone, new);
        }
    }

    /// Lets the nodes through that the zones' rates allow, and taints them.
    async fn tainting_pass(&mut self) {
        let now = Instant::now();
        let mut work = Vec::new();
        for (zone, tainter) in &mut self.tainters {
            work.extend(tainter.take(now).into_iter().map(|n| (zone.clone(), n)));
        }
        for (zone, name) in work {
            let Some(node) = self.nodes.get(&ObjectKey::new("", &name)) else { continue };
            let (add, other) = match ready_status(&node) {
                Some("False") => (TAINT_NOT_READY, TAINT_UNREACHABLE),
                Some("Unknown") => (TAINT_UNREACHABLE, TAINT_NOT_READY),
                // Ready again meanwhile.
                _ => continue,
            };
            let swap = |n: &Node| swap_no_execute(taints(n), add, other, Timestamp::now());
            match update_taints(&self.client, &node, swap).await {
                Ok(true) => info!(controller = NAME, node = %name, taint = add, "tainted for eviction (NoExecute)"),
                Ok(false) => {}
                Err(e) => {
                    warn!(controller = NAME, node = %name, error = %e, "tainting the node failed; retrying");
                    self.tainter(&zone, now).retry(&name);
                }
            }
        }
    }

    async fn run(mut self, shutdown: CancellationToken) {
        let mut monitor = tokio::time::interval(self.flags.node_monitor_period);
        monitor.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut tainting = tokio::time::interval(TAINTING_PERIOD);
        tainting.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = monitor.tick() => self.monitor_pass().await,
                _ = tainting.tick() => self.tainting_pass().await,
            }
        }
    }
}

fn start(ctx: &ControllerContext, tracker: &TaskTracker, shutdown: CancellationToken) -> Result<(), String> {
    let flags = ctx.flags.nodelifecycle.clone();
    let nodes = ctx.informers.get::<Node>();
    let leases = ctx.informers.get::<Lease>();
    let pods = ctx.informers.get::<PodView>();
    let recorder = ctx.recorder("node-controller", tracker, shutdown.clone());
    let context = Arc::new(Context { nodes: nodes.store().clone(), client: ctx.client.clone() });
    let queue = WorkQueue::new();
    let (tracker2, observer, client) = (tracker.clone(), ctx.observer(), ctx.client.clone());
    tracker.spawn(async move {
        let synced = tokio::select! {
            _ = shutdown.cancelled() => return,
            synced = async {
                nodes.wait_until_synced().await && leases.wait_until_synced().await && pods.wait_until_synced().await
            } => synced,
        };
        if !synced {
            return;
        }
        let resync = enqueue_all(nodes.store().clone(), queue.clone());
        forward(&nodes, queue.clone(), &tracker2, shutdown.clone(), |n: &Node| vec![ObjectKey::of(n)], resync.clone());
        resync();
        let reconcile = move |key| sync_condition_taints(key, context.clone());
        spawn_workers(NAME, queue, 1, reconcile, observer, &tracker2, shutdown.clone());
        let monitor = Monitor {
            flags,
            client,
            nodes: nodes.store().clone(),
            leases: leases.store().clone(),
            pods: pods.store().clone(),
            recorder,
            probes: HashMap::new(),
            zone_states: HashMap::new(),
            tainters: HashMap::new(),
            retry_pods: HashSet::new(),
        };
        tracker2.spawn(monitor.run(shutdown));
        info!(controller = NAME, "started");
    });
    Ok(())
}
