//! A runtime without containers, for hollow nodes and tests (Kubernetes'
//! kubemark "hollow kubelet"): sandboxes get an IP at once, containers "run"
//! as soon as they are started and keep running until stopped. Every image
//! is present and every pull succeeds. Containers write no logs, commands
//! exec'd in them print nothing and exit 0, and they use no CPU or memory.
//! Everything lives in memory, so one process can carry hundreds of hollow
//! nodes.

use super::{
    ContainerMeta, ContainerSpec, ContainerState, ContainerStats, ContainerSummary, Error, ExecSession, ExecSpec,
    ImageDetails, LogOptions, LogStream, Peer, Phase, RegistryAuth, Result, Runtime, RuntimeContainer, SandboxSpec,
};
use futures::{FutureExt, StreamExt};
use k8s_openapi::jiff::Timestamp;
use rkube_api::cidr::Ipv4Cidr;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Pod IPs for hollow nodes without a podCIDR come from this counter
/// (100.64.0.0/10, shared address space), unique within the process.
static NEXT_COUNTER_IP: AtomicU32 = AtomicU32::new(0);
const COUNTER_BASE: u32 = u32::from_be_bytes([100, 64, 0, 0]);
const COUNTER_SIZE: u32 = 1 << 22;

#[derive(Default)]
struct State {
    containers: BTreeMap<String, RuntimeContainer>,
    next_id: u64,
    pod_cidr: Option<Ipv4Cidr>,
    used_ips: BTreeSet<Ipv4Addr>,
}

/// The in-memory runtime of one hollow node.
pub struct FakeRuntime {
    node: String,
    state: Mutex<State>,
}

impl std::fmt::Debug for FakeRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeRuntime")
            .field("node", &self.node)
            .field("containers", &self.lock().containers.len())
            .finish()
    }
}

impl FakeRuntime {
    /// An empty runtime for `node`.
    pub fn new(node: &str) -> FakeRuntime {
        FakeRuntime { node: node.to_string(), state: Mutex::new(State::default()) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change below leaves the state consistent before it can panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes a running container exit with `exit_code` (as if its process
    /// ended), for tests of restart handling.
    pub fn exit_container(&self, id: &str, exit_code: i32) -> Result<()> {
        let mut state = self.lock();
        let c = state.containers.get_mut(id).ok_or_else(|| Error::NotFound(id.to_string()))?;
        let started_at = match &c.state {
            ContainerState::Running { started_at } => Some(*started_at),
            _ => return Ok(()),
        };
        c.state = ContainerState::Exited {
            exit_code,
            started_at,
            finished_at: Some(Timestamp::now()),
            oom_killed: false,
            error: None,
        };
        Ok(())
    }

    fn known(&self, id: &str) -> Result<()> {
        match self.lock().containers.contains_key(id) {
            true => Ok(()),
            false => Err(Error::NotFound(id.to_string())),
        }
    }

    fn allocate_ip(state: &mut State) -> Option<Ipv4Addr> {
        match state.pod_cidr {
            Some(cidr) => {
                // The first host address is the gateway.
                let ip = cidr.hosts().skip(1).find(|ip| !state.used_ips.contains(ip))?;
                state.used_ips.insert(ip);
                Some(ip)
            }
            None => {
                // Skip the block's network and broadcast addresses.
                let n = NEXT_COUNTER_IP.fetch_add(1, Ordering::Relaxed) % (COUNTER_SIZE - 2);
                Some(Ipv4Addr::from(COUNTER_BASE + 1 + n))
            }
        }
    }

    fn add(&self, meta: ContainerMeta, image: &str, state: ContainerState, ip: Option<String>) -> String {
        let mut s = self.lock();
        s.next_id += 1;
        let id = format!("fake-{}-{:08}", self.node, s.next_id);
        let c = RuntimeContainer {
            id: id.clone(),
            meta,
            image: image.to_string(),
            image_id: format!("sha256:fake-{image}"),
            state,
            ip,
        };
        s.containers.insert(id.clone(), c);
        id
    }
}

impl Runtime for FakeRuntime {
    async fn version(&self) -> Result<String> {
        Ok(concat!("fake://", env!("CARGO_PKG_VERSION")).to_string())
    }

    fn id_scheme(&self) -> &'static str {
        "fake"
    }

    fn needs_pod_cidr(&self) -> bool {
        false
    }

    async fn setup_network(&self, pod_cidr: &str, _cluster_cidr: &str) -> Result<()> {
        let cidr: Ipv4Cidr = pod_cidr.parse().map_err(|e| Error::Network(format!("pod CIDR \"{pod_cidr}\": {e}")))?;
        self.lock().pod_cidr = Some(cidr);
        Ok(())
    }

    async fn sync_routes(&self, _peers: &[Peer]) -> Result<()> {
        Ok(())
    }

    async fn list_containers(&self) -> Result<Vec<ContainerSummary>> {
        Ok(self
            .lock()
            .containers
            .values()
            .map(|c| ContainerSummary {
                id: c.id.clone(),
                meta: c.meta.clone(),
                phase: match c.state {
                    ContainerState::Created => Phase::Created,
                    ContainerState::Running { .. } => Phase::Running,
                    ContainerState::Exited { .. } => Phase::Exited,
                },
            })
            .collect())
    }

    async fn pod_containers(&self, pod_uid: &str) -> Result<Vec<RuntimeContainer>> {
        Ok(self.lock().containers.values().filter(|c| c.meta.pod_uid == pod_uid).cloned().collect())
    }

    async fn image_details(&self, image: &str) -> Result<Option<ImageDetails>> {
        Ok(Some(ImageDetails { id: format!("sha256:fake-{image}"), ..Default::default() }))
    }

    async fn pull_image(&self, _image: &str, _auths: &[RegistryAuth]) -> Result<()> {
        Ok(())
    }

    async fn run_sandbox(&self, spec: &SandboxSpec) -> Result<String> {
        let ip = if spec.host_network {
            None
        } else {
            let ip = Self::allocate_ip(&mut self.lock())
                .ok_or_else(|| Error::Network("the node's pod CIDR has no free address".into()))?;
            Some(ip.to_string())
        };
        let running = ContainerState::Running { started_at: Timestamp::now() };
        Ok(self.add(spec.meta.clone(), "fake/pause", running, ip))
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String> {
        Ok(self.add(spec.meta.clone(), &spec.image, ContainerState::Created, None))
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        let mut state = self.lock();
        let c = state.containers.get_mut(id).ok_or_else(|| Error::NotFound(id.to_string()))?;
        if matches!(c.state, ContainerState::Created) {
            c.state = ContainerState::Running { started_at: Timestamp::now() };
        }
        Ok(())
    }

    async fn stop_container(&self, id: &str, _grace: Duration) -> Result<()> {
        let mut state = self.lock();
        let Some(c) = state.containers.get_mut(id) else { return Ok(()) };
        if let ContainerState::Running { started_at } = c.state {
            c.state = ContainerState::Exited {
                exit_code: 0,
                started_at: Some(started_at),
                finished_at: Some(Timestamp::now()),
                oom_killed: false,
                error: None,
            };
        }
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        let mut state = self.lock();
        if let Some(c) = state.containers.remove(id)
            && let Some(ip) = c.ip.and_then(|ip| ip.parse().ok())
        {
            state.used_ips.remove(&ip);
        }
        Ok(())
    }

    async fn container_logs(&self, id: &str, _options: &LogOptions) -> Result<LogStream> {
        self.known(id)?;
        Ok(futures::stream::empty().boxed())
    }

    async fn exec_attached(&self, id: &str, spec: &ExecSpec) -> Result<ExecSession> {
        if !self.lock().containers.get(id).ok_or_else(|| Error::NotFound(id.to_string()))?.is_running() {
            return Err(Error::Unsupported(format!("container {id} is not running")));
        }
        Ok(ExecSession {
            output: futures::stream::empty().boxed(),
            stdin: spec.stdin.then(|| Box::pin(tokio::io::sink()) as Pin<Box<dyn tokio::io::AsyncWrite + Send>>),
            resize: Box::new(|_| futures::future::ready(Ok(())).boxed()),
            exit_code: futures::future::ready(Ok(0)).boxed(),
        })
    }

    async fn container_stats(&self, id: &str) -> Result<ContainerStats> {
        self.known(id)?;
        Ok(ContainerStats { time: Some(Timestamp::now()), cpu_usage_nano_cores: Some(0), ..Default::default() })
    }

    fn runs_probes(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ContainerKind;

    fn sandbox(uid: &str) -> SandboxSpec {
        SandboxSpec {
            meta: ContainerMeta {
                pod_uid: uid.into(),
                pod_namespace: "default".into(),
                pod_name: uid.into(),
                name: crate::runtime::SANDBOX_NAME.into(),
                kind: ContainerKind::Sandbox,
                attempt: 0,
                hash: String::new(),
                grace_period: 30,
            },
            hostname: uid.into(),
            host_network: false,
            ports: Vec::new(),
        }
    }

    #[tokio::test]
    async fn sandboxes_get_distinct_ips_from_the_pod_cidr_and_return_them() {
        let rt = FakeRuntime::new("n1");
        rt.setup_network("10.9.0.0/30", "10.9.0.0/16").await.unwrap();
        let a = rt.run_sandbox(&sandbox("a")).await.unwrap();
        let ips = |rt: &FakeRuntime| rt.lock().containers.values().filter_map(|c| c.ip.clone()).collect::<Vec<_>>();
        assert_eq!(ips(&rt), ["10.9.0.2"]);
        assert!(rt.run_sandbox(&sandbox("b")).await.is_err(), "a /30 holds one pod besides the gateway");
        rt.remove_container(&a).await.unwrap();
        rt.run_sandbox(&sandbox("c")).await.unwrap();
        assert_eq!(ips(&rt), ["10.9.0.2"]);
    }

    #[tokio::test]
    async fn stopped_and_exited_containers_report_how_they_ended() {
        let rt = FakeRuntime::new("n1");
        let id = rt.run_sandbox(&sandbox("a")).await.unwrap();
        rt.exit_container(&id, 3).unwrap();
        let c = rt.pod_containers("a").await.unwrap().remove(0);
        assert!(matches!(c.state, ContainerState::Exited { exit_code: 3, .. }));
    }

    #[tokio::test]
    async fn containers_log_nothing_and_commands_exit_zero_silently() {
        let rt = FakeRuntime::new("n1");
        let id = rt.run_sandbox(&sandbox("a")).await.unwrap();
        assert!(rt.container_logs(&id, &LogOptions::default()).await.unwrap().next().await.is_none());
        let spec = ExecSpec { command: vec!["true".into()], stdin: true, ..Default::default() };
        let session = rt.exec_attached(&id, &spec).await.unwrap();
        assert!(session.stdin.is_some());
        assert!(session.output.collect::<Vec<_>>().await.is_empty());
        assert_eq!(session.exit_code.await.unwrap(), 0);
        let stats = rt.container_stats(&id).await.unwrap();
        assert_eq!((stats.cpu_usage_core_nanos, stats.memory_working_set_bytes), (0, 0));
        assert!(matches!(rt.container_logs("nope", &LogOptions::default()).await, Err(Error::NotFound(_))));
        rt.stop_container(&id, Duration::ZERO).await.unwrap();
        assert!(rt.exec_attached(&id, &spec).await.is_err(), "a stopped container runs no commands");
    }
}
