//! Container probes (Kubernetes' prober): liveness, readiness and startup
//! probes, each an exec, httpGet or tcpSocket check on its own timer.
//!
//! [`Prober::sync_pod`] (called by every pod sync) starts one worker — a
//! tokio task with a sleep loop — per probe of each running app container,
//! and stops the workers of containers that no longer run. A worker waits
//! until the container has run `initialDelaySeconds`, then probes every
//! `periodSeconds`, each probe bounded by `timeoutSeconds`. A result counts
//! once it repeated `successThreshold` / `failureThreshold` times in a row
//! ([`Counter`]); when the counted result changes, the worker stores it
//! under the container's id and queues the pod, so the next sync acts on it
//! at once:
//!
//! - startup: until it succeeds, the container's liveness and readiness
//!   probes wait and it is neither `started` nor `ready`; failing it
//!   restarts the container;
//! - liveness: failing it kills the container, which restarts per the
//!   pod's restartPolicy ([`crate::pod::lifecycle`]);
//! - readiness: drives the container's `ready`, and so the pod's
//!   ContainersReady/Ready conditions ([`crate::pod::status`]); a container
//!   without one is ready once it runs (and has started).
//!
//! Every failed probe is a Warning Event `Unhealthy`. A new container
//! instance gets new workers (results are kept per container id), so a
//! restarted container starts with a clean slate. On runtimes whose
//! [`Runtime::runs_probes`] is false (hollow nodes) no worker runs and
//! every probe counts as succeeding.
//!
//! httpGet probes speak plain HTTP/1.1 (a 3xx counts as success without
//! being followed); HTTPS is refused, as rkubelet links no TLS client.

use crate::pod::lifecycle::Observed;
use crate::runtime::{ContainerKind, ContainerState, ExecOutput, ExecSpec, Runtime, RuntimeContainer};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Container, Pod, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use rkube_client::events::EventRecorder;
use rkube_client::{ObjectKey, WorkQueue};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};

/// The most of an exec probe's output kept for its event (Kubernetes keeps 10 KiB).
pub const MAX_OUTPUT: usize = 10 * 1024;
/// The most of an HTTP response head read before giving up on it.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;
/// The User-Agent of httpGet probes, as Kubernetes sends it.
const USER_AGENT: &str = "kube-probe/1.33";

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProbeKind {
    /// Gates the other two until the container has started.
    Startup,
    /// Restarts the container when it fails.
    Liveness,
    /// Decides whether the container is ready.
    Readiness,
}

impl ProbeKind {
    /// Every kind, in the order they matter to a new container.
    pub const ALL: [ProbeKind; 3] = [ProbeKind::Startup, ProbeKind::Liveness, ProbeKind::Readiness];

    /// `liveness`, `readiness` or `startup`, for messages.
    pub fn name(self) -> &'static str {
        match self {
            ProbeKind::Startup => "startup",
            ProbeKind::Liveness => "liveness",
            ProbeKind::Readiness => "readiness",
        }
    }

    /// `Liveness`, `Readiness` or `Startup`, for event messages.
    pub fn title(self) -> &'static str {
        match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
        }
    }

    /// The container's probe of this kind.
    pub fn of(self, c: &Container) -> Option<&Probe> {
        match self {
            ProbeKind::Startup => c.startup_probe.as_ref(),
            ProbeKind::Liveness => c.liveness_probe.as_ref(),
            ProbeKind::Readiness => c.readiness_probe.as_ref(),
        }
    }
}

/// An httpGet probe's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpGet {
    /// Whether the scheme is HTTPS.
    pub https: bool,
    /// The host to connect to (None: the pod's IP).
    pub host: Option<String>,
    /// The port.
    pub port: u16,
    /// The path (and query), starting with `/`.
    pub path: String,
    /// Extra headers, in order.
    pub headers: Vec<(String, String)>,
}

/// What a probe does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Runs a command in the container; exit 0 is success.
    Exec(Vec<String>),
    /// Sends a GET; 200 ≤ status < 400 is success.
    Http(HttpGet),
    /// Opens a TCP connection; connecting is success.
    Tcp {
        /// The host to connect to (None: the pod's IP).
        host: Option<String>,
        /// The port.
        port: u16,
    },
    /// The probe cannot run as written; it fails with this reason.
    Invalid(String),
}

/// A probe with its timings, the defaults (0/10/1/1/3) filled in for
/// fields the apiserver did not default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    /// What to do.
    pub action: Action,
    /// How long the container runs before the first probe.
    pub initial_delay: Duration,
    /// Between probes.
    pub period: Duration,
    /// How long one probe may take.
    pub timeout: Duration,
    /// Successes in a row that make the result a success.
    pub success_threshold: u32,
    /// Failures in a row that make the result a failure.
    pub failure_threshold: u32,
}

fn seconds(v: Option<i32>, default: u64, min: u64) -> Duration {
    Duration::from_secs(v.and_then(|s| u64::try_from(s).ok()).unwrap_or(default).max(min))
}

fn count(v: Option<i32>, default: u32) -> u32 {
    v.and_then(|s| u32::try_from(s).ok()).unwrap_or(default).max(1)
}

impl ProbeSpec {
    /// The probe `probe` of container `c`: named ports resolved, defaults applied.
    pub fn new(probe: &Probe, c: &Container) -> ProbeSpec {
        ProbeSpec {
            action: action(probe, c),
            initial_delay: seconds(probe.initial_delay_seconds, 0, 0),
            period: seconds(probe.period_seconds, 10, 1),
            timeout: seconds(probe.timeout_seconds, 1, 1),
            success_threshold: count(probe.success_threshold, 1),
            failure_threshold: count(probe.failure_threshold, 3),
        }
    }
}

fn action(probe: &Probe, c: &Container) -> Action {
    let non_empty = |h: &Option<String>| h.clone().filter(|h| !h.is_empty());
    if let Some(exec) = &probe.exec {
        let command = exec.command.clone().unwrap_or_default();
        if command.is_empty() {
            return Action::Invalid("the exec probe has no command".into());
        }
        return Action::Exec(command);
    }
    if let Some(h) = &probe.http_get {
        let port = match resolve_port(&h.port, c) {
            Ok(p) => p,
            Err(e) => return Action::Invalid(e),
        };
        let https = match h.scheme.as_deref().unwrap_or("HTTP") {
            s if s.eq_ignore_ascii_case("HTTP") => false,
            s if s.eq_ignore_ascii_case("HTTPS") => true,
            other => return Action::Invalid(format!("unsupported httpGet scheme \"{other}\"")),
        };
        let path = h.path.clone().unwrap_or_default();
        let path = if path.starts_with('/') { path } else { format!("/{path}") };
        let headers = h.http_headers.iter().flatten().map(|h| (h.name.clone(), h.value.clone())).collect();
        return Action::Http(HttpGet { https, host: non_empty(&h.host), port, path, headers });
    }
    if let Some(t) = &probe.tcp_socket {
        return match resolve_port(&t.port, c) {
            Ok(port) => Action::Tcp { host: non_empty(&t.host), port },
            Err(e) => Action::Invalid(e),
        };
    }
    if probe.grpc.is_some() {
        return Action::Invalid("gRPC probes are not supported by rkubelet; use exec, httpGet or tcpSocket".into());
    }
    Action::Invalid("the probe names no handler (exec, httpGet or tcpSocket)".into())
}

/// A probe's port: a number, or the name of one of the container's ports
/// (or, as Kubernetes allows, a number written as a string).
pub fn resolve_port(port: &IntOrString, c: &Container) -> Result<u16, String> {
    let number = match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => {
            let named = c.ports.iter().flatten().find(|p| p.name.as_deref() == Some(name.as_str()));
            match (named, name.parse::<i32>()) {
                (Some(p), _) => p.container_port,
                (None, Ok(n)) => n,
                (None, Err(_)) => {
                    return Err(format!("container {} has no port named \"{name}\"", c.name));
                }
            }
        }
    };
    u16::try_from(number).ok().filter(|p| *p > 0).ok_or_else(|| format!("invalid probe port {number}"))
}

/// One probe's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The check passed.
    Success,
    /// The check failed, with why (the command's output, the HTTP status, …).
    Failure(String),
}

impl Outcome {
    /// Whether the check passed.
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Success)
    }
}

/// Counts consecutive results, as Kubernetes' probe worker does: a result
/// counts once it repeated its threshold times in a row.
#[derive(Debug, Clone, Default)]
pub struct Counter {
    last: Option<bool>,
    run: u32,
}

impl Counter {
    /// Takes one probe's result (`ok`); returns the result to report when
    /// it has now repeated its threshold (`success` / `failure`) times in a row.
    pub fn observe(&mut self, ok: bool, success: u32, failure: u32) -> Option<bool> {
        if self.last == Some(ok) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(ok);
            self.run = 1;
        }
        let needed = if ok { success } else { failure }.max(1);
        (self.run >= needed).then_some(ok)
    }
}

/// Runs `action` once against container `container_id` of a pod at `pod_ip`.
pub async fn run_probe<R: Runtime>(
    runtime: &R,
    action: &Action,
    container_id: &str,
    pod_ip: &str,
    timeout: Duration,
) -> Outcome {
    match action {
        Action::Exec(command) => exec_probe(runtime, container_id, command, timeout).await,
        Action::Http(get) => http_probe(get, pod_ip, timeout).await,
        Action::Tcp { host, port } => tcp_probe(host.as_deref().unwrap_or(pod_ip), *port, timeout).await,
        Action::Invalid(why) => Outcome::Failure(why.clone()),
    }
}

async fn exec_probe<R: Runtime>(runtime: &R, id: &str, command: &[String], timeout: Duration) -> Outcome {
    let run = async {
        let spec = ExecSpec { command: command.to_vec(), ..Default::default() };
        let mut session = runtime.exec_attached(id, &spec).await?;
        let mut output = Vec::new();
        while let Some(chunk) = session.output.next().await {
            let (ExecOutput::Stdout(b) | ExecOutput::Stderr(b)) = chunk?;
            let room = MAX_OUTPUT.saturating_sub(output.len());
            output.extend_from_slice(&b[..b.len().min(room)]);
        }
        let code = session.exit_code.await?;
        Ok::<_, crate::runtime::Error>((code, String::from_utf8_lossy(&output).trim_end().to_string()))
    };
    match tokio::time::timeout(timeout, run).await {
        Err(_) => Outcome::Failure(format!("command \"{}\" timed out", command.join(" "))),
        Ok(Err(e)) => Outcome::Failure(e.to_string()),
        Ok(Ok((0, _))) => Outcome::Success,
        Ok(Ok((code, output))) if output.is_empty() => {
            Outcome::Failure(format!("command \"{}\" exited with {code}", command.join(" ")))
        }
        Ok(Ok((_, output))) => Outcome::Failure(output),
    }
}

/// `host:port`, with brackets around an IPv6 host.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// The request an httpGet probe sends: Host, User-Agent and Accept as
/// Kubernetes sets them unless the probe's headers replace them.
pub fn http_request(get: &HttpGet, host: &str) -> Result<String, String> {
    let mut defaults = [
        ("Host".to_string(), host_port(host, get.port)),
        ("User-Agent".to_string(), USER_AGENT.to_string()),
        ("Accept".to_string(), "*/*".to_string()),
    ];
    let mut extra = Vec::new();
    for (name, value) in &get.headers {
        let bad = |s: &str| s.contains(['\r', '\n']);
        if name.is_empty() || bad(name) || bad(value) || name.contains(':') {
            return Err(format!("invalid httpGet header \"{name}\""));
        }
        match defaults.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            Some(d) => d.1 = value.clone(),
            None => extra.push((name.clone(), value.clone())),
        }
    }
    let mut request = format!("GET {} HTTP/1.1\r\n", get.path);
    for (name, value) in defaults.iter().chain(&extra) {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    Ok(request)
}

/// The status code of an HTTP status line (`HTTP/1.1 200 OK`).
pub fn parse_status_line(line: &str) -> Option<u16> {
    let mut parts = line.split_whitespace();
    let version = parts.next()?;
    if !version.starts_with("HTTP/") {
        return None;
    }
    parts.next()?.parse().ok().filter(|c| (100..1000).contains(c))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn http_status(addr: &str, request: &str) -> std::io::Result<u16> {
    let malformed = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let mut conn = tokio::net::TcpStream::connect(addr).await?;
    conn.write_all(request.as_bytes()).await?;
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    loop {
        // Interim (1xx) responses may come first: the final status is what counts.
        while let Some(eol) = find(&head, b"\n") {
            let line = String::from_utf8_lossy(&head[..eol]).into_owned();
            let code = parse_status_line(line.trim_end()).ok_or_else(|| malformed("malformed HTTP response"))?;
            if code >= 200 {
                return Ok(code);
            }
            let Some(end) = find(&head, b"\r\n\r\n") else { break };
            head.drain(..end + 4);
        }
        if head.len() > MAX_RESPONSE_HEAD {
            return Err(malformed("the HTTP response head is too long"));
        }
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            return Err(malformed("the server closed the connection without a response"));
        }
        head.extend_from_slice(&buf[..n]);
    }
}

async fn http_probe(get: &HttpGet, pod_ip: &str, timeout: Duration) -> Outcome {
    if get.https {
        return Outcome::Failure(
            "HTTPS probes are not supported: rkubelet links no TLS client (use scheme HTTP, tcpSocket or exec)".into(),
        );
    }
    let host = get.host.as_deref().unwrap_or(pod_ip);
    let addr = host_port(host, get.port);
    let url = format!("http://{addr}{}", get.path);
    let request = match http_request(get, host) {
        Ok(r) => r,
        Err(e) => return Outcome::Failure(e),
    };
    match tokio::time::timeout(timeout, http_status(&addr, &request)).await {
        Err(_) => Outcome::Failure(format!("Get \"{url}\": timed out after {}s", timeout.as_secs())),
        Ok(Err(e)) => Outcome::Failure(format!("Get \"{url}\": {e}")),
        Ok(Ok(code)) if (200..400).contains(&code) => Outcome::Success,
        Ok(Ok(code)) => Outcome::Failure(format!("HTTP probe failed with statuscode: {code}")),
    }
}

async fn tcp_probe(host: &str, port: u16, timeout: Duration) -> Outcome {
    let addr = host_port(host, port);
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr)).await {
        Err(_) => Outcome::Failure(format!("dial tcp {addr}: i/o timeout")),
        Ok(Err(e)) => Outcome::Failure(format!("dial tcp {addr}: {e}")),
        Ok(Ok(_)) => Outcome::Success,
    }
}

/// Running containers that failed their liveness or startup probe, by name.
pub type Unhealthy = BTreeMap<String, ProbeKind>;

/// What the probes say about a pod's running app containers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Readiness {
    /// Containers that are not ready (readiness failing, or not started).
    pub unready: BTreeSet<String>,
    /// Containers whose startup probe has not succeeded yet.
    pub unstarted: BTreeSet<String>,
}

/// A worker's identity: pod uid, container name, probe kind.
type WorkerKey = (String, String, ProbeKind);

#[derive(Debug)]
struct WorkerHandle {
    container_id: String,
    stop: CancellationToken,
}

#[derive(Debug, Default)]
struct State {
    workers: HashMap<WorkerKey, WorkerHandle>,
    /// Counted results by (container id, kind); absent until a threshold is reached.
    results: HashMap<(String, ProbeKind), bool>,
}

/// What workers share with the prober.
struct Shared {
    state: Mutex<State>,
    recorder: Arc<EventRecorder>,
    queue: WorkQueue<ObjectKey>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Plain maps, consistent between statements.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn result(&self, container_id: &str, kind: ProbeKind) -> Option<bool> {
        self.lock().results.get(&(container_id.to_string(), kind)).copied()
    }
}

/// Runs the probes of one node's containers.
pub struct Prober<R: Runtime> {
    runtime: Arc<R>,
    node_ip: String,
    shared: Arc<Shared>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl<R: Runtime> std::fmt::Debug for Prober<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prober").field("workers", &self.shared.lock().workers.len()).finish_non_exhaustive()
    }
}

/// The pod's app containers whose newest instance runs, with their spec.
fn running_containers<'a>(pod: &'a Pod, observed: &'a Observed) -> Vec<(&'a Container, &'a RuntimeContainer)> {
    pod.spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .filter_map(|c| {
            let latest = observed.instances(ContainerKind::App, &c.name).first()?;
            latest.is_running().then_some((c, latest))
        })
        .collect()
}

impl<R: Runtime> Prober<R> {
    /// A prober whose workers queue pods on `queue` when a result changes,
    /// record events with `recorder`, and run as tasks of `tracker` until
    /// `shutdown`. Host-network pods are probed on `node_ip`.
    pub fn new(
        runtime: Arc<R>,
        node_ip: &str,
        recorder: Arc<EventRecorder>,
        queue: WorkQueue<ObjectKey>,
        tracker: TaskTracker,
        shutdown: CancellationToken,
    ) -> Prober<R> {
        let shared = Arc::new(Shared { state: Mutex::new(State::default()), recorder, queue });
        Prober { runtime, node_ip: node_ip.to_string(), shared, tracker, shutdown }
    }

    /// Starts workers for the probes of the pod's running app containers
    /// and stops those of containers that no longer run.
    pub fn sync_pod(&self, pod: &Pod, observed: &Observed) {
        if !self.runtime.runs_probes() {
            return;
        }
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let host_network = pod.spec.as_ref().and_then(|s| s.host_network) == Some(true);
        let pod_ip = match observed.running_sandbox() {
            _ if host_network => self.node_ip.clone(),
            Some(s) => s.ip.clone().unwrap_or_default(),
            None => String::new(),
        };
        let mut wanted: HashMap<WorkerKey, (&Container, &RuntimeContainer)> = HashMap::new();
        for (c, instance) in running_containers(pod, observed) {
            for kind in ProbeKind::ALL.into_iter().filter(|k| k.of(c).is_some()) {
                wanted.insert((uid.clone(), c.name.clone(), kind), (c, instance));
            }
        }
        let mut state = self.shared.lock();
        let stale: Vec<WorkerKey> = state
            .workers
            .iter()
            .filter(|(k, w)| k.0 == uid && wanted.get(*k).is_none_or(|(_, i)| i.id != w.container_id))
            .map(|(k, _)| k.clone())
            .collect();
        for key in stale {
            if let Some(w) = state.workers.remove(&key) {
                w.stop.cancel();
                state.results.remove(&(w.container_id, key.2));
            }
        }
        let pod = Arc::new(pod.clone());
        for (key, (c, instance)) in wanted {
            if state.workers.contains_key(&key) {
                continue;
            }
            let Some(probe) = key.2.of(c) else { continue };
            let stop = self.shutdown.child_token();
            state.workers.insert(key.clone(), WorkerHandle { container_id: instance.id.clone(), stop: stop.clone() });
            let worker = Worker {
                runtime: self.runtime.clone(),
                shared: self.shared.clone(),
                kind: key.2,
                spec: ProbeSpec::new(probe, c),
                gated: key.2 != ProbeKind::Startup && c.startup_probe.is_some(),
                container: c.name.clone(),
                container_id: instance.id.clone(),
                started_at: match instance.state {
                    ContainerState::Running { started_at } => started_at,
                    _ => Timestamp::now(),
                },
                pod_uid: uid.clone(),
                pod_key: ObjectKey::of(pod.as_ref()),
                pod: pod.clone(),
                pod_ip: pod_ip.clone(),
            };
            self.tracker.spawn(worker.run(stop));
        }
    }

    /// Running app containers whose liveness (or else startup) probe failed.
    pub fn unhealthy(&self, pod: &Pod, observed: &Observed) -> Unhealthy {
        let state = self.shared.lock();
        let failed = |id: &str, kind| state.results.get(&(id.to_string(), kind)) == Some(&false);
        running_containers(pod, observed)
            .into_iter()
            .filter_map(|(c, i)| {
                let kind = [ProbeKind::Liveness, ProbeKind::Startup].into_iter().find(|k| failed(&i.id, *k))?;
                Some((c.name.clone(), kind))
            })
            .collect()
    }

    /// Which running app containers are not ready, or not started yet.
    pub fn readiness(&self, pod: &Pod, observed: &Observed) -> Readiness {
        let mut out = Readiness::default();
        if !self.runtime.runs_probes() {
            return out;
        }
        let state = self.shared.lock();
        let passed = |id: &str, kind| state.results.get(&(id.to_string(), kind)) == Some(&true);
        for (c, i) in running_containers(pod, observed) {
            let started = c.startup_probe.is_none() || passed(&i.id, ProbeKind::Startup);
            let ready = started && (c.readiness_probe.is_none() || passed(&i.id, ProbeKind::Readiness));
            if !started {
                out.unstarted.insert(c.name.clone());
            }
            if !ready {
                out.unready.insert(c.name.clone());
            }
        }
        out
    }

    /// Stops every worker of pod `uid` and forgets its results.
    pub fn forget_pod(&self, uid: &str) {
        let mut state = self.shared.lock();
        let keys: Vec<WorkerKey> = state.workers.keys().filter(|k| k.0 == uid).cloned().collect();
        for key in keys {
            if let Some(w) = state.workers.remove(&key) {
                w.stop.cancel();
                state.results.remove(&(w.container_id, key.2));
            }
        }
    }
}

/// One probe of one container instance.
struct Worker<R: Runtime> {
    runtime: Arc<R>,
    shared: Arc<Shared>,
    kind: ProbeKind,
    spec: ProbeSpec,
    /// Whether it waits for the container's startup probe to succeed.
    gated: bool,
    container: String,
    container_id: String,
    started_at: Timestamp,
    pod_uid: String,
    pod_key: ObjectKey,
    pod: Arc<Pod>,
    pod_ip: String,
}

/// Sleeps `d` unless `stop` comes first; false if it did.
async fn sleep_or_stop(d: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

impl<R: Runtime> Worker<R> {
    async fn run(self, stop: CancellationToken) {
        let ran = Duration::try_from(Timestamp::now().duration_since(self.started_at)).unwrap_or(Duration::ZERO);
        if !sleep_or_stop(self.spec.initial_delay.saturating_sub(ran), &stop).await {
            return;
        }
        let mut counter = Counter::default();
        loop {
            if !self.gated || self.shared.result(&self.container_id, ProbeKind::Startup) == Some(true) {
                let outcome = tokio::select! {
                    _ = stop.cancelled() => return,
                    o = run_probe(&*self.runtime, &self.spec.action, &self.container_id, &self.pod_ip, self.spec.timeout) => o,
                };
                if let Outcome::Failure(why) = &outcome {
                    debug!(pod = %self.pod_key, container = %self.container, probe = self.kind.name(), reason = %why, "probe failed");
                    self.shared.recorder.warning(
                        self.pod.as_ref(),
                        "Unhealthy",
                        format!("{} probe failed: {why}", self.kind.title()),
                    );
                }
                let counted =
                    counter.observe(outcome.is_success(), self.spec.success_threshold, self.spec.failure_threshold);
                if let Some(ok) = counted {
                    self.report(ok);
                    match (self.kind, ok) {
                        // The container is restarted: its new instance gets new workers.
                        (ProbeKind::Liveness | ProbeKind::Startup, false) => return,
                        // Started: liveness and readiness take over.
                        (ProbeKind::Startup, true) => return,
                        _ => {}
                    }
                }
            }
            if !sleep_or_stop(self.spec.period, &stop).await {
                return;
            }
        }
    }

    /// Stores a counted result; queues the pod if it changed.
    fn report(&self, ok: bool) {
        let previous = {
            let mut state = self.shared.lock();
            // A worker stopped in between must not bring its result back.
            let key = (self.pod_uid.clone(), self.container.clone(), self.kind);
            if state.workers.get(&key).is_none_or(|w| w.container_id != self.container_id) {
                return;
            }
            state.results.insert((self.container_id.clone(), self.kind), ok)
        };
        if previous != Some(ok) {
            info!(
                pod = %self.pod_key,
                container = %self.container,
                probe = self.kind.name(),
                result = if ok { "success" } else { "failure" },
                "probe result changed"
            );
            self.shared.queue.add(self.pod_key.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerPort, ExecAction, HTTPGetAction, HTTPHeader, TCPSocketAction};

    fn container() -> Container {
        Container {
            name: "web".into(),
            ports: Some(vec![ContainerPort { name: Some("http".into()), container_port: 8080, ..Default::default() }]),
            ..Default::default()
        }
    }

    fn http(port: IntOrString) -> Probe {
        Probe {
            http_get: Some(HTTPGetAction {
                port,
                path: Some("ready".into()),
                http_headers: Some(vec![HTTPHeader { name: "X-Probe".into(), value: "1".into() }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn failures_count_only_after_the_failure_threshold_in_a_row() {
        let mut c = Counter::default();
        assert_eq!(c.observe(false, 1, 3), None);
        assert_eq!(c.observe(false, 1, 3), None);
        assert_eq!(c.observe(true, 1, 3), Some(true), "a success breaks the run");
        assert_eq!(c.observe(false, 1, 3), None);
        assert_eq!(c.observe(false, 1, 3), None);
        assert_eq!(c.observe(false, 1, 3), Some(false));
        assert_eq!(c.observe(false, 1, 3), Some(false), "it keeps counting as failed");
    }

    #[test]
    fn successes_count_only_after_the_success_threshold_in_a_row() {
        let mut c = Counter::default();
        assert_eq!(c.observe(true, 2, 1), None);
        assert_eq!(c.observe(true, 2, 1), Some(true));
        assert_eq!(c.observe(false, 2, 1), Some(false));
        assert_eq!(c.observe(true, 2, 1), None);
    }

    #[test]
    fn probe_timings_default_like_the_apiserver() {
        let spec = ProbeSpec::new(&http(IntOrString::Int(80)), &container());
        assert_eq!(spec.initial_delay, Duration::ZERO);
        assert_eq!(spec.period, Duration::from_secs(10));
        assert_eq!(spec.timeout, Duration::from_secs(1));
        assert_eq!((spec.success_threshold, spec.failure_threshold), (1, 3));
        let set = Probe { period_seconds: Some(2), failure_threshold: Some(1), ..http(IntOrString::Int(80)) };
        let spec = ProbeSpec::new(&set, &container());
        assert_eq!((spec.period, spec.failure_threshold), (Duration::from_secs(2), 1));
    }

    #[test]
    fn ports_resolve_by_number_by_name_and_by_numeric_string() {
        let c = container();
        assert_eq!(resolve_port(&IntOrString::Int(9090), &c), Ok(9090));
        assert_eq!(resolve_port(&IntOrString::String("http".into()), &c), Ok(8080));
        assert_eq!(resolve_port(&IntOrString::String("81".into()), &c), Ok(81));
        assert_eq!(
            resolve_port(&IntOrString::String("metrics".into()), &c),
            Err("container web has no port named \"metrics\"".into())
        );
        assert!(resolve_port(&IntOrString::Int(70000), &c).is_err());
    }

    #[test]
    fn http_probes_carry_path_headers_and_kubernetes_defaults() {
        let Action::Http(get) = ProbeSpec::new(&http(IntOrString::String("http".into())), &container()).action else {
            panic!("an httpGet probe");
        };
        assert_eq!((get.port, get.path.as_str(), get.https), (8080, "/ready", false));
        let request = http_request(&get, "10.1.1.5").unwrap();
        assert!(request.starts_with("GET /ready HTTP/1.1\r\nHost: 10.1.1.5:8080\r\n"), "{request}");
        assert!(request.contains("User-Agent: kube-probe/1.33\r\n"), "{request}");
        assert!(request.contains("X-Probe: 1\r\n") && request.ends_with("\r\n\r\n"), "{request}");
        let host = HttpGet { headers: vec![("host".into(), "example.com".into())], ..get.clone() };
        assert!(http_request(&host, "10.1.1.5").unwrap().contains("Host: example.com\r\n"));
        let smuggled = HttpGet { headers: vec![("X".into(), "a\r\nEvil: 1".into())], ..get };
        assert!(http_request(&smuggled, "10.1.1.5").is_err());
    }

    #[test]
    fn status_lines_parse_to_their_code() {
        assert_eq!(parse_status_line("HTTP/1.1 200 OK"), Some(200));
        assert_eq!(parse_status_line("HTTP/1.0 404 Not Found"), Some(404));
        assert_eq!(parse_status_line("SSH-2.0-OpenSSH"), None);
        assert_eq!(parse_status_line("HTTP/1.1 abc"), None);
    }

    #[test]
    fn probes_without_a_usable_handler_fail_with_a_reason() {
        let empty = Probe { exec: Some(ExecAction { command: None }), ..Default::default() };
        assert!(matches!(ProbeSpec::new(&empty, &container()).action, Action::Invalid(_)));
        let none = Probe::default();
        assert!(matches!(ProbeSpec::new(&none, &container()).action, Action::Invalid(_)));
        let tcp = Probe {
            tcp_socket: Some(TCPSocketAction { port: IntOrString::String("nope".into()), ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(
            ProbeSpec::new(&tcp, &container()).action,
            Action::Invalid("container web has no port named \"nope\"".into())
        );
    }

    async fn serve_once(response: &'static str) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf).await;
            let _ = conn.write_all(response.as_bytes()).await;
        });
        port
    }

    fn get(port: u16) -> HttpGet {
        HttpGet { https: false, host: None, port, path: "/".into(), headers: vec![] }
    }

    #[tokio::test]
    async fn http_probes_succeed_on_2xx_and_3xx_and_fail_otherwise() {
        let t = Duration::from_secs(2);
        let ok = serve_once("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await;
        assert_eq!(http_probe(&get(ok), "127.0.0.1", t).await, Outcome::Success);
        let moved = serve_once("HTTP/1.0 302 Found\r\nLocation: /x\r\n\r\n").await;
        assert_eq!(http_probe(&get(moved), "127.0.0.1", t).await, Outcome::Success);
        let interim = serve_once("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Unavailable\r\n\r\n").await;
        assert_eq!(
            http_probe(&get(interim), "127.0.0.1", t).await,
            Outcome::Failure("HTTP probe failed with statuscode: 503".into())
        );
        let https = HttpGet { https: true, ..get(ok) };
        assert!(matches!(http_probe(&https, "127.0.0.1", t).await, Outcome::Failure(m) if m.contains("HTTPS")));
    }

    #[tokio::test]
    async fn tcp_probes_succeed_when_something_listens() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let t = Duration::from_secs(2);
        assert_eq!(tcp_probe("127.0.0.1", port, t).await, Outcome::Success);
        drop(listener);
        let Outcome::Failure(why) = tcp_probe("127.0.0.1", port, t).await else { panic!("nothing listens") };
        assert!(why.starts_with(&format!("dial tcp 127.0.0.1:{port}: ")), "{why}");
    }
}
