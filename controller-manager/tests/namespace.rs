//! The namespace controller against a real apiserver on a real etcd: a
//! deleted namespace loses every object it holds, through the API, and then
//! goes; while something holds it, its conditions say what.

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Namespace, NamespaceCondition, Pod, ReplicationController, Service,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use rkube_api::Reason;
use rkube_client::{Api, Client, DeleteParams, ListParams};
use rkube_testkit::{TestApiserver, TestControllerManager, wait_for};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);
const FLAGS: &[&str] = &["--leader-elect=false", "--controllers=namespace,serviceaccount,replication,garbagecollector"];

fn object<K: DeserializeOwned>(v: Value) -> K {
    serde_json::from_value(v).unwrap()
}

fn pod(name: &str) -> Pod {
    object(json!({"metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "rkube/toolbox:1.0"}]}}))
}

async fn create_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    Api::<Namespace>::all(client.clone()).create(&object(json!({"metadata": {"name": name}}))).await?;
    Ok(())
}

async fn count<K>(client: &Client, namespace: &str) -> usize
where
    K: k8s_openapi::Resource + serde::Serialize + DeserializeOwned + Clone + std::fmt::Debug + Send + Sync + 'static,
    K: k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
{
    Api::<K>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .map(|l| l.items.len())
        .unwrap_or(usize::MAX)
}

async fn gone(namespaces: &Api<Namespace>, name: &str) -> bool {
    namespaces.get_opt(name).await.is_ok_and(|n| n.is_none())
}

async fn condition(namespaces: &Api<Namespace>, name: &str, kind: &str) -> Option<NamespaceCondition> {
    let ns = namespaces.get_opt(name).await.ok()??;
    ns.status?.conditions?.into_iter().find(|c| c.type_ == kind)
}

#[tokio::test]
async fn deleting_a_namespace_deletes_everything_in_it_then_the_namespace() -> anyhow::Result<()> {
    let apiserver = TestApiserver::start().await?;
    let client = Client::new(&apiserver.url())?;
    let cm = TestControllerManager::start(&apiserver.url(), FLAGS).await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    create_namespace(&client, "team").await?;
    let ns = "team";

    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    for name in ["a", "b"] {
        pods.create(&pod(name)).await?;
    }
    let rc: ReplicationController = object(json!({"metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"app": "rc"},
            "template": {"metadata": {"labels": {"app": "rc"}},
                "spec": {"containers": [{"name": "c", "image": "rkube/toolbox:1.0"}]}}}}));
    Api::<ReplicationController>::namespaced(client.clone(), ns).create(&rc).await?;
    for i in 0..3 {
        let map: ConfigMap = object(json!({"metadata": {"name": format!("config-{i}")}, "data": {"k": "v"}}));
        Api::<ConfigMap>::namespaced(client.clone(), ns).create(&map).await?;
    }
    let svc: Service =
        object(json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}));
    Api::<Service>::namespaced(client.clone(), ns).create(&svc).await?;
    let ep: Endpoints = object(json!({"metadata": {"name": "manual"},
        "subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]}));
    Api::<Endpoints>::namespaced(client.clone(), ns).create(&ep).await?;
    let slice: EndpointSlice = object(json!({"metadata": {"name": "manual-1"}, "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.1"]}], "ports": [{"port": 80}]}));
    Api::<EndpointSlice>::namespaced(client.clone(), ns).create(&slice).await?;
    wait_for(TIMEOUT, || async { count::<Pod>(&client, ns).await == 4 }).await.context("the RC's pods")?;
    wait_for(TIMEOUT, || async {
        Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(client.clone(), ns)
            .get_opt("default")
            .await
            .is_ok_and(|s| s.is_some())
    })
    .await
    .context("the default service account")?;

    let (marked, finished) = namespaces.delete(ns, &DeleteParams::default()).await?;
    assert!(!finished, "the kubernetes finalizer holds the namespace");
    assert_eq!(marked.status.and_then(|s| s.phase).as_deref(), Some("Terminating"));
    let e = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .create(&object(json!({"metadata": {"name": "late"}})))
        .await
        .expect_err("no new content in a terminating namespace");
    assert_eq!(e.reason, Reason::Forbidden);
    assert!(e.message.contains("unable to create new content in namespace team because it is being terminated"));

    wait_for(TIMEOUT, || gone(&namespaces, ns)).await.context("the namespace never went")?;
    assert_eq!(count::<Pod>(&client, ns).await, 0);
    assert_eq!(count::<ReplicationController>(&client, ns).await, 0);
    assert_eq!(count::<ConfigMap>(&client, ns).await, 0);
    assert_eq!(count::<Service>(&client, ns).await, 0);
    assert_eq!(count::<Endpoints>(&client, ns).await, 0);
    assert_eq!(count::<EndpointSlice>(&client, ns).await, 0);
    assert_eq!(count::<k8s_openapi::api::core::v1::ServiceAccount>(&client, ns).await, 0, "not recreated");

    // Other namespaces are untouched, and the name can be used again.
    assert!(namespaces.get_opt("default").await?.is_some());
    create_namespace(&client, ns).await?;
    Api::<Pod>::namespaced(client.clone(), ns).create(&pod("again")).await?;
    cm.stop().await
}

#[tokio::test]
async fn conditions_say_what_holds_a_terminating_namespace() -> anyhow::Result<()> {
    let apiserver = TestApiserver::start().await?;
    let client = Client::new(&apiserver.url())?;
    let cm = TestControllerManager::start(&apiserver.url(), FLAGS).await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = "held";
    create_namespace(&client, ns).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    // Two pods on a node no kubelet runs: deleted gracefully, they stay.
    for name in ["a", "b"] {
        pods.create(&pod(name)).await?;
        client.bind(ns, name, "n1").await?;
    }
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    maps.create(&object(json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}))).await?;

    namespaces.delete(ns, &DeleteParams::default()).await?;
    let says = |kind: &'static str, message: &'static str| {
        let namespaces = namespaces.clone();
        move || {
            let namespaces = namespaces.clone();
            async move {
                condition(&namespaces, ns, kind)
                    .await
                    .is_some_and(|c| c.status == "True" && c.message.as_deref() == Some(message))
            }
        }
    };
    wait_for(
        TIMEOUT,
        says("NamespaceContentRemaining", "Some resources are remaining: pods. has 2 resource instances"),
    )
    .await
    .context("pods remaining")?;
    let pod_list = pods.list(&ListParams::default()).await?.items;
    assert!(pod_list.iter().all(|p| p.metadata.deletion_timestamp.is_some()), "deleted gracefully: {pod_list:?}");
    assert!(maps.get_opt("held").await?.is_some_and(|m| m.metadata.deletion_timestamp.is_none()), "pods go first");
    let ok = condition(&namespaces, ns, "NamespaceDeletionDiscoveryFailure").await.context("discovery condition")?;
    assert_eq!((ok.status.as_str(), ok.reason.as_deref()), ("False", Some("ResourcesDiscovered")));

    // The kubelet's part, done by hand: the pods go, then the ConfigMap's
    // finalizer is what holds the namespace.
    let now = DeleteParams { grace_period_seconds: Some(0), ..Default::default() };
    for name in ["a", "b"] {
        pods.delete(name, &now).await?;
    }
    wait_for(
        TIMEOUT,
        says(
            "NamespaceFinalizersRemaining",
            "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances",
        ),
    )
    .await
    .context("finalizers remaining")?;
    let remaining = condition(&namespaces, ns, "NamespaceContentRemaining").await.context("remaining")?;
    assert_eq!(
        remaining.message.as_deref(),
        Some("Some resources are remaining: configmaps. has 1 resource instances")
    );
    assert!(namespaces.get_opt(ns).await?.is_some(), "still held");

    maps.patch("held", &json!({"metadata": {"finalizers": null}})).await?;
    wait_for(TIMEOUT, || gone(&namespaces, ns)).await.context("the namespace never went")?;
    cm.stop().await
}
