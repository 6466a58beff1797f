//! `rkubectl rolling-update` against a real apiserver, with a stand-in for
//! the replication controller that keeps pods at each controller's size and
//! makes them Ready (see support/replication.rs): the update with `-f`, with
//! `--image` (hash-named controller renamed at the end), an update that
//! times out on pods that never become ready and its `--rollback`, and the
//! refusals worded like kubectl 1.17's.

mod support;

use rkube_testkit::wait_for;
use serde_json::Value;
use std::time::Duration;
use support::Cluster;
use support::replication::FakeReplication;

const FAST: [&str; 3] = ["--update-period=100ms", "--poll-interval=100ms", "--timeout=20s"];
const DEPRECATED: &str = "Command \"rolling-update\" is deprecated, use \"rollout\" instead\n";

fn example(name: &str) -> String {
    support::examples_dir().join(name).display().to_string()
}

async fn json(c: &Cluster, what: &str) -> anyhow::Result<Value> {
    Ok(serde_json::from_str(&c.ok(&["get", what, "-o", "json"]).await?)?)
}

/// Creates the walkthrough's frontend and waits for its three ready pods.
async fn frontend(c: &Cluster) -> anyhow::Result<()> {
    c.ok(&["create", "-f", &example("frontend-rc.yaml")]).await?;
    wait_for(Duration::from_secs(20), || async {
        json(c, "rc/frontend").await.is_ok_and(|rc| rc["status"]["readyReplicas"] == 3)
    })
    .await
}

async fn pod_images(c: &Cluster) -> anyhow::Result<Vec<String>> {
    let list = json(c, "pods").await?;
    Ok(list["items"]
        .as_array()
        .map(|items| {
            items.iter().map(|p| p["spec"]["containers"][0]["image"].as_str().unwrap_or("").to_string()).collect()
        })
        .unwrap_or_default())
}

#[tokio::test]
async fn rolling_update_from_a_file_takes_over_the_old_name_unless_given_a_new_one() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let _rc = FakeReplication::start(&c.server.url());
    frontend(&c).await?;

    // kubectl 1.17 with one controller name: the new controller ends up with the old name.
    let v2 = example("frontend-v2-rc.yaml");
    let mut args = vec!["rolling-update", "frontend", "-f", &v2];
    args.extend(FAST);
    let out = c.run(&args).await?;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stderr, DEPRECATED);
    assert_eq!(
        out.stdout,
        "\
Created frontend-v2
Scaling up frontend-v2 from 0 to 3, scaling down frontend from 3 to 0 (keep 3 pods available, don't exceed 4 pods)
Scaling frontend-v2 up to 1
Scaling frontend down to 2
Scaling frontend-v2 up to 2
Scaling frontend down to 1
Scaling frontend-v2 up to 3
Scaling frontend down to 0
Update succeeded. Deleting old controller: frontend
Renaming frontend-v2 to frontend
replicationcontroller/frontend rolling updated
"
    );
    assert_eq!(c.ok(&["get", "rc", "-o", "name"]).await?, "replicationcontroller/frontend\n");
    let rc = json(&c, "rc/frontend").await?;
    assert_eq!(rc["spec"]["replicas"], 3, "replicas left out of the file come from the old controller");
    assert_eq!(rc["spec"]["selector"]["version"], "v2");
    let annotations = rc["metadata"]["annotations"].as_object().cloned().unwrap_or_default();
    assert!(!annotations.contains_key("kubectl.kubernetes.io/desired-replicas"), "{annotations:?}");
    assert!(!annotations.contains_key("kubectl.kubernetes.io/update-source-id"), "{annotations:?}");
    assert_eq!(pod_images(&c).await?, vec!["rkube/toolbox:latest"; 3]);

    // With the new name given, the new controller keeps it and the old one is deleted.
    let v3 = c.file(
        "frontend-v3.yaml",
        &std::fs::read_to_string(&v2)?.replace("frontend-v2", "frontend-v3").replace("v2", "v3"),
    );
    let mut args = vec!["rolling-update", "frontend", "frontend-v3", "-f", &v3];
    args.extend(FAST);
    let out = c.run(&args).await?;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.ends_with(
            "Scaling frontend down to 0\nUpdate succeeded. Deleting frontend\nreplicationcontroller/frontend-v3 rolling updated to \"frontend-v3\"\n"
        ),
        "{}",
        out.stdout
    );
    assert_eq!(c.ok(&["get", "rc", "-o", "name"]).await?, "replicationcontroller/frontend-v3\n");
    Ok(())
}

#[tokio::test]
async fn rolling_update_to_an_image_keeps_the_old_name() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let _rc = FakeReplication::start(&c.server.url());
    frontend(&c).await?;

    let mut args = vec!["rolling-update", "frontend", "--image=rkube/toolbox:latest"];
    args.extend(FAST);
    let out = c.run(&args).await?;
    assert_eq!(out.code, 0, "{out:?}");
    let first = out.stdout.lines().next().unwrap_or_default();
    let new = first.strip_prefix("Created ").expect("the first line names the new controller").to_string();
    let hash = new.strip_prefix("frontend-").expect("named after the old controller");
    assert!(hash.len() == 32 && hash.chars().all(|c| c.is_ascii_hexdigit()), "{new}");
    assert_eq!(
        out.stdout,
        format!(
            "\
Created {new}
Scaling up {new} from 0 to 3, scaling down frontend from 3 to 0 (keep 3 pods available, don't exceed 4 pods)
Scaling {new} up to 1
Scaling frontend down to 2
Scaling {new} up to 2
Scaling frontend down to 1
Scaling {new} up to 3
Scaling frontend down to 0
Update succeeded. Deleting old controller: frontend
Renaming {new} to frontend
replicationcontroller/frontend rolling updated
"
        )
    );
    assert_eq!(c.ok(&["get", "rc", "-o", "name"]).await?, "replicationcontroller/frontend\n");
    let rc = json(&c, "rc/frontend").await?;
    assert_eq!(rc["spec"]["selector"]["deployment"], hash);
    assert_eq!(rc["spec"]["template"]["metadata"]["labels"]["deployment"], hash);
    assert_eq!(rc["spec"]["template"]["spec"]["containers"][0]["image"], "rkube/toolbox:latest");
    // The renamed controller adopts the new pods: no old pod is left and none is added.
    wait_for(Duration::from_secs(10), || async {
        json(&c, "rc/frontend").await.is_ok_and(|rc| rc["status"]["readyReplicas"] == 3)
    })
    .await?;
    assert_eq!(pod_images(&c).await?, vec!["rkube/toolbox:latest"; 3]);
    Ok(())
}

#[tokio::test]
async fn a_stuck_update_times_out_and_rollback_restores_the_old_controller() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let fake = FakeReplication::start(&c.server.url());
    fake.never_ready("rkube/toolbox:latest");
    frontend(&c).await?;

    let v2 = example("frontend-v2-rc.yaml");
    let stuck = c
        .run(&[
            "rolling-update",
            "frontend",
            "-f",
            &v2,
            "--update-period=100ms",
            "--poll-interval=100ms",
            "--timeout=2s",
        ])
        .await?;
    assert_eq!(stuck.code, 1, "{stuck:?}");
    assert_eq!(
        stuck.stdout,
        "\
Created frontend-v2
Scaling up frontend-v2 from 0 to 3, scaling down frontend from 3 to 0 (keep 3 pods available, don't exceed 4 pods)
Scaling frontend-v2 up to 1
"
    );
    assert_eq!(stuck.stderr, format!("{DEPRECATED}error: timed out waiting for any update progress to be made\n"));
    assert_eq!(
        json(&c, "rc/frontend").await?["metadata"]["annotations"]["kubectl.kubernetes.io/original-replicas"],
        "3"
    );

    let mut args = vec!["rolling-update", "frontend", "frontend-v2", "--rollback"];
    args.extend(FAST);
    let back = c.run(&args).await?;
    assert_eq!(back.code, 0, "{back:?}");
    assert_eq!(
        back.stdout,
        "\
Setting \"frontend\" replicas to 3
Continuing update with existing controller frontend.
Scaling up frontend from 3 to 3, scaling down frontend-v2 from 1 to 0 (keep 3 pods available, don't exceed 4 pods)
Scaling frontend-v2 down to 0
Update succeeded. Deleting frontend-v2
replicationcontroller/frontend rolling updated
"
    );
    assert_eq!(c.ok(&["get", "rc", "-o", "name"]).await?, "replicationcontroller/frontend\n");
    wait_for(Duration::from_secs(10), || async {
        pod_images(&c).await.is_ok_and(|i| i == vec!["rkube/toolbox:1.0"; 3])
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn rolling_update_refuses_what_kubectl_refused() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let same = c.file(
        "same-selector.yaml",
        "\
apiVersion: v1
kind: ReplicationController
metadata: {name: frontend-same}
spec:
  replicas: 3
  selector: {name: frontend, version: v1}
  template:
    metadata:
      labels: {name: frontend, version: v1}
    spec:
      containers:
      - {name: frontend, image: rkube/toolbox:latest}
",
    );
    let deployment = c.file(
        "deployment.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: web, image: x}]}\n",
    );
    let missing = c.run(&["rolling-update", "frontend", "-f", &same]).await?;
    assert_eq!(
        (missing.code, missing.stderr.as_str()),
        (
            1,
            format!("{DEPRECATED}Error from server (NotFound): replicationcontrollers \"frontend\" not found\n")
                .as_str()
        )
    );
    c.ok(&["create", "-f", &example("frontend-rc.yaml")]).await?;
    let equal = c.run(&["rolling-update", "frontend", "-f", &same]).await?;
    assert_eq!(
        equal.stderr,
        format!(
            "{DEPRECATED}error: {same} must specify a matching key with non-equal value in Selector for frontend\n"
        )
    );
    let wrong_kind = c.run(&["rolling-update", "frontend", "-f", &deployment]).await?;
    assert_eq!(
        wrong_kind.stderr,
        format!("{DEPRECATED}error: {deployment} contains a apps/v1, Kind=Deployment not a ReplicationController\n")
    );
    let same_image = c.run(&["rolling-update", "frontend", "--image=rkube/toolbox:1.0"]).await?;
    assert_eq!(
        same_image.stderr,
        format!(
            "{DEPRECATED}error: --image-pull-policy (Always|Never|IfNotPresent) must be provided when --image is the same as existing container image\n"
        )
    );
    let no_source = c.run(&["rolling-update", "frontend"]).await?;
    assert_eq!(
        no_source.stderr,
        "error: Must specify --filename or --image for new controller\nSee 'rkubectl rolling-update -h' for help and examples\n"
    );
    let nothing_to_undo = c.run(&["rolling-update", "frontend", "--rollback"]).await?;
    assert_eq!(nothing_to_undo.stderr, format!("{DEPRECATED}error: Could not find  to rollback.\n"));
    let v2 = example("frontend-v2-rc.yaml");
    let dry = c.run(&["rolling-update", "frontend", "-f", &v2, "--dry-run"]).await?;
    assert_eq!(dry.stdout, "Rolling from:\nfrontend\nTo:\nfrontend-v2\n");
    assert_eq!(c.ok(&["get", "rc", "-o", "name"]).await?, "replicationcontroller/frontend\n");
    Ok(())
}
