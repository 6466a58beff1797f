//! The Kubernetes REST API (what kubectl, client-go and the Python client
//! speak), on the same registry as gRPC.
//!
//! It shares the API port with gRPC: gRPC requests go to their service by
//! path (`/rkube.v1.Resources/…`), everything else lands here. The front-end
//! only translates: URL and query to a [`Registry`] call, the result to
//! Kubernetes' JSON (objects, lists, watch events, Tables, `Status` errors).
//! Request checks live in the registry and the kinds' strategies, so both
//! front-ends behave the same.

pub mod discovery;
pub mod exec;
pub mod logs;
pub mod query;
mod watch;

use crate::authn::UserInfo;
use crate::authz::review::{create_review, review_resource};
use crate::metrics::Metrics;
use crate::node_proxy::NodeProxy;
use crate::openapi::OpenApi;
use crate::protobuf;
use crate::registry::{
    DeleteOptions, ListOptions, ListResult, Object, Patch, PatchKind, Propagation, Registry, WriteOptions,
};
use crate::resource_metrics::{MetricsQuery, ResourceMetrics};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use query::Query;
use rkube_api::manifest::FieldValidation;
use rkube_api::metrics::{self, MetricsResource};
use rkube_api::resource::RESOURCES;
use rkube_api::table::{IncludeObject, Table};
use rkube_api::versions::{self, Version};
use rkube_api::{ApiError, Reason, ResourceInfo, Result};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;

/// The largest request body read (kube-apiserver's limit is 3 MiB; objects
/// themselves are limited further by the registry).
const MAX_BODY_BYTES: usize = 3 << 20;

/// The REST front-end's shared state.
#[derive(Debug)]
pub struct Rest {
    registry: Arc<Registry>,
    proxy: Arc<NodeProxy>,
    metrics: Arc<Metrics>,
    usage: ResourceMetrics,
}

/// The router: every path the other routes do not take.
pub fn router(registry: Arc<Registry>, proxy: Arc<NodeProxy>, metrics: Arc<Metrics>) -> axum::Router {
    let usage = ResourceMetrics::new(registry.clone(), proxy.clone());
    let rest = Arc::new(Rest { registry, proxy, metrics, usage });
    axum::Router::new().fallback(serve).with_state(rest)
}

/// An error as Kubernetes answers it: a `metav1.Status` with the matching
/// HTTP code.
pub fn error_response(e: &ApiError) -> Response {
    let code = StatusCode::from_u16(e.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json_response(code, e.to_status_json());
    // Worth trying again soon: say when, as kube-apiserver does.
    if matches!(e.reason, Reason::TooManyRequests | Reason::ServiceUnavailable | Reason::Timeout) {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

fn json_response(code: StatusCode, body: impl Into<Body>) -> Response {
    let mut response = (code, body.into()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn value_response(code: StatusCode, v: &Value) -> Response {
    json_response(code, serde_json::to_vec(v).expect("a Value always serializes"))
}

fn not_found() -> ApiError {
    ApiError::new(Reason::NotFound, "the server could not find the requested resource")
}

fn method_not_allowed(method: &Method) -> ApiError {
    ApiError::new(
        Reason::MethodNotAllowed,
        format!("the server does not allow this method on the requested resource ({method})"),
    )
}

/// What a URL names.
#[derive(Debug, PartialEq)]
enum Route<'a> {
    Version,
    CoreVersions,
    Groups,
    Group(&'a str),
    Resources {
        group: &'a str,
        version: &'a str,
    },
    Object(Target),
    /// `metrics.k8s.io/v1beta1` nodes or pods: computed, never stored.
    Metrics(MetricsTarget<'a>),
    /// `/openapi/v3`: the index of the per-group-version documents.
    OpenApiIndex,
    /// `/openapi/v3/api/v1`, `/openapi/v3/apis/apps/v1`.
    OpenApi(&'a str),
    /// An access review (`authorization.k8s.io/v1`): created, never stored.
    Review(&'static ResourceInfo),
    /// `authentication.k8s.io/v1` `selfsubjectreviews`: who the caller is.
    SelfSubjectReview,
}

/// A resource, collection or object, with an optional subresource.
#[derive(Debug, PartialEq)]
struct Target {
    /// The stored resource.
    info: &'static ResourceInfo,
    /// The version the client speaks, when it is not the stored one.
    view: View,
    namespace: String,
    name: String,
    sub: String,
}

/// A collection or object of the metrics API.
#[derive(Debug, PartialEq)]
struct MetricsTarget<'a> {
    resource: &'static MetricsResource,
    namespace: &'a str,
    name: &'a str,
}

/// Reads a request path as kube-apiserver lays out its URLs.
fn route(path: &str) -> Option<Route<'_>> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["version"] => Some(Route::Version),
        ["api"] => Some(Route::CoreVersions),
        ["apis"] => Some(Route::Groups),
        ["apis", group] => Some(Route::Group(group)),
        ["openapi", "v3"] => Some(Route::OpenApiIndex),
        ["openapi", "v3", ..] => Some(Route::OpenApi(path.trim_matches('/').trim_start_matches("openapi/v3/"))),
        ["apis", "authentication.k8s.io", "v1", "selfsubjectreviews"] => Some(Route::SelfSubjectReview),
        ["api", version, rest @ ..] => resources("", version, rest),
        ["apis", metrics::GROUP, metrics::VERSION, rest @ ..] if !rest.is_empty() => metrics_route(rest),
        ["apis", group, version, plural] if review_resource(&format!("{group}/{version}"), plural).is_some() => {
            review_resource(&format!("{group}/{version}"), plural).map(Route::Review)
        }
        ["apis", group, version, rest @ ..] => resources(group, version, rest),
        _ => None,
    }
}

/// `nodes[/<name>]`, `pods`, `namespaces/<ns>/pods[/<name>]`.
fn metrics_route<'a>(rest: &[&'a str]) -> Option<Route<'a>> {
    let (resource, namespace, name) = match rest {
        ["namespaces", ns, plural, name @ ..] => (metrics::resource(plural)?, *ns, name),
        [plural, name @ ..] => (metrics::resource(plural)?, "", name),
        [] => return None,
    };
    let name = match name {
        [] => "",
        [name] => *name,
        _ => return None,
    };
    if resource.namespaced == namespace.is_empty() && !(resource.namespaced && name.is_empty()) {
        return None;
    }
    Some(Route::Metrics(MetricsTarget { resource, namespace, name }))
}

fn resources<'a>(group: &'a str, version: &'a str, rest: &[&str]) -> Option<Route<'a>> {
    let (namespace, plural, more) = match rest {
        [] => return Some(Route::Resources { group, version }),
        ["namespaces", ns, plural, more @ ..] if !matches!(*plural, "status" | "finalize") => (*ns, *plural, more),
        [plural, more @ ..] => ("", *plural, more),
    };
    let (info, view) = match RESOURCES.iter().find(|r| r.group == group && r.version == version && r.plural == plural) {
        Some(info) => (info, None),
        None => versions::served(group, version, plural).map(|v| (v.storage(), Some(v)))?,
    };
    let (name, sub) = match more {
        [] => ("", ""),
        [name] => (*name, ""),
        [name, sub] => (*name, *sub),
        _ => return None,
    };
    if name.is_empty() && !more.is_empty() || !info.namespaced && !namespace.is_empty() {
        return None;
    }
    if info.namespaced && namespace.is_empty() && !name.is_empty() {
        return None;
    }
    Some(Route::Object(Target { info, view, namespace: namespace.into(), name: name.into(), sub: sub.into() }))
}

async fn serve(State(rest): State<Arc<Rest>>, req: Request) -> Response {
    let start = Instant::now();
    let path = req.uri().path().to_string();
    let (verb, resource, response) = match route(&path) {
        None => ("get", String::new(), error_response(&not_found())),
        Some(Route::Version) => ("get", String::new(), json_response(StatusCode::OK, crate::grpc::version_json())),
        Some(Route::CoreVersions) => {
            let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
            ("get", String::new(), value_response(StatusCode::OK, &discovery::core_versions(host)))
        }
        Some(Route::Groups) => ("get", String::new(), value_response(StatusCode::OK, &discovery::group_list())),
        Some(Route::Group(g)) => {
            let r = discovery::group(g).map(|v| value_response(StatusCode::OK, &v));
            ("get", String::new(), r.unwrap_or_else(|| error_response(&not_found())))
        }
        Some(Route::Resources { group, version }) => {
            let r = discovery::resource_list(group, version).map(|v| value_response(StatusCode::OK, &v));
            ("get", String::new(), r.unwrap_or_else(|| error_response(&not_found())))
        }
        Some(Route::OpenApiIndex) => {
            ("get", String::new(), json_response(StatusCode::OK, OpenApi::shared().v3_index().clone()))
        }
        Some(Route::OpenApi(gv)) => {
            let r = OpenApi::shared().v3_group_version(gv).map(|(doc, hash)| {
                let mut response = json_response(StatusCode::OK, doc.clone());
                // kubectl caches the documents by the hash in their URL.
                if let Ok(etag) = HeaderValue::from_str(&format!("\"{hash}\"")) {
                    response.headers_mut().insert(header::ETAG, etag);
                }
                response
            });
            ("get", String::new(), r.unwrap_or_else(|| error_response(&not_found())))
        }
        Some(Route::Metrics(target)) => {
            let verb = if target.name.is_empty() { "list" } else { "get" };
            let response = match rest.metrics(&target, req.method(), req.uri().query().unwrap_or_default()).await {
                Ok(r) => r,
                Err(e) => error_response(&e),
            };
            (verb, target.resource.plural.to_string(), response)
        }
        Some(Route::Review(info)) => {
            let response = match rest.review(info, req).await {
                Ok(r) => r,
                Err(e) => error_response(&e),
            };
            ("create", info.plural.to_string(), response)
        }
        Some(Route::SelfSubjectReview) => {
            let response = match self_subject_review(&req) {
                Ok(r) => r,
                Err(e) => error_response(&e),
            };
            ("create", "selfsubjectreviews".into(), response)
        }
        Some(Route::Object(target)) => {
            let resource = target.info.plural.to_string();
            let (verb, response) = rest.object(target, req).await;
            (verb, resource, response)
        }
    };
    rest.metrics.record(verb, &resource, response.status().as_u16(), start.elapsed());
    response
}

/// `POST selfsubjectreviews`: the caller's user, as authentication saw it
/// (what `kubectl auth whoami` shows).
fn self_subject_review(req: &Request) -> Result<Response> {
    if req.method() != Method::POST {
        return Err(method_not_allowed(req.method()));
    }
    let user =
        req.extensions().get::<crate::authn::UserInfo>().cloned().unwrap_or_else(crate::authn::UserInfo::anonymous);
    let mut user_info = json!({"username": user.name, "groups": user.groups});
    if !user.uid.is_empty() {
        user_info["uid"] = user.uid.into();
    }
    let review = json!({
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "status": {"userInfo": user_info},
    });
    Ok(value_response(StatusCode::CREATED, &review))
}

/// How the client wants objects back.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Output {
    Json,
    /// A `meta.k8s.io/v1` Table, its rows carrying what `includeObject` asks.
    Table(IncludeObject),
}

fn output(headers: &HeaderMap, q: &Query) -> Result<Output> {
    let accept = headers.get(header::ACCEPT).and_then(|h| h.to_str().ok()).unwrap_or_default();
    // Clients list their preferences; a Table is what they get if they name one first.
    let first = accept.split(',').next().unwrap_or_default();
    Ok(if first.contains("as=Table") && first.contains("g=meta.k8s.io") {
        Output::Table(IncludeObject::parse(q.get("includeObject"))?)
    } else {
        Output::Json
    })
}

fn content_type(headers: &HeaderMap) -> String {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|h| h.to_str().ok()).unwrap_or_default();
    ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

/// Reads a request body, refusing oversized ones.
async fn read_body(body: Body) -> Result<Bytes> {
    axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|e| {
        let too_large = std::error::Error::source(&e).is_some_and(|s| s.to_string().contains("length limit"));
        if too_large {
            ApiError::new(
                Reason::RequestEntityTooLarge,
                format!("Request entity too large: limit is {MAX_BODY_BYTES} bytes"),
            )
        } else {
            ApiError::bad_request(format!("reading the request body: {e}"))
        }
    })
}

/// An object body in the content type the client sent, as JSON (or YAML,
/// which the registry reads too).
fn object_body(content_type: &str, body: Bytes) -> Result<Bytes> {
    match content_type {
        "" | "application/json" | "application/yaml" | "*/*" => Ok(body),
        protobuf::CONTENT_TYPE => {
            let (_, object) = protobuf::decode(&body)?;
            Ok(Bytes::from(serde_json::to_vec(&object).map_err(|e| ApiError::internal(e.to_string()))?))
        }
        other => Err(ApiError::new(
            Reason::UnsupportedMediaType,
            format!(
                "the body of the request was in an unknown format ({other}) - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf"
            ),
        )),
    }
}

fn patch_kind(content_type: &str) -> Result<PatchKind> {
    Ok(match content_type {
        "application/merge-patch+json" => PatchKind::Merge,
        "application/json-patch+json" => PatchKind::Json,
        "application/strategic-merge-patch+json" => PatchKind::Strategic,
        "application/apply-patch+yaml" => PatchKind::Apply,
        other => {
            return Err(ApiError::new(
                Reason::UnsupportedMediaType,
                format!(
                    "the body of the request was in an unknown format ({other}) - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json"
                ),
            ));
        }
    })
}

/// `dryRun`, `fieldValidation` and `fieldManager` of a create, update or patch.
fn write_options(q: &Query) -> Result<WriteOptions<'_>> {
    let field_validation = FieldValidation::parse(q.get("fieldValidation"))?;
    Ok(WriteOptions { dry_run: q.dry_run()?, field_validation, field_manager: q.get("fieldManager") })
}

/// Adds a `Warning: 299 - "…"` header per warning (RFC 7234, as
/// kube-apiserver sends them; kubectl prints them on stderr).
fn with_warnings(mut response: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let text = format!("299 - \"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""));
        if let Ok(value) = HeaderValue::from_str(&text) {
            response.headers_mut().append(header::WARNING, value);
        }
    }
    response
}

/// `{"kind":"Status","status":"Success",…}`.
fn success(code: StatusCode, details: Option<Value>) -> Response {
    let mut status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"});
    if let Some(d) = details {
        status["details"] = d;
    }
    if code != StatusCode::OK {
        status["code"] = code.as_u16().into();
    }
    value_response(code, &status)
}

impl Rest {
    /// GET of metrics: one object, or a list (`labelSelector` honoured).
    async fn metrics(&self, t: &MetricsTarget<'_>, method: &Method, query: &str) -> Result<Response> {
        let q = Query::parse(query);
        if method != Method::GET || q.flag("watch")? {
            return Err(method_not_allowed(method));
        }
        let query = MetricsQuery {
            resource: t.resource,
            namespace: t.namespace,
            name: t.name,
            label_selector: q.get("labelSelector"),
        };
        let mut items = self.usage.read(query).await?;
        if !t.name.is_empty() {
            return Ok(value_response(StatusCode::OK, &items.swap_remove(0)));
        }
        let list = json!({
            "kind": t.resource.list_kind(),
            "apiVersion": metrics::API_VERSION,
            "metadata": {},
            "items": items,
        });
        Ok(value_response(StatusCode::OK, &list))
    }

    /// POST of an access review: answered by the authorizer, not stored.
    async fn review(&self, info: &'static ResourceInfo, req: Request) -> Result<Response> {
        if req.method() != Method::POST {
            return Err(method_not_allowed(req.method()));
        }
        let user = req.extensions().get::<UserInfo>().cloned().unwrap_or_else(UserInfo::anonymous);
        let content_type = content_type(req.headers());
        let body = object_body(&content_type, read_body(req.into_body()).await?)?;
        let answer = create_review(self.registry.authorizer(), info, &user, &body).await?;
        Ok(value_response(StatusCode::CREATED, &answer))
    }

    /// Serves a request on a resource, collection or object; returns the
    /// verb (for metrics) and the response.
    async fn object(&self, target: Target, req: Request) -> (&'static str, Response) {
        let method = req.method().clone();
        let query = Query::parse(req.uri().query().unwrap_or_default());
        let verb = verb_of(&method, &target, &query);
        let response = match self.dispatch(&method, target, &query, req).await {
            Ok(r) => r,
            Err(e) => error_response(&e),
        };
        (verb, response)
    }

    async fn dispatch(&self, method: &Method, t: Target, q: &Query, req: Request) -> Result<Response> {
        let (info, view) = (t.info, t.view);
        let out = output(req.headers(), q)?;
        let ct = content_type(req.headers());
        let (ns, name) = (t.namespace.as_str(), t.name.as_str());
        match (method, name, t.sub.as_str()) {
            (&Method::GET, "", "") if q.flag("watch")? => self.watch(info, view, ns, q, out).await,
            (&Method::GET, "", "") => self.list(info, view, ns, q, out).await,
            (&Method::POST, "", "") => {
                let body = view_in(view, object_body(&ct, read_body(req.into_body()).await?)?)?;
                let w = self.registry.create_with_options(info, ns, &body, write_options(q)?).await?;
                Ok(with_warnings(self.object_response(StatusCode::CREATED, &w.object, view, out), &w.warnings))
            }
            (&Method::DELETE, "", "") => self.delete_collection(info, ns, q, req).await,
            (&Method::GET, _, "" | "status") => {
                let obj = self.registry.get(info, ns, name).await?;
                Ok(self.object_response(StatusCode::OK, &obj, view, out))
            }
            (&Method::PUT, _, sub @ ("" | "status")) => {
                let body = view_in(view, object_body(&ct, read_body(req.into_body()).await?)?)?;
                let opts = write_options(q)?;
                let w = self.registry.update_with_options(info, ns, name, &body, sub == "status", opts).await?;
                Ok(with_warnings(self.object_response(StatusCode::OK, &w.object, view, out), &w.warnings))
            }
            (&Method::PATCH, _, sub @ ("" | "status")) if view.is_some() => {
                let (kind, body) = (patch_kind(&ct)?, read_body(req.into_body()).await?);
                let w = self.patch_view(info, view, ns, name, kind, &body, sub == "status", write_options(q)?).await?;
                Ok(with_warnings(self.object_response(StatusCode::OK, &w.object, view, out), &w.warnings))
            }
            (&Method::PATCH, _, sub @ ("" | "status")) => {
                let kind = patch_kind(&ct)?;
                let body = read_body(req.into_body()).await?;
                let opts = write_options(q)?;
                let patch = Patch {
                    kind,
                    body: &body,
                    status: sub == "status",
                    dry_run: opts.dry_run,
                    field_validation: opts.field_validation,
                    field_manager: opts.field_manager,
                    force: q.flag("force")?,
                };
                let w = self.registry.patch(info, ns, name, &patch).await?;
                let code = if w.created { StatusCode::CREATED } else { StatusCode::OK };
                Ok(with_warnings(self.object_response(code, &w.object, view, out), &w.warnings))
            }
            (&Method::DELETE, _, "") => {
                let body = read_body(req.into_body()).await?;
                let opts = delete_options(q, &body)?;
                let (obj, gone) = self.registry.delete(info, ns, name, &opts).await?;
                if gone && info.kind != "Pod" {
                    let uid = serde_json::from_slice::<Value>(&obj.json)
                        .ok()
                        .and_then(|v| v.pointer("/metadata/uid").cloned())
                        .unwrap_or(Value::Null);
                    let details = json!({"name": name, "group": info.group, "kind": info.plural, "uid": uid});
                    return Ok(success(StatusCode::OK, Some(details)));
                }
                Ok(self.object_response(StatusCode::OK, &obj, view, Output::Json))
            }
            (_, _, "scale") => self.scale(method, info, ns, name, q, &ct, req).await,
            (&Method::POST, _, "binding") if info.kind == "Pod" => {
                let body = object_body(&ct, read_body(req.into_body()).await?)?;
                self.registry.bind(ns, name, &body).await?;
                Ok(success(StatusCode::CREATED, None))
            }
            (&Method::POST, _, "eviction") if info.kind == "Pod" => {
                let body = object_body(&ct, read_body(req.into_body()).await?)?;
                let eviction = rkube_api::manifest::parse_object(&body)?;
                let options = serde_json::to_vec(&eviction["deleteOptions"]).unwrap_or_default();
                let opts = delete_options(q, if eviction["deleteOptions"].is_object() { &options } else { b"" })?;
                self.registry.delete(info, ns, name, &opts).await?;
                Ok(success(StatusCode::CREATED, None))
            }
            (&Method::POST, _, "token") if info.kind == "ServiceAccount" => {
                let body = object_body(&ct, read_body(req.into_body()).await?)?;
                let request = self.registry.create_token(ns, name, &body).await?;
                Ok(value_response(StatusCode::CREATED, &request))
            }
            (&Method::GET, _, "log") if info.kind == "Pod" => {
                Ok(logs::logs(self.proxy.clone(), ns.into(), name.into(), req.uri().query().unwrap_or_default()).await)
            }
            (&Method::GET | &Method::POST, _, "exec") if info.kind == "Pod" => {
                let query = req.uri().query().unwrap_or_default().to_string();
                Ok(exec::exec(self.proxy.clone(), ns.into(), name.into(), &query, req).await)
            }
            (_, _, "" | "status" | "binding" | "eviction" | "log" | "exec" | "token") => {
                Err(method_not_allowed(method))
            }
            _ => Err(not_found()),
        }
    }

    /// One object, as JSON (in the client's version) or as a one-row Table.
    fn object_response(&self, code: StatusCode, obj: &Object, view: View, out: Output) -> Response {
        match out {
            Output::Json => json_response(code, view_out(view, &obj.json)),
            Output::Table(include) => match serde_json::from_slice::<Value>(&obj.json) {
                Ok(v) => json_response(
                    code,
                    table(obj.info, std::slice::from_ref(&v), &obj.rv.to_string(), "", include, true),
                ),
                Err(e) => error_response(&ApiError::internal(format!("stored object is not JSON: {e}"))),
            },
        }
    }

    async fn list(
        &self,
        info: &'static ResourceInfo,
        view: View,
        ns: &str,
        q: &Query,
        out: Output,
    ) -> Result<Response> {
        let opts = list_options(q)?;
        let list = self.registry.list(info, ns, &opts).await?;
        Ok(match out {
            Output::Json => json_response(StatusCode::OK, list_json(info, view, list)),
            Output::Table(include) => {
                let items: Vec<Value> =
                    list.items.iter().filter_map(|o| serde_json::from_slice(&o.json).ok()).collect();
                let rv = list.rv.to_string();
                json_response(StatusCode::OK, table(info, &items, &rv, &list.continue_token, include, true))
            }
        })
    }

    async fn watch(
        &self,
        info: &'static ResourceInfo,
        view: View,
        ns: &str,
        q: &Query,
        out: Output,
    ) -> Result<Response> {
        let opts = list_options(q)?;
        let req = watch::WatchRequest::from_query(q)?;
        let stream = watch::stream(self.registry.clone(), info, view, ns.to_string(), opts, req, out).await?;
        let mut response = Response::new(Body::from_stream(stream));
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(response)
    }

    async fn delete_collection(
        &self,
        info: &'static ResourceInfo,
        ns: &str,
        q: &Query,
        req: Request,
    ) -> Result<Response> {
        let body = read_body(req.into_body()).await?;
        let opts = delete_options(q, &body)?;
        let list = self.registry.list(info, ns, &list_options(q)?).await?;
        for item in &list.items {
            match self.registry.delete(info, &item.namespace, &item.name, &opts).await {
                Ok(_) => {}
                Err(e) if e.reason == Reason::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(success(StatusCode::OK, None))
    }

    /// A patch in a converted version: applied to the object as the client
    /// sees it, then stored back (on the resourceVersion it was read at; a
    /// lost race is retried).
    #[allow(clippy::too_many_arguments)]
    async fn patch_view(
        &self,
        info: &'static ResourceInfo,
        view: View,
        ns: &str,
        name: &str,
        kind: PatchKind,
        body: &[u8],
        status: bool,
        opts: WriteOptions<'_>,
    ) -> Result<crate::registry::Written> {
        let v = view.ok_or_else(|| ApiError::internal("patch_view without a view"))?;
        let mut attempts = 0;
        loop {
            let current = self.registry.get(info, ns, name).await?;
            let stored: Value = serde_json::from_slice(&current.json).map_err(|e| ApiError::internal(e.to_string()))?;
            let mut shown = v.from_storage(stored);
            crate::registry::apply_patch(kind, v.info.kind, &mut shown, body)?;
            shown["metadata"]["resourceVersion"] = current.rv.to_string().into();
            let new = serde_json::to_vec(&v.to_storage(shown)).map_err(|e| ApiError::internal(e.to_string()))?;
            match self.registry.update_with_options(info, ns, name, &new, status, opts).await {
                Err(e) if e.reason == Reason::Conflict && attempts < 5 => attempts += 1,
                r => return r,
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn scale(
        &self,
        method: &Method,
        info: &'static ResourceInfo,
        ns: &str,
        name: &str,
        q: &Query,
        ct: &str,
        req: Request,
    ) -> Result<Response> {
        let scale = match *method {
            Method::GET => self.registry.get_scale(info, ns, name).await?,
            Method::PUT => {
                let body = object_body(ct, read_body(req.into_body()).await?)?;
                self.registry.update_scale(info, ns, name, &body, q.dry_run()?).await?
            }
            Method::PATCH => {
                let kind = patch_kind(ct)?;
                let patch = read_body(req.into_body()).await?;
                // A patch is applied to the current object: a race with another
                // writer is retried, unless the patch itself names a resourceVersion.
                let mut attempts = 0;
                loop {
                    let mut scale = self.registry.get_scale(info, ns, name).await?;
                    let read_at = scale.pointer("/metadata/resourceVersion").cloned();
                    crate::registry::apply_patch(kind, rkube_api::scale::SCALE_KIND, &mut scale, &patch)?;
                    let pinned = scale.pointer("/metadata/resourceVersion").cloned() != read_at;
                    let body = serde_json::to_vec(&scale).map_err(|e| ApiError::internal(e.to_string()))?;
                    match self.registry.update_scale(info, ns, name, &body, q.dry_run()?).await {
                        Err(e) if e.reason == Reason::Conflict && !pinned && attempts < 5 => attempts += 1,
                        r => break r?,
                    }
                }
            }
            _ => return Err(method_not_allowed(method)),
        };
        Ok(value_response(StatusCode::OK, &scale))
    }
}

/// The verb a request is counted under (kube-apiserver's names).
fn verb_of(method: &Method, t: &Target, q: &Query) -> &'static str {
    match (method, t.name.is_empty(), t.sub.as_str()) {
        (_, _, "log") => "log",
        (_, _, "exec") => "exec",
        (&Method::GET, true, _) if q.flag("watch").unwrap_or(false) => "watch",
        (&Method::GET, true, _) => "list",
        (&Method::GET, false, _) => "get",
        (&Method::POST, _, _) => "create",
        (&Method::PUT, _, _) => "update",
        (&Method::PATCH, _, _) => "patch",
        (&Method::DELETE, true, _) => "deletecollection",
        (&Method::DELETE, false, _) => "delete",
        _ => "other",
    }
}

fn list_options(q: &Query) -> Result<ListOptions> {
    Ok(ListOptions {
        label_selector: q.get("labelSelector").to_string(),
        field_selector: q.get("fieldSelector").to_string(),
        limit: q.int("limit")?.unwrap_or(0).max(0),
        continue_token: q.get("continue").to_string(),
        resource_version: q.get("resourceVersion").to_string(),
    })
}

/// DeleteOptions from the query and the body (the body wins), as
/// kube-apiserver reads them.
fn delete_options(q: &Query, body: &[u8]) -> Result<DeleteOptions> {
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("decoding DeleteOptions: {e}")))?
    };
    let text = |field: &str| body.get(field).and_then(Value::as_str).map(str::to_string);
    let grace = match body.get("gracePeriodSeconds") {
        Some(Value::Null) | None => q.int("gracePeriodSeconds")?,
        Some(v) => Some(v.as_i64().ok_or_else(|| {
            ApiError::bad_request(format!("DeleteOptions.gracePeriodSeconds: expected an integer, got {v}"))
        })?),
    };
    let orphan = match body.get("orphanDependents").and_then(Value::as_bool) {
        Some(b) => Some(b),
        None if q.get("orphanDependents").is_empty() => None,
        None => Some(q.flag("orphanDependents")?),
    };
    let policy = text("propagationPolicy").unwrap_or_else(|| q.get("propagationPolicy").to_string());
    let propagation = match (policy.as_str(), orphan) {
        ("", Some(true)) | ("Orphan", _) => Propagation::Orphan,
        ("" | "Background", _) => Propagation::Background,
        ("Foreground", _) => Propagation::Foreground,
        (other, _) => {
            return Err(ApiError::bad_request(format!(
                "DeleteOptions.propagationPolicy: unsupported value \"{other}\": use Orphan, Background or Foreground"
            )));
        }
    };
    let dry: Vec<String> = match body.get("dryRun").and_then(Value::as_array) {
        Some(list) => list.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        None => q.all("dryRun"),
    };
    let pre = body.get("preconditions").cloned().unwrap_or(Value::Null);
    Ok(DeleteOptions {
        grace_period_seconds: grace,
        uid: pre.get("uid").and_then(Value::as_str).unwrap_or_default().to_string(),
        resource_version: pre.get("resourceVersion").and_then(Value::as_str).unwrap_or_default().to_string(),
        propagation,
        dry_run: query::dry_run(&dry)?,
    })
}

/// A list as Kubernetes writes it, assembled from the stored bytes.
/// The version a client speaks when it is not the stored one
/// (`events.k8s.io/v1` Events, `autoscaling/v1` HPAs).
type View = Option<&'static Version>;

/// A request body in the client's version, as stored.
fn view_in(view: View, body: Bytes) -> Result<Bytes> {
    let Some(v) = view else { return Ok(body) };
    let object = rkube_api::manifest::parse_object(&body)?;
    let api_version = object.get("apiVersion").and_then(Value::as_str).unwrap_or(v.info.api_version);
    if api_version == v.storage().api_version {
        return Ok(body);
    }
    if api_version != v.info.api_version {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            v.info.api_version
        )));
    }
    let stored = v.to_storage(object);
    Ok(Bytes::from(serde_json::to_vec(&stored).map_err(|e| ApiError::internal(e.to_string()))?))
}

/// A stored object's JSON in the client's version.
fn view_out(view: View, json: &Bytes) -> Bytes {
    match (view, serde_json::from_slice::<Value>(json)) {
        (Some(v), Ok(object)) => {
            Bytes::from(serde_json::to_vec(&v.from_storage(object)).expect("a Value always serializes"))
        }
        _ => json.clone(),
    }
}

fn list_json(info: &ResourceInfo, view: View, list: ListResult) -> Vec<u8> {
    let size: usize = list.items.iter().map(|o| o.json.len() + 1).sum();
    let mut out = Vec::with_capacity(size + 256);
    let shown = view.map_or(info, |v| &v.info);
    let head = json!({
        "kind": shown.list_kind(),
        "apiVersion": shown.api_version,
        "metadata": if list.continue_token.is_empty() {
            json!({"resourceVersion": list.rv.to_string()})
        } else {
            json!({"resourceVersion": list.rv.to_string(), "continue": list.continue_token})
        },
    });
    let head = serde_json::to_vec(&head).expect("a Value always serializes");
    out.extend_from_slice(&head[..head.len() - 1]);
    out.extend_from_slice(b",\"items\":[");
    for (i, item) in list.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match view {
            None => out.extend_from_slice(&item.json),
            Some(_) => out.extend_from_slice(&view_out(view, &item.json)),
        }
    }
    out.extend_from_slice(b"]}");
    out
}

/// A Table of `items`, as kube-apiserver prints them (`headers`: with the
/// column definitions).
fn table(
    info: &ResourceInfo,
    items: &[Value],
    rv: &str,
    continue_token: &str,
    include: IncludeObject,
    headers: bool,
) -> Vec<u8> {
    let t = Table::new(info.kind, items, rv, continue_token, include, k8s_openapi::jiff::Timestamp::now());
    let t = if headers { t } else { t.without_headers() };
    serde_json::to_vec(&t).expect("a table of JSON values always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(path: &str) -> Target {
        match route(path) {
            Some(Route::Object(t)) => t,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn urls_name_collections_objects_and_subresources() {
        let t = object("/api/v1/namespaces/default/pods");
        assert_eq!((t.info.plural, t.namespace.as_str(), t.name.as_str()), ("pods", "default", ""));
        let t = object("/api/v1/namespaces/default/pods/web/log");
        assert_eq!((t.name.as_str(), t.sub.as_str()), ("web", "log"));
        let t = object("/apis/apps/v1/namespaces/x/deployments/d/scale");
        assert_eq!((t.info.kind, t.sub.as_str()), ("Deployment", "scale"));
        let t = object("/api/v1/pods");
        assert_eq!((t.info.plural, t.namespace.as_str()), ("pods", ""));
        // A namespace is itself an object under namespaces/.
        let t = object("/api/v1/namespaces/kube-system");
        assert_eq!((t.info.kind, t.name.as_str(), t.namespace.as_str()), ("Namespace", "kube-system", ""));
        let t = object("/api/v1/namespaces/x/status");
        assert_eq!((t.info.kind, t.name.as_str(), t.sub.as_str()), ("Namespace", "x", "status"));
        let t = object("/api/v1/nodes/n1");
        assert_eq!((t.info.kind, t.name.as_str()), ("Node", "n1"));
    }

    #[test]
    fn errors_worth_retrying_say_when() {
        let busy = error_response(&ApiError::new(Reason::ServiceUnavailable, "etcd is unavailable"));
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(busy.headers()[header::RETRY_AFTER], "1");
        let missing = error_response(&not_found());
        assert!(missing.headers().get(header::RETRY_AFTER).is_none());
    }

    #[test]
    fn urls_that_name_nothing_are_not_found() {
        for path in [
            "/api/v1/widgets",
            "/api/v2/pods",
            "/apis/apps/v1/pods",
            "/api/v1/pods/web",
            "/api/v1/namespaces/x/nodes",
            "/api/v1/namespaces/x/pods/a/b/c",
            "/nope",
        ] {
            assert!(!matches!(route(path), Some(Route::Object(_))), "{path}");
        }
        assert_eq!(route("/apis"), Some(Route::Groups));
        assert_eq!(route("/api/v1"), Some(Route::Resources { group: "", version: "v1" }));
    }

    #[test]
    fn metrics_urls_name_node_and_pod_metrics() {
        let m = |path| match route(path) {
            Some(Route::Metrics(t)) => (t.resource.kind, t.namespace, t.name),
            other => panic!("{path}: {other:?}"),
        };
        assert_eq!(m("/apis/metrics.k8s.io/v1beta1/nodes"), ("NodeMetrics", "", ""));
        assert_eq!(m("/apis/metrics.k8s.io/v1beta1/nodes/n1"), ("NodeMetrics", "", "n1"));
        assert_eq!(m("/apis/metrics.k8s.io/v1beta1/pods"), ("PodMetrics", "", ""));
        assert_eq!(m("/apis/metrics.k8s.io/v1beta1/namespaces/x/pods"), ("PodMetrics", "x", ""));
        assert_eq!(m("/apis/metrics.k8s.io/v1beta1/namespaces/x/pods/web"), ("PodMetrics", "x", "web"));
        for path in [
            "/apis/metrics.k8s.io/v1beta1/pods/web",
            "/apis/metrics.k8s.io/v1beta1/namespaces/x/nodes",
            "/apis/metrics.k8s.io/v1beta1/deployments",
            "/apis/metrics.k8s.io/v1beta1/namespaces/x/pods/web/log",
        ] {
            assert!(route(path).is_none(), "{path}");
        }
        assert_eq!(
            route("/apis/metrics.k8s.io/v1beta1"),
            Some(Route::Resources { group: "metrics.k8s.io", version: "v1beta1" })
        );
    }

    #[test]
    fn tables_are_served_only_when_asked_for_first() {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json;as=Table;v=v1;g=meta.k8s.io,application/json"),
        );
        assert_eq!(output(&h, &Query::default()).unwrap(), Output::Table(IncludeObject::Metadata));
        let q = Query::parse("includeObject=Object");
        assert_eq!(output(&h, &q).unwrap(), Output::Table(IncludeObject::Object));
        assert_eq!(output(&h, &Query::parse("includeObject=All")).unwrap_err().code(), 400);
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json, */*"));
        assert_eq!(output(&h, &q).unwrap(), Output::Json);
    }

    #[test]
    fn delete_options_read_body_over_query_and_refuse_bad_values() {
        let q = Query::parse("gracePeriodSeconds=5&propagationPolicy=Orphan");
        let o = delete_options(&q, b"").unwrap();
        assert_eq!((o.grace_period_seconds, o.propagation), (Some(5), Propagation::Orphan));
        let o = delete_options(&q, br#"{"gracePeriodSeconds":0,"propagationPolicy":"Foreground","preconditions":{"uid":"u1"},"dryRun":["All"]}"#).unwrap();
        assert_eq!(
            (o.grace_period_seconds, o.propagation, o.uid.as_str(), o.dry_run),
            (Some(0), Propagation::Foreground, "u1", true)
        );
        let e = delete_options(&Query::default(), br#"{"propagationPolicy":"Sideways"}"#).unwrap_err();
        assert!(e.message.contains("propagationPolicy"), "{}", e.message);
        let e = delete_options(&Query::default(), br#"{"gracePeriodSeconds":"soon"}"#).unwrap_err();
        assert!(e.message.contains("gracePeriodSeconds"), "{}", e.message);
        let o = delete_options(&Query::default(), br#"{"gracePeriodSeconds":9223372036854775807}"#).unwrap();
        assert_eq!(o.grace_period_seconds, Some(i64::MAX));
    }

    #[test]
    fn warnings_become_quoted_warning_headers() {
        let r = with_warnings(Response::new(Body::empty()), &["unknown field \"spec.x\"".to_string()]);
        let h: Vec<&str> = r.headers().get_all(header::WARNING).iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(h, [r#"299 - "unknown field \"spec.x\"""#]);
        assert_eq!(
            write_options(&Query::parse("fieldValidation=Ignore")).unwrap().field_validation,
            FieldValidation::Ignore
        );
        assert!(write_options(&Query::parse("fieldValidation=Lax")).is_err());
    }

    #[test]
    fn patch_content_types_map_to_kinds_and_others_are_refused() {
        assert_eq!(patch_kind("application/strategic-merge-patch+json").unwrap(), PatchKind::Strategic);
        assert_eq!(patch_kind("application/apply-patch+yaml").unwrap(), PatchKind::Apply);
        assert_eq!(patch_kind("application/json").unwrap_err().code(), 415);
        assert_eq!(object_body("text/plain", Bytes::new()).unwrap_err().code(), 415);
    }
}
