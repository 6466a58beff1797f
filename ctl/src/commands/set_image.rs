//! `set image (TYPE NAME | TYPE/NAME | -f FILE | TYPE -l SEL) CONTAINER=IMAGE ...`:
//! changes container (and init container) images in pods and in the pod
//! templates of replication controllers, replica sets, deployments, daemon
//! sets and jobs; `*` names every container. Worded as kubectl 1.33's
//! `set image`; objects that end up unchanged are not reported.

use super::print;
use super::targets::{self, Query};
use crate::cli::SetImageArgs;
use crate::printers::object::{self, Format};
use crate::report::{Reported, usage};
use crate::session::Session;
use rkube_api::{Reason, ResourceInfo};
use serde_json::Value;

/// kubectl's `GetResourcesAndPairs`: the object arguments, then the
/// `CONTAINER=IMAGE` pairs.
fn split_args(args: &[String]) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let (mut resources, mut pairs) = (Vec::new(), Vec::new());
    for a in args {
        let is_pair = (a.contains('=') && !a.starts_with('=')) || (a.ends_with('-') && a != "-");
        match (pairs.is_empty(), is_pair) {
            (_, true) => pairs.push(a.clone()),
            (true, false) => resources.push(a.clone()),
            (false, false) => return Err(usage(format!("all resources must be specified before image changes: {a}"))),
        }
    }
    Ok((resources, pairs))
}

/// kubectl's `ParsePairs` for images (no removals).
fn parse_pairs(pairs: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut invalid: Vec<&str> = Vec::new();
    for p in pairs {
        match p.split_once('=') {
            Some((k, v)) if !k.is_empty() => match out.iter_mut().find(|(name, _)| name == k) {
                Some(existing) => existing.1 = v.to_string(),
                None => out.push((k.to_string(), v.to_string())),
            },
            _ => invalid.push(p),
        }
    }
    if !invalid.is_empty() {
        return Err(usage(format!("invalid image format: {}", invalid.join(", "))));
    }
    Ok(out)
}

/// Where the object keeps its pod spec.
fn pod_spec_pointer(info: &ResourceInfo) -> Option<&'static str> {
    match info.kind {
        "Pod" => Some("/spec"),
        "ReplicationController" | "ReplicaSet" | "Deployment" | "DaemonSet" | "Job" => Some("/spec/template/spec"),
        _ => None,
    }
}

/// Sets the images in `spec`; returns the containers that were not found.
fn set_images(spec: &mut Value, images: &[(String, String)]) -> Vec<String> {
    let mut missing = Vec::new();
    for (name, image) in images {
        let mut found = false;
        for list in ["initContainers", "containers"] {
            for c in spec.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
                if name == "*" || c.get("name").and_then(Value::as_str) == Some(name) {
                    c["image"] = image.as_str().into();
                    found = true;
                }
            }
        }
        if !found {
            missing.push(name.clone());
        }
    }
    missing
}

/// Runs `set image`.
pub async fn run(s: &Session, a: &SetImageArgs) -> anyhow::Result<()> {
    let format = Format::parse(a.output.as_deref(), &[Format::Table, Format::Name])?;
    let (resources, pairs) = split_args(&a.args)?;
    let mut problems: Vec<&str> = Vec::new();
    if a.all && a.selector.is_some() {
        problems.push("cannot set --all and --selector at the same time");
    }
    if resources.is_empty() && a.filenames.is_empty() {
        problems.push("one or more resources must be specified as <resource> <name> or <resource>/<name>");
    }
    let images = parse_pairs(&pairs)?;
    if images.is_empty() {
        problems.push("at least one image update is required");
    } else if images.len() > 1 && images.iter().any(|(n, _)| n == "*") {
        problems.push(
            "all containers are already specified by *, but saw more than one container_name=container_image pairs",
        );
    }
    match problems.as_slice() {
        [] => {}
        [one] => return Err(usage(one)),
        many => return Err(usage(format!("[{}]", many.join(", ")))),
    }
    let q = Query {
        resources: &resources,
        filenames: &a.filenames,
        recursive: a.recursive,
        selector: a.selector.as_deref(),
        all: a.all,
        type_selects_all: false,
        command: "set image",
    };
    let found = targets::resolve(s, &q).await?;
    let mut errors: Vec<String> = Vec::new();
    for (info, obj) in &found.objects {
        let name = object::name_of(obj);
        let namespace = object::namespace_of(obj);
        let Some(pointer) = pod_spec_pointer(info) else {
            errors.push(format!(
                "error: {}/{name} the object is not a pod or does not have a pod template: *{}.{}",
                info.plural, info.version, info.kind
            ));
            continue;
        };
        let mut current = obj.clone();
        let mut reported_missing = false;
        for attempt in 0..5 {
            let mut changed = current.clone();
            let missing = match changed.pointer_mut(pointer) {
                Some(spec) => set_images(spec, &images),
                None => images.iter().map(|(n, _)| n.clone()).collect(),
            };
            if !reported_missing {
                errors.extend(missing.iter().map(|n| format!("error: unable to find container named \"{n}\"")));
                reported_missing = true;
            }
            if changed == current {
                break;
            }
            let body = serde_json::to_vec(&changed).expect("a Value always serializes");
            match s.client.update(info, namespace, name, body).await {
                Ok(_) => {
                    let reference = object::reference(info, name);
                    match format {
                        Format::Name => print(&format!("{reference}\n"))?,
                        _ => print(&format!("{reference} image updated\n"))?,
                    }
                    break;
                }
                Err(e) if e.reason == Reason::Conflict && attempt < 4 => {
                    current = serde_json::from_slice(&s.client.get(info, namespace, name).await?.json)?;
                }
                Err(e) => {
                    errors.push(format!("error: failed to patch image update to pod template: {}", e.message));
                    break;
                }
            }
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
    use serde_json::json;

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn objects_come_before_image_pairs() {
        let (r, p) = split_args(&strings(&["deploy/web", "web=nginx:2", "side=busybox"])).expect("valid");
        assert_eq!((r, p), (strings(&["deploy/web"]), strings(&["web=nginx:2", "side=busybox"])));
        let e = split_args(&strings(&["web=nginx", "deploy/web"])).expect_err("pair first");
        assert_eq!(e.to_string(), "all resources must be specified before image changes: deploy/web");
        let e = parse_pairs(&strings(&["web-"])).expect_err("removal");
        assert_eq!(e.to_string(), "invalid image format: web-");
    }

    #[test]
    fn images_change_by_container_name_or_star() {
        let mut spec = json!({"initContainers": [{"name": "init", "image": "a"}], "containers": [{"name": "web", "image": "a"}, {"name": "side", "image": "a"}]});
        let missing = set_images(&mut spec, &[("web".into(), "b".into()), ("nope".into(), "c".into())]);
        assert_eq!(missing, ["nope"]);
        assert_eq!(spec["containers"][0]["image"], "b");
        assert_eq!(spec["containers"][1]["image"], "a");
        set_images(&mut spec, &[("*".into(), "z".into())]);
        assert_eq!(spec["initContainers"][0]["image"], "z");
        assert_eq!(spec["containers"][1]["image"], "z");
    }
}
