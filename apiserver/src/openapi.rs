//! OpenAPI v3 documents, generated from the Kubernetes types.
//!
//! kubectl reads `GET /openapi/v3`, an index naming one document per
//! group-version (`api/v1`, `apis/apps/v1`, …) by a URL carrying its content
//! hash, then fetches the documents it needs. It uses them to
//!
//! - check that the server validates fields itself: for `create -f`, `apply -f`
//!   and `replace -f` it looks for a PATCH operation tagged with the kind's
//!   `x-kubernetes-group-version-kind` that takes a `fieldValidation` query
//!   parameter, then sends `fieldValidation=Strict` instead of validating
//!   client-side (without any OpenAPI those commands fail with "failed to
//!   download openapi");
//! - explain fields (`kubectl explain pod.spec.containers`): it finds the kind
//!   through the operations of the resource's paths, then the component schema
//!   whose `x-kubernetes-group-version-kind` lists it, and follows `$ref`s.
//!
//! The schemas are k8s-openapi's `JsonSchema` impls (schemars, OpenAPI 3
//! settings), so the component names are Kubernetes' own
//! (`io.k8s.api.core.v1.Pod`). k8s-openapi's schemas carry no
//! `x-kubernetes-patch-merge-key`/`x-kubernetes-patch-strategy`, so PATCH
//! operations do not offer `application/strategic-merge-patch+json`: kubectl's
//! client-side `apply` then computes its strategic merge patches from its
//! compiled-in types, which know the merge keys, instead of from these
//! schemas, which would make it replace lists such as `containers` whole.
//!
//! OpenAPI v2 (`/openapi/v2`) is not served: kubectl 1.32 asks for v3 first and
//! only falls back to v2 when v3 is missing; `apply` tolerates a missing v2.
//!
//! [`OpenApi::shared`] builds the documents once; each is serialized once and
//! served as [`Bytes`].

use bytes::Bytes;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Event, LimitRange, Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod,
    ReplicationController, ResourceQuota, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, ListMeta, Patch, Status};
use k8s_openapi::schemars::generate::{SchemaGenerator, SchemaSettings};
use k8s_openapi::schemars::{JsonSchema, Schema};
use rkube_api::resource::ResourceInfo;
use rkube_api::versions::all_served;
use serde_json::{Map, Value, json};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::LazyLock;
use tracing::{debug, warn};

/// The `info.version` of every document: the version `/version` reports.
const VERSION: &str = concat!("v1.33.0-rkube.", env!("CARGO_PKG_VERSION"));

/// The OpenAPI v3 documents of every group-version rkube serves, serialized.
pub struct OpenApi {
    index: Bytes,
    /// By index path ("api/v1", "apis/apps/v1").
    documents: BTreeMap<String, Document>,
}

/// One group-version's document.
struct Document {
    body: Bytes,
    hash: String,
}

impl std::fmt::Debug for OpenApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenApi")
            .field("index_bytes", &self.index.len())
            .field("documents", &self.documents.iter().map(|(k, d)| (k, d.body.len())).collect::<Vec<_>>())
            .finish()
    }
}

static SHARED: LazyLock<OpenApi> = LazyLock::new(OpenApi::build);

impl OpenApi {
    /// The documents, built on first use (about 0.2 s in a debug build) and
    /// kept for the life of the process.
    pub fn shared() -> &'static OpenApi {
        &SHARED
    }

    /// Builds and serializes the documents for every group-version in
    /// [`RESOURCES`].
    pub fn build() -> OpenApi {
        let started = std::time::Instant::now();
        let mut group_versions: Vec<(&str, &str)> = Vec::new();
        for r in all_served() {
            if !group_versions.contains(&(r.group, r.version)) {
                group_versions.push((r.group, r.version));
            }
        }
        let mut documents = BTreeMap::new();
        for (group, version) in group_versions {
            let resources: Vec<&ResourceInfo> =
                all_served().filter(|r| r.group == group && r.version == version).collect();
            let body = serde_json::to_vec(&group_version_document(&resources)).expect("a JSON value always serializes");
            let hash = content_hash(&body);
            documents.insert(index_path(group, version), Document { body: Bytes::from(body), hash });
        }
        let paths: Map<String, Value> = documents
            .iter()
            .map(|(path, doc)| {
                (path.clone(), json!({ "serverRelativeURL": format!("/openapi/v3/{path}?hash={}", doc.hash) }))
            })
            .collect();
        let index = serde_json::to_vec(&json!({ "paths": paths })).expect("a JSON value always serializes");
        debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            bytes = documents.values().map(|d| d.body.len()).sum::<usize>(),
            "built the OpenAPI v3 documents"
        );
        OpenApi { index: Bytes::from(index), documents }
    }

    /// `GET /openapi/v3`: `{"paths":{"api/v1":{"serverRelativeURL":"/openapi/v3/api/v1?hash=…"},…}}`.
    pub fn v3_index(&self) -> &Bytes {
        &self.index
    }

    /// `GET /openapi/v3/<path>`, `path` being an index key such as `api/v1`
    /// or `apis/apps/v1` (a leading `/` is ignored): the document and its
    /// content hash (the `hash` query parameter of its URL, fit for an ETag).
    /// `None` for an unknown group-version.
    pub fn v3_group_version(&self, path: &str) -> Option<(&Bytes, &str)> {
        let doc = self.documents.get(path.trim_start_matches('/'))?;
        Some((&doc.body, &doc.hash))
    }

    /// The index paths of the documents (`api/v1`, `apis/apps/v1`, …).
    pub fn group_versions(&self) -> impl Iterator<Item = &str> {
        self.documents.keys().map(String::as_str)
    }
}

/// The index key of a group-version: `api/v1`, `apis/apps/v1`.
fn index_path(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

/// A hex content hash (FNV-1a, 128 bits): it changes whenever the document
/// does, so clients that cache documents by URL never see a stale one.
fn content_hash(bytes: &[u8]) -> String {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let hash = bytes.iter().fold(OFFSET, |h, &b| (h ^ u128::from(b)).wrapping_mul(PRIME));
    format!("{hash:032X}")
}

/// A kind rkube serves and the k8s-openapi type it is.
struct Kind {
    api_version: &'static str,
    kind: &'static str,
    /// The component name (`io.k8s.api.core.v1.Pod`).
    name: fn() -> Cow<'static, str>,
    /// Adds the type's schema (and those it refers to) to the generator;
    /// returns a `$ref` to it.
    schema: fn(&mut SchemaGenerator) -> Schema,
}

fn kind<K: k8s_openapi::Resource + JsonSchema>() -> Kind {
    Kind { api_version: K::API_VERSION, kind: K::KIND, name: K::schema_name, schema: |g| g.subschema_for::<K>() }
}

/// The type of every kind served (`all_served`).
fn kinds() -> [Kind; 27] {
    [
        kind::<Namespace>(),
        kind::<Node>(),
        kind::<Pod>(),
        kind::<Service>(),
        kind::<Endpoints>(),
        kind::<ReplicationController>(),
        kind::<ConfigMap>(),
        kind::<Secret>(),
        kind::<ServiceAccount>(),
        kind::<Event>(),
        kind::<PersistentVolume>(),
        kind::<PersistentVolumeClaim>(),
        kind::<LimitRange>(),
        kind::<ResourceQuota>(),
        kind::<ReplicaSet>(),
        kind::<Deployment>(),
        kind::<DaemonSet>(),
        kind::<Job>(),
        kind::<HorizontalPodAutoscaler>(),
        kind::<Lease>(),
        kind::<EndpointSlice>(),
        kind::<ClusterRoleBinding>(),
        kind::<ClusterRole>(),
        kind::<RoleBinding>(),
        kind::<Role>(),
        // The versions served by conversion (rkube_api::versions).
        kind::<k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler>(),
        kind::<k8s_openapi::api::events::v1::Event>(),
    ]
}

/// The schema refs an operation needs besides its kind's.
struct Common {
    delete_options: Value,
    status: Value,
    patch: Value,
}

/// The document of one group-version: a path item per resource (collection,
/// object, status) and the component schemas they refer to.
fn group_version_document(resources: &[&ResourceInfo]) -> Value {
    let kinds = kinds();
    let mut generator = SchemaSettings::openapi3().into_generator();
    let common = Common {
        delete_options: generator.subschema_for::<DeleteOptions>().to_value(),
        status: generator.subschema_for::<Status>().to_value(),
        patch: generator.subschema_for::<Patch>().to_value(),
    };
    let list_meta = generator.subschema_for::<ListMeta>().to_value();
    let mut paths = Map::new();
    let mut tagged = Vec::new();
    for info in resources {
        let (schema, list) = match kinds.iter().find(|k| k.api_version == info.api_version && k.kind == info.kind) {
            Some(k) => {
                let name = (k.name)().into_owned();
                let schema = (k.schema)(&mut generator).to_value();
                let list = json!({ "$ref": format!("#/components/schemas/{name}List") });
                tagged.push((name, *info));
                (schema, list)
            }
            None => {
                warn!(kind = info.kind, api_version = info.api_version, "no OpenAPI schema for this kind");
                let any = json!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true });
                (any.clone(), any)
            }
        };
        add_paths(&mut paths, info, &schema, &list, &common);
    }
    let mut schemas = generator.take_definitions(true);
    for (name, info) in &tagged {
        let Some(Value::Object(schema)) = schemas.get_mut(name) else { continue };
        // k8s-openapi requires `metadata` of every resource (its Rust type is
        // not an Option); Kubernetes' schemas do not.
        if let Some(Value::Array(required)) = schema.get_mut("required") {
            required.retain(|f| f != "metadata");
            if required.is_empty() {
                schema.remove("required");
            }
        }
        schema.insert("x-kubernetes-group-version-kind".into(), json!([gvk(info, info.kind)]));
        let list = list_schema(info, schema, &json!({ "$ref": format!("#/components/schemas/{name}") }), &list_meta);
        schemas.insert(format!("{name}List"), list);
    }
    json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": VERSION },
        "paths": paths,
        "components": { "schemas": schemas },
    })
}

/// The schema of a resource's list, `<item component>List` (k8s-openapi's `List<T>` has none): the
/// item kind's `apiVersion` and `kind` fields, `ListMeta` and the items.
fn list_schema(info: &ResourceInfo, item: &Map<String, Value>, item_ref: &Value, list_meta: &Value) -> Value {
    let field =
        |name: &str| item.get("properties").and_then(|p| p.get(name)).cloned().unwrap_or(json!({"type": "string"}));
    json!({
        "description": format!("{} is a list of {}.", info.list_kind(), info.kind),
        "type": "object",
        "properties": {
            "apiVersion": field("apiVersion"),
            "kind": field("kind"),
            "metadata": { "allOf": [list_meta], "description": "Standard list metadata." },
            "items": { "description": format!("List of {}.", info.plural), "type": "array", "items": item_ref },
        },
        "required": ["items"],
        "x-kubernetes-group-version-kind": [gvk(info, &info.list_kind())],
    })
}

/// `{"group":…,"kind":…,"version":…}` (the keys kubectl compares).
fn gvk(info: &ResourceInfo, kind: &str) -> Value {
    json!({ "group": info.group, "kind": kind, "version": info.version })
}

/// Adds the collection, object and status paths of one resource.
fn add_paths(paths: &mut Map<String, Value>, info: &ResourceInfo, schema: &Value, list: &Value, common: &Common) {
    let prefix = format!("/{}", index_path(info.group, info.version));
    let ids = OperationIds::new(info);
    let scoped = if info.namespaced { "Namespaced" } else { "" };
    let gvk = gvk(info, info.kind);
    let op = |action: &str, id: String, description: String, mut extra: Map<String, Value>| {
        extra.insert("operationId".into(), id.into());
        extra.insert("description".into(), description.into());
        extra.insert("tags".into(), json!([ids.tag]));
        extra.insert("x-kubernetes-action".into(), action.into());
        extra.insert("x-kubernetes-group-version-kind".into(), gvk.clone());
        Value::Object(extra)
    };
    let body = |schema: &Value| json!({ "required": true, "content": { "*/*": { "schema": schema } } });
    let mut path_params = vec![param("pretty", "query", "If 'true', the output is pretty printed.", "string")];
    if info.namespaced {
        path_params.push(param(
            "namespace",
            "path",
            "object name and auth scope, such as for teams and projects",
            "string",
        ));
    }
    let (kind, plural) = (info.kind, info.plural);

    if info.namespaced {
        let all = format!("{prefix}/{plural}");
        paths.insert(
            all,
            json!({
                "parameters": [param("pretty", "query", "If 'true', the output is pretty printed.", "string")],
                "get": op("list", ids.id("list", "", "ForAllNamespaces"), format!("list or watch objects of kind {kind}"),
                    obj(json!({ "parameters": list_params(), "responses": responses(&[("200", list)]) }))),
            }),
        );
    }

    let collection = if info.namespaced {
        format!("{prefix}/namespaces/{{namespace}}/{plural}")
    } else {
        format!("{prefix}/{plural}")
    };
    let mut delete_collection_params = list_params();
    delete_collection_params.extend(delete_params());
    paths.insert(
        collection.clone(),
        json!({
            "parameters": path_params,
            "get": op("list", ids.id("list", scoped, ""), format!("list or watch objects of kind {kind}"),
                obj(json!({ "parameters": list_params(), "responses": responses(&[("200", list)]) }))),
            "post": op("post", ids.id("create", scoped, ""), format!("create a {kind}"),
                obj(json!({ "parameters": write_params(), "requestBody": body(schema),
                    "responses": responses(&[("200", schema), ("201", schema), ("202", schema)]) }))),
            "delete": op("deletecollection", ids.id("delete", "Collection", scoped), format!("delete collection of {kind}"),
                obj(json!({ "parameters": delete_collection_params, "requestBody": body(&common.delete_options),
                    "responses": responses(&[("200", &common.status)]) }))),
        }),
    );

    let mut object_params = path_params.clone();
    object_params.insert(0, param("name", "path", &format!("name of the {kind}"), "string"));
    let object = format!("{collection}/{{name}}");
    let mut patch_params = write_params();
    patch_params.push(param(
        "force",
        "query",
        "Force is going to \"force\" Apply requests: re-acquire fields owned by other people. Must be unset for non-apply patch requests.",
        "boolean",
    ));
    let patch_body = json!({
        "required": true,
        "content": {
            "application/json-patch+json": { "schema": common.patch },
            "application/merge-patch+json": { "schema": common.patch },
            "application/apply-patch+yaml": { "schema": common.patch },
        },
    });
    let object_item = |suffix: &str, what: &str| {
        let mut item = json!({
            "parameters": object_params,
            "get": op("get", ids.id("read", scoped, suffix), format!("read {what} of the specified {kind}"),
                obj(json!({ "responses": responses(&[("200", schema)]) }))),
            "put": op("put", ids.id("replace", scoped, suffix), format!("replace {what} of the specified {kind}"),
                obj(json!({ "parameters": write_params(), "requestBody": body(schema),
                    "responses": responses(&[("200", schema), ("201", schema)]) }))),
            "patch": op("patch", ids.id("patch", scoped, suffix), format!("partially update {what} of the specified {kind}"),
                obj(json!({ "parameters": patch_params, "requestBody": patch_body,
                    "responses": responses(&[("200", schema), ("201", schema)]) }))),
        });
        if suffix.is_empty() {
            item["delete"] = op(
                "delete",
                ids.id("delete", scoped, ""),
                format!("delete a {kind}"),
                obj(json!({ "parameters": delete_params(), "requestBody": body(&common.delete_options),
                    "responses": responses(&[("200", &common.status), ("202", &common.status)]) })),
            );
        }
        item
    };
    paths.insert(object.clone(), object_item("", "the object"));
    if info.has_status {
        paths.insert(format!("{object}/status"), object_item("Status", "status"));
    }
}

/// Kubernetes-style operation ids (`readCoreV1NamespacedPod`) and tags (`core_v1`).
struct OperationIds {
    /// `CoreV1`, `AppsV1`, `CoordinationV1`.
    group_version: String,
    kind: &'static str,
    tag: String,
}

impl OperationIds {
    fn new(info: &ResourceInfo) -> Self {
        let group =
            if info.group.is_empty() { "core" } else { info.group.strip_suffix(".k8s.io").unwrap_or(info.group) };
        let camel: String = group.split('.').map(capitalize).collect();
        let mut tag = camel.clone();
        if let Some(first) = tag.get_mut(..1) {
            first.make_ascii_lowercase();
        }
        OperationIds {
            group_version: format!("{camel}{}", capitalize(info.version)),
            kind: info.kind,
            tag: format!("{tag}_{}", info.version),
        }
    }

    /// `<verb><GroupVersion><infix><Kind><suffix>`.
    fn id(&self, verb: &str, infix: &str, suffix: &str) -> String {
        format!("{verb}{}{infix}{}{suffix}", self.group_version, self.kind)
    }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
}

fn obj(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => unreachable!("called with a JSON object literal"),
    }
}

/// A parameter of type `ty` (path parameters are required).
fn param(name: &str, location: &str, description: &str, ty: &str) -> Value {
    let mut p = json!({ "name": name, "in": location, "description": description, "schema": { "type": ty } });
    if location == "path" {
        p["required"] = true.into();
    }
    p
}

/// Parameters of create, update and patch.
fn write_params() -> Vec<Value> {
    vec![
        param(
            "dryRun",
            "query",
            "When present, indicates that modifications should not be persisted. Valid values: All.",
            "string",
        ),
        param(
            "fieldManager",
            "query",
            "A name associated with the actor or entity that is making these changes.",
            "string",
        ),
        param(
            "fieldValidation",
            "query",
            "How the server treats unknown and duplicate fields in the body: Ignore drops them, Warn drops them \
             and returns a warning for each, Strict rejects the request.",
            "string",
        ),
    ]
}

/// Parameters of list and watch.
fn list_params() -> Vec<Value> {
    vec![
        param("allowWatchBookmarks", "query", "Requests watch events with type \"BOOKMARK\".", "boolean"),
        param("continue", "query", "The continue token of the previous page of a chunked list.", "string"),
        param("fieldSelector", "query", "A selector to restrict the returned objects by their fields.", "string"),
        param("labelSelector", "query", "A selector to restrict the returned objects by their labels.", "string"),
        param("limit", "query", "The maximum number of objects to return in one page.", "integer"),
        param("resourceVersion", "query", "Which resource versions the request may be served from.", "string"),
        param("resourceVersionMatch", "query", "How resourceVersion is applied to list calls.", "string"),
        param(
            "sendInitialEvents",
            "query",
            "With watch=true, starts the watch with synthetic events for the current objects.",
            "boolean",
        ),
        param("timeoutSeconds", "query", "Timeout for the list/watch call.", "integer"),
        param("watch", "query", "Watch for changes to the described resources.", "boolean"),
    ]
}

/// Parameters of delete and deletecollection.
fn delete_params() -> Vec<Value> {
    vec![
        param(
            "dryRun",
            "query",
            "When present, indicates that modifications should not be persisted. Valid values: All.",
            "string",
        ),
        param(
            "gracePeriodSeconds",
            "query",
            "The duration in seconds before the object should be deleted; zero means delete immediately.",
            "integer",
        ),
        param(
            "propagationPolicy",
            "query",
            "Whether and how garbage collection is performed: Orphan, Background or Foreground.",
            "string",
        ),
    ]
}

/// Responses with a JSON body of the given schema, plus 401.
fn responses(codes: &[(&str, &Value)]) -> Value {
    let mut map: Map<String, Value> = codes
        .iter()
        .map(|(code, schema)| {
            let description = match *code {
                "201" => "Created",
                "202" => "Accepted",
                _ => "OK",
            };
            (
                code.to_string(),
                json!({ "description": description, "content": { "application/json": { "schema": schema } } }),
            )
        })
        .collect();
    map.insert("401".into(), json!({ "description": "Unauthorized" }));
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rkube_api::resource::RESOURCES;

    fn document(openapi: &OpenApi, path: &str) -> Value {
        let (body, _) = openapi.v3_group_version(path).unwrap();
        serde_json::from_slice(body).unwrap()
    }

    #[test]
    fn index_lists_every_group_version_with_its_hash() {
        let openapi = OpenApi::build();
        let index: Value = serde_json::from_slice(openapi.v3_index()).unwrap();
        let paths = index["paths"].as_object().unwrap();
        for r in RESOURCES {
            let key = index_path(r.group, r.version);
            let (_, hash) = openapi.v3_group_version(&key).unwrap();
            assert_eq!(paths[&key]["serverRelativeURL"], format!("/openapi/v3/{key}?hash={hash}"), "{key}");
        }
        assert!(paths.contains_key("api/v1") && paths.contains_key("apis/apps/v1"));
        assert_eq!(paths.len(), openapi.group_versions().count());
        assert!(openapi.v3_group_version("/apis/apps/v1").is_some());
        assert!(openapi.v3_group_version("apis/nope/v1").is_none());
    }

    #[test]
    fn every_resource_has_a_typed_schema() {
        let kinds = kinds();
        for r in all_served() {
            assert!(
                kinds.iter().any(|k| k.api_version == r.api_version && k.kind == r.kind),
                "{} {} has no k8s-openapi type in kinds()",
                r.api_version,
                r.kind
            );
        }
    }

    #[test]
    fn core_v1_has_the_pod_schema_that_explain_finds() {
        let doc = document(OpenApi::shared(), "api/v1");
        let pod = &doc["components"]["schemas"]["io.k8s.api.core.v1.Pod"];
        assert_eq!(pod["x-kubernetes-group-version-kind"], json!([{"group": "", "kind": "Pod", "version": "v1"}]));
        assert!(pod["required"].is_null(), "metadata is optional: {}", pod["required"]);
        let spec = &pod["properties"]["spec"];
        assert!(spec["description"].as_str().unwrap().contains("desired behavior of the pod"));
        assert_eq!(spec["allOf"], json!([{"$ref": "#/components/schemas/io.k8s.api.core.v1.PodSpec"}]));
        let containers = &doc["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["items"]["$ref"], "#/components/schemas/io.k8s.api.core.v1.Container");
        let meta = &doc["components"]["schemas"]["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"];
        assert!(meta["properties"]["labels"].is_object());
        // explain finds the kind through the first operation with a GVK on the resource's paths.
        assert_eq!(doc["paths"]["/api/v1/pods"]["get"]["x-kubernetes-group-version-kind"]["kind"], "Pod");
    }

    #[test]
    fn every_ref_resolves() {
        let openapi = OpenApi::shared();
        for path in openapi.group_versions() {
            let doc = document(openapi, path);
            let schemas = doc["components"]["schemas"].as_object().unwrap();
            let mut stack = vec![&doc];
            while let Some(v) = stack.pop() {
                match v {
                    Value::Object(m) => {
                        if let Some(Value::String(r)) = m.get("$ref") {
                            let name = r.strip_prefix("#/components/schemas/").unwrap();
                            assert!(schemas.contains_key(name), "{path}: dangling {r}");
                            assert_eq!(m.len(), 1, "{path}: $ref with siblings {v}");
                        }
                        stack.extend(m.values());
                    }
                    Value::Array(a) => stack.extend(a),
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn every_resource_has_a_patch_operation_with_field_validation() {
        let openapi = OpenApi::shared();
        for r in RESOURCES {
            let doc = document(openapi, &index_path(r.group, r.version));
            let prefix = format!("/{}", index_path(r.group, r.version));
            let path = if r.namespaced {
                format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
            } else {
                format!("{prefix}/{}/{{name}}", r.plural)
            };
            let mut items = vec![&doc["paths"][&path]];
            if r.has_status {
                items.push(&doc["paths"][format!("{path}/status")]);
            }
            for item in items {
                let patch = &item["patch"];
                assert_eq!(patch["x-kubernetes-group-version-kind"], gvk(r, r.kind), "{path}");
                let params = patch["parameters"].as_array().unwrap();
                assert!(params.iter().any(|p| p["name"] == "fieldValidation" && p["in"] == "query"), "{path}");
                let content = patch["requestBody"]["content"].as_object().unwrap();
                assert!(content.contains_key("application/merge-patch+json"));
                assert!(!content.contains_key("application/strategic-merge-patch+json"));
                for verb in ["get", "put"] {
                    assert_eq!(item[verb]["x-kubernetes-group-version-kind"]["kind"], r.kind, "{verb} {path}");
                }
            }
            assert!(doc["paths"][&path]["delete"].is_object(), "{path}");
            let name = (kinds().iter().find(|k| k.kind == r.kind).unwrap().name)();
            let kind = &doc["components"]["schemas"][format!("{name}List")];
            assert_eq!(kind["x-kubernetes-group-version-kind"][0]["kind"], r.list_kind());
        }
    }

    #[test]
    fn operation_ids_follow_kubernetes() {
        let ids = OperationIds::new(rkube_api::resource::lookup("pods").unwrap());
        assert_eq!(ids.id("read", "Namespaced", "Status"), "readCoreV1NamespacedPodStatus");
        let ids = OperationIds::new(rkube_api::resource::lookup("leases").unwrap());
        assert_eq!(ids.id("list", "", "ForAllNamespaces"), "listCoordinationV1LeaseForAllNamespaces");
        assert_eq!(ids.tag, "coordination_v1");
        let doc = document(OpenApi::shared(), "apis/apps/v1");
        assert_eq!(
            doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]["operationId"],
            "patchAppsV1NamespacedDeployment"
        );
    }

    #[test]
    fn hash_changes_with_content() {
        assert_eq!(content_hash(b""), "6C62272E07BB014262B821756295C58D");
        assert_eq!(content_hash(b"a"), "D228CB696F1A8CAF78912B704E4A8964");
        assert_ne!(content_hash(br#"{"a":1}"#), content_hash(br#"{"a":2}"#));
        assert_ne!(content_hash(b"ab"), content_hash(b"ba"));
    }

    #[test]
    fn builds_the_same_documents_every_time() {
        let (a, b) = (OpenApi::build(), OpenApi::build());
        assert_eq!(a.v3_index(), b.v3_index());
        assert_eq!(a.v3_group_version("api/v1"), b.v3_group_version("api/v1"));
    }
}
