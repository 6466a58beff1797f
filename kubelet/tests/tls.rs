//! The kubelet API over TLS: the apiserver relays to it with its kubelet
//! client certificate, and the kubelet refuses every other client (a node's
//! own certificate, no certificate). A node with the fake runtime is enough:
//! what is checked is who may call, not what the runtime does. And the
//! kubelet with its node's certificate, under the Node authorizer and
//! NodeRestriction, registers, renews its Lease, runs its pods and follows
//! the ConfigMaps they use.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret};
use rkube_client::config::ClientConfig;
use rkube_client::{Api, Client};
use rkube_kubelet::{App, Args};
use rkube_proto::v1 as pb;
use rkube_proto::v1::kubelet_client::KubeletClient;
use rkube_testkit::TestApiserver;
use serde_json::json;
use std::path::Path;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

const NODE: &str = "kt-tls";

/// A direct call to the kubelet API at `addr` as the holder of `pki/<cred>.{crt,key}`
/// (or without a client certificate).
async fn stats_as(pki: &Path, addr: std::net::SocketAddr, cred: Option<&str>) -> Result<(), String> {
    let read = |f: &str| std::fs::read(pki.join(f)).expect("a PKI file");
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read("ca.crt")));
    if let Some(c) = cred {
        tls = tls.identity(Identity::from_pem(read(&format!("{c}.crt")), read(&format!("{c}.key"))));
    }
    let channel = Endpoint::from_shared(format!("https://{addr}"))
        .and_then(|e| e.tls_config(tls))
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("connect: {e}"))?;
    KubeletClient::new(channel)
        .stats(pb::StatsRequest {})
        .await
        .map(|_| ())
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_apiserver_may_call_the_kubelet_api() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("rkubelet-tls-{}", std::process::id()));
    let pki = dir.join("pki");
    let api = TestApiserver::start_secure(&pki, &[NODE], |_| {}).await?;
    let p = |f: &str| pki.join(f).display().to_string();
    let args = <Args as clap::Parser>::try_parse_from([
        "rkubelet".to_string(),
        format!("--kubeconfig={}", p(&format!("node-{NODE}.kubeconfig"))),
        "--healthz-bind-address=127.0.0.1:0".into(),
        format!("--hostname-override={NODE}"),
        "--node-ip=127.0.0.1".into(),
        "--runtime=fake".into(),
        format!("--root-dir={}", dir.join("root").display()),
        "--pod-cidr=10.252.254.0/24".into(),
        "--cluster-cidr=10.252.0.0/16".into(),
        "--port=0".into(),
        format!("--tls-cert-file={}", p(&format!("kubelet-{NODE}.crt"))),
        format!("--tls-private-key-file={}", p(&format!("kubelet-{NODE}.key"))),
        format!("--client-ca-file={}", p("ca.crt")),
    ])?;
    let app = App::build(args).await?;
    let addr = app.api_addr().expect("a kubelet API");
    let stop = CancellationToken::new();
    let kubelet = tokio::spawn(app.run(stop.clone()));

    // Through the apiserver, as the admin: relayed over TLS.
    let admin = Client::from_config(&ClientConfig::from_kubeconfig(&pki.join("admin.kubeconfig"))?)?;
    let last = std::sync::Mutex::new(String::new());
    let relayed = rkube_testkit::wait_for(Duration::from_secs(20), || async {
        let r = admin.node_stats(NODE).await;
        *last.lock().expect("not poisoned") = format!("{r:?}");
        r.is_ok()
    })
    .await;
    assert!(relayed.is_ok(), "node stats through the apiserver: {}", last.lock().expect("not poisoned"));

    // Directly: the apiserver's certificate is let in, a node's is not, and
    // a client without a certificate does not get through the handshake.
    stats_as(&pki, addr, Some("apiserver-kubelet-client")).await.map_err(anyhow::Error::msg)?;
    let e = stats_as(&pki, addr, Some(&format!("node-{NODE}"))).await.expect_err("a node's certificate");
    assert!(e.starts_with("PermissionDenied") && e.contains("only the apiserver"), "{e}");
    stats_as(&pki, addr, None).await.expect_err("no client certificate");

    stop.cancel();
    kubelet.await??;
    drop(api);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Starts a fake-runtime kubelet for `node` with its own kubeconfig, under `dir`.
async fn start_kubelet(dir: &Path, node: &str, cidr: &str) -> anyhow::Result<(App, CancellationToken)> {
    let pki = dir.join("pki");
    let p = |f: &str| pki.join(f).display().to_string();
    let args = <Args as clap::Parser>::try_parse_from([
        "rkubelet".to_string(),
        format!("--kubeconfig={}", p(&format!("node-{node}.kubeconfig"))),
        "--healthz-bind-address=127.0.0.1:0".into(),
        format!("--hostname-override={node}"),
        "--node-ip=127.0.0.1".into(),
        "--runtime=fake".into(),
        format!("--root-dir={}", dir.join("root").display()),
        format!("--pod-cidr={cidr}"),
        "--cluster-cidr=10.252.0.0/16".into(),
        "--port=0".into(),
        format!("--tls-cert-file={}", p(&format!("kubelet-{node}.crt"))),
        format!("--tls-private-key-file={}", p(&format!("kubelet-{node}.key"))),
        format!("--client-ca-file={}", p("ca.crt")),
    ])?;
    Ok((App::build(args).await?, CancellationToken::new()))
}

fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("a valid object")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_its_own_certificate_registers_runs_its_pods_and_follows_their_config_maps() -> anyhow::Result<()> {
    let node = "kt-own";
    let dir = std::env::temp_dir().join(format!("rkubelet-own-{}", std::process::id()));
    let pki = dir.join("pki");
    let api = TestApiserver::start_secure(&pki, &[node], |_| {}).await?;
    let (app, stop) = start_kubelet(&dir, node, "10.252.253.0/24").await?;
    let kubelet = tokio::spawn(app.run(stop.clone()));
    let admin = Client::from_config(&ClientConfig::from_kubeconfig(&pki.join("admin.kubeconfig"))?)?;

    // Registered and Ready, with its Lease.
    let nodes = Api::<Node>::all(admin.clone());
    let ready = rkube_testkit::wait_for(Duration::from_secs(20), || async {
        let n = nodes.get_opt(node).await.ok().flatten();
        let conditions = n.and_then(|n| n.status).and_then(|s| s.conditions).unwrap_or_default();
        conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")
    })
    .await;
    assert!(ready.is_ok(), "node {node} never became Ready");
    let leases = Api::<Lease>::namespaced(admin.clone(), "kube-node-lease");
    rkube_testkit::wait_for(Duration::from_secs(20), || async { leases.get_opt(node).await.ok().flatten().is_some() })
        .await?;

    // A pod using a ConfigMap and a Secret runs, with both projected.
    let data = |v: &str| json!({"metadata": {"name": "c1"}, "data": {"k": v}});
    let config_maps = Api::<ConfigMap>::namespaced(admin.clone(), "default");
    config_maps.create(&from(data("v1"))).await?;
    Api::<Secret>::namespaced(admin.clone(), "default")
        .create(&from(json!({"metadata": {"name": "s1"}, "stringData": {"k": "secret"}})))
        .await?;
    let pods = Api::<Pod>::namespaced(admin.clone(), "default");
    let pod = pods
        .create(&from(json!({"metadata": {"name": "web"}, "spec": {
            "nodeName": node,
            // No token volume: its kube-root-ca.crt comes from a controller manager, which this test has not.
            "automountServiceAccountToken": false,
            "volumes": [{"name": "cfg", "configMap": {"name": "c1"}}, {"name": "sec", "secret": {"secretName": "s1"}}],
            "containers": [{"name": "c", "image": "nginx",
                            "env": [{"name": "S", "valueFrom": {"secretKeyRef": {"name": "s1", "key": "k"}}}]}]}})))
        .await?;
    let running = rkube_testkit::wait_for(Duration::from_secs(20), || async {
        let p = pods.get("web").await.ok();
        p.and_then(|p| p.status).and_then(|s| s.phase).as_deref() == Some("Running")
    })
    .await;
    assert!(running.is_ok(), "the pod never ran: {:?}", pods.get("web").await.map(|p| p.status));
    let uid = pod.metadata.uid.expect("a uid");
    let file = dir.join("root/pods").join(&uid).join("volumes/kubernetes.io~configmap/cfg/k");
    let read = || std::fs::read_to_string(&file).unwrap_or_default();
    assert_eq!(read(), "v1");

    // Updates reach the volume through the ConfigMap's own watch, well
    // before the 10 s resync (which two in a row cannot both beat by luck).
    for value in ["v2", "v3"] {
        let mut cm = config_maps.get("c1").await?;
        cm.data = Some([("k".to_string(), value.to_string())].into());
        config_maps.replace(&cm).await?;
        let followed = rkube_testkit::wait_for(Duration::from_secs(3), || async { read() == value }).await;
        assert!(followed.is_ok(), "the volume holds {:?}, not {value:?}", read());
    }

    stop.cancel();
    kubelet.await??;
    drop(api);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
