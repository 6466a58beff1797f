//! `rollout status|history|undo|pause|resume|restart`, as kubectl 1.33 runs
//! them (`pkg/cmd/rollout`, `pkg/polymorphichelpers`): deployments fully;
//! daemon sets for `status` and `restart` (rkube keeps no ControllerRevisions,
//! so their history is empty, and pausing them is not supported, as in
//! Kubernetes); other kinds get kubectl's "not implemented/supported" errors.

mod history;
mod status;

use super::print;
use super::targets::{self, Query, resource_string};
use crate::cli::{RolloutArgs, RolloutTargets, RolloutWhat};
use crate::printers::age;
use crate::printers::object::{self, Format};
use crate::report::{Reported, usage};
use crate::session::Session;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use rkube_api::ResourceInfo;
use serde_json::{Value, json};

/// The annotation `rollout restart` stamps on the pod template.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// Runs `rollout`.
pub async fn run(s: &Session, a: &RolloutArgs) -> anyhow::Result<()> {
    match &a.what {
        RolloutWhat::Status(a) => status::run(s, a).await,
        RolloutWhat::History(a) => history::history(s, a).await,
        RolloutWhat::Undo(a) => history::undo(s, a).await,
        RolloutWhat::Pause(t) => change(s, t, Change::Pause).await,
        RolloutWhat::Resume(t) => change(s, t, Change::Resume).await,
        RolloutWhat::Restart(t) => change(s, t, Change::Restart).await,
    }
}

/// The objects the subcommand names (a type alone: all of them), or
/// kubectl's "required resource not specified".
async fn resolve(s: &Session, t: &RolloutTargets, command: &str) -> anyhow::Result<targets::Found> {
    let q = Query {
        resources: &t.resources,
        filenames: &t.filenames,
        recursive: t.recursive,
        selector: t.selector.as_deref(),
        all: false,
        type_selects_all: true,
        command,
    };
    if targets::nothing_named(&q) {
        return Err(usage("required resource not specified"));
    }
    targets::resolve(s, &q).await
}

/// `pause`, `resume` and `restart`: a change of one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Pause,
    Resume,
    Restart,
}

impl Change {
    fn done(self) -> &'static str {
        match self {
            Change::Pause => "paused",
            Change::Resume => "resumed",
            Change::Restart => "restarted",
        }
    }
}

/// kubectl's `defaultObjectPauser`, `defaultObjectResumer` and
/// `defaultObjectRestarter`: the merge patch for `obj`, or why not.
fn patch_for(change: Change, info: &ResourceInfo, obj: &Value, now: &str) -> Result<Value, &'static str> {
    let paused = obj.pointer("/spec/paused").and_then(Value::as_bool).unwrap_or(false);
    match (change, info.kind) {
        (Change::Pause, "Deployment") if paused => Err("is already paused"),
        (Change::Pause, "Deployment") => Ok(json!({"spec": {"paused": true}})),
        (Change::Pause, _) => Err("pausing is not supported"),
        (Change::Resume, "Deployment") if !paused => Err("is not paused"),
        (Change::Resume, "Deployment") => Ok(json!({"spec": {"paused": null}})),
        (Change::Resume, _) => Err("resuming is not supported"),
        (Change::Restart, "Deployment") if paused => Err("can't restart paused deployment (run rollout resume first)"),
        (Change::Restart, "Deployment" | "DaemonSet") => {
            Ok(json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}}}))
        }
        (Change::Restart, _) => Err("restarting is not supported"),
    }
}

/// Now in RFC 3339 (UTC), as `rollout restart` stamps it.
fn now_rfc3339() -> String {
    let now = Time(Timestamp::from_second(age::now_seconds()).unwrap_or(Timestamp::UNIX_EPOCH));
    now.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Runs `pause`, `resume` or `restart`: every object is tried; the ones that
/// cannot be changed are reported at the end, as kubectl aggregates them.
async fn change(s: &Session, t: &RolloutTargets, change: Change) -> anyhow::Result<()> {
    let format = Format::parse(t.output.as_deref(), &[Format::Table, Format::Name])?;
    let found = resolve(s, t, "rollout").await?;
    let now = now_rfc3339();
    let mut errors: Vec<String> = Vec::new();
    for (info, obj) in &found.objects {
        let name = object::name_of(obj);
        let patch = match patch_for(change, info, obj, &now) {
            Ok(p) => p,
            Err(why) => {
                errors.push(format!("error: {} \"{name}\" {why}", resource_string(info)));
                continue;
            }
        };
        match s.client.patch(info, object::namespace_of(obj), name, &patch, false).await {
            Ok(_) => {
                let reference = object::reference(info, name);
                match format {
                    Format::Name => print(&format!("{reference}\n"))?,
                    _ => print(&format!("{reference} {}\n", change.done()))?,
                }
            }
            Err(e) => errors.push(format!("error: failed to patch: {}", e.message)),
        }
    }
    for e in &errors {
        eprintln!("{e}");
    }
    if errors.is_empty() && !found.failed { Ok(()) } else { Err(Reported.into()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rkube_api::resource::lookup;

    fn info(word: &str) -> &'static ResourceInfo {
        lookup(word).expect("known resource")
    }

    #[test]
    fn only_deployments_pause_and_resume() {
        let running = json!({"spec": {}});
        let paused = json!({"spec": {"paused": true}});
        let deploy = info("deployments");
        assert_eq!(patch_for(Change::Pause, deploy, &running, "t"), Ok(json!({"spec": {"paused": true}})));
        assert_eq!(patch_for(Change::Pause, deploy, &paused, "t"), Err("is already paused"));
        assert_eq!(patch_for(Change::Resume, deploy, &running, "t"), Err("is not paused"));
        assert_eq!(patch_for(Change::Resume, deploy, &paused, "t"), Ok(json!({"spec": {"paused": null}})));
        assert_eq!(patch_for(Change::Pause, info("daemonsets"), &running, "t"), Err("pausing is not supported"));
        assert_eq!(patch_for(Change::Resume, info("rc"), &running, "t"), Err("resuming is not supported"));
    }

    #[test]
    fn restart_stamps_the_template_of_deployments_and_daemon_sets() {
        let want = json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: "now"}}}}});
        assert_eq!(patch_for(Change::Restart, info("deploy"), &json!({}), "now"), Ok(want.clone()));
        assert_eq!(patch_for(Change::Restart, info("ds"), &json!({}), "now"), Ok(want));
        assert_eq!(
            patch_for(Change::Restart, info("deploy"), &json!({"spec": {"paused": true}}), "now"),
            Err("can't restart paused deployment (run rollout resume first)")
        );
        assert_eq!(patch_for(Change::Restart, info("rs"), &json!({}), "now"), Err("restarting is not supported"));
    }

    #[test]
    fn restart_times_are_rfc3339() {
        let t = now_rfc3339();
        assert_eq!(t.len(), "2024-01-02T03:04:05Z".len(), "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
    }
}
