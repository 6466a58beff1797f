//! The gRPC front-end: `rkube.v1.Resources` mapped onto the [`Registry`].
//!
//! Nothing here decides anything about objects; it translates messages and
//! errors (an [`ApiError`] travels as a gRPC status whose details are the
//! Kubernetes `Status` JSON) and records metrics. Every call is authorized
//! (RBAC) as the user the authentication middleware put in its extensions,
//! with the verb, resource and subresource its REST twin would have.

use crate::authn::UserInfo;
use crate::authz::Attributes;
use crate::authz::review::{create_review, review_resource};
use crate::metrics::Metrics;
use crate::node_proxy::{NodeProxy, kubelet_error, start_for};
use crate::registry::{DeleteOptions, ListOptions, Object, Patch, PatchKind, Propagation, Registry};
use crate::resource_metrics::{MetricsQuery, ResourceMetrics};
use crate::watch::EventType;
use futures::{Stream, StreamExt};
use rkube_api::manifest::FieldValidation;
use rkube_api::resource::{RESOURCES, for_resource};
use rkube_api::{ApiError, ResourceInfo};
use rkube_proto::v1 as pb;
use rkube_proto::v1::resources_server::Resources;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;
use tonic::{Request, Response, Status};

/// The gRPC service.
#[derive(Debug, Clone)]
pub struct GrpcApi {
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    proxy: Arc<NodeProxy>,
    usage: Arc<ResourceMetrics>,
}

impl GrpcApi {
    /// A service over `registry`, reaching kubelets through `proxy`.
    pub fn new(registry: Arc<Registry>, metrics: Arc<Metrics>, proxy: Arc<NodeProxy>) -> Self {
        let usage = Arc::new(ResourceMetrics::new(registry.clone(), proxy.clone()));
        GrpcApi { registry, metrics, proxy, usage }
    }

    /// Whether `user` may `verb` the `info` resource's `subresource` of
    /// `namespace/name` (Kubernetes' 403 if not).
    async fn authorize(
        &self,
        user: &UserInfo,
        verb: &str,
        info: &ResourceInfo,
        subresource: &str,
        namespace: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        let attrs =
            Attributes::resource(user, verb, info.group, info.plural, namespace, name).with_subresource(subresource);
        self.allow(&attrs).await
    }

    /// Whether the authorizer allows `attrs` (Kubernetes' 403 if not).
    async fn allow(&self, attrs: &Attributes<'_>) -> Result<(), ApiError> {
        self.registry.authorizer().authorize(attrs).await.into_result(attrs)
    }

    /// Records a finished request and turns its result into a gRPC answer.
    fn finish<T>(
        &self,
        verb: &'static str,
        resource: Option<&pb::ResourceRef>,
        start: Instant,
        result: Result<T, ApiError>,
    ) -> Result<Response<T>, Status> {
        let code = match &result {
            Ok(_) if verb == "create" => 201,
            Ok(_) => 200,
            Err(e) => e.code(),
        };
        let r = resource.map(|r| r.resource.as_str()).unwrap_or("pods");
        self.metrics.record(verb, r, code, start.elapsed());
        result.map(Response::new).map_err(Status::from)
    }
}

impl GrpcApi {
    /// Update (`status: false`) or UpdateStatus (`status: true`).
    async fn replace(
        &self,
        user: UserInfo,
        req: pb::UpdateRequest,
        status: bool,
    ) -> Result<Response<pb::Object>, Status> {
        let start = Instant::now();
        let result = async {
            let info = resource_of(req.resource.as_ref())?;
            let sub = if status { "status" } else { "" };
            self.authorize(&user, "update", info, sub, &req.namespace, &req.name).await?;
            self.registry.update(info, &req.namespace, &req.name, &req.body, status, req.dry_run).await.map(to_pb)
        }
        .await;
        self.finish(if status { "update_status" } else { "update" }, req.resource.as_ref(), start, result)
    }

    /// Create of an access review: the authorizer's answer, not stored.
    async fn review(&self, user: &UserInfo, info: &'static ResourceInfo, body: &[u8]) -> Result<pb::Object, ApiError> {
        self.authorize(user, "create", info, "", "", "").await?;
        let answer = create_review(self.registry.authorizer(), info, user, body).await?;
        Ok(pb::Object {
            api_version: info.api_version.to_string(),
            kind: info.kind.to_string(),
            namespace: String::new(),
            name: String::new(),
            resource_version: String::new(),
            json: serde_json::to_vec(&answer).map_err(|e| ApiError::internal(e.to_string()))?.into(),
        })
    }
}

/// The user of a call, as the authentication middleware found it
/// (anonymous if it did not run).
fn user_of<T>(req: &Request<T>) -> UserInfo {
    req.extensions().get::<UserInfo>().cloned().unwrap_or_else(UserInfo::anonymous)
}

/// The one object a list or watch selects by `metadata.name`, or "": its
/// name is the request's for authorization, as kube's RequestInfo makes it
/// (a kubelet's per-object watch of a Secret).
fn selected_name(field_selector: &str) -> &str {
    use crate::authz::request_info::{exact_name, valid_path_segment};
    exact_name(field_selector).filter(|n| valid_path_segment(n)).unwrap_or("")
}

fn resource_of(r: Option<&pb::ResourceRef>) -> Result<&'static ResourceInfo, ApiError> {
    let r = r.ok_or_else(|| ApiError::bad_request("request names no resource"))?;
    for_resource(&r.api_version, &r.resource)
}

/// The wire form of an object.
pub fn to_pb(o: Object) -> pb::Object {
    pb::Object {
        api_version: o.info.api_version.to_string(),
        kind: o.info.kind.to_string(),
        namespace: o.namespace,
        name: o.name,
        resource_version: o.rv.to_string(),
        json: o.json,
    }
}

/// The wire form of a Scale.
fn scale_to_pb(scale: &serde_json::Value) -> Result<pb::Object, ApiError> {
    let text = |field: &str| scale["metadata"][field].as_str().unwrap_or_default().to_string();
    Ok(pb::Object {
        api_version: rkube_api::scale::SCALE_API_VERSION.into(),
        kind: rkube_api::scale::SCALE_KIND.into(),
        namespace: text("namespace"),
        name: text("name"),
        resource_version: text("resourceVersion"),
        json: serde_json::to_vec(scale).map_err(|e| ApiError::internal(e.to_string()))?.into(),
    })
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEvent, Status>> + Send>>;
type LogStream = Pin<Box<dyn Stream<Item = Result<pb::LogChunk, Status>> + Send>>;
type ExecStream = Pin<Box<dyn Stream<Item = Result<pb::ExecOutput, Status>> + Send>>;

#[tonic::async_trait]
impl Resources for GrpcApi {
    async fn create(&self, req: Request<pb::CreateRequest>) -> Result<Response<pb::Object>, Status> {
        let user = user_of(&req);
        let req = req.into_inner();
        let start = Instant::now();
        let result = async {
            if let Some(r) = req.resource.as_ref()
                && let Some(info) = review_resource(&r.api_version, &r.resource)
            {
                return self.review(&user, info, &req.body).await;
            }
            let info = resource_of(req.resource.as_ref())?;
            self.authorize(&user, "create", info, "", &req.namespace, "").await?;
            self.registry.create(info, &req.namespace, &req.body, req.dry_run).await.map(to_pb)
        }
        .await;
        self.finish("create", req.resource.as_ref(), start, result)
    }

    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::Object>, Status> {
        let user = user_of(&req);
        let req = req.into_inner();
        let start = Instant::now();
        let result = async {
            let info = resource_of(req.resource.as_ref())?;
            self.authorize(&user, "get", info, "", &req.namespace, &req.name).await?;
            self.registry.get(info, &req.namespace, &req.name).await.map(to_pb)
        }
        .await;
        self.finish("get", req.resource.as_ref(), start, result)
    }

    async fn list(&self, req: Request<pb::ListRequest>) -> Result<Response<pb::ListResponse>, Status> {
        let user = user_of(&req);
        let req = req.into_inner();
        let start = Instant::now();
        let result = async {
            let info = resource_of(req.resource.as_ref())?;
            let name = selected_name(&req.field_selector);
            self.authorize(&user, "list", info, "", &req.namespace, name).await?;
            let opts = ListOptions {
                label_selector: req.label_selector.clone(),
                field_selector: req.field_selector.clone(),
                limit: req.limit,
                continue_token: req.continue_token.clone(),
                resource_version: String::new(),
            };
            let list = self.registry.list(info, &req.namespace, &opts).await?;
            Ok(pb::ListResponse {
                api_version: info.api_version.to_string(),
                kind: info.list_kind(),
                resource_version: list.rv.to_string(),
                items: list.items.into_iter().map(to_pb).collect(),
                continue_token: list.continue_token,
            })
        }
        .await;
        self.finish("list", req.resource.as_ref(), start, result)
    }

    async fn update(&self, req: Request<pb::UpdateRequest>) -> Result<Response<pb::Object>, Status> {
        self.replace(user_of(&req), req.into_inner(), false).await
    }

    async fn update_status(&self, req: Request<pb::UpdateRequest>) -> Result<Response<pb::Object>, Status> {
        self.replace(user_of(&req), req.into_inner(), true).await
    }

    async fn get_scale(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::Object>, Status> {
        let user = user_of(&req);
        let req = req.into_inner();
        let start = Instant::now();
        let result = async {
            let info = resource_of(req.resource.as_ref())?;
            self.authorize(&user, "get", info, "scale", &req.namespace, &req.name).await?;
            let scale = self.registry.get_scale(info, &req.namespace, &req.name).await?;
            scale_to_pb(&scale)
        }
        .await;
        self.finish("get_scale", req.resource.as_ref(), start, result)
    }

    async fn update_scale(&self, req: Request<pb::UpdateRequest>) -> Result<Response<pb::Object>, Status> {
        let user = user_of(&req);
        let req = req.into_inner();
        let start = Instant::now();
        let result = async {
            let info = resource_of(req.resource.as_ref())?;
            self.authorize(&user, "update", info, "scale", &req.namespace, &req.name).await?;
            let scale = self.registry.update_scale(info, &req.namespace, &req.name, &req.body, req.dry_run).await?;
            scale_to_pb(&scale)
        }
        .await;
        self.finish("update_scale", req.resource.as_ref(), start, result)
    }

    async fn patch(&self, req: Request<pb::PatchRequest>) -> Result<Response<pb::Object>, Status> {
        let user = user_of(&req);
        let req = req.into_inner();
        let start = Instant::now();
        let result = async {
            let info = resource_of(req.resource.as_ref())?;
            let sub = if req.status { "status" } else { "" };
            self.authorize(&user, "patch", info, sub, &req.namespace, &req.name).await?;
            let kind = match pb::PatchType::try_from(req.patch_type) {
                Ok(pb::PatchType::Merge) | Ok(pb::PatchType::Unspecified) => PatchKind::Merge,
                Ok(pb::PatchType::Json) => PatchKind::Json,
                Ok(pb::PatchType::Strategic) => PatchKind::Strategic,
                Err(_) => return Err(ApiError::bad_request(format!("unknown patch type {}", req.patch_type))),
            };
            let patch = Patch {
                kind,
                body: &req.patch,
                status: req.status,
                dry_run: req.dry_run,
                field_validation: FieldValidation::Strict,
                field_manager: "",
                force: false,
            };
            self.registry.patch(info, &req.namespace, &req.name, &patch).await.map(|w| to_pb(w.object))
        }
        .await;
        self.finish("patch", req.resource.as_ref(), start, result)
    }

    async fn delete(&self, req: Request<pb::DeleteRequest>) -> Result<Response<pb::DeleteResponse>, Status> {
        let user = user_of(&req);
        let req = req.into_inner();
        let start = Instant::now();
        let result = async {
            let info = resource_of(req.resource.as_ref())?;
            self.authorize(&user, "delete", info, "", &req.namespace, &req.name).await?;
            let propagation = match pb::PropagationPolicy::try_from(req.propagation_policy) {
                Ok(pb::PropagationPolicy::Unspecified) | Ok(pb::PropagationPolicy::Background) => {
                    Propagation::Background
                }
                Ok(pb::PropagationPolicy::Foreground) => Propagation::Foreground,
                Ok(pb::PropagationPolicy::Orphan) => Propagation::Orphan,
                Err(_) => {
                    return Err(ApiError::bad_request(format!(
                        "unknown propagationPolicy {}: use Orphan, Background or Foreground",
                        req.propagation_policy
                    )));
                }
            };
            let pre = req.preconditions.clone().unwrap_or_default();
            let opts = DeleteOptions {
                grace_period_seconds: req.grace_period_seconds,
                uid: pre.uid,
                resource_version: pre.resource_version,
                propagation,
                dry_run: req.dry_run,
            };
            let (obj, finished) = self.registry.delete(info, &req.namespace, &req.name, &opts).await?;
            Ok(pb::DeleteResponse { object: Some(to_pb(obj)), finished })
        }
        .await;
        self.finish("delete", req.resource.as_ref(), start, result)
    }

    type WatchStream = WatchStream;

    async fn watch(&self, req: Request<pb::WatchRequest>) -> Result<Response<WatchStream>, Status> {
        let user = user_of(&req);
        let req = req.into_inner();
        let start = Instant::now();
        let result = async {
            let info = resource_of(req.resource.as_ref())?;
            let name = selected_name(&req.field_selector);
            self.authorize(&user, "watch", info, "", &req.namespace, name).await?;
            let opts = ListOptions {
                label_selector: req.label_selector.clone(),
                field_selector: req.field_selector.clone(),
                resource_version: req.resource_version.clone(),
                ..Default::default()
            };
            let stream = self.registry.watch(info, &req.namespace, &opts).await?;
            let api_version = info.api_version;
            let kind = info.kind;
            let out = stream.map(move |ev| {
                let ev = ev.map_err(Status::from)?;
                let t = match ev.kind {
                    EventType::Added => pb::EventType::Added,
                    EventType::Modified => pb::EventType::Modified,
                    EventType::Deleted => pb::EventType::Deleted,
                };
                Ok(pb::WatchEvent {
                    r#type: t as i32,
                    object: Some(pb::Object {
                        api_version: api_version.to_string(),
                        kind: kind.to_string(),
                        namespace: ev.namespace,
                        name: ev.name,
                        resource_version: ev.rev.to_string(),
                        json: ev.json,
                    }),
                })
            });
            Ok(Box::pin(out) as WatchStream)
        }
        .await;
        self.finish("watch", req.resource.as_ref(), start, result)
    }

    async fn bind(&self, req: Request<pb::BindRequest>) -> Result<Response<pb::BindResponse>, Status> {
        let user = user_of(&req);
        let req = req.into_inner();
        let pods = pb::ResourceRef { api_version: "v1".into(), resource: "pods".into() };
        let start = Instant::now();
        let result = async {
            let info = resource_of(Some(&pods))?;
            self.authorize(&user, "create", info, "binding", &req.namespace, &req.name).await?;
            let pod = self.registry.bind(&req.namespace, &req.name, &req.body).await?;
            Ok(pb::BindResponse { pod: Some(to_pb(pod)) })
        }
        .await;
        self.finish("bind", Some(&pods), start, result)
    }

    async fn create_token(&self, req: Request<pb::CreateTokenRequest>) -> Result<Response<pb::Object>, Status> {
        let user = user_of(&req);
        let req = req.into_inner();
        let resource = pb::ResourceRef { api_version: "v1".into(), resource: "serviceaccounts".into() };
        let start = Instant::now();
        let result = async {
            let info = resource_of(Some(&resource))?;
            self.authorize(&user, "create", info, "token", &req.namespace, &req.name).await?;
            let request = self.registry.create_token(&req.namespace, &req.name, &req.body).await?;
            Ok(pb::Object {
                api_version: crate::service_account_token::request::API_VERSION.into(),
                kind: crate::service_account_token::request::KIND.into(),
                namespace: req.namespace.clone(),
                name: req.name.clone(),
                resource_version: String::new(),
                json: serde_json::to_vec(&request).map_err(|e| ApiError::internal(e.to_string()))?.into(),
            })
        }
        .await;
        self.finish("create", Some(&resource), start, result)
    }

    type LogsStream = LogStream;

    async fn logs(&self, req: Request<pb::LogsRequest>) -> Result<Response<LogStream>, Status> {
        let start = Instant::now();
        let user = user_of(&req);
        let req = req.into_inner();
        let pods = pb::ResourceRef { api_version: "v1".into(), resource: "pods".into() };
        let result = async {
            self.authorize(&user, "get", resource_of(Some(&pods))?, "log", &req.namespace, &req.pod).await?;
            let target = self.proxy.target(&req.namespace, &req.pod, &req.container).await?;
            let mut kubelet = target.kubelet;
            let forwarded = pb::LogsRequest { container: target.container, ..req.clone() };
            let stream = kubelet.logs(forwarded).await.map_err(kubelet_error)?.into_inner();
            Ok(Box::pin(stream) as LogStream)
        }
        .await;
        self.finish("logs", Some(&pods), start, result)
    }

    type ExecStream = ExecStream;

    async fn exec(&self, req: Request<tonic::Streaming<pb::ExecInput>>) -> Result<Response<ExecStream>, Status> {
        let started = Instant::now();
        let user = user_of(&req);
        let mut input = req.into_inner();
        let pods = pb::ResourceRef { api_version: "v1".into(), resource: "pods".into() };
        let result = async {
            let first = input
                .message()
                .await
                .map_err(|s| ApiError::bad_request(format!("reading the exec request: {}", s.message())))?;
            let Some(pb::ExecInput { input: Some(pb::exec_input::Input::Start(start)) }) = first else {
                return Err(ApiError::bad_request("an exec stream must begin with its start message"));
            };
            self.authorize(&user, "create", resource_of(Some(&pods))?, "exec", &start.namespace, &start.pod).await?;
            if start.command.is_empty() {
                return Err(ApiError::bad_request("you must specify at least one command for the container"));
            }
            let target = self.proxy.target(&start.namespace, &start.pod, &start.container).await?;
            let mut kubelet = target.kubelet;
            let first = start_for(&start, &target.container);
            // The client's further input (stdin, resizes) follows the start message.
            let (tx, rx) = tokio::sync::mpsc::channel(16);
            tx.send(first).await.map_err(|_| ApiError::internal("exec relay closed"))?;
            tokio::spawn(async move {
                while let Ok(Some(m)) = input.message().await {
                    if tx.send(m).await.is_err() {
                        break;
                    }
                }
            });
            let outbound = tokio_stream::wrappers::ReceiverStream::new(rx);
            let stream = kubelet.exec(outbound).await.map_err(kubelet_error)?.into_inner();
            Ok(Box::pin(stream) as ExecStream)
        }
        .await;
        self.finish("exec", Some(&pods), started, result)
    }

    async fn node_stats(&self, req: Request<pb::NodeStatsRequest>) -> Result<Response<pb::StatsResponse>, Status> {
        let start = Instant::now();
        let user = user_of(&req);
        let req = req.into_inner();
        let nodes = pb::ResourceRef { api_version: "v1".into(), resource: "nodes".into() };
        let result = async {
            self.authorize(&user, "get", resource_of(Some(&nodes))?, "stats", "", &req.node).await?;
            let mut kubelet = self.proxy.kubelet(&req.node).await?;
            Ok(kubelet.stats(pb::StatsRequest {}).await.map_err(kubelet_error)?.into_inner())
        }
        .await;
        self.finish("stats", Some(&nodes), start, result)
    }

    async fn metrics(&self, req: Request<pb::MetricsRequest>) -> Result<Response<pb::ListResponse>, Status> {
        let start = Instant::now();
        let user = user_of(&req);
        let req = req.into_inner();
        let reference =
            pb::ResourceRef { api_version: rkube_api::metrics::API_VERSION.into(), resource: req.resource.clone() };
        let result = async {
            let resource = rkube_api::metrics::resource(&req.resource).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "the server doesn't have a resource type \"{}\" in {}: use nodes or pods",
                    req.resource,
                    rkube_api::metrics::API_VERSION
                ))
            })?;
            let verb = if req.name.is_empty() { "list" } else { "get" };
            let attrs = Attributes::resource(&user, verb, "metrics.k8s.io", resource.plural, &req.namespace, &req.name);
            self.allow(&attrs).await?;
            let q = MetricsQuery {
                resource,
                namespace: &req.namespace,
                name: &req.name,
                label_selector: &req.label_selector,
            };
            let items = self.usage.read(q).await?;
            let items = items
                .into_iter()
                .map(|m| {
                    let text = |f: &str| m["metadata"][f].as_str().unwrap_or_default().to_string();
                    Ok(pb::Object {
                        api_version: rkube_api::metrics::API_VERSION.into(),
                        kind: resource.kind.into(),
                        namespace: text("namespace"),
                        name: text("name"),
                        resource_version: String::new(),
                        json: serde_json::to_vec(&m).map_err(|e| ApiError::internal(e.to_string()))?.into(),
                    })
                })
                .collect::<Result<Vec<_>, ApiError>>()?;
            Ok(pb::ListResponse {
                api_version: rkube_api::metrics::API_VERSION.into(),
                kind: resource.list_kind(),
                resource_version: String::new(),
                items,
                continue_token: String::new(),
            })
        }
        .await;
        self.finish(if req.name.is_empty() { "list" } else { "get" }, Some(&reference), start, result)
    }

    async fn version(&self, req: Request<pb::VersionRequest>) -> Result<Response<pb::VersionResponse>, Status> {
        let user = user_of(&req);
        let attrs = Attributes::non_resource(&user, "get", "/version");
        self.allow(&attrs).await?;
        Ok(Response::new(pb::VersionResponse { json: version_json().into_bytes().into() }))
    }

    async fn discovery(&self, req: Request<pb::DiscoveryRequest>) -> Result<Response<pb::DiscoveryResponse>, Status> {
        let user = user_of(&req);
        let attrs = Attributes::non_resource(&user, "get", "/apis");
        self.allow(&attrs).await?;
        let resources = RESOURCES
            .iter()
            .map(|r| pb::ResourceInfo {
                api_version: r.api_version.into(),
                kind: r.kind.into(),
                resource: r.plural.into(),
                namespaced: r.namespaced,
                short_names: r.short_names.iter().map(|s| s.to_string()).collect(),
                singular: r.singular.into(),
            })
            .collect();
        Ok(Response::new(pb::DiscoveryResponse { resources }))
    }
}

/// The server's version, as Kubernetes' `version.Info` JSON.
pub fn version_json() -> String {
    serde_json::json!({
        "major": "1",
        "minor": "33",
        "gitVersion": concat!("v1.33.0-rkube.", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, if std::env::consts::ARCH == "x86_64" { "amd64" } else { std::env::consts::ARCH }),
    })
    .to_string()
}
