//! Services with `rkubectl` against a real apiserver: `expose`, the
//! `get svc|ep|endpointslices` tables and `describe service`. No controllers
//! run here: the tests write the Endpoints and EndpointSlices themselves.

mod support;

use support::Cluster;

const WORKLOADS: &str = "\
apiVersion: v1
kind: ReplicationController
metadata:
  name: frontend
  labels: {app: guestbook}
spec:
  replicas: 0
  selector: {app: guestbook, tier: frontend}
  template:
    metadata:
      labels: {app: guestbook, tier: frontend}
    spec:
      containers:
      - name: php
        image: toolbox
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Pod
metadata:
  name: redis
  labels: {app: redis, role: primary}
spec:
  containers:
  - name: redis
    image: redis
    ports:
    - containerPort: 6379
---
apiVersion: v1
kind: Pod
metadata:
  name: portless
  labels: {app: portless}
spec:
  containers:
  - name: app
    image: toolbox
";

const WEB: &str = "\
apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {app: web}
spec:
  clusterIP: 10.254.7.7
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: https, port: 443, targetPort: 8443}
---
apiVersion: v1
kind: Endpoints
metadata:
  name: web
subsets:
- addresses: [{ip: 10.1.0.5}, {ip: 10.1.1.7}]
  notReadyAddresses: [{ip: 10.1.2.9}]
  ports:
  - {name: http, port: 8080}
  - {name: https, port: 8443}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-x7k2p
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports:
- {name: http, port: 8080, protocol: TCP}
- {name: https, port: 8443, protocol: TCP}
endpoints:
- addresses: [10.1.0.5]
  conditions: {ready: true}
- addresses: [10.1.1.7]
  conditions: {ready: true}
- addresses: [10.1.2.9]
  conditions: {ready: false}
";

/// The table's rows without the AGE column (the last but for `-o wide`).
fn rows_without_age(table: &str, age_column: usize) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|l| {
            let mut cells: Vec<String> = l.split_whitespace().map(str::to_string).collect();
            if cells.len() > age_column {
                cells.remove(age_column);
            }
            cells
        })
        .collect()
}

#[tokio::test]
async fn expose_builds_services_from_controllers_and_pods() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.ok(&["create", "-f", &c.file("workloads.yaml", WORKLOADS)]).await?;

    let dry = c
        .ok(&["expose", "rc", "frontend", "--port=8000", "--target-port=80", "--dry-run=client", "-o", "yaml"])
        .await?;
    assert_eq!(
        dry,
        "apiVersion: v1
kind: Service
metadata:
  creationTimestamp: null
  labels:
    app: guestbook
  name: frontend
spec:
  ports:
  - port: 8000
    protocol: TCP
    targetPort: 80
  selector:
    app: guestbook
    tier: frontend
status:
  loadBalancer: {}
"
    );
    assert!(c.run(&["get", "svc", "frontend"]).await?.code != 0, "a dry run creates nothing");

    // The port comes from the template's container port.
    assert_eq!(c.ok(&["expose", "rc", "frontend", "--type=ClusterIP"]).await?, "service/frontend exposed\n");
    let table = c.ok(&["get", "svc", "frontend", "-o", "wide"]).await?;
    let rows = rows_without_age(&table, 5);
    assert_eq!(rows[0], ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "SELECTOR"]);
    assert_eq!(rows[1][..2], ["frontend", "ClusterIP"]);
    assert!(rows[1][2].starts_with("10.254."), "a ClusterIP is allocated: {table}");
    assert_eq!(rows[1][3..], ["<none>", "80/TCP", "app=guestbook,tier=frontend"]);

    // A pod: its labels select, its port serves; the name and protocol can be set.
    let out = c
        .ok(&[
            "expose",
            "pod/redis",
            "--name=redis-primary",
            "--protocol=TCP",
            "--session-affinity=ClientIP",
            "-o",
            "name",
        ])
        .await?;
    assert_eq!(out, "service/redis-primary\n");
    let yaml = c.ok(&["get", "svc", "redis-primary", "-o", "yaml"]).await?;
    for line in [
        "    app: redis\n",
        "    role: primary\n",
        "  - port: 6379\n",
        "    targetPort: 6379\n",
        "  sessionAffinity: ClientIP\n",
    ] {
        assert!(yaml.contains(line), "{line:?} missing in\n{yaml}");
    }

    // Nothing to guess a port from.
    let out = c.run(&["expose", "pod", "portless"]).await?;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("couldn't find port via --port flag or introspection"), "{}", out.stderr);
    let out = c.run(&["expose", "configmap", "x", "--port=80"]).await?;
    assert_ne!(out.code, 0);
    Ok(())
}

#[tokio::test]
async fn get_prints_services_endpoints_and_slices_like_kubectl() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.ok(&["create", "-f", &c.file("web.yaml", WEB)]).await?;

    let svc = c.ok(&["get", "svc", "web"]).await?;
    assert_eq!(
        rows_without_age(&svc, 5),
        [
            vec!["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)"],
            vec!["web", "ClusterIP", "10.254.7.7", "<none>", "80/TCP,443/TCP"]
        ]
    );
    // The apiserver keeps its own `kubernetes` Service (no selector) beside `web`.
    let wide = c.ok(&["get", "services", "-o", "wide"]).await?;
    let rows = rows_without_age(&wide, 5);
    let row = |name: &str| rows.iter().find(|r| r[0] == name).cloned().unwrap_or_default();
    assert_eq!(row("web"), ["web", "ClusterIP", "10.254.7.7", "<none>", "80/TCP,443/TCP", "app=web"], "{wide}");
    if let Some(master) = rows.iter().find(|r| r[0] == "kubernetes") {
        assert_eq!(master.last().map(String::as_str), Some("<none>"), "{wide}");
    }

    let ep = c.ok(&["get", "ep", "web"]).await?;
    assert_eq!(rows_without_age(&ep, 2)[0], ["NAME", "ENDPOINTS"]);
    let line = ep.lines().nth(1).unwrap_or_default();
    assert!(line.contains("10.1.0.5:8080,10.1.1.7:8080,10.1.0.5:8443 + 1 more..."), "{ep}");

    for word in ["endpointslices", "endpointslice", "endpointslices.discovery.k8s.io", "EndpointSlice"] {
        let slices = c.ok(&["get", word, "web-x7k2p"]).await?;
        assert_eq!(
            rows_without_age(&slices, 4),
            [
                vec!["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS"],
                vec!["web-x7k2p", "IPv4", "8080,8443", "10.1.0.5,10.1.1.7,10.1.2.9"]
            ],
            "get {word}"
        );
    }
    let named = c.ok(&["get", "endpointslice", "web-x7k2p", "-o", "name"]).await?;
    assert_eq!(named, "endpointslice.discovery.k8s.io/web-x7k2p\n");
    Ok(())
}

#[tokio::test]
async fn describe_service_shows_each_ports_endpoints() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.ok(&["create", "-f", &c.file("web.yaml", WEB)]).await?;
    let text = c.ok(&["describe", "service", "web"]).await?;
    let expected = [
        "Name:              web",
        "Namespace:         default",
        "Labels:            app=web",
        "Annotations:       <none>",
        "Selector:          app=web",
        "Type:              ClusterIP",
        "IP:                10.254.7.7",
        "IPs:               10.254.7.7",
        "Port:              http  80/TCP",
        "TargetPort:        8080/TCP",
        "Endpoints:         10.1.0.5:8080,10.1.1.7:8080",
        "Port:              https  443/TCP",
        "TargetPort:        8443/TCP",
        "Endpoints:         10.1.0.5:8443,10.1.1.7:8443",
        "Session Affinity:  None",
        "Events:            <none>",
    ];
    // Compared with whitespace collapsed: the column width follows the
    // longest key, which depends on the fields the apiserver defaults.
    let collapse = |l: &str| l.split_whitespace().collect::<Vec<_>>().join(" ");
    let lines: Vec<String> = text.lines().map(collapse).collect();
    let mut at = 0;
    for want in expected.map(collapse) {
        let found = lines[at..].iter().position(|l| *l == want);
        assert!(found.is_some(), "{want:?} missing (in order) in\n{text}");
        at += found.unwrap_or_default() + 1;
    }
    // Without slices, the Endpoints object serves.
    c.ok(&["delete", "endpointslice", "web-x7k2p"]).await?;
    let text = c.ok(&["describe", "svc", "web"]).await?;
    assert!(text.lines().map(collapse).any(|l| l == "Endpoints: 10.1.0.5:8080,10.1.1.7:8080"), "{text}");
    Ok(())
}
