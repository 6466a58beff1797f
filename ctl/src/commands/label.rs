//! `label` and `annotate`: `key=value` sets, `key-` removes; changing an
//! existing key needs `--overwrite`. Each object gets one JSON merge patch of
//! `metadata.labels` (or `.annotations`).

use super::{json_of, list, print};
use crate::cli::MetadataArgs;
use crate::printers::object;
use crate::report::{self, Reported, usage};
use crate::resources;
use crate::session::Session;
use rkube_api::selector::{validate_label_key, validate_label_value};
use rkube_api::{Reason, ResourceInfo};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Which metadata map a command edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `metadata.labels` (`label`).
    Labels,
    /// `metadata.annotations` (`annotate`).
    Annotations,
}

impl Field {
    fn key(self) -> &'static str {
        match self {
            Field::Labels => "labels",
            Field::Annotations => "annotations",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Field::Labels => "label",
            Field::Annotations => "annotation",
        }
    }
}

/// The requested edits.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// Keys to set, with their values.
    pub set: BTreeMap<String, String>,
    /// Keys to remove.
    pub remove: Vec<String>,
}

/// Splits `args` into resource arguments and `key=value` / `key-` changes,
/// which must come after every resource.
pub fn split_args(args: &[String], field: Field) -> anyhow::Result<(Vec<String>, Changes)> {
    let mut resources = Vec::new();
    let mut pairs = Vec::new();
    for a in args {
        let is_pair = (a.contains('=') && !a.starts_with('=')) || (a.ends_with('-') && a != "-");
        match (is_pair, pairs.is_empty()) {
            (true, _) => pairs.push(a.clone()),
            (false, true) => resources.push(a.clone()),
            (false, false) => {
                return Err(usage(format!("all resources must be specified before {} changes: {a}", field.noun())));
            }
        }
    }
    let mut changes = Changes::default();
    for p in &pairs {
        match p.split_once('=') {
            Some((k, v)) => {
                changes.set.insert(k.to_string(), v.to_string());
            }
            None => changes.remove.push(p.trim_end_matches('-').to_string()),
        }
    }
    for k in changes.set.keys().chain(changes.remove.iter()) {
        validate_label_key(k).map_err(|e| usage(format!("invalid {} key {k:?}: {e}", field.noun())))?;
    }
    if field == Field::Labels {
        for (k, v) in &changes.set {
            validate_label_value(v).map_err(|e| usage(format!("invalid label value: \"{k}={v}\": {e}")))?;
        }
    }
    if let Some(k) = changes.remove.iter().find(|k| changes.set.contains_key(*k)) {
        return Err(usage(format!("can not both modify and remove the {} {k} in the same command", field.noun())));
    }
    if changes.set.is_empty() && changes.remove.is_empty() {
        return Err(usage(format!("at least one {} update is required", field.noun())));
    }
    Ok((resources, changes))
}

/// The merge patch of `current` for `changes`, or None when nothing changes.
/// Changing an existing key without `overwrite` is an error, as in kubectl.
pub fn patch_for(
    current: &BTreeMap<String, String>,
    changes: &Changes,
    overwrite: bool,
) -> Result<Option<Map<String, Value>>, String> {
    let mut patch = Map::new();
    for (k, v) in &changes.set {
        match current.get(k) {
            Some(old) if !overwrite => {
                return Err(format!("'{k}' already has a value ({old}), and --overwrite is false"));
            }
            Some(old) if old == v => {}
            _ => {
                patch.insert(k.clone(), Value::String(v.clone()));
            }
        }
    }
    for k in &changes.remove {
        if current.contains_key(k) {
            patch.insert(k.clone(), Value::Null);
        }
    }
    Ok((!patch.is_empty()).then_some(patch))
}

/// Runs `label` or `annotate`.
pub async fn run(s: &Session, a: &MetadataArgs, field: Field) -> anyhow::Result<()> {
    let (resource_args, changes) =
        if a.list { (a.args.clone(), Changes::default()) } else { split_args(&a.args, field)? };
    let sel = resources::parse(&resource_args, field.noun())?;
    if sel.targets.is_empty() {
        return Err(usage("one or more resources must be specified as <resource> <name> or <resource>/<name>"));
    }
    let by_selector = a.selector.is_some() || a.all;
    if sel.has_names() && by_selector {
        return Err(usage("name cannot be provided when a selector is specified"));
    }
    let mut objects: Vec<(&'static ResourceInfo, Value)> = Vec::new();
    let mut failed = false;
    for t in &sel.targets {
        let ns = s.namespace_for(t.info, a.all_namespaces);
        if t.names.is_empty() {
            if !by_selector {
                return Err(usage("resource(s) were provided, but no name was specified"));
            }
            objects.extend(list(s, t.info, &ns, a.selector.as_deref(), None).await?.into_iter().map(|v| (t.info, v)));
        }
        for name in &t.names {
            match s.client.get(t.info, &ns, name).await {
                Ok(o) => objects.push((t.info, json_of!(o)?)),
                Err(e) if e.reason == Reason::ServiceUnavailable => return Err(e.into()),
                Err(e) => {
                    eprintln!("{}", report::api_error(&e));
                    failed = true;
                }
            }
        }
    }
    for (info, obj) in &objects {
        let name = object::name_of(obj);
        let current: BTreeMap<String, String> = obj
            .pointer(&format!("/metadata/{}", field.key()))
            .and_then(|m| serde_json::from_value(m.clone()).ok())
            .unwrap_or_default();
        if a.list {
            let lines: String = current.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
            print(&lines)?;
            continue;
        }
        for k in &changes.remove {
            if !current.contains_key(k) {
                print(&format!("{} {k:?} not found.\n", field.noun()))?;
            }
        }
        let patch = match patch_for(&current, &changes, a.overwrite) {
            Ok(p) => p,
            Err(message) => {
                eprintln!("error: {message}");
                failed = true;
                continue;
            }
        };
        let reference = object::reference(info, name);
        let Some(patch) = patch else {
            print(&format!("{reference} not {}\n", past(field, &Changes::default(), true)))?;
            continue;
        };
        let mut metadata = Map::new();
        metadata.insert(field.key().into(), Value::Object(patch));
        if let Some(rv) = &a.resource_version {
            metadata.insert("resourceVersion".into(), Value::String(rv.clone()));
        }
        let body = serde_json::json!({ "metadata": metadata });
        match s.client.patch(info, object::namespace_of(obj), name, &body, false).await {
            Ok(_) => print(&format!("{reference} {}\n", past(field, &changes, a.overwrite)))?,
            Err(e) => {
                eprintln!("{}", report::api_error(&e));
                failed = true;
            }
        }
    }
    if failed { Err(Reported.into()) } else { Ok(()) }
}

/// `labeled`, `unlabeled` (only removals, without --overwrite) or `annotated`.
fn past(field: Field, changes: &Changes, overwrite: bool) -> &'static str {
    match field {
        Field::Annotations => "annotated",
        Field::Labels if changes.set.is_empty() && !overwrite => "unlabeled",
        Field::Labels => "labeled",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn resources_come_before_changes() {
        let (res, ch) = split_args(&strings(&["pods", "web", "app=v2", "tier-"]), Field::Labels).expect("valid");
        assert_eq!(res, ["pods", "web"]);
        assert_eq!(ch.set, BTreeMap::from([("app".to_string(), "v2".to_string())]));
        assert_eq!(ch.remove, ["tier"]);
        let e = split_args(&strings(&["pods", "app=v2", "web"]), Field::Labels).expect_err("order");
        assert_eq!(e.to_string(), "all resources must be specified before label changes: web");
    }

    #[test]
    fn invalid_keys_and_values_are_refused() {
        assert!(split_args(&strings(&["pods", "web", "bad key=v"]), Field::Labels).is_err());
        let e = split_args(&strings(&["pods", "web", "app=not valid!"]), Field::Labels).expect_err("value");
        assert!(e.to_string().starts_with("invalid label value: \"app=not valid!\""), "{e}");
        assert!(split_args(&strings(&["pods", "web", "note=any text at all!"]), Field::Annotations).is_ok());
        assert!(split_args(&strings(&["pods", "web"]), Field::Labels).is_err());
        assert!(split_args(&strings(&["pods", "web", "a=1", "a-"]), Field::Labels).is_err());
    }

    #[test]
    fn existing_keys_need_overwrite() {
        let current = BTreeMap::from([("app".to_string(), "web".to_string())]);
        let change = Changes { set: BTreeMap::from([("app".to_string(), "db".to_string())]), remove: vec![] };
        assert_eq!(
            patch_for(&current, &change, false).expect_err("no overwrite"),
            "'app' already has a value (web), and --overwrite is false"
        );
        let patch = patch_for(&current, &change, true).expect("overwrite").expect("a change");
        assert_eq!(Value::Object(patch), serde_json::json!({"app": "db"}));
    }

    #[test]
    fn removals_become_nulls_and_no_ops_are_none() {
        let current = BTreeMap::from([("app".to_string(), "web".to_string())]);
        let remove = Changes { set: BTreeMap::new(), remove: vec!["app".into(), "missing".into()] };
        let patch = patch_for(&current, &remove, false).expect("valid").expect("a change");
        assert_eq!(Value::Object(patch), serde_json::json!({"app": null}));
        let nothing = Changes { set: BTreeMap::new(), remove: vec!["missing".into()] };
        assert_eq!(patch_for(&current, &nothing, false).expect("valid"), None);
    }
}
