//! `describe service`: selector, type, virtual IP, each port with its target
//! and the endpoints behind it.

use super::{Related, Writer, annotations, events, labels, w};
use crate::printers::table::format_labels;
use k8s_openapi::api::core::v1::{Endpoints, Service, ServicePort};
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
    if let Some(f) = spec.ip_families.as_ref().filter(|f| !f.is_empty()) {
        w!(w, 0, "IP Families:\t{}\n", f.join(","));
    }
    let ip = spec.cluster_ip.clone().unwrap_or_default();
    w!(w, 0, "IP:\t{ip}\n");
    let ips = spec.cluster_ips.clone().unwrap_or_else(|| if ip.is_empty() { vec![] } else { vec![ip.clone()] });
    if !ips.is_empty() {
        w!(w, 0, "IPs:\t{}\n", ips.join(","));
    }
    if let Some(ext) = spec.external_ips.as_ref().filter(|e| !e.is_empty()) {
        w!(w, 0, "External IPs:\t{}\n", ext.join(","));
    }
    if kind == "ExternalName" {
        w!(w, 0, "External Name:\t{}\n", spec.external_name.clone().unwrap_or_default());
    }
    for port in spec.ports.iter().flatten() {
        let name = port.name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| "<unset>".into());
        let protocol = port.protocol.clone().unwrap_or_else(|| "TCP".into());
        w!(w, 0, "Port:\t{name}\t{}/{protocol}\n", port.port);
        let target = match &port.target_port {
            Some(IntOrString::Int(i)) => format!("{i}/{protocol}"),
            Some(IntOrString::String(s)) => format!("{s}/{protocol}"),
            None => format!("{}/{protocol}", port.port),
        };
        w!(w, 0, "TargetPort:\t{target}\n");
        if let Some(np) = port.node_port.filter(|n| *n > 0) {
            w!(w, 0, "NodePort:\t{name}\t{np}/{protocol}\n");
        }
        w!(w, 0, "Endpoints:\t{}\n", endpoints_for(related.endpoints.as_ref(), port));
    }
    w!(w, 0, "Session Affinity:\t{}\n", spec.session_affinity.clone().unwrap_or_else(|| "None".into()));
    if let Some(p) = &spec.external_traffic_policy {
        w!(w, 0, "External Traffic Policy:\t{p}\n");
    }
    if let Some(p) = &spec.internal_traffic_policy {
        w!(w, 0, "Internal Traffic Policy:\t{p}\n");
    }
    events(&mut w, related.events.as_ref());
    w.finish()
}

/// The ready `ip:port` pairs serving `port` (matched by port name).
fn endpoints_for(ep: Option<&Endpoints>, port: &ServicePort) -> String {
    let mut list: Vec<String> = Vec::new();
    for ss in ep.and_then(|e| e.subsets.as_ref()).into_iter().flatten() {
        for p in ss.ports.iter().flatten() {
            if p.name.clone().unwrap_or_default() != port.name.clone().unwrap_or_default() {
                continue;
            }
            for a in ss.addresses.iter().flatten() {
                list.push(format!("{}:{}", a.ip, p.port));
            }
        }
    }
    list.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn service_ports_show_their_endpoints() {
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
        assert!(text.contains("Port:              <unset>  80/TCP\n"), "{text}");
        assert!(text.contains("TargetPort:        8080/TCP\n"), "{text}");
        assert!(text.contains("Endpoints:         10.1.0.2:8080\n"), "{text}");
    }
}
