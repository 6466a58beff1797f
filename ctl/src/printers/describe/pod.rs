//! `describe pod`, and the container, volume and pod-template sections that
//! controllers' descriptions share (kubectl's `describePod`).

use super::{Related, Writer, annotations, events, labels, or_none, tolerations, w};
use crate::printers::age;
use k8s_openapi::api::core::v1::{Container, ContainerState, ContainerStatus, Pod, PodTemplateSpec, Probe, Volume};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The description of a pod.
pub fn describe(pod: &Pod, related: &Related) -> String {
    let mut w = Writer::default();
    let meta = &pod.metadata;
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    w!(w, 0, "Name:\t{}\n", meta.name.clone().unwrap_or_default());
    w!(w, 0, "Namespace:\t{}\n", meta.namespace.clone().unwrap_or_default());
    if let Some(p) = spec.priority {
        w!(w, 0, "Priority:\t{p}\n");
    }
    if let Some(pc) = spec.priority_class_name.as_deref().filter(|s| !s.is_empty()) {
        w!(w, 0, "Priority Class Name:\t{pc}\n");
    }
    if let Some(sa) = spec.service_account_name.as_deref().filter(|s| !s.is_empty()) {
        w!(w, 0, "Service Account:\t{sa}\n");
    }
    match spec.node_name.as_deref().filter(|s| !s.is_empty()) {
        None => w!(w, 0, "Node:\t<none>\n"),
        Some(node) => w!(w, 0, "Node:\t{node}/{}\n", status.host_ip.clone().unwrap_or_default()),
    }
    if let Some(t) = &status.start_time {
        w!(w, 0, "Start Time:\t{}\n", age::rfc1123(t));
    }
    labels(&mut w, "Labels", meta.labels.as_ref());
    annotations(&mut w, "Annotations", meta.annotations.as_ref());
    let phase = status.phase.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| "Pending".into());
    match &meta.deletion_timestamp {
        Some(t) if !matches!(phase.as_str(), "Succeeded" | "Failed") => {
            w!(w, 0, "Status:\tTerminating (lasts {})\n", age::age(Some(t)));
            w!(w, 0, "Termination Grace Period:\t{}s\n", meta.deletion_grace_period_seconds.unwrap_or(0));
        }
        _ => w!(w, 0, "Status:\t{phase}\n"),
    }
    if let Some(r) = status.reason.as_deref().filter(|s| !s.is_empty()) {
        w!(w, 0, "Reason:\t{r}\n");
    }
    if let Some(m) = status.message.as_deref().filter(|s| !s.is_empty()) {
        w!(w, 0, "Message:\t{m}\n");
    }
    w!(w, 0, "IP:\t{}\n", status.pod_ip.clone().unwrap_or_default());
    let ips = status.pod_ips.clone().unwrap_or_default();
    if ips.is_empty() {
        w!(w, 0, "IPs:\t<none>\n");
    } else {
        w!(w, 0, "IPs:\n");
        for ip in &ips {
            w!(w, 1, "IP:\t{}\n", ip.ip);
        }
    }
    if let Some(owner) = meta.owner_references.iter().flatten().find(|o| o.controller == Some(true)) {
        w!(w, 0, "Controlled By:\t{}/{}\n", owner.kind, owner.name);
    }
    if let Some(n) = status.nominated_node_name.as_deref().filter(|s| !s.is_empty()) {
        w!(w, 0, "NominatedNodeName:\t{n}\n");
    }
    let init = spec.init_containers.clone().unwrap_or_default();
    if !init.is_empty() {
        containers(&mut w, "Init Containers", &init, status.init_container_statuses.as_deref(), "");
    }
    containers(
        &mut w,
        "Containers",
        &spec.containers,
        Some(status.container_statuses.as_deref().unwrap_or_default()),
        "",
    );
    let conditions = status.conditions.clone().unwrap_or_default();
    if !conditions.is_empty() {
        w!(w, 0, "Conditions:\n  Type\tStatus\n");
        for c in &conditions {
            w!(w, 1, "{} \t{} \n", c.type_, c.status);
        }
    }
    volumes(&mut w, spec.volumes.as_deref().unwrap_or_default(), "");
    w!(w, 0, "QoS Class:\t{}\n", status.qos_class.clone().unwrap_or_else(|| qos_class(&spec.containers)));
    labels(&mut w, "Node-Selectors", spec.node_selector.as_ref());
    tolerations(&mut w, "Tolerations", spec.tolerations.as_ref());
    events(&mut w, related.events.as_ref());
    w.finish()
}

/// The QoS class Kubernetes gives a pod without one in its status.
fn qos_class(containers: &[Container]) -> String {
    let mut any = false;
    let mut guaranteed = true;
    for c in containers {
        let res = c.resources.clone().unwrap_or_default();
        let requests = res.requests.unwrap_or_default();
        let limits = res.limits.unwrap_or_default();
        any |= !requests.is_empty() || !limits.is_empty();
        for r in ["cpu", "memory"] {
            let limit = limits.get(r);
            let request = requests.get(r).or(limit);
            if limit.is_none() || request != limit {
                guaranteed = false;
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort".into(),
        (true, true) => "Guaranteed".into(),
        (true, false) => "Burstable".into(),
    }
}

fn ports(c: &Container, host: bool) -> String {
    c.ports
        .iter()
        .flatten()
        .map(|p| {
            let port = if host { p.host_port.unwrap_or(0) } else { p.container_port };
            format!("{port}/{}", p.protocol.as_deref().unwrap_or("TCP"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn int_or_string(v: &IntOrString) -> String {
    match v {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

/// `http-get http://:8080/healthz delay=0s timeout=1s period=10s #success=1 #failure=3`.
pub fn probe(p: &Probe) -> String {
    let attrs = format!(
        "delay={}s timeout={}s period={}s #success={} #failure={}",
        p.initial_delay_seconds.unwrap_or(0),
        p.timeout_seconds.unwrap_or(1),
        p.period_seconds.unwrap_or(10),
        p.success_threshold.unwrap_or(1),
        p.failure_threshold.unwrap_or(3)
    );
    if let Some(e) = &p.exec {
        return format!("exec [{}] {attrs}", e.command.clone().unwrap_or_default().join(" "));
    }
    if let Some(h) = &p.http_get {
        let scheme = h.scheme.clone().unwrap_or_else(|| "HTTP".into()).to_lowercase();
        let host = h.host.clone().unwrap_or_default();
        let port = int_or_string(&h.port);
        let path = h.path.clone().unwrap_or_default();
        return format!("http-get {scheme}://{host}:{port}{path} {attrs}");
    }
    if let Some(t) = &p.tcp_socket {
        return format!("tcp-socket {}:{} {attrs}", t.host.clone().unwrap_or_default(), int_or_string(&t.port));
    }
    if let Some(g) = &p.grpc {
        return format!("grpc <pod>:{} {} {attrs}", g.port, g.service.clone().unwrap_or_default());
    }
    format!("unknown {attrs}")
}

fn state(w: &mut Writer, title: &str, s: &ContainerState) {
    if let Some(r) = &s.running {
        w!(w, 2, "{title}:\tRunning\n");
        if let Some(t) = &r.started_at {
            w!(w, 3, "Started:\t{}\n", age::rfc1123(t));
        }
    } else if let Some(wt) = &s.waiting {
        w!(w, 2, "{title}:\tWaiting\n");
        if let Some(r) = wt.reason.as_deref().filter(|r| !r.is_empty()) {
            w!(w, 3, "Reason:\t{r}\n");
        }
    } else if let Some(t) = &s.terminated {
        w!(w, 2, "{title}:\tTerminated\n");
        if let Some(r) = t.reason.as_deref().filter(|r| !r.is_empty()) {
            w!(w, 3, "Reason:\t{r}\n");
        }
        if let Some(m) = t.message.as_deref().filter(|m| !m.is_empty()) {
            w!(w, 3, "Message:\t{m}\n");
        }
        w!(w, 3, "Exit Code:\t{}\n", t.exit_code);
        if let Some(sig) = t.signal.filter(|s| *s > 0) {
            w!(w, 3, "Signal:\t{sig}\n");
        }
        let time = |t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
            t.as_ref().map(age::rfc1123).unwrap_or_default()
        };
        w!(w, 3, "Started:\t{}\n", time(&t.started_at));
        w!(w, 3, "Finished:\t{}\n", time(&t.finished_at));
    } else {
        w!(w, 2, "{title}:\tWaiting\n");
    }
}

/// The `Containers:` section; `statuses` is None for templates. `space`
/// indents the whole section (pod templates inside controllers).
pub fn containers(w: &mut Writer, title: &str, list: &[Container], statuses: Option<&[ContainerStatus]>, space: &str) {
    if list.is_empty() {
        w!(w, 0, "{space}{title}: <none>\n");
        return;
    }
    w!(w, 0, "{space}{title}:\n");
    let name_indent = if space.is_empty() { "" } else { " " };
    for c in list {
        let status: Option<&ContainerStatus> = statuses.and_then(|s| s.iter().find(|s| s.name == c.name));
        w!(w, 1, "{name_indent}{}:\n", c.name);
        if let Some(s) = status {
            w!(w, 2, "Container ID:\t{}\n", s.container_id.clone().unwrap_or_default());
        }
        w!(w, 2, "Image:\t{}\n", c.image.clone().unwrap_or_default());
        if let Some(s) = status {
            w!(w, 2, "Image ID:\t{}\n", s.image_id);
        }
        let p = ports(c, false);
        if p.contains(',') {
            w!(w, 2, "Ports:\t{p}\n");
        } else {
            w!(w, 2, "Port:\t{}\n", or_none(&p));
        }
        let hp = ports(c, true);
        if hp.contains(',') {
            w!(w, 2, "Host Ports:\t{hp}\n");
        } else {
            w!(w, 2, "Host Port:\t{}\n", or_none(&hp));
        }
        for (label, lines) in [("Command", &c.command), ("Args", &c.args)] {
            let lines = lines.clone().unwrap_or_default();
            if !lines.is_empty() {
                w!(w, 2, "{label}:\n");
                for line in lines.iter().flat_map(|l| l.split('\n')) {
                    w!(w, 3, "{line}\n");
                }
            }
        }
        if let Some(s) = status {
            state(w, "State", &s.state.clone().unwrap_or_default());
            if let Some(last) = s.last_state.as_ref().filter(|l| l.terminated.is_some()) {
                state(w, "Last State", last);
            }
            w!(w, 2, "Ready:\t{}\n", if s.ready { "True" } else { "False" });
            w!(w, 2, "Restart Count:\t{}\n", s.restart_count);
        }
        let res = c.resources.clone().unwrap_or_default();
        for (label, map) in [("Limits", res.limits), ("Requests", res.requests)] {
            let map = map.unwrap_or_default();
            if !map.is_empty() {
                w!(w, 2, "{label}:\n");
                for (k, q) in &map {
                    w!(w, 3, "{k}:\t{}\n", q.0);
                }
            }
        }
        for (label, p) in
            [("Liveness", &c.liveness_probe), ("Readiness", &c.readiness_probe), ("Startup", &c.startup_probe)]
        {
            if let Some(p) = p {
                w!(w, 2, "{label}:\t{}\n", probe(p));
            }
        }
        let env_from = c.env_from.clone().unwrap_or_default();
        if !env_from.is_empty() {
            w!(w, 2, "Environment Variables from:\n");
            for e in &env_from {
                let (name, from, optional) = match (&e.config_map_ref, &e.secret_ref) {
                    (Some(cm), _) => (cm.name.clone(), "ConfigMap", cm.optional.unwrap_or(false)),
                    (None, Some(s)) => (s.name.clone(), "Secret", s.optional.unwrap_or(false)),
                    (None, None) => (String::new(), "", false),
                };
                match e.prefix.as_deref().filter(|p| !p.is_empty()) {
                    None => w!(w, 3, "{name}\t{from}\tOptional: {optional}\n"),
                    Some(p) => w!(w, 3, "{name}\t{from} with prefix '{p}'\tOptional: {optional}\n"),
                }
            }
        }
        let env = c.env.clone().unwrap_or_default();
        w!(w, 2, "Environment:{}\n", if env.is_empty() { "\t<none>" } else { "" });
        for e in &env {
            let Some(from) = &e.value_from else {
                for (i, line) in e.value.clone().unwrap_or_default().split('\n').enumerate() {
                    if i == 0 {
                        w!(w, 3, "{}:\t{line}\n", e.name);
                    } else {
                        w!(w, 3, "\t{line}\n");
                    }
                }
                continue;
            };
            if let Some(f) = &from.field_ref {
                let api = f.api_version.clone().unwrap_or_else(|| "v1".into());
                w!(w, 3, "{}:\t ({api}:{})\n", e.name, f.field_path);
            } else if let Some(r) = &from.resource_field_ref {
                w!(w, 3, "{}:\t ({})\n", e.name, r.resource);
            } else if let Some(s) = &from.secret_key_ref {
                let optional = s.optional.unwrap_or(false);
                w!(w, 3, "{}:\t<set to the key '{}' in secret '{}'>\tOptional: {optional}\n", e.name, s.key, s.name);
            } else if let Some(cm) = &from.config_map_key_ref {
                let optional = cm.optional.unwrap_or(false);
                w!(
                    w,
                    3,
                    "{}:\t<set to the key '{}' of config map '{}'>\tOptional: {optional}\n",
                    e.name,
                    cm.key,
                    cm.name
                );
            }
        }
        let mut mounts = c.volume_mounts.clone().unwrap_or_default();
        mounts.sort_by(|a, b| a.mount_path.cmp(&b.mount_path));
        w!(w, 2, "Mounts:{}\n", if mounts.is_empty() { "\t<none>" } else { "" });
        for m in &mounts {
            let mut flags = vec![if m.read_only == Some(true) { "ro".to_string() } else { "rw".to_string() }];
            if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
                flags.push(format!("path={sub:?}"));
            }
            w!(w, 3, "{} from {} ({})\n", m.mount_path, m.name, flags.join(","));
        }
    }
}

/// The `Volumes:` section.
pub fn volumes(w: &mut Writer, list: &[Volume], space: &str) {
    if list.is_empty() {
        w!(w, 0, "{space}Volumes:\t<none>\n");
        return;
    }
    w!(w, 0, "{space}Volumes:\n");
    let name_indent = if space.is_empty() { "" } else { " " };
    for v in list {
        w!(w, 1, "{name_indent}{}:\n", v.name);
        if let Some(h) = &v.host_path {
            w!(w, 2, "Type:\tHostPath (bare host directory volume)\n");
            w!(w, 2, "Path:\t{}\n", h.path);
            w!(w, 2, "HostPathType:\t{}\n", h.type_.clone().unwrap_or_default());
        } else if let Some(e) = &v.empty_dir {
            w!(w, 2, "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n");
            w!(w, 2, "Medium:\t{}\n", e.medium.clone().unwrap_or_default());
            let limit = e.size_limit.as_ref().map(|q| q.0.clone()).filter(|q| !q.is_empty() && q != "0");
            w!(w, 2, "SizeLimit:\t{}\n", limit.unwrap_or_else(|| "<unset>".into()));
        } else if let Some(s) = &v.secret {
            w!(w, 2, "Type:\tSecret (a volume populated by a Secret)\n");
            w!(w, 2, "SecretName:\t{}\n", s.secret_name.clone().unwrap_or_default());
            w!(w, 2, "Optional:\t{}\n", s.optional.unwrap_or(false));
        } else if let Some(cm) = &v.config_map {
            w!(w, 2, "Type:\tConfigMap (a volume populated by a ConfigMap)\n");
            w!(w, 2, "Name:\t{}\n", cm.name);
            w!(w, 2, "Optional:\t{}\n", cm.optional.unwrap_or(false));
        } else if let Some(pvc) = &v.persistent_volume_claim {
            w!(w, 2, "Type:\tPersistentVolumeClaim (a reference to a PersistentVolumeClaim in the same namespace)\n");
            w!(w, 2, "ClaimName:\t{}\n", pvc.claim_name);
            w!(w, 2, "ReadOnly:\t{}\n", pvc.read_only.unwrap_or(false));
        } else {
            w!(w, 1, "<unknown>\n");
        }
    }
}

/// The `Pod Template:` section of controllers.
pub fn pod_template(w: &mut Writer, template: Option<&PodTemplateSpec>) {
    w!(w, 0, "Pod Template:\n");
    let Some(t) = template else {
        w!(w, 1, "<unset>\n");
        return;
    };
    let meta = t.metadata.clone().unwrap_or_default();
    let spec = t.spec.clone().unwrap_or_default();
    labels(w, "  Labels", meta.labels.as_ref());
    if meta.annotations.as_ref().is_some_and(|a| !a.is_empty()) {
        annotations(w, "  Annotations", meta.annotations.as_ref());
    }
    if let Some(sa) = spec.service_account_name.as_deref().filter(|s| !s.is_empty()) {
        w!(w, 1, "Service Account:\t{sa}\n");
    }
    let init = spec.init_containers.clone().unwrap_or_default();
    if !init.is_empty() {
        containers(w, "Init Containers", &init, None, "  ");
    }
    containers(w, "Containers", &spec.containers, None, "  ");
    volumes(w, spec.volumes.as_deref().unwrap_or_default(), "  ");
    labels(w, "  Node-Selectors", spec.node_selector.as_ref());
    tolerations(w, "  Tolerations", spec.tolerations.as_ref());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn two_container_pod_lists_each_container_with_its_state() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "redis-php", "namespace": "default", "labels": {"name": "redis-php"}},
            "spec": {"nodeName": "node1", "containers": [
                {"name": "frontend", "image": "rkube/toolbox:latest", "ports": [{"containerPort": 80}]},
                {"name": "redis", "image": "rkube/toolbox:latest",
                 "volumeMounts": [{"name": "logs", "mountPath": "/logs"}]},
            ], "volumes": [{"name": "logs", "emptyDir": {}}]},
            "status": {"phase": "Running", "hostIP": "10.0.0.23", "podIP": "10.1.24.2",
                       "startTime": "2017-04-12T01:14:58Z",
                       "conditions": [{"type": "Ready", "status": "True"}],
                       "containerStatuses": [
                {"name": "frontend", "ready": true, "restartCount": 0, "image": "rkube/toolbox:latest",
                 "imageID": "docker://sha256:abc", "containerID": "docker://d05b",
                 "state": {"running": {"startedAt": "2017-04-12T01:19:31Z"}}},
            ]},
        }))
        .expect("pod");
        let text = describe(&pod, &Related { events: Some(vec![]), ..Default::default() });
        let want_prefix = "\
Name:         redis-php
Namespace:    default
Node:         node1/10.0.0.23
Start Time:   Wed, 12 Apr 2017 01:14:58 +0000
Labels:       name=redis-php
Annotations:  <none>
Status:       Running
IP:           10.1.24.2
IPs:          <none>
Containers:
  frontend:
    Container ID:   docker://d05b
    Image:          rkube/toolbox:latest
    Image ID:       docker://sha256:abc
    Port:           80/TCP
    Host Port:      0/TCP
    State:          Running
      Started:      Wed, 12 Apr 2017 01:19:31 +0000
    Ready:          True
    Restart Count:  0
    Environment:    <none>
    Mounts:         <none>
  redis:
    Image:        rkube/toolbox:latest
    Port:         <none>
    Host Port:    <none>
    Environment:  <none>
    Mounts:
      /logs from logs (rw)
Conditions:
  Type    Status
  Ready   True 
Volumes:
  logs:
    Type:        EmptyDir (a temporary directory that shares a pod's lifetime)
    Medium:      
    SizeLimit:   <unset>
QoS Class:       BestEffort
Node-Selectors:  <none>
Tolerations:     <none>
Events:          <none>
";
        assert_eq!(text, want_prefix);
    }

    #[test]
    fn probes_describe_their_action_and_timing() {
        let p: Probe =
            serde_json::from_value(json!({"httpGet": {"path": "/healthz", "port": 8080}, "initialDelaySeconds": 5}))
                .expect("probe");
        assert_eq!(probe(&p), "http-get http://:8080/healthz delay=5s timeout=1s period=10s #success=1 #failure=3");
        let p: Probe = serde_json::from_value(json!({"exec": {"command": ["cat", "/tmp/healthy"]}})).expect("probe");
        assert!(probe(&p).starts_with("exec [cat /tmp/healthy] delay=0s"));
    }
}
