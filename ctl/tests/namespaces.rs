//! `rkubectl get ns` and `get sa` against a real apiserver: a namespace's
//! STATUS follows its phase (Terminating once deleted; no controller-manager
//! runs here to finish it), ServiceAccounts print NAME SECRETS AGE, and pods
//! get their ServiceAccount from the admission plugin.

mod support;

use support::Cluster;

/// The cells of the table row whose first cell is `name`.
fn row(table: &str, name: &str) -> Vec<String> {
    table
        .lines()
        .map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
        .find(|cells| cells.first().is_some_and(|c| c == name))
        .unwrap_or_default()
}

#[tokio::test]
async fn namespaces_show_their_status_and_service_accounts_their_secrets() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.ok(&["create", "namespace", "team"]).await?;
    let table = c.ok(&["get", "ns"]).await?;
    assert!(table.lines().next().is_some_and(|h| h.split_whitespace().eq(["NAME", "STATUS", "AGE"])), "{table}");
    assert_eq!(row(&table, "team")[1], "Active", "{table}");

    let sa = c.file("sa.yaml", "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: robot, namespace: team}\n");
    c.ok(&["create", "-f", &sa]).await?;
    for kind in ["sa", "serviceaccounts"] {
        let table = c.ok(&["get", kind, "-n", "team"]).await?;
        assert!(table.lines().next().is_some_and(|h| h.split_whitespace().eq(["NAME", "SECRETS", "AGE"])), "{table}");
        assert_eq!(row(&table, "robot")[..2], ["robot", "0"], "{table}");
    }

    // Pods run as the ServiceAccount they name, or as default.
    let pods = c.file(
        "pods.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: as-robot, namespace: team}\nspec:\n  serviceAccountName: robot\n  containers: [{name: c, image: nginx}]\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: plain, namespace: team}\nspec:\n  containers: [{name: c, image: nginx}]\n",
    );
    c.ok(&["create", "-f", &pods]).await?;
    let yaml = c.ok(&["get", "pod", "plain", "-n", "team", "-o", "yaml"]).await?;
    assert!(yaml.contains("serviceAccountName: default"), "{yaml}");
    let missing = c.file(
        "missing.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: ghost, namespace: team}\nspec:\n  serviceAccountName: ghost\n  containers: [{name: c, image: nginx}]\n",
    );
    let out = c.run(&["create", "-f", &missing]).await?;
    assert_ne!(out.code, 0);
    let err = &out.stderr;
    assert!(err.contains("error looking up service account team/ghost: serviceaccount \"ghost\" not found"), "{err}");

    c.ok(&["delete", "namespace", "team", "--wait=false"]).await?;
    let table = c.ok(&["get", "namespaces"]).await?;
    assert_eq!(row(&table, "team")[1], "Terminating", "{table}");
    assert_eq!(row(&table, "default")[1], "Active", "{table}");
    Ok(())
}
