//! Events about pods (`Pulling`, `Started`, `BackOff`, `FailedMount`, …) as
//! core/v1 Events with source component `kubelet` and host = the node.
//!
//! Recording never blocks a pod sync: records go through a channel to one
//! writer task. A record that repeats one sent in the last ten minutes
//! bumps that Event's `count` and `lastTimestamp` instead of creating
//! another, as Kubernetes' event correlator does.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use rkube_client::{Api, Client};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How long a sent event absorbs repeats.
const REPEAT_WINDOW: Duration = Duration::from_secs(600);
/// How many sent events are remembered for repeats.
const REMEMBERED: usize = 4096;

/// `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// Something expected happened.
    Normal,
    /// Something went wrong.
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

#[derive(Debug)]
struct Record {
    object: ObjectReference,
    kind: EventType,
    reason: String,
    message: String,
}

/// Records events for one node; cheap to clone.
#[derive(Debug, Clone)]
pub struct Recorder {
    tx: mpsc::UnboundedSender<Record>,
}

impl Recorder {
    /// A recorder whose writer runs until `shutdown`; spawn the returned future.
    pub fn new(
        client: Client,
        node: &str,
        shutdown: CancellationToken,
    ) -> (Recorder, impl std::future::Future<Output = ()> + Send + 'static) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Recorder { tx }, write_events(client, node.to_string(), rx, shutdown))
    }

    /// Records an event about `pod`.
    pub fn record(&self, pod: &Pod, kind: EventType, reason: &str, message: impl Into<String>) {
        let m = &pod.metadata;
        let object = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            namespace: m.namespace.clone(),
            name: m.name.clone(),
            uid: m.uid.clone(),
            resource_version: m.resource_version.clone(),
            ..Default::default()
        };
        let _ = self.tx.send(Record { object, kind, reason: reason.to_string(), message: message.into() });
    }

    /// Records a `Normal` event about `pod`.
    pub fn normal(&self, pod: &Pod, reason: &str, message: impl Into<String>) {
        self.record(pod, EventType::Normal, reason, message);
    }

    /// Records a `Warning` event about `pod`.
    pub fn warning(&self, pod: &Pod, reason: &str, message: impl Into<String>) {
        self.record(pod, EventType::Warning, reason, message);
    }
}

type RepeatKey = (String, EventType, String, String);

struct Sent {
    namespace: String,
    name: String,
    count: i32,
    at: Instant,
}

async fn write_events(
    client: Client,
    node: String,
    mut rx: mpsc::UnboundedReceiver<Record>,
    shutdown: CancellationToken,
) {
    let mut sent: HashMap<RepeatKey, Sent> = HashMap::new();
    loop {
        let record = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = rx.recv() => match r { Some(r) => r, None => return },
        };
        let namespace = record.object.namespace.clone().unwrap_or_else(|| "default".into());
        let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
        let key: RepeatKey =
            (record.object.uid.clone().unwrap_or_default(), record.kind, record.reason.clone(), record.message.clone());
        let now = Timestamp::now();
        if let Some(s) = sent.get_mut(&key).filter(|s| s.at.elapsed() < REPEAT_WINDOW) {
            s.count += 1;
            let patch = serde_json::json!({"count": s.count, "lastTimestamp": Time(now)});
            match Api::<Event>::namespaced(client.clone(), &s.namespace).patch(&s.name, &patch).await {
                Ok(_) => continue,
                Err(e) => tracing::debug!(event = %s.name, error = %e, "could not update event; creating a new one"),
            }
        }
        if sent.len() >= REMEMBERED {
            sent.retain(|_, s| s.at.elapsed() < REPEAT_WINDOW);
            if sent.len() >= REMEMBERED {
                sent.clear();
            }
        }
        let object_name = record.object.name.clone().unwrap_or_default();
        let name = format!("{object_name}.{:016x}", now.as_nanosecond() as u64);
        let event = Event {
            metadata: ObjectMeta { name: Some(name.clone()), namespace: Some(namespace.clone()), ..Default::default() },
            involved_object: record.object,
            reason: Some(record.reason),
            message: Some(record.message),
            type_: Some(record.kind.as_str().into()),
            source: Some(EventSource { component: Some("kubelet".into()), host: Some(node.clone()) }),
            reporting_component: Some("kubelet".into()),
            reporting_instance: Some(node.clone()),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: Some(MicroTime(now)),
            count: Some(1),
            ..Default::default()
        };
        match api.create(&event).await {
            Ok(_) => {
                sent.insert(key, Sent { namespace, name, count: 1, at: Instant::now() });
            }
            Err(e) => tracing::warn!(event = %name, error = %e, "could not record event"),
        }
    }
}
