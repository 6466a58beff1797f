//! The garbage collector: deletes objects whose owners are gone and carries
//! out the deletion propagation the apiserver records as finalizers
//! (Kubernetes' `pkg/controller/garbagecollector`).
//!
//! It watches every kind that can be owned (see [`start`]) into an ownership
//! [`graph`] keyed by uid. Each change enqueues the uids it may affect, and
//! [`process`] decides, for one object:
//! - it is being deleted with the `orphan` finalizer: its dependents lose
//!   their owner reference to it, then the finalizer goes (`--cascade=orphan`);
//! - it is being deleted with the `foregroundDeletion` finalizer: its
//!   dependents are deleted (themselves in the foreground), and once none is
//!   left the finalizer goes and the apiserver removes the object
//!   (`--cascade=foreground`);
//! - every owner it names is gone (checked with a live read when the owner
//!   is not in the graph, and by uid, so a new object of the same name is
//!   no owner): it is deleted — background propagation, the default;
//! - an owner is being deleted in the foreground and the reference has
//!   `blockOwnerDeletion`: it is deleted in the foreground too.

pub mod graph;

use crate::controllers::pod_state::PodView;
use crate::controllers::{Controller, ControllerContext};
use graph::{FOREGROUND, Graph, Node, ORPHAN};
use k8s_openapi::Metadata;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, PersistentVolumeClaim, ReplicationController, Secret, Service, ServiceAccount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use rkube_api::resource::for_kind;
use rkube_client::controller::{Action, ReconcileError, spawn_workers};
use rkube_client::{ApiError, Client, DeleteParams, Event, Reason, WorkQueue};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};

/// The controller's name in `--controllers`.
pub const NAME: &str = "garbagecollector";

/// The registry entry.
pub const CONTROLLER: Controller = Controller {
    name: NAME,
    about: "deletes objects whose owners are gone; orphan and foreground deletion",
    enabled_by_default: true,
    check: |_| Ok(()),
    start,
};

/// The garbage collector's flags (kube-controller-manager's names).
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
#[command(next_help_heading = "Garbage collector")]
pub struct Flags {
    /// Objects processed at once.
    #[arg(long, env = "RKUBE_CONCURRENT_GC_SYNCS", default_value_t = 20)]
    pub concurrent_gc_syncs: usize,
}

/// Why processing an object failed (it is retried).
#[derive(Debug, thiserror::Error)]
#[error("{object}: {action}: {source}")]
pub struct Error {
    /// The object.
    object: String,
    /// What was being done.
    action: String,
    /// The apiserver's answer.
    #[source]
    source: ApiError,
}

impl ReconcileError for Error {
    fn is_race(&self) -> bool {
        self.source.reason == Reason::Conflict
    }
}

/// The collector's shared state.
pub struct Context {
    client: Client,
    graph: Mutex<Graph>,
}

impl Context {
    fn graph(&self) -> MutexGuard<'_, Graph> {
        self.graph.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Whether an owner exists, and whether it is being deleted in the foreground.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OwnerState {
    Absent,
    Present { foreground: bool },
}

/// Where `owner` (named by an object in `namespace`) lives and whether it
/// is there with the uid the reference names.
async fn owner_state(ctx: &Context, namespace: &str, owner: &OwnerReference) -> Result<OwnerState, ApiError> {
    if let Some(node) = ctx.graph().get(&owner.uid) {
        return Ok(OwnerState::Present { foreground: node.deleting && node.has_finalizer(FOREGROUND) });
    }
    let Ok(info) = for_kind(&owner.api_version, &owner.kind) else {
        // A kind this apiserver does not serve: never collect on its account.
        return Ok(OwnerState::Present { foreground: false });
    };
    let namespace = if info.namespaced { namespace } else { "" };
    match ctx.client.get(info, namespace, &owner.name).await {
        Ok(obj) => {
            let meta: serde_json::Value = serde_json::from_slice(&obj.json).unwrap_or_default();
            let meta = &meta["metadata"];
            if meta["uid"].as_str() != Some(owner.uid.as_str()) {
                return Ok(OwnerState::Absent);
            }
            let foreground = meta["deletionTimestamp"].is_string()
                && meta["finalizers"].as_array().is_some_and(|f| f.iter().any(|f| f == FOREGROUND));
            Ok(OwnerState::Present { foreground })
        }
        Err(e) if e.reason == Reason::NotFound => Ok(OwnerState::Absent),
        Err(e) => Err(e),
    }
}

/// Takes the object of `uid` one step toward what its owners and
/// finalizers ask; see the module docs.
pub async fn process(uid: String, ctx: Arc<Context>) -> Result<Action, Error> {
    let Some(node) = ctx.graph().get(&uid).cloned() else { return Ok(Action::AwaitChange) };
    let fail = |action: String| {
        let object = node.describe();
        move |source| Error { object, action, source }
    };
    if node.deleting && node.has_finalizer(ORPHAN) {
        for dep in dependents(&ctx, &uid) {
            let owners: Vec<&OwnerReference> = dep.owners.iter().filter(|r| r.uid != uid).collect();
            let patch = json!({"metadata": {"ownerReferences": owners, "resourceVersion": dep.resource_version}});
            tolerate(ctx.client.patch(dep.info, &dep.namespace, &dep.name, &patch, false).await)
                .map_err(fail(format!("orphaning {}", dep.describe())))?;
        }
        remove_finalizer(&ctx, &node, ORPHAN).await.map_err(fail("removing the orphan finalizer".into()))?;
        info!(object = node.describe(), "orphaned its dependents");
        return Ok(Action::AwaitChange);
    }
    if node.deleting && node.has_finalizer(FOREGROUND) {
        let deps = dependents(&ctx, &uid);
        if deps.is_empty() {
            remove_finalizer(&ctx, &node, FOREGROUND)
                .await
                .map_err(fail("removing the foreground finalizer".into()))?;
            info!(object = node.describe(), "dependents gone; deleted in the foreground");
        }
        for dep in deps.iter().filter(|d| !d.deleting) {
            let blocking = dep.owners.iter().any(|r| r.uid == uid && r.block_owner_deletion == Some(true));
            let policy = if blocking { "Foreground" } else { "Background" };
            delete(&ctx, dep, policy).await.map_err(fail(format!("deleting dependent {}", dep.describe())))?;
        }
        return Ok(Action::AwaitChange);
    }
    if node.owners.is_empty() || node.deleting {
        return Ok(Action::AwaitChange);
    }
    let mut states = Vec::with_capacity(node.owners.len());
    for owner in &node.owners {
        let state = owner_state(&ctx, &node.namespace, owner)
            .await
            .map_err(fail(format!("looking up owner {}", owner.name)))?;
        states.push((owner, state));
    }
    if states.iter().all(|(_, s)| *s == OwnerState::Absent) {
        debug!(object = node.describe(), "every owner is gone");
        delete(&ctx, &node, "Background").await.map_err(fail("deleting".into()))?;
        info!(object = node.describe(), "deleted: its owners are gone");
    } else if states
        .iter()
        .any(|(r, s)| *s == (OwnerState::Present { foreground: true }) && r.block_owner_deletion == Some(true))
        && states.iter().all(|(_, s)| *s != OwnerState::Present { foreground: false })
    {
        delete(&ctx, &node, "Foreground").await.map_err(fail("deleting in the foreground".into()))?;
    }
    Ok(Action::AwaitChange)
}

/// The dependents of `uid` the graph knows.
fn dependents(ctx: &Context, uid: &str) -> Vec<Node> {
    let graph = ctx.graph();
    graph.dependents_of(uid).iter().filter_map(|d| graph.get(d).cloned()).collect()
}

/// Deletes `node` (if it still has the uid the graph knows) with `policy`.
async fn delete(ctx: &Context, node: &Node, policy: &str) -> Result<(), ApiError> {
    let params =
        DeleteParams { uid: node.uid.clone(), propagation_policy: Some(policy.to_string()), ..Default::default() };
    tolerate(ctx.client.delete(node.info, &node.namespace, &node.name, &params).await).map(drop)
}

/// Removes `finalizer` from `node`, conditional on its resourceVersion.
async fn remove_finalizer(ctx: &Context, node: &Node, finalizer: &str) -> Result<(), ApiError> {
    let rest: Vec<&String> = node.finalizers.iter().filter(|f| *f != finalizer).collect();
    let patch = json!({"metadata": {"finalizers": rest, "resourceVersion": node.resource_version}});
    tolerate(ctx.client.patch(node.info, &node.namespace, &node.name, &patch, false).await).map(drop)
}

/// A write whose object is gone is done; a lost race (Conflict) comes back
/// through the watch.
fn tolerate<T>(result: Result<T, ApiError>) -> Result<Option<T>, ApiError> {
    match result {
        Ok(t) => Ok(Some(t)),
        Err(e) if matches!(e.reason, Reason::NotFound | Reason::Conflict) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Feeds `K`'s informer into the graph and the queue.
fn watch_kind<K>(
    ctx: &ControllerContext,
    context: Arc<Context>,
    queue: WorkQueue<String>,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) where
    K: k8s_openapi::Resource + Metadata<Ty = ObjectMeta> + Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    let informer = ctx.informers.get::<K>();
    let info = for_kind(K::API_VERSION, K::KIND).expect("every watched kind is served");
    let mut events = informer.subscribe();
    tracker.spawn(async move {
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => return,
                e = events.recv() => match e { Some(e) => e, None => return },
            };
            let affected = match event {
                Event::Applied(obj) => {
                    let meta = obj.metadata();
                    let uid = meta.uid.clone().unwrap_or_default();
                    context.graph().upsert(&uid, Node::of(info, meta))
                }
                Event::Deleted(obj) => context.graph().remove(obj.metadata().uid.as_deref().unwrap_or_default()),
                Event::Restarted => continue,
            };
            for uid in affected {
                queue.add(uid);
            }
        }
    });
}

/// Watches pods, the workload kinds, ConfigMaps, Secrets, Services,
/// Endpoints, ServiceAccounts and PersistentVolumeClaims into the graph.
fn start(ctx: &ControllerContext, tracker: &TaskTracker, shutdown: CancellationToken) -> Result<(), String> {
    let context = Arc::new(Context { client: ctx.client.clone(), graph: Mutex::new(Graph::default()) });
    let queue = WorkQueue::new();
    macro_rules! watch {
        ($($kind:ty),*) => {
            $(watch_kind::<$kind>(ctx, context.clone(), queue.clone(), tracker, shutdown.clone());)*
        };
    }
    watch!(
        PodView,
        ReplicationController,
        ReplicaSet,
        Deployment,
        DaemonSet,
        Job,
        ConfigMap,
        Secret,
        Service,
        Endpoints,
        ServiceAccount,
        PersistentVolumeClaim
    );
    let workers = ctx.flags.garbagecollector.concurrent_gc_syncs;
    spawn_workers(NAME, queue, workers, move |uid| process(uid, context.clone()), ctx.observer(), tracker, shutdown);
    info!(controller = NAME, "started");
    Ok(())
}
