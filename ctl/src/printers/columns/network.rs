//! Rows of services, endpoints and endpoint slices.

use super::opt;
use crate::printers::age;
use crate::printers::table::format_labels;
use k8s_openapi::api::core::v1::{Endpoints, Service, ServicePort};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};

/// How many items a list cell shows before `+ N more...`.
const MAX_SHOWN: usize = 3;

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
            let ips: Vec<String> = svc
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.clone())
                .unwrap_or_default()
                .into_iter()
                .filter_map(|i| i.ip.or(i.hostname))
                .collect();
            let mut lb = ips.join(",");
            if !wide && lb.len() > 16 {
                // kubectl's loadBalancerStatusStringer shortens it in narrow tables.
                lb = format!("{}...", &lb[..13]);
            }
            let mut all: Vec<String> = if lb.is_empty() { vec![] } else { vec![lb] };
            all.extend(external);
            if all.is_empty() { "<pending>".into() } else { all.join(",") }
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

/// `10.1.0.2:80,10.1.0.3:80 + 2 more...`: at most three ready addresses
/// (every port's, or only those of ports named in `ports`); `<none>` with
/// no subsets, "" when no address is ready (kubectl's `formatEndpoints`).
pub fn format_endpoints(ep: &Endpoints, ports: Option<&[&str]>) -> String {
    const MAX: usize = MAX_SHOWN;
    let subsets = ep.subsets.clone().unwrap_or_default();
    if subsets.is_empty() {
        return "<none>".into();
    }
    let wanted = ports;
    let mut list: Vec<String> = Vec::new();
    let mut count = 0;
    for ss in &subsets {
        let addresses = ss.addresses.clone().unwrap_or_default();
        let ports = ss.ports.clone().unwrap_or_default();
        if ports.is_empty() {
            count += addresses.len();
            list.extend(addresses.iter().map(|a| a.ip.clone()));
        } else {
            for port in
                ports.iter().filter(|p| wanted.is_none_or(|w| w.contains(&p.name.as_deref().unwrap_or_default())))
            {
                count += addresses.len();
                list.extend(addresses.iter().map(|a| join_host_port(&a.ip, port.port)));
            }
        }
    }
    if count > MAX {
        return format!("{} + {} more...", list[..MAX].join(","), count - MAX);
    }
    list.join(",")
}

/// `host:port`, an IPv6 host in brackets (Go's `net.JoinHostPort`).
pub fn join_host_port(ip: &str, port: i32) -> String {
    if ip.contains(':') { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") }
}

/// The cells of an endpoints object.
pub fn endpoints(ep: &Endpoints) -> Vec<String> {
    vec![opt(&ep.metadata.name), format_endpoints(ep, None), age::age(ep.metadata.creation_timestamp.as_ref())]
}

/// Headers of endpoint slices.
pub fn endpoint_slice_headers() -> Vec<&'static str> {
    vec!["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
}

/// `a,b,c + 2 more...`, or `<unset>` for nothing (kubectl's `listWithMoreString`).
fn list_with_more(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    match items.len() {
        0 => "<unset>".into(),
        n if n > MAX_SHOWN => format!("{} + {} more...", items[..MAX_SHOWN].join(","), n - MAX_SHOWN),
        _ => items.join(","),
    }
}

/// The PORTS cell: port numbers (a name when the number is unset, `*` when both are).
pub fn format_slice_ports(ports: &[EndpointPort]) -> String {
    list_with_more(ports.iter().map(|p| match (p.port, &p.name) {
        (Some(n), _) => n.to_string(),
        (None, Some(name)) => name.clone(),
        (None, None) => "*".into(),
    }))
}

/// The ENDPOINTS cell: every address of every endpoint, ready or not.
pub fn format_slice_endpoints(endpoints: &[Endpoint]) -> String {
    list_with_more(endpoints.iter().flat_map(|e| e.addresses.iter().cloned()))
}

/// The cells of an endpoint slice.
pub fn endpoint_slice(eps: &EndpointSlice) -> Vec<String> {
    vec![
        opt(&eps.metadata.name),
        eps.address_type.clone(),
        format_slice_ports(eps.ports.as_deref().unwrap_or_default()),
        format_slice_endpoints(&eps.endpoints),
        age::age(eps.metadata.creation_timestamp.as_ref()),
    ]
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
        assert_eq!(format_endpoints(&ep, None), "10.1.0.2:8080,10.1.0.3:8080,10.1.0.4:8080 + 1 more...");
        let empty: Endpoints = serde_json::from_value(json!({"metadata": {"name": "x"}})).expect("endpoints");
        assert_eq!(format_endpoints(&empty, None), "<none>");
        let unready: Endpoints = serde_json::from_value(json!({"metadata": {"name": "x"},
            "subsets": [{"notReadyAddresses": [{"ip": "10.1.0.2"}], "ports": [{"port": 80}]}]}))
        .expect("endpoints");
        assert_eq!(format_endpoints(&unready, None), "", "kubectl prints an empty cell");
    }

    #[test]
    fn endpoints_of_named_ports_only_and_every_port_of_each_subset() {
        let ep: Endpoints = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "subsets": [
                {"addresses": [{"ip": "10.1.0.5"}], "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]},
                {"addresses": [{"ip": "fd00::7"}], "ports": [{"name": "http", "port": 80}]}],
        }))
        .expect("endpoints");
        assert_eq!(format_endpoints(&ep, None), "10.1.0.5:80,10.1.0.5:443,[fd00::7]:80");
        assert_eq!(format_endpoints(&ep, Some(&["http"])), "10.1.0.5:80,[fd00::7]:80");
    }

    #[test]
    fn endpoint_slice_rows_list_ports_and_addresses_like_kubectl() {
        let eps: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "web-abc12"}, "addressType": "IPv4",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "https", "port": 443},
                      {"name": "named-only"}, {"port": 9090}],
            "endpoints": [{"addresses": ["10.1.0.5"], "conditions": {"ready": true}},
                          {"addresses": ["10.1.1.7"], "conditions": {"ready": false}},
                          {"addresses": ["10.1.2.9"]}, {"addresses": ["10.1.3.2"]}],
        }))
        .expect("slice");
        let cells = endpoint_slice(&eps);
        assert_eq!(
            cells[..4],
            ["web-abc12", "IPv4", "80,443,named-only + 1 more...", "10.1.0.5,10.1.1.7,10.1.2.9 + 1 more..."]
        );
        let empty: EndpointSlice =
            serde_json::from_value(json!({"metadata": {"name": "e"}, "addressType": "IPv4", "endpoints": []}))
                .expect("slice");
        assert_eq!(endpoint_slice(&empty)[2..4], ["<unset>", "<unset>"]);
    }
}
