//! A stand-in for the replication controller and the garbage collector's
//! `orphan` finalizer, for tests of `rolling-update` that run without a
//! controller-manager or kubelet: it keeps each replication controller's
//! pods at `spec.replicas` (creating them Ready, unless their image is one
//! told to never become ready) and writes the status Kubernetes' controller
//! would (replicas, readyReplicas, availableReplicas, observedGeneration).

use rkube_api::resource::lookup;
use rkube_client::{Client, DeleteParams, ListParams};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The running stand-in; stopped on Drop.
pub struct FakeReplication {
    task: tokio::task::JoinHandle<()>,
    never_ready: Arc<Mutex<Vec<String>>>,
}

impl FakeReplication {
    /// Starts reconciling the "default" namespace of the apiserver at `server`.
    pub fn start(server: &str) -> FakeReplication {
        let client = Client::new(server).expect("a valid server URL");
        let never_ready: Arc<Mutex<Vec<String>>> = Arc::default();
        let images = never_ready.clone();
        let task = tokio::spawn(async move {
            let counter = AtomicU64::new(0);
            loop {
                let _ = reconcile(&client, &images, &counter).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        FakeReplication { task, never_ready }
    }

    /// Pods with this image stay not ready (a broken new version).
    pub fn never_ready(&self, image: &str) {
        self.never_ready.lock().expect("lock").push(image.to_string());
    }
}

impl Drop for FakeReplication {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn selector(rc: &Value) -> String {
    let map: BTreeMap<String, String> = rc
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
        .unwrap_or_default();
    map.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

fn ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

async fn reconcile(client: &Client, never_ready: &Mutex<Vec<String>>, counter: &AtomicU64) -> anyhow::Result<()> {
    let rcs = lookup("replicationcontrollers")?;
    let pods = lookup("pods")?;
    let ns = "default";
    for o in client.list(rcs, ns, &ListParams::default()).await?.items {
        let rc: Value = serde_json::from_slice(&o.json)?;
        let name = rc["metadata"]["name"].as_str().unwrap_or_default().to_string();
        if rc.pointer("/metadata/deletionTimestamp").is_some() {
            // The garbage collector's part: orphan the pods, let the controller go.
            client.patch(rcs, ns, &name, &json!({"metadata": {"finalizers": null}}), false).await?;
            continue;
        }
        let sel = selector(&rc);
        if sel.is_empty() {
            continue;
        }
        let mut mine: Vec<Value> = Vec::new();
        for p in client.list(pods, ns, &ListParams::default().labels(&sel)).await?.items {
            let pod: Value = serde_json::from_slice(&p.json)?;
            if pod.pointer("/metadata/deletionTimestamp").is_none() {
                mine.push(pod);
            }
        }
        let desired = rc.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1).max(0) as usize;
        while mine.len() < desired {
            let pod_name = format!("{name}-{}", counter.fetch_add(1, Ordering::Relaxed));
            let template = rc.pointer("/spec/template").cloned().unwrap_or_default();
            let pod = json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": pod_name, "labels": template.pointer("/metadata/labels").cloned().unwrap_or_default()},
                "spec": template.get("spec").cloned().unwrap_or_default(),
            });
            let created: Value =
                serde_json::from_slice(&client.create(pods, ns, serde_json::to_vec(&pod)?).await?.json)?;
            let image = created.pointer("/spec/containers/0/image").and_then(Value::as_str).unwrap_or_default();
            let ok = !never_ready.lock().expect("lock").iter().any(|i| i == image);
            let status = json!({"status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": if ok { "True" } else { "False" }}
            ]}});
            let updated = client.patch(pods, ns, &pod_name, &status, true).await?;
            mine.push(serde_json::from_slice(&updated.json)?);
        }
        while mine.len() > desired {
            // Not-ready pods go first, as the real controller deletes them first.
            let index = mine.iter().position(|p| !ready(p)).unwrap_or(mine.len() - 1);
            let pod = mine.remove(index);
            let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default().to_string();
            let params = DeleteParams { grace_period_seconds: Some(0), ..Default::default() };
            client.delete(pods, ns, &pod_name, &params).await?;
        }
        let ready_count = mine.iter().filter(|p| ready(p)).count();
        let status = json!({"status": {
            "replicas": mine.len(),
            "readyReplicas": ready_count,
            "availableReplicas": ready_count,
            "observedGeneration": rc.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
        }});
        client.patch(rcs, ns, &name, &status, true).await?;
    }
    Ok(())
}
