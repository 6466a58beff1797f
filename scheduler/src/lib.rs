//! rkube-scheduler: places pods on nodes, as kube-scheduler does.
//!
//! It watches pods and nodes, keeps a [`cache`] of what each node offers and
//! what is placed on it, and for every pending pod whose `spec.schedulerName`
//! is its own runs the [`filters`] (cordon, taints, node selector and
//! affinity, host ports, resources), ranks the nodes that pass with the
//! [`scores`] (taint preferences, preferred affinity, spreading a
//! controller's pods, least and balanced allocation), and binds the pod to
//! the best. A pod no node fits stays Pending with `PodScheduled=False`,
//! reason Unschedulable and a message in Kubernetes' words
//! (`0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match
//! Pod's node affinity/selector.`), plus a FailedScheduling event; it is
//! tried again with back-off and as soon as a node or pod change may make
//! room.
//!
//! Start reading at [`scheduler`] (the watch handlers and the scheduling
//! loop), then [`algorithm`] (one decision), [`filters`] and [`scores`];
//! [`App`] below wires it up with the reflectors, leader election and the
//! health/metrics endpoint.
//!
//! # Running in-process (tests, benchmarks)
//!
//! `App::build(args)` then `tokio::spawn(app.run(token))`, with `--server`
//! pointing at an apiserver and `--healthz-bind-address 127.0.0.1:0`. A node
//! takes pods when its status has `allocatable` cpu, memory and pods (or
//! `capacity`) and a `Ready=True` condition, and it is neither cordoned nor
//! tainted; hollow nodes need nothing more. Pods need no node-side support:
//! the scheduler only binds them. `/metrics` on [`App::health_addr`] reports
//! `scheduler_pods_scheduled_total` and the `scheduler_pod_scheduling_sli_duration_seconds`
//! histogram (first seen to bound).

pub mod algorithm;
pub mod cache;
pub mod filters;
pub mod metrics;
pub mod pending;
pub mod pod_info;
pub mod resources;
pub mod scheduler;
pub mod scores;
pub mod view;

#[cfg(test)]
mod fixtures;

use anyhow::Context as _;
use clap::Parser;
use rkube_client::{Api, Client, Informer, LeaderElector, ListParams, Reflector};
use scheduler::{Config, Scheduler};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use view::{NodeView, PodView};

/// How long `run` waits for bindings and other writes in flight after shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Watch events handled under one lock of the scheduler state.
const EVENT_BATCH: usize = 512;
/// Page size of the initial lists (and re-lists), so that a large cluster is
/// never held in memory as one response.
const LIST_PAGE: i64 = 500;
/// The namespace of the leader election Lease.
const LEASE_NAMESPACE: &str = "kube-system";

/// Command-line flags.
#[derive(Debug, Clone, Parser)]
#[command(name = "rkube-scheduler", version, about = "rkube-scheduler: places pods on nodes.")]
pub struct Args {
    /// Where the apiserver is.
    #[command(flatten)]
    pub api: rkube_client::config::ServerArgs,
    /// Schedule pods whose spec.schedulerName is this (also the events' source).
    #[arg(long, env = "RKUBE_SCHEDULER_NAME", default_value = "default-scheduler")]
    pub scheduler_name: String,
    /// Where /healthz, /readyz and /metrics are served.
    #[arg(long, env = "RKUBE_HEALTHZ_BIND_ADDRESS", default_value = "127.0.0.1:10259")]
    pub healthz_bind_address: SocketAddr,
    /// Schedule only while holding the Lease in kube-system named after --scheduler-name.
    /// On by default, as kube-scheduler: a second scheduler is a standby.
    #[arg(long, env = "RKUBE_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub leader_elect: bool,
    /// Lease timings of leader election.
    #[command(flatten)]
    pub leader_election: rkube_client::leader::LeaderElectArgs,
    /// Percentage of nodes to find feasible before scoring (0: adaptive, as kube-scheduler).
    #[arg(long, env = "RKUBE_PERCENTAGE_OF_NODES_TO_SCORE", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=100))]
    pub percentage_of_nodes_to_score: u32,
    /// Bindings in flight at once.
    #[arg(long, env = "RKUBE_MAX_IN_FLIGHT_BINDS", default_value_t = 128)]
    pub max_in_flight_binds: usize,
    /// Log format: text or json.
    #[arg(long, env = "RKUBE_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

/// The built daemon.
#[derive(Debug)]
pub struct App {
    args: Args,
    client: Client,
    health: tokio::net::TcpListener,
    /// This instance's identity (Lease holder, events' reportingInstance).
    instance: String,
    /// With `--leader-elect`, the candidate for the Lease.
    elector: Option<LeaderElector>,
}

/// This instance's identity: host name plus a random suffix (as kube-scheduler's).
fn identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "rkube-scheduler".into());
    format!("{host}_{:016x}", fastrand::u64(..))
}

/// Feeds a subscription's events to `handle` in batches until `shutdown`;
/// `synced` turns true once the initial list has been handled.
async fn pump<K>(
    mut rx: mpsc::UnboundedReceiver<rkube_client::Event<K>>,
    synced: watch::Sender<bool>,
    shutdown: CancellationToken,
    handle: impl Fn(Vec<rkube_client::Event<K>>),
) {
    let mut batch = Vec::with_capacity(EVENT_BATCH);
    loop {
        let n = tokio::select! {
            _ = shutdown.cancelled() => return,
            n = rx.recv_many(&mut batch, EVENT_BATCH) => n,
        };
        if n == 0 {
            return;
        }
        let restarted = batch.iter().any(|e| matches!(e, rkube_client::Event::Restarted));
        handle(std::mem::replace(&mut batch, Vec::with_capacity(EVENT_BATCH)));
        if restarted {
            synced.send_replace(true);
        }
    }
}

impl App {
    /// Resolves the apiserver, checks the leader election settings and binds
    /// the health port.
    pub async fn build(args: Args) -> anyhow::Result<App> {
        let cfg = args.api.resolve()?;
        let client = Client::from_config(&cfg)?;
        let instance = identity();
        let elector = if args.leader_elect {
            let elector = LeaderElector::new(
                client.clone(),
                LEASE_NAMESPACE,
                &args.scheduler_name,
                &instance,
                args.leader_election.lease_duration,
                args.leader_election.renew_deadline,
                args.leader_election.retry_period,
            )
            .context("--leader-elect")?;
            Some(elector)
        } else {
            None
        };
        let health = rkube_client::daemon::bind_health(args.healthz_bind_address)
            .await
            .with_context(|| format!("binding --healthz-bind-address {}", args.healthz_bind_address))?;
        Ok(App { args, client, health, instance, elector })
    }

    /// The health listener's address.
    pub fn health_addr(&self) -> SocketAddr {
        self.health.local_addr().expect("a bound listener has an address")
    }

    /// Schedules until `shutdown`, then waits (up to a grace period) for
    /// bindings in flight and returns once every task has ended.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let App { args, client, health, instance, elector } = self;
        match client.version().await {
            Ok(v) => tracing::info!(server = %client.server(), version = %v["gitVersion"], "apiserver reachable"),
            Err(e) => tracing::warn!(server = %client.server(), error = %e, "apiserver not reachable yet"),
        }
        let tracker = TaskTracker::new();
        let stop = shutdown.child_token();

        // Pods that have not finished (bound ones to account for, pending ones to
        // schedule), and nodes.
        let mut unfinished = ListParams::default().fields("status.phase!=Succeeded,status.phase!=Failed");
        unfinished.limit = LIST_PAGE;
        let pod_reflector = Reflector::new(Api::<PodView>::all(client.clone()), unfinished);
        let pods: Informer<PodView> = pod_reflector.informer();
        tracker.spawn(pod_reflector.run(stop.clone()));
        let node_reflector =
            Reflector::new(Api::<NodeView>::all(client.clone()), ListParams { limit: LIST_PAGE, ..Default::default() });
        let nodes: Informer<NodeView> = node_reflector.informer();
        tracker.spawn(node_reflector.run(stop.clone()));

        let events = rkube_client::events::EventRecorder::start(
            client.clone(),
            &args.scheduler_name,
            &instance,
            &tracker,
            stop.clone(),
        );
        let config = Config {
            scheduler_name: args.scheduler_name.clone(),
            percentage_of_nodes_to_score: args.percentage_of_nodes_to_score,
            max_in_flight_binds: args.max_in_flight_binds,
        };
        let scheduler = Arc::new(Scheduler::new(config, client.clone(), pods.store().clone(), events, tracker.clone()));

        let (pods_synced_tx, mut pods_synced) = watch::channel(false);
        let (nodes_synced_tx, mut nodes_synced) = watch::channel(false);
        let s = scheduler.clone();
        tracker.spawn(pump(pods.subscribe(), pods_synced_tx, stop.clone(), move |b| s.handle_pod_events(b)));
        let s = scheduler.clone();
        tracker.spawn(pump(nodes.subscribe(), nodes_synced_tx, stop.clone(), move |b| s.handle_node_events(b)));

        // Leadership: always ours without --leader-elect.
        let (always_tx, always) = watch::channel(true);
        let leading = match elector {
            Some(elector) => {
                let leading = elector.leading();
                tracker.spawn(elector.run(stop.clone()));
                leading
            }
            None => always,
        };

        // Schedule once both caches hold a complete list.
        {
            let (scheduler, leading, stop) = (scheduler.clone(), leading.clone(), stop.clone());
            let name = args.scheduler_name.clone();
            tracker.spawn(async move {
                let synced =
                    async { pods_synced.wait_for(|s| *s).await.is_ok() && nodes_synced.wait_for(|s| *s).await.is_ok() };
                let synced = tokio::select! {
                    _ = stop.cancelled() => false,
                    s = synced => s,
                };
                if synced {
                    tracing::info!(scheduler = %name, "caches synced");
                    scheduler.run(leading, stop).await;
                }
            });
        }

        let metrics = {
            let (scheduler, leading) = (scheduler.clone(), leading.clone());
            move || scheduler.render_metrics(*leading.borrow())
        };
        // The health port is bound (since build) and served from here on.
        rkube_client::daemon::notify_ready();
        let served = rkube_client::daemon::serve_health(health, metrics, shutdown.clone()).await;
        stop.cancel();
        drop(always_tx);
        tracker.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait()).await.is_err() {
            tracing::warn!("tasks still running after {SHUTDOWN_GRACE:?}; exiting anyway");
        }
        served.context("serving /healthz and /metrics")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rkube_client::leader::{DEFAULT_LEASE_DURATION, DEFAULT_RENEW_DEADLINE, DEFAULT_RETRY_PERIOD};

    #[test]
    fn flags_default_like_kube_scheduler() {
        let args = Args::try_parse_from(["rkube-scheduler"]).expect("defaults parse");
        assert_eq!(args.scheduler_name, "default-scheduler");
        assert_eq!(args.healthz_bind_address, "127.0.0.1:10259".parse().expect("an address"));
        assert!(args.leader_elect);
        let off = Args::try_parse_from(["rkube-scheduler", "--leader-elect=false"]).expect("parses");
        assert!(!off.leader_elect);
        assert_eq!(args.leader_election.lease_duration, DEFAULT_LEASE_DURATION);
        assert_eq!(args.leader_election.renew_deadline, DEFAULT_RENEW_DEADLINE);
        assert_eq!(args.leader_election.retry_period, DEFAULT_RETRY_PERIOD);
        assert!(Args::try_parse_from(["rkube-scheduler", "--percentage-of-nodes-to-score", "101"]).is_err());
    }

    #[tokio::test]
    async fn build_refuses_inconsistent_leader_election_durations() {
        let args = Args::try_parse_from([
            "rkube-scheduler",
            "--server",
            "http://127.0.0.1:1",
            "--healthz-bind-address",
            "127.0.0.1:0",
            "--leader-elect",
            "--leader-elect-renew-deadline",
            "20s",
        ])
        .expect("flags parse");
        let err = App::build(args).await.expect_err("renew deadline beyond the lease duration");
        assert!(format!("{err:#}").contains("--leader-elect"), "{err:#}");
    }
}
