//! Rows of services and endpoints.

use super::opt;
use crate::printers::age;
use crate::printers::table::format_labels;
use k8s_openapi::api::core::v1::{Endpoints, Service, ServicePort};

/// Headers of services.
pub fn service_headers(wide: bool) -> Vec<&'static str> {
    let mut h = vec!["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"];
    if wide {
        h.push("SELECTOR");
    }
    h
}

/// `80/TCP,443:30443/TCP`, as the PORT(S) column writes a service's ports.
pub fn ports_string(ports: &[ServicePort]) -> String {
    ports
        .iter()
        .map(|p| {
            let protocol = p.protocol.as_deref().unwrap_or("TCP");
            match p.node_port {
                Some(np) if np > 0 => format!("{}:{np}/{protocol}", p.port),
                _ => format!("{}/{protocol}", p.port),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The cells of a service.
pub fn service(svc: &Service, wide: bool) -> Vec<String> {
    let spec = svc.spec.clone().unwrap_or_default();
    let kind = spec.type_.clone().unwrap_or_else(|| "ClusterIP".into());
    let cluster_ip = spec
        .cluster_ips
        .as_ref()
        .and_then(|ips| ips.first().cloned())
        .or(spec.cluster_ip.clone())
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| "<none>".into());
    let external = spec.external_ips.clone().unwrap_or_default();
    let external_ip = match kind.as_str() {
        "ClusterIP" | "NodePort" if external.is_empty() => "<none>".to_string(),
        "ClusterIP" | "NodePort" => external.join(","),
        "LoadBalancer" => {
            let mut ips: Vec<String> = svc
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.clone())
                .unwrap_or_default()
                .into_iter()
                .filter_map(|i| i.ip.or(i.hostname))
                .collect();
            ips.extend(external);
            if ips.is_empty() { "<pending>".into() } else { ips.join(",") }
        }
        "ExternalName" => opt(&spec.external_name),
        _ => "<unknown>".into(),
    };
    let ports = ports_string(spec.ports.as_deref().unwrap_or_default());
    let mut cells = vec![
        opt(&svc.metadata.name),
        kind,
        cluster_ip,
        external_ip,
        if ports.is_empty() { "<none>".into() } else { ports },
        age::age(svc.metadata.creation_timestamp.as_ref()),
    ];
    if wide {
        cells.push(format_labels(&spec.selector.unwrap_or_default()));
    }
    cells
}

/// Headers of endpoints.
pub fn endpoints_headers() -> Vec<&'static str> {
    vec!["NAME", "ENDPOINTS", "AGE"]
}

/// `10.1.0.2:80,10.1.0.3:80 + 2 more...`: at most three ready addresses.
pub fn format_endpoints(ep: &Endpoints) -> String {
    const MAX: usize = 3;
    let subsets = ep.subsets.clone().unwrap_or_default();
    if subsets.is_empty() {
        return "<none>".into();
    }
    let mut list: Vec<String> = Vec::new();
    let mut count = 0;
    for ss in &subsets {
        let addresses = ss.addresses.clone().unwrap_or_default();
        let ports = ss.ports.clone().unwrap_or_default();
        if ports.is_empty() {
            count += addresses.len();
            list.extend(addresses.iter().map(|a| a.ip.clone()));
        } else {
            for port in &ports {
                count += addresses.len();
                list.extend(addresses.iter().map(|a| join_host_port(&a.ip, port.port)));
            }
        }
    }
    if list.is_empty() {
        return "<none>".into();
    }
    if count > MAX {
        return format!("{} + {} more...", list[..MAX].join(","), count - MAX);
    }
    list.join(",")
}

fn join_host_port(ip: &str, port: i32) -> String {
    if ip.contains(':') { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") }
}

/// The cells of an endpoints object.
pub fn endpoints(ep: &Endpoints) -> Vec<String> {
    vec![opt(&ep.metadata.name), format_endpoints(ep), age::age(ep.metadata.creation_timestamp.as_ref())]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn service_row_shows_cluster_ip_and_ports() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {"type": "NodePort", "clusterIP": "10.254.0.10", "selector": {"app": "web"},
                     "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]},
        }))
        .expect("service");
        let cells = service(&svc, true);
        assert_eq!(cells[..5], ["web", "NodePort", "10.254.0.10", "<none>", "80:30080/TCP,53/UDP"]);
        assert_eq!(cells[6], "app=web");
    }

    #[test]
    fn endpoints_list_at_most_three() {
        let ep: Endpoints = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "subsets": [{"addresses": [{"ip": "10.1.0.2"}, {"ip": "10.1.0.3"}, {"ip": "10.1.0.4"}, {"ip": "10.1.0.5"}],
                         "ports": [{"port": 8080}]}],
        }))
        .expect("endpoints");
        assert_eq!(format_endpoints(&ep), "10.1.0.2:8080,10.1.0.3:8080,10.1.0.4:8080 + 1 more...");
        let empty: Endpoints = serde_json::from_value(json!({"metadata": {"name": "x"}})).expect("endpoints");
        assert_eq!(format_endpoints(&empty), "<none>");
    }
}
