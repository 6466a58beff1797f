//! Field checks many kinds share: number ranges, ports, names, enumerated
//! values, label maps and label selectors. Each returns the causes it finds
//! (empty when the field is fine), with the field path it was given.

use super::causes::{invalid_value, required_because};
use super::{forbidden, invalid, not_supported, required, syntax};
use crate::error::Cause;
use crate::selector::{validate_label_key, validate_label_value};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// Kubernetes' message for negative numbers.
pub const NEGATIVE_MSG: &str = "must be greater than or equal to 0";

/// `value >= 0`.
pub fn non_negative(field: &str, value: impl Into<i64>) -> Vec<Cause> {
    at_least(field, value, 0)
}

/// `value >= min` ("must be greater than or equal to min").
pub fn at_least(field: &str, value: impl Into<i64>, min: i64) -> Vec<Cause> {
    let value = value.into();
    if value < min {
        vec![invalid_value(field, value, &format!("must be greater than or equal to {min}"))]
    } else {
        Vec::new()
    }
}

/// `value > 0` ("must be greater than 0").
pub fn positive(field: &str, value: impl Into<i64>) -> Vec<Cause> {
    let value = value.into();
    if value <= 0 { vec![invalid_value(field, value, "must be greater than 0")] } else { Vec::new() }
}

/// A port number in 1..=65535.
pub fn port_number(field: &str, port: i32) -> Vec<Cause> {
    if (1..=65535).contains(&port) { Vec::new() } else { vec![invalid_value(field, port, syntax::PORT_RANGE_MSG)] }
}

/// A port given by number (1..=65535) or by IANA service name.
pub fn port_num_or_name(field: &str, port: &IntOrString) -> Vec<Cause> {
    match port {
        IntOrString::Int(n) => port_number(field, *n),
        IntOrString::String(name) => formatted(field, name, syntax::port_name(name)),
    }
}

/// One `Invalid value` cause per problem a syntax check found.
pub fn formatted(field: &str, value: &str, problems: Vec<String>) -> Vec<Cause> {
    problems.into_iter().map(|why| invalid(field, value, &why)).collect()
}

/// A DNS-1123 label.
pub fn dns_label(field: &str, value: &str) -> Vec<Cause> {
    formatted(field, value, syntax::dns1123_label(value))
}

/// A DNS-1123 subdomain.
pub fn dns_subdomain(field: &str, value: &str) -> Vec<Cause> {
    formatted(field, value, syntax::dns1123_subdomain(value))
}

/// An enumerated value: `Required value` when empty, `Unsupported value`
/// when not one of `supported`.
pub fn one_of(field: &str, value: &str, supported: &[&str]) -> Vec<Cause> {
    if value.is_empty() {
        vec![required(field)]
    } else if !supported.contains(&value) {
        vec![not_supported(field, value, supported)]
    } else {
        Vec::new()
    }
}

/// A map of labels (or a selector map, or a node selector): every key a
/// qualified name, every value a label value.
pub fn labels(map: Option<&BTreeMap<String, String>>, field: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (k, v) in map.into_iter().flatten() {
        if let Err(why) = validate_label_key(k) {
            causes.push(invalid(field, k, &why));
        }
        causes.extend(label_value(field, v));
    }
    causes
}

/// A label key (a qualified name such as `app` or `example.com/tier`).
pub fn label_key(field: &str, key: &str) -> Vec<Cause> {
    match validate_label_key(key) {
        Ok(()) => Vec::new(),
        Err(why) => vec![invalid(field, key, &why)],
    }
}

/// A label value.
pub fn label_value(field: &str, value: &str) -> Vec<Cause> {
    match validate_label_value(value) {
        Ok(()) => Vec::new(),
        Err(why) => {
            // The selector module's message starts with the value itself.
            let prefix = format!("{value:?}: ");
            vec![invalid(field, value, why.strip_prefix(&prefix).unwrap_or(&why))]
        }
    }
}

/// A `metav1.LabelSelector`: matchLabels as labels, matchExpressions with
/// valid keys, known operators and values that fit the operator.
pub fn label_selector(selector: &LabelSelector, field: &str) -> Vec<Cause> {
    let mut causes = labels(selector.match_labels.as_ref(), &format!("{field}.matchLabels"));
    for (i, e) in selector.match_expressions.iter().flatten().enumerate() {
        let path = format!("{field}.matchExpressions[{i}]");
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => causes.push(required_because(
                format!("{path}.values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if !values.is_empty() => causes.push(forbidden(
                format!("{path}.values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => causes.push(invalid(format!("{path}.operator"), other, "not a valid selector operator")),
        }
        causes.extend(label_key(&format!("{path}.key"), &e.key));
        for (j, v) in values.iter().enumerate() {
            causes.extend(label_value(&format!("{path}.values[{j}]"), v));
        }
    }
    causes
}

/// Whether a label selector has no requirements at all.
pub fn selector_is_empty(selector: &LabelSelector) -> bool {
    selector.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
        && selector.match_expressions.as_ref().is_none_or(Vec::is_empty)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    #[test]
    fn ranges_name_the_value_unquoted() {
        assert_eq!(
            non_negative("spec.replicas", -1)[0].message,
            "Invalid value: -1: must be greater than or equal to 0"
        );
        assert!(non_negative("spec.replicas", 0).is_empty());
        assert_eq!(port_number("p", 70000)[0].message, "Invalid value: 70000: must be between 1 and 65535, inclusive");
        assert!(port_num_or_name("p", &IntOrString::String("http".into())).is_empty());
        assert_eq!(port_num_or_name("p", &IntOrString::String("HTTP".into())).len(), 2);
    }

    #[test]
    fn enumerations_are_required_then_supported() {
        assert_eq!(one_of("f", "", &["A"])[0].message, "Required value");
        assert_eq!(
            one_of("f", "B", &["A", "C"])[0].message,
            "Unsupported value: \"B\": supported values: \"A\", \"C\""
        );
        assert!(one_of("f", "A", &["A"]).is_empty());
    }

    #[test]
    fn label_selectors_check_operators_and_values() {
        let sel = LabelSelector {
            match_labels: Some(BTreeMap::from([("app".into(), "bad value".into())])),
            match_expressions: Some(vec![
                LabelSelectorRequirement { key: "tier".into(), operator: "In".into(), values: None },
                LabelSelectorRequirement { key: "x".into(), operator: "Exists".into(), values: Some(vec!["a".into()]) },
                LabelSelectorRequirement { key: "y".into(), operator: "Near".into(), values: None },
            ]),
        };
        let fields: Vec<String> = label_selector(&sel, "spec.selector").into_iter().map(|c| c.field).collect();
        assert_eq!(
            fields,
            [
                "spec.selector.matchLabels",
                "spec.selector.matchExpressions[0].values",
                "spec.selector.matchExpressions[1].values",
                "spec.selector.matchExpressions[2].operator",
            ]
        );
        assert!(selector_is_empty(&LabelSelector::default()));
    }
}
