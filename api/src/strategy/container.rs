//! Containers inside a pod spec: Kubernetes' defaults (pull policy,
//! termination message, probe timings, port protocols) and validation
//! (name, image, ports, environment, volume mounts, probes, lifecycle
//! hooks, resources).

use crate::error::Cause;
use crate::validation::causes::{invalid_value, not_found, required_because};
use crate::validation::checks::{self, at_least, dns_subdomain, formatted, non_negative, one_of, port_num_or_name};
use crate::validation::{duplicate, forbidden, invalid, resources, syntax};
use crate::validation::{not_supported, required};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvFromSource, EnvVar, HTTPGetAction, LifecycleHandler, ObjectFieldSelector, Probe,
};
use std::collections::BTreeSet;

/// What a container's checks need to know about the rest of the pod.
pub(crate) struct PodContext {
    /// The names of the pod's volumes.
    pub volumes: BTreeSet<String>,
    /// The pod's terminationGracePeriodSeconds.
    pub grace_period: Option<i64>,
}

/// Which list a container is in: they are validated a little differently.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContainerKind {
    /// `spec.containers`.
    Regular,
    /// `spec.initContainers`.
    Init,
}

/// The pull policy Kubernetes gives an image: `Always` for `:latest` or an
/// untagged, undigested image, `IfNotPresent` otherwise.
pub fn default_pull_policy(image: &str) -> &'static str {
    if image_tag(image) == Some("latest") { "Always" } else { "IfNotPresent" }
}

/// The tag of an image reference: `None` when only a digest pins it,
/// `latest` when neither a tag nor a digest is given. A `host:port`
/// registry prefix is not a tag.
fn image_tag(image: &str) -> Option<&str> {
    if image.trim().is_empty() {
        return None;
    }
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    match (last.split_once(':'), digest) {
        (Some((_, tag)), _) => Some(tag),
        (None, None) => Some("latest"),
        (None, Some(_)) => None,
    }
}

fn set_if_empty(field: &mut Option<String>, value: &str) {
    if field.as_deref().is_none_or(str::is_empty) {
        *field = Some(value.into());
    }
}

fn set_if_unset(field: &mut Option<i32>, value: i32) {
    if field.is_none_or(|v| v == 0) {
        *field = Some(value);
    }
}

/// Applies the container defaults of `SetDefaults_Container`, probes,
/// HTTP actions, ports and field references.
pub(crate) fn default_container(c: &mut Container) {
    if c.image_pull_policy.as_deref().is_none_or(str::is_empty) {
        c.image_pull_policy = Some(default_pull_policy(c.image.as_deref().unwrap_or_default()).into());
    }
    set_if_empty(&mut c.termination_message_path, "/dev/termination-log");
    set_if_empty(&mut c.termination_message_policy, "File");
    for port in c.ports.iter_mut().flatten() {
        set_if_empty(&mut port.protocol, "TCP");
    }
    for probe in [&mut c.liveness_probe, &mut c.readiness_probe, &mut c.startup_probe].into_iter().flatten() {
        set_if_unset(&mut probe.timeout_seconds, 1);
        set_if_unset(&mut probe.period_seconds, 10);
        set_if_unset(&mut probe.success_threshold, 1);
        set_if_unset(&mut probe.failure_threshold, 3);
        if let Some(h) = &mut probe.http_get {
            default_http_get(h);
        }
    }
    if let Some(lifecycle) = &mut c.lifecycle {
        for h in [&mut lifecycle.post_start, &mut lifecycle.pre_stop].into_iter().flatten() {
            if let Some(h) = &mut h.http_get {
                default_http_get(h);
            }
        }
    }
    for env in c.env.iter_mut().flatten() {
        if let Some(f) = env.value_from.as_mut().and_then(|v| v.field_ref.as_mut()) {
            default_field_ref(f);
        }
    }
}

fn default_http_get(h: &mut HTTPGetAction) {
    set_if_empty(&mut h.path, "/");
    set_if_empty(&mut h.scheme, "HTTP");
}

/// `fieldRef.apiVersion` defaults to `v1`.
pub(crate) fn default_field_ref(f: &mut ObjectFieldSelector) {
    set_if_empty(&mut f.api_version, "v1");
}

/// Validates one container at `path` (`spec.containers[0]`).
pub(crate) fn validate_container(c: &Container, path: &str, kind: ContainerKind, pod: &PodContext) -> Vec<Cause> {
    let mut causes = Vec::new();
    let name_path = format!("{path}.name");
    if c.name.is_empty() {
        causes.push(required(&name_path));
    } else {
        causes.extend(checks::dns_label(&name_path, &c.name));
    }
    let image = c.image.as_deref().unwrap_or_default();
    if image.is_empty() {
        causes.push(required(format!("{path}.image")));
    } else if image.trim() != image {
        causes.push(invalid(format!("{path}.image"), image, "must not have leading or trailing whitespace"));
    }
    causes.extend(one_of(
        &format!("{path}.terminationMessagePolicy"),
        c.termination_message_policy.as_deref().unwrap_or_default(),
        &["File", "FallbackToLogsOnError"],
    ));
    causes.extend(validate_ports(c.ports.as_deref().unwrap_or_default(), &format!("{path}.ports")));
    causes.extend(validate_env(c.env.as_deref().unwrap_or_default(), &format!("{path}.env")));
    causes.extend(validate_env_from(c.env_from.as_deref().unwrap_or_default(), &format!("{path}.envFrom")));
    causes.extend(validate_mounts(c, &format!("{path}.volumeMounts"), pod));
    causes.extend(one_of(
        &format!("{path}.imagePullPolicy"),
        c.image_pull_policy.as_deref().unwrap_or_default(),
        &["Always", "IfNotPresent", "Never"],
    ));
    if let Some(r) = &c.resources {
        causes.extend(resources::container_requirements(r, &format!("{path}.resources")));
    }

    let restart_always = c.restart_policy.as_deref() == Some("Always");
    match (kind, &c.restart_policy) {
        (ContainerKind::Regular, Some(_)) => {
            causes.push(forbidden(format!("{path}.restartPolicy"), "may not be set for non-init containers"));
        }
        (ContainerKind::Init, Some(p)) if p != "Always" => {
            causes.push(not_supported(format!("{path}.restartPolicy"), p, &["Always"]));
        }
        _ => {}
    }
    if kind == ContainerKind::Regular || restart_always {
        if let Some(l) = &c.lifecycle {
            for (name, h) in [("postStart", &l.post_start), ("preStop", &l.pre_stop)] {
                if let Some(h) = h {
                    causes.extend(validate_lifecycle_handler(h, &format!("{path}.lifecycle.{name}"), pod.grace_period));
                }
            }
        }
        for (name, probe) in [
            ("livenessProbe", &c.liveness_probe),
            ("readinessProbe", &c.readiness_probe),
            ("startupProbe", &c.startup_probe),
        ] {
            if let Some(p) = probe {
                causes.extend(validate_probe(p, &format!("{path}.{name}"), name));
            }
        }
    } else {
        let why = "may not be set for init containers without restartPolicy=Always";
        for (name, set) in [
            ("lifecycle", c.lifecycle.is_some()),
            ("livenessProbe", c.liveness_probe.is_some()),
            ("readinessProbe", c.readiness_probe.is_some()),
            ("startupProbe", c.startup_probe.is_some()),
        ] {
            if set {
                causes.push(forbidden(format!("{path}.{name}"), why));
            }
        }
    }
    causes
}

fn validate_ports(ports: &[ContainerPort], path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    let mut names = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let idx = format!("{path}[{i}]");
        if let Some(name) = p.name.as_deref().filter(|n| !n.is_empty()) {
            let problems = syntax::port_name(name);
            if !problems.is_empty() {
                causes.extend(formatted(&format!("{idx}.name"), name, problems));
            } else if !names.insert(name) {
                causes.push(duplicate(format!("{idx}.name"), name));
            }
        }
        if p.container_port == 0 {
            causes.push(required(format!("{idx}.containerPort")));
        } else {
            causes.extend(checks::port_number(&format!("{idx}.containerPort"), p.container_port));
        }
        if let Some(hp) = p.host_port.filter(|hp| *hp != 0) {
            causes.extend(checks::port_number(&format!("{idx}.hostPort"), hp));
        }
        causes.extend(one_of(&format!("{idx}.protocol"), p.protocol.as_deref().unwrap_or_default(), PROTOCOLS));
    }
    causes
}

/// The protocols a port may use, as Kubernetes lists them.
pub(crate) const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];

const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

const RESOURCE_FIELD_PATHS: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

fn validate_env(env: &[EnvVar], path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (i, e) in env.iter().enumerate() {
        let idx = format!("{path}[{i}]");
        if e.name.is_empty() {
            causes.push(required(format!("{idx}.name")));
        } else {
            causes.extend(formatted(&format!("{idx}.name"), &e.name, syntax::env_var_name(&e.name)));
        }
        let Some(from) = &e.value_from else { continue };
        let from_path = format!("{idx}.valueFrom");
        let mut sources = 0;
        if let Some(f) = &from.field_ref {
            sources += 1;
            causes.extend(validate_field_ref(f, &format!("{from_path}.fieldRef"), ENV_FIELD_PATHS));
        }
        if let Some(r) = &from.resource_field_ref {
            sources += 1;
            let p = format!("{from_path}.resourceFieldRef.resource");
            if r.resource.is_empty() {
                causes.push(required(p));
            } else if !RESOURCE_FIELD_PATHS.contains(&r.resource.as_str())
                && !r.resource.starts_with("limits.hugepages-")
                && !r.resource.starts_with("requests.hugepages-")
            {
                causes.push(not_supported(p, &r.resource, RESOURCE_FIELD_PATHS));
            }
        }
        for (name, key_ref) in [
            ("configMapKeyRef", from.config_map_key_ref.as_ref().map(|r| (&r.name, &r.key))),
            ("secretKeyRef", from.secret_key_ref.as_ref().map(|r| (&r.name, &r.key))),
        ] {
            let Some((ref_name, key)) = key_ref else { continue };
            sources += 1;
            causes.extend(dns_subdomain(&format!("{from_path}.{name}.name"), ref_name));
            if key.is_empty() {
                causes.push(required(format!("{from_path}.{name}.key")));
            } else {
                causes.extend(formatted(&format!("{from_path}.{name}.key"), key, syntax::config_key(key)));
            }
        }
        if sources == 0 {
            causes.push(invalid(
                &from_path,
                "",
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            ));
        } else if e.value.as_deref().is_some_and(|v| !v.is_empty()) {
            causes.push(invalid(&from_path, "", "may not be specified when `value` is not empty"));
        } else if sources > 1 {
            causes.push(invalid(&from_path, "", "may not have more than one field specified at a time"));
        }
    }
    causes
}

/// A downward-API field reference: apiVersion and a supported fieldPath
/// (or a subscripted `metadata.labels['key']` / `metadata.annotations['key']`).
pub(crate) fn validate_field_ref(f: &ObjectFieldSelector, path: &str, supported: &[&str]) -> Vec<Cause> {
    if f.api_version.as_deref().is_none_or(str::is_empty) {
        return vec![required(format!("{path}.apiVersion"))];
    }
    if f.field_path.is_empty() {
        return vec![required(format!("{path}.fieldPath"))];
    }
    let subscripted = ["metadata.labels", "metadata.annotations"].iter().any(|prefix| {
        f.field_path
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix("['"))
            .is_some_and(|rest| rest.ends_with("']") && rest.len() > 2)
    });
    if subscripted || supported.contains(&f.field_path.as_str()) {
        Vec::new()
    } else {
        vec![not_supported(format!("{path}.fieldPath"), &f.field_path, supported)]
    }
}

fn validate_env_from(sources: &[EnvFromSource], path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (i, s) in sources.iter().enumerate() {
        let idx = format!("{path}[{i}]");
        if let Some(prefix) = s.prefix.as_deref().filter(|p| !p.is_empty()) {
            causes.extend(formatted(&format!("{idx}.prefix"), prefix, syntax::env_var_name(prefix)));
        }
        let refs = [
            ("configMapRef", s.config_map_ref.as_ref().map(|r| &r.name)),
            ("secretRef", s.secret_ref.as_ref().map(|r| &r.name)),
        ];
        let mut count = 0;
        for (name, r) in refs {
            let Some(ref_name) = r else { continue };
            count += 1;
            let p = format!("{idx}.{name}.name");
            if ref_name.is_empty() {
                causes.push(required(p));
            } else {
                causes.extend(dns_subdomain(&p, ref_name));
            }
        }
        match count {
            0 => causes.push(invalid(&idx, "", "must specify one of: `configMapRef` or `secretRef`")),
            1 => {}
            _ => causes.push(invalid(&idx, "", "may not have more than one field specified at a time")),
        }
    }
    causes
}

fn validate_mounts(c: &Container, path: &str, pod: &PodContext) -> Vec<Cause> {
    let mut causes = Vec::new();
    let mut mount_paths = BTreeSet::new();
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let idx = format!("{path}[{i}]");
        if m.name.is_empty() {
            causes.push(required(format!("{idx}.name")));
        } else if !pod.volumes.contains(&m.name) {
            causes.push(not_found(format!("{idx}.name"), &m.name));
        }
        if m.mount_path.is_empty() {
            causes.push(required(format!("{idx}.mountPath")));
        } else if !mount_paths.insert(m.mount_path.as_str()) {
            causes.push(invalid(format!("{idx}.mountPath"), &m.mount_path, "must be unique"));
        }
        let sub_path = m.sub_path.as_deref().unwrap_or_default();
        if !sub_path.is_empty() {
            causes.extend(formatted(&format!("{idx}.subPath"), sub_path, syntax::relative_path(sub_path)));
        }
        let expr = m.sub_path_expr.as_deref().unwrap_or_default();
        if !expr.is_empty() {
            if !sub_path.is_empty() {
                causes.push(invalid(
                    format!("{idx}.subPathExpr"),
                    expr,
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
            causes.extend(formatted(&format!("{idx}.subPathExpr"), expr, syntax::relative_path(expr)));
        }
        if let Some(p) = &m.mount_propagation {
            causes.extend(one_of(&format!("{idx}.mountPropagation"), p, &["Bidirectional", "HostToContainer", "None"]));
        }
    }
    causes
}

/// A probe: exactly one handler, sane timings; liveness and startup probes
/// must succeed once to count.
fn validate_probe(p: &Probe, path: &str, which: &str) -> Vec<Cause> {
    let handlers: [(&str, bool); 4] = [
        ("exec", p.exec.is_some()),
        ("httpGet", p.http_get.is_some()),
        ("tcpSocket", p.tcp_socket.is_some()),
        ("grpc", p.grpc.is_some()),
    ];
    let (first, mut causes) = one_handler(&handlers, path);
    match first {
        Some("exec") => causes.extend(exec_command(p.exec.as_ref().and_then(|e| e.command.as_ref()), path)),
        Some("httpGet") => causes
            .extend(p.http_get.as_ref().map(|h| validate_http_get(h, &format!("{path}.httpGet"))).unwrap_or_default()),
        Some("tcpSocket") => causes.extend(
            p.tcp_socket
                .as_ref()
                .map(|t| port_num_or_name(&format!("{path}.tcpSocket.port"), &t.port))
                .unwrap_or_default(),
        ),
        Some("grpc") => causes.extend(
            p.grpc.as_ref().map(|g| checks::port_number(&format!("{path}.grpc.port"), g.port)).unwrap_or_default(),
        ),
        _ => {}
    }
    if let Some(v) = p.initial_delay_seconds {
        causes.extend(non_negative(&format!("{path}.initialDelaySeconds"), v));
    }
    for (name, value) in [
        ("timeoutSeconds", p.timeout_seconds),
        ("periodSeconds", p.period_seconds),
        ("successThreshold", p.success_threshold),
        ("failureThreshold", p.failure_threshold),
    ] {
        if let Some(v) = value {
            causes.extend(at_least(&format!("{path}.{name}"), v, 1));
        }
    }
    if which != "readinessProbe" && p.success_threshold.is_some_and(|v| v != 1) {
        causes.push(invalid_value(format!("{path}.successThreshold"), p.success_threshold, "must be 1"));
    }
    match p.termination_grace_period_seconds {
        Some(v) if which == "readinessProbe" => {
            causes.push(invalid_value(
                format!("{path}.terminationGracePeriodSeconds"),
                v,
                "must not be set for readinessProbes",
            ));
        }
        Some(v) if v <= 0 => {
            causes.push(invalid_value(format!("{path}.terminationGracePeriodSeconds"), v, "must be greater than 0"));
        }
        _ => {}
    }
    causes
}

fn validate_lifecycle_handler(h: &LifecycleHandler, path: &str, grace_period: Option<i64>) -> Vec<Cause> {
    let handlers: [(&str, bool); 4] = [
        ("exec", h.exec.is_some()),
        ("httpGet", h.http_get.is_some()),
        ("tcpSocket", h.tcp_socket.is_some()),
        ("sleep", h.sleep.is_some()),
    ];
    let (first, mut causes) = one_handler(&handlers, path);
    match first {
        Some("exec") => causes.extend(exec_command(h.exec.as_ref().and_then(|e| e.command.as_ref()), path)),
        Some("httpGet") => causes
            .extend(h.http_get.as_ref().map(|g| validate_http_get(g, &format!("{path}.httpGet"))).unwrap_or_default()),
        Some("tcpSocket") => causes.extend(
            h.tcp_socket
                .as_ref()
                .map(|t| port_num_or_name(&format!("{path}.tcpSocket.port"), &t.port))
                .unwrap_or_default(),
        ),
        _ => {}
    }
    if let (Some(s), Some(grace)) = (&h.sleep, grace_period)
        && (s.seconds < 0 || s.seconds > grace)
    {
        causes.push(invalid_value(
            format!("{path}.sleep"),
            s.seconds,
            &format!("must be non-negative and less than terminationGracePeriodSeconds ({grace})"),
        ));
    }
    causes
}

/// Exactly one of the handlers: none is `Required`, every one after the
/// first is `Forbidden`. Returns the first handler set, whose content is
/// then checked.
fn one_handler<'a>(handlers: &[(&'a str, bool)], path: &str) -> (Option<&'a str>, Vec<Cause>) {
    let mut causes = Vec::new();
    let mut first = None;
    for (name, set) in handlers {
        if *set {
            if first.is_some() {
                causes.push(forbidden(format!("{path}.{name}"), "may not specify more than 1 handler type"));
            } else {
                first = Some(*name);
            }
        }
    }
    if first.is_none() {
        causes.push(required_because(path, "must specify a handler type"));
    }
    (first, causes)
}

fn exec_command(command: Option<&Vec<String>>, path: &str) -> Vec<Cause> {
    if command.is_none_or(Vec::is_empty) { vec![required(format!("{path}.exec.command"))] } else { Vec::new() }
}

fn validate_http_get(h: &HTTPGetAction, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    if h.path.as_deref().is_none_or(str::is_empty) {
        causes.push(required(format!("{path}.path")));
    }
    causes.extend(port_num_or_name(&format!("{path}.port"), &h.port));
    let scheme = h.scheme.as_deref().unwrap_or_default();
    if !["HTTP", "HTTPS"].contains(&scheme) {
        causes.push(not_supported(format!("{path}.scheme"), scheme, &["HTTP", "HTTPS"]));
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EnvVarSource, ExecAction, TCPSocketAction, VolumeMount};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn ctx() -> PodContext {
        PodContext { volumes: BTreeSet::from(["data".to_string()]), grace_period: Some(30) }
    }

    fn container(name: &str, image: &str) -> Container {
        let mut c = Container { name: name.into(), image: Some(image.into()), ..Default::default() };
        default_container(&mut c);
        c
    }

    fn fields(causes: &[Cause]) -> Vec<&str> {
        causes.iter().map(|c| c.field.as_str()).collect()
    }

    #[test]
    fn pull_policy_defaults_follow_the_image_tag() {
        assert_eq!(default_pull_policy("nginx"), "Always");
        assert_eq!(default_pull_policy("nginx:latest"), "Always");
        assert_eq!(default_pull_policy("nginx:1.27"), "IfNotPresent");
        assert_eq!(default_pull_policy("registry.local:5000/nginx"), "Always");
        assert_eq!(default_pull_policy("registry.local:5000/nginx:1.0"), "IfNotPresent");
        assert_eq!(default_pull_policy("nginx@sha256:abcd"), "IfNotPresent");
        assert_eq!(default_pull_policy("nginx:latest@sha256:abcd"), "Always");
        assert_eq!(default_pull_policy(""), "IfNotPresent");
    }

    #[test]
    fn container_defaults_fill_termination_message_ports_and_probes() {
        let mut c = Container {
            name: "c".into(),
            image: Some("busybox:1.36".into()),
            ports: Some(vec![ContainerPort { container_port: 80, ..Default::default() }]),
            liveness_probe: Some(Probe {
                http_get: Some(HTTPGetAction { port: IntOrString::Int(80), ..Default::default() }),
                period_seconds: Some(5),
                ..Default::default()
            }),
            ..Default::default()
        };
        default_container(&mut c);
        assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
        assert_eq!(c.termination_message_path.as_deref(), Some("/dev/termination-log"));
        assert_eq!(c.termination_message_policy.as_deref(), Some("File"));
        assert_eq!(c.ports.as_ref().expect("ports")[0].protocol.as_deref(), Some("TCP"));
        let p = c.liveness_probe.as_ref().expect("probe");
        assert_eq!(
            (p.timeout_seconds, p.period_seconds, p.success_threshold, p.failure_threshold),
            (Some(1), Some(5), Some(1), Some(3))
        );
        let h = p.http_get.as_ref().expect("httpGet");
        assert_eq!((h.path.as_deref(), h.scheme.as_deref()), (Some("/"), Some("HTTP")));
    }

    #[test]
    fn container_without_image_names_the_field() {
        let mut c = container("c", "x");
        c.image = None;
        let causes = validate_container(&c, "spec.containers[0]", ContainerKind::Regular, &ctx());
        assert_eq!(fields(&causes), ["spec.containers[0].image"]);
        assert_eq!(causes[0].message, "Required value");
    }

    #[test]
    fn ports_check_range_protocol_and_unique_names() {
        let mut c = container("c", "x");
        c.ports = Some(vec![
            ContainerPort {
                container_port: 70000,
                name: Some("http".into()),
                protocol: Some("TCP".into()),
                ..Default::default()
            },
            ContainerPort {
                container_port: 81,
                name: Some("http".into()),
                protocol: Some("ICMP".into()),
                ..Default::default()
            },
            ContainerPort {
                container_port: 82,
                name: Some("8080".into()),
                host_port: Some(-1),
                protocol: Some("UDP".into()),
                ..Default::default()
            },
        ]);
        let causes = validate_container(&c, "c", ContainerKind::Regular, &ctx());
        let msgs: Vec<String> = causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect();
        assert_eq!(
            msgs,
            [
                "c.ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "c.ports[1].name: Duplicate value: \"http\"",
                "c.ports[1].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                "c.ports[2].name: Invalid value: \"8080\": must contain at least one letter (a-z)",
                "c.ports[2].hostPort: Invalid value: -1: must be between 1 and 65535, inclusive",
            ]
        );
    }

    #[test]
    fn env_names_and_value_sources_are_checked() {
        let mut c = container("c", "x");
        c.env = Some(vec![
            EnvVar { name: "1BAD".into(), value: Some("v".into()), ..Default::default() },
            EnvVar { name: "".into(), ..Default::default() },
            EnvVar { name: "A".into(), value_from: Some(EnvVarSource::default()), ..Default::default() },
            EnvVar {
                name: "B".into(),
                value: Some("x".into()),
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        api_version: Some("v1".into()),
                        field_path: "metadata.name".into(),
                    }),
                    ..Default::default()
                }),
            },
            EnvVar {
                name: "C".into(),
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        api_version: Some("v1".into()),
                        field_path: "spec.bogus".into(),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ]);
        let causes = validate_container(&c, "c", ContainerKind::Regular, &ctx());
        assert_eq!(
            fields(&causes),
            [
                "c.env[0].name",
                "c.env[1].name",
                "c.env[2].valueFrom",
                "c.env[3].valueFrom",
                "c.env[4].valueFrom.fieldRef.fieldPath"
            ]
        );
        assert!(causes[2].message.contains("must specify one of: `fieldRef`"));
        assert!(causes[3].message.contains("may not be specified when `value` is not empty"));
    }

    #[test]
    fn volume_mounts_must_name_a_pod_volume_and_a_unique_path() {
        let mut c = container("c", "x");
        c.volume_mounts = Some(vec![
            VolumeMount { name: "data".into(), mount_path: "/data".into(), ..Default::default() },
            VolumeMount {
                name: "cache".into(),
                mount_path: "/data".into(),
                sub_path: Some("../x".into()),
                ..Default::default()
            },
            VolumeMount { name: "data".into(), mount_path: "".into(), ..Default::default() },
        ]);
        let causes = validate_container(&c, "c", ContainerKind::Regular, &ctx());
        let msgs: Vec<String> = causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect();
        assert_eq!(
            msgs,
            [
                "c.volumeMounts[1].name: Not found: \"cache\"",
                "c.volumeMounts[1].mountPath: Invalid value: \"/data\": must be unique",
                "c.volumeMounts[1].subPath: Invalid value: \"../x\": must not contain '..'",
                "c.volumeMounts[2].mountPath: Required value",
            ]
        );
    }

    #[test]
    fn probes_need_exactly_one_handler_and_liveness_success_of_one() {
        let mut c = container("c", "x");
        c.liveness_probe = Some(Probe {
            exec: Some(ExecAction { command: Some(vec!["true".into()]) }),
            tcp_socket: Some(TCPSocketAction { port: IntOrString::Int(0), ..Default::default() }),
            success_threshold: Some(2),
            period_seconds: Some(-1),
            ..Default::default()
        });
        c.readiness_probe = Some(Probe::default());
        let causes = validate_container(&c, "c", ContainerKind::Regular, &ctx());
        let msgs: Vec<String> = causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect();
        assert_eq!(
            msgs,
            [
                "c.livenessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type",
                "c.livenessProbe.periodSeconds: Invalid value: -1: must be greater than or equal to 1",
                "c.livenessProbe.successThreshold: Invalid value: 2: must be 1",
                "c.readinessProbe: Required value: must specify a handler type",
            ]
        );
    }

    #[test]
    fn init_containers_may_not_probe_unless_they_restart_always() {
        let mut c = container("init", "x");
        c.readiness_probe =
            Some(Probe { exec: Some(ExecAction { command: Some(vec!["true".into()]) }), ..Default::default() });
        let causes = validate_container(&c, "spec.initContainers[0]", ContainerKind::Init, &ctx());
        assert_eq!(fields(&causes), ["spec.initContainers[0].readinessProbe"]);
        c.restart_policy = Some("Always".into());
        assert!(validate_container(&c, "spec.initContainers[0]", ContainerKind::Init, &ctx()).is_empty());
        let causes = validate_container(&c, "spec.containers[0]", ContainerKind::Regular, &ctx());
        assert_eq!(causes[0].message, "Forbidden: may not be set for non-init containers");
    }

    #[test]
    fn unknown_pull_policy_is_unsupported() {
        let mut c = container("c", "x");
        c.image_pull_policy = Some("Sometimes".into());
        let causes = validate_container(&c, "c", ContainerKind::Regular, &ctx());
        assert_eq!(
            causes[0].message,
            "Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\""
        );
    }
}
