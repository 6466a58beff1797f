//! The ServiceAccount admission plugin and namespace finalization against a
//! real etcd: pods get their ServiceAccount, pods naming a missing one are
//! refused, the system namespaces stay, and a terminating namespace goes
//! only once its `kubernetes` finalizer is removed.

use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use rkube_api::Reason;
use rkube_client::{Api, Client, DeleteParams};
use rkube_testkit::{TestApiserver, wait_for};
use serde_json::{Value, json};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

fn pod(name: &str, spec_extra: Value) -> Pod {
    let mut spec = json!({"containers": [{"name": "c", "image": "rkube/toolbox:1.0"}]});
    if let (Some(s), Some(extra)) = (spec.as_object_mut(), spec_extra.as_object()) {
        s.extend(extra.clone());
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

fn service_accounts_of(p: &Pod) -> (Option<String>, Option<String>) {
    let spec = p.spec.clone().unwrap_or_default();
    (spec.service_account_name, spec.service_account)
}

fn sa(name: &str) -> ServiceAccount {
    serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
}

#[tokio::test]
async fn pods_get_the_default_service_account_and_missing_ones_are_refused() -> anyhow::Result<()> {
    let server = TestApiserver::start().await?;
    let client = Client::new(&server.url())?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    // No ServiceAccount named: `default`, in both fields, even before the
    // serviceaccount controller has created it (no controller runs here).
    let created = pods.create(&pod("plain", json!({}))).await?;
    let both = |n: &str| (Some(n.to_string()), Some(n.to_string()));
    assert_eq!(service_accounts_of(&created), both("default"));
    assert_eq!(service_accounts_of(&pods.get("plain").await?), both("default"), "stored so");

    // A ServiceAccount that does not exist: refused with Kubernetes' message.
    let e = pods.create(&pod("robot", json!({"serviceAccountName": "robot"}))).await.expect_err("no such SA");
    assert_eq!(e.reason, Reason::Forbidden);
    assert_eq!(
        e.message,
        "pods \"robot\" is forbidden: error looking up service account default/robot: serviceaccount \"robot\" not found"
    );
    // The deprecated alias alone names it too.
    let e = pods.create(&pod("alias", json!({"serviceAccount": "robot"}))).await.expect_err("no such SA");
    assert!(e.message.contains("default/robot"), "{}", e.message);

    // Once it exists, the pod is admitted (the cache or etcd knows it).
    Api::<ServiceAccount>::namespaced(client.clone(), "default").create(&sa("robot")).await?;
    let created = pods.create(&pod("robot", json!({"serviceAccountName": "robot"}))).await?;
    assert_eq!(service_accounts_of(&created), both("robot"));
    let created = pods.create(&pod("alias", json!({"serviceAccount": "robot"}))).await?;
    assert_eq!(service_accounts_of(&created), both("robot"), "the alias fills serviceAccountName");

    // A ServiceAccount of another namespace does not count.
    let other: Api<Pod> = Api::namespaced(client.clone(), "kube-public");
    let e = other.create(&pod("robot", json!({"serviceAccountName": "robot"}))).await.expect_err("other ns");
    assert!(e.message.contains("kube-public/robot"), "{}", e.message);

    // Deleted: refused again once the apiserver has seen the deletion.
    Api::<ServiceAccount>::namespaced(client.clone(), "default").delete("robot", &DeleteParams::default()).await?;
    wait_for(TIMEOUT, || async {
        matches!(pods.create(&pod("late", json!({"serviceAccountName": "robot"}))).await,
            Err(e) if e.reason == Reason::Forbidden)
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn without_the_plugin_pods_keep_their_spec() -> anyhow::Result<()> {
    let server = TestApiserver::start_with(|a| a.enable_admission_plugins = vec!["NamespaceLifecycle".into()]).await?;
    let pods: Api<Pod> = Api::namespaced(Client::new(&server.url())?, "default");
    let created = pods.create(&pod("plain", json!({}))).await?;
    assert_eq!(service_accounts_of(&created), (None, None));
    let created = pods.create(&pod("robot", json!({"serviceAccountName": "robot"}))).await?;
    assert_eq!(service_accounts_of(&created).0.as_deref(), Some("robot"), "not checked");
    Ok(())
}

#[tokio::test]
async fn system_namespaces_may_not_be_deleted() -> anyhow::Result<()> {
    let server = TestApiserver::start().await?;
    let namespaces: Api<Namespace> = Api::all(Client::new(&server.url())?);
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let e = namespaces.delete(name, &DeleteParams::default()).await.expect_err(name);
        assert_eq!(e.reason, Reason::Forbidden, "{name}");
        assert_eq!(e.message, format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted"));
    }
    Ok(())
}

#[tokio::test]
async fn a_terminating_namespace_goes_when_its_kubernetes_finalizer_is_removed() -> anyhow::Result<()> {
    let server = TestApiserver::start().await?;
    let client = Client::new(&server.url())?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "doomed"}}))?;
    let created = namespaces.create(&ns).await?;
    assert_eq!(created.spec.and_then(|s| s.finalizers), Some(vec!["kubernetes".to_string()]));

    let (marked, gone) = namespaces.delete("doomed", &DeleteParams::default()).await?;
    assert!(!gone, "the kubernetes finalizer holds it");
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert_eq!(marked.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Terminating"));

    // Status writes (the controller's conditions) do not finish it.
    let conditions = json!({"status": {"conditions": [{"type": "NamespaceContentRemaining", "status": "True",
        "reason": "SomeResourcesRemain", "message": "Some resources are remaining: pods. has 2 resource instances"}]}});
    let patched = namespaces.patch_status("doomed", &conditions).await?;
    assert_eq!(patched.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Terminating"));
    assert!(namespaces.get_opt("doomed").await?.is_some(), "still there with its finalizer");
    // Neither do label changes.
    namespaces.patch("doomed", &json!({"metadata": {"labels": {"a": "b"}}})).await?;
    assert!(namespaces.get_opt("doomed").await?.is_some());

    // Emptying spec.finalizers (the controller's finalize) removes it.
    namespaces.patch("doomed", &json!({"spec": {"finalizers": []}})).await?;
    assert!(namespaces.get_opt("doomed").await?.is_none(), "finalized, so gone");

    // A namespace of that name can be created again, Active.
    let again = namespaces.create(&ns).await?;
    assert_eq!(again.status.and_then(|s| s.phase).as_deref(), Some("Active"));
    Ok(())
}
