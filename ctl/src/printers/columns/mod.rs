//! Each kind's table columns, as kubectl's printers define them
//! (`pkg/printers/internalversion/printers.go`). [`table`] picks the kind's
//! columns and decodes the objects into their k8s-openapi types.

mod cluster;
mod config;
mod network;
pub mod pods;
mod storage;
mod workloads;

pub use cluster::{event_first_seen, event_last_seen_seconds, node_roles};
pub use network::{format_endpoints, join_host_port};

use crate::printers::age;
use crate::printers::table::{Row, Table};
use anyhow::Context as _;
use k8s_openapi::Metadata;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Event, LimitRange, Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod,
    ReplicationController, ResourceQuota, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use rkube_api::ResourceInfo;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// An optional string, or "".
pub fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_default()
}

/// `s`, or `<none>` when empty.
pub fn or_none(s: &str) -> String {
    if s.is_empty() { "<none>".into() } else { s.to_string() }
}

/// A label selector as kubectl writes it: `app=web,tier in (a,b),!canary`,
/// requirements sorted by key; `<none>` when empty.
pub fn format_label_selector(ls: &LabelSelector) -> String {
    let mut reqs: Vec<(String, String)> = Vec::new();
    for (k, v) in ls.match_labels.iter().flatten() {
        reqs.push((k.clone(), format!("{k}={v}")));
    }
    for e in ls.match_expressions.iter().flatten() {
        let mut values = e.values.clone().unwrap_or_default();
        values.sort();
        let text = match e.operator.as_str() {
            "In" => format!("{} in ({})", e.key, values.join(",")),
            "NotIn" => format!("{} notin ({})", e.key, values.join(",")),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            other => format!("{} {other} ({})", e.key, values.join(",")),
        };
        reqs.push((e.key.clone(), text));
    }
    if reqs.is_empty() {
        return "<none>".into();
    }
    reqs.sort();
    reqs.into_iter().map(|(_, t)| t).collect::<Vec<_>>().join(",")
}

fn build<K>(objects: &[Value], headers: &[&str], cells: impl Fn(&K) -> Vec<String>) -> anyhow::Result<Table>
where
    K: DeserializeOwned + Metadata<Ty = ObjectMeta>,
{
    let mut table = Table::new(headers);
    for v in objects {
        let k: K = serde_json::from_value(v.clone()).with_context(|| {
            format!("decoding {}", v.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("an object"))
        })?;
        let meta = k.metadata();
        table.rows.push(Row {
            namespace: opt(&meta.namespace),
            labels: meta.labels.clone().unwrap_or_default(),
            cells: cells(&k),
        });
    }
    Ok(table)
}

/// The table of `objects`, all of the resource `info`.
pub fn table(info: &ResourceInfo, objects: &[Value], wide: bool) -> anyhow::Result<Table> {
    match info.kind {
        "Pod" => build::<Pod>(objects, pods::headers(wide), |p| pods::cells(p, wide)),
        "Node" => build::<Node>(objects, &cluster::node_headers(wide), |n| cluster::node(n, wide)),
        "Namespace" => build::<Namespace>(objects, &cluster::namespace_headers(), cluster::namespace),
        "Event" => {
            let mut sorted = objects.to_vec();
            sorted.sort_by_key(|v| {
                serde_json::from_value::<Event>(v.clone()).map(|e| event_last_seen_seconds(&e)).unwrap_or(0)
            });
            build::<Event>(&sorted, &cluster::event_headers(wide), |e| cluster::event(e, wide))
        }
        "Lease" => build::<Lease>(objects, &cluster::lease_headers(), cluster::lease),
        "Service" => build::<Service>(objects, &network::service_headers(wide), |s| network::service(s, wide)),
        "Endpoints" => build::<Endpoints>(objects, &network::endpoints_headers(), network::endpoints),
        "EndpointSlice" => build::<EndpointSlice>(objects, &network::endpoint_slice_headers(), network::endpoint_slice),
        "ReplicationController" => build::<ReplicationController>(objects, &workloads::replica_headers(wide), |r| {
            workloads::replication_controller(r, wide)
        }),
        "ReplicaSet" => {
            build::<ReplicaSet>(objects, &workloads::replica_headers(wide), |r| workloads::replica_set(r, wide))
        }
        "Deployment" => {
            build::<Deployment>(objects, &workloads::deployment_headers(wide), |d| workloads::deployment(d, wide))
        }
        "DaemonSet" => {
            build::<DaemonSet>(objects, &workloads::daemon_set_headers(wide), |d| workloads::daemon_set(d, wide))
        }
        "Job" => build::<Job>(objects, &workloads::job_headers(wide), |j| workloads::job(j, wide)),
        "HorizontalPodAutoscaler" => {
            build::<HorizontalPodAutoscaler>(objects, &workloads::hpa_headers(), workloads::hpa)
        }
        "ConfigMap" => build::<ConfigMap>(objects, &config::config_map_headers(), config::config_map),
        "Secret" => build::<Secret>(objects, &config::secret_headers(), config::secret),
        "ServiceAccount" => {
            build::<ServiceAccount>(objects, &config::service_account_headers(), config::service_account)
        }
        "ResourceQuota" => build::<ResourceQuota>(objects, &config::quota_headers(), config::quota),
        "LimitRange" => build::<LimitRange>(objects, &config::limit_range_headers(), config::limit_range),
        "PersistentVolume" => build::<PersistentVolume>(objects, &storage::pv_headers(), storage::pv),
        "PersistentVolumeClaim" => build::<PersistentVolumeClaim>(objects, &storage::pvc_headers(), storage::pvc),
        _ => Ok(generic(objects)),
    }
}

/// NAME and AGE, for kinds without their own columns.
fn generic(objects: &[Value]) -> Table {
    let mut table = Table::new(&["NAME", "AGE"]);
    for v in objects {
        let meta: ObjectMeta =
            v.get("metadata").and_then(|m| serde_json::from_value(m.clone()).ok()).unwrap_or_default();
        table.rows.push(Row {
            namespace: opt(&meta.namespace),
            labels: meta.labels.clone().unwrap_or_default(),
            cells: vec![opt(&meta.name), age::age(meta.creation_timestamp.as_ref())],
        });
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors_format_like_kubectl() {
        let ls: LabelSelector = serde_json::from_value(json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["b", "a"]},
                {"key": "canary", "operator": "DoesNotExist"},
            ],
        }))
        .expect("selector");
        assert_eq!(format_label_selector(&ls), "app=web,!canary,tier in (a,b)");
        assert_eq!(format_label_selector(&LabelSelector::default()), "<none>");
    }

    #[test]
    fn every_kind_has_a_table_and_names_come_first() {
        for info in rkube_api::resource::RESOURCES {
            let obj = json!({"apiVersion": info.api_version, "kind": info.kind,
                             "metadata": {"name": "x", "namespace": "default"}});
            let t = table(info, &[obj], true).unwrap_or_else(|e| panic!("{}: {e:#}", info.kind));
            assert_eq!(t.rows.len(), 1, "{}", info.kind);
            assert_eq!(t.rows[0].cells.len(), t.headers.len(), "{}", info.kind);
            if info.kind != "Event" {
                assert_eq!(t.headers[0], "NAME", "{}", info.kind);
                assert_eq!(t.rows[0].cells[0], "x", "{}", info.kind);
            }
        }
    }
}
