//! The DaemonSet controller against a real apiserver on a real etcd. No
//! scheduler and no kubelet run: daemon pods stay unbound, pinned to their
//! node by node affinity, and tests mark them Running and Ready by hand.
//! Nodes are Node objects created here with a Ready condition.

use anyhow::Context as _;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use rkube_client::{Api, Client, DeleteParams, ListParams};
use rkube_testkit::{TestApiserver, TestControllerManager, wait_for};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(20);
const HASH_LABEL: &str = "controller-revision-hash";

/// Creates node `name` with `labels` and `taints`, Ready or not.
async fn node(nodes: &Api<Node>, name: &str, labels: Value, taints: Value, ready: bool) -> anyhow::Result<()> {
    let n: Node =
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}, "spec": {"taints": taints}}))?;
    nodes.create(&n).await?;
    set_ready(nodes, name, ready).await
}

async fn set_ready(nodes: &Api<Node>, name: &str, ready: bool) -> anyhow::Result<()> {
    let status = if ready { "True" } else { "False" };
    nodes.patch_status(name, &json!({"status": {"conditions": [{"type": "Ready", "status": status}]}})).await?;
    Ok(())
}

fn daemonset(name: &str, node_selector: Value, strategy: Value) -> anyhow::Result<DaemonSet> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": name}}, "updateStrategy": strategy,
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"nodeSelector": node_selector, "containers": [{"name": "c", "image": "rkube/toolbox:1.0"}]}}}
    }))?)
}

/// The node a daemon pod is pinned to by its `metadata.name In [node]` term.
fn pinned_node(pod: &Pod) -> Option<String> {
    let v = serde_json::to_value(pod).ok()?;
    let term = v.pointer(
        "/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms/0/matchFields/0",
    )?;
    (term["key"] == "metadata.name" && term["operator"] == "In")
        .then(|| term["values"][0].as_str().map(String::from))?
}

/// The live pods `uid` controls, by node.
async fn pods_by_node(pods: &Api<Pod>, uid: &str) -> anyhow::Result<BTreeMap<String, Vec<Pod>>> {
    let mut by_node: BTreeMap<String, Vec<Pod>> = BTreeMap::new();
    for p in pods.list(&ListParams::default()).await?.items {
        let owned = p.metadata.owner_references.iter().flatten().any(|r| r.uid == uid && r.controller == Some(true));
        if owned && p.metadata.deletion_timestamp.is_none() {
            by_node.entry(pinned_node(&p).unwrap_or_default()).or_default().push(p);
        }
    }
    Ok(by_node)
}

/// Waits until `uid`'s pods are exactly one on each of `nodes`.
async fn wait_for_nodes(pods: &Api<Pod>, uid: &str, nodes: &[&str]) -> anyhow::Result<BTreeMap<String, Vec<Pod>>> {
    let want: Vec<String> = nodes.iter().map(|n| n.to_string()).collect();
    let exact = |m: &BTreeMap<String, Vec<Pod>>| {
        m.keys().cloned().collect::<Vec<_>>() == want && m.values().all(|v| v.len() == 1)
    };
    let result = wait_for(TIMEOUT, || async { pods_by_node(pods, uid).await.is_ok_and(|m| exact(&m)) }).await;
    let now = pods_by_node(pods, uid).await?;
    result.with_context(|| {
        format!(
            "pods never on exactly {want:?}; now on {:?}",
            now.iter().map(|(n, p)| (n, p.len())).collect::<Vec<_>>()
        )
    })?;
    Ok(now)
}

/// Marks a pod Running and Ready, as its kubelet would.
async fn mark_ready(pods: &Api<Pod>, pod: &Pod) -> anyhow::Result<()> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    pods.patch_status(
        name,
        &json!({"status": {"phase": "Running",
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}]}}),
    )
    .await?;
    Ok(())
}

fn hash(pod: &Pod) -> String {
    pod.metadata.labels.as_ref().and_then(|l| l.get(HASH_LABEL)).cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_daemonset_runs_one_pod_per_eligible_node_and_follows_the_nodes() -> anyhow::Result<()> {
    let apiserver = TestApiserver::start().await?;
    let client = Client::new(&apiserver.url())?;
    let nodes: Api<Node> = Api::all(client.clone());
    let ssd = json!({"disk": "ssd"});
    node(&nodes, "n1", ssd.clone(), json!([]), true).await?;
    node(&nodes, "n2", ssd.clone(), json!([]), true).await?;
    node(&nodes, "n3", json!({"disk": "hdd"}), json!([]), true).await?;
    node(&nodes, "n4", ssd.clone(), json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]), true).await?;
    node(&nodes, "n5", ssd.clone(), json!([]), false).await?;
    let cm =
        TestControllerManager::start(&apiserver.url(), &["--leader-elect=false", "--controllers=daemonset"]).await?;
    let sets: Api<DaemonSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    let agent = sets.create(&daemonset("agent", json!({"disk": "ssd"}), json!(null))?).await?;
    let uid = agent.metadata.uid.clone().unwrap_or_default();
    // Not n3 (label), n4 (untolerated taint) nor n5 (not Ready).
    let placed = wait_for_nodes(&pods, &uid, &["n1", "n2"]).await?;
    for (node, ps) in &placed {
        let p = &ps[0];
        let spec = p.spec.clone().unwrap_or_default();
        assert_eq!(spec.node_name, None, "left to the scheduler");
        let required =
            serde_json::to_value(&spec.affinity)?["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
                .clone();
        assert_eq!(
            required,
            json!({"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]})
        );
        let tolerations = serde_json::to_value(&spec.tolerations)?;
        for (key, effect) in [
            ("node.kubernetes.io/not-ready", "NoExecute"),
            ("node.kubernetes.io/unreachable", "NoExecute"),
            ("node.kubernetes.io/unschedulable", "NoSchedule"),
            ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ] {
            let t = json!({"key": key, "operator": "Exists", "effect": effect});
            assert!(tolerations.as_array().is_some_and(|ts| ts.contains(&t)), "{key} missing in {tolerations}");
        }
        assert!(!hash(p).is_empty(), "the template hash label");
        let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("DaemonSet", "agent"));
    }
    wait_for(TIMEOUT, || async {
        sets.get("agent").await.is_ok_and(|d| {
            let s = d.status.unwrap_or_default();
            (s.desired_number_scheduled, s.current_number_scheduled, s.number_ready, s.number_unavailable)
                == (2, 2, 0, Some(2))
                && s.observed_generation == Some(1)
        })
    })
    .await
    .context("status never desired 2, current 2")?;

    // Relabelled out: its pod goes. Relabelled in, turned Ready, untainted:
    // each gets one.
    nodes.patch("n2", &json!({"metadata": {"labels": {"disk": "hdd"}}})).await?;
    wait_for_nodes(&pods, &uid, &["n1"]).await?;
    nodes.patch("n3", &json!({"metadata": {"labels": {"disk": "ssd"}}})).await?;
    set_ready(&nodes, "n5", true).await?;
    nodes.patch("n4", &json!({"spec": {"taints": null}})).await?;
    wait_for_nodes(&pods, &uid, &["n1", "n3", "n4", "n5"]).await?;
    // A node that leaves takes its (never bound) pod with it.
    nodes.delete("n1", &DeleteParams::default()).await?;
    wait_for_nodes(&pods, &uid, &["n3", "n4", "n5"]).await?;
    wait_for(TIMEOUT, || async {
        sets.get("agent").await.is_ok_and(|d| d.status.is_some_and(|s| s.desired_number_scheduled == 3))
    })
    .await
    .context("status never desired 3")?;

    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    wait_for(TIMEOUT, || async {
        events.list(&ListParams::default()).await.is_ok_and(|l| {
            let from_ds = |reason: &str| {
                l.items.iter().any(|e| {
                    e.reason.as_deref() == Some(reason)
                        && e.source.as_ref().and_then(|s| s.component.as_deref()) == Some("daemonset-controller")
                        && e.involved_object.kind.as_deref() == Some("DaemonSet")
                })
            };
            from_ds("SuccessfulCreate") && from_ds("SuccessfulDelete")
        })
    })
    .await
    .context("no SuccessfulCreate/SuccessfulDelete events from daemonset-controller")?;
    cm.stop().await
}

#[tokio::test]
async fn rolling_updates_go_node_by_node_and_on_delete_waits_for_deletes() -> anyhow::Result<()> {
    let apiserver = TestApiserver::start().await?;
    let client = Client::new(&apiserver.url())?;
    let nodes: Api<Node> = Api::all(client.clone());
    node(&nodes, "n1", json!({}), json!([]), true).await?;
    node(&nodes, "n2", json!({}), json!([]), true).await?;
    let cm =
        TestControllerManager::start(&apiserver.url(), &["--leader-elect=false", "--controllers=daemonset"]).await?;
    let sets: Api<DaemonSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let strategy = json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}});
    let uid = sets.create(&daemonset("web", json!(null), strategy)?).await?.metadata.uid.unwrap_or_default();
    for ps in wait_for_nodes(&pods, &uid, &["n1", "n2"]).await?.values() {
        mark_ready(&pods, &ps[0]).await?;
    }
    let status = |want: (i32, i32, i32, i64)| {
        let sets = sets.clone();
        async move {
            sets.get("web").await.is_ok_and(|d| {
                let generation = d.metadata.generation.unwrap_or(0);
                let s = d.status.unwrap_or_default();
                (
                    s.current_number_scheduled,
                    s.updated_number_scheduled.unwrap_or(0),
                    s.number_available.unwrap_or(0),
                    generation,
                ) == want
                    && s.observed_generation == Some(generation)
            })
        }
    };
    wait_for(TIMEOUT, || status((2, 2, 2, 1))).await.context("never 2 updated and available")?;
    let first = pods_by_node(&pods, &uid).await?;

    // A new image: one node at a time, the next once the new pod is available.
    let image = |i: &str| json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": i}]}}}});
    sets.patch("web", &image("rkube/toolbox:2.0")).await?;
    wait_for(TIMEOUT, || status((2, 1, 1, 2))).await.context("never one pod replaced")?;
    let now = pods_by_node(&pods, &uid).await?;
    let (fresh, old): (Vec<&Pod>, Vec<&Pod>) =
        now.values().flatten().partition(|p| hash(p) != hash(&first.values().next().unwrap()[0]));
    assert_eq!((fresh.len(), old.len()), (1, 1), "one node at a time: {now:?}");
    mark_ready(&pods, fresh[0]).await?;
    wait_for(TIMEOUT, || status((2, 2, 1, 2))).await.context("the second node was not updated")?;
    for ps in pods_by_node(&pods, &uid).await?.values() {
        mark_ready(&pods, &ps[0]).await?;
    }
    wait_for(TIMEOUT, || status((2, 2, 2, 2))).await.context("never 2 updated and available after the update")?;

    // OnDelete: a new template replaces nothing until a pod is deleted.
    let on_delete = json!({"spec": {"updateStrategy": {"type": "OnDelete", "rollingUpdate": null},
        "template": {"spec": {"containers": [{"name": "c", "image": "rkube/toolbox:3.0"}]}}}});
    sets.patch("web", &on_delete).await?;
    wait_for(TIMEOUT, || status((2, 0, 2, 3))).await.context("status never showed the pods out of date")?;
    let before = pods_by_node(&pods, &uid).await?;
    let victim = before["n1"][0].metadata.name.clone().unwrap_or_default();
    pods.delete(&victim, &DeleteParams::default()).await?;
    wait_for(TIMEOUT, || status((2, 1, 1, 3)))
        .await
        .context("the deleted pod was not replaced from the new template")?;
    let after = pods_by_node(&pods, &uid).await?;
    assert_eq!(after["n2"][0].metadata.uid, before["n2"][0].metadata.uid, "the other pod stays");
    assert_ne!(hash(&after["n1"][0]), hash(&before["n1"][0]));
    cm.stop().await
}
