//! RBAC against a real etcd: the bootstrap policy is there after start, the
//! authorizer decides from the RoleBindings and ClusterRoles it follows
//! through the watch (a new binding counts within a second), denials carry
//! Kubernetes' messages, and access reviews answer over REST and gRPC.

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use rkube_api::Reason;
use rkube_apiserver::authz::review::SELF_SUBJECT_ACCESS_REVIEWS;
use rkube_apiserver::authz::{Attributes, Authorizer, Decision, UserInfo, bootstrap};
use rkube_client::{Api, Client, DeleteParams};
use rkube_testkit::{TestApiserver, http_request, wait_for};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(10);

/// An apiserver in-process, so the test reaches its authorizer.
async fn start() -> anyhow::Result<TestApiserver> {
    TestApiserver::start().await
}

fn user(name: &str) -> UserInfo {
    UserInfo { name: name.into(), uid: String::new(), groups: vec!["system:authenticated".into()] }
}

async fn decide(authorizer: &Authorizer, u: &UserInfo, verb: &str, resource: &str, ns: &str, name: &str) -> Decision {
    authorizer.authorize(&Attributes::resource(u, verb, "", resource, ns, name)).await
}

fn role_binding(ns: &str, name: &str, role: &str, user: &str) -> RoleBinding {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}],
    }))
    .unwrap()
}

async fn create_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    Api::<Namespace>::all(client.clone()).create(&ns).await?;
    Ok(())
}

#[tokio::test]
async fn bootstrap_policy_exists_after_start_and_is_left_alone_when_edited() -> anyhow::Result<()> {
    let server = start().await?;
    let client = Client::new(&server.url())?;
    let roles: Api<ClusterRole> = Api::all(client.clone());
    for name in [
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:basic-user",
        "system:discovery",
        "system:public-info-viewer",
        "system:kube-scheduler",
        "system:kube-controller-manager",
        "system:node-proxier",
        "system:node",
        "system:kube-dns",
    ] {
        let role = roles.get(name).await?;
        let labels = role.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get("kubernetes.io/bootstrapping").map(String::as_str), Some("rbac-defaults"), "{name}");
        let annotations = role.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(
            annotations.get("rbac.authorization.kubernetes.io/autoupdate").map(String::as_str),
            Some("true"),
            "{name}"
        );
        assert!(!role.rules.unwrap_or_default().is_empty(), "{name} has rules");
    }
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    let admin = bindings.get("cluster-admin").await?;
    assert_eq!(admin.role_ref.name, "cluster-admin");
    let subjects = admin.subjects.unwrap_or_default();
    assert_eq!((subjects[0].kind.as_str(), subjects[0].name.as_str()), ("Group", "system:masters"));
    let dns = bindings.get("system:kube-dns").await?.subjects.unwrap_or_default();
    assert_eq!(
        (dns[0].kind.as_str(), dns[0].namespace.as_deref(), dns[0].name.as_str()),
        ("ServiceAccount", Some("kube-system"), "kube-dns")
    );

    // Ensuring again recreates what is missing and keeps what was edited.
    let mut edit = roles.get("edit").await?;
    edit.rules = Some(edit.rules.unwrap_or_default().into_iter().take(1).collect());
    roles.replace(&edit).await?;
    roles.delete("admin", &DeleteParams::default()).await?;
    assert_eq!(bootstrap::ensure(&server.registry()).await?, 1, "only admin was missing");
    assert!(roles.get("admin").await.is_ok());
    assert_eq!(roles.get("edit").await?.rules.unwrap_or_default().len(), 1, "the edited role is left alone");
    Ok(())
}

#[tokio::test]
async fn a_view_binding_grants_reading_its_namespace_only_and_takes_effect_at_once() -> anyhow::Result<()> {
    let server = start().await?;
    let client = Client::new(&server.url())?;
    create_namespace(&client, "a").await?;
    create_namespace(&client, "b").await?;
    let authorizer = server.registry().authorizer().clone();
    let jane = user("jane");

    // Nothing bound yet: denied, with Kubernetes' message.
    let before = decide(&authorizer, &jane, "list", "pods", "a", "").await;
    assert_eq!(before, Decision::Deny { reason: String::new() });

    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), "a");
    let created = Instant::now();
    bindings.create(&role_binding("a", "jane-view", "view", "jane")).await?;
    wait_for(Duration::from_secs(1), || {
        let (authorizer, jane) = (authorizer.clone(), jane.clone());
        async move { decide(&authorizer, &jane, "list", "pods", "a", "").await.allowed() }
    })
    .await?;
    eprintln!("the binding counted after {:?}", created.elapsed());

    assert_eq!(
        decide(&authorizer, &jane, "list", "pods", "a", "").await.reason(),
        r#"RBAC: allowed by RoleBinding "jane-view/a" of ClusterRole "view" to User "jane""#
    );
    assert!(decide(&authorizer, &jane, "get", "pods", "a", "web").await.allowed());
    assert!(decide(&authorizer, &jane, "watch", "configmaps", "a", "").await.allowed());
    assert!(!decide(&authorizer, &jane, "delete", "pods", "a", "web").await.allowed(), "view cannot write");
    // Another user gets nothing from it.
    assert!(!decide(&authorizer, &user("joe"), "list", "pods", "a", "").await.allowed());

    let in_b = Attributes::resource(&jane, "list", "", "pods", "b", "");
    let denied = authorizer.authorize(&in_b).await.into_result(&in_b).expect_err("not in b");
    assert_eq!(denied.reason, Reason::Forbidden);
    assert_eq!(
        denied.message,
        r#"pods is forbidden: User "jane" cannot list resource "pods" in API group "" in the namespace "b""#
    );
    let secret = Attributes::resource(&jane, "get", "", "secrets", "a", "db");
    let denied = authorizer.authorize(&secret).await.into_result(&secret).expect_err("view reads no secrets");
    assert_eq!(
        denied.message,
        r#"secrets "db" is forbidden: User "jane" cannot get resource "secrets" in API group "" in the namespace "a""#
    );
    let nodes = Attributes::resource(&jane, "list", "", "nodes", "", "");
    assert_eq!(
        authorizer.authorize(&nodes).await.into_result(&nodes).expect_err("cluster scope").message,
        r#"nodes is forbidden: User "jane" cannot list resource "nodes" in API group "" at the cluster scope"#
    );

    // Deleting the binding takes the grant away just as fast.
    bindings.delete("jane-view", &DeleteParams::default()).await?;
    wait_for(Duration::from_secs(1), || {
        let (authorizer, jane) = (authorizer.clone(), jane.clone());
        async move { !decide(&authorizer, &jane, "list", "pods", "a", "").await.allowed() }
    })
    .await?;

    // The bootstrap bindings apply: every authenticated user may discover the API.
    assert!(authorizer.authorize(&Attributes::non_resource(&jane, "get", "/apis/apps/v1")).await.allowed());
    assert!(!authorizer.authorize(&Attributes::non_resource(&jane, "get", "/metrics")).await.allowed());
    let node = UserInfo { name: "system:node:n1".into(), uid: String::new(), groups: vec!["system:nodes".into()] };
    assert!(!decide(&authorizer, &node, "update", "pods", "a", "web").await.allowed());
    let status = Attributes::resource(&node, "patch", "", "pods", "a", "web").with_subresource("status");
    assert!(authorizer.authorize(&status).await.allowed(), "kubelets report pod status");
    Ok(())
}

async fn post(url: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
    let r = http_request("POST", url, &[("Content-Type", "application/json")], &serde_json::to_vec(body)?).await?;
    Ok((r.code, r.json()))
}

#[tokio::test]
async fn access_reviews_answer_over_rest_and_grpc() -> anyhow::Result<()> {
    let server = start().await?;
    let client = Client::new(&server.url())?;
    create_namespace(&client, "a").await?;
    Api::<RoleBinding>::namespaced(client.clone(), "a").create(&role_binding("a", "jane-view", "view", "jane")).await?;
    let authorizer = server.registry().authorizer().clone();
    let jane = user("jane");
    wait_for(TIMEOUT, || {
        let (authorizer, jane) = (authorizer.clone(), jane.clone());
        async move { decide(&authorizer, &jane, "list", "pods", "a", "").await.allowed() }
    })
    .await?;

    // SelfSubjectAccessReview (`kubectl auth can-i`): the requester is the
    // placeholder admin until authentication exists.
    let ssar = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"verb": "delete", "resource": "nodes"}}});
    let (code, answer) =
        post(&format!("{}/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", server.url()), &ssar).await?;
    assert_eq!(code, 201, "{answer}");
    assert_eq!(answer["kind"], "SelfSubjectAccessReview");
    assert_eq!(answer["status"]["allowed"], true, "{answer}");
    assert_eq!(answer["spec"]["resourceAttributes"]["verb"], "delete");

    // SubjectAccessReview about jane.
    let sar = |ns: &str| {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": "jane", "resourceAttributes": {"verb": "list", "resource": "pods", "namespace": ns}}})
    };
    let url = format!("{}/apis/authorization.k8s.io/v1/subjectaccessreviews", server.url());
    let (code, answer) = post(&url, &sar("a")).await?;
    assert_eq!(code, 201, "{answer}");
    assert_eq!(answer["status"]["allowed"], true, "{answer}");
    assert_eq!(
        answer["status"]["reason"],
        r#"RBAC: allowed by RoleBinding "jane-view/a" of ClusterRole "view" to User "jane""#
    );
    let (_, answer) = post(&url, &sar("b")).await?;
    assert_eq!(answer["status"]["allowed"], false, "{answer}");
    assert!(answer["status"]["denied"].is_null() || answer["status"]["denied"] == false, "{answer}");
    let nobody = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"nonResourceAttributes": {"verb": "get", "path": "/healthz"}}});
    let (code, answer) = post(&url, &nobody).await?;
    assert_eq!(code, 422, "{answer}");
    assert_eq!(
        answer["message"],
        r#"SubjectAccessReview is invalid: spec.user: Invalid value: "": at least one of user or group must be specified"#
    );

    // Discovery lists them, so kubectl finds the resource.
    let (_, discovery) = rkube_testkit::http_get(&format!("{}/apis/authorization.k8s.io/v1", server.url())).await?;
    assert!(discovery.contains("\"selfsubjectaccessreviews\""), "{discovery}");

    // gRPC create of the same.
    let body = serde_json::to_vec(&json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"nonResourceAttributes": {"verb": "get", "path": "/metrics"}}}))?;
    let object = client.create(&SELF_SUBJECT_ACCESS_REVIEWS, "", body).await?;
    let answer: Value = serde_json::from_slice(&object.json)?;
    assert_eq!(answer["status"]["allowed"], true, "{answer}");
    Ok(())
}
