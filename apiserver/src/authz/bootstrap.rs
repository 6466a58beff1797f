//! The default roles and bindings, after kube-apiserver's bootstrap policy
//! (`plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go`), created at
//! start when missing. Objects that exist are left alone, edited or not.
//!
//! Differences from Kubernetes, on purpose:
//!
//! - `admin`, `edit` and `view` carry their rules themselves instead of
//!   aggregating `system:aggregate-to-*` roles (no controller aggregates
//!   here); the rules are those the aggregation gives in Kubernetes.
//! - `system:kube-controller-manager` is one wide role instead of one role
//!   per controller: read and write in every group the rkube controllers use
//!   (see `controller-manager/src/controllers/`: the garbage collector and
//!   the namespace controller delete anything, the workload controllers
//!   write pods, ReplicaSets, Endpoints, EndpointSlices, ServiceAccounts and
//!   statuses, leader election a Lease).
//! - `system:node` has the rules rkubelet needs (see [`node_rules`]); as in
//!   Kubernetes, its binding names no subject: the Node authorizer
//!   ([`super::node`]) grants kubelets these rules. A cluster bootstrapped
//!   before keeps its binding to `system:nodes` (existing objects are left
//!   alone): delete its subjects to confine nodes to their own objects.
//! - The scheduler's and the controller manager's leader-election Leases
//!   are named `default-scheduler` and `rkube-controller-manager` here.

use crate::registry::Registry;
use rkube_api::resource::lookup;
use rkube_api::{Reason, Result};
use serde_json::{Value, json};
use tracing::info;

const RBAC_API_VERSION: &str = "rbac.authorization.k8s.io/v1";
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// The label of every bootstrap object.
pub const BOOTSTRAPPING_LABEL: (&str, &str) = ("kubernetes.io/bootstrapping", "rbac-defaults");
/// The annotation saying the apiserver may reconcile the object.
pub const AUTOUPDATE_ANNOTATION: (&str, &str) = ("rbac.authorization.kubernetes.io/autoupdate", "true");

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "update", "patch", "delete", "deletecollection"];
const READ_WRITE: &[&str] = &["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"];

/// A resource rule.
fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Value {
    json!({"verbs": verbs, "apiGroups": groups, "resources": resources})
}

/// A resource rule limited to named objects.
fn named(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> Value {
    json!({"verbs": verbs, "apiGroups": groups, "resources": resources, "resourceNames": names})
}

/// A non-resource rule.
fn urls(verbs: &[&str], urls: &[&str]) -> Value {
    json!({"verbs": verbs, "nonResourceURLs": urls})
}

/// Kubernetes' `eventsRule()`.
fn events_rule() -> Value {
    rule(&["create", "update", "patch"], &["", "events.k8s.io"], &["events"])
}

fn metadata(name: &str) -> Value {
    json!({
        "name": name,
        "labels": {BOOTSTRAPPING_LABEL.0: BOOTSTRAPPING_LABEL.1},
        "annotations": {AUTOUPDATE_ANNOTATION.0: AUTOUPDATE_ANNOTATION.1},
    })
}

fn cluster_role(name: &str, rules: Vec<Value>) -> Value {
    json!({"apiVersion": RBAC_API_VERSION, "kind": "ClusterRole", "metadata": metadata(name), "rules": rules})
}

/// A subject: `User`, `Group` or `ServiceAccount` (`namespace/name`).
fn subject(kind: &str, name: &str) -> Value {
    match (kind, name.split_once('/')) {
        ("ServiceAccount", Some((ns, name))) => json!({"kind": kind, "name": name, "namespace": ns}),
        _ => json!({"kind": kind, "name": name, "apiGroup": RBAC_GROUP}),
    }
}

fn cluster_role_binding(name: &str, subjects: Vec<Value>) -> Value {
    json!({
        "apiVersion": RBAC_API_VERSION,
        "kind": "ClusterRoleBinding",
        "metadata": metadata(name),
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": name},
        "subjects": subjects,
    })
}

/// `system:aggregate-to-view`'s rules: read access to what a namespace
/// holds, secrets and escalating subresources excepted.
fn view_rules() -> Vec<Value> {
    vec![
        rule(
            READ,
            &[""],
            &[
                "pods",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/status",
                "endpoints",
                "persistentvolumeclaims",
                "persistentvolumeclaims/status",
                "configmaps",
            ],
        ),
        rule(
            READ,
            &[""],
            &[
                "limitranges",
                "resourcequotas",
                "bindings",
                "events",
                "pods/status",
                "resourcequotas/status",
                "namespaces/status",
                "replicationcontrollers/status",
                "pods/log",
            ],
        ),
        // Reading namespaces at namespace scope means reading *this* one.
        rule(READ, &[""], &["namespaces"]),
        rule(READ, &["discovery.k8s.io"], &["endpointslices"]),
        rule(
            READ,
            &["apps"],
            &[
                "controllerrevisions",
                "statefulsets",
                "statefulsets/status",
                "statefulsets/scale",
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/status",
                "deployments/scale",
                "replicasets",
                "replicasets/status",
                "replicasets/scale",
            ],
        ),
        rule(READ, &["autoscaling"], &["horizontalpodautoscalers", "horizontalpodautoscalers/status"]),
        rule(READ, &["batch"], &["jobs", "cronjobs", "cronjobs/status", "jobs/status"]),
        rule(
            READ,
            &["extensions"],
            &[
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/scale",
                "deployments/status",
                "ingresses",
                "ingresses/status",
                "replicasets",
                "replicasets/scale",
                "replicasets/status",
                "replicationcontrollers/scale",
                "networkpolicies",
            ],
        ),
        rule(READ, &["policy"], &["poddisruptionbudgets", "poddisruptionbudgets/status"]),
        rule(READ, &["networking.k8s.io"], &["networkpolicies", "ingresses", "ingresses/status"]),
    ]
}

/// `system:aggregate-to-edit`'s rules: writing what a namespace holds.
fn edit_only_rules() -> Vec<Value> {
    vec![
        rule(READ, &[""], &["pods/attach", "pods/proxy", "pods/exec", "pods/portforward", "secrets", "services/proxy"]),
        rule(&["impersonate"], &[""], &["serviceaccounts"]),
        rule(WRITE, &[""], &["pods", "pods/attach", "pods/proxy", "pods/exec", "pods/portforward"]),
        rule(&["create"], &[""], &["pods/eviction"]),
        rule(
            WRITE,
            &[""],
            &[
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/proxy",
                "persistentvolumeclaims",
                "configmaps",
                "secrets",
                "events",
            ],
        ),
        rule(&["create"], &[""], &["serviceaccounts/token"]),
        rule(
            WRITE,
            &["apps"],
            &[
                "statefulsets",
                "statefulsets/scale",
                "daemonsets",
                "deployments",
                "deployments/scale",
                "deployments/rollback",
                "replicasets",
                "replicasets/scale",
            ],
        ),
        rule(WRITE, &["autoscaling"], &["horizontalpodautoscalers"]),
        rule(WRITE, &["batch"], &["jobs", "cronjobs"]),
        rule(
            WRITE,
            &["extensions"],
            &[
                "daemonsets",
                "deployments",
                "deployments/scale",
                "deployments/rollback",
                "ingresses",
                "replicasets",
                "replicasets/scale",
                "replicationcontrollers/scale",
                "networkpolicies",
            ],
        ),
        rule(WRITE, &["policy"], &["poddisruptionbudgets"]),
        rule(WRITE, &["networking.k8s.io"], &["networkpolicies", "ingresses"]),
        rule(READ_WRITE, &["coordination.k8s.io"], &["leases"]),
    ]
}

/// `system:aggregate-to-admin`'s rules: granting access within a namespace.
fn admin_only_rules() -> Vec<Value> {
    vec![
        rule(&["create"], &["authorization.k8s.io"], &["localsubjectaccessreviews"]),
        rule(READ_WRITE, &[RBAC_GROUP], &["roles", "rolebindings"]),
    ]
}

/// What rkubelet reads and writes (Kubernetes' `NodeRules`, without what
/// rkube does not serve, plus `delete` of pods for the final deletion and
/// list/watch of the objects it caches).
pub(crate) fn node_rules() -> Vec<Value> {
    vec![
        rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
        rule(&["create"], &["authorization.k8s.io"], &["subjectaccessreviews", "localsubjectaccessreviews"]),
        rule(READ, &[""], &["services"]),
        rule(&["create", "get", "list", "watch"], &[""], &["nodes"]),
        rule(&["update", "patch"], &[""], &["nodes/status"]),
        rule(&["update", "patch"], &[""], &["nodes"]),
        rule(&["create", "update", "patch"], &[""], &["events"]),
        rule(READ, &[""], &["pods"]),
        rule(&["create", "delete"], &[""], &["pods"]),
        rule(&["update", "patch"], &[""], &["pods/status"]),
        rule(&["create"], &[""], &["pods/eviction"]),
        rule(READ, &[""], &["secrets", "configmaps"]),
        rule(READ, &[""], &["persistentvolumeclaims", "persistentvolumes"]),
        rule(&["get"], &[""], &["endpoints"]),
        rule(&["get", "create", "update", "patch", "delete"], &["coordination.k8s.io"], &["leases"]),
        rule(&["create"], &[""], &["serviceaccounts/token"]),
        rule(&["get", "update", "patch"], &[""], &["persistentvolumeclaims/status"]),
    ]
}

/// The bootstrap ClusterRoles.
pub fn cluster_roles() -> Vec<Value> {
    let view = view_rules();
    let edit: Vec<Value> = edit_only_rules().into_iter().chain(view.iter().cloned()).collect();
    let admin: Vec<Value> = admin_only_rules().into_iter().chain(edit.iter().cloned()).collect();
    vec![
        cluster_role("cluster-admin", vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])]),
        cluster_role(
            "system:discovery",
            vec![urls(
                &["get"],
                &[
                    "/livez",
                    "/readyz",
                    "/healthz",
                    "/version",
                    "/version/",
                    "/openapi",
                    "/openapi/*",
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                ],
            )],
        ),
        cluster_role(
            "system:monitoring",
            vec![urls(
                &["get"],
                &["/metrics", "/metrics/slis", "/livez", "/readyz", "/healthz", "/livez/*", "/readyz/*", "/healthz/*"],
            )],
        ),
        cluster_role(
            "system:basic-user",
            vec![
                rule(&["create"], &["authorization.k8s.io"], &["selfsubjectaccessreviews", "selfsubjectrulesreviews"]),
                rule(&["create"], &["authentication.k8s.io"], &["selfsubjectreviews"]),
            ],
        ),
        cluster_role(
            "system:public-info-viewer",
            vec![urls(&["get"], &["/livez", "/readyz", "/healthz", "/version", "/version/"])],
        ),
        cluster_role("admin", admin),
        cluster_role("edit", edit),
        cluster_role("view", view),
        cluster_role("system:node", node_rules()),
        cluster_role(
            "system:node-proxier",
            vec![
                rule(&["list", "watch"], &[""], &["services", "endpoints"]),
                rule(READ, &[""], &["nodes"]),
                events_rule(),
                rule(&["list", "watch"], &["discovery.k8s.io"], &["endpointslices"]),
            ],
        ),
        cluster_role(
            "system:kube-scheduler",
            vec![
                events_rule(),
                rule(&["create"], &["coordination.k8s.io"], &["leases"]),
                named(
                    &["get", "update"],
                    &["coordination.k8s.io"],
                    &["leases"],
                    &["kube-scheduler", "default-scheduler"],
                ),
                rule(READ, &[""], &["nodes"]),
                rule(&["get", "list", "watch", "delete"], &[""], &["pods"]),
                rule(&["create"], &[""], &["pods/binding", "bindings"]),
                rule(&["patch", "update"], &[""], &["pods/status"]),
                rule(READ, &[""], &["services", "replicationcontrollers"]),
                rule(READ, &["apps", "extensions"], &["replicasets"]),
                rule(READ, &["apps"], &["statefulsets"]),
                rule(READ, &["policy"], &["poddisruptionbudgets"]),
                rule(READ, &[""], &["persistentvolumeclaims", "persistentvolumes"]),
                rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                rule(&["create"], &["authorization.k8s.io"], &["subjectaccessreviews"]),
                rule(READ, &["storage.k8s.io"], &["csinodes"]),
                rule(READ, &[""], &["namespaces"]),
                rule(READ, &["storage.k8s.io"], &["csidrivers"]),
                rule(READ, &["storage.k8s.io"], &["csistoragecapacities"]),
            ],
        ),
        cluster_role(
            "system:kube-controller-manager",
            vec![
                events_rule(),
                rule(&["create"], &["coordination.k8s.io"], &["leases"]),
                named(
                    &["get", "update"],
                    &["coordination.k8s.io"],
                    &["leases"],
                    &["kube-controller-manager", "rkube-controller-manager"],
                ),
                rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                rule(&["create"], &["authorization.k8s.io"], &["subjectaccessreviews"]),
                // Every shared informer.
                rule(&["list", "watch"], &["*"], &["*"]),
                // rkube runs its controllers under this one identity (not
                // one service account each): what they all write, together.
                rule(
                    READ_WRITE,
                    &[
                        "",
                        "apps",
                        "batch",
                        "autoscaling",
                        "discovery.k8s.io",
                        "coordination.k8s.io",
                        "events.k8s.io",
                        "policy",
                    ],
                    &["*"],
                ),
                // The garbage collector and the namespace controller delete anything.
                rule(&["get", "list", "watch", "patch", "update", "delete", "deletecollection"], &["*"], &["*"]),
            ],
        ),
        cluster_role(
            "system:kube-dns",
            vec![
                rule(&["list", "watch"], &[""], &["endpoints", "services"]),
                rule(&["list", "watch"], &["discovery.k8s.io"], &["endpointslices"]),
            ],
        ),
    ]
}

/// The service account rkube-dns runs as (`deploy/addons/dns.yaml`).
pub const KUBE_DNS_SERVICE_ACCOUNT: &str = "kube-system/kube-dns";

/// The bootstrap ClusterRoleBindings, each named after its ClusterRole.
pub fn cluster_role_bindings() -> Vec<Value> {
    vec![
        cluster_role_binding("cluster-admin", vec![subject("Group", "system:masters")]),
        cluster_role_binding("system:monitoring", vec![subject("Group", "system:monitoring")]),
        cluster_role_binding("system:discovery", vec![subject("Group", "system:authenticated")]),
        cluster_role_binding("system:basic-user", vec![subject("Group", "system:authenticated")]),
        cluster_role_binding(
            "system:public-info-viewer",
            vec![subject("Group", "system:authenticated"), subject("Group", "system:unauthenticated")],
        ),
        cluster_role_binding("system:node-proxier", vec![subject("User", "system:kube-proxy")]),
        cluster_role_binding("system:kube-controller-manager", vec![subject("User", "system:kube-controller-manager")]),
        cluster_role_binding("system:kube-scheduler", vec![subject("User", "system:kube-scheduler")]),
        // As Kubernetes (≥ 1.8): the binding names nobody; the Node
        // authorizer grants kubelets the role's rules, and the objects
        // (Secrets, ConfigMaps, volumes) only those their pods use.
        cluster_role_binding("system:node", vec![]),
        cluster_role_binding("system:kube-dns", vec![subject("ServiceAccount", KUBE_DNS_SERVICE_ACCOUNT)]),
    ]
}

/// Creates the bootstrap ClusterRoles and ClusterRoleBindings that are
/// missing; returns how many it created.
pub async fn ensure(registry: &Registry) -> Result<usize> {
    let roles = lookup("clusterroles").expect("clusterroles are in the table");
    let bindings = lookup("clusterrolebindings").expect("clusterrolebindings are in the table");
    let mut created = 0;
    for (info, objects) in [(roles, cluster_roles()), (bindings, cluster_role_bindings())] {
        for obj in objects {
            match registry.create(info, "", obj.to_string().as_bytes(), false).await {
                Ok(_) => created += 1,
                Err(e) if e.reason == Reason::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
    }
    if created > 0 {
        info!(created, "created the bootstrap RBAC policy");
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rkube_api::kinds::prepare_create;

    #[test]
    fn every_bootstrap_object_is_valid_and_labelled() {
        let roles = lookup("clusterroles").expect("clusterroles");
        let bindings = lookup("clusterrolebindings").expect("clusterrolebindings");
        let role_names: Vec<String> =
            cluster_roles().iter().map(|r| r["metadata"]["name"].as_str().unwrap().into()).collect();
        for (info, objects) in [(roles, cluster_roles()), (bindings, cluster_role_bindings())] {
            for obj in objects {
                let stored =
                    prepare_create(info, &obj).unwrap_or_else(|e| panic!("{}: {}", obj["metadata"]["name"], e.message));
                assert_eq!(stored["metadata"]["labels"]["kubernetes.io/bootstrapping"], "rbac-defaults");
                assert_eq!(stored["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"], "true");
                if info.kind == "ClusterRoleBinding" {
                    let role = stored["roleRef"]["name"].as_str().unwrap();
                    assert!(role_names.iter().any(|n| n == role), "{role} is bound but not bootstrapped");
                }
            }
        }
        for name in [
            "cluster-admin",
            "admin",
            "edit",
            "view",
            "system:basic-user",
            "system:discovery",
            "system:public-info-viewer",
            "system:kube-scheduler",
            "system:kube-controller-manager",
            "system:node-proxier",
            "system:node",
            "system:kube-dns",
        ] {
            assert!(role_names.iter().any(|n| n == name), "{name} missing");
        }
    }
}
