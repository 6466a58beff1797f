//! Events about objects, as `kubectl describe` shows them (like client-go's
//! `record.EventRecorder`).
//!
//! A repeat of the same event (same object, type, reason and message) bumps
//! the `count` and `lastTimestamp` of the Event already written instead of
//! writing a new one, so a controller that retries every few seconds leaves
//! one Event, not thousands. Recording never fails the caller: a failed
//! write is logged.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use rkube_client::{Api, Client, Reason};
use std::collections::HashMap;
use std::sync::Mutex;

/// Kubernetes' event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Something expected happened.
    Normal,
    /// Something needs attention.
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

/// How many distinct events are remembered for aggregation.
const MAX_REMEMBERED: usize = 4096;

/// The aggregation key: object, type, reason, message.
type EventKey = (String, String, String, String, &'static str, String, String);

/// Writes Events on behalf of one component.
#[derive(Debug)]
pub struct EventRecorder {
    client: Client,
    component: String,
    instance: String,
    /// Event already written for a key: its namespace, name and count.
    written: Mutex<HashMap<EventKey, (String, String, i32)>>,
}

/// The current time (k8s-openapi's jiff is built without `std`, so no `Timestamp::now`).
fn now() -> Time {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let micros = i64::try_from(since_epoch.as_micros()).unwrap_or(i64::MAX);
    Time(Timestamp::from_microsecond(micros).unwrap_or(Timestamp::MAX))
}

impl EventRecorder {
    /// A recorder whose Events name `component` as their source
    /// (`source.component`) and `instance` (this process) as reporter.
    pub fn new(client: Client, component: &str, instance: &str) -> Self {
        EventRecorder {
            client,
            component: component.to_string(),
            instance: instance.to_string(),
            written: Mutex::new(HashMap::new()),
        }
    }

    /// Records an event about `object`. Events about cluster-scoped objects
    /// (nodes) go to the `default` namespace, as in Kubernetes.
    pub async fn record(&self, object: &ObjectReference, kind: EventType, reason: &str, message: &str) {
        let namespace = object.namespace.clone().filter(|ns| !ns.is_empty()).unwrap_or_else(|| "default".into());
        let key: EventKey = (
            namespace.clone(),
            object.kind.clone().unwrap_or_default(),
            object.name.clone().unwrap_or_default(),
            object.uid.clone().unwrap_or_default(),
            kind.as_str(),
            reason.to_string(),
            message.to_string(),
        );
        let earlier = self.lock().get(&key).cloned();
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        if let Some((ns, name, count)) = earlier {
            let patch = serde_json::json!({ "count": count + 1, "lastTimestamp": now() });
            match api.patch(&name, &patch).await {
                Ok(_) => {
                    self.lock().insert(key, (ns, name, count + 1));
                    return;
                }
                Err(e) if e.reason == Reason::NotFound => {}
                Err(e) => {
                    tracing::warn!(event = %name, reason, error = %e, "could not update event");
                    return;
                }
            }
        }
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let name = format!("{}.{nanos:x}", object.name.as_deref().unwrap_or("unknown"));
        let event = Event {
            metadata: ObjectMeta { name: Some(name.clone()), namespace: Some(namespace.clone()), ..Default::default() },
            involved_object: object.clone(),
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
            type_: Some(kind.as_str().to_string()),
            source: Some(EventSource { component: Some(self.component.clone()), host: None }),
            first_timestamp: Some(now()),
            last_timestamp: Some(now()),
            count: Some(1),
            reporting_component: Some("rkube-controller-manager".into()),
            reporting_instance: Some(self.instance.clone()),
            ..Default::default()
        };
        match api.create(&event).await {
            Ok(_) => {
                let mut written = self.lock();
                if written.len() >= MAX_REMEMBERED {
                    written.clear();
                }
                written.insert(key, (namespace, name, 1));
            }
            Err(e) => tracing::warn!(event = %name, reason, error = %e, "could not write event"),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<EventKey, (String, String, i32)>> {
        self.written.lock().unwrap_or_else(|p| p.into_inner())
    }
}
