//! Rows of services, endpoints and endpoint slices.

use super::{AGE, Cell, Column, NAME, age_of, format_labels, int, items, name, text};
use jiff::Timestamp;
use serde_json::Value;

/// How many items a list cell shows before `+ N more...`.
const MAX_SHOWN: usize = 3;

/// The service table's columns.
pub(super) const SERVICE_COLUMNS: &[Column] = &[
    NAME,
    Column::string("Type", "type determines how the Service is exposed."),
    Column::string("Cluster-IP", "clusterIP is the IP address of the service and is usually assigned randomly."),
    Column::string(
        "External-IP",
        "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this \
         service.",
    ),
    Column::string("Port(s)", "The list of ports that are exposed by this service."),
    AGE,
    Column::string("Selector", "Route service traffic to pods with label keys and values matching this selector.")
        .wide(),
];

/// The endpoints table's columns.
pub(super) const ENDPOINTS_COLUMNS: &[Column] = &[
    NAME,
    Column::string(
        "Endpoints",
        "The set of all endpoints is the union of all subsets. Addresses are placed into subsets according to the \
         IPs they share.",
    ),
    AGE,
];

/// The endpoint slice table's columns.
pub(super) const ENDPOINT_SLICE_COLUMNS: &[Column] = &[
    NAME,
    Column::string("AddressType", "addressType specifies the type of address carried by this EndpointSlice."),
    Column::string("Ports", "ports specifies the list of network ports exposed by each endpoint in this slice."),
    Column::string("Endpoints", "endpoints is a list of unique endpoints in this slice."),
    AGE,
];

/// `80/TCP,443:30443/TCP`, as the Port(s) column writes a service's ports.
fn ports_string(ports: &[Value]) -> String {
    ports
        .iter()
        .map(|p| {
            let protocol = match text(&p["protocol"]) {
                "" => "TCP",
                proto => proto,
            };
            match int(&p["nodePort"]) {
                np if np > 0 => format!("{}:{np}/{protocol}", int(&p["port"])),
                _ => format!("{}/{protocol}", int(&p["port"])),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The External-IP cell (`getServiceExternalIP`, as kube-apiserver computes it: wide).
fn external_ip(svc: &Value, kind: &str) -> String {
    let external: Vec<&str> = items(&svc["spec"]["externalIPs"]).iter().map(text).collect();
    match kind {
        "ClusterIP" | "NodePort" if external.is_empty() => "<none>".into(),
        "ClusterIP" | "NodePort" => external.join(","),
        "LoadBalancer" => {
            let mut ingress: Vec<&str> = items(&svc["status"]["loadBalancer"]["ingress"])
                .iter()
                .map(|i| match text(&i["ip"]) {
                    "" => text(&i["hostname"]),
                    ip => ip,
                })
                .filter(|s| !s.is_empty())
                .collect();
            ingress.sort_unstable();
            ingress.dedup();
            ingress.extend(external);
            if ingress.is_empty() { "<pending>".into() } else { ingress.join(",") }
        }
        "ExternalName" => text(&svc["spec"]["externalName"]).to_string(),
        _ => "<unknown>".into(),
    }
}

/// The cells of a service.
pub(super) fn service(svc: &Value, now: Timestamp) -> Vec<Cell> {
    let spec = &svc["spec"];
    let kind = match text(&spec["type"]) {
        "" => "ClusterIP",
        kind => kind,
    };
    let cluster_ip = match items(&spec["clusterIPs"]).first().map_or_else(|| text(&spec["clusterIP"]), text) {
        "" => "<none>",
        ip => ip,
    };
    let ports = ports_string(items(&spec["ports"]));
    vec![
        name(svc),
        kind.into(),
        cluster_ip.into(),
        external_ip(svc, kind).into(),
        if ports.is_empty() { "<none>".into() } else { ports.into() },
        age_of(svc, now),
        format_labels(&spec["selector"]).into(),
    ]
}

/// `host:port`, an IPv6 host in brackets (Go's `net.JoinHostPort`).
pub fn join_host_port(ip: &str, port: i64) -> String {
    if ip.contains(':') { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") }
}

/// `10.1.0.2:80,10.1.0.3:80 + 2 more...`: at most three ready addresses of
/// an Endpoints object (every port's, or only those of the ports named in
/// `ports`); `<none>` with no subsets, "" when no address is ready
/// (`formatEndpoints`).
pub fn format_endpoints(endpoints: &Value, ports: Option<&[&str]>) -> String {
    let subsets = items(&endpoints["subsets"]);
    if subsets.is_empty() {
        return "<none>".into();
    }
    let mut list: Vec<String> = Vec::new();
    let mut count = 0;
    for ss in subsets {
        let addresses = items(&ss["addresses"]);
        let subset_ports = items(&ss["ports"]);
        if subset_ports.is_empty() {
            count += addresses.len();
            list.extend(
                addresses.iter().take(MAX_SHOWN - list.len().min(MAX_SHOWN)).map(|a| text(&a["ip"]).to_string()),
            );
            continue;
        }
        for port in subset_ports.iter().filter(|p| ports.is_none_or(|w| w.contains(&text(&p["name"])))) {
            count += addresses.len();
            let room = MAX_SHOWN - list.len().min(MAX_SHOWN);
            list.extend(addresses.iter().take(room).map(|a| join_host_port(text(&a["ip"]), int(&port["port"]))));
        }
    }
    if count > MAX_SHOWN {
        return format!("{} + {} more...", list.join(","), count - MAX_SHOWN);
    }
    list.join(",")
}

/// The cells of an Endpoints object.
pub(super) fn endpoints(ep: &Value, now: Timestamp) -> Vec<Cell> {
    vec![name(ep), format_endpoints(ep, None).into(), age_of(ep, now)]
}

/// `a,b,c + 2 more...`, or `<unset>` for nothing (`listWithMoreString`).
fn list_with_more<'a>(items: impl Iterator<Item = String> + 'a) -> String {
    let mut shown: Vec<String> = Vec::new();
    let mut count = 0;
    for item in items {
        if shown.len() < MAX_SHOWN {
            shown.push(item);
        }
        count += 1;
    }
    match count {
        0 => "<unset>".into(),
        n if n > MAX_SHOWN => format!("{} + {} more...", shown.join(","), n - MAX_SHOWN),
        _ => shown.join(","),
    }
}

/// The cells of an endpoint slice: its ports (a name when the number is
/// unset, `*` when both are) and every address of every endpoint, ready or not.
pub(super) fn endpoint_slice(eps: &Value, now: Timestamp) -> Vec<Cell> {
    let ports = list_with_more(items(&eps["ports"]).iter().map(|p| match (p["port"].as_i64(), text(&p["name"])) {
        (Some(n), _) => n.to_string(),
        (None, "") => "*".into(),
        (None, name) => name.to_string(),
    }));
    let addresses = list_with_more(
        items(&eps["endpoints"]).iter().flat_map(|e| items(&e["addresses"]).iter().map(|a| text(a).to_string())),
    );
    vec![name(eps), text(&eps["addressType"]).into(), ports.into(), addresses.into(), age_of(eps, now)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn strings(cells: &[Cell]) -> Vec<String> {
        cells.iter().map(Cell::to_string).collect()
    }

    #[test]
    fn service_row_shows_cluster_ip_no_external_ip_and_node_ports() {
        let svc = json!({
            "metadata": {"name": "web", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"type": "NodePort", "clusterIP": "10.254.0.10", "clusterIPs": ["10.254.0.10"],
                     "selector": {"app": "web"},
                     "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]},
        });
        let cells = service(&svc, "2024-01-01T00:00:30Z".parse().expect("time"));
        assert_eq!(
            strings(&cells),
            ["web", "NodePort", "10.254.0.10", "<none>", "80:30080/TCP,53/UDP", "30s", "app=web"]
        );
    }

    #[test]
    fn service_external_ips_by_type() {
        let headless = json!({"metadata": {"name": "db"}, "spec": {"clusterIP": "None", "clusterIPs": ["None"]}});
        assert_eq!(
            strings(&service(&headless, Timestamp::UNIX_EPOCH))[1..5],
            ["ClusterIP", "None", "<none>", "<none>"]
        );
        let lb = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "externalIPs": ["1.2.3.4"]},
                        "status": {"loadBalancer": {"ingress": [{"ip": "9.9.9.9"}, {"hostname": "lb.example.com"}]}}});
        assert_eq!(service(&lb, Timestamp::UNIX_EPOCH)[3], Cell::from("9.9.9.9,lb.example.com,1.2.3.4"));
        let pending = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer"}});
        assert_eq!(service(&pending, Timestamp::UNIX_EPOCH)[3], Cell::from("<pending>"));
        let name =
            json!({"metadata": {"name": "ext"}, "spec": {"type": "ExternalName", "externalName": "example.com"}});
        assert_eq!(strings(&service(&name, Timestamp::UNIX_EPOCH))[2..4], ["<none>", "example.com"]);
    }

    #[test]
    fn endpoints_list_at_most_three() {
        let ep = json!({
            "metadata": {"name": "web"},
            "subsets": [{"addresses": [{"ip": "10.1.0.2"}, {"ip": "10.1.0.3"}, {"ip": "10.1.0.4"}, {"ip": "10.1.0.5"}],
                         "ports": [{"port": 8080}]}],
        });
        assert_eq!(format_endpoints(&ep, None), "10.1.0.2:8080,10.1.0.3:8080,10.1.0.4:8080 + 1 more...");
        assert_eq!(format_endpoints(&json!({"metadata": {"name": "x"}}), None), "<none>");
        let unready = json!({"metadata": {"name": "x"},
            "subsets": [{"notReadyAddresses": [{"ip": "10.1.0.2"}], "ports": [{"port": 80}]}]});
        assert_eq!(format_endpoints(&unready, None), "", "kubectl prints an empty cell");
    }

    #[test]
    fn endpoints_of_named_ports_only_and_every_port_of_each_subset() {
        let ep = json!({
            "metadata": {"name": "web"},
            "subsets": [
                {"addresses": [{"ip": "10.1.0.5"}], "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]},
                {"addresses": [{"ip": "fd00::7"}], "ports": [{"name": "http", "port": 80}]}],
        });
        assert_eq!(format_endpoints(&ep, None), "10.1.0.5:80,10.1.0.5:443,[fd00::7]:80");
        assert_eq!(format_endpoints(&ep, Some(&["http"])), "10.1.0.5:80,[fd00::7]:80");
        assert_eq!(strings(&endpoints(&ep, Timestamp::UNIX_EPOCH))[1], "10.1.0.5:80,10.1.0.5:443,[fd00::7]:80");
    }

    #[test]
    fn endpoint_slice_rows_list_ports_and_addresses_like_kubectl() {
        let eps = json!({
            "metadata": {"name": "web-abc12"}, "addressType": "IPv4",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "https", "port": 443},
                      {"name": "named-only"}, {"port": 9090}],
            "endpoints": [{"addresses": ["10.1.0.5"], "conditions": {"ready": true}},
                          {"addresses": ["10.1.1.7"], "conditions": {"ready": false}},
                          {"addresses": ["10.1.2.9"]}, {"addresses": ["10.1.3.2"]}],
        });
        assert_eq!(
            strings(&endpoint_slice(&eps, Timestamp::UNIX_EPOCH))[..4],
            ["web-abc12", "IPv4", "80,443,named-only + 1 more...", "10.1.0.5,10.1.1.7,10.1.2.9 + 1 more..."]
        );
        let empty = json!({"metadata": {"name": "e"}, "addressType": "IPv4", "endpoints": []});
        assert_eq!(strings(&endpoint_slice(&empty, Timestamp::UNIX_EPOCH))[2..4], ["<unset>", "<unset>"]);
    }
}
