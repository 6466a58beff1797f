//! Which lists merge, by which key, and which maps keep only the keys a patch
//! sets: Kubernetes' `patchStrategy` and `patchMergeKey` struct tags, for the
//! kinds rkube serves. Strategic merge patch ([`super::strategic_merge_patch`],
//! the server's PATCH) and rkubectl's client-side three-way apply both read
//! this one table.
//!
//! A field is named by its path from the object's root, field names only
//! (list positions left out): `["spec", "template", "spec", "containers", "env"]`.
//! A pod spec resolves the same wherever it sits: in a Pod (`spec`), in the pod
//! template of a Deployment, ReplicaSet, DaemonSet, StatefulSet,
//! ReplicationController or Job (`spec.template.spec`), of a PodTemplate
//! (`template.spec`) or of a CronJob's job template
//! (`spec.jobTemplate.spec.template.spec`); so does the metadata next to it.

/// How strategic merge patch treats a list field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStrategy {
    /// No patch strategy: the patch's list replaces the live one
    /// (`tolerations`, `args`, a node's `taints`).
    Replace,
    /// `patchStrategy:"merge"` with a `patchMergeKey`: the items are objects,
    /// matched by the value of this field and merged one by one
    /// (`containers` by `name`, container `ports` by `containerPort`).
    MergeByKey(&'static str),
    /// `patchStrategy:"merge"` without a key: the items are primitives,
    /// merged as a set (`finalizers`, a node's `podCIDRs`).
    MergeSet,
}

impl ListStrategy {
    /// The merge key, for [`ListStrategy::MergeByKey`].
    pub fn merge_key(self) -> Option<&'static str> {
        match self {
            ListStrategy::MergeByKey(key) => Some(key),
            ListStrategy::Replace | ListStrategy::MergeSet => None,
        }
    }
}

/// How the list at `path` in an object of `kind` merges.
pub fn list_strategy<S: AsRef<str>>(kind: &str, path: &[S]) -> ListStrategy {
    let path: Vec<&str> = path.iter().map(AsRef::as_ref).collect();
    match locate(kind, &path) {
        (Scope::Metadata, rest) => metadata_list(rest),
        (Scope::PodSpec, rest) => pod_spec_list(rest),
        (Scope::Object, path) => object_list(kind, path),
    }
}

/// The merge key of the list at `path` in an object of `kind`, if its items
/// merge by key.
pub fn merge_key<S: AsRef<str>>(kind: &str, path: &[S]) -> Option<&'static str> {
    list_strategy(kind, path).merge_key()
}

/// Whether the map at `path` in an object of `kind` has the `retainKeys`
/// strategy: applying a configuration clears the keys it does not set, so
/// switching a Deployment's strategy type or a volume's source leaves no
/// stale sibling behind. For a list (`volumes`), this is about its items.
pub fn retains_keys<S: AsRef<str>>(kind: &str, path: &[S]) -> bool {
    let path: Vec<&str> = path.iter().map(AsRef::as_ref).collect();
    match locate(kind, &path) {
        (Scope::Metadata, _) => false,
        (Scope::PodSpec, rest) => matches!(rest, ["volumes" | "resourceClaims"]),
        (Scope::Object, path) => {
            matches!((kind, path), ("Deployment", ["spec", "strategy"]) | ("Pod", ["status", "resourceClaimStatuses"]))
        }
    }
}

/// The struct a path leads into, as far as the table cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// An ObjectMeta: the object's own or a template's.
    Metadata,
    /// A PodSpec: a Pod's or a pod template's.
    PodSpec,
    /// Anything else, named from the object's root.
    Object,
}

/// Where the pod specs and template metadata of `kind` sit.
fn nested_scopes(kind: &str) -> &'static [(&'static [&'static str], Scope)] {
    match kind {
        "Pod" => &[(&["spec"], Scope::PodSpec)],
        "PodTemplate" => &[(&["template", "spec"], Scope::PodSpec), (&["template", "metadata"], Scope::Metadata)],
        "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet" | "ReplicationController" | "Job" => {
            &[(&["spec", "template", "spec"], Scope::PodSpec), (&["spec", "template", "metadata"], Scope::Metadata)]
        }
        "CronJob" => &[
            (&["spec", "jobTemplate", "spec", "template", "spec"], Scope::PodSpec),
            (&["spec", "jobTemplate", "spec", "template", "metadata"], Scope::Metadata),
            (&["spec", "jobTemplate", "metadata"], Scope::Metadata),
        ],
        _ => &[],
    }
}

/// The scope `path` leads into and the rest of the path inside it.
fn locate<'a, 'p>(kind: &str, path: &'a [&'p str]) -> (Scope, &'a [&'p str]) {
    if let Some(rest) = path.strip_prefix(&["metadata"][..]) {
        return (Scope::Metadata, rest);
    }
    for (prefix, scope) in nested_scopes(kind) {
        if let Some(rest) = path.strip_prefix(*prefix) {
            return (*scope, rest);
        }
    }
    (Scope::Object, path)
}

fn metadata_list(rest: &[&str]) -> ListStrategy {
    match rest {
        ["ownerReferences"] => ListStrategy::MergeByKey("uid"),
        ["finalizers"] => ListStrategy::MergeSet,
        _ => ListStrategy::Replace,
    }
}

fn is_container_list(field: &str) -> bool {
    matches!(field, "containers" | "initContainers" | "ephemeralContainers")
}

fn pod_spec_list(rest: &[&str]) -> ListStrategy {
    use ListStrategy::MergeByKey;
    match rest {
        [list] if is_container_list(list) => MergeByKey("name"),
        ["volumes" | "imagePullSecrets" | "schedulingGates" | "resourceClaims"] => MergeByKey("name"),
        ["hostAliases"] => MergeByKey("ip"),
        ["topologySpreadConstraints"] => MergeByKey("topologyKey"),
        [list, field] if is_container_list(list) => match *field {
            "ports" => MergeByKey("containerPort"),
            "env" => MergeByKey("name"),
            "volumeMounts" => MergeByKey("mountPath"),
            "volumeDevices" => MergeByKey("devicePath"),
            _ => ListStrategy::Replace,
        },
        _ => ListStrategy::Replace,
    }
}

fn object_list(kind: &str, path: &[&str]) -> ListStrategy {
    use ListStrategy::MergeByKey;
    match (kind, path) {
        // Every status condition list rkube serves (Pod, Node, Namespace,
        // PVC, ReplicationController, Deployment, ReplicaSet, DaemonSet, Job,
        // HPA, Service) merges by type.
        (_, ["status", "conditions"]) => MergeByKey("type"),
        ("Pod", ["status", "podIPs" | "hostIPs"]) => MergeByKey("ip"),
        ("Pod", ["status", "resourceClaimStatuses"]) => MergeByKey("name"),
        ("Service", ["spec", "ports"]) => MergeByKey("port"),
        ("Node", ["spec", "podCIDRs"]) => ListStrategy::MergeSet,
        ("Node", ["status", "addresses"]) => MergeByKey("type"),
        ("ServiceAccount", ["secrets"]) => MergeByKey("name"),
        _ => ListStrategy::Replace,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_template_lists_resolve_as_in_a_pod() {
        let in_pod = ["spec", "containers", "ports"];
        assert_eq!(merge_key("Pod", &in_pod), Some("containerPort"));
        for (kind, prefix) in [
            ("Deployment", &["spec", "template"][..]),
            ("ReplicaSet", &["spec", "template"]),
            ("DaemonSet", &["spec", "template"]),
            ("ReplicationController", &["spec", "template"]),
            ("Job", &["spec", "template"]),
            ("CronJob", &["spec", "jobTemplate", "spec", "template"]),
        ] {
            let at = |rest: &[&'static str]| [prefix, rest].concat();
            assert_eq!(merge_key(kind, &at(&["spec", "initContainers", "ports"])), Some("containerPort"), "{kind}");
            assert_eq!(merge_key(kind, &at(&["spec", "containers", "volumeMounts"])), Some("mountPath"), "{kind}");
            assert_eq!(merge_key(kind, &at(&["spec", "volumes"])), Some("name"), "{kind}");
            assert_eq!(merge_key(kind, &at(&["metadata", "ownerReferences"])), Some("uid"), "{kind}");
            assert_eq!(list_strategy(kind, &at(&["spec", "tolerations"])), ListStrategy::Replace, "{kind}");
            assert!(retains_keys(kind, &at(&["spec", "volumes"])), "{kind}");
        }
        // A pod spec's place in one kind means nothing in another.
        assert_eq!(merge_key("Service", &["spec", "template", "spec", "containers"]), None);
    }

    #[test]
    fn lists_merge_by_their_kubernetes_keys() {
        assert_eq!(merge_key("Service", &["spec", "ports"]), Some("port"));
        assert_eq!(merge_key("Pod", &["spec", "containers", "env"]), Some("name"));
        assert_eq!(merge_key("Pod", &["spec", "hostAliases"]), Some("ip"));
        assert_eq!(merge_key("Pod", &["spec", "topologySpreadConstraints"]), Some("topologyKey"));
        assert_eq!(merge_key("Pod", &["spec", "readinessGates"]), None);
        assert_eq!(merge_key("Node", &["status", "addresses"]), Some("type"));
        assert_eq!(merge_key("Deployment", &["status", "conditions"]), Some("type"));
        assert_eq!(merge_key("ServiceAccount", &["secrets"]), Some("name"));
        assert_eq!(merge_key("ServiceAccount", &["imagePullSecrets"]), None);
        assert_eq!(list_strategy("Node", &["spec", "taints"]), ListStrategy::Replace);
        assert_eq!(list_strategy("Node", &["spec", "podCIDRs"]), ListStrategy::MergeSet);
        assert_eq!(list_strategy("ConfigMap", &["metadata", "finalizers"]), ListStrategy::MergeSet);
        assert_eq!(list_strategy("Namespace", &["spec", "finalizers"]), ListStrategy::Replace);
        assert!(retains_keys("Deployment", &["spec", "strategy"]));
        assert!(!retains_keys("DaemonSet", &["spec", "updateStrategy"]));
    }
}
