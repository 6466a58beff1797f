//! The kubelet API over TLS: the apiserver relays to it with its kubelet
//! client certificate, and the kubelet refuses every other client (a node's
//! own certificate, no certificate). A node with the fake runtime is enough:
//! what is checked is who may call, not what the runtime does.

use rkube_client::Client;
use rkube_client::config::ClientConfig;
use rkube_kubelet::{App, Args};
use rkube_proto::v1 as pb;
use rkube_proto::v1::kubelet_client::KubeletClient;
use rkube_testkit::TestApiserver;
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
