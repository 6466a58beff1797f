//! What the proxy reads from the API and what it programs from it.
//!
//! [`ServiceView`] and [`EndpointSliceView`] are lean views of Services and
//! EndpointSlices: they decode only the fields the datapath needs, so the
//! informer caches stay small. [`service_ports`] turns one Service and its
//! slices into [`ServicePort`]s — one per Service port, with the endpoints
//! traffic may go to — skipping (with a warning) whatever it cannot program.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use tracing::warn;

/// The label naming the Service an EndpointSlice belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Keeps of an object's metadata what the proxy uses: name, namespace,
/// resourceVersion and labels (uid, annotations and managed fields go).
fn lean_meta<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let m = ObjectMeta::deserialize(d)?;
    Ok(ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        resource_version: m.resource_version,
        labels: m.labels,
        ..Default::default()
    })
}

/// A Service, as far as the proxy reads it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceView {
    /// Name, namespace, labels.
    #[serde(deserialize_with = "lean_meta")]
    pub metadata: ObjectMeta,
    /// The spec fields the datapath needs.
    #[serde(default)]
    pub spec: Option<ServiceSpecView>,
}

rkube_api::view_of!(ServiceView, Service);

/// `spec` of a [`ServiceView`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpecView {
    /// ClusterIP, NodePort, LoadBalancer or ExternalName (absent: ClusterIP).
    #[serde(rename = "type", default, with = "interned")]
    pub type_: Option<Arc<str>>,
    /// The ClusterIP, or "None" for a headless Service.
    #[serde(rename = "clusterIP", default)]
    pub cluster_ip: Option<String>,
    /// The ports.
    #[serde(default)]
    pub ports: Option<Vec<ServicePortView>>,
    /// None or ClientIP.
    #[serde(default, with = "interned")]
    pub session_affinity: Option<Arc<str>>,
    /// The ClientIP affinity's timeout.
    #[serde(default)]
    pub session_affinity_config: Option<SessionAffinityConfigView>,
    /// Cluster or Local.
    #[serde(default, with = "interned")]
    pub external_traffic_policy: Option<Arc<str>>,
}

/// One port of a [`ServiceSpecView`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePortView {
    /// The name endpoints' ports are matched by ("" or absent when unnamed).
    #[serde(default)]
    pub name: Option<String>,
    /// TCP (default), UDP or SCTP.
    #[serde(default, with = "interned")]
    pub protocol: Option<Arc<str>>,
    /// The port on the ClusterIP.
    #[serde(default)]
    pub port: i32,
    /// The port on every node, for NodePort and LoadBalancer Services.
    #[serde(default)]
    pub node_port: Option<i32>,
}

/// `spec.sessionAffinityConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionAffinityConfigView {
    /// `clientIP`.
    #[serde(rename = "clientIP", default)]
    pub client_ip: Option<ClientIpConfigView>,
}

/// `spec.sessionAffinityConfig.clientIP`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientIpConfigView {
    /// How long a client sticks to its endpoint (default 10800).
    #[serde(default)]
    pub timeout_seconds: Option<i32>,
}

/// An EndpointSlice, as far as the proxy reads it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSliceView {
    /// Name, namespace and the `kubernetes.io/service-name` label.
    #[serde(deserialize_with = "lean_meta")]
    pub metadata: ObjectMeta,
    /// IPv4, IPv6 or FQDN; only IPv4 is programmed.
    #[serde(default)]
    pub address_type: String,
    /// The endpoints.
    #[serde(default)]
    pub endpoints: Vec<EndpointView>,
    /// The ports every endpoint of the slice serves.
    #[serde(default)]
    pub ports: Option<Vec<EndpointPortView>>,
}

rkube_api::view_of!(EndpointSliceView, EndpointSlice);

impl AsRef<EndpointSliceView> for EndpointSliceView {
    fn as_ref(&self) -> &EndpointSliceView {
        self
    }
}

/// One endpoint of an [`EndpointSliceView`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointView {
    /// The first of its `addresses`, the one used: kept parsed, as a few
    /// thousand slices hold tens of thousands of them.
    #[serde(default, rename = "addresses", with = "first_address")]
    pub address: Address,
    /// Ready, serving, terminating.
    #[serde(default)]
    pub conditions: Option<EndpointConditionsView>,
    /// The node it runs on (one shared string per node name).
    #[serde(default, with = "interned")]
    pub node_name: Option<Arc<str>>,
}

/// An endpoint's address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Address {
    /// None given.
    #[default]
    Missing,
    /// An IPv4 address.
    V4(Ipv4Addr),
    /// Anything else (IPv6, malformed): not programmed.
    Other(Box<str>),
}

/// `addresses` as its first element.
mod first_address {
    use super::Address;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(a: &Address, s: S) -> Result<S::Ok, S::Error> {
        match a {
            Address::Missing => s.collect_seq(std::iter::empty::<String>()),
            Address::V4(ip) => s.collect_seq([ip.to_string()]),
            Address::Other(text) => s.collect_seq([text]),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Address, D::Error> {
        let list = Option::<Vec<String>>::deserialize(d)?.unwrap_or_default();
        Ok(match list.into_iter().next() {
            None => Address::Missing,
            Some(text) => match text.parse() {
                Ok(ip) => Address::V4(ip),
                Err(_) => Address::Other(text.into()),
            },
        })
    }
}

/// Strings that take few values (node names, protocols, Service types and
/// policies, which the apiserver validates), shared: every object holding
/// one points at one string.
mod interned {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};

    static NAMES: Mutex<Option<HashSet<Arc<str>>>> = Mutex::new(None);

    pub fn serialize<S: Serializer>(name: &Option<Arc<str>>, s: S) -> Result<S::Ok, S::Error> {
        match name {
            Some(n) => s.serialize_some(&**n),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Arc<str>>, D::Error> {
        let Some(name) = Option::<String>::deserialize(d)? else { return Ok(None) };
        let mut names = NAMES.lock().unwrap_or_else(|p| p.into_inner());
        let names = names.get_or_insert_with(HashSet::new);
        if let Some(known) = names.get(name.as_str()) {
            return Ok(Some(known.clone()));
        }
        let name: Arc<str> = name.into();
        names.insert(name.clone());
        Ok(Some(name))
    }
}

/// `conditions` of an [`EndpointView`]; absent means ready and serving.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EndpointConditionsView {
    /// Takes traffic.
    #[serde(default)]
    pub ready: Option<bool>,
    /// Would take traffic (ready, though perhaps terminating).
    #[serde(default)]
    pub serving: Option<bool>,
    /// Being deleted.
    #[serde(default)]
    pub terminating: Option<bool>,
}

/// One port of an [`EndpointSliceView`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EndpointPortView {
    /// The Service port name it serves ("" or absent when unnamed).
    #[serde(default)]
    pub name: Option<String>,
    /// The port number on the endpoint.
    #[serde(default)]
    pub port: Option<i32>,
    /// TCP (default), UDP or SCTP.
    #[serde(default, with = "interned")]
    pub protocol: Option<Arc<str>>,
}

/// A transport protocol a Service port may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// Parses a Kubernetes protocol name; absent is TCP.
    pub fn parse(s: Option<&str>) -> Option<Protocol> {
        match s.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// The nft name (`tcp`, `udp`, `sctp`).
    pub fn nft(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// An endpoint traffic may be sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// The endpoint's address.
    pub ip: Ipv4Addr,
    /// The endpoint's port.
    pub port: u16,
    /// Whether it runs on this node.
    pub local: bool,
}

/// One port of one Service, with its endpoints: the unit the proxy programs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// The port's name ("" when unnamed).
    pub port_name: String,
    /// The protocol.
    pub protocol: Protocol,
    /// The ClusterIP.
    pub cluster_ip: Ipv4Addr,
    /// The port on the ClusterIP.
    pub port: u16,
    /// The NodePort, if any.
    pub node_port: Option<u16>,
    /// The ClientIP affinity timeout in seconds, when affinity is on.
    pub affinity_timeout: Option<u32>,
    /// `externalTrafficPolicy: Local` (NodePort traffic only to local endpoints).
    pub external_local: bool,
    /// Where traffic may go, sorted: ready endpoints, or if none is ready the
    /// serving terminating ones.
    pub endpoints: Vec<Endpoint>,
}

impl ServicePort {
    /// `namespace/name:port` for logs and comments (`namespace/name` when unnamed).
    pub fn display_name(&self) -> String {
        if self.port_name.is_empty() {
            format!("{}/{}", self.namespace, self.name)
        } else {
            format!("{}/{}:{}", self.namespace, self.name, self.port_name)
        }
    }

    /// The endpoints on this node.
    pub fn local_endpoints(&self) -> Vec<Endpoint> {
        self.endpoints.iter().filter(|e| e.local).copied().collect()
    }
}

/// The default ClientIP affinity timeout (3 hours), as in Kubernetes.
pub const DEFAULT_AFFINITY_TIMEOUT: u32 = 10800;

/// The ports of `svc` the proxy programs, with their endpoints from
/// `slices` (the Service's EndpointSlices); `node` is this node's name.
/// Headless and ExternalName Services have none; what cannot be programmed
/// (an IPv6 or malformed ClusterIP, a bad port) is skipped with a warning.
pub fn service_ports(svc: &ServiceView, slices: &[impl AsRef<EndpointSliceView>], node: &str) -> Vec<ServicePort> {
    let namespace = svc.metadata.namespace.as_deref().unwrap_or_default();
    let name = svc.metadata.name.as_deref().unwrap_or_default();
    let Some(spec) = &svc.spec else { return Vec::new() };
    if spec.type_.as_deref() == Some("ExternalName") {
        return Vec::new();
    }
    let cluster_ip = match spec.cluster_ip.as_deref().unwrap_or_default() {
        "" | "None" => return Vec::new(),
        ip => match ip.parse::<Ipv4Addr>() {
            Ok(ip) => ip,
            Err(_) => {
                if ip.parse::<std::net::Ipv6Addr>().is_err() {
                    warn!(service = %format!("{namespace}/{name}"), cluster_ip = ip, "skipping a Service with a malformed clusterIP");
                }
                return Vec::new();
            }
        },
    };
    let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        let t =
            spec.session_affinity_config.as_ref().and_then(|c| c.client_ip.as_ref()).and_then(|c| c.timeout_seconds);
        t.and_then(|t| u32::try_from(t).ok()).filter(|t| *t > 0).unwrap_or(DEFAULT_AFFINITY_TIMEOUT)
    });
    let external = matches!(spec.type_.as_deref(), Some("NodePort") | Some("LoadBalancer"));
    let external_local = external && spec.external_traffic_policy.as_deref() == Some("Local");
    let mut out = Vec::new();
    for p in spec.ports.as_deref().unwrap_or_default() {
        let port_name = p.name.clone().unwrap_or_default();
        let (Some(protocol), Ok(port)) = (Protocol::parse(p.protocol.as_deref()), u16::try_from(p.port)) else {
            warn!(service = %format!("{namespace}/{name}"), port = %port_name, "skipping a Service port with an unknown protocol or a bad port");
            continue;
        };
        if port == 0 {
            continue;
        }
        let node_port =
            if external { p.node_port.and_then(|n| u16::try_from(n).ok()).filter(|n| *n != 0) } else { None };
        out.push(ServicePort {
            namespace: namespace.to_string(),
            name: name.to_string(),
            endpoints: endpoints_for(&port_name, protocol, slices, node),
            port_name,
            protocol,
            cluster_ip,
            port,
            node_port,
            affinity_timeout,
            external_local,
        });
    }
    out
}

/// The endpoints of `slices` serving the port named `port_name`: the ready
/// ones (absent `ready` counts as ready, terminating ones never do); if
/// none is ready, the serving terminating ones, as kube-proxy falls back.
fn endpoints_for(
    port_name: &str,
    protocol: Protocol,
    slices: &[impl AsRef<EndpointSliceView>],
    node: &str,
) -> Vec<Endpoint> {
    // Endpoint -> ready (else serving and terminating).
    let mut found: BTreeMap<Endpoint, bool> = BTreeMap::new();
    for slice in slices.iter().map(AsRef::as_ref) {
        if slice.address_type != "IPv4" {
            continue;
        }
        let port = slice.ports.as_deref().unwrap_or_default().iter().find(|p| {
            p.name.as_deref().unwrap_or_default() == port_name
                && Protocol::parse(p.protocol.as_deref()) == Some(protocol)
        });
        let Some(port) = port.and_then(|p| p.port).and_then(|p| u16::try_from(p).ok()).filter(|p| *p != 0) else {
            continue;
        };
        for ep in &slice.endpoints {
            let ip = match &ep.address {
                Address::V4(ip) => *ip,
                Address::Missing => continue,
                Address::Other(addr) => {
                    warn!(slice = %slice.metadata.name.as_deref().unwrap_or_default(), address = %addr, "skipping a malformed endpoint address");
                    continue;
                }
            };
            let c = ep.conditions.clone().unwrap_or_default();
            let terminating = c.terminating == Some(true);
            let ready = c.ready.unwrap_or(true) && !terminating;
            let serving = c.serving.unwrap_or(c.ready.unwrap_or(true));
            if !(ready || serving && terminating) {
                continue;
            }
            let local = ep.node_name.as_deref() == Some(node);
            let e = Endpoint { ip, port, local };
            let was_ready = found.get(&e).copied().unwrap_or(false);
            found.insert(e, ready || was_ready);
        }
    }
    let any_ready = found.values().any(|r| *r);
    found.into_iter().filter(|(_, ready)| *ready == any_ready).map(|(e, _)| e).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(spec: serde_json::Value) -> ServiceView {
        serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "default",
            "annotations": {"big": "x"}, "managedFields": [{"manager": "m"}]}, "spec": spec}))
        .unwrap()
    }

    fn slice(endpoints: serde_json::Value, ports: serde_json::Value) -> EndpointSliceView {
        serde_json::from_value(json!({"metadata": {"name": "web-1", "namespace": "default",
            "labels": {SERVICE_NAME_LABEL: "web"}}, "addressType": "IPv4", "endpoints": endpoints, "ports": ports}))
        .unwrap()
    }

    #[test]
    fn views_keep_lean_metadata() {
        let s = svc(json!({"clusterIP": "10.0.0.1"}));
        assert_eq!(s.metadata.annotations, None);
        assert_eq!(s.metadata.managed_fields, None);
        assert_eq!(s.spec.unwrap().cluster_ip.as_deref(), Some("10.0.0.1"));
        let eps = json!([
            {"addresses": ["10.1.0.2", "10.1.0.9"], "nodeName": "n1"},
            {"addresses": ["fd00::1"], "nodeName": "n1"},
            {"addresses": []},
        ]);
        let sl = slice(eps, json!([]));
        let e = &sl.endpoints;
        assert_eq!(e[0].address, Address::V4(Ipv4Addr::new(10, 1, 0, 2)), "the first address, parsed");
        assert_eq!(e[1].address, Address::Other("fd00::1".into()));
        assert_eq!(e[2].address, Address::Missing);
        let (a, b) = (e[0].node_name.as_ref().unwrap(), e[1].node_name.as_ref().unwrap());
        assert!(Arc::ptr_eq(a, b), "one string per node name");
        let back = serde_json::to_value(&sl.endpoints).unwrap();
        assert_eq!(back[0]["addresses"], json!(["10.1.0.2"]));
        assert_eq!(back[1]["addresses"], json!(["fd00::1"]));
        assert_eq!(back[0]["nodeName"], "n1");
    }

    #[test]
    fn ready_endpoints_resolved_by_port_name() {
        let s = svc(
            json!({"clusterIP": "10.0.0.1", "ports": [{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}]}),
        );
        let sl = slice(
            json!([
                {"addresses": ["10.1.0.2"], "conditions": {"ready": true}, "nodeName": "n1"},
                {"addresses": ["10.1.0.3"]},
                {"addresses": ["10.1.0.4"], "conditions": {"ready": false}},
                {"addresses": ["10.1.0.5"], "conditions": {"ready": true, "terminating": true}},
                {"addresses": ["bogus"]},
            ]),
            json!([{"name": "http", "port": 8080}, {"name": "dns", "port": 5353, "protocol": "UDP"}]),
        );
        let ports = service_ports(&s, &[&sl], "n1");
        assert_eq!(ports.len(), 2);
        let ips: Vec<_> = ports[0].endpoints.iter().map(|e| (e.ip.to_string(), e.port, e.local)).collect();
        assert_eq!(ips, [("10.1.0.2".to_string(), 8080, true), ("10.1.0.3".to_string(), 8080, false)]);
        assert_eq!(ports[1].protocol, Protocol::Udp);
        assert_eq!(ports[1].endpoints[0].port, 5353);
    }

    #[test]
    fn serving_terminating_endpoints_are_the_fallback() {
        let s = svc(json!({"clusterIP": "10.0.0.1", "ports": [{"port": 80}]}));
        let sl = slice(
            json!([{"addresses": ["10.1.0.5"], "conditions": {"ready": false, "serving": true, "terminating": true}},
                   {"addresses": ["10.1.0.6"], "conditions": {"ready": false, "serving": false, "terminating": true}}]),
            json!([{"port": 8080}]),
        );
        let ports = service_ports(&s, &[&sl], "n1");
        assert_eq!(ports[0].endpoints.iter().map(|e| e.ip.to_string()).collect::<Vec<_>>(), ["10.1.0.5"]);
    }

    #[test]
    fn headless_external_name_and_bad_services_get_nothing() {
        let slices: [&EndpointSliceView; 0] = [];
        assert!(service_ports(&svc(json!({"clusterIP": "None", "ports": [{"port": 80}]})), &slices, "n").is_empty());
        assert!(service_ports(&svc(json!({"type": "ExternalName", "ports": [{"port": 80}]})), &slices, "n").is_empty());
        assert!(
            service_ports(&svc(json!({"clusterIP": "10.0.0.300", "ports": [{"port": 80}]})), &slices, "n").is_empty()
        );
        let bad_port =
            svc(json!({"clusterIP": "10.0.0.3", "ports": [{"port": 70000}, {"port": 80, "protocol": "ICMP"}]}));
        assert!(service_ports(&bad_port, &slices, "n").is_empty());
    }

    #[test]
    fn affinity_and_policies() {
        let s = svc(json!({"type": "NodePort", "clusterIP": "10.0.0.1", "ports": [{"port": 80, "nodePort": 30080}],
            "sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
            "externalTrafficPolicy": "Local"}));
        let slices: [&EndpointSliceView; 0] = [];
        let p = &service_ports(&s, &slices, "n")[0];
        assert_eq!((p.affinity_timeout, p.node_port, p.external_local), (Some(60), Some(30080), true));
        let cluster_ip_only = svc(json!({"clusterIP": "10.0.0.1", "ports": [{"port": 80, "nodePort": 30080}]}));
        assert_eq!(service_ports(&cluster_ip_only, &slices, "n")[0].node_port, None);
    }
}
