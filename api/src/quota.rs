//! What an object costs a ResourceQuota (Kubernetes'
//! `pkg/quota/v1/evaluator/core` and `apiserver/pkg/quota/v1`), shared by
//! the ResourceQuota admission plugin and the resourcequota controller.
//!
//! [`usage`] measures one object: `count/<resource>` for every kind, the
//! legacy counts (`pods`, `services`, `configmaps`...), `services.nodeports`
//! and `services.loadbalancers`, `requests.storage` of claims, and for pods
//! the compute resources (`cpu`, `requests.memory`, `limits.cpu`...) summed
//! the way Kubernetes sums a pod's containers. Terminal pods, and pods whose
//! deletion grace period has run out, cost only their `count/pods`.
//! [`matching_resources`] says which of a quota's resources a kind can
//! consume, [`pod_matches_scopes`] applies a quota's scopes, and
//! [`pod_constraints`] is the old rule that a quota on cpu or memory
//! requires every container to state them.

use crate::quantity::{self, Format, Quantity};
use crate::resource::ResourceInfo;
use k8s_openapi::api::core::v1::{Pod, ResourceQuotaSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// An amount and the format Kubernetes would write it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Amount {
    /// The exact value.
    pub value: Quantity,
    /// How it is written back.
    pub format: Format,
}

impl Amount {
    /// The whole number `n`.
    pub fn int(n: i64) -> Amount {
        Amount { value: Quantity::from_int(n), format: Format::DecimalSI }
    }

    /// Parses a quantity as written (`500m`, `1Gi`).
    pub fn parse(s: &str) -> Option<Amount> {
        Some(Amount { value: quantity::parse(s).ok()?, format: Format::of(s) })
    }

    /// `self + other`; a zero takes the other's format, as in Kubernetes.
    pub fn plus(self, other: Amount) -> Amount {
        let format = if self.value.is_zero() { other.format } else { self.format };
        Amount { value: self.value.checked_add(other.value).unwrap_or(self.value), format }
    }

    /// The larger of the two.
    pub fn max(self, other: Amount) -> Amount {
        if other.value > self.value { other } else { self }
    }
}

impl std::fmt::Display for Amount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.value.to_canonical(self.format))
    }
}

/// Amounts by resource name (a `ResourceList`).
pub type Usage = BTreeMap<String, Amount>;

/// Reads a k8s-openapi resource list; unparsable amounts are left out.
pub fn parse_list(list: Option<&BTreeMap<String, K8sQuantity>>) -> Usage {
    list.into_iter().flatten().filter_map(|(k, v)| Some((k.clone(), Amount::parse(&v.0)?))).collect()
}

/// Writes a usage as a k8s-openapi resource list, in canonical form.
pub fn to_list(usage: &Usage) -> BTreeMap<String, K8sQuantity> {
    usage.iter().map(|(k, v)| (k.clone(), K8sQuantity(v.to_string()))).collect()
}

/// `a + b` by resource (`quota.Add`).
pub fn add(a: &mut Usage, b: &Usage) {
    for (k, v) in b {
        let sum = a.get(k).map_or(*v, |mine| mine.plus(*v));
        a.insert(k.clone(), sum);
    }
}

/// The entries of `usage` named in `names` (`quota.Mask`).
pub fn mask<'a>(usage: &Usage, names: impl IntoIterator<Item = &'a str>) -> Usage {
    names.into_iter().filter_map(|n| usage.get(n).map(|v| (n.to_string(), *v))).collect()
}

/// `cpu=500m,pods=1`: sorted by name, as quota errors print them.
pub fn pretty(usage: &Usage) -> String {
    usage.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// The object-count resource of `info`: `count/pods`, `count/deployments.apps`.
pub fn count_name(info: &ResourceInfo) -> String {
    if info.group.is_empty() {
        format!("count/{}", info.plural)
    } else {
        format!("count/{}.{}", info.plural, info.group)
    }
}

/// The pod resources quota tracks by name (`podResources`).
const POD_RESOURCES: &[&str] = &[
    "count/pods",
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
];

/// The resources that make a quota require every container to state them.
const VALIDATION_SET: &[&str] = &["cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory"];

/// Kinds counted under a legacy name besides `count/<resource>`.
const LEGACY_COUNTS: &[&str] =
    &["services", "replicationcontrollers", "configmaps", "secrets", "persistentvolumeclaims", "resourcequotas"];

/// Of `hard`'s resource names, those objects of `info`'s kind consume
/// (`Evaluator.MatchingResources`).
pub fn matching_resources<'a>(info: &ResourceInfo, hard: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let count = count_name(info);
    hard.into_iter()
        .filter(|&name| {
            name == count
                || (info.group.is_empty() && LEGACY_COUNTS.contains(&info.plural) && name == info.plural)
                || match info.kind {
                    "Pod" => {
                        POD_RESOURCES.contains(&name)
                            || name.starts_with("hugepages-")
                            || name.starts_with("requests.hugepages-")
                            || (name.starts_with("requests.") && name.contains('/'))
                    }
                    "Service" => matches!(name, "services.nodeports" | "services.loadbalancers"),
                    "PersistentVolumeClaim" => name == "requests.storage",
                    _ => false,
                }
        })
        .map(str::to_string)
        .collect()
}

/// Whether quota admission and the controller count objects of this kind
/// (Events are never counted, as in Kubernetes).
pub fn is_counted(info: &ResourceInfo) -> bool {
    info.namespaced && info.kind != "Event"
}

/// What one object of `info`'s kind costs, at `now` (`Evaluator.Usage`).
pub fn usage(info: &ResourceInfo, obj: &Value, now: Timestamp) -> Usage {
    let mut usage = Usage::new();
    usage.insert(count_name(info), Amount::int(1));
    if info.group.is_empty() && LEGACY_COUNTS.contains(&info.plural) {
        usage.insert(info.plural.to_string(), Amount::int(1));
    }
    match info.kind {
        "Pod" => {
            if let Ok(pod) = serde_json::from_value::<Pod>(obj.clone()) {
                usage = pod_usage(&PodFacts::of(&pod), now);
            }
        }
        "Service" => add(&mut usage, &service_usage(obj)),
        "PersistentVolumeClaim" => {
            if let Some(storage) =
                obj.pointer("/spec/resources/requests/storage").and_then(Value::as_str).and_then(Amount::parse)
            {
                usage.insert("requests.storage".into(), storage);
            }
        }
        _ => {}
    }
    usage
}

/// `services.nodeports` and `services.loadbalancers` of a Service.
fn service_usage(svc: &Value) -> Usage {
    let ports = svc.pointer("/spec/ports").and_then(Value::as_array).map_or(0, Vec::len) as i64;
    let with_node_port =
        svc.pointer("/spec/ports").and_then(Value::as_array).map_or(0, |ps| {
            ps.iter().filter(|p| p.get("nodePort").and_then(Value::as_i64).is_some_and(|n| n > 0)).count()
        }) as i64;
    let (node_ports, balancers) = match svc.pointer("/spec/type").and_then(Value::as_str) {
        Some("NodePort") => (ports, 0),
        Some("LoadBalancer") => {
            let allocate = svc.pointer("/spec/allocateLoadBalancerNodePorts").and_then(Value::as_bool) != Some(false);
            (if allocate { ports } else { with_node_port }, 1)
        }
        _ => (0, 0),
    };
    Usage::from([
        ("services.nodeports".to_string(), Amount::int(node_ports)),
        ("services.loadbalancers".to_string(), Amount::int(balancers)),
    ])
}

/// What quota reads of a pod: its containers' resources, its phase and
/// deletion, and its active deadline (for the Terminating scope).
#[derive(Debug, Clone, Default)]
pub struct PodFacts<'a> {
    /// The app containers' resources.
    pub containers: Vec<Option<&'a ResourceRequirements>>,
    /// The init containers' resources, and whether each is a sidecar
    /// (`restartPolicy: Always`).
    pub init_containers: Vec<(Option<&'a ResourceRequirements>, bool)>,
    /// `spec.overhead`.
    pub overhead: Option<&'a BTreeMap<String, K8sQuantity>>,
    /// `status.phase`.
    pub phase: &'a str,
    /// `metadata.deletionTimestamp` and `deletionGracePeriodSeconds`.
    pub deletion: Option<(Timestamp, i64)>,
    /// `spec.activeDeadlineSeconds`.
    pub active_deadline_seconds: Option<i64>,
}

impl<'a> PodFacts<'a> {
    /// The facts of a full pod.
    pub fn of(pod: &'a Pod) -> PodFacts<'a> {
        let spec = pod.spec.as_ref();
        PodFacts {
            containers: spec.map(|s| s.containers.iter().map(|c| c.resources.as_ref()).collect()).unwrap_or_default(),
            init_containers: spec
                .and_then(|s| s.init_containers.as_ref())
                .map(|cs| {
                    cs.iter().map(|c| (c.resources.as_ref(), c.restart_policy.as_deref() == Some("Always"))).collect()
                })
                .unwrap_or_default(),
            overhead: spec.and_then(|s| s.overhead.as_ref()),
            phase: pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or(""),
            deletion: pod
                .metadata
                .deletion_timestamp
                .as_ref()
                .map(|t| (t.0, pod.metadata.deletion_grace_period_seconds.unwrap_or(0))),
            active_deadline_seconds: spec.and_then(|s| s.active_deadline_seconds),
        }
    }
}

/// A container's requests, with missing ones defaulted from its limits (as
/// the apiserver's pod defaulting does), and its limits.
fn container_lists(r: Option<&ResourceRequirements>) -> (Usage, Usage) {
    let limits = parse_list(r.and_then(|r| r.limits.as_ref()));
    let mut requests = parse_list(r.and_then(|r| r.requests.as_ref()));
    for (k, v) in &limits {
        requests.entry(k.clone()).or_insert(*v);
    }
    (requests, limits)
}

fn max_into(a: &mut Usage, b: &Usage) {
    for (k, v) in b {
        let m = a.get(k).map_or(*v, |mine| mine.max(*v));
        a.insert(k.clone(), m);
    }
}

/// A pod's effective requests and limits (`resourcehelper.PodRequests` /
/// `PodLimits`): the app containers and sidecars summed, at least as much
/// as any init container needs while it runs beside the sidecars started
/// before it, plus the overhead (limits: only where a limit is set).
pub fn pod_requests_limits(facts: &PodFacts) -> (Usage, Usage) {
    let (mut requests, mut limits) = (Usage::new(), Usage::new());
    for c in &facts.containers {
        let (r, l) = container_lists(*c);
        add(&mut requests, &r);
        add(&mut limits, &l);
    }
    let (mut sidecar_r, mut sidecar_l) = (Usage::new(), Usage::new());
    let (mut init_r, mut init_l) = (Usage::new(), Usage::new());
    for (c, sidecar) in &facts.init_containers {
        let (r, l) = container_lists(*c);
        if *sidecar {
            add(&mut requests, &r);
            add(&mut limits, &l);
            add(&mut sidecar_r, &r);
            add(&mut sidecar_l, &l);
            max_into(&mut init_r, &sidecar_r);
            max_into(&mut init_l, &sidecar_l);
        } else {
            let (mut r2, mut l2) = (r, l);
            add(&mut r2, &sidecar_r);
            add(&mut l2, &sidecar_l);
            max_into(&mut init_r, &r2);
            max_into(&mut init_l, &l2);
        }
    }
    max_into(&mut requests, &init_r);
    max_into(&mut limits, &init_l);
    let overhead = parse_list(facts.overhead);
    add(&mut requests, &overhead);
    for (k, v) in &overhead {
        if let Some(l) = limits.get_mut(k) {
            *l = l.plus(*v);
        }
    }
    (requests, limits)
}

/// The compute resources of requests and limits (`podComputeUsageHelper`):
/// `pods`, `cpu` = `requests.cpu`, `limits.cpu`, the same for memory and
/// ephemeral storage, hugepages and extended resources.
fn compute_usage(requests: &Usage, limits: &Usage) -> Usage {
    let mut out = Usage::from([("pods".to_string(), Amount::int(1))]);
    for name in ["cpu", "memory", "ephemeral-storage"] {
        if let Some(r) = requests.get(name) {
            out.insert(name.to_string(), *r);
            out.insert(format!("requests.{name}"), *r);
        }
        if let Some(l) = limits.get(name) {
            out.insert(format!("limits.{name}"), *l);
        }
    }
    for (name, r) in requests {
        if name.starts_with("hugepages-") {
            out.insert(name.clone(), *r);
            out.insert(format!("requests.{name}"), *r);
        } else if name.contains('/') && !name.starts_with("kubernetes.io/") && !name.starts_with("requests.") {
            out.insert(format!("requests.{name}"), *r);
        }
    }
    out
}

/// Whether a pod's compute resources count (`QuotaV1Pod`): it has not
/// finished, and it is not being deleted past its grace period.
pub fn pod_counts(facts: &PodFacts, now: Timestamp) -> bool {
    if matches!(facts.phase, "Succeeded" | "Failed") {
        return false;
    }
    match facts.deletion {
        Some((at, grace)) => now.as_second() <= at.as_second().saturating_add(grace),
        None => true,
    }
}

/// What a pod costs (`PodUsageFunc`): `count/pods` always, the compute
/// resources while it [counts](pod_counts).
pub fn pod_usage(facts: &PodFacts, now: Timestamp) -> Usage {
    let mut usage = Usage::from([("count/pods".to_string(), Amount::int(1))]);
    if pod_counts(facts, now) {
        let (requests, limits) = pod_requests_limits(facts);
        add(&mut usage, &compute_usage(&requests, &limits));
    }
    usage
}

/// No container requests or limits cpu or memory (QoS class BestEffort).
pub fn is_best_effort(facts: &PodFacts) -> bool {
    let (requests, limits) = pod_requests_limits(facts);
    !["cpu", "memory"].iter().any(|n| {
        requests.get(*n).is_some_and(|a| a.value > Quantity::default())
            || limits.get(*n).is_some_and(|a| a.value > Quantity::default())
    })
}

/// The scope names a quota applies to: `spec.scopes` and the scope names of
/// `spec.scopeSelector`.
pub fn scopes(spec: &ResourceQuotaSpec) -> Vec<&str> {
    let mut out: Vec<&str> = spec.scopes.iter().flatten().map(String::as_str).collect();
    let selector = spec.scope_selector.as_ref().and_then(|s| s.match_expressions.as_ref());
    out.extend(selector.into_iter().flatten().map(|e| e.scope_name.as_str()));
    out
}

/// Whether a pod is in every scope of a quota (`podMatchesScopeFunc`):
/// Terminating (an `activeDeadlineSeconds`), NotTerminating, BestEffort,
/// NotBestEffort. PriorityClass and CrossNamespacePodAffinity scopes are
/// not supported: a quota with one matches no pod.
pub fn pod_matches_scopes(spec: &ResourceQuotaSpec, facts: &PodFacts) -> bool {
    scopes(spec).iter().all(|scope| match *scope {
        "Terminating" => facts.active_deadline_seconds.is_some_and(|s| s >= 0),
        "NotTerminating" => facts.active_deadline_seconds.is_none_or(|s| s < 0),
        "BestEffort" => is_best_effort(facts),
        "NotBestEffort" => !is_best_effort(facts),
        _ => false,
    })
}

/// Whether an object of a kind other than Pod is in a quota's scopes: only
/// when the quota has none.
pub fn object_matches_scopes(spec: &ResourceQuotaSpec) -> bool {
    scopes(spec).is_empty()
}

/// The old rule (`podEvaluator.Constraints`): when a quota limits cpu or
/// memory, every container must state the matching requests or limits.
/// The error reads `must specify limits.cpu for: c; requests.memory for: a,b`.
pub fn pod_constraints(required: &[String], pod: &Pod) -> Result<(), String> {
    let required: BTreeSet<&str> = required.iter().map(String::as_str).filter(|r| VALIDATION_SET.contains(r)).collect();
    if required.is_empty() {
        return Ok(());
    }
    let mut missing: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let spec = pod.spec.as_ref();
    let containers = spec.map(|s| s.containers.iter()).into_iter().flatten();
    let inits = spec.and_then(|s| s.init_containers.as_ref()).into_iter().flatten();
    for c in containers.chain(inits) {
        let (requests, limits) = container_lists(c.resources.as_ref());
        let has = compute_usage(&requests, &limits);
        for r in &required {
            if !has.contains_key(*r) {
                missing.entry(r).or_default().insert(c.name.as_str());
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let parts: Vec<String> = missing
        .iter()
        .map(|(r, names)| format!("{r} for: {}", names.iter().copied().collect::<Vec<_>>().join(",")))
        .collect();
    Err(format!("must specify {}", parts.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::lookup;
    use serde_json::json;

    fn pod(v: Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn now() -> Timestamp {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_pod_costs_its_containers_summed_and_its_init_containers_at_most() {
        let p = json!({"metadata": {"name": "p"}, "spec": {
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2"}}}],
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "500m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}},
                {"name": "b", "resources": {"limits": {"cpu": "700m", "memory": "64Mi"}}}]}});
        let u = usage(lookup("pods").unwrap(), &p, now());
        let shown: BTreeMap<&str, String> = u.iter().map(|(k, v)| (k.as_str(), v.to_string())).collect();
        assert_eq!(shown["pods"], "1");
        assert_eq!(shown["count/pods"], "1");
        assert_eq!(shown["requests.cpu"], "2", "the init container needs more than the app containers");
        assert_eq!(shown["cpu"], "2");
        assert_eq!(shown["requests.memory"], "128Mi", "b's request defaults to its limit");
        assert_eq!(shown["limits.memory"], "192Mi");
        assert_eq!(shown["limits.cpu"], "700m");
    }

    #[test]
    fn finished_pods_and_pods_past_their_grace_cost_only_their_count() {
        let done = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Succeeded"}});
        let u = usage(lookup("pods").unwrap(), &done, now());
        assert_eq!(u.keys().collect::<Vec<_>>(), ["count/pods"]);
        let deleting = |grace: i64| {
            json!({"metadata": {"name": "p", "deletionTimestamp": "2025-12-31T23:59:00Z",
                "deletionGracePeriodSeconds": grace}, "spec": {"containers": [{"name": "c"}]}})
        };
        assert!(!usage(lookup("pods").unwrap(), &deleting(30), now()).contains_key("pods"));
        assert!(usage(lookup("pods").unwrap(), &deleting(300), now()).contains_key("pods"));
    }

    #[test]
    fn services_count_node_ports_and_other_kinds_their_objects() {
        let svc = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 443}]}});
        let u = usage(lookup("services").unwrap(), &svc, now());
        assert_eq!(pretty(&u), "count/services=1,services=1,services.loadbalancers=0,services.nodeports=2");
        let u = usage(lookup("deployments").unwrap(), &json!({}), now());
        assert_eq!(pretty(&u), "count/deployments.apps=1");
        let hard = ["pods", "services", "count/deployments.apps", "requests.cpu"];
        assert_eq!(matching_resources(lookup("deployments").unwrap(), hard), ["count/deployments.apps"]);
        assert_eq!(matching_resources(lookup("pods").unwrap(), hard), ["pods", "requests.cpu"]);
        assert_eq!(matching_resources(lookup("configmaps").unwrap(), ["configmaps", "pods"]), ["configmaps"]);
    }

    #[test]
    fn quotas_on_cpu_or_memory_require_every_container_to_state_them() {
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "b", "resources": {"requests": {"cpu": "1"}}},
            {"name": "a"}]}}));
        let required = ["limits.cpu".to_string(), "requests.cpu".to_string(), "pods".to_string()];
        assert_eq!(
            pod_constraints(&required, &p).unwrap_err(),
            "must specify limits.cpu for: a,b; requests.cpu for: a"
        );
        assert_eq!(pod_constraints(&["pods".to_string()], &p), Ok(()));
    }

    #[test]
    fn scopes_split_pods_by_deadline_and_qos() {
        let spec = |scopes: Value| -> ResourceQuotaSpec { serde_json::from_value(json!({"scopes": scopes})).unwrap() };
        let best_effort = pod(json!({"spec": {"containers": [{"name": "c"}]}}));
        let bounded = pod(json!({"spec": {"activeDeadlineSeconds": 10,
            "containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]}}));
        let (be, bd) = (PodFacts::of(&best_effort), PodFacts::of(&bounded));
        assert!(pod_matches_scopes(&spec(json!(["BestEffort", "NotTerminating"])), &be));
        assert!(!pod_matches_scopes(&spec(json!(["BestEffort"])), &bd));
        assert!(pod_matches_scopes(&spec(json!(["Terminating", "NotBestEffort"])), &bd));
        assert!(!object_matches_scopes(&spec(json!(["BestEffort"]))));
    }

    #[test]
    fn sums_keep_the_first_nonzero_format() {
        let mut total = Usage::from([("memory".to_string(), Amount::int(0))]);
        add(&mut total, &Usage::from([("memory".to_string(), Amount::parse("64Mi").unwrap())]));
        add(&mut total, &Usage::from([("memory".to_string(), Amount::parse("64Mi").unwrap())]));
        assert_eq!(total["memory"].to_string(), "128Mi");
        assert_eq!(pretty(&mask(&total, ["memory", "cpu"])), "memory=128Mi");
    }
}
