//! Service account tokens on a TLS apiserver (real etcd, certificates and
//! `sa.key` from rkube-pki): TokenRequest over gRPC and REST, the tokens
//! authenticating as their ServiceAccount until their pod is gone or they
//! expire, the token volume added by admission, and the real kubectl's
//! `create token` and `auth whoami`.

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use rkube_api::Reason;
use rkube_api::resource::lookup;
use rkube_apiserver::service_account_token::{
    KubernetesClaim, Ref, ServiceAccountTokens, TokenOptions, TokenSpec, unix_now,
};
use rkube_client::config::{ClientConfig, Credentials};
use rkube_client::{Api, Client, DeleteParams, ListParams};
use rkube_testkit::{ScratchDir as Scratch, TestApiserver, kubectl};
use serde_json::json;
use std::path::Path;

/// A PKI and a TLS apiserver that signs tokens with its `sa.key`, where
/// the service accounts of `default` may view that namespace (RBAC: a
/// RoleBinding of ClusterRole `view` to their group).
async fn secure_apiserver(name: &str) -> anyhow::Result<(TestApiserver, Scratch)> {
    let dir = Scratch(std::env::temp_dir().join(format!("rkube-satoken-{}-{name}", std::process::id())));
    let api = TestApiserver::start_secure(&dir.0.join("pki"), &[], |_| {}).await?;
    let admin = Client::from_config(&ClientConfig::from_kubeconfig(&dir.0.join("pki").join("admin.kubeconfig"))?)?;
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "accounts-view", "namespace": "default"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:serviceaccounts:default"}]});
    admin.create(lookup("rolebindings").expect("served"), "default", serde_json::to_vec(&binding)?).await?;
    // The authorizer follows the binding through its watch: wait for it.
    let review = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {
        "user": "system:serviceaccount:default:x", "groups": ["system:serviceaccounts:default"],
        "resourceAttributes": {"namespace": "default", "verb": "list", "resource": "pods"}}});
    let reviews = &rkube_api::resource::SUBJECT_ACCESS_REVIEWS;
    rkube_testkit::wait_for(std::time::Duration::from_secs(5), || async {
        let answer = admin.create(reviews, "", serde_json::to_vec(&review).expect("JSON")).await;
        answer.is_ok_and(|o| {
            serde_json::from_slice::<serde_json::Value>(&o.json).is_ok_and(|v| v["status"]["allowed"] == true)
        })
    })
    .await?;
    Ok((api, dir))
}

fn token_client(api: &TestApiserver, pki: &Path, token: &str) -> anyhow::Result<Client> {
    let creds = Credentials {
        certificate_authority: Some(std::fs::read(pki.join("ca.crt"))?),
        token: Some(token.into()),
        ..Default::default()
    };
    Ok(Client::with_credentials(&api.url(), &creds)?)
}

async fn list_pods(client: &Client) -> rkube_api::Result<usize> {
    Ok(client.list(lookup("pods").expect("known"), "default", &ListParams::default()).await?.items.len())
}

fn pod(name: &str, service_account: &str, automount: Option<bool>) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "serviceAccountName": service_account,
            "automountServiceAccountToken": automount,
            "containers": [{"name": "c", "image": "rkube/toolbox"}],
            "initContainers": [{"name": "i", "image": "rkube/toolbox"}],
        },
    }))
    .expect("a pod")
}

fn bound_to(kind: &str, name: &str, uid: Option<String>, seconds: Option<i64>) -> TokenRequest {
    TokenRequest {
        spec: TokenRequestSpec {
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some(kind.into()),
                name: Some(name.into()),
                uid,
            }),
            expiration_seconds: seconds,
            ..Default::default()
        },
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_bound_token_authenticates_until_its_pod_is_deleted() -> anyhow::Result<()> {
    let (api, dir) = secure_apiserver("bound").await?;
    let pki = dir.0.join("pki");
    let admin = Client::from_config(&ClientConfig::from_kubeconfig(&pki.join("admin.kubeconfig"))?)?;
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "default");
    let robot = accounts.create(&serde_json::from_value(json!({"metadata": {"name": "robot"}}))?).await?;
    let robot_uid = robot.metadata.uid.clone().expect("a uid");

    // Admission gives the pod the token volume, mounted in every container.
    let web = pods.create(&pod("web", "robot", None)).await?;
    let spec = web.spec.clone().expect("a spec");
    let volume = spec.volumes.iter().flatten().find(|v| v.name.starts_with("kube-api-access-")).expect("token volume");
    let sources = volume.projected.as_ref().expect("projected").sources.clone().expect("sources");
    let sa_source = sources[0].service_account_token.as_ref().expect("a serviceAccountToken source");
    assert_eq!((sa_source.path.as_str(), sa_source.expiration_seconds), ("token", Some(3607)));
    for c in spec.containers.iter().chain(spec.init_containers.iter().flatten()) {
        let mount = c.volume_mounts.iter().flatten().find(|m| m.name == volume.name).expect("mounted");
        assert_eq!(mount.mount_path, "/var/run/secrets/kubernetes.io/serviceaccount");
        assert_eq!(mount.read_only, Some(true));
    }
    // Not with automount off, on the pod or on its ServiceAccount.
    let quiet = pods.create(&pod("quiet", "robot", Some(false))).await?;
    assert!(quiet.spec.expect("spec").volumes.unwrap_or_default().is_empty(), "automount false on the pod");
    accounts
        .create(&serde_json::from_value(json!({"metadata": {"name": "mute"}, "automountServiceAccountToken": false}))?)
        .await?;
    let mute = pods.create(&pod("mute", "mute", None)).await?;
    assert!(mute.spec.expect("spec").volumes.unwrap_or_default().is_empty(), "automount false on the account");

    // A token bound to the pod (over gRPC): it is the ServiceAccount.
    let web_uid = web.metadata.uid.clone();
    let answer = accounts.create_token("robot", &bound_to("Pod", "web", web_uid.clone(), None)).await?;
    let status = answer.status.expect("a status");
    assert_eq!(answer.spec.expiration_seconds, Some(3600), "the default lifetime");
    assert_eq!(answer.spec.audiences, ["https://kubernetes.default.svc.cluster.local"], "the default audience");
    let token = status.token;
    let as_robot = token_client(&api, &pki, &token)?;
    assert_eq!(list_pods(&as_robot).await?, 3, "the token authenticates");
    // It may do what its RoleBinding allows, and nothing else.
    let e =
        as_robot.list(lookup("secrets").expect("known"), "default", &ListParams::default()).await.expect_err("view");
    assert_eq!(
        e.message,
        r#"secrets is forbidden: User "system:serviceaccount:default:robot" cannot list resource "secrets" in API group "" in the namespace "default""#
    );
    let e = as_robot
        .list(lookup("pods").expect("known"), "kube-system", &ListParams::default())
        .await
        .expect_err("only default");
    assert_eq!(e.reason, Reason::Forbidden);
    let ca = pki.join("ca.crt");
    let ca = ca.to_str().expect("UTF-8");
    let url = api.url();
    let whoami = |token: String| {
        let (url, ca) = (url.clone(), ca.to_string());
        async move {
            let args =
                ["--kubeconfig", "/dev/null", "--server", &url, "--certificate-authority", &ca, "--token", &token];
            kubectl(&[&args[..], &["auth", "whoami", "-o", "json"]].concat()).await
        }
    };
    let (ok, out, err) = whoami(token.clone()).await?;
    assert!(ok, "kubectl auth whoami: {out}\n{err}");
    let review: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(review["status"]["userInfo"]["username"], "system:serviceaccount:default:robot");
    assert_eq!(review["status"]["userInfo"]["uid"], robot_uid.as_str());
    assert_eq!(
        review["status"]["userInfo"]["groups"],
        json!(["system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"])
    );

    // Refused requests: too short, another pod's uid, a pod of another account, unknown kinds.
    let e = accounts.create_token("robot", &bound_to("Pod", "web", None, Some(60))).await.expect_err("too short");
    assert!(e.reason == Reason::Invalid && e.message.contains("10 minutes"), "{e}");
    let e = accounts.create_token("robot", &bound_to("Pod", "web", Some("other".into()), None)).await.expect_err("uid");
    assert_eq!(e.reason, Reason::Conflict, "{e}");
    let e = accounts.create_token("mute", &bound_to("Pod", "web", None, None)).await.expect_err("another account");
    assert_eq!(e.reason, Reason::BadRequest, "{e}");
    let e = accounts.create_token("robot", &bound_to("Deployment", "web", None, None)).await.expect_err("a kind");
    assert_eq!(e.reason, Reason::BadRequest, "{e}");
    let e = accounts.create_token("ghost", &TokenRequest::default()).await.expect_err("no such account");
    assert_eq!(e.reason, Reason::NotFound, "{e}");

    // Deleting the pod (never scheduled: at once) retires its tokens.
    pods.delete("web", &DeleteParams::default()).await?;
    let e = list_pods(&as_robot).await.expect_err("the pod is gone");
    assert_eq!(e.reason, Reason::Unauthorized, "{e}");

    // An unbound token stands until its ServiceAccount is deleted and recreated.
    let unbound = accounts.create_token("robot", &TokenRequest::default()).await?.status.expect("status").token;
    list_pods(&token_client(&api, &pki, &unbound)?).await?;
    accounts.delete("robot", &DeleteParams::default()).await?;
    accounts.create(&serde_json::from_value(json!({"metadata": {"name": "robot"}}))?).await?;
    let e = list_pods(&token_client(&api, &pki, &unbound)?).await.expect_err("another robot");
    assert_eq!(e.reason, Reason::Unauthorized, "{e}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_foreign_and_garbage_tokens_are_refused() -> anyhow::Result<()> {
    let (api, dir) = secure_apiserver("expired").await?;
    let pki = dir.0.join("pki");
    let admin = Client::from_config(&ClientConfig::from_kubeconfig(&pki.join("admin.kubeconfig"))?)?;
    let accounts: Api<ServiceAccount> = Api::namespaced(admin, "default");
    let robot = accounts.create(&serde_json::from_value(json!({"metadata": {"name": "robot"}}))?).await?;

    // Tokens signed with the cluster's own key, by hand.
    let signer = ServiceAccountTokens::from_options(&TokenOptions {
        signing_key_file: Some(pki.join("sa.key")),
        ..Default::default()
    })?
    .expect("a signing key");
    let spec = |now: i64, audiences: Vec<String>| TokenSpec {
        kubernetes: KubernetesClaim {
            namespace: "default".into(),
            serviceaccount: Ref { name: "robot".into(), uid: robot.metadata.uid.clone().expect("uid") },
            ..Default::default()
        },
        audiences,
        expiration_seconds: 600,
        now,
    };
    let (fresh, _) = signer.issue(&spec(unix_now(), vec![]))?;
    list_pods(&token_client(&api, &pki, &fresh)?).await?;

    let (expired, _) = signer.issue(&spec(unix_now() - 7200, vec![]))?;
    let (vault, _) = signer.issue(&spec(unix_now(), vec!["vault".into()]))?;
    let other_key = ServiceAccountTokens::new(
        rkube_apiserver::service_account_token::keys::SigningKey::generate(),
        "https://kubernetes.default.svc.cluster.local",
        vec![],
    );
    let (foreign, _) =
        other_key.issue(&spec(unix_now(), vec!["https://kubernetes.default.svc.cluster.local".into()]))?;
    let mut parts: Vec<String> = fresh.split('.').map(str::to_string).collect();
    parts[0] = "eyJhbGciOiJub25lIn0".into(); // {"alg":"none"}
    parts[2].clear();
    let none = parts.join(".");
    for token in [expired, vault, foreign, none, "a.b.c".into(), format!("{}.b.c", "a".repeat(10_000))] {
        let e = list_pods(&token_client(&api, &pki, &token)?).await.expect_err("refused");
        assert_eq!(e.reason, Reason::Unauthorized, "{e}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_token_prints_a_token_that_authenticates() -> anyhow::Result<()> {
    let (api, dir) = secure_apiserver("kubectl").await?;
    let pki = dir.0.join("pki");
    let admin = pki.join("admin.kubeconfig");
    let admin = admin.to_str().expect("UTF-8");
    let (ok, out, err) = kubectl(&["--kubeconfig", admin, "create", "serviceaccount", "default"]).await?;
    assert!(ok || err.contains("AlreadyExists"), "{out}\n{err}");
    let (ok, out, err) = kubectl(&["--kubeconfig", admin, "create", "token", "default", "--duration", "20m"]).await?;
    assert!(ok, "kubectl create token: {out}\n{err}");
    let token = out.trim();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token:.20}");
    list_pods(&token_client(&api, &pki, token)?).await?;

    let (ok, out, err) =
        kubectl(&["--kubeconfig", admin, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"]).await?;
    assert!(ok && out == "kubernetes-admin", "{out}\n{err}");
    Ok(())
}
