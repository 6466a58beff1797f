//! What a pod's containers see of the cluster's Services on the real
//! Docker engine: the resolv.conf of their dnsPolicy, and the Service
//! environment variables of Services created before the pod.

mod support;

use k8s_openapi::api::core::v1::{Pod, Service};
use rkube_client::Api;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;
use support::{Harness, TOOLBOX};

const START: Duration = Duration::from_secs(60);

fn running(p: &Pod) -> bool {
    let status = p.status.as_ref();
    status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && status.and_then(|s| s.container_statuses.as_ref()).is_some_and(|c| c.iter().all(|c| c.ready))
}

fn sleeper(name: &str, spec: serde_json::Value) -> serde_json::Value {
    let mut spec = spec;
    spec["terminationGracePeriodSeconds"] = json!(1);
    spec["containers"] = json!([{"name": "app", "image": TOOLBOX, "command": ["sleep", "3600"],
        "env": [{"name": "WEB_URL", "value": "http://$(WEB_SERVICE_HOST):$(WEB_SERVICE_PORT_HTTP)"},
                {"name": "WEB_SERVICE_PORT", "value": "overridden"}]}]);
    json!({"metadata": {"name": name}, "spec": spec})
}

/// The environment of the pod's running container `app`.
async fn env_of(h: &Harness, pod: &Pod) -> anyhow::Result<BTreeMap<String, String>> {
    let id = h.container_id(pod.metadata.uid.as_deref().unwrap_or_default(), "app").await?;
    let text = h.exec(&id, &["env"]).await?;
    Ok(text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

async fn resolv_conf_of(h: &Harness, pod: &Pod) -> anyhow::Result<String> {
    let id = h.container_id(pod.metadata.uid.as_deref().unwrap_or_default(), "app").await?;
    h.exec(&id, &["cat", "/etc/resolv.conf"]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_see_cluster_dns_and_the_variables_of_earlier_services() -> anyhow::Result<()> {
    let h = Harness::start_with_args(&["--cluster-dns=10.254.0.10", "--cluster-domain=cluster.local"]).await?;
    let services: Api<Service> = Api::namespaced(h.client.clone(), "default");
    // The master service: the apiserver keeps it; made here if it has not yet.
    if services.get_opt("kubernetes").await?.is_none() {
        let master = serde_json::from_value(json!({"metadata": {"name": "kubernetes"}, "spec": {
            "clusterIP": "10.254.0.1", "ports": [{"name": "https", "port": 443, "targetPort": 6443}]}}))?;
        match services.create(&master).await {
            Err(e) if e.reason != rkube_client::Reason::AlreadyExists => return Err(e.into()),
            _ => {}
        }
    }
    let master = services.get("kubernetes").await?.spec.unwrap_or_default();
    let master_ip = master.cluster_ip.unwrap_or_default();
    let master_port = master.ports.unwrap_or_default().first().map(|p| p.port).unwrap_or_default();
    let web = services
        .create(&serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {
            "selector": {"app": "web"}, "ports": [
                {"name": "http", "port": 80, "targetPort": 8080},
                {"name": "metrics", "port": 9090, "protocol": "UDP"}]}}))?)
        .await?;
    let ip = web.spec.and_then(|s| s.cluster_ip).unwrap_or_default();
    assert!(!ip.is_empty(), "the apiserver allocates a ClusterIP");

    h.run_pod(sleeper("linked", json!({}))).await?;
    h.run_pod(sleeper(
        "unlinked",
        json!({"enableServiceLinks": false, "dnsPolicy": "None", "dnsConfig": {
            "nameservers": ["1.1.1.1"], "searches": ["example.test"], "options": [{"name": "ndots", "value": "2"}]}}),
    ))
    .await?;

    let linked = h.wait_pod("linked", START, running).await?;
    let env = env_of(&h, &linked).await?;
    let expect = [
        ("WEB_SERVICE_HOST", ip.clone()),
        ("WEB_SERVICE_PORT", "overridden".into()),
        ("WEB_SERVICE_PORT_HTTP", "80".into()),
        ("WEB_SERVICE_PORT_METRICS", "9090".into()),
        ("WEB_PORT", format!("tcp://{ip}:80")),
        ("WEB_PORT_80_TCP", format!("tcp://{ip}:80")),
        ("WEB_PORT_80_TCP_PROTO", "tcp".into()),
        ("WEB_PORT_80_TCP_PORT", "80".into()),
        ("WEB_PORT_80_TCP_ADDR", ip.clone()),
        ("WEB_PORT_9090_UDP", format!("udp://{ip}:9090")),
        ("WEB_PORT_9090_UDP_PROTO", "udp".into()),
        ("WEB_URL", format!("http://{ip}:80")),
        ("KUBERNETES_SERVICE_HOST", master_ip.clone()),
        ("KUBERNETES_SERVICE_PORT_HTTPS", master_port.to_string()),
        ("KUBERNETES_PORT", format!("tcp://{master_ip}:{master_port}")),
    ];
    for (name, value) in &expect {
        assert_eq!(env.get(*name), Some(value), "{name} in {env:#?}");
    }
    let resolv = resolv_conf_of(&h, &linked).await?;
    assert!(
        resolv.starts_with("search default.svc.cluster.local svc.cluster.local cluster.local"),
        "resolv.conf:\n{resolv}"
    );
    assert!(resolv.contains("\nnameserver 10.254.0.10\noptions ndots:5\n"), "resolv.conf:\n{resolv}");
    assert_eq!(resolv.matches("nameserver").count(), 1, "only the cluster DNS server:\n{resolv}");

    let unlinked = h.wait_pod("unlinked", START, running).await?;
    let env = env_of(&h, &unlinked).await?;
    assert_eq!(env.get("KUBERNETES_SERVICE_HOST"), Some(&master_ip), "{env:#?}");
    assert!(!env.contains_key("WEB_SERVICE_HOST"), "enableServiceLinks: false: {env:#?}");
    assert_eq!(env.get("WEB_URL").map(String::as_str), Some("http://$(WEB_SERVICE_HOST):$(WEB_SERVICE_PORT_HTTP)"));
    assert_eq!(
        resolv_conf_of(&h, &unlinked).await?,
        "search example.test\nnameserver 1.1.1.1\noptions ndots:2\n",
        "dnsPolicy None: only dnsConfig"
    );
    h.shutdown().await
}
