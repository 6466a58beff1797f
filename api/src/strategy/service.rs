//! Services and Endpoints: the defaults Kubernetes applies (type ClusterIP,
//! session affinity None, TCP ports, targetPort = port, traffic policies)
//! and their validation (ports, types, cluster IPs, node ports, endpoint
//! addresses); a Service's cluster IP never changes once allocated.

use super::container::PROTOCOLS;
use crate::error::Cause;
use crate::kinds::Strategy;
use crate::validation::causes::{duplicate_value, immutable, invalid_value, json, required_because, too_many};
use crate::validation::checks::{
    dns_label, dns_subdomain, formatted, label_key, labels, one_of, port_num_or_name, port_number,
};
use crate::validation::{duplicate, forbidden, invalid, required, syntax};
use k8s_openapi::api::core::v1::{ClientIPConfig, Endpoints, Service, ServicePort, ServiceSpec, SessionAffinityConfig};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;
use std::collections::BTreeSet;
use std::net::IpAddr;

/// The node ports Kubernetes hands out by default.
pub const NODE_PORT_RANGE: std::ops::RangeInclusive<i32> = 30000..=32767;

/// How long ClientIP session affinity lasts by default (3 hours).
pub const DEFAULT_CLIENT_IP_TIMEOUT: i32 = 10800;

const SERVICE_TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];

fn service_type(spec: &ServiceSpec) -> &str {
    spec.type_.as_deref().unwrap_or_default()
}

/// Reachable from outside the cluster: NodePort, LoadBalancer, or a
/// ClusterIP service with external IPs.
fn externally_accessible(spec: &ServiceSpec) -> bool {
    match service_type(spec) {
        "LoadBalancer" | "NodePort" => true,
        "ClusterIP" => spec.external_ips.as_ref().is_some_and(|ips| !ips.is_empty()),
        _ => false,
    }
}

/// Whether a Service of this spec gets node ports: NodePort, and
/// LoadBalancer unless `allocateLoadBalancerNodePorts` is false.
pub fn wants_node_ports(spec: &ServiceSpec) -> bool {
    match service_type(spec) {
        "NodePort" => true,
        "LoadBalancer" => spec.allocate_load_balancer_node_ports != Some(false),
        _ => false,
    }
}

fn is_headless(spec: &ServiceSpec) -> bool {
    spec.cluster_ip.as_deref() == Some("None")
}

impl Strategy for Service {
    fn default_fields(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        if spec.session_affinity.as_deref().is_none_or(str::is_empty) {
            spec.session_affinity = Some("None".into());
        }
        match spec.session_affinity.as_deref() {
            Some("None") => spec.session_affinity_config = None,
            Some("ClientIP") => {
                let config = spec.session_affinity_config.get_or_insert_with(SessionAffinityConfig::default);
                let client_ip = config.client_ip.get_or_insert_with(ClientIPConfig::default);
                client_ip.timeout_seconds.get_or_insert(DEFAULT_CLIENT_IP_TIMEOUT);
            }
            _ => {}
        }
        if spec.type_.as_deref().is_none_or(str::is_empty) {
            spec.type_ = Some("ClusterIP".into());
        }
        for p in spec.ports.iter_mut().flatten() {
            if p.protocol.as_deref().is_none_or(str::is_empty) {
                p.protocol = Some("TCP".into());
            }
            let unset = match &p.target_port {
                None => true,
                Some(IntOrString::Int(n)) => *n == 0,
                Some(IntOrString::String(s)) => s.is_empty(),
            };
            if unset {
                p.target_port = Some(IntOrString::Int(p.port));
            }
        }
        if externally_accessible(spec) && spec.external_traffic_policy.as_deref().is_none_or(str::is_empty) {
            spec.external_traffic_policy = Some("Cluster".into());
        }
        if spec.internal_traffic_policy.is_none()
            && matches!(service_type(spec), "ClusterIP" | "NodePort" | "LoadBalancer")
        {
            spec.internal_traffic_policy = Some("Cluster".into());
        }
        if service_type(spec) == "LoadBalancer" {
            spec.allocate_load_balancer_node_ports.get_or_insert(true);
        }
        // clusterIP and clusterIPs[0] say the same thing; keep them in step.
        let ip = spec.cluster_ip.clone().unwrap_or_default();
        let ips_empty = spec.cluster_ips.as_ref().is_none_or(Vec::is_empty);
        if !ip.is_empty() && ips_empty {
            spec.cluster_ips = Some(vec![ip]);
        } else if ip.is_empty() && !ips_empty {
            spec.cluster_ip = spec.cluster_ips.as_ref().and_then(|ips| ips.first().cloned());
        }
    }

    fn validate(&self) -> Vec<Cause> {
        validate_service_spec(&self.spec.clone().unwrap_or_default())
    }

    /// An update that leaves out the allocated clusterIP or a port's
    /// nodePort keeps them; a change of type to one without node ports
    /// drops the node ports the user did not change (Kubernetes'
    /// `PatchAllocatedValues` and `dropTypeDependentFields`).
    fn prepare_for_update(&mut self, old: &Self) {
        let (Some(spec), Some(old_spec)) = (self.spec.as_mut(), old.spec.as_ref()) else { return };
        let external = service_type(spec) == "ExternalName";
        if !external && spec.cluster_ip.as_deref().is_none_or(str::is_empty) {
            spec.cluster_ip.clone_from(&old_spec.cluster_ip);
            spec.cluster_ips.clone_from(&old_spec.cluster_ips);
        }
        let old_port = |p: &ServicePort| {
            old_spec
                .ports
                .iter()
                .flatten()
                .find(|o| o.port == p.port && o.protocol == p.protocol)
                .and_then(|o| o.node_port)
        };
        let wants = wants_node_ports(spec);
        for p in spec.ports.iter_mut().flatten() {
            let old = old_port(p);
            if wants && p.node_port.is_none_or(|n| n == 0) {
                p.node_port = old;
            } else if !wants && wants_node_ports(old_spec) && p.node_port == old {
                p.node_port = None;
            }
        }
    }

    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        let (new_spec, old_spec) = (self.spec.clone().unwrap_or_default(), old.spec.clone().unwrap_or_default());
        let mut causes = Vec::new();
        let external = service_type(&new_spec) == "ExternalName" || service_type(&old_spec) == "ExternalName";
        let (new_ip, old_ip) =
            (new_spec.cluster_ip.as_deref().unwrap_or_default(), old_spec.cluster_ip.as_deref().unwrap_or_default());
        // An update that leaves the IP out keeps the allocated one (the
        // apiserver copies it over); changing it is refused.
        if !external && !new_ip.is_empty() && !old_ip.is_empty() && new_ip != old_ip {
            causes.push(invalid_value("spec.clusterIPs[0]", json!([new_ip]), "may not change once set"));
        }
        causes.extend(validate_service_spec(&new_spec));
        causes
    }
}

fn validate_service_spec(spec: &ServiceSpec) -> Vec<Cause> {
    let mut causes = Vec::new();
    let kind = service_type(spec);
    let ports = spec.ports.as_deref().unwrap_or_default();
    if ports.is_empty() && !is_headless(spec) && kind != "ExternalName" {
        causes.push(required("spec.ports"));
    }
    let cluster_ip = spec.cluster_ip.as_deref().unwrap_or_default();
    match kind {
        "LoadBalancer" | "NodePort" if is_headless(spec) => {
            causes.push(invalid(
                "spec.clusterIP",
                cluster_ip,
                &format!("may not be set to 'None' for {kind} services"),
            ));
        }
        "ExternalName" => {
            if !cluster_ip.is_empty() || spec.cluster_ips.as_ref().is_some_and(|ips| !ips.is_empty()) {
                causes.push(forbidden("spec.clusterIPs", "may not be set for ExternalName services"));
            }
            let name = spec.external_name.as_deref().unwrap_or_default();
            let cname = name.strip_suffix('.').unwrap_or(name);
            if cname.is_empty() {
                causes.push(required("spec.externalName"));
            } else {
                causes.extend(dns_subdomain("spec.externalName", cname));
            }
        }
        _ => {}
    }

    let mut names = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let idx = format!("spec.ports[{i}]");
        let name = p.name.as_deref().unwrap_or_default();
        if ports.len() > 1 && name.is_empty() {
            causes.push(required(format!("{idx}.name")));
        } else if !name.is_empty() {
            causes.extend(dns_label(&format!("{idx}.name"), name));
            if !names.insert(name) {
                causes.push(duplicate(format!("{idx}.name"), name));
            }
        }
        causes.extend(port_number(&format!("{idx}.port"), p.port));
        causes.extend(one_of(&format!("{idx}.protocol"), p.protocol.as_deref().unwrap_or_default(), PROTOCOLS));
        if let Some(t) = &p.target_port {
            causes.extend(port_num_or_name(&format!("{idx}.targetPort"), t));
        }
        if let Some(a) = &p.app_protocol {
            causes.extend(label_key(&format!("{idx}.appProtocol"), a));
        }
    }
    if spec.selector.is_some() {
        causes.extend(labels(spec.selector.as_ref(), "spec.selector"));
    }

    let affinity = spec.session_affinity.as_deref().unwrap_or_default();
    causes.extend(one_of("spec.sessionAffinity", affinity, &["ClientIP", "None"]));
    match affinity {
        "ClientIP" => {
            let timeout = spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds);
            match timeout {
                None => causes.push(required_because(
                    "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                    "when session affinity type is ClientIP",
                )),
                Some(t) if !(1..=86400).contains(&t) => causes.push(invalid_value(
                    "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                    t,
                    "must be greater than 0 and less than 86400",
                )),
                Some(_) => {}
            }
        }
        "None" if spec.session_affinity_config.is_some() => {
            causes.push(forbidden("spec.sessionAffinityConfig", "must not be set when session affinity is None"));
        }
        _ => {}
    }

    if kind != "ExternalName" {
        causes.extend(cluster_ips(spec, cluster_ip));
    }
    for (i, ip) in spec.external_ips.iter().flatten().enumerate() {
        let p = format!("spec.externalIPs[{i}]");
        let problems = syntax::ip(ip);
        if problems.is_empty() {
            causes.extend(non_special_ip(&p, ip));
        } else {
            causes.extend(formatted(&p, ip, problems));
        }
    }
    if kind.is_empty() {
        causes.push(required("spec.type"));
    } else {
        causes.extend(one_of("spec.type", kind, SERVICE_TYPES));
    }

    let mut node_ports = BTreeSet::new();
    let mut seen_ports = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let idx = format!("spec.ports[{i}]");
        let protocol = p.protocol.as_deref().unwrap_or_default();
        if let Some(np) = p.node_port.filter(|np| *np != 0) {
            // The apiserver's allocator checks the range it was given.
            if kind == "ClusterIP" {
                causes.push(forbidden(format!("{idx}.nodePort"), "may not be used when `type` is 'ClusterIP'"));
            } else if !(1..=65535).contains(&np) {
                causes.push(invalid_value(format!("{idx}.nodePort"), np, syntax::PORT_RANGE_MSG));
            }
            if !node_ports.insert((protocol, np)) {
                causes.push(duplicate_value(format!("{idx}.nodePort"), np));
            }
        }
        if !seen_ports.insert((protocol, p.port)) {
            causes.push(duplicate_value(&idx, json!({"port": p.port, "protocol": protocol})));
        }
    }

    if let Some(ranges) = spec.load_balancer_source_ranges.as_ref().filter(|r| !r.is_empty()) {
        if kind != "LoadBalancer" {
            causes.push(forbidden("spec.loadBalancerSourceRanges", "may only be used when `type` is 'LoadBalancer'"));
        }
        for (i, r) in ranges.iter().enumerate() {
            let r = r.trim();
            causes.extend(formatted(&format!("spec.loadBalancerSourceRanges[{i}]"), r, syntax::cidr(r)));
        }
    }
    if spec.allocate_load_balancer_node_ports.is_some() && kind != "LoadBalancer" {
        causes.push(forbidden("spec.allocateLoadBalancerNodePorts", "may only be used when `type` is 'LoadBalancer'"));
    }
    let etp = spec.external_traffic_policy.as_deref().unwrap_or_default();
    if externally_accessible(spec) {
        causes.extend(one_of("spec.externalTrafficPolicy", etp, &["Cluster", "Local"]));
    } else if !etp.is_empty() {
        causes.push(invalid("spec.externalTrafficPolicy", etp, "may only be set for externally-accessible services"));
    }
    match &spec.internal_traffic_policy {
        Some(itp) => causes.extend(one_of("spec.internalTrafficPolicy", itp, &["Cluster", "Local"])),
        None if matches!(kind, "ClusterIP" | "NodePort" | "LoadBalancer") => {
            causes.push(required("spec.internalTrafficPolicy"))
        }
        None => {}
    }
    causes
}

/// `clusterIP` is empty, `None` or an IP; `clusterIPs` starts with it and
/// holds at most one address per family.
fn cluster_ips(spec: &ServiceSpec, cluster_ip: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    if !cluster_ip.is_empty() && cluster_ip != "None" {
        causes.extend(formatted("spec.clusterIP", cluster_ip, syntax::ip(cluster_ip)));
    }
    let ips = spec.cluster_ips.as_deref().unwrap_or_default();
    if cluster_ip.is_empty() {
        if !ips.is_empty() {
            causes.push(invalid_value(
                "spec.clusterIPs",
                json(&ips),
                "must be empty when `clusterIP` is not specified",
            ));
        }
        return causes;
    }
    match ips.first() {
        None => causes.push(required("spec.clusterIPs")),
        Some(first) if first != cluster_ip => {
            causes.push(invalid_value("spec.clusterIPs", json(&ips), "first value must match `clusterIP`"));
        }
        Some(_) => {}
    }
    for (i, ip) in ips.iter().enumerate().skip(1) {
        if ip == "None" {
            causes.push(invalid_value("spec.clusterIPs", json(&ips), "'None' must be the first and only value"));
        } else {
            causes.extend(formatted(&format!("spec.clusterIPs[{i}]"), ip, syntax::ip(ip)));
        }
    }
    if ips.len() > 2 {
        causes.push(invalid_value("spec.clusterIPs", json(&ips), "may only hold up to 2 values"));
    } else if ips.len() == 2 {
        let v4 = |s: &str| s.parse::<IpAddr>().ok().map(|ip| ip.is_ipv4());
        if let (Some(a), Some(b)) = (v4(&ips[0]), v4(&ips[1]))
            && a == b
        {
            causes.push(invalid_value(
                "spec.clusterIPs",
                json(&ips),
                "may specify no more than one IP for each IP family",
            ));
        }
    }
    causes
}

/// Endpoint and external addresses may not be unspecified, loopback or
/// link-local.
fn non_special_ip(path: &str, ip: &str) -> Vec<Cause> {
    let Ok(addr) = ip.parse::<IpAddr>() else {
        return vec![invalid(path, ip, "must be a valid IP address")];
    };
    let why = match addr {
        a if a.is_unspecified() => format!("may not be unspecified ({ip})"),
        a if a.is_loopback() => "may not be in the loopback range (127.0.0.0/8, ::1/128)".into(),
        IpAddr::V4(v4) if v4.is_link_local() => "may not be in the link-local range (169.254.0.0/16, fe80::/10)".into(),
        IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80 => {
            "may not be in the link-local range (169.254.0.0/16, fe80::/10)".into()
        }
        IpAddr::V4(v4) if v4.octets()[..3] == [224, 0, 0] => {
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)".into()
        }
        IpAddr::V6(v6) if v6.segments()[0] & 0xff0f == 0xff02 => {
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)".into()
        }
        _ => return Vec::new(),
    };
    vec![invalid(path, ip, &why)]
}

impl Strategy for Endpoints {
    fn default_fields(&mut self) {
        for subset in self.subsets.iter_mut().flatten() {
            for p in subset.ports.iter_mut().flatten() {
                if p.protocol.as_deref().is_none_or(str::is_empty) {
                    p.protocol = Some("TCP".into());
                }
            }
        }
    }

    fn validate(&self) -> Vec<Cause> {
        let mut causes = Vec::new();
        for (i, subset) in self.subsets.iter().flatten().enumerate() {
            let idx = format!("subsets[{i}]");
            let ready = subset.addresses.as_deref().unwrap_or_default();
            let not_ready = subset.not_ready_addresses.as_deref().unwrap_or_default();
            if ready.is_empty() && not_ready.is_empty() {
                causes.push(required_because(&idx, "must specify `addresses` or `notReadyAddresses`"));
            }
            for (field, list) in [("addresses", ready), ("notReadyAddresses", not_ready)] {
                for (j, a) in list.iter().enumerate() {
                    let p = format!("{idx}.{field}[{j}]");
                    let problems = syntax::ip(&a.ip);
                    if problems.is_empty() {
                        causes.extend(non_special_ip(&format!("{p}.ip"), &a.ip));
                    } else {
                        causes.extend(formatted(&format!("{p}.ip"), &a.ip, problems));
                    }
                    if let Some(h) = a.hostname.as_deref().filter(|h| !h.is_empty()) {
                        causes.extend(dns_label(&format!("{p}.hostname"), h));
                    }
                    if let Some(n) = &a.node_name {
                        causes.extend(dns_subdomain(&format!("{p}.nodeName"), n));
                    }
                }
            }
            let ports = subset.ports.as_deref().unwrap_or_default();
            for (j, port) in ports.iter().enumerate() {
                let p = format!("{idx}.ports[{j}]");
                let name = port.name.as_deref().unwrap_or_default();
                if ports.len() > 1 && name.is_empty() {
                    causes.push(required(format!("{p}.name")));
                } else if !name.is_empty() {
                    causes.extend(dns_label(&format!("{p}.name"), name));
                }
                causes.extend(port_number(&format!("{p}.port"), port.port));
                causes.extend(one_of(
                    &format!("{p}.protocol"),
                    port.protocol.as_deref().unwrap_or_default(),
                    PROTOCOLS,
                ));
            }
        }
        causes
    }
}

/// The address types an EndpointSlice may hold.
const ADDRESS_TYPES: &[&str] = &["FQDN", "IPv4", "IPv6"];

/// Kubernetes' limits on one EndpointSlice.
const MAX_SLICE_ENDPOINTS: usize = 1000;
const MAX_SLICE_ADDRESSES: usize = 100;
const MAX_SLICE_PORTS: usize = 20000;

impl Strategy for EndpointSlice {
    fn default_fields(&mut self) {
        for p in self.ports.iter_mut().flatten() {
            if p.protocol.as_deref().is_none_or(str::is_empty) {
                p.protocol = Some("TCP".into());
            }
            if p.name.is_none() {
                p.name = Some(String::new());
            }
        }
    }

    fn validate(&self) -> Vec<Cause> {
        let mut causes = one_of("addressType", &self.address_type, ADDRESS_TYPES);
        if self.endpoints.len() > MAX_SLICE_ENDPOINTS {
            causes.push(too_many("endpoints", self.endpoints.len(), MAX_SLICE_ENDPOINTS));
        }
        for (i, e) in self.endpoints.iter().enumerate() {
            let p = format!("endpoints[{i}]");
            if e.addresses.is_empty() {
                causes.push(required(format!("{p}.addresses")));
            } else if e.addresses.len() > MAX_SLICE_ADDRESSES {
                causes.push(too_many(format!("{p}.addresses"), e.addresses.len(), MAX_SLICE_ADDRESSES));
            }
            for (j, a) in e.addresses.iter().enumerate() {
                let field = format!("{p}.addresses[{j}]");
                let problems = match self.address_type.as_str() {
                    "IPv4" if a.parse::<std::net::Ipv4Addr>().is_err() => {
                        vec!["must be a valid IPv4 address".to_string()]
                    }
                    "IPv6" if a.parse::<std::net::Ipv6Addr>().is_err() => {
                        vec!["must be a valid IPv6 address".to_string()]
                    }
                    "FQDN" => syntax::dns1123_subdomain(a),
                    _ => Vec::new(),
                };
                if problems.is_empty() && self.address_type != "FQDN" {
                    causes.extend(non_special_ip(&field, a));
                }
                causes.extend(formatted(&field, a, problems));
            }
            if let Some(h) = e.hostname.as_deref() {
                causes.extend(dns_label(&format!("{p}.hostname"), h));
            }
            if let Some(n) = e.node_name.as_deref() {
                causes.extend(dns_subdomain(&format!("{p}.nodeName"), n));
            }
            if let Some(t) = &e.target_ref
                && t.kind.as_deref().is_none_or(str::is_empty)
            {
                causes.push(required(format!("{p}.targetRef.kind")));
            }
        }
        let ports = self.ports.as_deref().unwrap_or_default();
        if ports.len() > MAX_SLICE_PORTS {
            causes.push(too_many("ports", ports.len(), MAX_SLICE_PORTS));
        }
        let mut names = BTreeSet::new();
        for (i, port) in ports.iter().enumerate() {
            let p = format!("ports[{i}]");
            let name = port.name.as_deref().unwrap_or_default();
            if !name.is_empty() {
                causes.extend(dns_label(&format!("{p}.name"), name));
            }
            if !names.insert(name) {
                causes.push(duplicate_value(format!("{p}.name"), json!(name)));
            }
            if let Some(n) = port.port {
                causes.extend(port_number(&format!("{p}.port"), n));
            }
            causes.extend(one_of(&format!("{p}.protocol"), port.protocol.as_deref().unwrap_or_default(), PROTOCOLS));
        }
        causes
    }

    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        let mut causes = self.validate();
        if self.address_type != old.address_type {
            causes.push(immutable("addressType", self.address_type.clone()));
        }
        causes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn service(v: Value) -> Service {
        let mut s: Service = serde_json::from_value(v).expect("a service");
        s.default_fields();
        s
    }

    fn messages(causes: &[Cause]) -> Vec<String> {
        causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect()
    }

    #[test]
    fn service_defaults_type_affinity_protocol_and_target_port() {
        let s = service(
            json!({"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}], "selector": {"app": "web"}}}),
        );
        let spec = s.spec.as_ref().expect("spec");
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
        assert_eq!(spec.session_affinity.as_deref(), Some("None"));
        assert_eq!(spec.internal_traffic_policy.as_deref(), Some("Cluster"));
        let port = &spec.ports.as_ref().expect("ports")[0];
        assert_eq!(port.protocol.as_deref(), Some("TCP"));
        assert_eq!(port.target_port, Some(IntOrString::Int(80)));
        assert_eq!(spec.external_traffic_policy, None);
        assert!(s.validate().is_empty(), "{:?}", s.validate());

        let np = service(json!({"metadata": {"name": "np"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}}));
        assert_eq!(np.spec.as_ref().expect("spec").external_traffic_policy.as_deref(), Some("Cluster"));
        let affinity = service(
            json!({"metadata": {"name": "a"}, "spec": {"sessionAffinity": "ClientIP", "ports": [{"port": 80}]}}),
        );
        let config = affinity.spec.as_ref().and_then(|s| s.session_affinity_config.as_ref()).expect("config");
        assert_eq!(config.client_ip.as_ref().and_then(|c| c.timeout_seconds), Some(10800));
    }

    #[test]
    fn service_ports_are_required_named_and_in_range() {
        let none = service(json!({"metadata": {"name": "s"}, "spec": {}}));
        assert_eq!(messages(&none.validate()), ["spec.ports: Required value"]);
        let headless = service(json!({"metadata": {"name": "s"}, "spec": {"clusterIP": "None"}}));
        assert!(headless.validate().is_empty(), "{:?}", headless.validate());

        let s = service(json!({"metadata": {"name": "s"}, "spec": {"ports": [
            {"port": 80}, {"name": "b", "port": 70000, "protocol": "ICMP", "targetPort": "HTTP"},
            {"name": "b", "port": 81, "nodePort": 30080}]}}));
        assert_eq!(
            messages(&s.validate()),
            [
                "spec.ports[0].name: Required value",
                "spec.ports[1].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "spec.ports[1].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                "spec.ports[1].targetPort: Invalid value: \"HTTP\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                "spec.ports[1].targetPort: Invalid value: \"HTTP\": must contain at least one letter (a-z)",
                "spec.ports[2].name: Duplicate value: \"b\"",
                "spec.ports[2].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
            ]
        );
    }

    #[test]
    fn service_type_cluster_ip_and_node_port_ranges_are_checked() {
        let s = service(json!({"metadata": {"name": "s"}, "spec": {"type": "Magic", "clusterIP": "10.0.0.300",
            "ports": [{"port": 80}]}}));
        let got = messages(&s.validate());
        assert!(got.contains(&"spec.clusterIP: Invalid value: \"10.0.0.300\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)".to_string()), "{got:?}");
        assert!(got.contains(&"spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"".to_string()), "{got:?}");

        let np = service(
            json!({"metadata": {"name": "s"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 70000}]}}),
        );
        assert_eq!(
            messages(&np.validate()),
            ["spec.ports[0].nodePort: Invalid value: 70000: must be between 1 and 65535, inclusive"]
        );
        let ext = service(json!({"metadata": {"name": "s"}, "spec": {"type": "ExternalName"}}));
        assert_eq!(messages(&ext.validate()), ["spec.externalName: Required value"]);
        let ok = service(
            json!({"metadata": {"name": "s"}, "spec": {"type": "ExternalName", "externalName": "db.example.com."}}),
        );
        assert!(ok.validate().is_empty(), "{:?}", ok.validate());
    }

    #[test]
    fn updates_keep_allocated_values_and_type_changes_drop_node_ports() {
        let old = service(json!({"metadata": {"name": "s"}, "spec": {"type": "NodePort", "clusterIP": "10.0.0.5",
            "ports": [{"port": 80, "nodePort": 30080}, {"port": 81, "nodePort": 30081}]}}));
        // Left out: kept.
        let mut new = service(json!({"metadata": {"name": "s"}, "spec": {"type": "NodePort",
            "ports": [{"port": 80}, {"port": 81, "nodePort": 30090}, {"port": 82}]}}));
        new.prepare_for_update(&old);
        let spec = new.spec.as_ref().unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("10.0.0.5"));
        let node_ports: Vec<Option<i32>> = spec.ports.iter().flatten().map(|p| p.node_port).collect();
        assert_eq!(node_ports, [Some(30080), Some(30090), None]);
        // Back to ClusterIP: the node ports go, unless the user changed one.
        let mut back = service(json!({"metadata": {"name": "s"}, "spec": {"type": "ClusterIP",
            "ports": [{"name": "a", "port": 80, "nodePort": 30080}, {"name": "b", "port": 81, "nodePort": 30095}]}}));
        back.prepare_for_update(&old);
        let node_ports: Vec<Option<i32>> =
            back.spec.as_ref().unwrap().ports.iter().flatten().map(|p| p.node_port).collect();
        assert_eq!(node_ports, [None, Some(30095)]);
        assert_eq!(
            messages(&back.validate_update(&old)),
            ["spec.ports[1].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]
        );
    }

    #[test]
    fn cluster_ip_is_immutable_once_set() {
        let old =
            service(json!({"metadata": {"name": "s"}, "spec": {"clusterIP": "10.0.0.5", "ports": [{"port": 80}]}}));
        assert_eq!(old.spec.as_ref().and_then(|s| s.cluster_ips.clone()), Some(vec!["10.0.0.5".to_string()]));
        let moved =
            service(json!({"metadata": {"name": "s"}, "spec": {"clusterIP": "10.0.0.6", "ports": [{"port": 80}]}}));
        assert_eq!(
            messages(&moved.validate_update(&old)),
            ["spec.clusterIPs[0]: Invalid value: [\"10.0.0.6\"]: may not change once set"]
        );
        let omitted = service(json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}));
        assert!(omitted.validate_update(&old).is_empty());
        let external =
            service(json!({"metadata": {"name": "s"}, "spec": {"type": "ExternalName", "externalName": "x.example"}}));
        assert!(external.validate_update(&old).is_empty(), "{:?}", external.validate_update(&old));
    }

    #[test]
    fn endpoints_need_addresses_with_real_ips_and_valid_ports() {
        let mut e: Endpoints = serde_json::from_value(json!({"metadata": {"name": "web"}, "subsets": [
            {"addresses": [{"ip": "10.1.0.5"}, {"ip": "127.0.0.1"}, {"ip": "nope"}], "ports": [{"port": 0}]},
            {"ports": [{"name": "a", "port": 80}, {"port": 81}]}]}))
        .expect("endpoints");
        e.default_fields();
        assert_eq!(
            e.subsets.as_ref().expect("subsets")[0].ports.as_ref().expect("ports")[0].protocol.as_deref(),
            Some("TCP")
        );
        assert_eq!(
            messages(&e.validate()),
            [
                "subsets[0].addresses[1].ip: Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)",
                "subsets[0].addresses[2].ip: Invalid value: \"nope\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                "subsets[0].ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
                "subsets[1]: Required value: must specify `addresses` or `notReadyAddresses`",
                "subsets[1].ports[1].name: Required value",
            ]
        );
    }

    #[test]
    fn endpoint_slices_check_addresses_against_their_type_and_keep_it() {
        let mut e: EndpointSlice = serde_json::from_value(json!({"metadata": {"name": "web-abc"},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.1.0.5"]}, {"addresses": ["fd00::1"]}, {"addresses": []}],
            "ports": [{"name": "http", "port": 80}, {"name": "http", "port": 70000, "protocol": "ICMP"}]}))
        .expect("a slice");
        e.default_fields();
        assert_eq!(e.ports.as_ref().expect("ports")[0].protocol.as_deref(), Some("TCP"));
        assert_eq!(
            messages(&e.validate()),
            [
                "endpoints[1].addresses[0]: Invalid value: \"fd00::1\": must be a valid IPv4 address",
                "endpoints[2].addresses: Required value",
                "ports[1].name: Duplicate value: \"http\"",
                "ports[1].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "ports[1].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            ]
        );
        let mut changed = e.clone();
        changed.address_type = "IPv6".into();
        changed.endpoints.clear();
        changed.ports = None;
        assert_eq!(
            messages(&changed.validate_update(&e)),
            ["addressType: Invalid value: \"IPv6\": field is immutable"]
        );
        e.address_type = "IPX".into();
        assert!(messages(&e.validate())[0].starts_with("addressType: Unsupported value: \"IPX\""));
    }
}
