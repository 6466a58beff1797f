//! `auth can-i`: asks the apiserver whether the current user may do
//! something (a SelfSubjectAccessReview), as `kubectl auth can-i` does:
//! prints `yes` or `no` and exits 1 on no.

use super::print;
use crate::cli::CanIArgs;
use crate::report::ExitWith;
use crate::resources::resource_type;
use crate::session::Session;
use rkube_api::resource::SELF_SUBJECT_ACCESS_REVIEWS;
use serde_json::{Value, json};

/// The review's `spec` for the arguments.
fn review_spec(session: &Session, a: &CanIArgs) -> anyhow::Result<Value> {
    if a.resource.starts_with('/') {
        return Ok(json!({"nonResourceAttributes": {"verb": a.verb, "path": a.resource}}));
    }
    let (word, name) = match a.resource.split_once('/') {
        Some((word, name)) => (word, name.to_string()),
        None => (a.resource.as_str(), a.name.clone().unwrap_or_default()),
    };
    // `*`: every resource (of the core group, as kubectl asks).
    let (group, version, plural, namespaced) = match word {
        "*" => ("", "", "*", true),
        w => {
            let info = resource_type(w)?;
            (info.group, info.version, info.plural, info.namespaced)
        }
    };
    let namespace = if a.all_namespaces || !namespaced { "" } else { session.namespace.as_str() };
    Ok(json!({"resourceAttributes": {
        "namespace": namespace,
        "verb": a.verb,
        "group": group,
        "version": version,
        "resource": plural,
        "subresource": a.subresource,
        "name": name,
    }}))
}

/// Runs `auth can-i`.
pub async fn can_i(session: &Session, a: &CanIArgs) -> anyhow::Result<()> {
    let review = json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": review_spec(session, a)?,
    });
    let answer = session.client.create(&SELF_SUBJECT_ACCESS_REVIEWS, "", serde_json::to_vec(&review)?).await?;
    let answer: Value = serde_json::from_slice(&answer.json)?;
    let allowed = answer.pointer("/status/allowed").and_then(Value::as_bool).unwrap_or(false);
    if !a.quiet {
        print(if allowed { "yes\n" } else { "no\n" })?;
    }
    if allowed { Ok(()) } else { Err(ExitWith(1).into()) }
}
