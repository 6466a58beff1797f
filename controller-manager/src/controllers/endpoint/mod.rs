//! The endpoints controller (v1 Endpoints) and the EndpointSlice controller
//! (`discovery.k8s.io/v1`): which pods back each Service, as Kubernetes'
//! `pkg/controller/endpoint` and `pkg/controller/endpointslice` keep them.
//!
//! Both start from the same question, answered by [`pod_endpoints`]: for a
//! Service with a selector, which pods of its namespace are endpoints, on
//! which ports, and in what state. A pod is an endpoint while it has an IP
//! and has not finished; a terminating pod leaves the ready set at once
//! (the Endpoints object drops it, its slices mark it `terminating`).
//! Named target ports resolve per pod against its containers' ports; a pod
//! where no port of the Service resolves is not an endpoint, and a Warning
//! event on the Service says why.
//!
//! - [`endpoints`] writes one Endpoints object per Service, named after it,
//!   with ready `addresses` and `notReadyAddresses` repacked into subsets by
//!   port set. Services without a selector keep the Endpoints users write.
//! - [`slices`] writes EndpointSlices owned by the Service, at most
//!   `--max-endpoints-per-slice` endpoints each, one group per port set,
//!   with the conditions ready/serving/terminating. For a Service without a
//!   selector it mirrors the user's Endpoints into slices (Kubernetes'
//!   endpointslicemirroring controller), so consumers of slices — the
//!   proxy, the DNS — see them too.
//!
//! Pod events enqueue the Services that select the pod now and those that
//! selected it at its previous event ([`ServiceIndex`]), so a pod whose
//! labels change leaves its old Service.

pub mod endpoints;
pub mod slices;

use crate::controllers::Controller;
use crate::controllers::pod_state::{PodView, is_ready, phase};
use k8s_openapi::api::core::v1::{ObjectReference, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use rkube_client::{ObjectKey, Store};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// The registry entry of the endpoints controller.
pub const ENDPOINT: Controller = Controller {
    name: endpoints::NAME,
    about: "keeps one Endpoints object per Service with the addresses of the pods it selects",
    enabled_by_default: true,
    check: |_| Ok(()),
    start: endpoints::start,
};

/// The registry entry of the EndpointSlice controller.
pub const ENDPOINTSLICE: Controller = Controller {
    name: slices::NAME,
    about: "keeps the EndpointSlices of each Service (and mirrors user-written Endpoints)",
    enabled_by_default: true,
    check: |f| match f.endpoint.max_endpoints_per_slice {
        1..=1000 => Ok(()),
        n => Err(format!("--max-endpoints-per-slice: {n} must be between 1 and 1000")),
    },
    start: slices::start,
};

/// The flags of both controllers (kube-controller-manager's names).
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
#[command(next_help_heading = "Endpoints and EndpointSlice controllers")]
pub struct Flags {
    /// Services whose Endpoints are reconciled at once.
    #[arg(long, env = "RKUBE_CONCURRENT_ENDPOINT_SYNCS", default_value_t = 5)]
    pub concurrent_endpoint_syncs: usize,
    /// Services whose EndpointSlices are reconciled at once.
    #[arg(long, env = "RKUBE_CONCURRENT_SERVICE_ENDPOINT_SYNCS", default_value_t = 5)]
    pub concurrent_service_endpoint_syncs: usize,
    /// Most endpoints in one EndpointSlice (1 to 1000).
    #[arg(long, env = "RKUBE_MAX_ENDPOINTS_PER_SLICE", default_value_t = 100)]
    pub max_endpoints_per_slice: usize,
}

/// One port of an endpoint: the Service port's name and protocol, and the
/// number it resolved to on the pod. Ordered, so port sets compare.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Port {
    /// The Service port's name ("" for a single unnamed port).
    pub name: String,
    /// The pod's port number.
    pub port: i32,
    /// TCP, UDP or SCTP.
    pub protocol: String,
    /// The Service port's appProtocol.
    pub app_protocol: Option<String>,
}

/// A pod that backs a Service.
#[derive(Debug, Clone, PartialEq)]
pub struct PodEndpoint {
    /// The pod's IP.
    pub ip: String,
    /// The node it runs on.
    pub node_name: Option<String>,
    /// Its DNS hostname under a headless Service (`spec.hostname` when
    /// `spec.subdomain` names this Service).
    pub hostname: Option<String>,
    /// The pod.
    pub target_ref: ObjectReference,
    /// Its Ready condition is True (or the Service publishes not-ready
    /// addresses).
    pub serving: bool,
    /// It is being deleted.
    pub terminating: bool,
    /// The Service's ports that resolved on this pod, sorted.
    pub ports: Vec<Port>,
}

impl PodEndpoint {
    /// Ready to take new traffic: serving and not terminating.
    pub fn ready(&self) -> bool {
        self.serving && !self.terminating
    }
}

/// The Service's selector, when it has a non-empty one (a Service without
/// one has its endpoints written by hand).
pub fn selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    svc.spec.as_ref()?.selector.as_ref().filter(|s| !s.is_empty())
}

/// `clusterIP: None`.
pub fn is_headless(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

/// `type: ExternalName` (a DNS alias: no endpoints).
pub fn is_external_name(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("ExternalName")
}

fn selects(selector: &BTreeMap<String, String>, labels: Option<&BTreeMap<String, String>>) -> bool {
    selector.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// Whether `pod` belongs among a Service's endpoints at all (Kubernetes'
/// `ShouldPodBeInEndpoints`): it has an IP, it has not finished for good,
/// and unless `include_terminating`, it is not being deleted.
fn should_be_endpoint(pod: &PodView, include_terminating: bool) -> bool {
    let has_ip = pod.status.as_ref().and_then(|s| s.pod_ip.as_deref()).is_some_and(|ip| !ip.is_empty());
    if !has_ip || (!include_terminating && pod.metadata.deletion_timestamp.is_some()) {
        return false;
    }
    let restart = pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()).unwrap_or("Always");
    !matches!((restart, phase(pod)), ("Never", "Failed" | "Succeeded") | ("OnFailure", "Succeeded"))
}

/// The pod's port for a Service port (Kubernetes' `podutil.FindPort`): a
/// number is taken as is; a name must be a container port of that name and
/// protocol.
fn find_port(pod: &PodView, target: &IntOrString, protocol: &str) -> Option<i32> {
    match target {
        IntOrString::Int(n) => Some(*n),
        IntOrString::String(name) => pod.spec.as_ref()?.containers.iter().find_map(|c| {
            c.ports.iter().flatten().find_map(|p| {
                let proto = p.protocol.as_deref().unwrap_or("TCP");
                (p.name.as_deref() == Some(name.as_str()) && proto == protocol).then_some(p.container_port)
            })
        }),
    }
}

fn service_port_protocol(sp: &ServicePort) -> &str {
    sp.protocol.as_deref().unwrap_or("TCP")
}

/// The endpoints of `svc` among `pods` (the pods of its namespace), sorted
/// by IP; see the module docs. `include_terminating` keeps pods being
/// deleted (slices mark them terminating). Each `(pod, port)` that does not
/// resolve is reported through `unresolved`.
pub fn pod_endpoints(
    svc: &Service,
    pods: &[Arc<PodView>],
    include_terminating: bool,
    mut unresolved: impl FnMut(&PodView, &ServicePort),
) -> Vec<PodEndpoint> {
    let Some(selector) = selector(svc) else { return Vec::new() };
    let spec = svc.spec.as_ref().expect("a Service with a selector has a spec");
    let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
    let service_ports = spec.ports.as_deref().unwrap_or_default();
    let svc_name = svc.metadata.name.as_deref().unwrap_or_default();
    let mut out = Vec::new();
    for pod in pods {
        let meta = &pod.metadata;
        if !selects(selector, meta.labels.as_ref())
            || !should_be_endpoint(pod, include_terminating || publish_not_ready)
        {
            continue;
        }
        let mut ports = Vec::with_capacity(service_ports.len());
        for sp in service_ports {
            let protocol = service_port_protocol(sp);
            let target = sp.target_port.clone().unwrap_or(IntOrString::Int(sp.port));
            match find_port(pod, &target, protocol) {
                Some(port) => ports.push(Port {
                    name: sp.name.clone().unwrap_or_default(),
                    port,
                    protocol: protocol.to_string(),
                    app_protocol: sp.app_protocol.clone(),
                }),
                None => unresolved(pod, sp),
            }
        }
        if ports.is_empty() && !service_ports.is_empty() {
            continue;
        }
        ports.sort();
        let pod_spec = pod.spec.as_ref();
        let hostname = pod_spec
            .and_then(|s| s.hostname.clone())
            .filter(|h| !h.is_empty() && pod_spec.and_then(|s| s.subdomain.as_deref()) == Some(svc_name));
        let status = pod.status.as_ref().expect("a pod with an IP has a status");
        out.push(PodEndpoint {
            ip: status.pod_ip.clone().unwrap_or_default(),
            node_name: pod_spec.and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty()),
            hostname,
            target_ref: ObjectReference {
                kind: Some("Pod".into()),
                namespace: meta.namespace.clone(),
                name: meta.name.clone(),
                uid: meta.uid.clone(),
                ..Default::default()
            },
            serving: publish_not_ready || is_ready(pod),
            terminating: meta.deletion_timestamp.is_some() && !publish_not_ready,
            ports,
        });
    }
    out.sort_by(|a, b| a.ip.cmp(&b.ip).then_with(|| a.target_ref.uid.cmp(&b.target_ref.uid)));
    out
}

/// Which Services each pod was selected by at its last event, so that a
/// pod whose labels changed (or that was deleted) still reaches the
/// Services it left.
#[derive(Debug, Default)]
pub struct ServiceIndex {
    last: Mutex<HashMap<ObjectKey, Vec<ObjectKey>>>,
}

impl ServiceIndex {
    /// The Services an event about `pod` concerns: those that select it
    /// now and those that selected it before.
    pub fn keys(&self, services: &Store<Service>, pod: &PodView, deleted: bool) -> Vec<ObjectKey> {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        let labels = pod.metadata.labels.as_ref();
        let now: Vec<ObjectKey> = services
            .list_namespace(namespace)
            .iter()
            .filter(|s| selector(s).is_some_and(|sel| selects(sel, labels)))
            .map(|s| ObjectKey::of(s.as_ref()))
            .collect();
        let pod_key = ObjectKey::of(pod);
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let before = if deleted || now.is_empty() { last.remove(&pod_key) } else { last.insert(pod_key, now.clone()) };
        let mut keys = now;
        for key in before.into_iter().flatten() {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        keys
    }
}

/// `pod <ns>/<name> has no container port named "<x>" for service port ...`:
/// the message of the Warning event for a target port that does not resolve.
pub fn unresolved_message(pod: &PodView, sp: &ServicePort) -> String {
    let target = match &sp.target_port {
        Some(IntOrString::String(name)) => format!("no {} container port named \"{name}\"", service_port_protocol(sp)),
        Some(IntOrString::Int(n)) => format!("no port {n}"),
        None => format!("no port {}", sp.port),
    };
    let port = match sp.name.as_deref() {
        Some(name) if !name.is_empty() => format!("\"{name}\" ({})", sp.port),
        _ => sp.port.to_string(),
    };
    format!(
        "pod {}/{} has {target} (targetPort of service port {port}); it is not an endpoint for it",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    pub(crate) fn service(v: Value) -> Service {
        serde_json::from_value(v).unwrap()
    }

    pub(crate) fn pod(name: &str, ip: &str, ready: bool, extra: Value) -> Arc<PodView> {
        let mut v = json!({"metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i",
                "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": ip,
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}});
        merge(&mut v, extra);
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn merge(into: &mut Value, from: Value) {
        match (into, from) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(Value::Null), v);
                }
            }
            (slot, v) => *slot = v,
        }
    }

    pub(crate) fn web_service() -> Service {
        service(json!({"metadata": {"name": "web", "namespace": "default", "uid": "svc-uid"},
            "spec": {"selector": {"app": "web"}, "clusterIP": "10.254.0.9",
                "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
                          {"name": "admin", "port": 81, "targetPort": 9000, "protocol": "TCP"}]}}))
    }

    #[test]
    fn named_target_ports_resolve_per_pod_and_unresolvable_pods_are_reported() {
        let svc = service(json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http", "protocol": "TCP"}]}}));
        let other = pod(
            "b",
            "10.1.0.2",
            true,
            json!({"spec": {"containers": [{"name": "c", "image": "i",
            "ports": [{"name": "http", "containerPort": 9090}]}]}}),
        );
        let unnamed = pod("c", "10.1.0.3", true, json!({"spec": {"containers": [{"name": "c", "image": "i"}]}}));
        let mut reported = Vec::new();
        let eps = pod_endpoints(&svc, &[pod("a", "10.1.0.1", true, json!({})), other, unnamed], false, |p, sp| {
            reported.push(unresolved_message(p, sp))
        });
        let ports: Vec<(&str, i32)> = eps.iter().map(|e| (e.ip.as_str(), e.ports[0].port)).collect();
        assert_eq!(ports, [("10.1.0.1", 8080), ("10.1.0.2", 9090)]);
        assert_eq!(
            reported,
            [
                "pod default/c has no TCP container port named \"http\" (targetPort of service port 80); it is not an endpoint for it"
            ]
        );
    }

    #[test]
    fn readiness_termination_and_phase_decide_membership() {
        let svc = web_service();
        let pods = [
            pod("ready", "10.1.0.1", true, json!({})),
            pod("unready", "10.1.0.2", false, json!({})),
            pod("leaving", "10.1.0.3", true, json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}})),
            pod("no-ip", "", true, json!({})),
            pod(
                "done",
                "10.1.0.5",
                false,
                json!({"spec": {"restartPolicy": "Never"}, "status": {"phase": "Succeeded"}}),
            ),
            pod("other", "10.1.0.6", true, json!({"metadata": {"labels": {"app": "db"}}})),
        ];
        let names = |eps: &[PodEndpoint]| -> Vec<(String, bool, bool)> {
            eps.iter().map(|e| (e.target_ref.name.clone().unwrap(), e.ready(), e.terminating)).collect()
        };
        let without = pod_endpoints(&svc, &pods, false, |_, _| {});
        assert_eq!(names(&without), [("ready".into(), true, false), ("unready".into(), false, false)]);
        let with = pod_endpoints(&svc, &pods, true, |_, _| {});
        assert_eq!(
            names(&with),
            [("ready".into(), true, false), ("unready".into(), false, false), ("leaving".into(), false, true)]
        );
        assert_eq!(
            with[0].ports,
            [
                Port { name: "admin".into(), port: 9000, protocol: "TCP".into(), app_protocol: None },
                Port { name: "http".into(), port: 8080, protocol: "TCP".into(), app_protocol: None },
            ]
        );
        let mut publish = svc.clone();
        publish.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
        let published = pod_endpoints(&publish, &pods, false, |_, _| {});
        assert_eq!(published.iter().filter(|e| e.ready()).count(), 3, "{published:?}");
    }

    #[test]
    fn hostnames_are_set_only_under_the_named_subdomain() {
        let svc = web_service();
        let pods = [
            pod("a", "10.1.0.1", true, json!({"spec": {"hostname": "a", "subdomain": "web"}})),
            pod("b", "10.1.0.2", true, json!({"spec": {"hostname": "b", "subdomain": "other"}})),
        ];
        let eps = pod_endpoints(&svc, &pods, false, |_, _| {});
        assert_eq!(eps[0].hostname.as_deref(), Some("a"));
        assert_eq!(eps[1].hostname, None);
    }

    #[test]
    fn a_pod_reaches_the_services_it_left() {
        let writer = rkube_client::store::Writer::<Service>::new();
        writer.apply(Arc::new(web_service()));
        let services = writer.as_reader();
        let index = ServiceIndex::default();
        let web = pod("a", "10.1.0.1", true, json!({}));
        assert_eq!(index.keys(&services, &web, false), [ObjectKey::new("default", "web")]);
        let moved = pod("a", "10.1.0.1", true, json!({"metadata": {"labels": {"app": "db"}}}));
        assert_eq!(index.keys(&services, &moved, false), [ObjectKey::new("default", "web")], "the one it left");
        assert!(index.keys(&services, &moved, false).is_empty(), "then nothing");
        index.keys(&services, &web, false);
        assert_eq!(index.keys(&services, &web, true), [ObjectKey::new("default", "web")]);
        assert!(index.last.lock().unwrap().is_empty(), "a deleted pod is forgotten");
    }
}
