//! The HorizontalPodAutoscaler on a real cluster: a replication controller
//! whose pod burns a core against a 100m request grows, through
//! `rkubectl autoscale rc burn --min=1 --max=3 --cpu-percent=50`, to 3
//! replicas; once its pods sleep instead, it shrinks back to 1 after the
//! (shortened) downscale stabilisation window. The usage comes from the
//! metrics.k8s.io API the apiserver computes from the kubelets' stats.

use rkube_e2e::{Cluster, Options};
use serde_json::Value;

/// No `replicas`: the RC starts at the default 1, and applying the idle
/// version later leaves the HPA's count alone.
const BURNER: &str = "
apiVersion: v1
kind: ReplicationController
metadata:
  name: burn
spec:
  selector: {app: burn}
  template:
    metadata:
      labels: {app: burn}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: rkube/toolbox:1.0
        command: [/bin/busybox, sh, -c, 'while true; do :; done']
        resources:
          requests: {cpu: 100m}
";

fn json(text: &str) -> anyhow::Result<Value> {
    Ok(serde_json::from_str(text)?)
}

#[tokio::test(flavor = "multi_thread")]
async fn hpa_grows_a_busy_rc_to_max_and_shrinks_it_when_idle() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(Options {
        nodes: 2,
        controller_manager_flags: &[
            "--horizontal-pod-autoscaler-sync-period=2s",
            "--horizontal-pod-autoscaler-downscale-stabilization=5s",
        ],
        ..Options::default()
    })
    .await?;
    let dir = tempfile_dir()?;
    let manifest = dir.join("burn.yaml");
    std::fs::write(&manifest, BURNER)?;
    let manifest = manifest.display().to_string();
    cluster.rkubectl_ok(&["apply", "-f", &manifest])?;
    assert_eq!(
        cluster.rkubectl_ok(&["autoscale", "rc", "burn", "--min=1", "--max=3", "--cpu-percent=50"])?,
        "horizontalpodautoscaler.autoscaling/burn autoscaled\n"
    );

    let replicas = || -> anyhow::Result<i64> {
        let rc = json(&cluster.rkubectl_ok(&["get", "rc", "burn", "-o", "json"])?)?;
        Ok(rc["spec"]["replicas"].as_i64().unwrap_or(-1))
    };
    cluster.eventually("the busy RC grows to 3 replicas", || Ok(replicas()? == 3)).await?;
    cluster
        .eventually("the HPA reports its cpu utilization and 3 replicas", || {
            let hpa = json(&cluster.rkubectl_ok(&["get", "hpa", "burn", "-o", "json"])?)?;
            let status = &hpa["status"];
            Ok(status["currentReplicas"] == 3
                && status["currentMetrics"][0]["resource"]["current"]["averageUtilization"].as_i64().unwrap_or(0) > 50)
        })
        .await?;
    let table = cluster.rkubectl_ok(&["get", "hpa", "burn"])?;
    let row: Vec<&str> = table.lines().nth(1).unwrap_or_default().split_whitespace().collect();
    assert_eq!(row[..2], ["burn", "ReplicationController/burn"], "{table}");
    assert!(row[2] == "cpu:" && row[3].ends_with("%/50%") && !row[3].starts_with("<unknown>"), "{table}");
    let described = cluster.rkubectl_ok(&["describe", "hpa", "burn"])?;
    assert!(described.contains("SuccessfulRescale"), "{described}");
    assert!(
        described.contains("New size: 3; reason: cpu resource utilization (percentage of request) above target")
            || described.contains("New size: 2; reason: cpu resource utilization (percentage of request) above target"),
        "{described}"
    );
    assert!(described.contains("ValidMetricFound"), "{described}");

    // The pods sleep from now on: the template changes and the burners go.
    let idle = BURNER.replace("'while true; do :; done'", "'sleep 100000'");
    std::fs::write(dir.join("burn.yaml"), idle)?;
    cluster.rkubectl_ok(&["apply", "-f", &manifest])?;
    cluster.rkubectl_ok(&["delete", "pods", "-l", "app=burn", "--grace-period=1", "--wait=false"])?;
    cluster.eventually("the idle RC shrinks back to 1 replica", || Ok(replicas()? == 1)).await?;
    cluster
        .eventually("the HPA reports the scale-down", || {
            let described = cluster.rkubectl_ok(&["describe", "hpa", "burn"])?;
            let words = described.split_whitespace().collect::<Vec<_>>().join(" ");
            Ok(words.contains("New size: 1; reason: All metrics below target")
                && words.contains("ReplicationController pods: 1 current / 1 desired"))
        })
        .await?;
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

/// A fresh directory for the test's manifests.
fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("rkube-e2e-hpa-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
