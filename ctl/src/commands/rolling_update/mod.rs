//! `rolling-update OLD -f NEW.yaml`, `rolling-update OLD [NEW] --image=IMAGE`
//! and `rolling-update OLD [NEW] --rollback`: the walkthrough's command,
//! which kubectl removed in 1.18, as kubectl 1.17 ran it
//! (`pkg/cmd/rollingupdate/rollingupdate.go`). The update itself is in
//! [`updater`].
//!
//! With `--image` the new controller is the old one with the new image,
//! named `OLD-<md5 of the controller>`, whose selector and template get a
//! `deployment=<md5>` label (the old one, and its pods, get
//! `deployment=<md5 of the old>-orig`); at the end the old controller is
//! deleted and the new one renamed to the old name. With `-f` (or a NEW name)
//! the old controller is deleted and the new one keeps its name.
//!
//! One deliberate difference: after `OLD NEW --rollback`, kubectl 1.17 read
//! back the controller it had just deleted and failed with NotFound; this
//! reports the restored controller instead.

mod updater;

use super::{place, print};
use crate::cli::RollingUpdateArgs;
use crate::duration;
use crate::manifests;
use crate::md5;
use crate::printers::object::Format;
use crate::report::usage;
use crate::session::Session;
use rkube_api::Reason;
use serde_json::Value;
use updater::{
    Cleanup, Config, Controllers, NEXT_CONTROLLER, SOURCE_ID, Timing, Updater, annotation, name, replicas,
    set_annotation, set_selector_label, set_template_label,
};

/// kubectl's `validateArguments`, each a usage error.
fn validate(a: &RollingUpdateArgs) -> anyhow::Result<()> {
    let mut errors: Vec<&str> = Vec::new();
    if a.deployment_label_key.is_empty() {
        errors.push("--deployment-label-key can not be empty");
    }
    if a.filenames.len() > 1 {
        errors.push("May only specify a single filename for new controller");
    }
    if !a.rollback {
        if a.filenames.is_empty() && a.image.is_none() {
            errors.push("Must specify --filename or --image for new controller");
        } else if !a.filenames.is_empty() && a.image.is_some() {
            errors.push("--filename and --image can not both be specified");
        }
    } else if !a.filenames.is_empty() || a.image.is_some() {
        errors.push("Don't specify --filename or --image on rollback");
    }
    if a.names.is_empty() {
        errors.push("Must specify the controller to update");
    }
    let with_hint: Vec<String> =
        errors.iter().map(|e| format!("{e}\nSee 'rkubectl rolling-update -h' for help and examples")).collect();
    match with_hint.as_slice() {
        [] => Ok(()),
        [one] => Err(usage(one)),
        many => Err(usage(format!("[{}]", many.join(", ")))),
    }
}

/// The new controller's name: the second argument, or the one the old
/// controller recorded when an `--image` update started.
fn find_new_name(names: &[String], old: &Value) -> String {
    match names.get(1) {
        Some(n) => n.clone(),
        None => annotation(old, NEXT_CONTROLLER).unwrap_or_default().to_string(),
    }
}

fn containers(rc: &Value) -> Vec<Value> {
    rc.pointer("/spec/template/spec/containers").and_then(Value::as_array).cloned().unwrap_or_default()
}

fn first_image(rc: &Value) -> String {
    containers(rc).first().and_then(|c| c.get("image")).and_then(Value::as_str).unwrap_or_default().to_string()
}

/// The object's JSON as kubectl hashes it (`util.HashObject`: md5 of the encoding).
fn hash(rc: &Value) -> String {
    md5::hex(&serde_json::to_vec(rc).expect("a Value always serializes"))
}

/// kubectl's `CreateNewControllerFromCurrentController`: the old controller
/// with the new image, named and labelled by its hash (not created yet).
async fn controller_with_image(
    rcs: &Controllers<'_>,
    a: &RollingUpdateArgs,
    old_name: &str,
    new_name: &str,
    image: &str,
    pull_policy: Option<&str>,
) -> anyhow::Result<Value> {
    let mut rc = rcs.get(old_name).await?;
    let list = containers(&rc);
    let mut index = 0;
    if let Some(wanted) = a.container.as_deref() {
        index = list
            .iter()
            .position(|c| c.get("name").and_then(Value::as_str) == Some(wanted))
            .ok_or_else(|| usage(format!("container {wanted} not found in pod")))?;
    }
    if list.len() > 1 && a.container.is_none() {
        return Err(usage("must specify container to update when updating a multi-container pod"));
    }
    if list.is_empty() {
        return Err(usage(format!("pod has no containers! ({rc})")));
    }
    let container = &mut rc["spec"]["template"]["spec"]["containers"][index];
    container["image"] = image.into();
    if let Some(policy) = pull_policy {
        container["imagePullPolicy"] = policy.into();
    }
    let hash = hash(&rc);
    let new_name = if new_name.is_empty() { format!("{}-{hash}", name(&rc)) } else { new_name.to_string() };
    rc["metadata"]["name"] = new_name.into();
    set_selector_label(&mut rc, &a.deployment_label_key, &hash);
    set_template_label(&mut rc, &a.deployment_label_key, &hash);
    // Cleared after hashing so that identical updates get different hashes.
    if let Some(meta) = rc.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    Ok(rc)
}

/// kubectl's `UpdateExistingReplicationController`: records the next
/// controller on the old one and, if its selector lacks the deployment key,
/// labels its template, its pods and then its selector with it, so that the
/// old and new pods stay apart.
async fn mark_old_controller(
    rcs: &Controllers<'_>,
    old: Value,
    next_name: &str,
    key: &str,
    value: &str,
) -> anyhow::Result<Value> {
    let has_key = old.pointer("/spec/selector").and_then(|s| s.get(key)).is_some();
    if has_key {
        return Ok(rcs.update_with_retries(old, |rc| set_annotation(rc, NEXT_CONTROLLER, next_name)).await?);
    }
    let old = rcs
        .update_with_retries(old, |rc| {
            set_annotation(rc, NEXT_CONTROLLER, next_name);
            set_template_label(rc, key, value);
        })
        .await?;
    rcs.update_pods(&updater::selector_string(&old), |pod| {
        let labels = pod["metadata"]["labels"].as_object_mut();
        match labels {
            Some(l) => {
                l.insert(key.into(), value.into());
            }
            None => pod["metadata"]["labels"] = serde_json::json!({ key: value }),
        }
    })
    .await?;
    Ok(rcs.update_with_retries(old, |rc| set_selector_label(rc, key, value)).await?)
}

/// kubectl's `FindSourceController`: the controller whose update started
/// from `old_name` (for finishing an interrupted rename).
async fn find_source_controller(rcs: &Controllers<'_>, old_name: &str) -> anyhow::Result<Value> {
    rcs.list()
        .await?
        .into_iter()
        .find(|rc| annotation(rc, SOURCE_ID).is_some_and(|s| s.starts_with(old_name)))
        .ok_or_else(|| {
            usage(format!("couldn't find a replication controller with source id == {}/{old_name}", rcs.namespace()))
        })
}

/// `group/version, Kind=kind`, Go's `GroupVersionKind.String()`.
fn gvk(v: &Value) -> String {
    let api_version = v.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    format!("{group}/{version}, Kind={kind}")
}

/// The new controller from `-f`, and whether its replicas were left out.
fn controller_from_file(s: &Session, filename: &str) -> anyhow::Result<(Value, bool)> {
    let docs = manifests::read(&[filename.to_string()], false)?;
    if docs.len() > 1 {
        return Err(usage(format!("{filename} specifies multiple items")));
    }
    let Some(doc) = docs.into_iter().next() else {
        return Err(usage(format!("please make sure {filename} exists and is not empty")));
    };
    let v = doc.value.map_err(usage)?;
    let (info, namespace) = place(s, &v, &doc.source).map_err(|line| usage(line.trim_start_matches("error: ")))?;
    if info.kind != "ReplicationController" {
        return Err(usage(format!("{filename} contains a {} not a ReplicationController", gvk(&v))));
    }
    if namespace != s.namespace {
        return Err(usage(format!(
            "the namespace from the provided object \"{namespace}\" does not match the namespace \"{}\". You must pass '--namespace={namespace}' to perform this operation.",
            s.namespace
        )));
    }
    let defaulted = v.pointer("/spec/replicas").is_none();
    Ok((v, defaulted))
}

/// Whether the selectors share a key whose values differ (every new pod
/// then has a label no old pod has).
fn selectors_differ(old: &Value, new: &Value) -> bool {
    let Some(old_selector) = old.pointer("/spec/selector").and_then(Value::as_object) else { return false };
    old_selector.iter().any(|(k, v)| new.pointer("/spec/selector").and_then(|s| s.get(k)).is_some_and(|nv| nv != v))
}

/// Runs `rolling-update`.
pub async fn run(s: &Session, a: &RollingUpdateArgs) -> anyhow::Result<()> {
    validate(a)?;
    eprintln!("Command \"rolling-update\" is deprecated, use \"rollout\" instead");
    let format = Format::parse(a.output.as_deref(), &[Format::Table, Format::Name])?;
    let timing = Timing {
        update_period: duration::parse(&a.update_period, "--update-period")?,
        interval: duration::parse(&a.poll_interval, "--poll-interval")?,
        timeout: duration::parse(&a.timeout, "--timeout")?,
    };
    let rcs = Controllers::new(s)?;
    let old_name = a.names[0].as_str();
    let keep_old_name = a.names.len() == 1;
    let filename = a.filenames.first().cloned().unwrap_or_default();

    let mut old = match rcs.get(old_name).await {
        Ok(rc) => rc,
        Err(e) if e.reason == Reason::NotFound && a.image.is_some() && keep_old_name => {
            // Interrupted in the middle of the rename: finish it.
            let new = find_source_controller(&rcs, old_name).await?;
            return updater::rename(&rcs, &new, old_name, &timing).await;
        }
        Err(e) => return Err(e.into()),
    };

    let mut new_rc: Option<Value> = None;
    let mut replicas_defaulted = false;
    if !filename.is_empty() {
        let (rc, defaulted) = controller_from_file(s, &filename)?;
        new_rc = Some(rc);
        replicas_defaulted = defaulted;
    }
    if let Some(image) = a.image.as_deref() {
        let new_name = find_new_name(&a.names, &old);
        let rc = match rcs.get_opt(&new_name).await? {
            Some(rc) => {
                let in_progress = first_image(&rc);
                if in_progress != image {
                    return Err(usage(format!(
                        "Found existing in-progress update to image ({in_progress}).\nEither continue in-progress update with --image={in_progress} or rollback with --rollback"
                    )));
                }
                print(&format!("Found existing update in progress ({}), resuming.\n", name(&rc)))?;
                rc
            }
            None => {
                let mut pull_policy = None;
                if first_image(&old) == image {
                    let Some(policy) = a.image_pull_policy.as_deref() else {
                        return Err(usage(
                            "--image-pull-policy (Always|Never|IfNotPresent) must be provided when --image is the same as existing container image",
                        ));
                    };
                    pull_policy = Some(policy);
                }
                controller_with_image(&rcs, a, old_name, &new_name, image, pull_policy).await?
            }
        };
        // The old hash gets a suffix: with the same image it would not differ.
        let old_hash = format!("{}-orig", hash(&old));
        old = mark_old_controller(&rcs, old, name(&rc), &a.deployment_label_key, &old_hash).await?;
        new_rc = Some(rc);
    }
    if a.rollback {
        let new_name = find_new_name(&a.names, &old);
        match rcs.get_opt(&new_name).await? {
            Some(rc) => new_rc = Some(rc),
            None => return Err(usage(format!("Could not find {new_name} to rollback."))),
        }
    }
    let mut new_rc = new_rc.expect("validation requires -f, --image or --rollback");
    if name(&new_rc) == old_name {
        return Err(usage(format!(
            "{filename} cannot have the same name as the existing ReplicationController {old_name}"
        )));
    }
    if !selectors_differ(&old, &new_rc) {
        return Err(usage(format!(
            "{filename} must specify a matching key with non-equal value in Selector for {old_name}"
        )));
    }
    if replicas_defaulted {
        new_rc["spec"]["replicas"] = replicas(&old).into();
    }
    if a.dry_run {
        return print(&format!("Rolling from:\n{}\nTo:\n{}\n", name(&old), name(&new_rc)));
    }

    let mut config = Config {
        old,
        new: new_rc.clone(),
        cleanup: if keep_old_name { Cleanup::Rename } else { Cleanup::Delete },
        max_unavailable: 0,
        max_surge: 1,
        timing,
    };
    if a.rollback {
        updater::abort(&mut config)?;
        // As kubectl: a failure here shows up as a mismatch in the update.
        let _ = rcs.update(&config.new).await;
    }
    Updater::new(&rcs).update(&config).await?;

    let (shown, message) = if a.rollback {
        (name(&config.new).to_string(), "rolling updated".to_string())
    } else if keep_old_name {
        (old_name.to_string(), "rolling updated".to_string())
    } else {
        (name(&new_rc).to_string(), format!("rolling updated to \"{}\"", name(&new_rc)))
    };
    let rc = rcs.get(&shown).await?;
    let reference = format!("replicationcontroller/{}", name(&rc));
    match format {
        Format::Name => print(&format!("{reference}\n")),
        _ => print(&format!("{reference} {message}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser as _;
    use serde_json::json;

    fn args(argv: &[&str]) -> RollingUpdateArgs {
        let mut full = vec!["rkubectl", "rolling-update"];
        full.extend_from_slice(argv);
        match Cli::parse_from(full).command {
            Command::RollingUpdate(a) => a,
            _ => unreachable!("parsed a rolling-update"),
        }
    }

    #[test]
    fn defaults_are_kubectl_1_17s() {
        let a = args(&["frontend", "--image=x"]);
        assert_eq!((a.update_period.as_str(), a.poll_interval.as_str(), a.timeout.as_str()), ("1m0s", "3s", "5m0s"));
        assert_eq!(a.deployment_label_key, "deployment");
        assert!(!a.rollback);
    }

    #[test]
    fn arguments_are_validated_like_kubectl() {
        let hint = "\nSee 'rkubectl rolling-update -h' for help and examples";
        let e = validate(&args(&["frontend"])).expect_err("no source");
        assert_eq!(e.to_string(), format!("Must specify --filename or --image for new controller{hint}"));
        let e = validate(&args(&["frontend", "-f", "a.yaml", "--image=x"])).expect_err("both");
        assert_eq!(e.to_string(), format!("--filename and --image can not both be specified{hint}"));
        let e = validate(&args(&["frontend", "--rollback", "--image=x"])).expect_err("rollback with image");
        assert_eq!(e.to_string(), format!("Don't specify --filename or --image on rollback{hint}"));
        let e = validate(&args(&["--image=x"])).expect_err("no controller");
        assert_eq!(e.to_string(), format!("Must specify the controller to update{hint}"));
        assert!(validate(&args(&["frontend", "frontend-v2", "--rollback"])).is_ok());
    }

    #[test]
    fn selectors_must_differ_in_a_shared_key() {
        let rc = |sel: Value| json!({"spec": {"selector": sel}});
        let old = rc(json!({"name": "frontend", "version": "v1"}));
        assert!(selectors_differ(&old, &rc(json!({"name": "frontend", "version": "v2"}))));
        assert!(!selectors_differ(&old, &rc(json!({"name": "frontend", "version": "v1"}))));
        // A new key alone does not separate the pods.
        let plain = rc(json!({"name": "frontend"}));
        assert!(!selectors_differ(&plain, &rc(json!({"name": "frontend", "version": "v2"}))));
    }

    #[test]
    fn the_next_controller_comes_from_the_argument_or_the_annotation() {
        let old = json!({"metadata": {"annotations": {NEXT_CONTROLLER: "frontend-abc"}}});
        assert_eq!(find_new_name(&["frontend".into()], &old), "frontend-abc");
        assert_eq!(find_new_name(&["frontend".into(), "frontend-v2".into()], &old), "frontend-v2");
        assert_eq!(find_new_name(&["frontend".into()], &json!({})), "");
    }

    #[test]
    fn kinds_print_as_go_group_version_kinds() {
        assert_eq!(gvk(&json!({"apiVersion": "apps/v1", "kind": "Deployment"})), "apps/v1, Kind=Deployment");
        assert_eq!(gvk(&json!({"apiVersion": "v1", "kind": "Pod"})), "/v1, Kind=Pod");
    }
}
