//! The Docker engine as the kubelet's runtime, through bollard.
//!
//! A sandbox is a pause container on the node's pod network
//! ([`rkube_podnet::PodNetwork`], a bridge on the node's podCIDR) or on the
//! host's network; it publishes the pod's host ports and shares its IPC
//! namespace. App and init containers join it with
//! `network_mode: container:<sandbox>`, so a pod's containers share
//! localhost and one IP.

use super::{
    ContainerMeta, ContainerSpec, ContainerState, ContainerStats, ContainerSummary, Error, ExecOutput, ExecSession,
    ExecSpec, ImageDetails, LABEL_NODE, LABEL_POD_UID, LogOptions, LogStream, Peer, Phase, RegistryAuth, ResizeExec,
    Result, Runtime, RuntimeContainer, SandboxSpec, TerminalSize,
};
use crate::images;
use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, ResizeExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerStateStatusEnum, HostConfig, Mount as DockerMount,
    MountType, PortBinding as DockerPortBinding,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, InspectContainerOptions, ListContainersOptions, LogsOptions,
    RemoveContainerOptions, StatsOptions, StopContainerOptions,
};
use futures::{FutureExt, StreamExt};
use k8s_openapi::jiff::Timestamp;
use rkube_podnet::PodNetwork;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::{Mutex, OnceCell};

/// The default pause image (built by `images/build.sh`).
pub const DEFAULT_PAUSE_IMAGE: &str = "rkube/pause:3.9";

/// The Docker runtime of one node.
pub struct DockerRuntime {
    node: String,
    pause_image: String,
    /// `unix:///path` of the engine; None: `$DOCKER_HOST` or the default socket.
    endpoint: Option<String>,
    docker: OnceCell<Docker>,
    network: Mutex<Option<PodNetwork>>,
}

impl std::fmt::Debug for DockerRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerRuntime").field("node", &self.node).field("pause_image", &self.pause_image).finish()
    }
}

fn unavailable(e: impl std::fmt::Display) -> Error {
    Error::Unavailable { message: format!("cannot reach the Docker engine ({e}); is dockerd running?") }
}

/// Whether `e` means the engine could not be reached at all.
fn is_connection_error(e: &bollard::errors::Error) -> bool {
    use bollard::errors::Error as E;
    matches!(e, E::IOError { .. } | E::HyperResponseError { .. } | E::SocketNotFoundError(_) | E::RequestTimeoutError)
}

/// Sorts a bollard error: a refused or broken connection means the engine
/// is down, a 404 means the object is gone, anything else is kept as is.
fn docker_error(context: impl Into<String>, e: bollard::errors::Error) -> Error {
    match e {
        bollard::errors::Error::DockerResponseServerError { status_code: 404, message } => Error::NotFound(message),
        e if is_connection_error(&e) => unavailable(e),
        e => Error::Docker { context: context.into(), source: e },
    }
}

/// The message Docker gave, without bollard's decoration.
fn docker_message(e: &bollard::errors::Error) -> String {
    use bollard::errors::Error as E;
    match e {
        E::DockerResponseServerError { message, .. } => message.clone(),
        E::DockerStreamError { error } => error.clone(),
        other => other.to_string(),
    }
}

fn parse_time(s: Option<&str>) -> Option<Timestamp> {
    let s = s?;
    // Docker says "0001-01-01T00:00:00Z" for "never".
    s.parse::<Timestamp>().ok().filter(|t| t.as_second() > 0)
}

impl DockerRuntime {
    /// A runtime for `node` that makes sandboxes from `pause_image`. Nothing
    /// is sent to Docker until the first call.
    pub fn new(node: &str, pause_image: &str) -> DockerRuntime {
        DockerRuntime {
            node: node.to_string(),
            pause_image: pause_image.to_string(),
            endpoint: None,
            docker: OnceCell::new(),
            network: Mutex::new(None),
        }
    }

    /// Talks to the engine at `endpoint` (`unix:///path`) instead of the default.
    pub fn with_endpoint(mut self, endpoint: Option<String>) -> DockerRuntime {
        self.endpoint = endpoint;
        self
    }

    /// The connection, negotiated on first use (Docker 20.10 speaks API 1.41).
    pub async fn docker(&self) -> Result<&Docker> {
        self.docker
            .get_or_try_init(|| async {
                let docker = match &self.endpoint {
                    Some(endpoint) => Docker::connect_with_unix(endpoint, 120, bollard::API_DEFAULT_VERSION),
                    None => Docker::connect_with_local_defaults(),
                }
                .map_err(unavailable)?;
                docker.negotiate_version().await.map_err(unavailable)
            })
            .await
    }

    /// Removes the node's pod network (its Docker network, rules and
    /// routes), e.g. when decommissioning the node or after a test.
    pub async fn teardown_network(&self) -> Result<()> {
        let Some(network) = self.network.lock().await.take() else { return Ok(()) };
        let docker = self.docker().await?;
        network.teardown(docker).await.map_err(|e| Error::Network(e.to_string()))
    }

    async fn list(&self, filters: HashMap<String, Vec<String>>) -> Result<Vec<bollard::models::ContainerSummary>> {
        let docker = self.docker().await?;
        let opts = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
        docker.list_containers(Some(opts)).await.map_err(|e| docker_error("listing containers", e))
    }

    async fn ensure_image(&self, image: &str) -> Result<()> {
        if self.image_details(image).await?.is_none() {
            self.pull_image(image, &[]).await?;
        }
        Ok(())
    }

    fn convert(&self, inspect: ContainerInspectResponse) -> Option<RuntimeContainer> {
        let config = inspect.config.as_ref()?;
        let meta = ContainerMeta::from_labels(config.labels.as_ref()?)?;
        let state = inspect.state.as_ref();
        let status = state.and_then(|s| s.status).unwrap_or(ContainerStateStatusEnum::EMPTY);
        let started_at = parse_time(state.and_then(|s| s.started_at.as_deref()));
        let exit_code = state.and_then(|s| s.exit_code).unwrap_or(0) as i32;
        let error = state.and_then(|s| s.error.clone()).filter(|e| !e.is_empty());
        let state = match status {
            // A start that failed leaves the container "created" with an
            // exit code and Docker's error: report it as a run that ended
            // (finished when it was created, so its back-off counts from then).
            ContainerStateStatusEnum::CREATED if exit_code != 0 || error.is_some() => ContainerState::Exited {
                exit_code,
                started_at: None,
                finished_at: parse_time(inspect.created.as_deref()),
                oom_killed: false,
                error,
            },
            ContainerStateStatusEnum::CREATED => ContainerState::Created,
            ContainerStateStatusEnum::RUNNING
            | ContainerStateStatusEnum::PAUSED
            | ContainerStateStatusEnum::RESTARTING => {
                ContainerState::Running { started_at: started_at.unwrap_or_else(Timestamp::now) }
            }
            _ => ContainerState::Exited {
                exit_code,
                started_at,
                finished_at: parse_time(state.and_then(|s| s.finished_at.as_deref())),
                oom_killed: state.and_then(|s| s.oom_killed).unwrap_or(false),
                error,
            },
        };
        let networks = inspect.network_settings.as_ref().and_then(|n| n.networks.as_ref());
        let ip = networks.and_then(|nets| {
            let own = nets.get(&rkube_podnet::bridge::network_name(&self.node));
            own.into_iter().chain(nets.values()).filter_map(|n| n.ip_address.clone()).find(|ip| !ip.is_empty())
        });
        Some(RuntimeContainer {
            id: inspect.id.clone()?,
            meta,
            image: config.image.clone().unwrap_or_default(),
            image_id: inspect.image.clone().unwrap_or_default(),
            state,
            ip,
        })
    }
}

fn mount(m: &super::Mount) -> DockerMount {
    DockerMount {
        target: Some(m.container_path.clone()),
        source: Some(m.host_path.clone()),
        typ: Some(MountType::BIND),
        read_only: Some(m.read_only),
        ..Default::default()
    }
}

impl Runtime for DockerRuntime {
    async fn version(&self) -> Result<String> {
        let docker = self.docker().await?;
        let v = docker.version().await.map_err(unavailable)?;
        Ok(format!("docker://{}", v.version.unwrap_or_default()))
    }

    fn id_scheme(&self) -> &'static str {
        "docker"
    }

    fn needs_pod_cidr(&self) -> bool {
        true
    }

    async fn setup_network(&self, pod_cidr: &str, cluster_cidr: &str) -> Result<()> {
        let mut network = self.network.lock().await;
        if network.as_ref().is_some_and(|n| n.pod_cidr() == pod_cidr || n.pod_cidr() == normalize_cidr(pod_cidr)) {
            return Ok(());
        }
        let docker = self.docker().await?;
        let net = PodNetwork::ensure(docker, &self.node, pod_cidr, cluster_cidr)
            .await
            .map_err(|e| Error::Network(e.to_string()))?;
        *network = Some(net);
        Ok(())
    }

    async fn sync_routes(&self, peers: &[Peer]) -> Result<()> {
        let network = self.network.lock().await;
        match network.as_ref() {
            Some(n) => n.sync_routes(peers).await.map_err(|e| Error::Network(e.to_string())),
            None => Ok(()),
        }
    }

    async fn list_containers(&self) -> Result<Vec<ContainerSummary>> {
        let filters = HashMap::from([("label".to_string(), vec![format!("{LABEL_NODE}={}", self.node)])]);
        let found = self.list(filters).await?;
        Ok(found
            .into_iter()
            .filter_map(|c| {
                let meta = ContainerMeta::from_labels(c.labels.as_ref()?)?;
                use bollard::models::ContainerSummaryStateEnum as S;
                let phase = match c.state {
                    Some(S::CREATED) => Phase::Created,
                    Some(S::RUNNING | S::PAUSED | S::RESTARTING) => Phase::Running,
                    _ => Phase::Exited,
                };
                Some(ContainerSummary { id: c.id?, meta, phase })
            })
            .collect())
    }

    async fn pod_containers(&self, pod_uid: &str) -> Result<Vec<RuntimeContainer>> {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("{LABEL_NODE}={}", self.node), format!("{LABEL_POD_UID}={pod_uid}")],
        )]);
        let docker = self.docker().await?;
        let mut out = Vec::new();
        for c in self.list(filters).await? {
            let Some(id) = c.id else { continue };
            match docker.inspect_container(&id, None::<InspectContainerOptions>).await {
                Ok(inspect) => out.extend(self.convert(inspect)),
                Err(e) => match docker_error("inspecting container", e) {
                    Error::NotFound(_) => {} // removed in between
                    e => return Err(e),
                },
            }
        }
        Ok(out)
    }

    async fn image_details(&self, image: &str) -> Result<Option<ImageDetails>> {
        let docker = self.docker().await?;
        match docker.inspect_image(image).await {
            Ok(i) => {
                let config = i.config.unwrap_or_default();
                Ok(Some(ImageDetails {
                    id: i.id.unwrap_or_default(),
                    entrypoint: config.entrypoint.unwrap_or_default(),
                    cmd: config.cmd.unwrap_or_default(),
                }))
            }
            Err(e) => match docker_error(format!("inspecting image {image}"), e) {
                Error::NotFound(_) => Ok(None),
                e => Err(e),
            },
        }
    }

    async fn pull_image(&self, image: &str, auths: &[RegistryAuth]) -> Result<()> {
        let docker = self.docker().await?;
        let reference = images::with_default_tag(image);
        let attempts: Vec<Option<DockerCredentials>> = if auths.is_empty() {
            vec![None]
        } else {
            auths
                .iter()
                .map(|a| {
                    Some(DockerCredentials {
                        username: a.username.clone(),
                        password: a.password.clone(),
                        auth: a.auth.clone(),
                        serveraddress: Some(a.server.clone()),
                        ..Default::default()
                    })
                })
                .collect()
        };
        let mut last_error = String::new();
        for credentials in attempts {
            let opts = CreateImageOptions { from_image: Some(reference.clone()), ..Default::default() };
            let mut progress = docker.create_image(Some(opts), None, credentials);
            let mut failed = None;
            while let Some(item) = progress.next().await {
                if let Err(e) = item {
                    failed = Some(e);
                    break;
                }
            }
            match failed {
                None => return Ok(()),
                Some(e) => {
                    if is_connection_error(&e) {
                        return Err(unavailable(e));
                    }
                    last_error = docker_message(&e);
                }
            }
        }
        Err(Error::ImagePull { image: image.to_string(), message: last_error })
    }

    async fn run_sandbox(&self, spec: &SandboxSpec) -> Result<String> {
        self.ensure_image(&self.pause_image).await?;
        let docker = self.docker().await?;
        let network_mode = if spec.host_network {
            "host".to_string()
        } else {
            let network = self.network.lock().await;
            let Some(n) = network.as_ref() else {
                return Err(Error::Network("the node's pod network is not set up yet (no podCIDR?)".into()));
            };
            n.docker_network().to_string()
        };
        let mut bindings: HashMap<String, Option<Vec<DockerPortBinding>>> = HashMap::new();
        for p in spec.ports.iter().filter(|_| !spec.host_network) {
            bindings.entry(format!("{}/{}", p.container_port, p.protocol)).or_default().get_or_insert_default().push(
                DockerPortBinding {
                    host_ip: (!p.host_ip.is_empty()).then(|| p.host_ip.clone()),
                    host_port: Some(p.host_port.to_string()),
                },
            );
        }
        let exposed: Vec<String> = bindings.keys().cloned().collect();
        let body = ContainerCreateBody {
            image: Some(self.pause_image.clone()),
            hostname: (!spec.host_network).then(|| spec.hostname.clone()),
            labels: Some(spec.meta.to_labels(&self.node)),
            exposed_ports: (!exposed.is_empty()).then_some(exposed),
            host_config: Some(HostConfig {
                network_mode: Some(network_mode),
                port_bindings: (!bindings.is_empty()).then_some(bindings),
                ipc_mode: Some("shareable".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let name = spec.meta.container_name();
        let opts = CreateContainerOptions { name: Some(name.clone()), ..Default::default() };
        let id = docker
            .create_container(Some(opts), body)
            .await
            .map_err(|e| docker_error(format!("creating sandbox {name}"), e))?
            .id;
        if let Err(e) = self.start_container(&id).await {
            let _ = self.remove_container(&id).await;
            return Err(e);
        }
        Ok(id)
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String> {
        let docker = self.docker().await?;
        let r = &spec.resources;
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            entrypoint: Some(spec.entrypoint.clone()),
            cmd: Some(spec.cmd.clone()),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            working_dir: (!spec.working_dir.is_empty()).then(|| spec.working_dir.clone()),
            labels: Some(spec.meta.to_labels(&self.node)),
            tty: Some(spec.tty),
            open_stdin: Some(spec.stdin),
            host_config: Some(HostConfig {
                network_mode: Some(format!("container:{}", spec.sandbox_id)),
                ipc_mode: Some(format!("container:{}", spec.sandbox_id)),
                mounts: Some(spec.mounts.iter().map(mount).collect()),
                memory: r.memory_limit,
                // No swap beyond the limit, as Kubernetes does.
                memory_swap: r.memory_limit,
                cpu_shares: Some(r.cpu_shares),
                cpu_quota: r.cpu_quota,
                cpu_period: r.cpu_period,
                privileged: Some(spec.privileged),
                ..Default::default()
            }),
            ..Default::default()
        };
        let name = spec.meta.container_name();
        let opts = CreateContainerOptions { name: Some(name.clone()), ..Default::default() };
        Ok(docker
            .create_container(Some(opts), body)
            .await
            .map_err(|e| docker_error(format!("creating container {name}"), e))?
            .id)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        let docker = self.docker().await?;
        docker.start_container(id, None).await.map_err(|e| docker_error(format!("starting container {id}"), e))
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> Result<()> {
        let docker = self.docker().await?;
        let t = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
        match docker.stop_container(id, Some(StopContainerOptions { t: Some(t), ..Default::default() })).await {
            Ok(()) => Ok(()),
            // 304: already stopped.
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 304, .. }) => Ok(()),
            Err(e) => match docker_error(format!("stopping container {id}"), e) {
                Error::NotFound(_) => Ok(()),
                e => Err(e),
            },
        }
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        let docker = self.docker().await?;
        let opts = RemoveContainerOptions { force: true, v: true, ..Default::default() };
        match docker.remove_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) => match docker_error(format!("removing container {id}"), e) {
                Error::NotFound(_) => Ok(()),
                e => Err(e),
            },
        }
    }

    async fn container_logs(&self, id: &str, options: &LogOptions) -> Result<LogStream> {
        let docker = self.docker().await?;
        let opts = LogsOptions {
            follow: options.follow,
            stdout: true,
            stderr: true,
            // Docker takes whole seconds; 0 means "from the start".
            since: options.since.map_or(0, |t| i32::try_from(t.as_second()).unwrap_or(i32::MAX).max(1)),
            until: 0,
            timestamps: options.timestamps,
            tail: options.tail_lines.map_or_else(|| "all".to_string(), |n| n.to_string()),
        };
        let context = format!("reading the logs of container {id}");
        let stream = docker.logs(id, Some(opts)).map(move |chunk| match chunk {
            Ok(output) => Ok(output.into_bytes()),
            Err(e) => Err(docker_error(context.clone(), e)),
        });
        Ok(stream.boxed())
    }

    async fn exec_attached(&self, id: &str, spec: &ExecSpec) -> Result<ExecSession> {
        let docker = self.docker().await?.clone();
        let config = CreateExecOptions {
            attach_stdin: Some(spec.stdin),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(spec.tty),
            cmd: Some(spec.command.clone()),
            ..Default::default()
        };
        let exec_id = docker
            .create_exec(id, config)
            .await
            .map_err(|e| docker_error(format!("creating an exec in container {id}"), e))?
            .id;
        let start = StartExecOptions { detach: false, tty: spec.tty, output_capacity: None };
        let started = docker
            .start_exec(&exec_id, Some(start))
            .await
            .map_err(|e| docker_error(format!("starting exec {exec_id}"), e))?;
        let StartExecResults::Attached { output, input } = started else {
            return Err(Error::Unsupported(format!("exec {exec_id} started detached")));
        };
        let resize: ResizeExec = {
            let (docker, exec_id) = (docker.clone(), exec_id.clone());
            Box::new(move |size: TerminalSize| {
                let (docker, exec_id) = (docker.clone(), exec_id.clone());
                async move {
                    let opts = ResizeExecOptions { width: size.width, height: size.height };
                    docker.resize_exec(&exec_id, opts).await.map_err(|e| docker_error("resizing an exec's TTY", e))
                }
                .boxed()
            })
        };
        if spec.tty
            && let Some(size) = spec.size
            && let Err(e) = resize(size).await
        {
            tracing::debug!(exec = %exec_id, error = %e, "could not size the exec's TTY");
        }
        let output = output.filter_map(move |item| {
            std::future::ready(match item {
                Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                    Some(Ok(ExecOutput::Stdout(message)))
                }
                Ok(LogOutput::StdErr { message }) => Some(Ok(ExecOutput::Stderr(message))),
                Ok(LogOutput::StdIn { .. }) => None,
                Err(e) => Some(Err(docker_error("reading an exec's output", e))),
            })
        });
        Ok(ExecSession {
            output: output.boxed(),
            stdin: spec.stdin.then_some(input),
            resize,
            exit_code: exec_exit_code(docker, exec_id).boxed(),
        })
    }

    async fn container_stats(&self, id: &str) -> Result<ContainerStats> {
        let docker = self.docker().await?;
        // Not one-shot: Docker then waits for a second sample and fills
        // precpu_stats, which gives the current CPU rate.
        let opts = StatsOptions { stream: false, one_shot: false };
        let context = format!("reading the stats of container {id}");
        match docker.stats(id, Some(opts)).next().await {
            Some(Ok(s)) => Ok(container_stats(&s)),
            Some(Err(e)) => Err(docker_error(context, e)),
            None => Err(Error::NotFound(format!("no stats for container {id}"))),
        }
    }
}

/// How long an exec may still report itself running after its output ended.
const EXEC_EXIT_WAIT: Duration = Duration::from_secs(5);

/// The exit code of exec `exec_id`, once Docker has recorded it.
async fn exec_exit_code(docker: Docker, exec_id: String) -> Result<i32> {
    let deadline = tokio::time::Instant::now() + EXEC_EXIT_WAIT;
    loop {
        let inspect =
            docker.inspect_exec(&exec_id).await.map_err(|e| docker_error(format!("inspecting exec {exec_id}"), e))?;
        if inspect.running != Some(true)
            && let Some(code) = inspect.exit_code
        {
            return Ok(i32::try_from(code).unwrap_or(1));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Unsupported(format!("exec {exec_id} still runs after its output ended")));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A container's usage from one Docker stats answer (cgroup v1 or v2).
fn container_stats(s: &bollard::models::ContainerStatsResponse) -> ContainerStats {
    let total = |c: Option<&bollard::models::ContainerCpuStats>| {
        c.and_then(|c| c.cpu_usage.as_ref()).and_then(|u| u.total_usage).unwrap_or(0)
    };
    let read = parse_time(s.read.as_deref());
    let preread = parse_time(s.preread.as_deref());
    let (used, preused) = (total(s.cpu_stats.as_ref()), total(s.precpu_stats.as_ref()));
    let nano_cores = match (read, preread) {
        (Some(read), Some(preread)) if preused > 0 && used >= preused => {
            let wall = read.as_nanosecond() - preread.as_nanosecond();
            (wall > 0).then(|| u64::try_from(i128::from(used - preused) * 1_000_000_000 / wall).unwrap_or(u64::MAX))
        }
        _ => None,
    };
    let memory = s.memory_stats.as_ref();
    let usage = memory.and_then(|m| m.usage).unwrap_or(0);
    let inactive_file = memory
        .and_then(|m| m.stats.as_ref())
        .and_then(|st| st.get("total_inactive_file").or_else(|| st.get("inactive_file")).copied())
        .unwrap_or(0);
    ContainerStats {
        time: read,
        cpu_usage_core_nanos: used,
        cpu_usage_nano_cores: nano_cores,
        memory_usage_bytes: usage,
        memory_working_set_bytes: usage.saturating_sub(inactive_file),
        memory_limit_bytes: memory.and_then(|m| m.limit).filter(|l| *l > 0),
    }
}

fn normalize_cidr(cidr: &str) -> String {
    cidr.parse::<rkube_api::cidr::Ipv4Cidr>().map(|c| c.to_string()).unwrap_or_else(|_| cidr.to_string())
}
