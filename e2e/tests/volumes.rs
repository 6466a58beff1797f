//! PersistentVolumes on a cluster of real binaries (Docker), through
//! rkubectl: a claim binds a hostPath volume, a pod writes to it; when the
//! pod and the claim are deleted the volume (Retain) is Released and its
//! data stays. A Delete volume under the allowed root is removed with its
//! directory once its claim goes.

use anyhow::Context as _;
use rkube_e2e::Cluster;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn get(cluster: &Cluster, kind: &str, name: &str) -> anyhow::Result<Value> {
    Ok(serde_json::from_str(&cluster.rkubectl_ok(&["get", kind, name, "-o", "json"])?)?)
}

fn phase(cluster: &Cluster, kind: &str, name: &str) -> anyhow::Result<String> {
    Ok(get(cluster, kind, name)?["status"]["phase"].as_str().unwrap_or_default().to_string())
}

fn volume(name: &str, dir: &Path, policy: &str) -> String {
    format!(
        "
apiVersion: v1
kind: PersistentVolume
metadata:
  name: {name}
  labels: {{test: volumes}}
spec:
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: {policy}
  hostPath: {{path: {}, type: DirectoryOrCreate}}
",
        dir.display()
    )
}

fn claim(name: &str, size: &str) -> String {
    format!(
        "
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {name}
spec:
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: {size}}}}}
"
    )
}

const WRITER: &str = "
apiVersion: v1
kind: Pod
metadata:
  name: writer
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: rkube/toolbox:1.0
    command: [/bin/busybox, sh, -c, 'echo kept > /data/out.txt && sleep 3600']
    volumeMounts: [{name: data, mountPath: /data}]
  volumes:
  - name: data
    persistentVolumeClaim: {claimName: data}
";

/// A directory under /tmp (the default `--pv-hostpath-delete-root`), removed on drop.
struct TempRoot(PathBuf);

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn claims_bind_host_path_volumes_which_are_released_or_deleted_by_policy() -> anyhow::Result<()> {
    let root = TempRoot(std::env::temp_dir().join(format!("rkube-e2e-pv-{:08x}", fastrand::u32(..))));
    let (kept_dir, scratch_dir) = (root.0.join("kept"), root.0.join("scratch"));
    let cluster = Cluster::start(1).await?;

    // A claim waits Pending until a volume that fits appears, then binds it.
    cluster.create(&claim("data", "500Mi"))?;
    cluster.eventually("the claim waits", || Ok(phase(&cluster, "pvc", "data")? == "Pending")).await?;
    cluster.create(&volume("small", &root.0.join("small"), "Retain").replace("1Gi", "100Mi"))?;
    cluster.create(&volume("kept", &kept_dir, "Retain"))?;
    cluster
        .eventually("the claim binds the volume that fits", || {
            let c = get(&cluster, "pvc", "data")?;
            Ok(c["status"]["phase"] == "Bound" && c["spec"]["volumeName"] == "kept")
        })
        .await?;
    let pv = get(&cluster, "pv", "kept")?;
    assert_eq!(pv["status"]["phase"], "Bound", "{pv}");
    assert_eq!(pv["spec"]["claimRef"]["name"], "data", "{pv}");
    let c = get(&cluster, "pvc", "data")?;
    assert_eq!(c["status"]["capacity"]["storage"], "1Gi", "{c}");
    assert_eq!(phase(&cluster, "pv", "small")?, "Available");

    // A pod writes through the claim into the volume's directory.
    cluster.create(WRITER)?;
    cluster.wait_pod("writer", std::time::Duration::from_secs(120), |p| p["status"]["phase"] == "Running").await?;
    let out = kept_dir.join("out.txt");
    cluster.eventually("the pod wrote its file", || Ok(out.exists())).await?;

    // Pod and claim deleted: the Retain volume is Released and keeps the data.
    cluster.rkubectl_ok(&["delete", "pod", "writer", "--grace-period=0"])?;
    cluster.rkubectl_ok(&["delete", "pvc", "data"])?;
    cluster.eventually("the volume is Released", || Ok(phase(&cluster, "pv", "kept")? == "Released")).await?;
    assert_eq!(std::fs::read_to_string(&out).context("the data stays")?.trim(), "kept");

    // A Delete volume goes, directory and all, when its claim does.
    cluster.create(&volume("scratch", &scratch_dir, "Delete"))?;
    cluster.create(&claim("scratch", "1Gi"))?;
    cluster
        .eventually("the scratch claim binds", || {
            Ok(get(&cluster, "pvc", "scratch")?["spec"]["volumeName"] == "scratch"
                && phase(&cluster, "pvc", "scratch")? == "Bound")
        })
        .await?;
    std::fs::create_dir_all(&scratch_dir)?;
    std::fs::write(scratch_dir.join("junk"), "x")?;
    cluster.rkubectl_ok(&["delete", "pvc", "scratch"])?;
    cluster
        .eventually("the Delete volume and its directory go", || {
            let gone = cluster.rkubectl(&["get", "pv", "scratch"])?;
            Ok(!gone.status.success() && !scratch_dir.exists())
        })
        .await?;
    cluster.rkubectl_ok(&["delete", "pv", "kept", "small"])?;
    Ok(())
}
