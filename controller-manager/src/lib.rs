//! rkube-controller-manager: runs the cluster's controllers.
//!
//! [`App::build`] resolves the apiserver, checks the flags and binds the
//! health port; [`App::run`] campaigns for the `kube-system/rkube-controller-manager`
//! Lease (unless `--leader-elect=false`) and, while it leads, runs the
//! controllers `--controllers` selects from the registry in
//! [`controllers`]. Each controller follows the same flow: shared informers
//! ([`rkube_client::SharedInformers`]: one watch per resource for the whole
//! process) fill Stores, watch events enqueue keys, and workers
//! ([`rkube_client::controller::worker`]) call the controller's
//! `reconcile(key, ctx)`. Start reading at [`controllers::replicaset`].

pub mod controllers;
pub mod metrics;

use anyhow::Context as _;
use clap::{ArgAction, Parser};
use controllers::{Controller, ControllerContext};
use metrics::Metrics;
use rkube_client::{Client, LeaderElector, SharedInformers};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// The Lease the instances campaign for, in `kube-system`.
pub const LEASE_NAME: &str = "rkube-controller-manager";
/// The namespace of the Lease.
pub const LEASE_NAMESPACE: &str = "kube-system";
/// How long stopping controllers may take before `run` gives up waiting.
const GRACE_PERIOD: Duration = Duration::from_secs(10);

/// Command-line flags; each can also be set through the environment
/// variable named in its help.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "rkube-controller-manager",
    version,
    about = "rkube-controller-manager: runs the cluster's controllers."
)]
pub struct Args {
    /// Where the apiserver is.
    #[command(flatten)]
    pub api: rkube_client::config::ServerArgs,
    /// Each controller's flags.
    #[command(flatten)]
    pub flags: controllers::Flags,
    /// Controllers to run: `*` for every default controller, `name` to
    /// enable one, `-name` to disable one (comma-separated).
    #[arg(long, env = "RKUBE_CONTROLLERS", value_delimiter = ',', default_value = "*")]
    pub controllers: Vec<String>,
    /// Run the controllers only while holding the Lease kube-system/rkube-controller-manager,
    /// so that one of several instances is active.
    #[arg(long, env = "RKUBE_LEADER_ELECT", default_value_t = true, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub leader_elect: bool,
    /// Lease timings of leader election.
    #[command(flatten)]
    pub leader_election: rkube_client::leader::LeaderElectArgs,
    /// Where /healthz, /readyz and /metrics are served.
    #[arg(long, env = "RKUBE_HEALTHZ_BIND_ADDRESS", default_value = "127.0.0.1:10257")]
    pub healthz_bind_address: SocketAddr,
    /// Log format: text or json.
    #[arg(long, env = "RKUBE_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

/// This process's identity for the Lease and Events: `<host>_<uuid>`.
fn identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "rkube-controller-manager".into());
    format!("{host}_{}", uuid::Uuid::new_v4())
}

/// The built daemon.
#[derive(Debug)]
pub struct App {
    client: Client,
    health: tokio::net::TcpListener,
    controllers: Vec<&'static Controller>,
    flags: Arc<controllers::Flags>,
    metrics: Arc<Metrics>,
    identity: String,
    elector: Option<LeaderElector>,
}

impl App {
    /// Resolves the apiserver, checks the flags and binds the health port.
    pub async fn build(args: Args) -> anyhow::Result<App> {
        let cfg = args.api.resolve()?;
        let client = Client::from_config(&cfg)?;
        let controllers = controllers::select(&args.controllers).map_err(anyhow::Error::msg)?;
        for c in &controllers {
            (c.check)(&args.flags).map_err(anyhow::Error::msg)?;
        }
        let identity = identity();
        let elector = if args.leader_elect {
            let elector = LeaderElector::new(
                client.clone(),
                LEASE_NAMESPACE,
                LEASE_NAME,
                &identity,
                args.leader_election.lease_duration,
                args.leader_election.renew_deadline,
                args.leader_election.retry_period,
            )
            .map_err(|e| anyhow::anyhow!("--leader-elect-*: {e}"))?;
            Some(elector)
        } else {
            None
        };
        let health = rkube_client::daemon::bind_health(args.healthz_bind_address)
            .await
            .with_context(|| format!("binding --healthz-bind-address {}", args.healthz_bind_address))?;
        let (flags, metrics) = (Arc::new(args.flags), Arc::new(Metrics::default()));
        Ok(App { client, health, controllers, flags, metrics, identity, elector })
    }

    /// The health listener's address.
    pub fn health_addr(&self) -> SocketAddr {
        self.health.local_addr().expect("a bound listener has an address")
    }

    /// This instance's identity (the Lease holder when it leads).
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Serves health endpoints and runs the controllers (while leading)
    /// until `shutdown`; returns once every task has ended (or the grace
    /// period is over).
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let App { client, health, controllers, flags, metrics, identity, elector } = self;
        match client.version().await {
            Ok(v) => info!(server = %client.server(), version = %v["gitVersion"], "apiserver reachable"),
            Err(e) => warn!(server = %client.server(), error = %e, "apiserver not reachable yet"),
        }
        let names: Vec<&str> = controllers.iter().map(|c| c.name).collect();
        info!(controllers = ?names, identity = %identity, "starting");
        let m = metrics.clone();
        let health_task =
            tokio::spawn(rkube_client::daemon::serve_health(health, move || m.render(), shutdown.clone()));
        // The health port is bound and serving, the flags are checked: systemd may start what is After us.
        rkube_client::daemon::notify_ready();
        let term = Term { client, flags, metrics, identity };

        match elector {
            None => {
                let running = term.start(&controllers, &shutdown)?;
                shutdown.cancelled().await;
                running.stop().await;
            }
            Some(elector) => {
                let mut leading = elector.leading();
                // Released only once the controllers have stopped.
                let release = CancellationToken::new();
                let elector_task = tokio::spawn(elector.run(release.clone()));
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        changed = leading.wait_for(|l| *l) => if changed.is_err() { break },
                    }
                    let running = term.start(&controllers, &shutdown)?;
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = leading.wait_for(|l| !*l) => {}
                    }
                    running.stop().await;
                    if shutdown.is_cancelled() {
                        break;
                    }
                    warn!("lost the lease; controllers stopped, campaigning again");
                }
                release.cancel();
                if tokio::time::timeout(GRACE_PERIOD, elector_task).await.is_err() {
                    warn!("releasing the lease did not finish in time");
                }
            }
        }
        health_task.await.context("health server task")?.context("health server")?;
        Ok(())
    }
}

/// Controllers running on one tracker until their token is cancelled.
struct Running {
    tracker: TaskTracker,
    token: CancellationToken,
    metrics: Arc<Metrics>,
}

impl Running {
    /// Stops the controllers and waits for their tasks (at most the grace period).
    async fn stop(self) {
        self.token.cancel();
        self.tracker.close();
        if tokio::time::timeout(GRACE_PERIOD, self.tracker.wait()).await.is_err() {
            warn!("controllers did not stop within {GRACE_PERIOD:?}");
        }
        self.metrics.set_leading(false);
    }
}

/// What each leadership term starts the controllers with.
struct Term {
    client: Client,
    flags: Arc<controllers::Flags>,
    metrics: Arc<Metrics>,
    identity: String,
}

impl Term {
    /// Starts the controllers with fresh shared informers (a new term must
    /// not trust caches from before it lost the lease).
    fn start(&self, controllers: &[&'static Controller], shutdown: &CancellationToken) -> anyhow::Result<Running> {
        let (tracker, token) = (TaskTracker::new(), shutdown.child_token());
        let context = ControllerContext {
            client: self.client.clone(),
            flags: self.flags.clone(),
            metrics: self.metrics.clone(),
            identity: self.identity.clone(),
            informers: SharedInformers::new(self.client.clone(), tracker.clone(), token.clone()),
        };
        self.metrics.set_leading(true);
        for c in controllers {
            (c.start)(&context, &tracker, token.clone()).map_err(|e| anyhow::anyhow!("controller {}: {e}", c.name))?;
            info!(controller = c.name, "controller started");
        }
        Ok(Running { tracker, token, metrics: self.metrics.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_default_like_kube_controller_manager() {
        let args = Args::try_parse_from(["rkube-controller-manager"]).unwrap();
        assert_eq!(args.flags.nodeipam.cluster_cidr, "10.1.0.0/16");
        assert_eq!(args.flags.nodeipam.node_cidr_mask_size, 24);
        assert!(args.flags.nodeipam.allocate_node_cidrs && args.leader_elect);
        assert_eq!(args.controllers, ["*"]);
        assert_eq!(args.healthz_bind_address.to_string(), "127.0.0.1:10257");
        let args = Args::try_parse_from([
            "rkube-controller-manager",
            "--leader-elect=false",
            "--allocate-node-cidrs",
            "false",
            "--controllers=*,-nodeipam",
        ])
        .unwrap();
        assert!(!args.leader_elect && !args.flags.nodeipam.allocate_node_cidrs);
        assert_eq!(args.controllers, ["*", "-nodeipam"]);
    }

    #[tokio::test]
    async fn build_rejects_bad_flags_naming_them() {
        let build = |extra: &[&str]| {
            let mut argv =
                vec!["rkube-controller-manager", "--server=http://127.0.0.1:1", "--healthz-bind-address=127.0.0.1:0"];
            argv.extend_from_slice(extra);
            App::build(Args::try_parse_from(argv).unwrap())
        };
        let err = build(&["--cluster-cidr=10.1.0.0"]).await.unwrap_err().to_string();
        assert!(err.starts_with("--cluster-cidr: "), "{err}");
        let err = build(&["--node-cidr-mask-size=8"]).await.unwrap_err().to_string();
        assert!(err.starts_with("--node-cidr-mask-size=8"), "{err}");
        let err = build(&["--controllers=nope"]).await.unwrap_err().to_string();
        assert!(err.contains("unknown controller \"nope\""), "{err}");
        let err = build(&["--leader-elect-renew-deadline=20s"]).await.unwrap_err().to_string();
        assert!(err.starts_with("--leader-elect-*: "), "{err}");
        assert!(build(&["--cluster-cidr=10.1.0.0", "--allocate-node-cidrs=false"]).await.is_ok());
    }
}
