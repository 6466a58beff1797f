//! The endpoints and EndpointSlice controllers against a real apiserver on
//! a real etcd. There is no kubelet: tests write the pods' status (IP,
//! Ready) themselves, as a kubelet would.

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{Endpoints, Event, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use rkube_client::{Api, Client, DeleteParams, ListParams};
use rkube_testkit::{TestApiserver, TestControllerManager, wait_for};
use serde_json::{Value, json};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(20);

async fn start(flags: &[&str]) -> anyhow::Result<(TestApiserver, TestControllerManager, Client)> {
    let apiserver = TestApiserver::start().await?;
    let client = Client::new(&apiserver.url())?;
    let mut all = vec!["--leader-elect=false", "--controllers=endpoint,endpointslice"];
    all.extend_from_slice(flags);
    let cm = TestControllerManager::start(&apiserver.url(), &all).await?;
    Ok((apiserver, cm, client))
}

/// A pod on node `n1` labelled `app`, with a container port named `http`
/// on `port`, its status written as the kubelet would: `ip`, Ready or not.
async fn running_pod(pods: &Api<Pod>, name: &str, app: &str, port: i32, ip: &str, ready: bool) -> anyhow::Result<()> {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "rkube/toolbox:1.0",
            "ports": [{"name": "http", "containerPort": port}]}]}}))?;
    pods.create(&pod).await?;
    set_status(pods, name, ip, ready).await
}

async fn set_status(pods: &Api<Pod>, name: &str, ip: &str, ready: bool) -> anyhow::Result<()> {
    let status = if ready { "True" } else { "False" };
    pods.patch_status(
        name,
        &json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": status}]}}),
    )
    .await?;
    Ok(())
}

/// `ready ip:port` and `not-ready ip:port` lines of an Endpoints object.
fn addresses(e: &Endpoints) -> Vec<String> {
    let mut out = Vec::new();
    for s in e.subsets.iter().flatten() {
        for p in s.ports.iter().flatten() {
            for a in s.addresses.iter().flatten() {
                out.push(format!("ready {}:{}", a.ip, p.port));
            }
            for a in s.not_ready_addresses.iter().flatten() {
                out.push(format!("not-ready {}:{}", a.ip, p.port));
            }
        }
    }
    out.sort();
    out
}

async fn endpoints_of(api: &Api<Endpoints>, name: &str) -> Vec<String> {
    api.get_opt(name).await.ok().flatten().map(|e| addresses(&e)).unwrap_or_default()
}

async fn wait_endpoints(api: &Api<Endpoints>, name: &str, want: &[&str]) -> anyhow::Result<()> {
    let result = wait_for(TIMEOUT, || async { endpoints_of(api, name).await == want }).await;
    let now = endpoints_of(api, name).await;
    result.with_context(|| format!("endpoints of {name} never {want:?}; now {now:?}"))
}

/// The service's slices as `address ready/serving/terminating port` lines.
async fn slice_lines(api: &Api<EndpointSlice>, service: &str) -> Vec<String> {
    let params = ListParams::default().labels(&format!("kubernetes.io/service-name={service}"));
    let Ok(list) = api.list(&params).await else { return vec!["list failed".into()] };
    let mut out = Vec::new();
    for s in &list.items {
        let ports: Vec<String> = s.ports.iter().flatten().map(|p| p.port.unwrap_or(0).to_string()).collect();
        for e in &s.endpoints {
            let c = e.conditions.clone().unwrap_or_default();
            let flag = |b: Option<bool>| if b.unwrap_or(false) { "1" } else { "0" };
            out.push(format!(
                "{} {}{}{} {}",
                e.addresses[0],
                flag(c.ready),
                flag(c.serving),
                flag(c.terminating),
                ports.join(",")
            ));
        }
    }
    out.sort();
    out
}

async fn wait_slices(api: &Api<EndpointSlice>, service: &str, want: &[&str]) -> anyhow::Result<()> {
    let result = wait_for(TIMEOUT, || async { slice_lines(api, service).await == want }).await;
    let now = slice_lines(api, service).await;
    result.with_context(|| format!("slices of {service} never {want:?}; now {now:?}"))
}

fn service(v: Value) -> anyhow::Result<Service> {
    Ok(serde_json::from_value(v)?)
}

#[tokio::test]
async fn endpoints_and_slices_follow_pods_readiness_labels_and_deletion() -> anyhow::Result<()> {
    let (_apiserver, _cm, client) = start(&[]).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");

    running_pod(&pods, "web-a", "web", 8080, "10.1.0.1", true).await?;
    running_pod(&pods, "web-b", "web", 9090, "10.1.0.2", false).await?;
    running_pod(&pods, "db", "db", 5432, "10.1.0.3", true).await?;
    // The target port is named: each pod's own number for it is used.
    services
        .create(&service(json!({"metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}}))?)
        .await?;
    wait_endpoints(&endpoints, "web", &["not-ready 10.1.0.2:9090", "ready 10.1.0.1:8080"]).await?;
    wait_slices(&slices, "web", &["10.1.0.1 110 8080", "10.1.0.2 000 9090"]).await?;
    let e = endpoints.get("web").await?;
    let target = e.subsets.as_ref().and_then(|s| s[0].addresses.clone()).unwrap_or_default();
    let target = target.first().and_then(|a| a.target_ref.clone()).unwrap_or_default();
    assert_eq!((target.kind.as_deref(), target.name.as_deref()), (Some("Pod"), Some("web-a")));
    let slice = &slices.list(&ListParams::default().labels("kubernetes.io/service-name=web")).await?.items[0];
    let owner = &slice.metadata.owner_references.as_ref().context("an owner")?[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str(), owner.controller), ("Service", "web", Some(true)));
    assert_eq!(slice.address_type, "IPv4");

    // Readiness moves a pod between the sets.
    set_status(&pods, "web-b", "10.1.0.2", true).await?;
    wait_endpoints(&endpoints, "web", &["ready 10.1.0.1:8080", "ready 10.1.0.2:9090"]).await?;
    wait_slices(&slices, "web", &["10.1.0.1 110 8080", "10.1.0.2 110 9090"]).await?;

    // A pod that stops matching leaves; one that starts matching joins.
    pods.patch("web-b", &json!({"metadata": {"labels": {"app": "other"}}})).await?;
    pods.patch("db", &json!({"metadata": {"labels": {"app": "web"}}})).await?;
    wait_endpoints(&endpoints, "web", &["ready 10.1.0.1:8080", "ready 10.1.0.3:5432"]).await?;

    // A terminating pod leaves the ready set at once: gone from Endpoints,
    // terminating (and still serving) in the slice.
    pods.delete("web-a", &DeleteParams::default()).await?;
    wait_endpoints(&endpoints, "web", &["ready 10.1.0.3:5432"]).await?;
    wait_slices(&slices, "web", &["10.1.0.1 011 8080", "10.1.0.3 110 5432"]).await?;

    // The Service's deletion takes its Endpoints and slices with it.
    services.delete("web", &DeleteParams::default()).await?;
    wait_for(TIMEOUT, || async { endpoints.get_opt("web").await.is_ok_and(|e| e.is_none()) })
        .await
        .context("the endpoints outlived their service")?;
    wait_slices(&slices, "web", &[]).await?;
    Ok(())
}

#[tokio::test]
async fn an_unresolvable_target_port_is_an_event_and_no_endpoint() -> anyhow::Result<()> {
    let (_apiserver, _cm, client) = start(&[]).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    running_pod(&pods, "api", "api", 8080, "10.1.0.7", true).await?;
    services
        .create(&service(json!({"metadata": {"name": "api"},
            "spec": {"selector": {"app": "api"}, "ports": [{"name": "grpc", "port": 90, "targetPort": "grpc"}]}}))?)
        .await?;
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    wait_for(TIMEOUT, || async {
        events.list(&ListParams::default()).await.is_ok_and(|l| {
            l.items.iter().any(|e| {
                e.reason.as_deref() == Some("FailedToResolvePort")
                    && e.type_.as_deref() == Some("Warning")
                    && e.involved_object.name.as_deref() == Some("api")
                    && e.message.as_deref()
                        == Some("pod default/api has no TCP container port named \"grpc\" (targetPort of service port \"grpc\" (90)); it is not an endpoint for it")
            })
        })
    })
    .await
    .context("no FailedToResolvePort event")?;
    // Empty Endpoints exist, and one placeholder slice with no endpoints.
    wait_for(TIMEOUT, || async {
        endpoints.get_opt("api").await.is_ok_and(|e| e.is_some_and(|e| e.subsets.is_none()))
    })
    .await
    .context("no empty endpoints")?;
    let list = slices.list(&ListParams::default().labels("kubernetes.io/service-name=api")).await?;
    assert_eq!(list.items.len(), 1, "one placeholder slice");
    assert!(list.items[0].endpoints.is_empty());
    Ok(())
}

#[tokio::test]
async fn user_endpoints_of_a_selectorless_service_are_kept_and_mirrored() -> anyhow::Result<()> {
    let (_apiserver, _cm, client) = start(&[]).await?;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    services.create(&service(json!({"metadata": {"name": "ext"}, "spec": {"ports": [{"port": 5432}]}}))?).await?;
    let user: Endpoints = serde_json::from_value(json!({"metadata": {"name": "ext"},
        "subsets": [{"addresses": [{"ip": "192.168.50.2"}], "ports": [{"port": 5432}]}]}))?;
    endpoints.create(&user).await?;
    wait_slices(&slices, "ext", &["192.168.50.2 110 5432"]).await?;
    let list = slices.list(&ListParams::default().labels("kubernetes.io/service-name=ext")).await?;
    let managed_by =
        list.items[0].metadata.labels.as_ref().and_then(|l| l.get("endpointslice.kubernetes.io/managed-by"));
    assert_eq!(managed_by.map(String::as_str), Some("endpointslicemirroring-controller.k8s.io"));
    // The controller never rewrites them.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(endpoints_of(&endpoints, "ext").await, ["ready 192.168.50.2:5432"]);
    // A change to the user's Endpoints is mirrored.
    let mut changed = endpoints.get("ext").await?;
    changed.subsets.as_mut().context("subsets")?[0].addresses.as_mut().context("addresses")?[0].ip =
        "192.168.50.3".into();
    endpoints.replace(&changed).await?;
    wait_slices(&slices, "ext", &["192.168.50.3 110 5432"]).await?;
    Ok(())
}

#[tokio::test]
async fn slices_are_cut_at_the_limit_and_shrink_with_the_service() -> anyhow::Result<()> {
    let (_apiserver, _cm, client) = start(&["--max-endpoints-per-slice=2"]).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    services
        .create(&service(json!({"metadata": {"name": "big"},
            "spec": {"selector": {"app": "big"}, "ports": [{"port": 80, "targetPort": 8080}]}}))?)
        .await?;
    for i in 1..=5 {
        running_pod(&pods, &format!("big-{i}"), "big", 8080, &format!("10.1.1.{i}"), true).await?;
    }
    let want: Vec<String> = (1..=5).map(|i| format!("10.1.1.{i} 110 8080")).collect();
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    wait_slices(&slices, "big", &want).await?;
    let count = || async {
        let params = ListParams::default().labels("kubernetes.io/service-name=big");
        slices.list(&params).await.map(|l| l.items.len()).unwrap_or(0)
    };
    assert_eq!(count().await, 3);
    for i in 1..=4 {
        pods.delete(&format!("big-{i}"), &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await?;
    }
    wait_slices(&slices, "big", &["10.1.1.5 110 8080"]).await?;
    wait_for(TIMEOUT, || async { count().await == 1 }).await.context("empty slices were not deleted")?;
    Ok(())
}
