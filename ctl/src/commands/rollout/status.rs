//! `rollout status`: watches one deployment or daemon set and prints
//! kubectl's status line on every change until the rollout is done (or just
//! once with `--watch=false`), using kubectl's status viewers
//! (`polymorphichelpers/rollout_status.go`).

use super::super::targets::{self, Query, group_kind};
use super::super::{json_of, print};
use crate::cli::RolloutStatusArgs;
use crate::duration;
use crate::printers::object;
use crate::report::{Reported, usage};
use crate::revisions;
use crate::session::Session;
use futures::StreamExt as _;
use rkube_api::ResourceInfo;
use rkube_client::{ListParams, WatchEventType};
use serde_json::Value;

fn int(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn name(v: &Value) -> &str {
    object::name_of(v)
}

/// kubectl's `DeploymentStatusViewer`: the line to print and whether the
/// rollout is done, or the error that ends the watch.
pub fn deployment_status(d: &Value, revision: i64) -> Result<(String, bool), String> {
    let name = name(d);
    if revision > 0 {
        let Some(current) = revisions::revision(d) else {
            let raw =
                d.pointer("/metadata/annotations").and_then(|a| a.get(revisions::REVISION)).and_then(Value::as_str);
            return Err(format!(
                "cannot get the revision of deployment \"{name}\": strconv.ParseInt: parsing \"{}\": invalid syntax",
                raw.unwrap_or_default()
            ));
        };
        if revision != current {
            return Err(format!("desired revision ({revision}) is different from the running revision ({current})"));
        }
    }
    if int(d, "/metadata/generation") <= int(d, "/status/observedGeneration") {
        let timed_out = d.pointer("/status/conditions").and_then(Value::as_array).is_some_and(|cs| {
            cs.iter().any(|c| c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded")
        });
        if timed_out {
            return Err(format!("deployment \"{name}\" exceeded its progress deadline"));
        }
        let updated = int(d, "/status/updatedReplicas");
        let replicas = int(d, "/status/replicas");
        let available = int(d, "/status/availableReplicas");
        if let Some(wanted) = d.pointer("/spec/replicas").and_then(Value::as_i64)
            && updated < wanted
        {
            return Ok((
                format!(
                    "Waiting for deployment \"{name}\" rollout to finish: {updated} out of {wanted} new replicas have been updated...\n"
                ),
                false,
            ));
        }
        if replicas > updated {
            return Ok((
                format!(
                    "Waiting for deployment \"{name}\" rollout to finish: {} old replicas are pending termination...\n",
                    replicas - updated
                ),
                false,
            ));
        }
        if available < updated {
            return Ok((
                format!(
                    "Waiting for deployment \"{name}\" rollout to finish: {available} of {updated} updated replicas are available...\n"
                ),
                false,
            ));
        }
        return Ok((format!("deployment \"{name}\" successfully rolled out\n"), true));
    }
    Ok(("Waiting for deployment spec update to be observed...\n".into(), false))
}

/// kubectl's `DaemonSetStatusViewer`.
pub fn daemon_set_status(ds: &Value) -> Result<(String, bool), String> {
    let name = name(ds);
    let strategy = ds.pointer("/spec/updateStrategy/type").and_then(Value::as_str).unwrap_or_default();
    if strategy != "RollingUpdate" {
        return Err("rollout status is only available for RollingUpdate strategy type".into());
    }
    if int(ds, "/metadata/generation") <= int(ds, "/status/observedGeneration") {
        let updated = int(ds, "/status/updatedNumberScheduled");
        let desired = int(ds, "/status/desiredNumberScheduled");
        let available = int(ds, "/status/numberAvailable");
        if updated < desired {
            return Ok((
                format!(
                    "Waiting for daemon set \"{name}\" rollout to finish: {updated} out of {desired} new pods have been updated...\n"
                ),
                false,
            ));
        }
        if available < desired {
            return Ok((
                format!(
                    "Waiting for daemon set \"{name}\" rollout to finish: {available} of {desired} updated pods are available...\n"
                ),
                false,
            ));
        }
        return Ok((format!("daemon set \"{name}\" successfully rolled out\n"), true));
    }
    Ok(("Waiting for daemon set spec update to be observed...\n".into(), false))
}

fn status_of(info: &ResourceInfo, obj: &Value, revision: i64) -> Result<(String, bool), String> {
    match info.kind {
        "Deployment" => deployment_status(obj, revision),
        _ => daemon_set_status(obj),
    }
}

/// Runs `rollout status`.
pub async fn run(s: &Session, a: &RolloutStatusArgs) -> anyhow::Result<()> {
    if a.resources.is_empty() && a.filenames.is_empty() {
        return Err(usage("required resource not specified"));
    }
    if a.revision < 0 {
        return Err(usage(format!("revision must be a positive integer: {}", a.revision)));
    }
    let timeout = duration::parse(&a.timeout, "--timeout")?;
    let q = Query {
        resources: &a.resources,
        filenames: &a.filenames,
        type_selects_all: true,
        command: "rollout status",
        ..Default::default()
    };
    let found = targets::resolve(s, &q).await?;
    if found.failed {
        return Err(Reported.into());
    }
    if found.objects.len() != 1 {
        return Err(usage(format!(
            "rollout status is only supported on individual resources and resource collections - {} resources were found",
            found.objects.len()
        )));
    }
    let (info, obj) = &found.objects[0];
    if !matches!(info.kind, "Deployment" | "DaemonSet") {
        return Err(usage(format!("no status viewer has been implemented for {}", group_kind(info))));
    }
    let watch = watch_until_done(s, info, object::namespace_of(obj), object::name_of(obj), a);
    if timeout.is_zero() {
        return watch.await;
    }
    match tokio::time::timeout(timeout, watch).await {
        Ok(result) => result,
        Err(_) => Err(usage("timed out waiting for the condition")),
    }
}

/// Lists then watches the object (again whenever the watch ends), printing
/// its status on each change.
async fn watch_until_done(
    s: &Session,
    info: &'static ResourceInfo,
    namespace: &str,
    name: &str,
    a: &RolloutStatusArgs,
) -> anyhow::Result<()> {
    let lp = ListParams::default().fields(&format!("metadata.name={name}"));
    loop {
        let mut events = s.client.watch(info, namespace, &lp, "").await?;
        while let Some(event) = events.next().await {
            let event = event?;
            match event.kind {
                WatchEventType::Added | WatchEventType::Modified => {
                    let obj = json_of!(event.object)?;
                    if object::name_of(&obj) != name {
                        continue;
                    }
                    let (line, done) = status_of(info, &obj, a.revision).map_err(usage)?;
                    print(&line)?;
                    if done || !a.watch {
                        return Ok(());
                    }
                }
                WatchEventType::Deleted => return Err(usage("object has been deleted")),
                WatchEventType::Bookmark => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(generation: i64, status: Value) -> Value {
        json!({"metadata": {"name": "web", "generation": generation}, "spec": {"replicas": 3}, "status": status})
    }

    #[test]
    fn deployment_lines_follow_kubectl() {
        let line = |d: &Value| deployment_status(d, 0).expect("no error");
        assert_eq!(
            line(&deployment(2, json!({"observedGeneration": 1}))),
            ("Waiting for deployment spec update to be observed...\n".into(), false)
        );
        assert_eq!(
            line(&deployment(2, json!({"observedGeneration": 2, "updatedReplicas": 1, "replicas": 3}))).0,
            "Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated...\n"
        );
        assert_eq!(
            line(&deployment(2, json!({"observedGeneration": 2, "updatedReplicas": 3, "replicas": 4}))).0,
            "Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination...\n"
        );
        assert_eq!(
            line(&deployment(
                2,
                json!({"observedGeneration": 2, "updatedReplicas": 3, "replicas": 3, "availableReplicas": 1})
            ))
            .0,
            "Waiting for deployment \"web\" rollout to finish: 1 of 3 updated replicas are available...\n"
        );
        assert_eq!(
            line(&deployment(
                2,
                json!({"observedGeneration": 2, "updatedReplicas": 3, "replicas": 3, "availableReplicas": 3})
            )),
            ("deployment \"web\" successfully rolled out\n".into(), true)
        );
    }

    #[test]
    fn an_exceeded_deadline_is_an_error() {
        let d = deployment(
            1,
            json!({"observedGeneration": 1, "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}),
        );
        assert_eq!(
            deployment_status(&d, 0).expect_err("timed out"),
            "deployment \"web\" exceeded its progress deadline"
        );
    }

    #[test]
    fn a_pinned_revision_must_be_the_running_one() {
        let mut d = deployment(1, json!({"observedGeneration": 1}));
        d["metadata"]["annotations"] = json!({revisions::REVISION: "2"});
        assert_eq!(
            deployment_status(&d, 1).expect_err("other revision"),
            "desired revision (1) is different from the running revision (2)"
        );
        assert!(deployment_status(&d, 2).is_ok());
    }

    #[test]
    fn daemon_set_lines_follow_kubectl() {
        let ds = |status: Value, strategy: &str| json!({"metadata": {"name": "agent", "generation": 1}, "spec": {"updateStrategy": {"type": strategy}}, "status": status});
        assert_eq!(
            daemon_set_status(&ds(
                json!({"observedGeneration": 1, "desiredNumberScheduled": 2, "updatedNumberScheduled": 1}),
                "RollingUpdate"
            ))
            .expect("status")
            .0,
            "Waiting for daemon set \"agent\" rollout to finish: 1 out of 2 new pods have been updated...\n"
        );
        assert_eq!(
            daemon_set_status(&ds(
                json!({"observedGeneration": 1, "desiredNumberScheduled": 2, "updatedNumberScheduled": 2, "numberAvailable": 2}),
                "RollingUpdate"
            ))
            .expect("status"),
            ("daemon set \"agent\" successfully rolled out\n".into(), true)
        );
        assert_eq!(
            daemon_set_status(&ds(json!({}), "OnDelete")).expect_err("not rolling"),
            "rollout status is only available for RollingUpdate strategy type"
        );
    }
}
