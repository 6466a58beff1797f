//! `rkubectl rollout ...` and `set image` against a real apiserver. No
//! deployment controller runs here: the ReplicaSets a deployment's history
//! is made of are created by hand (owned by the deployment, with revision
//! and change-cause annotations), and the status `rollout status` reads is
//! written by hand, as the controller would write it.

mod support;

use rkube_api::resource::lookup;
use rkube_client::Client;
use serde_json::{Value, json};
use support::Cluster;

fn example(name: &str) -> String {
    support::examples_dir().join(name).display().to_string()
}

async fn json(c: &Cluster, what: &str) -> anyhow::Result<Value> {
    Ok(serde_json::from_str(&c.ok(&["get", what, "-o", "json"]).await?)?)
}

/// A ReplicaSet of revision `revision` owned by the deployment `uid`.
fn replica_set(uid: &str, revision: u32, image: &str, cause: &str) -> String {
    format!(
        "\
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: web-h{revision}
  labels: {{app: web, pod-template-hash: h{revision}}}
  annotations:
    deployment.kubernetes.io/revision: \"{revision}\"
    kubernetes.io/change-cause: {cause}
  ownerReferences:
  - {{apiVersion: apps/v1, kind: Deployment, name: web, uid: {uid}, controller: true}}
spec:
  replicas: 0
  selector:
    matchLabels: {{app: web, pod-template-hash: h{revision}}}
  template:
    metadata:
      labels: {{app: web, pod-template-hash: h{revision}}}
    spec:
      containers:
      - name: web
        image: {image}
        imagePullPolicy: IfNotPresent
        command: [\"sh\", \"-c\", \"mkdir -p /www && hostname > /www/index.html && httpd -f -p 80 -h /www\"]
        ports:
        - containerPort: 80
        readinessProbe:
          httpGet:
            path: /
            port: 80
          periodSeconds: 2
"
    )
}

async fn write_status(c: &Cluster, resource: &str, name: &str, status: Value) -> anyhow::Result<()> {
    let client = Client::new(&c.server.url())?;
    client.patch(lookup(resource)?, "default", name, &json!({ "status": status }), true).await?;
    Ok(())
}

#[tokio::test]
async fn history_undo_and_set_image_of_a_deployment() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.ok(&["create", "-f", &example("deployment.yaml")]).await?;
    let uid = json(&c, "deploy/web").await?["metadata"]["uid"].as_str().unwrap_or_default().to_string();
    let sets = c.file(
        "sets.yaml",
        &format!(
            "{}---\n{}",
            replica_set(&uid, 1, "rkube/toolbox:1.0", "toolbox 1.0"),
            replica_set(&uid, 2, "rkube/toolbox:latest", "toolbox latest")
        ),
    );
    c.ok(&["create", "-f", &sets]).await?;

    assert_eq!(
        c.ok(&["set", "image", "deployment/web", "web=rkube/toolbox:latest"]).await?,
        "deployment.apps/web image updated\n"
    );
    assert_eq!(c.ok(&["set", "image", "deployment/web", "web=rkube/toolbox:latest"]).await?, "", "no change, no line");
    let missing = c.run(&["set", "image", "deployment/web", "nope=x"]).await?;
    assert_eq!((missing.code, missing.stderr.as_str()), (1, "error: unable to find container named \"nope\"\n"));

    assert_eq!(
        c.ok(&["rollout", "history", "deployment/web"]).await?,
        "deployment.apps/web \nREVISION  CHANGE-CAUSE\n1         toolbox 1.0\n2         toolbox latest\n\n"
    );
    let one = c.ok(&["rollout", "history", "deployment", "web", "--revision=1"]).await?;
    assert!(
        one.starts_with(
            "deployment.apps/web with revision #1\nPod Template:\n  Labels:\tapp=web\n\tpod-template-hash=h1\n  Annotations:\tkubernetes.io/change-cause: toolbox 1.0\n  Containers:\n   web:\n    Image:\trkube/toolbox:1.0\n"
        ),
        "{one}"
    );

    assert_eq!(c.ok(&["rollout", "undo", "deployment/web"]).await?, "deployment.apps/web rolled back\n");
    let d = json(&c, "deploy/web").await?;
    assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["image"], "rkube/toolbox:1.0");
    assert!(d["spec"]["template"]["metadata"]["labels"].get("pod-template-hash").is_none(), "{d}");
    assert_eq!(d["metadata"]["annotations"]["kubernetes.io/change-cause"], "toolbox 1.0");
    assert_eq!(
        c.ok(&["rollout", "undo", "deployment/web", "--to-revision=1"]).await?,
        "deployment.apps/web skipped rollback (current template already matches revision 1)\n"
    );
    assert_eq!(
        c.ok(&["rollout", "undo", "deployment/web", "--to-revision=2"]).await?,
        "deployment.apps/web rolled back\n"
    );
    assert_eq!(
        json(&c, "deploy/web").await?["spec"]["template"]["spec"]["containers"][0]["image"],
        "rkube/toolbox:latest"
    );
    let far = c.run(&["rollout", "undo", "deployment/web", "--to-revision=5"]).await?;
    assert_eq!((far.code, far.stderr.as_str()), (1, "error: unable to find specified revision 5 in history\n"));

    c.ok(&["create", "-f", &example("frontend-rc.yaml")]).await?;
    let rc_history = c.run(&["rollout", "history", "rc/frontend"]).await?;
    assert_eq!(rc_history.stderr, "error: no history viewer has been implemented for \"ReplicationController\"\n");
    let rc_undo = c.run(&["rollout", "undo", "rc/frontend"]).await?;
    assert_eq!(rc_undo.stderr, "error: no rollbacker has been implemented for \"ReplicationController\"\n");
    Ok(())
}

#[tokio::test]
async fn pause_resume_and_restart() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.ok(&["create", "-f", &example("deployment.yaml"), "-f", &example("daemonset.yaml")]).await?;
    assert_eq!(c.ok(&["rollout", "pause", "deployment/web"]).await?, "deployment.apps/web paused\n");
    assert_eq!(json(&c, "deploy/web").await?["spec"]["paused"], true);
    let again = c.run(&["rollout", "pause", "deployment/web"]).await?;
    assert_eq!((again.code, again.stderr.as_str()), (1, "error: deployments.apps \"web\" is already paused\n"));
    let paused_restart = c.run(&["rollout", "restart", "deployment/web"]).await?;
    assert_eq!(
        paused_restart.stderr,
        "error: deployments.apps \"web\" can't restart paused deployment (run rollout resume first)\n"
    );
    let paused_undo = c.run(&["rollout", "undo", "deployment/web"]).await?;
    assert_eq!(paused_undo.stderr, "error: no rollout history found for deployment \"web\"\n");
    assert_eq!(c.ok(&["rollout", "resume", "deployment/web"]).await?, "deployment.apps/web resumed\n");
    let not_paused = c.run(&["rollout", "resume", "deployment/web"]).await?;
    assert_eq!(not_paused.stderr, "error: deployments.apps \"web\" is not paused\n");

    assert_eq!(
        c.ok(&["rollout", "restart", "deployment/web", "ds/node-agent"]).await?,
        "deployment.apps/web restarted\ndaemonset.apps/node-agent restarted\n"
    );
    for what in ["deploy/web", "ds/node-agent"] {
        let v = json(&c, what).await?;
        let at = v["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .as_str()
            .unwrap_or("");
        assert!(at.len() == 20 && at.ends_with('Z'), "{what}: {at:?}");
    }
    let ds_pause = c.run(&["rollout", "pause", "ds/node-agent"]).await?;
    assert_eq!(ds_pause.stderr, "error: daemonsets.apps \"node-agent\" pausing is not supported\n");
    assert_eq!(
        c.ok(&["rollout", "history", "ds/node-agent"]).await?,
        "daemonset.apps/node-agent \nNo rollout history found.\n"
    );
    let ds_undo = c.run(&["rollout", "undo", "ds/node-agent"]).await?;
    assert_eq!(ds_undo.stderr, "error: no last revision to roll back to\n");
    let nothing = c.run(&["rollout", "pause"]).await?;
    assert_eq!(nothing.stderr, "error: required resource not specified\n");
    Ok(())
}

#[tokio::test]
async fn status_follows_what_the_controller_writes() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.ok(&["create", "-f", &example("deployment.yaml"), "-f", &example("daemonset.yaml")]).await?;
    let generation = json(&c, "deploy/web").await?["metadata"]["generation"].as_i64().unwrap_or(1);

    let unobserved = c.ok(&["rollout", "status", "deployment/web", "--watch=false"]).await?;
    assert_eq!(unobserved, "Waiting for deployment spec update to be observed...\n");
    write_status(
        &c,
        "deployments",
        "web",
        json!({"observedGeneration": generation, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 1}),
    )
    .await?;
    assert_eq!(
        c.ok(&["rollout", "status", "deploy/web", "--watch=false"]).await?,
        "Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated...\n"
    );
    let timed_out = c.run(&["rollout", "status", "deploy/web", "--timeout=1s"]).await?;
    assert_eq!((timed_out.code, timed_out.stderr.as_str()), (1, "error: timed out waiting for the condition\n"));

    let watching = c.spawn(&["rollout", "status", "deployment/web"])?;
    watching.wait_for_output("1 out of 3 new replicas have been updated...").await?;
    write_status(
        &c,
        "deployments",
        "web",
        json!({"observedGeneration": generation, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 2}),
    )
    .await?;
    watching
        .wait_for_output("Waiting for deployment \"web\" rollout to finish: 2 of 3 updated replicas are available...\n")
        .await?;
    write_status(
        &c,
        "deployments",
        "web",
        json!({"observedGeneration": generation, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}),
    )
    .await?;
    watching.wait_for_output("deployment \"web\" successfully rolled out\n").await?;
    assert_eq!(watching.wait().await?, 0);

    write_status(
        &c,
        "deployments",
        "web",
        json!({"observedGeneration": generation, "conditions": [
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}),
    )
    .await?;
    let stuck = c.run(&["rollout", "status", "deploy/web"]).await?;
    assert_eq!((stuck.code, stuck.stderr.as_str()), (1, "error: deployment \"web\" exceeded its progress deadline\n"));

    let ds_generation = json(&c, "ds/node-agent").await?["metadata"]["generation"].as_i64().unwrap_or(1);
    write_status(
        &c,
        "daemonsets",
        "node-agent",
        json!({"observedGeneration": ds_generation, "desiredNumberScheduled": 2, "currentNumberScheduled": 2,
               "numberReady": 2, "updatedNumberScheduled": 2, "numberAvailable": 2, "numberMisscheduled": 0}),
    )
    .await?;
    assert_eq!(
        c.ok(&["rollout", "status", "ds/node-agent"]).await?,
        "daemon set \"node-agent\" successfully rolled out\n"
    );

    c.ok(&["create", "-f", &example("frontend-rc.yaml")]).await?;
    let rc = c.run(&["rollout", "status", "rc/frontend"]).await?;
    assert_eq!(rc.stderr, "error: no status viewer has been implemented for ReplicationController\n");
    Ok(())
}
