//! The Node authorizer and NodeRestriction on a TLS apiserver with nodes
//! n1 and n2, each acting with its own certificate: a node reads only the
//! Secrets and ConfigMaps of pods bound to it, and writes only its own Node,
//! its own Lease and pods bound to it — over gRPC and, with the real
//! kubectl, over REST.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret};
use rkube_api::{ApiError, Reason};
use rkube_client::config::ClientConfig;
use rkube_client::{Api, Client, DeleteParams, ListParams};
use rkube_testkit::{ScratchDir as Scratch, TestApiserver, kubectl};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

fn client(pki: &Path, user: &str) -> anyhow::Result<Client> {
    Ok(Client::from_config(&ClientConfig::from_kubeconfig(&pki.join(format!("{user}.kubeconfig")))?)?)
}

/// The real kubectl as the holder of `pki/<user>.kubeconfig`.
async fn kubectl_as(pki: &Path, user: &str, args: &[&str]) -> anyhow::Result<(bool, String, String)> {
    let config = pki.join(format!("{user}.kubeconfig"));
    let config = config.to_str().expect("a UTF-8 path");
    kubectl(&[&["--kubeconfig", config][..], args].concat()).await
}

fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("a valid object")
}

fn assert_forbidden(e: &ApiError, message: &str) {
    assert_eq!((e.reason, e.message.as_str()), (Reason::Forbidden, message), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_reach_only_what_their_pods_use_and_write_only_their_own() -> anyhow::Result<()> {
    let dir = Scratch(std::env::temp_dir().join(format!("rkube-nodeauthz-{}", std::process::id())));
    let pki = dir.0.join("pki");
    let _api = TestApiserver::start_secure(&pki, &["n1", "n2"], |_| {}).await?;
    let admin = client(&pki, "admin")?;
    let n1 = client(&pki, "node-n1")?;
    let n2 = client(&pki, "node-n2")?;

    // The admin's objects: a pod on n1 using s1 and c1, one on n2, and an unrelated secret.
    let secrets = Api::<Secret>::namespaced(admin.clone(), "default");
    for name in ["s1", "unrelated"] {
        secrets.create(&from(json!({"metadata": {"name": name}, "stringData": {"k": "v"}}))).await?;
    }
    Api::<ConfigMap>::namespaced(admin.clone(), "default")
        .create(&from(json!({"metadata": {"name": "c1"}, "data": {"k": "v"}})))
        .await?;
    let pods = Api::<Pod>::namespaced(admin.clone(), "default");
    pods.create(&from(json!({"metadata": {"name": "web"}, "spec": {
        "nodeName": "n1",
        "volumes": [{"name": "s", "secret": {"secretName": "s1"}}],
        "containers": [{"name": "c", "image": "nginx",
                        "envFrom": [{"configMapRef": {"name": "c1"}}]}]}})))
        .await?;
    pods.create(&from(json!({"metadata": {"name": "other"}, "spec": {
        "nodeName": "n2", "containers": [{"name": "c", "image": "nginx"}]}})))
        .await?;

    // n1 reads s1 and c1 once the graph has the pod; also by a per-object watch's list.
    let n1_secrets = Api::<Secret>::namespaced(n1.clone(), "default");
    let n1_config_maps = Api::<ConfigMap>::namespaced(n1.clone(), "default");
    rkube_testkit::wait_for(Duration::from_secs(10), || async { n1_secrets.get("s1").await.is_ok() }).await?;
    n1_config_maps.get("c1").await?;
    let one = n1_secrets.list(&ListParams::default().fields("metadata.name=s1")).await?;
    assert_eq!(one.items.len(), 1);

    // n2 may not; nor n1 an unrelated secret, nor all secrets.
    let e = Api::<Secret>::namespaced(n2.clone(), "default").get("s1").await.expect_err("n2 has no pod using s1");
    assert_forbidden(
        &e,
        r#"secrets "s1" is forbidden: User "system:node:n2" cannot get resource "secrets" in API group "" in the namespace "default": no relationship found between node 'n2' and this object"#,
    );
    let e = Api::<ConfigMap>::namespaced(n2.clone(), "default").get("c1").await.expect_err("n2 has no pod using c1");
    assert_forbidden(
        &e,
        r#"configmaps "c1" is forbidden: User "system:node:n2" cannot get resource "configmaps" in API group "" in the namespace "default": no relationship found between node 'n2' and this object"#,
    );
    let e = n1_secrets.get("unrelated").await.expect_err("no pod of n1 uses it");
    assert_forbidden(
        &e,
        r#"secrets "unrelated" is forbidden: User "system:node:n1" cannot get resource "secrets" in API group "" in the namespace "default": no relationship found between node 'n1' and this object"#,
    );
    let e = n1_secrets.list(&ListParams::default()).await.expect_err("a list of every secret");
    assert_eq!(e.reason, Reason::Forbidden, "{e}");

    // Nodes: each registers and reports its own, not the other's.
    let node = |name: &str| from::<Node>(json!({"metadata": {"name": name}}));
    Api::<Node>::all(n1.clone()).create(&node("n1")).await?;
    Api::<Node>::all(n2.clone()).create(&node("n2")).await?;
    let ready = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    Api::<Node>::all(n1.clone()).patch_status("n1", &ready).await?;
    let e = Api::<Node>::all(n1.clone()).patch_status("n2", &ready).await.expect_err("not n1's node");
    assert_forbidden(&e, r#"nodes "n2" is forbidden: node "n1" is not allowed to modify node "n2""#);
    let e = Api::<Node>::all(n1.clone()).create(&node("n3")).await.expect_err("not n1's node");
    assert_forbidden(&e, r#"nodes "n3" is forbidden: node "n1" is not allowed to modify node "n3""#);

    // Pods: n1 may not delete one bound to n2; n2 may.
    let e = Api::<Pod>::namespaced(n1.clone(), "default")
        .delete("other", &DeleteParams::default())
        .await
        .expect_err("bound to n2");
    assert_forbidden(
        &e,
        r#"pods "other" is forbidden: node "n1" can only delete pods with spec.nodeName set to itself"#,
    );
    let status = json!({"status": {"phase": "Running"}});
    let e = Api::<Pod>::namespaced(n1.clone(), "default").patch_status("other", &status).await.expect_err("n2's");
    assert_eq!(e.reason, Reason::Forbidden, "{e}");
    Api::<Pod>::namespaced(n1.clone(), "default").patch_status("web", &status).await?;

    // The same over REST: the authorizer, and NodeRestriction with the user.
    let (ok, out, err) = kubectl_as(&pki, "node-n1", &["get", "secret", "s1", "-n", "default", "-o", "name"]).await?;
    assert!(ok && out.trim() == "secret/s1", "{out}{err}");
    let (ok, _, err) = kubectl_as(&pki, "node-n2", &["get", "secret", "s1", "-n", "default"]).await?;
    assert!(!ok && err.contains("no relationship found between node 'n2' and this object"), "{err}");
    let (ok, _, err) =
        kubectl_as(&pki, "node-n1", &["delete", "pod", "other", "-n", "default", "--wait=false"]).await?;
    assert!(!ok && err.contains(r#"node "n1" can only delete pods with spec.nodeName set to itself"#), "{err}");

    Api::<Pod>::namespaced(n2.clone(), "default").delete("other", &DeleteParams::default()).await?;

    // Leases: n1 creates and renews its own, not n2's.
    let leases = Api::<Lease>::namespaced(n1.clone(), "kube-node-lease");
    let lease = |name: &str| {
        from::<Lease>(json!({"metadata": {"name": name}, "spec": {"holderIdentity": name, "leaseDurationSeconds": 40}}))
    };
    let mut mine = leases.create(&lease("n1")).await?;
    mine.spec.get_or_insert_default().lease_duration_seconds = Some(41);
    leases.replace(&mine).await?;
    let e = leases.create(&lease("n2")).await.expect_err("n2's lease");
    assert_forbidden(
        &e,
        r#"leases.coordination.k8s.io "n2" is forbidden: can only access node lease with the same name as the requesting node"#,
    );
    let theirs = Api::<Lease>::namespaced(n2.clone(), "kube-node-lease").create(&lease("n2")).await?;
    let e = leases.replace(&theirs).await.expect_err("n2's lease");
    assert_forbidden(
        &e,
        r#"leases.coordination.k8s.io "n2" is forbidden: User "system:node:n1" cannot update resource "leases" in API group "coordination.k8s.io" in the namespace "kube-node-lease": can only access node lease with the same name as the requesting node"#,
    );
    Ok(())
}
