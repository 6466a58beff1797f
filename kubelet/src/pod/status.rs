//! The pod status the kubelet reports, computed from the pod, what the
//! runtime has and why containers wait: phase (Kubernetes' `getPhase`),
//! conditions, IPs, start time and one status per container.
//!
//! A running container is `started` unless its startup probe has not
//! succeeded yet ([`StatusInput::unstarted`]), and `ready` once started
//! unless its readiness probe fails ([`StatusInput::unready`]); both come
//! from [`crate::probes`].

use super::lifecycle::{Observed, PodState, Waiting};
use crate::runtime::{ContainerKind, ContainerState, RuntimeContainer};
use k8s_openapi::api::core::v1::{
    Container, ContainerState as K8sState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use std::collections::{BTreeMap, BTreeSet};

/// Everything the status is computed from.
#[derive(Debug, Clone, Copy)]
pub struct StatusInput<'a> {
    /// The pod (its current status too, for times that must not move).
    pub pod: &'a Pod,
    /// Its containers in the runtime.
    pub observed: &'a Observed,
    /// The state the last sync found it in.
    pub state: PodState,
    /// Containers held back, with why.
    pub waiting: &'a BTreeMap<String, Waiting>,
    /// Running containers that are not ready (failing readiness probes).
    pub unready: &'a BTreeSet<String>,
    /// Running containers whose startup probe has not succeeded yet.
    pub unstarted: &'a BTreeSet<String>,
    /// The node's IP.
    pub host_ip: &'a str,
    /// The runtime's id scheme (`docker`).
    pub id_scheme: &'a str,
    /// Now.
    pub now: Timestamp,
}

fn time(t: Option<Timestamp>) -> Option<Time> {
    t.map(Time)
}

/// `Completed`, `OOMKilled`, `Error`, or `StartError` for a process that
/// never started, as Kubernetes names an exit.
pub fn exit_reason(exit_code: i32, oom_killed: bool, started: bool) -> &'static str {
    if !started && exit_code != 0 {
        "StartError"
    } else if oom_killed {
        "OOMKilled"
    } else if exit_code == 0 {
        "Completed"
    } else {
        "Error"
    }
}

fn terminated(c: &RuntimeContainer, scheme: &str) -> Option<ContainerStateTerminated> {
    match &c.state {
        ContainerState::Exited { exit_code, started_at, finished_at, oom_killed, error } => {
            Some(ContainerStateTerminated {
                exit_code: *exit_code,
                reason: Some(exit_reason(*exit_code, *oom_killed, started_at.is_some()).into()),
                message: error.clone(),
                started_at: time(*started_at),
                finished_at: time(*finished_at),
                container_id: Some(format!("{scheme}://{}", c.id)),
                signal: None,
            })
        }
        _ => None,
    }
}

fn waiting_state(w: &Waiting) -> K8sState {
    K8sState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(w.reason.clone()),
            message: (!w.message.is_empty()).then(|| w.message.clone()),
        }),
        ..Default::default()
    }
}

fn container_status(
    c: &Container,
    kind: ContainerKind,
    input: &StatusInput<'_>,
    default_waiting: &str,
) -> ContainerStatus {
    let scheme = input.id_scheme;
    let instances = input.observed.instances(kind, &c.name);
    let latest = instances.first();
    let previous = instances.get(1).and_then(|p| terminated(p, scheme));
    let as_last =
        |t: Option<ContainerStateTerminated>| t.map(|t| K8sState { terminated: Some(t), ..Default::default() });
    let (state, last_state) = match (input.waiting.get(&c.name), latest) {
        (Some(w), Some(l)) => {
            let last = terminated(l, scheme).or(previous);
            (waiting_state(w), as_last(last))
        }
        (Some(w), None) => (waiting_state(w), None),
        (None, None) => (waiting_state(&Waiting::new(default_waiting, "")), None),
        (None, Some(l)) => match &l.state {
            ContainerState::Created => (waiting_state(&Waiting::new("ContainerCreating", "")), as_last(previous)),
            ContainerState::Running { started_at } => (
                K8sState {
                    running: Some(ContainerStateRunning { started_at: Some(Time(*started_at)) }),
                    ..Default::default()
                },
                as_last(previous),
            ),
            ContainerState::Exited { .. } => {
                (K8sState { terminated: terminated(l, scheme), ..Default::default() }, as_last(previous))
            }
        },
    };
    let running = state.running.is_some();
    let started = running && (kind == ContainerKind::Init || !input.unstarted.contains(&c.name));
    let ready = match kind {
        ContainerKind::Init => state.terminated.as_ref().is_some_and(|t| t.exit_code == 0),
        _ => started && !input.unready.contains(&c.name),
    };
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        image_id: latest
            .map(|l| l.image_id.clone())
            .filter(|id| !id.is_empty())
            .map(|id| format!("{scheme}://{id}"))
            .unwrap_or_default(),
        container_id: latest.map(|l| format!("{scheme}://{}", l.id)),
        state: Some(state),
        last_state: Some(last_state.unwrap_or_default()),
        ready,
        restart_count: latest.map_or(0, |l| i32::try_from(l.meta.attempt).unwrap_or(i32::MAX)),
        started: Some(started),
        ..Default::default()
    }
}

/// Kubernetes' `getPhase` over the app containers' statuses (init
/// containers still pending keep the pod `Pending`).
pub fn phase(policy: &str, init_pending: bool, statuses: &[ContainerStatus]) -> &'static str {
    if init_pending {
        return "Pending";
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for s in statuses {
        let state = s.state.clone().unwrap_or_default();
        if state.running.is_some() {
            running += 1;
        } else if let Some(t) = &state.terminated {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if s.last_state.as_ref().is_some_and(|l| l.terminated.is_some()) {
            stopped += 1;
        } else {
            waiting += 1;
        }
    }
    match () {
        _ if waiting > 0 => "Pending",
        _ if running > 0 => "Running",
        _ if stopped > 0 => {
            if policy == "Always" {
                "Running"
            } else if stopped == succeeded {
                "Succeeded"
            } else if policy == "Never" {
                "Failed"
            } else {
                "Running"
            }
        }
        _ => "Pending",
    }
}

fn condition(type_: &str, ok: bool, reason: Option<&str>, message: Option<String>) -> PodCondition {
    PodCondition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.filter(|_| !ok).map(str::to_string),
        message: message.filter(|_| !ok),
        ..Default::default()
    }
}

/// Carries the transition time of conditions whose status did not change.
fn keep_transition_times(conditions: &mut [PodCondition], old: &[PodCondition], now: Timestamp) {
    for c in conditions {
        let prior = old.iter().find(|o| o.type_ == c.type_);
        c.last_transition_time = match prior {
            Some(o) if o.status == c.status && o.last_transition_time.is_some() => o.last_transition_time.clone(),
            _ => Some(Time(now)),
        };
    }
}

/// The pod's status; fields the kubelet does not own are kept.
pub fn pod_status(input: &StatusInput<'_>) -> PodStatus {
    let pod = input.pod;
    let old = pod.status.clone().unwrap_or_default();
    let Some(spec) = pod.spec.as_ref() else { return old };
    let policy = spec.restart_policy.as_deref().unwrap_or("Always");

    let init: Vec<ContainerStatus> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| container_status(c, ContainerKind::Init, input, "PodInitializing"))
        .collect();
    let incomplete: Vec<&str> = init.iter().filter(|s| !s.ready).map(|s| s.name.as_str()).collect();
    let app_waiting = if incomplete.is_empty() { "ContainerCreating" } else { "PodInitializing" };
    let apps: Vec<ContainerStatus> =
        spec.containers.iter().map(|c| container_status(c, ContainerKind::App, input, app_waiting)).collect();

    let phase = match (old.phase.as_deref(), input.state) {
        (Some(p @ ("Succeeded" | "Failed")), _) => p,
        (_, PodState::Completed { succeeded }) => {
            if succeeded {
                "Succeeded"
            } else {
                "Failed"
            }
        }
        _ => phase(policy, !incomplete.is_empty(), &apps),
    };
    let terminal = matches!(phase, "Succeeded" | "Failed");

    let unready: Vec<&str> = apps.iter().filter(|s| !s.ready).map(|s| s.name.as_str()).collect();
    let scheduled = old
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled")
        .cloned()
        .unwrap_or_else(|| condition("PodScheduled", true, None, None));
    let (ready_reason, ready_message) = if terminal {
        ("PodCompleted", None)
    } else {
        ("ContainersNotReady", Some(format!("containers with unready status: [{}]", unready.join(" "))))
    };
    let all_ready = unready.is_empty() && !terminal;
    let initialized = incomplete.is_empty();
    let mut conditions = vec![
        condition(
            "Initialized",
            initialized,
            Some(if terminal { "PodCompleted" } else { "ContainersNotInitialized" }),
            Some(format!("containers with incomplete status: [{}]", incomplete.join(" "))),
        ),
        condition("Ready", all_ready, Some(ready_reason), ready_message.clone()),
        condition("ContainersReady", all_ready, Some(ready_reason), ready_message),
    ];
    keep_transition_times(&mut conditions, old.conditions.as_deref().unwrap_or_default(), input.now);
    conditions.push(scheduled);

    let sandbox = input.observed.running_sandbox();
    let host_network = spec.host_network == Some(true);
    let pod_ip = match sandbox {
        Some(_) if host_network => Some(input.host_ip.to_string()),
        Some(s) => s.ip.clone().or(old.pod_ip.clone()),
        None => old.pod_ip.clone(),
    }
    .filter(|ip| !ip.is_empty());

    PodStatus {
        phase: Some(phase.into()),
        conditions: Some(conditions),
        host_ip: Some(input.host_ip.to_string()),
        host_ips: Some(vec![HostIP { ip: input.host_ip.to_string() }]),
        pod_ips: pod_ip.clone().map(|ip| vec![PodIP { ip }]),
        pod_ip,
        start_time: old.start_time.clone().or(Some(Time(input.now))),
        init_container_statuses: (!init.is_empty()).then_some(init),
        container_statuses: Some(apps),
        ..old
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ContainerMeta;
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn pod(policy: &str, init: &[&str], apps: &[&str]) -> Pod {
        let c = |n: &&str| Container { name: n.to_string(), image: Some("img:1".into()), ..Default::default() };
        Pod {
            metadata: ObjectMeta { name: Some("p".into()), uid: Some("uid".into()), ..Default::default() },
            spec: Some(PodSpec {
                restart_policy: Some(policy.into()),
                init_containers: (!init.is_empty()).then(|| init.iter().map(c).collect()),
                containers: apps.iter().map(c).collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn instance(kind: ContainerKind, name: &str, attempt: u32, state: ContainerState) -> RuntimeContainer {
        RuntimeContainer {
            id: format!("{name}{attempt}"),
            meta: ContainerMeta {
                pod_uid: "uid".into(),
                pod_namespace: "default".into(),
                pod_name: "p".into(),
                name: name.into(),
                kind,
                attempt,
                hash: String::new(),
                grace_period: 30,
            },
            image: "img:1".into(),
            image_id: "sha256:abc".into(),
            state,
            ip: (kind == ContainerKind::Sandbox).then(|| "10.1.1.7".into()),
        }
    }

    fn running() -> ContainerState {
        ContainerState::Running { started_at: at(0) }
    }

    fn exited(code: i32) -> ContainerState {
        ContainerState::Exited {
            exit_code: code,
            started_at: Some(at(0)),
            finished_at: Some(at(5)),
            oom_killed: false,
            error: None,
        }
    }

    fn sandbox() -> RuntimeContainer {
        instance(ContainerKind::Sandbox, "POD", 0, running())
    }

    fn status(pod: &Pod, containers: Vec<RuntimeContainer>, state: PodState, waiting: &[(&str, &str)]) -> PodStatus {
        let observed = Observed::new(containers);
        let waiting: BTreeMap<String, Waiting> =
            waiting.iter().map(|(n, r)| (n.to_string(), Waiting::new(r, "msg"))).collect();
        pod_status(&StatusInput {
            pod,
            observed: &observed,
            state,
            waiting: &waiting,
            unready: &BTreeSet::new(),
            unstarted: &BTreeSet::new(),
            host_ip: "192.168.0.9",
            id_scheme: "docker",
            now: at(10),
        })
    }

    fn cond<'a>(s: &'a PodStatus, t: &str) -> &'a PodCondition {
        s.conditions.as_ref().unwrap().iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn running_pods_report_ip_ready_containers_and_ids() {
        let p = pod("Always", &[], &["a", "b"]);
        let s = status(
            &p,
            vec![
                sandbox(),
                instance(ContainerKind::App, "a", 0, running()),
                instance(ContainerKind::App, "b", 0, running()),
            ],
            PodState::Running,
            &[],
        );
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.pod_ip.as_deref(), Some("10.1.1.7"));
        assert_eq!(s.pod_ips.as_ref().unwrap()[0].ip, "10.1.1.7");
        assert_eq!(s.host_ip.as_deref(), Some("192.168.0.9"));
        assert_eq!(cond(&s, "Ready").status, "True");
        assert_eq!(cond(&s, "ContainersReady").status, "True");
        assert_eq!(cond(&s, "Initialized").status, "True");
        assert_eq!(cond(&s, "PodScheduled").status, "True");
        let a = &s.container_statuses.as_ref().unwrap()[0];
        assert!(a.ready && a.started == Some(true));
        assert_eq!(a.container_id.as_deref(), Some("docker://a0"));
        assert_eq!(a.image_id, "docker://sha256:abc");
        assert_eq!(s.start_time, Some(Time(at(10))));
    }

    #[test]
    fn pending_pods_show_why_containers_wait() {
        let p = pod("Always", &[], &["a"]);
        let s = status(&p, vec![], PodState::Creating, &[]);
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        let a = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(a.state.as_ref().unwrap().waiting.as_ref().unwrap().reason.as_deref(), Some("ContainerCreating"));
        let ready = cond(&s, "Ready");
        assert_eq!((ready.status.as_str(), ready.reason.as_deref()), ("False", Some("ContainersNotReady")));
        assert_eq!(ready.message.as_deref(), Some("containers with unready status: [a]"));
        let s = status(&p, vec![sandbox()], PodState::Running, &[("a", "CreateContainerConfigError")]);
        let w = s.container_statuses.unwrap()[0].state.clone().unwrap().waiting.unwrap();
        assert_eq!((w.reason.as_deref(), w.message.as_deref()), (Some("CreateContainerConfigError"), Some("msg")));
    }

    #[test]
    fn app_containers_wait_for_init_containers() {
        let p = pod("Always", &["i"], &["a"]);
        let s =
            status(&p, vec![sandbox(), instance(ContainerKind::Init, "i", 0, running())], PodState::Initializing, &[]);
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        assert_eq!(cond(&s, "Initialized").message.as_deref(), Some("containers with incomplete status: [i]"));
        let a = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(a.state.as_ref().unwrap().waiting.as_ref().unwrap().reason.as_deref(), Some("PodInitializing"));
        let done =
            status(&p, vec![sandbox(), instance(ContainerKind::Init, "i", 0, exited(0))], PodState::Running, &[]);
        assert_eq!(cond(&done, "Initialized").status, "True");
        assert!(done.init_container_statuses.unwrap()[0].ready);
    }

    #[test]
    fn crash_looping_containers_wait_with_their_last_exit() {
        let p = pod("Always", &[], &["a"]);
        let s = status(
            &p,
            vec![
                sandbox(),
                instance(ContainerKind::App, "a", 3, exited(2)),
                instance(ContainerKind::App, "a", 2, exited(1)),
            ],
            PodState::Running,
            &[("a", "CrashLoopBackOff")],
        );
        let a = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(a.restart_count, 3);
        let last = a.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!((last.exit_code, last.reason.as_deref()), (2, Some("Error")));
        assert_eq!(last.container_id.as_deref(), Some("docker://a3"));
        assert_eq!(s.phase.as_deref(), Some("Running"), "Always pods restarting are Running");
    }

    #[test]
    fn restarted_containers_keep_the_previous_exit_as_last_state() {
        let p = pod("Always", &[], &["a"]);
        let s = status(
            &p,
            vec![
                sandbox(),
                instance(ContainerKind::App, "a", 1, running()),
                instance(ContainerKind::App, "a", 0, exited(137)),
            ],
            PodState::Running,
            &[],
        );
        let a = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(a.restart_count, 1);
        assert!(a.state.as_ref().unwrap().running.is_some());
        assert_eq!(a.last_state.as_ref().unwrap().terminated.as_ref().unwrap().exit_code, 137);
    }

    #[test]
    fn finished_pods_report_succeeded_or_failed() {
        let p = pod("Never", &[], &["a"]);
        let s = status(
            &p,
            vec![instance(ContainerKind::App, "a", 0, exited(1))],
            PodState::Completed { succeeded: false },
            &[],
        );
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        let t = s.container_statuses.as_ref().unwrap()[0].state.clone().unwrap().terminated.unwrap();
        assert_eq!((t.exit_code, t.reason.as_deref()), (1, Some("Error")));
        assert_eq!(cond(&s, "Ready").reason.as_deref(), Some("PodCompleted"));
        let ok = status(
            &p,
            vec![instance(ContainerKind::App, "a", 0, exited(0))],
            PodState::Completed { succeeded: true },
            &[],
        );
        assert_eq!(ok.phase.as_deref(), Some("Succeeded"));
    }

    #[test]
    fn processes_that_never_started_end_with_start_error() {
        let p = pod("Always", &[], &["a"]);
        let never = ContainerState::Exited {
            exit_code: 128,
            started_at: None,
            finished_at: Some(at(1)),
            oom_killed: false,
            error: Some("exec: \"nope\": executable file not found".into()),
        };
        let s = status(
            &p,
            vec![sandbox(), instance(ContainerKind::App, "a", 0, never)],
            PodState::Running,
            &[("a", "CrashLoopBackOff")],
        );
        let last = s.container_statuses.unwrap()[0].last_state.clone().unwrap().terminated.unwrap();
        assert_eq!((last.exit_code, last.reason.as_deref()), (128, Some("StartError")));
        assert!(last.message.unwrap().contains("executable file not found"));
    }

    #[test]
    fn get_phase_follows_kubernetes() {
        let st = |running: bool, terminated: Option<i32>, last: bool| ContainerStatus {
            state: Some(K8sState {
                running: running.then(Default::default),
                terminated: terminated.map(|c| ContainerStateTerminated { exit_code: c, ..Default::default() }),
                waiting: (!running && terminated.is_none()).then(Default::default),
            }),
            last_state: Some(K8sState { terminated: last.then(Default::default), ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(phase("Always", true, &[st(true, None, false)]), "Pending");
        assert_eq!(phase("Always", false, &[st(false, None, false)]), "Pending");
        assert_eq!(phase("Always", false, &[st(true, None, false), st(false, Some(0), false)]), "Running");
        assert_eq!(phase("Never", false, &[st(false, Some(0), false), st(false, Some(1), false)]), "Failed");
        assert_eq!(phase("OnFailure", false, &[st(false, Some(0), false)]), "Succeeded");
        assert_eq!(phase("OnFailure", false, &[st(false, None, true)]), "Running");
    }

    #[test]
    fn probes_decide_started_and_ready_of_running_containers() {
        let p = pod("Always", &[], &["a", "b"]);
        let observed = Observed::new(vec![
            sandbox(),
            instance(ContainerKind::App, "a", 0, running()),
            instance(ContainerKind::App, "b", 0, running()),
        ]);
        let unstarted = BTreeSet::from(["a".to_string()]);
        let unready = BTreeSet::from(["a".to_string(), "b".to_string()]);
        let s = pod_status(&StatusInput {
            pod: &p,
            observed: &observed,
            state: PodState::Running,
            waiting: &BTreeMap::new(),
            unready: &unready,
            unstarted: &unstarted,
            host_ip: "192.168.0.9",
            id_scheme: "docker",
            now: at(10),
        });
        let by_name = |n: &str| s.container_statuses.as_ref().unwrap().iter().find(|c| c.name == n).unwrap().clone();
        assert_eq!((by_name("a").started, by_name("a").ready), (Some(false), false));
        assert_eq!((by_name("b").started, by_name("b").ready), (Some(true), false));
        assert_eq!(s.phase.as_deref(), Some("Running"), "unready containers still run");
        let ready = cond(&s, "Ready");
        assert_eq!(
            (ready.status.as_str(), ready.message.as_deref()),
            ("False", Some("containers with unready status: [a b]"))
        );
        assert_eq!(cond(&s, "ContainersReady").status, "False");
    }

    #[test]
    fn unchanged_conditions_keep_their_transition_time() {
        let mut p = pod("Always", &[], &["a"]);
        let containers = vec![sandbox(), instance(ContainerKind::App, "a", 0, running())];
        let first = status(&p, containers.clone(), PodState::Running, &[]);
        p.status = Some(first.clone());
        let observed = Observed::new(containers);
        let later = pod_status(&StatusInput {
            pod: &p,
            observed: &observed,
            state: PodState::Running,
            waiting: &BTreeMap::new(),
            unready: &BTreeSet::new(),
            unstarted: &BTreeSet::new(),
            host_ip: "192.168.0.9",
            id_scheme: "docker",
            now: at(99),
        });
        assert_eq!(later, first, "nothing changed, so nothing moves");
    }
}
