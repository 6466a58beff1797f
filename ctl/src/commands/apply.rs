//! `apply -f FILE|DIR|-` (several `-f` allowed): client-side apply as
//! kubectl does it. Each object is created when absent, with the
//! configuration it was created from in the
//! `kubectl.kubernetes.io/last-applied-configuration` annotation; when it
//! exists, that last configuration, the new one and the live object are
//! merged three ways ([`crate::strategic_merge`]) and the result written
//! back, conditional on the live resourceVersion. Reports
//! `kind/name created|configured|unchanged`, one failure not stopping the rest.

use super::{json_of, place, print};
use crate::cli::ApplyArgs;
use crate::manifests;
use crate::printers::object::{self, Format};
use crate::report::{self, Reported, usage};
use crate::session::Session;
use crate::strategic_merge::three_way;
use rkube_api::{ApiError, Reason, ResourceInfo};
use serde_json::{Value, json};

/// Where apply keeps the configuration it applied last.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// kubectl's `GetModifiedConfiguration`: the object with, as its
/// last-applied annotation, its own encoding without that annotation
/// (annotations present, perhaps empty; a trailing newline, as kubectl's
/// encoder writes it).
pub fn with_last_applied(config: &Value) -> Value {
    let mut obj = config.clone();
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    let annotations = obj["metadata"]
        .as_object_mut()
        .expect("metadata made an object above")
        .entry("annotations")
        .or_insert_with(|| json!({}));
    if !annotations.is_object() {
        *annotations = json!({});
    }
    annotations.as_object_mut().expect("made an object above").remove(LAST_APPLIED);
    let encoded = format!("{}\n", serde_json::to_string(&obj).expect("a Value always serializes"));
    obj["metadata"]["annotations"][LAST_APPLIED] = encoded.into();
    obj
}

/// The last-applied configuration recorded on a live object.
fn last_applied(current: &Value) -> Option<Value> {
    let text = current.pointer("/metadata/annotations").and_then(|a| a.get(LAST_APPLIED)).and_then(Value::as_str)?;
    serde_json::from_str(text).ok()
}

/// What happened to one object.
enum Outcome {
    Created,
    Configured,
    Unchanged,
}

async fn apply_one(
    s: &Session,
    info: &'static ResourceInfo,
    namespace: &str,
    modified: &Value,
    source: &str,
) -> Result<Outcome, String> {
    let name = object::name_of(modified);
    for _ in 0..5 {
        let current = match s.client.get(info, namespace, name).await {
            Ok(o) => json_of!(o).map_err(|e| format!("error: {e}"))?,
            Err(e) if e.reason == Reason::NotFound => {
                let body = serde_json::to_vec(modified).expect("a Value always serializes");
                return match s.client.create(info, namespace, body).await {
                    Ok(_) => Ok(Outcome::Created),
                    Err(e) => Err(report::api_error_in(&e, "creating", source)),
                };
            }
            Err(e) => return Err(report::api_error(&e)),
        };
        let original = last_applied(&current);
        if original.is_none() {
            eprintln!(
                "Warning: resource {}/{name} is missing the {LAST_APPLIED} annotation which is required by rkubectl apply. rkubectl apply should only be used on resources created declaratively by either rkubectl create --save-config or rkubectl apply. The missing annotation will be patched automatically.",
                info.plural
            );
        }
        let merged = three_way(info.kind, original.as_ref(), modified, &current);
        if merged == current {
            return Ok(Outcome::Unchanged);
        }
        let body = serde_json::to_vec(&merged).expect("a Value always serializes");
        match s.client.update(info, namespace, name, body).await {
            Ok(_) => return Ok(Outcome::Configured),
            Err(e) if e.reason == Reason::Conflict => continue,
            Err(e) => return Err(report::api_error_in(&e, "patching", source)),
        }
    }
    let e = ApiError::conflict(
        info.plural,
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
    );
    Err(report::api_error_in(&e, "patching", source))
}

/// Runs `apply`.
pub async fn run(s: &Session, a: &ApplyArgs) -> anyhow::Result<()> {
    let format = Format::parse(a.output.as_deref(), &[Format::Table, Format::Name])?;
    if a.filenames.is_empty() {
        return Err(usage("must specify one of -f and -k"));
    }
    let mut failed = false;
    for doc in manifests::read(&a.filenames, a.recursive)? {
        let placed = doc.value.map_err(|e| format!("error: {e}")).and_then(|v| {
            let (info, namespace) = place(s, &v, &doc.source)?;
            Ok((info, namespace, v))
        });
        let (info, namespace, mut config) = match placed {
            Ok(p) => p,
            Err(message) => {
                eprintln!("{message}");
                failed = true;
                continue;
            }
        };
        if info.namespaced {
            config["metadata"]["namespace"] = namespace.clone().into();
        }
        let modified = with_last_applied(&config);
        let reference = object::reference(info, object::name_of(&modified));
        match apply_one(s, info, &namespace, &modified, &doc.source).await {
            Ok(outcome) => {
                let word = match outcome {
                    Outcome::Created => "created",
                    Outcome::Configured => "configured",
                    Outcome::Unchanged => "unchanged",
                };
                match format {
                    Format::Name => print(&format!("{reference}\n"))?,
                    _ => print(&format!("{reference} {word}\n"))?,
                }
            }
            Err(message) => {
                eprintln!("{message}");
                failed = true;
            }
        }
    }
    if failed { Err(Reported.into()) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_annotation_holds_the_configuration_without_itself() {
        let config = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "default"}, "data": {"k": "v"}});
        let modified = with_last_applied(&config);
        let recorded = modified["metadata"]["annotations"][LAST_APPLIED].as_str().expect("annotation");
        assert_eq!(
            recorded,
            "{\"apiVersion\":\"v1\",\"data\":{\"k\":\"v\"},\"kind\":\"ConfigMap\",\"metadata\":{\"annotations\":{},\"name\":\"a\",\"namespace\":\"default\"}}\n"
        );
        // Applying the annotated object again records the same text.
        assert_eq!(with_last_applied(&modified), modified);
        assert_eq!(last_applied(&modified).expect("parses")["data"]["k"], "v");
    }
}
