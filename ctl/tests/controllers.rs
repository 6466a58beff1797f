//! rkubectl with the real controller manager (replication, replicaset,
//! deployment, garbage collector) in-process and a stand-in for the kubelets
//! that marks pods Ready (support/kubelet.rs): `rolling-update` end to end,
//! a stuck update rolled back, and a Deployment rolled out, to a new image
//! and back, and one that exceeds its progress deadline.

mod support;

use rkube_testkit::{TestControllerManager, wait_for};
use serde_json::Value;
use std::time::Duration;
use support::Cluster;
use support::kubelet::FakeKubelet;

fn example(name: &str) -> String {
    support::examples_dir().join(name).display().to_string()
}

async fn json(c: &Cluster, what: &str) -> anyhow::Result<Value> {
    Ok(serde_json::from_str(&c.ok(&["get", what, "-o", "json"]).await?)?)
}

/// The images of the pods not being deleted, sorted.
async fn live_pod_images(c: &Cluster) -> anyhow::Result<Vec<String>> {
    let list = json(c, "pods").await?;
    let mut images: Vec<String> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
        .map(|p| p["spec"]["containers"][0]["image"].as_str().unwrap_or_default().to_string())
        .collect();
    images.sort();
    Ok(images)
}

async fn ready_replicas(c: &Cluster, what: &str, n: i64) -> anyhow::Result<()> {
    wait_for(Duration::from_secs(30), || async {
        json(c, what).await.is_ok_and(|o| o["status"]["readyReplicas"].as_i64() == Some(n))
    })
    .await
}

#[tokio::test]
async fn rolling_update_with_the_replication_controller() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let _cm = TestControllerManager::start(
        &c.server.url(),
        &["--controllers=replication,garbagecollector", "--leader-elect=false"],
    )
    .await?;
    let kubelet = FakeKubelet::start(&c.server.url());
    c.ok(&["create", "-f", &example("frontend-rc.yaml")]).await?;
    ready_replicas(&c, "rc/frontend", 3).await?;

    let out = c
        .run(&[
            "rolling-update",
            "frontend",
            "--image=rkube/toolbox:latest",
            "--update-period=200ms",
            "--poll-interval=100ms",
            "--timeout=60s",
        ])
        .await?;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("Scaling frontend down to 0\nUpdate succeeded. Deleting old controller: frontend\n"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.ends_with("to frontend\nreplicationcontroller/frontend rolling updated\n"), "{}", out.stdout);
    assert_eq!(c.ok(&["get", "rc", "-o", "name"]).await?, "replicationcontroller/frontend\n");
    ready_replicas(&c, "rc/frontend", 3).await?;
    wait_for(Duration::from_secs(30), || async {
        live_pod_images(&c).await.is_ok_and(|i| i == vec!["rkube/toolbox:latest"; 3])
    })
    .await?;

    // A version whose pods never become ready: the update stalls, times out, and is rolled back.
    kubelet.never_ready("rkube/toolbox:broken");
    let broken = c.file(
        "frontend-broken.yaml",
        &std::fs::read_to_string(example("frontend-v2-rc.yaml"))?
            .replace("frontend-v2", "frontend-broken")
            .replace("version: v2", "version: broken")
            .replace("rkube/toolbox:latest", "rkube/toolbox:broken"),
    );
    let stuck = c
        .run(&[
            "rolling-update",
            "frontend",
            "frontend-broken",
            "-f",
            &broken,
            "--update-period=200ms",
            "--poll-interval=100ms",
            "--timeout=3s",
        ])
        .await?;
    assert_eq!(stuck.code, 1, "{stuck:?}");
    assert!(stuck.stdout.ends_with("Scaling frontend-broken up to 1\n"), "{}", stuck.stdout);
    assert!(
        stuck.stderr.ends_with("error: timed out waiting for any update progress to be made\n"),
        "{}",
        stuck.stderr
    );

    let back = c
        .run(&[
            "rolling-update",
            "frontend",
            "frontend-broken",
            "--rollback",
            "--update-period=200ms",
            "--poll-interval=100ms",
        ])
        .await?;
    assert_eq!(back.code, 0, "{back:?}");
    assert_eq!(
        back.stdout,
        "\
Setting \"frontend\" replicas to 3
Continuing update with existing controller frontend.
Scaling up frontend from 3 to 3, scaling down frontend-broken from 1 to 0 (keep 3 pods available, don't exceed 4 pods)
Scaling frontend-broken down to 0
Update succeeded. Deleting frontend-broken
replicationcontroller/frontend rolling updated
"
    );
    assert_eq!(c.ok(&["get", "rc", "-o", "name"]).await?, "replicationcontroller/frontend\n");
    wait_for(Duration::from_secs(30), || async {
        live_pod_images(&c).await.is_ok_and(|i| i == vec!["rkube/toolbox:latest"; 3])
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn deployment_rollout_undo_and_progress_deadline() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let _cm = TestControllerManager::start(
        &c.server.url(),
        &["--controllers=replicaset,deployment,garbagecollector", "--leader-elect=false"],
    )
    .await?;
    let kubelet = FakeKubelet::start(&c.server.url());
    let deployment = example("deployment.yaml");
    assert_eq!(c.ok(&["apply", "-f", &deployment]).await?, "deployment.apps/web created\n");
    let status = c.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]).await?;
    assert!(status.ends_with("deployment \"web\" successfully rolled out\n"), "{status}");

    assert_eq!(
        c.ok(&["set", "image", "deployment/web", "web=rkube/toolbox:latest"]).await?,
        "deployment.apps/web image updated\n"
    );
    let status = c.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]).await?;
    assert!(status.ends_with("deployment \"web\" successfully rolled out\n"), "{status}");
    wait_for(Duration::from_secs(30), || async {
        live_pod_images(&c).await.is_ok_and(|i| i == vec!["rkube/toolbox:latest"; 3])
    })
    .await?;
    let history = c.ok(&["rollout", "history", "deployment/web"]).await?;
    let revisions: Vec<&str> = history.lines().skip(2).filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(revisions, ["1", "2"], "{history}");

    assert_eq!(c.ok(&["rollout", "undo", "deployment/web"]).await?, "deployment.apps/web rolled back\n");
    let status = c.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]).await?;
    assert!(status.ends_with("deployment \"web\" successfully rolled out\n"), "{status}");
    assert_eq!(
        json(&c, "deploy/web").await?["spec"]["template"]["spec"]["containers"][0]["image"],
        "rkube/toolbox:1.0"
    );
    let history = c.ok(&["rollout", "history", "deployment/web"]).await?;
    let revisions: Vec<&str> = history.lines().skip(2).filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(revisions, ["2", "3"], "rolling back reuses revision 1's ReplicaSet as revision 3: {history}");
    wait_for(Duration::from_secs(30), || async {
        live_pod_images(&c).await.is_ok_and(|i| i == vec!["rkube/toolbox:1.0"; 3])
    })
    .await?;
    let described = c.ok(&["describe", "deployment", "web"]).await?;
    assert!(described.contains("NewReplicaSet:"), "{described}");

    kubelet.never_ready("rkube/toolbox:broken");
    let stuck = c.file(
        "stuck.yaml",
        &std::fs::read_to_string(&deployment)?
            .replace("name: web", "name: stuck")
            .replace("app: web", "app: stuck")
            .replace("rkube/toolbox:1.0", "rkube/toolbox:broken")
            .replace("  replicas: 3\n", "  replicas: 3\n  progressDeadlineSeconds: 2\n"),
    );
    c.ok(&["apply", "-f", &stuck]).await?;
    let out = c.run(&["rollout", "status", "deployment/stuck", "--timeout=60s"]).await?;
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (1, "error: deployment \"stuck\" exceeded its progress deadline\n"),
        "{out:?}"
    );
    Ok(())
}
