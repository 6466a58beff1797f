//! Authorization: Kubernetes' Node and RBAC authorizers.
//!
//! A request becomes [`Attributes`] (who, which verb, on what), read from
//! the URL by [`RequestInfo::parse`] as kube-apiserver's `requestinfo.go`
//! reads it. [`Authorizer::authorize`] decides: the user's ClusterRoleBindings
//! grant cluster-wide, their RoleBindings in the binding's namespace, and a
//! request is allowed when one rule of a bound role matches it
//! ([`rules`]). The roles and bindings come from [`cache::PolicyIndex`], kept
//! current from the registry's watch of the four RBAC kinds and indexed by
//! subject, so a decision is a few hash lookups and a scan of the user's
//! rules. [`bootstrap`] writes kube-apiserver's default roles and bindings at
//! start; [`review`] answers SelfSubjectAccessReviews and
//! SubjectAccessReviews (`kubectl auth can-i`). Before RBAC, [`node`]
//! decides for kubelets (`system:node:<name>`): a node reads only the
//! Secrets, ConfigMaps and volumes its pods use, and the rest of what
//! kubelets need by the node rules.

pub mod bootstrap;
pub mod cache;
pub mod node;
pub mod request_info;
pub mod review;
pub mod rules;

pub use cache::Authorizer;
pub use request_info::RequestInfo;

use rkube_api::ApiError;

/// The authenticated user a request acts as (Kubernetes' `user.Info`).
pub use crate::authn::UserInfo;

/// The group whose members may do anything (`user.SystemPrivilegedGroup`).
pub const SYSTEM_MASTERS: &str = "system:masters";

/// Everything an authorizer looks at (Kubernetes' `authorizer.Attributes`).
///
/// A resource request names a verb (`get list watch create update patch
/// delete deletecollection`, or another one such as `impersonate`), an API
/// group, a resource with an optional subresource, a namespace (empty for
/// cluster-scoped resources or requests across namespaces) and a name
/// (empty for collections). A non-resource request names a lower-case HTTP
/// verb (`get`, `post`, …) and a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attributes<'a> {
    /// Who asks.
    pub user: &'a UserInfo,
    /// What they want to do.
    pub verb: &'a str,
    /// The API group ("" for the core group).
    pub api_group: &'a str,
    /// The API version (not used by RBAC).
    pub api_version: &'a str,
    /// The resource (`pods`).
    pub resource: &'a str,
    /// The subresource (`exec`, `status`), or "".
    pub subresource: &'a str,
    /// The namespace, or "".
    pub namespace: &'a str,
    /// The object's name, or "".
    pub name: &'a str,
    /// The request path (for non-resource requests).
    pub path: &'a str,
    /// Whether this is a request about a resource (else about `path`).
    pub resource_request: bool,
}

impl<'a> Attributes<'a> {
    /// A request about `resource` in `api_group`.
    pub fn resource(
        user: &'a UserInfo,
        verb: &'a str,
        api_group: &'a str,
        resource: &'a str,
        namespace: &'a str,
        name: &'a str,
    ) -> Self {
        Attributes {
            user,
            verb,
            api_group,
            api_version: "",
            resource,
            subresource: "",
            namespace,
            name,
            path: "",
            resource_request: true,
        }
    }

    /// The same request for a subresource (`pods/exec`).
    pub fn with_subresource(self, subresource: &'a str) -> Self {
        Attributes { subresource, ..self }
    }

    /// A request for a path that names no resource (`/healthz`, `/metrics`).
    pub fn non_resource(user: &'a UserInfo, verb: &'a str, path: &'a str) -> Self {
        Attributes {
            user,
            verb,
            api_group: "",
            api_version: "",
            resource: "",
            subresource: "",
            namespace: "",
            name: "",
            path,
            resource_request: false,
        }
    }

    /// What kube-apiserver says a user cannot do: `User "jane" cannot list
    /// resource "pods" in API group "" in the namespace "default"`.
    pub fn forbidden_message(&self) -> String {
        let user = &self.user.name;
        if !self.resource_request {
            return format!("User {user:?} cannot {} path {:?}", self.verb, self.path);
        }
        let resource = if self.subresource.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        };
        let scope = if self.namespace.is_empty() {
            "at the cluster scope".to_string()
        } else {
            format!("in the namespace {:?}", self.namespace)
        };
        format!("User {user:?} cannot {} resource {resource:?} in API group {:?} {scope}", self.verb, self.api_group)
    }

    /// The 403 kube-apiserver answers a denied request with (its
    /// `responsewriters.Forbidden`): `pods is forbidden: User "jane" cannot
    /// list resource "pods" in API group "" in the namespace "default"`,
    /// followed by `: <reason>` when the authorizer gave one.
    pub fn forbidden(&self, reason: &str) -> ApiError {
        let mut why = self.forbidden_message();
        if !reason.is_empty() {
            why = format!("{why}: {reason}");
        }
        if self.resource_request {
            ApiError::forbidden_in_group(self.api_group, self.resource, self.name, &why)
        } else {
            ApiError::forbidden_in_group("", "", "", &why)
        }
    }
}

/// What the authorizer decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The request may proceed; `reason` names the binding that allowed it
    /// (`RBAC: allowed by ClusterRoleBinding "…" of ClusterRole "…" to
    /// Group "…"`), or is empty.
    Allow {
        /// Why, for SubjectAccessReviews and audit.
        reason: String,
    },
    /// No rule allows the request. `reason` is empty, or lists the roles
    /// the user's bindings name that do not exist (`RBAC: clusterrole.rbac.
    /// authorization.k8s.io "x" not found`), as kube's RBAC authorizer says.
    /// (Kubernetes calls this "no opinion": RBAC never denies explicitly.)
    Deny {
        /// Why, appended to the 403 message when not empty.
        reason: String,
    },
}

impl Decision {
    /// Whether the request may proceed.
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }

    /// The reason string.
    pub fn reason(&self) -> &str {
        match self {
            Decision::Allow { reason } | Decision::Deny { reason } => reason,
        }
    }

    /// `Ok` when allowed, else the 403 for `attrs`.
    pub fn into_result(self, attrs: &Attributes<'_>) -> Result<(), ApiError> {
        match self {
            Decision::Allow { .. } => Ok(()),
            Decision::Deny { reason } => Err(attrs.forbidden(&reason)),
        }
    }
}

/// Middleware: authorizes each REST request as its authenticated user
/// (after [`crate::authn::authenticate`]), from the verb and resource its
/// method and path name ([`request_info::RequestInfo`]); 403 with
/// Kubernetes' message if RBAC does not allow it. gRPC calls pass through:
/// their handlers authorize them, knowing the resource from the message.
pub async fn authorize(
    axum::extract::State(authorizer): axum::extract::State<std::sync::Arc<cache::Authorizer>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let grpc =
        req.headers().get(http::header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let user = req.extensions().get::<UserInfo>().cloned().unwrap_or_else(UserInfo::anonymous);
    // Admission (NodeRestriction) asks who writes: the call runs as `user`.
    if grpc {
        return crate::admission::as_user(user, next.run(req)).await;
    }
    let info =
        request_info::RequestInfo::parse(req.method().as_str(), req.uri().path(), req.uri().query().unwrap_or(""));
    let attrs = info.attributes(&user);
    match authorizer.authorize(&attrs).await.into_result(&attrs) {
        Ok(()) => crate::admission::as_user(user, next.run(req)).await,
        Err(e) => crate::rest::error_response(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> UserInfo {
        UserInfo { name: name.into(), ..Default::default() }
    }

    #[test]
    fn forbidden_messages_are_kubernetes_own() {
        let jane = user("jane");
        let list = Attributes::resource(&jane, "list", "", "pods", "default", "");
        assert_eq!(
            list.forbidden("").message,
            r#"pods is forbidden: User "jane" cannot list resource "pods" in API group "" in the namespace "default""#
        );
        let x = user("x");
        let get = Attributes::resource(&x, "get", "", "secrets", "default", "db");
        assert_eq!(
            get.forbidden("").message,
            r#"secrets "db" is forbidden: User "x" cannot get resource "secrets" in API group "" in the namespace "default""#
        );
        let nodes = Attributes::resource(&x, "list", "", "nodes", "", "");
        assert_eq!(
            nodes.forbidden("").message,
            r#"nodes is forbidden: User "x" cannot list resource "nodes" in API group "" at the cluster scope"#
        );
        let exec = Attributes::resource(&x, "create", "", "pods", "default", "web").with_subresource("exec");
        assert_eq!(
            exec.forbidden("").message,
            r#"pods "web" is forbidden: User "x" cannot create resource "pods/exec" in API group "" in the namespace "default""#
        );
        let metrics = Attributes::non_resource(&x, "get", "/metrics");
        assert_eq!(metrics.forbidden("").message, r#"forbidden: User "x" cannot get path "/metrics""#);
        let deploy = Attributes::resource(&x, "delete", "apps", "deployments", "a", "web");
        let e = deploy.forbidden(r#"RBAC: clusterrole.rbac.authorization.k8s.io "gone" not found"#);
        assert_eq!(
            e.message,
            r#"deployments.apps "web" is forbidden: User "x" cannot delete resource "deployments" in API group "apps" in the namespace "a": RBAC: clusterrole.rbac.authorization.k8s.io "gone" not found"#
        );
        assert_eq!(
            (e.code(), e.group.as_str(), e.resource.as_str(), e.name.as_str()),
            (403, "apps", "deployments", "web")
        );
    }
}
