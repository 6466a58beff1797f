//! The kubelet API, `rkube.v1.Kubelet` on `--port`: a container's logs, a
//! command run in a container, and the node's usage summary. Only the
//! apiserver calls it (it relays `Resources.Logs/Exec/NodeStats`): with TLS
//! configured, a client must show a certificate signed by `--client-ca-file`
//! naming the apiserver (`kube-apiserver-kubelet-client`) or a member of
//! `system:masters`; anyone else is refused (PermissionDenied), and a client
//! without a certificate fails the handshake.
//!
//! Containers are found in the runtime by their identity labels: the
//! instances of container `c` of pod `namespace/name`, newest first; the
//! newest is the current one, the one before is `previous`. Errors are
//! Kubernetes statuses (`ApiError`), so a user reads `container "x" in pod
//! "p" is not available` just as the kubelet would say it.

use crate::runtime::{self, ContainerKind, ContainerSummary, ExecOutput, ExecSpec, LogOptions, Runtime, TerminalSize};
use crate::stats::Summarizer;
use futures::{FutureExt, StreamExt};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use rkube_api::{ApiError, Reason};
use rkube_client::tls::certificate_subject;
use rkube_proto::v1 as pb;
use rkube_proto::v1::kubelet_server::{Kubelet, KubeletServer};
use std::collections::BTreeSet;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tonic::{Request, Response, Status};
use tracing::{debug, info, warn};

type LogStream = Pin<Box<dyn futures::Stream<Item = Result<pb::LogChunk, Status>> + Send>>;
type ExecStream = Pin<Box<dyn futures::Stream<Item = Result<pb::ExecOutput, Status>> + Send>>;

/// A runtime error as the API error a user sees.
fn runtime_error(e: runtime::Error) -> ApiError {
    match e {
        runtime::Error::NotFound(what) => ApiError::new(Reason::NotFound, what),
        runtime::Error::Unavailable { message } => ApiError::unavailable(message),
        e => ApiError::internal(e.to_string()),
    }
}

fn status(e: runtime::Error) -> Status {
    Status::from(runtime_error(e))
}

/// The user name of the apiserver's client certificate toward kubelets.
pub const APISERVER_CLIENT: &str = "kube-apiserver-kubelet-client";

/// The kubelet API's TLS: `cert`/`key` to serve, client certificates
/// required and checked against `client_ca`.
pub fn tls_config(cert: &Path, key: &Path, client_ca: &Path) -> anyhow::Result<ServerTlsConfig> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| anyhow::anyhow!("reading {}: {e}", p.display()));
    let (cert, key, ca) = (read(cert)?, read(key)?, read(client_ca)?);
    Ok(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)).client_ca_root(Certificate::from_pem(ca)))
}

/// Lets through only the apiserver: a verified client certificate whose
/// CN is [`APISERVER_CLIENT`] or whose groups include `system:masters`.
fn only_the_apiserver(req: Request<()>) -> Result<Request<()>, Status> {
    let subject = req.peer_certs().and_then(|certs| certs.first().and_then(|c| certificate_subject(c)));
    match subject {
        Some((name, groups)) if name == APISERVER_CLIENT || groups.iter().any(|g| g == "system:masters") => Ok(req),
        Some((name, _)) => Err(Status::from(ApiError::new(
            Reason::Forbidden,
            format!("user \"{name}\" may not use the kubelet API: only the apiserver may"),
        ))),
        None => Err(Status::from(ApiError::unauthorized())),
    }
}

/// Serves the kubelet API of node `node` on `listener` until `shutdown`,
/// over `tls` when given.
pub async fn serve<R: Runtime>(
    listener: TcpListener,
    node: String,
    runtime: Arc<R>,
    tls: Option<ServerTlsConfig>,
    shutdown: CancellationToken,
) {
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    info!(%addr, node = %node, tls = tls.is_some(), "kubelet API serving");
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let mut builder =
        tonic::transport::Server::builder().tcp_nodelay(true).http2_keepalive_interval(Some(Duration::from_secs(30)));
    let api = KubeletServer::new(KubeletApi::new(&node, runtime));
    let served = match tls {
        Some(tls) => match builder.tls_config(tls) {
            Ok(mut builder) => {
                builder
                    .add_service(InterceptedService::new(api, only_the_apiserver))
                    .serve_with_incoming_shutdown(incoming, shutdown.cancelled())
                    .await
            }
            Err(e) => Err(e),
        },
        None => builder.add_service(api).serve_with_incoming_shutdown(incoming, shutdown.cancelled()).await,
    };
    if let Err(e) = served {
        warn!(%addr, error = %e, "the kubelet API stopped");
    }
}

/// The `rkube.v1.Kubelet` service of one node.
pub struct KubeletApi<R: Runtime> {
    node: String,
    runtime: Arc<R>,
    summarizer: Summarizer,
}

impl<R: Runtime> std::fmt::Debug for KubeletApi<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeletApi").field("node", &self.node).finish_non_exhaustive()
    }
}

/// Picks the instances of one container out of everything the runtime has
/// of pod `namespace/pod`: newest first. When the name belongs to more
/// than one pod uid (a pod replaced by one of the same name, not yet
/// cleaned up), the pod with running containers wins.
pub fn instances(
    all: Vec<ContainerSummary>,
    node: &str,
    namespace: &str,
    pod: &str,
    container: &str,
) -> Result<Vec<ContainerSummary>, ApiError> {
    let of_pod: Vec<ContainerSummary> =
        all.into_iter().filter(|c| c.meta.pod_namespace == namespace && c.meta.pod_name == pod).collect();
    let Some(uid) = of_pod.iter().find(|c| c.is_running()).or(of_pod.first()).map(|c| c.meta.pod_uid.clone()) else {
        return Err(ApiError::new(Reason::NotFound, format!("pods \"{pod}\" not found on node {node}")));
    };
    let mut ours: Vec<ContainerSummary> =
        of_pod.into_iter().filter(|c| c.meta.pod_uid == uid && c.meta.kind != ContainerKind::Sandbox).collect();
    let container = if container.is_empty() {
        let names: BTreeSet<&str> =
            ours.iter().filter(|c| c.meta.kind == ContainerKind::App).map(|c| c.meta.name.as_str()).collect();
        match names.into_iter().collect::<Vec<_>>().as_slice() {
            [only] => only.to_string(),
            names => {
                return Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {pod}, choose one of: [{}]",
                    names.join(" ")
                )));
            }
        }
    } else {
        container.to_string()
    };
    ours.retain(|c| c.meta.name == container);
    if ours.is_empty() {
        return Err(ApiError::new(
            Reason::NotFound,
            format!("container \"{container}\" in pod \"{pod}\" is not available"),
        ));
    }
    ours.sort_by(|a, b| b.meta.attempt.cmp(&a.meta.attempt).then_with(|| b.is_running().cmp(&a.is_running())));
    Ok(ours)
}

fn terminal_size(s: &pb::TerminalSize) -> TerminalSize {
    TerminalSize {
        width: u16::try_from(s.width).unwrap_or(u16::MAX),
        height: u16::try_from(s.height).unwrap_or(u16::MAX),
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<R: Runtime> KubeletApi<R> {
    /// The API of node `node`, on `runtime`.
    pub fn new(node: &str, runtime: Arc<R>) -> Self {
        KubeletApi { node: node.to_string(), runtime, summarizer: Summarizer::new(node) }
    }

    async fn instances(&self, namespace: &str, pod: &str, container: &str) -> Result<Vec<ContainerSummary>, Status> {
        let all = self.runtime.list_containers().await.map_err(status)?;
        Ok(instances(all, &self.node, namespace, pod, container)?)
    }
}

#[tonic::async_trait]
impl<R: Runtime> Kubelet for KubeletApi<R> {
    type LogsStream = LogStream;

    async fn logs(&self, req: Request<pb::LogsRequest>) -> Result<Response<LogStream>, Status> {
        let req = req.into_inner();
        let found = self.instances(&req.namespace, &req.pod, &req.container).await?;
        let name = &found[0].meta.name;
        let target = if req.previous {
            found.get(1).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "previous terminated container \"{name}\" in pod \"{}\" not found",
                    req.pod
                ))
            })?
        } else {
            &found[0]
        };
        let since = req
            .since_seconds
            .filter(|s| *s > 0)
            .and_then(|s| Timestamp::now().checked_sub(SignedDuration::from_secs(s)).ok());
        let options = LogOptions {
            follow: req.follow && !req.previous,
            tail_lines: req.tail_lines.map(|n| u64::try_from(n).unwrap_or(0)),
            timestamps: req.timestamps,
            since,
        };
        debug!(pod = %format!("{}/{}", req.namespace, req.pod), container = %name, id = %target.id, "logs");
        let stream = self.runtime.container_logs(&target.id, &options).await.map_err(status)?;
        let chunks = stream.map(|chunk| chunk.map(|data| pb::LogChunk { data }).map_err(status));
        Ok(Response::new(Box::pin(chunks)))
    }

    type ExecStream = ExecStream;

    async fn exec(&self, req: Request<tonic::Streaming<pb::ExecInput>>) -> Result<Response<ExecStream>, Status> {
        let mut input = req.into_inner();
        let Some(pb::ExecInput { input: Some(pb::exec_input::Input::Start(start)) }) = input.message().await? else {
            return Err(ApiError::bad_request("an exec stream must begin with its start message").into());
        };
        if start.command.is_empty() {
            return Err(ApiError::bad_request("you must specify at least one command for the container").into());
        }
        let found = self.instances(&start.namespace, &start.pod, &start.container).await?;
        let Some(target) = found.first().filter(|c| c.is_running()) else {
            return Err(ApiError::bad_request(format!(
                "container \"{}\" in pod \"{}\" is not running",
                found[0].meta.name, start.pod
            ))
            .into());
        };
        let spec = ExecSpec {
            command: start.command.clone(),
            stdin: start.stdin,
            tty: start.tty,
            size: start.size.as_ref().map(terminal_size),
        };
        debug!(pod = %format!("{}/{}", start.namespace, start.pod), container = %target.meta.name, command = ?spec.command, "exec");
        let session = self.runtime.exec_attached(&target.id, &spec).await.map_err(status)?;
        let (mut stdin, resize) = (session.stdin, session.resize);
        // The client's stdin and resizes, until it closes stdin or goes away.
        let feeder = tokio::spawn(async move {
            while let Ok(Some(msg)) = input.message().await {
                match msg.input {
                    Some(pb::exec_input::Input::Stdin(data)) => {
                        if let Some(w) = stdin.as_mut()
                            && (w.write_all(&data).await.is_err() || w.flush().await.is_err())
                        {
                            stdin = None;
                        }
                    }
                    Some(pb::exec_input::Input::Resize(size)) => {
                        if let Err(e) = resize(terminal_size(&size)).await {
                            debug!(error = %e, "resizing an exec's TTY failed");
                        }
                    }
                    Some(pb::exec_input::Input::StdinClosed(_)) => {
                        if let Some(mut w) = stdin.take() {
                            let _ = w.shutdown().await;
                        }
                    }
                    Some(pb::exec_input::Input::Start(_)) | None => {}
                }
            }
            // No more input: the command sees the end of its stdin.
            if let Some(mut w) = stdin.take() {
                let _ = w.shutdown().await;
            }
        });
        let guard = AbortOnDrop(feeder.abort_handle());
        let output = session.output.map(|o| {
            let output = match o.map_err(status)? {
                ExecOutput::Stdout(b) => pb::exec_output::Output::Stdout(b),
                ExecOutput::Stderr(b) => pb::exec_output::Output::Stderr(b),
            };
            Ok(pb::ExecOutput { output: Some(output) })
        });
        let exit = session.exit_code.map(move |code| {
            drop(guard);
            let code = code.map_err(status)?;
            Ok(pb::ExecOutput { output: Some(pb::exec_output::Output::ExitCode(code)) })
        });
        Ok(Response::new(Box::pin(output.chain(exit.into_stream()))))
    }

    async fn stats(&self, _req: Request<pb::StatsRequest>) -> Result<Response<pb::StatsResponse>, Status> {
        let json = self.summarizer.summary(self.runtime.as_ref()).await.map_err(status)?;
        Ok(Response::new(pb::StatsResponse { json }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{ContainerMeta, Phase};

    fn summary(uid: &str, name: &str, kind: ContainerKind, attempt: u32, phase: Phase) -> ContainerSummary {
        ContainerSummary {
            id: format!("{uid}-{name}-{attempt}"),
            meta: ContainerMeta {
                pod_uid: uid.into(),
                pod_namespace: "default".into(),
                pod_name: "web".into(),
                name: name.into(),
                kind,
                attempt,
                hash: String::new(),
                grace_period: 30,
            },
            phase,
        }
    }

    fn ids(found: &[ContainerSummary]) -> Vec<&str> {
        found.iter().map(|c| c.id.as_str()).collect()
    }

    #[test]
    fn instances_come_newest_first_and_only_of_the_named_container() {
        let all = vec![
            summary("u1", "POD", ContainerKind::Sandbox, 0, Phase::Running),
            summary("u1", "app", ContainerKind::App, 0, Phase::Exited),
            summary("u1", "app", ContainerKind::App, 1, Phase::Running),
            summary("u1", "side", ContainerKind::App, 0, Phase::Running),
        ];
        let found = instances(all, "n1", "default", "web", "app").unwrap();
        assert_eq!(ids(&found), ["u1-app-1", "u1-app-0"]);
    }

    #[test]
    fn the_pod_with_running_containers_wins_over_a_stale_one_of_the_same_name() {
        let all = vec![
            summary("old", "app", ContainerKind::App, 4, Phase::Exited),
            summary("new", "app", ContainerKind::App, 0, Phase::Running),
        ];
        assert_eq!(ids(&instances(all, "n1", "default", "web", "app").unwrap()), ["new-app-0"]);
    }

    #[test]
    fn missing_pods_and_containers_are_not_found_in_kubernetes_words() {
        let all = vec![summary("u1", "app", ContainerKind::App, 0, Phase::Running)];
        let err = instances(all.clone(), "n1", "default", "db", "app").unwrap_err();
        assert_eq!((err.reason, err.message.as_str()), (Reason::NotFound, "pods \"db\" not found on node n1"));
        let err = instances(all, "n1", "default", "web", "x").unwrap_err();
        assert_eq!(err.reason, Reason::NotFound);
        assert_eq!(err.message, "container \"x\" in pod \"web\" is not available");
    }

    #[test]
    fn an_unnamed_container_is_the_pods_only_app_container() {
        let one = vec![
            summary("u1", "init", ContainerKind::Init, 0, Phase::Exited),
            summary("u1", "app", ContainerKind::App, 0, Phase::Running),
        ];
        assert_eq!(ids(&instances(one.clone(), "n1", "default", "web", "").unwrap()), ["u1-app-0"]);
        let mut two = one;
        two.push(summary("u1", "side", ContainerKind::App, 0, Phase::Running));
        let err = instances(two, "n1", "default", "web", "").unwrap_err();
        assert_eq!(err.message, "a container name must be specified for pod web, choose one of: [app side]");
    }
}
