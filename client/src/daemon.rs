//! What every rkube daemon does the same way: logging, signals, the
//! `/healthz`, `/readyz` and `/metrics` endpoints, and telling systemd
//! (`Type=notify`) when it is ready and when it stops.

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
        notify_stopping();
        t.cancel();
    });
    token
}

/// Serves `/healthz`, `/readyz` and `/metrics` (with `metrics()` as its body,
/// Prometheus text such as [`crate::metrics::Registry::render`]) on
/// `listener` until `shutdown`.
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
        .route("/metrics", get(move || std::future::ready(metrics_response(metrics()))));
    axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await
}

/// A `/metrics` response: `body` with the Prometheus text format's content type.
pub fn metrics_response(body: String) -> impl axum::response::IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body)
}

/// Binds a health listener, for daemons' `--healthz-bind-address`.
pub async fn bind_health(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

/// Tells the service manager the daemon is ready (`READY=1`), when it
/// runs under systemd with `Type=notify`; otherwise does nothing.
pub fn notify_ready() {
    notify("READY=1");
}

/// Tells the service manager the daemon is stopping (`STOPPING=1`).
pub fn notify_stopping() {
    notify("STOPPING=1");
}

/// Sends `msg` to `$NOTIFY_SOCKET` (sd_notify), if it is set. Errors are
/// logged at debug level and otherwise ignored: a daemon runs the same
/// with or without a service manager listening.
pub fn notify(msg: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    if let Err(e) = notify_to(&path, msg) {
        tracing::debug!(socket = ?path, msg, error = %e, "sd_notify failed");
    }
}

/// Sends `msg` as one datagram to the Unix socket `path`, the way
/// sd_notify(3) does: a path starting with `@` names an abstract socket
/// (Linux), any other is a file system path.
pub fn notify_to(path: &std::ffi::OsStr, msg: &str) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let bytes = path.as_bytes();
    let addr = match bytes.split_first() {
        None => return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "NOTIFY_SOCKET is empty")),
        #[cfg(target_os = "linux")]
        Some((b'@', name)) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name)?
        }
        Some(_) => SocketAddr::from_pathname(std::path::Path::new(path))?,
    };
    let socket = UnixDatagram::unbound()?;
    socket.send_to_addr(msg.as_bytes(), &addr)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;
    use std::time::Duration;

    fn recv(socket: &UnixDatagram) -> String {
        socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 256];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn notify_to_sends_the_message_to_a_path_socket() {
        let dir = std::env::temp_dir().join(format!("rkube-notify-{}-{}", std::process::id(), fastrand::u32(..)));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        notify_to(path.as_os_str(), "READY=1").unwrap();
        notify_to(path.as_os_str(), "STOPPING=1").unwrap();
        assert_eq!(recv(&socket), "READY=1");
        assert_eq!(recv(&socket), "STOPPING=1");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn notify_to_reaches_an_abstract_socket_named_with_an_at_sign() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("rkube-notify-test-{}-{}", std::process::id(), fastrand::u32(..));
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let socket = UnixDatagram::bind_addr(&addr).unwrap();
        notify_to(std::ffi::OsStr::new(&format!("@{name}")), "READY=1").unwrap();
        assert_eq!(recv(&socket), "READY=1");
    }

    #[test]
    fn notify_to_fails_when_nobody_listens() {
        let path = std::env::temp_dir().join(format!("rkube-notify-absent-{}.sock", fastrand::u32(..)));
        assert!(notify_to(path.as_os_str(), "READY=1").is_err());
        assert!(notify_to(std::ffi::OsStr::new(""), "READY=1").is_err());
    }
}
