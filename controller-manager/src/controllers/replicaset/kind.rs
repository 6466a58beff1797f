//! What the replica controller needs to know of the two kinds it manages:
//! ReplicationController (v1, a map selector) and ReplicaSet (apps/v1, a
//! label selector). Their statuses have the same shape.

use k8s_openapi::Metadata;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{PodTemplateSpec, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rkube_api::selector::Selector;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A kind that keeps `spec.replicas` copies of `spec.template`.
pub trait ReplicaKind:
    k8s_openapi::Resource + Metadata<Ty = ObjectMeta> + Serialize + DeserializeOwned + Clone + Send + Sync + 'static
{
    /// The controller's name in `--controllers`.
    const CONTROLLER: &'static str;
    /// `source.component` of its Events (Kubernetes' name).
    const COMPONENT: &'static str;
    /// `spec.replicas` (default 1).
    fn replicas(&self) -> i32;
    /// `spec.selector`; an error says what is wrong with it.
    fn selector(&self) -> Result<Selector, String>;
    /// `spec.template`.
    fn template(&self) -> Option<&PodTemplateSpec>;
    /// `spec.minReadySeconds`.
    fn min_ready_seconds(&self) -> i32;
    /// `status`, as JSON (both kinds share its shape).
    fn status_json(&self) -> serde_json::Value;
}

impl ReplicaKind for ReplicationController {
    const CONTROLLER: &'static str = "replication";
    const COMPONENT: &'static str = "replication-controller";

    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }

    fn selector(&self) -> Result<Selector, String> {
        match self.spec.as_ref().and_then(|s| s.selector.as_ref()) {
            Some(map) if !map.is_empty() => Ok(Selector::from_map(map)),
            _ => Err("spec.selector: Required value".into()),
        }
    }

    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref().and_then(|s| s.template.as_ref())
    }

    fn min_ready_seconds(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0)
    }

    fn status_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.status).unwrap_or_default()
    }
}

impl ReplicaKind for ReplicaSet {
    const CONTROLLER: &'static str = "replicaset";
    const COMPONENT: &'static str = "replicaset-controller";

    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }

    fn selector(&self) -> Result<Selector, String> {
        let ls = self.spec.as_ref().map(|s| &s.selector).ok_or("spec.selector: Required value")?;
        let selector = Selector::from_label_selector(ls).map_err(|e| format!("spec.selector: {}", e.message))?;
        if selector.is_empty() {
            return Err("spec.selector: Invalid value: empty selector is invalid for deployment".into());
        }
        Ok(selector)
    }

    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref().and_then(|s| s.template.as_ref())
    }

    fn min_ready_seconds(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0)
    }

    fn status_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.status).unwrap_or_default()
    }
}
