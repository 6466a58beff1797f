//! The real kubectl (`/usr/bin/kubectl`, or `$KUBECTL`) against a cluster of
//! the real binaries on Docker, through the apiserver's Kubernetes REST API:
//! discovery, OpenAPI validation, server-side tables, protobuf bodies from
//! `kubectl create <kind>`, apply twice (client- and server-side, with a
//! field-manager conflict), strategic/merge/JSON patches, scale, describe
//! with events, logs, exec with exit codes and a TTY, watch, wait, rollout,
//! explain and delete.

use anyhow::Context as _;
use rkube_e2e::{Cluster, Options};
use serde_json::Value;
use std::time::Duration;

fn json(cluster: &Cluster, args: &[&str]) -> anyhow::Result<Value> {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    Ok(serde_json::from_str(&cluster.kubectl(&all)?)?)
}

/// The header and rows of kubectl's table output.
fn rows(text: &str) -> Vec<Vec<String>> {
    text.lines().map(|l| l.split_whitespace().map(str::to_string).collect()).collect()
}

const POD: &str = "
apiVersion: v1
kind: Pod
metadata:
  name: shell
  labels: {app: shell}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: rkube/toolbox:1.0
    command: [/bin/busybox, sh, -c, 'i=0; while true; do echo line $i; i=$((i+1)); sleep 0.2; done']
";

const DEPLOYMENT: &str = "
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: rkube/pause:3.9
        env: [{name: MODE, value: one}]
";

const RC: &str = "
apiVersion: v1
kind: ReplicationController
metadata:
  name: echo
spec:
  replicas: 1
  selector: {app: echo}
  template:
    metadata:
      labels: {app: echo}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: rkube/pause:3.9
";

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_reads_and_writes_the_cluster() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(Options { nodes: 2, ..Options::default() }).await?;

    // Discovery and version.
    let version = cluster.kubectl(&["version"])?;
    assert!(version.contains("Server Version: v1.33"), "{version}");
    let resources = cluster.kubectl(&["api-resources"])?;
    for (name, short) in [("pods", "po"), ("deployments", "deploy"), ("replicationcontrollers", "rc")] {
        assert!(
            resources.lines().any(|l| l.starts_with(name) && l.split_whitespace().nth(1) == Some(short)),
            "{name} {short} missing:\n{resources}"
        );
    }

    // Nodes through a server-side table, wide.
    let nodes = rows(&cluster.kubectl(&["get", "nodes", "-o", "wide"])?);
    assert_eq!(nodes[0][..5], ["NAME", "STATUS", "ROLES", "AGE", "VERSION"], "{nodes:?}");
    assert!(nodes[0].contains(&"INTERNAL-IP".to_string()), "{nodes:?}");
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    assert!(nodes[1..].iter().all(|r| r[1] == "Ready"), "{nodes:?}");

    // create -f with kubectl's default (strict, OpenAPI-backed) validation.
    cluster.kubectl_ok_with(&["create", "-f", "-"], POD)?;
    let bad = cluster.kubectl_with(&["create", "-f", "-"], &POD.replace("name: main", "name: main\n    imagee: x"))?;
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("imagee"), "{}", String::from_utf8_lossy(&bad.stderr));
    cluster.kubectl(&["wait", "--for=condition=Ready", "pod/shell", "--timeout=120s"])?;
    let pods = rows(&cluster.kubectl(&["get", "pods", "-o", "wide"])?);
    assert_eq!(pods[0][..5], ["NAME", "READY", "STATUS", "RESTARTS", "AGE"], "{pods:?}");
    assert_eq!(pods[1][..3], ["shell", "1/1", "Running"], "{pods:?}");
    assert!(cluster.nodes.contains(&pods[1][6]), "NODE column: {pods:?}");
    let phase = cluster.kubectl(&["get", "pod", "shell", "-o", "jsonpath={.status.phase}"])?;
    assert_eq!(phase, "Running");
    let custom =
        cluster.kubectl(&["get", "pods", "-o", "custom-columns=N:.metadata.name,C:.spec.containers[0].name"])?;
    assert!(custom.contains("shell   main") || rows(&custom)[1] == ["shell", "main"], "{custom}");
    let yaml = cluster.kubectl(&["get", "pod", "shell", "-o", "yaml"])?;
    assert!(yaml.contains("kind: Pod") && yaml.contains("image: rkube/toolbox:1.0"), "{yaml}");

    // Logs, a tail, and a follow that sees new lines arrive.
    let logs = cluster.kubectl(&["logs", "shell", "--tail=2"])?;
    assert_eq!(logs.lines().count(), 2, "{logs}");
    assert!(logs.lines().all(|l| l.starts_with("line ")), "{logs}");
    let follow = follow_logs(&cluster, Duration::from_secs(3))?;
    let numbers: Vec<u64> = follow.lines().filter_map(|l| l.strip_prefix("line ")?.parse().ok()).collect();
    assert!(numbers.len() >= 5 && numbers.windows(2).all(|w| w[1] == w[0] + 1), "{follow}");

    // exec: output, and the command's exit code becomes kubectl's.
    let out = cluster.kubectl(&["exec", "shell", "--", "/bin/busybox", "echo", "hello from exec"])?;
    assert_eq!(out.trim(), "hello from exec");
    let failed = cluster.kubectl_with(&["exec", "shell", "--", "/bin/busybox", "sh", "-c", "exit 3"], "")?;
    assert_eq!(failed.status.code(), Some(3), "{}", String::from_utf8_lossy(&failed.stderr));
    let piped = cluster.kubectl_ok_with(&["exec", "-i", "shell", "--", "/bin/busybox", "wc", "-l"], "a\nb\nc\n")?;
    assert_eq!(piped.trim(), "3");
    let tty =
        in_terminal(cluster.kubectl_command(&["exec", "-it", "shell", "-c", "main", "--", "/bin/busybox", "tty"])?)?;
    assert!(tty.contains("/dev/pts/"), "exec -it has a TTY: {tty}");
    let one = cluster.kubectl(&["logs", "shell", "-c", "main", "--tail=1"])?;
    assert!(one.starts_with("line ") && one.lines().count() == 1, "{one}");

    // Typed creates (kubectl sends these as protobuf).
    cluster.kubectl(&["create", "configmap", "settings", "--from-literal=color=blue"])?;
    assert_eq!(json(&cluster, &["get", "configmap", "settings"])?["data"]["color"], "blue");
    cluster.kubectl(&["create", "secret", "generic", "token", "--from-literal=key=s3cret"])?;
    assert_eq!(json(&cluster, &["get", "secret", "token"])?["data"]["key"], "czNjcmV0");
    cluster.kubectl(&["create", "namespace", "team-a"])?;
    assert_eq!(json(&cluster, &["get", "namespace", "team-a"])?["status"]["phase"], "Active");
    cluster.kubectl(&["create", "service", "clusterip", "front", "--tcp=80:8080"])?;
    let svc = json(&cluster, &["get", "service", "front"])?;
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);
    assert!(svc["spec"]["clusterIP"].as_str().is_some_and(|ip| ip.contains('.')), "{svc}");
    cluster.kubectl(&["create", "deployment", "made", "--image=rkube/pause:3.9", "-n", "team-a"])?;
    assert_eq!(json(&cluster, &["get", "deployment", "made", "-n", "team-a"])?["spec"]["replicas"], 1);

    // apply twice: the second changes one field; rollout status follows it.
    cluster.kubectl_ok_with(&["apply", "-f", "-"], DEPLOYMENT)?;
    cluster.kubectl(&["rollout", "status", "deployment/web", "--timeout=120s"])?;
    cluster.kubectl_ok_with(&["apply", "-f", "-"], &DEPLOYMENT.replace("value: one", "value: two"))?;
    cluster.kubectl(&["rollout", "status", "deployment/web", "--timeout=120s"])?;
    let d = json(&cluster, &["get", "deployment", "web"])?;
    assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"], "two");
    assert_eq!(d["metadata"]["generation"], 2);
    let history = cluster.kubectl(&["rollout", "history", "deployment/web"])?;
    assert!(history.contains('1') && history.contains('2'), "{history}");

    // Patches: strategic (keeps the image while adding env), merge, JSON.
    cluster.kubectl(&[
        "patch",
        "deployment",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"main","env":[{"name":"EXTRA","value":"1"}]}]}}}}"#,
    ])?;
    let c = &json(&cluster, &["get", "deployment", "web"])?["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "rkube/pause:3.9", "{c}");
    let env: Vec<&str> = c["env"].as_array().context("env")?.iter().filter_map(|e| e["name"].as_str()).collect();
    assert!(env.contains(&"EXTRA") && env.contains(&"MODE"), "{c}");
    cluster.kubectl(&[
        "patch",
        "deployment",
        "web",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"labels":{"tier":"front"}}}"#,
    ])?;
    cluster.kubectl(&[
        "patch",
        "deployment",
        "web",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/spec/replicas","value":3}]"#,
    ])?;
    let d = json(&cluster, &["get", "deployment", "web"])?;
    assert_eq!((d["metadata"]["labels"]["tier"].as_str(), d["spec"]["replicas"].as_i64()), (Some("front"), Some(3)));

    // rollout undo goes back to the previous template.
    cluster.kubectl(&["rollout", "status", "deployment/web", "--timeout=120s"])?;
    cluster.kubectl(&["rollout", "undo", "deployment/web"])?;
    cluster
        .eventually("undo restores the env without EXTRA", || {
            let d = json(&cluster, &["get", "deployment", "web"])?;
            let env = d["spec"]["template"]["spec"]["containers"][0]["env"].as_array().cloned().unwrap_or_default();
            Ok(env.len() == 1 && env[0]["value"] == "two")
        })
        .await?;

    // scale through the scale subresource; label, annotate; get all.
    cluster.kubectl(&["scale", "deployment", "web", "--replicas=1"])?;
    cluster.kubectl(&["rollout", "status", "deployment/web", "--timeout=120s"])?;
    cluster
        .eventually("web scales to 1 ready", || {
            let ps = json(&cluster, &["get", "pods", "-l", "app=web"])?;
            let live: Vec<&Value> = ps["items"]
                .as_array()
                .map(|a| a.iter().filter(|p| p["metadata"]["deletionTimestamp"].is_null()).collect())
                .unwrap_or_default();
            Ok(live.len() == 1)
        })
        .await?;
    cluster.kubectl(&["label", "pod", "shell", "tier=debug"])?;
    cluster.kubectl(&["annotate", "pod", "shell", "note=hi"])?;
    let p = json(&cluster, &["get", "pod", "shell"])?;
    assert_eq!(
        (p["metadata"]["labels"]["tier"].as_str(), p["metadata"]["annotations"]["note"].as_str()),
        (Some("debug"), Some("hi"))
    );
    let all = cluster.kubectl(&["get", "all"])?;
    assert!(all.contains("pod/shell") && all.contains("deployment.apps/web") && all.contains("service/front"), "{all}");

    // describe shows the events of pods, nodes and RCs (served by field selector).
    let describe = cluster.kubectl(&["describe", "pod", "shell"])?;
    assert!(describe.contains("Events:") && describe.contains("Scheduled"), "{describe}");
    let node = cluster.kubectl(&["describe", "node", &cluster.nodes[0]])?;
    assert!(node.contains("Starting kubelet."), "{node}");
    cluster.kubectl_ok_with(&["create", "-f", "-"], RC)?;
    cluster
        .eventually("describe rc shows its pod creations", || {
            Ok(cluster.kubectl(&["describe", "rc", "echo"])?.contains("SuccessfulCreate"))
        })
        .await?;

    // replace with a stale resourceVersion is a conflict; a fresh one works.
    let mut cm = json(&cluster, &["get", "configmap", "settings"])?;
    cm["data"]["color"] = "green".into();
    cluster.kubectl_ok_with(&["replace", "-f", "-"], &cm.to_string())?;
    let stale = cluster.kubectl_with(&["replace", "-f", "-"], &cm.to_string())?;
    assert!(String::from_utf8_lossy(&stale.stderr).contains("the object has been modified"), "{stale:?}");

    // Server-side apply: created, changed by its manager, a conflict for another, forced.
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  color: red\n";
    cluster.kubectl_ok_with(&["apply", "--server-side", "-f", "-"], cm)?;
    cluster.kubectl_ok_with(&["apply", "--server-side", "-f", "-"], &cm.replace("red", "blue"))?;
    let applied = json(&cluster, &["get", "configmap", "ssa", "--show-managed-fields"])?;
    assert_eq!(applied["data"]["color"], "blue");
    let managers = applied["metadata"]["managedFields"].as_array().cloned().unwrap_or_default();
    assert!(managers.iter().any(|m| m["manager"] == "kubectl" && m["operation"] == "Apply"), "{applied}");
    let other = ["apply", "--server-side", "--field-manager=other", "-f", "-"];
    let conflict = cluster.kubectl_with(&other, &cm.replace("red", "green"))?;
    assert!(!conflict.status.success());
    assert!(String::from_utf8_lossy(&conflict.stderr).contains("conflict"), "{conflict:?}");
    let forced = ["apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", "-"];
    cluster.kubectl_ok_with(&forced, &cm.replace("red", "green"))?;
    assert_eq!(json(&cluster, &["get", "configmap", "ssa"])?["data"]["color"], "green");

    // get -w sees a change happen.
    let mut watch = watch_pods(&cluster)?;
    std::thread::sleep(Duration::from_secs(1));
    cluster.kubectl(&["label", "pod", "shell", "watched=yes", "--overwrite"])?;
    cluster.kubectl(&["delete", "pod", "shell", "--grace-period=1", "--wait=true", "--timeout=60s"])?;
    std::thread::sleep(Duration::from_secs(1));
    let _ = watch.kill();
    let seen = String::from_utf8_lossy(&watch.wait_with_output()?.stdout).into_owned();
    assert!(seen.lines().filter(|l| l.starts_with("shell")).count() >= 2, "{seen}");
    let gone = cluster.kubectl_with(&["get", "pod", "shell"], "")?;
    assert!(String::from_utf8_lossy(&gone.stderr).contains("pods \"shell\" not found"), "{gone:?}");

    // explain reads the OpenAPI schemas.
    let explain = cluster.kubectl(&["explain", "pod.spec.containers"])?;
    assert!(explain.contains("KIND:") && explain.contains("Container"), "{explain}");

    // delete with cascade: the ReplicaSets and pods of web go.
    cluster.kubectl(&["delete", "deployment", "web", "--cascade=foreground", "--wait=true", "--timeout=90s"])?;
    cluster
        .eventually("web's pods are gone", || {
            Ok(json(&cluster, &["get", "pods", "-l", "app=web"])?["items"] == Value::Array(vec![]))
        })
        .await?;
    Ok(())
}

/// `kubectl logs -f shell` for `how_long`.
fn follow_logs(cluster: &Cluster, how_long: Duration) -> anyhow::Result<String> {
    let mut child = cluster.kubectl_command(&["logs", "-f", "shell", "--tail=1"])?.spawn()?;
    std::thread::sleep(how_long);
    let _ = child.kill();
    Ok(String::from_utf8_lossy(&child.wait_with_output()?.stdout).into_owned())
}

fn watch_pods(cluster: &Cluster) -> anyhow::Result<std::process::Child> {
    Ok(cluster.kubectl_command(&["get", "pods", "-w"])?.spawn()?)
}

/// Runs `command` with a terminal on its stdin and stdout (util-linux
/// `script`), as `kubectl exec -it` needs; returns what it printed.
fn in_terminal(command: std::process::Command) -> anyhow::Result<String> {
    let mut line = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        line.push_str(&format!(" '{}'", arg.to_string_lossy()));
    }
    let mut script = std::process::Command::new("script");
    script.args(["-qec", &line, "/dev/null"]);
    for (key, value) in command.get_envs() {
        match value {
            Some(v) => script.env(key, v),
            None => script.env_remove(key),
        };
    }
    let out = script.stdin(std::process::Stdio::null()).output().context("running script")?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
