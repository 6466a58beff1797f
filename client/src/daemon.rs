//! What every rkube daemon does the same way: logging, signals, and the
//! `/healthz`, `/readyz` and `/metrics` endpoints.

use std::net::SocketAddr;
use tokio_util::sync::CancellationToken;

/// Installs the tracing subscriber: `RUST_LOG` filters (default `info`),
/// `format` is `text` or `json`.
pub fn init_tracing(format: &str) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        "text" => builder.try_init().map_err(|e| e.to_string()),
        "json" => builder.json().try_init().map_err(|e| e.to_string()),
        other => Err(format!("--log-format: \"{other}\" is not supported (use text or json)")),
    }
}

/// A token cancelled on SIGTERM or SIGINT.
pub fn shutdown_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = tokio::signal::ctrl_c() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
        t.cancel();
    });
    token
}

/// Serves `/healthz`, `/readyz` and `/metrics` (with `metrics()` as its body)
/// on `listener` until `shutdown`.
pub async fn serve_health(
    listener: tokio::net::TcpListener,
    metrics: impl Fn() -> String + Clone + Send + Sync + 'static,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    use axum::routing::get;
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }))
        .route("/metrics", get(move || std::future::ready(metrics())));
    axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await
}

/// Binds a health listener, for daemons' `--healthz-bind-address`.
pub async fn bind_health(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}
