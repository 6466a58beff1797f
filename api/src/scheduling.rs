//! Where a pod may run, decided as Kubernetes' `component-helpers/scheduling/corev1`
//! decides it: the required node affinity (`nodeSelector` and the required
//! `nodeSelectorTerms`, including `metadata.name` field terms) and the
//! node's taints against the pod's tolerations.
//!
//! The scheduler filters nodes with it; the DaemonSet controller decides
//! with it which nodes should run a daemon pod, so both agree.

use crate::selector::{Op, Requirement};
use k8s_openapi::api::core::v1::{Node, NodeSelectorRequirement, NodeSelectorTerm, PodSpec, Taint, Toleration};
use std::collections::BTreeMap;

/// The taint the node lifecycle controller puts on nodes that are not Ready.
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The taint the node lifecycle controller puts on nodes whose Ready is Unknown.
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// The taint a cordoned node stands for; pods tolerating it ignore `spec.unschedulable`.
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// The taint of a node short of disk.
pub const TAINT_DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
/// The taint of a node short of memory.
pub const TAINT_MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
/// The taint of a node short of process ids.
pub const TAINT_PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
/// The taint of a node whose network is not configured.
pub const TAINT_NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";

/// One `nodeSelectorTerm`: label expressions and `metadata.name` field
/// expressions, all of which must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TermMatcher {
    labels: Vec<Requirement>,
    /// `metadata.name` expressions (In or NotIn).
    names: Vec<(Op, Vec<String>)>,
    /// False when an expression is malformed: the term then matches nothing.
    valid: bool,
}

/// Converts a node selector requirement; None when it is malformed (an
/// unknown operator, values where none belong, a non-integer for Gt/Lt).
fn requirement(r: &NodeSelectorRequirement) -> Option<Requirement> {
    let values = r.values.clone().unwrap_or_default();
    let op = match r.operator.as_str() {
        "In" => Op::In,
        "NotIn" => Op::NotIn,
        "Exists" => Op::Exists,
        "DoesNotExist" => Op::DoesNotExist,
        "Gt" => Op::Gt,
        "Lt" => Op::Lt,
        _ => return None,
    };
    let ok = match op {
        Op::In | Op::NotIn => !values.is_empty(),
        Op::Exists | Op::DoesNotExist => values.is_empty(),
        Op::Gt | Op::Lt => values.len() == 1 && values[0].parse::<i64>().is_ok(),
    };
    ok.then(|| Requirement { key: r.key.clone(), op, values })
}

impl TermMatcher {
    /// Parses a term.
    pub fn new(term: &NodeSelectorTerm) -> TermMatcher {
        let mut valid = true;
        let mut labels = Vec::new();
        for r in term.match_expressions.iter().flatten() {
            match requirement(r) {
                Some(req) => labels.push(req),
                None => valid = false,
            }
        }
        let mut names = Vec::new();
        for r in term.match_fields.iter().flatten() {
            match requirement(r) {
                Some(req) if r.key == "metadata.name" && matches!(req.op, Op::In | Op::NotIn) => {
                    names.push((req.op, req.values))
                }
                _ => valid = false,
            }
        }
        TermMatcher { labels, names, valid }
    }

    /// Whether a node with this name and these labels satisfies the term. An
    /// empty term matches no node, as in Kubernetes.
    pub fn matches(&self, node_name: &str, labels: &BTreeMap<String, String>) -> bool {
        if !self.valid || (self.labels.is_empty() && self.names.is_empty()) {
            return false;
        }
        self.labels.iter().all(|r| r.matches(labels))
            && self.names.iter().all(|(op, values)| {
                let listed = values.iter().any(|v| v == node_name);
                if *op == Op::In { listed } else { !listed }
            })
    }
}

/// A pod's required node affinity (Kubernetes' `nodeaffinity.RequiredNodeAffinity`):
/// the labels its `nodeSelector` asks for, and its required node selector
/// terms, any one of which must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequiredNodeAffinity {
    /// `spec.nodeSelector`.
    pub node_selector: BTreeMap<String, String>,
    /// `requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms`, if set.
    pub terms: Option<Vec<TermMatcher>>,
}

impl RequiredNodeAffinity {
    /// The required node affinity of a pod spec.
    pub fn of(spec: &PodSpec) -> RequiredNodeAffinity {
        let terms = spec
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|na| na.required_during_scheduling_ignored_during_execution.as_ref())
            .map(|sel| sel.node_selector_terms.iter().map(TermMatcher::new).collect());
        RequiredNodeAffinity { node_selector: spec.node_selector.clone().unwrap_or_default(), terms }
    }

    /// Whether the node `node_name` with `labels` satisfies both the
    /// nodeSelector and (one of) the terms.
    pub fn matches(&self, node_name: &str, labels: &BTreeMap<String, String>) -> bool {
        self.node_selector.iter().all(|(k, v)| labels.get(k) == Some(v))
            && self.terms.as_ref().is_none_or(|terms| terms.iter().any(|t| t.matches(node_name, labels)))
    }
}

/// Whether `toleration` tolerates `taint` (Kubernetes' `ToleratesTaint`):
/// the effect matches (or the toleration names none), the key matches (or
/// the toleration names none, with `Exists`), and the value is equal (or the
/// operator is `Exists`).
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or_default();
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or_default() {
        "" | "Equal" => toleration.value.as_deref().unwrap_or_default() == taint.value.as_deref().unwrap_or_default(),
        "Exists" => true,
        _ => false,
    }
}

/// Whether any of `tolerations` tolerates `taint`.
pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

/// The first of `taints` that `applies` selects and no toleration tolerates
/// (Kubernetes' `FindMatchingUntoleratedTaint`).
pub fn find_untolerated_taint<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
    applies: impl Fn(&Taint) -> bool,
) -> Option<&'a Taint> {
    taints.iter().filter(|t| applies(t)).find(|t| !tolerated(tolerations, t))
}

/// `taints` plus `node.kubernetes.io/not-ready:NoSchedule` (or `unreachable`
/// when the Ready condition's status is Unknown) when the node is not Ready
/// and carries no such taint yet: the taint Kubernetes' node lifecycle
/// controller would have put there. `ready` is the Ready condition's status.
pub fn with_lifecycle_taint(mut taints: Vec<Taint>, ready: Option<&str>) -> Vec<Taint> {
    let key = match ready {
        Some("True") => return taints,
        Some("Unknown") => TAINT_UNREACHABLE,
        _ => TAINT_NOT_READY,
    };
    let tainted =
        taints.iter().any(|t| (t.key == TAINT_NOT_READY || t.key == TAINT_UNREACHABLE) && t.effect == "NoSchedule");
    if !tainted {
        taints.push(Taint { key: key.to_string(), effect: "NoSchedule".into(), ..Default::default() });
    }
    taints
}

/// A node's taints as placement sees them: `spec.taints` with the
/// lifecycle taint of [`with_lifecycle_taint`].
pub fn node_taints(node: &Node) -> Vec<Taint> {
    let taints = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.as_str());
    with_lifecycle_taint(taints, ready)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn term(v: Value) -> TermMatcher {
        TermMatcher::new(&serde_json::from_value(v).expect("a valid term"))
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn term_expressions_must_all_hold() {
        let t = term(json!({"matchExpressions": [
            {"key": "zone", "operator": "In", "values": ["north", "east"]},
            {"key": "disk", "operator": "NotIn", "values": ["hdd"]},
            {"key": "cores", "operator": "Gt", "values": ["4"]},
            {"key": "gen", "operator": "Lt", "values": ["3"]},
            {"key": "gpu", "operator": "Exists"},
            {"key": "spot", "operator": "DoesNotExist"}]}));
        let good = labels(&[("zone", "north"), ("cores", "8"), ("gen", "2"), ("gpu", "")]);
        assert!(t.matches("n1", &good));
        for (k, v) in [("zone", "south"), ("disk", "hdd"), ("cores", "4"), ("gen", "3"), ("spot", "yes")] {
            let mut l = good.clone();
            l.insert(k.to_string(), v.to_string());
            assert!(!t.matches("n1", &l), "{k}={v} should fail the term");
        }
        let mut no_gpu = good.clone();
        no_gpu.remove("gpu");
        assert!(!t.matches("n1", &no_gpu));
    }

    #[test]
    fn gt_and_lt_fail_on_missing_or_non_integer_labels() {
        let t = term(json!({"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]}]}));
        assert!(!t.matches("n1", &labels(&[])));
        assert!(!t.matches("n1", &labels(&[("cores", "many")])));
    }

    #[test]
    fn match_fields_select_by_node_name() {
        let t = term(json!({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1", "n2"]}]}));
        assert!(t.matches("n2", &labels(&[])));
        assert!(!t.matches("n3", &labels(&[])));
        let not = term(json!({"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]}));
        assert!(!not.matches("n1", &labels(&[])) && not.matches("n2", &labels(&[])));
    }

    #[test]
    fn empty_or_malformed_terms_match_nothing() {
        assert!(!term(json!({})).matches("n1", &labels(&[("a", "b")])));
        let bad_op = term(json!({"matchExpressions": [{"key": "a", "operator": "Near", "values": ["b"]}]}));
        assert!(!bad_op.matches("n1", &labels(&[("a", "b")])));
        let bad_gt = term(json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["x"]}]}));
        assert!(!bad_gt.matches("n1", &labels(&[("a", "9")])));
        let bad_field = term(json!({"matchFields": [{"key": "metadata.uid", "operator": "In", "values": ["x"]}]}));
        assert!(!bad_field.matches("x", &labels(&[])));
    }

    #[test]
    fn required_affinity_needs_the_node_selector_and_one_term() {
        let spec: PodSpec = serde_json::from_value(json!({"containers": [], "nodeSelector": {"disk": "ssd"},
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]},
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["north"]}]}]}}}}))
        .expect("a valid spec");
        let affinity = RequiredNodeAffinity::of(&spec);
        assert!(affinity.matches("n1", &labels(&[("disk", "ssd")])), "the name term");
        assert!(affinity.matches("n2", &labels(&[("disk", "ssd"), ("zone", "north")])), "the label term");
        assert!(!affinity.matches("n2", &labels(&[("disk", "ssd")])), "no term");
        assert!(!affinity.matches("n1", &labels(&[("disk", "hdd")])), "not the node selector");
        assert!(RequiredNodeAffinity::default().matches("any", &labels(&[])), "nothing required");
    }

    #[test]
    fn toleration_matching_follows_kubernetes() {
        let taint =
            Taint { key: "k".into(), value: Some("v".into()), effect: "NoSchedule".into(), ..Default::default() };
        let t = |v: Value| -> Toleration { serde_json::from_value(v).expect("toleration") };
        assert!(tolerates(&t(json!({"key": "k", "value": "v"})), &taint));
        assert!(!tolerates(&t(json!({"key": "k", "value": "w"})), &taint));
        assert!(tolerates(&t(json!({"key": "k", "operator": "Exists"})), &taint));
        assert!(!tolerates(&t(json!({"key": "k", "operator": "Exists", "effect": "NoExecute"})), &taint));
        assert!(tolerates(&t(json!({"operator": "Exists", "effect": "NoSchedule"})), &taint));
        assert!(!tolerates(&t(json!({"key": "other", "operator": "Exists"})), &taint));
        assert!(!tolerates(&t(json!({"key": "k", "operator": "Near", "value": "v"})), &taint));
    }

    #[test]
    fn the_first_untolerated_taint_of_the_chosen_effects_is_found() {
        let taints: Vec<Taint> = serde_json::from_value(json!([
            {"key": "soft", "effect": "PreferNoSchedule"},
            {"key": "a", "effect": "NoSchedule"},
            {"key": "b", "effect": "NoExecute"}]))
        .expect("taints");
        let tolerations: Vec<Toleration> =
            serde_json::from_value(json!([{"key": "a", "operator": "Exists"}])).expect("tolerations");
        let hard = |t: &Taint| t.effect == "NoSchedule" || t.effect == "NoExecute";
        assert_eq!(find_untolerated_taint(&taints, &tolerations, hard).map(|t| t.key.as_str()), Some("b"));
        assert_eq!(find_untolerated_taint(&taints, &tolerations, |t| t.effect == "NoSchedule"), None);
    }

    #[test]
    fn nodes_that_are_not_ready_get_the_lifecycle_taint() {
        let node = |ready: Option<&str>, taints: Value| -> Node {
            let conditions = ready.map(|s| json!([{"type": "Ready", "status": s}])).unwrap_or(json!([]));
            serde_json::from_value(json!({"metadata": {"name": "n"}, "spec": {"taints": taints},
                "status": {"conditions": conditions}}))
            .expect("a node")
        };
        let keys = |n: &Node| node_taints(n).into_iter().map(|t| (t.key, t.effect)).collect::<Vec<_>>();
        let ns = |k: &str| (k.to_string(), "NoSchedule".to_string());
        assert!(keys(&node(Some("True"), json!([]))).is_empty());
        assert_eq!(keys(&node(Some("False"), json!([]))), [ns(TAINT_NOT_READY)]);
        assert_eq!(keys(&node(Some("Unknown"), json!([]))), [ns(TAINT_UNREACHABLE)]);
        assert_eq!(keys(&node(None, json!([]))), [ns(TAINT_NOT_READY)]);
        let tainted = node(Some("False"), json!([{"key": TAINT_NOT_READY, "effect": "NoSchedule"}]));
        assert_eq!(keys(&tainted), [ns(TAINT_NOT_READY)], "not tainted twice");
    }
}
