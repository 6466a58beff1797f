//! The pods bound to this node: watch → queue → sync, level-triggered.
//!
//! [`PodManager::run`] watches the pods with `spec.nodeName=<node>` into a
//! Store (through the process's [`SharedInformers`]), and queues a pod's key
//! whenever its object changes, a ConfigMap or Secret it uses changes
//! ([`crate::objects::requeue_users`]), its containers change in the runtime
//! (a 1 s relist, Kubernetes' PLEG), the node's network changes, and every
//! 10 s regardless (the safety net). Workers take keys
//! from a de-duplicating [`WorkQueue`], so one pod is never synced by two
//! workers at once; each sync (`pod::sync`) compares the desired pod with what
//! the runtime has, takes the steps [`lifecycle::plan`] names, and writes
//! the status ([`status::pod_status`]) when it changed.
//!
//! The same relist finds containers of pods that no longer exist here (and
//! pod directories nothing uses any more) and removes them.
//!
//! Static pods ([`crate::static_pods`]) are queued when their manifests
//! change and sync before the API answers (workers start at once; only
//! what needs the API — orphan detection, mirror pods — waits for the
//! first list). Probe workers ([`crate::probes`]) queue a pod when a
//! probe's result changes.

pub mod backoff;
pub mod lifecycle;
pub mod status;
mod sync;

use crate::Metrics;
use crate::node::NetworkState;
use crate::objects::{self, ObjectCache};
use crate::probes::Prober;
use crate::runtime::{ContainerKind, Phase, Runtime};
use crate::static_pods::StaticPods;
use crate::volumes::VolumeManager;
use k8s_openapi::api::core::v1::Pod;
use rkube_client::events::EventRecorder;
use rkube_client::reflector::Event;
use rkube_client::{Client, Informer, ListParams, ObjectKey, SharedInformers, WorkQueue};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use sync::Syncer;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

/// How often the runtime is relisted for container changes.
pub const RELIST_PERIOD: Duration = Duration::from_secs(1);
/// How often every pod is synced even without a change.
pub const RESYNC_PERIOD: Duration = Duration::from_secs(10);
/// Pods synced at once.
pub const WORKERS: usize = 16;

/// What the pod workers need to know about their node.
#[derive(Debug, Clone)]
pub struct NodeFacts {
    /// The node's name.
    pub name: String,
    /// Its IP (hostIP of its pods, podIP of host-network pods).
    pub ip: String,
    /// Allocatable CPU in millicores (the downward API's default limit).
    pub cpu_millis: i64,
    /// Allocatable memory in bytes.
    pub memory_bytes: i64,
    /// How its pods' resolv.conf is made.
    pub dns: Arc<crate::dns::DnsSettings>,
}

/// Runs the pods of one node.
pub struct PodManager<R: Runtime> {
    client: Client,
    informers: SharedInformers,
    objects: ObjectCache,
    node: NodeFacts,
    runtime: Arc<R>,
    volumes: VolumeManager,
    recorder: Arc<EventRecorder>,
    network: watch::Receiver<NetworkState>,
    metrics: Arc<Metrics>,
    manifest_dir: Option<PathBuf>,
}

impl<R: Runtime> std::fmt::Debug for PodManager<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodManager").field("node", &self.node.name).finish_non_exhaustive()
    }
}

impl<R: Runtime> PodManager<R> {
    /// A manager for the pods of `node`, watching through `informers` (and
    /// writing through their client).
    pub fn new(
        informers: SharedInformers,
        node: NodeFacts,
        runtime: Arc<R>,
        volumes: VolumeManager,
        recorder: Arc<EventRecorder>,
        network: watch::Receiver<NetworkState>,
        metrics: Arc<Metrics>,
    ) -> Self {
        PodManager {
            client: informers.client().clone(),
            objects: volumes.objects().clone(),
            informers,
            node,
            runtime,
            volumes,
            recorder,
            network,
            metrics,
            manifest_dir: None,
        }
    }

    /// Also runs the static pods described in `dir` (`--pod-manifest-path`).
    pub fn with_static_pods(mut self, dir: Option<PathBuf>) -> Self {
        self.manifest_dir = dir;
        self
    }

    /// Watches, syncs and cleans up until `shutdown`; every task it starts
    /// is tracked by `tracker`.
    pub async fn run(self, shutdown: CancellationToken, tracker: TaskTracker) {
        let params = ListParams::default().fields(&format!("spec.nodeName={}", self.node.name));
        let informer = self.informers.get_with::<Pod>(params);
        // Failed syncs retry from 200 ms up to 30 s (the resync comes every 10 s anyway).
        let queue: WorkQueue<ObjectKey> =
            WorkQueue::with_rate_limit(Duration::from_millis(200), Duration::from_secs(30));
        let static_pods = Arc::new(StaticPods::new(self.manifest_dir.clone(), &self.node.name));
        // Read before any sync, so no mirror pod is taken for an orphan.
        static_pods.scan().await;
        let prober = Prober::new(
            self.runtime.clone(),
            &self.node.ip,
            self.recorder.clone(),
            queue.clone(),
            tracker.clone(),
            shutdown.clone(),
        );
        let syncer = Arc::new(Syncer::new(&self, informer.store().clone(), static_pods.clone(), prober));

        let mut events = informer.subscribe();
        let (q, stop) = (queue.clone(), shutdown.clone());
        let store = informer.store().clone();
        tracker.spawn(async move {
            // Status-only changes (mostly the kubelet's own writes) need no sync.
            let mut seen: HashMap<ObjectKey, String> = HashMap::new();
            loop {
                // The shared informer outlives this node: stop on shutdown,
                // not when the event stream ends.
                let ev = tokio::select! {
                    _ = stop.cancelled() => return,
                    ev = events.recv() => match ev { Some(ev) => ev, None => return },
                };
                match ev {
                    Event::Applied(p) => {
                        let key = ObjectKey::of(p.as_ref());
                        let print = fingerprint(&p);
                        if seen.get(&key) != Some(&print) {
                            seen.insert(key.clone(), print);
                            q.add(key);
                        }
                    }
                    Event::Deleted(p) => {
                        let key = ObjectKey::of(p.as_ref());
                        seen.remove(&key);
                        q.add(key);
                    }
                    Event::Restarted => store.keys().into_iter().for_each(|k| q.add(k)),
                }
            }
        });

        objects::requeue_users(&self.objects, &informer, &queue, &tracker, &shutdown);

        let mut network = self.network.clone();
        let (q, store, stop, statics) =
            (queue.clone(), informer.store().clone(), shutdown.clone(), static_pods.clone());
        tracker.spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    changed = network.changed() => if changed.is_err() { return },
                }
                store.keys().into_iter().chain(statics.keys()).for_each(|k| q.add(k));
            }
        });

        let (q, s) = (queue.clone(), syncer.clone());
        let on_change = move |changes: crate::static_pods::Changes| {
            changes.cleanup.into_iter().for_each(|k| s.mark_for_cleanup(k));
            changes.changed.into_iter().for_each(|k| q.add(k));
        };
        tracker.spawn(static_pods.clone().run(on_change, shutdown.clone()));
        static_pods.keys().into_iter().for_each(|k| queue.add(k));

        for _ in 0..WORKERS {
            let (q, syncer, stop) = (queue.clone(), syncer.clone(), shutdown.clone());
            tracker.spawn(async move {
                while let Some(key) = q.get().await {
                    let result = tokio::select! {
                        _ = stop.cancelled() => break,
                        r = syncer.sync(&key) => r,
                    };
                    match result {
                        Ok(requeue) => {
                            q.forget(&key);
                            if let Some(after) = requeue {
                                q.add_after(key.clone(), after);
                            }
                        }
                        Err(e) => {
                            warn!(pod = %key, error = %e, "pod sync failed; retrying");
                            q.add_rate_limited(key.clone());
                        }
                    }
                    q.done(&key);
                }
            });
        }

        relist(&syncer, &queue, &informer, &shutdown).await;
        queue.shut_down();
    }
}

/// What of a pod the kubelet acts on: everything but its status and the
/// bookkeeping that changes with every write.
fn fingerprint(pod: &Pod) -> String {
    let m = &pod.metadata;
    let relevant =
        (&m.uid, &m.labels, &m.annotations, &m.deletion_timestamp, &m.deletion_grace_period_seconds, &pod.spec);
    serde_json::to_string(&relevant).expect("pod fields always serialize")
}

/// Kubernetes' PLEG plus housekeeping: relists the runtime every second and
/// queues pods whose containers changed; every [`RESYNC_PERIOD`] queues
/// every pod and, once the pods have been listed (housekeeping runs at
/// once then), cleans up after pods that are gone.
async fn relist<R: Runtime>(
    syncer: &Syncer<R>,
    queue: &WorkQueue<ObjectKey>,
    informer: &Informer<Pod>,
    shutdown: &CancellationToken,
) {
    let mut last: HashMap<String, (ObjectKey, Phase)> = HashMap::new();
    let mut ticker = tokio::time::interval(RELIST_PERIOD);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ticks_per_resync = (RESYNC_PERIOD.as_millis() / RELIST_PERIOD.as_millis()).max(1) as u64;
    let mut tick: u64 = 0;
    let mut listed = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        tick += 1;
        let synced = informer.store().is_synced();
        // Pod directories first, then containers, then the store: a uid
        // missing from the store after both were read is really gone.
        let first_listing = synced && !listed;
        let housekeeping = tick % ticks_per_resync == 1 || first_listing;
        let dirs = if housekeeping && synced { syncer.volumes().pod_dirs() } else { Vec::new() };
        let containers = match syncer.runtime().list_containers().await {
            Ok(c) => c,
            Err(e) => {
                debug!(error = %e, "relisting containers failed");
                continue;
            }
        };
        let mut now: HashMap<String, (ObjectKey, Phase)> = HashMap::new();
        for c in &containers {
            let key = ObjectKey::new(&c.meta.pod_namespace, &c.meta.pod_name);
            now.insert(c.id.clone(), (key, c.phase));
        }
        for (id, (key, phase)) in &now {
            if last.get(id).is_none_or(|(_, was)| was != phase) {
                queue.add(key.clone());
            }
        }
        for (id, (key, _)) in &last {
            if !now.contains_key(id) {
                queue.add(key.clone());
            }
        }
        syncer.metrics().set_running_containers(
            containers.iter().filter(|c| c.is_running() && c.meta.kind != ContainerKind::Sandbox).count(),
        );
        last = now;
        listed = synced;
        if !housekeeping {
            continue;
        }
        let statics = syncer.static_pods();
        statics.keys().into_iter().for_each(|k| queue.add(k));
        if !synced {
            continue;
        }
        if first_listing {
            info!(node = %syncer.node_name(), pods = informer.store().len(), "pods listed; syncing");
        }
        let store = informer.store();
        syncer.metrics().set_pods(store.len());
        let mut live: HashSet<String> = store.list().iter().filter_map(|p| p.metadata.uid.clone()).collect();
        live.extend(statics.uids());
        for c in containers.iter().filter(|c| !live.contains(&c.meta.pod_uid)) {
            let key = ObjectKey::new(&c.meta.pod_namespace, &c.meta.pod_name);
            syncer.mark_for_cleanup(key.clone());
            queue.add(key);
        }
        let in_runtime: HashSet<&str> = containers.iter().map(|c| c.meta.pod_uid.as_str()).collect();
        for uid in dirs.iter().filter(|u| !live.contains(*u) && !in_runtime.contains(u.as_str())) {
            match syncer.volumes().teardown(uid).await {
                Ok(()) => info!(uid = %uid, "removed the directory of a pod that is gone"),
                Err(e) => warn!(uid = %uid, error = %e, "could not remove an orphaned pod directory"),
            }
        }
        store.keys().into_iter().for_each(|k| queue.add(k));
    }
}
