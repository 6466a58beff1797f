//! `describe service`: selector, type, virtual IPs, each port with its
//! target and the endpoints behind it, as kubectl 1.33's `describeService`.
//! The endpoints come from the Service's EndpointSlices (as kubectl reads
//! them); a cluster without slices for it falls back to its Endpoints.

use super::{Related, Writer, annotations, events, labels, w};
use crate::printers::columns::{format_endpoints, join_host_port};
use crate::printers::table::format_labels;
use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The description of a service.
pub fn describe(svc: &Service, related: &Related) -> String {
    let mut w = Writer::default();
    let meta = &svc.metadata;
    let spec = svc.spec.clone().unwrap_or_default();
    w!(w, 0, "Name:\t{}\n", meta.name.clone().unwrap_or_default());
    w!(w, 0, "Namespace:\t{}\n", meta.namespace.clone().unwrap_or_default());
    labels(&mut w, "Labels", meta.labels.as_ref());
    annotations(&mut w, "Annotations", meta.annotations.as_ref());
    w!(w, 0, "Selector:\t{}\n", format_labels(&spec.selector.clone().unwrap_or_default()));
    let kind = spec.type_.clone().unwrap_or_else(|| "ClusterIP".into());
    w!(w, 0, "Type:\t{kind}\n");
    if let Some(p) = &spec.ip_family_policy {
        w!(w, 0, "IP Family Policy:\t{p}\n");
    }
    let joined = |list: &Option<Vec<String>>| {
        list.as_ref().filter(|l| !l.is_empty()).map_or_else(|| "<none>".to_string(), |l| l.join(","))
    };
    w!(w, 0, "IP Families:\t{}\n", joined(&spec.ip_families));
    w!(w, 0, "IP:\t{}\n", spec.cluster_ip.clone().unwrap_or_default());
    w!(w, 0, "IPs:\t{}\n", joined(&spec.cluster_ips));
    if let Some(ext) = spec.external_ips.as_ref().filter(|e| !e.is_empty()) {
        w!(w, 0, "External IPs:\t{}\n", ext.join(","));
    }
    if let Some(ip) = spec.load_balancer_ip.as_ref().filter(|ip| !ip.is_empty()) {
        w!(w, 0, "Desired LoadBalancer IP:\t{ip}\n");
    }
    if let Some(name) = spec.external_name.as_ref().filter(|n| !n.is_empty()) {
        w!(w, 0, "External Name:\t{name}\n");
    }
    let ingress = svc.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|lb| lb.ingress.clone());
    if let Some(ingress) = ingress.filter(|i| !i.is_empty()) {
        let list: Vec<String> = ingress
            .iter()
            .map(|i| match (&i.ip, &i.ip_mode) {
                (Some(ip), Some(mode)) if !ip.is_empty() => format!("{ip} ({mode})"),
                (Some(ip), _) if !ip.is_empty() => ip.clone(),
                _ => i.hostname.clone().unwrap_or_default(),
            })
            .collect();
        w!(w, 0, "LoadBalancer Ingress:\t{}\n", list.join(", "));
    }
    for port in spec.ports.iter().flatten() {
        let name = port.name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| "<unset>".into());
        let protocol = port.protocol.clone().unwrap_or_else(|| "TCP".into());
        w!(w, 0, "Port:\t{name}\t{}/{protocol}\n", port.port);
        let target = match &port.target_port {
            Some(IntOrString::Int(i)) => i.to_string(),
            Some(IntOrString::String(s)) => s.clone(),
            None => port.port.to_string(),
        };
        w!(w, 0, "TargetPort:\t{target}/{protocol}\n");
        if let Some(p) = &port.app_protocol {
            w!(w, 0, "AppProtocol:\t{p}\n");
        }
        if let Some(np) = port.node_port.filter(|n| *n > 0) {
            w!(w, 0, "NodePort:\t{name}\t{np}/{protocol}\n");
        }
        w!(w, 0, "Endpoints:\t{}\n", endpoints_for(related, port));
    }
    w!(w, 0, "Session Affinity:\t{}\n", spec.session_affinity.clone().unwrap_or_else(|| "None".into()));
    if let Some(p) = spec.external_traffic_policy.as_ref().filter(|p| !p.is_empty()) {
        w!(w, 0, "External Traffic Policy:\t{p}\n");
    }
    if let Some(p) = &spec.internal_traffic_policy {
        w!(w, 0, "Internal Traffic Policy:\t{p}\n");
    }
    if let Some(p) = spec.health_check_node_port.filter(|p| *p != 0) {
        w!(w, 0, "HealthCheck NodePort:\t{p}\n");
    }
    if let Some(r) = spec.load_balancer_source_ranges.as_ref().filter(|r| !r.is_empty()) {
        w!(w, 0, "LoadBalancer Source Ranges:\t{}\n", r.join(","));
    }
    if let Some(t) = &spec.traffic_distribution {
        w!(w, 0, "Traffic Distribution:\t{t}\n");
    }
    events(&mut w, related.events.as_ref());
    w.finish()
}

/// The ready endpoints serving `port`: from the slices when there are any,
/// else from the Endpoints object, else `<none>`.
fn endpoints_for(related: &Related, port: &ServicePort) -> String {
    let name = port.name.as_deref().unwrap_or_default();
    if !related.endpoint_slices.is_empty() {
        return format_endpoint_slices(&related.endpoint_slices, name);
    }
    match &related.endpoints {
        Some(ep) => format_endpoints(ep, Some(&[name])),
        None => "<none>".into(),
    }
}

/// kubectl's `formatEndpointSlices` for one port name: at most three ready
/// (or unknown) `ip:port` pairs, then `+ N more...`.
pub fn format_endpoint_slices(slices: &[EndpointSlice], port_name: &str) -> String {
    const MAX: usize = 3;
    let mut list: Vec<String> = Vec::new();
    let mut count = 0;
    let ready = |e: &&k8s_openapi::api::discovery::v1::Endpoint| {
        e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true) && !e.addresses.is_empty()
    };
    for slice in slices {
        let ports = slice.ports.as_deref().unwrap_or_default();
        if ports.is_empty() {
            for e in slice.endpoints.iter().filter(ready) {
                list.push(e.addresses[0].clone());
                count += 1;
            }
            continue;
        }
        for p in ports.iter().filter(|p| p.name.as_deref().unwrap_or_default() == port_name) {
            for e in slice.endpoints.iter().filter(ready) {
                list.push(join_host_port(&e.addresses[0], p.port.unwrap_or_default()));
                count += 1;
            }
        }
    }
    if count > MAX {
        return format!("{} + {} more...", list[..MAX].join(","), count - MAX);
    }
    list.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Endpoints;
    use serde_json::json;

    fn web() -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"type": "NodePort", "selector": {"app": "web"}, "clusterIP": "10.254.0.10",
                     "clusterIPs": ["10.254.0.10"], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                     "sessionAffinity": "None", "externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Cluster",
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080, "protocol": "TCP"},
                               {"name": "https", "port": 443, "targetPort": "https", "nodePort": 30443, "protocol": "TCP"}]},
        }))
        .expect("service")
    }

    fn slice() -> EndpointSlice {
        serde_json::from_value(json!({
            "metadata": {"name": "web-x7k2p", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "https", "port": 8443, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.1.0.5"], "conditions": {"ready": true}},
                          {"addresses": ["10.1.1.7"]},
                          {"addresses": ["10.1.2.9"], "conditions": {"ready": false}}],
        }))
        .expect("slice")
    }

    #[test]
    fn a_node_port_service_reads_like_kubectl_with_its_slices() {
        let related = Related { endpoint_slices: vec![slice()], events: Some(vec![]), ..Default::default() };
        assert_eq!(
            describe(&web(), &related),
            "Name:                     web
Namespace:                default
Labels:                   app=web
Annotations:              <none>
Selector:                 app=web
Type:                     NodePort
IP Family Policy:         SingleStack
IP Families:              IPv4
IP:                       10.254.0.10
IPs:                      10.254.0.10
Port:                     http  80/TCP
TargetPort:               8080/TCP
NodePort:                 http  30080/TCP
Endpoints:                10.1.0.5:8080,10.1.1.7:8080
Port:                     https  443/TCP
TargetPort:               https/TCP
NodePort:                 https  30443/TCP
Endpoints:                10.1.0.5:8443,10.1.1.7:8443
Session Affinity:         None
External Traffic Policy:  Cluster
Internal Traffic Policy:  Cluster
Events:                   <none>
"
        );
    }

    #[test]
    fn without_slices_the_endpoints_object_serves_and_without_either_none() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "clusterIP": "10.254.0.10",
                     "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]},
        }))
        .expect("service");
        let ep: Endpoints = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "subsets": [{"addresses": [{"ip": "10.1.0.2"}], "ports": [{"port": 8080}]}],
        }))
        .expect("endpoints");
        let text = describe(&svc, &Related { endpoints: Some(ep), ..Default::default() });
        assert!(text.contains("Selector:          app=web\n"), "{text}");
        assert!(text.contains("IP Families:       <none>\n"), "{text}");
        assert!(text.contains("IPs:               <none>\n"), "{text}");
        assert!(text.contains("Port:              <unset>  80/TCP\n"), "{text}");
        assert!(text.contains("TargetPort:        8080/TCP\n"), "{text}");
        assert!(text.contains("Endpoints:         10.1.0.2:8080\n"), "{text}");
        assert!(!text.contains("Events"), "events not asked for: {text}");
        let text = describe(&svc, &Related::default());
        assert!(text.contains("Endpoints:         <none>\n"), "{text}");
    }

    #[test]
    fn slice_endpoints_skip_unready_ones_and_show_three() {
        let mut s = slice();
        s.endpoints.extend(
            (10..13).map(|i| serde_json::from_value(json!({"addresses": [format!("10.1.3.{i}")]})).expect("endpoint")),
        );
        assert_eq!(
            format_endpoint_slices(&[s.clone()], "http"),
            "10.1.0.5:8080,10.1.1.7:8080,10.1.3.10:8080 + 2 more..."
        );
        s.endpoints.iter_mut().for_each(|e| e.conditions = serde_json::from_value(json!({"ready": false})).ok());
        assert_eq!(format_endpoint_slices(&[s], "http"), "");
    }
}
