//! The NodeRestriction admission plugin
//! (`plugin/pkg/admission/noderestriction/admission.go`): what a kubelet,
//! user `system:node:<name>`, may write, beyond what the Node authorizer
//! lets it ask for — which needs the object, not only the request's
//! attributes.
//!
//! - Its own Node only (create, update, status); it sets no
//!   `node-restriction.kubernetes.io/` label and changes no taint of it.
//! - Its own Lease in `kube-node-lease` only (a create names the Lease in
//!   the body, which the authorizer does not see).
//! - Pods: it creates only mirror pods bound to itself that use no Secret,
//!   ConfigMap, claim or ServiceAccount; it updates (the status of) and
//!   deletes only pods bound to itself.
//!
//! Requests of other users pass. Events are not restricted (kube checks
//! nothing of them either). The requesting user comes from
//! [`super::requesting_user`].

use crate::authz::node::Ref;
use rkube_api::{ApiError, ResourceInfo, Result};
use serde_json::Value;

/// The annotation that marks a mirror pod.
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// The label prefix nodes may not set on themselves.
const RESTRICTED_LABEL_PREFIX: &str = "node-restriction.kubernetes.io/";

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

fn forbidden(info: &ResourceInfo, name: &str, why: &str) -> ApiError {
    ApiError::forbidden_in_group(info.group, info.plural, name, why)
}

/// Refuses the write of a node user without a node name.
fn known(node: &str, info: &ResourceInfo, name: &str) -> Result<()> {
    if node.is_empty() {
        return Err(forbidden(info, name, "could not determine node from user"));
    }
    Ok(())
}

/// Admits the creation of `obj` by `node`.
pub fn admit_create(node: &str, info: &ResourceInfo, namespace: &str, obj: &Value) -> Result<()> {
    let name = str_at(obj, "/metadata/name");
    match info.kind {
        "Pod" => {
            known(node, info, name)?;
            admit_mirror_pod(node, info, obj)
        }
        "Node" => {
            known(node, info, name)?;
            own_node(node, info, name)?;
            let labels = restricted_labels(obj);
            if !labels.is_empty() {
                let why = format!("node {node:?} is not allowed to set the following labels: {}", labels.join(", "));
                return Err(forbidden(info, name, &why));
            }
            Ok(())
        }
        "Lease" => {
            known(node, info, name)?;
            own_lease(node, info, namespace, name)
        }
        _ => Ok(()),
    }
}

/// Admits the update of `old` to `new` by `node`.
pub fn admit_update(node: &str, info: &ResourceInfo, namespace: &str, new: &Value, old: &Value) -> Result<()> {
    let name = str_at(old, "/metadata/name");
    match info.kind {
        "Pod" => {
            known(node, info, name)?;
            if str_at(old, "/spec/nodeName") != node {
                let why = format!("node {node:?} can only update pod status for pods with spec.nodeName set to itself");
                return Err(forbidden(info, name, &why));
            }
            Ok(())
        }
        "Node" => {
            known(node, info, name)?;
            own_node(node, info, name)?;
            let (was, now) = (restricted_label_values(old), restricted_label_values(new));
            let mut changed: Vec<&str> =
                was.iter().chain(&now).filter(|l| !now.contains(l) || !was.contains(l)).map(|(k, _)| *k).collect();
            changed.sort_unstable();
            changed.dedup();
            if !changed.is_empty() {
                let why = format!("node {node:?} is not allowed to modify labels: {}", changed.join(", "));
                return Err(forbidden(info, name, &why));
            }
            if old.pointer("/spec/taints") != new.pointer("/spec/taints") {
                return Err(forbidden(info, name, &format!("node {node:?} is not allowed to modify taints")));
            }
            Ok(())
        }
        "Lease" => {
            known(node, info, name)?;
            own_lease(node, info, namespace, name)
        }
        _ => Ok(()),
    }
}

/// Admits the deletion of `old` by `node`.
pub fn admit_delete(node: &str, info: &ResourceInfo, namespace: &str, old: &Value) -> Result<()> {
    let name = str_at(old, "/metadata/name");
    match info.kind {
        "Pod" => {
            known(node, info, name)?;
            if str_at(old, "/spec/nodeName") != node {
                let why = format!("node {node:?} can only delete pods with spec.nodeName set to itself");
                return Err(forbidden(info, name, &why));
            }
            Ok(())
        }
        "Node" => {
            known(node, info, name)?;
            own_node(node, info, name)
        }
        "Lease" => {
            known(node, info, name)?;
            own_lease(node, info, namespace, name)
        }
        _ => Ok(()),
    }
}

fn own_node(node: &str, info: &ResourceInfo, name: &str) -> Result<()> {
    if name != node {
        return Err(forbidden(info, name, &format!("node {node:?} is not allowed to modify node {name:?}")));
    }
    Ok(())
}

fn own_lease(node: &str, info: &ResourceInfo, namespace: &str, name: &str) -> Result<()> {
    if namespace != crate::authz::node::NODE_LEASE_NAMESPACE {
        let why = format!("can only access leases in the {} namespace", crate::authz::node::NODE_LEASE_NAMESPACE);
        return Err(forbidden(info, name, &why));
    }
    if name != node {
        return Err(forbidden(info, name, "can only access node lease with the same name as the requesting node"));
    }
    Ok(())
}

/// Kube's `admitPodCreate`: a mirror pod of a static pod of this node.
fn admit_mirror_pod(node: &str, info: &ResourceInfo, pod: &Value) -> Result<()> {
    let name = str_at(pod, "/metadata/name");
    let deny = |why: String| Err(forbidden(info, name, &why));
    if pod.pointer(&format!("/metadata/annotations/{}", MIRROR_ANNOTATION.replace('/', "~1"))).is_none() {
        return deny(format!(
            "pod does not have {MIRROR_ANNOTATION:?} annotation, node {node:?} can only create mirror pods"
        ));
    }
    if str_at(pod, "/spec/nodeName") != node {
        return deny(format!("node {node:?} can only create pods with spec.nodeName set to itself"));
    }
    let owners = pod.pointer("/metadata/ownerReferences").and_then(Value::as_array).cloned().unwrap_or_default();
    if owners.len() > 1 {
        return deny(format!("node {node:?} can only create pods with a single owner reference set to itself"));
    }
    if let Some(owner) = owners.first()
        && (str_at(owner, "/kind") != "Node" || str_at(owner, "/name") != node)
    {
        return deny(format!("node {node:?} can only create pods with an owner reference set to itself"));
    }
    if !str_at(pod, "/spec/serviceAccountName").is_empty() {
        return deny(format!("node {node:?} can not create pods that reference a service account"));
    }
    let (_, refs) = crate::authz::node::pod_edges(pod).unwrap_or_default();
    for r in refs {
        let what = match r {
            Ref::Secret(..) => "secrets",
            Ref::ConfigMap(..) => "configmaps",
            Ref::Claim(..) => "persistentvolumeclaims",
            // The default account pod_edges assumes; a named one is refused above.
            Ref::ServiceAccount(..) => continue,
        };
        return deny(format!("node {node:?} can not create pods that reference {what}"));
    }
    Ok(())
}

/// The `node-restriction.kubernetes.io/` labels of `node`.
fn restricted_label_values(node: &Value) -> Vec<(&str, &Value)> {
    let labels = node.pointer("/metadata/labels").and_then(Value::as_object);
    labels
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with(RESTRICTED_LABEL_PREFIX))
        .map(|(k, v)| (k.as_str(), v))
        .collect()
}

fn restricted_labels(node: &Value) -> Vec<&str> {
    restricted_label_values(node).into_iter().map(|(k, _)| k).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rkube_api::resource::lookup;
    use serde_json::json;

    fn info(plural: &str) -> &'static ResourceInfo {
        lookup(plural).unwrap()
    }

    #[test]
    fn nodes_write_only_their_own_node() {
        let n1 = json!({"metadata": {"name": "n1", "labels": {"a": "b"}}});
        let n2 = json!({"metadata": {"name": "n2"}});
        admit_create("n1", info("nodes"), "", &n1).unwrap();
        let e = admit_update("n1", info("nodes"), "", &n2, &n2).unwrap_err();
        assert_eq!(e.message, r#"nodes "n2" is forbidden: node "n1" is not allowed to modify node "n2""#);
        admit_update("n1", info("nodes"), "", &n1, &n1).unwrap();
        let labelled = json!({"metadata": {"name": "n1", "labels": {"node-restriction.kubernetes.io/x": "y"}}});
        assert!(admit_create("n1", info("nodes"), "", &labelled).is_err());
        assert!(admit_update("n1", info("nodes"), "", &labelled, &n1).is_err());
        let tainted = json!({"metadata": {"name": "n1"}, "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}});
        assert!(admit_update("n1", info("nodes"), "", &tainted, &n1).is_err());
        assert!(admit_delete("n1", info("nodes"), "", &n2).is_err());
    }

    #[test]
    fn nodes_write_only_their_own_lease() {
        let lease = |name: &str| json!({"metadata": {"name": name}});
        admit_create("n1", info("leases"), "kube-node-lease", &lease("n1")).unwrap();
        admit_update("n1", info("leases"), "kube-node-lease", &lease("n1"), &lease("n1")).unwrap();
        let e = admit_create("n1", info("leases"), "kube-node-lease", &lease("n2")).unwrap_err();
        assert_eq!(
            e.message,
            r#"leases.coordination.k8s.io "n2" is forbidden: can only access node lease with the same name as the requesting node"#
        );
        assert!(admit_create("n1", info("leases"), "default", &lease("n1")).is_err());
    }

    #[test]
    fn nodes_create_only_their_mirror_pods_and_touch_only_their_pods() {
        let mirror = |node: &str| {
            json!({"metadata": {"name": "m", "annotations": {MIRROR_ANNOTATION: "x"}}, "spec": {"nodeName": node,
                   "containers": [{"name": "c"}]}})
        };
        admit_create("n1", info("pods"), "default", &mirror("n1")).unwrap();
        assert!(admit_create("n1", info("pods"), "default", &mirror("n2")).is_err());
        let plain = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1"}});
        assert!(admit_create("n1", info("pods"), "default", &plain).is_err());
        let mut with_secret = mirror("n1");
        with_secret["spec"]["volumes"] = json!([{"name": "s", "secret": {"secretName": "s"}}]);
        let e = admit_create("n1", info("pods"), "default", &with_secret).unwrap_err();
        assert!(e.message.ends_with("can not create pods that reference secrets"), "{}", e.message);
        let on_n2 = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n2"}});
        let e = admit_delete("n1", info("pods"), "default", &on_n2).unwrap_err();
        assert_eq!(
            e.message,
            r#"pods "p" is forbidden: node "n1" can only delete pods with spec.nodeName set to itself"#
        );
        assert!(admit_update("n1", info("pods"), "default", &on_n2, &on_n2).is_err());
        admit_delete("n2", info("pods"), "default", &on_n2).unwrap();
        admit_update("n2", info("pods"), "default", &on_n2, &on_n2).unwrap();
    }
}
