//! rkubectl against a TLS apiserver with RBAC: it authenticates with the
//! kubeconfig's certificates or token, prints Kubernetes' 403, and
//! `auth can-i` answers for the current user.

mod support;

use rkube_client::config::{Credentials, kubeconfig_with_credentials};
use rkube_testkit::TestApiserver;
use support::output_of;
use tokio::process::Command;

fn rkubectl(kubeconfig: &std::path::Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rkubectl"));
    cmd.arg("--kubeconfig").arg(kubeconfig).args(args).env_remove("RKUBE_SERVER").kill_on_drop(true);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rkubectl_uses_kubeconfig_credentials_and_auth_can_i_answers_for_the_user() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("rkubectl-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let tokens = dir.join("tokens.csv");
    std::fs::write(&tokens, "jane-token,jane,7\n")?;
    let pki = dir.join("pki");
    let api = TestApiserver::start_secure(&pki, &[], |a| a.token_auth_file = Some(tokens)).await?;
    let admin = pki.join("admin.kubeconfig");
    let creds = Credentials {
        certificate_authority: Some(std::fs::read(pki.join("ca.crt"))?),
        token: Some("jane-token".into()),
        ..Credentials::default()
    };
    let jane = dir.join("jane.kubeconfig");
    std::fs::write(&jane, kubeconfig_with_credentials(&api.url(), "secure", "jane", &creds))?;

    let binding = "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: jane-view, namespace: default}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}\nsubjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: jane}]\n";
    let out = output_of(rkubectl(&admin, &["create", "-f", "-"]), Some(binding)).await?;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("rolebinding"), "{out:?}");

    let can = |args: &[&str]| {
        let args: Vec<&str> = ["auth", "can-i"].iter().chain(args).copied().collect();
        output_of(rkubectl(&jane, &args), None)
    };
    // The binding reaches the authorizer through its watch.
    rkube_testkit::wait_for(std::time::Duration::from_secs(5), || async {
        can(&["list", "pods"]).await.is_ok_and(|o| o.code == 0)
    })
    .await?;
    let out = can(&["list", "pods"]).await?;
    assert_eq!((out.code, out.stdout.as_str()), (0, "yes\n"), "{out:?}");
    for args in [
        &["create", "pods"][..],
        &["get", "secrets"],
        &["list", "pods", "-A"],
        &["create", "pods/web", "--subresource", "exec"],
    ] {
        let out = can(args).await?;
        assert_eq!((out.code, out.stdout.as_str()), (1, "no\n"), "{args:?}: {out:?}");
    }
    let out = can(&["create", "pods/web", "--subresource", "exec", "-q"]).await?;
    assert_eq!((out.code, out.stdout.as_str()), (1, ""), "{out:?}");
    let out = output_of(rkubectl(&admin, &["auth", "can-i", "*", "*"]), None).await?;
    assert_eq!((out.code, out.stdout.as_str()), (0, "yes\n"), "{out:?}");

    let out = output_of(rkubectl(&jane, &["get", "pods"]), None).await?;
    assert_eq!(out.code, 0, "{out:?}");
    let out = output_of(rkubectl(&jane, &["get", "secrets"]), None).await?;
    assert_eq!(
        out.stderr.trim(),
        r#"Error from server (Forbidden): secrets is forbidden: User "jane" cannot list resource "secrets" in API group "" in the namespace "default""#
    );
    drop(api);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
