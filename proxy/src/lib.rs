//! rkube-proxy: programs the Service datapath of its node on the kernel's
//! nftables, as kube-proxy's nftables mode does.
//!
//! It watches Services and EndpointSlices (lean views, [`model`]) through
//! shared informers and keeps one nftables table of its own (`ip
//! rkube-proxy`, `--table`) in step with them: ClusterIPs and NodePorts DNAT
//! to ready endpoints, Services without endpoints reject, ClientIP affinity,
//! masquerading for hairpin and off-cluster traffic. Start with
//! [`proxier`] (the sync loop), then [`ruleset`] (the rules themselves,
//! documented with an example in `docs/services.md`), [`rule`] (each rule
//! typed, printed as nft syntax and encoded as nf_tables expressions) and
//! [`netlink`] (how they reach the kernel); [`nft`] runs the nft command to
//! look at the table. [`App`] is the daemon: [`App::build`] binds the health
//! port, [`App::run`] syncs and serves `/healthz`, `/readyz` and `/metrics`.

pub mod model;
pub mod netlink;
pub mod nft;
pub mod proxier;
pub mod rule;
pub mod ruleset;

use anyhow::Context as _;
use clap::Parser;
use model::{EndpointSliceView, ServiceView};
use proxier::{Health, Proxier, ProxyMetrics};
use rkube_api::cidr::Ipv4Cidr;
use rkube_client::{Client, SharedInformers};
use ruleset::RuleConfig;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// `/healthz` fails once a change has waited this long without a successful sync.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(60);
/// How long tasks get to end after shutdown.
const GRACE_PERIOD: Duration = Duration::from_secs(5);

/// Command-line flags.
#[derive(Debug, Clone, Parser)]
#[command(name = "rkube-proxy", version, about = "rkube-proxy: programs the Service datapath on its node.")]
pub struct Args {
    /// Where the apiserver is.
    #[command(flatten)]
    pub api: rkube_client::config::ServerArgs,
    /// This node's name, to tell local endpoints (default: the hostname).
    #[arg(long, env = "RKUBE_HOSTNAME_OVERRIDE")]
    pub hostname_override: Option<String>,
    /// The pods' CIDRs (comma-separated): ClusterIP traffic from outside them
    /// is masqueraded.
    #[arg(long, env = "RKUBE_CLUSTER_CIDR", value_delimiter = ',')]
    pub cluster_cidr: Vec<Ipv4Cidr>,
    /// The nftables table (family ip) the proxy owns.
    #[arg(long, env = "RKUBE_PROXY_TABLE", default_value = "rkube-proxy", value_parser = parse_table)]
    pub table: String,
    /// CIDRs (comma-separated) of the local addresses NodePorts answer on
    /// (default: every local address, 127.0.0.1 included).
    #[arg(long, env = "RKUBE_NODEPORT_ADDRESSES", value_delimiter = ',')]
    pub nodeport_addresses: Vec<Ipv4Cidr>,
    /// Delete the table and exit.
    #[arg(long, env = "RKUBE_PROXY_CLEANUP")]
    pub cleanup: bool,
    /// The least time between two syncs of the rules (changes in between are batched).
    #[arg(long, env = "RKUBE_MIN_SYNC_PERIOD", default_value = "10ms", value_parser = rkube_client::leader::parse_duration)]
    pub min_sync_period: Duration,
    /// Where /healthz, /readyz and /metrics are served.
    #[arg(long, env = "RKUBE_HEALTHZ_BIND_ADDRESS", default_value = "127.0.0.1:10256")]
    pub healthz_bind_address: SocketAddr,
    /// Log format: text or json.
    #[arg(long, env = "RKUBE_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

/// Checks `--table`: a letter, then letters, digits, `-` or `_`.
fn parse_table(s: &str) -> Result<String, String> {
    let ok = s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!("\"{s}\" is not a table name: use a letter, then letters, digits, - or _ (at most 64)"))
    }
}

/// This host's name, for `--hostname-override`'s default.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
}

/// The built daemon.
#[derive(Debug)]
pub struct App {
    args: Args,
    client: Client,
    health: tokio::net::TcpListener,
}

impl App {
    /// Resolves the apiserver and binds the health port.
    pub async fn build(args: Args) -> anyhow::Result<App> {
        let cfg = args.api.resolve()?;
        let client = Client::from_config(&cfg)?;
        // --cleanup serves nothing, and must work beside a running proxy
        // that holds the health port.
        let health_addr =
            if args.cleanup { std::net::SocketAddr::from(([127, 0, 0, 1], 0)) } else { args.healthz_bind_address };
        let health = rkube_client::daemon::bind_health(health_addr)
            .await
            .with_context(|| format!("binding --healthz-bind-address {}", args.healthz_bind_address))?;
        Ok(App { args, client, health })
    }

    /// The health listener's address.
    pub fn health_addr(&self) -> SocketAddr {
        self.health.local_addr().expect("a bound listener has an address")
    }

    /// Programs the table until `shutdown` (leaving it in place, so traffic
    /// keeps flowing until the next proxy takes over), serving health
    /// endpoints; with `--cleanup`, deletes the table and returns.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let table = self.args.table.clone();
        if self.args.cleanup {
            ruleset::delete_table(&table).await.with_context(|| format!("deleting table ip {table}"))?;
            tracing::info!(table = %table, "deleted the nftables table");
            return Ok(());
        }
        let cfg = RuleConfig {
            table,
            cluster_cidrs: self.args.cluster_cidr.clone(),
            nodeport_addresses: self.args.nodeport_addresses.clone(),
        };
        if cfg.cluster_cidrs.is_empty() {
            tracing::warn!("no --cluster-cidr: traffic to ClusterIPs from outside the pod network is not masqueraded");
        }
        if cfg.localhost_nodeports() {
            enable_route_localnet();
        }
        let node = self.args.hostname_override.clone().unwrap_or_else(hostname);
        let registry = Arc::new(rkube_client::metrics::Registry::new());
        let metrics = ProxyMetrics::register(&registry);
        let health = Arc::new(Health::new(HEALTH_TIMEOUT));
        let tracker = TaskTracker::new();
        let informers = SharedInformers::new(self.client.clone(), tracker.clone(), shutdown.clone());
        let proxier = Proxier::new(
            cfg,
            node.clone(),
            informers.get::<ServiceView>(),
            informers.get::<EndpointSliceView>(),
            metrics,
            health.clone(),
        );
        tracing::info!(table = %self.args.table, node = %node, server = %self.client.server(), "rkube-proxy starting");
        tracker.spawn(proxier.run(self.args.min_sync_period, shutdown.clone()));
        let served = serve_health(self.health, registry, health, shutdown.clone()).await;
        shutdown.cancel();
        tracker.close();
        if tokio::time::timeout(GRACE_PERIOD, tracker.wait()).await.is_err() {
            tracing::warn!("tasks did not end within the grace period");
        }
        served.context("serving health endpoints")
    }
}

/// Lets 127.0.0.1 be DNATed to pods (NodePorts on localhost), as
/// kube-proxy's iptables mode does with `--iptables-localhost-nodeports`.
fn enable_route_localnet() {
    const PATH: &str = "/proc/sys/net/ipv4/conf/all/route_localnet";
    if std::fs::read_to_string(PATH).is_ok_and(|v| v.trim() == "1") {
        return;
    }
    match std::fs::write(PATH, "1") {
        Ok(()) => tracing::info!("set net.ipv4.conf.all.route_localnet=1 so NodePorts answer on 127.0.0.1"),
        Err(e) => {
            tracing::warn!(error = %e, "cannot set net.ipv4.conf.all.route_localnet=1; NodePorts will not answer on 127.0.0.1")
        }
    }
}

/// Serves `/healthz` (503 once changes wait too long for a sync), `/readyz`
/// (200 after the first sync), `/livez` and `/metrics` until `shutdown`.
async fn serve_health(
    listener: tokio::net::TcpListener,
    registry: Arc<rkube_client::metrics::Registry>,
    health: Arc<Health>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    use axum::http::StatusCode;
    use axum::routing::get;
    let ready = health.clone();
    let app = axum::Router::new()
        .route(
            "/healthz",
            get(move || {
                let problem = health.problem();
                async move {
                    match problem {
                        None => (StatusCode::OK, "ok".to_string()),
                        Some(p) => (StatusCode::SERVICE_UNAVAILABLE, p),
                    }
                }
            }),
        )
        .route(
            "/readyz",
            get(move || {
                let ok = ready.ready();
                async move {
                    if ok {
                        (StatusCode::OK, "ok")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "the rules have not been synced yet")
                    }
                }
            }),
        )
        .route("/livez", get(|| async { "ok" }))
        .route("/metrics", get(move || std::future::ready(rkube_client::daemon::metrics_response(registry.render()))));
    axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_with_defaults() {
        let args = Args::try_parse_from(["rkube-proxy"]).unwrap();
        assert_eq!(args.table, "rkube-proxy");
        assert_eq!(args.min_sync_period, Duration::from_millis(10));
        assert!(args.cluster_cidr.is_empty() && args.nodeport_addresses.is_empty() && !args.cleanup);
        let args = Args::try_parse_from([
            "rkube-proxy",
            "--table=t1",
            "--cluster-cidr=10.1.0.0/16,10.2.0.0/16",
            "--nodeport-addresses=127.0.0.0/8",
            "--cleanup",
        ])
        .unwrap();
        assert_eq!(args.cluster_cidr.len(), 2);
        assert!(args.cleanup);
        assert!(Args::try_parse_from(["rkube-proxy", "--table=bad name"]).is_err());
        assert!(Args::try_parse_from(["rkube-proxy", "--cluster-cidr=10.1.0.0"]).is_err());
    }

    #[tokio::test]
    async fn cleanup_does_not_need_the_health_port_a_running_proxy_holds() {
        let running = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let held = running.local_addr().expect("addr").to_string();
        let flags = |extra: &[&str]| {
            let base = ["rkube-proxy", "--server", "http://127.0.0.1:1", "--healthz-bind-address", &held];
            Args::try_parse_from(base.iter().chain(extra)).expect("flags")
        };
        let err = App::build(flags(&[])).await.expect_err("the port is taken");
        assert!(format!("{err:#}").contains("--healthz-bind-address"), "{err:#}");
        let cleanup = App::build(flags(&["--cleanup"])).await.expect("--cleanup binds no fixed port");
        assert_ne!(cleanup.health_addr().to_string(), held);
    }
}
