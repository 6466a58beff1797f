//! Label and field selectors with Kubernetes' syntax and semantics.
//!
//! Label selectors: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x,y)`,
//! `a`, `!a`, and (for node affinity) `a>3`, `a<3`, joined by commas, all of
//! which must hold. Field selectors: `f=v`, `f==v`, `f!=v` over dotted paths.

use crate::error::{ApiError, Result};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// The operator of one label requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `key=value` / `key==value` / `key in (..)`.
    In,
    /// `key!=value` / `key notin (..)`: also true when the key is absent.
    NotIn,
    /// `key`.
    Exists,
    /// `!key`.
    DoesNotExist,
    /// `key>n`: the value is an integer greater than n.
    Gt,
    /// `key<n`: the value is an integer less than n.
    Lt,
}

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// The operator.
    pub op: Op,
    /// The operand values (one for `=`, `!=`, `>`, `<`; none for existence).
    pub values: Vec<String>,
}

impl Requirement {
    /// Whether `labels` satisfy this requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.op {
            Op::In => value.is_some_and(|v| self.values.contains(v)),
            Op::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            Op::Exists => value.is_some(),
            Op::DoesNotExist => value.is_none(),
            Op::Gt | Op::Lt => {
                let (Some(v), Some(bound)) = (value, self.values.first()) else { return false };
                match (v.parse::<i64>(), bound.parse::<i64>()) {
                    (Ok(v), Ok(b)) => {
                        if self.op == Op::Gt {
                            v > b
                        } else {
                            v < b
                        }
                    }
                    _ => false,
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = &self.key;
        match self.op {
            Op::In if self.values.len() == 1 => write!(f, "{k}={}", self.values[0]),
            Op::NotIn if self.values.len() == 1 => write!(f, "{k}!={}", self.values[0]),
            Op::In => write!(f, "{k} in ({})", self.values.join(",")),
            Op::NotIn => write!(f, "{k} notin ({})", self.values.join(",")),
            Op::Exists => write!(f, "{k}"),
            Op::DoesNotExist => write!(f, "!{k}"),
            Op::Gt => write!(f, "{k}>{}", self.values.join("")),
            Op::Lt => write!(f, "{k}<{}", self.values.join("")),
        }
    }
}

/// A label selector: every requirement must hold. Empty selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    /// The requirements, all of which must hold.
    pub requirements: Vec<Requirement>,
}

impl Selector {
    /// The selector that selects everything.
    pub fn everything() -> Self {
        Selector::default()
    }

    /// Whether this selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether the labels of a JSON object (`metadata.labels`) satisfy it.
    pub fn matches_object(&self, obj: &Value) -> bool {
        if self.is_empty() {
            return true;
        }
        let labels: BTreeMap<String, String> = obj
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
            .unwrap_or_default();
        self.matches(&labels)
    }

    /// Parses the string syntax (`app=web,tier in (a,b),!canary`).
    pub fn parse(s: &str) -> Result<Selector> {
        let mut p = Parser { chars: s.chars().collect(), pos: 0, src: s };
        let mut requirements = Vec::new();
        p.skip_ws();
        if p.at_end() {
            return Ok(Selector::default());
        }
        loop {
            requirements.push(p.requirement()?);
            p.skip_ws();
            if p.at_end() {
                break;
            }
            p.expect(',')?;
        }
        Ok(Selector { requirements })
    }

    /// Converts a `metav1.LabelSelector` (matchLabels + matchExpressions).
    pub fn from_label_selector(ls: &LabelSelector) -> Result<Selector> {
        let mut requirements = Vec::new();
        for (k, v) in ls.match_labels.iter().flatten() {
            requirements.push(Requirement { key: k.clone(), op: Op::In, values: vec![v.clone()] });
        }
        for e in ls.match_expressions.iter().flatten() {
            let values = e.values.clone().unwrap_or_default();
            let op = match e.operator.as_str() {
                "In" => Op::In,
                "NotIn" => Op::NotIn,
                "Exists" => Op::Exists,
                "DoesNotExist" => Op::DoesNotExist,
                other => {
                    return Err(ApiError::bad_request(format!("\"{other}\" is not a valid label selector operator")));
                }
            };
            let needs_values = matches!(op, Op::In | Op::NotIn);
            if needs_values == values.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "label selector operator {} on key {:?}: values {}",
                    e.operator,
                    e.key,
                    if needs_values { "must be non-empty" } else { "must be empty" }
                )));
            }
            requirements.push(Requirement { key: e.key.clone(), op, values });
        }
        Ok(Selector { requirements })
    }

    /// A selector requiring exactly these labels (`matchLabels`, RC's selector).
    pub fn from_map(map: &BTreeMap<String, String>) -> Selector {
        Selector {
            requirements: map
                .iter()
                .map(|(k, v)| Requirement { key: k.clone(), op: Op::In, values: vec![v.clone()] })
                .collect(),
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.requirements.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

struct Parser<'a> {
    chars: Vec<char>,
    pos: usize,
    src: &'a str,
}

impl Parser<'_> {
    fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }
    fn err(&self, what: &str) -> ApiError {
        ApiError::bad_request(format!("unable to parse requirement: {what} at position {} in {:?}", self.pos, self.src))
    }
    fn expect(&mut self, c: char) -> Result<()> {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(&format!("expected '{c}'")))
        }
    }
    fn word(&mut self) -> String {
        self.skip_ws();
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '/') {
                self.pos += 1;
            } else {
                break;
            }
        }
        self.chars[start..self.pos].iter().collect()
    }
    fn requirement(&mut self) -> Result<Requirement> {
        self.skip_ws();
        if self.peek() == Some('!') {
            self.pos += 1;
            let key = self.key()?;
            return Ok(Requirement { key, op: Op::DoesNotExist, values: vec![] });
        }
        let key = self.key()?;
        self.skip_ws();
        let op = match self.peek() {
            None | Some(',') => return Ok(Requirement { key, op: Op::Exists, values: vec![] }),
            Some('=') => {
                self.pos += 1;
                if self.peek() == Some('=') {
                    self.pos += 1;
                }
                Op::In
            }
            Some('!') => {
                self.pos += 1;
                if self.peek() != Some('=') {
                    return Err(self.err("expected '=' after '!'"));
                }
                self.pos += 1;
                Op::NotIn
            }
            Some('>') => {
                self.pos += 1;
                Op::Gt
            }
            Some('<') => {
                self.pos += 1;
                Op::Lt
            }
            _ => {
                let w = self.word();
                let op = match w.as_str() {
                    "in" => Op::In,
                    "notin" => Op::NotIn,
                    _ => return Err(self.err(&format!("unknown operator {w:?} after key {key:?}"))),
                };
                let values = self.set()?;
                return Ok(Requirement { key, op, values });
            }
        };
        let value = self.word();
        validate_label_value(&value).map_err(|m| self.err(&m))?;
        if matches!(op, Op::Gt | Op::Lt) && value.parse::<i64>().is_err() {
            return Err(self.err(&format!("{value:?} is not an integer")));
        }
        Ok(Requirement { key, op, values: vec![value] })
    }
    fn key(&mut self) -> Result<String> {
        let key = self.word();
        if key.is_empty() {
            return Err(self.err("expected a label key"));
        }
        validate_label_key(&key).map_err(|m| self.err(&m))?;
        Ok(key)
    }
    fn set(&mut self) -> Result<Vec<String>> {
        self.expect('(')?;
        let mut values = Vec::new();
        loop {
            let v = self.word();
            validate_label_value(&v).map_err(|m| self.err(&m))?;
            values.push(v);
            self.skip_ws();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(')') => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(self.err("expected ',' or ')'")),
            }
        }
        Ok(values)
    }
}

/// Checks a label key: an optional DNS-1123 subdomain prefix of at most 253
/// characters and `/`, then a name of at most 63 alphanumerics, `-`, `_`, `.`
/// that starts and ends with an alphanumeric.
pub fn validate_label_key(key: &str) -> std::result::Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && (p.is_empty() || p.len() > 253 || !crate::validation::is_dns1123_subdomain(p))
    {
        return Err(format!("prefix part of {key:?} must be a DNS-1123 subdomain"));
    }
    if name.is_empty() || name.len() > 63 || !is_qualified_name_part(name) {
        return Err(format!(
            "name part of {key:?} must consist of alphanumeric characters, '-', '_' or '.', \
             and must start and end with an alphanumeric character (at most 63 characters)"
        ));
    }
    Ok(())
}

/// Checks a label value: empty, or at most 63 alphanumerics, `-`, `_`, `.`
/// starting and ending with an alphanumeric.
pub fn validate_label_value(value: &str) -> std::result::Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > 63 || !is_qualified_name_part(value) {
        return Err(format!(
            "{value:?}: a valid label must be an empty string or consist of alphanumeric characters, \
             '-', '_' or '.', and must start and end with an alphanumeric character (at most 63 characters)"
        ));
    }
    Ok(())
}

fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// One term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    /// Dotted field path (`spec.nodeName`).
    pub field: String,
    /// `true` for `!=`.
    pub negated: bool,
    /// The value compared with.
    pub value: String,
}

/// A field selector: every term must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    /// The terms.
    pub requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// Parses `f=v,g!=w`, allowing only fields in `supported`.
    pub fn parse(s: &str, supported: &[&str]) -> Result<FieldSelector> {
        let mut requirements = Vec::new();
        for term in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, negated, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, true, v)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, false, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid field selector {term:?}: expected field=value, field==value or field!=value"
                )));
            };
            let field = field.trim();
            if !supported.contains(&field) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field} (supported: {})",
                    supported.join(", ")
                )));
            }
            requirements.push(FieldRequirement { field: field.to_string(), negated, value: value.trim().to_string() });
        }
        Ok(FieldSelector { requirements })
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether a JSON object satisfies every term. A missing field reads as "".
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.requirements.iter().all(|r| {
            let actual = field_value(obj, &r.field);
            (actual == r.value) != r.negated
        })
    }

    /// The value `field=V` requires, if the selector has such a term.
    pub fn exact(&self, field: &str) -> Option<&str> {
        self.requirements.iter().find(|r| r.field == field && !r.negated).map(|r| r.value.as_str())
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .requirements
            .iter()
            .map(|r| format!("{}{}{}", r.field, if r.negated { "!=" } else { "=" }, r.value))
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// The string value at a dotted path of a JSON object ("" if absent).
pub fn field_value(obj: &Value, path: &str) -> String {
    let mut cur = obj;
    for part in path.split('.') {
        match cur.get(part) {
            Some(v) => cur = v,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn equality_and_set_based_requirements() {
        let l = labels(&[("app", "web"), ("tier", "front"), ("rank", "5")]);
        for (sel, want) in [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app!=db", true),
            ("missing!=x", true),
            ("tier in (front, back)", true),
            ("tier notin (front)", false),
            ("missing notin (front)", true),
            ("app", true),
            ("!app", false),
            ("!missing", true),
            ("rank>4", true),
            ("rank<5", false),
            ("app=web,tier in (back)", false),
            ("", true),
        ] {
            assert_eq!(Selector::parse(sel).expect(sel).matches(&l), want, "{sel}");
        }
    }

    #[test]
    fn malformed_selectors_are_errors_that_say_where() {
        for bad in ["app=", "app in", "app in (a", "=x", "a b", "app=we b", "-bad-=x", "rank>x"] {
            if bad == "app=" {
                // An empty value is legal: app= selects app="".
                assert!(Selector::parse(bad).is_ok());
                continue;
            }
            let e = Selector::parse(bad).expect_err(bad);
            assert!(e.message.contains("unable to parse requirement"), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn selector_round_trips_through_its_string_form() {
        let s = Selector::parse("app=web,tier in (a,b),!canary,env notin (x,y),zone").expect("parses");
        assert_eq!(Selector::parse(&s.to_string()).expect("reparses"), s);
    }

    #[test]
    fn field_selectors_match_dotted_paths() {
        let pod =
            serde_json::json!({"metadata": {"name": "a"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        let fields = ["metadata.name", "spec.nodeName", "status.phase"];
        assert!(FieldSelector::parse("spec.nodeName=n1", &fields).expect("ok").matches_object(&pod));
        assert!(!FieldSelector::parse("spec.nodeName!=n1", &fields).expect("ok").matches_object(&pod));
        assert!(
            FieldSelector::parse("spec.nodeName==n1,status.phase=Running", &fields).expect("ok").matches_object(&pod)
        );
        assert!(FieldSelector::parse("spec.nodeName=", &fields).expect("ok").matches_object(&serde_json::json!({})));
        let e = FieldSelector::parse("spec.foo=1", &fields).expect_err("unsupported");
        assert!(e.message.contains("field label not supported: spec.foo"));
    }
}
