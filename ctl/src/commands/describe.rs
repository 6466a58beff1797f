//! `describe TYPE [NAME_PREFIX...]`: finds the objects (by name, by name
//! prefix when no object has the exact name, or by selector), fetches what
//! each description shows besides the object (events, pods, endpoints,
//! replica sets) and prints the descriptions two blank lines apart.

use super::{json_of, list, print};
use crate::cli::DescribeArgs;
use crate::printers::columns::format_label_selector;
use crate::printers::describe::{Related, describe};
use crate::printers::object;
use crate::report::{self, Reported, usage};
use crate::resources::{self, resource_type};
use crate::revisions;
use crate::session::Session;
use k8s_openapi::api::core::v1::{Endpoints, Event, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use rkube_api::{Reason, ResourceInfo};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Runs `describe`.
pub async fn run(s: &Session, a: &DescribeArgs) -> anyhow::Result<()> {
    let sel = resources::parse(&a.resources, "describe")?;
    if sel.targets.is_empty() {
        return Err(usage(
            "You must specify the type of resource to describe. Use \"rkubectl api-resources\" for a complete list of supported resources.",
        ));
    }
    let mut descriptions: Vec<String> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    for t in &sel.targets {
        let ns = s.namespace_for(t.info, a.all_namespaces);
        let mut objects: Vec<Value> = Vec::new();
        if t.names.is_empty() {
            objects = list(s, t.info, &ns, a.selector.as_deref(), None).await?;
        }
        for name in &t.names {
            match s.client.get(t.info, &ns, name).await {
                Ok(o) => objects.push(json_of!(o)?),
                Err(e) if e.reason == Reason::NotFound => {
                    let by_prefix: Vec<Value> = list(s, t.info, &ns, a.selector.as_deref(), None)
                        .await?
                        .into_iter()
                        .filter(|v| object::name_of(v).starts_with(name.as_str()))
                        .collect();
                    if by_prefix.is_empty() {
                        errors.push(report::api_error(&e));
                    }
                    objects.extend(by_prefix);
                }
                Err(e) => return Err(e.into()),
            }
        }
        for obj in &objects {
            let related = related(s, t.info, obj, a.show_events).await?;
            descriptions.push(describe(t.info, obj, &related)?);
        }
    }
    if descriptions.is_empty() && errors.is_empty() {
        eprintln!("{}", super::get::nothing_found(s, &sel, a.all_namespaces));
    }
    print(&descriptions.join("\n\n"))?;
    for e in &errors {
        eprintln!("{e}");
    }
    if errors.is_empty() { Ok(()) } else { Err(Reported.into()) }
}

fn typed<K: DeserializeOwned>(items: Vec<Value>) -> Vec<K> {
    items.into_iter().filter_map(|v| serde_json::from_value(v).ok()).collect()
}

fn selector_of(v: &Value, pointer: &str) -> Option<String> {
    let ls: LabelSelector = serde_json::from_value(v.pointer(pointer)?.clone()).ok()?;
    let text = format_label_selector(&ls);
    (text != "<none>").then_some(text)
}

/// Lists pods matching `selector` in `ns` (none without a selector).
async fn pods(s: &Session, ns: &str, selector: Option<String>) -> anyhow::Result<Vec<Pod>> {
    let Some(selector) = selector else { return Ok(Vec::new()) };
    Ok(typed(list(s, resource_type("pods")?, ns, Some(&selector), None).await?))
}

/// The events about `obj`: by involved object name and namespace on the
/// server, then by kind here (events of a same-named object of another kind
/// are not this object's).
async fn events(s: &Session, info: &ResourceInfo, obj: &Value) -> Option<Vec<Event>> {
    let name = object::name_of(obj);
    let ns = object::namespace_of(obj);
    let fields = if info.namespaced {
        format!("involvedObject.name={name},involvedObject.namespace={ns}")
    } else {
        format!("involvedObject.name={name}")
    };
    let events_info = resource_type("events").ok()?;
    let items = list(s, events_info, ns, None, Some(&fields)).await.ok()?;
    let events: Vec<Event> = typed(items);
    Some(
        events
            .into_iter()
            .filter(|e| e.involved_object.kind.as_deref().is_none_or(|k| k.is_empty() || k == info.kind))
            .collect(),
    )
}

/// The pods `owner` controls: kubectl counts a controller's pods by its
/// selector and then skips orphans and pods of other controllers.
fn controlled(pods: Vec<Pod>, owner: &Value) -> Vec<Pod> {
    let uid = owner.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or_default();
    pods.into_iter()
        .filter(|p| p.metadata.owner_references.iter().flatten().any(|o| o.controller == Some(true) && o.uid == uid))
        .collect()
}

/// What the description of `obj` shows besides the object.
async fn related(s: &Session, info: &ResourceInfo, obj: &Value, show_events: bool) -> anyhow::Result<Related> {
    let mut r = Related::default();
    if show_events {
        r.events = events(s, info, obj).await;
    }
    let ns = object::namespace_of(obj).to_string();
    match info.kind {
        "ReplicationController" => {
            let selector =
                obj.pointer("/spec/selector").and_then(Value::as_object).filter(|m| !m.is_empty()).map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(",")
                });
            r.pods = controlled(pods(s, &ns, selector).await?, obj);
        }
        "ReplicaSet" | "DaemonSet" | "Job" => {
            r.pods = controlled(pods(s, &ns, selector_of(obj, "/spec/selector")).await?, obj);
        }
        "Node" => {
            let fields = format!("spec.nodeName={}", object::name_of(obj));
            r.pods = typed(list(s, resource_type("pods")?, "", None, Some(&fields)).await?);
        }
        "Service" => {
            r.endpoints = match s.client.get(resource_type("endpoints")?, &ns, object::name_of(obj)).await {
                Ok(o) => serde_json::from_slice::<Endpoints>(&o.json).ok(),
                Err(e) if e.reason == Reason::NotFound => None,
                Err(e) => return Err(e.into()),
            };
            let slices = format!("kubernetes.io/service-name={}", object::name_of(obj));
            r.endpoint_slices = typed(list(s, resource_type("endpointslices")?, &ns, Some(&slices), None).await?);
        }
        "Deployment" => {
            let sets = revisions::owned_replica_sets(s, obj).await?;
            let (with_pods, _) = revisions::old_replica_sets(obj, &sets);
            r.old_replica_sets =
                with_pods.into_iter().cloned().map(serde_json::from_value).filter_map(Result::ok).collect();
            r.new_replica_set =
                revisions::new_replica_set(obj, &sets).cloned().and_then(|v| serde_json::from_value(v).ok());
        }
        _ => {}
    }
    Ok(r)
}
