//! `rkubectl apply` against a real apiserver: created, configured and
//! unchanged; fields dropped from the configuration are removed while what
//! others set is kept; containers merge by name; directories and several
//! `-f`; kubectl's warning for objects created without apply.

mod support;

use serde_json::Value;
use support::Cluster;

const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web, tier: front}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: rkube/toolbox:1.0
        env:
        - {name: GREETING, value: hello}
        ports:
        - containerPort: 80
";

async fn json(c: &Cluster, what: &str) -> anyhow::Result<Value> {
    Ok(serde_json::from_str(&c.ok(&["get", what, "-o", "json"]).await?)?)
}

#[tokio::test]
async fn apply_creates_configures_and_leaves_unchanged() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let path = c.file("web.yaml", DEPLOYMENT);
    assert_eq!(c.ok(&["apply", "-f", &path]).await?, "deployment.apps/web created\n");
    let live = json(&c, "deploy/web").await?;
    let recorded =
        live["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"].as_str().unwrap_or("");
    assert!(recorded.starts_with("{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"annotations\":{},\"labels\":{\"app\":\"web\",\"tier\":\"front\"},\"name\":\"web\",\"namespace\":\"default\"}"), "{recorded}");
    assert!(recorded.ends_with("}\n"), "{recorded:?}");
    assert_eq!(c.ok(&["apply", "-f", &path]).await?, "deployment.apps/web unchanged\n");

    // Someone else's label survives; the label the configuration dropped goes.
    c.ok(&["label", "deploy/web", "team=a"]).await?;
    let changed = DEPLOYMENT
        .replace("labels: {app: web, tier: front}", "labels: {app: web}")
        .replace("replicas: 2", "replicas: 3")
        .replace("image: rkube/toolbox:1.0", "image: rkube/toolbox:latest")
        .replace("        - {name: GREETING, value: hello}\n", "        - {name: GREETING, value: hello}\n        - {name: COLOR, value: blue}\n")
        .replace(
            "        - containerPort: 80\n",
            "        - containerPort: 80\n      - name: sidecar\n        image: rkube/toolbox:1.0\n        command: [sleep, \"3600\"]\n",
        );
    let path = c.file("web.yaml", &changed);
    assert_eq!(c.ok(&["apply", "-f", &path]).await?, "deployment.apps/web configured\n");
    let live = json(&c, "deploy/web").await?;
    assert_eq!(live["metadata"]["labels"], serde_json::json!({"app": "web", "team": "a"}));
    assert_eq!(live["spec"]["replicas"], 3);
    let containers = &live["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers[0]["name"], "web");
    assert_eq!(containers[0]["image"], "rkube/toolbox:latest");
    assert_eq!(
        containers[0]["env"],
        serde_json::json!([{"name": "GREETING", "value": "hello"}, {"name": "COLOR", "value": "blue"}])
    );
    assert_eq!(containers[1]["name"], "sidecar");
    assert_eq!(c.ok(&["apply", "-f", &path]).await?, "deployment.apps/web unchanged\n");

    // Dropping the sidecar and the env var removes them.
    let path = c.file("web.yaml", DEPLOYMENT);
    assert_eq!(c.ok(&["apply", "-f", &path, "-o", "name"]).await?, "deployment.apps/web\n");
    let live = json(&c, "deploy/web").await?;
    let containers = live["spec"]["template"]["spec"]["containers"].as_array().cloned().unwrap_or_default();
    assert_eq!(containers.len(), 1, "{containers:?}");
    assert_eq!(containers[0]["env"], serde_json::json!([{"name": "GREETING", "value": "hello"}]));
    assert_eq!(live["spec"]["replicas"], 2);
    Ok(())
}

#[tokio::test]
async fn apply_takes_directories_several_files_and_objects_created_without_it() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let first = c.file("dir/a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: v}\n");
    c.file("dir/b.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\ndata: {k: v}\n");
    let single = c.file("c.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {k: v}\n");
    let dir = std::path::Path::new(&first).parent().expect("a directory").display().to_string();
    c.ok(&["create", "-f", &single]).await?;
    let out = c.run(&["apply", "-f", &dir, "-f", &single]).await?;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "configmap/a created\nconfigmap/b created\nconfigmap/c configured\n");
    assert_eq!(
        out.stderr,
        "Warning: resource configmaps/c is missing the kubectl.kubernetes.io/last-applied-configuration annotation which is required by rkubectl apply. rkubectl apply should only be used on resources created declaratively by either rkubectl create --save-config or rkubectl apply. The missing annotation will be patched automatically.\n"
    );
    assert_eq!(c.ok(&["apply", "-f", &single]).await?, "configmap/c unchanged\n");

    let bad = c.file("bad.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c}]}\n");
    let refused = c.run(&["apply", "-f", &bad]).await?;
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.starts_with("The Pod \"p\" is invalid: "), "{refused:?}");
    let none = c.run(&["apply"]).await?;
    assert_eq!(none.stderr, "error: must specify one of -f and -k\n");
    Ok(())
}
