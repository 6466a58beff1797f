//! The generic registry: create, get, list, update, patch, delete, watch and
//! bind for every resource, on top of [`Storage`].
//!
//! This is the API machinery, free of any transport: the gRPC front-end
//! (`grpc.rs`) and any later REST front-end call the same methods. Each write
//! is decode → default → validate → admit → one etcd transaction. Creates do
//! a single etcd round trip (the namespace check is served from memory).

use crate::admission::Admission;
use crate::authz::Authorizer;
use crate::codec::{self, key_parts, with_resource_version};
use crate::service_account_token::ServiceAccountTokens;
use crate::service_alloc::{Requested, ServiceAllocator};
use crate::storage::{Storage, Stored, Write};
use crate::watch::{Filter, Hub, WatchEvent};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use k8s_openapi::jiff::Timestamp;
use rkube_api::kinds;
use rkube_api::managed_fields::FieldManager;
use rkube_api::manifest::{FieldValidation, parse_object};
use rkube_api::patch::{json_patch, merge_patch, strategic_merge_patch};
use rkube_api::resource::{RESOURCES, lookup};
use rkube_api::selector::{FieldSelector, Selector};
use rkube_api::validation::MAX_OBJECT_BYTES;
use rkube_api::{ApiError, Reason, ResourceInfo, Result};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// An object as the registry hands it out.
#[derive(Debug, Clone)]
pub struct Object {
    /// Its resource.
    pub info: &'static ResourceInfo,
    /// Its namespace ("" when cluster-scoped).
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its resourceVersion.
    pub rv: i64,
    /// Its JSON, resourceVersion included.
    pub json: Bytes,
}

/// One page of a list.
#[derive(Debug)]
pub struct ListResult {
    /// The objects, in key order.
    pub items: Vec<Object>,
    /// The snapshot's resourceVersion.
    pub rv: i64,
    /// Where the next page starts, if there is one.
    pub continue_token: String,
}

/// How a list or watch selects objects.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Label selector string.
    pub label_selector: String,
    /// Field selector string.
    pub field_selector: String,
    /// Page size (0: everything).
    pub limit: i64,
    /// Continue token from a previous page.
    pub continue_token: String,
    /// Watch: start after this resourceVersion ("" or "0": current state first).
    pub resource_version: String,
}

/// A patch's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// RFC 7386 JSON merge patch.
    Merge,
    /// RFC 6902 JSON patch.
    Json,
    /// Kubernetes' strategic merge patch (lists merge by key).
    Strategic,
    /// Server-side apply: the applied configuration (YAML or JSON) merged
    /// into the object, which is created if missing, with field ownership
    /// and conflicts kept in `metadata.managedFields`.
    Apply,
}

/// Reads a patch document of `kind`.
pub fn parse_patch(kind: PatchKind, body: &[u8]) -> Result<Value> {
    if body.len() > MAX_OBJECT_BYTES {
        return Err(ApiError::new(Reason::RequestEntityTooLarge, "Request entity too large"));
    }
    match kind {
        PatchKind::Apply => parse_object(body),
        _ => {
            serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("the patch is not valid JSON: {e}")))
        }
    }
}

/// Applies a parsed patch of `kind` to `target`, an object of `object_kind`.
pub fn patch_value(kind: PatchKind, object_kind: &str, target: &mut Value, patch: &Value) -> Result<()> {
    match kind {
        PatchKind::Merge => merge_patch(target, patch),
        PatchKind::Json => json_patch(target, patch)?,
        PatchKind::Strategic | PatchKind::Apply => strategic_merge_patch(object_kind, target, patch)?,
    }
    if !target.is_object() {
        return Err(ApiError::bad_request("the patch must leave an object"));
    }
    Ok(())
}

/// Reads and applies a patch document of `kind` to `target`.
pub fn apply_patch(kind: PatchKind, object_kind: &str, target: &mut Value, body: &[u8]) -> Result<()> {
    patch_value(kind, object_kind, target, &parse_patch(kind, body)?)
}

/// How a create or update is made.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteOptions<'a> {
    /// Validate but do not persist.
    pub dry_run: bool,
    /// What to do with fields the kind does not have.
    pub field_validation: FieldValidation,
    /// Who writes, for `metadata.managedFields` ("": `unknown`).
    pub field_manager: &'a str,
}

/// A written object and the warnings for the client (dropped fields).
#[derive(Debug)]
pub struct Written {
    /// The object as stored.
    pub object: Object,
    /// `unknown field "…"` for each field dropped under Warn.
    pub warnings: Vec<String>,
    /// Whether the write created the object (an apply of a missing one).
    pub created: bool,
}

/// A patch request.
#[derive(Debug, Clone, Copy)]
pub struct Patch<'a> {
    /// Its format.
    pub kind: PatchKind,
    /// The patch document (JSON; YAML too for apply).
    pub body: &'a [u8],
    /// Patch the status subresource instead of the object.
    pub status: bool,
    /// Validate but do not persist.
    pub dry_run: bool,
    /// What to do with fields the kind does not have.
    pub field_validation: FieldValidation,
    /// Who writes, for `metadata.managedFields`; required for apply.
    pub field_manager: &'a str,
    /// Apply: take over the fields other managers own instead of failing
    /// with a conflict.
    pub force: bool,
}

/// The manager a write is recorded for: its `fieldManager`, `unknown` when
/// none is given (gRPC clients), refused when it is not a valid name.
fn manager_name(field_manager: &str) -> Result<&str> {
    if field_manager.len() > 128 {
        return Err(ApiError::bad_request("fieldManager: Too long: may not be more than 128 bytes"));
    }
    if field_manager.chars().any(|c| c.is_control()) {
        return Err(ApiError::bad_request("fieldManager: Invalid value: must only contain printable characters"));
    }
    Ok(if field_manager.is_empty() { "unknown" } else { field_manager })
}

/// How the read-modify-write loop behind update and patch writes.
#[derive(Debug, Clone, Copy)]
struct Rewrite<'a> {
    /// The resourceVersion the object must still have.
    precondition: Option<i64>,
    /// Validate but do not persist.
    dry_run: bool,
    /// Whom to record the write for in managedFields (None: the change
    /// records itself, as an apply does).
    record: Option<FieldManager<'a>>,
}

/// Deletion propagation, as Kubernetes defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    /// Dependents are collected in the background (the default).
    #[default]
    Background,
    /// Dependents are deleted before the owner (finalizer `foregroundDeletion`).
    Foreground,
    /// Dependents are kept (finalizer `orphan`).
    Orphan,
}

/// Options of a delete.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// Grace period; None: the object's default.
    pub grace_period_seconds: Option<i64>,
    /// The object must still have this uid.
    pub uid: String,
    /// The object must still have this resourceVersion.
    pub resource_version: String,
    /// Propagation policy.
    pub propagation: Propagation,
    /// Validate but do not persist.
    pub dry_run: bool,
}

/// The registry of every resource.
pub struct Registry {
    storage: Storage,
    hubs: HashMap<&'static str, Arc<Hub>>,
    admission: Admission,
    services: ServiceAllocator,
    authorizer: Arc<Authorizer>,
    shutdown: CancellationToken,
    tokens: Option<Arc<ServiceAccountTokens>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("storage", &self.storage).finish()
    }
}

/// How many times an unconditional update retries after losing a race.
const UPDATE_RETRIES: usize = 16;

/// How many random picks of a ClusterIP or node port a write tries.
const ALLOCATION_ATTEMPTS: usize = 32;

/// How many other names a create with `generateName` tries when the
/// generated one is taken (Kubernetes' RetryGenerateName, GA in 1.32: with
/// 5 random characters, 10,000 pods of one owner meet a collision or so).
const GENERATE_NAME_RETRIES: usize = 7;

/// The namespaces every cluster has.
pub const SYSTEM_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

/// Seconds since the Unix epoch.
fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// An RFC 3339 timestamp, whole seconds, `seconds_from_now` ahead.
fn timestamp(seconds_from_now: i64) -> String {
    let at = unix_now().saturating_add(seconds_from_now).clamp(Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
    Timestamp::from_second(at).expect("clamped into the representable range").to_string()
}

/// The longest grace period a deletion takes: longer ones (up to i64::MAX
/// from a client) are cut to this, about 136 years.
const MAX_GRACE_SECONDS: i64 = 1 << 32;

fn now() -> String {
    timestamp(0)
}

fn meta(obj: &Value, field: &str) -> String {
    obj.get("metadata").and_then(|m| m.get(field)).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    let map = obj.as_object_mut().expect("objects are JSON objects (checked on parse)");
    let m = map.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    if !m.is_object() {
        *m = Value::Object(Map::new());
    }
    m.as_object_mut().expect("made an object above")
}

/// 5 characters as kube's `utilrand.String(5)` picks them (generated names,
/// the token volume's name).
pub(crate) fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5).map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char).collect()
}

/// Parses a JSON or YAML object body, refusing oversized ones.
fn read_body(body: &[u8]) -> Result<Value> {
    if body.len() > MAX_OBJECT_BYTES {
        return Err(ApiError::new(
            Reason::RequestEntityTooLarge,
            format!("Request entity too large: {} bytes exceeds the limit of {MAX_OBJECT_BYTES} bytes", body.len()),
        ));
    }
    parse_object(body)
}

/// Drops the fields `obj`'s kind does not have unless `fields` is Strict
/// (then the strict decode refuses them); the warnings for Warn.
fn unknown_field_warnings(info: &ResourceInfo, obj: &mut Value, fields: FieldValidation) -> Vec<String> {
    if fields == FieldValidation::Strict {
        return Vec::new();
    }
    let dropped = kinds::drop_unknown_fields(info, obj);
    match fields {
        FieldValidation::Warn => dropped.into_iter().map(|f| format!("unknown field \"{f}\"")).collect(),
        _ => Vec::new(),
    }
}

/// Refuses a status write to a resource without a status subresource.
fn require_status(info: &ResourceInfo) -> Result<()> {
    if info.has_status {
        return Ok(());
    }
    Err(ApiError::new(Reason::MethodNotAllowed, format!("{} have no status subresource", info.plural)))
}

fn parse_rv(s: &str, what: &str) -> Result<i64> {
    s.parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(|| {
        ApiError::bad_request(format!("{what}: invalid resourceVersion \"{s}\": must be a non-negative integer"))
    })
}

/// The fields each resource can be selected by (beyond metadata.name/namespace).
pub fn selectable_fields(info: &ResourceInfo) -> Vec<&'static str> {
    let mut f = vec!["metadata.name", "metadata.namespace"];
    f.extend_from_slice(match info.kind {
        "Pod" => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ][..],
        "Event" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ][..],
        "Secret" => &["type"][..],
        "Namespace" => &["status.phase"][..],
        "Node" => &["spec.unschedulable"][..],
        "ReplicationController" | "ReplicaSet" => &["status.replicas"][..],
        "Job" => &["status.successful"][..],
        _ => &[][..],
    });
    f
}

impl Registry {
    /// A registry over `storage`; call [`Registry::start`] to follow etcd.
    pub fn new(
        storage: Storage,
        admission: Admission,
        services: ServiceAllocator,
        shutdown: CancellationToken,
    ) -> Self {
        let hubs = RESOURCES.iter().map(|r| (r.plural, Hub::new(r, storage.clone()))).collect();
        Registry { storage, hubs, admission, services, authorizer: Authorizer::new(), shutdown, tokens: None }
    }

    /// With service account tokens: the TokenRequest subresource issues them.
    pub fn with_service_account_tokens(mut self, tokens: Option<Arc<ServiceAccountTokens>>) -> Self {
        self.tokens = tokens;
        self
    }

    /// The service account token keys, when the apiserver has some.
    pub fn service_account_tokens(&self) -> Option<&Arc<ServiceAccountTokens>> {
        self.tokens.as_ref()
    }

    /// Issues a service account token (the `token` subresource of
    /// ServiceAccount `namespace/name`; `body` is a TokenRequest).
    pub async fn create_token(&self, namespace: &str, name: &str, body: &[u8]) -> Result<Value> {
        let tokens = self.tokens.as_deref().ok_or_else(crate::service_account_token::not_issuing)?;
        crate::service_account_token::request::create(self, tokens, namespace, name, body).await
    }

    /// The storage underneath (for health checks).
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The RBAC authorizer, fed by this registry's watch once started.
    pub fn authorizer(&self) -> &Arc<Authorizer> {
        &self.authorizer
    }

    /// Starts the watch hubs, the namespace cache, the RBAC policy cache
    /// and the Node authorizer's graph.
    pub fn start(self: &Arc<Self>, tracker: &tokio_util::task::TaskTracker) {
        for hub in self.hubs.values() {
            tracker.spawn(hub.clone().run(self.shutdown.clone()));
        }
        tracker.spawn(self.authorizer.clone().run(self.clone(), self.shutdown.clone()));
        tracker.spawn(self.authorizer.node().clone().run(self.clone(), self.shutdown.clone()));
        let me = self.clone();
        let stop = self.shutdown.clone();
        tracker.spawn(async move { me.admission.namespaces().clone().run(me.clone(), stop).await });
        let me = self.clone();
        let stop = self.shutdown.clone();
        tracker.spawn(async move { me.admission.service_accounts().clone().run(me.clone(), stop).await });
        self.admission.start_policy_caches(self, tracker, &self.shutdown);
    }

    /// Creates the system namespaces if they are missing.
    pub async fn ensure_system_namespaces(&self) -> Result<()> {
        let ns = lookup("namespaces").expect("namespaces are in the table");
        for name in SYSTEM_NAMESPACES {
            let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            match self.create(ns, "", body.to_string().as_bytes(), false).await {
                Ok(_) => {}
                Err(e) if e.reason == Reason::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn object(&self, info: &'static ResourceInfo, s: &Stored) -> Object {
        let (ns, name) = key_parts(&s.key, &info.key_prefix(), info.namespaced);
        Object {
            info,
            namespace: ns.to_string(),
            name: name.to_string(),
            rv: s.mod_revision,
            json: with_resource_version(&s.value, s.mod_revision),
        }
    }

    fn object_from(&self, info: &'static ResourceInfo, ns: &str, name: &str, rv: i64, stored: &[u8]) -> Object {
        Object { info, namespace: ns.into(), name: name.into(), rv, json: with_resource_version(stored, rv) }
    }

    fn check_scope(&self, info: &ResourceInfo, namespace: &str) -> Result<()> {
        if info.namespaced && namespace.is_empty() {
            return Err(ApiError::bad_request(format!("{} are namespaced: a namespace is required", info.plural)));
        }
        Ok(())
    }

    /// Parses a request body of `info`'s kind, refusing oversized ones;
    /// unknown fields are refused later (Strict) or dropped here and warned
    /// about (Warn) or not (Ignore).
    fn parse_body(&self, info: &ResourceInfo, body: &[u8], fields: FieldValidation) -> Result<(Value, Vec<String>)> {
        let mut obj = read_body(body)?;
        kinds::stamp_type(info, &mut obj)?;
        let warnings = unknown_field_warnings(info, &mut obj, fields);
        Ok((obj, warnings))
    }

    /// Creates an object in `namespace` (strict fields).
    pub async fn create(
        &self,
        info: &'static ResourceInfo,
        namespace: &str,
        body: &[u8],
        dry_run: bool,
    ) -> Result<Object> {
        let opts = WriteOptions { dry_run, ..WriteOptions::default() };
        Ok(self.create_with_options(info, namespace, body, opts).await?.object)
    }

    /// Creates an object in `namespace`.
    pub async fn create_with_options(
        &self,
        info: &'static ResourceInfo,
        namespace: &str,
        body: &[u8],
        opts: WriteOptions<'_>,
    ) -> Result<Written> {
        let (obj, warnings) = self.parse_body(info, body, opts.field_validation)?;
        let now = now();
        let manager = FieldManager { info, manager: manager_name(opts.field_manager)?, subresource: "", now: &now };
        self.create_value(info, namespace, obj, warnings, opts.dry_run, Some(manager)).await
    }

    /// Creates `obj` in `namespace`; records the write for `record`, or
    /// keeps the managedFields `obj` has (an apply made them).
    async fn create_value(
        &self,
        info: &'static ResourceInfo,
        namespace: &str,
        mut obj: Value,
        warnings: Vec<String>,
        dry_run: bool,
        record: Option<FieldManager<'_>>,
    ) -> Result<Written> {
        let written = |object| Ok(Written { object, warnings: warnings.clone(), created: true });
        let mut generated_from = None;
        {
            let m = meta_mut(&mut obj);
            if info.namespaced {
                let body_ns = m.get("namespace").and_then(Value::as_str).unwrap_or_default().to_string();
                let ns = match (body_ns.as_str(), namespace) {
                    ("", "") => return Err(ApiError::bad_request("a namespace is required")),
                    ("", req) => req.to_string(),
                    (b, "") => b.to_string(),
                    (b, req) if b == req => b.to_string(),
                    (b, req) => {
                        return Err(ApiError::bad_request(format!(
                            "the namespace of the provided object ({b}) does not match the namespace sent on the request ({req})"
                        )));
                    }
                };
                m.insert("namespace".into(), ns.into());
            } else {
                m.remove("namespace");
            }
            let name = m.get("name").and_then(Value::as_str).unwrap_or_default();
            let generate = m.get("generateName").and_then(Value::as_str).unwrap_or_default();
            if name.is_empty() && !generate.is_empty() {
                generated_from = Some(generate.to_string());
                let generated = format!("{}{}", generate, random_suffix());
                m.insert("name".into(), generated.into());
            }
            m.insert("uid".into(), uuid::Uuid::new_v4().to_string().into());
            m.insert("creationTimestamp".into(), now().into());
            m.insert("generation".into(), 1.into());
            for f in ["resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"] {
                m.remove(f);
            }
        }
        // Status is the controllers' to write; a new object starts with none
        // (a node registers with its status, as kubelets do).
        if info.has_status
            && info.kind != "Node"
            && let Some(map) = obj.as_object_mut()
        {
            map.remove("status");
        }
        let namespace = meta(&obj, "namespace");
        let mut name = meta(&obj, "name");
        self.admission.admit_create(info, &namespace, &mut obj).await?;
        self.admission.admit_quota(self, info, &namespace, &obj, dry_run).await?;
        if let Some(manager) = record {
            manager.update(&Value::Null, &mut obj);
        }
        let mut key = info.key(&namespace, &name);
        let requested = self.services.requested(info, &obj, None);
        let mut name_retries = 0;
        for _ in 0..ALLOCATION_ATTEMPTS {
            let mut candidate = obj.clone();
            if info.kind == "Service" {
                self.services.assign(&mut candidate)?;
            }
            // Decode strictly, default, validate, and serialize for storage.
            let stored = kinds::prepare_create_json(info, &candidate)?;
            if dry_run {
                return written(self.object_from(info, &namespace, &name, 0, &stored));
            }
            let also: Vec<(String, Vec<u8>)> = self
                .services
                .reservations(info, &candidate)
                .into_iter()
                .map(|k| (k, key.clone().into_bytes()))
                .collect();
            match self.storage.create(&key, stored.clone(), &also).await? {
                Write::Done(rev) => return written(self.object_from(info, &namespace, &name, rev, &stored)),
                Write::Failed(Some(_)) => match &generated_from {
                    Some(prefix) if name_retries < GENERATE_NAME_RETRIES => {
                        name_retries += 1;
                        name = format!("{prefix}{}", random_suffix());
                        meta_mut(&mut obj).insert("name".into(), name.clone().into());
                        key = info.key(&namespace, &name);
                    }
                    _ => return Err(ApiError::already_exists(info.plural, &name)),
                },
                // A reservation was taken: refuse a value the user asked
                // for, or pick again.
                Write::Failed(None) => self.refuse_taken(info.kind, &name, &requested).await?,
            }
        }
        Err(ApiError::internal(format!("no free cluster IP or node port found in {ALLOCATION_ATTEMPTS} attempts")))
    }

    /// Fails with Kubernetes' "already allocated" error if one of the
    /// values the user asked for is reserved.
    async fn refuse_taken(&self, kind: &str, name: &str, requested: &[Requested]) -> Result<()> {
        for r in requested {
            if self.storage.get(r.key()).await?.is_some() {
                return Err(r.taken(kind, name));
            }
        }
        Ok(())
    }

    /// Reads one object.
    pub async fn get(&self, info: &'static ResourceInfo, namespace: &str, name: &str) -> Result<Object> {
        self.check_scope(info, namespace)?;
        match self.storage.get(&info.key(namespace, name)).await? {
            Some(s) => Ok(self.object(info, &s)),
            None => Err(ApiError::not_found(info.plural, name)),
        }
    }

    async fn get_stored(&self, info: &'static ResourceInfo, namespace: &str, name: &str) -> Result<Stored> {
        self.storage.get(&info.key(namespace, name)).await?.ok_or_else(|| ApiError::not_found(info.plural, name))
    }

    fn prefix(info: &ResourceInfo, namespace: &str) -> String {
        if info.namespaced && !namespace.is_empty() {
            format!("{}{}/", info.key_prefix(), namespace)
        } else {
            info.key_prefix()
        }
    }

    fn filter(info: &ResourceInfo, namespace: &str, opts: &ListOptions) -> Result<Filter> {
        let labels = Selector::parse(&opts.label_selector)?;
        let fields = FieldSelector::parse(&opts.field_selector, &selectable_fields(info))?;
        let mut namespace = (info.namespaced && !namespace.is_empty()).then(|| namespace.to_string());
        if let Some(ns) = fields.exact("metadata.namespace") {
            namespace.get_or_insert_with(|| ns.to_string());
        }
        Ok(Filter { namespace, labels, fields })
    }

    /// Lists objects: one consistent snapshot, filtered by selectors.
    pub async fn list(&self, info: &'static ResourceInfo, namespace: &str, opts: &ListOptions) -> Result<ListResult> {
        let filter = Self::filter(info, namespace, opts)?;
        let prefix = Self::prefix(info, filter.namespace.as_deref().unwrap_or(""));
        let (mut revision, mut from) = (0, None);
        if !opts.continue_token.is_empty() {
            let (rev, key) = decode_continue(&opts.continue_token)?;
            if !key.starts_with(&prefix) {
                return Err(ApiError::bad_request("continue token does not belong to this list"));
            }
            revision = rev;
            from = Some(key);
        }
        let mut items = Vec::new();
        let mut continue_token = String::new();
        let mut scanned = 0;
        // Fetch pages from etcd until the requested number of matches is found.
        loop {
            let page = if opts.limit > 0 { opts.limit - items.len() as i64 } else { 0 };
            let (stored, rev, more) = self.storage.list(&prefix, from.as_deref(), revision, page).await?;
            revision = rev;
            scanned += stored.len();
            for s in &stored {
                let (ns, _) = key_parts(&s.key, &info.key_prefix(), info.namespaced);
                if filter.selects(info, ns, &s.value) {
                    items.push(self.object(info, s));
                }
            }
            let Some(last) = stored.last().filter(|_| more) else { break };
            let next = format!("{}\u{0}", last.key);
            if opts.limit > 0 && items.len() as i64 >= opts.limit {
                continue_token = encode_continue(revision, &next);
                break;
            }
            from = Some(next);
        }
        if scanned >= rkube_client::memory::BURST_ITEMS {
            // What etcd sent and the answer built from it are garbage soon.
            rkube_client::memory::release_soon();
        }
        Ok(ListResult { items, rv: revision, continue_token })
    }

    /// Watches objects: every change after `opts.resource_version`, or the
    /// current objects as ADDED first when it is empty or "0".
    pub async fn watch(
        &self,
        info: &'static ResourceInfo,
        namespace: &str,
        opts: &ListOptions,
    ) -> Result<impl Stream<Item = Result<WatchEvent>> + Send + 'static + use<>> {
        let filter = Self::filter(info, namespace, opts)?;
        let hub = self.hubs.get(info.plural).expect("every resource has a hub").clone();
        let (initial, after) = match opts.resource_version.as_str() {
            "" | "0" => {
                let list = self.list(info, namespace, &ListOptions { limit: 0, ..opts.clone() }).await?;
                let added: Vec<Result<WatchEvent>> = list
                    .items
                    .into_iter()
                    .map(|o| {
                        Ok(WatchEvent {
                            kind: crate::watch::EventType::Added,
                            namespace: o.namespace,
                            name: o.name,
                            rev: o.rv,
                            json: o.json,
                        })
                    })
                    .collect();
                (added, list.rv)
            }
            rv => (Vec::new(), parse_rv(rv, "watch")?),
        };
        let live = hub.subscribe(after, filter, self.shutdown.clone());
        Ok(futures::stream::iter(initial).chain(live))
    }

    /// Replaces an object (`status: false`: everything but its status;
    /// `status: true`: only its status), strict fields.
    pub async fn update(
        &self,
        info: &'static ResourceInfo,
        namespace: &str,
        name: &str,
        body: &[u8],
        status: bool,
        dry_run: bool,
    ) -> Result<Object> {
        let opts = WriteOptions { dry_run, ..WriteOptions::default() };
        Ok(self.update_with_options(info, namespace, name, body, status, opts).await?.object)
    }

    /// Replaces an object or its status.
    pub async fn update_with_options(
        &self,
        info: &'static ResourceInfo,
        namespace: &str,
        name: &str,
        body: &[u8],
        status: bool,
        opts: WriteOptions<'_>,
    ) -> Result<Written> {
        let dry_run = opts.dry_run;
        self.check_scope(info, namespace)?;
        if status {
            require_status(info)?;
        }
        let (obj, warnings) = self.parse_body(info, body, opts.field_validation)?;
        let body_name = meta(&obj, "name");
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let body_ns = meta(&obj, "namespace");
        if info.namespaced && !body_ns.is_empty() && body_ns != namespace {
            return Err(ApiError::bad_request(format!(
                "the namespace of the object ({body_ns}) does not match the namespace on the URL ({namespace})"
            )));
        }
        let precondition = match meta(&obj, "resourceVersion").as_str() {
            "" => None,
            rv => Some(parse_rv(rv, "metadata.resourceVersion")?),
        };
        let now = now();
        let manager = FieldManager {
            info,
            manager: manager_name(opts.field_manager)?,
            subresource: if status { "status" } else { "" },
            now: &now,
        };
        let object = self
            .update_with(info, namespace, name, Rewrite { precondition, dry_run, record: Some(manager) }, |old| {
                Ok(if status { with_status_of(old, &obj) } else { with_spec_of(info, old, &obj) })
            })
            .await?;
        Ok(Written { object, warnings, created: false })
    }

    /// The Scale of a replicated object.
    pub async fn get_scale(&self, info: &'static ResourceInfo, namespace: &str, name: &str) -> Result<Value> {
        rkube_api::scale::require_scale(info)?;
        let object = self.get(info, namespace, name).await?;
        Ok(rkube_api::scale::scale_of(&codec::decode(&object.json)?))
    }

    /// Sets `spec.replicas` of a replicated object from a Scale body (its
    /// metadata.resourceVersion, if set, is a precondition); returns the new Scale.
    pub async fn update_scale(
        &self,
        info: &'static ResourceInfo,
        namespace: &str,
        name: &str,
        body: &[u8],
        dry_run: bool,
    ) -> Result<Value> {
        rkube_api::scale::require_scale(info)?;
        self.check_scope(info, namespace)?;
        let scale = read_body(body)?;
        if !matches!(scale["kind"].as_str(), None | Some(rkube_api::scale::SCALE_KIND)) {
            return Err(ApiError::bad_request(format!(
                "the body's kind {} is not Scale: the scale subresource takes an autoscaling/v1 Scale",
                scale["kind"]
            )));
        }
        let replicas = rkube_api::scale::requested_replicas(&scale, name)?;
        let precondition = match meta(&scale, "resourceVersion").as_str() {
            "" => None,
            rv => Some(parse_rv(rv, "metadata.resourceVersion")?),
        };
        let now = now();
        let manager = FieldManager { info, manager: "unknown", subresource: "scale", now: &now };
        let object = self
            .update_with(info, namespace, name, Rewrite { precondition, dry_run, record: Some(manager) }, |old| {
                let mut new = old.clone();
                new["spec"]["replicas"] = Value::from(replicas);
                Ok(new)
            })
            .await?;
        Ok(rkube_api::scale::scale_of(&codec::decode(&object.json)?))
    }

    /// Applies a patch to an object (or to its status). An apply creates
    /// the object when it is missing.
    pub async fn patch(
        &self,
        info: &'static ResourceInfo,
        namespace: &str,
        name: &str,
        req: &Patch<'_>,
    ) -> Result<Written> {
        let Patch { kind, body: patch, status, dry_run, field_validation, field_manager, force } = *req;
        let apply = kind == PatchKind::Apply;
        let warnings = std::sync::Mutex::new(Vec::new());
        self.check_scope(info, namespace)?;
        if status {
            require_status(info)?;
        }
        if apply && field_manager.is_empty() {
            return Err(ApiError::bad_request("fieldManager is required for apply requests"));
        }
        if force && !apply {
            return Err(ApiError::bad_request("force: Forbidden: may not be specified for non-apply patch"));
        }
        let now = now();
        let manager = FieldManager {
            info,
            manager: manager_name(field_manager)?,
            subresource: if status { "status" } else { "" },
            now: &now,
        };
        let mut patch = parse_patch(kind, patch)?;
        if apply {
            kinds::stamp_type(info, &mut patch)?;
            *warnings.lock().unwrap_or_else(|p| p.into_inner()) =
                unknown_field_warnings(info, &mut patch, field_validation);
        }
        let precondition = match patch.pointer("/metadata/resourceVersion").and_then(Value::as_str) {
            Some(rv) if kind != PatchKind::Json => Some(parse_rv(rv, "metadata.resourceVersion")?),
            _ => None,
        };
        let record = (!apply).then_some(manager);
        let result = self
            .update_with(info, namespace, name, Rewrite { precondition, dry_run, record }, |old| {
                let target = if apply {
                    manager.apply(old, &patch, force)?
                } else {
                    let mut target = old.clone();
                    patch_value(kind, info.kind, &mut target, &patch)?;
                    kinds::stamp_type(info, &mut target)?;
                    *warnings.lock().unwrap_or_else(|p| p.into_inner()) =
                        unknown_field_warnings(info, &mut target, field_validation);
                    target
                };
                if !status {
                    return Ok(with_spec_of(info, old, &target));
                }
                let mut new = with_status_of(old, &target);
                if let Some(owners) = target.pointer("/metadata/managedFields") {
                    meta_mut(&mut new).insert("managedFields".into(), owners.clone());
                }
                Ok(new)
            })
            .await;
        let warnings = warnings.into_inner().unwrap_or_else(|p| p.into_inner());
        match result {
            Err(e) if e.reason == Reason::NotFound && apply && !status && precondition.is_none() => {
                let body_name = meta(&patch, "name");
                if !body_name.is_empty() && body_name != name {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({body_name}) does not match the name on the URL ({name})"
                    )));
                }
                let mut obj = manager.apply(&Value::Null, &patch, force)?;
                meta_mut(&mut obj).insert("name".into(), name.into());
                self.create_value(info, namespace, obj, warnings, dry_run, None).await
            }
            result => Ok(Written { object: result?, warnings, created: false }),
        }
    }

    /// The read-modify-write loop behind update and patch: `change` maps the
    /// stored object to the new one; a lost race retries unless the caller
    /// gave a resourceVersion, in which case it is a Conflict. The write is
    /// recorded in managedFields for `how.record` (an apply records itself).
    async fn update_with(
        &self,
        info: &'static ResourceInfo,
        namespace: &str,
        name: &str,
        how: Rewrite<'_>,
        change: impl Fn(&Value) -> Result<Value>,
    ) -> Result<Object> {
        let Rewrite { precondition, dry_run, record } = how;
        let key = info.key(namespace, name);
        let mut current = self.get_stored(info, namespace, name).await?;
        for _ in 0..UPDATE_RETRIES {
            if precondition.is_some_and(|rv| rv != current.mod_revision) {
                return Err(ApiError::conflict(
                    info.plural,
                    name,
                    "the object has been modified; please apply your changes to the latest version and try again",
                ));
            }
            let mut old = codec::decode(&current.value)?;
            codec::set_resource_version(&mut old, current.mod_revision);
            let proposed = change(&old)?;
            let mut new = kinds::prepare_update(info, &proposed, &old)?;
            bump_generation(&mut new, &old);
            self.admission.admit_update(info, namespace, &mut new, &old)?;
            let requested = self.services.requested(info, &new, Some(&old));
            if info.kind == "Service" {
                self.services.assign(&mut new)?;
            }
            if let Some(manager) = record {
                manager.update(&old, &mut new);
            }
            let stored = codec::encode(&new)?;
            let old_stored = codec::encode(&old)?;
            if (stored == old_stored && !current.stale) || dry_run {
                // Nothing changed: no write, same resourceVersion.
                return Ok(self.object_from(info, namespace, name, current.mod_revision, &stored));
            }
            // An object being deleted whose last finalizer is gone goes away
            // (a namespace's spec.finalizers, which its controller empties, included).
            let finalizers_done = new.pointer("/metadata/deletionTimestamp").is_some()
                && new.pointer("/metadata/finalizers").and_then(Value::as_array).is_none_or(Vec::is_empty)
                && new.pointer("/spec/finalizers").and_then(Value::as_array).is_none_or(Vec::is_empty)
                && !(info.kind == "Pod" && pod_awaits_kubelet(&new));
            let (held, wanted) = (self.services.reservations(info, &old), self.services.reservations(info, &new));
            let outcome = if finalizers_done {
                let also: Vec<String> = held.into_iter().collect();
                self.storage.delete(&key, current.mod_revision, &also).await?
            } else {
                let reserve: Vec<(String, Vec<u8>)> =
                    wanted.difference(&held).map(|k| (k.clone(), key.clone().into_bytes())).collect();
                let release: Vec<String> = held.difference(&wanted).cloned().collect();
                self.storage.update_reserving(&key, current.mod_revision, stored.clone(), &reserve, &release).await?
            };
            match outcome {
                Write::Done(rev) => return Ok(self.object_from(info, namespace, name, rev, &stored)),
                Write::Failed(None) => return Err(ApiError::not_found(info.plural, name)),
                Write::Failed(Some(now)) => {
                    if now.mod_revision == current.mod_revision {
                        // Unchanged, so a reservation was taken.
                        self.refuse_taken(info.kind, name, &requested).await?;
                    }
                    current = now;
                }
            }
        }
        Err(ApiError::conflict(info.plural, name, "too many concurrent writers; try again"))
    }

    /// Deletes an object: at once, or gracefully (pods on a node), or once its
    /// finalizers are gone. Returns the object and whether it is gone.
    pub async fn delete(
        &self,
        info: &'static ResourceInfo,
        namespace: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<(Object, bool)> {
        self.check_scope(info, namespace)?;
        self.admission.admit_delete(info, namespace, name)?;
        let key = info.key(namespace, name);
        let mut current = self.get_stored(info, namespace, name).await?;
        for _ in 0..UPDATE_RETRIES {
            let old = codec::decode(&current.value)?;
            self.admission.admit_delete_of(info, namespace, &old)?;
            if !opts.uid.is_empty() && meta(&old, "uid") != opts.uid {
                return Err(ApiError::conflict(
                    info.plural,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {}, UID in object meta: {}",
                        opts.uid,
                        meta(&old, "uid")
                    ),
                ));
            }
            if !opts.resource_version.is_empty()
                && parse_rv(&opts.resource_version, "preconditions.resourceVersion")? != current.mod_revision
            {
                return Err(ApiError::conflict(
                    info.plural,
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {}, ResourceVersion in object meta: {}",
                        opts.resource_version, current.mod_revision
                    ),
                ));
            }
            let plan = plan_delete(info, &old, opts);
            if opts.dry_run {
                let obj = self.object(info, &current);
                return Ok((obj, matches!(plan, DeletePlan::Now)));
            }
            let outcome = match &plan {
                DeletePlan::Now => {
                    let also: Vec<String> = self.services.reservations(info, &old).into_iter().collect();
                    self.storage.delete(&key, current.mod_revision, &also).await?
                }
                DeletePlan::Mark(new) => {
                    if new == &old {
                        return Ok((self.object(info, &current), false));
                    }
                    self.storage.update(&key, current.mod_revision, codec::encode(new)?).await?
                }
            };
            match (outcome, plan) {
                (Write::Done(rev), DeletePlan::Now) => {
                    return Ok((self.object_from(info, namespace, name, rev, &current.value), true));
                }
                (Write::Done(rev), DeletePlan::Mark(new)) => {
                    return Ok((self.object_from(info, namespace, name, rev, &codec::encode(&new)?), false));
                }
                (Write::Failed(None), _) => return Err(ApiError::not_found(info.plural, name)),
                (Write::Failed(Some(now)), _) => current = now,
            }
        }
        Err(ApiError::conflict(info.plural, name, "too many concurrent writers; try again"))
    }

    /// Binds a pod to a node (the `binding` subresource).
    pub async fn bind(&self, namespace: &str, name: &str, body: &[u8]) -> Result<Object> {
        let pods = lookup("pods").expect("pods are in the table");
        let mut binding = parse_object(body)?;
        kinds::stamp_type(&rkube_api::resource::BINDING, &mut binding)?;
        let binding: k8s_openapi::api::core::v1::Binding = kinds::decode(&rkube_api::resource::BINDING, &binding)?;
        let node = binding.target.name.clone().unwrap_or_default();
        if node.is_empty() {
            return Err(ApiError::invalid("Binding", name, vec![rkube_api::validation::required("target.name")]));
        }
        let bname = binding.metadata.name.clone().unwrap_or_default();
        if !bname.is_empty() && bname != name {
            return Err(ApiError::bad_request(format!(
                "the binding's name ({bname}) does not match the pod's ({name})"
            )));
        }
        let key = pods.key(namespace, name);
        let mut current = self.get_stored(pods, namespace, name).await?;
        for _ in 0..UPDATE_RETRIES {
            let mut pod = codec::decode(&current.value)?;
            if pod.pointer("/metadata/deletionTimestamp").is_some() {
                return Err(ApiError::conflict(
                    pods.plural,
                    name,
                    "pod is being deleted, cannot be assigned to a host",
                ));
            }
            if let Some(uid) = binding.metadata.uid.as_deref()
                && uid != meta(&pod, "uid")
            {
                return Err(ApiError::conflict(pods.plural, name, "the pod's UID does not match the binding's"));
            }
            let assigned = pod.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or_default().to_string();
            if !assigned.is_empty() {
                return Err(ApiError::conflict(
                    pods.plural,
                    name,
                    &format!("pod {name} is already assigned to node \"{assigned}\""),
                ));
            }
            pod["spec"]["nodeName"] = node.clone().into();
            set_condition(&mut pod, "PodScheduled", "True", "", "");
            let stored = codec::encode(&pod)?;
            match self.storage.update(&key, current.mod_revision, stored.clone()).await? {
                Write::Done(rev) => return Ok(self.object_from(pods, namespace, name, rev, &stored)),
                Write::Failed(None) => return Err(ApiError::not_found(pods.plural, name)),
                Write::Failed(Some(now)) => current = now,
            }
        }
        Err(ApiError::conflict(pods.plural, name, "too many concurrent writers; try again"))
    }
}

/// What a delete does to an object.
enum DeletePlan {
    /// Remove it from storage.
    Now,
    /// Store this (deletionTimestamp set) and let its finalizers or its kubelet finish.
    Mark(Value),
}

/// Whether a pod marked for deletion still waits for its kubelet to stop it.
fn pod_awaits_kubelet(pod: &Value) -> bool {
    let on_node = pod.pointer("/spec/nodeName").and_then(Value::as_str).is_some_and(|n| !n.is_empty());
    let phase = pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or_default();
    let grace = pod.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(0);
    on_node && grace > 0 && !matches!(phase, "Succeeded" | "Failed")
}

fn plan_delete(info: &ResourceInfo, old: &Value, opts: &DeleteOptions) -> DeletePlan {
    let mut new = old.clone();
    let being_deleted = old.pointer("/metadata/deletionTimestamp").is_some();
    let m = meta_mut(&mut new);
    let mut finalizers: Vec<Value> = m.get("finalizers").and_then(Value::as_array).cloned().unwrap_or_default();
    let has = |f: &Vec<Value>, name: &str| f.iter().any(|v| v.as_str() == Some(name));
    let policy_finalizer = match opts.propagation {
        Propagation::Foreground => Some("foregroundDeletion"),
        Propagation::Orphan => Some("orphan"),
        Propagation::Background => None,
    };
    if let Some(f) = policy_finalizer
        && !has(&finalizers, f)
        && !being_deleted
    {
        finalizers.push(f.into());
    }
    // Namespaces finish through their own spec.finalizers ("kubernetes").
    let ns_finalizers = info.kind == "Namespace"
        && old.pointer("/spec/finalizers").and_then(Value::as_array).is_some_and(|f| !f.is_empty());
    let mut grace = 0;
    if info.kind == "Pod" {
        let default = old.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(30);
        // As Kubernetes' pod strategy: a negative period means 1 second.
        grace = match opts.grace_period_seconds.unwrap_or(default) {
            g if g < 0 => 1,
            g => g.min(MAX_GRACE_SECONDS),
        };
        let on_node = old.pointer("/spec/nodeName").and_then(Value::as_str).is_some_and(|n| !n.is_empty());
        let phase = old.pointer("/status/phase").and_then(Value::as_str).unwrap_or_default();
        if !on_node || matches!(phase, "Succeeded" | "Failed") {
            grace = 0;
        }
        if let Some(current) = m.get("deletionGracePeriodSeconds").and_then(Value::as_i64) {
            grace = grace.min(current);
        }
    }
    if finalizers.is_empty() && !ns_finalizers && grace == 0 {
        return DeletePlan::Now;
    }
    if !being_deleted || info.kind == "Pod" {
        let ts = timestamp(grace);
        if !being_deleted || grace < m.get("deletionGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(i64::MAX) {
            m.insert("deletionTimestamp".into(), ts.into());
        }
        m.insert("deletionGracePeriodSeconds".into(), grace.into());
    }
    if !finalizers.is_empty() {
        m.insert("finalizers".into(), Value::Array(finalizers));
    }
    if info.kind == "Namespace" {
        new["status"]["phase"] = "Terminating".into();
    }
    DeletePlan::Mark(new)
}

/// The new object for a status update: the old one with `body`'s status.
fn with_status_of(old: &Value, body: &Value) -> Value {
    let mut new = old.clone();
    match body.get("status") {
        Some(s) => new["status"] = s.clone(),
        None => {
            if let Some(map) = new.as_object_mut() {
                map.remove("status");
            }
        }
    }
    new
}

/// The new object for a main-resource update: `body`, with the system
/// metadata and (where the kind has one) the status of the stored object.
fn with_spec_of(info: &ResourceInfo, old: &Value, body: &Value) -> Value {
    let mut new = body.clone();
    let old_meta = old.get("metadata").cloned().unwrap_or(Value::Null);
    let m = meta_mut(&mut new);
    for f in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "namespace",
        "name",
        "generateName",
    ] {
        match old_meta.get(f) {
            Some(v) => {
                m.insert(f.into(), v.clone());
            }
            None => {
                m.remove(f);
            }
        }
    }
    m.remove("resourceVersion");
    if info.has_status {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(map) = new.as_object_mut() {
                    map.remove("status");
                }
            }
        }
    }
    new
}

/// Bumps metadata.generation when anything but metadata and status changed.
fn bump_generation(new: &mut Value, old: &Value) {
    let strip = |v: &Value| -> Value {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("metadata");
            m.remove("status");
        }
        v
    };
    let old_gen = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
    let generation = if strip(new) != strip(old) { old_gen + 1 } else { old_gen };
    meta_mut(new).insert("generation".into(), generation.into());
}

/// Sets a pod condition (type, status, reason, message), keeping the others.
pub fn set_condition(pod: &mut Value, kind: &str, status: &str, reason: &str, message: &str) {
    let mut cond = json!({"type": kind, "status": status, "lastTransitionTime": now()});
    if !reason.is_empty() {
        cond["reason"] = reason.into();
    }
    if !message.is_empty() {
        cond["message"] = message.into();
    }
    let root = pod.as_object_mut().expect("pods are objects");
    let st = root.entry("status").or_insert_with(|| json!({}));
    if !st.is_object() {
        *st = json!({});
    }
    let conds = st.as_object_mut().expect("made an object").entry("conditions").or_insert_with(|| json!([]));
    let list = match conds.as_array_mut() {
        Some(l) => l,
        None => {
            *conds = json!([]);
            conds.as_array_mut().expect("made an array")
        }
    };
    match list.iter_mut().find(|c| c["type"] == kind) {
        Some(c) => *c = cond,
        None => list.push(cond),
    }
}

fn encode_continue(rev: i64, key: &str) -> String {
    let raw = json!({"rv": rev, "start": key}).to_string();
    raw.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_continue(token: &str) -> Result<(i64, String)> {
    let bad = || ApiError::bad_request(format!("invalid continue token \"{token}\""));
    if !token.len().is_multiple_of(2) {
        return Err(bad());
    }
    let bytes: Option<Vec<u8>> =
        (0..token.len()).step_by(2).map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok()).collect();
    let v: Value = serde_json::from_slice(&bytes.ok_or_else(bad)?).map_err(|_| bad())?;
    let rev = v["rv"].as_i64().ok_or_else(bad)?;
    let key = v["start"].as_str().ok_or_else(bad)?.to_string();
    Ok((rev, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_garbage_is_refused() {
        let t = encode_continue(42, "/registry/pods/default/b");
        assert_eq!(decode_continue(&t).expect("decodes"), (42, "/registry/pods/default/b".to_string()));
        assert!(decode_continue("zz").is_err());
        assert!(decode_continue("abc").is_err());
    }

    #[test]
    fn generation_moves_only_with_the_spec() {
        let old = json!({"metadata": {"generation": 3}, "spec": {"a": 1}, "status": {"x": 1}});
        let mut same = json!({"metadata": {"labels": {"l": "v"}}, "spec": {"a": 1}, "status": {"x": 2}});
        bump_generation(&mut same, &old);
        assert_eq!(same["metadata"]["generation"], 3);
        let mut changed = json!({"metadata": {}, "spec": {"a": 2}});
        bump_generation(&mut changed, &old);
        assert_eq!(changed["metadata"]["generation"], 4);
    }

    #[test]
    fn scheduled_running_pods_are_deleted_gracefully() {
        let pods = lookup("pods").expect("pods");
        let pod = json!({"metadata": {"name": "a"}, "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 30},
            "status": {"phase": "Running"}});
        match plan_delete(pods, &pod, &DeleteOptions::default()) {
            DeletePlan::Mark(new) => {
                assert_eq!(new["metadata"]["deletionGracePeriodSeconds"], 30);
                assert!(new["metadata"]["deletionTimestamp"].is_string());
            }
            DeletePlan::Now => panic!("a running pod on a node waits for its kubelet"),
        }
        let unscheduled = json!({"metadata": {"name": "a"}, "spec": {}});
        assert!(matches!(plan_delete(pods, &unscheduled, &DeleteOptions::default()), DeletePlan::Now));
        let now = DeleteOptions { grace_period_seconds: Some(0), ..Default::default() };
        assert!(matches!(plan_delete(pods, &pod, &now), DeletePlan::Now));
    }

    #[test]
    fn finalizers_hold_deletion() {
        let cms = lookup("configmaps").expect("configmaps");
        let cm = json!({"metadata": {"name": "a", "finalizers": ["example.com/hold"]}});
        assert!(matches!(plan_delete(cms, &cm, &DeleteOptions::default()), DeletePlan::Mark(_)));
    }
}
