//! The LimitRanger admission plugin (Kubernetes'
//! `plugin/pkg/admission/limitranger`): the LimitRanges of a pod's
//! namespace give its containers default requests and limits, and bound
//! what containers, pods and claims may ask for.
//!
//! On a pod's create, for each LimitRange of the namespace in name order:
//! every container (and init container) missing a limit gets the
//! `default` of the range's `Container` item, and missing a request its
//! `defaultRequest`; the annotation `kubernetes.io/limit-ranger` says what
//! was set. A request the container leaves out but limits is first taken
//! from its limit, as the apiserver's pod defaulting does (Kubernetes
//! defaults before admission). Then `min`, `max` and `maxLimitRequestRatio`
//! are enforced per `Container` and per `Pod` (the pod's summed requests
//! and limits); claims are held to the `PersistentVolumeClaim` item's `min`
//! and `max` on create (updates are not checked). A violation is Forbidden with
//! Kubernetes' message, e.g. `maximum cpu usage per Container is 500m, but
//! limit is 1`.

use super::policy_cache::PolicyCache;
use k8s_openapi::api::core::v1::{LimitRange, LimitRangeItem, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use rkube_api::quantity::{self, canonical};
use rkube_api::quota::{self, Amount, PodFacts};
use rkube_api::{ApiError, ResourceInfo, Result};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The annotation that records the defaults a pod was given.
pub const ANNOTATION: &str = "kubernetes.io/limit-ranger";

type List = BTreeMap<String, K8sQuantity>;

/// Applies the namespace's LimitRanges to a new pod or claim.
pub async fn admit(cache: &PolicyCache, info: &ResourceInfo, namespace: &str, obj: &mut Value) -> Result<()> {
    if !matches!(info.kind, "Pod" | "PersistentVolumeClaim")
        || obj.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null())
    {
        return Ok(());
    }
    let ranges = cache.get(namespace).await?;
    if ranges.is_empty() {
        return Ok(());
    }
    let ranges: Vec<LimitRange> = ranges.into_iter().filter_map(|r| serde_json::from_value(r).ok()).collect();
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
    let forbidden = |why: String| ApiError::forbidden(info.plural, &name, &why);
    if info.kind == "Pod" {
        default_requests_from_limits(obj);
        for range in &ranges {
            set_defaults(range, obj);
        }
        let pod: Pod = serde_json::from_value(obj.clone())
            .map_err(|e| ApiError::bad_request(format!("the pod could not be read: {e}")))?;
        for range in &ranges {
            validate_pod(range, &pod).map_err(forbidden)?;
        }
    } else {
        let requests: List = obj
            .pointer("/spec/resources/requests")
            .and_then(|r| serde_json::from_value(r.clone()).ok())
            .unwrap_or_default();
        for range in &ranges {
            validate_claim(range, &requests).map_err(forbidden)?;
        }
    }
    Ok(())
}

fn containers_mut(pod: &mut Value) -> impl Iterator<Item = (&'static str, &mut Value)> {
    let spec = pod.get_mut("spec").and_then(Value::as_object_mut);
    let mut out: Vec<(&'static str, &mut Value)> = Vec::new();
    if let Some(spec) = spec {
        for (list, what) in spec.iter_mut().filter_map(|(k, v)| match k.as_str() {
            "containers" => Some((v, "container")),
            "initContainers" => Some((v, "init container")),
            _ => None,
        }) {
            out.extend(list.as_array_mut().into_iter().flatten().map(|c| (what, c)));
        }
    }
    // Containers before init containers, as Kubernetes walks them.
    out.sort_by_key(|(what, _)| *what != "container");
    out.into_iter()
}

/// A request left out but limited defaults to the limit.
fn default_requests_from_limits(pod: &mut Value) {
    for (_, c) in containers_mut(pod) {
        let Some(limits) = c.pointer("/resources/limits").and_then(Value::as_object).cloned() else { continue };
        let requests = &mut c["resources"]["requests"];
        if !requests.is_object() {
            *requests = json!({});
        }
        let requests = requests.as_object_mut().expect("made an object above");
        for (k, v) in limits {
            requests.entry(k).or_insert(v);
        }
    }
}

/// The `Container` item's defaults of one range, merged into every
/// container that lacks them (`mergePodResourceRequirements`).
fn set_defaults(range: &LimitRange, pod: &mut Value) {
    let (mut requests, mut limits) = (List::new(), List::new());
    for item in range.spec.iter().flat_map(|s| s.limits.iter()).filter(|i| i.type_ == "Container") {
        requests.extend(item.default_request.clone().unwrap_or_default());
        limits.extend(item.default.clone().unwrap_or_default());
    }
    if requests.is_empty() && limits.is_empty() {
        return;
    }
    let mut notes: Vec<String> = Vec::new();
    for (what, c) in containers_mut(pod) {
        let name = c.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
        let mut merge = |field: &str, defaults: &List| -> Vec<String> {
            let mut set = Vec::new();
            for (k, v) in defaults {
                let slot = &mut c["resources"][field];
                if !slot.is_object() {
                    *slot = json!({});
                }
                let map = slot.as_object_mut().expect("made an object above");
                if !map.contains_key(k) {
                    map.insert(k.clone(), Value::String(v.0.clone()));
                    set.push(k.clone());
                }
            }
            set
        };
        let set_limits = merge("limits", &limits);
        let set_requests = merge("requests", &requests);
        if !set_requests.is_empty() {
            notes.push(format!("{} request for {what} {name}", set_requests.join(", ")));
        }
        if !set_limits.is_empty() {
            notes.push(format!("{} limit for {what} {name}", set_limits.join(", ")));
        }
    }
    if !notes.is_empty() {
        let meta = &mut pod["metadata"];
        if !meta["annotations"].is_object() {
            meta["annotations"] = json!({});
        }
        meta["annotations"][ANNOTATION] = Value::String(format!("LimitRanger plugin set: {}", notes.join("; ")));
    }
}

/// Kubernetes' aggregate of several errors: `[a, b]`.
fn aggregate(errors: Vec<String>) -> Result<(), String> {
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.into_iter().next().expect("one error")),
        _ => Err(format!("[{}]", errors.join(", "))),
    }
}

/// Milli-units of a written amount (0 when unreadable).
fn millis(q: &str) -> i128 {
    quantity::parse(q).map_or(0, |q| q.millis())
}

fn min_constraint(kind: &str, resource: &str, enforced: &str, req: Option<&str>, lim: Option<&str>) -> Option<String> {
    let shown = canonical(enforced);
    let Some(req) = req else {
        return Some(format!("minimum {resource} usage per {kind} is {shown}.  No request is specified"));
    };
    if millis(req) < millis(enforced) {
        return Some(format!("minimum {resource} usage per {kind} is {shown}, but request is {}", canonical(req)));
    }
    match lim {
        Some(lim) if millis(lim) < millis(enforced) => {
            Some(format!("minimum {resource} usage per {kind} is {shown}, but limit is {}", canonical(lim)))
        }
        _ => None,
    }
}

fn max_constraint(kind: &str, resource: &str, enforced: &str, req: Option<&str>, lim: Option<&str>) -> Option<String> {
    let shown = canonical(enforced);
    let Some(lim) = lim else {
        return Some(format!("maximum {resource} usage per {kind} is {shown}.  No limit is specified"));
    };
    if millis(lim) > millis(enforced) {
        return Some(format!("maximum {resource} usage per {kind} is {shown}, but limit is {}", canonical(lim)));
    }
    match req {
        Some(req) if millis(req) > millis(enforced) => {
            Some(format!("maximum {resource} usage per {kind} is {shown}, but request is {}", canonical(req)))
        }
        _ => None,
    }
}

fn ratio_constraint(
    kind: &str,
    resource: &str,
    enforced: &str,
    req: Option<&str>,
    lim: Option<&str>,
) -> Option<String> {
    let shown = canonical(enforced);
    let (req, lim) = (req.map_or(0, millis), lim.map_or(0, millis));
    if req == 0 {
        return Some(format!(
            "{resource} max limit to request ratio per {kind} is {shown}, but no request is specified or request is 0"
        ));
    }
    if lim == 0 {
        return Some(format!(
            "{resource} max limit to request ratio per {kind} is {shown}, but no limit is specified or limit is 0"
        ));
    }
    let observed = lim as f64 / req as f64;
    if observed * 1000.0 > millis(enforced) as f64 {
        return Some(format!(
            "{resource} max limit to request ratio per {kind} is {shown}, but provided ratio is {observed:.6}"
        ));
    }
    None
}

/// Checks `min`, `max` and `maxLimitRequestRatio` of one item against
/// requests and limits.
fn check_item(
    item: &LimitRangeItem,
    requests: &BTreeMap<String, String>,
    limits: &BTreeMap<String, String>,
) -> Vec<String> {
    let kind = item.type_.as_str();
    let (req, lim) = (|k: &str| requests.get(k).map(String::as_str), |k: &str| limits.get(k).map(String::as_str));
    let mut errors = Vec::new();
    for (k, v) in item.min.iter().flatten() {
        errors.extend(min_constraint(kind, k, &v.0, req(k), lim(k)));
    }
    for (k, v) in item.max.iter().flatten() {
        errors.extend(max_constraint(kind, k, &v.0, req(k), lim(k)));
    }
    for (k, v) in item.max_limit_request_ratio.iter().flatten() {
        errors.extend(ratio_constraint(kind, k, &v.0, req(k), lim(k)));
    }
    errors
}

fn strings(list: Option<&List>) -> BTreeMap<String, String> {
    list.into_iter().flatten().map(|(k, v)| (k.clone(), v.0.clone())).collect()
}

fn amounts(usage: &quota::Usage) -> BTreeMap<String, String> {
    usage.iter().map(|(k, v): (&String, &Amount)| (k.clone(), v.to_string())).collect()
}

/// `PodValidateLimitFunc`: every container against the `Container` item,
/// the pod's sums against the `Pod` item.
fn validate_pod(range: &LimitRange, pod: &Pod) -> Result<(), String> {
    let mut errors = Vec::new();
    let spec = pod.spec.as_ref();
    for item in range.spec.iter().flat_map(|s| s.limits.iter()) {
        match item.type_.as_str() {
            "Container" => {
                let containers = spec.map(|s| s.containers.iter()).into_iter().flatten();
                let inits = spec.and_then(|s| s.init_containers.as_ref()).into_iter().flatten();
                for c in containers.chain(inits) {
                    let r = c.resources.as_ref();
                    let (requests, limits) =
                        (strings(r.and_then(|r| r.requests.as_ref())), strings(r.and_then(|r| r.limits.as_ref())));
                    errors.extend(check_item(item, &requests, &limits));
                }
            }
            "Pod" => {
                let (requests, limits) = quota::pod_requests_limits(&PodFacts::of(pod));
                errors.extend(check_item(item, &amounts(&requests), &amounts(&limits)));
            }
            _ => {}
        }
    }
    aggregate(errors)
}

/// `PersistentVolumeClaimValidateLimitFunc`: the claim's requests against
/// the `PersistentVolumeClaim` item's `min` and `max`.
fn validate_claim(range: &LimitRange, requests: &List) -> Result<(), String> {
    let mut errors = Vec::new();
    for item in range.spec.iter().flat_map(|s| s.limits.iter()).filter(|i| i.type_ == "PersistentVolumeClaim") {
        let kind = item.type_.as_str();
        for (k, v) in item.min.iter().flatten() {
            errors.extend(min_constraint(kind, k, &v.0, requests.get(k).map(|q| q.0.as_str()), None));
        }
        for (k, v) in item.max.iter().flatten() {
            let shown = canonical(&v.0);
            match requests.get(k) {
                None => errors.push(format!("maximum {k} usage per {kind} is {shown}.  No request is specified")),
                Some(req) if millis(&req.0) > millis(&v.0) => errors
                    .push(format!("maximum {k} usage per {kind} is {shown}, but request is {}", canonical(&req.0))),
                Some(_) => {}
            }
        }
    }
    aggregate(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(limits: Value) -> LimitRange {
        serde_json::from_value(json!({"metadata": {"name": "lr"}, "spec": {"limits": limits}})).unwrap()
    }

    #[test]
    fn defaults_fill_what_containers_leave_out_and_are_recorded() {
        let lr = range(json!([{"type": "Container", "default": {"cpu": "500m", "memory": "128Mi"},
            "defaultRequest": {"cpu": "100m", "memory": "64Mi"}}]));
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "a"},
            {"name": "b", "resources": {"limits": {"cpu": "1"}}}]}});
        default_requests_from_limits(&mut pod);
        set_defaults(&lr, &mut pod);
        assert_eq!(
            pod["spec"]["containers"][0]["resources"],
            json!({"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "100m", "memory": "64Mi"}})
        );
        assert_eq!(
            pod["spec"]["containers"][1]["resources"],
            json!({"limits": {"cpu": "1", "memory": "128Mi"}, "requests": {"cpu": "1", "memory": "64Mi"}}),
            "b's cpu request comes from its own limit"
        );
        assert_eq!(
            pod["metadata"]["annotations"][ANNOTATION],
            "LimitRanger plugin set: cpu, memory request for container a; cpu, memory limit for container a; \
             memory request for container b; memory limit for container b"
        );
    }

    #[test]
    fn min_max_and_ratio_are_enforced_with_kubernetes_messages() {
        let lr = range(json!([{"type": "Container", "max": {"cpu": "500m"}, "min": {"memory": "10Mi"}}]));
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "c", "resources": {"limits": {"cpu": "1", "memory": "64Mi"}, "requests": {"cpu": "1", "memory": "64Mi"}}}]}}))
        .unwrap();
        assert_eq!(validate_pod(&lr, &pod).unwrap_err(), "maximum cpu usage per Container is 500m, but limit is 1");
        let two = range(json!([{"type": "Container", "max": {"cpu": "500m", "memory": "32Mi"}}]));
        assert_eq!(
            validate_pod(&two, &pod).unwrap_err(),
            "[maximum cpu usage per Container is 500m, but limit is 1, maximum memory usage per Container is 32Mi, but limit is 64Mi]"
        );
        let ratio = range(json!([{"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}}]));
        let bursty: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "c", "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "250m"}}}]}}))
        .unwrap();
        assert_eq!(
            validate_pod(&ratio, &bursty).unwrap_err(),
            "cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000"
        );
        let pod_max = range(json!([{"type": "Pod", "max": {"cpu": "800m"}}]));
        assert_eq!(validate_pod(&pod_max, &bursty).unwrap_err(), "maximum cpu usage per Pod is 800m, but limit is 1");
        let min = range(json!([{"type": "Container", "min": {"cpu": "100m"}}]));
        let none: Pod = serde_json::from_value(json!({"spec": {"containers": [{"name": "c"}]}})).unwrap();
        assert_eq!(
            validate_pod(&min, &none).unwrap_err(),
            "minimum cpu usage per Container is 100m.  No request is specified"
        );
    }

    #[test]
    fn claims_are_held_to_their_storage_bounds() {
        let lr =
            range(json!([{"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "2Gi"}}]));
        let ask = |s: &str| List::from([("storage".to_string(), K8sQuantity(s.into()))]);
        assert_eq!(validate_claim(&lr, &ask("1536Mi")), Ok(()));
        assert_eq!(
            validate_claim(&lr, &ask("5Gi")).unwrap_err(),
            "maximum storage usage per PersistentVolumeClaim is 2Gi, but request is 5Gi"
        );
    }
}
