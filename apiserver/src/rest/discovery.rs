//! Legacy discovery (`/api`, `/apis`, `/api/v1`, `/apis/<group>/<version>`),
//! built from the resource table. kubectl falls back to it when the answer
//! is plain `application/json`, and the Python client only knows it.

use crate::authz::review::REVIEW_RESOURCES;
use rkube_api::ResourceInfo;
use rkube_api::metrics::{self, METRICS_RESOURCES};
use rkube_api::versions::all_served;
use serde_json::{Value, json};

/// The verbs of every stored resource.
const VERBS: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

/// Resources kubectl's `get all` shows (Kubernetes' `all` category).
const ALL: &[&str] = &[
    "pods",
    "replicationcontrollers",
    "services",
    "daemonsets",
    "deployments",
    "replicasets",
    "statefulsets",
    "jobs",
    "cronjobs",
    "horizontalpodautoscalers",
];

/// `GET /api`.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// The named groups, each with the versions rkube serves, in table order,
/// then `metrics.k8s.io` (computed, not stored).
fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for r in all_served().chain(REVIEW_RESOURCES.iter().copied()).filter(|r| !r.group.is_empty()) {
        match out.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) if !versions.contains(&r.version) => versions.push(r.version),
            Some(_) => {}
            None => out.push((r.group, vec![r.version])),
        }
    }
    out.push((metrics::GROUP, vec![metrics::VERSION]));
    out
}

fn group_json(group: &str, versions: &[&str]) -> Value {
    let versions: Vec<Value> =
        versions.iter().map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v})).collect();
    json!({
        "name": group,
        "preferredVersion": versions[0].clone(),
        "versions": versions,
    })
}

/// `GET /apis`.
pub fn group_list() -> Value {
    let groups: Vec<Value> = groups().iter().map(|(g, v)| group_json(g, v)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/<group>`, if rkube serves the group.
pub fn group(name: &str) -> Option<Value> {
    let (g, versions) = groups().into_iter().find(|(g, _)| *g == name)?;
    let mut v = group_json(g, &versions);
    v["kind"] = "APIGroup".into();
    v["apiVersion"] = "v1".into();
    Some(v)
}

/// The subresources of a resource: (name, kind, group, version, verbs).
fn subresources(
    info: &ResourceInfo,
) -> Vec<(&'static str, &'static str, &'static str, &'static str, &'static [&'static str])> {
    const GET_UPDATE: &[&str] = &["get", "patch", "update"];
    let mut out = Vec::new();
    if info.has_status {
        out.push(("status", info.kind, "", "", GET_UPDATE));
    }
    if rkube_api::scale::has_scale(info) {
        out.push(("scale", "Scale", "autoscaling", "v1", GET_UPDATE));
    }
    if info.kind == "Pod" {
        out.push(("binding", "Binding", "", "", &["create"][..]));
        out.push(("eviction", "Eviction", "policy", "v1", &["create"][..]));
        out.push(("exec", "PodExecOptions", "", "", &["create", "get"][..]));
        out.push(("log", "Pod", "", "", &["get"][..]));
    }
    if info.kind == "ServiceAccount" {
        out.push(("token", "TokenRequest", "authentication.k8s.io", "v1", &["create"][..]));
    }
    out
}

/// `GET /apis/metrics.k8s.io/v1beta1`: read-only resources.
fn metrics_resource_list() -> Value {
    let resources: Vec<Value> = METRICS_RESOURCES
        .iter()
        .map(|r| {
            json!({
                "name": r.plural,
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": ["get", "list"],
            })
        })
        .collect();
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": metrics::API_VERSION,
        "resources": resources,
    })
}

/// `GET /api/v1` or `GET /apis/<group>/<version>`, if rkube serves it.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    if (group, version) == (metrics::GROUP, metrics::VERSION) {
        return Some(metrics_resource_list());
    }
    let mut resources = Vec::new();
    for review in REVIEW_RESOURCES.iter().filter(|r| r.group == group && r.version == version) {
        resources.push(json!({
            "name": review.plural,
            "singularName": review.singular,
            "namespaced": review.namespaced,
            "kind": review.kind,
            "verbs": ["create"],
        }));
    }
    for info in all_served().filter(|r| r.group == group && r.version == version) {
        let mut r = json!({
            "name": info.plural,
            "singularName": info.singular,
            "namespaced": info.namespaced,
            "kind": info.kind,
            "verbs": VERBS,
        });
        if !info.short_names.is_empty() {
            r["shortNames"] = json!(info.short_names);
        }
        if ALL.contains(&info.plural) {
            r["categories"] = json!(["all"]);
        }
        resources.push(r);
        for (sub, kind, g, v, verbs) in subresources(info) {
            let mut s = json!({
                "name": format!("{}/{sub}", info.plural),
                "singularName": "",
                "namespaced": info.namespaced,
                "kind": kind,
                "verbs": verbs,
            });
            if !g.is_empty() {
                s["group"] = g.into();
                s["version"] = v.into();
            }
            resources.push(s);
        }
    }
    if resources.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_resources_carry_what_kubectl_and_python_need() {
        let list = resource_list("", "v1").unwrap();
        let pods = list["resources"].as_array().unwrap().iter().find(|r| r["name"] == "pods").unwrap();
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
        assert_eq!(pods["singularName"], "pod");
        assert_eq!(pods["namespaced"], true);
        assert!(pods["verbs"].as_array().unwrap().iter().any(|v| v == "watch"));
        let names: Vec<&str> =
            list["resources"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
        for sub in ["pods/log", "pods/exec", "pods/status", "replicationcontrollers/scale", "nodes"] {
            assert!(names.contains(&sub), "{sub} missing from {names:?}");
        }
        let scale =
            list["resources"].as_array().unwrap().iter().find(|r| r["name"] == "replicationcontrollers/scale").unwrap();
        assert_eq!((scale["group"].as_str(), scale["kind"].as_str()), (Some("autoscaling"), Some("Scale")));
        assert_eq!(scale["singularName"], "");
    }

    #[test]
    fn groups_list_every_named_group_with_a_preferred_version_among_its_versions() {
        let list = group_list();
        let groups = list["groups"].as_array().unwrap();
        let apps = groups.iter().find(|g| g["name"] == "apps").unwrap();
        assert_eq!(apps["preferredVersion"]["groupVersion"], "apps/v1");
        assert!(apps["versions"].as_array().unwrap().contains(&apps["preferredVersion"]));
        assert!(groups.iter().all(|g| g["name"] != ""));
        assert!(group("apps").is_some() && group("nope.example").is_none());
        assert!(
            resource_list("apps", "v1").unwrap()["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["name"] == "deployments")
        );
        assert!(resource_list("apps", "v9").is_none());
    }

    #[test]
    fn rbac_and_access_reviews_are_discoverable() {
        let list = group_list();
        let groups = list["groups"].as_array().unwrap();
        for g in ["rbac.authorization.k8s.io", "authorization.k8s.io"] {
            assert!(groups.iter().any(|x| x["name"] == g), "{g} missing");
        }
        let rbac = resource_list("rbac.authorization.k8s.io", "v1").unwrap();
        let names: Vec<&str> =
            rbac["resources"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["clusterrolebindings", "clusterroles", "rolebindings", "roles"]);
        let reviews = resource_list("authorization.k8s.io", "v1").unwrap();
        let reviews = reviews["resources"].as_array().unwrap();
        let ssar = reviews.iter().find(|r| r["name"] == "selfsubjectaccessreviews").unwrap();
        assert_eq!(ssar["verbs"], json!(["create"]));
        assert_eq!(
            (ssar["kind"].as_str(), ssar["namespaced"].as_bool()),
            (Some("SelfSubjectAccessReview"), Some(false))
        );
        assert!(reviews.iter().any(|r| r["name"] == "subjectaccessreviews"));
    }

    #[test]
    fn metrics_group_serves_node_and_pod_metrics_read_only() {
        let list = group_list();
        let metrics = list["groups"].as_array().unwrap().iter().find(|g| g["name"] == "metrics.k8s.io").unwrap();
        assert_eq!(metrics["preferredVersion"]["groupVersion"], "metrics.k8s.io/v1beta1");
        assert_eq!(group("metrics.k8s.io").unwrap()["kind"], "APIGroup");
        let resources = resource_list("metrics.k8s.io", "v1beta1").unwrap();
        assert_eq!(resources["groupVersion"], "metrics.k8s.io/v1beta1");
        let r = resources["resources"].as_array().unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0]["name"].as_str(), r[0]["kind"].as_str(), r[0]["namespaced"].as_bool()),
            (Some("nodes"), Some("NodeMetrics"), Some(false))
        );
        assert_eq!(
            (r[1]["name"].as_str(), r[1]["kind"].as_str(), r[1]["namespaced"].as_bool()),
            (Some("pods"), Some("PodMetrics"), Some(true))
        );
        assert_eq!(r[1]["verbs"], json!(["get", "list"]));
    }
}
