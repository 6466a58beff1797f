//! One pod sync: find the pod's state, carry out the plan's steps against
//! the runtime, and report the status. Everything a bad spec or a missing
//! object causes ends as a waiting reason and an Event, never as a panic.
//!
//! A key names a static pod ([`crate::static_pods`]) or an API pod; a
//! static pod wins, its status is kept locally and written to its mirror
//! pod, and a mirror pod is never run itself. Probe workers
//! ([`crate::probes`]) are started and stopped with the containers; their
//! results feed the plan (liveness, startup) and the status (readiness).

use super::backoff::Backoff;
use super::lifecycle::{self, Observed, PlanInput, PodState, Step, Waiting, backoff_key, grace_seconds};
use super::status::{StatusInput, pod_status};
use super::{NodeFacts, PodManager};
use crate::Metrics;
use crate::containers::{self, ContainerInputs, EnvSources, PodContext};
use crate::dns;
use crate::images::{self, PullPolicy};
use crate::node::NetworkState;
use crate::objects::ObjectCache;
use crate::probes::Prober;
use crate::runtime::{self, ContainerKind, ContainerMeta, Mount, Runtime, RuntimeContainer, SANDBOX_NAME, SandboxSpec};
use crate::service_env;
use crate::static_pods::{self, StaticPods};
use crate::volumes::{self, PodVolumes, VolumeError, VolumeManager};
use crate::{Error, Result};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Node, Pod, PodStatus, Secret, Service};
use k8s_openapi::jiff::Timestamp;
use rkube_client::events::EventRecorder;
use rkube_client::{Api, ApiError, Client, DeleteParams, ObjectKey, Reason, Store};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// How soon a pod waiting for a missing object is looked at again.
const RECHECK: Duration = Duration::from_secs(2);
/// How soon a static pod's mirror is tried again after the API failed.
const MIRROR_RETRY: Duration = Duration::from_secs(5);
/// How long a container start waits for the first list of Services.
const SERVICES_SYNC_WAIT: Duration = Duration::from_secs(5);

/// What the kubelet remembers about pods between syncs (lost on restart;
/// everything else is rebuilt from the API and the runtime).
#[derive(Debug, Default)]
struct Records {
    crash: Backoff,
    pulls: Backoff,
    states: HashMap<String, PodState>,
    written: HashMap<String, serde_json::Value>,
    /// Static pod uid → (its mirror's uid, the status last written to it).
    mirrors: HashMap<String, (String, serde_json::Value)>,
}

impl Records {
    fn forget(&mut self, uid: &str) {
        let prefix = format!("{uid}/");
        self.crash.forget_prefix(&prefix);
        self.pulls.forget_prefix(&prefix);
        self.states.remove(uid);
        self.written.remove(uid);
        self.mirrors.remove(uid);
    }
}

/// Syncs pods of one node; shared by the workers.
pub(crate) struct Syncer<R: Runtime> {
    client: Client,
    node: NodeFacts,
    runtime: Arc<R>,
    volumes: VolumeManager,
    objects: ObjectCache,
    recorder: Arc<EventRecorder>,
    pods: Store<Pod>,
    /// Every Service, for the containers' Service variables.
    services: Store<Service>,
    network: watch::Receiver<NetworkState>,
    metrics: Arc<Metrics>,
    records: Mutex<Records>,
    cleanup: Mutex<HashSet<ObjectKey>>,
    static_pods: Arc<StaticPods>,
    probes: Prober<R>,
}

/// A step's outcome for the status: containers that wait, and when to look again.
#[derive(Debug, Default)]
struct Outcome {
    waiting: BTreeMap<String, Waiting>,
    requeue: Option<Duration>,
}

impl Outcome {
    fn requeue(&mut self, after: Duration) {
        self.requeue = Some(self.requeue.map_or(after, |d| d.min(after)));
    }

    fn wait(&mut self, container: &str, waiting: Waiting, recheck: Duration) {
        self.waiting.insert(container.to_string(), waiting);
        self.requeue(recheck);
    }
}

fn uid_of(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or_default()
}

fn name_of(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or_default()
}

fn namespace_of(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or("default")
}

impl<R: Runtime> Syncer<R> {
    pub(crate) fn new(m: &PodManager<R>, pods: Store<Pod>, static_pods: Arc<StaticPods>, probes: Prober<R>) -> Self {
        Syncer {
            client: m.client.clone(),
            node: m.node.clone(),
            runtime: m.runtime.clone(),
            volumes: m.volumes.clone(),
            objects: m.objects.clone(),
            recorder: m.recorder.clone(),
            pods,
            services: m.informers.get::<Service>().store().clone(),
            network: m.network.clone(),
            metrics: m.metrics.clone(),
            records: Mutex::new(Records::default()),
            cleanup: Mutex::new(HashSet::new()),
            static_pods,
            probes,
        }
    }

    pub(crate) fn static_pods(&self) -> &StaticPods {
        &self.static_pods
    }

    pub(crate) fn runtime(&self) -> &R {
        &self.runtime
    }

    pub(crate) fn volumes(&self) -> &VolumeManager {
        &self.volumes
    }

    pub(crate) fn node_name(&self) -> &str {
        &self.node.name
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn records(&self) -> MutexGuard<'_, Records> {
        // Records are plain maps, consistent between statements.
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks the next sync of `key` to remove containers of other pods by that name.
    pub(crate) fn mark_for_cleanup(&self, key: ObjectKey) {
        self.cleanup.lock().unwrap_or_else(|p| p.into_inner()).insert(key);
    }

    /// Syncs the pod `key`; returns when to sync it again (None: on the
    /// next event or resync).
    pub(crate) async fn sync(&self, key: &ObjectKey) -> Result<Option<Duration>> {
        self.metrics.count_sync();
        let flagged = self.cleanup.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
        // A static pod wins over any API pod of its name (normally its mirror).
        if let Some(pod) = self.static_pods.get(key) {
            if flagged {
                self.remove_strays(key, Some(uid_of(&pod))).await?;
            }
            return self.count_errors(self.sync_pod(&pod).await);
        }
        let pod = self
            .pods
            .get(key)
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&self.node.name));
        if let Some(mirror) = pod.as_ref().filter(|p| static_pods::is_mirror_pod(p)) {
            // Its static pod is gone (its file was removed): stop it, then delete the mirror.
            self.remove_strays(key, None).await?;
            self.delete_mirror(mirror, "its static pod is gone").await?;
            return Ok(None);
        }
        // Before the first complete list, a pod missing from the store may
        // just not be listed yet.
        if flagged || (pod.is_none() && self.pods.is_synced()) {
            self.remove_strays(key, pod.as_deref().map(uid_of)).await?;
        }
        let Some(pod) = pod else { return Ok(None) };
        self.count_errors(self.sync_pod(&pod).await)
    }

    fn count_errors<T>(&self, result: Result<T>) -> Result<T> {
        if result.is_err() {
            self.metrics.count_sync_error();
        }
        result
    }

    /// Forgets everything about pod `uid` and stops its probes.
    fn forget(&self, uid: &str) {
        self.records().forget(uid);
        self.probes.forget_pod(uid);
    }

    async fn sync_pod(&self, pod: &Pod) -> Result<Option<Duration>> {
        let uid = uid_of(pod);
        let observed = Observed::new(self.runtime.pod_containers(uid).await?);
        let network = self.network.borrow().clone();
        let now = Timestamp::now();
        let unhealthy = self.probes.unhealthy(pod, &observed);
        let plan = {
            let records = self.records();
            lifecycle::plan(PlanInput {
                pod,
                observed: &observed,
                network_ready: network.ready,
                crash_backoff: &records.crash,
                unhealthy: &unhealthy,
                now,
            })
        };
        self.note_state(pod, plan.state);
        if plan.state == PodState::Terminating {
            return self.terminate(pod, &observed).await.map(|()| None);
        }

        let mut outcome = Outcome { waiting: plan.waiting.clone(), requeue: plan.requeue_after };
        for (name, w) in plan.waiting.iter().filter(|(_, w)| w.reason == "CrashLoopBackOff") {
            let message = format!(
                "Back-off restarting failed container {name} in pod {}_{}({uid})",
                name_of(pod),
                namespace_of(pod)
            );
            debug!(pod = %name_of(pod), container = %name, waiting = %w.message, "crash loop back-off");
            self.recorder.warning(pod, "BackOff", message);
        }
        if plan.state == PodState::WaitingForNetwork {
            let message = format!("network is not ready: {}", network.message);
            for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
                outcome.waiting.insert(c.name.clone(), Waiting::new("ContainerCreating", message.clone()));
            }
        }
        let wants_volumes = matches!(plan.state, PodState::Creating | PodState::Initializing | PodState::Running);
        let volumes = if wants_volumes { self.setup_volumes(pod, &observed, &mut outcome).await } else { None };

        let mut acted = false;
        for step in &plan.steps {
            let needs_volumes = matches!(step, Step::CreateSandbox { .. } | Step::StartContainer { .. });
            if needs_volumes && volumes.is_none() {
                continue;
            }
            acted = true;
            self.execute(pod, step, &observed, volumes.as_ref(), &mut outcome).await?;
        }
        let observed = if acted { Observed::new(self.runtime.pod_containers(uid).await?) } else { observed };
        self.probes.sync_pod(pod, &observed);
        if let Some(after) = self.write_status(pod, &observed, plan.state, &outcome.waiting).await? {
            outcome.requeue(after);
        }
        Ok(outcome.requeue)
    }

    fn note_state(&self, pod: &Pod, state: PodState) {
        let previous = self.records().states.insert(uid_of(pod).to_string(), state);
        if previous != Some(state) {
            info!(
                pod = %format!("{}/{}", namespace_of(pod), name_of(pod)),
                node = %self.node.name,
                from = previous.map_or("New", PodState::name),
                to = state.name(),
                "pod state"
            );
        }
    }

    /// Sets up the pod's volumes; on failure records why (event + waiting
    /// reason on every container not running) and returns None.
    async fn setup_volumes(&self, pod: &Pod, observed: &Observed, outcome: &mut Outcome) -> Option<PodVolumes> {
        match self.volumes.setup(pod).await {
            Ok(v) => Some(v),
            Err(e) => {
                self.recorder.warning(pod, "FailedMount", e.to_string());
                let waiting = match &e {
                    VolumeError::Missing { .. } => Waiting::new("CreateContainerConfigError", e.message()),
                    VolumeError::Failed { .. } => Waiting::new("ContainerCreating", e.to_string()),
                };
                let spec = pod.spec.as_ref();
                let all = spec.iter().flat_map(|s| s.init_containers.iter().flatten().chain(s.containers.iter()));
                for c in all {
                    let running = observed
                        .instances(ContainerKind::App, &c.name)
                        .iter()
                        .chain(observed.instances(ContainerKind::Init, &c.name))
                        .any(RuntimeContainer::is_running);
                    if !running {
                        outcome.waiting.insert(c.name.clone(), waiting.clone());
                    }
                }
                // Look again soon, whatever else the plan wanted: nothing
                // can start before the volumes are there.
                outcome.requeue = Some(RECHECK);
                None
            }
        }
    }

    async fn execute(
        &self,
        pod: &Pod,
        step: &Step,
        observed: &Observed,
        volumes: Option<&PodVolumes>,
        outcome: &mut Outcome,
    ) -> Result<()> {
        match step {
            Step::CreateSandbox { attempt } => match self.create_sandbox(pod, *attempt).await {
                // Plan the containers at once, against the new sandbox.
                Ok(_) => outcome.requeue(Duration::ZERO),
                Err(e @ runtime::Error::Unavailable { .. }) => return Err(e.into()),
                Err(e) => {
                    self.recorder.warning(pod, "FailedCreatePodSandBox", format!("Failed to create pod sandbox: {e}"));
                    for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
                        outcome.wait(&c.name, Waiting::new("ContainerCreating", e.to_string()), Duration::from_secs(5));
                    }
                }
            },
            Step::KillPod { grace_seconds } => self.kill_pod(pod, observed, *grace_seconds).await?,
            Step::KillContainer { id, name, reason } => {
                self.recorder.normal(pod, "Killing", reason.clone());
                self.runtime.stop_container(id, Duration::from_secs(grace_seconds(pod) as u64)).await?;
                debug!(container = %name, reason = %reason, "container stopped");
            }
            Step::RemoveContainer { id } => self.runtime.remove_container(id).await?,
            Step::StartContainer { kind, index, attempt, after_exit, ran_long } => {
                let Some(spec) = pod.spec.as_ref() else { return Ok(()) };
                let c = match kind {
                    ContainerKind::Init => spec.init_containers.as_ref().and_then(|l| l.get(*index)),
                    _ => spec.containers.get(*index),
                };
                let Some(c) = c else { return Ok(()) };
                let volumes = volumes.cloned().unwrap_or_default();
                let start = StartRequest {
                    container: c,
                    kind: *kind,
                    attempt: *attempt,
                    after_exit: *after_exit,
                    ran_long: *ran_long,
                };
                if let Err((waiting, recheck)) = self.start_container(pod, &start, observed, &volumes).await {
                    outcome.wait(&c.name, waiting, recheck);
                }
            }
        }
        Ok(())
    }

    async fn create_sandbox(&self, pod: &Pod, attempt: u32) -> runtime::Result<String> {
        let spec = pod.spec.clone().unwrap_or_default();
        let hostname = spec.hostname.clone().filter(|h| !h.is_empty()).unwrap_or_else(|| name_of(pod).to_string());
        let sandbox = SandboxSpec {
            meta: self.meta(pod, SANDBOX_NAME, ContainerKind::Sandbox, attempt, String::new()),
            hostname: hostname.chars().take(63).collect(),
            host_network: spec.host_network == Some(true),
            ports: containers::host_ports(pod),
        };
        if let Err(e) = self.write_resolv_conf(pod, true) {
            // The containers write it again before they start, and fail then.
            warn!(pod = %ObjectKey::of(pod), error = %e, "could not write the pod's resolv.conf");
        }
        let id = self.runtime.run_sandbox(&sandbox).await?;
        info!(pod = %format!("{}/{}", namespace_of(pod), name_of(pod)), sandbox = %id, "sandbox started");
        Ok(id)
    }

    fn meta(&self, pod: &Pod, name: &str, kind: ContainerKind, attempt: u32, hash: String) -> ContainerMeta {
        ContainerMeta {
            pod_uid: uid_of(pod).to_string(),
            pod_namespace: namespace_of(pod).to_string(),
            pod_name: name_of(pod).to_string(),
            name: name.to_string(),
            kind,
            attempt,
            hash,
            grace_period: pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds).unwrap_or(30),
        }
    }

    /// Creates and starts one container; on failure, why it waits and when to retry.
    async fn start_container(
        &self,
        pod: &Pod,
        req: &StartRequest<'_>,
        observed: &Observed,
        volumes: &PodVolumes,
    ) -> Result<(), (Waiting, Duration)> {
        let c = req.container;
        let uid = uid_of(pod);
        let Some(sandbox) = observed.running_sandbox() else {
            return Err((Waiting::new("ContainerCreating", "the pod sandbox is not running"), Duration::from_secs(5)));
        };
        let image = self.ensure_image(pod, c).await?;
        let config_error = |e: String| {
            self.recorder.warning(pod, "Failed", format!("Error: {e}"));
            (Waiting::new("CreateContainerConfigError", e), RECHECK)
        };
        let mut sources = self.env_sources(pod, c).await.map_err(|e| config_error(e.to_string()))?;
        sources.services = self.service_env(pod).await.map_err(config_error)?;
        let host_network = pod.spec.as_ref().and_then(|s| s.host_network) == Some(true);
        let pod_ip = if host_network { self.node.ip.clone() } else { sandbox.ip.clone().unwrap_or_default() };
        let ctx = PodContext {
            pod,
            pod_ip: &pod_ip,
            host_ip: &self.node.ip,
            node_cpu_millis: self.node.cpu_millis,
            node_memory_bytes: self.node.memory_bytes,
        };
        let env = containers::resolve_env(c, &ctx, &sources).map_err(|e| config_error(e.0))?;
        let mut mounts = volumes::container_mounts(c, volumes).map_err(|e| config_error(e.0))?;
        if !mounts.iter().any(|m| m.container_path == dns::RESOLV_CONF_PATH) {
            let path = dns::resolv_conf_path(&self.volumes.pod_dir(uid));
            if !path.exists() {
                self.write_resolv_conf(pod, false)
                    .map_err(|e| config_error(format!("writing the pod's resolv.conf: {e}")))?;
            }
            let read_only = c.security_context.as_ref().and_then(|s| s.read_only_root_filesystem) == Some(true);
            mounts.push(Mount {
                host_path: path.to_string_lossy().into_owned(),
                container_path: dns::RESOLV_CONF_PATH.into(),
                read_only,
            });
        }
        let spec = containers::container_spec(ContainerInputs {
            container: c,
            meta: self.meta(pod, &c.name, req.kind, req.attempt, containers::container_hash(c)),
            image: &image,
            env,
            mounts,
            sandbox_id: &sandbox.id,
            host_network,
        });
        let runtime_error = |reason: &str, e: runtime::Error| {
            self.recorder.warning(pod, "Failed", format!("Error: {e}"));
            (Waiting::new(reason, e.to_string()), Duration::from_secs(5))
        };
        let id = self.runtime.create_container(&spec).await.map_err(|e| runtime_error("CreateContainerError", e))?;
        self.recorder.normal(pod, "Created", format!("Created container {}", c.name));
        if req.after_exit {
            let key = backoff_key(uid, &c.name);
            let mut records = self.records();
            if req.ran_long {
                records.crash.reset(&key);
            }
            records.crash.next(&key, Timestamp::now());
        }
        self.runtime.start_container(&id).await.map_err(|e| runtime_error("RunContainerError", e))?;
        self.recorder.normal(pod, "Started", format!("Started container {}", c.name));
        Ok(())
    }

    /// Makes the container's image present per its pull policy, with
    /// `ErrImagePull` / `ImagePullBackOff` / `ErrImageNeverPull` on failure.
    async fn ensure_image(&self, pod: &Pod, c: &Container) -> Result<runtime::ImageDetails, (Waiting, Duration)> {
        let image = c.image.clone().unwrap_or_default();
        if image.is_empty() {
            return Err((Waiting::new("InvalidImageName", "the container names no image"), RECHECK));
        }
        let pull_error = |e: runtime::Error| (Waiting::new("ErrImagePull", e.to_string()), Duration::from_secs(5));
        let present = self.runtime.image_details(&image).await.map_err(pull_error)?;
        let policy = PullPolicy::of(c.image_pull_policy.as_deref(), &image);
        match (policy, present) {
            (PullPolicy::Never, None) => {
                let message = format!("Container image \"{image}\" is not present with pull policy of Never");
                self.recorder.warning(pod, "ErrImageNeverPull", message.clone());
                return Err((Waiting::new("ErrImageNeverPull", message), Duration::from_secs(10)));
            }
            (PullPolicy::Never | PullPolicy::IfNotPresent, Some(details)) => {
                self.recorder.normal(pod, "Pulled", format!("Container image \"{image}\" already present on machine"));
                return Ok(details);
            }
            _ => {}
        }
        let key = format!("{}/{image}", uid_of(pod));
        let remaining = self.records().pulls.remaining_since_update(&key, Timestamp::now());
        if let Some(remaining) = remaining {
            let message = format!("Back-off pulling image \"{image}\"");
            self.recorder.normal(pod, "BackOff", message.clone());
            return Err((Waiting::new("ImagePullBackOff", message), remaining));
        }
        self.recorder.normal(pod, "Pulling", format!("Pulling image \"{image}\""));
        let secrets = self.pull_secrets(pod).await;
        let auths = images::credentials_for(&image, &secrets);
        let started = Instant::now();
        match self.runtime.pull_image(&image, &auths).await {
            Ok(()) => {
                self.records().pulls.reset(&key);
                self.recorder.normal(
                    pod,
                    "Pulled",
                    format!("Successfully pulled image \"{image}\" in {:.3}s", started.elapsed().as_secs_f64()),
                );
            }
            Err(e) => {
                self.records().pulls.next(&key, Timestamp::now());
                let message = match &e {
                    runtime::Error::ImagePull { message, .. } => message.clone(),
                    other => other.to_string(),
                };
                self.recorder.warning(pod, "Failed", format!("Failed to pull image \"{image}\": {message}"));
                self.recorder.warning(pod, "Failed", "Error: ErrImagePull");
                // Look again soon: the pod then shows ImagePullBackOff until the back-off ends.
                return Err((Waiting::new("ErrImagePull", message), Duration::from_secs(1)));
            }
        }
        match self.runtime.image_details(&image).await {
            Ok(Some(details)) => Ok(details),
            Ok(None) => {
                Err((Waiting::new("ErrImagePull", format!("image \"{image}\" is missing after its pull")), RECHECK))
            }
            Err(e) => Err(pull_error(e)),
        }
    }

    /// The pod's imagePullSecrets that exist (a missing one is reported and skipped).
    async fn pull_secrets(&self, pod: &Pod) -> Vec<Secret> {
        let mut out = Vec::new();
        for r in pod.spec.iter().flat_map(|s| s.image_pull_secrets.iter().flatten()) {
            match self.objects.get::<Secret>(namespace_of(pod), &r.name).await {
                Ok(Some(s)) => out.push(Arc::unwrap_or_clone(s)),
                Ok(None) => self.recorder.warning(
                    pod,
                    "FailedToRetrieveImagePullSecret",
                    format!("Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed.", r.name),
                ),
                Err(e) => warn!(secret = %r.name, error = %e, "could not read an imagePullSecret"),
            }
        }
        out
    }

    /// Writes the pod's resolv.conf into its directory; with `report`, its
    /// warnings become events (once per sandbox, as Kubernetes does).
    fn write_resolv_conf(&self, pod: &Pod, report: bool) -> std::io::Result<()> {
        let (host, host_text) = dns::read_host(&self.node.dns.resolv_conf);
        let pod_dns = dns::pod_dns(pod, &self.node.dns, &host);
        if report {
            for (reason, message) in &pod_dns.warnings {
                self.recorder.warning(pod, reason, message.clone());
            }
        }
        dns::write_resolv_conf(&self.volumes.pod_dir(uid_of(pod)), &pod_dns.config, &host_text).map(|_| ())
    }

    /// The Service variables of `pod`'s containers. An API pod waits (a
    /// little) for the first list of Services, so that no container misses
    /// `KUBERNETES_SERVICE_HOST` just after the kubelet started; a static
    /// pod takes what is there.
    async fn service_env(&self, pod: &Pod) -> Result<Vec<(String, String)>, String> {
        if !self.static_pods.owns(pod) && !self.services.is_synced() {
            let synced = tokio::time::timeout(SERVICES_SYNC_WAIT, self.services.wait_until_synced()).await;
            if !matches!(synced, Ok(Ok(()))) {
                return Err("services have not yet been read at least once, cannot construct envvars".into());
            }
        }
        let links = pod.spec.as_ref().and_then(|s| s.enable_service_links).unwrap_or(true);
        let namespace = namespace_of(pod);
        let mut services = self.services.list_namespace(namespace);
        if namespace != "default" {
            services.extend(self.services.list_namespace("default"));
        }
        Ok(service_env::service_env(&services, namespace, links))
    }

    async fn env_sources(&self, pod: &Pod, c: &Container) -> Result<EnvSources> {
        let (cms, secrets) = containers::env_references(c);
        let mut sources = EnvSources::default();
        for name in cms {
            let cm = self.objects.get::<ConfigMap>(namespace_of(pod), &name).await?;
            sources.config_maps.insert(name, cm.map(Arc::unwrap_or_clone));
        }
        for name in secrets {
            let s = self.objects.get::<Secret>(namespace_of(pod), &name).await?;
            sources.secrets.insert(name, s.map(Arc::unwrap_or_clone));
        }
        Ok(sources)
    }

    /// Stops the pod's running containers (in parallel, each with `grace`
    /// seconds), then its sandbox.
    async fn kill_pod(&self, pod: &Pod, observed: &Observed, grace: i64) -> Result<()> {
        let grace = Duration::from_secs(u64::try_from(grace).unwrap_or(0));
        let running: Vec<&RuntimeContainer> =
            observed.all().filter(|c| c.is_running() && c.meta.kind != ContainerKind::Sandbox).collect();
        for c in &running {
            self.recorder.normal(pod, "Killing", format!("Stopping container {}", c.meta.name));
        }
        let stops = running.iter().map(|c| self.runtime.stop_container(&c.id, grace));
        for r in futures::future::join_all(stops).await {
            r?;
        }
        for s in observed.sandboxes.iter().filter(|s| s.is_running()) {
            self.runtime.stop_container(&s.id, Duration::ZERO).await?;
        }
        Ok(())
    }

    /// Deletion: stop everything within the grace period, remove the
    /// containers and the pod's directory, then delete the pod for good.
    async fn terminate(&self, pod: &Pod, observed: &Observed) -> Result<()> {
        let uid = uid_of(pod);
        self.kill_pod(pod, observed, grace_seconds(pod)).await?;
        for c in observed.all() {
            self.runtime.remove_container(&c.id).await?;
        }
        self.volumes
            .teardown(uid)
            .await
            .map_err(|e| Error::Io { context: format!("removing the directory of pod {uid}"), source: e })?;
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace_of(pod));
        let params = DeleteParams { grace_period_seconds: Some(0), uid: uid.to_string(), ..Default::default() };
        match api.delete(name_of(pod), &params).await {
            Ok(_) => {}
            Err(e) if matches!(e.reason, Reason::NotFound | Reason::Conflict) => {}
            Err(e) => return Err(e.into()),
        }
        info!(pod = %format!("{}/{}", namespace_of(pod), name_of(pod)), node = %self.node.name, "pod terminated and deleted");
        self.forget(uid);
        Ok(())
    }

    /// Removes the containers (and directories) of pods named `key` other
    /// than `keep` (the uid of the pod that now has that name, if any).
    async fn remove_strays(&self, key: &ObjectKey, keep: Option<&str>) -> Result<()> {
        let all = self.runtime.list_containers().await?;
        let strays: Vec<_> = all
            .into_iter()
            .filter(|c| c.meta.pod_namespace == key.namespace && c.meta.pod_name == key.name)
            .filter(|c| Some(c.meta.pod_uid.as_str()) != keep)
            .collect();
        let uids: BTreeSet<String> = strays.iter().map(|c| c.meta.pod_uid.clone()).collect();
        let (sandboxes, containers): (Vec<_>, Vec<_>) =
            strays.iter().partition(|c| c.meta.kind == ContainerKind::Sandbox);
        let stops = containers
            .iter()
            .filter(|c| c.is_running())
            .map(|c| self.runtime.stop_container(&c.id, Duration::from_secs(c.meta.grace_period.clamp(0, 300) as u64)));
        for r in futures::future::join_all(stops).await {
            r?;
        }
        for c in containers.iter().chain(sandboxes.iter()) {
            self.runtime.remove_container(&c.id).await?;
        }
        for uid in uids {
            info!(pod = %key, uid = %uid, node = %self.node.name, "removed the containers of a pod that is gone");
            self.volumes
                .teardown(&uid)
                .await
                .map_err(|e| Error::Io { context: format!("removing the directory of pod {uid}"), source: e })?;
            self.forget(&uid);
        }
        Ok(())
    }

    /// Computes the status and writes it if it changed (a static pod's to
    /// its mirror pod); returns when to look again if that must be retried.
    async fn write_status(
        &self,
        pod: &Pod,
        observed: &Observed,
        state: PodState,
        waiting: &BTreeMap<String, Waiting>,
    ) -> Result<Option<Duration>> {
        let probes = self.probes.readiness(pod, observed);
        let status = pod_status(&StatusInput {
            pod,
            observed,
            state,
            waiting,
            unready: &probes.unready,
            unstarted: &probes.unstarted,
            host_ip: &self.node.ip,
            id_scheme: self.runtime.id_scheme(),
            now: Timestamp::now(),
        });
        if self.static_pods.owns(pod) {
            self.static_pods.set_status(pod, status.clone());
            return Ok(self.sync_mirror(pod, &status).await);
        }
        let new = serde_json::to_value(&status).expect("a PodStatus always serializes");
        let old = serde_json::to_value(pod.status.clone().unwrap_or_default()).expect("a PodStatus always serializes");
        let uid = uid_of(pod);
        if new == old || self.records().written.get(uid) == Some(&new) {
            return Ok(None);
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace_of(pod));
        match api.patch_status(name_of(pod), &serde_json::json!({ "status": new })).await {
            Ok(_) => {
                debug!(pod = %format!("{}/{}", namespace_of(pod), name_of(pod)), phase = ?status.phase, "status written");
                self.records().written.insert(uid.to_string(), new);
                Ok(None)
            }
            Err(e) if e.reason == Reason::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Keeps static pod `pod`'s mirror pod in the API: created when
    /// missing, replaced when stale or being deleted, its status current.
    /// The static pod runs whatever the API does: failures are logged and
    /// retried after [`MIRROR_RETRY`].
    async fn sync_mirror(&self, pod: &Pod, status: &PodStatus) -> Option<Duration> {
        let key = ObjectKey::of(pod);
        if !self.pods.is_synced() {
            // Whether a mirror exists is not known before the first list.
            return Some(MIRROR_RETRY);
        }
        let mut mirror = self.pods.get(&key);
        if let Some(m) = mirror.as_ref() {
            if !static_pods::is_mirror_pod(m) {
                warn!(pod = %key, "an API pod that is not a mirror pod has this static pod's name; leaving it alone");
                return None;
            }
            if static_pods::mirror_hash(m) != static_pods::hash_of(pod) || m.metadata.deletion_timestamp.is_some() {
                if let Err(e) = self.delete_mirror(m, "it is stale or being deleted").await {
                    warn!(pod = %key, error = %e, "could not delete the mirror pod; retrying");
                    return Some(MIRROR_RETRY);
                }
                mirror = None;
            }
        }
        let mirror = match mirror {
            Some(m) => m,
            None => match self.create_mirror(pod).await {
                Ok(m) => Arc::new(m),
                // The store has not seen it yet.
                Err(e) if e.reason == Reason::AlreadyExists => return Some(Duration::from_secs(1)),
                Err(e) => {
                    warn!(pod = %key, error = %e, "could not create the mirror pod; retrying");
                    return Some(MIRROR_RETRY);
                }
            },
        };
        let mirror_uid = uid_of(&mirror).to_string();
        let new = serde_json::to_value(status).expect("a PodStatus always serializes");
        let old =
            serde_json::to_value(mirror.status.clone().unwrap_or_default()).expect("a PodStatus always serializes");
        let written = self.records().mirrors.get(uid_of(pod)).is_some_and(|(u, v)| *u == mirror_uid && *v == new);
        if new == old || written {
            return None;
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace_of(pod));
        match api.patch_status(name_of(pod), &serde_json::json!({ "status": new })).await {
            Ok(_) => {
                debug!(pod = %key, phase = ?status.phase, "mirror pod status written");
                self.records().mirrors.insert(uid_of(pod).to_string(), (mirror_uid, new));
                None
            }
            Err(e) => {
                warn!(pod = %key, error = %e, "could not write the mirror pod's status; retrying");
                Some(MIRROR_RETRY)
            }
        }
    }

    /// Creates static pod `pod`'s mirror pod, owned by this node's Node.
    async fn create_mirror(&self, pod: &Pod) -> Result<Pod, ApiError> {
        let node = Api::<Node>::all(self.client.clone()).get(&self.node.name).await?;
        let mirror = static_pods::mirror_pod(pod, node.metadata.uid.as_deref().unwrap_or_default());
        let created = Api::<Pod>::namespaced(self.client.clone(), namespace_of(pod)).create(&mirror).await?;
        info!(pod = %ObjectKey::of(pod), node = %self.node.name, "mirror pod created");
        self.records().mirrors.remove(uid_of(pod));
        Ok(created)
    }

    /// Deletes a mirror pod at once (its uid as precondition).
    async fn delete_mirror(&self, mirror: &Pod, why: &str) -> Result<(), ApiError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace_of(mirror));
        let params =
            DeleteParams { grace_period_seconds: Some(0), uid: uid_of(mirror).to_string(), ..Default::default() };
        match api.delete(name_of(mirror), &params).await {
            Ok(_) => {
                info!(pod = %ObjectKey::of(mirror), reason = why, "mirror pod deleted");
                Ok(())
            }
            Err(e) if matches!(e.reason, Reason::NotFound | Reason::Conflict) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// One container to start.
#[derive(Debug)]
struct StartRequest<'a> {
    container: &'a Container,
    kind: ContainerKind,
    attempt: u32,
    after_exit: bool,
    ran_long: bool,
}
