//! rkube-controller-manager: runs the cluster's controllers.
//!
//! [`App::build`] resolves the apiserver, checks the flags and binds the
//! health port; [`App::run`] campaigns for the `kube-system/rkube-controller-manager`
//! Lease (unless `--leader-elect=false`) and, while it leads, runs the
//! controllers `--controllers` selects from the registry in
//! [`controllers`]. Each controller follows the same flow: a reflector fills
//! a Store, watch events enqueue keys, and workers ([`runner`]) call the
//! controller's `reconcile(key, ctx)`. Start reading at
//! [`controllers::nodeipam`], the first controller.

pub mod controllers;
pub mod events;
pub mod metrics;
pub mod runner;

use anyhow::Context as _;
use clap::{ArgAction, Parser};
use controllers::{Controller, ControllerContext, Settings};
use metrics::Metrics;
use rkube_client::{Client, LeaderElector};
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
    context: ControllerContext,
    elector: Option<LeaderElector>,
}

impl App {
    /// Resolves the apiserver, checks the flags and binds the health port.
    pub async fn build(args: Args) -> anyhow::Result<App> {
        let cfg = args.api.resolve()?;
        let client = Client::from_config(&cfg)?;
        let controllers = controllers::select(&args.controllers).map_err(anyhow::Error::msg)?;
        let settings = Settings {
            cluster_cidr: args.cluster_cidr.clone(),
            node_cidr_mask_size: args.node_cidr_mask_size,
            allocate_node_cidrs: args.allocate_node_cidrs,
        };
        if args.allocate_node_cidrs && controllers.iter().any(|c| c.name == controllers::nodeipam::NAME) {
            controllers::nodeipam::cidrset::CidrSet::new(&settings.cluster_cidr, settings.node_cidr_mask_size)
                .map_err(anyhow::Error::msg)?;
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
        let context =
            ControllerContext { client: client.clone(), settings, metrics: Arc::new(Metrics::default()), identity };
        Ok(App { client, health, controllers, context, elector })
    }

    /// The health listener's address.
    pub fn health_addr(&self) -> SocketAddr {
        self.health.local_addr().expect("a bound listener has an address")
    }

    /// This instance's identity (the Lease holder when it leads).
    pub fn identity(&self) -> &str {
        &self.context.identity
    }

    /// Serves health endpoints and runs the controllers (while leading)
    /// until `shutdown`; returns once every task has ended (or the grace
    /// period is over).
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let App { client, health, controllers, context, elector } = self;
        match client.version().await {
            Ok(v) => info!(server = %client.server(), version = %v["gitVersion"], "apiserver reachable"),
            Err(e) => warn!(server = %client.server(), error = %e, "apiserver not reachable yet"),
        }
        let names: Vec<&str> = controllers.iter().map(|c| c.name).collect();
        info!(controllers = ?names, identity = %context.identity, "starting");
        let metrics = context.metrics.clone();
        let health_task =
            tokio::spawn(rkube_client::daemon::serve_health(health, move || metrics.render(), shutdown.clone()));

        match elector {
            None => {
                let running = start_controllers(&controllers, &context, &shutdown)?;
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
                    let running = start_controllers(&controllers, &context, &shutdown)?;
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

fn start_controllers(
    controllers: &[&'static Controller],
    context: &ControllerContext,
    shutdown: &CancellationToken,
) -> anyhow::Result<Running> {
    let (tracker, token) = (TaskTracker::new(), shutdown.child_token());
    context.metrics.set_leading(true);
    for c in controllers {
        (c.start)(context, &tracker, token.clone()).map_err(|e| anyhow::anyhow!("controller {}: {e}", c.name))?;
        info!(controller = c.name, "controller started");
    }
    Ok(Running { tracker, token, metrics: context.metrics.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_default_like_kube_controller_manager() {
        let args = Args::try_parse_from(["rkube-controller-manager"]).unwrap();
        assert_eq!(args.cluster_cidr, "10.1.0.0/16");
        assert_eq!(args.node_cidr_mask_size, 24);
        assert!(args.allocate_node_cidrs && args.leader_elect);
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
        assert!(!args.leader_elect && !args.allocate_node_cidrs);
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
