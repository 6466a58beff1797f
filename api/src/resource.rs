//! The table of resources rkube serves: for each kind its group, version,
//! plural and singular names, short names, scope and whether it has a status
//! subresource. Everything that turns a user's word ("po", "deploy",
//! "replicationcontrollers") or a manifest's apiVersion+kind into a resource
//! goes through here.

use crate::error::{ApiError, Result};

/// What rkube knows about one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group, "" for the core group.
    pub group: &'static str,
    /// API version within the group ("v1").
    pub version: &'static str,
    /// `group/version`, or just `version` for the core group.
    pub api_version: &'static str,
    /// The kind ("Pod").
    pub kind: &'static str,
    /// The plural resource name used in keys and URLs ("pods").
    pub plural: &'static str,
    /// The singular name ("pod").
    pub singular: &'static str,
    /// Namespace-scoped (true) or cluster-scoped (false).
    pub namespaced: bool,
    /// kubectl's short names ("po").
    pub short_names: &'static [&'static str],
    /// Whether the resource has a `status` that only UpdateStatus may change.
    pub has_status: bool,
}

macro_rules! resource {
    ($group:literal, $version:literal, $api:literal, $kind:literal, $plural:literal, $singular:literal,
     $namespaced:literal, [$($short:literal),*], $status:literal) => {
        ResourceInfo {
            group: $group,
            version: $version,
            api_version: $api,
            kind: $kind,
            plural: $plural,
            singular: $singular,
            namespaced: $namespaced,
            short_names: &[$($short),*],
            has_status: $status,
        }
    };
}

/// Every resource rkube stores, in discovery order.
pub static RESOURCES: &[ResourceInfo] = &[
    resource!("", "v1", "v1", "Namespace", "namespaces", "namespace", false, ["ns"], true),
    resource!("", "v1", "v1", "Node", "nodes", "node", false, ["no"], true),
    resource!("", "v1", "v1", "Pod", "pods", "pod", true, ["po"], true),
    resource!("", "v1", "v1", "Service", "services", "service", true, ["svc"], true),
    resource!("", "v1", "v1", "Endpoints", "endpoints", "endpoints", true, ["ep"], false),
    resource!(
        "",
        "v1",
        "v1",
        "ReplicationController",
        "replicationcontrollers",
        "replicationcontroller",
        true,
        ["rc"],
        true
    ),
    resource!("", "v1", "v1", "ConfigMap", "configmaps", "configmap", true, ["cm"], false),
    resource!("", "v1", "v1", "Secret", "secrets", "secret", true, [], false),
    resource!("", "v1", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", true, ["sa"], false),
    resource!("", "v1", "v1", "Event", "events", "event", true, ["ev"], false),
    resource!("", "v1", "v1", "PersistentVolume", "persistentvolumes", "persistentvolume", false, ["pv"], true),
    resource!(
        "",
        "v1",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        true,
        ["pvc"],
        true
    ),
    resource!("", "v1", "v1", "LimitRange", "limitranges", "limitrange", true, ["limits"], false),
    resource!("", "v1", "v1", "ResourceQuota", "resourcequotas", "resourcequota", true, ["quota"], true),
    resource!("apps", "v1", "apps/v1", "ReplicaSet", "replicasets", "replicaset", true, ["rs"], true),
    resource!("apps", "v1", "apps/v1", "Deployment", "deployments", "deployment", true, ["deploy"], true),
    resource!("apps", "v1", "apps/v1", "DaemonSet", "daemonsets", "daemonset", true, ["ds"], true),
    resource!("batch", "v1", "batch/v1", "Job", "jobs", "job", true, [], true),
    resource!(
        "autoscaling",
        "v2",
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        true,
        ["hpa"],
        true
    ),
    resource!("coordination.k8s.io", "v1", "coordination.k8s.io/v1", "Lease", "leases", "lease", true, [], false),
    resource!(
        "discovery.k8s.io",
        "v1",
        "discovery.k8s.io/v1",
        "EndpointSlice",
        "endpointslices",
        "endpointslice",
        true,
        [],
        false
    ),
    resource!(
        "rbac.authorization.k8s.io",
        "v1",
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        "clusterrolebinding",
        false,
        [],
        false
    ),
    resource!(
        "rbac.authorization.k8s.io",
        "v1",
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        "clusterroles",
        "clusterrole",
        false,
        [],
        false
    ),
    resource!(
        "rbac.authorization.k8s.io",
        "v1",
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        "rolebindings",
        "rolebinding",
        true,
        [],
        false
    ),
    resource!(
        "rbac.authorization.k8s.io",
        "v1",
        "rbac.authorization.k8s.io/v1",
        "Role",
        "roles",
        "role",
        true,
        [],
        false
    ),
];

/// `Binding` is not stored: it is the body of a pod's `binding` subresource.
pub static BINDING: ResourceInfo = resource!("", "v1", "v1", "Binding", "bindings", "binding", true, [], false);

impl ResourceInfo {
    /// The etcd key prefix of this resource (`/registry/pods/`).
    pub fn key_prefix(&self) -> String {
        format!("/registry/{}/", self.plural)
    }

    /// The etcd key of one object: `/registry/<resource>/<namespace>/<name>`
    /// (cluster-scoped: `/registry/<resource>/<name>`).
    pub fn key(&self, namespace: &str, name: &str) -> String {
        if self.namespaced {
            format!("/registry/{}/{}/{}", self.plural, namespace, name)
        } else {
            format!("/registry/{}/{}", self.plural, name)
        }
    }

    /// The kind of this resource's list (`PodList`).
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Whether `word` names this resource: plural, singular, short name or
    /// kind, case-insensitively, optionally qualified by group (`deployments.apps`).
    pub fn is_named(&self, word: &str) -> bool {
        let word = word.to_ascii_lowercase();
        let (base, group) = match word.split_once('.') {
            Some((b, g)) => (b.to_string(), Some(g.to_string())),
            None => (word, None),
        };
        if let Some(g) = group {
            let own = self.group.to_ascii_lowercase();
            let matches_group =
                g == own || own.starts_with(&format!("{g}.")) || (self.group.is_empty() && (g == "core" || g == "v1"));
            if !matches_group {
                return false;
            }
        }
        base == self.plural
            || base == self.singular
            || base == self.kind.to_ascii_lowercase()
            || self.short_names.contains(&base.as_str())
    }
}

/// The resource named by a user's word: `pods`, `pod`, `po`, `Pod`, `deployments.apps`.
pub fn lookup(word: &str) -> Result<&'static ResourceInfo> {
    RESOURCES.iter().find(|r| r.is_named(word)).ok_or_else(|| ApiError::not_found_resource(word))
}

/// The resource of a manifest's `apiVersion` and `kind`.
///
/// An unknown kind, or a known kind with the wrong apiVersion, is an error
/// naming it and, for the latter, the apiVersion to use instead.
pub fn for_kind(api_version: &str, kind: &str) -> Result<&'static ResourceInfo> {
    if api_version.is_empty() {
        return Err(ApiError::bad_request("Object 'apiVersion' is missing"));
    }
    if kind.is_empty() {
        return Err(ApiError::bad_request("Object 'Kind' is missing"));
    }
    let same_kind: Vec<&ResourceInfo> =
        RESOURCES.iter().chain(std::iter::once(&BINDING)).filter(|r| r.kind == kind).collect();
    if let Some(r) = same_kind.iter().find(|r| r.api_version == api_version) {
        return Ok(r);
    }
    match same_kind.first() {
        Some(r) => Err(ApiError::bad_request(format!(
            "no matches for kind \"{kind}\" in version \"{api_version}\" (use apiVersion \"{}\")",
            r.api_version
        ))),
        None => Err(ApiError::bad_request(format!("no matches for kind \"{kind}\" in version \"{api_version}\""))),
    }
}

/// The resource called `plural` in `api_version`, as a request names it.
pub fn for_resource(api_version: &str, plural: &str) -> Result<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.plural == plural && (api_version.is_empty() || r.api_version == api_version))
        .ok_or_else(|| ApiError::not_found_resource(&format!("{plural} in {api_version}")))
}

impl ApiError {
    /// `the server doesn't have a resource type "foo"`.
    pub fn not_found_resource(word: &str) -> Self {
        ApiError::new(crate::error::Reason::NotFound, format!("the server doesn't have a resource type \"{word}\""))
    }
}

const fn review(kind: &'static str, plural: &'static str, singular: &'static str) -> ResourceInfo {
    ResourceInfo {
        group: "authorization.k8s.io",
        version: "v1",
        api_version: "authorization.k8s.io/v1",
        kind,
        plural,
        singular,
        namespaced: false,
        short_names: &[],
        has_status: false,
    }
}

/// `selfsubjectaccessreviews` (`kubectl auth can-i`): created, answered by
/// the authorizer, never stored, so not in [`RESOURCES`].
pub static SELF_SUBJECT_ACCESS_REVIEWS: ResourceInfo =
    review("SelfSubjectAccessReview", "selfsubjectaccessreviews", "selfsubjectaccessreview");
/// `subjectaccessreviews`: as [`SELF_SUBJECT_ACCESS_REVIEWS`], about another user.
pub static SUBJECT_ACCESS_REVIEWS: ResourceInfo =
    review("SubjectAccessReview", "subjectaccessreviews", "subjectaccessreview");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kubectl_short_name_resolves() {
        for (word, plural) in [
            ("po", "pods"),
            ("no", "nodes"),
            ("svc", "services"),
            ("ep", "endpoints"),
            ("rc", "replicationcontrollers"),
            ("rs", "replicasets"),
            ("deploy", "deployments"),
            ("ds", "daemonsets"),
            ("cm", "configmaps"),
            ("ns", "namespaces"),
            ("ev", "events"),
            ("sa", "serviceaccounts"),
            ("pv", "persistentvolumes"),
            ("pvc", "persistentvolumeclaims"),
            ("hpa", "horizontalpodautoscalers"),
            ("quota", "resourcequotas"),
            ("limits", "limitranges"),
            ("Pod", "pods"),
            ("deployments.apps", "deployments"),
            ("jobs.batch", "jobs"),
            ("roles", "roles"),
            ("clusterrolebinding", "clusterrolebindings"),
            ("rolebindings.rbac.authorization.k8s.io", "rolebindings"),
            ("clusterroles.rbac", "clusterroles"),
        ] {
            assert_eq!(lookup(word).expect(word).plural, plural, "{word}");
        }
        assert!(lookup("deployments.batch").is_err());
        assert!(lookup("foos").is_err());
    }

    #[test]
    fn wrong_api_version_names_the_right_one() {
        let e = for_kind("v1", "Deployment").expect_err("wrong version");
        assert!(e.message.contains("apps/v1"), "{}", e.message);
        let e = for_kind("v1", "Podd").expect_err("unknown kind");
        assert!(e.message.contains("Podd"), "{}", e.message);
        assert_eq!(for_kind("apps/v1", "Deployment").expect("known").plural, "deployments");
    }

    #[test]
    fn keys_follow_the_registry_layout() {
        let pods = lookup("pods").expect("pods");
        assert_eq!(pods.key("default", "web"), "/registry/pods/default/web");
        let nodes = lookup("nodes").expect("nodes");
        assert_eq!(nodes.key("", "n1"), "/registry/nodes/n1");
    }
}
