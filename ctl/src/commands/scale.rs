//! `scale TYPE NAME --replicas=N`: a merge patch of `spec.replicas` on
//! replication controllers, replica sets and deployments, optionally only
//! if the current count is `--current-replicas`.

use super::{json_of, list, print};
use crate::cli::ScaleArgs;
use crate::printers::object;
use crate::report::{self, Reported, usage};
use crate::resources;
use crate::session::Session;
use rkube_api::{Reason, ResourceInfo};
use serde_json::{Value, json};

const SCALABLE: [&str; 3] = ["ReplicationController", "ReplicaSet", "Deployment"];

/// Runs `scale`.
pub async fn run(s: &Session, a: &ScaleArgs) -> anyhow::Result<()> {
    if a.replicas < 0 {
        return Err(usage("The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0"));
    }
    let sel = resources::parse(&a.resources, "scale")?;
    if sel.targets.is_empty() {
        return Err(usage("required resource not specified"));
    }
    let by_selector = a.selector.is_some() || a.all;
    let mut objects: Vec<(&'static ResourceInfo, Value)> = Vec::new();
    let mut failed = false;
    for t in &sel.targets {
        if !SCALABLE.contains(&t.info.kind) {
            return Err(usage(format!(
                "cannot scale {}: only replicationcontrollers, replicasets and deployments have a replica count",
                t.info.plural
            )));
        }
        if t.names.is_empty() {
            if !by_selector {
                return Err(usage("resource(s) were provided, but no name was specified"));
            }
            let items = list(s, t.info, &s.namespace, a.selector.as_deref(), None).await?;
            objects.extend(items.into_iter().map(|v| (t.info, v)));
        }
        for name in &t.names {
            match s.client.get(t.info, &s.namespace, name).await {
                Ok(o) => objects.push((t.info, json_of!(o)?)),
                Err(e) if e.reason == Reason::ServiceUnavailable => return Err(e.into()),
                Err(e) => {
                    eprintln!("{}", report::api_error(&e));
                    failed = true;
                }
            }
        }
    }
    for (info, obj) in &objects {
        let name = object::name_of(obj);
        let mut patch = json!({"spec": {"replicas": a.replicas}});
        if a.current_replicas >= 0 {
            let current = obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
            if current != i64::from(a.current_replicas) {
                eprintln!("error: Expected replicas to be {}, was {current}", a.current_replicas);
                failed = true;
                continue;
            }
            let rv = obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null);
            patch["metadata"] = json!({ "resourceVersion": rv });
        }
        match s.client.patch(info, object::namespace_of(obj), name, &patch, false).await {
            Ok(_) => print(&format!("{} scaled\n", object::reference(info, name)))?,
            Err(e) => {
                eprintln!("{}", report::api_error(&e));
                failed = true;
            }
        }
    }
    if failed { Err(Reported.into()) } else { Ok(()) }
}
