//! Cluster-level and bookkeeping objects: Namespaces, Nodes, Events, Leases,
//! Bindings, LimitRanges and ResourceQuotas.

use super::scheduling::validate_taints;
use crate::error::Cause;
use crate::kinds::Strategy;
use crate::quantity::Quantity;
use crate::validation::causes::{immutable, invalid_value, json, required_because};
use crate::validation::checks::{formatted, label_key, non_negative, positive};
use crate::validation::resources::{self, ResourceList};
use crate::validation::{duplicate, forbidden, invalid, not_supported, required, syntax};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Binding, Event, LimitRange, LimitRangeItem, Namespace, Node, ResourceQuota};
use std::collections::{BTreeMap, BTreeSet};

/// The finalizer every namespace starts with: the namespace controller
/// removes it once the namespace's contents are gone.
pub const NAMESPACE_FINALIZER: &str = "kubernetes";

/// The label carrying a namespace's own name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

impl Strategy for Namespace {
    /// Adds the `kubernetes.io/metadata.name` label, the `kubernetes`
    /// finalizer and phase Active. The finalizer is added only when
    /// `spec.finalizers` is absent (not when it is an empty list), so the
    /// namespace controller can remove it by writing `[]`.
    fn default_fields(&mut self) {
        if let Some(name) = self.metadata.name.clone().filter(|n| !n.is_empty()) {
            self.metadata.labels.get_or_insert_with(Default::default).insert(NAMESPACE_NAME_LABEL.into(), name);
        }
        let deleting = self.metadata.deletion_timestamp.is_some();
        let spec = self.spec.get_or_insert_with(Default::default);
        if spec.finalizers.is_none() && !deleting {
            spec.finalizers = Some(vec![NAMESPACE_FINALIZER.into()]);
        }
        let status = self.status.get_or_insert_with(Default::default);
        if status.phase.as_deref().is_none_or(str::is_empty) {
            status.phase = Some("Active".into());
        }
    }

    fn validate(&self) -> Vec<Cause> {
        let mut causes = Vec::new();
        let finalizers = self.spec.as_ref().and_then(|s| s.finalizers.as_deref()).unwrap_or_default();
        for (i, f) in finalizers.iter().enumerate() {
            let path = format!("spec.finalizers[{i}]");
            let problems = label_key(&path, f);
            if !problems.is_empty() {
                causes.extend(problems);
            } else if !f.contains('/') && f != NAMESPACE_FINALIZER {
                causes.push(invalid(path, f, "name is neither a standard finalizer name nor is it fully qualified"));
            }
        }
        let phase = self.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or_default();
        if !phase.is_empty() && !["Active", "Terminating"].contains(&phase) {
            causes.push(not_supported("status.phase", phase, &["Active", "Terminating"]));
        }
        causes
    }
}

impl Strategy for Node {
    fn default_fields(&mut self) {
        if let Some(spec) = &mut self.spec {
            // podCIDR and podCIDRs[0] say the same thing; keep them in step.
            let cidr = spec.pod_cidr.clone().unwrap_or_default();
            let cidrs_empty = spec.pod_cidrs.as_ref().is_none_or(Vec::is_empty);
            if !cidr.is_empty() && cidrs_empty {
                spec.pod_cidrs = Some(vec![cidr]);
            } else if cidr.is_empty() && !cidrs_empty {
                spec.pod_cidr = spec.pod_cidrs.as_ref().and_then(|c| c.first().cloned());
            }
        }
        if let Some(status) = &mut self.status
            && status.allocatable.is_none()
        {
            status.allocatable.clone_from(&status.capacity);
        }
    }

    fn validate(&self) -> Vec<Cause> {
        let mut causes = Vec::new();
        if let Some(spec) = &self.spec {
            if let Some(cidr) = spec.pod_cidr.as_deref().filter(|c| !c.is_empty()) {
                causes.extend(formatted("spec.podCIDR", cidr, syntax::cidr(cidr)));
            }
            let cidrs = spec.pod_cidrs.as_deref().unwrap_or_default();
            let mut seen = BTreeSet::new();
            for (i, c) in cidrs.iter().enumerate() {
                let path = format!("spec.podCIDRs[{i}]");
                causes.extend(formatted(&path, c, syntax::cidr(c)));
                if !seen.insert(c) {
                    causes.push(duplicate(path, c));
                }
            }
            let family = |c: &str| c.parse::<crate::cidr::Cidr>().ok().map(|c| c.is_ipv4());
            let dual = cidrs.len() == 2 && family(&cidrs[0]).zip(family(&cidrs[1])).is_some_and(|(a, b)| a != b);
            if cidrs.len() > 2 || (cidrs.len() == 2 && !dual && seen.len() == 2) {
                causes.push(invalid_value(
                    "spec.podCIDRs",
                    json(&cidrs),
                    "may specify no more than one CIDR for each IP family",
                ));
            }
            if let Some(taints) = &spec.taints {
                causes.extend(validate_taints(taints, "spec.taints"));
            }
        }
        if let Some(status) = &self.status {
            for (field, list) in [("capacity", &status.capacity), ("allocatable", &status.allocatable)] {
                for (name, q) in list.iter().flatten() {
                    causes.extend(resources::quantity(&format!("status.{field}[{name}]"), name, q).1);
                }
            }
        }
        causes
    }

    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        let mut causes = self.validate();
        let (new, old) = (self.spec.clone().unwrap_or_default(), old.spec.clone().unwrap_or_default());
        let old_cidrs = old.pod_cidrs.unwrap_or_default();
        if !old_cidrs.is_empty() && new.pod_cidrs.unwrap_or_default() != old_cidrs {
            causes.push(forbidden("spec.podCIDRs", "node updates may not change podCIDR except from \"\" to valid"));
        }
        let old_provider = old.provider_id.unwrap_or_default();
        if !old_provider.is_empty() && new.provider_id.unwrap_or_default() != old_provider {
            causes
                .push(forbidden("spec.providerID", "node updates may not change providerID except from \"\" to valid"));
        }
        if new.external_id != old.external_id {
            causes.push(forbidden("spec.externalID", "may not be updated"));
        }
        causes
    }
}

impl Strategy for Event {
    fn validate(&self) -> Vec<Cause> {
        let mut causes = Vec::new();
        let o = &self.involved_object;
        let (kind, name) = (o.kind.as_deref().unwrap_or_default(), o.name.as_deref().unwrap_or_default());
        if kind.is_empty() && name.is_empty() {
            causes.push(required_because("involvedObject", "must name the object the event is about (kind and name)"));
        }
        let (event_ns, object_ns) =
            (self.metadata.namespace.as_deref().unwrap_or_default(), o.namespace.as_deref().unwrap_or_default());
        if !event_ns.is_empty() && !object_ns.is_empty() && event_ns != object_ns {
            causes.push(invalid("involvedObject.namespace", object_ns, "does not match event.namespace"));
        }
        if let Some(count) = self.count {
            causes.extend(non_negative("count", count));
        }
        causes
    }
}

impl Strategy for Lease {
    fn validate(&self) -> Vec<Cause> {
        let mut causes = Vec::new();
        if let Some(spec) = &self.spec {
            if let Some(d) = spec.lease_duration_seconds {
                causes.extend(positive("spec.leaseDurationSeconds", d));
            }
            if let Some(t) = spec.lease_transitions {
                causes.extend(non_negative("spec.leaseTransitions", t));
            }
        }
        causes
    }
}

impl Strategy for Binding {
    fn validate(&self) -> Vec<Cause> {
        let mut causes = Vec::new();
        let kind = self.target.kind.as_deref().unwrap_or_default();
        if !kind.is_empty() && kind != "Node" {
            causes.push(not_supported("target.kind", kind, &["Node", "<empty>"]));
        }
        if self.target.name.as_deref().is_none_or(str::is_empty) {
            causes.push(required("target.name"));
        }
        causes
    }
}

const LIMIT_TYPES: &[&str] = &["Container", "PersistentVolumeClaim", "Pod"];

impl Strategy for LimitRange {
    /// For Container limits: the default limit falls back to max, the
    /// default request to the default limit, then to min.
    fn default_fields(&mut self) {
        for item in self.spec.iter_mut().flat_map(|s| s.limits.iter_mut()) {
            if item.type_ != "Container" {
                continue;
            }
            let max = item.max.clone().unwrap_or_default();
            let min = item.min.clone().unwrap_or_default();
            let default = item.default.get_or_insert_with(Default::default);
            for (k, v) in max {
                default.entry(k).or_insert(v);
            }
            let default = default.clone();
            let request = item.default_request.get_or_insert_with(Default::default);
            for (k, v) in default.into_iter().chain(min) {
                request.entry(k).or_insert(v);
            }
            // Empty lists are left out, as Kubernetes' JSON leaves them out.
            for list in [&mut item.default, &mut item.default_request] {
                if list.as_ref().is_some_and(BTreeMap::is_empty) {
                    *list = None;
                }
            }
        }
    }

    fn validate(&self) -> Vec<Cause> {
        let mut causes = Vec::new();
        let mut types = BTreeSet::new();
        for (i, item) in self.spec.iter().flat_map(|s| s.limits.iter()).enumerate() {
            causes.extend(validate_limit_item(item, &format!("spec.limits[{i}]")));
            if !types.insert(item.type_.as_str()) {
                causes.push(duplicate(format!("spec.limits[{i}].type"), &item.type_));
            }
        }
        causes
    }
}

fn validate_limit_item(item: &LimitRangeItem, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    let type_path = format!("{path}.type");
    let type_errors = label_key(&type_path, &item.type_);
    if !type_errors.is_empty() {
        causes.extend(type_errors);
    } else if !item.type_.contains('/') && !LIMIT_TYPES.contains(&item.type_.as_str()) {
        causes.push(invalid(&type_path, &item.type_, "must be a standard limit type or fully qualified"));
    }
    let name_check: fn(&str, &str) -> Vec<Cause> = if matches!(item.type_.as_str(), "Pod" | "Container") {
        resources::container_resource_name
    } else {
        resources::resource_name
    };
    let pod = item.type_ == "Pod";
    for (field, set) in [("default", &item.default), ("defaultRequest", &item.default_request)] {
        if pod && set.as_ref().is_some_and(|m| !m.is_empty()) {
            causes.push(forbidden(format!("{path}.{field}"), "may not be specified when `type` is 'Pod'"));
        }
    }
    let list =
        |field: &str, set: &Option<ResourceList>, causes: &mut Vec<Cause>| -> BTreeMap<String, (Quantity, String)> {
            let parsed = resources::resource_list(set.as_ref(), &format!("{path}.{field}"), name_check, causes);
            parsed
                .into_iter()
                .map(|(k, q)| {
                    let raw = set.as_ref().and_then(|m| m.get(&k)).map(|q| q.0.clone()).unwrap_or_default();
                    (k, (q, raw))
                })
                .collect()
        };
    let max = list("max", &item.max, &mut causes);
    let min = list("min", &item.min, &mut causes);
    let (default, default_request) = if pod {
        (BTreeMap::new(), BTreeMap::new())
    } else {
        (list("default", &item.default, &mut causes), list("defaultRequest", &item.default_request, &mut causes))
    };
    let ratio = list("maxLimitRequestRatio", &item.max_limit_request_ratio, &mut causes);
    if item.type_ == "PersistentVolumeClaim" && !min.contains_key("storage") && !max.contains_key("storage") {
        causes.push(required_because(
            format!("{path}.limits"),
            "either minimum or maximum storage value is required, but neither was provided",
        ));
    }
    let keys: BTreeSet<&String> =
        max.keys().chain(min.keys()).chain(default.keys()).chain(default_request.keys()).chain(ratio.keys()).collect();
    for k in keys {
        let (mn, mx, d, dr) = (min.get(k), max.get(k), default.get(k), default_request.get(k));
        let mut check = |cond: bool, field: &str, shown: &str, why: String| {
            if cond {
                causes.push(invalid(format!("{path}.{field}[{k}]"), shown, &why));
            }
        };
        if let (Some((a, ar)), Some((b, br))) = (mn, mx) {
            check(a > b, "min", ar, format!("min value {ar} is greater than max value {br}"));
        }
        if let (Some((r, rr)), Some((a, ar))) = (dr, mn) {
            check(a > r, "defaultRequest", rr, format!("min value {ar} is greater than default request value {rr}"));
        }
        if let (Some((r, rr)), Some((b, br))) = (dr, mx) {
            check(r > b, "defaultRequest", rr, format!("default request value {rr} is greater than max value {br}"));
        }
        if let (Some((r, rr)), Some((v, vr))) = (dr, d) {
            check(
                r > v,
                "defaultRequest",
                rr,
                format!("default request value {rr} is greater than default limit value {vr}"),
            );
        }
        if let (Some((v, vr)), Some((a, ar))) = (d, mn) {
            check(a > v, "default", ar, format!("min value {ar} is greater than default value {vr}"));
        }
        if let (Some((v, vr)), Some((b, br))) = (d, mx) {
            check(v > b, "default", br, format!("default value {vr} is greater than max value {br}"));
        }
        if let Some((r, rr)) = ratio.get(k) {
            check(*r < Quantity::from_int(1), "maxLimitRequestRatio", rr, format!("ratio {rr} is less than 1"));
        }
    }
    causes
}

const QUOTA_SCOPES: &[&str] = &[
    "BestEffort",
    "CrossNamespacePodAffinity",
    "NotBestEffort",
    "NotTerminating",
    "PriorityClass",
    "Terminating",
    "VolumeAttributesClass",
];

fn conflicting(scopes: &BTreeSet<&str>) -> bool {
    [("BestEffort", "NotBestEffort"), ("Terminating", "NotTerminating")]
        .iter()
        .any(|(a, b)| scopes.contains(a) && scopes.contains(b))
}

impl Strategy for ResourceQuota {
    fn validate(&self) -> Vec<Cause> {
        let mut causes = Vec::new();
        let Some(spec) = &self.spec else { return causes };
        resources::resource_list(spec.hard.as_ref(), "spec.hard", resources::quota_resource_name, &mut causes);
        let scopes = spec.scopes.as_deref().unwrap_or_default();
        if scopes.iter().any(|s| !QUOTA_SCOPES.contains(&s.as_str())) {
            causes.push(invalid_value("spec.scopes", json(&scopes), "unsupported scope"));
        }
        if conflicting(&scopes.iter().map(String::as_str).collect()) {
            causes.push(invalid_value("spec.scopes", json(&scopes), "conflicting scopes"));
        }
        let exprs = spec.scope_selector.as_ref().and_then(|s| s.match_expressions.as_deref()).unwrap_or_default();
        for (i, e) in exprs.iter().enumerate() {
            let p = format!("spec.scopeSelector.matchExpressions[{i}]");
            if !QUOTA_SCOPES.contains(&e.scope_name.as_str()) {
                causes.push(invalid(format!("{p}.scopeName"), &e.scope_name, "unsupported scope"));
            }
            let values = e.values.as_deref().unwrap_or_default();
            match e.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => causes.push(required_because(
                    format!("{p}.values"),
                    "must be at least one value when `operator` is 'In' or 'NotIn' for scope selector",
                )),
                "Exists" | "DoesNotExist" if !values.is_empty() => causes.push(invalid_value(
                    format!("{p}.values"),
                    json(&values),
                    "must be no value when `operator` is 'Exist' or 'DoesNotExist' for scope selector",
                )),
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                other => causes.push(invalid(format!("{p}.operator"), other, "not a valid selector operator")),
            }
        }
        if conflicting(&exprs.iter().map(|e| e.scope_name.as_str()).collect()) {
            causes.push(invalid_value("spec.scopeSelector.matchExpressions", json(&exprs), "conflicting scopes"));
        }
        causes
    }

    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        let mut causes = self.validate();
        let scopes = |q: &ResourceQuota| -> BTreeSet<String> {
            q.spec.as_ref().and_then(|s| s.scopes.clone()).unwrap_or_default().into_iter().collect()
        };
        if scopes(self) != scopes(old) {
            causes.push(immutable("spec.scopes", json(&self.spec.as_ref().and_then(|s| s.scopes.clone()))));
        }
        causes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;
    use serde_json::{Value, json};

    fn object<T: Strategy + DeserializeOwned>(v: Value) -> T {
        let mut o: T = serde_json::from_value(v).expect("decodes");
        o.default_fields();
        o
    }

    fn messages(causes: &[Cause]) -> Vec<String> {
        causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect()
    }

    #[test]
    fn namespace_gets_its_finalizer_phase_and_name_label() {
        let ns: Namespace = object(json!({"metadata": {"name": "team"}}));
        assert_eq!(ns.spec.as_ref().and_then(|s| s.finalizers.clone()), Some(vec!["kubernetes".to_string()]));
        assert_eq!(ns.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Active"));
        assert_eq!(
            ns.metadata.labels.as_ref().and_then(|l| l.get(NAMESPACE_NAME_LABEL)).map(String::as_str),
            Some("team")
        );
        assert!(ns.validate().is_empty());
        let finalized: Namespace = object(json!({"metadata": {"name": "team"}, "spec": {"finalizers": []}}));
        assert_eq!(finalized.spec.as_ref().and_then(|s| s.finalizers.clone()), Some(vec![]));
        let odd: Namespace = object(json!({"metadata": {"name": "team"}, "spec": {"finalizers": ["cleanup"]}}));
        assert_eq!(
            messages(&odd.validate()),
            [
                "spec.finalizers[0]: Invalid value: \"cleanup\": name is neither a standard finalizer name nor is it fully qualified"
            ]
        );
    }

    #[test]
    fn node_pod_cidr_must_parse_and_may_not_change() {
        let node: Node = object(json!({"metadata": {"name": "n"}, "spec": {"podCIDR": "10.244.1.0/24"}}));
        assert_eq!(node.spec.as_ref().and_then(|s| s.pod_cidrs.clone()), Some(vec!["10.244.1.0/24".to_string()]));
        assert!(node.validate().is_empty());
        let bad: Node = object(json!({"metadata": {"name": "n"}, "spec": {"podCIDR": "10.244.1.0"}}));
        assert_eq!(
            messages(&bad.validate()),
            [
                "spec.podCIDR: Invalid value: \"10.244.1.0\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                "spec.podCIDRs[0]: Invalid value: \"10.244.1.0\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
            ]
        );
        let moved: Node = object(json!({"metadata": {"name": "n"}, "spec": {"podCIDR": "10.244.2.0/24"}}));
        assert_eq!(
            messages(&moved.validate_update(&node)),
            ["spec.podCIDRs: Forbidden: node updates may not change podCIDR except from \"\" to valid"]
        );
        let unset: Node = object(json!({"metadata": {"name": "n"}}));
        assert!(node.validate_update(&unset).is_empty());
    }

    #[test]
    fn node_taint_effects_are_checked() {
        let node: Node =
            object(json!({"metadata": {"name": "n"}, "spec": {"taints": [{"key": "gpu", "effect": "Sometimes"}]}}));
        assert_eq!(
            messages(&node.validate()),
            [
                "spec.taints[0].effect: Unsupported value: \"Sometimes\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\""
            ]
        );
    }

    #[test]
    fn node_allocatable_defaults_to_capacity() {
        let node: Node =
            object(json!({"metadata": {"name": "n"}, "status": {"capacity": {"cpu": "4", "memory": "8Gi"}}}));
        let status = node.status.as_ref().expect("status");
        assert_eq!(status.allocatable, status.capacity);
    }

    #[test]
    fn event_must_name_its_object() {
        let e: Event = object(json!({"metadata": {"name": "e.1", "namespace": "a"}, "involvedObject": {}}));
        assert_eq!(e.validate()[0].field, "involvedObject");
        let other: Event = object(json!({"metadata": {"name": "e.1", "namespace": "a"},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "b"}}));
        assert_eq!(
            messages(&other.validate()),
            ["involvedObject.namespace: Invalid value: \"b\": does not match event.namespace"]
        );
    }

    #[test]
    fn binding_targets_a_named_node() {
        let b: Binding = object(json!({"metadata": {"name": "p"}, "target": {"kind": "Pod"}}));
        assert_eq!(
            messages(&b.validate()),
            [
                "target.kind: Unsupported value: \"Pod\": supported values: \"Node\", \"<empty>\"",
                "target.name: Required value"
            ]
        );
    }

    #[test]
    fn lease_duration_must_be_positive() {
        let l: Lease = object(json!({"metadata": {"name": "l"}, "spec": {"leaseDurationSeconds": 0}}));
        assert_eq!(messages(&l.validate()), ["spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"]);
    }

    #[test]
    fn limit_range_defaults_and_orders_its_bounds() {
        let lr: LimitRange = object(json!({"metadata": {"name": "l"}, "spec": {"limits": [
            {"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"}}]}}));
        let item = &lr.spec.as_ref().expect("spec").limits[0];
        assert_eq!(item.default.as_ref().and_then(|d| d.get("cpu")).map(|q| q.0.as_str()), Some("2"));
        assert_eq!(item.default_request.as_ref().and_then(|d| d.get("cpu")).map(|q| q.0.as_str()), Some("2"));
        assert_eq!(item.default_request.as_ref().and_then(|d| d.get("memory")).map(|q| q.0.as_str()), Some("64Mi"));
        assert!(lr.validate().is_empty(), "{:?}", lr.validate());

        let bad: LimitRange = object(json!({"metadata": {"name": "l"}, "spec": {"limits": [
            {"type": "Container", "max": {"cpu": "1"}, "min": {"cpu": "2"}},
            {"type": "Pod", "default": {"cpu": "1"}},
            {"type": "Gadget"},
            {"type": "PersistentVolumeClaim", "max": {"storage": "x"}}]}}));
        let got = messages(&bad.validate());
        assert!(
            got.contains(
                &"spec.limits[0].min[cpu]: Invalid value: \"2\": min value 2 is greater than max value 1".to_string()
            ),
            "{got:?}"
        );
        assert!(
            got.contains(&"spec.limits[1].default: Forbidden: may not be specified when `type` is 'Pod'".to_string()),
            "{got:?}"
        );
        assert!(
            got.contains(
                &"spec.limits[2].type: Invalid value: \"Gadget\": must be a standard limit type or fully qualified"
                    .to_string()
            ),
            "{got:?}"
        );
        assert!(
            got.iter()
                .any(|m| m.starts_with("spec.limits[3].max[storage]: Invalid value: \"x\": quantities must match")),
            "{got:?}"
        );
    }

    #[test]
    fn resource_quota_quantities_and_scopes_are_checked() {
        let q: ResourceQuota = object(json!({"metadata": {"name": "q"}, "spec": {
            "hard": {"pods": "10", "requests.cpu": "4", "widgets": "1", "services": "1.5"},
            "scopes": ["BestEffort", "NotBestEffort"]}}));
        assert_eq!(
            messages(&q.validate()),
            [
                "spec.hard[services]: Invalid value: \"1.5\": must be an integer",
                "spec.hard[widgets]: Invalid value: \"widgets\": must be a standard resource for quota",
                "spec.scopes: Invalid value: [\"BestEffort\",\"NotBestEffort\"]: conflicting scopes",
            ]
        );
        let old: ResourceQuota = object(json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "1"}}}));
        let scoped: ResourceQuota =
            object(json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "1"}, "scopes": ["Terminating"]}}));
        assert_eq!(
            messages(&scoped.validate_update(&old)),
            ["spec.scopes: Invalid value: [\"Terminating\"]: field is immutable"]
        );
    }
}
