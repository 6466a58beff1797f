//! JSON values as YAML the way kubectl prints them (go-yaml v2 under
//! `sigs.k8s.io/yaml`): keys sorted, sequences not indented under their key,
//! strings that would read back as another type double-quoted
//! (`resourceVersion: "6"`, `creationTimestamp: "2024-..."`), strings that
//! plain style cannot carry single-quoted, and multi-line strings as literal
//! blocks (`|`, `|-`, `|+`).

use serde_json::{Map, Value};
use std::cmp::Ordering;

/// `v` as a YAML document.
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if !m.is_empty() => mapping(&mut out, m, 0, false),
        Value::Array(a) if !a.is_empty() => sequence(&mut out, a, 0, false),
        other => {
            scalar(&mut out, other, 0);
            out.push('\n');
        }
    }
    out
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// go-yaml's key order: letters by code point, other characters before
/// letters, and runs of digits by their numeric value (`a2` < `a10`).
fn key_order(a: &str, b: &str) -> Ordering {
    let (ar, br): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    for i in 0..ar.len().min(br.len()) {
        if ar[i] == br[i] {
            continue;
        }
        let (al, bl) = (ar[i].is_alphabetic(), br[i].is_alphabetic());
        if al && bl {
            return ar[i].cmp(&br[i]);
        }
        if al || bl {
            return if bl { Ordering::Less } else { Ordering::Greater };
        }
        let number = |r: &[char]| -> (i64, usize) {
            let mut n: i64 = 0;
            let mut end = i;
            while end < r.len() && r[end].is_ascii_digit() {
                n = n.saturating_mul(10).saturating_add(i64::from(r[end] as u8 - b'0'));
                end += 1;
            }
            (n, end)
        };
        let ((an, ae), (bn, be)) = (number(&ar), number(&br));
        if an != bn {
            return an.cmp(&bn);
        }
        if ae != be {
            return ae.cmp(&be);
        }
        return ar[i].cmp(&br[i]);
    }
    ar.len().cmp(&br.len())
}

fn sorted(m: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<(&String, &Value)> = m.iter().collect();
    entries.sort_by(|(a, _), (b, _)| key_order(a, b));
    entries
}

fn mapping(out: &mut String, m: &Map<String, Value>, indent: usize, mut inline: bool) {
    for (k, v) in sorted(m) {
        if !inline {
            pad(out, indent);
        }
        inline = false;
        out.push_str(&key(k));
        out.push(':');
        match v {
            Value::Object(inner) if !inner.is_empty() => {
                out.push('\n');
                mapping(out, inner, indent + 2, false);
            }
            Value::Array(items) if !items.is_empty() => {
                out.push('\n');
                sequence(out, items, indent, false);
            }
            other => {
                out.push(' ');
                scalar(out, other, indent + 2);
                out.push('\n');
            }
        }
    }
}

fn sequence(out: &mut String, items: &[Value], indent: usize, mut inline: bool) {
    for item in items {
        if !inline {
            pad(out, indent);
        }
        inline = false;
        out.push_str("- ");
        match item {
            Value::Object(m) if !m.is_empty() => mapping(out, m, indent + 2, true),
            Value::Array(a) if !a.is_empty() => sequence(out, a, indent + 2, true),
            other => {
                scalar(out, other, indent + 2);
                out.push('\n');
            }
        }
    }
}

fn key(k: &str) -> String {
    match style(k) {
        Style::Plain => k.to_string(),
        Style::Single => single_quoted(k),
        Style::Double | Style::Literal => double_quoted(k),
    }
}

/// Writes a scalar (or an empty collection); a literal block's lines are
/// indented by `indent`.
fn scalar(out: &mut String, v: &Value, indent: usize) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
        Value::String(s) => match style(s) {
            Style::Plain => out.push_str(s),
            Style::Single => out.push_str(&single_quoted(s)),
            Style::Double => out.push_str(&double_quoted(s)),
            Style::Literal => literal(out, s, indent),
        },
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    Single,
    Double,
    Literal,
}

/// Characters libyaml writes as they are (tab and other controls are not).
fn printable(c: char) -> bool {
    matches!(c, '\n' | '\u{20}'..='\u{7e}' | '\u{85}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
        && c != '\u{feff}'
}

fn style(s: &str) -> Style {
    let special = s.chars().any(|c| !printable(c));
    if s.contains('\n') {
        let space_break = s.contains(" \n");
        let trailing_space = s.ends_with(' ');
        return if special || space_break || trailing_space { Style::Double } else { Style::Literal };
    }
    if special {
        return Style::Double;
    }
    if resolves_to_non_string(s) {
        return Style::Double;
    }
    if plain_allowed(s) { Style::Plain } else { Style::Single }
}

/// Whether plain style can carry `s` in block context (libyaml's analysis).
fn plain_allowed(s: &str) -> bool {
    let chars: Vec<char> = s.chars().collect();
    let Some(&first) = chars.first() else { return false };
    let blank_after = |i: usize| chars.get(i + 1).is_none_or(|c| *c == ' ');
    if first == ' ' || chars.last() == Some(&' ') {
        return false;
    }
    if s.starts_with("---") || s.starts_with("...") {
        return false;
    }
    if matches!(first, ',' | '[' | ']' | '{' | '}' | '#' | '&' | '*' | '!' | '|' | '>' | '\'' | '"' | '%' | '@' | '`') {
        return false;
    }
    if matches!(first, '-' | '?' | ':') && blank_after(0) {
        return false;
    }
    for (i, &c) in chars.iter().enumerate().skip(1) {
        if c == ':' && blank_after(i) {
            return false;
        }
        if c == '#' && chars[i - 1] == ' ' {
            return false;
        }
    }
    true
}

/// Whether go-yaml would read `s`, unquoted, as something other than a
/// string: null, a YAML 1.1 boolean, a number, a timestamp, a merge key.
fn resolves_to_non_string(s: &str) -> bool {
    const WORDS: [&str; 34] = [
        "", "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True",
        "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF", ".inf", ".Inf", ".INF", ".nan",
        ".NaN", ".NAN", "<<",
    ];
    if WORDS.contains(&s) {
        return true;
    }
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    if matches!(unsigned, ".inf" | ".Inf" | ".INF") {
        return true;
    }
    if !s.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '+' | '-' | '.')) {
        return false;
    }
    let plain = unsigned.replace('_', "");
    let radix = |p: &str, r: u32| !p.is_empty() && u64::from_str_radix(p, r).is_ok();
    let number = plain.parse::<f64>().is_ok()
        || plain.strip_prefix("0x").is_some_and(|p| radix(p, 16))
        || plain.strip_prefix("0o").is_some_and(|p| radix(p, 8))
        || plain.strip_prefix("0b").is_some_and(|p| radix(p, 2));
    number || is_timestamp(s) || is_base60(unsigned)
}

/// `2006-1-2`, optionally followed by `T`/`t`/` ` and a time.
fn is_timestamp(s: &str) -> bool {
    let date_len = s.find(['T', 't', ' ']).unwrap_or(s.len());
    let parts: Vec<&str> = s[..date_len].split('-').collect();
    parts.len() == 3
        && parts[0].len() == 4
        && parts.iter().all(|p| !p.is_empty() && p.len() <= 4 && p.chars().all(|c| c.is_ascii_digit()))
        && (date_len == s.len() || s[date_len + 1..].starts_with(|c: char| c.is_ascii_digit()))
}

/// YAML 1.1 sexagesimal numbers such as `1:20` or `190:20:30.15`.
fn is_base60(s: &str) -> bool {
    let mut parts = s.split(':');
    let head = parts.next().unwrap_or_default();
    let rest: Vec<&str> = parts.collect();
    if rest.is_empty() || head.is_empty() || !head.starts_with(|c: char| c.is_ascii_digit()) {
        return false;
    }
    if !head.chars().all(|c| c.is_ascii_digit() || c == '_') {
        return false;
    }
    rest.iter().enumerate().all(|(i, p)| {
        let p = if i + 1 == rest.len() { p.split('.').next().unwrap_or_default() } else { p };
        !p.is_empty() && p.len() <= 2 && p.chars().all(|c| c.is_ascii_digit()) && p.parse::<u32>().is_ok_and(|n| n < 60)
    })
}

fn single_quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c if printable(c) => out.push(c),
            c if (c as u32) <= 0xff => out.push_str(&format!("\\x{:02X}", c as u32)),
            c if (c as u32) <= 0xffff => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push_str(&format!("\\U{:08X}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// A literal block scalar; its lines are indented by `indent`.
fn literal(out: &mut String, s: &str, indent: usize) {
    out.push('|');
    if s.starts_with([' ', '\n']) {
        out.push('2');
    }
    let body = if s.ends_with("\n\n") {
        out.push('+');
        &s[..s.len() - 1]
    } else if let Some(b) = s.strip_suffix('\n') {
        b
    } else {
        out.push('-');
        s
    };
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            pad(out, indent);
            out.push_str(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_print_like_kubectl() {
        let cm = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "data": {"apploglevel": "info", "appdatadir": "/var/data"},
            "metadata": {"name": "cm-appvars", "namespace": "default", "resourceVersion": "571221",
                         "creationTimestamp": "2017-04-14T06:03:36Z", "uid": "190323cb-20d8-11e7-94ec-000c29ac8d83",
                         "annotations": {}},
        });
        assert_eq!(
            to_yaml(&cm),
            "\
apiVersion: v1
data:
  appdatadir: /var/data
  apploglevel: info
kind: ConfigMap
metadata:
  annotations: {}
  creationTimestamp: \"2017-04-14T06:03:36Z\"
  name: cm-appvars
  namespace: default
  resourceVersion: \"571221\"
  uid: 190323cb-20d8-11e7-94ec-000c29ac8d83
"
        );
    }

    #[test]
    fn sequences_sit_under_their_key_without_indent() {
        let pod = json!({"spec": {"containers": [
            {"name": "web", "image": "nginx", "command": ["sh", "-c", "echo hi"], "ports": [{"containerPort": 80}]},
        ], "nodeSelector": null}});
        assert_eq!(
            to_yaml(&pod),
            "\
spec:
  containers:
  - command:
    - sh
    - -c
    - echo hi
    image: nginx
    name: web
    ports:
    - containerPort: 80
  nodeSelector: null
"
        );
    }

    #[test]
    fn strings_are_quoted_only_when_needed() {
        for (s, want) in [
            ("plain text", "plain text"),
            ("", "\"\""),
            ("true", "\"true\""),
            ("yes", "\"yes\""),
            ("1.5", "\"1.5\""),
            ("0x1F", "\"0x1F\""),
            ("1:20", "\"1:20\""),
            ("2024-01-01", "\"2024-01-01\""),
            ("10.254.0.10", "10.254.0.10"),
            ("a: b", "'a: b'"),
            ("it's: here", "'it''s: here'"),
            ("- item", "'- item'"),
            ("-c", "-c"),
            ("*", "'*'"),
            ("trailing ", "'trailing '"),
            ("a #comment", "'a #comment'"),
            ("tab\there", "\"tab\\there\""),
            ("app=web,tier in (a,b)", "app=web,tier in (a,b)"),
            ("80/TCP", "80/TCP"),
        ] {
            let mut out = String::new();
            scalar(&mut out, &Value::String(s.into()), 0);
            assert_eq!(out, want, "{s:?}");
        }
    }

    #[test]
    fn multi_line_strings_are_literal_blocks() {
        let v = json!({"data": {"script": "echo a\necho b\n", "bare": "x\ny", "kept": "x\n\n"}});
        assert_eq!(
            to_yaml(&v),
            "data:\n  bare: |-\n    x\n    y\n  kept: |+\n    x\n\n  script: |\n    echo a\n    echo b\n"
        );
    }

    #[test]
    fn keys_sort_with_numbers_by_value() {
        let mut keys = vec!["a10", "a2", "B", "a", "_x"];
        keys.sort_by(|a, b| key_order(a, b));
        assert_eq!(keys, ["_x", "B", "a", "a2", "a10"]);
    }

    #[test]
    fn output_reads_back_as_the_same_value() {
        let v = json!({
            "s": ["", "x: y", "multi\nline\n", " lead", "#hash", "quote\"s", "back\\slash", "ümlaut", "null", "~"],
            "n": [1, -2, 3.5, true, null, {}, []],
            "nested": [[1, [2, 3]], {"k": {"deep": "v"}}],
            "weird key: x": "v",
            "123": "numeric key",
        });
        let text = to_yaml(&v);
        let back: Value = serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(back, v, "{text}");
    }
}
