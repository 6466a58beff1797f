//! The walkthrough's pods on a whole cluster of real binaries: two nodes
//! join and go Ready with their own pod subnets, pods are scheduled and run on
//! Docker with one IP per pod, pods reach each other across nodes, and
//! nodeSelector follows `rkubectl label nodes`.

use rkube_api::cidr::Ipv4Cidr;
use rkube_e2e::Cluster;
use serde_json::Value;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(90);

fn running(p: &Value) -> bool {
    p["status"]["phase"] == "Running"
        && p["status"]["containerStatuses"].as_array().is_some_and(|cs| cs.iter().all(|c| c["ready"] == true))
}

fn in_subnet(ip: &str, cidr: &str) -> bool {
    let cidr: Ipv4Cidr = cidr.parse().expect("a CIDR");
    cidr.contains(ip.parse().expect("an IPv4 address"))
}

#[tokio::test]
async fn nodes_join_pods_run_and_node_selectors_follow_labels() -> anyhow::Result<()> {
    let cluster = Cluster::start(2).await?;

    // Both nodes are Ready, on Docker, each with its own subnet of the cluster CIDR.
    let table = cluster.rkubectl_ok(&["get", "nodes"])?;
    for node in &cluster.nodes {
        let row = table.lines().find(|l| l.starts_with(node.as_str())).expect("a row per node");
        assert!(row.contains(" Ready "), "{table}");
    }
    let nodes: Value = serde_json::from_str(&cluster.rkubectl_ok(&["get", "nodes", "-o", "json"])?)?;
    let mut cidrs = Vec::new();
    for n in nodes["items"].as_array().expect("items") {
        let cidr = n["spec"]["podCIDR"].as_str().expect("a podCIDR").to_string();
        assert!(in_subnet(cidr.split('/').next().expect("net"), &cluster.cluster_cidr), "{cidr}");
        assert!(
            n["status"]["nodeInfo"]["containerRuntimeVersion"].as_str().is_some_and(|v| v.starts_with("docker://"))
        );
        cidrs.push(cidr);
    }
    cidrs.dedup();
    assert_eq!(cidrs.len(), 2, "each node has its own subnet");

    // The walkthrough's two-container pod: scheduled, Running, 2/2, one IP.
    cluster.create(include_str!("../../examples/two-container-pod.yaml"))?;
    let pod = cluster.wait_pod("redis-php", TIMEOUT, running).await?;
    let node = pod["spec"]["nodeName"].as_str().expect("scheduled").to_string();
    let ip = pod["status"]["podIP"].as_str().expect("a pod IP").to_string();
    let node_cidr = nodes["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|n| n["metadata"]["name"] == node.as_str())
        .and_then(|n| n["spec"]["podCIDR"].as_str())
        .expect("the node's podCIDR")
        .to_string();
    assert!(in_subnet(&ip, &node_cidr), "pod IP {ip} is not in {node}'s {node_cidr}");
    let pods = cluster.rkubectl_ok(&["get", "pods"])?;
    let row = pods.lines().find(|l| l.starts_with("redis-php")).expect("a row");
    assert!(row.contains("2/2") && row.contains("Running"), "{pods}");

    // nodeSelector: nothing matches → Pending with the scheduler's reason;
    // after labelling a node, a matching pod lands there.
    cluster.create(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: south}\nspec:\n  nodeSelector: {zone: south}\n  containers:\n  - {name: c, image: 'rkube/toolbox:1.0', imagePullPolicy: Never, command: [sleep, '3600']}\n",
    )?;
    let south = cluster
        .wait_pod("south", TIMEOUT, |p| {
            p["status"]["conditions"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(|c| c["type"] == "PodScheduled" && c["status"] == "False"))
        })
        .await?;
    let message = south["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "PodScheduled"))
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(message.starts_with("0/2 nodes are available"), "{message}");
    assert!(message.contains("didn't match Pod's node affinity/selector"), "{message}");

    let target = cluster.nodes[1].clone();
    cluster.rkubectl_ok(&["label", "nodes", &target, "zone=north"])?;
    cluster.create(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: north}\nspec:\n  nodeSelector: {zone: north}\n  containers:\n  - {name: c, image: 'rkube/toolbox:1.0', imagePullPolicy: Never, command: [sleep, '3600']}\n",
    )?;
    let north = cluster.wait_pod("north", TIMEOUT, running).await?;
    assert_eq!(north["spec"]["nodeName"], target.as_str());

    // Deleting a pod removes its containers.
    cluster.rkubectl_ok(&["delete", "pod", "redis-php", "--grace-period=1"])?;
    let gone = cluster.rkubectl(&["get", "pod", "redis-php"])?;
    assert!(!gone.status.success(), "the pod is gone from the API");
    let left = std::process::Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            "label=io.rkube.pod.name=redis-php",
            "--filter",
            &format!("label=io.rkube.node={node}"),
        ])
        .output()?;
    assert!(String::from_utf8_lossy(&left.stdout).trim().is_empty(), "containers of a deleted pod remain");
    Ok(())
}

#[tokio::test]
async fn pods_on_different_nodes_reach_each_other_by_pod_ip() -> anyhow::Result<()> {
    let cluster = Cluster::start(2).await?;
    let (a, b) = (cluster.nodes[0].clone(), cluster.nodes[1].clone());
    cluster.create(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: server}}\nspec:\n  nodeSelector: {{kubernetes.io/hostname: {a}}}\n  containers:\n  - name: httpd\n    image: rkube/toolbox:1.0\n    imagePullPolicy: Never\n    command: [sh, -c, 'mkdir -p /www && echo pong > /www/index.html && httpd -f -p 8080 -h /www']\n"
    ))?;
    let server = cluster.wait_pod("server", TIMEOUT, running).await?;
    assert_eq!(server["spec"]["nodeName"], a.as_str());
    let ip = server["status"]["podIP"].as_str().expect("a pod IP").to_string();

    cluster.create(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: client}}\nspec:\n  restartPolicy: Never\n  nodeSelector: {{kubernetes.io/hostname: {b}}}\n  containers:\n  - name: wget\n    image: rkube/toolbox:1.0\n    imagePullPolicy: Never\n    command: [sh, -c, 'for i in 1 2 3 4 5 6 7 8 9 10; do out=$(timeout 3 wget -qO- http://{ip}:8080/) && [ \"$out\" = pong ] && exit 0; sleep 1; done; exit 1']\n"
    ))?;
    let client = cluster
        .wait_pod("client", TIMEOUT, |p| matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")))
        .await?;
    assert_eq!(client["spec"]["nodeName"], b.as_str());
    assert_eq!(client["status"]["phase"], "Succeeded", "the pod on {b} could not fetch from {ip} on {a}");
    Ok(())
}

#[tokio::test]
async fn logs_exec_and_static_pods_work_through_the_apiserver() -> anyhow::Result<()> {
    let cluster = Cluster::start(2).await?;

    // logs -c and exec -c of the two-container pod, relayed by the apiserver.
    cluster.create(include_str!("../../examples/emptydir-logs-pod.yaml"))?;
    cluster.wait_pod("volume-pod", TIMEOUT, running).await?;
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let logs = cluster.rkubectl_ok(&["logs", "volume-pod", "-c", "reader"])?;
        if logs.contains("line 1") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the reader never showed the writer's lines: {logs:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let ls = cluster.rkubectl_ok(&["exec", "volume-pod", "-c", "writer", "--", "ls", "/logs"])?;
    assert_eq!(ls.trim(), "app.log");
    let failed =
        cluster.rkubectl(&["exec", "volume-pod", "-c", "writer", "--", "sh", "-c", "echo oops >&2; exit 7"])?;
    assert_eq!(failed.status.code(), Some(7), "exec's exit code becomes rkubectl's");
    assert_eq!(String::from_utf8_lossy(&failed.stderr).trim(), "oops");

    // A static pod: run from the node's manifest directory, mirrored into the
    // API as <name>-<node>; deleting the mirror does not stop it.
    let node = cluster.nodes[0].clone();
    let manifest = cluster.manifests_dir(0).join("static-web.yaml");
    std::fs::write(&manifest, include_str!("../../examples/static-pod.yaml"))?;
    let mirror_name = format!("static-web-{node}");
    let mirror = cluster.wait_pod(&mirror_name, TIMEOUT, running).await?;
    assert!(mirror["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_string(), "{mirror}");
    assert_eq!(mirror["spec"]["nodeName"], node.as_str());
    cluster.rkubectl_ok(&["delete", "pod", &mirror_name, "--wait=false"]).ok();
    let again = cluster.wait_pod(&mirror_name, TIMEOUT, running).await?;
    assert_eq!(
        again["status"]["containerStatuses"][0]["containerID"],
        mirror["status"]["containerStatuses"][0]["containerID"]
    );
    std::fs::remove_file(&manifest)?;
    let deadline = std::time::Instant::now() + TIMEOUT;
    while cluster.rkubectl(&["get", "pod", &mirror_name])?.status.success() {
        assert!(std::time::Instant::now() < deadline, "the mirror pod outlived its manifest");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(())
}

#[tokio::test]
async fn a_kubelet_killed_and_restarted_adopts_its_pods_without_duplicates() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(1).await?;
    cluster.create(include_str!("../../examples/two-container-pod.yaml"))?;
    let before = cluster.wait_pod("redis-php", TIMEOUT, running).await?;
    let node = cluster.nodes[0].clone();
    let containers = |node: &str| -> anyhow::Result<Vec<String>> {
        let out = std::process::Command::new("docker")
            .args(["ps", "-q", "--no-trunc", "--filter", &format!("label=io.rkube.node={node}")])
            .output()?;
        let mut ids: Vec<String> =
            String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_string).collect();
        ids.sort();
        Ok(ids)
    };
    let running_before = containers(&node)?;
    assert_eq!(running_before.len(), 3, "pause + two containers: {running_before:?}");

    cluster.kill_kubelet(0)?;
    cluster.spawn_kubelet(0)?;
    // The new kubelet reports the pod again; nothing was restarted or duplicated.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = cluster.wait_pod("redis-php", TIMEOUT, running).await?;
    assert_eq!(containers(&node)?, running_before, "containers were replaced or duplicated");
    assert_eq!(after["status"]["podIP"], before["status"]["podIP"]);
    assert_eq!(after["status"]["containerStatuses"], before["status"]["containerStatuses"]);
    Ok(())
}

#[tokio::test]
async fn the_pod_spec_is_honoured_on_docker() -> anyhow::Result<()> {
    let cluster = Cluster::start(1).await?;
    cluster.create(include_str!("../../examples/configmap.yaml"))?;
    cluster.create(
        r#"apiVersion: v1
kind: Pod
metadata: {name: spec-pod}
spec:
  initContainers:
  - name: init
    image: rkube/toolbox:1.0
    imagePullPolicy: Never
    command: [sh, -c, 'echo from-init > /work/init.txt']
    volumeMounts: [{name: work, mountPath: /work}]
  containers:
  - name: app
    image: rkube/toolbox:1.0
    imagePullPolicy: Never
    command: [sh, -c, 'echo level=$(LEVEL) dir=$APPDIR; sleep 3600']
    env:
    - name: LEVEL
      valueFrom: {configMapKeyRef: {name: cm-appvars, key: apploglevel}}
    - name: APPDIR
      valueFrom: {configMapKeyRef: {name: cm-appvars, key: appdatadir}}
    - name: MY_POD
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    volumeMounts:
    - {name: work, mountPath: /work}
    - {name: config, mountPath: /etc/app, readOnly: true}
    livenessProbe:
      exec: {command: [cat, /work/init.txt]}
      periodSeconds: 2
      failureThreshold: 1
  volumes:
  - {name: work, emptyDir: {}}
  - name: config
    configMap:
      name: cm-appvars
      items: [{key: apploglevel, path: level}]
"#,
    )?;
    cluster.wait_pod("spec-pod", TIMEOUT, running).await?;
    // Env from a ConfigMap, $(VAR) expansion in the command, the downward API.
    let logs = cluster.rkubectl_ok(&["logs", "spec-pod"])?;
    assert_eq!(logs.trim(), "level=info dir=/var/data");
    assert_eq!(cluster.rkubectl_ok(&["exec", "spec-pod", "--", "sh", "-c", "echo $MY_POD"])?.trim(), "spec-pod");
    // The init container ran first into the shared emptyDir; the ConfigMap item is a file.
    assert_eq!(cluster.rkubectl_ok(&["exec", "spec-pod", "--", "cat", "/work/init.txt"])?.trim(), "from-init");
    assert_eq!(cluster.rkubectl_ok(&["exec", "spec-pod", "--", "cat", "/etc/app/level"])?.trim(), "info");
    // A failing liveness probe restarts the container, with events saying why.
    cluster.rkubectl_ok(&["exec", "spec-pod", "--", "rm", "/work/init.txt"])?;
    cluster
        .wait_pod("spec-pod", TIMEOUT, |p| {
            p["status"]["containerStatuses"][0]["restartCount"].as_i64().unwrap_or(0) >= 1
        })
        .await?;
    let described = cluster.rkubectl_ok(&["describe", "pod", "spec-pod"])?;
    assert!(described.contains("Unhealthy") && described.contains("Liveness probe failed"), "{described}");
    assert!(described.contains("Scheduled"), "{described}");

    // restartPolicy Never: a failing container makes the pod Failed with its exit code.
    cluster.create(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: fails}\nspec:\n  restartPolicy: Never\n  containers:\n  - {name: c, image: 'rkube/toolbox:1.0', imagePullPolicy: Never, command: [sh, -c, 'exit 3']}\n",
    )?;
    let failed = cluster.wait_pod("fails", TIMEOUT, |p| p["status"]["phase"] == "Failed").await?;
    assert_eq!(failed["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"], 3);

    // A missing image is a reason in the status, not a crash.
    cluster.create(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: noimage}\nspec:\n  containers:\n  - {name: c, image: 'rkube/absent:9', imagePullPolicy: Never}\n",
    )?;
    let waiting = cluster
        .wait_pod("noimage", TIMEOUT, |p| {
            // ContainerCreating comes first, until the kubelet has looked for the image.
            let reason = &p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"];
            reason.is_string() && reason != "ContainerCreating"
        })
        .await?;
    assert_eq!(waiting["status"]["containerStatuses"][0]["state"]["waiting"]["reason"], "ErrImageNeverPull");

    // Resource usage, from the kubelet through the apiserver.
    let top = cluster.rkubectl_ok(&["top", "pods"])?;
    assert!(top.lines().any(|l| l.starts_with("spec-pod")), "{top}");
    Ok(())
}

#[tokio::test]
async fn hollow_nodes_join_and_run_pods_without_docker() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(0).await?;
    let server = cluster.server.clone();
    let prefix = format!("hollow{:04x}", fastrand::u16(..));
    let health = format!("127.0.0.1:{}", rkube_testkit::free_port());
    cluster.spawn(
        "hollow",
        "rkubelet",
        &[
            "--server",
            &server,
            "--runtime",
            "fake",
            "--hollow-nodes",
            "3",
            "--hostname-override",
            &prefix,
            "--healthz-bind-address",
            &health,
            "--port",
            "0",
        ],
    )?;
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let nodes = cluster.rkubectl_ok(&["get", "nodes"])?;
        if nodes.lines().filter(|l| l.starts_with(&prefix) && l.contains(" Ready ")).count() == 3 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "hollow nodes did not become Ready:\n{nodes}\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    cluster.create(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: hollow-pod}\nspec:\n  containers:\n  - {name: c, image: 'any/image:1', command: [serve]}\n",
    )?;
    let pod = cluster.wait_pod("hollow-pod", TIMEOUT, running).await?;
    assert!(pod["spec"]["nodeName"].as_str().is_some_and(|n| n.starts_with(&prefix)), "{pod}");
    Ok(())
}
