//! Serving connections: gRPC and the REST API on one port.
//!
//! Each connection speaks HTTP/1.1 or HTTP/2 (told apart by the HTTP/2
//! preface). gRPC requests go to their tonic service by path, everything
//! else to the REST router. Connections are served with upgrades allowed, so
//! `pods/exec` can switch an HTTP/1.1 request to a WebSocket (tonic's own
//! server does not allow upgrades, which is why the apiserver serves its
//! connections itself).

use futures::{Stream, StreamExt as _};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// How often an idle HTTP/2 connection is pinged, so dead peers (a watch
/// whose client vanished) are noticed.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);

/// How long open connections get to finish once `stop` fires.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves `app` on every connection `incoming` yields until `stop` fires,
/// then lets open connections finish their requests for up to [`DRAIN`].
pub async fn serve(
    incoming: impl Stream<Item = std::io::Result<TcpStream>>,
    app: axum::Router,
    stop: CancellationToken,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http2().timer(TokioTimer::new()).keep_alive_interval(KEEPALIVE_INTERVAL);
    let graceful = GracefulShutdown::new();
    let mut incoming = std::pin::pin!(incoming);
    loop {
        let conn = tokio::select! {
            _ = stop.cancelled() => break,
            conn = incoming.next() => conn,
        };
        let tcp = match conn {
            Some(Ok(tcp)) => tcp,
            Some(Err(e)) => {
                // Out of file descriptors and the like: back off instead of spinning.
                warn!(error = %e, "accepting a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            None => break,
        };
        // Small request/response exchanges must not wait for Nagle's algorithm.
        let _ = tcp.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), service).into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                debug!(error = %e, "connection ended with an error");
            }
        });
    }
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        warn!("some connections were still open {}s after shutdown began", DRAIN.as_secs());
    }
}
