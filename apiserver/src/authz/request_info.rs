//! What a REST request is about, read from its method, path and query as
//! kube-apiserver's `requestinfo.go` reads it: the attributes an authorizer
//! decides on.
//!
//! `/api/v1/...` and `/apis/<group>/<version>/...` are resource requests:
//! `[namespaces/<ns>/]<resource>[/<name>[/<subresource>]]`; the namespace
//! object itself (`/api/v1/namespaces/foo`, `.../foo/status`) is resource
//! `namespaces` named `foo` in namespace `foo`. GET without a name is
//! `list`, or `watch` with `?watch=true` (or the legacy `/watch/` prefix);
//! DELETE without a name is `deletecollection`; PATCH is `patch`. Every
//! other path (`/healthz`, `/version`, `/api`, `/apis/apps`, `/openapi/v3`)
//! is a non-resource request whose verb is the lower-cased method.

use super::{Attributes, UserInfo};
use crate::rest::query::Query;

/// The request attributes of one REST request (Kubernetes' `RequestInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestInfo {
    /// Whether the path names a resource (else it is a non-resource path).
    pub is_resource_request: bool,
    /// The URL path.
    pub path: String,
    /// The verb: `get list watch create update patch delete deletecollection
    /// proxy`, or for non-resource requests the lower-cased HTTP method.
    pub verb: String,
    /// `api` or `apis`.
    pub api_prefix: String,
    /// The API group ("" for the core group).
    pub api_group: String,
    /// The API version.
    pub api_version: String,
    /// The namespace ("" for cluster scope).
    pub namespace: String,
    /// The resource (`pods`).
    pub resource: String,
    /// The subresource (`status`, `exec`), or "".
    pub subresource: String,
    /// The object's name, or "".
    pub name: String,
    /// The path segments from the resource on.
    pub parts: Vec<String>,
}

/// Verbs that come first in the path (`/api/v1/watch/pods`).
const SPECIAL_VERBS: [&str; 2] = ["proxy", "watch"];

/// Subresources of a namespace (`namespaces/<ns>/status`), not resources in it.
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

/// Whether a `watch` query value asks to watch: anything but `0`, `false`
/// (any case) or nothing, as kube-apiserver converts it.
fn watch_requested(value: &str) -> bool {
    !(value.is_empty() || value == "0" || value.eq_ignore_ascii_case("false"))
}

/// Kubernetes' `path.IsValidPathSegmentName`.
pub(crate) fn valid_path_segment(name: &str) -> bool {
    name != "." && name != ".." && !name.contains('/') && !name.contains('%')
}

/// The name a field selector asks for exactly (`metadata.name=web`,
/// `metadata.name==web`).
pub(crate) fn exact_name(field_selector: &str) -> Option<&str> {
    field_selector.split(',').find_map(|term| {
        let (key, value) = term.split_once("==").or_else(|| term.split_once('='))?;
        (key.trim() == "metadata.name" && !key.ends_with('!')).then(|| value.trim())
    })
}

impl RequestInfo {
    /// Reads a request's method, path and raw query string.
    pub fn parse(method: &str, path: &str, query: &str) -> RequestInfo {
        let mut info = RequestInfo { path: path.to_string(), verb: method.to_ascii_lowercase(), ..Default::default() };
        let mut parts: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
        if parts.len() < 3 || !matches!(parts[0], "api" | "apis") {
            return info;
        }
        info.api_prefix = parts[0].to_string();
        parts.remove(0);
        if info.api_prefix == "apis" {
            if parts.len() < 3 {
                return info;
            }
            info.api_group = parts.remove(0).to_string();
        }
        info.is_resource_request = true;
        info.api_version = parts.remove(0).to_string();

        if SPECIAL_VERBS.contains(&parts[0]) {
            if parts.len() < 2 {
                // kube-apiserver refuses this request; nothing here matches it.
                info.verb = String::new();
                return info;
            }
            info.verb = parts.remove(0).to_string();
        } else {
            info.verb = match method {
                "POST" => "create",
                "GET" | "HEAD" => "get",
                "PUT" => "update",
                "PATCH" => "patch",
                "DELETE" => "delete",
                _ => "",
            }
            .to_string();
        }

        if parts[0] == "namespaces" && parts.len() > 1 {
            info.namespace = parts[1].to_string();
            // `namespaces/<ns>/<resource>...`: relative to the resource,
            // unless it is the namespace's own subresource.
            if parts.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&parts[2]) {
                parts.drain(..2);
            }
        }
        info.parts = parts.iter().map(|s| s.to_string()).collect();
        if parts.len() >= 3 && info.verb != "proxy" {
            info.subresource = parts[2].to_string();
        }
        if parts.len() >= 2 {
            info.name = parts[1].to_string();
        }
        info.resource = parts[0].to_string();

        if info.name.is_empty() && info.verb == "get" {
            let q = Query::parse(query);
            info.verb = if watch_requested(q.get("watch")) { "watch" } else { "list" }.to_string();
            if let Some(name) = exact_name(q.get("fieldSelector")).filter(|n| valid_path_segment(n)) {
                info.name = name.to_string();
            }
        }
        if info.name.is_empty() && info.verb == "delete" {
            info.verb = "deletecollection".into();
        }
        info
    }

    /// The attributes of this request made by `user`.
    pub fn attributes<'a>(&'a self, user: &'a UserInfo) -> Attributes<'a> {
        Attributes {
            user,
            verb: &self.verb,
            api_group: &self.api_group,
            api_version: &self.api_version,
            resource: &self.resource,
            subresource: &self.subresource,
            namespace: &self.namespace,
            name: &self.name,
            path: &self.path,
            resource_request: self.is_resource_request,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request: method, path, query.
    type Request<'a> = (&'a str, &'a str, &'a str);
    /// What it is about: verb, group, version, namespace, resource, subresource, name.
    type Parsed<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str, &'a str, &'a str);

    #[test]
    fn parses_requests_as_kube_apiserver_does() {
        let cases: &[(Request<'_>, Parsed<'_>)] = &[
            (("GET", "/api/v1/namespaces/default/pods", ""), ("list", "", "v1", "default", "pods", "", "")),
            (("GET", "/api/v1/namespaces/default/pods/web", ""), ("get", "", "v1", "default", "pods", "", "web")),
            (("GET", "/api/v1/pods", ""), ("list", "", "v1", "", "pods", "", "")),
            (("GET", "/api/v1/pods", "watch=true"), ("watch", "", "v1", "", "pods", "", "")),
            (("GET", "/api/v1/pods", "watch=1&resourceVersion=5"), ("watch", "", "v1", "", "pods", "", "")),
            (("GET", "/api/v1/pods", "watch=false"), ("list", "", "v1", "", "pods", "", "")),
            (("GET", "/api/v1/pods", "watch=0"), ("list", "", "v1", "", "pods", "", "")),
            (("GET", "/api/v1/watch/pods", ""), ("watch", "", "v1", "", "pods", "", "")),
            (("GET", "/api/v1/watch/namespaces/a/pods/web", ""), ("watch", "", "v1", "a", "pods", "", "web")),
            (
                ("GET", "/api/v1/namespaces/a/pods", "fieldSelector=metadata.name%3Dweb&watch=true"),
                ("watch", "", "v1", "a", "pods", "", "web"),
            ),
            (("POST", "/api/v1/namespaces/a/pods", ""), ("create", "", "v1", "a", "pods", "", "")),
            (("PUT", "/api/v1/namespaces/a/pods/web", ""), ("update", "", "v1", "a", "pods", "", "web")),
            (("PATCH", "/api/v1/namespaces/a/pods/web", ""), ("patch", "", "v1", "a", "pods", "", "web")),
            (("DELETE", "/api/v1/namespaces/a/pods/web", ""), ("delete", "", "v1", "a", "pods", "", "web")),
            (("DELETE", "/api/v1/namespaces/a/pods", ""), ("deletecollection", "", "v1", "a", "pods", "", "")),
            (
                ("POST", "/api/v1/namespaces/a/pods/web/exec", "command=ls"),
                ("create", "", "v1", "a", "pods", "exec", "web"),
            ),
            (("GET", "/api/v1/namespaces/a/pods/web/log", ""), ("get", "", "v1", "a", "pods", "log", "web")),
            (("PUT", "/api/v1/nodes/n1/status", ""), ("update", "", "v1", "", "nodes", "status", "n1")),
            // The namespace object itself, and its subresources.
            (("GET", "/api/v1/namespaces/foo", ""), ("get", "", "v1", "foo", "namespaces", "", "foo")),
            (("GET", "/api/v1/namespaces", ""), ("list", "", "v1", "", "namespaces", "", "")),
            (("PUT", "/api/v1/namespaces/foo/status", ""), ("update", "", "v1", "foo", "namespaces", "status", "foo")),
            (
                ("PUT", "/api/v1/namespaces/foo/finalize", ""),
                ("update", "", "v1", "foo", "namespaces", "finalize", "foo"),
            ),
            (
                ("GET", "/apis/apps/v1/namespaces/a/deployments/web/scale", ""),
                ("get", "apps", "v1", "a", "deployments", "scale", "web"),
            ),
            (
                ("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles", ""),
                ("list", "rbac.authorization.k8s.io", "v1", "", "clusterroles", "", ""),
            ),
            (
                ("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", ""),
                ("create", "authorization.k8s.io", "v1", "", "selfsubjectaccessreviews", "", ""),
            ),
            // proxy has no subresource: the rest is the proxied path.
            (
                ("GET", "/api/v1/proxy/namespaces/a/services/web/some/path", ""),
                ("proxy", "", "v1", "a", "services", "", "web"),
            ),
        ];
        for ((method, path, query), want) in cases {
            let got = RequestInfo::parse(method, path, query);
            assert!(got.is_resource_request, "{method} {path}");
            let got_tuple = (
                got.verb.as_str(),
                got.api_group.as_str(),
                got.api_version.as_str(),
                got.namespace.as_str(),
                got.resource.as_str(),
                got.subresource.as_str(),
                got.name.as_str(),
            );
            assert_eq!(got_tuple, *want, "{method} {path}?{query}");
        }
    }

    #[test]
    fn other_paths_are_non_resource_requests() {
        for (method, path, verb) in [
            ("GET", "/healthz", "get"),
            ("GET", "/version", "get"),
            ("GET", "/openapi/v2", "get"),
            ("GET", "/openapi/v3/apis/apps/v1", "get"),
            ("GET", "/api", "get"),
            ("GET", "/api/v1", "get"),
            ("GET", "/apis", "get"),
            ("GET", "/apis/apps", "get"),
            ("GET", "/apis/apps/v1", "get"),
            ("POST", "/metrics", "post"),
            ("GET", "/", "get"),
        ] {
            let got = RequestInfo::parse(method, path, "");
            assert!(!got.is_resource_request, "{path}");
            assert_eq!((got.verb.as_str(), got.path.as_str()), (verb, path));
        }
    }

    #[test]
    fn attributes_carry_the_request() {
        let user = UserInfo { name: "jane".into(), ..Default::default() };
        let info = RequestInfo::parse("GET", "/api/v1/namespaces/a/secrets/db", "");
        let attrs = info.attributes(&user);
        assert_eq!(
            attrs.forbidden("").message,
            r#"secrets "db" is forbidden: User "jane" cannot get resource "secrets" in API group "" in the namespace "a""#
        );
        let info = RequestInfo::parse("GET", "/metrics", "");
        assert_eq!(
            info.attributes(&user).forbidden("").message,
            r#"forbidden: User "jane" cannot get path "/metrics""#
        );
    }
}
