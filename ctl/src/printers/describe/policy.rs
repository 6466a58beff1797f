//! `describe quota` and `describe limits`, as kubectl 1.33 prints them
//! (`describeQuota`, `describeLimitRange`).

use super::{Writer, w};
use k8s_openapi::api::core::v1::{LimitRange, ResourceQuota};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use rkube_api::quantity::{self, Format, canonical};
use std::collections::{BTreeMap, BTreeSet};

/// What each quota scope selects (kubectl's help texts).
fn scope_help(scope: &str) -> &'static str {
    match scope {
        "Terminating" => {
            "Matches all pods that have an active deadline. These pods have a limited lifespan on a node before being actively terminated by the system."
        }
        "NotTerminating" => {
            "Matches all pods that do not have an active deadline. These pods usually include long running pods whose container command is not expected to terminate."
        }
        "BestEffort" => {
            "Matches all pods that do not have resource requirements set. These pods have a best effort quality of service."
        }
        "NotBestEffort" => {
            "Matches all pods that have at least one resource requirement set. These pods have a burstable or guaranteed quality of service."
        }
        _ => "",
    }
}

/// The used amount written in the hard amount's format, as kubectl does
/// when the two differ (whole units).
fn used_as(used: Option<&Quantity>, hard: &Quantity) -> String {
    let Some(used) = used else { return "0".into() };
    let (uf, hf) = (Format::of(&used.0), Format::of(&hard.0));
    match quantity::parse(&used.0) {
        Ok(q) if uf != hf => i64::try_from(q.value())
            .map_or_else(|_| canonical(&used.0), |v| quantity::Quantity::from_int(v).to_canonical(hf)),
        _ => canonical(&used.0),
    }
}

/// The description of a resource quota: its scopes, then Resource, Used
/// and Hard for each resource of `status.hard`.
pub fn quota(q: &ResourceQuota) -> String {
    let mut w = Writer::default();
    w!(w, 0, "Name:\t{}\n", q.metadata.name.clone().unwrap_or_default());
    w!(w, 0, "Namespace:\t{}\n", q.metadata.namespace.clone().unwrap_or_default());
    let scopes: BTreeSet<&str> = q.spec.iter().flat_map(|s| s.scopes.iter().flatten()).map(String::as_str).collect();
    if !scopes.is_empty() {
        w!(w, 0, "Scopes:\t{}\n", scopes.iter().copied().collect::<Vec<_>>().join(", "));
        for scope in &scopes {
            let help = scope_help(scope);
            if !help.is_empty() {
                w!(w, 0, "* {help}\n");
            }
        }
    }
    w!(w, 0, "Resource\tUsed\tHard\n");
    w!(w, 0, "--------\t----\t----\n");
    let status = q.status.as_ref();
    let used = status.and_then(|s| s.used.as_ref());
    for (name, hard) in status.and_then(|s| s.hard.as_ref()).into_iter().flatten() {
        w!(w, 0, "{name}\t{}\t{}\n", used_as(used.and_then(|u| u.get(name)), hard), canonical(&hard.0));
    }
    w.finish()
}

/// The description of a limit range: one row per type and resource.
pub fn limit_range(l: &LimitRange) -> String {
    let mut w = Writer::default();
    w!(w, 0, "Name:\t{}\n", l.metadata.name.clone().unwrap_or_default());
    w!(w, 0, "Namespace:\t{}\n", l.metadata.namespace.clone().unwrap_or_default());
    w!(w, 0, "Type\tResource\tMin\tMax\tDefault Request\tDefault Limit\tMax Limit/Request Ratio\n");
    w!(w, 0, "----\t--------\t---\t---\t---------------\t-------------\t-----------------------\n");
    let empty = BTreeMap::new();
    for item in l.spec.iter().flat_map(|s| s.limits.iter()) {
        let lists = [&item.min, &item.max, &item.default_request, &item.default, &item.max_limit_request_ratio]
            .map(|l| l.as_ref().unwrap_or(&empty));
        let names: BTreeSet<&String> = lists.iter().flat_map(|l| l.keys()).collect();
        for name in names {
            let cell = |l: &BTreeMap<String, Quantity>| l.get(name).map_or("-".to_string(), |q| canonical(&q.0));
            w!(
                w,
                0,
                "{}\t{name}\t{}\t{}\t{}\t{}\t{}\n",
                item.type_,
                cell(lists[0]),
                cell(lists[1]),
                cell(lists[2]),
                cell(lists[3]),
                cell(lists[4])
            );
        }
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quota_shows_used_and_hard_per_resource() {
        let q: ResourceQuota = serde_json::from_value(json!({"metadata": {"name": "compute-resources", "namespace": "default"},
            "spec": {"hard": {"pods": "4", "requests.cpu": "1", "requests.memory": "1Gi"}, "scopes": ["NotTerminating"]},
            "status": {"hard": {"pods": "4", "requests.cpu": "1", "requests.memory": "1Gi"},
                "used": {"pods": "4", "requests.cpu": "500m", "requests.memory": "0"}}}))
        .unwrap();
        assert_eq!(
            quota(&q),
            "\
Name:       compute-resources
Namespace:  default
Scopes:     NotTerminating
* Matches all pods that do not have an active deadline. These pods usually include long running pods whose container command is not expected to terminate.
Resource         Used  Hard
--------         ----  ----
pods             4     4
requests.cpu     500m  1
requests.memory  0     1Gi
"
        );
    }

    #[test]
    fn limit_range_shows_a_row_per_type_and_resource() {
        let l: LimitRange = serde_json::from_value(json!({"metadata": {"name": "limits", "namespace": "default"},
            "spec": {"limits": [{"type": "Container", "max": {"cpu": "500m"}, "default": {"cpu": "200m", "memory": "128Mi"},
                "defaultRequest": {"cpu": "100m", "memory": "128Mi"}, "maxLimitRequestRatio": {"cpu": "4"}},
                {"type": "Pod", "max": {"memory": "1Gi"}}]}}))
        .unwrap();
        assert_eq!(
            limit_range(&l),
            "\
Name:       limits
Namespace:  default
Type        Resource  Min  Max   Default Request  Default Limit  Max Limit/Request Ratio
----        --------  ---  ---   ---------------  -------------  -----------------------
Container   cpu       -    500m  100m             200m           4
Container   memory    -    -     128Mi            128Mi          -
Pod         memory    -    1Gi   -                -              -
"
        );
    }
}
