//! Services end to end, on real Docker and the kernel's nftables, through
//! rkubectl: a ClusterIP in front of an RC's pods spread over two nodes,
//! from a pod and from the host; readiness and scaling; NodePorts; the
//! environment of later pods; rkube-proxy crashing, restarting and cleaning
//! up; and cluster DNS inside pods.
//!
//! Backends run busybox httpd with a CGI that answers `<pod name> <client
//! address>`, so every answer says which backend served it and whom it saw.

use anyhow::{Context as _, bail};
use rkube_e2e::{Cluster, Options};
use rkube_testkit::wait_for;
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(90);

/// An RC of `replicas` backends labelled `app: <name>`, serving
/// `/cgi-bin/who` on the named port `http` (8080), Ready while /tmp/ready
/// exists.
fn backends(name: &str, replicas: u32) -> String {
    format!(
        r#"apiVersion: v1
kind: ReplicationController
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{app: {name}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: httpd
        image: rkube/toolbox:1.0
        imagePullPolicy: Never
        command: [sh, -c, "mkdir -p /www/cgi-bin; echo '#!/bin/sh' > /www/cgi-bin/who; echo 'echo Content-Type: text/plain; echo; echo $HOSTNAME $REMOTE_ADDR' >> /www/cgi-bin/who; chmod +x /www/cgi-bin/who; touch /tmp/ready; exec httpd -f -p 8080 -h /www"]
        ports: [{{name: http, containerPort: 8080}}]
        readinessProbe:
          exec: {{command: [cat, /tmp/ready]}}
          periodSeconds: 1
          failureThreshold: 1
"#
    )
}

fn client_pod(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers:\n  - {{name: c, image: 'rkube/toolbox:1.0', imagePullPolicy: Never, command: [sleep, '3600']}}\n"
    )
}

fn ready(p: &Value) -> bool {
    p["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// The pods of `app`, as JSON.
fn pods_of(cluster: &Cluster, app: &str) -> anyhow::Result<Vec<Value>> {
    let out = cluster.rkubectl_ok(&["get", "pods", "-l", &format!("app={app}"), "-o", "json"])?;
    let list: Value = serde_json::from_str(&out)?;
    Ok(list["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect())
}

async fn wait_ready_pods(cluster: &Cluster, app: &str, n: usize) -> anyhow::Result<Vec<Value>> {
    let ok =
        wait_for(TIMEOUT, || async { pods_of(cluster, app).is_ok_and(|ps| ps.len() == n && ps.iter().all(ready)) })
            .await;
    if ok.is_err() {
        bail!("{app} never had {n} ready pods: {:?}\n{}", pods_of(cluster, app).map(|p| p.len()), cluster.logs());
    }
    pods_of(cluster, app)
}

fn name_of(p: &Value) -> String {
    p["metadata"]["name"].as_str().unwrap_or_default().to_string()
}

/// One answer of the CGI: (backend pod name, client address without the
/// IPv4-mapped prefix).
fn parse_who(body: &str) -> Option<(String, String)> {
    let mut words = body.split_whitespace();
    let name = words.next()?.to_string();
    let addr = words.next()?.trim_start_matches("[::ffff:").trim_end_matches(']').to_string();
    Some((name, addr))
}

/// A GET from this host, failing rather than hanging after 3 s.
async fn host_get(url: &str) -> anyhow::Result<String> {
    let (code, body) =
        tokio::time::timeout(Duration::from_secs(3), rkube_testkit::http_get(url)).await.context("timed out")??;
    if code != 200 {
        bail!("{url}: HTTP {code}");
    }
    Ok(body)
}

/// `n` requests from pod `client` to `url`, one answer per line.
fn pod_gets(cluster: &Cluster, client: &str, url: &str, n: usize) -> anyhow::Result<Vec<(String, String)>> {
    let script = format!("for i in $(seq 1 {n}); do timeout 5 wget -qO- {url}; done");
    let out = cluster.rkubectl_ok(&["exec", client, "--", "sh", "-c", &script])?;
    Ok(out.lines().filter_map(parse_who).collect())
}

fn service_field(cluster: &Cluster, name: &str, pointer: &str) -> anyhow::Result<Value> {
    let svc: Value = serde_json::from_str(&cluster.rkubectl_ok(&["get", "svc", name, "-o", "json"])?)?;
    svc.pointer(pointer).cloned().with_context(|| format!("service {name} has no {pointer}"))
}

fn nft_table(table: &str) -> Option<String> {
    let out = Command::new("nft").args(["list", "table", "ip", table]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether `text` names the address `ip` itself, not merely a longer one
/// it begins (10.248.5.2 in 10.248.5.23: ClusterIPs share a /24 here).
fn mentions_ip(text: &str, ip: &str) -> bool {
    text.match_indices(ip).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + ip.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_digit() || c == '.') && !after.is_some_and(|c| c.is_ascii_digit())
    })
}

#[test]
fn an_address_is_not_mentioned_by_a_longer_one() {
    let table = "ip daddr 10.248.5.23 tcp dport 80 jump svc\nip daddr 10.248.5.2 . 81";
    assert!(mentions_ip(table, "10.248.5.2"));
    assert!(!mentions_ip("ip daddr 10.248.5.23 tcp dport 80", "10.248.5.2"));
    assert!(!mentions_ip("ip daddr 110.248.5.2 tcp", "10.248.5.2"));
}

#[tokio::test]
async fn a_cluster_ip_balances_over_ready_pods_on_both_nodes() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(Options { nodes: 2, proxy: true, ..Options::default() }).await?;
    cluster.create(&backends("web", 3))?;
    cluster.rkubectl_ok(&["expose", "rc", "web", "--port", "80", "--target-port", "http"])?;
    let pods = wait_ready_pods(&cluster, "web", 3).await?;
    let nodes: BTreeSet<String> =
        pods.iter().map(|p| p["spec"]["nodeName"].as_str().unwrap_or_default().to_string()).collect();
    assert_eq!(nodes.len(), 2, "the replicas spread over both nodes: {nodes:?}");
    let names: BTreeSet<String> = pods.iter().map(name_of).collect();
    let ip = service_field(&cluster, "web", "/spec/clusterIP")?.as_str().unwrap_or_default().to_string();
    let url = format!("http://{ip}:80/cgi-bin/who");
    wait_for(TIMEOUT, || async {
        cluster
            .rkubectl_ok(&["get", "endpoints", "web"])
            .is_ok_and(|out| out.matches(":8080").count() >= 3 || out.contains("+ "))
    })
    .await
    .context("the endpoints never listed three pods")?;

    // From a pod: every backend answers, and each sees the client pod's own IP.
    cluster.create(&client_pod("client"))?;
    let client = cluster.wait_pod("client", TIMEOUT, ready).await?;
    let client_ip = client["status"]["podIP"].as_str().unwrap_or_default().to_string();
    let answers = pod_gets(&cluster, "client", &url, 40)?;
    let served: BTreeSet<String> = answers.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(served, names, "all three backends answer through the ClusterIP: {answers:?}");
    assert!(
        answers.iter().all(|(_, addr)| *addr == client_ip),
        "backends see the client pod's IP {client_ip}: {answers:?}"
    );

    // From the host as well.
    let mut served = BTreeSet::new();
    for _ in 0..40 {
        served.insert(parse_who(&host_get(&url).await?).context("an answer")?.0);
    }
    assert_eq!(served, names, "all three backends answer the host");

    // A backend whose readiness probe fails takes no traffic; it is back
    // once the probe passes.
    let sick = names.iter().next().context("a backend")?.clone();
    cluster.rkubectl_ok(&["exec", &sick, "--", "rm", "/tmp/ready"])?;
    cluster.wait_pod(&sick, TIMEOUT, |p| !ready(p)).await?;
    wait_for(TIMEOUT, || async {
        cluster.rkubectl_ok(&["get", "endpoints", "web", "-o", "json"]).is_ok_and(|e| e.contains("notReadyAddresses"))
    })
    .await
    .context("the unready backend stayed in the ready set")?;
    // The rules follow the Endpoints within moments; then no answer comes from it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for _ in 0..30 {
        let (name, _) = parse_who(&host_get(&url).await?).context("an answer")?;
        assert_ne!(name, sick, "an unready backend answered");
    }
    cluster.rkubectl_ok(&["exec", &sick, "--", "touch", "/tmp/ready"])?;
    wait_for(TIMEOUT, || async {
        for _ in 0..10 {
            if host_get(&url).await.is_ok_and(|b| b.starts_with(&format!("{sick} "))) {
                return true;
            }
        }
        false
    })
    .await
    .context("the recovered backend never answered again")?;

    // Scaled to one: traffic goes to the survivor only.
    cluster.rkubectl_ok(&["scale", "rc", "web", "--replicas=1"])?;
    let scaled = Instant::now();
    let survivor = loop {
        let left = pods_of(&cluster, "web")?;
        if left.len() == 1 {
            break name_of(&left[0]);
        }
        if scaled.elapsed() > TIMEOUT {
            bail!("the RC never scaled down");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    wait_for(TIMEOUT, || async {
        let mut all = true;
        for _ in 0..10 {
            all &= host_get(&url).await.is_ok_and(|b| b.starts_with(&format!("{survivor} ")));
        }
        all
    })
    .await
    .context("removed backends kept taking traffic")?;
    eprintln!("scaled to 1: only the survivor answers {:?} after the scale command", scaled.elapsed());

    // A later pod sees the Service in its environment.
    cluster.create(&client_pod("later"))?;
    cluster.wait_pod("later", TIMEOUT, ready).await?;
    let env = cluster.rkubectl_ok(&["exec", "later", "--", "env"])?;
    assert!(env.lines().any(|l| l == format!("WEB_SERVICE_HOST={ip}")), "{env}");
    assert!(env.lines().any(|l| l == "WEB_SERVICE_PORT=80"), "{env}");
    assert!(env.lines().any(|l| l == format!("WEB_PORT=tcp://{ip}:80")), "{env}");
    assert!(env.lines().any(|l| l == format!("WEB_PORT_80_TCP_ADDR={ip}")), "{env}");
    Ok(())
}

#[tokio::test]
async fn node_ports_no_endpoints_deletion_and_proxy_restarts() -> anyhow::Result<()> {
    let mut cluster = Cluster::start_with(Options { nodes: 1, proxy: true, ..Options::default() }).await?;
    let table = cluster.slot.proxy_table();
    cluster.create(&backends("np", 1))?;
    cluster.rkubectl_ok(&["expose", "rc", "np", "--port", "80", "--target-port", "8080", "--type", "NodePort"])?;
    let pod = name_of(&wait_ready_pods(&cluster, "np", 1).await?[0]);
    let node_port = service_field(&cluster, "np", "/spec/ports/0/nodePort")?.as_i64().context("a node port")?;
    let ip = service_field(&cluster, "np", "/spec/clusterIP")?.as_str().unwrap_or_default().to_string();

    // The NodePort answers on the node's address (127.0.0.1 here).
    let node_url = format!("http://127.0.0.1:{node_port}/cgi-bin/who");
    let answered =
        wait_for(TIMEOUT, || async { host_get(&node_url).await.is_ok_and(|b| b.starts_with(&format!("{pod} "))) })
            .await;
    if answered.is_err() {
        bail!(
            "the NodePort {node_port} never answered: {:?}\n{:?}\n{}",
            host_get(&node_url).await,
            nft_table(&table),
            cluster.logs()
        );
    }

    // A Service with no ready endpoint refuses at once rather than hanging.
    cluster.create("apiVersion: v1\nkind: Service\nmetadata: {name: empty}\nspec:\n  selector: {app: nothing}\n  ports: [{port: 80}]\n")?;
    let empty_ip = service_field(&cluster, "empty", "/spec/clusterIP")?.as_str().unwrap_or_default().to_string();
    wait_for(TIMEOUT, || async { nft_table(&table).is_some_and(|t| mentions_ip(&t, &empty_ip)) })
        .await
        .context("the empty service was never programmed")?;
    let started = Instant::now();
    let refused =
        tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect((empty_ip.as_str(), 80))).await;
    match refused {
        Ok(Err(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}"),
        Ok(Ok(_)) => bail!("a service without endpoints accepted a connection"),
        Err(_) => bail!("a service without endpoints left the client hanging"),
    }
    eprintln!("no-endpoint service refused in {:?}", started.elapsed());

    // rkube-proxy killed: the kernel keeps the rules and traffic flows.
    cluster.kill("proxy")?;
    let cluster_url = format!("http://{ip}:80/cgi-bin/who");
    assert!(host_get(&cluster_url).await?.starts_with(&format!("{pod} ")));
    // A Service created while it is down is programmed when it is back,
    // and one deleted meanwhile leaves the kernel.
    cluster.rkubectl_ok(&["expose", "rc", "np", "--name", "np2", "--port", "81", "--target-port", "8080"])?;
    cluster.rkubectl_ok(&["delete", "svc", "empty"])?;
    let ip2 = service_field(&cluster, "np2", "/spec/clusterIP")?.as_str().unwrap_or_default().to_string();
    cluster.restart("proxy")?;
    let url2 = format!("http://{ip2}:81/cgi-bin/who");
    wait_for(TIMEOUT, || async { host_get(&url2).await.is_ok_and(|b| b.starts_with(&format!("{pod} "))) })
        .await
        .context("a service made while the proxy was down never answered")?;
    wait_for(TIMEOUT, || async { nft_table(&table).is_some_and(|t| !mentions_ip(&t, &empty_ip)) }).await.with_context(
        || format!("a service deleted while the proxy was down kept its rules ({empty_ip}):\n{:?}", nft_table(&table)),
    )?;

    // Deleting a Service removes its rules: its NodePort stops answering.
    cluster.rkubectl_ok(&["delete", "svc", "np"])?;
    wait_for(TIMEOUT, || async {
        nft_table(&table).is_some_and(|t| !mentions_ip(&t, &ip) && !t.contains(&format!(" {node_port} ")))
    })
    .await
    .with_context(|| format!("the deleted service's rules stayed ({ip}):\n{:?}", nft_table(&table)))?;
    assert!(host_get(&node_url).await.is_err(), "a deleted NodePort still answers");

    // --cleanup removes the table.
    cluster.kill("proxy")?;
    let proxy = rkube_e2e::bin_dir().join("rkube-proxy");
    let status = Command::new(proxy).args(["--cleanup", "--table", &table]).status()?;
    assert!(status.success());
    assert_eq!(nft_table(&table), None, "the table outlived --cleanup");
    Ok(())
}

#[tokio::test]
async fn cluster_dns_answers_inside_pods() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(Options { nodes: 1, proxy: true, dns: true, ..Options::default() }).await?;
    let dns_ip = cluster.slot.dns_ip();
    cluster.create(&backends("named", 2))?;
    cluster.rkubectl_ok(&["expose", "rc", "named", "--port", "80", "--target-port", "8080"])?;
    cluster.create(
        "apiVersion: v1\nkind: Service\nmetadata: {name: headless}\nspec:\n  clusterIP: None\n  selector: {app: named}\n  ports: [{name: http, port: 80, targetPort: 8080}]\n",
    )?;
    let pods = wait_ready_pods(&cluster, "named", 2).await?;
    let pod_ips: BTreeSet<String> =
        pods.iter().map(|p| p["status"]["podIP"].as_str().unwrap_or_default().to_string()).collect();
    let ip = service_field(&cluster, "named", "/spec/clusterIP")?.as_str().unwrap_or_default().to_string();
    cluster.create(&client_pod("asker"))?;
    cluster.wait_pod("asker", TIMEOUT, ready).await?;

    // The pod's resolv.conf points at the cluster DNS with the search path.
    let resolv = cluster.rkubectl_ok(&["exec", "asker", "--", "cat", "/etc/resolv.conf"])?;
    assert!(resolv.contains(&format!("nameserver {dns_ip}")), "{resolv}");
    assert!(resolv.contains("search default.svc.cluster.local svc.cluster.local cluster.local"), "{resolv}");
    assert!(resolv.contains("options ndots:5"), "{resolv}");

    let lookup = |name: &str| cluster.rkubectl_ok(&["exec", "asker", "--", "nslookup", name]);
    // The full name and the short one (through the search path) give the ClusterIP.
    let full = lookup("named.default.svc.cluster.local")?;
    assert!(full.contains(&format!("Address: {ip}")), "{full}");
    // busybox's nslookup tries every search domain and fails if one does
    // not answer, so read what it printed.
    let out = cluster.rkubectl(&["exec", "asker", "--", "nslookup", "named"])?;
    let short = String::from_utf8_lossy(&out.stdout);
    assert!(short.contains("named.default.svc.cluster.local") && short.contains(&format!("Address: {ip}")), "{short}");
    // The apiserver's own Service.
    let api = lookup("kubernetes.default.svc.cluster.local")?;
    assert!(api.contains(&format!("Address: {}", cluster.slot.service_range().replace(".0/24", ".1"))), "{api}");
    // A headless Service gives its ready pods' IPs.
    let headless = lookup("headless.default.svc.cluster.local")?;
    for pod_ip in &pod_ips {
        assert!(headless.contains(&format!("Address: {pod_ip}")), "{headless}");
    }
    // A name that does not exist is NXDOMAIN, not a hang or a crash.
    let missing = cluster.rkubectl(&["exec", "asker", "--", "nslookup", "nothing.default.svc.cluster.local"])?;
    let text = format!("{}{}", String::from_utf8_lossy(&missing.stdout), String::from_utf8_lossy(&missing.stderr));
    assert!(text.contains("NXDOMAIN") || text.contains("can't find"), "{text}");
    Ok(())
}
