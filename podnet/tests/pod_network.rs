//! Pod networks on the real Docker and the real kernel: two fake nodes on
//! this host, each with its own network, pods reaching each other by IP
//! with their real source address; idempotent rules; host-gw routes;
//! complete teardown.
//!
//! Everything created is named `rkube-test-*` (containers also carry the
//! label `io.rkube.test=true`) and is removed after each test, even when it
//! fails. Each test uses its own cluster CIDR (10.250/16, 10.251/16) with
//! random /24s, so tests running at once never share a subnet or a route.

use anyhow::{Context as _, bail, ensure};
use bollard::Docker;
use rkube_podnet::{Peer, PodNetwork};
use std::future::Future;
use std::net::IpAddr;
use std::time::{Duration, Instant};

const IMAGE: &str = "rkube/toolbox:1.0";

/// Serves /var/www on :8080 with `/cgi-bin/peer` answering the client's
/// address as the server sees it.
const SERVER: &str = "mkdir -p /var/www/cgi-bin && \
    printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\n' >/var/www/cgi-bin/peer && \
    chmod +x /var/www/cgi-bin/peer && exec httpd -f -v -p 8080 -h /var/www";

async fn sh(cmd: &str, args: &[&str]) -> anyhow::Result<std::process::Output> {
    tokio::process::Command::new(cmd).args(args).output().await.with_context(|| format!("running {cmd}"))
}

/// Runs a command that must succeed; returns its stdout.
async fn stdout_of(cmd: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = sh(cmd, args).await?;
    ensure!(out.status.success(), "{cmd} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn docker() -> anyhow::Result<Docker> {
    let docker = Docker::connect_with_local_defaults()?.negotiate_version().await?;
    if sh("docker", &["image", "inspect", IMAGE]).await.map(|o| o.status.success()).ok() != Some(true) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../images/build.sh");
        stdout_of("bash", &[script]).await.context("building the test images with images/build.sh")?;
    }
    Ok(docker)
}

/// Polls `f` every 200 ms until it returns Ok or `timeout` passes.
async fn retry<T, Fut: Future<Output = anyhow::Result<T>>>(
    timeout: Duration,
    mut f: impl FnMut() -> Fut,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= deadline => return Err(e.context(format!("still failing after {timeout:?}"))),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Names for one test run, and the clean-up of everything they name.
struct Run {
    suffix: String,
    cluster: String,
    /// The /24s' third octets, distinct.
    octets: Vec<u8>,
}

impl Run {
    fn new(cluster_second_octet: u8, subnets: usize) -> Run {
        let mut octets: Vec<u8> = Vec::new();
        while octets.len() < subnets {
            let o = fastrand::u8(1..=254);
            if !octets.contains(&o) {
                octets.push(o);
            }
        }
        Run {
            suffix: format!("{:06x}", fastrand::u32(..0xff_ffff)),
            cluster: format!("10.{cluster_second_octet}.0.0/16"),
            octets,
        }
    }

    fn node(&self, i: usize) -> String {
        format!("test-{}-{i}", self.suffix)
    }

    fn pod_cidr(&self, i: usize) -> String {
        let second = self.cluster.split('.').nth(1).expect("a dotted cluster CIDR");
        format!("10.{second}.{}.0/24", self.octets[i])
    }

    fn container(&self, i: usize) -> String {
        format!("rkube-test-{}-pod{i}", self.suffix)
    }

    /// Removes the run's containers, networks, rules and routes, whatever
    /// state the test left them in.
    async fn clean_up(&self) {
        for i in 0..self.octets.len() {
            let _ = sh("docker", &["rm", "-f", &self.container(i)]).await;
        }
        for i in 0..self.octets.len() {
            let node = self.node(i);
            let _ = sh("docker", &["network", "rm", &format!("rkube-{node}")]).await;
            for (table, chain) in [("filter", "RKUBE-FORWARD"), ("nat", "RKUBE-POSTROUTING")] {
                let Ok(rules) = stdout_of("iptables", &["-w", "-t", table, "-S", chain]).await else { continue };
                for rule in rules.lines().filter(|l| l.contains(&format!("node {node}\""))) {
                    let delete = format!("iptables -w -t {table} {}", rule.replacen("-A ", "-D ", 1));
                    let _ = sh("sh", &["-c", &delete]).await;
                }
            }
        }
        for chain in rkube_podnet::rules::chains() {
            let _ = rkube_podnet::rules::remove_chain_if_empty(&chain).await;
        }
        if let Ok(routes) = stdout_of("ip", &["-4", "route", "show", "proto", "157"]).await {
            let prefix = format!("10.{}.", self.cluster.split('.').nth(1).unwrap_or_default());
            for route in routes.lines().filter(|r| r.starts_with(&prefix)) {
                let _ = sh("sh", &["-c", &format!("ip -4 route del {route}")]).await;
            }
        }
    }

    /// Runs `body`, then cleans up (also when `body` fails or panics).
    async fn guard<F>(self, body: impl FnOnce(std::sync::Arc<Run>) -> F) -> anyhow::Result<()>
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let run = std::sync::Arc::new(self);
        let outcome = tokio::spawn(body(run.clone())).await;
        run.clean_up().await;
        match outcome {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic.into_panic()),
        }
    }
}

async fn start_pod(run: &Run, i: usize, net: &PodNetwork) -> anyhow::Result<IpAddr> {
    let name = run.container(i);
    docker_cli(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        "io.rkube.test=true",
        "--network",
        net.docker_network(),
        IMAGE,
        "sh",
        "-c",
        SERVER,
    ])
    .await?;
    let format = format!("{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}", net.docker_network());
    let ip = docker_cli(&["inspect", "-f", &format, &name]).await?;
    ip.trim().parse().with_context(|| format!("container {name} has no IP on {}: {ip:?}", net.docker_network()))
}

fn cidr(s: &str) -> anyhow::Result<rkube_api::cidr::Ipv4Cidr> {
    s.parse().map_err(anyhow::Error::msg)
}

async fn docker_cli(args: &[&str]) -> anyhow::Result<String> {
    stdout_of("docker", args).await
}

/// `wget` from inside `container`, given 5 s (busybox-static's own `wget -T`
/// crashes).
async fn fetch(container: String, url: String) -> anyhow::Result<String> {
    docker_cli(&["exec", &container, "timeout", "5", "wget", "-qO-", &url]).await
}

/// Lines of `iptables -S <chain>` naming `node`.
async fn node_rule_count(table: &str, chain: &str, node: &str) -> usize {
    let rules = stdout_of("iptables", &["-w", "-t", table, "-S", chain]).await.unwrap_or_default();
    rules.lines().filter(|l| l.contains(&format!("node {node}\""))).count()
}

async fn jump_count(table: &str, from: &str, to: &str) -> anyhow::Result<usize> {
    let rules = stdout_of("iptables", &["-w", "-t", table, "-S", from]).await?;
    Ok(rules.lines().filter(|l| l.ends_with(&format!("-j {to}"))).count())
}

#[tokio::test]
async fn pods_on_two_nodes_reach_each_other_by_ip_and_see_the_real_source() -> anyhow::Result<()> {
    let docker = docker().await?;
    Run::new(250, 2)
        .guard(|run| async move {
            let a = PodNetwork::ensure(&docker, &run.node(0), &run.pod_cidr(0), &run.cluster).await?;
            let b = PodNetwork::ensure(&docker, &run.node(1), &run.pod_cidr(1), &run.cluster).await?;
            assert_eq!(a.docker_network(), format!("rkube-{}", run.node(0)));
            assert_eq!(b.pod_cidr(), run.pod_cidr(1));

            let ip_a = start_pod(&run, 0, &a).await?;
            let ip_b = start_pod(&run, 1, &b).await?;
            let (IpAddr::V4(v4a), IpAddr::V4(v4b)) = (ip_a, ip_b) else { bail!("IPv4 pod IPs expected") };
            assert!(cidr(&run.pod_cidr(0))?.contains(v4a), "{ip_a} not in {}", a.pod_cidr());
            assert!(cidr(&run.pod_cidr(1))?.contains(v4b), "{ip_b} not in {}", b.pod_cidr());

            // Across the two bridges (Docker alone would drop this in DOCKER-ISOLATION-STAGE-2).
            let page = retry(Duration::from_secs(20), || fetch(run.container(0), format!("http://{ip_b}:8080/")))
                .await
                .context("pod on node 0 fetching from pod on node 1")?;
            assert!(page.contains("rkube toolbox"), "{page}");

            // No NAT between pods: each server sees the other pod's own IP.
            let seen_by_b = fetch(run.container(0), format!("http://{ip_b}:8080/cgi-bin/peer")).await?;
            assert!(seen_by_b.contains(&format!(":{ip_a}]")), "node 1's pod saw {seen_by_b:?}, not {ip_a}");
            let seen_by_a =
                retry(Duration::from_secs(20), || fetch(run.container(1), format!("http://{ip_a}:8080/cgi-bin/peer")))
                    .await
                    .context("pod on node 1 fetching from pod on node 0")?;
            assert!(seen_by_a.contains(&format!(":{ip_b}]")), "node 0's pod saw {seen_by_a:?}, not {ip_b}");
            let log = stdout_of("sh", &["-c", &format!("docker logs {} 2>&1", run.container(1))]).await?;
            assert!(log.contains(&format!(":{ip_a}]")), "httpd log of node 1's pod lacks {ip_a}: {log}");

            // Both nodes are on this host: no routes needed.
            let local_ip: IpAddr = "127.0.0.1".parse()?;
            let peers = [
                Peer { node: run.node(0), pod_cidr: run.pod_cidr(0), node_ip: local_ip },
                Peer { node: run.node(1), pod_cidr: run.pod_cidr(1), node_ip: local_ip },
            ];
            a.sync_routes(&peers).await?;
            let routes = stdout_of("ip", &["-4", "route", "show", "proto", "157"]).await?;
            assert!(!routes.contains(&run.pod_cidr(1)), "{routes}");

            docker_cli(&["rm", "-f", &run.container(0), &run.container(1)]).await?;
            a.teardown(&docker).await?;
            b.teardown(&docker).await?;
            for i in 0..2 {
                let inspect = sh("docker", &["network", "inspect", &format!("rkube-{}", run.node(i))]).await?;
                assert!(!inspect.status.success(), "network of node {i} still exists");
                assert_eq!(node_rule_count("filter", "RKUBE-FORWARD", &run.node(i)).await, 0);
                assert_eq!(node_rule_count("nat", "RKUBE-POSTROUTING", &run.node(i)).await, 0);
            }
            Ok(())
        })
        .await
}

#[tokio::test]
async fn ensure_is_idempotent_routes_sync_and_teardown_removes_everything() -> anyhow::Result<()> {
    let docker = docker().await?;
    Run::new(251, 3)
        .guard(|run| async move {
            let (node, pod_cidr) = (run.node(0), run.pod_cidr(0));
            let a = PodNetwork::ensure(&docker, &node, &pod_cidr, &run.cluster).await?;
            let id = |n: String| async move { docker_cli(&["network", "inspect", "-f", "{{.Id}}", &n]).await };
            let first_id = id(a.docker_network().to_string()).await?;
            let again = PodNetwork::ensure(&docker, &node, &pod_cidr, &run.cluster).await?;
            assert_eq!(again, a);
            assert_eq!(id(a.docker_network().to_string()).await?, first_id, "the network is adopted, not recreated");
            assert_eq!(node_rule_count("filter", "RKUBE-FORWARD", &node).await, 2, "no duplicate forward rules");
            assert_eq!(node_rule_count("nat", "RKUBE-POSTROUTING", &node).await, 1, "no duplicate nat rule");
            assert_eq!(jump_count("filter", "DOCKER-USER", "RKUBE-FORWARD").await?, 1);
            assert_eq!(jump_count("nat", "POSTROUTING", "RKUBE-POSTROUTING").await?, 1);
            let masquerade = stdout_of("iptables", &["-w", "-t", "nat", "-S", "RKUBE-POSTROUTING"]).await?;
            assert!(
                masquerade.contains(&format!("-s {pod_cidr} ! -d {} ", run.cluster))
                    && masquerade.contains("MASQUERADE"),
                "{masquerade}"
            );
            let options = docker_cli(&["network", "inspect", "-f", "{{json .Options}}", a.docker_network()]).await?;
            assert!(options.contains("\"com.docker.network.bridge.enable_ip_masquerade\":\"false\""), "{options}");
            let link = stdout_of("ip", &["link", "show", a.bridge()]).await?;
            assert!(link.contains(a.bridge()), "{link}");

            // An unused network that does not fit is replaced.
            let b_node = run.node(1);
            docker_cli(&["network", "create", "--subnet", &run.pod_cidr(2), &format!("rkube-{b_node}")]).await?;
            let b = PodNetwork::ensure(&docker, &b_node, &run.pod_cidr(1), &run.cluster).await?;
            let subnet =
                docker_cli(&["network", "inspect", "-f", "{{(index .IPAM.Config 0).Subnet}}", b.docker_network()])
                    .await?;
            assert_eq!(subnet.trim(), run.pod_cidr(1));

            // host-gw: a peer on another host (its InternalIP an unused address on
            // node 1's bridge, a directly connected network) gets a route; one
            // that disappears loses it.
            let remote_cidr = run.pod_cidr(2);
            let remote_ip = IpAddr::V4(cidr(&run.pod_cidr(1))?.nth(200).context("a /24 has a .200")?);
            let peers = [
                Peer { node: node.clone(), pod_cidr: pod_cidr.clone(), node_ip: "127.0.0.1".parse()? },
                Peer { node: "test-remote".into(), pod_cidr: remote_cidr.clone(), node_ip: remote_ip },
            ];
            a.sync_routes(&peers).await?;
            let route = stdout_of("ip", &["-4", "route", "show", &remote_cidr]).await?;
            assert!(route.contains(&format!("via {remote_ip}")) && route.contains("proto 157"), "{route:?}");
            a.sync_routes(&peers).await?;
            let routes = stdout_of("ip", &["-4", "route", "show", "proto", "157"]).await?;
            assert_eq!(routes.matches(&remote_cidr).count(), 1, "{routes}");
            a.sync_routes(&peers[..1]).await?;
            assert_eq!(
                stdout_of("ip", &["-4", "route", "show", &remote_cidr]).await?.trim(),
                "",
                "stale route removed"
            );

            // Teardown: the last network of the cluster also takes its routes.
            a.sync_routes(&peers).await?;
            a.teardown(&docker).await?;
            assert_eq!(node_rule_count("filter", "RKUBE-FORWARD", &node).await, 0);
            assert_eq!(node_rule_count("nat", "RKUBE-POSTROUTING", &node).await, 0);
            assert!(
                !stdout_of("ip", &["-4", "route", "show", &remote_cidr]).await?.is_empty(),
                "node 1 still needs routes"
            );
            b.teardown(&docker).await?;
            assert_eq!(stdout_of("ip", &["-4", "route", "show", &remote_cidr]).await?.trim(), "");
            for i in 0..2 {
                let inspect = sh("docker", &["network", "inspect", &format!("rkube-{}", run.node(i))]).await?;
                assert!(!inspect.status.success(), "network of node {i} still exists");
            }
            Ok(())
        })
        .await
}
