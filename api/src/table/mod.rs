//! Server-side tables (`as=Table`): the columns kube-apiserver prints for each
//! kind and each object's row of cells, computed from the object's JSON, as
//! kubernetes' `pkg/printers/internalversion/printers.go` computes them. The
//! apiserver answers `kubectl get` with a [`Table`]; rkubectl prints the same
//! [`columns`] and [`cells`], so both show what kube-apiserver shows.
//!
//! Start with [`columns`] and [`cells`]; the kinds live in `pods`,
//! `workloads`, `network`, `cluster`, `config`, `storage` and `rbac`
//! (Roles and ClusterRoles get the default table, as in Kubernetes), durations in
//! [`human_duration`]. A kind without columns of its own gets kube-apiserver's
//! default table: `Name` and `Created At`.
//!
//! Like kube-apiserver, rows always carry every cell, the `-o wide` ones
//! (`priority > 0`) included; clients drop those unless asked for them.

mod age;
mod cluster;
mod config;
mod network;
mod pods;
mod rbac;
mod storage;
mod workloads;

pub use age::{age, human_duration};
pub use cluster::{event_first_seen, event_last_seen, node_roles};
pub use network::{format_endpoints, join_host_port};
pub use pods::{PodSummary, summarize as summarize_pod};

use crate::error::ApiError;
use jiff::Timestamp;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;
use std::fmt;

/// One column of a kind's table (`meta.k8s.io/v1` `TableColumnDefinition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Column {
    /// The header, as kube-apiserver names it ("Nominated Node"); kubectl
    /// prints it upper-cased.
    pub name: &'static str,
    /// The OpenAPI type of the cells: `string`, `integer` or `date`.
    #[serde(rename = "type")]
    pub type_: &'static str,
    /// `name` for the column naming the object, else "".
    pub format: &'static str,
    /// What the column shows.
    pub description: &'static str,
    /// 0 for the columns `get` prints, 1 for those only `-o wide` adds.
    pub priority: i32,
}

impl Column {
    /// A column of text cells.
    const fn string(name: &'static str, description: &'static str) -> Column {
        Column { name, type_: "string", format: "", description, priority: 0 }
    }

    /// A column of integer cells.
    const fn integer(name: &'static str, description: &'static str) -> Column {
        Column { name, type_: "integer", format: "", description, priority: 0 }
    }

    /// This column, shown only with `-o wide`.
    const fn wide(self) -> Column {
        Column { priority: 1, ..self }
    }
}

/// `ObjectMeta.name`'s documentation, the description of every Name column.
const NAME_DOC: &str = "Name must be unique within a namespace. Is required when creating resources, although some \
     resources may allow a client to request the generation of an appropriate name automatically. Name is primarily \
     intended for creation idempotence and configuration definition. Cannot be updated. More info: \
     https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";

/// `ObjectMeta.creationTimestamp`'s documentation, the description of every Age column.
const CREATED_DOC: &str = "CreationTimestamp is a timestamp representing the server time when this object was \
     created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set \
     this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for \
     lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// The object's name.
const NAME: Column = Column { name: "Name", type_: "string", format: "name", description: NAME_DOC, priority: 0 };
/// How long ago the object was created.
const AGE: Column = Column::string("Age", CREATED_DOC);
/// When the object was created, RFC 3339 (the default table's second column).
const CREATED_AT: Column =
    Column { name: "Created At", type_: "date", format: "", description: CREATED_DOC, priority: 0 };
/// The names of a pod template's containers.
const CONTAINERS: Column = Column::string("Containers", "Names of each container in the template.").wide();
/// The images of a pod template's containers.
const IMAGES: Column = Column::string("Images", "Images referenced by each container in the template.").wide();

/// kube-apiserver's table for kinds without columns of their own.
const DEFAULT_COLUMNS: &[Column] = &[NAME, CREATED_AT];

/// One cell: text, or a number where kube-apiserver sends one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    /// A string cell ("1/2", "Running", "5m").
    Text(String),
    /// An integer cell (a replica count, a number of keys).
    Integer(i64),
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cell::Text(s) => f.write_str(s),
            Cell::Integer(n) => write!(f, "{n}"),
        }
    }
}

impl Serialize for Cell {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Cell::Text(t) => s.serialize_str(t),
            Cell::Integer(n) => s.serialize_i64(*n),
        }
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Cell {
        Cell::Text(s)
    }
}

impl From<&str> for Cell {
    fn from(s: &str) -> Cell {
        Cell::Text(s.to_string())
    }
}

impl From<i64> for Cell {
    fn from(n: i64) -> Cell {
        Cell::Integer(n)
    }
}

/// A kind's columns and the function computing its cells at a time.
struct Printer {
    kind: &'static str,
    columns: &'static [Column],
    cells: fn(&Value, Timestamp) -> Vec<Cell>,
}

/// Every kind with columns of its own.
static PRINTERS: &[Printer] = &[
    Printer { kind: "Pod", columns: pods::COLUMNS, cells: pods::cells },
    Printer { kind: "ReplicationController", columns: workloads::RC_COLUMNS, cells: workloads::replication_controller },
    Printer { kind: "ReplicaSet", columns: workloads::RS_COLUMNS, cells: workloads::replica_set },
    Printer { kind: "Deployment", columns: workloads::DEPLOYMENT_COLUMNS, cells: workloads::deployment },
    Printer { kind: "DaemonSet", columns: workloads::DAEMON_SET_COLUMNS, cells: workloads::daemon_set },
    Printer { kind: "Job", columns: workloads::JOB_COLUMNS, cells: workloads::job },
    Printer { kind: "HorizontalPodAutoscaler", columns: workloads::HPA_COLUMNS, cells: workloads::hpa },
    Printer { kind: "Service", columns: network::SERVICE_COLUMNS, cells: network::service },
    Printer { kind: "Endpoints", columns: network::ENDPOINTS_COLUMNS, cells: network::endpoints },
    Printer { kind: "EndpointSlice", columns: network::ENDPOINT_SLICE_COLUMNS, cells: network::endpoint_slice },
    Printer { kind: "Node", columns: cluster::NODE_COLUMNS, cells: cluster::node },
    Printer { kind: "Namespace", columns: cluster::NAMESPACE_COLUMNS, cells: cluster::namespace },
    Printer { kind: "Event", columns: cluster::EVENT_COLUMNS, cells: cluster::event },
    Printer { kind: "Lease", columns: cluster::LEASE_COLUMNS, cells: cluster::lease },
    Printer { kind: "ConfigMap", columns: config::CONFIG_MAP_COLUMNS, cells: config::config_map },
    Printer { kind: "Secret", columns: config::SECRET_COLUMNS, cells: config::secret },
    Printer { kind: "ServiceAccount", columns: config::SERVICE_ACCOUNT_COLUMNS, cells: config::service_account },
    Printer { kind: "ResourceQuota", columns: config::QUOTA_COLUMNS, cells: config::quota },
    Printer { kind: "PersistentVolume", columns: storage::PV_COLUMNS, cells: storage::pv },
    Printer { kind: "PersistentVolumeClaim", columns: storage::PVC_COLUMNS, cells: storage::pvc },
    Printer { kind: "RoleBinding", columns: rbac::ROLE_BINDING_COLUMNS, cells: rbac::binding },
    Printer { kind: "ClusterRoleBinding", columns: rbac::CLUSTER_ROLE_BINDING_COLUMNS, cells: rbac::binding },
];

fn printer(kind: &str) -> Option<&'static Printer> {
    PRINTERS.iter().find(|p| p.kind == kind)
}

/// Whether `kind` has columns of its own (otherwise it gets `Name, Created At`).
pub fn has_own_columns(kind: &str) -> bool {
    printer(kind).is_some()
}

/// The columns of `kind`'s table, wide ones included.
pub fn columns(kind: &str) -> &'static [Column] {
    printer(kind).map_or(DEFAULT_COLUMNS, |p| p.columns)
}

/// The cells of `object`'s row at `now`, one per column of [`columns`]`(kind)`.
/// Missing fields read as kube-apiserver reads unset ones; this never fails.
pub fn cells(kind: &str, object: &Value, now: Timestamp) -> Vec<Cell> {
    match printer(kind) {
        Some(p) => (p.cells)(object, now),
        None => default_cells(object),
    }
}

/// The default table's row: the name and the creation time, RFC 3339 in UTC.
fn default_cells(object: &Value) -> Vec<Cell> {
    let created = time(&object["metadata"]["creationTimestamp"]).map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
    vec![name(object), created.unwrap_or_default().into()]
}

/// What each row's `object` holds (the `includeObject` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// No object (`null`).
    None,
    /// A `PartialObjectMetadata` with the object's metadata: kubectl's
    /// default, enough for `--show-labels` and the `-A` NAMESPACE column.
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// Parses `includeObject` (`None`, `Metadata`, `Object`; "" is the default).
    pub fn parse(value: &str) -> Result<IncludeObject, ApiError> {
        match value {
            "" | "Metadata" => Ok(IncludeObject::Metadata),
            "None" => Ok(IncludeObject::None),
            "Object" => Ok(IncludeObject::Object),
            other => Err(ApiError::bad_request(format!(
                "includeObject: Unsupported value: \"{other}\": supported values: \"None\", \"Metadata\", \"Object\""
            ))),
        }
    }
}

/// A `meta.k8s.io/v1` Table of objects of one kind, serialized straight from
/// the borrowed objects: each row's cells are computed as it is written and
/// nothing is cloned, so a list of 10,000 pods costs one pass.
///
/// ```
/// # use rkube_api::table::{IncludeObject, Table};
/// let pods = vec![serde_json::json!({"metadata": {"name": "web"}})];
/// let now = jiff::Timestamp::UNIX_EPOCH;
/// let body = serde_json::to_vec(&Table::new("Pod", &pods, "42", "", IncludeObject::Metadata, now)).unwrap();
/// assert!(body.starts_with(br#"{"kind":"Table","apiVersion":"meta.k8s.io/v1""#));
/// ```
#[derive(Debug, Clone)]
pub struct Table<'s, I> {
    kind: &'s str,
    objects: I,
    resource_version: &'s str,
    continue_token: &'s str,
    include: IncludeObject,
    headers: bool,
    now: Timestamp,
}

impl<'s, 'o, I> Table<'s, I>
where
    I: IntoIterator<Item = &'o Value> + Clone,
{
    /// The table of `objects` (of `kind`) at list resource version
    /// `resource_version` with `continue_token` ("" when the list is whole).
    pub fn new(
        kind: &'s str,
        objects: I,
        resource_version: &'s str,
        continue_token: &'s str,
        include: IncludeObject,
        now: Timestamp,
    ) -> Self {
        Table { kind, objects, resource_version, continue_token, include, headers: true, now }
    }

    /// Without `columnDefinitions` (the `noHeaders` table option, for the
    /// watch events after the first).
    pub fn without_headers(mut self) -> Self {
        self.headers = false;
        self
    }
}

impl<'o, I> Serialize for Table<'_, I>
where
    I: IntoIterator<Item = &'o Value> + Clone,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("kind", "Table")?;
        map.serialize_entry("apiVersion", "meta.k8s.io/v1")?;
        map.serialize_entry(
            "metadata",
            &ListMeta { resource_version: self.resource_version, continue_token: self.continue_token },
        )?;
        if self.headers {
            map.serialize_entry("columnDefinitions", columns(self.kind))?;
        }
        map.serialize_entry("rows", &Rows(self))?;
        map.end()
    }
}

/// A Table's `metadata`: the list's resource version and continue token.
struct ListMeta<'a> {
    resource_version: &'a str,
    continue_token: &'a str,
}

impl Serialize for ListMeta<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        if !self.resource_version.is_empty() {
            map.serialize_entry("resourceVersion", self.resource_version)?;
        }
        if !self.continue_token.is_empty() {
            map.serialize_entry("continue", self.continue_token)?;
        }
        map.end()
    }
}

/// A Table's rows, computed while they are written.
struct Rows<'t, 's, I>(&'t Table<'s, I>);

impl<'o, I> Serialize for Rows<'_, '_, I>
where
    I: IntoIterator<Item = &'o Value> + Clone,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.0;
        s.collect_seq(t.objects.clone().into_iter().map(|object| Row {
            table_kind: t.kind,
            object,
            include: t.include,
            now: t.now,
        }))
    }
}

/// One row: `cells`, the pod's completion `conditions`, and the `object`.
struct Row<'a> {
    table_kind: &'a str,
    object: &'a Value,
    include: IncludeObject,
    now: Timestamp,
}

impl Serialize for Row<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("cells", &cells(self.table_kind, self.object, self.now))?;
        if self.table_kind == "Pod"
            && let Some(conditions) = pods::row_conditions(self.object)
        {
            map.serialize_entry("conditions", &conditions)?;
        }
        match self.include {
            IncludeObject::None => map.serialize_entry("object", &Value::Null)?,
            IncludeObject::Metadata => map.serialize_entry("object", &PartialObjectMetadata(self.object))?,
            IncludeObject::Object => map.serialize_entry("object", self.object)?,
        }
        map.end()
    }
}

/// `{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":…}`
/// of an object, borrowing its metadata.
struct PartialObjectMetadata<'a>(&'a Value);

impl Serialize for PartialObjectMetadata<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(3))?;
        map.serialize_entry("kind", "PartialObjectMetadata")?;
        map.serialize_entry("apiVersion", "meta.k8s.io/v1")?;
        match self.0.get("metadata") {
            Some(metadata) => map.serialize_entry("metadata", metadata)?,
            None => map.serialize_entry("metadata", &serde_json::Map::new())?,
        }
        map.end()
    }
}

/// The Table of `objects` as a JSON value (see [`Table`] to write it to bytes
/// without building the value).
pub fn table<'a, I>(
    kind: &str,
    objects: I,
    resource_version: &str,
    continue_token: &str,
    include: IncludeObject,
    now: Timestamp,
) -> Value
where
    I: IntoIterator<Item = &'a Value> + Clone,
{
    serde_json::to_value(Table::new(kind, objects, resource_version, continue_token, include, now))
        .expect("a table of JSON values always serializes")
}

// Reading objects' JSON: a missing or mistyped field reads as Go's zero value.

/// A string field, or "".
fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// An integer field, or 0.
fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// An array field, or no items.
fn items(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

/// A time field (RFC 3339), if set.
fn time(v: &Value) -> Option<Timestamp> {
    v.as_str()?.parse().ok()
}

/// The number of keys of a map field.
fn len_of_map(v: &Value) -> i64 {
    v.as_object().map_or(0, |m| m.len() as i64)
}

/// `s`, or `<none>` when empty.
fn or_none(s: &str) -> String {
    if s.is_empty() { "<none>".into() } else { s.to_string() }
}

/// The object's name cell.
fn name(object: &Value) -> Cell {
    text(&object["metadata"]["name"]).into()
}

/// The object's Age cell.
fn age_of(object: &Value, now: Timestamp) -> Cell {
    age(time(&object["metadata"]["creationTimestamp"]), now).into()
}

/// A quantity as Kubernetes writes it back (`2000m` → `2`); "0" when unset.
fn quantity(v: &Value) -> String {
    match v {
        Value::String(s) => crate::quantity::canonical(s),
        Value::Number(n) => crate::quantity::canonical(&n.to_string()),
        _ => "0".into(),
    }
}

/// A label map as `k=v,k2=v2`, sorted by key, or `<none>` (`labels.FormatLabels`).
pub fn format_labels(labels: &Value) -> String {
    let Some(map) = labels.as_object().filter(|m| !m.is_empty()) else {
        return "<none>".into();
    };
    let mut pairs: Vec<(&String, &str)> = map.iter().map(|(k, v)| (k, text(v))).collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// A label selector as `labels.Selector.String()` writes it: `app=web,tier in
/// (a,b),!canary`, requirements sorted by key; "" when it selects everything
/// or nothing (the SELECTOR of deployments).
pub fn selector_string(selector: &Value) -> String {
    let mut reqs: Vec<(&str, String)> = Vec::new();
    if let Some(labels) = selector["matchLabels"].as_object() {
        for (k, v) in labels {
            reqs.push((k, format!("{k}={}", text(v))));
        }
    }
    for e in items(&selector["matchExpressions"]) {
        let key = text(&e["key"]);
        let mut values: Vec<&str> = items(&e["values"]).iter().map(text).collect();
        values.sort_unstable();
        let values = values.join(",");
        let req = match text(&e["operator"]) {
            "In" => format!("{key} in ({values})"),
            "NotIn" => format!("{key} notin ({values})"),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            other => format!("{key} {other} ({values})"),
        };
        reqs.push((key, req));
    }
    reqs.sort();
    reqs.into_iter().map(|(_, r)| r).collect::<Vec<_>>().join(",")
}

/// A label selector as `metav1.FormatLabelSelector` writes it: like
/// [`selector_string`], but `<none>` instead of "".
pub fn format_label_selector(selector: &Value) -> String {
    or_none(&selector_string(selector))
}

/// The Containers and Images cells of a pod spec: names and images, comma-separated.
fn containers_and_images(pod_spec: &Value) -> [Cell; 2] {
    let containers = items(&pod_spec["containers"]);
    [
        containers.iter().map(|c| text(&c["name"])).collect::<Vec<_>>().join(",").into(),
        containers.iter().map(|c| text(&c["image"])).collect::<Vec<_>>().join(",").into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::RESOURCES;
    use serde_json::json;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("a timestamp")
    }

    #[test]
    fn every_kind_has_one_cell_per_column_and_a_name_column() {
        for info in RESOURCES {
            let obj = json!({"apiVersion": info.api_version, "kind": info.kind,
                             "metadata": {"name": "x", "namespace": "default"}});
            let cols = columns(info.kind);
            let row = cells(info.kind, &obj, Timestamp::UNIX_EPOCH);
            assert_eq!(row.len(), cols.len(), "{}", info.kind);
            let name = cols.iter().position(|c| c.format == "name").unwrap_or_else(|| panic!("{}", info.kind));
            assert_eq!(cols[name].name, "Name", "{}", info.kind);
            assert_eq!(row[name], Cell::Text("x".into()), "{}", info.kind);
        }
    }

    #[test]
    fn kinds_without_columns_get_name_and_created_at() {
        assert!(!has_own_columns("LimitRange"));
        let cols = columns("LimitRange");
        assert_eq!(
            cols.iter().map(|c| (c.name, c.type_)).collect::<Vec<_>>(),
            [("Name", "string"), ("Created At", "date")]
        );
        let lr = json!({"metadata": {"name": "limits", "creationTimestamp": "2024-03-01T10:00:00Z"}});
        assert_eq!(
            cells("LimitRange", &lr, at("2024-03-02T00:00:00Z")),
            [Cell::from("limits"), Cell::from("2024-03-01T10:00:00Z")]
        );
    }

    #[test]
    fn table_json_has_columns_rows_and_partial_object_metadata() {
        let pods = [
            json!({"metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"},
                                "resourceVersion": "7", "creationTimestamp": "2024-01-01T00:00:00Z"},
                   "spec": {"containers": [{"name": "c"}, {"name": "d"}]},
                   "status": {"phase": "Running", "containerStatuses": [
                       {"name": "c", "ready": true, "restartCount": 0, "state": {"running": {}}}]}}),
            json!({"metadata": {"name": "done"}, "spec": {"containers": [{"name": "c"}]},
                   "status": {"phase": "Succeeded"}}),
        ];
        let t = table("Pod", &pods, "101", "next", IncludeObject::Metadata, at("2024-01-01T00:05:00Z"));
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(t["metadata"], json!({"resourceVersion": "101", "continue": "next"}));
        let cols = t["columnDefinitions"].as_array().expect("columns");
        assert_eq!(cols.len(), 9);
        assert_eq!(cols[0]["name"], "Name");
        assert_eq!(cols[0]["format"], "name");
        assert_eq!(cols[0]["priority"], 0);
        assert_eq!(
            cols[5],
            json!({"name": "IP", "type": "string", "format": "",
            "description": cols[5]["description"], "priority": 1})
        );
        let names: Vec<&str> = cols.iter().map(|c| c["name"].as_str().expect("name")).collect();
        assert_eq!(
            names,
            ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node", "Readiness Gates"]
        );
        let rows = t["rows"].as_array().expect("rows");
        assert_eq!(
            rows[0]["cells"],
            json!(["web", "1/2", "Running", "0", "5m", "<none>", "<none>", "<none>", "<none>"])
        );
        assert_eq!(
            rows[0]["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": pods[0]["metadata"]})
        );
        assert!(rows[0].get("conditions").is_none());
        assert_eq!(rows[1]["conditions"][0]["type"], "Completed");
        assert_eq!(rows[1]["conditions"][0]["reason"], "Succeeded");
    }

    #[test]
    fn include_object_and_headers_options() {
        let svc = [json!({"metadata": {"name": "web"}, "spec": {"clusterIP": "10.0.0.1"}})];
        let t = table("Service", &svc, "", "", IncludeObject::Object, Timestamp::UNIX_EPOCH);
        assert_eq!(t["rows"][0]["object"], svc[0]);
        assert_eq!(t["metadata"], json!({}));
        let t = table("Service", &svc, "3", "", IncludeObject::None, Timestamp::UNIX_EPOCH);
        assert_eq!(t["rows"][0]["object"], Value::Null);
        let bare =
            Table::new("Service", std::iter::once(&svc[0]), "3", "", IncludeObject::Metadata, Timestamp::UNIX_EPOCH)
                .without_headers();
        let bare = serde_json::to_value(bare).expect("json");
        assert!(bare.get("columnDefinitions").is_none());
        assert_eq!(bare["rows"][0]["cells"][0], "web");
        assert_eq!(IncludeObject::parse("").expect("default"), IncludeObject::Metadata);
        assert_eq!(IncludeObject::parse("Object").expect("object"), IncludeObject::Object);
        assert!(IncludeObject::parse("All").is_err());
    }

    #[test]
    fn cells_serialize_as_strings_and_numbers() {
        let cells = vec![Cell::from("a"), Cell::from(3)];
        assert_eq!(serde_json::to_value(&cells).expect("json"), json!(["a", 3]));
        assert_eq!(cells[1].to_string(), "3");
    }

    #[test]
    fn labels_and_selectors_format_like_kubectl() {
        assert_eq!(format_labels(&json!({"b": "2", "a": "1"})), "a=1,b=2");
        assert_eq!(format_labels(&json!({})), "<none>");
        assert_eq!(format_labels(&Value::Null), "<none>");
        let sel = json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["b", "a"]},
                {"key": "canary", "operator": "DoesNotExist"},
            ],
        });
        assert_eq!(format_label_selector(&sel), "app=web,!canary,tier in (a,b)");
        assert_eq!(format_label_selector(&json!({})), "<none>");
        assert_eq!(selector_string(&json!({})), "");
    }
}
