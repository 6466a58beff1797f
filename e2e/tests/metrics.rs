//! The metrics API on a real cluster: a pod that burns CPU shows up in the
//! real `kubectl top pod` (which first looks for `metrics.k8s.io` in
//! discovery) and in `rkubectl top pods` with more than 100m, and `kubectl
//! top node` lists every node — the numbers the apiserver computes from the
//! kubelets' stats.

use rkube_e2e::{Cluster, Options};
use serde_json::Value;
use std::time::Duration;

const BURNER: &str = "
apiVersion: v1
kind: Pod
metadata:
  name: burn
  labels: {app: burn}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: rkube/toolbox:1.0
    command: [/bin/busybox, sh, -c, 'while true; do :; done']
";

/// The header and rows of a `top` table.
fn rows(text: &str) -> Vec<Vec<String>> {
    text.lines().map(|l| l.split_whitespace().map(str::to_string).collect()).collect()
}

/// Millicores of a `top` CPU cell (`998m`).
fn millis(cell: &str) -> u64 {
    cell.strip_suffix('m').and_then(|m| m.parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn top_shows_a_busy_pod_and_every_node() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(Options { nodes: 2, ..Options::default() }).await?;
    cluster.create(BURNER)?;
    cluster.wait_pod("burn", Duration::from_secs(120), |p| p["status"]["phase"] == "Running").await?;

    cluster
        .eventually("kubectl top pod shows the busy pod above 100m", || {
            let top = rows(&cluster.kubectl(&["top", "pod", "-l", "app=burn"])?);
            anyhow::ensure!(top[0] == ["NAME", "CPU(cores)", "MEMORY(bytes)"], "{top:?}");
            Ok(top.len() == 2 && top[1][0] == "burn" && millis(&top[1][1]) > 100)
        })
        .await?;
    cluster
        .eventually("kubectl top pod -A --containers shows its container", || {
            let top = rows(&cluster.kubectl(&["top", "pod", "-A", "--containers"])?);
            anyhow::ensure!(top[0] == ["NAMESPACE", "POD", "NAME", "CPU(cores)", "MEMORY(bytes)"], "{top:?}");
            Ok(top.iter().any(|r| r[..3] == ["default", "burn", "main"] && millis(&r[3]) > 100))
        })
        .await?;
    cluster
        .eventually("rkubectl top pods shows the busy pod above 100m", || {
            let top = rows(&cluster.rkubectl_ok(&["top", "pods", "-l", "app=burn", "--containers"])?);
            anyhow::ensure!(top[0] == ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"], "{top:?}");
            Ok(top.len() == 2 && top[1][..2] == ["burn", "main"] && millis(&top[1][2]) > 100)
        })
        .await?;

    // The object kubectl decoded, as the HPA reads it.
    let raw = cluster.kubectl(&["get", "--raw", "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/burn"])?;
    let metrics: Value = serde_json::from_str(&raw)?;
    assert_eq!(
        (metrics["kind"].as_str(), metrics["metadata"]["labels"]["app"].as_str()),
        (Some("PodMetrics"), Some("burn"))
    );
    assert_eq!(metrics["containers"][0]["name"], "main", "{metrics}");

    cluster
        .eventually("kubectl top node lists both nodes", || {
            let top = rows(&cluster.kubectl(&["top", "node"])?);
            anyhow::ensure!(top[0] == ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"], "{top:?}");
            let mut names: Vec<&str> =
                top[1..].iter().filter(|r| r.len() == 5 && r[1].ends_with('m')).map(|r| r[0].as_str()).collect();
            names.sort();
            let mut want: Vec<&str> = cluster.nodes.iter().map(String::as_str).collect();
            want.sort();
            Ok(names == want)
        })
        .await?;
    let top = rows(&cluster.rkubectl_ok(&["top", "nodes", "--no-headers"])?);
    assert_eq!(top.len(), 2, "{top:?}");
    assert!(top.iter().all(|r| r[1].ends_with('m') && r[2].ends_with('%')), "{top:?}");
    Ok(())
}
