//! The workload controllers on a whole cluster of real binaries (two nodes
//! on Docker), driven through rkubectl as the walkthrough does: a
//! ReplicationController keeps its pods through deletes and container
//! kills and scales; rolling-update with -f, with --image and --rollback;
//! a Deployment rolls out, undoes, and stalls on a bad image; a
//! controller-manager killed in the middle of a scale-up creates no extra
//! pods; orphan and foreground deletes; a DaemonSet follows node labels; a
//! Job completes, another stops at its backoffLimit.

use anyhow::Context as _;
use rkube_e2e::Cluster;
use serde_json::Value;
use std::process::{Command, Stdio};

/// The live (not terminating) pods `selector` picks.
fn pods(cluster: &Cluster, selector: &str) -> anyhow::Result<Vec<Value>> {
    let list: Value = serde_json::from_str(&cluster.rkubectl_ok(&["get", "pods", "-l", selector, "-o", "json"])?)?;
    Ok(list["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect())
}

fn ready(p: &Value) -> bool {
    p["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

fn name(p: &Value) -> String {
    p["metadata"]["name"].as_str().unwrap_or_default().to_string()
}

/// Exactly `n` live pods match `selector`, all ready.
fn ready_pods(cluster: &Cluster, selector: &str, n: usize) -> anyhow::Result<bool> {
    let ps = pods(cluster, selector)?;
    Ok(ps.len() == n && ps.iter().all(ready))
}

fn rcs(cluster: &Cluster) -> anyhow::Result<Vec<Value>> {
    let list: Value = serde_json::from_str(&cluster.rkubectl_ok(&["get", "rc", "-o", "json"])?)?;
    Ok(list["items"].as_array().cloned().unwrap_or_default())
}

#[tokio::test]
async fn a_replication_controller_keeps_scales_and_rolls() -> anyhow::Result<()> {
    let cluster = Cluster::start(2).await?;
    cluster.rkubectl_ok(&["create", "-f", concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/frontend-rc.yaml")])?;
    cluster.eventually("3 ready frontend pods", || ready_pods(&cluster, "name=frontend", 3)).await?;
    let table = cluster.rkubectl_ok(&["get", "rc", "frontend"])?;
    assert!(
        table.lines().nth(1).is_some_and(|l| l.split_whitespace().take(4).eq(["frontend", "3", "3", "3"])),
        "{table}"
    );

    // A deleted pod is replaced.
    let victim = name(&pods(&cluster, "name=frontend")?[0]);
    cluster.rkubectl_ok(&["delete", "pod", &victim])?;
    cluster
        .eventually("the deleted pod replaced", || {
            let ps = pods(&cluster, "name=frontend")?;
            Ok(ps.len() == 3 && ps.iter().all(ready) && ps.iter().all(|p| name(p) != victim))
        })
        .await?;

    // A killed container is restarted in place: still the same 3 pods.
    let before: Vec<String> = pods(&cluster, "name=frontend")?.iter().map(name).collect();
    let target = before[0].clone();
    let ids = Command::new("docker")
        .args([
            "ps",
            "-q",
            "--filter",
            &format!("label=io.rkube.pod.name={target}"),
            "--filter",
            "label=io.rkube.container.name=frontend",
        ])
        .output()?;
    let id = String::from_utf8_lossy(&ids.stdout).trim().to_string();
    assert!(!id.is_empty(), "no container for {target}");
    Command::new("docker").args(["kill", &id]).stdout(Stdio::null()).status()?;
    cluster
        .eventually("the killed container restarted", || {
            let ps = pods(&cluster, "name=frontend")?;
            let restarted = ps
                .iter()
                .any(|p| name(p) == target && p["status"]["containerStatuses"][0]["restartCount"].as_i64() >= Some(1));
            let mut names: Vec<String> = ps.iter().map(name).collect();
            names.sort();
            let mut expected = before.clone();
            expected.sort();
            Ok(restarted && names == expected && ps.iter().all(ready))
        })
        .await?;

    // Scale 3 -> 5 -> 1 (then 2 for the updates).
    assert_eq!(
        cluster.rkubectl_ok(&["scale", "rc", "frontend", "--replicas=5"])?.trim(),
        "replicationcontroller/frontend scaled"
    );
    cluster.eventually("5 frontend pods", || ready_pods(&cluster, "name=frontend", 5)).await?;
    cluster.rkubectl_ok(&["scale", "rc", "frontend", "--replicas=1"])?;
    cluster.eventually("1 frontend pod", || ready_pods(&cluster, "name=frontend", 1)).await?;
    cluster.rkubectl_ok(&["scale", "rc", "frontend", "--replicas=2", "--current-replicas=1"])?;
    cluster.eventually("2 frontend pods", || ready_pods(&cluster, "name=frontend", 2)).await?;

    // rolling-update -f: v2 replaces v1 pod by pod, and takes the old name at the end.
    let out = cluster.rkubectl_ok(&[
        "rolling-update",
        "frontend",
        "-f",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/frontend-v2-rc.yaml"),
        "--update-period=1s",
        "--poll-interval=500ms",
    ])?;
    assert!(out.contains("Scaling up frontend-v2 from 0 to 2, scaling down frontend from 2 to 0"), "{out}");
    let names: Vec<String> = rcs(&cluster)?.iter().map(name).collect();
    assert_eq!(names, ["frontend"], "the old name is kept");
    cluster
        .eventually("only v2 pods", || {
            Ok(ready_pods(&cluster, "name=frontend", 2)? && pods(&cluster, "name=frontend,version=v2")?.len() == 2)
        })
        .await?;

    // rolling-update --image: a hash-named controller takes over and is renamed to the old name.
    let out = cluster.rkubectl_ok(&[
        "rolling-update",
        "frontend",
        "--image=rkube/toolbox:1.0",
        "--update-period=1s",
        "--poll-interval=500ms",
    ])?;
    assert!(out.contains("rolling updated"), "{out}");
    let all = rcs(&cluster)?;
    assert_eq!(all.iter().map(name).collect::<Vec<_>>(), ["frontend"], "the old name is kept");
    assert_eq!(all[0]["spec"]["template"]["spec"]["containers"][0]["image"], "rkube/toolbox:1.0");
    cluster
        .eventually("only pods of the new image", || {
            let ps = pods(&cluster, "name=frontend")?;
            Ok(ps.len() == 2
                && ps.iter().all(|p| ready(p) && p["spec"]["containers"][0]["image"] == "rkube/toolbox:1.0"))
        })
        .await?;

    // An update aborted midway and rolled back: the old controller is whole again.
    let mut update = Command::new(rkube_e2e::bin_dir().join("rkubectl"))
        .args(["--server", &cluster.server, "rolling-update", "frontend", "--image=rkube/toolbox:latest"])
        .args(["--update-period=60s", "--poll-interval=500ms"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mut new_rc = String::new();
    cluster
        .eventually("the new controller scaled up", || {
            let found = rcs(&cluster)?
                .into_iter()
                .find(|r| name(r).starts_with("frontend-") && r["spec"]["replicas"].as_i64() >= Some(1));
            Ok(found.map(|r| new_rc = name(&r)).is_some())
        })
        .await?;
    update.kill()?;
    update.wait()?;
    let out = cluster.rkubectl_ok(&["rolling-update", "frontend", &new_rc, "--rollback"])?;
    assert!(out.contains(&format!("Update succeeded. Deleting {new_rc}")), "{out}");
    cluster
        .eventually("the old controller restored", || {
            let all = rcs(&cluster)?;
            Ok(all.iter().map(name).collect::<Vec<_>>() == ["frontend"]
                && all[0]["spec"]["replicas"] == 2
                && ready_pods(&cluster, "name=frontend", 2)?)
        })
        .await?;
    Ok(())
}

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: NAME}
spec:
  replicas: 3
  progressDeadlineSeconds: 15
  selector: {matchLabels: {app: NAME}}
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 1}}
  template:
    metadata: {labels: {app: NAME}}
    spec:
      containers:
      - name: web
        image: rkube/toolbox:1.0
        imagePullPolicy: Never
        command: [sh, -c, 'mkdir -p /www && hostname > /www/index.html && httpd -f -p 80 -h /www']
        readinessProbe: {httpGet: {path: /, port: 80}, periodSeconds: 1}
";

fn images(cluster: &Cluster, app: &str) -> anyhow::Result<Vec<String>> {
    Ok(pods(cluster, &format!("app={app}"))?
        .iter()
        .filter(|p| ready(p))
        .map(|p| p["spec"]["containers"][0]["image"].as_str().unwrap_or_default().to_string())
        .collect())
}

#[tokio::test]
async fn a_deployment_rolls_out_undoes_and_stalls_on_a_bad_image() -> anyhow::Result<()> {
    let cluster = Cluster::start(2).await?;
    cluster.create(&DEPLOYMENT.replace("NAME", "web"))?;
    let out = cluster.rkubectl_ok(&["rollout", "status", "deployment/web", "--timeout=2m"])?;
    assert!(out.contains("deployment \"web\" successfully rolled out"), "{out}");

    cluster.rkubectl_ok(&["set", "image", "deployment/web", "web=rkube/toolbox:latest"])?;
    cluster.rkubectl_ok(&["rollout", "status", "deployment/web", "--timeout=2m"])?;
    cluster
        .eventually("every pod on the new image", || {
            let imgs = images(&cluster, "web")?;
            Ok(imgs.len() == 3 && imgs.iter().all(|i| i == "rkube/toolbox:latest"))
        })
        .await?;
    let history = cluster.rkubectl_ok(&["rollout", "history", "deployment/web"])?;
    assert!(history.lines().any(|l| l.starts_with("1 ")) && history.lines().any(|l| l.starts_with("2 ")), "{history}");

    cluster.rkubectl_ok(&["rollout", "undo", "deployment/web"])?;
    cluster.rkubectl_ok(&["rollout", "status", "deployment/web", "--timeout=2m"])?;
    cluster
        .eventually("every pod back on the first image", || {
            let imgs = images(&cluster, "web")?;
            Ok(imgs.len() == 3 && imgs.iter().all(|i| i == "rkube/toolbox:1.0"))
        })
        .await?;
    let sets: Value = serde_json::from_str(&cluster.rkubectl_ok(&["get", "rs", "-l", "app=web", "-o", "json"])?)?;
    assert_eq!(sets["items"].as_array().map(Vec::len), Some(2), "the undo reused the first ReplicaSet");

    // A template that cannot run: the rollout stops with replicas - maxUnavailable
    // available and reports ProgressDeadlineExceeded; rollout status fails.
    cluster.create(&DEPLOYMENT.replace("NAME", "broken"))?;
    cluster.rkubectl_ok(&["rollout", "status", "deployment/broken", "--timeout=2m"])?;
    cluster.rkubectl_ok(&["set", "image", "deployment/broken", "web=rkube/missing:1"])?;
    cluster
        .eventually("ProgressDeadlineExceeded", || {
            let d: Value =
                serde_json::from_str(&cluster.rkubectl_ok(&["get", "deployment", "broken", "-o", "json"])?)?;
            Ok(d["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter().any(|c| c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded")
            }))
        })
        .await?;
    let d: Value = serde_json::from_str(&cluster.rkubectl_ok(&["get", "deployment", "broken", "-o", "json"])?)?;
    assert_eq!(d["status"]["availableReplicas"], 2, "{}", d["status"]);
    assert_eq!(images(&cluster, "broken")?.iter().filter(|i| *i == "rkube/toolbox:1.0").count(), 2);
    let out = cluster.rkubectl(&["rollout", "status", "deployment/broken", "--timeout=10s"])?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("deployment \"broken\" exceeded its progress deadline"), "{err}");
    Ok(())
}

const SLEEPERS: &str = "apiVersion: v1
kind: ReplicationController
metadata: {name: NAME}
spec:
  replicas: 0
  selector: {app: NAME}
  template:
    metadata: {labels: {app: NAME}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: c, image: 'rkube/toolbox:1.0', imagePullPolicy: Never, command: [sleep, '3600']}
";

#[tokio::test]
async fn a_crashed_controller_manager_creates_no_extra_pods_and_deletes_cascade() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(2).await?;
    cluster.create(&SLEEPERS.replace("NAME", "burst"))?;
    cluster.rkubectl_ok(&["scale", "rc", "burst", "--replicas=12"])?;
    cluster.eventually("the scale-up started", || Ok(!pods(&cluster, "app=burst")?.is_empty())).await?;
    cluster.kill("controller-manager")?;
    cluster.restart("controller-manager")?;
    cluster
        .eventually("12 running pods", || {
            let ps = pods(&cluster, "app=burst")?;
            Ok(ps.len() == 12 && ps.iter().all(|p| p["status"]["phase"] == "Running"))
        })
        .await?;
    // The old controller-manager may have made all 12 before it died; the
    // status follows once the new one holds the Lease (up to its 15 s).
    cluster
        .eventually("the RC's status counts 12", || {
            let rc: Value = serde_json::from_str(&cluster.rkubectl_ok(&["get", "rc", "burst", "-o", "json"])?)?;
            Ok(rc["status"]["replicas"] == 12)
        })
        .await?;
    // Everything the controllers wrote is seen: the count stays exact.
    let all: Value = serde_json::from_str(&cluster.rkubectl_ok(&["get", "pods", "-l", "app=burst", "-o", "json"])?)?;
    assert_eq!(all["items"].as_array().map(Vec::len), Some(12), "no extra pod was ever created");

    // Orphan: the controller goes, its pods stay without an owner.
    cluster.rkubectl_ok(&["delete", "rc", "burst", "--cascade=orphan"])?;
    cluster.eventually("the orphaning delete done", || Ok(rcs(&cluster)?.is_empty())).await?;
    let left = pods(&cluster, "app=burst")?;
    assert_eq!(left.len(), 12);
    assert!(left.iter().all(|p| p["metadata"]["ownerReferences"].as_array().is_none_or(Vec::is_empty)));
    cluster.rkubectl_ok(&["delete", "pods", "-l", "app=burst"])?;

    // Foreground: the controller stays until its pods are gone.
    cluster.create(&SLEEPERS.replace("NAME", "fg"))?;
    cluster.rkubectl_ok(&["scale", "rc", "fg", "--replicas=2"])?;
    cluster.eventually("2 fg pods", || Ok(pods(&cluster, "app=fg")?.len() == 2)).await?;
    cluster.rkubectl_ok(&["delete", "rc", "fg", "--cascade=foreground", "--wait=false"])?;
    let rc: Value = serde_json::from_str(
        &cluster.rkubectl_ok(&["get", "rc", "fg", "-o", "json"]).context("fg is kept while its pods go")?,
    )?;
    assert!(
        rc["metadata"]["finalizers"].as_array().is_some_and(|f| f.iter().any(|f| f == "foregroundDeletion")),
        "{rc}"
    );
    cluster
        .eventually("the foreground delete done", || {
            Ok(rcs(&cluster)?.is_empty() && pods(&cluster, "app=fg")?.is_empty())
        })
        .await?;
    Ok(())
}

const DAEMONSET: &str = "apiVersion: apps/v1
kind: DaemonSet
metadata: {name: edge-agent}
spec:
  selector: {matchLabels: {app: edge-agent}}
  template:
    metadata: {labels: {app: edge-agent}}
    spec:
      nodeSelector: {role: edge}
      terminationGracePeriodSeconds: 1
      containers:
      - {name: agent, image: 'rkube/toolbox:1.0', imagePullPolicy: Never, command: [sleep, '3600']}
";

const FAILING_JOB: &str = "apiVersion: batch/v1
kind: Job
metadata: {name: always-fails}
spec:
  backoffLimit: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: fail, image: 'rkube/toolbox:1.0', imagePullPolicy: Never, command: [sh, -c, 'exit 3']}
";

fn condition(obj: &Value, type_: &str) -> Option<Value> {
    obj["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == type_ && c["status"] == "True").cloned()
}

#[tokio::test]
async fn daemon_sets_follow_node_labels_and_jobs_complete_or_fail() -> anyhow::Result<()> {
    let cluster = Cluster::start(2).await?;
    let (first, second) = (cluster.nodes[0].clone(), cluster.nodes[1].clone());
    for node in [&first, &second] {
        cluster.rkubectl_ok(&["label", "nodes", node, "role=edge"])?;
    }
    cluster.create(DAEMONSET)?;
    let on_nodes = || -> anyhow::Result<Vec<String>> {
        let mut nodes: Vec<String> = pods(&cluster, "app=edge-agent")?
            .iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .map(|p| p["spec"]["nodeName"].as_str().unwrap_or_default().to_string())
            .collect();
        nodes.sort();
        Ok(nodes)
    };
    let mut both = vec![first.clone(), second.clone()];
    both.sort();
    cluster.eventually("a daemon pod Running on each node", || Ok(on_nodes()? == both)).await?;

    // Relabelled out of the selector: that node's pod goes, the other stays.
    cluster.rkubectl_ok(&["label", "nodes", &second, "role=core", "--overwrite"])?;
    cluster.eventually("the daemon pod only on the edge node", || Ok(on_nodes()? == [first.clone()])).await?;
    let ds: Value = serde_json::from_str(&cluster.rkubectl_ok(&["get", "ds", "edge-agent", "-o", "json"])?)?;
    assert_eq!(ds["status"]["desiredNumberScheduled"], 1, "{}", ds["status"]);

    // A Job of 4 completions, 2 at a time, completes.
    cluster.rkubectl_ok(&["create", "-f", concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/job.yaml")])?;
    cluster
        .eventually("the job complete", || {
            let job: Value =
                serde_json::from_str(&cluster.rkubectl_ok(&["get", "job", "count-down", "-o", "json"])?)?;
            Ok(condition(&job, "Complete").is_some())
        })
        .await?;
    let job: Value = serde_json::from_str(&cluster.rkubectl_ok(&["get", "job", "count-down", "-o", "json"])?)?;
    assert_eq!(job["status"]["succeeded"], 4, "{}", job["status"]);
    let table = cluster.rkubectl_ok(&["get", "job", "count-down"])?;
    assert!(table.lines().nth(1).is_some_and(|l| l.contains("4/4")), "{table}");

    // A Job whose pods always fail stops at backoffLimit.
    cluster.create(FAILING_JOB)?;
    cluster
        .eventually("the failing job Failed", || {
            let job: Value =
                serde_json::from_str(&cluster.rkubectl_ok(&["get", "job", "always-fails", "-o", "json"])?)?;
            Ok(condition(&job, "Failed").is_some_and(|c| c["reason"] == "BackoffLimitExceeded"))
        })
        .await?;
    let job: Value = serde_json::from_str(&cluster.rkubectl_ok(&["get", "job", "always-fails", "-o", "json"])?)?;
    assert_eq!(job["status"]["failed"], 3, "backoffLimit 2: three pods failed: {}", job["status"]);
    Ok(())
}
