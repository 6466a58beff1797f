//! Quotas and limits on a cluster of real binaries, through rkubectl: a
//! quota of 4 pods (counted by the controller-manager) refuses the 5th with
//! Kubernetes' message, and a LimitRange's defaults show in the stored pod.

use anyhow::{Context as _, bail};
use rkube_e2e::Cluster;
use serde_json::Value;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(60);

fn pod_yaml(namespace: &str, name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n  containers:\n  - name: c\n    image: rkube/toolbox:1.0\n    command: [sleep, \"3600\"]\n"
    )
}

#[tokio::test]
async fn quota_refuses_the_fifth_pod_and_limit_range_defaults_show_in_the_pod() -> anyhow::Result<()> {
    let cluster = Cluster::start(1).await?;
    cluster.create("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: quota-e2e\n")?;
    cluster.create(
        "apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: compute-resources\n  namespace: quota-e2e\nspec:\n  hard:\n    pods: \"4\"\n",
    )?;
    // The controller counts the namespace before admission charges to the quota.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let q: Value = serde_json::from_str(&cluster.rkubectl_ok(&[
            "get",
            "quota",
            "compute-resources",
            "-n",
            "quota-e2e",
            "-o",
            "json",
        ])?)?;
        if q["status"]["used"]["pods"] == "0" {
            break;
        }
        if Instant::now() > deadline {
            bail!("the quota was never counted: {q}\n{}", cluster.logs());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for i in 1..=4 {
        cluster.create(&pod_yaml("quota-e2e", &format!("p{i}")))?;
    }
    // Admission charged each create; the controller's recount agrees once
    // its pod cache has all four.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let table = cluster.rkubectl_ok(&["get", "quota", "-n", "quota-e2e"])?;
        if table.contains("pods: 4/4") {
            break;
        }
        if Instant::now() > deadline {
            bail!("the quota never showed 4 of 4 pods: {table}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let err = cluster.create(&pod_yaml("quota-e2e", "p5")).expect_err("the fifth pod is over quota");
    let text = format!("{err:#}");
    assert!(
        text.contains(
            "pods \"p5\" is forbidden: exceeded quota: compute-resources, requested: pods=1, used: pods=4, limited: pods=4"
        ),
        "{text}"
    );

    cluster.create("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: limits-e2e\n")?;
    cluster.create(
        "apiVersion: v1\nkind: LimitRange\nmetadata:\n  name: limits\n  namespace: limits-e2e\nspec:\n  limits:\n  - type: Container\n    max:\n      cpu: 500m\n    default:\n      cpu: 200m\n      memory: 64Mi\n    defaultRequest:\n      cpu: 100m\n",
    )?;
    cluster.create(&pod_yaml("limits-e2e", "defaulted"))?;
    let yaml = cluster.rkubectl_ok(&["get", "pod", "defaulted", "-n", "limits-e2e", "-o", "yaml"])?;
    let pod: Value = rkube_api::manifest::parse_object(yaml.as_bytes()).context("reading the pod's YAML")?;
    let resources = &pod["spec"]["containers"][0]["resources"];
    assert_eq!(resources["limits"]["cpu"], "200m", "{yaml}");
    assert_eq!(resources["limits"]["memory"], "64Mi", "{yaml}");
    assert_eq!(resources["requests"]["cpu"], "100m", "{yaml}");
    let described = cluster.rkubectl_ok(&["describe", "limits", "limits", "-n", "limits-e2e"])?;
    assert!(described.contains("Container   cpu       -    500m  100m             200m"), "{described}");
    Ok(())
}
