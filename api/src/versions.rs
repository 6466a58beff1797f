//! Other versions of stored kinds, served by conversion: `events.k8s.io/v1`
//! Events are core `v1` Events, and `autoscaling/v1` HorizontalPodAutoscalers
//! are `autoscaling/v2` ones, as in Kubernetes, where both versions share
//! one storage. Objects are stored in the storage version only; a request
//! in another version is converted on the way in and every answer on the
//! way out ([`Version::to_storage`], [`Version::from_storage`]).
//!
//! What the older version cannot say travels in annotations, as Kubernetes
//! does it: an `autoscaling/v1` HPA keeps its `autoscaling/v2` metrics other
//! than CPU utilization, its behavior, its current metrics and its
//! conditions in `autoscaling.alpha.kubernetes.io/{metrics,behavior,
//! current-metrics,conditions}` (as `autoscaling/v2` JSON), so a round trip
//! through v1 loses nothing.

use crate::resource::{RESOURCES, ResourceInfo};
use serde_json::{Map, Value, json};

/// A served version of a stored kind.
#[derive(Debug)]
pub struct Version {
    /// The resource as this version serves it.
    pub info: ResourceInfo,
    /// The storage version's apiVersion (the plural is the same).
    storage_api_version: &'static str,
    to_storage: fn(Value) -> Value,
    from_storage: fn(Value) -> Value,
}

/// The same entry of [`VERSIONS`].
impl PartialEq for Version {
    fn eq(&self, other: &Version) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Version {
    /// The stored resource this version is a view of.
    pub fn storage(&self) -> &'static ResourceInfo {
        RESOURCES
            .iter()
            .find(|r| r.api_version == self.storage_api_version && r.plural == self.info.plural)
            .expect("every served version names a stored resource")
    }

    /// An object of this version as it is stored.
    pub fn to_storage(&self, object: Value) -> Value {
        let mut v = (self.to_storage)(object);
        let storage = self.storage();
        v["apiVersion"] = storage.api_version.into();
        v["kind"] = storage.kind.into();
        v
    }

    /// A stored object as this version shows it.
    pub fn from_storage(&self, object: Value) -> Value {
        let mut v = (self.from_storage)(object);
        v["apiVersion"] = self.info.api_version.into();
        v["kind"] = self.info.kind.into();
        v
    }
}

/// Every version served by conversion.
pub static VERSIONS: &[Version] = &[
    Version {
        info: ResourceInfo {
            group: "events.k8s.io",
            version: "v1",
            api_version: "events.k8s.io/v1",
            kind: "Event",
            plural: "events",
            singular: "event",
            namespaced: true,
            short_names: &["ev"],
            has_status: false,
        },
        storage_api_version: "v1",
        to_storage: event_to_core,
        from_storage: event_from_core,
    },
    Version {
        info: ResourceInfo {
            group: "autoscaling",
            version: "v1",
            api_version: "autoscaling/v1",
            kind: "HorizontalPodAutoscaler",
            plural: "horizontalpodautoscalers",
            singular: "horizontalpodautoscaler",
            namespaced: true,
            short_names: &["hpa"],
            has_status: true,
        },
        storage_api_version: "autoscaling/v2",
        to_storage: hpa_v1_to_v2,
        from_storage: hpa_v2_to_v1,
    },
];

/// Every resource the API serves: the stored ones, then the converted versions.
pub fn all_served() -> impl Iterator<Item = &'static ResourceInfo> {
    RESOURCES.iter().chain(VERSIONS.iter().map(|v| &v.info))
}

/// The version served at `group`/`version`/`plural`, if it is one of [`VERSIONS`].
pub fn served(group: &str, version: &str, plural: &str) -> Option<&'static Version> {
    VERSIONS.iter().find(|v| v.info.group == group && v.info.version == version && v.info.plural == plural)
}

/// Moves `from` to `to` in an object (nothing when `from` is absent).
fn rename(object: &mut Map<String, Value>, from: &str, to: &str) {
    if let Some(v) = object.remove(from) {
        object.insert(to.into(), v);
    }
}

/// events.k8s.io/v1 field ↔ core/v1 field.
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
    ("reportingController", "reportingComponent"),
];

fn event_to_core(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        for (new, old) in EVENT_FIELDS {
            rename(o, new, old);
        }
    }
    v
}

fn event_from_core(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        for (new, old) in EVENT_FIELDS {
            rename(o, old, new);
        }
    }
    v
}

const METRICS: &str = "autoscaling.alpha.kubernetes.io/metrics";
const BEHAVIOR: &str = "autoscaling.alpha.kubernetes.io/behavior";
const CURRENT_METRICS: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
const CONDITIONS: &str = "autoscaling.alpha.kubernetes.io/conditions";

/// Whether a v2 metric (spec or status) is the CPU utilization v1 knows.
fn is_cpu(metric: &Value, value: &str) -> bool {
    metric["type"] == "Resource"
        && metric["resource"]["name"] == "cpu"
        && metric["resource"][value]["averageUtilization"].is_number()
}

fn hpa_v2_to_v1(mut v: Value) -> Value {
    let mut notes = Map::new();
    if let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) {
        let metrics = spec.remove("metrics").and_then(|m| m.as_array().cloned()).unwrap_or_default();
        let (cpu, rest): (Vec<Value>, Vec<Value>) = metrics.into_iter().partition(|m| is_cpu(m, "target"));
        if let Some(cpu) = cpu.first() {
            spec.insert(
                "targetCPUUtilizationPercentage".into(),
                cpu["resource"]["target"]["averageUtilization"].clone(),
            );
        }
        if !rest.is_empty() {
            notes.insert(METRICS.into(), Value::Array(rest));
        }
        if let Some(b) = spec.remove("behavior") {
            notes.insert(BEHAVIOR.into(), b);
        }
    }
    if let Some(status) = v.get_mut("status").and_then(Value::as_object_mut) {
        let current = status.remove("currentMetrics").and_then(|m| m.as_array().cloned()).unwrap_or_default();
        let (cpu, rest): (Vec<Value>, Vec<Value>) = current.into_iter().partition(|m| is_cpu(m, "current"));
        if let Some(cpu) = cpu.first() {
            status.insert(
                "currentCPUUtilizationPercentage".into(),
                cpu["resource"]["current"]["averageUtilization"].clone(),
            );
        }
        if !rest.is_empty() {
            notes.insert(CURRENT_METRICS.into(), Value::Array(rest));
        }
        if let Some(c) = status.remove("conditions").filter(|c| c.as_array().is_some_and(|a| !a.is_empty())) {
            notes.insert(CONDITIONS.into(), c);
        }
    }
    if !notes.is_empty() {
        let annotations = v["metadata"]["annotations"].as_object().cloned().unwrap_or_default();
        let mut annotations = annotations;
        for (k, value) in notes {
            annotations.insert(k, Value::String(value.to_string()));
        }
        v["metadata"]["annotations"] = Value::Object(annotations);
    }
    v
}

fn hpa_v1_to_v2(mut v: Value) -> Value {
    // Annotations written by hpa_v2_to_v1 come back as fields.
    let mut take = |key: &str| -> Option<Value> {
        let annotations = v.pointer_mut("/metadata/annotations")?.as_object_mut()?;
        let text = annotations.remove(key)?;
        serde_json::from_str(text.as_str()?).ok()
    };
    let (more, behavior, current_more, conditions) =
        (take(METRICS), take(BEHAVIOR), take(CURRENT_METRICS), take(CONDITIONS));
    if v.pointer("/metadata/annotations").and_then(Value::as_object).is_some_and(Map::is_empty)
        && let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut)
    {
        meta.remove("annotations");
    }
    if let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) {
        let mut metrics = Vec::new();
        if let Some(target) = spec.remove("targetCPUUtilizationPercentage").filter(|t| !t.is_null()) {
            metrics.push(json!({"type": "Resource",
                "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": target}}}));
        }
        metrics.extend(more.and_then(|m| m.as_array().cloned()).unwrap_or_default());
        if !metrics.is_empty() {
            spec.insert("metrics".into(), Value::Array(metrics));
        }
        if let Some(b) = behavior {
            spec.insert("behavior".into(), b);
        }
    }
    if let Some(status) = v.get_mut("status").and_then(Value::as_object_mut) {
        let mut current = Vec::new();
        if let Some(u) = status.remove("currentCPUUtilizationPercentage").filter(|u| !u.is_null()) {
            current
                .push(json!({"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": u}}}));
        }
        current.extend(current_more.and_then(|m| m.as_array().cloned()).unwrap_or_default());
        if !current.is_empty() {
            status.insert("currentMetrics".into(), Value::Array(current));
        }
        if let Some(c) = conditions {
            status.insert("conditions".into(), c);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_version_names_a_stored_resource() {
        for v in VERSIONS {
            assert_eq!(v.storage().plural, v.info.plural);
            assert_ne!(v.storage().api_version, v.info.api_version);
        }
        assert!(served("events.k8s.io", "v1", "events").is_some());
        assert!(served("autoscaling", "v1", "horizontalpodautoscalers").is_some());
        assert!(served("autoscaling", "v2", "horizontalpodautoscalers").is_none());
    }

    #[test]
    fn events_rename_their_fields_both_ways() {
        let core = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "p"}, "message": "Pulled", "reason": "Pulled",
            "source": {"component": "kubelet"}, "count": 3, "reportingComponent": "kubelet", "type": "Normal"});
        let v = served("events.k8s.io", "v1", "events").unwrap();
        let new = v.from_storage(core.clone());
        assert_eq!(new["apiVersion"], "events.k8s.io/v1");
        assert_eq!(new["regarding"]["name"], "p");
        assert_eq!((new["note"].as_str(), new["deprecatedCount"].as_i64()), (Some("Pulled"), Some(3)));
        assert_eq!(new["reportingController"], "kubelet");
        assert!(new.get("message").is_none() && new.get("involvedObject").is_none());
        assert_eq!(v.to_storage(new), core);
    }

    #[test]
    fn hpa_v1_round_trips_through_v2_without_loss() {
        let v2 = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "h", "namespace": "default"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
                "minReplicas": 1, "maxReplicas": 5,
                "metrics": [
                    {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
                    {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}}
                ],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}},
            "status": {"currentReplicas": 2, "desiredReplicas": 3,
                "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 80}}}],
                "conditions": [{"type": "AbleToScale", "status": "True"}]}});
        let v = served("autoscaling", "v1", "horizontalpodautoscalers").unwrap();
        let v1 = v.from_storage(v2.clone());
        assert_eq!(v1["apiVersion"], "autoscaling/v1");
        assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 50);
        assert_eq!(v1["status"]["currentCPUUtilizationPercentage"], 80);
        assert!(v1["spec"].get("metrics").is_none() && v1["status"].get("conditions").is_none());
        assert!(v1["metadata"]["annotations"][METRICS].as_str().unwrap().contains("memory"));
        assert_eq!(v.to_storage(v1), v2);
    }

    #[test]
    fn a_plain_v1_hpa_becomes_a_cpu_utilization_metric() {
        let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
            "spec": {"scaleTargetRef": {"kind": "ReplicationController", "name": "rc"}, "maxReplicas": 3,
                "targetCPUUtilizationPercentage": 50}});
        let v2 = served("autoscaling", "v1", "horizontalpodautoscalers").unwrap().to_storage(v1);
        assert_eq!(v2["apiVersion"], "autoscaling/v2");
        assert_eq!(
            v2["spec"]["metrics"][0]["resource"]["target"],
            json!({"type": "Utilization", "averageUtilization": 50})
        );
        assert!(v2["metadata"].get("annotations").is_none());
    }
}
