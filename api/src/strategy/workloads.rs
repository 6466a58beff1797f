//! Workload controllers' objects: ReplicationController, ReplicaSet,
//! Deployment, DaemonSet, Job and HorizontalPodAutoscaler. Their defaults
//! (replicas, update strategies, history limits, selectors from template
//! labels) and their rules: the selector must select the template's labels,
//! the template must be a valid pod template with the right restart policy,
//! and apps/v1 selectors never change.

use super::pod::{default_pod_template, validate_pod_template};
use crate::error::Cause;
use crate::kinds::Strategy;
use crate::selector::Selector;
use crate::validation::causes::{immutable, invalid_value, json, required_because};
use crate::validation::checks::{at_least, label_selector, labels, non_negative, one_of, positive, selector_is_empty};
use crate::validation::{forbidden, not_supported, required, syntax};
use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetUpdateStrategy, Deployment, DeploymentStrategy, ReplicaSet, RollingUpdateDaemonSet,
    RollingUpdateDeployment,
};
use k8s_openapi::api::autoscaling::v2::{HorizontalPodAutoscaler, MetricSpec, MetricTarget, ResourceMetricSource};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PodTemplateSpec, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// The label Kubernetes puts on a Job's pods (rkube selects them by it,
/// where Kubernetes would use the controller uid).
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";

fn template_labels(t: &PodTemplateSpec) -> BTreeMap<String, String> {
    t.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default()
}

/// `spec.template.metadata.labels` must satisfy the selector.
fn selector_matches_template(selector: &Selector, t: &PodTemplateSpec, path: &str) -> Vec<Cause> {
    let labels = template_labels(t);
    if selector.is_empty() || selector.matches(&labels) {
        Vec::new()
    } else {
        vec![invalid_value(
            format!("{path}.metadata.labels"),
            json(&labels),
            "`selector` does not match template `labels`",
        )]
    }
}

/// A label-selector workload's selector: well formed, not empty, selecting
/// the template's labels.
fn validate_selector(selector: &LabelSelector, t: &PodTemplateSpec, kind: &str) -> Vec<Cause> {
    let mut causes = label_selector(selector, "spec.selector");
    if selector_is_empty(selector) {
        causes.push(invalid_value("spec.selector", json(selector), &format!("empty selector is invalid for {kind}")));
    }
    match Selector::from_label_selector(selector) {
        Ok(s) => causes.extend(selector_matches_template(&s, t, "spec.template")),
        Err(_) if !causes.is_empty() => {}
        Err(_) => causes.push(invalid_value("spec.selector", json(selector), "invalid label selector")),
    }
    causes
}

/// The template of a controller whose pods run forever: a valid pod
/// template with restartPolicy Always and no activeDeadlineSeconds.
fn validate_long_running_template(t: &PodTemplateSpec, kind: &str) -> Vec<Cause> {
    let mut causes = validate_pod_template(t, "spec.template");
    let spec = t.spec.as_ref();
    let policy = spec.and_then(|s| s.restart_policy.as_deref()).unwrap_or_default();
    if !policy.is_empty() && policy != "Always" {
        causes.push(not_supported("spec.template.spec.restartPolicy", policy, &["Always"]));
    }
    if spec.is_some_and(|s| s.active_deadline_seconds.is_some()) {
        causes.push(forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            &format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
    causes
}

fn selector_unchanged(new: &LabelSelector, old: &LabelSelector) -> Vec<Cause> {
    if new == old { Vec::new() } else { vec![immutable("spec.selector", json(new))] }
}

impl Strategy for ReplicationController {
    fn default_fields(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        if let Some(t) = &mut spec.template {
            default_pod_template(t);
            if let Some(labels) = t.metadata.as_ref().and_then(|m| m.labels.clone()) {
                if spec.selector.as_ref().is_none_or(BTreeMap::is_empty) {
                    spec.selector = Some(labels.clone());
                }
                if self.metadata.labels.as_ref().is_none_or(BTreeMap::is_empty) {
                    self.metadata.labels = Some(labels);
                }
            }
        }
        spec.replicas.get_or_insert(1);
    }

    fn validate(&self) -> Vec<Cause> {
        let spec = self.spec.clone().unwrap_or_default();
        let mut causes = non_negative("spec.minReadySeconds", spec.min_ready_seconds.unwrap_or(0));
        let selector = spec.selector.clone().unwrap_or_default();
        if selector.is_empty() {
            causes.push(required("spec.selector"));
        } else {
            causes.extend(labels(Some(&selector), "spec.selector"));
        }
        causes.extend(non_negative("spec.replicas", spec.replicas.unwrap_or(0)));
        match &spec.template {
            None => causes.push(required("spec.template")),
            Some(t) => {
                causes.extend(selector_matches_template(&Selector::from_map(&selector), t, "spec.template"));
                causes.extend(validate_long_running_template(t, "ReplicationController"));
            }
        }
        causes
    }
}

impl Strategy for ReplicaSet {
    fn default_fields(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        spec.replicas.get_or_insert(1);
        if let Some(t) = &mut spec.template {
            default_pod_template(t);
        }
    }

    fn validate(&self) -> Vec<Cause> {
        let spec = self.spec.clone().unwrap_or_default();
        let mut causes = non_negative("spec.replicas", spec.replicas.unwrap_or(0));
        causes.extend(non_negative("spec.minReadySeconds", spec.min_ready_seconds.unwrap_or(0)));
        match &spec.template {
            None => {
                causes.extend(label_selector(&spec.selector, "spec.selector"));
                causes.push(required("spec.template"));
            }
            Some(t) => {
                causes.extend(validate_selector(&spec.selector, t, "replicaset"));
                causes.extend(validate_long_running_template(t, "ReplicaSet"));
            }
        }
        causes
    }

    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        let mut causes = self.validate();
        let (new, old) = (self.spec.clone().unwrap_or_default(), old.spec.clone().unwrap_or_default());
        causes.extend(selector_unchanged(&new.selector, &old.selector));
        causes
    }
}

/// The number an int-or-percent stands for (`25%` → 25, `3` → 3), and
/// whether it is a percentage.
fn int_or_percent(v: &IntOrString) -> (i64, bool) {
    match v {
        IntOrString::Int(n) => (i64::from(*n), false),
        IntOrString::String(s) => (s.strip_suffix('%').and_then(|n| n.parse().ok()).unwrap_or(0), true),
    }
}

/// A non-negative number or a `N%` percentage.
fn validate_int_or_percent(v: &IntOrString, path: &str) -> Vec<Cause> {
    match v {
        IntOrString::Int(n) => non_negative(path, *n),
        IntOrString::String(s) => {
            syntax::percent(s).into_iter().map(|why| invalid_value(path, s.as_str(), &why)).collect()
        }
    }
}

fn not_over_100_percent(v: &IntOrString, path: &str) -> Vec<Cause> {
    match int_or_percent(v) {
        (n, true) if n > 100 => vec![invalid_value(path, json(v), "must not be greater than 100%")],
        _ => Vec::new(),
    }
}

fn validate_deployment_strategy(strategy: &DeploymentStrategy) -> Vec<Cause> {
    let mut causes = Vec::new();
    let kind = strategy.type_.as_deref().unwrap_or_default();
    match kind {
        "Recreate" if strategy.rolling_update.is_some() => causes
            .push(forbidden("spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'")),
        "Recreate" => {}
        "RollingUpdate" => match &strategy.rolling_update {
            None => causes
                .push(required_because("spec.strategy.rollingUpdate", "this should be defaulted and never be nil")),
            Some(RollingUpdateDeployment { max_surge, max_unavailable }) => {
                let p = "spec.strategy.rollingUpdate";
                let zero = IntOrString::Int(0);
                let (surge, unavailable) =
                    (max_surge.as_ref().unwrap_or(&zero), max_unavailable.as_ref().unwrap_or(&zero));
                causes.extend(validate_int_or_percent(unavailable, &format!("{p}.maxUnavailable")));
                causes.extend(validate_int_or_percent(surge, &format!("{p}.maxSurge")));
                if int_or_percent(unavailable).0 == 0 && int_or_percent(surge).0 == 0 {
                    causes.push(invalid_value(
                        format!("{p}.maxUnavailable"),
                        json(unavailable),
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
                causes.extend(not_over_100_percent(unavailable, &format!("{p}.maxUnavailable")));
            }
        },
        _ => causes.extend(one_of("spec.strategy.type", kind, &["Recreate", "RollingUpdate"])),
    }
    causes
}

impl Strategy for Deployment {
    fn default_fields(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        spec.replicas.get_or_insert(1);
        let strategy = spec.strategy.get_or_insert_with(Default::default);
        if strategy.type_.as_deref().is_none_or(str::is_empty) {
            strategy.type_ = Some("RollingUpdate".into());
        }
        if strategy.type_.as_deref() == Some("RollingUpdate") {
            let ru = strategy.rolling_update.get_or_insert_with(Default::default);
            ru.max_unavailable.get_or_insert_with(|| IntOrString::String("25%".into()));
            ru.max_surge.get_or_insert_with(|| IntOrString::String("25%".into()));
        }
        spec.revision_history_limit.get_or_insert(10);
        spec.progress_deadline_seconds.get_or_insert(600);
        default_pod_template(&mut spec.template);
    }

    fn validate(&self) -> Vec<Cause> {
        let spec = self.spec.clone().unwrap_or_default();
        let mut causes = non_negative("spec.replicas", spec.replicas.unwrap_or(0));
        causes.extend(validate_selector(&spec.selector, &spec.template, "deployment"));
        causes.extend(validate_long_running_template(&spec.template, "Deployment"));
        causes.extend(validate_deployment_strategy(&spec.strategy.clone().unwrap_or_default()));
        let min_ready = spec.min_ready_seconds.unwrap_or(0);
        causes.extend(non_negative("spec.minReadySeconds", min_ready));
        if let Some(limit) = spec.revision_history_limit {
            causes.extend(non_negative("spec.revisionHistoryLimit", limit));
        }
        if let Some(deadline) = spec.progress_deadline_seconds {
            causes.extend(non_negative("spec.progressDeadlineSeconds", deadline));
            if deadline <= min_ready {
                causes.push(invalid_value(
                    "spec.progressDeadlineSeconds",
                    deadline,
                    "must be greater than minReadySeconds",
                ));
            }
        }
        causes
    }

    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        let mut causes = self.validate();
        let (new, old) = (self.spec.clone().unwrap_or_default(), old.spec.clone().unwrap_or_default());
        causes.extend(selector_unchanged(&new.selector, &old.selector));
        causes
    }
}

fn validate_daemonset_strategy(strategy: &DaemonSetUpdateStrategy) -> Vec<Cause> {
    let p = "spec.updateStrategy";
    let kind = strategy.type_.as_deref().unwrap_or_default();
    match kind {
        "OnDelete" => Vec::new(),
        "RollingUpdate" => match &strategy.rolling_update {
            None => vec![required(format!("{p}.rollingUpdate"))],
            Some(RollingUpdateDaemonSet { max_surge, max_unavailable }) => {
                let p = format!("{p}.rollingUpdate");
                let zero = IntOrString::Int(0);
                let (surge, unavailable) =
                    (max_surge.as_ref().unwrap_or(&zero), max_unavailable.as_ref().unwrap_or(&zero));
                let mut causes = validate_int_or_percent(unavailable, &format!("{p}.maxUnavailable"));
                causes.extend(validate_int_or_percent(surge, &format!("{p}.maxSurge")));
                causes.extend(not_over_100_percent(unavailable, &format!("{p}.maxUnavailable")));
                causes.extend(not_over_100_percent(surge, &format!("{p}.maxSurge")));
                match (int_or_percent(unavailable).0 != 0, int_or_percent(surge).0 != 0) {
                    (true, true) => causes.push(invalid_value(
                        format!("{p}.maxSurge"),
                        json(surge),
                        "may not be set when maxUnavailable is non-zero",
                    )),
                    (false, false) => {
                        causes.push(required_because(format!("{p}.maxUnavailable"), "cannot be 0 when maxSurge is 0"));
                    }
                    _ => {}
                }
                causes
            }
        },
        _ => one_of(&format!("{p}.type"), kind, &["RollingUpdate", "OnDelete"]),
    }
}

impl Strategy for DaemonSet {
    fn default_fields(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        let strategy = spec.update_strategy.get_or_insert_with(Default::default);
        if strategy.type_.as_deref().is_none_or(str::is_empty) {
            strategy.type_ = Some("RollingUpdate".into());
        }
        if strategy.type_.as_deref() == Some("RollingUpdate") {
            let ru = strategy.rolling_update.get_or_insert_with(Default::default);
            ru.max_unavailable.get_or_insert(IntOrString::Int(1));
            ru.max_surge.get_or_insert(IntOrString::Int(0));
        }
        spec.revision_history_limit.get_or_insert(10);
        default_pod_template(&mut spec.template);
    }

    fn validate(&self) -> Vec<Cause> {
        let spec = self.spec.clone().unwrap_or_default();
        let mut causes = validate_selector(&spec.selector, &spec.template, "daemonset");
        causes.extend(validate_long_running_template(&spec.template, "DaemonSet"));
        causes.extend(non_negative("spec.minReadySeconds", spec.min_ready_seconds.unwrap_or(0)));
        causes.extend(validate_daemonset_strategy(&spec.update_strategy.clone().unwrap_or_default()));
        if let Some(limit) = spec.revision_history_limit {
            causes.extend(non_negative("spec.revisionHistoryLimit", limit));
        }
        causes
    }

    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        let mut causes = self.validate();
        let (new, old) = (self.spec.clone().unwrap_or_default(), old.spec.clone().unwrap_or_default());
        causes.extend(selector_unchanged(&new.selector, &old.selector));
        causes
    }
}

impl Strategy for Job {
    fn default_fields(&mut self) {
        let name = self.metadata.name.clone().unwrap_or_default();
        let spec = self.spec.get_or_insert_with(Default::default);
        // A Job's restart policy must be chosen (OnFailure or Never): keep
        // what was given rather than defaulting it to Always.
        let restart_policy = spec.template.spec.as_ref().and_then(|s| s.restart_policy.clone());
        default_pod_template(&mut spec.template);
        if let Some(s) = &mut spec.template.spec {
            s.restart_policy = restart_policy;
        }
        if spec.completions.is_none() && spec.parallelism.is_none() {
            spec.completions = Some(1);
        }
        spec.parallelism.get_or_insert(1);
        let backoff = if spec.backoff_limit_per_index.is_some() { i32::MAX } else { 6 };
        spec.backoff_limit.get_or_insert(backoff);
        spec.completion_mode.get_or_insert_with(|| "NonIndexed".into());
        spec.suspend.get_or_insert(false);
        let replacement = if spec.pod_failure_policy.is_some() { "Failed" } else { "TerminatingOrFailed" };
        spec.pod_replacement_policy.get_or_insert_with(|| replacement.into());

        let labels = spec.template.metadata.as_ref().and_then(|m| m.labels.clone());
        if let Some(labels) = labels
            && self.metadata.labels.as_ref().is_none_or(BTreeMap::is_empty)
        {
            self.metadata.labels = Some(labels);
        }
        // Kubernetes generates the selector from the controller uid; rkube
        // uses the job-name labels it also puts on the pods.
        if spec.manual_selector != Some(true) && !name.is_empty() {
            let meta = spec.template.metadata.get_or_insert_with(Default::default);
            let labels = meta.labels.get_or_insert_with(Default::default);
            for key in [JOB_NAME_LABEL, "job-name"] {
                labels.entry(key.into()).or_insert_with(|| name.clone());
            }
        }
        if spec.selector.is_none() {
            let labels = template_labels(&spec.template);
            if !labels.is_empty() {
                spec.selector = Some(LabelSelector { match_labels: Some(labels), match_expressions: None });
            }
        }
    }

    fn validate(&self) -> Vec<Cause> {
        let spec = self.spec.clone().unwrap_or_default();
        let mut causes = Vec::new();
        for (field, value) in [
            ("parallelism", spec.parallelism),
            ("completions", spec.completions),
            ("backoffLimit", spec.backoff_limit),
            ("ttlSecondsAfterFinished", spec.ttl_seconds_after_finished),
        ] {
            if let Some(v) = value {
                causes.extend(non_negative(&format!("spec.{field}"), v));
            }
        }
        if let Some(d) = spec.active_deadline_seconds {
            causes.extend(positive("spec.activeDeadlineSeconds", d));
        }
        let mode = spec.completion_mode.as_deref().unwrap_or("NonIndexed");
        causes.extend(one_of("spec.completionMode", mode, &["NonIndexed", "Indexed"]));
        if mode == "Indexed" && spec.completions.is_none() {
            causes.push(required_because("spec.completions", "when completion mode is Indexed"));
        }
        match &spec.selector {
            None if spec.manual_selector == Some(true) => causes.push(required("spec.selector")),
            None => {}
            Some(sel) => {
                causes.extend(label_selector(sel, "spec.selector"));
                if let Ok(s) = Selector::from_label_selector(sel) {
                    causes.extend(selector_matches_template(&s, &spec.template, "spec.template"));
                }
            }
        }
        let restart_path = "spec.template.spec.restartPolicy";
        causes.extend(
            validate_pod_template(&spec.template, "spec.template").into_iter().filter(|c| c.field != restart_path),
        );
        match spec.template.spec.as_ref().and_then(|s| s.restart_policy.as_deref()).unwrap_or_default() {
            "OnFailure" | "Never" => {}
            "" | "Always" => causes.push(required_because(restart_path, "valid values: \"OnFailure\", \"Never\"")),
            other => causes.push(not_supported(restart_path, other, &["OnFailure", "Never"])),
        }
        causes
    }

    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        let mut causes = self.validate();
        let (new, old) = (self.spec.clone().unwrap_or_default(), old.spec.clone().unwrap_or_default());
        if new.selector != old.selector {
            causes.push(immutable("spec.selector", json(&new.selector)));
        }
        if new.template != old.template {
            causes.push(immutable("spec.template", json(&new.template)));
        }
        if new.completion_mode != old.completion_mode {
            causes.push(immutable("spec.completionMode", json(&new.completion_mode)));
        }
        if new.completions != old.completions {
            causes.push(immutable("spec.completions", json(&new.completions)));
        }
        causes
    }
}

impl Strategy for HorizontalPodAutoscaler {
    fn default_fields(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        spec.min_replicas.get_or_insert(1);
        if spec.metrics.as_ref().is_none_or(Vec::is_empty) {
            spec.metrics = Some(vec![MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget {
                        type_: "Utilization".into(),
                        average_utilization: Some(80),
                        ..Default::default()
                    },
                }),
                ..Default::default()
            }]);
        }
    }

    fn validate(&self) -> Vec<Cause> {
        let spec = self.spec.clone().unwrap_or_default();
        let mut causes = Vec::new();
        let target = &spec.scale_target_ref;
        if target.kind.is_empty() {
            causes.push(required("spec.scaleTargetRef.kind"));
        }
        if target.name.is_empty() {
            causes.push(required("spec.scaleTargetRef.name"));
        } else if target.name.contains('/') || target.name.contains('%') {
            causes.push(crate::validation::invalid(
                "spec.scaleTargetRef.name",
                &target.name,
                "may not contain '/' or '%'",
            ));
        }
        if let Some(min) = spec.min_replicas {
            causes.extend(at_least("spec.minReplicas", min, 1));
        }
        if spec.max_replicas < 1 {
            causes.push(invalid_value("spec.maxReplicas", spec.max_replicas, "must be greater than 0"));
        }
        if spec.min_replicas.is_some_and(|min| spec.max_replicas < min) {
            causes.push(invalid_value(
                "spec.maxReplicas",
                spec.max_replicas,
                "must be greater than or equal to `minReplicas`",
            ));
        }
        for (i, m) in spec.metrics.iter().flatten().enumerate() {
            causes.extend(validate_metric(m, &format!("spec.metrics[{i}]")));
        }
        causes
    }
}

fn validate_metric(m: &MetricSpec, path: &str) -> Vec<Cause> {
    let types = ["ContainerResource", "External", "Object", "Pods", "Resource"];
    let mut causes = one_of(&format!("{path}.type"), &m.type_, &types);
    let source_set = match m.type_.as_str() {
        "ContainerResource" => m.container_resource.is_some(),
        "External" => m.external.is_some(),
        "Object" => m.object.is_some(),
        "Pods" => m.pods.is_some(),
        "Resource" => m.resource.is_some(),
        _ => true,
    };
    if !source_set {
        let field = format!("{}{}", m.type_[..1].to_lowercase(), &m.type_[1..]);
        causes.push(required_because(
            format!("{path}.{field}"),
            &format!("must populate information for the given metric source (type {})", m.type_),
        ));
    }
    if let Some(r) = &m.resource {
        let p = format!("{path}.resource");
        if r.name.is_empty() {
            causes.push(required(format!("{p}.name")));
        }
        causes.extend(one_of(&format!("{p}.target.type"), &r.target.type_, &["AverageValue", "Utilization", "Value"]));
        if let Some(u) = r.target.average_utilization {
            causes.extend(positive(&format!("{p}.target.averageUtilization"), u));
        }
    }
    causes
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

    fn template(labels: Value) -> Value {
        json!({"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
    }

    #[test]
    fn rc_defaults_selector_labels_and_replicas_from_the_template() {
        let rc: ReplicationController =
            object(json!({"metadata": {"name": "rc"}, "spec": {"template": template(json!({"app": "web"}))}}));
        let spec = rc.spec.as_ref().expect("spec");
        assert_eq!(spec.replicas, Some(1));
        assert_eq!(spec.selector, Some(BTreeMap::from([("app".into(), "web".into())])));
        assert_eq!(rc.metadata.labels, spec.selector);
        let t = spec.template.as_ref().expect("template").spec.as_ref().expect("spec");
        assert_eq!(t.restart_policy.as_deref(), Some("Always"));
        assert!(rc.validate().is_empty(), "{:?}", rc.validate());
    }

    #[test]
    fn rc_selector_must_match_template() {
        let rc: ReplicationController = object(json!({"metadata": {"name": "rc"},
            "spec": {"selector": {"app": "db"}, "replicas": -1, "template": template(json!({"app": "web"}))}}));
        assert_eq!(
            messages(&rc.validate()),
            [
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
                "spec.template.metadata.labels: Invalid value: {\"app\":\"web\"}: `selector` does not match template `labels`",
            ]
        );
        let no_template: ReplicationController = object(json!({"metadata": {"name": "rc"}, "spec": {}}));
        assert_eq!(
            messages(&no_template.validate()),
            ["spec.selector: Required value", "spec.template: Required value"]
        );
    }

    #[test]
    fn rc_template_must_restart_always() {
        let mut t = template(json!({"app": "web"}));
        t["spec"]["restartPolicy"] = "OnFailure".into();
        let rc: ReplicationController = object(json!({"metadata": {"name": "rc"}, "spec": {"template": t}}));
        assert_eq!(
            messages(&rc.validate()),
            ["spec.template.spec.restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\""]
        );
    }

    #[test]
    fn replicaset_selector_is_checked_and_immutable() {
        let rs: ReplicaSet = object(json!({"metadata": {"name": "rs"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template(json!({"app": "web"}))}}));
        assert_eq!(rs.spec.as_ref().expect("spec").replicas, Some(1));
        assert!(rs.validate().is_empty(), "{:?}", rs.validate());
        let mut changed = rs.clone();
        changed.spec.as_mut().expect("spec").selector.match_labels =
            Some(BTreeMap::from([("app".into(), "db".into())]));
        changed.spec.as_mut().expect("spec").template.as_mut().expect("t").metadata =
            Some(serde_json::from_value(json!({"labels": {"app": "db"}})).expect("meta"));
        assert_eq!(
            messages(&changed.validate_update(&rs)),
            ["spec.selector: Invalid value: {\"matchLabels\":{\"app\":\"db\"}}: field is immutable"]
        );
        let empty: ReplicaSet = object(
            json!({"metadata": {"name": "rs"}, "spec": {"selector": {}, "template": template(json!({"app": "web"}))}}),
        );
        assert_eq!(
            messages(&empty.validate()),
            ["spec.selector: Invalid value: {}: empty selector is invalid for replicaset"]
        );
    }

    #[test]
    fn deployment_defaults_rolling_update_and_limits() {
        let d: Deployment = object(json!({"metadata": {"name": "d"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template(json!({"app": "web"}))}}));
        let spec = d.spec.as_ref().expect("spec");
        assert_eq!(spec.replicas, Some(1));
        assert_eq!(spec.revision_history_limit, Some(10));
        assert_eq!(spec.progress_deadline_seconds, Some(600));
        let strategy = spec.strategy.as_ref().expect("strategy");
        assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
        let ru = strategy.rolling_update.as_ref().expect("rollingUpdate");
        assert_eq!(ru.max_unavailable, Some(IntOrString::String("25%".into())));
        assert_eq!(ru.max_surge, Some(IntOrString::String("25%".into())));
        assert!(d.validate().is_empty(), "{:?}", d.validate());
    }

    #[test]
    fn deployment_strategy_rules() {
        let d: Deployment = object(json!({"metadata": {"name": "d"}, "spec": {
            "selector": {"matchLabels": {"app": "web"}}, "template": template(json!({"app": "web"})),
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}},
            "minReadySeconds": 700}}));
        assert_eq!(
            messages(&d.validate()),
            [
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"0%\": may not be 0 when `maxSurge` is 0",
                "spec.progressDeadlineSeconds: Invalid value: 600: must be greater than minReadySeconds",
            ]
        );
        let recreate: Deployment = object(json!({"metadata": {"name": "d"}, "spec": {
            "selector": {"matchLabels": {"app": "web"}}, "template": template(json!({"app": "web"})),
            "strategy": {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}}}));
        assert_eq!(
            messages(&recreate.validate()),
            ["spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"]
        );
        let odd: Deployment = object(json!({"metadata": {"name": "d"}, "spec": {
            "selector": {"matchLabels": {"app": "web"}}, "template": template(json!({"app": "web"})),
            "strategy": {"type": "BlueGreen"}}}));
        assert_eq!(
            messages(&odd.validate()),
            ["spec.strategy.type: Unsupported value: \"BlueGreen\": supported values: \"Recreate\", \"RollingUpdate\""]
        );
    }

    #[test]
    fn deployment_selector_must_match_template_labels() {
        let d: Deployment = object(json!({"metadata": {"name": "d"}, "spec": {
            "selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["db"]}]},
            "template": template(json!({"app": "web"}))}}));
        assert_eq!(
            messages(&d.validate()),
            [
                "spec.template.metadata.labels: Invalid value: {\"app\":\"web\"}: `selector` does not match template `labels`"
            ]
        );
    }

    #[test]
    fn daemonset_defaults_and_surge_rules() {
        let ds: DaemonSet = object(json!({"metadata": {"name": "ds"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": template(json!({"app": "agent"}))}}));
        let spec = ds.spec.as_ref().expect("spec");
        let strategy = spec.update_strategy.as_ref().expect("strategy");
        assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
        let ru = strategy.rolling_update.as_ref().expect("rollingUpdate");
        assert_eq!(
            (ru.max_unavailable.clone(), ru.max_surge.clone()),
            (Some(IntOrString::Int(1)), Some(IntOrString::Int(0)))
        );
        assert_eq!(spec.revision_history_limit, Some(10));
        assert!(ds.validate().is_empty(), "{:?}", ds.validate());

        let mut both = ds.clone();
        let ru = both
            .spec
            .as_mut()
            .and_then(|s| s.update_strategy.as_mut())
            .and_then(|u| u.rolling_update.as_mut())
            .expect("ru");
        ru.max_surge = Some(IntOrString::Int(1));
        assert_eq!(
            messages(&both.validate()),
            [
                "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: 1: may not be set when maxUnavailable is non-zero"
            ]
        );
        let mut t = template(json!({"app": "agent"}));
        t["spec"]["restartPolicy"] = "Never".into();
        let never: DaemonSet = object(
            json!({"metadata": {"name": "ds"}, "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": t}}),
        );
        assert_eq!(
            messages(&never.validate()),
            ["spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""]
        );
    }

    #[test]
    fn job_defaults_completions_backoff_and_selector() {
        let mut t = template(json!({"app": "batch"}));
        t["spec"]["restartPolicy"] = "Never".into();
        let job: Job = object(json!({"metadata": {"name": "pi"}, "spec": {"template": t}}));
        let spec = job.spec.as_ref().expect("spec");
        assert_eq!((spec.parallelism, spec.completions, spec.backoff_limit), (Some(1), Some(1), Some(6)));
        assert_eq!(spec.completion_mode.as_deref(), Some("NonIndexed"));
        assert_eq!(spec.suspend, Some(false));
        let labels = template_labels(&spec.template);
        assert_eq!(labels.get(JOB_NAME_LABEL).map(String::as_str), Some("pi"));
        assert_eq!(spec.selector.as_ref().and_then(|s| s.match_labels.clone()), Some(labels));
        assert_eq!(job.metadata.labels, Some(BTreeMap::from([("app".into(), "batch".into())])));
        assert!(job.validate().is_empty(), "{:?}", job.validate());

        let parallel: Job = object(json!({"metadata": {"name": "p"}, "spec": {"parallelism": 3, "template": t}}));
        assert_eq!(parallel.spec.as_ref().expect("spec").completions, None);
    }

    #[test]
    fn job_requires_on_failure_or_never() {
        let job: Job = object(json!({"metadata": {"name": "j"}, "spec": {"template": template(json!({}))}}));
        assert_eq!(
            messages(&job.validate()),
            ["spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""]
        );
        let mut t = template(json!({}));
        t["spec"]["restartPolicy"] = "Always".into();
        let always: Job = object(json!({"metadata": {"name": "j"}, "spec": {"template": t, "backoffLimit": -1}}));
        assert_eq!(
            messages(&always.validate()),
            [
                "spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0",
                "spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\"",
            ]
        );
    }

    #[test]
    fn job_template_is_immutable() {
        let mut t = template(json!({}));
        t["spec"]["restartPolicy"] = "Never".into();
        let job: Job = object(json!({"metadata": {"name": "j"}, "spec": {"template": t}}));
        let mut changed = job.clone();
        changed.spec.as_mut().expect("spec").template.spec.as_mut().expect("spec").containers[0].image =
            Some("other".into());
        let causes = changed.validate_update(&job);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "spec.template");
        assert!(causes[0].message.ends_with("field is immutable"));
        let mut suspended = job.clone();
        suspended.spec.as_mut().expect("spec").suspend = Some(true);
        assert!(suspended.validate_update(&job).is_empty());
    }

    #[test]
    fn hpa_defaults_min_replicas_and_checks_bounds() {
        let hpa: HorizontalPodAutoscaler = object(json!({"metadata": {"name": "h"}, "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 5}}));
        let spec = hpa.spec.as_ref().expect("spec");
        assert_eq!(spec.min_replicas, Some(1));
        assert_eq!(
            spec.metrics.as_ref().expect("metrics")[0].resource.as_ref().expect("cpu").target.average_utilization,
            Some(80)
        );
        assert!(hpa.validate().is_empty(), "{:?}", hpa.validate());

        let bad: HorizontalPodAutoscaler = object(json!({"metadata": {"name": "h"}, "spec": {
            "scaleTargetRef": {"kind": "", "name": ""}, "minReplicas": 3, "maxReplicas": 2}}));
        assert_eq!(
            messages(&bad.validate()),
            [
                "spec.scaleTargetRef.kind: Required value",
                "spec.scaleTargetRef.name: Required value",
                "spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`",
            ]
        );
    }
}
