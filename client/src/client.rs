//! The gRPC client: [`Client`] speaks the generic resource API with raw JSON
//! bodies; [`Api<K>`] is the typed view of one resource (like kube-rs' `Api`).

use crate::config::{ClientConfig, Credentials};
use futures::{Stream, StreamExt};
use k8s_openapi::Metadata;
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rkube_api::resource::for_kind;
use rkube_api::{ApiError, ResourceInfo, Result};
use rkube_proto::v1 as pb;
use rkube_proto::v1::resources_client::ResourcesClient;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// Largest gRPC message accepted or sent.
const MAX_MESSAGE_BYTES: usize = 512 << 20;

/// A connection to the apiserver, or to the first answering one of several
/// (`--server http://a:8080,http://b:8080`). Cheap to clone; connects lazily.
///
/// Calls go to the current server. A call that could not reach it (the
/// connection failed, so nothing was sent) moves to the next server and is
/// sent there, which then stays current; so does a read whose connection
/// broke mid-call. A write whose connection broke after it was sent is
/// not repeated: it may have been stored, and the caller is told.
#[derive(Clone)]
pub struct Client {
    servers: Arc<Servers>,
}

struct Servers {
    list: Vec<Server>,
    /// Index into `list` of the server calls go to first.
    current: AtomicUsize,
}

struct Server {
    url: String,
    client: Grpc,
}

/// The generated client on a channel that adds our bearer token, if any.
type Grpc = ResourcesClient<InterceptedService<Channel, Bearer>>;

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
enum Bearer {
    /// A token given once (or none).
    Fixed(Option<tonic::metadata::AsciiMetadataValue>),
    /// A token file, read again when what was read is a minute old.
    File(Arc<TokenFile>),
}

/// How often a token file is read again (client-go's and kube-rs' minute).
const TOKEN_FILE_REFRESH: Duration = Duration::from_secs(60);

/// A token file and what was last read from it.
struct TokenFile {
    path: std::path::PathBuf,
    read: std::sync::Mutex<Option<(tonic::metadata::AsciiMetadataValue, std::time::Instant)>>,
}

impl TokenFile {
    /// The header value: the cached one while fresh, else the file's
    /// current token (the cached one if the file cannot be read now).
    fn value(&self) -> Option<tonic::metadata::AsciiMetadataValue> {
        let mut read = self.read.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((v, at)) = read.as_ref()
            && at.elapsed() < TOKEN_FILE_REFRESH
        {
            return Some(v.clone());
        }
        let fresh = std::fs::read_to_string(&self.path)
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .and_then(|t| format!("Bearer {t}").parse::<tonic::metadata::AsciiMetadataValue>().ok());
        match fresh {
            Some(v) => {
                *read = Some((v.clone(), std::time::Instant::now()));
                Some(v)
            }
            None => {
                tracing::warn!(path = %self.path.display(), "cannot read the token file; keeping the last token");
                read.as_ref().map(|(v, _)| v.clone())
            }
        }
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> std::result::Result<tonic::Request<()>, tonic::Status> {
        let value = match self {
            Bearer::Fixed(v) => v.clone(),
            Bearer::File(f) => f.value(),
        };
        if let Some(v) = value {
            req.metadata_mut().insert("authorization", v);
        }
        Ok(req)
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let urls: Vec<&str> = self.servers.list.iter().map(|s| s.url.as_str()).collect();
        f.debug_struct("Client").field("servers", &urls).field("current", &self.server()).finish()
    }
}

/// Whether a call is repeated on the next server after a broken connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    /// Reads and watches: safe to send again.
    Read,
    /// Writes: sent again only if they never left.
    Write,
}

/// Whether `s` says the call may go to the next server: no apiserver
/// answered it (a Kubernetes status always has details), and either the
/// connection could not be made or the call only reads.
fn next_server_may_serve(s: &tonic::Status, call: Call) -> bool {
    if !s.details().is_empty() {
        return false;
    }
    let mut source = std::error::Error::source(s);
    while let Some(e) = source {
        if e.is::<tonic::ConnectError>() {
            return true;
        }
        source = e.source();
    }
    call == Call::Read && matches!(s.code(), tonic::Code::Unavailable | tonic::Code::Unknown)
}

/// How to reach an `https` server: its CA is required (there are no system
/// roots to fall back on), our certificate is shown if we have one.
fn tls_config(creds: &Credentials, url: &str) -> Result<ClientTlsConfig> {
    let ca = creds.certificate_authority.as_ref().ok_or_else(|| {
        ApiError::bad_request(format!(
            "{url} is https but no certificate authority is configured (certificate-authority in the kubeconfig)"
        ))
    })?;
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
    if let (Some(cert), Some(key)) = (&creds.client_certificate, &creds.client_key) {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    Ok(tls)
}

/// The request of Update, UpdateStatus and UpdateScale.
fn update_request(info: &ResourceInfo, namespace: &str, name: &str, body: Vec<u8>) -> pb::UpdateRequest {
    pb::UpdateRequest {
        resource: resource_ref(info),
        namespace: namespace.into(),
        name: name.into(),
        body: body.into(),
        dry_run: false,
    }
}

fn resource_ref(info: &ResourceInfo) -> Option<pb::ResourceRef> {
    Some(pb::ResourceRef { api_version: info.api_version.into(), resource: info.plural.into() })
}

/// Options of a list or watch.
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    /// Label selector (`app=web,tier in (a,b)`).
    pub label_selector: String,
    /// Field selector (`spec.nodeName=n1`).
    pub field_selector: String,
    /// Page size (0: all).
    pub limit: i64,
    /// Continue token of the previous page.
    pub continue_token: String,
}

impl ListParams {
    /// With a label selector.
    pub fn labels(mut self, s: &str) -> Self {
        self.label_selector = s.to_string();
        self
    }

    /// With a field selector.
    pub fn fields(mut self, s: &str) -> Self {
        self.field_selector = s.to_string();
        self
    }
}

/// Options of a delete.
#[derive(Debug, Clone, Default)]
pub struct DeleteParams {
    /// Grace period in seconds (None: the object's default).
    pub grace_period_seconds: Option<i64>,
    /// Only if the object still has this uid.
    pub uid: String,
    /// Only if the object still has this resourceVersion.
    pub resource_version: String,
    /// `Orphan`, `Background` (default) or `Foreground`.
    pub propagation_policy: Option<String>,
}

/// A raw watch event.
#[derive(Debug, Clone)]
pub struct RawEvent {
    /// ADDED, MODIFIED, DELETED or BOOKMARK.
    pub kind: WatchEventType,
    /// The object.
    pub object: pb::Object,
}

/// The type of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchEventType {
    /// The object appeared or entered the selection.
    Added,
    /// The object changed.
    Modified,
    /// The object was deleted or left the selection.
    Deleted,
    /// Progress: only the resourceVersion is meaningful.
    Bookmark,
}

impl WatchEventType {
    /// The kubectl name of the type.
    pub fn as_str(self) -> &'static str {
        match self {
            WatchEventType::Added => "ADDED",
            WatchEventType::Modified => "MODIFIED",
            WatchEventType::Deleted => "DELETED",
            WatchEventType::Bookmark => "BOOKMARK",
        }
    }
}

/// The API error of a failed call to `server`.
fn error_from(server: &str, s: tonic::Status) -> ApiError {
    // A transport failure carries no Kubernetes status: say which server failed.
    if s.details().is_empty() {
        match s.code() {
            tonic::Code::Unavailable => {
                return ApiError::unavailable(format!(
                    "the connection to the server {server} failed ({}) - is rkube-apiserver running there, and is --server right?",
                    s.message()
                ));
            }
            tonic::Code::Unknown => {
                return ApiError::unavailable(format!(
                    "the connection to the server {server} broke during the request ({}); a write may or may not have been applied",
                    s.message()
                ));
            }
            _ => {}
        }
    }
    ApiError::from(s)
}

impl Client {
    /// A client for the apiserver at `server` (e.g. `http://127.0.0.1:8080`),
    /// or for several, comma-separated, tried in turn. Nothing is sent until
    /// the first request.
    pub fn new(server: &str) -> Result<Client> {
        Client::with_credentials(server, &Credentials::default())
    }

    /// A client for `server` (as [`Client::new`]) that checks an `https`
    /// server against `creds`' CA and shows its client certificate and
    /// bearer token.
    pub fn with_credentials(server: &str, creds: &Credentials) -> Result<Client> {
        let bearer = match (creds.token.as_deref().filter(|t| !t.is_empty()), &creds.token_file) {
            (Some(t), _) => Bearer::Fixed(Some(
                format!("Bearer {t}")
                    .parse()
                    .map_err(|_| ApiError::bad_request("the token holds characters an HTTP header cannot carry"))?,
            )),
            (None, Some(path)) => {
                Bearer::File(Arc::new(TokenFile { path: path.clone(), read: std::sync::Mutex::new(None) }))
            }
            (None, None) => Bearer::Fixed(None),
        };
        let mut list = Vec::new();
        for url in crate::config::normalize(server).split(',').filter(|u| !u.is_empty()) {
            let mut endpoint = Endpoint::from_shared(url.to_string())
                .map_err(|e| ApiError::bad_request(format!("invalid server URL \"{url}\": {e}")))?
                .connect_timeout(Duration::from_secs(5))
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(30))
                .keep_alive_while_idle(true);
            if url.starts_with("https://") {
                endpoint = endpoint
                    .tls_config(tls_config(creds, url)?)
                    .map_err(|e| ApiError::bad_request(format!("TLS for \"{url}\": {e}")))?;
            }
            let channel = InterceptedService::new(endpoint.connect_lazy(), bearer.clone());
            let client = ResourcesClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES);
            list.push(Server { url: url.to_string(), client });
        }
        if list.is_empty() {
            return Err(ApiError::bad_request(format!("invalid server \"{server}\": no URL given")));
        }
        Ok(Client { servers: Arc::new(Servers { list, current: AtomicUsize::new(0) }) })
    }

    /// A client for a resolved configuration.
    pub fn from_config(cfg: &ClientConfig) -> Result<Client> {
        Client::with_credentials(&cfg.server, &cfg.credentials)
    }

    /// The URL of the server calls go to now.
    pub fn server(&self) -> &str {
        &self.current().url
    }

    fn current(&self) -> &Server {
        &self.servers.list[self.servers.current.load(Ordering::Relaxed) % self.servers.list.len()]
    }

    fn err(&self, s: tonic::Status) -> ApiError {
        error_from(&self.current().url, s)
    }

    /// Sends a call built by `send` to the current server and, when
    /// [`next_server_may_serve`], to each next one in turn.
    async fn call<T, F, Fut>(&self, kind: Call, mut send: F) -> Result<T>
    where
        F: FnMut(Grpc) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        let list = &self.servers.list;
        let first = self.servers.current.load(Ordering::Relaxed);
        let mut tried = Vec::new();
        for i in 0..list.len() {
            let at = (first + i) % list.len();
            let server = &list[at];
            match send(server.client.clone()).await {
                Ok(resp) => {
                    if i > 0 {
                        self.servers.current.store(at, Ordering::Relaxed);
                    }
                    return Ok(resp.into_inner());
                }
                Err(s) if list.len() > 1 && next_server_may_serve(&s, kind) => {
                    tried.push(format!("{}: {}", server.url, s.message()));
                }
                Err(s) => return Err(error_from(&server.url, s)),
            }
        }
        Err(ApiError::unavailable(format!(
            "no apiserver answered ({}) - are they running, and is --server right?",
            tried.join("; ")
        )))
    }

    /// Creates an object from its JSON (or YAML) body.
    pub async fn create(&self, info: &ResourceInfo, namespace: &str, body: Vec<u8>) -> Result<pb::Object> {
        let req = pb::CreateRequest {
            resource: resource_ref(info),
            namespace: namespace.into(),
            body: body.into(),
            dry_run: false,
        };
        self.call(Call::Write, |mut c| {
            let req = req.clone();
            async move { c.create(req).await }
        })
        .await
    }

    /// Reads an object.
    pub async fn get(&self, info: &ResourceInfo, namespace: &str, name: &str) -> Result<pb::Object> {
        let req = pb::GetRequest { resource: resource_ref(info), namespace: namespace.into(), name: name.into() };
        self.call(Call::Read, |mut c| {
            let req = req.clone();
            async move { c.get(req).await }
        })
        .await
    }

    /// Lists objects ("" namespace: all namespaces).
    pub async fn list(&self, info: &ResourceInfo, namespace: &str, p: &ListParams) -> Result<pb::ListResponse> {
        let req = pb::ListRequest {
            resource: resource_ref(info),
            namespace: namespace.into(),
            label_selector: p.label_selector.clone(),
            field_selector: p.field_selector.clone(),
            limit: p.limit,
            continue_token: p.continue_token.clone(),
        };
        self.call(Call::Read, |mut c| {
            let req = req.clone();
            async move { c.list(req).await }
        })
        .await
    }

    /// Replaces an object (its status is kept).
    pub async fn update(&self, info: &ResourceInfo, namespace: &str, name: &str, body: Vec<u8>) -> Result<pb::Object> {
        let req = update_request(info, namespace, name, body);
        self.call(Call::Write, |mut c| {
            let req = req.clone();
            async move { c.update(req).await }
        })
        .await
    }

    /// Replaces an object's status.
    pub async fn update_status(
        &self,
        info: &ResourceInfo,
        namespace: &str,
        name: &str,
        body: Vec<u8>,
    ) -> Result<pb::Object> {
        let req = update_request(info, namespace, name, body);
        self.call(Call::Write, |mut c| {
            let req = req.clone();
            async move { c.update_status(req).await }
        })
        .await
    }

    /// Reads the scale subresource (an autoscaling/v1 Scale) of a
    /// replicationcontroller, replicaset or deployment.
    pub async fn get_scale(&self, info: &ResourceInfo, namespace: &str, name: &str) -> Result<pb::Object> {
        let req = pb::GetRequest { resource: resource_ref(info), namespace: namespace.into(), name: name.into() };
        self.call(Call::Read, |mut c| {
            let req = req.clone();
            async move { c.get_scale(req).await }
        })
        .await
    }

    /// Writes the scale subresource: `body` is a Scale whose spec.replicas
    /// becomes the object's (its resourceVersion, if set, a precondition).
    pub async fn update_scale(
        &self,
        info: &ResourceInfo,
        namespace: &str,
        name: &str,
        body: Vec<u8>,
    ) -> Result<pb::Object> {
        let req = update_request(info, namespace, name, body);
        self.call(Call::Write, |mut c| {
            let req = req.clone();
            async move { c.update_scale(req).await }
        })
        .await
    }

    /// Applies a JSON merge patch (or, with `status`, patches the status).
    pub async fn patch(
        &self,
        info: &ResourceInfo,
        namespace: &str,
        name: &str,
        patch: &serde_json::Value,
        status: bool,
    ) -> Result<pb::Object> {
        self.patch_as(info, namespace, name, pb::PatchType::Merge, patch, status).await
    }

    /// Applies a patch of type `kind` (or, with `status`, patches the status).
    pub async fn patch_as(
        &self,
        info: &ResourceInfo,
        namespace: &str,
        name: &str,
        kind: pb::PatchType,
        patch: &serde_json::Value,
        status: bool,
    ) -> Result<pb::Object> {
        let req = pb::PatchRequest {
            resource: resource_ref(info),
            namespace: namespace.into(),
            name: name.into(),
            patch_type: kind as i32,
            patch: serde_json::to_vec(patch).expect("a Value always serializes").into(),
            status,
            dry_run: false,
        };
        self.call(Call::Write, |mut c| {
            let req = req.clone();
            async move { c.patch(req).await }
        })
        .await
    }

    /// Deletes an object; returns it and whether it is gone already.
    pub async fn delete(
        &self,
        info: &ResourceInfo,
        namespace: &str,
        name: &str,
        p: &DeleteParams,
    ) -> Result<(pb::Object, bool)> {
        let propagation = match p.propagation_policy.as_deref() {
            None | Some("") => pb::PropagationPolicy::Unspecified,
            Some("Background") => pb::PropagationPolicy::Background,
            Some("Foreground") => pb::PropagationPolicy::Foreground,
            Some("Orphan") => pb::PropagationPolicy::Orphan,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "propagationPolicy \"{other}\" is not one of Orphan, Background, Foreground"
                )));
            }
        };
        let req = pb::DeleteRequest {
            resource: resource_ref(info),
            namespace: namespace.into(),
            name: name.into(),
            grace_period_seconds: p.grace_period_seconds,
            preconditions: Some(pb::Preconditions { uid: p.uid.clone(), resource_version: p.resource_version.clone() }),
            propagation_policy: propagation as i32,
            dry_run: false,
        };
        let resp = self
            .call(Call::Write, |mut c| {
                let req = req.clone();
                async move { c.delete(req).await }
            })
            .await?;
        let obj = resp.object.ok_or_else(|| ApiError::internal("delete response without object"))?;
        Ok((obj, resp.finished))
    }

    /// Watches objects after `resource_version` ("" or "0": current objects first).
    pub async fn watch(
        &self,
        info: &ResourceInfo,
        namespace: &str,
        p: &ListParams,
        resource_version: &str,
    ) -> Result<impl Stream<Item = Result<RawEvent>> + Send + 'static + use<>> {
        let req = pb::WatchRequest {
            resource: resource_ref(info),
            namespace: namespace.into(),
            label_selector: p.label_selector.clone(),
            field_selector: p.field_selector.clone(),
            resource_version: resource_version.into(),
            allow_bookmarks: false,
        };
        let stream = self
            .call(Call::Read, |mut c| {
                let req = req.clone();
                async move { c.watch(req).await }
            })
            .await?;
        let me = self.clone();
        Ok(stream.map(move |ev| {
            let ev = ev.map_err(|s| me.err(s))?;
            let kind = match pb::EventType::try_from(ev.r#type) {
                Ok(pb::EventType::Added) => WatchEventType::Added,
                Ok(pb::EventType::Modified) => WatchEventType::Modified,
                Ok(pb::EventType::Deleted) => WatchEventType::Deleted,
                Ok(pb::EventType::Bookmark) => WatchEventType::Bookmark,
                _ => return Err(ApiError::internal(format!("unknown watch event type {}", ev.r#type))),
            };
            let object = ev.object.ok_or_else(|| ApiError::internal("watch event without object"))?;
            Ok(RawEvent { kind, object })
        }))
    }

    /// Binds a pod to a node.
    pub async fn bind(&self, namespace: &str, pod: &str, node: &str) -> Result<pb::Object> {
        let body = serde_json::json!({
            "apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": pod, "namespace": namespace},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        });
        let req = pb::BindRequest {
            namespace: namespace.into(),
            name: pod.into(),
            body: serde_json::to_vec(&body).expect("a Value always serializes").into(),
        };
        let resp = self
            .call(Call::Write, |mut c| {
                let req = req.clone();
                async move { c.bind(req).await }
            })
            .await?;
        resp.pod.ok_or_else(|| ApiError::internal("bind response without pod"))
    }

    /// Issues a token for ServiceAccount `namespace/name` (its `token`
    /// subresource): the answer carries `status.token` and
    /// `status.expirationTimestamp`.
    pub async fn create_token(
        &self,
        namespace: &str,
        name: &str,
        request: &k8s_openapi::api::authentication::v1::TokenRequest,
    ) -> Result<k8s_openapi::api::authentication::v1::TokenRequest> {
        let mut body = serde_json::to_value(request).map_err(|e| ApiError::internal(e.to_string()))?;
        body["apiVersion"] = "authentication.k8s.io/v1".into();
        body["kind"] = "TokenRequest".into();
        let req = pb::CreateTokenRequest {
            namespace: namespace.into(),
            name: name.into(),
            body: serde_json::to_vec(&body).expect("a Value always serializes").into(),
        };
        let resp = self
            .call(Call::Write, |mut c| {
                let req = req.clone();
                async move { c.create_token(req).await }
            })
            .await?;
        decode(&resp)
    }

    /// Streams a container's logs (relayed by the apiserver from the kubelet).
    pub async fn logs(
        &self,
        req: pb::LogsRequest,
    ) -> Result<impl Stream<Item = Result<bytes::Bytes>> + Send + 'static + use<>> {
        let stream = self
            .call(Call::Read, |mut c| {
                let req = req.clone();
                async move { c.logs(req).await }
            })
            .await?;
        let me = self.clone();
        Ok(stream.map(move |chunk| chunk.map(|c| c.data).map_err(|s| me.err(s))))
    }

    /// Runs a command in a container: `input` yields stdin and resizes after
    /// the start message this method sends; the answer streams stdout,
    /// stderr and finally the exit code.
    pub async fn exec<I>(
        &self,
        start: pb::ExecStart,
        input: I,
    ) -> Result<impl Stream<Item = Result<pb::exec_output::Output>> + Send + 'static + use<I>>
    where
        I: Stream<Item = pb::exec_input::Input> + Send + 'static,
    {
        let first = pb::ExecInput { input: Some(pb::exec_input::Input::Start(start)) };
        let outbound = futures::stream::iter([first]).chain(input.map(|i| pb::ExecInput { input: Some(i) }));
        // Its input is a stream: it goes to the current server only.
        let stream = self.current().client.clone().exec(outbound).await.map_err(|s| self.err(s))?.into_inner();
        let me = self.clone();
        Ok(stream.filter_map(move |m| {
            let me = me.clone();
            async move {
                match m {
                    Ok(pb::ExecOutput { output: Some(o) }) => Some(Ok(o)),
                    Ok(pb::ExecOutput { output: None }) => None,
                    Err(s) => Some(Err(me.err(s))),
                }
            }
        }))
    }

    /// A node's resource usage summary (kubelet `/stats/summary`-shaped JSON).
    pub async fn node_stats(&self, node: &str) -> Result<serde_json::Value> {
        let req = pb::NodeStatsRequest { node: node.into() };
        let resp = self
            .call(Call::Read, |mut c| {
                let req = req.clone();
                async move { c.node_stats(req).await }
            })
            .await?;
        serde_json::from_slice(&resp.json).map_err(|e| ApiError::internal(format!("bad stats JSON: {e}")))
    }

    /// `metrics.k8s.io/v1beta1` metrics: `resource` is `nodes` (NodeMetrics)
    /// or `pods` (PodMetrics); `namespace` "" is all namespaces; a `name`
    /// gets one object (NotFound when it has no metrics); `label_selector`
    /// selects the nodes or pods by label. Each item is the object's JSON.
    pub async fn metrics(
        &self,
        resource: &str,
        namespace: &str,
        name: &str,
        label_selector: &str,
    ) -> Result<Vec<serde_json::Value>> {
        let req = pb::MetricsRequest {
            resource: resource.into(),
            namespace: namespace.into(),
            name: name.into(),
            label_selector: label_selector.into(),
        };
        let resp = self
            .call(Call::Read, |mut c| {
                let req = req.clone();
                async move { c.metrics(req).await }
            })
            .await?;
        resp.items
            .iter()
            .map(|o| {
                serde_json::from_slice(&o.json)
                    .map_err(|e| ApiError::internal(format!("bad {} JSON of {}: {e}", o.kind, o.name)))
            })
            .collect()
    }

    /// The PodMetrics (`metrics.k8s.io/v1beta1` JSON: `metadata`,
    /// `timestamp`, `window`, `containers[].usage.{cpu,memory}`) of the pods
    /// in `namespace` ("" = all) matching `label_selector` ("" = all). Pods
    /// whose kubelet has not measured them yet are absent.
    pub async fn pod_metrics(&self, namespace: &str, label_selector: &str) -> Result<Vec<serde_json::Value>> {
        self.metrics("pods", namespace, "", label_selector).await
    }

    /// The NodeMetrics (`usage.{cpu,memory}`) of every node whose kubelet
    /// answered.
    pub async fn node_metrics(&self) -> Result<Vec<serde_json::Value>> {
        self.metrics("nodes", "", "", "").await
    }

    /// The server's version (Kubernetes `version.Info` JSON).
    pub async fn version(&self) -> Result<serde_json::Value> {
        let resp = self.call(Call::Read, |mut c| async move { c.version(pb::VersionRequest {}).await }).await?;
        serde_json::from_slice(&resp.json).map_err(|e| ApiError::internal(format!("bad version JSON: {e}")))
    }
}

/// Decodes an object's JSON into `K`.
pub fn decode<K: DeserializeOwned>(o: &pb::Object) -> Result<K> {
    serde_json::from_slice(&o.json)
        .map_err(|e| ApiError::internal(format!("decoding {} {}/{}: {e}", o.kind, o.namespace, o.name)))
}

fn encode<K: Serialize>(k: &K) -> Result<Vec<u8>> {
    serde_json::to_vec(k).map_err(|e| ApiError::bad_request(format!("encoding object: {e}")))
}

/// A typed list.
#[derive(Debug, Clone)]
pub struct ObjectList<K> {
    /// The objects.
    pub items: Vec<K>,
    /// The snapshot's resourceVersion.
    pub resource_version: String,
    /// Continue token of the next page ("" when done).
    pub continue_token: String,
}

/// A typed watch event.
#[derive(Debug, Clone)]
pub enum WatchEvent<K> {
    /// The object appeared or entered the selection.
    Added(K),
    /// The object changed.
    Modified(K),
    /// The object was deleted or left the selection.
    Deleted(K),
}

/// The typed view of one resource in one namespace (or all).
#[derive(Clone)]
pub struct Api<K> {
    client: Client,
    namespace: String,
    info: &'static ResourceInfo,
    _k: PhantomData<fn() -> K>,
}

impl<K> std::fmt::Debug for Api<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").field("resource", &self.info.plural).field("namespace", &self.namespace).finish()
    }
}

impl<K> Api<K>
where
    K: k8s_openapi::Resource + Metadata<Ty = ObjectMeta> + Serialize + DeserializeOwned + Clone + Send + 'static,
{
    fn info() -> &'static ResourceInfo {
        for_kind(K::API_VERSION, K::KIND).expect("every k8s-openapi type rkube uses is in the resource table")
    }

    /// The resource in namespace `ns`.
    pub fn namespaced(client: Client, ns: &str) -> Self {
        Api { client, namespace: ns.to_string(), info: Self::info(), _k: PhantomData }
    }

    /// The resource across all namespaces (or a cluster-scoped resource).
    pub fn all(client: Client) -> Self {
        Api { client, namespace: String::new(), info: Self::info(), _k: PhantomData }
    }

    /// The resource's table entry.
    pub fn resource(&self) -> &'static ResourceInfo {
        self.info
    }

    /// The untyped client underneath.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn ns_of(&self, k: &K) -> String {
        k.metadata().namespace.clone().unwrap_or_else(|| self.namespace.clone())
    }

    /// Creates `k`.
    pub async fn create(&self, k: &K) -> Result<K> {
        decode(&self.client.create(self.info, &self.ns_of(k), encode(k)?).await?)
    }

    /// Reads `name`.
    pub async fn get(&self, name: &str) -> Result<K> {
        decode(&self.client.get(self.info, &self.namespace, name).await?)
    }

    /// Reads `name`, or None if it does not exist.
    pub async fn get_opt(&self, name: &str) -> Result<Option<K>> {
        match self.get(name).await {
            Ok(k) => Ok(Some(k)),
            Err(e) if e.reason == rkube_api::Reason::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Lists objects.
    pub async fn list(&self, p: &ListParams) -> Result<ObjectList<K>> {
        let resp = self.client.list(self.info, &self.namespace, p).await?;
        let items = resp.items.iter().map(decode).collect::<Result<Vec<K>>>()?;
        Ok(ObjectList { items, resource_version: resp.resource_version, continue_token: resp.continue_token })
    }

    /// Replaces `k` (conditional on its resourceVersion, if set).
    pub async fn replace(&self, k: &K) -> Result<K> {
        let name = k.metadata().name.clone().unwrap_or_default();
        decode(&self.client.update(self.info, &self.ns_of(k), &name, encode(k)?).await?)
    }

    /// Replaces `k`'s status.
    pub async fn replace_status(&self, k: &K) -> Result<K> {
        let name = k.metadata().name.clone().unwrap_or_default();
        decode(&self.client.update_status(self.info, &self.ns_of(k), &name, encode(k)?).await?)
    }

    /// Applies a JSON merge patch to `name`.
    pub async fn patch(&self, name: &str, patch: &serde_json::Value) -> Result<K> {
        decode(&self.client.patch(self.info, &self.namespace, name, patch, false).await?)
    }

    /// Applies a JSON merge patch to `name`'s status.
    pub async fn patch_status(&self, name: &str, patch: &serde_json::Value) -> Result<K> {
        decode(&self.client.patch(self.info, &self.namespace, name, patch, true).await?)
    }

    /// Applies a strategic merge patch to `name`'s status: lists with a
    /// merge key merge by it, so `{"status": {"conditions": [{"type":
    /// "Ready", ...}]}}` changes the Ready condition and keeps the others.
    pub async fn patch_status_strategic(&self, name: &str, patch: &serde_json::Value) -> Result<K> {
        let kind = pb::PatchType::Strategic;
        decode(&self.client.patch_as(self.info, &self.namespace, name, kind, patch, true).await?)
    }

    /// The Scale of `name` (replicationcontrollers, replicasets, deployments).
    pub async fn get_scale(&self, name: &str) -> Result<Scale> {
        decode(&self.client.get_scale(self.info, &self.namespace, name).await?)
    }

    /// Sets `name`'s replicas through its scale subresource; a
    /// `metadata.resourceVersion` in `scale` makes it conditional.
    pub async fn replace_scale(&self, name: &str, scale: &Scale) -> Result<Scale> {
        let body = serde_json::to_vec(scale).expect("a Scale always serializes");
        decode(&self.client.update_scale(self.info, &self.namespace, name, body).await?)
    }

    /// Deletes `name`; returns the object and whether it is gone already.
    pub async fn delete(&self, name: &str, p: &DeleteParams) -> Result<(K, bool)> {
        let (o, gone) = self.client.delete(self.info, &self.namespace, name, p).await?;
        Ok((decode(&o)?, gone))
    }

    /// Watches from `resource_version` ("" or "0": current objects first, as Added).
    pub async fn watch(
        &self,
        p: &ListParams,
        resource_version: &str,
    ) -> Result<impl Stream<Item = Result<WatchEvent<K>>> + Send + 'static + use<K>> {
        let raw = self.client.watch(self.info, &self.namespace, p, resource_version).await?;
        Ok(raw.filter_map(|ev| async move {
            match ev {
                Err(e) => Some(Err(e)),
                Ok(RawEvent { kind: WatchEventType::Bookmark, .. }) => None,
                Ok(RawEvent { kind, object }) => Some(decode::<K>(&object).map(|k| match kind {
                    WatchEventType::Added => WatchEvent::Added(k),
                    WatchEventType::Modified => WatchEvent::Modified(k),
                    _ => WatchEvent::Deleted(k),
                })),
            }
        }))
    }
}

impl Api<k8s_openapi::api::core::v1::ServiceAccount> {
    /// Issues a token for ServiceAccount `name` (TokenRequest): set
    /// `spec.audiences`, `spec.expirationSeconds` and `spec.boundObjectRef`
    /// as wanted; the answer's `status.token` is the token.
    pub async fn create_token(
        &self,
        name: &str,
        request: &k8s_openapi::api::authentication::v1::TokenRequest,
    ) -> Result<k8s_openapi::api::authentication::v1::TokenRequest> {
        self.client.create_token(&self.namespace, name, request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_file_is_read_again_once_a_minute_and_kept_when_unreadable() {
        let dir = std::env::temp_dir().join(format!("rkube-token-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("token");
        std::fs::write(&path, "first\n").expect("write");
        let file = TokenFile { path: path.clone(), read: std::sync::Mutex::new(None) };
        let shown = |f: &TokenFile| f.value().map(|v| v.to_str().expect("ASCII").to_string());
        assert_eq!(shown(&file).as_deref(), Some("Bearer first"));
        std::fs::write(&path, "second").expect("write");
        assert_eq!(shown(&file).as_deref(), Some("Bearer first"), "cached for a minute");
        let stale = std::time::Instant::now().checked_sub(TOKEN_FILE_REFRESH).expect("the clock is past a minute");
        file.read.lock().expect("lock").as_mut().expect("read").1 = stale;
        assert_eq!(shown(&file).as_deref(), Some("Bearer second"), "read again");
        std::fs::remove_file(&path).expect("remove");
        file.read.lock().expect("lock").as_mut().expect("read").1 = stale;
        assert_eq!(shown(&file).as_deref(), Some("Bearer second"), "the last token while the file is missing");
        std::fs::remove_dir_all(&dir).ok();
    }
}
