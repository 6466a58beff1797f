//! `rkubectl delete`, `label` and `annotate` against a real apiserver, plus
//! `version` and `api-resources`.

mod support;

use support::Cluster;

const PODS: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - {name: web, image: nginx}
---
apiVersion: v1
kind: Pod
metadata:
  name: web-2
  labels: {app: web}
spec:
  containers:
  - {name: web, image: nginx}
---
apiVersion: v1
kind: Pod
metadata:
  name: db
  labels: {app: db}
spec:
  containers:
  - {name: db, image: postgres}
";

#[tokio::test]
async fn delete_by_name_selector_file_and_all() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let path = c.file("pods.yaml", PODS);
    c.ok(&["create", "-f", &path]).await?;

    assert_eq!(c.ok(&["delete", "pod", "db"]).await?, "pod \"db\" deleted\n");
    let gone = c.run(&["get", "pod", "db"]).await?;
    assert_eq!(gone.stderr, "Error from server (NotFound): pods \"db\" not found\n");
    let again = c.run(&["delete", "pod", "db"]).await?;
    assert_eq!((again.code, again.stderr.as_str()), (1, "Error from server (NotFound): pods \"db\" not found\n"));
    assert_eq!(c.run(&["delete", "pod", "db", "--ignore-not-found"]).await?.code, 0);

    assert_eq!(
        c.ok(&["delete", "pods", "-l", "app=web", "--grace-period=0", "--force"]).await?,
        "pod \"web\" deleted\npod \"web-2\" deleted\n"
    );
    let none = c.run(&["delete", "pods", "-l", "app=web"]).await?;
    assert_eq!((none.code, none.stderr.as_str()), (0, "No resources found\n"));

    c.ok(&["create", "-f", &path]).await?;
    let by_file = c.ok(&["delete", "-f", &path]).await?;
    assert_eq!(by_file, "pod \"web\" deleted\npod \"web-2\" deleted\npod \"db\" deleted\n");

    c.ok(&["create", "cm", "a", "--from-literal=k=v"]).await?;
    c.ok(&["create", "cm", "b", "--from-literal=k=v"]).await?;
    assert_eq!(c.ok(&["delete", "cm", "--all", "-o", "name"]).await?, "configmap/a\nconfigmap/b\n");

    let unnamed = c.run(&["delete", "pods"]).await?;
    assert_eq!(unnamed.stderr, "error: resource(s) were provided, but no name was specified\n");
    let protected = c.run(&["delete", "namespace", "default"]).await?;
    assert_eq!(
        protected.stderr,
        "Error from server (Forbidden): namespaces \"default\" is forbidden: this namespace may not be deleted\n"
    );
    Ok(())
}

#[tokio::test]
async fn delete_waits_for_graceful_pods_but_not_forever() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let path = c.file(
        "bound.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bound\nspec:\n  nodeName: node1\n  containers:\n  - {name: c, image: nginx}\n",
    );
    c.ok(&["create", "-f", &path]).await?;
    // No kubelet runs here, so the pod stays Terminating until forced.
    let timed_out = c.run(&["delete", "pod", "bound", "--timeout=1s"]).await?;
    assert_eq!(timed_out.code, 1);
    assert_eq!(timed_out.stdout, "pod \"bound\" deleted\n");
    assert_eq!(timed_out.stderr, "error: timed out waiting for the condition on pods/bound\n");
    let status = c.ok(&["get", "pod", "bound"]).await?;
    assert!(status.contains("Terminating"), "{status}");
    let forced = c.run(&["delete", "pod", "bound", "--force"]).await?;
    assert_eq!(forced.code, 0, "{forced:?}");
    assert!(forced.stderr.starts_with("Warning: Immediate deletion does not wait"), "{forced:?}");
    assert_eq!(c.run(&["get", "pod", "bound"]).await?.code, 1);
    Ok(())
}

#[tokio::test]
async fn labels_change_only_with_overwrite_and_can_be_removed() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let path = c.file("pods.yaml", PODS);
    c.ok(&["create", "-f", &path]).await?;

    assert_eq!(c.ok(&["label", "pods", "web", "tier=front", "env=prod"]).await?, "pod/web labeled\n");
    let refused = c.run(&["label", "pods", "web", "app=v2"]).await?;
    assert_eq!(refused.code, 1);
    assert_eq!(refused.stderr, "error: 'app' already has a value (web), and --overwrite is false\n");
    assert_eq!(c.ok(&["label", "pod/web", "app=v2", "--overwrite"]).await?, "pod/web labeled\n");
    assert_eq!(c.ok(&["get", "pods", "-l", "app=v2,tier=front", "-o", "name"]).await?, "pod/web\n");

    assert_eq!(c.ok(&["label", "pods", "web", "env-"]).await?, "pod/web unlabeled\n");
    let labels = c.ok(&["get", "pod", "web", "--show-labels", "--no-headers"]).await?;
    assert!(labels.trim_end().ends_with("app=v2,tier=front"), "{labels}");
    assert_eq!(c.ok(&["label", "pods", "web", "env-"]).await?, "label \"env\" not found.\npod/web not labeled\n");

    assert_eq!(c.ok(&["label", "pods", "-l", "app=web", "team=a"]).await?, "pod/web-2 labeled\n");
    assert_eq!(
        c.ok(&["label", "pods", "--all", "zone=z1"]).await?,
        "pod/db labeled\npod/web labeled\npod/web-2 labeled\n"
    );
    let invalid = c.run(&["label", "pods", "web", "bad=not valid!"]).await?;
    assert_eq!(invalid.code, 1);
    assert!(invalid.stderr.starts_with("error: invalid label value: \"bad=not valid!\""), "{invalid:?}");

    assert_eq!(c.ok(&["annotate", "pods", "web", "note=hello world"]).await?, "pod/web annotated\n");
    let json: serde_json::Value = serde_json::from_str(&c.ok(&["get", "pod", "web", "-o", "json"]).await?)?;
    assert_eq!(json["metadata"]["annotations"]["note"], "hello world");
    let again = c.run(&["annotate", "pods", "web", "note=other"]).await?;
    assert_eq!(again.stderr, "error: 'note' already has a value (hello world), and --overwrite is false\n");
    Ok(())
}

#[tokio::test]
async fn delete_passes_the_cascade_policy() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let path = c.file("cms.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n");
    c.ok(&["create", "-f", &path]).await?;
    // No garbage collector runs here, so the policy's finalizer stays and shows which policy was sent.
    let orphan = c.run(&["delete", "cm", "a", "--cascade=false", "--wait=false"]).await?;
    assert_eq!(orphan.code, 0, "{orphan:?}");
    assert_eq!(orphan.stdout, "configmap \"a\" deleted\n");
    assert_eq!(
        orphan.stderr,
        "warning: --cascade=false is deprecated (boolean value) and can be replaced with --cascade=orphan.\n"
    );
    let a: serde_json::Value = serde_json::from_str(&c.ok(&["get", "cm", "a", "-o", "json"]).await?)?;
    assert_eq!(a["metadata"]["finalizers"], serde_json::json!(["orphan"]));
    c.ok(&["delete", "cm", "b", "--cascade=foreground", "--wait=false"]).await?;
    let b: serde_json::Value = serde_json::from_str(&c.ok(&["get", "cm", "b", "-o", "json"]).await?)?;
    assert_eq!(b["metadata"]["finalizers"], serde_json::json!(["foregroundDeletion"]));
    let bad = c.run(&["delete", "cm", "a", "--cascade=sideways"]).await?;
    assert_eq!(
        bad.stderr,
        "error: invalid cascade value (sideways). Must be \"background\", \"foreground\", or \"orphan\".\n"
    );
    Ok(())
}

#[tokio::test]
async fn version_and_api_resources() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let version = c.ok(&["version"]).await?;
    let lines: Vec<&str> = version.lines().collect();
    assert!(lines[0].starts_with("Client Version: v1.33.0"), "{version}");
    assert!(lines[1].starts_with("Server Version: v1.33.0"), "{version}");
    let resources = c.ok(&["api-resources"]).await?;
    assert!(resources.starts_with("NAME "), "{resources}");
    assert!(resources.contains("\npods  "), "{resources}");
    assert!(resources.contains(" deploy "), "{resources}");
    Ok(())
}
