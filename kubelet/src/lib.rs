//! rkubelet: the node agent. It registers its Node, keeps the Node's Lease
//! and status fresh, and runs the pods bound to it on Docker (or on an
//! in-memory runtime for hollow nodes).
//!
//! Where to start reading:
//! - [`App`] wires one node (or many hollow nodes) together; [`run_node`]
//!   is everything one node runs;
//! - [`node`]: registration, Lease and status heartbeat, node conditions;
//! - [`pod`]: the watch → queue → sync loop; [`pod::lifecycle`] is the
//!   pod's state machine, [`pod::status`] the status it reports;
//!   [`probes`] runs liveness, readiness and startup probes, one worker
//!   per probe; [`static_pods`] reads `--pod-manifest-path` and keeps
//!   their mirror pods in the API;
//! - [`runtime`]: the [`runtime::Runtime`] trait with Docker and fake
//!   implementations; [`containers`] turns a container spec into a runtime
//!   spec (command/args, `$(VAR)`, env, resources), [`volumes`] puts pod
//!   volumes on disk (with [`service_account_tokens`] for the token
//!   projections), [`images`] handles pull policies and credentials;
//!   [`dns`] writes each pod's `/etc/resolv.conf` (`--cluster-dns`,
//!   `--cluster-domain`, dnsPolicy, dnsConfig) and [`service_env`] gives
//!   containers the `<NAME>_SERVICE_HOST` variables of their namespace's
//!   Services;
//! - [`objects`]: the ConfigMaps, Secrets, claims and volumes pods use,
//!   each ConfigMap and Secret read from a watch of that one object (the
//!   Node authorizer lets a node read only what its pods use) instead of
//!   fetched on every sync; a change to one re-syncs the pods that use it
//!   at once;
//! - [`server`]: the kubelet API on `--port` (logs, exec, [`stats`]) that
//!   the apiserver relays to.

#![warn(missing_docs)]

pub mod containers;
pub mod dns;
pub mod host;
pub mod images;
pub mod node;
pub mod objects;
pub mod pod;
pub mod probes;
pub mod runtime;
pub mod server;
pub mod service_account_tokens;
pub mod service_env;
pub mod static_pods;
pub mod stats;
pub mod volumes;

use clap::Parser;
use host::HostInfo;
use k8s_openapi::api::core::v1::Node;
use node::{NetworkState, NodeAgent, NodeConfig};
use pod::{NodeFacts, PodManager};
use rkube_client::events::{EventRecorder, EventType, object_ref};
use rkube_client::metrics::{Counter, Gauge, Registry};
use rkube_client::{Client, SharedInformers};
use runtime::Runtime;
use runtime::docker::DockerRuntime;
use runtime::fake::FakeRuntime;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long shutdown waits for in-flight work.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What can go wrong in the kubelet.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The apiserver refused or failed a request.
    #[error(transparent)]
    Api(#[from] rkube_client::ApiError),
    /// The container runtime failed.
    #[error(transparent)]
    Runtime(#[from] runtime::Error),
    /// A file operation on the node failed.
    #[error("{context}: {source}")]
    Io {
        /// What the kubelet was doing.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A flag or setting is not usable.
    #[error("{0}")]
    Config(String),
}

/// `Result` with the kubelet's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which container runtime runs the pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeKind {
    /// The Docker engine on this host.
    Docker,
    /// No containers at all: a hollow node for tests and benchmarks.
    Fake,
}

/// Command-line flags.
#[derive(Debug, Clone, Parser)]
#[command(name = "rkubelet", version, about = "rkubelet: runs the pods bound to its node.")]
pub struct Args {
    /// Where the apiserver is.
    #[command(flatten)]
    pub api: rkube_client::config::ServerArgs,
    /// Where /healthz, /readyz and /metrics are served.
    #[arg(long, env = "RKUBE_HEALTHZ_BIND_ADDRESS", default_value = "127.0.0.1:10248")]
    pub healthz_bind_address: SocketAddr,
    /// Log format: text or json.
    #[arg(long, env = "RKUBE_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
    /// The node's name (default: the hostname, lower-cased).
    #[arg(long, env = "RKUBE_HOSTNAME_OVERRIDE")]
    pub hostname_override: Option<String>,
    /// The node's InternalIP (default: the host's first non-loopback IPv4 address).
    #[arg(long, env = "RKUBE_NODE_IP")]
    pub node_ip: Option<IpAddr>,
    /// Labels to add to the node: `key=value,key2=value2`.
    #[arg(long, env = "RKUBE_NODE_LABELS", value_delimiter = ',')]
    pub node_labels: Vec<String>,
    /// The container runtime: docker, or fake for a hollow node.
    #[arg(long, env = "RKUBE_CONTAINER_RUNTIME", value_enum, default_value_t = RuntimeKind::Docker)]
    pub runtime: RuntimeKind,
    /// The Docker engine's socket, `unix:///path` (default: `$DOCKER_HOST`,
    /// else /var/run/docker.sock).
    #[arg(long, env = "RKUBE_CONTAINER_RUNTIME_ENDPOINT", value_parser = parse_endpoint)]
    pub container_runtime_endpoint: Option<String>,
    /// Where pod directories (volumes) live: `<root-dir>/pods/<uid>`.
    #[arg(long, env = "RKUBE_ROOT_DIR", default_value = "/var/lib/rkubelet")]
    pub root_dir: PathBuf,
    /// A directory of pod manifests (YAML or JSON) to run as static pods,
    /// with or without the apiserver; each shows in the API as a mirror pod.
    #[arg(long, env = "RKUBE_POD_MANIFEST_PATH")]
    pub pod_manifest_path: Option<PathBuf>,
    /// The most pods the node takes.
    #[arg(long, env = "RKUBE_MAX_PODS", default_value_t = 110)]
    pub max_pods: u32,
    /// The node's pod CIDR, for running without rkube-controller-manager
    /// (which otherwise assigns it); set as the Node's `spec.podCIDR`.
    #[arg(long, env = "RKUBE_POD_CIDR")]
    pub pod_cidr: Option<String>,
    /// The cluster's pod network; every node's pod CIDR lies inside it.
    #[arg(long, env = "RKUBE_CLUSTER_CIDR", default_value = "10.1.0.0/16")]
    pub cluster_cidr: String,
    /// The image of the pods' infrastructure (pause) container.
    #[arg(long, env = "RKUBE_POD_INFRA_CONTAINER_IMAGE", default_value = runtime::docker::DEFAULT_PAUSE_IMAGE)]
    pub pod_infra_container_image: String,
    /// Run this many hollow nodes (`<hostname>-hollow-<i>`, fake runtime) instead of one node.
    #[arg(long, env = "RKUBE_HOLLOW_NODES", default_value_t = 0)]
    pub hollow_nodes: usize,
    /// The port of the kubelet API (logs, exec, stats) on the node IP; 0 picks a free one.
    #[arg(long, env = "RKUBE_KUBELET_PORT", default_value_t = 10250)]
    pub port: u16,
    /// The cluster DNS servers (comma-separated IPs) that pods with dnsPolicy
    /// ClusterFirst use; without any, such pods use the host's resolvers.
    #[arg(long, env = "RKUBE_CLUSTER_DNS", value_delimiter = ',')]
    pub cluster_dns: Vec<IpAddr>,
    /// The cluster's DNS domain: pods search `<ns>.svc.<domain> svc.<domain> <domain>`.
    #[arg(long, env = "RKUBE_CLUSTER_DOMAIN", default_value = "cluster.local")]
    pub cluster_domain: String,
    /// The resolver file pods with dnsPolicy Default get (and whose search
    /// domains ClusterFirst pods append); "" gives them 127.0.0.1.
    #[arg(long, env = "RKUBE_RESOLV_CONF", default_value = "/etc/resolv.conf")]
    pub resolv_conf: String,
    /// The kubelet API's serving certificate (PEM). With it (and its key
    /// and --client-ca-file) the API speaks TLS and answers only the
    /// apiserver; without it, it is plain and answers anyone who reaches it.
    #[arg(long, env = "RKUBE_TLS_CERT_FILE", requires_all = ["tls_private_key_file", "client_ca_file"])]
    pub tls_cert_file: Option<PathBuf>,
    /// The serving certificate's private key (PEM).
    #[arg(long, env = "RKUBE_TLS_PRIVATE_KEY_FILE", requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,
    /// The CA that signs the apiserver's client certificate
    /// (--kubelet-client-certificate).
    #[arg(long, env = "RKUBE_CLIENT_CA_FILE", requires = "tls_cert_file")]
    pub client_ca_file: Option<PathBuf>,
}

/// The kubelet's metric families, registered once per process; every node
/// the process runs (hollow nodes share one) adds to them through its
/// [`Metrics`].
#[derive(Debug, Clone)]
pub struct KubeletMetrics {
    nodes: Gauge,
    pods: Gauge,
    running_containers: Gauge,
    syncs: Counter,
    sync_errors: Counter,
}

impl KubeletMetrics {
    /// Registers the families on `registry`.
    pub fn register(registry: &Registry) -> KubeletMetrics {
        registry.gauge("rkube_component_implemented", "Whether this component does its work yet").set(1);
        KubeletMetrics {
            nodes: registry.gauge("rkubelet_nodes", "Nodes this process runs"),
            pods: registry.gauge("rkubelet_pods", "Pods bound to this process's nodes"),
            running_containers: registry.gauge("rkubelet_running_containers", "Running app and init containers"),
            syncs: registry.counter("rkubelet_pod_syncs_total", "Pod syncs"),
            sync_errors: registry.counter("rkubelet_pod_sync_errors_total", "Pod syncs that failed"),
        }
    }

    /// The metrics of one more node.
    pub fn node(&self) -> Arc<Metrics> {
        self.nodes.inc();
        Arc::new(Metrics { families: self.clone(), pods: AtomicI64::new(0), running_containers: AtomicI64::new(0) })
    }
}

/// One node's metrics: its counts go into the process's [`KubeletMetrics`];
/// its gauges count there until it is dropped.
#[derive(Debug)]
pub struct Metrics {
    families: KubeletMetrics,
    pods: AtomicI64,
    running_containers: AtomicI64,
}

impl Metrics {
    pub(crate) fn count_sync(&self) {
        self.families.syncs.inc();
    }

    pub(crate) fn count_sync_error(&self) {
        self.families.sync_errors.inc();
    }

    pub(crate) fn set_pods(&self, n: usize) {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        self.families.pods.inc_by(n - self.pods.swap(n, Ordering::Relaxed));
    }

    pub(crate) fn set_running_containers(&self, n: usize) {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        self.families.running_containers.inc_by(n - self.running_containers.swap(n, Ordering::Relaxed));
    }
}

impl Drop for Metrics {
    fn drop(&mut self) {
        self.families.nodes.dec();
        self.families.pods.dec_by(*self.pods.get_mut());
        self.families.running_containers.dec_by(*self.running_containers.get_mut());
    }
}

/// Parses `--node-labels` entries (`key=value`).
pub fn parse_labels(entries: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for e in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
        let (k, v) = e
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| Error::Config(format!("--node-labels: \"{e}\" is not key=value")))?;
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// Checks a node name: a lower-case DNS subdomain.
fn check_node_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!("node name \"{name}\" is not a lower-case DNS subdomain; set --hostname-override")))
    }
}

/// Checks `--pod-cidr` against `--cluster-cidr`.
fn check_cidrs(pod_cidr: Option<&str>, cluster_cidr: &str) -> Result<()> {
    let parse =
        |flag: &str, v: &str| v.parse::<rkube_api::cidr::Ipv4Cidr>().map_err(|e| Error::Config(format!("{flag}: {e}")));
    let cluster = parse("--cluster-cidr", cluster_cidr)?;
    if let Some(p) = pod_cidr {
        let pod = parse("--pod-cidr", p)?;
        if !cluster.contains_cidr(&pod) {
            return Err(Error::Config(format!("--pod-cidr {pod} is not inside --cluster-cidr {cluster}")));
        }
    }
    Ok(())
}

/// One node's kubelet: where it keeps pod directories, and whether
/// memory-backed volumes get a real tmpfs.
#[derive(Debug, Clone)]
pub struct NodeSetup {
    /// The Node and its heartbeat.
    pub config: NodeConfig,
    /// `--root-dir` of this node.
    pub root_dir: PathBuf,
    /// Mount tmpfs for `medium: Memory` emptyDirs and secrets.
    pub use_tmpfs: bool,
    /// `--pod-manifest-path`: the static pods' manifests.
    pub pod_manifest_path: Option<PathBuf>,
    /// `--cluster-dns`, `--cluster-domain`, `--resolv-conf`.
    pub dns: dns::DnsSettings,
}

/// Runs one node until `shutdown`: registration and heartbeat, the pods,
/// events, and (for runtimes with a pod network) routes to other nodes.
/// Its watches come from `informers`, which every node of the process
/// shares (and which the caller stops); it talks to the apiserver through
/// their client. Returns once every task of the node has ended.
pub async fn run_node<R: Runtime>(
    informers: SharedInformers,
    setup: NodeSetup,
    runtime: Arc<R>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let tracker = TaskTracker::new();
    let client = informers.client().clone();
    let config = Arc::new(setup.config);
    let (network_tx, network_rx) = watch::channel(NetworkState::default());
    let recorder = EventRecorder::start_on_node(client.clone(), "kubelet", &config.name, &tracker, shutdown.clone());
    recorder.record(&node_ref(&config.name), EventType::Normal, "Starting", "Starting kubelet.");
    tracker.spawn(NodeAgent::new(client.clone(), config.clone(), runtime.clone(), network_tx).run(shutdown.clone()));
    if runtime.needs_pod_cidr() {
        let nodes = informers.get::<Node>();
        tracker.spawn(node::sync_routes(nodes, config.name.clone(), runtime.clone(), shutdown.clone()));
    }
    let facts = NodeFacts {
        name: config.name.clone(),
        ip: config.node_ip.to_string(),
        cpu_millis: config.cpu_millis(),
        memory_bytes: config.memory_bytes(),
        dns: Arc::new(setup.dns),
    };
    let volumes =
        volumes::VolumeManager::new(&setup.root_dir, objects::ObjectCache::new(client.clone()), setup.use_tmpfs);
    let pods = PodManager::new(informers, facts, runtime, volumes, recorder, network_rx, metrics)
        .with_static_pods(setup.pod_manifest_path);
    pods.run(shutdown, tracker.clone()).await;
    tracker.close();
    tracker.wait().await;
}

/// Hollow nodes: many fake-runtime nodes in one process, for the scheduler
/// benchmark and tests (Kubernetes' kubemark).
#[derive(Debug, Clone)]
pub struct HollowNodes {
    /// Nodes are named `<prefix>-hollow-<i>`.
    pub prefix: String,
    /// How many.
    pub count: usize,
    /// CPUs each reports.
    pub cpus: u32,
    /// Memory each reports, in bytes.
    pub memory_bytes: u64,
    /// Pods each takes.
    pub max_pods: u32,
    /// The InternalIP they report.
    pub node_ip: IpAddr,
    /// Their pod directories go under `<root_dir>/<node>`.
    pub root_dir: PathBuf,
    /// Lease renewal period (10 s).
    pub heartbeat_period: Duration,
}

impl HollowNodes {
    /// `count` nodes named `<prefix>-hollow-<i>`, each with 4 CPUs, 16 GiB and 110 pods.
    pub fn new(prefix: &str, count: usize) -> HollowNodes {
        HollowNodes {
            prefix: prefix.to_string(),
            count,
            cpus: 4,
            memory_bytes: 16 << 30,
            max_pods: 110,
            node_ip: IpAddr::from([127, 0, 0, 1]),
            root_dir: std::env::temp_dir().join(format!("rkubelet-hollow-{}", std::process::id())),
            heartbeat_period: Duration::from_secs(10),
        }
    }

    /// The node names.
    pub fn names(&self) -> Vec<String> {
        (0..self.count).map(|i| format!("{}-hollow-{i}", self.prefix)).collect()
    }

    fn setups(&self, cluster_cidr: &str) -> Vec<NodeSetup> {
        let host = HostInfo::detect();
        self.names()
            .into_iter()
            .map(|name| NodeSetup {
                root_dir: self.root_dir.join(&name),
                use_tmpfs: false,
                pod_manifest_path: None,
                dns: dns::DnsSettings::default(),
                config: NodeConfig {
                    node_ip: self.node_ip,
                    labels: BTreeMap::from([("rkube.io/hollow".to_string(), "true".to_string())]),
                    pod_cidr: None,
                    cluster_cidr: cluster_cidr.to_string(),
                    max_pods: self.max_pods,
                    kubelet_port: 0,
                    host: HostInfo {
                        hostname: name.clone(),
                        cpus: self.cpus,
                        memory_bytes: self.memory_bytes,
                        ..host.clone()
                    },
                    heartbeat_period: self.heartbeat_period,
                    status_period: Duration::from_secs(60),
                    name,
                },
            })
            .collect()
    }

    /// Runs the nodes until `shutdown`; returns once all have stopped. The
    /// nodes share one set of informers (each node watches the ConfigMaps
    /// and Secrets of its own pods).
    pub async fn run(&self, client: Client, shutdown: CancellationToken) -> Vec<Arc<Metrics>> {
        let tracker = TaskTracker::new();
        let informers = SharedInformers::new(client, tracker.clone(), shutdown.clone());
        let families = KubeletMetrics::register(&Registry::new());
        let mut all = Vec::new();
        for setup in self.setups("10.1.0.0/16") {
            let metrics = families.node();
            all.push(metrics.clone());
            let runtime = Arc::new(FakeRuntime::new(&setup.config.name));
            tracker.spawn(run_node(informers.clone(), setup, runtime, metrics, shutdown.clone()));
        }
        tracker.close();
        tracker.wait().await;
        let _ = std::fs::remove_dir_all(&self.root_dir);
        all
    }
}

/// Runs `n` hollow nodes named `<hostname>-hollow-<i>` until `shutdown`.
pub async fn run_hollow_nodes(client: Client, n: usize, shutdown: CancellationToken) {
    HollowNodes::new(&HostInfo::detect().hostname, n).run(client, shutdown).await;
}

/// `--container-runtime-endpoint`: a `unix://` socket path.
fn parse_endpoint(s: &str) -> Result<String, String> {
    match s.strip_prefix("unix://") {
        Some(path) if path.starts_with('/') => Ok(s.to_string()),
        _ => {
            Err(format!("{s:?} is not a unix:///absolute/path socket (the Docker engine is reached on a unix socket)"))
        }
    }
}

/// Binds the kubelet API on the node's IP (`port` 0 picks a free port).
async fn bind_api(node_ip: IpAddr, port: u16) -> Result<tokio::net::TcpListener> {
    let addr = SocketAddr::new(node_ip, port);
    tokio::net::TcpListener::bind(addr).await.map_err(|source| Error::Io {
        context: format!("binding the kubelet API on {addr} (set --port, or --node-ip to an address of this host)"),
        source,
    })
}

/// The built daemon.
#[derive(Debug)]
pub struct App {
    client: Client,
    health: tokio::net::TcpListener,
    args: Args,
    host: HostInfo,
    name: String,
    node_ip: IpAddr,
    labels: BTreeMap<String, String>,
    /// The kubelet API's listener (none for hollow nodes).
    api: Option<tokio::net::TcpListener>,
    api_port: u16,
    /// The kubelet API's TLS, when configured.
    api_tls: Option<tonic::transport::ServerTlsConfig>,
}

impl App {
    /// Checks the flags, resolves the apiserver and binds the health port.
    pub async fn build(args: Args) -> anyhow::Result<App> {
        let cfg = args.api.resolve()?;
        let client = Client::from_config(&cfg)?;
        let host = HostInfo::detect();
        let name = args.hostname_override.clone().unwrap_or_else(|| host.hostname.clone()).to_lowercase();
        check_node_name(&name)?;
        let labels = parse_labels(&args.node_labels)?;
        check_cidrs(args.pod_cidr.as_deref(), &args.cluster_cidr)?;
        if args.hollow_nodes > 0 && args.runtime != RuntimeKind::Fake {
            return Err(Error::Config("--hollow-nodes needs --runtime fake".into()).into());
        }
        let node_ip = args.node_ip.unwrap_or_else(host::default_node_ip);
        let health = rkube_client::daemon::bind_health(args.healthz_bind_address).await?;
        let api = match args.hollow_nodes {
            0 => Some(bind_api(node_ip, args.port).await?),
            _ => None,
        };
        let api_port = api.as_ref().and_then(|l| l.local_addr().ok()).map_or(0, |a| a.port());
        let api_tls = match (&args.tls_cert_file, &args.tls_private_key_file, &args.client_ca_file) {
            (Some(cert), Some(key), Some(ca)) => Some(server::tls_config(cert, key, ca)?),
            _ => {
                if api.is_some() {
                    tracing::warn!("no --tls-cert-file: the kubelet API is plain and answers anyone who reaches it");
                }
                None
            }
        };
        Ok(App { client, health, args, host, name, node_ip, labels, api, api_port, api_tls })
    }

    /// The kubelet API's address (None for hollow nodes).
    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.api.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The health listener's address.
    pub fn health_addr(&self) -> SocketAddr {
        self.health.local_addr().expect("a bound listener has an address")
    }

    /// The node's name.
    pub fn node_name(&self) -> &str {
        &self.name
    }

    fn setup(&self) -> NodeSetup {
        NodeSetup {
            root_dir: self.args.root_dir.clone(),
            use_tmpfs: self.args.runtime == RuntimeKind::Docker,
            pod_manifest_path: self.args.pod_manifest_path.clone(),
            dns: dns::DnsSettings {
                cluster_dns: self.args.cluster_dns.clone(),
                cluster_domain: self.args.cluster_domain.trim_end_matches('.').to_string(),
                resolv_conf: self.args.resolv_conf.clone(),
            },
            config: NodeConfig {
                name: self.name.clone(),
                node_ip: self.node_ip,
                labels: self.labels.clone(),
                pod_cidr: self.args.pod_cidr.clone(),
                cluster_cidr: self.args.cluster_cidr.clone(),
                max_pods: self.args.max_pods,
                kubelet_port: self.api_port,
                host: self.host.clone(),
                heartbeat_period: Duration::from_secs(10),
                status_period: Duration::from_secs(60),
            },
        }
    }

    /// Serves the kubelet API on `runtime` (once; hollow nodes have none).
    fn serve_api<R: Runtime>(&mut self, tracker: &TaskTracker, runtime: Arc<R>, shutdown: &CancellationToken) {
        if let Some(listener) = self.api.take() {
            let tls = self.api_tls.clone();
            tracker.spawn(server::serve(listener, self.name.clone(), runtime, tls, shutdown.clone()));
        }
    }

    /// Runs the node (or hollow nodes) and the health endpoints until
    /// `shutdown`; returns once every task has ended (or after
    /// [`SHUTDOWN_GRACE`]). Running containers are left running: a new
    /// kubelet adopts them.
    pub async fn run(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(server = %self.client.server(), node = %self.name, "rkubelet starting");
        // Bounded: an apiserver that accepts but does not answer must not
        // keep the kubelet from starting (its informers retry on their own).
        match tokio::time::timeout(Duration::from_secs(10), self.client.version()).await {
            Ok(Ok(v)) => {
                tracing::info!(server = %self.client.server(), version = %v["gitVersion"], "apiserver reachable")
            }
            Ok(Err(e)) => tracing::warn!(server = %self.client.server(), error = %e, "apiserver not reachable yet"),
            Err(_) => tracing::warn!(server = %self.client.server(), "apiserver did not answer within 10 s; going on"),
        }
        let tracker = TaskTracker::new();
        // Everything stops when `shutdown` comes or the health server fails.
        let shutdown = shutdown.child_token();
        // One watch and one cache per resource for every node this process runs.
        let informers = SharedInformers::new(self.client.clone(), tracker.clone(), shutdown.clone());
        let registry = Arc::new(Registry::new());
        let families = KubeletMetrics::register(&registry);
        let mut nodes = 0;
        match (self.args.runtime, self.args.hollow_nodes) {
            (RuntimeKind::Docker, _) => {
                let m = families.node();
                nodes += 1;
                let runtime = Arc::new(
                    DockerRuntime::new(&self.name, &self.args.pod_infra_container_image)
                        .with_endpoint(self.args.container_runtime_endpoint.clone()),
                );
                self.serve_api(&tracker, runtime.clone(), &shutdown);
                tracker.spawn(run_node(informers.clone(), self.setup(), runtime, m, shutdown.clone()));
            }
            (RuntimeKind::Fake, 0) => {
                let m = families.node();
                nodes += 1;
                let runtime = Arc::new(FakeRuntime::new(&self.name));
                self.serve_api(&tracker, runtime.clone(), &shutdown);
                tracker.spawn(run_node(informers.clone(), self.setup(), runtime, m, shutdown.clone()));
            }
            (RuntimeKind::Fake, n) => {
                let mut hollow = HollowNodes::new(&self.name, n);
                hollow.max_pods = self.args.max_pods;
                hollow.node_ip = self.node_ip;
                hollow.root_dir = self.args.root_dir.join("hollow");
                for setup in hollow.setups(&self.args.cluster_cidr) {
                    let m = families.node();
                    nodes += 1;
                    let runtime = Arc::new(FakeRuntime::new(&setup.config.name));
                    tracker.spawn(run_node(informers.clone(), setup, runtime, m, shutdown.clone()));
                }
            }
        }
        tracing::info!(node = %self.name, runtime = ?self.args.runtime, nodes, health = %self.health_addr(), "rkubelet running");
        let render = move || registry.render();
        let health = rkube_client::daemon::serve_health(self.health, render, shutdown.clone());
        let served = health.await;
        shutdown.cancel();
        tracker.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait()).await.is_err() {
            tracing::warn!("some kubelet tasks did not stop within {SHUTDOWN_GRACE:?}");
        }
        served?;
        Ok(())
    }
}

/// The reference to this kubelet's Node that its node events carry.
fn node_ref(name: &str) -> k8s_openapi::api::core::v1::ObjectReference {
    let mut node = Node::default();
    node.metadata.name = Some(name.to_string());
    object_ref(&node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_labels_parse_as_key_value_pairs() {
        let labels = parse_labels(&["zone=a".into(), " disk=ssd ".into(), "".into()]).unwrap();
        assert_eq!(labels, BTreeMap::from([("disk".into(), "ssd".into()), ("zone".into(), "a".into())]));
        assert!(parse_labels(&["novalue".into()]).is_err());
        assert!(parse_labels(&["=x".into()]).is_err());
    }

    #[test]
    fn node_names_must_be_dns_subdomains() {
        assert!(check_node_name("node-1.example").is_ok());
        assert!(check_node_name("Node_1").is_err());
        assert!(check_node_name("").is_err());
    }

    #[test]
    fn pod_cidr_must_lie_in_the_cluster_cidr() {
        assert!(check_cidrs(Some("10.1.2.0/24"), "10.1.0.0/16").is_ok());
        assert!(check_cidrs(None, "10.1.0.0/16").is_ok());
        let err = check_cidrs(Some("10.2.2.0/24"), "10.1.0.0/16").unwrap_err().to_string();
        assert_eq!(err, "--pod-cidr 10.2.2.0/24 is not inside --cluster-cidr 10.1.0.0/16");
        assert!(check_cidrs(Some("nonsense"), "10.1.0.0/16").is_err());
    }

    #[test]
    fn the_runtime_endpoint_is_a_unix_socket() {
        assert_eq!(parse_endpoint("unix:///run/d.sock").as_deref(), Ok("unix:///run/d.sock"));
        assert!(parse_endpoint("tcp://127.0.0.1:2375").unwrap_err().contains("not a unix:///absolute/path socket"));
        assert!(parse_endpoint("unix://relative.sock").is_err());
    }

    #[test]
    fn hollow_nodes_are_numbered_after_the_prefix() {
        assert_eq!(HollowNodes::new("bench", 2).names(), ["bench-hollow-0", "bench-hollow-1"]);
    }

    #[test]
    fn metrics_sum_over_nodes() {
        let registry = Registry::new();
        let families = KubeletMetrics::register(&registry);
        let (a, b) = (families.node(), families.node());
        a.count_sync();
        b.count_sync();
        a.set_pods(2);
        b.set_pods(5);
        b.set_pods(3);
        let text = registry.render();
        assert!(text.contains("rkubelet_nodes 2\n"), "{text}");
        assert!(text.contains("rkubelet_pod_syncs_total 2\n"), "{text}");
        assert!(text.contains("rkubelet_pods 5\n"), "{text}");
        assert!(text.contains("rkube_component_implemented 1\n"), "{text}");
        drop(b);
        let text = registry.render();
        assert!(text.contains("rkubelet_nodes 1\n") && text.contains("rkubelet_pods 2\n"), "{text}");
    }
}
