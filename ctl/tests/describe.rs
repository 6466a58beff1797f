//! `rkubectl describe` against a real apiserver.

mod support;

use support::{Cluster, examples_dir};

/// The value of a top-level `Key:  value` line of a description.
fn value_of<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':')).map(str::trim)
}

const EVENT: &str = "\
apiVersion: v1
kind: Event
metadata:
  name: redis-php.scheduled
involvedObject:
  apiVersion: v1
  kind: Pod
  name: redis-php
  namespace: default
type: Normal
reason: Scheduled
message: Successfully assigned default/redis-php to node1
source:
  component: default-scheduler
count: 1
---
apiVersion: v1
kind: Event
metadata:
  name: cm-appvars.unrelated
involvedObject:
  kind: ConfigMap
  name: redis-php
  namespace: default
type: Normal
reason: Other
message: not about the pod
";

#[tokio::test]
async fn pods_show_their_containers_and_events() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let pod = examples_dir().join("two-container-pod.yaml").display().to_string();
    c.ok(&["create", "-f", &pod]).await?;

    let before = c.ok(&["describe", "pod", "redis-php"]).await?;
    let last = before.lines().last().unwrap_or_default();
    assert!(last.starts_with("Events:") && last.ends_with(" <none>"), "{before}");

    let events = c.file("events.yaml", EVENT);
    c.ok(&["create", "-f", &events]).await?;
    let text = c.ok(&["describe", "pod", "redis-php"]).await?;
    for expected in [
        "Name:             redis-php\n",
        "Namespace:        default\nService Account:  default\n",
        "Node:             <none>\n",
        "Labels:           name=redis-php\n",
        "Status:           Pending\n",
        "Containers:\n  server:\n    Image:      rkube/toolbox:latest\n    Port:       8080/TCP\n",
        "  client:\n    Image:      rkube/toolbox:latest\n",
        "QoS Class:        BestEffort\n",
        "Events:\n  Type    Reason     Age",
        "  Normal  Scheduled  ",
        "default-scheduler  Successfully assigned default/redis-php to node1\n",
    ] {
        assert!(text.contains(expected), "{expected:?} in\n{text}");
    }
    assert!(!text.contains("not about the pod"), "{text}");

    let by_prefix = c.ok(&["describe", "pods", "redis"]).await?;
    assert!(by_prefix.starts_with("Name:             redis-php\n"), "{by_prefix}");
    Ok(())
}

#[tokio::test]
async fn configmaps_show_each_key_and_value() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let cm = examples_dir().join("configmap.yaml").display().to_string();
    c.ok(&["create", "-f", &cm]).await?;
    let text = c.ok(&["describe", "configmap", "cm-appvars"]).await?;
    assert_eq!(
        text,
        "\
Name:         cm-appvars
Namespace:    default
Labels:       <none>
Annotations:  <none>

Data
====
appdatadir:
----
/var/data

apploglevel:
----
info


BinaryData
====

Events:  <none>
"
    );
    Ok(())
}

#[tokio::test]
async fn every_object_of_a_type_and_missing_ones() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.ok(&["create", "cm", "a", "--from-literal=k=v"]).await?;
    c.ok(&["create", "cm", "b", "--from-literal=k=v"]).await?;
    let both = c.ok(&["describe", "cm"]).await?;
    assert!(both.starts_with("Name:         a\n"), "{both}");
    assert!(both.contains("Events:  <none>\n\n\nName:         b\n"), "{both}");

    let missing = c.run(&["describe", "pod", "nope"]).await?;
    assert_eq!((missing.code, missing.stderr.as_str()), (1, "Error from server (NotFound): pods \"nope\" not found\n"));
    let no_type = c.run(&["describe", "redis-php"]).await?;
    assert_eq!(no_type.stderr, "error: the server doesn't have a resource type \"redis-php\"\n");

    let ns = c.ok(&["describe", "namespace", "default"]).await?;
    assert!(ns.contains("Status:       Active\n"), "{ns}");
    Ok(())
}

#[tokio::test]
async fn controllers_and_services_are_described() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let path = c.file(
        "rc.yaml",
        "\
apiVersion: v1
kind: ReplicationController
metadata:
  name: web
spec:
  replicas: 2
  selector: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx
        ports: [{containerPort: 80}]
---
apiVersion: v1
kind: Pod
metadata:
  name: web-1
  labels: {app: web}
spec:
  containers:
  - name: web
    image: nginx
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
",
    );
    c.ok(&["create", "-f", &path]).await?;
    // kubectl counts only the pods the controller owns: web-1 is an orphan, web-2 is the RC's.
    let uid = serde_json::from_str::<serde_json::Value>(&c.ok(&["get", "rc", "web", "-o", "json"]).await?)?["metadata"]
        ["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let owned = c.file(
        "owned.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-2\n  labels: {{app: web}}\n  ownerReferences:\n  - {{apiVersion: v1, kind: ReplicationController, name: web, uid: {uid}, controller: true}}\nspec:\n  containers:\n  - {{name: web, image: nginx}}\n"
        ),
    );
    c.ok(&["create", "-f", &owned]).await?;
    let rc = c.ok(&["describe", "rc", "web"]).await?;
    for expected in [
        "Selector:     app=web\n",
        "Replicas:     0 current / 2 desired\n",
        "Pods Status:  0 Running / 1 Waiting / 0 Succeeded / 0 Failed\n",
        "Pod Template:\n  Labels:  app=web\n  Containers:\n   web:\n",
    ] {
        assert!(rc.contains(expected), "{expected:?} in\n{rc}");
    }
    let svc = c.ok(&["describe", "svc", "web"]).await?;
    assert_eq!(value_of(&svc, "Type"), Some("ClusterIP"), "{svc}");
    assert_eq!(value_of(&svc, "Selector"), Some("app=web"), "{svc}");
    assert_eq!(value_of(&svc, "Port"), Some("<unset>  80/TCP"), "{svc}");
    assert_eq!(value_of(&svc, "TargetPort"), Some("8080/TCP"), "{svc}");
    assert!(value_of(&svc, "IP").is_some_and(|ip| ip.starts_with("10.254.")), "{svc}");
    Ok(())
}
