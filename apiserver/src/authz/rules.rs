//! Whether one RBAC rule allows a request, as Kubernetes' `RuleAllows`
//! (`plugin/pkg/auth/authorizer/rbac/rbac.go`) decides: `*` matches any
//! verb, API group or resource (subresources included), `*/status` any
//! resource's status, `resourceNames` only requests naming one of them (so
//! never a list, watch, create or deletecollection without a name), and a
//! non-resource URL ending in `*` every path it prefixes.

use super::Attributes;
use k8s_openapi::api::rbac::v1::PolicyRule;

/// One rule of a role, as the authorizer matches it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    /// Verbs, or `*`.
    pub verbs: Vec<String>,
    /// API groups ("" for core), or `*`.
    pub api_groups: Vec<String>,
    /// Resources, `resource/subresource`, `*/subresource`, or `*`.
    pub resources: Vec<String>,
    /// Object names; empty for all.
    pub resource_names: Vec<String>,
    /// Non-resource paths, exact or ending in `*`.
    pub non_resource_urls: Vec<String>,
}

impl From<&PolicyRule> for Rule {
    fn from(r: &PolicyRule) -> Rule {
        Rule {
            verbs: r.verbs.clone(),
            api_groups: r.api_groups.clone().unwrap_or_default(),
            resources: r.resources.clone().unwrap_or_default(),
            resource_names: r.resource_names.clone().unwrap_or_default(),
            non_resource_urls: r.non_resource_urls.clone().unwrap_or_default(),
        }
    }
}

const ALL: &str = "*";

impl Rule {
    /// Whether this rule allows the request `attrs` describes.
    pub fn allows(&self, attrs: &Attributes<'_>) -> bool {
        if !self.verb_matches(attrs.verb) {
            return false;
        }
        if !attrs.resource_request {
            return self.non_resource_url_matches(attrs.path);
        }
        self.api_group_matches(attrs.api_group)
            && self.resource_matches(attrs.resource, attrs.subresource)
            && self.resource_name_matches(attrs.name)
    }

    fn verb_matches(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == ALL || v == verb)
    }

    fn api_group_matches(&self, group: &str) -> bool {
        self.api_groups.iter().any(|g| g == ALL || g == group)
    }

    fn resource_matches(&self, resource: &str, subresource: &str) -> bool {
        self.resources.iter().any(|r| {
            if r == ALL {
                return true;
            }
            if subresource.is_empty() {
                return r == resource;
            }
            // `resource/subresource` or `*/subresource`.
            match r.split_once('/') {
                Some((res, sub)) => sub == subresource && (res == resource || res == ALL),
                None => false,
            }
        })
    }

    fn resource_name_matches(&self, name: &str) -> bool {
        self.resource_names.is_empty() || self.resource_names.iter().any(|n| n == name)
    }

    fn non_resource_url_matches(&self, path: &str) -> bool {
        self.non_resource_urls.iter().any(|u| {
            u == ALL
                || u == path
                || u.strip_suffix('*').is_some_and(|prefix| path.starts_with(prefix.trim_end_matches('*')))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::UserInfo;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> Rule {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        Rule {
            verbs: v(verbs),
            api_groups: v(groups),
            resources: v(resources),
            resource_names: v(names),
            non_resource_urls: Vec::new(),
        }
    }

    fn urls(verbs: &[&str], urls: &[&str]) -> Rule {
        Rule {
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            non_resource_urls: urls.iter().map(|s| s.to_string()).collect(),
            ..Rule::default()
        }
    }

    #[test]
    fn resource_rules_match_as_kubernetes_does() {
        let u = UserInfo::default();
        // (rule, verb, group, resource, subresource, name, allowed)
        let cases: &[(Rule, &str, &str, &str, &str, &str, bool)] = &[
            (rule(&["get"], &[""], &["pods"], &[]), "get", "", "pods", "", "p", true),
            (rule(&["get"], &[""], &["pods"], &[]), "list", "", "pods", "", "", false),
            (rule(&["*"], &[""], &["pods"], &[]), "deletecollection", "", "pods", "", "", true),
            (rule(&["get"], &[""], &["pods"], &[]), "get", "apps", "pods", "", "p", false),
            (rule(&["get"], &["*"], &["pods"], &[]), "get", "apps", "pods", "", "p", true),
            (rule(&["get"], &[""], &["*"], &[]), "get", "", "secrets", "", "s", true),
            // `*` covers subresources too.
            (rule(&["create"], &[""], &["*"], &[]), "create", "", "pods", "exec", "p", true),
            // A resource does not cover its subresources ...
            (rule(&["create"], &[""], &["pods"], &[]), "create", "", "pods", "exec", "p", false),
            // ... `resource/subresource` names one ...
            (rule(&["create"], &[""], &["pods/exec"], &[]), "create", "", "pods", "exec", "p", true),
            (rule(&["create"], &[""], &["pods/exec"], &[]), "create", "", "pods", "", "p", false),
            (rule(&["create"], &[""], &["pods/exec"], &[]), "create", "", "pods", "attach", "p", false),
            // ... and `*/subresource` that subresource of every resource.
            (rule(&["update"], &["*"], &["*/status"], &[]), "update", "apps", "deployments", "status", "d", true),
            (rule(&["update"], &["*"], &["*/status"], &[]), "update", "apps", "deployments", "scale", "d", false),
            (rule(&["update"], &["*"], &["*/status"], &[]), "update", "apps", "deployments", "", "d", false),
            // resourceNames: only requests naming one of them.
            (rule(&["get"], &[""], &["secrets"], &["db"]), "get", "", "secrets", "", "db", true),
            (rule(&["get"], &[""], &["secrets"], &["db"]), "get", "", "secrets", "", "web", false),
            (rule(&["list"], &[""], &["secrets"], &["db"]), "list", "", "secrets", "", "", false),
            (rule(&["create"], &[""], &["secrets"], &["db"]), "create", "", "secrets", "", "", false),
            (rule(&["watch"], &[""], &["secrets"], &["db"]), "watch", "", "secrets", "", "db", true),
        ];
        for (i, (r, verb, group, resource, sub, name, want)) in cases.iter().enumerate() {
            let attrs = Attributes::resource(&u, verb, group, resource, "ns", name).with_subresource(sub);
            assert_eq!(r.allows(&attrs), *want, "case {i}: {r:?} {attrs:?}");
        }
    }

    #[test]
    fn non_resource_rules_match_paths_and_prefixes() {
        let u = UserInfo::default();
        let cases: &[(Rule, &str, &str, bool)] = &[
            (urls(&["get"], &["/healthz"]), "get", "/healthz", true),
            (urls(&["get"], &["/healthz"]), "post", "/healthz", false),
            (urls(&["get"], &["/healthz"]), "get", "/healthz/etcd", false),
            (urls(&["get"], &["/healthz*"]), "get", "/healthz/etcd", true),
            (urls(&["get"], &["/api/*"]), "get", "/api/v1", true),
            (urls(&["get"], &["/api/*"]), "get", "/api", false),
            (urls(&["get"], &["/api/*"]), "get", "/apis/apps", false),
            (urls(&["*"], &["*"]), "post", "/anything", true),
            // A resource rule never allows a path, nor a path rule a resource.
            (rule(&["get"], &["*"], &["*"], &[]), "get", "/healthz", false),
        ];
        for (i, (r, verb, path, want)) in cases.iter().enumerate() {
            assert_eq!(r.allows(&Attributes::non_resource(&u, verb, path)), *want, "case {i}: {r:?} {path}");
        }
        let any_url = urls(&["*"], &["*"]);
        assert!(!any_url.allows(&Attributes::resource(&u, "get", "", "pods", "ns", "p")));
    }
}
