//! Namespaces and ServiceAccounts on a whole cluster of real binaries (two
//! nodes on Docker), through rkubectl: a new namespace gets its `default`
//! ServiceAccount and its pods run as it; deleting the namespace deletes its
//! pods (gracefully: the kubelets stop their containers), its
//! ReplicationController, ConfigMaps and Service, then the namespace; a
//! system namespace cannot be deleted.

use anyhow::Context as _;
use rkube_e2e::Cluster;
use serde_json::Value;
use std::process::Command;
use std::time::Instant;

const NS: &str = "team";

fn items(cluster: &Cluster, kind: &str) -> anyhow::Result<Vec<Value>> {
    let list: Value = serde_json::from_str(&cluster.rkubectl_ok(&["get", kind, "-n", NS, "-o", "json"])?)?;
    Ok(list["items"].as_array().cloned().unwrap_or_default())
}

fn running(p: &Value) -> bool {
    p["status"]["phase"] == "Running"
}

/// The ids of the containers (sandboxes included) Docker runs for pods of
/// namespace `NS` on the cluster's nodes.
fn containers(cluster: &Cluster) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    for node in &cluster.nodes {
        let out = Command::new("docker")
            .args([
                "ps",
                "-aq",
                "--filter",
                &format!("label=io.rkube.node={node}"),
                "--filter",
                &format!("label=io.rkube.pod.namespace={NS}"),
            ])
            .output()?;
        ids.extend(String::from_utf8_lossy(&out.stdout).split_whitespace().map(String::from));
    }
    Ok(ids)
}

const MANIFEST: &str = "apiVersion: v1
kind: Pod
metadata: {name: solo, namespace: team, labels: {app: solo}}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - {name: c, image: 'rkube/toolbox:1.0', imagePullPolicy: Never, command: [sleep, '3600']}
---
apiVersion: v1
kind: ReplicationController
metadata: {name: web, namespace: team}
spec:
  replicas: 3
  selector: {app: web}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - {name: c, image: 'rkube/toolbox:1.0', imagePullPolicy: Never, command: [sleep, '3600']}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: team}
data: {mode: test}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: more-settings, namespace: team}
data: {level: '2'}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: team}
spec:
  selector: {app: web}
  ports: [{port: 80}]
";

#[tokio::test]
async fn deleting_a_namespace_removes_its_objects_and_containers() -> anyhow::Result<()> {
    let cluster = Cluster::start(2).await?;
    cluster.rkubectl_ok(&["create", "namespace", NS])?;
    let ns_table = cluster.rkubectl_ok(&["get", "ns", NS])?;
    assert!(ns_table.lines().nth(1).is_some_and(|l| l.split_whitespace().nth(1) == Some("Active")), "{ns_table}");
    cluster
        .eventually("the default service account", || {
            let sa = cluster.rkubectl_ok(&["get", "sa", "-n", NS])?;
            Ok(sa.lines().nth(1).is_some_and(|l| l.split_whitespace().take(2).eq(["default", "0"])))
        })
        .await?;

    cluster.create(MANIFEST)?;
    cluster
        .eventually("4 running pods", || {
            let pods = items(&cluster, "pods")?;
            Ok(pods.len() == 4 && pods.iter().all(running))
        })
        .await?;
    let pods = items(&cluster, "pods")?;
    assert!(pods.iter().all(|p| p["spec"]["serviceAccountName"] == "default"), "pods run as default");
    let nodes: std::collections::BTreeSet<&str> = pods.iter().filter_map(|p| p["spec"]["nodeName"].as_str()).collect();
    let before = containers(&cluster)?;
    assert!(before.len() >= 8, "a sandbox and a container per pod: {before:?}");

    let started = Instant::now();
    cluster.rkubectl_ok(&["delete", "namespace", NS, "--wait=false"])?;
    // Terminating until its content is gone (the pods take their grace period).
    let ns: Value = serde_json::from_str(&cluster.rkubectl_ok(&["get", "ns", NS, "-o", "json"])?)?;
    assert_eq!(ns["status"]["phase"], "Terminating", "{ns}");
    let table = cluster.rkubectl_ok(&["get", "ns", NS])?;
    assert!(table.lines().nth(1).is_some_and(|l| l.split_whitespace().nth(1) == Some("Terminating")), "{table}");
    cluster
        .eventually("the namespace gone", || {
            let out = cluster.rkubectl(&["get", "ns", NS])?;
            Ok(!out.status.success())
        })
        .await?;
    eprintln!("namespace with 4 running pods on {} nodes gone in {:?}", nodes.len(), started.elapsed());
    for kind in ["pods", "rc", "configmaps", "services", "endpoints", "serviceaccounts"] {
        let left = items(&cluster, kind).with_context(|| format!("listing {kind}"))?;
        assert!(left.is_empty(), "{kind} left in the deleted namespace: {left:?}");
    }
    // Every pod went through its kubelet (the namespace goes only once the
    // pods are gone, and a kubelet deletes a pod once its containers stop):
    // their containers are gone.
    cluster.eventually("the namespace's containers removed", || Ok(containers(&cluster)?.is_empty())).await?;

    // The system namespaces stay.
    let refused = cluster.rkubectl(&["delete", "namespace", "kube-system"])?;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("this namespace may not be deleted"), "{refused:?}");
    Ok(())
}
