//! Serving connections: gRPC and the REST API on one port.
//!
//! Each connection speaks HTTP/1.1 or HTTP/2 (told apart by the HTTP/2
//! preface). gRPC requests go to their tonic service by path, everything
//! else to the REST router. Connections are served with upgrades allowed, so
//! `pods/exec` can switch an HTTP/1.1 request to a WebSocket (tonic's own
//! server does not allow upgrades, which is why the apiserver serves its
//! connections itself).
//!
//! With a TLS acceptor, each connection first completes its handshake
//! (within [`HANDSHAKE_TIMEOUT`], so a client that stalls it holds nothing
//! for long); the user its verified client certificate names travels with
//! every request of the connection as its [`Peer`].

use crate::authn::{Peer, UserInfo, user_from_certificate};
use futures::{Stream, StreamExt as _};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rkube_client::tls::TlsAcceptor;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;
use tracing::{debug, warn};

/// How often an idle HTTP/2 connection is pinged, so dead peers (a watch
/// whose client vanished) are noticed.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);

/// How long a client gets to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long open connections get to finish once `stop` fires.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves `app` on every connection `incoming` yields until `stop` fires,
/// then lets open connections finish their requests for up to [`DRAIN`].
/// With `tls`, connections speak TLS; without, they are plain and trusted.
pub async fn serve(
    incoming: impl Stream<Item = std::io::Result<TcpStream>>,
    app: axum::Router,
    tls: Option<TlsAcceptor>,
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
        let Some(acceptor) = tls.clone() else {
            let conn = builder.serve_connection_with_upgrades(
                TokioIo::new(tcp),
                TowerToHyperService::new(app.clone().map_request(add_peer(Peer::Plain))),
            );
            let conn = graceful.watch(conn.into_owned());
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    debug!(error = %e, "connection ended with an error");
                }
            });
            continue;
        };
        // The handshake runs in the connection's task, so a slow client
        // holds up no one else; its connection joins the graceful shutdown
        // once it is established.
        let (builder, app, stop) = (builder.clone(), app.clone(), stop.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let peer_addr = tcp.peer_addr().ok();
            let stream = tokio::select! {
                _ = stop.cancelled() => return,
                r = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)) => match r {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        debug!(peer = ?peer_addr, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        debug!(peer = ?peer_addr, "TLS handshake timed out");
                        return;
                    }
                },
            };
            let user = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .and_then(|der| user_from_certificate(der))
                .map(Arc::<UserInfo>::new);
            let conn = builder.serve_connection_with_upgrades(
                TokioIo::new(stream),
                TowerToHyperService::new(app.map_request(add_peer(Peer::Tls(user)))),
            );
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                debug!(error = %e, "connection ended with an error");
            }
        });
    }
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        warn!("some connections were still open {}s after shutdown began", DRAIN.as_secs());
    }
}

/// Puts `peer` in every request's extensions.
fn add_peer<B>(peer: Peer) -> impl FnMut(http::Request<B>) -> http::Request<B> + Clone {
    move |mut req| {
        req.extensions_mut().insert(peer.clone());
        req
    }
}
