//! `rkubectl scale` against a real apiserver: by name, several names, `-f`,
//! `-l`, `--all`, for replication controllers, replica sets and deployments,
//! with kubectl's precondition and error messages.

mod support;

use support::Cluster;

const WORKLOADS: &str = "\
apiVersion: v1
kind: ReplicationController
metadata:
  name: frontend
  labels: {tier: web}
spec:
  replicas: 1
  selector: {name: frontend}
  template:
    metadata:
      labels: {name: frontend}
    spec:
      containers:
      - {name: web, image: rkube/toolbox:1.0}
---
apiVersion: v1
kind: ReplicationController
metadata:
  name: backend
spec:
  replicas: 1
  selector: {name: backend}
  template:
    metadata:
      labels: {name: backend}
    spec:
      containers:
      - {name: api, image: rkube/toolbox:1.0}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: cache
  labels: {tier: web}
spec:
  replicas: 2
  selector:
    matchLabels: {name: cache}
  template:
    metadata:
      labels: {name: cache}
    spec:
      containers:
      - {name: cache, image: rkube/toolbox:1.0}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - {name: web, image: rkube/toolbox:1.0}
";

async fn replicas(c: &Cluster, what: &str) -> anyhow::Result<String> {
    let json: serde_json::Value = serde_json::from_str(&c.ok(&["get", what, "-o", "json"]).await?)?;
    Ok(json["spec"]["replicas"].to_string())
}

#[tokio::test]
async fn scale_by_name_names_file_selector_and_all() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let path = c.file("workloads.yaml", WORKLOADS);
    c.ok(&["create", "-f", &path]).await?;

    assert_eq!(c.ok(&["scale", "rc", "frontend", "--replicas=3"]).await?, "replicationcontroller/frontend scaled\n");
    let table = c.ok(&["get", "rc", "frontend"]).await?;
    assert!(
        table.starts_with("NAME       DESIRED   CURRENT   READY   AGE\nfrontend   3         0         0       "),
        "{table}"
    );

    assert_eq!(
        c.ok(&["scale", "rc", "frontend", "backend", "--replicas=2"]).await?,
        "replicationcontroller/frontend scaled\nreplicationcontroller/backend scaled\n"
    );
    assert_eq!(replicas(&c, "rc/backend").await?, "2");

    assert_eq!(
        c.ok(&["scale", "-f", &path, "--replicas=4", "-o", "name"]).await?,
        "replicationcontroller/frontend\nreplicationcontroller/backend\nreplicaset.apps/cache\ndeployment.apps/web\n"
    );
    assert_eq!(replicas(&c, "deploy/web").await?, "4");
    assert_eq!(replicas(&c, "rs/cache").await?, "4");

    assert_eq!(
        c.ok(&["scale", "rc", "-l", "tier=web", "--replicas=5"]).await?,
        "replicationcontroller/frontend scaled\n"
    );
    assert_eq!(replicas(&c, "rc/backend").await?, "4");
    assert_eq!(
        c.ok(&["scale", "rc", "--all", "--replicas=0"]).await?,
        "replicationcontroller/backend scaled\nreplicationcontroller/frontend scaled\n"
    );
    assert_eq!(
        c.ok(&["scale", "deploy/web", "rs/cache", "--replicas=1"]).await?,
        "deployment.apps/web scaled\nreplicaset.apps/cache scaled\n"
    );
    Ok(())
}

#[tokio::test]
async fn scale_preconditions_and_errors_read_like_kubectl() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let path = c.file("workloads.yaml", WORKLOADS);
    c.ok(&["create", "-f", &path]).await?;

    let stale = c.run(&["scale", "rc", "frontend", "--replicas=3", "--current-replicas=2"]).await?;
    assert_eq!((stale.code, stale.stderr.as_str()), (1, "error: Expected replicas to be 2, was 1\n"));
    assert_eq!(replicas(&c, "rc/frontend").await?, "1");
    assert_eq!(
        c.ok(&["scale", "rc", "frontend", "--replicas=3", "--current-replicas=1"]).await?,
        "replicationcontroller/frontend scaled\n"
    );
    let old_version = c.run(&["scale", "rc", "frontend", "--replicas=1", "--resource-version=1"]).await?;
    assert_eq!(old_version.code, 1);
    assert!(old_version.stderr.starts_with("error: Expected resource version to be 1, was "), "{old_version:?}");

    let missing = c.run(&["scale", "rc", "nope", "--replicas=1"]).await?;
    assert_eq!(
        (missing.code, missing.stderr.as_str()),
        (1, "Error from server (NotFound): replicationcontrollers \"nope\" not found\n")
    );
    let none = c.run(&["scale", "rc", "-l", "tier=none", "--replicas=1"]).await?;
    assert_eq!(none.stderr, "error: no objects passed to scale\n");
    let no_count = c.run(&["scale", "rc", "frontend"]).await?;
    assert_eq!(no_count.stderr, "error: required flag(s) \"replicas\" not set\n");
    let negative = c.run(&["scale", "rc", "frontend", "--replicas=-1"]).await?;
    assert_eq!(
        negative.stderr,
        "error: The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0\n"
    );
    let unnamed = c.run(&["scale", "rc", "--replicas=1"]).await?;
    assert_eq!(unnamed.stderr, "error: resource(s) were provided, but no name was specified\n");
    c.ok(&["create", "cm", "settings", "--from-literal=a=b"]).await?;
    let not_scalable = c.run(&["scale", "cm", "settings", "--replicas=1"]).await?;
    assert_eq!(
        (not_scalable.code, not_scalable.stderr.as_str()),
        (1, "Error from server (NotFound): the server could not find the requested resource\n")
    );
    Ok(())
}

#[tokio::test]
async fn scale_with_a_timeout_waits_for_the_controller() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let path = c.file("workloads.yaml", WORKLOADS);
    c.ok(&["create", "-f", &path]).await?;
    // Nothing writes the status here, so the wait ends in kubectl's timeout.
    let waited = c.run(&["scale", "rc", "frontend", "--replicas=2", "--timeout=1500ms"]).await?;
    assert_eq!((waited.code, waited.stderr.as_str()), (1, "error: timed out waiting for \"frontend\" to be synced\n"));
    Ok(())
}
