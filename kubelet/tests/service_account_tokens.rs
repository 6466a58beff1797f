//! A pod on real Docker gets its ServiceAccount's token volume:
//! `/var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt,namespace}`,
//! with a pod-bound token that the apiserver accepts as the ServiceAccount
//! (checked on a TLS apiserver on the same etcd), as in Kubernetes.

mod support;

use k8s_openapi::api::core::v1::Pod;
use rkube_client::config::Credentials;
use rkube_client::{Client, ListParams};
use rkube_testkit::{TestControllerManager, free_port};
use serde_json::json;
use std::time::Duration;
use support::{Harness, TOOLBOX};

const DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

fn running(p: &Pod) -> bool {
    let s = p.status.as_ref();
    s.and_then(|s| s.phase.as_deref()) == Some("Running")
        && s.and_then(|s| s.container_statuses.as_ref()).is_some_and(|c| c.iter().all(|c| c.ready))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_gets_a_token_the_apiserver_accepts_with_the_ca_and_namespace() -> anyhow::Result<()> {
    let scratch = std::env::temp_dir().join(format!("rkubelet-satoken-{}-{}", std::process::id(), free_port()));
    let tls_port = free_port();
    let pki = rkube_pki::Pki {
        dir: scratch.join("pki"),
        server: format!("https://127.0.0.1:{tls_port}"),
        ..Default::default()
    };
    pki.ensure()?;
    let p = pki.dir.clone();
    // The kubelet's apiserver is plain HTTP (as in the other kubelet tests) and signs tokens.
    let h = Harness::start_with_apiserver(|a| a.service_account_signing_key_file = Some(p.join("sa.key"))).await?;
    let root_ca = format!("--root-ca-file={}", p.join("ca.crt").display());
    let cm = TestControllerManager::start(
        &h.apiserver.url(),
        &["--leader-elect=false", "--controllers=serviceaccount,root-ca-cert-publisher", &root_ca],
    )
    .await?;

    let created = h
        .run_pod(json!({"metadata": {"name": "reader"}, "spec": {"terminationGracePeriodSeconds": 1,
            "containers": [{"name": "app", "image": TOOLBOX, "command": ["sleep", "3600"]}]}}))
        .await?;
    let uid = created.metadata.uid.clone().unwrap_or_default();
    let volume = created.spec.as_ref().and_then(|s| s.volumes.as_ref()).and_then(|v| v.first()).map(|v| v.name.clone());
    assert!(volume.as_deref().is_some_and(|v| v.starts_with("kube-api-access-")), "{volume:?}");
    h.wait_pod("reader", Duration::from_secs(90), running).await?;
    let app = h.container_id(&uid, "app").await?;

    let token = h.exec(&app, &["cat", &format!("{DIR}/token")]).await?;
    let ca = h.exec(&app, &["cat", &format!("{DIR}/ca.crt")]).await?;
    let namespace = h.exec(&app, &["cat", &format!("{DIR}/namespace")]).await?;
    assert_eq!(namespace, "default");
    assert_eq!(ca, std::fs::read_to_string(p.join("ca.crt"))?, "the cluster CA");
    assert_eq!(token.split('.').count(), 3, "a JWT");
    let modes = h.exec(&app, &["stat", "-L", "-c", "%a %n", &format!("{DIR}/token"), &format!("{DIR}/ca.crt")]).await?;
    assert_eq!(modes, format!("644 {DIR}/token\n644 {DIR}/ca.crt\n"));
    // Read-only for the container.
    assert!(h.exec(&app, &["touch", &format!("{DIR}/x")]).await.is_err(), "the volume is read-only");

    // A TLS apiserver on the same etcd and key accepts the token as the pod's ServiceAccount.
    let secure = h
        .apiserver
        .peer(|a| {
            a.port = tls_port;
            a.plain_http = false;
            a.tls_cert_file = Some(p.join("apiserver.crt"));
            a.tls_private_key_file = Some(p.join("apiserver.key"));
            a.client_ca_file = Some(p.join("ca.crt"));
            a.insecure_port = free_port();
        })
        .await?;
    let creds =
        Credentials { certificate_authority: Some(ca.into_bytes()), token: Some(token.clone()), ..Default::default() };
    let as_pod = Client::with_credentials(&secure.url(), &creds)?;
    let pods = rkube_api::resource::lookup("pods").expect("known");
    // The token authenticates as the pod's ServiceAccount, which RBAC gives
    // nothing here: a 403 naming it, not a 401.
    let e = as_pod.list(pods, "default", &ListParams::default()).await.expect_err("no RoleBinding");
    assert_eq!(e.reason, rkube_api::Reason::Forbidden, "{e}");
    assert!(e.message.contains(r#"User "system:serviceaccount:default:default""#), "{e}");
    let forged = Credentials { token: Some(format!("{token}x")), ..creds.clone() };
    let e = Client::with_credentials(&secure.url(), &forged)?
        .list(pods, "default", &ListParams::default())
        .await
        .expect_err("a bad signature");
    assert_eq!(e.reason, rkube_api::Reason::Unauthorized);

    drop(secure);
    cm.stop().await?;
    h.shutdown().await?;
    std::fs::remove_dir_all(&scratch).ok();
    Ok(())
}
