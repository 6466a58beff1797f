//! rkube-proxy against a real apiserver on a real etcd, programming the
//! kernel's nftables in a table of its own per test (deleted on Drop): the
//! rules for ClusterIPs, NodePorts and Services without endpoints,
//! incremental updates that leave other Services' rules alone, convergence
//! after a restart, recovery when the table vanishes, `--cleanup`, and real
//! DNATed traffic to an endpoint in a network namespace.

use anyhow::Context as _;
use clap::Parser as _;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use rkube_client::{Api, Client, DeleteParams};
use rkube_proxy::{App, Args};
use rkube_testkit::{TestApiserver, http_get, wait_for};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const TIMEOUT: Duration = Duration::from_secs(20);
const NODE: &str = "node-a";

/// A table name no other test (or test process) uses.
fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Deletes the table on Drop, whatever the test's outcome.
struct TableGuard(String);

impl Drop for TableGuard {
    fn drop(&mut self) {
        let t = &self.0;
        let _ = Command::new("sh").arg("-c").arg(format!("nft delete table ip {t} 2>/dev/null")).status();
    }
}

/// An in-process rkube-proxy.
struct Proxy {
    health: SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

fn args(server: &str, table: &str) -> Args {
    let mut args = Args::try_parse_from(["rkube-proxy"]).expect("the defaults parse");
    args.api.server = Some(server.to_string());
    args.table = table.to_string();
    args.cluster_cidr = vec!["10.1.0.0/16".parse().expect("a CIDR")];
    args.hostname_override = Some(NODE.into());
    args.healthz_bind_address = "127.0.0.1:0".parse().expect("an address");
    args.min_sync_period = Duration::from_millis(5);
    args
}

impl Proxy {
    async fn start(server: &str, table: &str) -> anyhow::Result<Proxy> {
        let app = App::build(args(server, table)).await?;
        let health = app.health_addr();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(app.run(shutdown.clone()));
        Ok(Proxy { health, shutdown, task })
    }

    async fn get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        http_get(&format!("http://{}{path}", self.health)).await
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.task.await?
    }
}

/// The table as the kernel has it, from `nft -j list table`.
#[derive(Debug, Default)]
struct Table {
    /// Chain -> its rules' handles.
    chains: BTreeMap<String, Vec<u64>>,
    /// Map or set -> element key (`a . b . c`) -> value (`goto x`, "" for sets).
    elements: BTreeMap<String, BTreeMap<String, String>>,
}

impl Table {
    fn chain_ending(&self, suffix: &str) -> Option<&String> {
        self.chains.keys().find(|c| c.ends_with(suffix))
    }

    fn element(&self, map: &str, key: &str) -> Option<&str> {
        self.elements.get(map).and_then(|m| m.get(key)).map(String::as_str)
    }
}

fn key_text(v: &Value) -> String {
    match v {
        Value::Object(o) if o.contains_key("elem") => key_text(&o["elem"]["val"]),
        Value::Object(o) if o.contains_key("concat") => {
            o["concat"].as_array().into_iter().flatten().map(key_text).collect::<Vec<_>>().join(" . ")
        }
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn verdict_text(v: &Value) -> String {
    for verdict in ["goto", "jump"] {
        if let Some(t) = v[verdict]["target"].as_str() {
            return format!("{verdict} {t}");
        }
    }
    v.to_string()
}

async fn table(name: &str) -> anyhow::Result<Option<Table>> {
    let Some(json) = rkube_proxy::nft::list_table_json(name).await? else { return Ok(None) };
    let mut t = Table::default();
    for item in json["nftables"].as_array().into_iter().flatten() {
        if let Some(c) = item.get("chain") {
            t.chains.entry(c["name"].as_str().unwrap_or_default().to_string()).or_default();
        } else if let Some(r) = item.get("rule") {
            let chain = r["chain"].as_str().unwrap_or_default().to_string();
            t.chains.entry(chain).or_default().push(r["handle"].as_u64().unwrap_or_default());
        } else if let Some(m) = item.get("map").or_else(|| item.get("set")) {
            let elems = t.elements.entry(m["name"].as_str().unwrap_or_default().to_string()).or_default();
            for e in m["elem"].as_array().into_iter().flatten() {
                match e.as_array() {
                    Some(pair) if pair.len() == 2 => elems.insert(key_text(&pair[0]), verdict_text(&pair[1])),
                    _ => elems.insert(key_text(e), String::new()),
                };
            }
        }
    }
    Ok(Some(t))
}

/// `nft list chain` text of the chain of `table` ending in `suffix`.
fn chain_text(table: &str, chain: &str) -> String {
    let out = Command::new("nft").args(["list", "chain", "ip", table, chain]).output().expect("nft runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until `check` holds for the table; returns it.
async fn wait_table(name: &str, what: &str, check: impl Fn(&Table) -> bool) -> anyhow::Result<Table> {
    wait_for(TIMEOUT, || async { table(name).await.ok().flatten().is_some_and(|t| check(&t)) })
        .await
        .with_context(|| format!("table {name}: {what}; it is {:#?}", table_text(name)))?;
    table(name).await?.context("the table exists")
}

/// The table's text for failure messages.
fn table_text(name: &str) -> String {
    let out = Command::new("nft").args(["list", "table", "ip", name]).output().expect("nft runs");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn service(name: &str, spec: Value) -> anyhow::Result<Service> {
    Ok(serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default"}, "spec": spec}))?)
}

/// An EndpointSlice of Service `svc`: `(ip, ready, node)` endpoints on port `http` = `port`.
fn slice(name: &str, svc: &str, port: i32, endpoints: &[(&str, bool, &str)]) -> anyhow::Result<EndpointSlice> {
    let eps: Vec<Value> = endpoints
        .iter()
        .map(|(ip, ready, node)| json!({"addresses": [ip], "conditions": {"ready": ready}, "nodeName": node}))
        .collect();
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "endpoints": eps,
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
    }))?)
}

fn cluster_ip(svc: &Service) -> String {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.clone()).unwrap_or_default()
}

struct Cluster {
    apiserver: TestApiserver,
    services: Api<Service>,
    slices: Api<EndpointSlice>,
}

async fn cluster() -> anyhow::Result<Cluster> {
    let apiserver = TestApiserver::start().await?;
    let client = Client::new(&apiserver.url())?;
    Ok(Cluster {
        services: Api::namespaced(client.clone(), "default"),
        slices: Api::namespaced(client, "default"),
        apiserver,
    })
}

fn http_port() -> Value {
    json!([{"name": "http", "port": 80, "protocol": "TCP"}])
}

#[tokio::test]
async fn programs_cluster_ips_node_ports_and_rejects_services_without_endpoints() -> anyhow::Result<()> {
    let c = cluster().await?;
    let t = unique("rkp-prog");
    let _guard = TableGuard(t.clone());
    let web = c.services.create(&service("web", json!({"ports": http_port()}))?).await?;
    c.slices
        .create(&slice(
            "web-1",
            "web",
            8080,
            &[
                ("10.1.0.1", true, NODE),
                ("10.1.0.2", true, "node-b"),
                ("10.1.0.3", true, "node-b"),
                ("10.1.0.4", false, NODE),
            ],
        )?)
        .await?;
    let empty = c.services.create(&service("empty", json!({"ports": http_port()}))?).await?;
    let np = c
        .services
        .create(&service(
            "np",
            json!({"type": "NodePort", "ports": [{"name": "http", "port": 80, "nodePort": 30777}],
                "sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 30}}}),
        )?)
        .await?;
    c.slices.create(&slice("np-1", "np", 9090, &[("10.1.0.9", true, NODE)])?).await?;
    c.services.create(&service("headless", json!({"clusterIP": "None", "ports": http_port()}))?).await?;
    c.slices.create(&slice("headless-1", "headless", 8080, &[("10.1.0.7", true, NODE)])?).await?;

    let proxy = Proxy::start(&c.apiserver.url(), &t).await?;
    let (web_ip, empty_ip, np_ip) = (cluster_ip(&web), cluster_ip(&empty), cluster_ip(&np));
    let tbl = wait_table(&t, "every Service programmed", |t| {
        t.element("service-ips", &format!("{web_ip} . tcp . 80")).is_some()
            && t.element("service-ips", &format!("{np_ip} . tcp . 80")).is_some()
            && t.element("no-endpoint-services", &format!("{empty_ip} . tcp . 80")).is_some()
    })
    .await?;

    let web_chain = tbl.chain_ending("-default/web/tcp/http").context("web's service chain")?;
    assert!(web_chain.starts_with("service-"), "{web_chain}");
    assert_eq!(tbl.element("service-ips", &format!("{web_ip} . tcp . 80")), Some(format!("goto {web_chain}").as_str()));
    let text = chain_text(&t, web_chain);
    assert!(
        text.contains("numgen random mod 3 0 goto") && text.contains("numgen random mod 2 0 goto"),
        "three ready endpoints:\n{text}"
    );
    assert!(
        text.contains(&format!("ip daddr {web_ip} tcp dport 80 ip saddr != @cluster-cidrs jump mark-for-masquerade")),
        "{text}"
    );
    let ep1 = tbl.chain_ending("-default/web/tcp/http__10.1.0.1/8080").context("endpoint chain")?;
    let text = chain_text(&t, ep1);
    assert!(text.contains("ip saddr 10.1.0.1 jump mark-for-masquerade"), "hairpin:\n{text}");
    assert!(text.contains("dnat to 10.1.0.1:8080"), "{text}");
    assert!(tbl.chain_ending("__10.1.0.4/8080").is_none(), "the unready endpoint gets no chain");
    assert_eq!(
        tbl.element("no-endpoint-services", &format!("{empty_ip} . tcp . 80")),
        Some("goto reject-chain"),
        "a Service without endpoints rejects"
    );
    assert!(tbl.chain_ending("-default/empty/tcp/http").is_none());
    assert!(tbl.chain_ending("default/headless/tcp/http").is_none(), "headless Services get no rules");

    // The NodePort, with ClientIP affinity.
    let ext = tbl
        .chains
        .keys()
        .find(|c| c.starts_with("service-") && c.ends_with("-default/np/tcp/http"))
        .context("np's service chain")?;
    let external = tbl.chains.keys().find(|c| c.starts_with("external-")).context("external chain")?;
    assert_eq!(tbl.element("service-nodeports", "tcp . 30777"), Some(format!("goto {external}").as_str()));
    let text = chain_text(&t, external);
    assert!(text.contains("jump mark-for-masquerade") && text.contains(&format!("goto {ext}")), "{text}");
    let text = chain_text(&t, ext);
    assert!(text.contains("ip saddr @affinity-"), "affinity is checked first:\n{text}");
    let ep = tbl.chain_ending("-default/np/tcp/http__10.1.0.9/9090").context("np endpoint chain")?;
    assert!(chain_text(&t, ep).contains("update @affinity-"), "the endpoint chain updates the affinity set");
    assert!(tbl.elements.keys().any(|s| s.starts_with("affinity-") && s.ends_with("__10.1.0.9/9090")));

    let (code, _) = proxy.get("/readyz").await?;
    assert_eq!(code, 200);
    let (code, _) = proxy.get("/healthz").await?;
    assert_eq!(code, 200);
    let (_, metrics) = proxy.get("/metrics").await?;
    // 3 Service ports, and the apiserver's own `kubernetes` Service once it exists.
    assert!(metrics.contains("rkube_proxy_services 3\n") || metrics.contains("rkube_proxy_services 4\n"), "{metrics}");
    for line in [
        "rkube_proxy_endpoints 4\n",
        "rkube_proxy_syncs_total{kind=\"full\"} 1\n",
        "rkube_proxy_sync_errors_total 0\n",
        "rkube_proxy_sync_proxy_rules_duration_seconds_count",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
    proxy.stop().await?;
    assert!(table(&t).await?.is_some(), "the rules stay after the proxy stops");
    Ok(())
}

#[tokio::test]
async fn a_change_rewrites_only_that_services_rules() -> anyhow::Result<()> {
    let c = cluster().await?;
    let t = unique("rkp-incr");
    let _guard = TableGuard(t.clone());
    let a = c.services.create(&service("a", json!({"ports": http_port()}))?).await?;
    let b = c.services.create(&service("b", json!({"ports": http_port()}))?).await?;
    c.slices.create(&slice("a-1", "a", 8080, &[("10.1.1.1", true, NODE)])?).await?;
    c.slices.create(&slice("b-1", "b", 8080, &[("10.1.2.1", true, NODE), ("10.1.2.2", true, NODE)])?).await?;
    let proxy = Proxy::start(&c.apiserver.url(), &t).await?;
    let (a_ip, b_ip) = (cluster_ip(&a), cluster_ip(&b));
    let before = wait_table(&t, "a and b programmed", |t| {
        t.element("service-ips", &format!("{a_ip} . tcp . 80")).is_some()
            && t.element("service-ips", &format!("{b_ip} . tcp . 80")).is_some()
    })
    .await?;
    let b_chains: BTreeMap<&String, &Vec<u64>> =
        before.chains.iter().filter(|(name, _)| name.contains("-default/b/")).collect();
    assert_eq!(b_chains.len(), 3, "{b_chains:?}");

    // A second endpoint for a: a's service chain is rewritten, b's rules keep their handles.
    let mut s = c.slices.get("a-1").await?;
    s.endpoints.push(serde_json::from_value(json!({"addresses": ["10.1.1.2"], "conditions": {"ready": true}}))?);
    c.slices.replace(&s).await?;
    let after =
        wait_table(&t, "a's second endpoint", |t| t.chain_ending("-default/a/tcp/http__10.1.1.2/8080").is_some())
            .await?;
    let a_chain = after.chain_ending("-default/a/tcp/http").context("a's chain")?;
    assert!(chain_text(&t, a_chain).contains("numgen random mod 2 0 goto"));
    let b_after: BTreeMap<&String, &Vec<u64>> =
        after.chains.iter().filter(|(name, _)| name.contains("-default/b/")).collect();
    assert_eq!(b_after, b_chains, "b's chains and rules are untouched (same rule handles)");
    assert_eq!(
        before.chains.get(after.chain_ending("__10.1.1.1/8080").context("a's first endpoint")?),
        after.chains.get(after.chain_ending("__10.1.1.1/8080").context("a's first endpoint")?),
        "a's unchanged endpoint chain is untouched"
    );

    // a loses its endpoints: it rejects, its chains go.
    let mut s = c.slices.get("a-1").await?;
    for ep in &mut s.endpoints {
        ep.conditions.get_or_insert_default().ready = Some(false);
    }
    c.slices.replace(&s).await?;
    let after = wait_table(&t, "a rejects", |t| {
        t.element("no-endpoint-services", &format!("{a_ip} . tcp . 80")).is_some()
            && t.element("service-ips", &format!("{a_ip} . tcp . 80")).is_none()
    })
    .await?;
    assert!(!after.chains.keys().any(|c| c.contains("-default/a/")), "a's chains are gone: {:?}", after.chains.keys());

    // b is deleted: its element and chains go; a's reject stays.
    c.services.delete("b", &DeleteParams::default()).await?;
    let after = wait_table(&t, "b gone", |t| t.element("service-ips", &format!("{b_ip} . tcp . 80")).is_none()).await?;
    assert!(!after.chains.keys().any(|c| c.contains("-default/b/")), "{:?}", after.chains.keys());
    assert!(after.element("no-endpoint-services", &format!("{a_ip} . tcp . 80")).is_some());
    let (_, metrics) = proxy.get("/metrics").await?;
    assert!(metrics.contains("rkube_proxy_syncs_total{kind=\"partial\"}"), "{metrics}");
    assert!(metrics.contains("rkube_proxy_syncs_total{kind=\"full\"} 1\n"), "no full resync was needed:\n{metrics}");
    proxy.stop().await
}

#[tokio::test]
async fn a_restart_converges_and_removes_stale_rules() -> anyhow::Result<()> {
    let c = cluster().await?;
    let t = unique("rkp-restart");
    let _guard = TableGuard(t.clone());
    let keep = c.services.create(&service("keep", json!({"ports": http_port()}))?).await?;
    let gone = c.services.create(&service("gone", json!({"ports": http_port()}))?).await?;
    c.slices.create(&slice("keep-1", "keep", 8080, &[("10.1.3.1", true, NODE)])?).await?;
    c.slices.create(&slice("gone-1", "gone", 8080, &[("10.1.3.2", true, NODE)])?).await?;
    let (keep_ip, gone_ip) = (cluster_ip(&keep), cluster_ip(&gone));
    let proxy = Proxy::start(&c.apiserver.url(), &t).await?;
    wait_table(&t, "both programmed", |t| t.element("service-ips", &format!("{gone_ip} . tcp . 80")).is_some()).await?;
    proxy.stop().await?;

    // While no proxy runs: a Service goes, and someone leaves junk in the table.
    c.services.delete("gone", &DeleteParams::default()).await?;
    let junk = format!("add chain ip {t} junk\nadd element ip {t} service-ips {{ 10.9.9.9 . tcp . 1 : goto junk }}\n");
    rkube_proxy::nft::apply(&junk).await?;

    let proxy = Proxy::start(&c.apiserver.url(), &t).await?;
    let tbl = wait_table(&t, "gone and junk removed", |t| {
        t.element("service-ips", &format!("{gone_ip} . tcp . 80")).is_none() && !t.chains.contains_key("junk")
    })
    .await?;
    assert!(tbl.element("service-ips", &format!("{keep_ip} . tcp . 80")).is_some());
    assert_eq!(tbl.elements["service-ips"].len(), 1, "{:?}", tbl.elements["service-ips"]);
    assert!(!tbl.chains.keys().any(|c| c.contains("/gone/")));
    proxy.stop().await
}

#[tokio::test]
async fn a_vanished_table_is_rebuilt_and_the_failure_counted() -> anyhow::Result<()> {
    let c = cluster().await?;
    let t = unique("rkp-fail");
    let _guard = TableGuard(t.clone());
    let a = c.services.create(&service("a", json!({"ports": http_port()}))?).await?;
    c.slices.create(&slice("a-1", "a", 8080, &[("10.1.4.1", true, NODE)])?).await?;
    let proxy = Proxy::start(&c.apiserver.url(), &t).await?;
    let a_ip = cluster_ip(&a);
    wait_table(&t, "a programmed", |t| t.element("service-ips", &format!("{a_ip} . tcp . 80")).is_some()).await?;
    rkube_proxy::nft::delete_table(&t).await?;
    let b = c.services.create(&service("b", json!({"ports": http_port()}))?).await?;
    let b_ip = cluster_ip(&b);
    wait_table(&t, "rebuilt with a and b", |t| {
        t.element("service-ips", &format!("{a_ip} . tcp . 80")).is_some()
            && t.element("no-endpoint-services", &format!("{b_ip} . tcp . 80")).is_some()
    })
    .await?;
    let (_, metrics) = proxy.get("/metrics").await?;
    assert!(metrics.contains("rkube_proxy_sync_errors_total 1\n"), "{metrics}");
    assert!(metrics.contains("rkube_proxy_syncs_total{kind=\"full\"} 2\n"), "{metrics}");
    let (code, _) = proxy.get("/healthz").await?;
    assert_eq!(code, 200);
    proxy.stop().await
}

#[tokio::test]
async fn cleanup_deletes_the_table() -> anyhow::Result<()> {
    let c = cluster().await?;
    let t = unique("rkp-clean");
    let _guard = TableGuard(t.clone());
    c.services.create(&service("a", json!({"ports": http_port()}))?).await?;
    let proxy = Proxy::start(&c.apiserver.url(), &t).await?;
    wait_table(&t, "programmed", |t| !t.elements.get("no-endpoint-services").is_none_or(BTreeMap::is_empty)).await?;
    proxy.stop().await?;
    let mut a = args(&c.apiserver.url(), &t);
    a.cleanup = true;
    App::build(a.clone()).await?.run(CancellationToken::new()).await?;
    assert!(table(&t).await?.is_none(), "the table is gone");
    App::build(a).await?.run(CancellationToken::new()).await.context("a second cleanup finds nothing and succeeds")?;
    Ok(())
}

/// A network namespace with a veth pair to the host, removed on Drop.
struct Netns {
    name: String,
    server: Option<std::process::Child>,
}

impl Netns {
    /// `10.250.<n>.1/30` on the host side, `10.250.<n>.2` inside.
    fn create(name: &str, n: u8) -> anyhow::Result<Netns> {
        let ns = Netns { name: name.to_string(), server: None };
        let (host, inner) = (format!("{name}h"), format!("{name}n"));
        for cmd in [
            format!("ip netns add {name}"),
            format!("ip link add {host} type veth peer name {inner} netns {name}"),
            format!("ip addr add 10.250.{n}.1/30 dev {host}"),
            format!("ip link set {host} up"),
            format!("ip -n {name} addr add 10.250.{n}.2/30 dev {inner}"),
            format!("ip -n {name} link set {inner} up"),
            format!("ip -n {name} link set lo up"),
            format!("ip -n {name} route add default via 10.250.{n}.1"),
        ] {
            let status = Command::new("sh").arg("-c").arg(&cmd).status()?;
            anyhow::ensure!(status.success(), "{cmd} failed");
        }
        Ok(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Some(mut s) = self.server.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        // Deleting the namespace deletes the veth pair.
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

#[tokio::test]
async fn traffic_to_the_cluster_ip_and_the_localhost_node_port_reaches_the_endpoint() -> anyhow::Result<()> {
    let c = cluster().await?;
    let t = unique("rkp-dnat");
    let _guard = TableGuard(t.clone());
    let n = (std::process::id() % 200) as u8 + 20;
    let mut ns = Netns::create(&format!("rkp{n}"), n)?;
    let endpoint = format!("10.250.{n}.2");
    ns.server = Some(
        Command::new("ip")
            .args(["netns", "exec", &ns.name, "python3", "-m", "http.server", "8080", "--bind", &endpoint])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?,
    );
    let direct = format!("http://{endpoint}:8080/");
    wait_for(TIMEOUT, || async { http_get(&direct).await.is_ok_and(|(code, _)| code == 200) })
        .await
        .context("the endpoint's HTTP server did not start")?;

    let node_port = 30000 + (std::process::id() % 2700) as i32;
    let svc = c
        .services
        .create(&service(
            "web",
            json!({"type": "NodePort", "ports": [{"name": "http", "port": 80, "nodePort": node_port}]}),
        )?)
        .await?;
    c.slices.create(&slice("web-1", "web", 8080, &[(&endpoint, true, NODE)])?).await?;
    let ip = cluster_ip(&svc);
    let proxy = Proxy::start(&c.apiserver.url(), &t).await?;
    wait_table(&t, "web programmed", |t| t.element("service-ips", &format!("{ip} . tcp . 80")).is_some()).await?;

    let (code, body) = http_get(&format!("http://{ip}:80/")).await.context("GET through the ClusterIP")?;
    assert_eq!(code, 200, "{body}");
    let (code, _) =
        http_get(&format!("http://127.0.0.1:{node_port}/")).await.context("GET through 127.0.0.1:<NodePort>")?;
    assert_eq!(code, 200);

    // Without endpoints the ClusterIP refuses at once instead of hanging.
    c.slices.delete("web-1", &DeleteParams::default()).await?;
    wait_table(&t, "web rejects", |t| t.element("no-endpoint-services", &format!("{ip} . tcp . 80")).is_some()).await?;
    let refused =
        tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(format!("{ip}:80"))).await;
    match refused {
        Ok(Err(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}"),
        other => panic!("expected connection refused, got {other:?}"),
    }
    proxy.stop().await
}

#[test]
fn table_keys_are_read_from_nft_json() {
    let e = json!([{"elem": {"val": {"concat": ["10.0.0.1", "tcp", 80]}, "comment": "x"}}, {"goto": {"target": "c"}}]);
    assert_eq!(key_text(&e[0]), "10.0.0.1 . tcp . 80");
    assert_eq!(verdict_text(&e[1]), "goto c");
}

#[tokio::test]
async fn a_refused_change_names_its_line_and_changes_nothing() -> anyhow::Result<()> {
    use rkube_proxy::netlink::Batch;
    use rkube_proxy::rule::{Action, Op, Rule};
    let t = unique("rkp-refused");
    let _guard = TableGuard(t.clone());
    let mut script = rkube_proxy::ruleset::Script::new(&t);
    script.ops.push(Op::AddTable(None));
    script.ops.push(Op::AddChain("kept".into(), None));
    let mut batch = Batch::new();
    script.encode_labelled(&mut batch);
    rkube_proxy::proxier::apply(batch).await?;

    // A rule jumping to a chain that does not exist: the kernel refuses it,
    // and the whole batch (the new chain before it too) is rolled back.
    let mut script = rkube_proxy::ruleset::Script::new(&t);
    script.ops.push(Op::AddChain("new".into(), None));
    script.ops.push(Op::AddRule("kept".into(), Rule::always(Action::Jump("missing".into()))));
    let mut batch = Batch::new();
    script.encode_labelled(&mut batch);
    let err = rkube_proxy::proxier::apply(batch).await.expect_err("the kernel refuses a jump to a missing chain");
    let text = err.to_string();
    assert!(text.contains(&format!("add rule ip {t} kept jump missing")), "{text}");
    assert!(text.contains("message 1 of the batch"), "{text}");
    let tbl = table(&t).await?.context("the table is still there")?;
    assert!(tbl.chains.contains_key("kept") && !tbl.chains.contains_key("new"), "nothing applied: {:?}", tbl.chains);
    Ok(())
}
