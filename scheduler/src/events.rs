//! Events about pods (`Scheduled`, `FailedScheduling`), written in the
//! background like client-go's event broadcaster: recording never waits for
//! the apiserver, at most [`WRITERS`] writes are in flight, and when
//! [`BUFFER`] events are already waiting new ones are dropped (and counted)
//! rather than slowing scheduling down.

use crate::view::PodView;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use rkube_client::{Api, Client};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

/// Events waiting to be written before new ones are dropped (client-go's
/// broadcaster queue holds 1000).
pub const BUFFER: usize = 8192;
/// Event writes in flight at once.
pub const WRITERS: usize = 32;

/// The current time.
pub fn now() -> Timestamp {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Timestamp::from_microsecond(i64::try_from(since_epoch.as_micros()).unwrap_or(i64::MAX)).unwrap_or(Timestamp::MAX)
}

/// Who writes the events: `source.component` / `reportingComponent`, and `reportingInstance`.
#[derive(Debug)]
struct Source {
    component: String,
    instance: String,
}

/// An event to create, as compact as it can wait in the queue.
#[derive(Debug)]
struct Record {
    name: String,
    namespace: String,
    pod: String,
    uid: Option<String>,
    resource_version: Option<String>,
    type_: &'static str,
    reason: &'static str,
    action: &'static str,
    message: String,
    at: Timestamp,
}

impl Source {
    /// The core/v1 Event for `r`.
    fn event(&self, r: &Record) -> Event {
        Event {
            metadata: ObjectMeta {
                name: Some(r.name.clone()),
                namespace: Some(r.namespace.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                namespace: Some(r.namespace.clone()),
                name: Some(r.pod.clone()),
                uid: r.uid.clone(),
                resource_version: r.resource_version.clone(),
                ..Default::default()
            },
            reason: Some(r.reason.into()),
            message: Some(r.message.clone()),
            type_: Some(r.type_.into()),
            action: Some(r.action.into()),
            source: Some(EventSource { component: Some(self.component.clone()), host: None }),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.instance.clone()),
            first_timestamp: Some(Time(r.at)),
            last_timestamp: Some(Time(r.at)),
            event_time: Some(MicroTime(r.at)),
            count: Some(1),
            ..Default::default()
        }
    }
}

/// One write for the background writer.
#[derive(Debug)]
enum Write {
    /// Create this event.
    Create(Record),
    /// Set the count and last timestamp of an existing event.
    Bump { namespace: String, name: String, count: i32 },
}

/// Records events about pods; see the module docs.
#[derive(Debug)]
pub struct EventRecorder {
    tx: mpsc::Sender<Write>,
    source: Arc<Source>,
    dropped: AtomicU64,
}

impl EventRecorder {
    /// A recorder whose events come from `component` (the scheduler's name;
    /// `source.component`) running as `instance`, written through `client`
    /// by a task on `tracker` until `shutdown`.
    pub fn start(
        client: Client,
        component: &str,
        instance: &str,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Arc<EventRecorder> {
        let (tx, rx) = mpsc::channel(BUFFER);
        let source = Arc::new(Source { component: component.to_string(), instance: instance.to_string() });
        tracker.spawn(write_events(client, source.clone(), rx, tracker.clone(), shutdown));
        Arc::new(EventRecorder { tx, source, dropped: AtomicU64::new(0) })
    }

    /// How many events were dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn send(&self, write: Write) {
        if self.tx.try_send(write).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn record_of(
        pod: &PodView,
        type_: &'static str,
        reason: &'static str,
        action: &'static str,
        message: &str,
    ) -> Record {
        let at = now();
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        Record {
            name: format!("{pod_name}.{:x}", at.as_nanosecond()),
            namespace: pod.metadata.namespace.clone().unwrap_or_else(|| "default".into()),
            pod: pod_name,
            uid: pod.metadata.uid.clone(),
            resource_version: pod.metadata.resource_version.clone(),
            type_,
            reason,
            action,
            message: message.to_string(),
            at,
        }
    }

    /// Records an event about `pod` (`type_` Normal or Warning); returns the
    /// event's name.
    pub fn record(
        &self,
        pod: &PodView,
        type_: &'static str,
        reason: &'static str,
        action: &'static str,
        message: &str,
    ) -> String {
        let record = Self::record_of(pod, type_, reason, action, message);
        let name = record.name.clone();
        self.send(Write::Create(record));
        name
    }

    /// Records that the event `name` about `pod` happened again, `count` times in all.
    pub fn repeat(&self, pod: &PodView, name: &str, count: i32) {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        self.send(Write::Bump { namespace, name: name.to_string(), count });
    }

    /// The core/v1 Event [`record`](Self::record) would write.
    pub fn event(
        &self,
        pod: &PodView,
        type_: &'static str,
        reason: &'static str,
        action: &'static str,
        message: &str,
    ) -> Event {
        self.source.event(&Self::record_of(pod, type_, reason, action, message))
    }
}

/// Writes queued events, [`WRITERS`] at a time, until `shutdown`.
async fn write_events(
    client: Client,
    source: Arc<Source>,
    mut rx: mpsc::Receiver<Write>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(WRITERS));
    loop {
        let write = tokio::select! {
            _ = shutdown.cancelled() => return,
            w = rx.recv() => match w { Some(w) => w, None => return },
        };
        let permit = tokio::select! {
            _ = shutdown.cancelled() => return,
            p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let (client, source) = (client.clone(), source.clone());
        tracker.spawn(async move {
            let _permit = permit;
            let result = match write {
                Write::Create(record) => {
                    let event = source.event(&record);
                    Api::<Event>::namespaced(client, &record.namespace).create(&event).await.map(drop)
                }
                Write::Bump { namespace, name, count } => {
                    let patch = serde_json::json!({"count": count, "lastTimestamp": Time(now())});
                    Api::<Event>::namespaced(client, &namespace).patch(&name, &patch).await.map(drop)
                }
            };
            if let Err(e) = result {
                debug!(error = %e, "could not write an event");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn events_name_the_pod_and_the_scheduler() {
        let client = Client::new("http://127.0.0.1:1").expect("a valid URL");
        let tracker = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let recorder = EventRecorder::start(client, "default-scheduler", "host_1", &tracker, shutdown.clone());
        let pod: PodView = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "7"}}))
        .expect("pod");
        let e = recorder.event(&pod, "Normal", "Scheduled", "Binding", "Successfully assigned default/web to node-1");
        let v = serde_json::to_value(&e).expect("serializes");
        assert_eq!(
            v["involvedObject"],
            json!({"apiVersion": "v1", "kind": "Pod", "namespace": "default",
            "name": "web", "uid": "u1", "resourceVersion": "7"})
        );
        assert_eq!(v["source"], json!({"component": "default-scheduler"}));
        assert_eq!(
            (v["reason"].as_str(), v["type"].as_str(), v["count"].as_i64()),
            (Some("Scheduled"), Some("Normal"), Some(1))
        );
        assert!(e.metadata.name.as_deref().is_some_and(|n| n.starts_with("web.")));
        shutdown.cancel();
        tracker.close();
        tracker.wait().await;
    }
}
