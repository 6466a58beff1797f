//! Pods and pod templates: the defaults Kubernetes applies to every pod spec
//! ([`default_pod_spec`]), the ones only pods get (requests from limits,
//! service links, host-network ports, status), the QoS class, the shared
//! spec validation ([`validate_pod_spec`], also used for every workload's
//! template) and the rules for updating a pod.

use super::container::{ContainerKind, PodContext, default_container, validate_container};
use super::scheduling::{validate_affinity, validate_tolerations, validate_topology_spread};
use super::volume::{default_volume, validate_volumes};
use crate::error::Cause;
use crate::kinds::Strategy;
use crate::quantity;
use crate::validation::causes::{invalid_value, required_because};
use crate::validation::checks::{dns_label, dns_subdomain, formatted, label_key, labels, non_negative, one_of};
use crate::validation::{forbidden, required, resources, syntax};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodStatus, PodTemplateSpec, Toleration};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// The scheduler pods get when they do not name one.
pub const DEFAULT_SCHEDULER: &str = "default-scheduler";

/// The restart policies a pod may have.
pub const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];

const DNS_POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];

const UPDATABLE_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,\
`spec.tolerations` (only additions to existing tolerations),\
`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// Applies `SetDefaults_PodSpec` and the defaults of everything inside a pod
/// spec (containers, probes, ports, volumes). Used for pods and for every
/// pod template.
pub fn default_pod_spec(spec: &mut PodSpec) {
    if spec.dns_policy.as_deref().is_none_or(str::is_empty) {
        spec.dns_policy = Some("ClusterFirst".into());
    }
    if spec.restart_policy.as_deref().is_none_or(str::is_empty) {
        spec.restart_policy = Some("Always".into());
    }
    spec.security_context.get_or_insert_with(Default::default);
    spec.termination_grace_period_seconds.get_or_insert(30);
    if spec.scheduler_name.as_deref().is_none_or(str::is_empty) {
        spec.scheduler_name = Some(DEFAULT_SCHEDULER.into());
    }
    for c in spec.containers.iter_mut().chain(spec.init_containers.iter_mut().flatten()) {
        default_container(c);
    }
    for v in spec.volumes.iter_mut().flatten() {
        default_volume(v);
    }
}

/// Applies [`default_pod_spec`] to a template's spec, if it has one.
pub fn default_pod_template(template: &mut PodTemplateSpec) {
    if let Some(spec) = &mut template.spec {
        default_pod_spec(spec);
    }
}

/// The defaults `SetDefaults_Pod` applies to pods but not to templates.
fn default_pod_only(spec: &mut PodSpec) {
    let host_network = spec.host_network == Some(true);
    for c in spec.containers.iter_mut().chain(spec.init_containers.iter_mut().flatten()) {
        if let Some(r) = &mut c.resources
            && let Some(limits) = &r.limits
        {
            let requests = r.requests.get_or_insert_with(Default::default);
            for (name, q) in limits {
                requests.entry(name.clone()).or_insert_with(|| q.clone());
            }
        }
        if host_network {
            for p in c.ports.iter_mut().flatten() {
                if p.host_port.is_none_or(|hp| hp == 0) {
                    p.host_port = Some(p.container_port);
                }
            }
        }
    }
    spec.enable_service_links.get_or_insert(true);
}

/// The pod's QoS class: `Guaranteed` when every container limits cpu and
/// memory and requests equal limits, `BestEffort` when nothing is requested
/// or limited, `Burstable` otherwise.
pub fn pod_qos_class(spec: &PodSpec) -> &'static str {
    let mut requests: BTreeMap<&str, i128> = BTreeMap::new();
    let mut limits: BTreeMap<&str, i128> = BTreeMap::new();
    let mut guaranteed = true;
    let positive = |list: Option<&resources::ResourceList>| -> Vec<(&'static str, i128)> {
        let mut out = Vec::new();
        for name in ["cpu", "memory"] {
            let millis = list.and_then(|l| l.get(name)).and_then(|q| quantity::parse_k8s(q).ok()).map(|q| q.millis());
            if let Some(m) = millis.filter(|m| *m > 0) {
                out.push((name, m));
            }
        }
        out
    };
    for c in spec.containers.iter().chain(spec.init_containers.iter().flatten()) {
        let r = c.resources.as_ref();
        for (name, m) in positive(r.and_then(|r| r.requests.as_ref())) {
            *requests.entry(name).or_default() += m;
        }
        let found = positive(r.and_then(|r| r.limits.as_ref()));
        if found.len() < 2 {
            guaranteed = false;
        }
        for (name, m) in found {
            *limits.entry(name).or_default() += m;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed && requests.iter().all(|(name, r)| limits.get(name) == Some(r)) && requests.len() == limits.len() {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Validates a pod spec at `path` (`spec`, `spec.template.spec`): the
/// checks Kubernetes' `ValidatePodSpec` makes that rkube enforces.
pub fn validate_pod_spec(spec: &PodSpec, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    let grace = spec.termination_grace_period_seconds;
    match grace {
        None => causes.push(required(format!("{path}.terminationGracePeriodSeconds"))),
        Some(g) => causes.extend(non_negative(&format!("{path}.terminationGracePeriodSeconds"), g)),
    }
    let (volumes, volume_causes) =
        validate_volumes(spec.volumes.as_deref().unwrap_or_default(), &format!("{path}.volumes"));
    causes.extend(volume_causes);
    let pod = PodContext { volumes, grace_period: grace };

    let containers_path = format!("{path}.containers");
    if spec.containers.is_empty() {
        causes.push(required(&containers_path));
    }
    let mut names = BTreeSet::new();
    for (i, c) in spec.containers.iter().enumerate() {
        let idx = format!("{containers_path}[{i}]");
        causes.extend(validate_container(c, &idx, ContainerKind::Regular, &pod));
        if !names.insert(c.name.as_str()) {
            causes.push(crate::validation::duplicate(format!("{idx}.name"), &c.name));
        }
    }
    causes.extend(host_port_conflicts(spec.containers.iter().enumerate(), &containers_path));
    let init_path = format!("{path}.initContainers");
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let idx = format!("{init_path}[{i}]");
        causes.extend(validate_container(c, &idx, ContainerKind::Init, &pod));
        if names.contains(c.name.as_str()) {
            causes.push(crate::validation::duplicate(format!("{idx}.name"), &c.name));
        } else if !c.name.is_empty() {
            names.insert(c.name.as_str());
        }
        // Init containers run one at a time: only conflicts within one count.
        causes.extend(host_port_conflicts(std::iter::once((i, c)), &init_path));
    }

    if spec.host_network == Some(true) {
        for (i, c) in spec.containers.iter().enumerate() {
            for (j, p) in c.ports.iter().flatten().enumerate() {
                let hp = p.host_port.unwrap_or(0);
                if hp != 0 && hp != p.container_port {
                    causes.push(invalid_value(
                        format!("{containers_path}[{i}].ports[{j}].hostPort"),
                        hp,
                        "must match `containerPort` when `hostNetwork` is true",
                    ));
                }
            }
        }
    }
    causes.extend(one_of(
        &format!("{path}.restartPolicy"),
        spec.restart_policy.as_deref().unwrap_or_default(),
        RESTART_POLICIES,
    ));
    let dns_policy = spec.dns_policy.as_deref().unwrap_or_default();
    causes.extend(one_of(&format!("{path}.dnsPolicy"), dns_policy, DNS_POLICIES));
    causes.extend(labels(spec.node_selector.as_ref(), &format!("{path}.nodeSelector")));
    causes.extend(security_context(spec, path));
    if let Some(a) = &spec.affinity {
        causes.extend(validate_affinity(a, &format!("{path}.affinity")));
    }
    causes.extend(dns_config(spec, dns_policy, &format!("{path}.dnsConfig")));
    for (i, g) in spec.readiness_gates.iter().flatten().enumerate() {
        causes.extend(label_key(&format!("{path}.readinessGates[{i}].conditionType"), &g.condition_type));
    }
    let mut gates = BTreeSet::new();
    for (i, g) in spec.scheduling_gates.iter().flatten().enumerate() {
        let p = format!("{path}.schedulingGates[{i}]");
        causes.extend(label_key(&p, &g.name));
        if !gates.insert(g.name.as_str()) {
            causes.push(crate::validation::duplicate(&p, &g.name));
        }
    }
    if let Some(t) = &spec.topology_spread_constraints {
        causes.extend(validate_topology_spread(t, &format!("{path}.topologySpreadConstraints")));
    }
    for (field, value) in [
        ("serviceAccountName", &spec.service_account_name),
        ("nodeName", &spec.node_name),
        ("priorityClassName", &spec.priority_class_name),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            causes.extend(dns_subdomain(&format!("{path}.{field}"), v));
        }
    }
    if let Some(v) = spec.active_deadline_seconds
        && !(1..=i64::from(i32::MAX)).contains(&v)
    {
        causes.push(invalid_value(
            format!("{path}.activeDeadlineSeconds"),
            v,
            "must be between 1 and 2147483647, inclusive",
        ));
    }
    for (field, value) in [("hostname", &spec.hostname), ("subdomain", &spec.subdomain)] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            causes.extend(dns_label(&format!("{path}.{field}"), v));
        }
    }
    if let Some(t) = &spec.tolerations {
        causes.extend(validate_tolerations(t, &format!("{path}.tolerations")));
    }
    for (i, alias) in spec.host_aliases.iter().flatten().enumerate() {
        let p = format!("{path}.hostAliases[{i}]");
        causes.extend(formatted(&format!("{p}.ip"), &alias.ip, syntax::ip(&alias.ip)));
        for (j, h) in alias.hostnames.iter().flatten().enumerate() {
            causes.extend(dns_subdomain(&format!("{p}.hostnames[{j}]"), h));
        }
    }
    if let Some(p) = &spec.preemption_policy {
        causes.extend(one_of(&format!("{path}.preemptionPolicy"), p, &["PreemptLowerPriority", "Never"]));
    }
    if spec.overhead.is_some() {
        resources::resource_list(
            spec.overhead.as_ref(),
            &format!("{path}.overhead"),
            resources::container_resource_name,
            &mut causes,
        );
    }
    if let Some(os) = &spec.os {
        if os.name.is_empty() {
            causes.push(required_because(format!("{path}.os.name"), "cannot be empty"));
        } else {
            causes.extend(one_of(&format!("{path}.os"), &os.name, &["linux", "windows"]));
        }
    }
    causes
}

/// Host ports may be used once per protocol and host IP.
fn host_port_conflicts<'a>(containers: impl Iterator<Item = (usize, &'a Container)>, path: &str) -> Vec<Cause> {
    let mut seen = BTreeSet::new();
    let mut causes = Vec::new();
    for (i, c) in containers {
        for (j, p) in c.ports.iter().flatten().enumerate() {
            let hp = p.host_port.unwrap_or(0);
            if hp == 0 {
                continue;
            }
            let key = format!(
                "{}/{}/{hp}",
                p.protocol.as_deref().unwrap_or_default(),
                p.host_ip.as_deref().unwrap_or_default()
            );
            if !seen.insert(key.clone()) {
                causes.push(crate::validation::duplicate(format!("{path}[{i}].ports[{j}].hostPort"), &key));
            }
        }
    }
    causes
}

fn security_context(spec: &PodSpec, path: &str) -> Vec<Cause> {
    let Some(sc) = &spec.security_context else { return Vec::new() };
    let p = format!("{path}.securityContext");
    let id_range = |field: &str, v: i64| {
        if (0..=i64::from(i32::MAX)).contains(&v) {
            None
        } else {
            Some(invalid_value(format!("{p}.{field}"), v, "must be between 0 and 2147483647, inclusive"))
        }
    };
    let mut causes: Vec<Cause> =
        [("runAsUser", sc.run_as_user), ("runAsGroup", sc.run_as_group), ("fsGroup", sc.fs_group)]
            .into_iter()
            .filter_map(|(f, v)| v.and_then(|v| id_range(f, v)))
            .collect();
    for (i, g) in sc.supplemental_groups.iter().flatten().enumerate() {
        causes.extend(id_range(&format!("supplementalGroups[{i}]"), *g));
    }
    if let Some(policy) = &sc.fs_group_change_policy {
        causes.extend(one_of(&format!("{p}.fsGroupChangePolicy"), policy, &["Always", "OnRootMismatch"]));
    }
    causes
}

fn dns_config(spec: &PodSpec, dns_policy: &str, path: &str) -> Vec<Cause> {
    let config = spec.dns_config.as_ref();
    let nameservers = config.and_then(|c| c.nameservers.as_deref()).unwrap_or_default();
    if dns_policy == "None" {
        if config.is_none() {
            return vec![required_because(path, "must provide `dnsConfig` when `dnsPolicy` is None")];
        }
        if nameservers.is_empty() {
            return vec![required_because(
                format!("{path}.nameservers"),
                "must provide at least one DNS nameserver when `dnsPolicy` is None",
            )];
        }
    }
    let Some(config) = config else { return Vec::new() };
    let mut causes = Vec::new();
    if nameservers.len() > 3 {
        causes.push(invalid_value(
            format!("{path}.nameservers"),
            nameservers.to_vec(),
            "must not have more than 3 nameservers",
        ));
    }
    for (i, ns) in nameservers.iter().enumerate() {
        causes.extend(formatted(&format!("{path}.nameservers[{i}]"), ns, syntax::ip(ns)));
    }
    let searches = config.searches.as_deref().unwrap_or_default();
    if searches.len() > 32 {
        causes.push(invalid_value(
            format!("{path}.searches"),
            searches.to_vec(),
            "must not have more than 32 search paths",
        ));
    }
    for (i, s) in searches.iter().enumerate() {
        let s = s.strip_suffix('.').unwrap_or(s);
        causes.extend(dns_subdomain(&format!("{path}.searches[{i}]"), s));
    }
    for (i, o) in config.options.iter().flatten().enumerate() {
        if o.name.as_deref().is_none_or(str::is_empty) {
            causes.push(required_because(format!("{path}.options[{i}]"), "must not be empty"));
        }
    }
    causes
}

/// Validates a pod template at `path` (`spec.template`): its labels and
/// annotations, its spec, and no ephemeral containers.
pub fn validate_pod_template(template: &PodTemplateSpec, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let Some(meta) = &template.metadata {
        causes.extend(labels(meta.labels.as_ref(), &format!("{path}.metadata.labels")));
        for key in meta.annotations.iter().flatten().map(|(k, _)| k) {
            causes.extend(label_key(&format!("{path}.metadata.annotations"), key));
        }
    }
    let default_spec = PodSpec::default();
    let spec = template.spec.as_ref().unwrap_or(&default_spec);
    causes.extend(validate_pod_spec(spec, &format!("{path}.spec")));
    if spec.ephemeral_containers.as_ref().is_some_and(|e| !e.is_empty()) {
        causes.push(forbidden(
            format!("{path}.spec.ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
    causes
}

fn spec_of(pod: &Pod) -> std::borrow::Cow<'_, PodSpec> {
    match &pod.spec {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(PodSpec::default()),
    }
}

/// The rules of `ValidatePodUpdate`: only images, activeDeadlineSeconds
/// (set or shortened), added tolerations and removed scheduling gates may
/// change; everything else in the spec (the node name included, which only
/// a Binding sets) is fixed.
fn validate_pod_update(new: &Pod, old: &Pod) -> Vec<Cause> {
    let (ns, os) = (spec_of(new), spec_of(old));
    let mut causes = validate_pod(new);
    for (field, n, o) in [
        ("containers", &ns.containers, &os.containers),
        (
            "initContainers",
            ns.init_containers.as_ref().unwrap_or(&Vec::new()),
            os.init_containers.as_ref().unwrap_or(&Vec::new()),
        ),
    ] {
        if n.len() != o.len() {
            causes.push(forbidden(format!("spec.{field}"), "pod updates may not add or remove containers"));
            return causes;
        }
    }
    match (ns.active_deadline_seconds, os.active_deadline_seconds) {
        (Some(n), Some(o)) if n > o => {
            causes.push(invalid_value("spec.activeDeadlineSeconds", n, "must be less than or equal to previous value"));
        }
        (None, Some(_)) => {
            causes.push(invalid_value(
                "spec.activeDeadlineSeconds",
                Value::Null,
                "must not update from a positive integer to nil value",
            ));
        }
        _ => {}
    }
    let new_tolerations = ns.tolerations.as_deref().unwrap_or_default();
    let kept = |old: &Toleration| {
        new_tolerations.iter().any(|n| Toleration { toleration_seconds: n.toleration_seconds, ..old.clone() } == *n)
    };
    if !os.tolerations.iter().flatten().all(kept) {
        causes.push(forbidden(
            "spec.tolerations",
            "existing toleration can not be modified except its tolerationSeconds",
        ));
    }
    let old_gates: BTreeSet<&str> = os.scheduling_gates.iter().flatten().map(|g| g.name.as_str()).collect();
    for (i, g) in ns.scheduling_gates.iter().flatten().enumerate() {
        if !old_gates.contains(g.name.as_str()) {
            causes.push(forbidden(
                format!("spec.schedulingGates[{i}].name"),
                &format!("only deletion is allowed, but found new scheduling gate '{}'", g.name),
            ));
        }
    }

    let mut munged = ns.clone().into_owned();
    for (c, o) in munged.containers.iter_mut().zip(&os.containers) {
        c.image.clone_from(&o.image);
    }
    for (c, o) in munged.init_containers.iter_mut().flatten().zip(os.init_containers.iter().flatten()) {
        c.image.clone_from(&o.image);
    }
    munged.active_deadline_seconds = os.active_deadline_seconds;
    munged.tolerations.clone_from(&os.tolerations);
    munged.scheduling_gates.clone_from(&os.scheduling_gates);
    if os.termination_grace_period_seconds.is_some_and(|g| g < 0) && munged.termination_grace_period_seconds == Some(1)
    {
        munged.termination_grace_period_seconds = os.termination_grace_period_seconds;
    }
    if munged != *os {
        let mut changed = Vec::new();
        json_changes(
            &serde_json::to_value(&*os).unwrap_or_default(),
            &serde_json::to_value(&munged).unwrap_or_default(),
            "spec",
            &mut changed,
        );
        causes.push(forbidden(
            "spec",
            &format!(
                "pod updates may not change fields other than {UPDATABLE_FIELDS}\nchanged: {}",
                changed.join(", ")
            ),
        ));
    }
    causes
}

/// The paths at which two JSON documents differ (at most a dozen).
fn json_changes(old: &Value, new: &Value, path: &str, out: &mut Vec<String>) {
    if out.len() >= 12 || old == new {
        return;
    }
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let (x, y) = (a.get(k).unwrap_or(&Value::Null), b.get(k).unwrap_or(&Value::Null));
                json_changes(x, y, &format!("{path}.{k}"), out);
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                json_changes(x, y, &format!("{path}[{i}]"), out);
            }
        }
        _ => out.push(path.to_string()),
    }
}

/// Checks that apply to pods (not templates) on create and update.
fn validate_pod(pod: &Pod) -> Vec<Cause> {
    let spec = spec_of(pod);
    let mut causes = validate_pod_spec(&spec, "spec");
    if spec.host_network == Some(true) {
        // Pods (unlike templates) must spell the host port out; defaulting does.
        for (i, c) in spec.containers.iter().enumerate() {
            for (j, p) in c.ports.iter().flatten().enumerate() {
                if p.host_port.unwrap_or(0) == 0 {
                    causes.push(invalid_value(
                        format!("spec.containers[{i}].ports[{j}].hostPort"),
                        0,
                        "must match `containerPort` when `hostNetwork` is true",
                    ));
                }
            }
        }
    }
    causes
}

impl Strategy for Pod {
    fn default_fields(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        default_pod_spec(spec);
        default_pod_only(spec);
        if self.status.is_none() {
            self.status = Some(PodStatus {
                phase: Some("Pending".into()),
                qos_class: Some(pod_qos_class(spec).into()),
                ..Default::default()
            });
        }
    }

    fn validate(&self) -> Vec<Cause> {
        let mut causes = validate_pod(self);
        let spec = spec_of(self);
        if spec.ephemeral_containers.as_ref().is_some_and(|e| !e.is_empty()) {
            causes.push(forbidden("spec.ephemeralContainers", "cannot be set on create"));
        }
        if spec.node_name.as_deref().is_some_and(|n| !n.is_empty())
            && spec.scheduling_gates.as_ref().is_some_and(|g| !g.is_empty())
        {
            causes.push(forbidden("spec.nodeName", "cannot be set until all schedulingGates have been cleared"));
        }
        causes
    }

    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        validate_pod_update(self, old)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerPort, ResourceRequirements, VolumeMount};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use serde_json::json;

    fn pod(value: Value) -> Pod {
        let mut p: Pod = serde_json::from_value(value).expect("a pod");
        p.default_fields();
        p
    }

    fn web() -> Pod {
        pod(json!({"metadata": {"name": "web"}, "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}))
    }

    fn messages(causes: &[Cause]) -> Vec<String> {
        causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect()
    }

    #[test]
    fn pod_defaults_match_kubernetes() {
        let p = web();
        let spec = p.spec.as_ref().expect("spec");
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
        assert_eq!(spec.dns_policy.as_deref(), Some("ClusterFirst"));
        assert_eq!(spec.termination_grace_period_seconds, Some(30));
        assert_eq!(spec.scheduler_name.as_deref(), Some("default-scheduler"));
        assert_eq!(spec.enable_service_links, Some(true));
        assert!(spec.security_context.is_some());
        let c = &spec.containers[0];
        assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
        let status = p.status.as_ref().expect("status");
        assert_eq!(status.phase.as_deref(), Some("Pending"));
        assert_eq!(status.qos_class.as_deref(), Some("BestEffort"));
        assert!(p.validate().is_empty(), "{:?}", p.validate());
    }

    #[test]
    fn templates_do_not_get_pod_only_defaults() {
        let mut t: PodTemplateSpec = serde_json::from_value(json!({"spec": {"containers": [{"name": "c", "image": "x",
            "resources": {"limits": {"cpu": "1"}}}]}}))
        .expect("template");
        default_pod_template(&mut t);
        let spec = t.spec.expect("spec");
        assert_eq!(spec.enable_service_links, None);
        assert_eq!(spec.containers[0].resources.as_ref().expect("resources").requests, None);
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
    }

    #[test]
    fn requests_default_to_limits_and_set_the_qos_class() {
        let p = pod(json!({"metadata": {"name": "g"}, "spec": {"containers": [{"name": "c", "image": "x",
            "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}}}]}}));
        let r = p.spec.as_ref().expect("spec").containers[0].resources.as_ref().expect("resources");
        assert_eq!(r.requests.as_ref().expect("requests")["cpu"], Quantity("500m".into()));
        assert_eq!(p.status.as_ref().expect("status").qos_class.as_deref(), Some("Guaranteed"));

        let burstable = pod(json!({"metadata": {"name": "b"}, "spec": {"containers": [{"name": "c", "image": "x",
            "resources": {"requests": {"cpu": "100m"}}}]}}));
        assert_eq!(burstable.status.as_ref().expect("status").qos_class.as_deref(), Some("Burstable"));
        let mut spec = burstable.spec.clone().expect("spec");
        spec.containers[0].resources = Some(ResourceRequirements {
            limits: Some(BTreeMap::from([
                ("cpu".into(), Quantity("1".into())),
                ("memory".into(), Quantity("1Gi".into())),
            ])),
            requests: Some(BTreeMap::from([
                ("cpu".into(), Quantity("500m".into())),
                ("memory".into(), Quantity("1Gi".into())),
            ])),
            ..Default::default()
        });
        assert_eq!(pod_qos_class(&spec), "Burstable");
    }

    #[test]
    fn host_network_ports_default_to_the_container_port() {
        let p = pod(json!({"metadata": {"name": "h"}, "spec": {"hostNetwork": true,
            "containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 8080}]}]}}));
        let port = &p.spec.as_ref().expect("spec").containers[0].ports.as_ref().expect("ports")[0];
        assert_eq!(port.host_port, Some(8080));
        let mut bad = p.clone();
        bad.spec.as_mut().expect("spec").containers[0].ports = Some(vec![ContainerPort {
            container_port: 8080,
            host_port: Some(9090),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]);
        assert_eq!(
            messages(&bad.validate()),
            [
                "spec.containers[0].ports[0].hostPort: Invalid value: 9090: must match `containerPort` when `hostNetwork` is true"
            ]
        );
    }

    #[test]
    fn pod_without_image_names_the_field() {
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}));
        assert_eq!(messages(&p.validate()), ["spec.containers[0].image: Required value"]);
    }

    #[test]
    fn pod_without_containers_is_refused() {
        let p = pod(json!({"metadata": {"name": "p"}}));
        assert_eq!(messages(&p.validate()), ["spec.containers: Required value"]);
    }

    #[test]
    fn container_names_are_unique_across_init_and_regular_containers() {
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {
            "initContainers": [{"name": "a", "image": "x"}],
            "containers": [{"name": "a", "image": "x"}, {"name": "a", "image": "x"}]}}));
        assert_eq!(
            messages(&p.validate()),
            ["spec.containers[1].name: Duplicate value: \"a\"", "spec.initContainers[0].name: Duplicate value: \"a\""]
        );
    }

    #[test]
    fn unsupported_restart_and_dns_policies_list_the_valid_ones() {
        let mut p = web();
        let spec = p.spec.as_mut().expect("spec");
        spec.restart_policy = Some("Sometimes".into());
        spec.dns_policy = Some("Google".into());
        spec.termination_grace_period_seconds = Some(-1);
        assert_eq!(
            messages(&p.validate()),
            [
                "spec.terminationGracePeriodSeconds: Invalid value: -1: must be greater than or equal to 0",
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
                "spec.dnsPolicy: Unsupported value: \"Google\": supported values: \"ClusterFirstWithHostNet\", \"ClusterFirst\", \"Default\", \"None\"",
            ]
        );
    }

    #[test]
    fn node_selector_and_dns_none_are_checked() {
        let mut p = web();
        let spec = p.spec.as_mut().expect("spec");
        spec.node_selector = Some(BTreeMap::from([("bad key".into(), "v".into())]));
        spec.dns_policy = Some("None".into());
        let got = messages(&p.validate());
        assert!(got[0].starts_with("spec.nodeSelector: Invalid value: \"bad key\""), "{got:?}");
        assert_eq!(got[1], "spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None");
    }

    #[test]
    fn duplicate_host_ports_conflict() {
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "a", "image": "x", "ports": [{"containerPort": 80, "hostPort": 8080}]},
            {"name": "b", "image": "x", "ports": [{"containerPort": 81, "hostPort": 8080}]}]}}));
        assert_eq!(messages(&p.validate()), ["spec.containers[1].ports[0].hostPort: Duplicate value: \"TCP//8080\""]);
    }

    #[test]
    fn pod_update_may_change_images_but_not_other_fields() {
        let old = web();
        let mut new = old.clone();
        new.spec.as_mut().expect("spec").containers[0].image = Some("nginx:1.28".into());
        assert!(new.validate_update(&old).is_empty());

        let mut moved = old.clone();
        moved.spec.as_mut().expect("spec").node_name = Some("node-2".into());
        let causes = moved.validate_update(&old);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "spec");
        assert!(
            causes[0]
                .message
                .starts_with("Forbidden: pod updates may not change fields other than `spec.containers[*].image`")
        );
        assert!(causes[0].message.ends_with("changed: spec.nodeName"), "{}", causes[0].message);

        let mut more = old.clone();
        let mut c = more.spec.as_ref().expect("spec").containers[0].clone();
        c.name = "two".into();
        more.spec.as_mut().expect("spec").containers.push(c);
        assert_eq!(
            messages(&more.validate_update(&old)),
            ["spec.containers: Forbidden: pod updates may not add or remove containers"]
        );

        let mut mount = old.clone();
        mount.spec.as_mut().expect("spec").containers[0].volume_mounts =
            Some(vec![VolumeMount { name: "x".into(), mount_path: "/x".into(), ..Default::default() }]);
        let got = messages(&mount.validate_update(&old));
        assert_eq!(got[0], "spec.containers[0].volumeMounts[0].name: Not found: \"x\"");
        assert!(got[1].starts_with("spec: Forbidden"));
    }

    #[test]
    fn pod_update_allows_added_tolerations_and_a_shorter_deadline_only() {
        let mut old = web();
        old.spec.as_mut().expect("spec").active_deadline_seconds = Some(100);
        let mut new = old.clone();
        let spec = new.spec.as_mut().expect("spec");
        spec.active_deadline_seconds = Some(50);
        spec.tolerations = Some(vec![Toleration { operator: Some("Exists".into()), ..Default::default() }]);
        assert!(new.validate_update(&old).is_empty());

        let mut longer = old.clone();
        longer.spec.as_mut().expect("spec").active_deadline_seconds = Some(200);
        assert_eq!(
            messages(&longer.validate_update(&old)),
            ["spec.activeDeadlineSeconds: Invalid value: 200: must be less than or equal to previous value"]
        );
        let mut removed = new.clone();
        removed.spec.as_mut().expect("spec").tolerations = None;
        assert_eq!(
            messages(&removed.validate_update(&new)),
            ["spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"]
        );
    }

    #[test]
    fn ephemeral_containers_cannot_be_set_on_create() {
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}],
            "ephemeralContainers": [{"name": "debug", "image": "busybox"}]}}));
        assert_eq!(messages(&p.validate()), ["spec.ephemeralContainers: Forbidden: cannot be set on create"]);
    }
}
