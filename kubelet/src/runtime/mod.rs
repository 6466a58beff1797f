//! The container runtime behind the kubelet: the [`Runtime`] trait (like
//! krustlet's `Provider` / Kubernetes' CRI) and its two implementations,
//! [`docker::DockerRuntime`] (bollard) and [`fake::FakeRuntime`] (hollow nodes
//! and tests).
//!
//! A pod is a *sandbox* (the pause container that holds the network
//! namespace) plus its init and app containers, which join the sandbox's
//! namespaces. Every container carries [`ContainerMeta`] as labels, so the
//! kubelet can always rebuild what runs from the runtime alone: after a
//! restart it adopts running containers instead of starting duplicates.

pub mod docker;
pub mod fake;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use k8s_openapi::jiff::Timestamp;
pub use rkube_podnet::Peer;
use tokio::io::AsyncWrite;

/// Label: the uid of the pod a container belongs to.
pub const LABEL_POD_UID: &str = "io.rkube.pod.uid";
/// Label: the pod's namespace.
pub const LABEL_POD_NAMESPACE: &str = "io.rkube.pod.namespace";
/// Label: the pod's name.
pub const LABEL_POD_NAME: &str = "io.rkube.pod.name";
/// Label: the container's name in the pod spec (`POD` for the sandbox).
pub const LABEL_CONTAINER_NAME: &str = "io.rkube.container.name";
/// Label: `podsandbox`, `init` or `app`.
pub const LABEL_CONTAINER_KIND: &str = "io.rkube.container.kind";
/// Label: the node whose kubelet manages the container.
pub const LABEL_NODE: &str = "io.rkube.node";
/// Label: the attempt number, i.e. the container's restart count.
pub const LABEL_RESTART_COUNT: &str = "io.rkube.container.restart-count";
/// Label: the hash of the container's spec; a change restarts the container.
pub const LABEL_CONTAINER_HASH: &str = "io.rkube.container.hash";
/// Label: the pod's termination grace period, for stopping orphans.
pub const LABEL_GRACE_PERIOD: &str = "io.rkube.pod.termination-grace-period";

/// The container name that stands for the sandbox in labels.
pub const SANDBOX_NAME: &str = "POD";

/// What went wrong in the runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The runtime (the Docker engine) cannot be reached.
    #[error("container runtime is down: {message}")]
    Unavailable {
        /// Why, as the client library said it.
        message: String,
    },
    /// A call to the Docker engine failed.
    #[error("docker: {context}: {source}")]
    Docker {
        /// What the kubelet was doing.
        context: String,
        /// The engine's error.
        #[source]
        source: bollard::errors::Error,
    },
    /// Pulling an image failed; `message` is the registry's or engine's.
    #[error("{message}")]
    ImagePull {
        /// The image.
        image: String,
        /// Docker's message.
        message: String,
    },
    /// The pod network could not be set up.
    #[error("pod network: {0}")]
    Network(String),
    /// A container the kubelet asked about does not exist (any more).
    #[error("container {0} not found")]
    NotFound(String),
    /// The runtime cannot do what the spec asks.
    #[error("{0}")]
    Unsupported(String),
}

/// `Result` with the runtime's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The role of a container in its pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ContainerKind {
    /// The pause container holding the pod's namespaces.
    Sandbox,
    /// An init container.
    Init,
    /// An app container.
    App,
}

impl ContainerKind {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerKind::Sandbox => "podsandbox",
            ContainerKind::Init => "init",
            ContainerKind::App => "app",
        }
    }

    fn parse(s: &str) -> Option<ContainerKind> {
        match s {
            "podsandbox" => Some(ContainerKind::Sandbox),
            "init" => Some(ContainerKind::Init),
            "app" => Some(ContainerKind::App),
            _ => None,
        }
    }
}

/// Who a container is: stored as labels on the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerMeta {
    /// The pod's uid.
    pub pod_uid: String,
    /// The pod's namespace.
    pub pod_namespace: String,
    /// The pod's name.
    pub pod_name: String,
    /// The container's name in the pod spec ([`SANDBOX_NAME`] for the sandbox).
    pub name: String,
    /// Sandbox, init or app.
    pub kind: ContainerKind,
    /// 0 for the first run, +1 for each restart.
    pub attempt: u32,
    /// Hash of the container's spec.
    pub hash: String,
    /// The pod's termination grace period in seconds.
    pub grace_period: i64,
}

impl ContainerMeta {
    /// The labels that carry this identity, for a container on `node`.
    pub fn to_labels(&self, node: &str) -> HashMap<String, String> {
        [
            (LABEL_POD_UID, self.pod_uid.clone()),
            (LABEL_POD_NAMESPACE, self.pod_namespace.clone()),
            (LABEL_POD_NAME, self.pod_name.clone()),
            (LABEL_CONTAINER_NAME, self.name.clone()),
            (LABEL_CONTAINER_KIND, self.kind.as_str().to_string()),
            (LABEL_NODE, node.to_string()),
            (LABEL_RESTART_COUNT, self.attempt.to_string()),
            (LABEL_CONTAINER_HASH, self.hash.clone()),
            (LABEL_GRACE_PERIOD, self.grace_period.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The identity in `labels`, or None for a container the kubelet did not make.
    pub fn from_labels(labels: &HashMap<String, String>) -> Option<ContainerMeta> {
        let get = |k: &str| labels.get(k).cloned();
        Some(ContainerMeta {
            pod_uid: get(LABEL_POD_UID)?,
            pod_namespace: get(LABEL_POD_NAMESPACE)?,
            pod_name: get(LABEL_POD_NAME)?,
            name: get(LABEL_CONTAINER_NAME)?,
            kind: ContainerKind::parse(&get(LABEL_CONTAINER_KIND)?)?,
            attempt: get(LABEL_RESTART_COUNT).and_then(|a| a.parse().ok()).unwrap_or(0),
            hash: get(LABEL_CONTAINER_HASH).unwrap_or_default(),
            grace_period: get(LABEL_GRACE_PERIOD).and_then(|g| g.parse().ok()).unwrap_or(30),
        })
    }

    /// A runtime-side name: `rkube_<container>_<pod>_<namespace>_<uid>_<attempt>`.
    pub fn container_name(&self) -> String {
        format!("rkube_{}_{}_{}_{}_{}", self.name, self.pod_name, self.pod_namespace, self.pod_uid, self.attempt)
    }
}

/// A container's state in the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    /// Created but never started (a start failed, or the kubelet stopped in between).
    Created,
    /// Running since `started_at`.
    Running {
        /// When it started.
        started_at: Timestamp,
    },
    /// Exited.
    Exited {
        /// The exit code.
        exit_code: i32,
        /// When it started.
        started_at: Option<Timestamp>,
        /// When it exited.
        finished_at: Option<Timestamp>,
        /// Whether the kernel killed it for exceeding its memory limit.
        oom_killed: bool,
        /// The runtime's error, if it could not run the process at all.
        error: Option<String>,
    },
}

/// A container as the runtime reports it, with its identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeContainer {
    /// The runtime's id.
    pub id: String,
    /// Who it is.
    pub meta: ContainerMeta,
    /// The image it was created from, as named in the spec.
    pub image: String,
    /// The image's id (`sha256:…`).
    pub image_id: String,
    /// Its state.
    pub state: ContainerState,
    /// For sandboxes: the pod IP.
    pub ip: Option<String>,
}

impl RuntimeContainer {
    /// Whether it runs.
    pub fn is_running(&self) -> bool {
        matches!(self.state, ContainerState::Running { .. })
    }
}

/// Where a container is in its life, briefly (for noticing changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Created, not (yet) started.
    Created,
    /// Running.
    Running,
    /// Exited.
    Exited,
}

/// A brief view of a container, for noticing changes and finding orphans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSummary {
    /// The runtime's id.
    pub id: String,
    /// Who it is.
    pub meta: ContainerMeta,
    /// Created, running or exited.
    pub phase: Phase,
}

impl ContainerSummary {
    /// Whether it runs.
    pub fn is_running(&self) -> bool {
        self.phase == Phase::Running
    }
}

/// What an image says to run, for Kubernetes' command/args rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageDetails {
    /// The image id.
    pub id: String,
    /// The image's ENTRYPOINT.
    pub entrypoint: Vec<String>,
    /// The image's CMD.
    pub cmd: Vec<String>,
}

/// Credentials for one registry (from an imagePullSecret).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryAuth {
    /// The registry (`docker.io`, `registry.example.com:5000`).
    pub server: String,
    /// User name.
    pub username: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// `base64(user:password)`, as in a docker config file.
    pub auth: Option<String>,
}

/// A host port published for the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortBinding {
    /// The port in the pod.
    pub container_port: u16,
    /// The port on the host.
    pub host_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    /// The host address to bind ("" for all).
    pub host_ip: String,
}

/// How to create a pod's sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSpec {
    /// Its identity (name [`SANDBOX_NAME`]).
    pub meta: ContainerMeta,
    /// The pod's hostname.
    pub hostname: String,
    /// Whether the pod uses the host's network namespace.
    pub host_network: bool,
    /// Host ports of every container in the pod.
    pub ports: Vec<PortBinding>,
}

/// A bind mount into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The path on the host.
    pub host_path: String,
    /// The path in the container.
    pub container_path: String,
    /// Whether the mount is read-only.
    pub read_only: bool,
}

/// cgroup settings of a container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// Memory limit in bytes.
    pub memory_limit: Option<i64>,
    /// CPU shares (relative weight, from the CPU request).
    pub cpu_shares: i64,
    /// CFS quota in µs per period (from the CPU limit).
    pub cpu_quota: Option<i64>,
    /// CFS period in µs.
    pub cpu_period: Option<i64>,
}

/// How to create a container in a sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    /// Its identity.
    pub meta: ContainerMeta,
    /// The image.
    pub image: String,
    /// The process: ENTRYPOINT part.
    pub entrypoint: Vec<String>,
    /// The process: CMD part.
    pub cmd: Vec<String>,
    /// `NAME=value` pairs.
    pub env: Vec<(String, String)>,
    /// The working directory ("" for the image's).
    pub working_dir: String,
    /// Bind mounts.
    pub mounts: Vec<Mount>,
    /// cgroup settings.
    pub resources: Resources,
    /// Whether the container is privileged.
    pub privileged: bool,
    /// Whether to allocate a TTY.
    pub tty: bool,
    /// Whether to keep stdin open.
    pub stdin: bool,
    /// The sandbox whose namespaces it joins.
    pub sandbox_id: String,
    /// Whether the pod uses the host's network namespace.
    pub host_network: bool,
}

/// A container runtime, seen from the kubelet. Every method is idempotent
/// where it can be (stopping a stopped container, removing a removed one).
pub trait Runtime: Send + Sync + 'static {
    /// The runtime and its version (`docker://20.10.24`); fails when the
    /// runtime is unreachable.
    fn version(&self) -> impl Future<Output = Result<String>> + Send;

    /// Prefix of container ids in pod status (`docker`).
    fn id_scheme(&self) -> &'static str;

    /// Whether pods need the node's podCIDR before they can get an IP.
    fn needs_pod_cidr(&self) -> bool;

    /// Sets up the node's pod network on `pod_cidr` (idempotent).
    fn setup_network(&self, pod_cidr: &str, cluster_cidr: &str) -> impl Future<Output = Result<()>> + Send;

    /// Makes the routes to other nodes' pod subnets match `peers`.
    fn sync_routes(&self, peers: &[Peer]) -> impl Future<Output = Result<()>> + Send;

    /// Every container the kubelet made on this node.
    fn list_containers(&self) -> impl Future<Output = Result<Vec<ContainerSummary>>> + Send;

    /// The containers of one pod, in detail.
    fn pod_containers(&self, pod_uid: &str) -> impl Future<Output = Result<Vec<RuntimeContainer>>> + Send;

    /// The image, if present on the node.
    fn image_details(&self, image: &str) -> impl Future<Output = Result<Option<ImageDetails>>> + Send;

    /// Pulls `image`, trying each credential in turn (anonymous if none).
    fn pull_image(&self, image: &str, auths: &[RegistryAuth]) -> impl Future<Output = Result<()>> + Send;

    /// Creates and starts a pod sandbox; returns its id.
    fn run_sandbox(&self, spec: &SandboxSpec) -> impl Future<Output = Result<String>> + Send;

    /// Creates a container; returns its id.
    fn create_container(&self, spec: &ContainerSpec) -> impl Future<Output = Result<String>> + Send;

    /// Starts a created container.
    fn start_container(&self, id: &str) -> impl Future<Output = Result<()>> + Send;

    /// Stops a container: SIGTERM, then SIGKILL after `grace`.
    fn stop_container(&self, id: &str, grace: Duration) -> impl Future<Output = Result<()>> + Send;

    /// Removes a container (and its anonymous volumes).
    fn remove_container(&self, id: &str) -> impl Future<Output = Result<()>> + Send;

    /// The output of container `id`: stdout and stderr in the order they
    /// were written; with `follow`, until the container stops.
    fn container_logs(&self, id: &str, options: &LogOptions) -> impl Future<Output = Result<LogStream>> + Send;

    /// Starts `spec.command` in running container `id`, attached to its
    /// output (and stdin, if asked for).
    fn exec_attached(&self, id: &str, spec: &ExecSpec) -> impl Future<Output = Result<ExecSession>> + Send;

    /// The resource usage of container `id` now.
    fn container_stats(&self, id: &str) -> impl Future<Output = Result<ContainerStats>> + Send;

    /// Whether probes really run against this runtime's containers; a
    /// hollow node's runtime says no, and its probes count as succeeding.
    fn runs_probes(&self) -> bool {
        true
    }
}

/// Which part of a container's output to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep streaming new output until the container stops.
    pub follow: bool,
    /// Only the last this many lines.
    pub tail_lines: Option<u64>,
    /// Prefix each line with its RFC 3339 timestamp.
    pub timestamps: bool,
    /// Only output written since then.
    pub since: Option<Timestamp>,
}

/// A container's output, chunk by chunk.
pub type LogStream = BoxStream<'static, Result<Bytes>>;

/// The size of a terminal, in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TerminalSize {
    /// Columns.
    pub width: u16,
    /// Rows.
    pub height: u16,
}

/// A command to run in a container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecSpec {
    /// The command and its arguments.
    pub command: Vec<String>,
    /// Whether the command gets a stdin.
    pub stdin: bool,
    /// Whether it runs on a TTY (stdout and stderr are then one stream).
    pub tty: bool,
    /// The TTY's initial size.
    pub size: Option<TerminalSize>,
}

/// A piece of a command's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecOutput {
    /// Written to stdout (or the TTY).
    Stdout(Bytes),
    /// Written to stderr.
    Stderr(Bytes),
}

/// Resizes an exec's TTY.
pub type ResizeExec = Box<dyn Fn(TerminalSize) -> BoxFuture<'static, Result<()>> + Send + Sync>;

/// A command running in a container.
pub struct ExecSession {
    /// Its output; ends when the command has exited.
    pub output: BoxStream<'static, Result<ExecOutput>>,
    /// Its stdin, when asked for; shutting it down (or dropping it) closes it.
    pub stdin: Option<Pin<Box<dyn AsyncWrite + Send>>>,
    /// Resizes its TTY.
    pub resize: ResizeExec,
    /// Its exit code, once `output` has ended.
    pub exit_code: BoxFuture<'static, Result<i32>>,
}

impl std::fmt::Debug for ExecSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecSession").field("stdin", &self.stdin.is_some()).finish_non_exhaustive()
    }
}

/// The resource usage of one container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerStats {
    /// When it was measured.
    pub time: Option<Timestamp>,
    /// CPU time used since the container started, in nanoseconds.
    pub cpu_usage_core_nanos: u64,
    /// Recent CPU use in billionths of a core, when the runtime had two samples.
    pub cpu_usage_nano_cores: Option<u64>,
    /// Memory in use, page cache included.
    pub memory_usage_bytes: u64,
    /// Memory in use minus inactive page cache (what the OOM killer looks at).
    pub memory_working_set_bytes: u64,
    /// The memory limit, if any.
    pub memory_limit_bytes: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> ContainerMeta {
        ContainerMeta {
            pod_uid: "u-1".into(),
            pod_namespace: "default".into(),
            pod_name: "web".into(),
            name: "app".into(),
            kind: ContainerKind::Init,
            attempt: 3,
            hash: "abc".into(),
            grace_period: 5,
        }
    }

    #[test]
    fn identity_round_trips_through_labels() {
        let labels = meta().to_labels("n1");
        assert_eq!(labels[LABEL_NODE], "n1");
        assert_eq!(ContainerMeta::from_labels(&labels), Some(meta()));
    }

    #[test]
    fn containers_without_identity_labels_are_not_ours() {
        let mut labels = meta().to_labels("n1");
        labels.remove(LABEL_POD_UID);
        assert_eq!(ContainerMeta::from_labels(&labels), None);
    }

    #[test]
    fn runtime_names_spell_out_the_identity() {
        assert_eq!(meta().container_name(), "rkube_app_web_default_u-1_3");
    }
}
