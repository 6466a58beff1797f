//! Per-kind behaviour: strict decoding into the k8s-openapi type, defaulting
//! and validation, dispatched on the resource's kind.
//!
//! Each kind implements [`Strategy`] (in `crate::strategy`); the generic
//! functions here are what the apiserver calls on every create and update.

use crate::error::{ApiError, Cause, Result};
use crate::manifest::decode_strict;
use crate::resource::ResourceInfo;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    Binding, ConfigMap, Endpoints, Event, LimitRange, Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod,
    ReplicationController, ResourceQuota, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// What a kind does on create and update, beyond the generic metadata rules.
pub trait Strategy: Serialize + DeserializeOwned {
    /// Fills in the defaults Kubernetes applies (restartPolicy Always, ...).
    fn default_fields(&mut self) {}

    /// Checks a new object; each problem is a cause with its field path.
    fn validate(&self) -> Vec<Cause> {
        Vec::new()
    }

    /// Carries over from the stored object what an update may leave out
    /// (a Service's allocated clusterIP and node ports), before validation.
    fn prepare_for_update(&mut self, _old: &Self) {}

    /// Checks an update against the stored object (immutable fields, ...).
    fn validate_update(&self, _old: &Self) -> Vec<Cause> {
        self.validate()
    }
}

/// Runs `$body` with `$t` bound to the k8s-openapi type of `$kind`.
macro_rules! with_kind {
    ($kind:expr, $t:ident => $body:expr, else $other:expr) => {
        match $kind {
            "Namespace" => {
                type $t = Namespace;
                $body
            }
            "Node" => {
                type $t = Node;
                $body
            }
            "Pod" => {
                type $t = Pod;
                $body
            }
            "Service" => {
                type $t = Service;
                $body
            }
            "Endpoints" => {
                type $t = Endpoints;
                $body
            }
            "ReplicationController" => {
                type $t = ReplicationController;
                $body
            }
            "ConfigMap" => {
                type $t = ConfigMap;
                $body
            }
            "Secret" => {
                type $t = Secret;
                $body
            }
            "ServiceAccount" => {
                type $t = ServiceAccount;
                $body
            }
            "Event" => {
                type $t = Event;
                $body
            }
            "PersistentVolume" => {
                type $t = PersistentVolume;
                $body
            }
            "PersistentVolumeClaim" => {
                type $t = PersistentVolumeClaim;
                $body
            }
            "LimitRange" => {
                type $t = LimitRange;
                $body
            }
            "ResourceQuota" => {
                type $t = ResourceQuota;
                $body
            }
            "ReplicaSet" => {
                type $t = ReplicaSet;
                $body
            }
            "Deployment" => {
                type $t = Deployment;
                $body
            }
            "DaemonSet" => {
                type $t = DaemonSet;
                $body
            }
            "Job" => {
                type $t = Job;
                $body
            }
            "HorizontalPodAutoscaler" => {
                type $t = HorizontalPodAutoscaler;
                $body
            }
            "Lease" => {
                type $t = Lease;
                $body
            }
            "EndpointSlice" => {
                type $t = EndpointSlice;
                $body
            }
            "Role" => {
                type $t = Role;
                $body
            }
            "ClusterRole" => {
                type $t = ClusterRole;
                $body
            }
            "RoleBinding" => {
                type $t = RoleBinding;
                $body
            }
            "ClusterRoleBinding" => {
                type $t = ClusterRoleBinding;
                $body
            }
            "Binding" => {
                type $t = Binding;
                $body
            }
            _ => $other,
        }
    };
}

fn what(info: &ResourceInfo) -> String {
    format!("{} in version \"{}\"", info.kind, info.version)
}

/// Makes sure `obj` carries this resource's apiVersion and kind, filling them
/// in when absent and refusing a different kind.
pub fn stamp_type(info: &ResourceInfo, obj: &mut Value) -> Result<()> {
    let map = obj.as_object_mut().ok_or_else(|| ApiError::bad_request("the object is not a JSON object"))?;
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), info.kind.into());
        }
        Some(k) if k == info.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the body's kind \"{k}\" does not match the resource {} (kind \"{}\")",
                info.plural, info.kind
            )));
        }
    }
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), info.api_version.into());
        }
        Some(v) if v == info.api_version => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "the body's apiVersion \"{v}\" does not match the resource {} (apiVersion \"{}\")",
                info.plural, info.api_version
            )));
        }
    }
    Ok(())
}

fn encode<K: Serialize>(k: &K) -> Result<Value> {
    serde_json::to_value(k).map_err(|e| ApiError::internal(format!("encoding object: {e}")))
}

/// Strictly decodes `obj` as its kind, applies defaults and validates it as a
/// new object; returns the canonical JSON to store.
pub fn prepare_create(info: &ResourceInfo, obj: &Value) -> Result<Value> {
    with_kind!(info.kind, T => encode(&create_typed::<T>(info, obj)?),
        else Err(ApiError::bad_request(format!("kind {} cannot be created", info.kind))))
}

/// Like [`prepare_create`], but returns the object's JSON bytes, serialized
/// straight from the typed object (apiVersion, kind and metadata first), for
/// storage without an intermediate JSON tree.
pub fn prepare_create_json(info: &ResourceInfo, obj: &Value) -> Result<Vec<u8>> {
    with_kind!(info.kind, T => serde_json::to_vec(&create_typed::<T>(info, obj)?)
            .map_err(|e| ApiError::internal(format!("encoding object: {e}"))),
        else Err(ApiError::bad_request(format!("kind {} cannot be created", info.kind))))
}

fn create_typed<T: Strategy>(info: &ResourceInfo, obj: &Value) -> Result<T> {
    let mut typed: T = decode_strict(obj, &what(info), info.kind)?;
    typed.default_fields();
    let mut causes = crate::validation::object_meta(obj, info);
    causes.extend(typed.validate());
    finish(info, obj, causes)?;
    Ok(typed)
}

/// Like [`prepare_create`] for an update of `old`: decodes, defaults, and
/// validates the new object against the old one.
pub fn prepare_update(info: &ResourceInfo, obj: &Value, old: &Value) -> Result<Value> {
    with_kind!(info.kind, T => {
        let mut typed: T = decode_strict(obj, &what(info), info.kind)?;
        typed.default_fields();
        let old_typed: T = decode_strict(old, &what(info), info.kind)
            .map_err(|e| ApiError::internal(format!("stored object does not decode: {}", e.message)))?;
        typed.prepare_for_update(&old_typed);
        let mut causes = crate::validation::object_meta(obj, info);
        causes.extend(crate::validation::object_meta_update(obj, old));
        causes.extend(typed.validate_update(&old_typed));
        finish(info, obj, causes)?;
        encode(&typed)
    }, else Err(ApiError::bad_request(format!("kind {} cannot be updated", info.kind))))
}

/// Removes the fields `obj`'s kind does not have; returns their paths (for
/// `fieldValidation` Warn and Ignore).
pub fn drop_unknown_fields(info: &ResourceInfo, obj: &mut Value) -> Vec<String> {
    with_kind!(info.kind, T => crate::manifest::drop_unknown_fields::<T>(obj), else Vec::new())
}

/// Strictly decodes an object as `K` (for example a Binding body).
pub fn decode<K: Strategy>(info: &ResourceInfo, obj: &Value) -> Result<K> {
    decode_strict(obj, &what(info), info.kind)
}

fn finish(info: &ResourceInfo, obj: &Value, causes: Vec<Cause>) -> Result<()> {
    if causes.is_empty() {
        return Ok(());
    }
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    Err(ApiError::invalid(info.kind, name, causes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::lookup;
    use serde_json::json;

    #[test]
    fn create_fills_type_and_refuses_a_different_kind() {
        let pods = lookup("pods").expect("pods");
        let mut v = json!({"metadata": {"name": "a"}});
        stamp_type(pods, &mut v).expect("stamped");
        assert_eq!(v["kind"], "Pod");
        assert_eq!(v["apiVersion"], "v1");
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap"});
        assert!(stamp_type(pods, &mut cm).is_err());
    }

    #[test]
    fn create_refuses_unknown_fields_with_their_path() {
        let pods = lookup("pods").expect("pods");
        let v = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"},
            "spec": {"containers": [{"name": "c", "image": "x", "imagee": "y"}]}});
        let e = prepare_create(pods, &v).expect_err("unknown field");
        assert!(e.message.contains("unknown field \"spec.containers[0].imagee\""), "{}", e.message);
    }
}
