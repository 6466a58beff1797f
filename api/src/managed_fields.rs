//! Field ownership for server-side apply, kept in `metadata.managedFields` as
//! Kubernetes' structured-merge-diff keeps it.
//!
//! A [`FieldSet`] is the FieldsV1 tree (`{"f:spec":{"f:replicas":{}}}`):
//! `f:<name>` for a field, `k:{"name":"main"}` for an item of a list merged
//! by key, `v:<json>` for a value of a list merged as a set, `"."` for "this
//! item itself" when it has children. Lists that merge by key or as a set are
//! the ones [`crate::patch::list_strategy`] names; every other list is
//! atomic, owned as one leaf.
//!
//! A [`FieldManager`] is one write by one manager: [`FieldManager::apply`]
//! merges an applied configuration, refuses (or, forced, takes over) fields
//! another manager owns with another value, and removes the fields the
//! manager applied before and no one owns any more;
//! [`FieldManager::update`] records what any other write changed.

use crate::error::{ApiError, Cause, Reason, Result};
use crate::patch::{ListStrategy, list_strategy, strategic_merge_patch};
use crate::resource::ResourceInfo;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::LazyLock;

/// A set of fields, as Kubernetes' FieldsV1 tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    /// The field this node stands for is itself in the set (a leaf `{}`, or
    /// `"."` beside children).
    member: bool,
    /// The nodes below, by FieldsV1 key (`f:name`, `k:{…}`, `v:…`, `i:N`).
    children: BTreeMap<String, FieldSet>,
}

static EMPTY: LazyLock<FieldSet> = LazyLock::new(FieldSet::default);

/// The fields nobody owns (Kubernetes' strip set): identity and system metadata.
static SYSTEM_FIELDS: LazyLock<FieldSet> = LazyLock::new(|| {
    let leaf = json!({});
    let meta: Map<String, Value> =
        ["name", "namespace", "uid", "resourceVersion", "managedFields", "creationTimestamp", "generation", "selfLink"]
            .iter()
            .map(|f| (format!("f:{f}"), leaf.clone()))
            .collect();
    let mut set = FieldSet::from_fields_v1(&json!({"f:apiVersion": {}, "f:kind": {}, "f:metadata": meta}))
        .expect("a well-formed FieldsV1 literal");
    set.children.get_mut("f:metadata").expect("inserted above").member = true;
    set
});

impl FieldSet {
    /// Reads FieldsV1 JSON.
    pub fn from_fields_v1(v: &Value) -> Result<FieldSet> {
        let map = v.as_object().ok_or_else(|| ApiError::bad_request("fieldsV1 must be a JSON object"))?;
        let mut set = FieldSet::default();
        for (key, child) in map {
            if key == "." {
                set.member = true;
                continue;
            }
            if !["f:", "k:", "v:", "i:"].iter().any(|p| key.starts_with(p)) {
                return Err(ApiError::bad_request(format!(
                    "fieldsV1: invalid key \"{key}\": keys start with f:, k:, v: or i:"
                )));
            }
            let mut child = FieldSet::from_fields_v1(child)?;
            child.member |= child.children.is_empty();
            set.children.insert(key.clone(), child);
        }
        Ok(set)
    }

    /// Writes FieldsV1 JSON.
    pub fn to_fields_v1(&self) -> Value {
        let mut map = Map::new();
        if self.member && !self.children.is_empty() {
            map.insert(".".into(), json!({}));
        }
        for (key, child) in &self.children {
            map.insert(key.clone(), child.to_fields_v1());
        }
        Value::Object(map)
    }

    /// Whether no field is in the set.
    pub fn is_empty(&self) -> bool {
        !self.member && self.children.is_empty()
    }

    /// The fields in either set.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.member |= other.member;
        for (key, child) in &other.children {
            let merged = match out.children.get(key) {
                Some(mine) => mine.union(child),
                None => child.clone(),
            };
            out.children.insert(key.clone(), merged);
        }
        out
    }

    /// The fields in this set and not in `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet { member: self.member && !other.member, children: BTreeMap::new() };
        for (key, child) in &self.children {
            let rest = match other.children.get(key) {
                Some(theirs) => child.difference(theirs),
                None => child.clone(),
            };
            if !rest.is_empty() {
                out.children.insert(key.clone(), rest);
            }
        }
        out
    }

    /// The fields in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet { member: self.member && other.member, children: BTreeMap::new() };
        for (key, child) in &self.children {
            if let Some(theirs) = other.children.get(key) {
                let both = child.intersection(theirs);
                if !both.is_empty() {
                    out.children.insert(key.clone(), both);
                }
            }
        }
        out
    }

    /// The fields the set covers, as Kubernetes prints paths:
    /// `.spec.replicas`, `.spec.containers[name="main"].image`, `.metadata.finalizers[="a"]`.
    pub fn paths(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.collect_paths("", &mut out);
        out
    }

    fn collect_paths(&self, prefix: &str, out: &mut Vec<String>) {
        for (key, child) in &self.children {
            let path = format!("{prefix}{}", path_element(key));
            if child.member {
                out.push(path.clone());
            }
            child.collect_paths(&path, out);
        }
    }

    /// Keeps only the child `key` (or nothing, when it is absent).
    fn only(&self, key: &str) -> FieldSet {
        let mut out = FieldSet::default();
        if let Some(child) = self.children.get(key) {
            out.children.insert(key.into(), child.clone());
        }
        out
    }

    fn insert(&mut self, key: String, child: FieldSet) {
        if !child.is_empty() {
            self.children.insert(key, child);
        }
    }
}

/// One FieldsV1 key as a path element of Kubernetes' printed paths.
fn path_element(key: &str) -> String {
    let (kind, rest) = key.split_at(2.min(key.len()));
    match kind {
        "f:" => format!(".{rest}"),
        "v:" => format!("[={rest}]"),
        "k:" => match serde_json::from_str::<Map<String, Value>>(rest) {
            Ok(fields) => {
                let pairs: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("[{}]", pairs.join(","))
            }
            Err(_) => format!("[{rest}]"),
        },
        _ => format!("[{rest}]"),
    }
}

/// The fields of `obj`, an object of `kind`, system metadata included.
pub fn fields_of(kind: &str, obj: &Value) -> FieldSet {
    children_of(kind, obj, &mut Vec::new())
}

/// Whether the field at `path` holding `v` is owned as one leaf: a scalar,
/// an empty map or an atomic list.
fn is_leaf(kind: &str, path: &[String], v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(_) => list_strategy(kind, path) == ListStrategy::Replace,
        _ => true,
    }
}

/// The set of the field at `path` holding `v`, its own membership included.
fn node_of(kind: &str, v: &Value, path: &mut Vec<String>) -> FieldSet {
    let mut set = if is_leaf(kind, path, v) { FieldSet::default() } else { children_of(kind, v, path) };
    set.member = is_leaf(kind, path, v);
    set
}

/// The FieldsV1 key of list item `index` at `path`, by the list's strategy.
fn item_key(kind: &str, path: &[String], item: &Value, index: usize) -> String {
    match list_strategy(kind, path) {
        ListStrategy::MergeByKey(key) => match item.get(key) {
            Some(v) => format!("k:{}", json!({ key: v })),
            None => format!("i:{index}"),
        },
        ListStrategy::MergeSet => format!("v:{item}"),
        ListStrategy::Replace => format!("i:{index}"),
    }
}

/// The set below the value `v` at `path` (not `v`'s own membership).
fn children_of(kind: &str, v: &Value, path: &mut Vec<String>) -> FieldSet {
    let mut set = FieldSet::default();
    match v {
        Value::Object(map) => {
            for (name, child) in map {
                path.push(name.clone());
                set.insert(format!("f:{name}"), node_of(kind, child, path));
                path.pop();
            }
        }
        Value::Array(items) if !is_leaf(kind, path, v) => {
            for (i, item) in items.iter().enumerate() {
                let mut node = match item {
                    Value::Object(_) => children_of(kind, item, path),
                    _ => FieldSet::default(),
                };
                node.member = true;
                set.insert(item_key(kind, path, item, i), node);
            }
        }
        _ => {}
    }
    set
}

/// The items of a merging list, by FieldsV1 key.
fn items_by_key<'a>(kind: &str, path: &[String], items: &'a [Value]) -> BTreeMap<String, &'a Value> {
    items.iter().enumerate().map(|(i, item)| (item_key(kind, path, item, i), item)).collect()
}

/// What changed from `old` to `new` (both the value at `path`): the fields
/// added or modified, and the fields removed.
fn diff_children(kind: &str, old: &Value, new: &Value, path: &mut Vec<String>) -> (FieldSet, FieldSet) {
    let (mut changed, mut removed) = (FieldSet::default(), FieldSet::default());
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            for (name, bv) in b {
                path.push(name.clone());
                let (c, r) = diff_node(kind, a.get(name), Some(bv), path);
                path.pop();
                changed.insert(format!("f:{name}"), c);
                removed.insert(format!("f:{name}"), r);
            }
            for (name, av) in a.iter().filter(|(name, _)| !b.contains_key(*name)) {
                path.push(name.clone());
                removed.insert(format!("f:{name}"), node_of(kind, av, path));
                path.pop();
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            let (a, b) = (items_by_key(kind, path, a), items_by_key(kind, path, b));
            for (key, bv) in &b {
                let (c, r) = match a.get(key) {
                    None => (item_node(kind, bv, path), FieldSet::default()),
                    Some(av) => diff_children(kind, av, bv, path),
                };
                changed.insert(key.clone(), c);
                removed.insert(key.clone(), r);
            }
            for (key, av) in a.iter().filter(|(key, _)| !b.contains_key(*key)) {
                removed.insert(key.clone(), item_node(kind, av, path));
            }
        }
        _ => {
            changed = children_of(kind, new, path);
            removed = children_of(kind, old, path);
        }
    }
    (changed, removed)
}

fn item_node(kind: &str, item: &Value, path: &mut Vec<String>) -> FieldSet {
    let mut node = children_of(kind, item, path);
    node.member = true;
    node
}

/// [`diff_children`] for one field, present in either value or both.
fn diff_node(kind: &str, old: Option<&Value>, new: Option<&Value>, path: &mut Vec<String>) -> (FieldSet, FieldSet) {
    match (old, new) {
        (None, None) => (FieldSet::default(), FieldSet::default()),
        (None, Some(n)) => (node_of(kind, n, path), FieldSet::default()),
        (Some(o), None) => (FieldSet::default(), node_of(kind, o, path)),
        (Some(o), Some(n)) if o == n => (FieldSet::default(), FieldSet::default()),
        (Some(o), Some(n)) => match (is_leaf(kind, path, o), is_leaf(kind, path, n)) {
            (true, true) => (FieldSet { member: true, children: BTreeMap::new() }, FieldSet::default()),
            (false, false) => diff_children(kind, o, n, path),
            _ => (node_of(kind, n, path), node_of(kind, o, path)),
        },
    }
}

/// Removes from `v` the fields of `remove` that no one in `owned` keeps
/// anything under; a map or list this empties goes too.
fn prune(v: &mut Value, remove: &FieldSet, owned: &FieldSet) {
    for (key, r) in &remove.children {
        let kept = owned.children.get(key).unwrap_or(&EMPTY);
        if r.member && kept.is_empty() {
            take_child(v, key);
            continue;
        }
        let Some(child) = child_mut(v, key) else { continue };
        let was_empty = is_empty_container(child);
        prune(child, r, kept);
        if !was_empty && is_empty_container(child) && !kept.member {
            take_child(v, key);
        }
    }
}

fn is_empty_container(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Whether list item `item` is the one FieldsV1 key `key` names.
fn item_matches(key: &str, item: &Value) -> bool {
    if let Some(fields) = key.strip_prefix("k:") {
        let Ok(fields) = serde_json::from_str::<Map<String, Value>>(fields) else { return false };
        return fields.iter().all(|(k, want)| item.get(k) == Some(want));
    }
    if let Some(value) = key.strip_prefix("v:") {
        return serde_json::from_str::<Value>(value).is_ok_and(|want| *item == want);
    }
    false
}

fn child_mut<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    if let Some(name) = key.strip_prefix("f:") {
        return v.as_object_mut()?.get_mut(name);
    }
    let items = v.as_array_mut()?;
    match key.strip_prefix("i:") {
        Some(i) => items.get_mut(i.parse::<usize>().ok()?),
        None => items.iter_mut().find(|item| item_matches(key, item)),
    }
}

fn take_child(v: &mut Value, key: &str) {
    if let Some(name) = key.strip_prefix("f:") {
        if let Some(map) = v.as_object_mut() {
            map.remove(name);
        }
    } else if let Some(items) = v.as_array_mut() {
        match key.strip_prefix("i:").and_then(|i| i.parse::<usize>().ok()) {
            Some(i) if i < items.len() => {
                items.remove(i);
            }
            Some(_) => {}
            None => items.retain(|item| !item_matches(key, item)),
        }
    }
}

/// How a manager wrote its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Server-side apply: the manager's set is its whole configuration.
    Apply,
    /// Any other write: the manager owns what it changed.
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One `metadata.managedFields` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The manager's name (`kubectl`, a `fieldManager` parameter).
    pub manager: String,
    /// How it wrote.
    pub operation: Operation,
    /// The apiVersion it wrote with.
    pub api_version: String,
    /// "" for the object, or `status`, `scale`.
    pub subresource: String,
    /// When its fields last changed (RFC 3339), if known.
    pub time: Option<String>,
    /// The fields it owns.
    pub fields: FieldSet,
}

impl Entry {
    /// Reads one entry as Kubernetes does: operation, apiVersion and
    /// fieldsType `FieldsV1` are required.
    fn from_json(v: &Value) -> Result<Entry> {
        let text = |name: &str| v.get(name).and_then(Value::as_str).unwrap_or_default().to_string();
        let operation = match text("operation").as_str() {
            "Apply" => Operation::Apply,
            "Update" => Operation::Update,
            _ => return Err(ApiError::bad_request("managedFields: operation must be `Apply` or `Update`")),
        };
        if text("apiVersion").is_empty() || text("fieldsType") != "FieldsV1" {
            return Err(ApiError::bad_request("managedFields: apiVersion and fieldsType FieldsV1 are required"));
        }
        Ok(Entry {
            manager: text("manager"),
            operation,
            api_version: text("apiVersion"),
            subresource: text("subresource"),
            time: v.get("time").and_then(Value::as_str).map(str::to_string),
            fields: FieldSet::from_fields_v1(v.get("fieldsV1").unwrap_or(&json!({})))?,
        })
    }

    fn to_json(&self) -> Value {
        let mut v = json!({"manager": self.manager, "operation": self.operation.as_str(),
            "apiVersion": self.api_version});
        if let Some(time) = &self.time {
            v["time"] = time.clone().into();
        }
        v["fieldsType"] = "FieldsV1".into();
        v["fieldsV1"] = self.fields.to_fields_v1();
        if !self.subresource.is_empty() {
            v["subresource"] = self.subresource.clone().into();
        }
        v
    }

    /// How Kubernetes names the manager in a conflict.
    fn describe(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == Operation::Update {
            s.push_str(&format!(" using {}", self.api_version));
            if let Some(time) = &self.time {
                s.push_str(&format!(" at {time}"));
            }
        }
        s
    }
}

/// The managedFields of `obj`: None when absent or not readable.
fn entries_of(obj: &Value) -> Option<Vec<Entry>> {
    let list = obj.pointer("/metadata/managedFields")?.as_array()?;
    list.iter().map(Entry::from_json).collect::<Result<_>>().ok()
}

/// Whether a request's managedFields ask for a reset: `[]` or `[{}]`.
fn asks_reset(obj: &Value) -> bool {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .is_some_and(|l| l.is_empty() || (l.len() == 1 && l[0].as_object().is_some_and(Map::is_empty)))
}

/// Stores `entries` (the empty ones left out) in `obj`, sorted as
/// Kubernetes sorts them: Apply first, then oldest first.
fn store(obj: &mut Value, mut entries: Vec<Entry>) {
    entries.retain(|e| !e.fields.is_empty());
    entries.sort_by(|a, b| {
        (a.operation.as_str(), &a.time, &a.manager, &a.subresource).cmp(&(
            b.operation.as_str(),
            &b.time,
            &b.manager,
            &b.subresource,
        ))
    });
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else { return };
    if entries.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), entries.iter().map(Entry::to_json).collect());
    }
}

/// One write by one field manager.
#[derive(Debug, Clone, Copy)]
pub struct FieldManager<'a> {
    /// The resource written.
    pub info: &'a ResourceInfo,
    /// The manager's name.
    pub manager: &'a str,
    /// "" for the object, or `status`, `scale`.
    pub subresource: &'a str,
    /// The time to record (RFC 3339).
    pub now: &'a str,
}

impl FieldManager<'_> {
    /// The fields a write of `obj` through this subresource can own: no
    /// system metadata; only the status through `status`; no status
    /// through the object of a kind with a status subresource.
    pub fn owned_fields(&self, obj: &Value) -> FieldSet {
        self.scoped(&fields_of(self.info.kind, obj))
    }

    fn scoped(&self, set: &FieldSet) -> FieldSet {
        let set = set.difference(&SYSTEM_FIELDS);
        match self.subresource {
            "status" => set.only("f:status"),
            _ if self.info.has_status => {
                let mut set = set;
                set.children.remove("f:status");
                set
            }
            _ => set,
        }
    }

    /// The fields added or modified and the fields removed from `old` to `new`.
    fn changes(&self, old: &Value, new: &Value) -> (FieldSet, FieldSet) {
        let (changed, removed) = diff_children(self.info.kind, old, new, &mut Vec::new());
        (self.scoped(&changed), self.scoped(&removed))
    }

    fn is_mine(&self, e: &Entry, operation: Operation) -> bool {
        e.manager == self.manager && e.operation == operation && e.subresource == self.subresource
    }

    /// Records a non-apply write of `new` over `live` (`Value::Null` for a
    /// create) in `new`'s managedFields: the manager owns what it changed,
    /// which the others lose, and nobody owns what it removed. The
    /// managedFields start from the request's (`[]` or `[{}]`: none) unless
    /// it has none or writes a subresource; then from the live object's.
    pub fn update(&self, live: &Value, new: &mut Value) {
        let from_request = self.subresource.is_empty();
        let mut entries = if from_request && asks_reset(new) {
            Vec::new()
        } else {
            from_request
                .then(|| entries_of(new))
                .flatten()
                .filter(|e| !e.is_empty())
                .or_else(|| entries_of(live))
                .unwrap_or_default()
        };
        let (changed, removed) = self.changes(live, new);
        for e in &mut entries {
            e.fields = e.fields.difference(&removed);
            if !self.is_mine(e, Operation::Update) {
                e.fields = e.fields.difference(&changed);
            }
        }
        if !changed.is_empty() {
            match entries.iter_mut().find(|e| self.is_mine(e, Operation::Update)) {
                Some(e) => {
                    e.fields = e.fields.union(&changed);
                    e.api_version = self.info.api_version.into();
                    e.time = Some(self.now.into());
                }
                None => entries.push(self.entry(Operation::Update, changed)),
            }
        }
        store(new, entries);
    }

    fn entry(&self, operation: Operation, fields: FieldSet) -> Entry {
        Entry {
            manager: self.manager.into(),
            operation,
            api_version: self.info.api_version.into(),
            subresource: self.subresource.into(),
            time: Some(self.now.into()),
            fields,
        }
    }

    /// Applies `config` to `live` (`Value::Null` when the object does not
    /// exist yet): merges it in, removes the fields this manager applied
    /// before, left out now and owned by nobody else, and records the
    /// manager as owning exactly `config`'s fields. A field of `config`
    /// another manager owns whose value would change is a conflict: the
    /// apply fails with every conflict listed, unless `force` moves the
    /// fields to this manager.
    pub fn apply(&self, live: &Value, config: &Value, force: bool) -> Result<Value> {
        if config.pointer("/metadata/managedFields").is_some_and(|m| !m.is_null()) {
            return Err(ApiError::bad_request("metadata.managedFields must be nil"));
        }
        let mut entries = entries_of(live).unwrap_or_default();
        let mut old = if live.is_object() { live.clone() } else { json!({}) };
        if let Some(meta) = old.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("managedFields");
        }
        let mut merged = old.clone();
        strategic_merge_patch(self.info.kind, &mut merged, config)?;
        let applied = self.owned_fields(config);
        let last = match entries.iter_mut().find(|e| self.is_mine(e, Operation::Apply)) {
            Some(e) => std::mem::replace(&mut e.fields, applied),
            None => {
                entries.push(self.entry(Operation::Apply, applied));
                FieldSet::default()
            }
        };
        let owned = entries.iter().fold(FieldSet::default(), |all, e| all.union(&e.fields));
        prune(&mut merged, &last.difference(&owned), &owned);

        let (changed, removed) = self.changes(&old, &merged);
        let mut conflicts: Vec<(String, String)> = Vec::new();
        for e in entries.iter().filter(|e| !self.is_mine(e, Operation::Apply)) {
            let theirs = e.fields.intersection(&changed);
            conflicts.extend(theirs.paths().into_iter().map(|path| (e.describe(), path)));
        }
        if !conflicts.is_empty() && !force {
            return Err(conflict_error(conflicts));
        }
        let object_changed = merged != old;
        for e in &mut entries {
            if self.is_mine(e, Operation::Apply) {
                if object_changed {
                    e.time = Some(self.now.into());
                }
            } else {
                e.fields = e.fields.difference(&changed).difference(&removed);
            }
        }
        store(&mut merged, entries);
        Ok(merged)
    }
}

/// Kubernetes' apply conflict: 409 Conflict, one `FieldManagerConflict`
/// cause per field.
fn conflict_error(mut conflicts: Vec<(String, String)>) -> ApiError {
    conflicts.sort();
    let message = match conflicts.as_slice() {
        [(manager, path)] => format!("Apply failed with 1 conflict: conflict with {manager}: {path}"),
        _ => {
            let mut lines = Vec::new();
            for (i, (manager, path)) in conflicts.iter().enumerate() {
                if i == 0 || conflicts[i - 1].0 != *manager {
                    lines.push(format!("conflicts with {manager}:"));
                }
                lines.push(format!("- {path}"));
            }
            format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
        }
    };
    let mut e = ApiError::new(Reason::Conflict, message);
    e.causes = conflicts
        .into_iter()
        .map(|(manager, field)| Cause {
            kind: "FieldManagerConflict".into(),
            field,
            message: format!("conflict with {manager}"),
        })
        .collect();
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::lookup;

    const NOW: &str = "2024-05-01T10:00:00Z";
    const LATER: &str = "2024-05-01T11:00:00Z";

    fn manager(plural: &str, name: &'static str) -> FieldManager<'static> {
        FieldManager { info: lookup(plural).expect("known resource"), manager: name, subresource: "", now: NOW }
    }

    fn deployment(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "main", "image": image}]}}}})
    }

    fn entry<'a>(obj: &'a Value, name: &str) -> &'a Value {
        let list = obj["metadata"]["managedFields"].as_array().expect("managedFields");
        list.iter().find(|e| e["manager"] == name).unwrap_or_else(|| panic!("no entry for {name}: {obj}"))
    }

    #[test]
    fn field_sets_key_merged_lists_and_leave_out_system_fields() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default", "uid": "u", "labels": {"app": "web"},
                "finalizers": ["a"]},
            "spec": {"containers": [{"name": "main", "image": "nginx", "args": ["-v"],
                "ports": [{"containerPort": 80}]}], "tolerations": [{"key": "k"}]},
            "status": {"phase": "Running"}});
        let set = manager("pods", "m").owned_fields(&pod);
        assert_eq!(
            set.to_fields_v1(),
            json!({"f:metadata": {"f:labels": {"f:app": {}}, "f:finalizers": {"v:\"a\"": {}}},
                "f:spec": {"f:containers": {"k:{\"name\":\"main\"}": {".": {}, "f:image": {}, "f:name": {},
                    "f:args": {}, "f:ports": {"k:{\"containerPort\":80}": {".": {}, "f:containerPort": {}}}}},
                    "f:tolerations": {}}})
        );
        assert_eq!(FieldSet::from_fields_v1(&set.to_fields_v1()).expect("parses"), set);
        let paths = set.paths();
        assert!(paths.contains(&".spec.containers[name=\"main\"].image".to_string()), "{paths:?}");
        assert!(paths.contains(&".metadata.finalizers[=\"a\"]".to_string()), "{paths:?}");
        // Through the status subresource, only the status.
        let status = FieldManager { subresource: "status", ..manager("pods", "kubelet") };
        assert_eq!(status.owned_fields(&pod).paths(), vec![".status.phase"]);
    }

    #[test]
    fn set_operations_work_on_members() {
        let a = FieldSet::from_fields_v1(&json!({"f:spec": {"f:a": {}, "f:b": {}}})).unwrap();
        let b = FieldSet::from_fields_v1(&json!({"f:spec": {"f:b": {}, "f:c": {}}})).unwrap();
        assert_eq!(a.union(&b).paths(), vec![".spec.a", ".spec.b", ".spec.c"]);
        assert_eq!(a.difference(&b).paths(), vec![".spec.a"]);
        assert_eq!(a.intersection(&b).paths(), vec![".spec.b"]);
        assert!(a.difference(&a).is_empty());
        assert!(FieldSet::from_fields_v1(&json!({"spec": {}})).is_err());
    }

    #[test]
    fn apply_creates_then_records_an_apply_entry() {
        let m = manager("deployments", "alice");
        let obj = m.apply(&Value::Null, &deployment(2, "nginx:1"), false).unwrap();
        assert_eq!(obj["spec"]["replicas"], 2);
        let e = entry(&obj, "alice");
        assert_eq!(
            (e["operation"].as_str(), e["apiVersion"].as_str(), e["time"].as_str()),
            (Some("Apply"), Some("apps/v1"), Some(NOW))
        );
        assert_eq!(e["fieldsV1"]["f:spec"]["f:replicas"], json!({}));
        assert!(e["fieldsV1"]["f:metadata"].get("f:name").is_none());
    }

    #[test]
    fn another_managers_value_conflicts_unless_forced() {
        let live = manager("deployments", "alice").apply(&Value::Null, &deployment(2, "nginx:1"), false).unwrap();
        let bob = FieldManager { now: LATER, ..manager("deployments", "bob") };
        // The same values are shared, not conflicting.
        let shared = bob.apply(&live, &json!({"spec": {"replicas": 2}}), false).unwrap();
        assert_eq!(entry(&shared, "alice")["fieldsV1"]["f:spec"]["f:replicas"], json!({}));
        assert_eq!(entry(&shared, "bob")["fieldsV1"]["f:spec"]["f:replicas"], json!({}));

        let e = bob.apply(&live, &json!({"spec": {"replicas": 3}}), false).unwrap_err();
        assert_eq!(e.code(), 409);
        assert_eq!(e.message, "Apply failed with 1 conflict: conflict with \"alice\": .spec.replicas");
        assert_eq!(e.causes[0].kind, "FieldManagerConflict");
        assert_eq!(e.causes[0].field, ".spec.replicas");

        let forced = bob.apply(&live, &json!({"spec": {"replicas": 3}}), true).unwrap();
        assert_eq!(forced["spec"]["replicas"], 3);
        assert!(entry(&forced, "alice")["fieldsV1"]["f:spec"].get("f:replicas").is_none(), "{forced}");
        assert_eq!(entry(&forced, "bob")["fieldsV1"]["f:spec"]["f:replicas"], json!({}));
    }

    #[test]
    fn update_managers_are_named_with_version_and_time_in_conflicts() {
        let create = manager("deployments", "kubectl-client-side-apply");
        let mut live = deployment(1, "nginx:1");
        create.update(&Value::Null, &mut live);
        let item = &entry(&live, "kubectl-client-side-apply")["fieldsV1"]["f:spec"]["f:template"]["f:spec"];
        assert_eq!(item["f:containers"]["k:{\"name\":\"main\"}"]["f:image"], json!({}));
        let e = manager("deployments", "other")
            .apply(
                &live,
                &json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "x"}]}}}}),
                false,
            )
            .unwrap_err();
        assert_eq!(
            e.message,
            "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1 at \
             2024-05-01T10:00:00Z: .spec.template.spec.containers[name=\"main\"].image"
        );
    }

    #[test]
    fn applying_without_a_field_removes_it_unless_someone_else_owns_it() {
        let alice = manager("configmaps", "alice");
        let cm = |labels: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": labels}});
        let live = alice.apply(&Value::Null, &cm(json!({"a": "1", "b": "2"})), false).unwrap();
        let dropped = alice.apply(&live, &cm(json!({"a": "1"})), false).unwrap();
        assert_eq!(dropped["metadata"]["labels"], json!({"a": "1"}));
        // Bob also applies b: dropping it from alice's config keeps it.
        let shared = manager("configmaps", "bob").apply(&live, &cm(json!({"b": "2"})), false).unwrap();
        let kept = alice.apply(&shared, &cm(json!({"a": "1"})), false).unwrap();
        assert_eq!(kept["metadata"]["labels"], json!({"a": "1", "b": "2"}));
        // A container left out is removed whole.
        let two = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "main", "image": "a"}, {"name": "side", "image": "b"}]}}}});
        let dep = manager("deployments", "alice");
        let live = dep.apply(&deployment(1, "a"), &two, false).unwrap();
        let one = dep.apply(&live, &deployment(1, "a"), false).unwrap();
        assert_eq!(one["spec"]["template"]["spec"]["containers"], json!([{"name": "main", "image": "a"}]));
    }

    #[test]
    fn updates_take_what_they_change_and_keep_one_entry_per_manager() {
        let live = manager("deployments", "alice").apply(&Value::Null, &deployment(2, "nginx:1"), false).unwrap();
        let ctl = FieldManager { now: LATER, ..manager("deployments", "unknown") };
        let mut new = live.clone();
        new["spec"]["replicas"] = 5.into();
        ctl.update(&live, &mut new);
        assert!(entry(&new, "alice")["fieldsV1"]["f:spec"].get("f:replicas").is_none());
        assert_eq!(entry(&new, "unknown")["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
        assert_eq!(entry(&new, "unknown")["time"], LATER);
        let mut again = new.clone();
        again["spec"]["replicas"] = 6.into();
        ctl.update(&new, &mut again);
        assert_eq!(again["metadata"]["managedFields"].as_array().unwrap().len(), 2);
        // Apply entries sort first.
        assert_eq!(again["metadata"]["managedFields"][0]["manager"], "alice");
    }

    #[test]
    fn requests_may_set_or_reset_managed_fields() {
        let live = manager("deployments", "alice").apply(&Value::Null, &deployment(2, "nginx:1"), false).unwrap();
        let m = manager("deployments", "editor");
        // Absent: the live ones are kept.
        let mut absent = live.clone();
        absent["metadata"].as_object_mut().unwrap().remove("managedFields");
        m.update(&live, &mut absent);
        assert_eq!(absent["metadata"]["managedFields"], live["metadata"]["managedFields"]);
        // [] or [{}]: reset, then this write's changes recorded.
        for reset in [json!([]), json!([{}])] {
            let mut new = live.clone();
            new["metadata"]["managedFields"] = reset;
            new["spec"]["replicas"] = 3.into();
            m.update(&live, &mut new);
            let list = new["metadata"]["managedFields"].as_array().unwrap();
            assert_eq!(list.len(), 1, "{new}");
            assert_eq!(list[0]["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
        }
        // Given: kept as given.
        let mut given = live.clone();
        given["metadata"]["managedFields"][0]["manager"] = "someone".into();
        m.update(&live, &mut given);
        assert_eq!(given["metadata"]["managedFields"][0]["manager"], "someone");
    }
}
