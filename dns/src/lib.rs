//! rkube-dns: the cluster's DNS server, deployed as an add-on like CoreDNS.
//!
//! It watches Services and EndpointSlices through shared informers (lean
//! views, [`view`]), answers names under the cluster domain from those caches
//! ([`zone`], which lists the names), forwards every other name to the host's
//! nameservers ([`upstream`]), and serves UDP and TCP on one port
//! ([`server`]). Start reading at [`App::run`], then [`zone::Zone::answer`].
//!
//! `/healthz`, `/readyz` (ready once both caches are synced) and `/metrics`
//! ([`metrics`]) are served on `--healthz-bind-address`.

pub mod metrics;
pub mod server;
pub mod upstream;
pub mod view;
pub mod zone;

use anyhow::Context as _;
use clap::Parser;
use rkube_client::{Client, SharedInformers};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// How long `run` waits for its tasks after shutdown.
const GRACE: Duration = Duration::from_secs(5);

/// Command-line flags.
#[derive(Debug, Clone, Parser)]
#[command(name = "rkube-dns", version, about = "rkube-dns: cluster DNS for Services and pods.")]
pub struct Args {
    /// Where the apiserver is (in a pod: the `kubernetes` Service, from the environment).
    #[command(flatten)]
    pub api: rkube_client::config::ServerArgs,
    /// Where DNS is served, over UDP and TCP (port 0: any free port, the same for both).
    #[arg(long, env = "RKUBE_DNS_BIND_ADDRESS", default_value = "0.0.0.0:53")]
    pub dns_bind_address: SocketAddr,
    /// The cluster domain: Services are `<svc>.<ns>.svc.<domain>`.
    #[arg(long, env = "RKUBE_CLUSTER_DOMAIN", default_value = "cluster.local")]
    pub cluster_domain: String,
    /// TTL of cluster records, and of negative answers, in seconds.
    #[arg(long, env = "RKUBE_DNS_TTL", default_value_t = 5)]
    pub ttl: u32,
    /// Nameservers for other names, `IP` or `IP:port`, comma-separated
    /// (default: the nameservers of --resolv-conf).
    #[arg(long, env = "RKUBE_DNS_UPSTREAM", value_delimiter = ',')]
    pub upstream: Vec<String>,
    /// Where the default upstream nameservers are read.
    #[arg(long, env = "RKUBE_DNS_RESOLV_CONF", default_value = "/etc/resolv.conf")]
    pub resolv_conf: PathBuf,
    /// How long each upstream nameserver is given to answer.
    #[arg(long, env = "RKUBE_DNS_UPSTREAM_TIMEOUT", default_value = "2s",
          value_parser = rkube_client::leader::parse_duration)]
    pub upstream_timeout: Duration,
    /// Where /healthz, /readyz and /metrics are served.
    #[arg(long, env = "RKUBE_HEALTHZ_BIND_ADDRESS", default_value = "127.0.0.1:10054")]
    pub healthz_bind_address: SocketAddr,
    /// Log format: text or json.
    #[arg(long, env = "RKUBE_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

/// The built daemon: its sockets are bound.
#[derive(Debug)]
pub struct App {
    client: Client,
    origin: hickory_proto::rr::Name,
    ttl: u32,
    upstream: upstream::Upstream,
    udp: Arc<UdpSocket>,
    tcp: TcpListener,
    health: TcpListener,
}

impl App {
    /// Resolves the apiserver and the upstream nameservers, checks the
    /// cluster domain and binds the DNS (UDP and TCP) and health ports.
    pub async fn build(args: Args) -> anyhow::Result<App> {
        let cfg = args.api.resolve()?;
        let client = Client::from_config(&cfg)?;
        let origin = zone::cluster_domain(&args.cluster_domain)?;
        let mut upstream = if args.upstream.is_empty() {
            upstream::Upstream::from_resolv_conf(&args.resolv_conf, args.upstream_timeout)
                .with_context(|| "finding the upstream nameservers (or give --upstream)")?
        } else {
            upstream::Upstream::new(upstream::Upstream::parse_servers(&args.upstream)?, args.upstream_timeout)
        };
        let (udp, tcp) = bind_dns(args.dns_bind_address)
            .await
            .with_context(|| format!("binding --dns-bind-address {}", args.dns_bind_address))?;
        let removed = upstream.remove_self(udp.local_addr()?);
        if !removed.is_empty() {
            warn!(?removed, "upstream nameservers that are this server itself are not used (they would loop)");
        }
        if upstream.servers().is_empty() {
            warn!(resolv_conf = %args.resolv_conf.display(), "no upstream nameservers: names outside the cluster get SERVFAIL");
        }
        let health = rkube_client::daemon::bind_health(args.healthz_bind_address)
            .await
            .with_context(|| format!("binding --healthz-bind-address {}", args.healthz_bind_address))?;
        Ok(App { client, origin, ttl: args.ttl, upstream, udp: Arc::new(udp), tcp, health })
    }

    /// The DNS address (UDP and TCP).
    pub fn dns_addr(&self) -> SocketAddr {
        self.udp.local_addr().expect("a bound socket has an address")
    }

    /// The health listener's address.
    pub fn health_addr(&self) -> SocketAddr {
        self.health.local_addr().expect("a bound listener has an address")
    }

    /// Serves DNS and health endpoints until `shutdown`, then waits (up to a
    /// grace period) for every task to end.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let App { client, origin, ttl, upstream, udp, tcp, health } = self;
        let tracker = TaskTracker::new();
        let stop = shutdown.child_token();
        let informers = SharedInformers::new(client.clone(), tracker.clone(), stop.clone());
        let services = informers.get::<view::ServiceView>();
        let slices = informers.get::<view::SliceView>();
        let zone = zone::Zone::new(origin, ttl, services.store().clone(), slices.store().clone());
        let registry = Arc::new(rkube_client::metrics::Registry::new());
        let metrics = metrics::DnsMetrics::register(&registry);
        let handler = Arc::new(server::Handler::new(zone.clone(), upstream.clone(), metrics.clone()));
        info!(
            dns = %udp.local_addr()?, domain = %zone.origin(), server = %client.server(),
            upstream = ?upstream.servers(), "rkube-dns serving"
        );

        // One receive loop per core on the shared socket.
        let loops = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
        for _ in 0..loops {
            tracker.spawn(handler.clone().serve_udp(udp.clone(), tracker.clone(), stop.clone()));
        }
        tracker.spawn(handler.clone().serve_tcp(tcp, tracker.clone(), stop.clone()));
        {
            let (services, slices, stop) = (services.clone(), slices.clone(), stop.clone());
            tracker.spawn(async move {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = async { services.wait_until_synced().await && slices.wait_until_synced().await } => {
                        info!(services = services.store().len(), endpointslices = slices.store().len(), "caches synced");
                    }
                }
            });
        }

        let served = serve_health(health, zone, registry, metrics, stop.clone()).await;
        stop.cancel();
        tracker.close();
        if tokio::time::timeout(GRACE, tracker.wait()).await.is_err() {
            warn!("some tasks did not stop within {GRACE:?}");
        }
        served.context("serving /healthz, /readyz and /metrics")
    }
}

/// Binds UDP and TCP on `addr`; for port 0, on one free port for both.
async fn bind_dns(addr: SocketAddr) -> std::io::Result<(UdpSocket, TcpListener)> {
    let mut attempt = 0;
    loop {
        let tcp = TcpListener::bind(addr).await?;
        match UdpSocket::bind(tcp.local_addr()?).await {
            Ok(udp) => return Ok((udp, tcp)),
            // Another process holds UDP on the free TCP port: try another.
            Err(_) if addr.port() == 0 && attempt < 10 => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}

/// `/healthz`, `/readyz` (200 once the caches are synced, 503 before) and
/// `/metrics` on `listener` until `shutdown`.
async fn serve_health(
    listener: TcpListener,
    zone: zone::Zone,
    registry: Arc<rkube_client::metrics::Registry>,
    metrics: metrics::DnsMetrics,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    use axum::http::StatusCode;
    use axum::routing::get;
    let ready_zone = zone.clone();
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let synced = ready_zone.is_synced();
                async move {
                    if synced {
                        (StatusCode::OK, "ok\n")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "caches of Services and EndpointSlices not synced yet\n")
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let (services, slices) = zone.cache_sizes();
                metrics.set_cache_sizes(services, slices);
                std::future::ready(rkube_client::daemon::metrics_response(registry.render()))
            }),
        );
    axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await
}
