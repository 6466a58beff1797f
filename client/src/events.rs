//! Events about objects, as `kubectl describe` shows them: client-go's
//! `record.EventRecorder` with its event correlator, for every component.
//!
//! [`EventRecorder::record`] never waits for the apiserver and never fails
//! the caller: it queues the occurrence for a background writer. When
//! [`BUFFER`] occurrences are already waiting, new ones are dropped and
//! counted ([`EventRecorder::dropped`]) rather than slowing the caller down.
//! The writer keeps at most [`WRITERS`] writes in flight.
//!
//! Repeats are aggregated as Kubernetes does: the same occurrence (same
//! object, type, reason, action and message) within [`REPEAT_WINDOW`] of the
//! last one bumps `count` and `lastTimestamp` of the Event already written
//! instead of creating another, so `kubectl describe` shows `(x5 over 2m)`.
//! Repeats that arrive while that Event's previous write is still in flight
//! are folded into one patch. At most [`REMEMBERED`] Events are remembered
//! for aggregation; the least recently seen are forgotten first.
//!
//! Events are named `<object>.<hex nanoseconds>`; events about
//! cluster-scoped objects (nodes) go to the `default` namespace.

use crate::{Api, Client, Reason};
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

/// Occurrences waiting for the writer before new ones are dropped
/// (client-go's broadcaster queue holds 1000).
pub const BUFFER: usize = 8192;
/// Event writes in flight at once.
pub const WRITERS: usize = 32;
/// How long after its last occurrence an Event still absorbs repeats
/// (client-go's correlator: 10 minutes).
pub const REPEAT_WINDOW: Duration = Duration::from_secs(600);
/// How many Events are remembered for aggregation.
pub const REMEMBERED: usize = 4096;

/// Kubernetes' event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// Something expected happened.
    Normal,
    /// Something needs attention.
    Warning,
}

impl EventType {
    /// `Normal` or `Warning`, as the Event's `type` says.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// The reference to `obj` that an Event's `involvedObject` holds: apiVersion,
/// kind, namespace, name, uid and resourceVersion.
///
/// A Node's events carry the node's *name* as uid, as Kubernetes' kubelet
/// and node controllers write them (`kubectl describe node` looks them up so).
pub fn object_ref<K>(obj: &K) -> ObjectReference
where
    K: k8s_openapi::Resource + k8s_openapi::Metadata<Ty = ObjectMeta>,
{
    let meta = obj.metadata();
    let uid = if K::KIND == "Node" { meta.name.clone() } else { meta.uid.clone() };
    ObjectReference {
        api_version: Some(K::API_VERSION.to_string()),
        kind: Some(K::KIND.to_string()),
        namespace: meta.namespace.clone().filter(|ns| !ns.is_empty()),
        name: meta.name.clone(),
        uid,
        resource_version: meta.resource_version.clone(),
        ..Default::default()
    }
}

/// Who writes the events.
#[derive(Debug)]
struct Source {
    /// `source.component` and `reportingComponent`.
    component: String,
    /// `reportingInstance`.
    instance: String,
    /// `source.host` (the kubelet's node).
    host: Option<String>,
}

/// One thing that happened, as it waits for the writer.
#[derive(Debug)]
struct Occurrence {
    object: ObjectReference,
    type_: EventType,
    reason: String,
    action: Option<String>,
    message: String,
    at: Timestamp,
}

impl Occurrence {
    fn namespace(&self) -> &str {
        self.object.namespace.as_deref().filter(|ns| !ns.is_empty()).unwrap_or("default")
    }
}

/// What makes two occurrences the same event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    namespace: String,
    kind: String,
    name: String,
    uid: String,
    type_: EventType,
    reason: String,
    action: Option<String>,
    message: String,
}

impl Key {
    fn of(o: &Occurrence) -> Key {
        Key {
            namespace: o.namespace().to_string(),
            kind: o.object.kind.clone().unwrap_or_default(),
            name: o.object.name.clone().unwrap_or_default(),
            uid: o.object.uid.clone().unwrap_or_default(),
            type_: o.type_,
            reason: o.reason.clone(),
            action: o.action.clone(),
            message: o.message.clone(),
        }
    }
}

/// An Event written (or being written) for a key.
#[derive(Debug)]
struct Written {
    namespace: String,
    name: String,
    /// Occurrences so far.
    count: i32,
    /// When the last one happened.
    last: Timestamp,
    /// When the writer last saw one, for the repeat window and eviction.
    seen: Instant,
    /// Whether a create or a bump of this Event is in flight.
    in_flight: bool,
}

/// One write to the apiserver.
#[derive(Debug)]
enum Write {
    /// Create this Event.
    Create { key: Key, event: Box<Event> },
    /// Set `count` and `lastTimestamp` of an existing Event.
    Bump { key: Key, namespace: String, name: String, count: i32, last: Timestamp },
}

/// How a write ended, as reported back to the writer.
#[derive(Debug)]
enum Outcome {
    /// The Event now has this count.
    Written(i32),
    /// The create failed: there is no Event.
    NotCreated,
    /// The Event is gone (a bump of a deleted or expired Event).
    Gone,
    /// A bump failed otherwise; the Event is as it was.
    Failed,
}

/// The writer's memory of the Events written: which key has which Event,
/// bounded by [`REMEMBERED`]. No I/O: it turns occurrences and outcomes into
/// writes.
#[derive(Debug, Default)]
struct Ledger {
    written: HashMap<Key, Written>,
    /// The nanoseconds of the last Event name handed out, so names stay unique.
    last_name_nanos: i128,
}

impl Ledger {
    /// The write for `o`, seen at `now`: a bump of the Event already written
    /// for it, or a new Event; None while that Event's last write is still
    /// in flight (the count is sent when it ends).
    fn occurred(&mut self, o: Occurrence, source: &Source, now: Instant) -> Option<Write> {
        let key = Key::of(&o);
        if let Some(w) =
            self.written.get_mut(&key).filter(|w| w.in_flight || now.saturating_duration_since(w.seen) < REPEAT_WINDOW)
        {
            w.count = w.count.saturating_add(1);
            w.last = o.at;
            w.seen = now;
            if w.in_flight {
                return None;
            }
            w.in_flight = true;
            return Some(Write::Bump {
                key,
                namespace: w.namespace.clone(),
                name: w.name.clone(),
                count: w.count,
                last: w.last,
            });
        }
        self.make_room(now);
        let nanos = o.at.as_nanosecond().max(self.last_name_nanos + 1);
        self.last_name_nanos = nanos;
        let object = o.object.name.as_deref().filter(|n| !n.is_empty()).unwrap_or("unknown");
        let name = format!("{object}.{nanos:x}");
        let namespace = o.namespace().to_string();
        let written = Written { namespace, name, count: 1, last: o.at, seen: now, in_flight: true };
        let event = Box::new(source.event(&o, &written.namespace, &written.name));
        self.written.insert(key.clone(), written);
        Some(Write::Create { key, event })
    }

    /// Takes note of how the write for `key` ended; returns the bump that
    /// repeats seen meanwhile need.
    fn finished(&mut self, key: Key, outcome: Outcome) -> Option<Write> {
        let w = self.written.get_mut(&key)?;
        w.in_flight = false;
        match outcome {
            Outcome::Written(count) if w.count > count => {
                w.in_flight = true;
                Some(Write::Bump {
                    key,
                    namespace: w.namespace.clone(),
                    name: w.name.clone(),
                    count: w.count,
                    last: w.last,
                })
            }
            Outcome::Written(_) => None,
            // Nothing to bump: the next occurrence writes a new Event.
            Outcome::NotCreated | Outcome::Gone => {
                self.written.remove(&key);
                None
            }
            // The next occurrence retries, with the count of then.
            Outcome::Failed => None,
        }
    }

    /// Forgets Events so one more fits: first those past the repeat window,
    /// then the least recently seen half. Events being written stay.
    fn make_room(&mut self, now: Instant) {
        if self.written.len() < REMEMBERED {
            return;
        }
        self.written.retain(|_, w| w.in_flight || now.saturating_duration_since(w.seen) < REPEAT_WINDOW);
        if self.written.len() < REMEMBERED {
            return;
        }
        let mut seen: Vec<Instant> = self.written.values().filter(|w| !w.in_flight).map(|w| w.seen).collect();
        if seen.is_empty() {
            return;
        }
        let middle = seen.len() / 2;
        let (_, cutoff, _) = seen.select_nth_unstable(middle);
        let cutoff = *cutoff;
        self.written.retain(|_, w| w.in_flight || w.seen > cutoff);
    }
}

impl Source {
    /// The core/v1 Event for the first occurrence `o`.
    fn event(&self, o: &Occurrence, namespace: &str, name: &str) -> Event {
        Event {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(namespace.to_string()),
                ..Default::default()
            },
            involved_object: o.object.clone(),
            reason: Some(o.reason.clone()),
            message: Some(o.message.clone()),
            type_: Some(o.type_.as_str().to_string()),
            action: o.action.clone(),
            source: Some(EventSource { component: Some(self.component.clone()), host: self.host.clone() }),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.instance.clone()),
            first_timestamp: Some(Time(o.at)),
            last_timestamp: Some(Time(o.at)),
            event_time: Some(MicroTime(o.at)),
            count: Some(1),
            ..Default::default()
        }
    }
}

/// Records Events on behalf of one component; see the module docs. Shared
/// as `Arc<EventRecorder>`.
#[derive(Debug)]
pub struct EventRecorder {
    tx: mpsc::Sender<Occurrence>,
    dropped: AtomicU64,
}

impl EventRecorder {
    /// A recorder whose Events come from `component` (`source.component`,
    /// `reportingComponent`) running as `instance` (`reportingInstance`),
    /// written through `client` by tasks on `tracker` until `shutdown`.
    pub fn start(
        client: Client,
        component: &str,
        instance: &str,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Arc<EventRecorder> {
        let source = Source { component: component.to_string(), instance: instance.to_string(), host: None };
        Self::spawn(client, source, tracker, shutdown)
    }

    /// Like [`start`](Self::start) for a component on a node (the kubelet):
    /// `node` is both `source.host` and `reportingInstance`.
    pub fn start_on_node(
        client: Client,
        component: &str,
        node: &str,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Arc<EventRecorder> {
        let source = Source { component: component.to_string(), instance: node.to_string(), host: Some(node.into()) };
        Self::spawn(client, source, tracker, shutdown)
    }

    fn spawn(client: Client, source: Source, tracker: &TaskTracker, shutdown: CancellationToken) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(BUFFER);
        tracker.spawn(write_events(client, source, rx, tracker.clone(), shutdown));
        Arc::new(EventRecorder { tx, dropped: AtomicU64::new(0) })
    }

    /// Records an event about `object`. Never blocks, never fails the caller.
    pub fn record(&self, object: &ObjectReference, type_: EventType, reason: &str, message: &str) {
        self.send(object.clone(), type_, reason, None, message);
    }

    /// Records an event about `object` that also names the `action` taken
    /// (the scheduler's `Binding`, `Scheduling`).
    pub fn record_with_action(
        &self,
        object: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        message: &str,
    ) {
        self.send(object.clone(), type_, reason, Some(action), message);
    }

    /// Records a `Normal` event about `obj`.
    pub fn normal<K>(&self, obj: &K, reason: &str, message: impl AsRef<str>)
    where
        K: k8s_openapi::Resource + k8s_openapi::Metadata<Ty = ObjectMeta>,
    {
        self.send(object_ref(obj), EventType::Normal, reason, None, message.as_ref());
    }

    /// Records a `Warning` event about `obj`.
    pub fn warning<K>(&self, obj: &K, reason: &str, message: impl AsRef<str>)
    where
        K: k8s_openapi::Resource + k8s_openapi::Metadata<Ty = ObjectMeta>,
    {
        self.send(object_ref(obj), EventType::Warning, reason, None, message.as_ref());
    }

    /// How many events were dropped because the writer fell behind (or had
    /// stopped).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn send(&self, object: ObjectReference, type_: EventType, reason: &str, action: Option<&str>, message: &str) {
        let occurrence = Occurrence {
            object,
            type_,
            reason: reason.to_string(),
            action: action.map(str::to_string),
            message: message.to_string(),
            at: Timestamp::now(),
        };
        if self.tx.try_send(occurrence).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Turns queued occurrences into writes, [`WRITERS`] at a time, until `shutdown`.
async fn write_events(
    client: Client,
    source: Source,
    mut rx: mpsc::Receiver<Occurrence>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(WRITERS));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(Key, Outcome)>();
    let mut ledger = Ledger::default();
    loop {
        let write = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            Some((key, outcome)) = done_rx.recv() => ledger.finished(key, outcome),
            o = rx.recv() => match o {
                Some(o) => ledger.occurred(o, &source, Instant::now()),
                None => return,
            },
        };
        let Some(write) = write else { continue };
        let permit = tokio::select! {
            _ = shutdown.cancelled() => return,
            p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let (client, done) = (client.clone(), done_tx.clone());
        tracker.spawn(async move {
            let (key, outcome) = send(client, write).await;
            // The writer may have stopped; then nobody needs the outcome.
            let _ = done.send((key, outcome));
            drop(permit);
        });
    }
}

/// Performs one write.
async fn send(client: Client, write: Write) -> (Key, Outcome) {
    match write {
        Write::Create { key, event } => {
            let namespace = event.metadata.namespace.clone().unwrap_or_default();
            match Api::<Event>::namespaced(client, &namespace).create(&event).await {
                Ok(_) => (key, Outcome::Written(1)),
                Err(e) => {
                    debug!(event = ?event.metadata.name, reason = %key.reason, error = %e, "could not write an event");
                    (key, Outcome::NotCreated)
                }
            }
        }
        Write::Bump { key, namespace, name, count, last } => {
            let patch = serde_json::json!({"count": count, "lastTimestamp": Time(last)});
            match Api::<Event>::namespaced(client, &namespace).patch(&name, &patch).await {
                Ok(_) => (key, Outcome::Written(count)),
                Err(e) if e.reason == Reason::NotFound => (key, Outcome::Gone),
                Err(e) => {
                    debug!(event = %name, error = %e, "could not update an event's count");
                    (key, Outcome::Failed)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::json;

    fn source() -> Source {
        Source { component: "default-scheduler".into(), instance: "host_1".into(), host: None }
    }

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "7"}}))
        .expect("a pod")
    }

    fn occurrence(object: ObjectReference, message: &str) -> Occurrence {
        Occurrence {
            object,
            type_: EventType::Warning,
            reason: "FailedScheduling".into(),
            action: Some("Scheduling".into()),
            message: message.into(),
            at: Timestamp::now(),
        }
    }

    fn created(write: Option<Write>) -> (Key, Event) {
        match write {
            Some(Write::Create { key, event }) => (key, *event),
            other => panic!("expected a create, got {other:?}"),
        }
    }

    fn bumped(write: Option<Write>) -> (Key, i32) {
        match write {
            Some(Write::Bump { key, count, .. }) => (key, count),
            other => panic!("expected a bump, got {other:?}"),
        }
    }

    #[test]
    fn events_name_the_object_and_the_component() {
        let mut ledger = Ledger::default();
        let (_, e) = created(ledger.occurred(occurrence(object_ref(&pod()), "0/1 nodes"), &source(), Instant::now()));
        let v = serde_json::to_value(&e).expect("serializes");
        assert_eq!(
            v["involvedObject"],
            json!({"apiVersion": "v1", "kind": "Pod", "namespace": "default",
            "name": "web", "uid": "u1", "resourceVersion": "7"})
        );
        assert_eq!(v["source"], json!({"component": "default-scheduler"}));
        assert_eq!(
            (v["reportingComponent"].as_str(), v["reportingInstance"].as_str(), v["action"].as_str()),
            (Some("default-scheduler"), Some("host_1"), Some("Scheduling"))
        );
        assert_eq!(
            (v["reason"].as_str(), v["type"].as_str(), v["count"].as_i64()),
            (Some("FailedScheduling"), Some("Warning"), Some(1))
        );
        assert_eq!(v["firstTimestamp"], v["lastTimestamp"]);
        assert_eq!(e.metadata.namespace.as_deref(), Some("default"));
        assert!(e.metadata.name.as_deref().is_some_and(|n| n.starts_with("web.")), "{:?}", e.metadata.name);
    }

    #[test]
    fn cluster_scoped_objects_get_their_events_in_default() {
        let node: Node = serde_json::from_value(json!({"metadata": {"name": "n1", "uid": "u"}})).expect("a node");
        let reference = object_ref(&node);
        assert_eq!((reference.kind.as_deref(), reference.namespace.as_deref()), (Some("Node"), None));
        let s = Source { component: "kubelet".into(), instance: "n1".into(), host: Some("n1".into()) };
        let (_, e) = created(Ledger::default().occurred(occurrence(reference, "m"), &s, Instant::now()));
        assert_eq!(e.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(e.source.and_then(|s| s.host).as_deref(), Some("n1"));
    }

    #[test]
    fn names_stay_unique_within_one_instant() {
        let mut ledger = Ledger::default();
        let at = Timestamp::now();
        let mut names = Vec::new();
        for message in ["a", "b"] {
            let o = Occurrence { at, ..occurrence(object_ref(&pod()), message) };
            names.push(created(ledger.occurred(o, &source(), Instant::now())).1.metadata.name);
        }
        assert_ne!(names[0], names[1]);
    }

    #[test]
    fn repeats_bump_the_written_event_and_fold_while_in_flight() {
        let mut ledger = Ledger::default();
        let now = Instant::now();
        let (key, _) = created(ledger.occurred(occurrence(object_ref(&pod()), "m"), &source(), now));
        // Two repeats while the create is in flight: no write yet.
        assert!(ledger.occurred(occurrence(object_ref(&pod()), "m"), &source(), now).is_none());
        assert!(ledger.occurred(occurrence(object_ref(&pod()), "m"), &source(), now).is_none());
        // The create lands: one bump carries both repeats.
        let (key, count) = bumped(ledger.finished(key, Outcome::Written(1)));
        assert_eq!(count, 3);
        assert!(ledger.finished(key.clone(), Outcome::Written(3)).is_none());
        // A later repeat bumps at once.
        assert_eq!(bumped(ledger.occurred(occurrence(object_ref(&pod()), "m"), &source(), now)).1, 4);
        // Another message is another event.
        created(ledger.occurred(occurrence(object_ref(&pod()), "other"), &source(), now));
    }

    #[test]
    fn a_repeat_after_the_window_or_a_lost_event_writes_a_new_one() {
        let mut ledger = Ledger::default();
        let now = Instant::now();
        let (key, _) = created(ledger.occurred(occurrence(object_ref(&pod()), "m"), &source(), now));
        assert!(ledger.finished(key.clone(), Outcome::Written(1)).is_none());
        let later = now + REPEAT_WINDOW + Duration::from_secs(1);
        let (key, _) = created(ledger.occurred(occurrence(object_ref(&pod()), "m"), &source(), later));
        assert!(ledger.finished(key, Outcome::Written(1)).is_none());
        let (key, _) = bumped(ledger.occurred(occurrence(object_ref(&pod()), "m"), &source(), later));
        assert!(ledger.finished(key, Outcome::Gone).is_none());
        created(ledger.occurred(occurrence(object_ref(&pod()), "m"), &source(), later));
    }

    #[test]
    fn a_failed_create_is_forgotten_and_a_failed_bump_retried() {
        let mut ledger = Ledger::default();
        let now = Instant::now();
        let (key, _) = created(ledger.occurred(occurrence(object_ref(&pod()), "m"), &source(), now));
        assert!(ledger.finished(key, Outcome::NotCreated).is_none());
        let (key, _) = created(ledger.occurred(occurrence(object_ref(&pod()), "m"), &source(), now));
        assert!(ledger.finished(key, Outcome::Written(1)).is_none());
        let (key, _) = bumped(ledger.occurred(occurrence(object_ref(&pod()), "m"), &source(), now));
        assert!(ledger.finished(key, Outcome::Failed).is_none());
        assert_eq!(bumped(ledger.occurred(occurrence(object_ref(&pod()), "m"), &source(), now)).1, 3);
    }

    #[test]
    fn remembers_a_bounded_number_of_events() {
        let mut ledger = Ledger::default();
        let start = Instant::now();
        for i in 0..REMEMBERED * 3 {
            let now = start + Duration::from_millis(i as u64);
            let (key, _) = created(ledger.occurred(occurrence(object_ref(&pod()), &i.to_string()), &source(), now));
            ledger.finished(key, Outcome::Written(1));
        }
        assert!(ledger.written.len() <= REMEMBERED, "{}", ledger.written.len());
        // The most recent are remembered, so their repeats still aggregate.
        let last = (REMEMBERED * 3 - 1).to_string();
        bumped(ledger.occurred(occurrence(object_ref(&pod()), &last), &source(), Instant::now()));
    }

    #[tokio::test]
    async fn record_drops_and_counts_when_the_writer_falls_behind() {
        let (tx, _rx) = mpsc::channel(2);
        let recorder = EventRecorder { tx, dropped: AtomicU64::new(0) };
        for _ in 0..5 {
            recorder.normal(&pod(), "Pulled", "image present");
        }
        assert_eq!(recorder.dropped(), 3);
    }
}
