//! The registry of controllers: every controller by name, so
//! `--controllers` can pick them, and what each needs to start.
//!
//! A controller lives in its own module (`controllers/<name>/`) and exports
//! one [`Controller`] entry. Its `start` spawns its tasks (reflectors,
//! workers) on the tracker it is given and returns at once; they end when the
//! token is cancelled (on shutdown, or when this instance stops leading).

pub mod daemonset;
pub mod deployment;
pub mod endpoint;
mod error;
pub mod garbagecollector;
pub mod horizontalpodautoscaler;
pub mod job;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod persistentvolume;
pub mod pod_state;
pub mod replicaset;
pub mod resourcequota;
pub mod rootcacertpublisher;
pub mod serviceaccount;
pub mod tainteviction;
pub mod template_hash;
pub mod ttlafterfinished;

pub use error::Error;

use crate::metrics::Metrics;
use rkube_client::controller::Observer;
use rkube_client::events::EventRecorder;
use rkube_client::{Client, SharedInformers};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Every controller's own flags, each group defined in its controller's module.
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub struct Flags {
    /// Node IPAM.
    #[command(flatten)]
    pub nodeipam: nodeipam::Flags,
    /// ReplicationController and ReplicaSet.
    #[command(flatten)]
    pub replicaset: replicaset::Flags,
    /// Deployment.
    #[command(flatten)]
    pub deployment: deployment::Flags,
    /// Garbage collector.
    #[command(flatten)]
    pub garbagecollector: garbagecollector::Flags,
    /// DaemonSet.
    #[command(flatten)]
    pub daemonset: daemonset::Flags,
    /// Job.
    #[command(flatten)]
    pub job: job::Flags,
    /// TTL after finished (Jobs).
    #[command(flatten)]
    pub ttlafterfinished: ttlafterfinished::Flags,
    /// HorizontalPodAutoscaler.
    #[command(flatten)]
    pub horizontalpodautoscaler: horizontalpodautoscaler::Flags,
    /// Endpoints and EndpointSlices.
    #[command(flatten)]
    pub endpoint: endpoint::Flags,
    /// Namespace.
    #[command(flatten)]
    pub namespace: namespace::Flags,
    /// Node lifecycle (and taint eviction).
    #[command(flatten)]
    pub nodelifecycle: nodelifecycle::Flags,
    /// ResourceQuota.
    #[command(flatten)]
    pub resourcequota: resourcequota::Flags,
    /// PersistentVolume binder.
    #[command(flatten)]
    pub persistentvolume: persistentvolume::Flags,
    /// Root CA certificate publisher.
    #[command(flatten)]
    pub rootcacertpublisher: rootcacertpublisher::Flags,
}

/// What every controller gets when it starts.
#[derive(Debug, Clone)]
pub struct ControllerContext {
    /// The apiserver.
    pub client: Client,
    /// The flags.
    pub flags: Arc<Flags>,
    /// Shared metrics.
    pub metrics: Arc<Metrics>,
    /// This process's identity (host name and a random suffix), for Events.
    pub identity: String,
    /// One watch and one cache per resource, shared by every controller
    /// of this leadership term.
    pub informers: SharedInformers,
}

impl ControllerContext {
    /// The worker loop's observer: reconcile counts and latencies, queue depth.
    pub fn observer(&self) -> Arc<dyn Observer> {
        self.metrics.clone()
    }

    /// An Event recorder for `component` (Kubernetes' names:
    /// `replicaset-controller`, `deployment-controller`...), writing until
    /// `shutdown`.
    pub fn recorder(&self, component: &str, tracker: &TaskTracker, shutdown: CancellationToken) -> Arc<EventRecorder> {
        EventRecorder::start(self.client.clone(), component, &self.identity, tracker, shutdown)
    }
}

/// Starts a controller's tasks on the tracker, until the token is cancelled.
/// An error says why the controller cannot run (a bad flag).
pub type StartFn = fn(&ControllerContext, &TaskTracker, CancellationToken) -> Result<(), String>;

/// One controller in the registry.
#[derive(Debug, Clone, Copy)]
pub struct Controller {
    /// Its name in `--controllers`.
    pub name: &'static str,
    /// One line on what it does.
    pub about: &'static str,
    /// Whether `*` includes it.
    pub enabled_by_default: bool,
    /// Checks its flags when the daemon starts: an error names the bad flag.
    pub check: fn(&Flags) -> Result<(), String>,
    /// How to start it.
    pub start: StartFn,
}

/// Every controller, by name.
pub const CONTROLLERS: &[Controller] = &[
    nodeipam::CONTROLLER,
    replicaset::REPLICATION,
    replicaset::REPLICASET,
    deployment::CONTROLLER,
    garbagecollector::CONTROLLER,
    daemonset::CONTROLLER,
    job::CONTROLLER,
    ttlafterfinished::CONTROLLER,
    horizontalpodautoscaler::CONTROLLER,
    endpoint::ENDPOINT,
    endpoint::ENDPOINTSLICE,
    nodelifecycle::CONTROLLER,
    tainteviction::CONTROLLER,
    namespace::CONTROLLER,
    serviceaccount::CONTROLLER,
    resourcequota::CONTROLLER,
    persistentvolume::CONTROLLER,
    rootcacertpublisher::CONTROLLER,
];

/// The controllers `--controllers` selects, Kubernetes-style: `*` enables
/// every on-by-default controller, `foo` enables `foo`, `-foo` disables it.
/// Unknown names are errors that list the known ones.
pub fn select(spec: &[String]) -> Result<Vec<&'static Controller>, String> {
    let known = || CONTROLLERS.iter().map(|c| c.name).collect::<Vec<_>>().join(", ");
    let mut star = false;
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for item in spec.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let (list, name) = match item.strip_prefix('-') {
            Some(name) => (&mut off, name),
            None => (&mut on, item),
        };
        if name == "*" {
            star = true;
            continue;
        }
        if !CONTROLLERS.iter().any(|c| c.name == name) {
            return Err(format!("--controllers: unknown controller \"{name}\" (known: {})", known()));
        }
        list.push(name);
    }
    Ok(CONTROLLERS
        .iter()
        .filter(|c| !off.contains(&c.name) && (on.contains(&c.name) || (star && c.enabled_by_default)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(spec: &[&str]) -> Result<Vec<&'static str>, String> {
        let spec: Vec<String> = spec.iter().map(|s| s.to_string()).collect();
        select(&spec).map(|cs| cs.iter().map(|c| c.name).collect())
    }

    #[test]
    fn star_enables_the_default_controllers_and_minus_disables() {
        let all = names(&["*"]).unwrap();
        assert_eq!(all, CONTROLLERS.iter().filter(|c| c.enabled_by_default).map(|c| c.name).collect::<Vec<_>>());
        assert!(all.contains(&"nodeipam") && all.contains(&"replication") && all.contains(&"replicaset"));
        assert_eq!(names(&["nodeipam"]).unwrap(), ["nodeipam"]);
        assert!(!names(&["*", "-nodeipam"]).unwrap().contains(&"nodeipam"));
        assert!(names(&[]).unwrap().is_empty());
    }

    #[test]
    fn unknown_controllers_are_rejected_with_the_known_ones() {
        assert_eq!(
            names(&["*", "nope"]).unwrap_err(),
            "--controllers: unknown controller \"nope\" (known: nodeipam, replication, replicaset, deployment, garbagecollector, daemonset, job, ttl-after-finished, horizontalpodautoscaling, endpoint, endpointslice, node-lifecycle, taint-eviction-controller, namespace, serviceaccount, resourcequota, persistentvolume-binder, root-ca-cert-publisher)"
        );
    }
}
