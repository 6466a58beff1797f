//! Whole objects as output: `-o yaml`, `-o json`, `-o name`, and the
//! `kind.group/name` references kubectl prints after a change.

use rkube_api::ResourceInfo;
use serde::Serialize;
use serde_json::Value;

/// An `-o` format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The kind's table.
    Table,
    /// The kind's table with its extra columns.
    Wide,
    /// YAML of the objects.
    Yaml,
    /// JSON of the objects.
    Json,
    /// `kind/name` per object.
    Name,
}

impl Format {
    /// Parses `-o`; `allowed` names the formats the command accepts.
    pub fn parse(output: Option<&str>, allowed: &[Format]) -> anyhow::Result<Format> {
        let f = match output.unwrap_or("") {
            "" => Format::Table,
            "wide" => Format::Wide,
            "yaml" => Format::Yaml,
            "json" => Format::Json,
            "name" => Format::Name,
            other => return Err(unknown_format(other, allowed)),
        };
        if !allowed.contains(&f) {
            return Err(unknown_format(output.unwrap_or(""), allowed));
        }
        Ok(f)
    }

    fn as_str(self) -> &'static str {
        match self {
            Format::Table => "",
            Format::Wide => "wide",
            Format::Yaml => "yaml",
            Format::Json => "json",
            Format::Name => "name",
        }
    }

    /// Whether the format prints tables.
    pub fn is_table(self) -> bool {
        matches!(self, Format::Table | Format::Wide)
    }
}

fn unknown_format(name: &str, allowed: &[Format]) -> anyhow::Error {
    let mut names: Vec<&str> = allowed.iter().map(|f| f.as_str()).filter(|s| !s.is_empty()).collect();
    names.sort();
    anyhow::anyhow!(
        "unable to match a printer suitable for the output format \"{name}\", allowed formats are: {}",
        names.join(",")
    )
}

/// `pod`, `deployment.apps`, `lease.coordination.k8s.io`: how kubectl names a
/// resource type in its messages.
pub fn type_name(info: &ResourceInfo) -> String {
    let kind = info.kind.to_lowercase();
    if info.group.is_empty() { kind } else { format!("{kind}.{}", info.group) }
}

/// `pod/web`.
pub fn reference(info: &ResourceInfo, name: &str) -> String {
    format!("{}/{name}", type_name(info))
}

/// The object's `metadata.name`.
pub fn name_of(v: &Value) -> &str {
    v.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default()
}

/// The object's `metadata.namespace`.
pub fn namespace_of(v: &Value) -> &str {
    v.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default()
}

/// Several objects as kubectl's `v1 List`.
pub fn list(items: Vec<Value>) -> Value {
    serde_json::json!({"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}})
}

/// YAML as kubectl prints it.
pub fn to_yaml(v: &Value) -> anyhow::Result<String> {
    Ok(crate::printers::yaml::to_yaml(v))
}

/// JSON indented by four spaces, as kubectl prints it, with a final newline.
pub fn to_json(v: &Value) -> anyhow::Result<String> {
    let mut buf = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut buf, serde_json::ser::PrettyFormatter::with_indent(b"    "));
    v.serialize(&mut ser)?;
    buf.push(b'\n');
    Ok(String::from_utf8(buf)?)
}

/// What `-o yaml|json` prints for `items`: one object as itself when one
/// object was asked for (`single`), otherwise a `v1 List`.
pub fn document(items: Vec<Value>, single: bool) -> Value {
    if single && items.len() == 1 { items.into_iter().next().expect("one item") } else { list(items) }
}

/// `v` as YAML or JSON.
pub fn serialize(format: Format, v: &Value) -> anyhow::Result<String> {
    match format {
        Format::Json => to_json(v),
        _ => to_yaml(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn type_names_carry_the_group() {
        assert_eq!(type_name(rkube_api::resource::lookup("po").expect("pods")), "pod");
        assert_eq!(reference(rkube_api::resource::lookup("deploy").expect("deploy"), "web"), "deployment.apps/web");
        let rc = rkube_api::resource::lookup("rc").expect("rc");
        assert_eq!(reference(rc, "x"), "replicationcontroller/x");
    }

    #[test]
    fn several_objects_become_a_list_and_one_stays_itself() {
        let a = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}});
        let one = serialize(Format::Json, &document(vec![a.clone()], true)).expect("json");
        assert!(one.starts_with("{\n    \"apiVersion\": \"v1\",\n    \"kind\": \"ConfigMap\""), "{one}");
        let many = serialize(Format::Yaml, &document(vec![a.clone(), a], false)).expect("yaml");
        assert!(many.starts_with("apiVersion: v1\nitems:\n"), "{many}");
        assert!(many.contains("kind: List\nmetadata:\n  resourceVersion: \"\""), "{many}");
    }

    #[test]
    fn unknown_formats_name_the_allowed_ones() {
        let e = Format::parse(Some("jsonpath"), &[Format::Table, Format::Yaml, Format::Name]).expect_err("unknown");
        assert!(e.to_string().ends_with("allowed formats are: name,yaml"), "{e}");
    }
}
