//! Resource names (`cpu`, `memory`, `example.com/gpu`) and the quantities
//! in resource lists: syntax, sign, whole numbers where required, and
//! container requests against limits.

use super::causes::required_because;
use super::checks::NEGATIVE_MSG;
use super::{forbidden, invalid};
use crate::error::Cause;
use crate::quantity::{self, Quantity};
use crate::selector::validate_label_key;
use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use std::collections::BTreeMap;

/// A resource list as the k8s-openapi types carry it.
pub type ResourceList = BTreeMap<String, K8sQuantity>;

/// Resources a container may ask for without a domain prefix.
const STANDARD_CONTAINER: &[&str] = &["cpu", "memory", "ephemeral-storage"];

/// Resources a quota may count without a domain prefix.
const STANDARD_QUOTA: &[&str] = &[
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "services.nodeports",
    "services.loadbalancers",
    "storage",
    "requests.storage",
    "ephemeral-storage",
    "requests.ephemeral-storage",
    "limits.ephemeral-storage",
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];

/// Quota resources that count objects, so must be whole numbers.
const INTEGER_QUOTA: &[&str] = &[
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "services.nodeports",
    "services.loadbalancers",
];

/// A resource in the `kubernetes.io` namespace (or without a domain).
pub fn is_native(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// A huge page size resource (`hugepages-2Mi`).
pub fn is_hugepages(name: &str) -> bool {
    name.starts_with("hugepages-")
}

/// An extended resource (`example.com/gpu`): counted, never overcommitted.
pub fn is_extended(name: &str) -> bool {
    !is_native(name) && !name.starts_with("requests.")
}

/// Whether requests may be lower than limits for this resource.
pub fn overcommit_allowed(name: &str) -> bool {
    is_native(name) && !is_hugepages(name)
}

fn is_integer(name: &str) -> bool {
    is_extended(name) || INTEGER_QUOTA.contains(&name) || name.starts_with("count/")
}

fn is_hugepages_quota(name: &str) -> bool {
    is_hugepages(name) || name.starts_with("requests.hugepages-") || name.starts_with("limits.hugepages-")
}

fn qualified(field: &str, name: &str) -> Option<Cause> {
    validate_label_key(name).err().map(|why| invalid(field, name, &why))
}

/// A resource a container may request: `cpu`, `memory`,
/// `ephemeral-storage`, `hugepages-<size>` or a domain-qualified name.
pub fn container_resource_name(field: &str, name: &str) -> Vec<Cause> {
    if let Some(c) = qualified(field, name) {
        return vec![c];
    }
    if !name.contains('/') {
        if !STANDARD_CONTAINER.contains(&name) && !is_hugepages(name) {
            return vec![invalid(field, name, "must be a standard resource for containers")];
        }
    } else if !is_native(name) && !is_extended(name) {
        return vec![invalid(field, name, "doesn't follow extended resource name standard")];
    }
    Vec::new()
}

/// Any resource name: standard, or domain-qualified.
pub fn resource_name(field: &str, name: &str) -> Vec<Cause> {
    standard_or_qualified(field, name, "must be a standard resource type or fully qualified")
}

/// A resource a quota may limit.
pub fn quota_resource_name(field: &str, name: &str) -> Vec<Cause> {
    standard_or_qualified(field, name, "must be a standard resource for quota")
}

/// A quota-standard name or a domain-qualified one; `why` explains a refusal.
fn standard_or_qualified(field: &str, name: &str, why: &str) -> Vec<Cause> {
    if let Some(c) = qualified(field, name) {
        return vec![c];
    }
    if !name.contains('/') && !STANDARD_QUOTA.contains(&name) && !is_hugepages_quota(name) {
        return vec![invalid(field, name, why)];
    }
    Vec::new()
}

/// Parses one quantity of resource `name`: it must parse, be non-negative
/// and, for counted resources, be a whole number.
pub fn quantity(field: &str, name: &str, q: &K8sQuantity) -> (Option<Quantity>, Vec<Cause>) {
    match quantity::parse_k8s(q) {
        Err(why) => (None, vec![invalid(field, &q.0, &why)]),
        Ok(parsed) => {
            let mut causes = Vec::new();
            if parsed.is_negative() {
                causes.push(invalid(field, &q.0, NEGATIVE_MSG));
            }
            if is_integer(name) && parsed.millis() % 1000 != 0 {
                causes.push(invalid(field, &q.0, "must be an integer"));
            }
            (Some(parsed), causes)
        }
    }
}

/// Checks every entry of a resource list at `field[name]` with `check_name`
/// for the names; returns the quantities that parsed.
pub fn resource_list(
    list: Option<&ResourceList>,
    field: &str,
    check_name: fn(&str, &str) -> Vec<Cause>,
    causes: &mut Vec<Cause>,
) -> BTreeMap<String, Quantity> {
    let mut parsed = BTreeMap::new();
    for (name, q) in list.into_iter().flatten() {
        let path = format!("{field}[{name}]");
        causes.extend(check_name(&path, name));
        let (value, errs) = quantity(&path, name, q);
        causes.extend(errs);
        if let Some(v) = value {
            parsed.insert(name.clone(), v);
        }
    }
    parsed
}

/// A container's (or pod overhead's) resources: names, quantities, and each
/// request at most its limit (exactly its limit for resources that cannot
/// be overcommitted, such as huge pages and extended resources).
pub fn container_requirements(req: &ResourceRequirements, field: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    let (lim_path, req_path) = (format!("{field}.limits"), format!("{field}.requests"));
    let limits = resource_list(req.limits.as_ref(), &lim_path, container_resource_name, &mut causes);
    let requests = resource_list(req.requests.as_ref(), &req_path, container_resource_name, &mut causes);
    let raw = |list: &Option<ResourceList>, name: &str| list.as_ref().and_then(|l| l.get(name)).map(|q| q.0.clone());
    for (name, request) in &requests {
        let shown = raw(&req.requests, name).unwrap_or_default();
        match limits.get(name) {
            Some(limit) => {
                let limit_shown = raw(&req.limits, name).unwrap_or_default();
                if request != limit && !overcommit_allowed(name) {
                    causes.push(invalid(&req_path, &shown, &format!("must be equal to {name} limit of {limit_shown}")));
                } else if request > limit {
                    causes.push(invalid(
                        &req_path,
                        &shown,
                        &format!("must be less than or equal to {name} limit of {limit_shown}"),
                    ));
                }
            }
            None if !overcommit_allowed(name) && !req.limits.as_ref().is_some_and(|l| l.contains_key(name)) => {
                causes.push(required_because(&lim_path, "Limit must be set for non overcommitable resources"));
            }
            None => {}
        }
    }
    let names = || requests.keys().chain(limits.keys());
    if names().any(|n| is_hugepages(n)) && !names().any(|n| n == "cpu" || n == "memory") {
        causes.push(forbidden(field, "HugePages require cpu or memory"));
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(pairs: &[(&str, &str)]) -> Option<ResourceList> {
        Some(pairs.iter().map(|(k, v)| (k.to_string(), K8sQuantity(v.to_string()))).collect())
    }

    #[test]
    fn requests_above_limits_name_the_resource_and_limit() {
        let r = ResourceRequirements {
            limits: list(&[("cpu", "1")]),
            requests: list(&[("cpu", "2")]),
            ..Default::default()
        };
        let causes = container_requirements(&r, "spec.containers[0].resources");
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "spec.containers[0].resources.requests");
        assert_eq!(causes[0].message, "Invalid value: \"2\": must be less than or equal to cpu limit of 1");
    }

    #[test]
    fn bad_negative_and_unknown_quantities_are_reported_per_key() {
        let r = ResourceRequirements {
            limits: list(&[("memory", "lots"), ("cpu", "-1"), ("gpu", "1")]),
            ..Default::default()
        };
        let causes = container_requirements(&r, "r");
        let got: Vec<(&str, &str)> = causes.iter().map(|c| (c.field.as_str(), c.message.as_str())).collect();
        assert!(
            got.contains(&("r.limits[memory]", &*format!("Invalid value: \"lots\": {}", quantity::FORMAT_MESSAGE)))
        );
        assert!(got.contains(&("r.limits[cpu]", "Invalid value: \"-1\": must be greater than or equal to 0")));
        assert!(got.contains(&("r.limits[gpu]", "Invalid value: \"gpu\": must be a standard resource for containers")));
    }

    #[test]
    fn extended_resources_must_be_whole_and_equal_to_their_limit() {
        let r = ResourceRequirements {
            limits: list(&[("example.com/gpu", "2")]),
            requests: list(&[("example.com/gpu", "1")]),
            ..Default::default()
        };
        assert_eq!(
            container_requirements(&r, "r")[0].message,
            "Invalid value: \"1\": must be equal to example.com/gpu limit of 2"
        );
        let half = ResourceRequirements { limits: list(&[("example.com/gpu", "500m")]), ..Default::default() };
        assert_eq!(container_requirements(&half, "r")[0].message, "Invalid value: \"500m\": must be an integer");
        let no_limit = ResourceRequirements { requests: list(&[("example.com/gpu", "1")]), ..Default::default() };
        assert_eq!(container_requirements(&no_limit, "r")[0].field, "r.limits");
    }

    #[test]
    fn quota_names_must_be_standard_or_qualified() {
        assert!(quota_resource_name("f", "pods").is_empty());
        assert!(quota_resource_name("f", "count/deployments.apps").is_empty());
        assert_eq!(quota_resource_name("f", "widgets").len(), 1);
        assert!(resource_name("f", "storage").is_empty());
    }
}
