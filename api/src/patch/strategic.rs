//! Kubernetes' strategic merge patch (`application/strategic-merge-patch+json`),
//! what kubectl sends for `patch`, client-side `apply`, `set image`, `set env`,
//! `rollout restart` and `edit`. It is a JSON merge patch that knows the
//! object's lists (see [`super::merge_keys`]):
//!
//! - maps merge recursively and `null` deletes a key;
//! - lists with a merge key merge item by item: a patch item merges into the
//!   live item with the same key, or joins the list; lists of primitives with
//!   the merge strategy (`finalizers`) merge as sets; other lists are replaced;
//! - directives steer the merge: `$patch: replace | delete | merge` (in a map,
//!   or as a list item), `$retainKeys`, `$setElementOrder/<list>` and
//!   `$deleteFromPrimitiveList/<list>`. They never end up in the object.
//!
//! Items the patch names come in the patch's order (or `$setElementOrder`'s);
//! items only the server has keep their place relative to them where the live
//! list says how, as `k8s.io/apimachinery/pkg/util/strategicpatch` orders them.

use super::merge_keys::{ListStrategy, list_strategy};
use crate::error::{ApiError, Result};
use serde_json::{Map, Value};
use std::fmt::{self, Write as _};

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

/// Applies a strategic merge patch to `target`, the whole JSON of an object
/// of `kind` (`Pod`, `Deployment`, ...).
///
/// A malformed patch (a wrong directive, a list item without its merge key,
/// a list out of its `$setElementOrder`) is a BadRequest naming the field
/// path, and leaves `target` as it was.
pub fn strategic_merge_patch(kind: &str, target: &mut Value, patch: &Value) -> Result<()> {
    let Value::Object(patch) = patch else {
        return Err(ApiError::bad_request("invalid strategic merge patch: it must be a JSON object"));
    };
    let original = target.as_object().cloned().unwrap_or_default();
    let merged = Patcher { kind, path: Vec::new() }.merge_map(original, patch)?;
    *target = Value::Object(merged.unwrap_or_default());
    Ok(())
}

/// One step of the path to the value being merged.
#[derive(Debug, Clone, Copy)]
enum Step<'p> {
    Field(&'p str),
    /// An item of a list, by its position in the patch.
    Item(usize),
}

/// What a list item's `$patch` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ItemDirective {
    /// `{"$patch": "replace"}`: the patch's items replace the list.
    Replace,
    /// `{"<key>": ..., "$patch": "delete"}`: remove the item with that key.
    Delete,
}

struct Patcher<'p> {
    kind: &'p str,
    path: Vec<Step<'p>>,
}

impl<'p> Patcher<'p> {
    fn error(&self, what: impl fmt::Display) -> ApiError {
        let mut path = String::new();
        for step in &self.path {
            match step {
                Step::Field(f) if path.is_empty() => path.push_str(f),
                Step::Field(f) => {
                    path.push('.');
                    path.push_str(f);
                }
                Step::Item(i) => {
                    let _ = write!(path, "[{i}]");
                }
            }
        }
        if path.is_empty() {
            ApiError::bad_request(format!("invalid strategic merge patch: {what}"))
        } else {
            ApiError::bad_request(format!("invalid strategic merge patch: {path}: {what}"))
        }
    }

    /// The list field being merged, as [`list_strategy`] names it.
    fn fields(&self) -> Vec<&'p str> {
        self.path
            .iter()
            .filter_map(|s| match s {
                Step::Field(f) => Some(*f),
                Step::Item(_) => None,
            })
            .collect()
    }

    /// `patch` applied to `original` (Null if absent); `None` removes the field.
    /// `order` is the list's `$setElementOrder`, if the patch gives one.
    fn merge_value(&mut self, original: Value, patch: &'p Value, order: Option<&'p [Value]>) -> Result<Option<Value>> {
        match patch {
            Value::Null => Ok(None),
            Value::Object(patch) => {
                let original = match original {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                Ok(self.merge_map(original, patch)?.map(Value::Object))
            }
            Value::Array(patch) => {
                let original = match original {
                    Value::Array(items) => items,
                    _ => Vec::new(),
                };
                Ok(Some(Value::Array(self.merge_list(original, patch, order)?)))
            }
            scalar => Ok(Some(scalar.clone())),
        }
    }

    /// A map, after its `$patch` directive; `None`: `$patch: delete`.
    fn merge_map(
        &mut self,
        original: Map<String, Value>,
        patch: &'p Map<String, Value>,
    ) -> Result<Option<Map<String, Value>>> {
        match patch.get(PATCH) {
            None => self.merge_fields(original, patch).map(Some),
            Some(Value::String(d)) if d == "merge" => self.merge_fields(original, patch).map(Some),
            Some(Value::String(d)) if d == "replace" => self.merge_fields(Map::new(), patch).map(Some),
            Some(Value::String(d)) if d == "delete" => Ok(None),
            Some(other) => {
                Err(self.error(format_args!("unknown $patch directive {other} (want replace, delete or merge)")))
            }
        }
    }

    /// A map's fields merged one by one, with `$retainKeys`,
    /// `$setElementOrder/` and `$deleteFromPrimitiveList/` applied.
    fn merge_fields(
        &mut self,
        mut original: Map<String, Value>,
        patch: &'p Map<String, Value>,
    ) -> Result<Map<String, Value>> {
        let mut retain: Option<Vec<&str>> = None;
        let mut orders: Vec<(&'p str, &'p [Value])> = Vec::new();
        let mut deletions: Vec<(&'p str, &'p [Value])> = Vec::new();
        for (key, value) in patch.iter().filter(|(k, _)| k.starts_with('$')) {
            if key == PATCH {
                continue;
            } else if key == RETAIN_KEYS {
                let keys = value.as_array().and_then(|l| l.iter().map(Value::as_str).collect::<Option<Vec<_>>>());
                retain = Some(keys.ok_or_else(|| self.error("$retainKeys must be a list of field names"))?);
            } else if let Some(field) = key.strip_prefix(SET_ELEMENT_ORDER) {
                orders.push((field, self.directive_list(key, field, value)?));
            } else if let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
                deletions.push((field, self.directive_list(key, field, value)?));
            } else {
                return Err(self.error(format_args!("unknown directive \"{key}\"")));
            }
        }

        if let Some(keys) = &retain {
            let unlisted =
                patch.iter().find(|(k, v)| !k.starts_with('$') && !v.is_null() && !keys.contains(&k.as_str()));
            if let Some((key, _)) = unlisted {
                return Err(self.error(format_args!("field \"{key}\" is set but not listed in $retainKeys")));
            }
            original.retain(|k, _| keys.contains(&k.as_str()));
        }

        let order_of = |field: &str| orders.iter().find(|(f, _)| *f == field).map(|(_, order)| *order);
        for (key, value) in patch.iter().filter(|(k, _)| !k.starts_with('$')) {
            self.path.push(Step::Field(key));
            let current = original.remove(key).unwrap_or(Value::Null);
            if let Some(merged) = self.merge_value(current, value, order_of(key))? {
                original.insert(key.clone(), merged);
            }
            self.path.pop();
        }
        // An order for a list the patch does not otherwise touch reorders it.
        for (field, order) in orders.iter().filter(|(f, _)| !patch.contains_key(*f)) {
            if let Some(Value::Array(items)) = original.remove(*field) {
                self.path.push(Step::Field(field));
                let merged = self.merge_list(items, &[], Some(*order))?;
                self.path.pop();
                original.insert(field.to_string(), Value::Array(merged));
            }
        }
        for (field, values) in deletions {
            if let Some(Value::Array(items)) = original.get_mut(field) {
                items.retain(|item| !values.iter().any(|v| same(v, item)));
            }
        }
        Ok(original)
    }

    /// The list a `$setElementOrder/<field>` or `$deleteFromPrimitiveList/<field>` holds.
    fn directive_list(&self, key: &str, field: &str, value: &'p Value) -> Result<&'p [Value]> {
        match value {
            Value::Array(items) if !field.is_empty() => Ok(items),
            _ => Err(self.error(format_args!("\"{key}\" must name a field and hold a list"))),
        }
    }

    fn merge_list(
        &mut self,
        original: Vec<Value>,
        patch: &'p [Value],
        order: Option<&'p [Value]>,
    ) -> Result<Vec<Value>> {
        match list_strategy(self.kind, &self.fields()) {
            ListStrategy::Replace => self.replace_list(patch),
            ListStrategy::MergeByKey(key) if patch.iter().chain(&original).any(Value::is_object) => {
                self.merge_by_key(original, patch, key, order)
            }
            ListStrategy::MergeByKey(_) | ListStrategy::MergeSet => self.merge_set(original, patch, order),
        }
    }

    /// A list without a merge strategy: the patch's items, cleared of directives.
    fn replace_list(&mut self, patch: &'p [Value]) -> Result<Vec<Value>> {
        let mut out = Vec::with_capacity(patch.len());
        for (i, item) in patch.iter().enumerate() {
            self.path.push(Step::Item(i));
            // `$patch: replace` says what happens anyway; there is nothing
            // to delete from a list the patch replaces.
            if self.item_directive(item)?.is_none() {
                out.extend(self.merge_value(Value::Null, item, None)?);
            }
            self.path.pop();
        }
        Ok(out)
    }

    /// The `$patch` directive of a list item, if it has one.
    fn item_directive(&self, item: &Value) -> Result<Option<ItemDirective>> {
        match item.get(PATCH) {
            None => Ok(None),
            Some(Value::String(d)) if d == "replace" => Ok(Some(ItemDirective::Replace)),
            Some(Value::String(d)) if d == "delete" => Ok(Some(ItemDirective::Delete)),
            Some(Value::String(d)) if d == "merge" => {
                Err(self.error("\"$patch: merge\" cannot be given in a list (lists with a merge key merge already)"))
            }
            Some(other) => Err(self.error(format_args!("unknown $patch directive {other} (want replace or delete)"))),
        }
    }

    /// A list whose items are objects merged by `key`.
    fn merge_by_key(
        &mut self,
        mut merged: Vec<Value>,
        patch: &'p [Value],
        key: &str,
        order: Option<&'p [Value]>,
    ) -> Result<Vec<Value>> {
        let server_order: Vec<Value> = merged.iter().map(|item| item.get(key).cloned().unwrap_or_default()).collect();
        let mut items: Vec<(usize, &'p Map<String, Value>)> = Vec::new();
        let mut replace = false;
        for (i, item) in patch.iter().enumerate() {
            self.path.push(Step::Item(i));
            let Value::Object(fields) = item else {
                return Err(self.error(format_args!("want an object with a \"{key}\" (the list merges by it)")));
            };
            let directive = self.item_directive(item)?;
            if directive == Some(ItemDirective::Replace) {
                replace = true;
            } else {
                let value = fields.get(key).ok_or_else(|| self.error(format_args!("missing merge key \"{key}\"")))?;
                if directive == Some(ItemDirective::Delete) {
                    merged.retain(|live| !live.get(key).is_some_and(|v| same(v, value)));
                } else {
                    items.push((i, fields));
                }
            }
            self.path.pop();
        }
        if replace {
            merged.clear();
        }
        if let Some(order) = order {
            let keys: Vec<&Value> = items.iter().map(|(_, fields)| &fields[key]).collect();
            self.check_order(&keys, order, Some(key))?;
        }

        for (i, fields) in &items {
            self.path.push(Step::Item(*i));
            let value = &fields[key];
            match merged.iter().position(|live| live.get(key).is_some_and(|v| same(v, value))) {
                Some(at) => {
                    let live = match merged[at].take() {
                        Value::Object(m) => m,
                        _ => Map::new(),
                    };
                    merged[at] = Value::Object(self.merge_fields(live, fields)?);
                }
                None => merged.push(Value::Object(self.merge_fields(Map::new(), fields)?)),
            }
            self.path.pop();
        }

        let patch_order: Vec<Value> = match order {
            Some(order) => order.iter().filter_map(|o| o.get(key).cloned()).collect(),
            None => items.iter().map(|(_, fields)| fields[key].clone()).collect(),
        };
        Ok(normalize_order(merged, &patch_order, &server_order, |item| item.get(key)))
    }

    /// A list of primitives merged as a set.
    fn merge_set(
        &mut self,
        original: Vec<Value>,
        patch: &'p [Value],
        order: Option<&'p [Value]>,
    ) -> Result<Vec<Value>> {
        if let Some(i) = patch.iter().position(|v| v.is_object() || v.is_array()) {
            self.path.push(Step::Item(i));
            return Err(self.error("want a primitive value (the list merges as a set)"));
        }
        if let Some(order) = order {
            let values: Vec<&Value> = patch.iter().collect();
            self.check_order(&values, order, None)?;
        }
        let server_order = original.clone();
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for value in original.into_iter().chain(patch.iter().cloned()) {
            if !merged.iter().any(|m| same(m, &value)) {
                merged.push(value);
            }
        }
        Ok(normalize_order(merged, order.unwrap_or(patch), &server_order, |value| Some(value)))
    }

    /// The patch's items (their keys, or values for primitives) must come in
    /// `$setElementOrder`'s order, and all be in it.
    fn check_order(&self, patch_keys: &[&Value], order: &[Value], key: Option<&str>) -> Result<()> {
        let field = self.fields().last().copied().unwrap_or_default();
        let order_keys: Vec<&Value> =
            match key {
                Some(key) => order.iter().map(|o| o.get(key)).collect::<Option<_>>().ok_or_else(|| {
                    self.error(format_args!("each item of $setElementOrder/{field} needs a \"{key}\""))
                })?,
                None => order.iter().collect(),
            };
        let mut rest = order_keys.iter();
        if patch_keys.iter().all(|k| rest.any(|o| same(o, k))) {
            Ok(())
        } else {
            Err(self.error(format_args!("the items are not in the order $setElementOrder/{field} gives")))
        }
    }
}

/// Orders a merged list: items the patch names (their key in `patch_order`)
/// in that order, interleaved with the server-only items, which keep their
/// live order and come before a patched item that followed them in the live
/// list (`server_order`).
fn normalize_order(
    merged: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: impl Fn(&Value) -> Option<&Value>,
) -> Vec<Value> {
    let position = |list: &[Value], item: &Value| key(item).and_then(|k| list.iter().position(|v| same(v, k)));
    let (mut patched, mut server_only): (Vec<Value>, Vec<Value>) =
        merged.into_iter().partition(|item| position(patch_order, item).is_some());
    patched.sort_by_key(|item| position(patch_order, item));
    server_only.sort_by_key(|item| position(server_order, item).unwrap_or(usize::MAX));

    let mut out = Vec::with_capacity(patched.len() + server_only.len());
    let mut patched = patched.into_iter().peekable();
    let mut server_only = server_only.into_iter().peekable();
    while let (Some(s), Some(p)) = (server_only.peek(), patched.peek()) {
        let server_first = matches!(
            (position(server_order, s), position(server_order, p)),
            (Some(si), Some(pi)) if si < pi
        );
        out.extend(if server_first { server_only.next() } else { patched.next() });
    }
    out.extend(server_only);
    out.extend(patched);
    out
}

/// JSON equality, with numbers compared by value (`80` and `80.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patched(kind: &str, target: Value, patch: Value) -> Value {
        let mut target = target;
        strategic_merge_patch(kind, &mut target, &patch).expect("the patch applies");
        target
    }

    fn error(kind: &str, target: Value, patch: Value) -> String {
        let mut after = target.clone();
        let e = strategic_merge_patch(kind, &mut after, &patch).expect_err("the patch is refused");
        assert_eq!(e.reason, crate::Reason::BadRequest);
        assert_eq!(after, target, "a refused patch leaves the object alone");
        e.message
    }

    fn deployment(containers: Value) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": 1, "template": {"spec": {"containers": containers}}},
        })
    }

    fn containers(d: &Value) -> &Value {
        &d["spec"]["template"]["spec"]["containers"]
    }

    #[test]
    fn maps_merge_and_null_deletes() {
        let d = patched(
            "Deployment",
            deployment(json!([])),
            json!({"metadata": {"labels": {"app": null, "tier": "front"}, "annotations": {"a": "1"}}, "spec": {"replicas": 3}}),
        );
        assert_eq!(d["metadata"], json!({"name": "web", "labels": {"tier": "front"}, "annotations": {"a": "1"}}));
        assert_eq!(d["spec"]["replicas"], 3);
        assert_eq!(containers(&d), &json!([]));
    }

    #[test]
    fn set_env_merges_into_the_container_and_keeps_its_image() {
        let live = deployment(json!([
            {"name": "side", "image": "proxy"},
            {"name": "c", "image": "nginx:1.27", "env": [{"name": "B", "value": "2"}]},
        ]));
        // The patch in the brief's short form, without order directives.
        let d = patched(
            "Deployment",
            live.clone(),
            json!({"spec":{"template":{"spec":{"containers":[{"env":[{"name":"A","value":"1"}],"name":"c"}]}}}}),
        );
        assert_eq!(containers(&d)[1]["image"], "nginx:1.27");
        assert_eq!(containers(&d)[0], json!({"name": "side", "image": "proxy"}));
        let env = &containers(&d)[1]["env"];
        assert!(env.as_array().unwrap().contains(&json!({"name": "B", "value": "2"})), "{env}");
        assert!(env.as_array().unwrap().contains(&json!({"name": "A", "value": "1"})), "{env}");

        // What `kubectl set env deployment/web A=1` sends.
        let d = patched(
            "Deployment",
            live,
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "side"}, {"name": "c"}],
                "containers": [{"$setElementOrder/env": [{"name": "B"}, {"name": "A"}], "env": [{"name": "A", "value": "1"}], "name": "c"}],
            }}}}),
        );
        assert_eq!(
            containers(&d),
            &json!([
                {"name": "side", "image": "proxy"},
                {"name": "c", "image": "nginx:1.27", "env": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}]},
            ])
        );
    }

    #[test]
    fn set_image_changes_only_the_image() {
        let live = deployment(json!([{"name": "c", "image": "nginx:1.26", "ports": [{"containerPort": 80}]}]));
        let d = patched(
            "Deployment",
            live,
            json!({"spec":{"template":{"spec":{"containers":[{"image":"nginx:1.27","name":"c"}]}}}}),
        );
        assert_eq!(containers(&d), &json!([{"name": "c", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]));
    }

    #[test]
    fn apply_patch_orders_by_set_element_order_and_deletes_dropped_items() {
        // Live: what apply created, plus a container the server side injected.
        let live = deployment(json!([
            {"name": "web", "image": "v1", "imagePullPolicy": "IfNotPresent"},
            {"name": "old", "image": "o"},
            {"name": "injected", "image": "proxy"},
        ]));
        // `kubectl apply` after dropping "old", changing "web" and adding "new".
        let d = patched(
            "Deployment",
            live,
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "web"}, {"name": "new"}],
                "containers": [
                    {"name": "web", "image": "v2"},
                    {"name": "new", "image": "n"},
                    {"name": "old", "$patch": "delete"},
                ],
            }}}}),
        );
        assert_eq!(
            containers(&d),
            &json!([
                {"name": "web", "image": "v2", "imagePullPolicy": "IfNotPresent"},
                {"name": "new", "image": "n"},
                {"name": "injected", "image": "proxy"},
            ])
        );
        assert!(!d.to_string().contains('$'), "directives stay out of the object: {d}");
    }

    #[test]
    fn set_element_order_alone_reorders_the_live_list() {
        let live = deployment(json!([{"name": "b"}, {"name": "a"}]));
        let d = patched(
            "Deployment",
            live,
            json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}]}}}}),
        );
        assert_eq!(containers(&d), &json!([{"name": "a"}, {"name": "b"}]));
    }

    #[test]
    fn server_only_items_keep_their_place_before_patched_items_they_preceded() {
        // The example of Kubernetes' "preserve order in strategic merge patch".
        let live = json!({"spec": {"containers": [{"name": "B"}, {"name": "C"}, {"name": "A"}]}});
        let pod = patched(
            "Pod",
            live,
            json!({"spec": {"containers": [{"name": "A", "x": 1}, {"name": "B", "x": 2}, {"name": "D"}]}}),
        );
        assert_eq!(
            pod["spec"]["containers"],
            json!([{"name": "C"}, {"name": "A", "x": 1}, {"name": "B", "x": 2}, {"name": "D"}])
        );
    }

    #[test]
    fn patch_delete_removes_one_container() {
        let live = json!({"spec": {"containers": [{"name": "a", "image": "a"}, {"name": "b", "image": "b"}]}});
        let pod = patched("Pod", live, json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}));
        assert_eq!(pod["spec"]["containers"], json!([{"name": "b", "image": "b"}]));
    }

    #[test]
    fn patch_replace_replaces_a_list_or_a_map() {
        let live = json!({
            "metadata": {"labels": {"a": "1", "b": "2"}},
            "spec": {"containers": [{"name": "a", "image": "a"}, {"name": "b", "image": "b"}]},
        });
        let pod = patched(
            "Pod",
            live,
            json!({
                "metadata": {"labels": {"$patch": "replace", "c": "3"}},
                "spec": {"containers": [{"name": "c", "image": "c"}, {"$patch": "replace"}]},
            }),
        );
        assert_eq!(pod["metadata"]["labels"], json!({"c": "3"}));
        assert_eq!(pod["spec"]["containers"], json!([{"name": "c", "image": "c"}]));
    }

    #[test]
    fn patch_delete_on_a_map_removes_it_and_merge_merges() {
        let live = json!({"spec": {"affinity": {"nodeAffinity": {}}, "nodeSelector": {"a": "1"}}});
        let pod = patched(
            "Pod",
            live,
            json!({"spec": {"affinity": {"$patch": "delete"}, "nodeSelector": {"$patch": "merge", "b": "2"}}}),
        );
        assert_eq!(pod, json!({"spec": {"nodeSelector": {"a": "1", "b": "2"}}}));
    }

    #[test]
    fn retain_keys_clears_the_old_strategy_settings() {
        let live = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}}}});
        // What `kubectl apply` sends when the manifest switches to Recreate.
        let d = patched(
            "Deployment",
            live.clone(),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null}}}),
        );
        assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
        // Without the null, $retainKeys alone clears it.
        let d = patched(
            "Deployment",
            live.clone(),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
        );
        assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
        // A plain merge keeps it (and the result would fail validation).
        let d = patched("Deployment", live.clone(), json!({"spec": {"strategy": {"type": "Recreate"}}}));
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"], json!({"maxSurge": "25%"}));

        let message =
            error("Deployment", live, json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}));
        assert!(message.contains("spec.strategy") && message.contains("rollingUpdate"), "{message}");
    }

    #[test]
    fn service_ports_merge_by_port() {
        let live = json!({"spec": {
            "clusterIP": "10.0.0.1",
            "ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"}, {"port": 443, "targetPort": 8443, "protocol": "TCP"}],
        }});
        let svc =
            patched("Service", live, json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 9090}]}}));
        assert_eq!(svc["spec"]["clusterIP"], "10.0.0.1");
        let ports = svc["spec"]["ports"].as_array().unwrap();
        assert_eq!(ports.len(), 3, "{ports:?}");
        assert!(ports.contains(&json!({"port": 80, "targetPort": 8080, "protocol": "TCP"})));
        assert!(ports.contains(&json!({"port": 443, "targetPort": 8443, "protocol": "TCP"})));
        assert!(ports.contains(&json!({"port": 9090})));
    }

    #[test]
    fn container_ports_merge_by_container_port_in_a_pod_template() {
        let live = deployment(json!([{"name": "c", "ports": [{"containerPort": 80, "protocol": "TCP"}]}]));
        let d = patched(
            "Deployment",
            live,
            json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80, "name": "http"}]}]}}}}),
        );
        assert_eq!(containers(&d)[0]["ports"], json!([{"containerPort": 80, "name": "http", "protocol": "TCP"}]));
    }

    #[test]
    fn lists_without_a_merge_key_are_replaced() {
        let live = json!({"spec": {
            "tolerations": [{"key": "a", "operator": "Exists"}],
            "containers": [{"name": "c", "args": ["a", "b"]}],
        }});
        let pod = patched(
            "Pod",
            live,
            json!({"spec": {"tolerations": [{"key": "b", "operator": "Exists"}], "containers": [{"name": "c", "args": ["z"]}]}}),
        );
        assert_eq!(pod["spec"]["tolerations"], json!([{"key": "b", "operator": "Exists"}]));
        assert_eq!(pod["spec"]["containers"][0]["args"], json!(["z"]));
    }

    #[test]
    fn finalizers_merge_as_a_set_and_delete_from_primitive_list_removes() {
        let live = json!({"metadata": {"name": "x", "finalizers": ["a", "b"]}});
        let merged = patched("ConfigMap", live.clone(), json!({"metadata": {"finalizers": ["b", "c"]}}));
        assert_eq!(merged["metadata"]["finalizers"], json!(["a", "b", "c"]));

        // What `kubectl apply` sends after the manifest swaps "a" for "c".
        let applied = patched(
            "ConfigMap",
            live,
            json!({"metadata": {
                "$setElementOrder/finalizers": ["c", "b"],
                "$deleteFromPrimitiveList/finalizers": ["a"],
                "finalizers": ["c"],
            }}),
        );
        assert_eq!(applied["metadata"]["finalizers"], json!(["c", "b"]));
    }

    #[test]
    fn lists_merge_by_key_when_the_object_has_none_yet() {
        let d = patched(
            "Deployment",
            json!({"metadata": {"name": "web"}}),
            json!({"spec": {
                "strategy": {"$retainKeys": ["type"], "type": "Recreate"},
                "template": {"spec": {
                    "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                    "containers": [{"name": "b", "env": [{"name": "X", "value": null}]}, {"name": "a"}, {"name": "z", "$patch": "delete"}],
                }},
            }}),
        );
        assert_eq!(
            d["spec"],
            json!({"strategy": {"type": "Recreate"}, "template": {"spec": {"containers": [{"name": "b", "env": [{"name": "X"}]}, {"name": "a"}]}}})
        );
    }

    #[test]
    fn bad_directives_are_refused_with_the_field_path() {
        let live = deployment(json!([{"name": "c", "image": "i"}]));
        let at_container = |item: Value| json!({"spec": {"template": {"spec": {"containers": [item]}}}});

        let m = error("Deployment", live.clone(), at_container(json!({"name": "c", "$patch": "bogus"})));
        assert!(m.contains("spec.template.spec.containers[0]") && m.contains("bogus"), "{m}");

        let m = error("Deployment", live.clone(), at_container(json!({"name": "c", "$bogus": 1})));
        assert!(m.contains("spec.template.spec.containers[0]") && m.contains("$bogus"), "{m}");

        let m = error("Deployment", live.clone(), at_container(json!({"image": "x"})));
        assert!(m.contains("spec.template.spec.containers[0]") && m.contains("missing merge key \"name\""), "{m}");

        let m = error("Deployment", live.clone(), json!({"spec": {"strategy": {"$patch": "explode"}}}));
        assert!(m.contains("spec.strategy") && m.contains("explode"), "{m}");

        let m = error("Deployment", live.clone(), json!({"spec": {"template": {"$setElementOrder/containers": "c"}}}));
        assert!(m.contains("spec.template") && m.contains("$setElementOrder/containers"), "{m}");

        let m = error(
            "Deployment",
            live.clone(),
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                "containers": [{"name": "b"}, {"name": "a"}],
            }}}}),
        );
        assert!(m.contains("spec.template.spec.containers") && m.contains("$setElementOrder/containers"), "{m}");

        let m = error("Deployment", live.clone(), at_container(json!({"name": "c", "$patch": "merge"})));
        assert!(m.contains("spec.template.spec.containers[0]"), "{m}");

        let m = error("ConfigMap", json!({}), json!({"metadata": {"finalizers": [{"a": 1}]}}));
        assert!(m.contains("metadata.finalizers[0]"), "{m}");

        assert!(error("Pod", json!({}), json!(["not", "an", "object"])).contains("JSON object"));
    }
}
