//! The scheduler proper: keeps the [`Cache`] in step with the watches,
//! queues pending pods, and runs the scheduling loop.
//!
//! ```text
//! pod watch ──► handle_pod_events ──► Cache (bound pods) / queue (pending pods)
//! node watch ─► handle_node_events ─► Cache (nodes); a change re-queues parked pods
//!
//! run: queue.get ─► schedule_one: PodInfo ─► Algorithm (under the state lock)
//!        ├─ node found: assume in the Cache, then bind in the background
//!        │              (at most `max_in_flight_binds` at once); a failed bind forgets
//!        └─ none: park the pod; PodScheduled=False + FailedScheduling event
//! ```
//!
//! One loop decides, one pod at a time, so every decision sees the pods
//! assumed before it; binding, status patches and events happen off the
//! loop.

use crate::algorithm::{Algorithm, ScheduleError};
use crate::cache::{Cache, NodeChange};
use crate::metrics::{AttemptResult, Gauges, Metrics};
use crate::pending::{PendingPod, backoff, retry_interval};
use crate::pod_info::{PodInfo, PodUsage};
use crate::view::{NodeView, PodView};
use k8s_openapi::api::core::v1::PodCondition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use rkube_client::events::{EventRecorder, EventType, object_ref};
use rkube_client::reflector::Event;
use rkube_client::{ObjectKey, Reason, Store, WorkQueue};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

/// The PodScheduled reason of pods no node fits.
pub const REASON_UNSCHEDULABLE: &str = "Unschedulable";
/// The PodScheduled reason of pods held back by scheduling gates.
pub const REASON_SCHEDULING_GATED: &str = "SchedulingGated";
/// The PodScheduled message of pods held back by scheduling gates.
const GATED_MESSAGE: &str = "Scheduling is blocked due to non-empty scheduling gates";

/// How the scheduler behaves.
#[derive(Debug, Clone)]
pub struct Config {
    /// Pods whose `spec.schedulerName` is this are ours; also the events' source.
    pub scheduler_name: String,
    /// Percentage of nodes to score (0: adaptive).
    pub percentage_of_nodes_to_score: u32,
    /// Bindings (and status patches) in flight at once.
    pub max_in_flight_binds: usize,
}

/// Everything the event handlers and the loop share, behind one lock.
struct State {
    cache: Cache,
    pending: HashMap<ObjectKey, PendingPod>,
    algorithm: Algorithm,
}

/// What one scheduling attempt decided.
enum Decision {
    /// Nothing to do (bound, deleted, not ours, binding in flight, backing off).
    Skip,
    /// Scheduling gates hold the pod back.
    Gated,
    /// Assumed on this node; bind it.
    Assumed { node: String, first_seen: Instant },
    /// No node fits.
    Unschedulable(ScheduleError),
}

/// The scheduler; see the module docs.
pub struct Scheduler {
    config: Config,
    client: rkube_client::Client,
    pods: Store<PodView>,
    state: Mutex<State>,
    queue: WorkQueue<ObjectKey>,
    writes: Arc<Semaphore>,
    events: Arc<EventRecorder>,
    metrics: Metrics,
    tracker: TaskTracker,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler").field("config", &self.config).field("queue", &self.queue).finish_non_exhaustive()
    }
}

fn is_terminal(pod: &PodView) -> bool {
    matches!(pod.status.phase.as_deref(), Some("Succeeded" | "Failed"))
}

impl Scheduler {
    /// A scheduler reading pods from `pods` (the store of a pod reflector),
    /// writing through `client` and recording events with `events`;
    /// background work runs on `tracker`.
    pub fn new(
        config: Config,
        client: rkube_client::Client,
        pods: Store<PodView>,
        events: Arc<EventRecorder>,
        tracker: TaskTracker,
    ) -> Scheduler {
        Scheduler {
            state: Mutex::new(State {
                cache: Cache::new(),
                pending: HashMap::new(),
                algorithm: Algorithm::new(config.percentage_of_nodes_to_score),
            }),
            writes: Arc::new(Semaphore::new(config.max_in_flight_binds.max(1))),
            queue: WorkQueue::new(),
            metrics: Metrics::new(&config.scheduler_name),
            config,
            client,
            pods,
            events,
            tracker,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state consistent before anything can panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this scheduler is responsible for `pod`.
    fn responsible_for(&self, pod: &PodView) -> bool {
        pod.spec.scheduler_name.as_deref().unwrap_or(rkube_api::strategy::pod::DEFAULT_SCHEDULER)
            == self.config.scheduler_name
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The gauges, read now.
    pub fn gauges(&self, leader: bool) -> Gauges {
        let st = self.lock();
        Gauges {
            nodes: st.cache.nodes().len(),
            pods: st.cache.pod_count(),
            assumed_pods: st.cache.assumed_count(),
            active: self.queue.len(),
            unschedulable: st.pending.values().filter(|p| p.unschedulable).count(),
            leader,
            events_dropped: self.events.dropped(),
        }
    }

    /// The Prometheus text of the metrics and gauges.
    pub fn render_metrics(&self, leader: bool) -> String {
        self.metrics.render(&self.gauges(leader))
    }

    /// Sends parked pods back to the queue, each once its back-off has passed.
    fn requeue_unschedulable(&self, st: &mut State) {
        let now = Instant::now();
        for (key, p) in st.pending.iter_mut().filter(|(_, p)| p.unschedulable) {
            p.unschedulable = false;
            self.queue.add_after(key.clone(), p.backoff_remaining(now));
        }
    }

    /// Applies pod watch events to the cache and the queue.
    pub fn handle_pod_events(&self, events: impl IntoIterator<Item = Event<PodView>>) {
        let mut st = self.lock();
        let mut freed = false;
        for event in events {
            match event {
                Event::Applied(pod) => freed |= self.pod_applied(&mut st, &pod),
                Event::Deleted(pod) => {
                    let key = ObjectKey::of(pod.as_ref());
                    st.pending.remove(&key);
                    freed |= st.cache.remove_pod(&key);
                }
                Event::Restarted => {}
            }
        }
        if freed {
            self.requeue_unschedulable(&mut st);
        }
    }

    /// One pod added or changed; true if it freed room on a node.
    fn pod_applied(&self, st: &mut State, pod: &PodView) -> bool {
        let key = ObjectKey::of(pod);
        if !pod.node_name().is_empty() {
            st.pending.remove(&key);
            if is_terminal(pod) {
                return st.cache.remove_pod(&key);
            }
            st.cache.add_bound_pod(key, pod.node_name(), PodUsage::of(pod));
            return false;
        }
        if !self.responsible_for(pod) || pod.metadata.deletion_timestamp.is_some() || is_terminal(pod) {
            st.pending.remove(&key);
            return false;
        }
        if st.cache.is_assumed(&key) {
            return false;
        }
        let generation = pod.metadata.generation;
        match st.pending.get_mut(&key) {
            None => {
                st.pending.insert(key.clone(), PendingPod::new(generation));
                self.queue.add(key);
            }
            // Its spec changed (a toleration added, a gate removed): try again now.
            Some(p) if p.generation != generation => {
                p.generation = generation;
                p.unschedulable = false;
                self.queue.add(key);
            }
            // A status or metadata change (our own condition, most often).
            Some(_) => {}
        }
        false
    }

    /// Applies node watch events to the cache; a new or changed node re-queues parked pods.
    pub fn handle_node_events(&self, events: impl IntoIterator<Item = Event<NodeView>>) {
        let mut st = self.lock();
        let mut changed = false;
        for event in events {
            match event {
                Event::Applied(node) => changed |= st.cache.set_node(&node) != NodeChange::Unchanged,
                Event::Deleted(node) => st.cache.remove_node(node.name()),
                Event::Restarted => {}
            }
        }
        if changed {
            self.requeue_unschedulable(&mut st);
        }
    }

    /// Schedules queued pods, one at a time, while `leading`, until `shutdown`.
    pub async fn run(self: Arc<Self>, mut leading: watch::Receiver<bool>, shutdown: CancellationToken) {
        let stop_queue = {
            let (queue, shutdown) = (self.queue.clone(), shutdown.clone());
            async move {
                shutdown.cancelled().await;
                queue.shut_down();
            }
        };
        self.tracker.spawn(stop_queue);
        loop {
            if !*leading.borrow_and_update() {
                info!("not leading; waiting to schedule");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    r = leading.wait_for(|l| *l) => if r.is_err() { return },
                }
                info!("leading; scheduling");
            }
            let Some(key) = self.queue.get().await else { return };
            if !*leading.borrow() {
                // Keep the key for when this instance leads again.
                self.queue.add(key.clone());
                self.queue.done(&key);
                continue;
            }
            self.clone().schedule_one(&key).await;
            self.queue.done(&key);
        }
    }

    /// Decides under the state lock what to do with the pod `key`.
    fn decide(&self, key: &ObjectKey, pod: &PodView) -> Decision {
        let mut guard = self.lock();
        let State { cache, pending, algorithm } = &mut *guard;
        let ours = self.responsible_for(pod) && pod.metadata.deletion_timestamp.is_none() && !is_terminal(pod);
        if !pod.node_name().is_empty() || !ours {
            pending.remove(key);
            return Decision::Skip;
        }
        if cache.is_assumed(key) {
            return Decision::Skip;
        }
        let p = pending.entry(key.clone()).or_insert_with(|| PendingPod::new(pod.metadata.generation));
        if pod.spec.scheduling_gates.as_ref().is_some_and(|g| !g.is_empty()) {
            p.generation = pod.metadata.generation;
            return Decision::Gated;
        }
        let now = Instant::now();
        let wait = p.backoff_remaining(now);
        if !wait.is_zero() {
            self.queue.add_after(key.clone(), wait);
            return Decision::Skip;
        }
        p.attempts += 1;
        p.last_attempt = Some(now);
        p.generation = pod.metadata.generation;
        p.unschedulable = false;
        let info = PodInfo::new(pod);
        let started = std::time::Instant::now();
        let result = algorithm.schedule(&info, cache);
        self.metrics.algorithm.observe(started.elapsed().as_secs_f64());
        match result {
            Ok(placement) => {
                cache.assume(key.clone(), &placement.node, info.usage);
                Decision::Assumed { node: placement.node, first_seen: p.first_seen }
            }
            Err(e) => {
                p.unschedulable = true;
                self.queue.add_after(key.clone(), retry_interval(p.attempts));
                Decision::Unschedulable(e)
            }
        }
    }

    /// One scheduling attempt for the pod `key`.
    async fn schedule_one(self: Arc<Self>, key: &ObjectKey) {
        let Some(pod) = self.pods.get(key) else {
            self.lock().pending.remove(key);
            return;
        };
        match self.decide(key, &pod) {
            Decision::Skip => {}
            Decision::Gated => self.set_condition(pod, REASON_SCHEDULING_GATED, GATED_MESSAGE).await,
            Decision::Assumed { node, first_seen } => {
                let permit = self.writes.clone().acquire_owned().await.expect("the semaphore is never closed");
                let me = self.clone();
                let key = key.clone();
                self.tracker.spawn(async move {
                    me.bind(&key, &pod, &node, first_seen).await;
                    drop(permit);
                });
            }
            Decision::Unschedulable(e) => {
                self.metrics.attempt(AttemptResult::Unschedulable);
                let message = e.to_string();
                info!(pod = %key, %message, "unschedulable");
                self.report_failure(&pod, &message);
                self.set_condition(pod, REASON_UNSCHEDULABLE, &message).await;
            }
        }
    }

    /// Binds an assumed pod; forgets the assumption if that fails.
    async fn bind(&self, key: &ObjectKey, pod: &PodView, node: &str, first_seen: Instant) {
        let started = std::time::Instant::now();
        let result = self.client.bind(&key.namespace, &key.name, node).await;
        self.metrics.binding.observe(started.elapsed().as_secs_f64());
        match result {
            Ok(_) => {
                self.metrics.attempt(AttemptResult::Scheduled);
                self.metrics.e2e.observe(first_seen.elapsed().as_secs_f64());
                debug!(pod = %key, node, "bound");
                let message = format!("Successfully assigned {key} to {node}");
                self.events.record_with_action(&object_ref(pod), EventType::Normal, "Scheduled", "Binding", &message);
            }
            Err(e) => {
                self.metrics.attempt(AttemptResult::Error);
                let mut st = self.lock();
                st.cache.forget(key);
                // Retried after the back-off: by then the pod is bound
                // (someone else won), gone, or still pending.
                let attempts = st.pending.get(key).map_or(1, |p| p.attempts);
                self.queue.add_after(key.clone(), backoff(attempts));
                // The room it held may let parked pods fit.
                self.requeue_unschedulable(&mut st);
                drop(st);
                if matches!(e.reason, Reason::NotFound | Reason::Conflict) {
                    debug!(pod = %key, node, error = %e, "binding refused");
                } else {
                    warn!(pod = %key, node, error = %e, "binding failed; will retry");
                    let message = format!("Binding rejected: {e}");
                    let pod = object_ref(pod);
                    self.events.record_with_action(&pod, EventType::Warning, "FailedScheduling", "Binding", &message);
                }
            }
        }
    }

    /// Records the FailedScheduling event for `message`; a repeat of the
    /// same message counts again on the same Event.
    fn report_failure(&self, pod: &PodView, message: &str) {
        let pod = object_ref(pod);
        self.events.record_with_action(&pod, EventType::Warning, "FailedScheduling", "Scheduling", message);
    }

    /// Sets PodScheduled=False with `reason` and `message` in the background,
    /// unless the pod has it already.
    async fn set_condition(self: Arc<Self>, pod: Arc<PodView>, reason: &str, message: &str) {
        let Some(patch) = unschedulable_patch(&pod, reason, message) else { return };
        let permit = self.writes.clone().acquire_owned().await.expect("the semaphore is never closed");
        let key = ObjectKey::of(pod.as_ref());
        let api = rkube_client::Api::<PodView>::namespaced(self.client.clone(), &key.namespace);
        self.tracker.spawn(async move {
            if let Err(e) = api.patch_status(&key.name, &patch).await {
                // Changed or gone meanwhile: the next attempt sets it on the new version.
                debug!(pod = %key, error = %e, "could not set the PodScheduled condition");
            }
            drop(permit);
        });
    }
}

/// The merge patch setting PodScheduled=False (`reason`, `message`) on
/// `pod`'s status, conditional on its resourceVersion; None when the pod has
/// that condition already. The transition time is kept when the condition
/// was False already.
pub fn unschedulable_patch(pod: &PodView, reason: &str, message: &str) -> Option<serde_json::Value> {
    let current = pod.scheduled_condition();
    if current.is_some_and(|c| {
        c.status == "False" && c.reason.as_deref() == Some(reason) && c.message.as_deref() == Some(message)
    }) {
        return None;
    }
    let transition = current
        .filter(|c| c.status == "False")
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(Timestamp::now()));
    let mut conditions: Vec<PodCondition> =
        pod.status.conditions.iter().flatten().filter(|c| c.type_ != "PodScheduled").cloned().collect();
    conditions.push(PodCondition {
        type_: "PodScheduled".into(),
        status: "False".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_transition_time: Some(transition),
        ..Default::default()
    });
    Some(serde_json::json!({
        "metadata": {"resourceVersion": pod.metadata.resource_version},
        "status": {"conditions": conditions},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::node_view;
    use rkube_client::Writer;
    use serde_json::json;
    use std::time::Duration;

    /// A scheduler over a store the test fills, with a client that is never reached.
    fn scheduler() -> (Scheduler, Writer<PodView>) {
        let client = rkube_client::Client::new("http://127.0.0.1:1").expect("a valid URL");
        let tracker = TaskTracker::new();
        let events =
            EventRecorder::start(client.clone(), "default-scheduler", "test", &tracker, CancellationToken::new());
        let writer = Writer::new();
        let config = Config {
            scheduler_name: "default-scheduler".into(),
            percentage_of_nodes_to_score: 0,
            max_in_flight_binds: 4,
        };
        (Scheduler::new(config, client, writer.as_reader(), events, tracker), writer)
    }

    fn pending(name: &str, generation: i64, scheduler: &str) -> Arc<PodView> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "generation": generation},
                "spec": {"schedulerName": scheduler, "containers": [{"name": "c"}]}}))
            .expect("pod"),
        )
    }

    fn bound(name: &str, node: &str) -> Arc<PodView> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"nodeName": node, "containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]}}))
            .expect("pod"),
        )
    }

    /// Marks `name` as having failed once, long enough ago that its back-off is over.
    fn park(s: &Scheduler, name: &str) {
        let mut st = s.lock();
        let p = st.pending.get_mut(&ObjectKey::new("default", name)).expect("pending");
        p.attempts = 1;
        p.last_attempt = Some(Instant::now() - Duration::from_secs(60));
        p.unschedulable = true;
    }

    async fn next(s: &Scheduler) -> Option<ObjectKey> {
        let key = tokio::time::timeout(Duration::from_millis(100), s.queue.get()).await.ok().flatten();
        if let Some(k) = &key {
            s.queue.done(k);
        }
        key
    }

    #[tokio::test]
    async fn queues_pending_pods_of_this_scheduler_only() {
        let (s, _) = scheduler();
        s.handle_pod_events([
            Event::Applied(pending("mine", 1, "default-scheduler")),
            Event::Applied(pending("theirs", 1, "other")),
            Event::Applied(bound("running", "n1")),
        ]);
        assert_eq!(next(&s).await, Some(ObjectKey::new("default", "mine")));
        assert_eq!(next(&s).await, None);
        assert_eq!(s.lock().cache.pod_count(), 1, "the bound pod is counted");
    }

    #[tokio::test]
    async fn a_parked_pod_waits_through_status_changes_but_not_spec_changes() {
        let (s, _) = scheduler();
        s.handle_pod_events([Event::Applied(pending("web", 1, "default-scheduler"))]);
        assert!(next(&s).await.is_some());
        park(&s, "web");
        s.handle_pod_events([Event::Applied(pending("web", 1, "default-scheduler"))]);
        assert_eq!(next(&s).await, None, "our own condition patch does not retry it");
        s.handle_pod_events([Event::Applied(pending("web", 2, "default-scheduler"))]);
        assert_eq!(next(&s).await, Some(ObjectKey::new("default", "web")));
    }

    #[tokio::test]
    async fn a_new_or_changed_node_requeues_parked_pods_but_a_heartbeat_does_not() {
        let (s, _) = scheduler();
        s.handle_pod_events([Event::Applied(pending("web", 1, "default-scheduler"))]);
        assert!(next(&s).await.is_some());
        let node =
            |labels: serde_json::Value| Arc::new(node_view(json!({"metadata": {"name": "n1", "labels": labels}})));

        park(&s, "web");
        s.handle_node_events([Event::Applied(node(json!({})))]);
        assert_eq!(next(&s).await, Some(ObjectKey::new("default", "web")), "a node was added");

        park(&s, "web");
        s.handle_node_events([Event::Applied(node(json!({})))]);
        assert_eq!(next(&s).await, None, "nothing the scheduler reads changed");

        s.handle_node_events([Event::Applied(node(json!({"zone": "north"})))]);
        assert_eq!(next(&s).await, Some(ObjectKey::new("default", "web")), "a label changed");
    }

    #[tokio::test]
    async fn deleting_a_bound_pod_requeues_parked_pods() {
        let (s, _) = scheduler();
        s.handle_node_events([Event::Applied(Arc::new(node_view(json!({"metadata": {"name": "n1"}}))))]);
        s.handle_pod_events([
            Event::Applied(bound("old", "n1")),
            Event::Applied(pending("web", 1, "default-scheduler")),
        ]);
        assert!(next(&s).await.is_some());
        park(&s, "web");
        s.handle_pod_events([Event::Deleted(bound("old", "n1"))]);
        assert_eq!(next(&s).await, Some(ObjectKey::new("default", "web")));
        assert_eq!(s.lock().cache.node("n1").map(|n| n.usage.requested.milli_cpu), Some(0));
    }

    #[tokio::test]
    async fn requeued_pods_still_wait_out_their_back_off() {
        let (s, _) = scheduler();
        s.handle_pod_events([Event::Applied(pending("web", 1, "default-scheduler"))]);
        assert!(next(&s).await.is_some());
        park(&s, "web");
        if let Some(p) = s.lock().pending.get_mut(&ObjectKey::new("default", "web")) {
            p.last_attempt = Some(Instant::now());
        }
        s.handle_node_events([Event::Applied(Arc::new(node_view(json!({"metadata": {"name": "n1"}}))))]);
        assert_eq!(next(&s).await, None, "one second of back-off left");
        let key = tokio::time::timeout(Duration::from_secs(3), s.queue.get()).await.ok().flatten();
        assert_eq!(key, Some(ObjectKey::new("default", "web")));
    }

    #[tokio::test]
    async fn decide_assumes_the_pod_on_a_fitting_node_and_parks_it_otherwise() {
        let (s, writer) = scheduler();
        s.handle_node_events([Event::Applied(Arc::new(node_view(json!({"metadata": {"name": "n1"}}))))]);
        let pod = bound("big", "");
        writer.apply(pod.clone());
        let key = ObjectKey::new("default", "big");
        match s.decide(&key, &pod) {
            Decision::Assumed { node, .. } => assert_eq!(node, "n1"),
            _ => panic!("expected the pod to be assumed on n1"),
        }
        assert!(s.lock().cache.is_assumed(&key));
        assert!(matches!(s.decide(&key, &pod), Decision::Skip), "its binding is in flight");
        s.lock().cache.forget(&key);
        let other = bound("second", "");
        for filler in ["f1", "f2"] {
            s.lock().cache.assume(ObjectKey::new("default", filler), "n1", PodUsage::of(&bound(filler, "n1")));
        }
        match s.decide(&ObjectKey::new("default", "second"), &other) {
            Decision::Unschedulable(e) => assert_eq!(e.to_string(), "0/1 nodes are available: 1 Insufficient cpu."),
            _ => panic!("expected no room"),
        }
        let st = s.lock();
        let parked = st.pending.get(&ObjectKey::new("default", "second")).expect("pending");
        assert!(parked.unschedulable);
        assert_eq!(parked.attempts, 1);
    }

    fn pod(status: serde_json::Value) -> PodView {
        serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "default", "resourceVersion": "5"},
            "spec": {"containers": [{"name": "c"}]}, "status": status}))
        .expect("pod")
    }

    #[test]
    fn unschedulable_patch_sets_the_condition_and_keeps_others() {
        let p = pod(json!({"phase": "Pending", "conditions": [{"type": "Other", "status": "True"}]}));
        let patch = unschedulable_patch(&p, REASON_UNSCHEDULABLE, "0/1 nodes are available: 1 Insufficient cpu.")
            .expect("a patch");
        assert_eq!(patch["metadata"]["resourceVersion"], "5");
        let conditions = patch["status"]["conditions"].as_array().expect("conditions");
        assert_eq!(conditions.len(), 2);
        assert_eq!(conditions[0]["type"], "Other");
        assert_eq!(conditions[1]["type"], "PodScheduled");
        assert_eq!(conditions[1]["status"], "False");
        assert_eq!(conditions[1]["reason"], "Unschedulable");
        assert_eq!(conditions[1]["message"], "0/1 nodes are available: 1 Insufficient cpu.");
        assert!(conditions[1]["lastTransitionTime"].is_string());
    }

    #[test]
    fn unschedulable_patch_is_skipped_when_nothing_changes() {
        let p = pod(json!({"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "m", "lastTransitionTime": "2024-01-01T00:00:00Z"}]}));
        assert!(unschedulable_patch(&p, REASON_UNSCHEDULABLE, "m").is_none());
        let patch = unschedulable_patch(&p, REASON_UNSCHEDULABLE, "other").expect("a new message");
        assert_eq!(patch["status"]["conditions"][0]["lastTransitionTime"], "2024-01-01T00:00:00Z");
    }
}
