//! The status conditions of a terminating namespace, as Kubernetes'
//! `status_condition_utils.go` writes them: five condition types, each
//! True with a reason and message while something is wrong, else False
//! with its "all is well" reason and message.

use super::deleter::Content;
use k8s_openapi::api::core::v1::NamespaceCondition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Discovery failed (never, here: the kinds are compiled in).
pub const DISCOVERY_FAILURE: &str = "NamespaceDeletionDiscoveryFailure";
/// A group version could not be parsed (never, here).
pub const GV_PARSING_FAILURE: &str = "NamespaceDeletionGroupVersionParsingFailure";
/// Listing or deleting some kind failed.
pub const CONTENT_FAILURE: &str = "NamespaceDeletionContentFailure";
/// Objects are left.
pub const CONTENT_REMAINING: &str = "NamespaceContentRemaining";
/// Finalizers hold objects that are left.
pub const FINALIZERS_REMAINING: &str = "NamespaceFinalizersRemaining";

/// Every type the controller keeps, with its "all is well" reason and message.
const OK: [(&str, &str, &str); 5] = [
    (DISCOVERY_FAILURE, "ResourcesDiscovered", "All resources successfully discovered"),
    (GV_PARSING_FAILURE, "ParsedGroupVersions", "All legacy kube types successfully parsed"),
    (CONTENT_FAILURE, "ContentDeleted", "All content successfully deleted, may be waiting on finalization"),
    (CONTENT_REMAINING, "ContentRemoved", "All content successfully removed"),
    (FINALIZERS_REMAINING, "ContentHasNoFinalizers", "All content-preserving finalizers finished"),
];

/// The conditions that say something is wrong, as (type, reason, message).
pub fn problems(content: &Content) -> Vec<(&'static str, &'static str, String)> {
    let mut out = Vec::new();
    if !content.errors.is_empty() {
        let mut errors = content.errors.clone();
        errors.sort();
        let message = format!("Failed to delete all resource types, {} remaining: {}", errors.len(), errors.join(", "));
        out.push((CONTENT_FAILURE, "ContentDeletionFailed", message));
    }
    let remaining: Vec<String> =
        content.remaining.iter().map(|(gr, n)| format!("{gr} has {n} resource instances")).collect();
    if !remaining.is_empty() {
        let message = format!("Some resources are remaining: {}", remaining.join(", "));
        out.push((CONTENT_REMAINING, "SomeResourcesRemain", message));
    }
    let finalizers: Vec<String> =
        content.finalizers.iter().map(|(f, n)| format!("{f} in {n} resource instances")).collect();
    if !finalizers.is_empty() {
        let message = format!("Some content in the namespace has finalizers remaining: {}", finalizers.join(", "));
        out.push((FINALIZERS_REMAINING, "SomeFinalizersRemain", message));
    }
    out
}

/// Brings `conditions` in line with `content`; true when anything changed.
/// A condition's transition time moves only when its status does.
pub fn update(conditions: &mut Vec<NamespaceCondition>, content: &Content, now: &Time) -> bool {
    let problems = problems(content);
    let mut changed = false;
    for (kind, ok_reason, ok_message) in OK {
        let (status, reason, message) = match problems.iter().find(|(t, _, _)| *t == kind) {
            Some((_, reason, message)) => ("True", *reason, message.clone()),
            None => ("False", ok_reason, ok_message.to_string()),
        };
        match conditions.iter_mut().find(|c| c.type_ == kind) {
            None => {
                conditions.push(NamespaceCondition {
                    type_: kind.into(),
                    status: status.into(),
                    reason: Some(reason.into()),
                    message: Some(message),
                    last_transition_time: Some(now.clone()),
                });
                changed = true;
            }
            Some(c) => {
                if c.status != status || c.reason.as_deref() != Some(reason) || c.message.as_deref() != Some(&message) {
                    if c.status != status {
                        c.last_transition_time = Some(now.clone());
                    }
                    c.status = status.into();
                    c.reason = Some(reason.into());
                    c.message = Some(message);
                    changed = true;
                }
            }
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn now() -> Time {
        Time("2026-01-01T00:00:00Z".parse().unwrap())
    }

    fn find<'a>(conditions: &'a [NamespaceCondition], kind: &str) -> &'a NamespaceCondition {
        conditions.iter().find(|c| c.type_ == kind).unwrap()
    }

    #[test]
    fn remaining_pods_and_finalizers_are_said_as_kubernetes_says_them() {
        let content = Content {
            remaining: BTreeMap::from([("pods.".into(), 2), ("replicasets.apps".into(), 1)]),
            finalizers: BTreeMap::from([("example.com/hold".into(), 1)]),
            errors: vec![],
            estimate_seconds: 30,
        };
        let mut conditions = Vec::new();
        assert!(update(&mut conditions, &content, &now()));
        assert_eq!(conditions.len(), 5, "every type, ok or not");
        let remaining = find(&conditions, CONTENT_REMAINING);
        assert_eq!(remaining.status, "True");
        assert_eq!(remaining.reason.as_deref(), Some("SomeResourcesRemain"));
        assert_eq!(
            remaining.message.as_deref(),
            Some(
                "Some resources are remaining: pods. has 2 resource instances, replicasets.apps has 1 resource instances"
            )
        );
        let finalizers = find(&conditions, FINALIZERS_REMAINING);
        assert_eq!(
            finalizers.message.as_deref(),
            Some("Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances")
        );
        let discovery = find(&conditions, DISCOVERY_FAILURE);
        assert_eq!((discovery.status.as_str(), discovery.reason.as_deref()), ("False", Some("ResourcesDiscovered")));
        assert!(!update(&mut conditions, &content, &now()), "nothing new, nothing to write");
    }

    #[test]
    fn failures_are_listed_and_clear_when_the_content_is_gone() {
        let failing = Content { errors: vec!["b failed".into(), "a failed".into()], ..Default::default() };
        let mut conditions = Vec::new();
        update(&mut conditions, &failing, &now());
        let failure = find(&conditions, CONTENT_FAILURE);
        assert_eq!(failure.status, "True");
        assert_eq!(
            failure.message.as_deref(),
            Some("Failed to delete all resource types, 2 remaining: a failed, b failed")
        );
        let later = Time("2026-01-01T00:01:00Z".parse().unwrap());
        assert!(update(&mut conditions, &Content::default(), &later));
        let failure = find(&conditions, CONTENT_FAILURE);
        assert_eq!((failure.status.as_str(), failure.reason.as_deref()), ("False", Some("ContentDeleted")));
        assert_eq!(failure.last_transition_time, Some(later), "it changed status");
        assert_eq!(find(&conditions, CONTENT_REMAINING).last_transition_time, Some(now()), "it did not");
    }
}
