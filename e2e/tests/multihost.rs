//! The multi-host test bed (`deploy/testbed.sh`): a master and two node
//! hosts as network namespaces, each node with its own Docker engine, on an
//! underlay bridge. What one host cannot show: pods on different hosts
//! talking over the host-gw routes with no NAT, NodePorts on the nodes' own
//! addresses reached from outside the cluster, a node cut off the network
//! going NotReady and coming back, and a host whose Docker engine dies.
//! The test bed is secure by default: the first test also checks, from
//! outside the cluster, that the apiserver refuses anonymous requests and
//! that a node's kubelet API answers the apiserver only.

use anyhow::Context as _;
use rkube_e2e::TestBed;
use serde_json::Value;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(90);

fn web_pod(name: &str, node: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: web}}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: rkube/toolbox:1.0
    imagePullPolicy: Never
    command: [sh, -c, 'mkdir -p /www && echo {name} > /www/index.html && exec httpd -f -v -p 8080 -h /www']
    ports: [{{containerPort: 8080}}]
"
    )
}

fn apply(bed: &TestBed, yaml: &str) -> anyhow::Result<()> {
    let path = std::env::temp_dir().join(format!("rkube-{}-{}.yaml", bed.name(), fastrand::u32(..)));
    std::fs::write(&path, yaml)?;
    let out = bed.rkubectl(&["apply", "-f", path.to_str().context("a UTF-8 path")?]);
    let _ = std::fs::remove_file(&path);
    out.map(|_| ())
}

fn pod(bed: &TestBed, name: &str) -> anyhow::Result<Value> {
    Ok(serde_json::from_str(&bed.rkubectl(&["get", "pod", name, "-o", "json"])?)?)
}

fn running(bed: &TestBed, name: &str) -> anyhow::Result<bool> {
    Ok(pod(bed, name)?["status"]["phase"] == "Running")
}

/// `curl` from this machine (outside the cluster), the body or None.
fn curl(url: &str) -> Option<String> {
    let out = std::process::Command::new("curl").args(["-s", "-m", "3", url]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `curl ARGS` from this machine: its exit code and what it wrote
/// (`-D -` headers, body, `-w` output; stderr after them).
fn curl_raw(args: &[&str]) -> anyhow::Result<(i32, String)> {
    let out = std::process::Command::new("curl").args(["-sS", "-m", "5"]).args(args).output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    Ok((out.status.code().unwrap_or(-1), text))
}

/// The apiserver on the underlay speaks only TLS and answers an anonymous
/// client's API request with 401 (its health with 200); the kubelet API on
/// a node host fails a client without a certificate in the handshake,
/// refuses a node's own certificate (PermissionDenied) and lets the
/// apiserver's through.
fn assert_secure(bed: &TestBed) -> anyhow::Result<()> {
    let pki = bed.pki();
    let file = |name: &str| pki.join(name).display().to_string();
    let ca = file("ca.crt");
    let api = bed.api_url("master");
    let status =
        |path: &str| curl_raw(&["-o", "/dev/null", "-w", "%{http_code}", "--cacert", &ca, &format!("{api}{path}")]);
    assert_eq!(status("/readyz")?, (0, "200".to_string()), "anonymous /readyz");
    assert_eq!(status("/api/v1/namespaces/default/pods")?, (0, "401".to_string()), "anonymous list of pods");
    assert_eq!(status("/api/v1/nodes")?, (0, "401".to_string()), "anonymous list of nodes");
    let plain = curl_raw(&["-o", "/dev/null", "-w", "%{http_code}", &api.replace("https://", "http://")])?;
    assert!(plain.0 != 0 || plain.1 != "200", "plain HTTP must not reach the API: {plain:?}");

    // A gRPC call to the kubelet API (an empty Stats request).
    let kubelet = format!("https://{}:10250/rkube.v1.Kubelet/Stats", bed.node_ip(2));
    let grpc = |cert: Option<&str>| {
        let (crt, key) = cert.map(|c| (file(&format!("{c}.crt")), file(&format!("{c}.key")))).unzip();
        let mut args = vec!["--http2", "--cacert", &ca, "-D", "-", "-o", "/dev/null", "-X", "POST"];
        args.extend(["-H", "content-type: application/grpc", "-H", "te: trailers"]);
        args.extend(["--data-binary", "@/dev/null"]);
        if let (Some(crt), Some(key)) = (&crt, &key) {
            args.extend(["--cert", crt, "--key", key]);
        }
        args.push(&kubelet);
        curl_raw(&args)
    };
    let (code, out) = grpc(None)?;
    assert!(code != 0 && !out.contains("grpc-status"), "no client certificate, no kubelet API: {code} {out}");
    let (code, out) = grpc(Some("node-node-2"))?;
    assert!(code == 0 && out.contains("grpc-status: 7"), "a node's certificate is PermissionDenied: {code} {out}");
    // grpc-message is percent-encoded.
    assert!(out.replace("%20", " ").contains("only the apiserver may"), "the refusal says who may: {out}");
    let (code, out) = grpc(Some("apiserver-kubelet-client"))?;
    assert!(
        code == 0 && !out.contains("grpc-status: 7") && !out.contains("grpc-status: 16"),
        "the apiserver's certificate passes: {code} {out}"
    );
    Ok(())
}

#[tokio::test]
async fn pods_on_two_hosts_talk_without_nat_and_node_ports_answer_on_node_addresses() -> anyhow::Result<()> {
    let bed = TestBed::up(2, "")?;
    assert_secure(&bed)?;
    let nodes = bed.rkubectl(&["get", "nodes", "-o", "wide"])?;
    for i in [1, 2] {
        assert!(nodes.contains(&bed.node_ip(i)), "node InternalIPs are the underlay addresses:\n{nodes}");
    }
    apply(&bed, &web_pod("web-1", "node-1"))?;
    apply(&bed, &web_pod("web-2", "node-2"))?;
    let two = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/two-container-pod.yaml"))?;
    apply(&bed, &two)?;
    let two_name = two.lines().find_map(|l| l.trim().strip_prefix("name: ")).context("the example's name")?.to_string();
    bed.eventually("both web pods and the two-container pod Running", TIMEOUT, || {
        Ok(running(&bed, "web-1")? && running(&bed, "web-2")? && running(&bed, &two_name)?)
    })
    .await?;
    let ip = |name: &str| -> anyhow::Result<String> {
        pod(&bed, name)?["status"]["podIP"].as_str().map(str::to_string).context("a pod IP")
    };
    let (ip1, ip2) = (ip("web-1")?, ip("web-2")?);
    assert_ne!(ip1.rsplit_once('.').map(|p| p.0), ip2.rsplit_once('.').map(|p| p.0), "two hosts, two pod subnets");

    // Pod to pod across hosts: the answer comes back, and the receiver
    // logged the sender's own pod IP (no NAT on the way).
    let url = format!("http://{ip2}:8080/");
    let body = bed.rkubectl(&["exec", "web-1", "--", "wget", "-qO-", &url])?;
    assert_eq!(body.trim(), "web-2");
    let log = bed.rkubectl(&["logs", "web-2"])?;
    assert!(log.contains(&format!("[::ffff:{ip1}]:")), "web-2 saw web-1's pod IP:\n{log}");

    // A NodePort answers on each node's address, from outside the cluster,
    // with either backend behind it.
    apply(
        &bed,
        "apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
",
    )?;
    for node in [1, 2] {
        let url = format!("http://{}:30080/", bed.node_ip(node));
        let mut seen = std::collections::BTreeSet::new();
        bed.eventually(&format!("both backends through {url}"), TIMEOUT, || {
            if let Some(body) = curl(&url) {
                seen.insert(body);
            }
            Ok(seen.len() == 2)
        })
        .await?;
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["web-1", "web-2"]);
    }
    bed.down()?;
    Ok(())
}

#[tokio::test]
async fn a_node_cut_off_the_underlay_goes_not_ready_and_comes_back() -> anyhow::Result<()> {
    let bed = TestBed::up(2, "--node-monitor-grace-period=10s --node-monitor-period=1s")?;
    let ready = |node: &str| -> anyhow::Result<String> {
        let n: Value = serde_json::from_str(&bed.rkubectl(&["get", "node", node, "-o", "json"])?)?;
        let conditions = n["status"]["conditions"].as_array().cloned().unwrap_or_default();
        let ready = conditions.iter().find(|c| c["type"] == "Ready").context("a Ready condition")?;
        Ok(ready["status"].as_str().unwrap_or_default().to_string())
    };
    assert_eq!(ready("node-2")?, "True");
    let veth = bed.veth(2);
    let link = |state: &str| std::process::Command::new("ip").args(["link", "set", &veth, state]).status();
    anyhow::ensure!(link("down")?.success(), "ip link set {veth} down");
    bed.eventually("node-2 turns Unknown once its Lease stops", TIMEOUT, || Ok(ready("node-2")? == "Unknown")).await?;
    assert_eq!(ready("node-1")?, "True", "the other node is untouched");
    anyhow::ensure!(link("up")?.success(), "ip link set {veth} up");
    bed.eventually("node-2 Ready again", TIMEOUT, || Ok(ready("node-2")? == "True")).await?;

    // down twice leaves nothing behind.
    bed.down()?;
    bed.down()?;
    assert_eq!(bed.leftovers()?, Vec::<String>::new());
    Ok(())
}

#[tokio::test]
async fn a_hosts_docker_engine_killed_turns_its_node_not_ready_until_it_returns() -> anyhow::Result<()> {
    let bed = TestBed::up(1, "")?;
    let condition = || -> anyhow::Result<(String, String)> {
        let n: Value = serde_json::from_str(&bed.rkubectl(&["get", "node", "node-1", "-o", "json"])?)?;
        let conditions = n["status"]["conditions"].as_array().cloned().unwrap_or_default();
        let ready = conditions.iter().find(|c| c["type"] == "Ready").context("a Ready condition")?;
        let text = |k: &str| ready[k].as_str().unwrap_or_default().to_string();
        Ok((text("status"), text("message")))
    };
    assert_eq!(condition()?.0, "True");
    let dockerd = bed.pid("node-1", "dockerd")?;
    anyhow::ensure!(std::process::Command::new("kill").args(["-9", &dockerd.to_string()]).status()?.success());
    let mut last = (String::new(), String::new());
    bed.eventually("node-1 says its runtime is down", TIMEOUT, || {
        last = condition()?;
        Ok(last.0 == "False")
    })
    .await?;
    assert!(last.1.to_lowercase().contains("docker"), "the reason names the engine: {last:?}");
    // `up` again starts what is missing: the engine; the kubelet recovers.
    bed.up_again(1)?;
    bed.eventually("node-1 Ready again", TIMEOUT, || Ok(condition()?.0 == "True")).await?;
    bed.down()?;
    Ok(())
}
