//! The node IPAM controller against a real apiserver on a real etcd:
//! distinct subnets, stable across restarts, reuse after deletion, the
//! CIDRNotAvailable event, and leader election between two instances.

use anyhow::Context as _;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, NodeSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rkube_api::cidr::Ipv4Cidr;
use rkube_client::{Api, Client, DeleteParams, ListParams};
use rkube_testkit::{TestApiserver, TestControllerManager, wait_for};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(20);

fn node(name: &str, pod_cidr: Option<&str>) -> Node {
    Node {
        metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
        spec: pod_cidr.map(|c| NodeSpec { pod_cidr: Some(c.into()), ..Default::default() }),
        ..Default::default()
    }
}

/// Every node's podCIDR ("" when it has none).
async fn pod_cidrs(nodes: &Api<Node>) -> anyhow::Result<BTreeMap<String, String>> {
    let list = nodes.list(&ListParams::default()).await?;
    Ok(list
        .items
        .into_iter()
        .map(|n| {
            let cidr = n.spec.and_then(|s| s.pod_cidr).unwrap_or_default();
            (n.metadata.name.unwrap_or_default(), cidr)
        })
        .collect())
}

/// Waits until every node in `names` has a podCIDR; returns all podCIDRs.
async fn wait_for_cidrs(nodes: &Api<Node>, names: &[&str]) -> anyhow::Result<BTreeMap<String, String>> {
    wait_for(TIMEOUT, || async {
        pod_cidrs(nodes).await.is_ok_and(|m| names.iter().all(|n| m.get(*n).is_some_and(|c| !c.is_empty())))
    })
    .await
    .with_context(|| format!("nodes {names:?} did not all get a podCIDR"))?;
    pod_cidrs(nodes).await
}

/// Whether `cidr` is written as a /24 of 10.1.0.0/16.
fn in_cluster_10_1(cidr: &str) -> bool {
    let cluster: Ipv4Cidr = "10.1.0.0/16".parse().expect("a CIDR");
    cidr.parse::<Ipv4Cidr>().is_ok_and(|c| c.prefix() == 24 && cluster.contains_cidr(&c) && c.to_string() == cidr)
}

#[tokio::test]
async fn nodes_get_distinct_subnets_of_the_cluster_cidr() -> anyhow::Result<()> {
    let apiserver = TestApiserver::start().await?;
    let client = Client::new(&apiserver.url())?;
    let nodes: Api<Node> = Api::all(client.clone());
    let cm = TestControllerManager::start(&apiserver.url(), &[]).await?;

    let names = ["n1", "n2", "n3", "n4", "n5"];
    for n in names {
        nodes.create(&node(n, None)).await?;
    }
    let cidrs = wait_for_cidrs(&nodes, &names).await?;
    let distinct: BTreeSet<&String> = cidrs.values().collect();
    assert_eq!(distinct.len(), names.len(), "{cidrs:?}");
    assert!(cidrs.values().all(|c| in_cluster_10_1(c)), "not /24s of 10.1.0.0/16: {cidrs:?}");
    let n1 = nodes.get("n1").await?.spec.unwrap_or_default();
    assert_eq!(n1.pod_cidrs, Some(vec![n1.pod_cidr.clone().unwrap_or_default()]), "podCIDRs matches podCIDR");

    // The single instance took the Lease, and says so on /metrics.
    let lease = Api::<Lease>::namespaced(client, "kube-system").get("rkube-controller-manager").await?;
    assert_eq!(lease.spec.and_then(|s| s.holder_identity).as_deref(), Some(cm.identity.as_str()));
    let metrics = cm.metrics().await?;
    assert!(metrics.contains("rkube_nodeipam_cidrs_used 5\n"), "{metrics}");
    assert!(metrics.contains("rkube_nodeipam_cidrs_total 256\n"), "{metrics}");
    assert!(metrics.contains("rkube_leader_election_master_status{name=\"rkube-controller-manager\"} 1"), "{metrics}");
    cm.stop().await
}

#[tokio::test]
async fn a_restart_keeps_assignments_and_never_hands_out_a_subnet_twice() -> anyhow::Result<()> {
    let apiserver = TestApiserver::start().await?;
    let nodes: Api<Node> = Api::all(Client::new(&apiserver.url())?);
    // Set by hand before the controller ever ran: must be respected.
    nodes.create(&node("manual", Some("10.1.0.0/24"))).await?;

    let cm = TestControllerManager::start(&apiserver.url(), &["--leader-elect=false"]).await?;
    nodes.create(&node("n1", None)).await?;
    nodes.create(&node("n2", None)).await?;
    let before = wait_for_cidrs(&nodes, &["n1", "n2"]).await?;
    cm.stop().await?;

    // Named to sort first, so it is reconciled before the nodes that have subnets.
    nodes.create(&node("a-late", None)).await?;
    let cm = TestControllerManager::start(&apiserver.url(), &["--leader-elect=false"]).await?;
    let after = wait_for_cidrs(&nodes, &["n1", "n2", "a-late"]).await?;
    for n in ["manual", "n1", "n2"] {
        assert_eq!(after[n], before[n], "{n} kept its podCIDR across the restart");
    }
    let distinct: BTreeSet<&String> = after.values().collect();
    assert_eq!(distinct.len(), 4, "every node has its own subnet: {after:?}");
    assert!(after.values().all(|c| in_cluster_10_1(c)), "{after:?}");
    cm.stop().await
}

#[tokio::test]
async fn exhaustion_raises_an_event_and_a_deleted_nodes_subnet_is_reused() -> anyhow::Result<()> {
    let apiserver = TestApiserver::start().await?;
    let client = Client::new(&apiserver.url())?;
    let nodes: Api<Node> = Api::all(client.clone());
    let events: Api<Event> = Api::namespaced(client, "default");
    // Room for two nodes only.
    let cm =
        TestControllerManager::start(&apiserver.url(), &["--cluster-cidr=10.1.0.0/23", "--node-cidr-mask-size=24"])
            .await?;
    nodes.create(&node("n1", None)).await?;
    nodes.create(&node("n2", None)).await?;
    let cidrs = wait_for_cidrs(&nodes, &["n1", "n2"]).await?;
    assert_eq!(cidrs.values().collect::<BTreeSet<_>>().len(), 2, "{cidrs:?}");

    nodes.create(&node("n3", None)).await?;
    let warned = || async {
        let list = events.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default();
        list.into_iter().find(|e| {
            e.reason.as_deref() == Some("CIDRNotAvailable")
                && e.type_.as_deref() == Some("Warning")
                && e.involved_object.kind.as_deref() == Some("Node")
                && e.involved_object.name.as_deref() == Some("n3")
        })
    };
    wait_for(TIMEOUT, || async { warned().await.is_some() }).await.context("no CIDRNotAvailable event for n3")?;
    let event = warned().await.context("event vanished")?;
    // Node events carry the node's name as uid, as Kubernetes writes them.
    assert_eq!(event.involved_object.uid.as_deref(), Some("n3"));
    assert!(event.message.as_deref().unwrap_or_default().contains("10.1.0.0/23"), "{:?}", event.message);
    assert_eq!(pod_cidrs(&nodes).await?["n3"], "", "n3 waits without a podCIDR");
    // Retries bump the count of the one Event instead of writing new ones.
    wait_for(TIMEOUT, || async { warned().await.and_then(|e| e.count).unwrap_or(0) >= 2 })
        .await
        .context("the retry did not update the event's count")?;
    let n3_events = events.list(&ListParams::default()).await?.items;
    assert_eq!(n3_events.iter().filter(|e| e.involved_object.name.as_deref() == Some("n3")).count(), 1);

    nodes.delete("n1", &DeleteParams::default()).await?;
    let after = wait_for_cidrs(&nodes, &["n3"]).await?;
    assert_eq!(after["n3"], cidrs["n1"], "n3 got the deleted node's subnet");
    assert_ne!(after["n3"], after["n2"]);
    cm.stop().await
}

#[tokio::test]
async fn only_the_leader_allocates_and_a_standby_takes_over() -> anyhow::Result<()> {
    let apiserver = TestApiserver::start().await?;
    let client = Client::new(&apiserver.url())?;
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client, "kube-system");
    let holder = || async {
        leases.get_opt("rkube-controller-manager").await.ok().flatten().and_then(|l| l.spec?.holder_identity)
    };

    let first = TestControllerManager::start(&apiserver.url(), &[]).await?;
    wait_for(TIMEOUT, || async { holder().await.as_deref() == Some(first.identity.as_str()) })
        .await
        .context("the first instance did not take the lease")?;
    let second = TestControllerManager::start(&apiserver.url(), &[]).await?;
    nodes.create(&node("n1", None)).await?;
    wait_for_cidrs(&nodes, &["n1"]).await?;
    let standby = second.metrics().await?;
    assert!(standby.contains("rkube_leader_election_master_status{name=\"rkube-controller-manager\"} 0"), "{standby}");
    assert!(!standby.contains("rkube_nodeipam_cidrs_used"), "the standby runs no controller: {standby}");

    // The leader stops (releasing the lease); the standby takes over and allocates.
    first.stop().await?;
    wait_for(TIMEOUT, || async { holder().await.as_deref() == Some(second.identity.as_str()) })
        .await
        .context("the standby did not take over")?;
    nodes.create(&node("a-late", None)).await?;
    let cidrs = wait_for_cidrs(&nodes, &["n1", "a-late"]).await?;
    assert_ne!(cidrs["n1"], cidrs["a-late"], "the new leader rebuilt the map before allocating");
    second.stop().await
}
