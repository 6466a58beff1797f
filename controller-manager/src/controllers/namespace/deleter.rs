//! Deleting everything in a namespace through the API (Kubernetes'
//! `namespaced_resources_deleter.go`), so that finalizers, graceful pod
//! deletion and the garbage collector all have their say.
//!
//! Every namespaced kind of [`RESOURCES`] is listed and each object not yet
//! being deleted is deleted (background propagation, the pod's own grace
//! period), several at once; the apiserver has no `deletecollection`, so
//! this is Kubernetes' list-and-delete fallback. A second list says what
//! is left. Pods go first, as with Kubernetes' `OrderedNamespaceDeletion`:
//! while any pod remains the other kinds are left alone, so the ConfigMaps,
//! Secrets and Services of a terminating pod outlive it.

use futures::StreamExt;
use rkube_api::ResourceInfo;
use rkube_api::resource::RESOURCES;
use rkube_client::{Client, DeleteParams, ListParams, Reason};
use serde_json::Value;
use std::collections::BTreeMap;

/// How many deletes of one namespace are in flight at once.
pub const DELETE_CONCURRENCY: usize = 32;

/// What Kubernetes waits for an object held by finalizers before it looks
/// again (`finalizerEstimateSeconds`).
pub const FINALIZER_ESTIMATE_SECONDS: i64 = 15;

/// What one pass over a namespace's content found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Content {
    /// Objects still there after the pass, by `resource.group` (`pods.`,
    /// `replicasets.apps`), as Kubernetes' conditions name them.
    pub remaining: BTreeMap<String, usize>,
    /// How many of the objects still there each finalizer holds.
    pub finalizers: BTreeMap<String, usize>,
    /// What failed: a list or a delete refused, or objects left that nothing
    /// explains (no finalizer, no grace period).
    pub errors: Vec<String>,
    /// Seconds until what is left should be gone: the longest grace period
    /// of the remaining pods, or [`FINALIZER_ESTIMATE_SECONDS`] when
    /// finalizers hold objects.
    pub estimate_seconds: i64,
}

impl Content {
    /// Whether nothing is left and nothing failed: the namespace may go.
    pub fn is_empty(&self) -> bool {
        self.remaining.is_empty() && self.errors.is_empty()
    }
}

/// The name Kubernetes' conditions give a resource: `resource.group`.
pub fn group_resource(info: &ResourceInfo) -> String {
    format!("{}.{}", info.plural, info.group)
}

/// Go's `%v` of a GroupVersionResource: `apps/v1, Resource=replicasets`.
fn gvr(info: &ResourceInfo) -> String {
    format!("{}/{}, Resource={}", info.group, info.version, info.plural)
}

/// The namespaced kinds, pods first.
fn namespaced_kinds() -> (&'static ResourceInfo, Vec<&'static ResourceInfo>) {
    let pods = RESOURCES.iter().find(|r| r.kind == "Pod").expect("pods are in the table");
    let rest = RESOURCES.iter().filter(|r| r.namespaced && r.kind != "Pod").collect();
    (pods, rest)
}

/// Deletes what `namespace` holds and reports what is left; see the module docs.
pub async fn delete_all_content(client: &Client, namespace: &str) -> Content {
    let mut content = Content::default();
    let (pods, rest) = namespaced_kinds();
    delete_kind(client, pods, namespace, &mut content).await;
    if !content.is_empty() {
        return content;
    }
    for info in rest {
        delete_kind(client, info, namespace, &mut content).await;
    }
    content
}

/// One object as a list returns it: the fields the deleter reads.
struct Item {
    name: String,
    deleting: bool,
    finalizers: Vec<String>,
    /// For a pod that has not finished: the grace period it is (or will be)
    /// given.
    grace: Option<i64>,
}

impl Item {
    fn of(info: &ResourceInfo, name: String, json: &[u8]) -> Item {
        let v: Value = serde_json::from_slice(json).unwrap_or_default();
        let meta = &v["metadata"];
        let finalizers = meta["finalizers"].as_array().into_iter().flatten();
        let phase = v.pointer("/status/phase").and_then(Value::as_str).unwrap_or_default();
        let grace = (info.kind == "Pod" && !matches!(phase, "Succeeded" | "Failed")).then(|| {
            meta["deletionGracePeriodSeconds"]
                .as_i64()
                .or_else(|| v.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64))
                .unwrap_or(30)
        });
        Item {
            name,
            deleting: meta["deletionTimestamp"].is_string(),
            finalizers: finalizers.filter_map(Value::as_str).map(String::from).collect(),
            grace,
        }
    }
}

async fn list(client: &Client, info: &ResourceInfo, namespace: &str) -> Result<Vec<Item>, String> {
    let list = client.list(info, namespace, &ListParams::default()).await.map_err(|e| e.message)?;
    Ok(list.items.into_iter().map(|o| Item::of(info, o.name, &o.json)).collect())
}

/// Deletes one object (background propagation, its own grace period); one
/// already gone is fine.
async fn delete_one(
    client: Client,
    info: &'static ResourceInfo,
    namespace: String,
    name: String,
) -> Result<(), String> {
    let params = DeleteParams { propagation_policy: Some("Background".into()), ..Default::default() };
    match client.delete(info, &namespace, &name, &params).await {
        Ok(_) => Ok(()),
        Err(e) if e.reason == Reason::NotFound => Ok(()),
        Err(e) => Err(e.message),
    }
}

/// Deletes every object of `info` in `namespace` and adds what is left to `content`.
async fn delete_kind(client: &Client, info: &'static ResourceInfo, namespace: &str, content: &mut Content) {
    let items = match list(client, info, namespace).await {
        Ok(items) => items,
        Err(e) => return content.errors.push(e),
    };
    if items.is_empty() {
        return;
    }
    let names: Vec<String> = items.into_iter().filter(|i| !i.deleting).map(|i| i.name).collect();
    let deletes = names.into_iter().map(|name| delete_one(client.clone(), info, namespace.to_string(), name));
    let results: Vec<Result<(), String>> =
        futures::stream::iter(deletes).buffer_unordered(DELETE_CONCURRENCY).collect().await;
    let failures = results.into_iter().filter_map(Result::err);
    if let Some(first) = failures.into_iter().next() {
        // As Kubernetes: one error per resource is enough to say it failed.
        return content.errors.push(first);
    }
    let left = match list(client, info, namespace).await {
        Ok(left) => left,
        Err(e) => return content.errors.push(e),
    };
    if left.is_empty() {
        return;
    }
    content.remaining.insert(group_resource(info), left.len());
    let mut held = false;
    for finalizer in left.iter().flat_map(|i| &i.finalizers) {
        *content.finalizers.entry(finalizer.clone()).or_default() += 1;
        held = true;
    }
    let estimate = left.iter().filter_map(|i| i.grace).max().unwrap_or(0);
    if estimate > 0 {
        content.estimate_seconds = content.estimate_seconds.max(estimate);
    } else if held {
        content.estimate_seconds = content.estimate_seconds.max(FINALIZER_ESTIMATE_SECONDS);
    } else {
        content.errors.push(format!("unexpected items still remain in namespace: {namespace} for gvr: {}", gvr(info)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pods_come_first_and_only_namespaced_kinds_are_deleted() {
        let (pods, rest) = namespaced_kinds();
        assert_eq!(pods.plural, "pods");
        assert!(rest.iter().all(|r| r.namespaced && r.plural != "pods"));
        for plural in ["replicationcontrollers", "configmaps", "services", "endpoints", "endpointslices", "events"] {
            assert!(rest.iter().any(|r| r.plural == plural), "{plural}");
        }
        assert!(!rest.iter().any(|r| r.plural == "namespaces" || r.plural == "nodes"));
    }

    #[test]
    fn resources_are_named_as_kubernetes_conditions_name_them() {
        let (pods, rest) = namespaced_kinds();
        assert_eq!(group_resource(pods), "pods.");
        let rs = rest.iter().find(|r| r.plural == "replicasets").unwrap();
        assert_eq!(group_resource(rs), "replicasets.apps");
        assert_eq!(gvr(pods), "/v1, Resource=pods");
    }

    #[test]
    fn items_read_finalizers_and_the_grace_of_unfinished_pods() {
        let pods = || namespaced_kinds().0;
        let configmaps = rkube_api::resource::lookup("configmaps").unwrap();
        let pod = json!({"kind": "Pod", "metadata": {"name": "p", "deletionTimestamp": "2026-01-01T00:00:00Z",
            "deletionGracePeriodSeconds": 12, "finalizers": ["example.com/hold"]},
            "spec": {"terminationGracePeriodSeconds": 30}, "status": {"phase": "Running"}});
        let item = Item::of(pods(), "p".into(), pod.to_string().as_bytes());
        assert!(item.deleting);
        assert_eq!(item.grace, Some(12), "the deletion's grace, not the spec's");
        assert_eq!(item.finalizers, ["example.com/hold"]);
        let done = json!({"kind": "Pod", "metadata": {"name": "p"}, "status": {"phase": "Succeeded"}});
        assert_eq!(Item::of(pods(), "p".into(), done.to_string().as_bytes()).grace, None);
        let cm = json!({"kind": "ConfigMap", "metadata": {"name": "c"}});
        let item = Item::of(configmaps, "c".into(), cm.to_string().as_bytes());
        assert!(!item.deleting && item.grace.is_none() && item.finalizers.is_empty());
    }
}
