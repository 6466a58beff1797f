//! A real controller manager running in-process against a test apiserver.

use anyhow::Context as _;
use clap::Parser;
use std::net::SocketAddr;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long stopping may take.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// An in-process `rkube-controller-manager`, stopped on [`stop`](Self::stop) or Drop.
#[derive(Debug)]
pub struct TestControllerManager {
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// Where /healthz, /readyz and /metrics are served.
    pub health: SocketAddr,
    /// Its identity (the Lease holder while it leads).
    pub identity: String,
}

impl TestControllerManager {
    /// Starts one against `server` with quick leader-election timings and
    /// `flags` added (e.g. `--controllers=replication`, `--leader-elect=false`).
    pub async fn start(server: &str, flags: &[&str]) -> anyhow::Result<TestControllerManager> {
        let mut argv = vec![
            "rkube-controller-manager".to_string(),
            format!("--server={server}"),
            "--healthz-bind-address=127.0.0.1:0".into(),
            "--leader-elect-lease-duration=2s".into(),
            "--leader-elect-renew-deadline=1500ms".into(),
            "--leader-elect-retry-period=200ms".into(),
        ];
        argv.extend(flags.iter().map(|f| f.to_string()));
        let app = rkube_controller_manager::App::build(rkube_controller_manager::Args::try_parse_from(argv)?).await?;
        let (health, identity) = (app.health_addr(), app.identity().to_string());
        let shutdown = CancellationToken::new();
        let task = Some(tokio::spawn(app.run(shutdown.clone())));
        Ok(TestControllerManager { shutdown, task, health, identity })
    }

    /// Stops it and waits until every controller has ended.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let task = self.task.take().context("already stopped")?;
        tokio::time::timeout(STOP_TIMEOUT, task).await.context("controller manager did not stop")???;
        Ok(())
    }

    /// Its /metrics text.
    pub async fn metrics(&self) -> anyhow::Result<String> {
        Ok(crate::http_get(&format!("http://{}/metrics", self.health)).await?.1)
    }
}

impl Drop for TestControllerManager {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
