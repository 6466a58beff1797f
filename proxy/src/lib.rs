//! rkube-proxy: programs the Service datapath on its node.
//!
//! This build is the daemon's frame only: it parses its flags, finds the
//! apiserver the way rkubectl does, checks that it answers, and serves
//! `/healthz`, `/readyz` and `/metrics`. It does no proxy work yet, and says
//! so in its log and on `/metrics`.

use clap::Parser;
use rkube_client::Client;
use std::net::SocketAddr;
use tokio_util::sync::CancellationToken;

/// Command-line flags.
#[derive(Debug, Clone, Parser)]
#[command(name = "rkube-proxy", version, about = "rkube-proxy: programs the Service datapath on its node.")]
pub struct Args {
    /// Where the apiserver is.
    #[command(flatten)]
    pub api: rkube_client::config::ServerArgs,
    /// Where /healthz, /readyz and /metrics are served.
    #[arg(long, env = "RKUBE_HEALTHZ_BIND_ADDRESS", default_value = "127.0.0.1:10256")]
    pub healthz_bind_address: SocketAddr,
    /// Log format: text or json.
    #[arg(long, env = "RKUBE_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

/// The built daemon.
#[derive(Debug)]
pub struct App {
    client: Client,
    health: tokio::net::TcpListener,
}

impl App {
    /// Resolves the apiserver and binds the health port.
    pub async fn build(args: Args) -> anyhow::Result<App> {
        let cfg = args.api.resolve()?;
        let client = Client::from_config(&cfg)?;
        let health = rkube_client::daemon::bind_health(args.healthz_bind_address).await?;
        Ok(App { client, health })
    }

    /// The health listener's address.
    pub fn health_addr(&self) -> SocketAddr {
        self.health.local_addr().expect("a bound listener has an address")
    }

    /// Serves health endpoints until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        match self.client.version().await {
            Ok(v) => tracing::info!(server = %self.client.server(), version = %v["gitVersion"], "apiserver reachable"),
            Err(e) => tracing::warn!(server = %self.client.server(), error = %e, "apiserver not reachable yet"),
        }
        tracing::warn!("this build of rkube-proxy serves health endpoints only; it does no proxy work yet");
        let registry = std::sync::Arc::new(rkube_client::metrics::Registry::new());
        registry.gauge("rkube_component_implemented", "Whether this component does its work yet").set(0);
        let metrics = move || registry.render();
        rkube_client::daemon::serve_health(self.health, metrics, shutdown).await?;
        Ok(())
    }
}
