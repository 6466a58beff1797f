//! A pod's lifecycle on the node as explicit states and named transitions
//! (after krustlet's state machine, computed level-triggered the way
//! Kubernetes' `computePodActions` is).
//!
//! ```text
//!             network ready            sandbox up           init done
//! WaitingForNetwork ──────► Creating ──────────► Initializing ──────► Running
//!                              ▲   sandbox died                        │ every container
//!                              └───────────────────────────────────────┤ exited for good
//!  (any state) ── deletionTimestamp ──► Terminating                    ▼
//!                                                               Completed{succeeded}
//! ```
//!
//! [`plan`] is pure: from the pod, what the runtime reports ([`Observed`]),
//! the restart back-off and the containers failing their liveness or
//! startup probes, it names the pod's [`PodState`] and the [`Step`]s that
//! move it on. `pod::sync` carries the steps out and computes the status
//! afterwards.

use super::backoff::{self, Backoff, Restart};
use crate::containers::container_hash;
use crate::probes::{ProbeKind, Unhealthy};
use crate::runtime::{ContainerKind, ContainerState, RuntimeContainer};
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::jiff::Timestamp;
use std::collections::BTreeMap;
use std::time::Duration;

/// Instances of a container kept: the newest and the one before (for
/// `lastState`); older ones are removed.
const KEPT_INSTANCES: usize = 2;

/// Where a pod is in its life on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodState {
    /// The pod needs the node's pod network, which is not ready (no podCIDR yet).
    WaitingForNetwork,
    /// Volumes and the sandbox are being set up.
    Creating,
    /// The sandbox runs; init containers run one after another.
    Initializing,
    /// Init containers are done; app containers run and restart per policy.
    Running,
    /// Every container has exited for good; the pod `Succeeded` or `Failed`.
    Completed {
        /// Whether every container exited 0.
        succeeded: bool,
    },
    /// Deletion was requested: the containers are being stopped.
    Terminating,
}

impl PodState {
    /// The state's name, for logs.
    pub fn name(self) -> &'static str {
        match self {
            PodState::WaitingForNetwork => "WaitingForNetwork",
            PodState::Creating => "Creating",
            PodState::Initializing => "Initializing",
            PodState::Running => "Running",
            PodState::Completed { succeeded: true } => "Succeeded",
            PodState::Completed { succeeded: false } => "Failed",
            PodState::Terminating => "Terminating",
        }
    }
}

/// A named transition: one thing the kubelet does to move the pod on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Start the pod's sandbox (attempt `attempt`).
    CreateSandbox {
        /// 0 for the first sandbox, +1 for each replacement.
        attempt: u32,
    },
    /// Stop every running container of the pod, then its sandbox.
    KillPod {
        /// Seconds each container gets between SIGTERM and SIGKILL.
        grace_seconds: i64,
    },
    /// Start container `index` of `kind` (its `attempt`-th run).
    StartContainer {
        /// Init or app.
        kind: ContainerKind,
        /// Its index in the spec.
        index: usize,
        /// Its restart count once started.
        attempt: u32,
        /// Whether this restarts a container that exited (and so counts in its back-off).
        after_exit: bool,
        /// Whether the exited container ran long enough to reset its back-off.
        ran_long: bool,
    },
    /// Stop a running container (its spec changed, or it failed its
    /// liveness or startup probe).
    KillContainer {
        /// The runtime id.
        id: String,
        /// The container's name.
        name: String,
        /// Why, for the `Killing` event.
        reason: String,
    },
    /// Remove a dead container (an old instance, or one that never started).
    RemoveContainer {
        /// The runtime id.
        id: String,
    },
}

/// Why a container is not running, shown as its `state.waiting`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// `CrashLoopBackOff`, `ErrImagePull`, `CreateContainerConfigError`, …
    pub reason: String,
    /// The details.
    pub message: String,
}

impl Waiting {
    /// A waiting reason with a message.
    pub fn new(reason: &str, message: impl Into<String>) -> Waiting {
        Waiting { reason: reason.to_string(), message: message.into() }
    }
}

/// What the runtime has of one pod, grouped by container, newest first.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Sandboxes, newest first.
    pub sandboxes: Vec<RuntimeContainer>,
    /// Init containers by name, newest first.
    pub init: BTreeMap<String, Vec<RuntimeContainer>>,
    /// App containers by name, newest first.
    pub app: BTreeMap<String, Vec<RuntimeContainer>>,
}

impl Observed {
    /// Groups a pod's containers.
    pub fn new(containers: Vec<RuntimeContainer>) -> Observed {
        let mut o = Observed::default();
        for c in containers {
            match c.meta.kind {
                ContainerKind::Sandbox => o.sandboxes.push(c),
                ContainerKind::Init => o.init.entry(c.meta.name.clone()).or_default().push(c),
                ContainerKind::App => o.app.entry(c.meta.name.clone()).or_default().push(c),
            }
        }
        let newest_first = |v: &mut Vec<RuntimeContainer>| {
            v.sort_by(|a, b| b.meta.attempt.cmp(&a.meta.attempt).then_with(|| b.is_running().cmp(&a.is_running())));
        };
        newest_first(&mut o.sandboxes);
        o.init.values_mut().for_each(newest_first);
        o.app.values_mut().for_each(newest_first);
        o
    }

    /// The newest sandbox.
    pub fn sandbox(&self) -> Option<&RuntimeContainer> {
        self.sandboxes.first()
    }

    /// The newest sandbox if it runs.
    pub fn running_sandbox(&self) -> Option<&RuntimeContainer> {
        self.sandbox().filter(|s| s.is_running())
    }

    /// The instances of a container, newest first.
    pub fn instances(&self, kind: ContainerKind, name: &str) -> &[RuntimeContainer] {
        let map = match kind {
            ContainerKind::Init => &self.init,
            ContainerKind::App => &self.app,
            ContainerKind::Sandbox => return &self.sandboxes,
        };
        map.get(name).map(Vec::as_slice).unwrap_or_default()
    }

    /// Every container of the pod.
    pub fn all(&self) -> impl Iterator<Item = &RuntimeContainer> {
        self.sandboxes.iter().chain(self.init.values().flatten()).chain(self.app.values().flatten())
    }

    /// Whether any container (sandbox included) runs.
    pub fn any_running(&self) -> bool {
        self.all().any(RuntimeContainer::is_running)
    }
}

/// Everything [`plan`] decides from.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    /// The pod.
    pub pod: &'a Pod,
    /// Its containers in the runtime.
    pub observed: &'a Observed,
    /// Whether the node's pod network is ready.
    pub network_ready: bool,
    /// Restart back-off of crashed containers, by [`backoff_key`].
    pub crash_backoff: &'a Backoff,
    /// Running app containers that failed their liveness or startup probe.
    pub unhealthy: &'a Unhealthy,
    /// Now.
    pub now: Timestamp,
}

/// The state a sync finds the pod in and the steps that move it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The pod's state.
    pub state: PodState,
    /// What to do, in order.
    pub steps: Vec<Step>,
    /// Containers held back, with why (`CrashLoopBackOff`).
    pub waiting: BTreeMap<String, Waiting>,
    /// When to look again (a back-off ends); None: on the next event or resync.
    pub requeue_after: Option<Duration>,
}

impl Plan {
    fn new(state: PodState) -> Plan {
        Plan { state, steps: Vec::new(), waiting: BTreeMap::new(), requeue_after: None }
    }

    fn requeue(&mut self, after: Duration) {
        self.requeue_after = Some(self.requeue_after.map_or(after, |d| d.min(after)));
    }
}

/// The key of a container's back-off: `<pod uid>/<container name>`.
pub fn backoff_key(pod_uid: &str, container: &str) -> String {
    format!("{pod_uid}/{container}")
}

/// Whether `policy` restarts a container that exited with `exit_code`.
pub fn restarts(policy: &str, exit_code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

/// The grace period to stop the pod's containers with: the deletion's if
/// it is being deleted, else its spec's (30 s by default).
pub fn grace_seconds(pod: &Pod) -> i64 {
    pod.metadata
        .deletion_grace_period_seconds
        .or_else(|| pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
        .unwrap_or(30)
        .max(0)
}

fn exit_times(c: &RuntimeContainer) -> (Option<Timestamp>, Option<Timestamp>, i32) {
    match &c.state {
        ContainerState::Exited { exit_code, started_at, finished_at, .. } => (*started_at, *finished_at, *exit_code),
        _ => (None, None, 0),
    }
}

/// What happens to one container whose newest instance is `latest`.
enum Verdict {
    /// It runs (or ran) as it should.
    Fine,
    /// Start it (again).
    Start { attempt: u32, after_exit: bool, ran_long: bool },
    /// It waits out its back-off.
    Wait(Waiting, Duration),
    /// It exited and its policy keeps it down.
    Done { exit_code: i32 },
}

fn verdict(
    latest: Option<&RuntimeContainer>,
    c: &Container,
    is_init: bool,
    input: &PlanInput<'_>,
    plan: &mut Plan,
) -> Verdict {
    let meta = &input.pod.metadata;
    let uid = meta.uid.as_deref().unwrap_or_default();
    let policy = input.pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()).unwrap_or("Always");
    let key = backoff_key(uid, &c.name);
    let Some(latest) = latest else { return Verdict::Start { attempt: 0, after_exit: false, ran_long: false } };
    let (started_at, finished_at, exit_code) = match &latest.state {
        ContainerState::Running { .. } => return Verdict::Fine,
        // Never started (a start failed, or the kubelet stopped in between):
        // it counts as a failed run and is replaced.
        ContainerState::Created => {
            plan.steps.push(Step::RemoveContainer { id: latest.id.clone() });
            (None, Some(input.now), 128)
        }
        ContainerState::Exited { .. } => exit_times(latest),
    };
    let restart = if is_init { exit_code != 0 && policy != "Never" } else { restarts(policy, exit_code) };
    if !restart {
        return Verdict::Done { exit_code };
    }
    match backoff::crash_restart(input.crash_backoff, &key, started_at, finished_at, input.now) {
        Restart::Now => Verdict::Start {
            attempt: latest.meta.attempt + 1,
            after_exit: true,
            ran_long: backoff::ran_long(started_at, finished_at),
        },
        Restart::Wait { remaining, delay } => Verdict::Wait(
            Waiting::new(
                "CrashLoopBackOff",
                format!(
                    "back-off {}s restarting failed container={} pod={}_{}({uid})",
                    delay.as_secs(),
                    c.name,
                    meta.name.as_deref().unwrap_or_default(),
                    meta.namespace.as_deref().unwrap_or_default(),
                ),
            ),
            remaining,
        ),
    }
}

/// A running container failed its liveness or startup probe: kill it, and
/// unless the policy is Never start it again — at once if its back-off
/// (counted from the previous instance's exit, as Kubernetes does) allows,
/// else the next sync finds it exited and waits the back-off out.
fn restart_unhealthy(
    running: &RuntimeContainer,
    c: &Container,
    index: usize,
    kind: ProbeKind,
    input: &PlanInput<'_>,
    plan: &mut Plan,
) {
    let policy = input.pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()).unwrap_or("Always");
    let restart = policy != "Never";
    let will = if restart { ", will be restarted" } else { "" };
    plan.steps.push(Step::KillContainer {
        id: running.id.clone(),
        name: c.name.clone(),
        reason: format!("Container {} failed {} probe{will}", c.name, kind.name()),
    });
    if !restart {
        return;
    }
    let uid = input.pod.metadata.uid.as_deref().unwrap_or_default();
    let previous = input.observed.instances(ContainerKind::App, &c.name).get(1).map(exit_times);
    let (started, finished) = previous.map_or((None, None), |(s, f, _)| (s, f));
    let key = backoff_key(uid, &c.name);
    if backoff::crash_restart(input.crash_backoff, &key, started, finished, input.now) == Restart::Now {
        let running_since = match running.state {
            ContainerState::Running { started_at } => Some(started_at),
            _ => None,
        };
        plan.steps.push(Step::StartContainer {
            kind: ContainerKind::App,
            index,
            attempt: running.meta.attempt + 1,
            after_exit: true,
            ran_long: backoff::ran_long(running_since, Some(input.now)),
        });
    }
}

/// Decides the pod's state and the steps to take; see the module docs.
pub fn plan(input: PlanInput<'_>) -> Plan {
    let pod = input.pod;
    let observed = input.observed;
    let Some(spec) = pod.spec.as_ref() else { return Plan::new(PodState::Creating) };
    let policy = spec.restart_policy.as_deref().unwrap_or("Always");
    let grace = grace_seconds(pod);

    if pod.metadata.deletion_timestamp.is_some() {
        let mut p = Plan::new(PodState::Terminating);
        p.steps.push(Step::KillPod { grace_seconds: grace });
        return p;
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if let Some(phase @ ("Succeeded" | "Failed")) = phase {
        let mut p = Plan::new(PodState::Completed { succeeded: phase == "Succeeded" });
        if observed.any_running() {
            p.steps.push(Step::KillPod { grace_seconds: grace });
        }
        return p;
    }

    let mut p = Plan::new(PodState::Running);
    // Old instances: keep the newest two of each container and the newest sandbox.
    for instances in observed.init.values().chain(observed.app.values()) {
        for old in instances.iter().skip(KEPT_INSTANCES).filter(|c| !c.is_running()) {
            p.steps.push(Step::RemoveContainer { id: old.id.clone() });
        }
    }
    for old in observed.sandboxes.iter().skip(1).filter(|c| !c.is_running()) {
        p.steps.push(Step::RemoveContainer { id: old.id.clone() });
    }

    let host_network = spec.host_network == Some(true);
    if observed.running_sandbox().is_none() {
        // A Never pod whose containers already ran gets no new sandbox: its
        // fate is decided by how they ended.
        let ran_already = !observed.app.is_empty();
        if !(policy == "Never" && ran_already) {
            if !host_network && !input.network_ready {
                p.state = PodState::WaitingForNetwork;
                return p;
            }
            p.state = PodState::Creating;
            if observed.any_running() {
                p.steps.push(Step::KillPod { grace_seconds: grace });
            }
            let attempt = observed.sandbox().map_or(0, |s| s.meta.attempt + 1);
            // Containers are planned on the next pass, against the new sandbox.
            p.steps.push(Step::CreateSandbox { attempt });
            return p;
        }
    }

    for (index, c) in spec.init_containers.iter().flatten().enumerate() {
        let latest = observed.instances(ContainerKind::Init, &c.name).first();
        match verdict(latest, c, true, &input, &mut p) {
            Verdict::Fine => {
                p.state = PodState::Initializing;
                return p;
            }
            Verdict::Done { exit_code: 0 } => continue,
            Verdict::Done { .. } => {
                p.state = PodState::Completed { succeeded: false };
                if observed.any_running() {
                    p.steps.push(Step::KillPod { grace_seconds: grace });
                }
                return p;
            }
            Verdict::Start { attempt, after_exit, ran_long } => {
                p.state = PodState::Initializing;
                p.steps.push(Step::StartContainer { kind: ContainerKind::Init, index, attempt, after_exit, ran_long });
                return p;
            }
            Verdict::Wait(waiting, remaining) => {
                p.state = PodState::Initializing;
                p.waiting.insert(c.name.clone(), waiting);
                p.requeue(remaining);
                return p;
            }
        }
    }

    let mut finished = true;
    let mut succeeded = true;
    for (index, c) in spec.containers.iter().enumerate() {
        let latest = observed.instances(ContainerKind::App, &c.name).first();
        match verdict(latest, c, false, &input, &mut p) {
            Verdict::Fine => {
                finished = false;
                let running = latest.expect("Fine means an instance exists");
                if running.meta.hash != container_hash(c) {
                    p.steps.push(Step::KillContainer {
                        id: running.id.clone(),
                        name: c.name.clone(),
                        reason: format!("Container {} definition changed, will be restarted", c.name),
                    });
                    p.steps.push(Step::StartContainer {
                        kind: ContainerKind::App,
                        index,
                        attempt: running.meta.attempt + 1,
                        after_exit: false,
                        ran_long: false,
                    });
                } else if let Some(kind) = input.unhealthy.get(&c.name) {
                    restart_unhealthy(running, c, index, *kind, &input, &mut p);
                }
            }
            Verdict::Done { exit_code } => succeeded &= exit_code == 0,
            Verdict::Start { attempt, after_exit, ran_long } => {
                finished = false;
                p.steps.push(Step::StartContainer { kind: ContainerKind::App, index, attempt, after_exit, ran_long });
            }
            Verdict::Wait(waiting, remaining) => {
                finished = false;
                p.waiting.insert(c.name.clone(), waiting);
                p.requeue(remaining);
            }
        }
    }
    if finished && !spec.containers.is_empty() {
        p.state = PodState::Completed { succeeded };
        if observed.any_running() {
            p.steps.push(Step::KillPod { grace_seconds: grace });
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ContainerMeta;
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn now() -> Timestamp {
        Timestamp::from_second(1_700_000_000).unwrap()
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn container(name: &str) -> Container {
        Container { name: name.into(), image: Some("img:1".into()), ..Default::default() }
    }

    fn pod(policy: &str, init: &[&str], apps: &[&str]) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("default".into()),
                uid: Some("uid".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                restart_policy: Some(policy.into()),
                init_containers: (!init.is_empty()).then(|| init.iter().map(|n| container(n)).collect()),
                containers: apps.iter().map(|n| container(n)).collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn instance(kind: ContainerKind, name: &str, attempt: u32, state: ContainerState) -> RuntimeContainer {
        let hash = if kind == ContainerKind::Sandbox { String::new() } else { container_hash(&container(name)) };
        RuntimeContainer {
            id: format!("{name}-{attempt}"),
            meta: ContainerMeta {
                pod_uid: "uid".into(),
                pod_namespace: "default".into(),
                pod_name: "p".into(),
                name: name.into(),
                kind,
                attempt,
                hash,
                grace_period: 30,
            },
            image: "img:1".into(),
            image_id: "sha256:1".into(),
            state,
            ip: (kind == ContainerKind::Sandbox).then(|| "10.0.0.2".into()),
        }
    }

    fn running() -> ContainerState {
        ContainerState::Running { started_at: at(-100) }
    }

    fn exited(code: i32, finished: i64) -> ContainerState {
        ContainerState::Exited {
            exit_code: code,
            started_at: Some(at(finished - 1)),
            finished_at: Some(at(finished)),
            oom_killed: false,
            error: None,
        }
    }

    fn sandbox() -> RuntimeContainer {
        instance(ContainerKind::Sandbox, "POD", 0, running())
    }

    fn plan_for(pod: &Pod, containers: Vec<RuntimeContainer>, backoff: &Backoff) -> Plan {
        plan_unhealthy(pod, containers, backoff, &Unhealthy::new())
    }

    fn plan_unhealthy(pod: &Pod, containers: Vec<RuntimeContainer>, backoff: &Backoff, unhealthy: &Unhealthy) -> Plan {
        let observed = Observed::new(containers);
        plan(PlanInput { pod, observed: &observed, network_ready: true, crash_backoff: backoff, unhealthy, now: now() })
    }

    fn starts(p: &Plan) -> Vec<(ContainerKind, usize, u32)> {
        p.steps
            .iter()
            .filter_map(|s| match s {
                Step::StartContainer { kind, index, attempt, .. } => Some((*kind, *index, *attempt)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_new_pod_waits_for_the_network_then_gets_a_sandbox() {
        let p = pod("Always", &[], &["a"]);
        let observed = Observed::default();
        let b = Backoff::default();
        let waiting = plan(PlanInput {
            pod: &p,
            observed: &observed,
            network_ready: false,
            crash_backoff: &b,
            unhealthy: &Unhealthy::new(),
            now: now(),
        });
        assert_eq!(waiting.state, PodState::WaitingForNetwork);
        assert!(waiting.steps.is_empty());
        let creating = plan_for(&p, vec![], &b);
        assert_eq!(creating.state, PodState::Creating);
        assert_eq!(creating.steps, vec![Step::CreateSandbox { attempt: 0 }]);
    }

    #[test]
    fn host_network_pods_do_not_wait_for_the_pod_network() {
        let mut p = pod("Always", &[], &["a"]);
        p.spec.as_mut().unwrap().host_network = Some(true);
        let observed = Observed::default();
        let b = Backoff::default();
        let plan = plan(PlanInput {
            pod: &p,
            observed: &observed,
            network_ready: false,
            crash_backoff: &b,
            unhealthy: &Unhealthy::new(),
            now: now(),
        });
        assert_eq!(plan.steps, vec![Step::CreateSandbox { attempt: 0 }]);
    }

    #[test]
    fn all_app_containers_start_once_the_sandbox_runs() {
        let p = pod("Always", &[], &["a", "b"]);
        let plan = plan_for(&p, vec![sandbox()], &Backoff::default());
        assert_eq!(plan.state, PodState::Running);
        assert_eq!(starts(&plan), vec![(ContainerKind::App, 0, 0), (ContainerKind::App, 1, 0)]);
    }

    #[test]
    fn init_containers_run_one_at_a_time_in_order() {
        let p = pod("Always", &["i1", "i2"], &["a"]);
        let b = Backoff::default();
        let first = plan_for(&p, vec![sandbox()], &b);
        assert_eq!((first.state, starts(&first)), (PodState::Initializing, vec![(ContainerKind::Init, 0, 0)]));
        let running = plan_for(&p, vec![sandbox(), instance(ContainerKind::Init, "i1", 0, running())], &b);
        assert_eq!((running.state, starts(&running)), (PodState::Initializing, vec![]));
        let second = plan_for(&p, vec![sandbox(), instance(ContainerKind::Init, "i1", 0, exited(0, -5))], &b);
        assert_eq!(starts(&second), vec![(ContainerKind::Init, 1, 0)]);
        let apps = plan_for(
            &p,
            vec![
                sandbox(),
                instance(ContainerKind::Init, "i1", 0, exited(0, -5)),
                instance(ContainerKind::Init, "i2", 0, exited(0, -4)),
            ],
            &b,
        );
        assert_eq!((apps.state, starts(&apps)), (PodState::Running, vec![(ContainerKind::App, 0, 0)]));
    }

    #[test]
    fn a_failed_init_container_restarts_unless_the_policy_is_never() {
        let b = Backoff::default();
        let failed = || vec![sandbox(), instance(ContainerKind::Init, "i1", 0, exited(1, -5))];
        let retry = plan_for(&pod("OnFailure", &["i1"], &["a"]), failed(), &b);
        assert_eq!(starts(&retry), vec![(ContainerKind::Init, 0, 1)]);
        let never = plan_for(&pod("Never", &["i1"], &["a"]), failed(), &b);
        assert_eq!(never.state, PodState::Completed { succeeded: false });
        assert_eq!(never.steps, vec![Step::KillPod { grace_seconds: 30 }]);
    }

    #[test]
    fn restart_policy_decides_which_exits_restart() {
        assert!(restarts("Always", 0) && restarts("Always", 1));
        assert!(!restarts("OnFailure", 0) && restarts("OnFailure", 2));
        assert!(!restarts("Never", 0) && !restarts("Never", 1));
    }

    #[test]
    fn never_pods_complete_with_their_containers_exit_codes() {
        let b = Backoff::default();
        let done = |code| vec![sandbox(), instance(ContainerKind::App, "a", 0, exited(code, -1))];
        let failed = plan_for(&pod("Never", &[], &["a"]), done(1), &b);
        assert_eq!(failed.state, PodState::Completed { succeeded: false });
        assert_eq!(failed.steps, vec![Step::KillPod { grace_seconds: 30 }], "the sandbox is stopped");
        let ok = plan_for(&pod("OnFailure", &[], &["a"]), done(0), &b);
        assert_eq!(ok.state, PodState::Completed { succeeded: true });
    }

    #[test]
    fn crashed_containers_restart_at_once_then_back_off() {
        let p = pod("Always", &[], &["a"]);
        let crashed = vec![sandbox(), instance(ContainerKind::App, "a", 2, exited(1, -3))];
        let mut b = Backoff::default();
        let first = plan_for(&p, crashed.clone(), &b);
        assert_eq!(starts(&first), vec![(ContainerKind::App, 0, 3)]);
        b.next(&backoff_key("uid", "a"), at(-3));
        let waits = plan_for(&p, crashed, &b);
        assert!(starts(&waits).is_empty());
        assert_eq!(waits.state, PodState::Running);
        assert_eq!(waits.waiting["a"].reason, "CrashLoopBackOff");
        assert_eq!(waits.waiting["a"].message, "back-off 10s restarting failed container=a pod=p_default(uid)");
        assert_eq!(waits.requeue_after, Some(Duration::from_secs(7)));
    }

    #[test]
    fn a_changed_spec_restarts_the_running_container() {
        let p = pod("Always", &[], &["a"]);
        let mut stale = instance(ContainerKind::App, "a", 0, running());
        stale.meta.hash = "old".into();
        let plan = plan_for(&p, vec![sandbox(), stale], &Backoff::default());
        assert!(matches!(plan.steps[0], Step::KillContainer { ref id, .. } if id == "a-0"));
        assert_eq!(starts(&plan), vec![(ContainerKind::App, 0, 1)]);
    }

    #[test]
    fn a_dead_sandbox_is_replaced_after_stopping_the_pod() {
        let p = pod("Always", &[], &["a"]);
        let mut dead = sandbox();
        dead.state = exited(0, -1);
        let plan = plan_for(&p, vec![dead, instance(ContainerKind::App, "a", 0, running())], &Backoff::default());
        assert_eq!(plan.state, PodState::Creating);
        assert_eq!(plan.steps, vec![Step::KillPod { grace_seconds: 30 }, Step::CreateSandbox { attempt: 1 }]);
    }

    #[test]
    fn only_the_two_newest_instances_are_kept() {
        let p = pod("Always", &[], &["a"]);
        let containers = vec![
            sandbox(),
            instance(ContainerKind::App, "a", 3, running()),
            instance(ContainerKind::App, "a", 2, exited(1, -20)),
            instance(ContainerKind::App, "a", 1, exited(1, -40)),
            instance(ContainerKind::App, "a", 0, exited(1, -60)),
        ];
        let plan = plan_for(&p, containers, &Backoff::default());
        let removed: Vec<&str> = plan
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::RemoveContainer { id } => Some(id.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(removed, ["a-1", "a-0"]);
    }

    #[test]
    fn deletion_terminates_and_finished_pods_stay_down() {
        let mut p = pod("Always", &[], &["a"]);
        p.metadata.deletion_timestamp = Some(Time(now()));
        p.metadata.deletion_grace_period_seconds = Some(5);
        let plan = plan_for(&p, vec![sandbox()], &Backoff::default());
        assert_eq!((plan.state, plan.steps), (PodState::Terminating, vec![Step::KillPod { grace_seconds: 5 }]));
        let mut done = pod("Always", &[], &["a"]);
        done.status = Some(PodStatus { phase: Some("Failed".into()), ..Default::default() });
        let plan = plan_for(&done, vec![instance(ContainerKind::App, "a", 0, exited(1, -1))], &Backoff::default());
        assert_eq!((plan.state, plan.steps), (PodState::Completed { succeeded: false }, vec![]));
    }

    #[test]
    fn a_failed_liveness_probe_kills_and_restarts_the_container() {
        let p = pod("Always", &[], &["a", "b"]);
        let containers = vec![
            sandbox(),
            instance(ContainerKind::App, "a", 0, running()),
            instance(ContainerKind::App, "b", 0, running()),
        ];
        let unhealthy = Unhealthy::from([("a".to_string(), ProbeKind::Liveness)]);
        let plan = plan_unhealthy(&p, containers, &Backoff::default(), &unhealthy);
        assert_eq!(
            plan.steps[0],
            Step::KillContainer {
                id: "a-0".into(),
                name: "a".into(),
                reason: "Container a failed liveness probe, will be restarted".into()
            }
        );
        assert_eq!(starts(&plan), vec![(ContainerKind::App, 0, 1)], "only the unhealthy container restarts");
        assert!(matches!(plan.steps[1], Step::StartContainer { after_exit: true, .. }), "it counts as a crash");
    }

    #[test]
    fn an_unhealthy_container_under_never_is_killed_and_stays_down() {
        let p = pod("Never", &[], &["a"]);
        let unhealthy = Unhealthy::from([("a".to_string(), ProbeKind::Startup)]);
        let plan = plan_unhealthy(
            &p,
            vec![sandbox(), instance(ContainerKind::App, "a", 0, running())],
            &Backoff::default(),
            &unhealthy,
        );
        assert_eq!(
            plan.steps,
            vec![Step::KillContainer {
                id: "a-0".into(),
                name: "a".into(),
                reason: "Container a failed startup probe".into()
            }]
        );
    }

    #[test]
    fn a_liveness_restart_waits_for_the_back_off_of_a_recent_crash() {
        let p = pod("Always", &[], &["a"]);
        let containers = vec![
            sandbox(),
            instance(ContainerKind::App, "a", 1, running()),
            instance(ContainerKind::App, "a", 0, exited(137, -3)),
        ];
        let mut b = Backoff::default();
        b.next(&backoff_key("uid", "a"), at(-3));
        let unhealthy = Unhealthy::from([("a".to_string(), ProbeKind::Liveness)]);
        let plan = plan_unhealthy(&p, containers, &b, &unhealthy);
        assert!(matches!(plan.steps.as_slice(), [Step::KillContainer { .. }]), "{:?}", plan.steps);
    }

    #[test]
    fn a_container_that_never_started_is_replaced_as_a_failed_run() {
        let p = pod("Always", &[], &["a"]);
        let created = instance(ContainerKind::App, "a", 0, ContainerState::Created);
        let plan = plan_for(&p, vec![sandbox(), created], &Backoff::default());
        assert_eq!(plan.steps[0], Step::RemoveContainer { id: "a-0".into() });
        assert_eq!(starts(&plan), vec![(ContainerKind::App, 0, 1)]);
    }
}
