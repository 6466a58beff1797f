//! Node IPAM: gives every node a subnet of the cluster CIDR as its
//! `spec.podCIDR` (and `spec.podCIDRs`), the range its pods' IPs come from
//! (like Kubernetes' `pkg/controller/nodeipam` with the range allocator).
//!
//! - On start (and after every re-list) the allocation map is rebuilt from
//!   the podCIDRs the nodes already have, before anything is allocated, so
//!   assignments survive restarts and no subnet is given out twice.
//! - A node without a podCIDR gets the next free subnet ([`cidrset`]),
//!   written with a merge patch. The apiserver refuses to change a podCIDR
//!   once set, so a lost race leaves the node's first CIDR in place; the
//!   controller then adopts it and frees its own pick.
//! - A deleted node's subnet is released, and nodes still waiting are
//!   queued again.
//! - When no subnet is left, the node gets a Warning Event
//!   `CIDRNotAvailable` and is retried with back-off (up to 30 s apart).
//!
//! Watch events only enqueue node names; [`reconcile`] does the work.

pub mod cidrset;

use crate::controllers::{Controller, ControllerContext};
use crate::metrics::Metrics;
use cidrset::CidrSet;
use clap::ArgAction;
use k8s_openapi::api::core::v1::Node;
use rkube_client::controller::{Action, spawn_workers};
use rkube_client::events::EventRecorder;
use rkube_client::{Api, ApiError, Event, ObjectKey, Reason, Store, WorkQueue};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

/// The controller's name in `--controllers`.
pub const NAME: &str = "nodeipam";

/// The registry entry.
pub const CONTROLLER: Controller = Controller {
    name: NAME,
    about: "allocates each node a podCIDR from --cluster-cidr",
    enabled_by_default: true,
    check,
    start,
};

/// The node IPAM flags (kube-controller-manager's names).
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
#[command(next_help_heading = "Node IPAM controller")]
pub struct Flags {
    /// The pod network: one subnet of it per node becomes the node's spec.podCIDR.
    #[arg(long, env = "RKUBE_CLUSTER_CIDR", default_value = "10.1.0.0/16")]
    pub cluster_cidr: String,
    /// The prefix length of each node's subnet of --cluster-cidr.
    #[arg(long, env = "RKUBE_NODE_CIDR_MASK_SIZE", default_value_t = 24)]
    pub node_cidr_mask_size: u8,
    /// Whether the nodeipam controller allocates podCIDRs to nodes.
    #[arg(long, env = "RKUBE_ALLOCATE_NODE_CIDRS", default_value_t = true, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub allocate_node_cidrs: bool,
}

/// Refuses a cluster CIDR or mask size that cannot be cut into node subnets.
fn check(flags: &crate::controllers::Flags) -> Result<(), String> {
    let f = &flags.nodeipam;
    if f.allocate_node_cidrs {
        CidrSet::new(&f.cluster_cidr, f.node_cidr_mask_size)?;
    }
    Ok(())
}

/// Workers reconciling nodes at once.
const WORKERS: usize = 2;
/// The longest wait between retries of a node that could not get a subnet.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);
/// The Event reason when the cluster CIDR is used up (Kubernetes' name).
pub const CIDR_NOT_AVAILABLE: &str = "CIDRNotAvailable";

/// Why a node could not be given a podCIDR (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Every subnet of the cluster CIDR is in use.
    #[error(
        "node \"{node}\": no free /{mask} left in cluster CIDR {cluster} (all {capacity} in use); delete unused nodes \
         or restart with a larger --cluster-cidr or --node-cidr-mask-size"
    )]
    CidrNotAvailable {
        /// The node waiting for a subnet.
        node: String,
        /// The cluster CIDR.
        cluster: String,
        /// The node subnets' prefix length.
        mask: u8,
        /// How many subnets there are.
        capacity: usize,
    },
    /// Writing the node failed.
    #[error("node \"{node}\": setting spec.podCIDR to {cidr}: {source}")]
    Api {
        /// The node.
        node: String,
        /// The subnet being written.
        cidr: String,
        /// The apiserver's error.
        #[source]
        source: ApiError,
    },
}

/// Which node holds which subnet, and the subnets' use.
#[derive(Debug)]
struct Allocations {
    set: CidrSet,
    /// Node name -> its subnet (recorded from the node, or picked and
    /// possibly not yet written).
    by_node: HashMap<String, String>,
    /// Subnet -> the node holding it.
    by_cidr: HashMap<String, String>,
}

impl Allocations {
    /// Records that `node` has `cidrs` (its podCIDRs); the first one inside
    /// the cluster CIDR counts. A subnet picked for the node earlier but
    /// never written is freed.
    fn record(&mut self, node: &str, cidrs: &[String]) {
        if cidrs.iter().any(|c| self.by_node.get(node) == Some(c)) {
            return;
        }
        for cidr in cidrs {
            match self.set.occupy(cidr) {
                Ok(()) => {
                    self.forget_node(node);
                    if let Some(other) = self.by_cidr.get(cidr).filter(|o| *o != node) {
                        warn!(node, other = %other, cidr, "two nodes have the same podCIDR; fix one of them by hand");
                    } else {
                        self.by_cidr.insert(cidr.clone(), node.to_string());
                    }
                    self.by_node.insert(node.to_string(), cidr.clone());
                    return;
                }
                Err(e) => debug!(node, cidr, reason = %e, "podCIDR not managed by this controller"),
            }
        }
    }

    /// Frees what `node` held (unless another node has the same subnet);
    /// returns the subnet.
    fn forget_node(&mut self, node: &str) -> Option<String> {
        let cidr = self.by_node.remove(node)?;
        if self.by_cidr.get(&cidr).is_some_and(|holder| holder == node) {
            match self.by_node.iter().find(|(_, c)| **c == cidr).map(|(n, _)| n.clone()) {
                Some(other) => {
                    self.by_cidr.insert(cidr.clone(), other);
                }
                None => {
                    self.by_cidr.remove(&cidr);
                    self.set.release(&cidr).expect("a subnet the set handed out or occupied is inside it");
                }
            }
        }
        Some(cidr)
    }

    /// The subnet for `node`: the one picked for it before, or the next
    /// free one; None when none is left.
    fn reserve(&mut self, node: &str) -> Option<String> {
        if let Some(cidr) = self.by_node.get(node) {
            return Some(cidr.clone());
        }
        let cidr = self.set.allocate_next()?.to_string();
        self.by_node.insert(node.to_string(), cidr.clone());
        self.by_cidr.insert(cidr.clone(), node.to_string());
        Some(cidr)
    }
}

/// What [`reconcile`] works with.
#[derive(Debug)]
pub struct Context {
    api: Api<Node>,
    nodes: Store<Node>,
    queue: WorkQueue<ObjectKey>,
    allocations: Mutex<Allocations>,
    recorder: Arc<EventRecorder>,
    metrics: Arc<Metrics>,
}

/// A node's podCIDRs (`spec.podCIDRs`, else `spec.podCIDR`).
fn pod_cidrs(node: &Node) -> Vec<String> {
    let spec = node.spec.as_ref();
    let cidrs: Vec<String> =
        spec.and_then(|s| s.pod_cidrs.clone()).unwrap_or_default().into_iter().filter(|c| !c.is_empty()).collect();
    if !cidrs.is_empty() {
        return cidrs;
    }
    spec.and_then(|s| s.pod_cidr.clone()).filter(|c| !c.is_empty()).into_iter().collect()
}

impl Context {
    fn allocations(&self) -> MutexGuard<'_, Allocations> {
        // Every method of Allocations leaves it consistent before it can panic.
        self.allocations.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish_usage(&self) {
        let (used, total) = {
            let a = self.allocations();
            (a.set.in_use(), a.set.capacity())
        };
        self.metrics.set_gauge("rkube_nodeipam_cidrs_used", "Node subnets of the cluster CIDR in use.", used as i64);
        self.metrics.set_gauge("rkube_nodeipam_cidrs_total", "Node subnets in the cluster CIDR.", total as i64);
    }

    /// Rebuilds the allocation map from the nodes in the store.
    fn rebuild(&self) {
        let nodes = self.nodes.list();
        let mut a = self.allocations();
        for node in &nodes {
            let name = node.metadata.name.as_deref().unwrap_or_default();
            a.record(name, &pod_cidrs(node));
        }
        info!(nodes = nodes.len(), subnets_in_use = a.set.in_use(), cluster_cidr = %a.set.cluster(), "allocation map rebuilt");
    }

    /// Queues every node still waiting for a subnet.
    fn requeue_waiting(&self) {
        for node in self.nodes.list().iter().filter(|n| pod_cidrs(n).is_empty()) {
            self.queue.add(ObjectKey::of(node.as_ref()));
        }
    }

    /// Queues every node in the store and every node the map knows.
    fn requeue_all(&self) {
        let known: Vec<String> = self.allocations().by_node.keys().cloned().collect();
        for name in known {
            self.queue.add(ObjectKey::new("", &name));
        }
        for key in self.nodes.keys() {
            self.queue.add(key);
        }
    }

    fn warn_exhausted(&self, node: &Node, err: &Error) {
        let name = node.metadata.name.as_deref().unwrap_or_default();
        let detail = match err {
            Error::CidrNotAvailable { cluster, mask, capacity, .. } => {
                format!("no free /{mask} left in cluster CIDR {cluster} (all {capacity} in use)")
            }
            other => other.to_string(),
        };
        let message = format!("Node {name} status is now: {CIDR_NOT_AVAILABLE}: {detail}");
        self.recorder.warning(node, CIDR_NOT_AVAILABLE, message);
    }
}

impl rkube_client::controller::ReconcileError for Error {}

/// Makes node `key` hold a podCIDR if it exists, or frees its subnet if it
/// is gone. Idempotent: a node that has a podCIDR is only recorded.
pub async fn reconcile(key: ObjectKey, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = key.name.as_str();
    let Some(node) = ctx.nodes.get(&key) else {
        let freed = ctx.allocations().forget_node(name);
        if let Some(cidr) = freed {
            info!(node = name, cidr, "released the podCIDR of a deleted node");
            ctx.publish_usage();
            ctx.requeue_waiting();
        }
        return Ok(Action::AwaitChange);
    };
    let existing = pod_cidrs(&node);
    if !existing.is_empty() {
        ctx.allocations().record(name, &existing);
        ctx.publish_usage();
        return Ok(Action::AwaitChange);
    }
    if node.metadata.deletion_timestamp.is_some() {
        return Ok(Action::AwaitChange);
    }
    let picked = ctx.allocations().reserve(name);
    ctx.publish_usage();
    let Some(cidr) = picked else {
        let err = {
            let a = ctx.allocations();
            Error::CidrNotAvailable {
                node: name.to_string(),
                cluster: a.set.cluster().to_string(),
                mask: a.set.mask(),
                capacity: a.set.capacity(),
            }
        };
        ctx.warn_exhausted(&node, &err);
        return Err(err);
    };
    let patch = serde_json::json!({ "spec": { "podCIDR": cidr, "podCIDRs": [cidr] } });
    match ctx.api.patch(name, &patch).await {
        Ok(_) => {
            info!(node = name, cidr, "allocated podCIDR");
            Ok(Action::AwaitChange)
        }
        Err(e) if e.reason == Reason::NotFound => {
            ctx.allocations().forget_node(name);
            ctx.publish_usage();
            Ok(Action::AwaitChange)
        }
        Err(e) if matches!(e.reason, Reason::Invalid | Reason::Forbidden | Reason::Conflict) => {
            // Someone else set a podCIDR meanwhile: adopt it, free ours.
            let api_err = |source| Error::Api { node: name.to_string(), cidr: cidr.clone(), source };
            match ctx.api.get_opt(name).await.map_err(api_err)? {
                Some(current) if !pod_cidrs(&current).is_empty() => {
                    ctx.allocations().record(name, &pod_cidrs(&current));
                    ctx.publish_usage();
                    Ok(Action::AwaitChange)
                }
                _ => Err(api_err(e)),
            }
        }
        Err(source) => Err(Error::Api { node: name.to_string(), cidr, source }),
    }
}

fn start(ctx: &ControllerContext, tracker: &TaskTracker, shutdown: CancellationToken) -> Result<(), String> {
    let settings = &ctx.flags.nodeipam;
    if !settings.allocate_node_cidrs {
        info!(controller = NAME, "--allocate-node-cidrs=false: not allocating podCIDRs");
        return Ok(());
    }
    let set = CidrSet::new(&settings.cluster_cidr, settings.node_cidr_mask_size)?;
    let informer = ctx.informers.get::<Node>();
    let context = Arc::new(Context {
        api: Api::all(ctx.client.clone()),
        nodes: informer.store().clone(),
        queue: WorkQueue::with_rate_limit(rkube_client::queue::DEFAULT_BASE_DELAY, MAX_RETRY_DELAY),
        allocations: Mutex::new(Allocations { set, by_node: HashMap::new(), by_cidr: HashMap::new() }),
        recorder: ctx.recorder("cidrAllocator", tracker, shutdown.clone()),
        metrics: ctx.metrics.clone(),
    });
    let (tracker2, observer) = (tracker.clone(), ctx.observer());
    tracker.spawn(async move {
        let synced = tokio::select! {
            _ = shutdown.cancelled() => return,
            synced = informer.wait_until_synced() => synced,
        };
        if !synced {
            return;
        }
        // Existing assignments first, so nothing is handed out twice.
        context.rebuild();
        context.publish_usage();
        let mut events = informer.subscribe();
        let ctx = context.clone();
        let reconcile = move |key| reconcile(key, ctx.clone());
        spawn_workers(NAME, context.queue.clone(), WORKERS, reconcile, observer, &tracker2, shutdown.clone());
        // Nodes deleted before the subscription started: release their subnets.
        context.requeue_all();
        info!(controller = NAME, cluster_cidr = %context.allocations().set.cluster(), "started");
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => return,
                event = events.recv() => event,
            };
            match event {
                Some(Event::Applied(node) | Event::Deleted(node)) => context.queue.add(ObjectKey::of(node.as_ref())),
                Some(Event::Restarted) => {
                    context.rebuild();
                    context.requeue_all();
                }
                None => return,
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allocations(cluster: &str, mask: u8) -> Allocations {
        Allocations { set: CidrSet::new(cluster, mask).unwrap(), by_node: HashMap::new(), by_cidr: HashMap::new() }
    }

    #[test]
    fn existing_assignments_are_kept_and_never_handed_out_again() {
        let mut a = allocations("10.1.0.0/22", 24);
        a.record("n1", &["10.1.0.0/24".into()]);
        a.record("n2", &["10.1.2.0/24".into()]);
        assert_eq!(a.reserve("n3").as_deref(), Some("10.1.1.0/24"));
        assert_eq!(a.reserve("n4").as_deref(), Some("10.1.3.0/24"));
        assert_eq!(a.reserve("n5"), None);
        assert_eq!(a.reserve("n3").as_deref(), Some("10.1.1.0/24"), "a node keeps its pick until written");
    }

    #[test]
    fn a_deleted_nodes_subnet_is_freed_for_the_next_node() {
        let mut a = allocations("10.1.0.0/23", 24);
        assert_eq!(a.reserve("n1").as_deref(), Some("10.1.0.0/24"));
        assert_eq!(a.reserve("n2").as_deref(), Some("10.1.1.0/24"));
        assert_eq!(a.reserve("n3"), None);
        assert_eq!(a.forget_node("n1").as_deref(), Some("10.1.0.0/24"));
        assert_eq!(a.reserve("n3").as_deref(), Some("10.1.0.0/24"));
    }

    #[test]
    fn recording_another_cidr_frees_the_unwritten_pick() {
        let mut a = allocations("10.1.0.0/23", 24);
        assert_eq!(a.reserve("n1").as_deref(), Some("10.1.0.0/24"));
        // Someone else wrote n1's podCIDR first.
        a.record("n1", &["10.1.1.0/24".into()]);
        assert_eq!(a.set.in_use(), 1);
        assert_eq!(a.reserve("n2").as_deref(), Some("10.1.0.0/24"));
    }

    #[test]
    fn a_cidr_shared_by_two_nodes_stays_used_until_both_are_gone() {
        for first_gone in ["n1", "n2"] {
            let mut a = allocations("10.1.0.0/23", 24);
            a.record("n1", &["10.1.0.0/24".into()]);
            a.record("n2", &["10.1.0.0/24".into()]);
            a.forget_node(first_gone);
            assert_eq!(a.set.in_use(), 1, "the other node still holds it");
            assert_eq!(a.reserve("n3").as_deref(), Some("10.1.1.0/24"));
            a.forget_node(if first_gone == "n1" { "n2" } else { "n1" });
            assert_eq!(a.set.in_use(), 1, "only n3's subnet is left");
        }
    }

    #[test]
    fn cidrs_outside_the_cluster_are_ignored() {
        let mut a = allocations("10.1.0.0/16", 24);
        a.record("n1", &["192.168.0.0/24".into()]);
        a.record("n2", &["fd00::/64".into(), "10.1.7.0/24".into()]);
        assert_eq!(a.set.in_use(), 1);
        assert_eq!(a.by_node.get("n2").map(String::as_str), Some("10.1.7.0/24"));
        assert!(!a.by_node.contains_key("n1"));
    }

    #[test]
    fn pod_cidrs_prefers_the_list_and_falls_back_to_the_single_field() {
        let mut node = Node::default();
        assert!(pod_cidrs(&node).is_empty());
        node.spec =
            Some(k8s_openapi::api::core::v1::NodeSpec { pod_cidr: Some("10.1.1.0/24".into()), ..Default::default() });
        assert_eq!(pod_cidrs(&node), ["10.1.1.0/24"]);
        node.spec.as_mut().unwrap().pod_cidrs = Some(vec!["10.1.2.0/24".into()]);
        assert_eq!(pod_cidrs(&node), ["10.1.2.0/24"]);
    }
}
