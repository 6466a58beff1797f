//! Where pods may run: node affinity and node selector terms, pod
//! (anti-)affinity, tolerations, node taints and topology spread
//! constraints, checked the way Kubernetes checks them.

use crate::error::Cause;
use crate::validation::causes::{duplicate_value, invalid_value, required_because};
use crate::validation::checks::{dns_label, dns_subdomain, label_key, label_selector, label_value, one_of};
use crate::validation::{forbidden, invalid, not_supported};
use k8s_openapi::api::core::v1::{
    Affinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PodAffinityTerm, Taint, Toleration,
    TopologySpreadConstraint, WeightedPodAffinityTerm,
};
use std::collections::BTreeSet;

/// The effects a taint may have.
pub const TAINT_EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];

/// Node affinity and pod (anti-)affinity at `path` (`spec.affinity`).
pub(crate) fn validate_affinity(a: &Affinity, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let Some(na) = &a.node_affinity {
        let p = format!("{path}.nodeAffinity");
        if let Some(required) = &na.required_during_scheduling_ignored_during_execution {
            causes.extend(validate_node_selector(
                required,
                &format!("{p}.requiredDuringSchedulingIgnoredDuringExecution"),
            ));
        }
        for (i, term) in na.preferred_during_scheduling_ignored_during_execution.iter().flatten().enumerate() {
            let tp = format!("{p}.preferredDuringSchedulingIgnoredDuringExecution[{i}]");
            causes.extend(weight(&format!("{tp}.weight"), term.weight));
            causes.extend(node_selector_term(&term.preference, &format!("{tp}.preference")));
        }
    }
    let pod_affinities = [
        (
            "podAffinity",
            a.pod_affinity.as_ref().map(|p| {
                (
                    &p.required_during_scheduling_ignored_during_execution,
                    &p.preferred_during_scheduling_ignored_during_execution,
                )
            }),
        ),
        (
            "podAntiAffinity",
            a.pod_anti_affinity.as_ref().map(|p| {
                (
                    &p.required_during_scheduling_ignored_during_execution,
                    &p.preferred_during_scheduling_ignored_during_execution,
                )
            }),
        ),
    ];
    for (name, terms) in pod_affinities {
        let Some((required, preferred)) = terms else { continue };
        let p = format!("{path}.{name}");
        for (i, term) in required.iter().flatten().enumerate() {
            causes.extend(pod_affinity_term(term, &format!("{p}.requiredDuringSchedulingIgnoredDuringExecution[{i}]")));
        }
        for (i, WeightedPodAffinityTerm { pod_affinity_term: term, weight: w }) in
            preferred.iter().flatten().enumerate()
        {
            let tp = format!("{p}.preferredDuringSchedulingIgnoredDuringExecution[{i}]");
            causes.extend(weight(&format!("{tp}.weight"), *w));
            causes.extend(pod_affinity_term(term, &format!("{tp}.podAffinityTerm")));
        }
    }
    causes
}

fn weight(path: &str, w: i32) -> Vec<Cause> {
    if (1..=100).contains(&w) { Vec::new() } else { vec![invalid_value(path, w, "must be in the range 1-100")] }
}

/// A node selector (required node affinity, a volume's node affinity):
/// at least one term, each with well-formed requirements.
pub fn validate_node_selector(selector: &NodeSelector, path: &str) -> Vec<Cause> {
    let terms_path = format!("{path}.nodeSelectorTerms");
    if selector.node_selector_terms.is_empty() {
        return vec![required_because(terms_path, "must have at least one node selector term")];
    }
    let mut causes = Vec::new();
    for (i, term) in selector.node_selector_terms.iter().enumerate() {
        causes.extend(node_selector_term(term, &format!("{terms_path}[{i}]")));
    }
    causes
}

fn node_selector_term(term: &NodeSelectorTerm, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (i, req) in term.match_expressions.iter().flatten().enumerate() {
        causes.extend(node_selector_requirement(req, &format!("{path}.matchExpressions[{i}]")));
    }
    for (i, req) in term.match_fields.iter().flatten().enumerate() {
        let p = format!("{path}.matchFields[{i}]");
        let values = req.values.as_deref().unwrap_or_default();
        match req.operator.as_str() {
            "In" | "NotIn" if values.len() != 1 => causes.push(required_because(
                format!("{p}.values"),
                "must be only one value when `operator` is 'In' or 'NotIn' for node field selector",
            )),
            "In" | "NotIn" => {}
            other => causes.push(invalid(format!("{p}.operator"), other, "not a valid selector operator")),
        }
        if req.key != "metadata.name" {
            causes.push(invalid(format!("{p}.key"), &req.key, "not a valid field selector key"));
        } else {
            for (j, v) in values.iter().enumerate() {
                causes.extend(dns_subdomain(&format!("{p}.values[{j}]"), v));
            }
        }
    }
    causes
}

fn node_selector_requirement(req: &NodeSelectorRequirement, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    let values = req.values.as_deref().unwrap_or_default();
    let values_path = format!("{path}.values");
    match req.operator.as_str() {
        "In" | "NotIn" if values.is_empty() => {
            causes.push(required_because(&values_path, "must be specified when `operator` is 'In' or 'NotIn'"));
        }
        "Exists" | "DoesNotExist" if !values.is_empty() => {
            causes.push(forbidden(&values_path, "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"));
        }
        "Gt" | "Lt" if values.len() != 1 => {
            causes
                .push(required_because(&values_path, "must be specified single value when `operator` is 'Lt' or 'Gt'"));
        }
        "Gt" | "Lt" if values[0].parse::<i64>().is_err() => {
            causes.push(invalid(format!("{values_path}[0]"), &values[0], "must be an integer"));
        }
        "In" | "NotIn" | "Exists" | "DoesNotExist" | "Gt" | "Lt" => {}
        other => causes.push(invalid(format!("{path}.operator"), other, "not a valid selector operator")),
    }
    causes.extend(label_key(&format!("{path}.key"), &req.key));
    for (i, v) in values.iter().enumerate() {
        causes.extend(label_value(&format!("{values_path}[{i}]"), v));
    }
    causes
}

fn pod_affinity_term(term: &PodAffinityTerm, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let Some(ls) = &term.label_selector {
        causes.extend(label_selector(ls, &format!("{path}.labelSelector")));
    }
    if let Some(ns) = &term.namespace_selector {
        causes.extend(label_selector(ns, &format!("{path}.namespaceSelector")));
    }
    for name in term.namespaces.iter().flatten() {
        causes.extend(dns_label(&format!("{path}.namespace"), name));
    }
    let key_path = format!("{path}.topologyKey");
    if term.topology_key.is_empty() {
        causes.push(required_because(&key_path, "can not be empty"));
    } else {
        causes.extend(label_key(&key_path, &term.topology_key));
    }
    causes
}

/// Tolerations at `path` (`spec.tolerations`).
pub fn validate_tolerations(tolerations: &[Toleration], path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (i, t) in tolerations.iter().enumerate() {
        let idx = format!("{path}[{i}]");
        let key = t.key.as_deref().unwrap_or_default();
        let operator = t.operator.as_deref().unwrap_or_default();
        let effect = t.effect.as_deref().unwrap_or_default();
        let value = t.value.as_deref().unwrap_or_default();
        if !key.is_empty() {
            causes.extend(label_key(&format!("{idx}.key"), key));
        }
        if key.is_empty() && operator != "Exists" {
            causes.push(invalid(
                format!("{idx}.operator"),
                operator,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if t.toleration_seconds.is_some() && effect != "NoExecute" {
            causes.push(invalid(
                format!("{idx}.effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match operator {
            "" | "Equal" => causes.extend(label_value(&format!("{idx}.operator"), value)),
            "Exists" if !value.is_empty() => {
                causes.push(invalid(
                    format!("{idx}.operator"),
                    value,
                    "value must be empty when `operator` is 'Exists'",
                ));
            }
            "Exists" => {}
            other => causes.push(not_supported(format!("{idx}.operator"), other, &["Equal", "Exists"])),
        }
        if !effect.is_empty() && !TAINT_EFFECTS.contains(&effect) {
            causes.push(not_supported(format!("{idx}.effect"), effect, TAINT_EFFECTS));
        }
    }
    causes
}

/// Node taints at `path` (`spec.taints`): valid key and value, a known
/// effect, unique by key and effect.
pub fn validate_taints(taints: &[Taint], path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, t) in taints.iter().enumerate() {
        let idx = format!("{path}[{i}]");
        causes.extend(label_key(&format!("{idx}.key"), &t.key));
        causes.extend(label_value(&format!("{idx}.value"), t.value.as_deref().unwrap_or_default()));
        causes.extend(one_of(&format!("{idx}.effect"), &t.effect, TAINT_EFFECTS));
        if !seen.insert((t.key.as_str(), t.effect.as_str())) {
            let mut c = duplicate_value(&idx, format!("{}:{}", t.key, t.effect));
            c.message.push_str(": taints must be unique by key and effect pair");
            causes.push(c);
        }
    }
    causes
}

/// Topology spread constraints at `path`.
pub(crate) fn validate_topology_spread(constraints: &[TopologySpreadConstraint], path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (i, c) in constraints.iter().enumerate() {
        let idx = format!("{path}[{i}]");
        if c.max_skew <= 0 {
            causes.push(invalid_value(format!("{idx}.maxSkew"), c.max_skew, "must be greater than zero"));
        }
        if c.topology_key.is_empty() {
            causes.push(required_because(format!("{idx}.topologyKey"), "can not be empty"));
        }
        let actions = ["DoNotSchedule", "ScheduleAnyway"];
        if !actions.contains(&c.when_unsatisfiable.as_str()) {
            causes.push(not_supported(format!("{idx}.whenUnsatisfiable"), &c.when_unsatisfiable, &actions));
        }
        if constraints[i + 1..]
            .iter()
            .any(|o| o.topology_key == c.topology_key && o.when_unsatisfiable == c.when_unsatisfiable)
        {
            causes.push(duplicate_value(
                format!("{idx}.{{topologyKey, whenUnsatisfiable}}"),
                format!("{{{}, {}}}", c.topology_key, c.when_unsatisfiable),
            ));
        }
        if let Some(min) = c.min_domains {
            if min <= 0 {
                causes.push(invalid_value(format!("{idx}.minDomains"), min, "must be greater than zero"));
            }
            if c.when_unsatisfiable != "DoNotSchedule" {
                causes.push(invalid_value(
                    format!("{idx}.minDomains"),
                    min,
                    &format!(
                        "can only use minDomains if whenUnsatisfiable=DoNotSchedule, not {}",
                        c.when_unsatisfiable
                    ),
                ));
            }
        }
        for (name, policy) in
            [("nodeAffinityPolicy", &c.node_affinity_policy), ("nodeTaintsPolicy", &c.node_taints_policy)]
        {
            if let Some(p) = policy {
                causes.extend(one_of(&format!("{idx}.{name}"), p, &["Honor", "Ignore"]));
            }
        }
        if let Some(ls) = &c.label_selector {
            causes.extend(label_selector(ls, &format!("{idx}.labelSelector")));
        }
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NodeAffinity;

    fn messages(causes: &[Cause]) -> Vec<String> {
        causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect()
    }

    fn req(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn node_affinity_operators_check_their_values() {
        let a = Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![
                            req("zone", "In", &[]),
                            req("ssd", "Exists", &["x"]),
                            req("cores", "Gt", &["a"]),
                            req("cores", "Lt", &["1", "2"]),
                            req("zone", "Near", &["a"]),
                            req("zone", "In", &["a"]),
                        ]),
                        match_fields: None,
                    }],
                }),
                preferred_during_scheduling_ignored_during_execution: None,
            }),
            ..Default::default()
        };
        let p = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions";
        assert_eq!(
            messages(&validate_affinity(&a, "spec.affinity")),
            [
                format!("{p}[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"),
                format!("{p}[1].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"),
                format!("{p}[2].values[0]: Invalid value: \"a\": must be an integer"),
                format!(
                    "{p}[3].values: Required value: must be specified single value when `operator` is 'Lt' or 'Gt'"
                ),
                format!("{p}[4].operator: Invalid value: \"Near\": not a valid selector operator"),
            ]
        );
        let empty = NodeSelector { node_selector_terms: vec![] };
        assert_eq!(
            validate_node_selector(&empty, "x")[0].message,
            "Required value: must have at least one node selector term"
        );
    }

    #[test]
    fn tolerations_check_operator_value_and_effect() {
        let t = |key: &str, op: &str, value: &str, effect: &str| Toleration {
            key: Some(key.into()),
            operator: Some(op.into()),
            value: Some(value.into()),
            effect: Some(effect.into()),
            toleration_seconds: None,
        };
        let mut with_seconds = t("k", "Equal", "v", "NoSchedule");
        with_seconds.toleration_seconds = Some(10);
        let list = vec![
            t("k", "Exists", "", ""),
            t("k", "Exists", "v", "NoSchedule"),
            t("k", "Maybe", "", "NoSchedule"),
            t("", "Equal", "", ""),
            t("k", "Equal", "v", "Sometimes"),
            with_seconds,
        ];
        assert_eq!(
            messages(&validate_tolerations(&list, "spec.tolerations")),
            [
                "spec.tolerations[1].operator: Invalid value: \"v\": value must be empty when `operator` is 'Exists'",
                "spec.tolerations[2].operator: Unsupported value: \"Maybe\": supported values: \"Equal\", \"Exists\"",
                "spec.tolerations[3].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
                "spec.tolerations[4].effect: Unsupported value: \"Sometimes\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\"",
                "spec.tolerations[5].effect: Invalid value: \"NoSchedule\": effect must be 'NoExecute' when `tolerationSeconds` is set",
            ]
        );
    }

    #[test]
    fn taints_need_a_known_effect_and_unique_key_effect_pairs() {
        let t = |key: &str, effect: &str| Taint { key: key.into(), effect: effect.into(), ..Default::default() };
        let causes =
            validate_taints(&[t("a", "NoSchedule"), t("a", "NoSchedule"), t("b", ""), t("c", "Never")], "spec.taints");
        assert_eq!(
            messages(&causes),
            [
                "spec.taints[1]: Duplicate value: \"a:NoSchedule\": taints must be unique by key and effect pair",
                "spec.taints[2].effect: Required value",
                "spec.taints[3].effect: Unsupported value: \"Never\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\"",
            ]
        );
    }
}
