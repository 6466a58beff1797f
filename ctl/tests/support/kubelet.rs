//! A stand-in for the kubelets, for tests that run the real controller
//! manager without Docker: it marks every pod Running and Ready, except pods
//! whose first container's image it was told never becomes ready.

use rkube_api::resource::lookup;
use rkube_client::{Client, ListParams};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The running stand-in; stopped on Drop.
pub struct FakeKubelet {
    task: tokio::task::JoinHandle<()>,
    never_ready: Arc<Mutex<Vec<String>>>,
}

impl FakeKubelet {
    /// Starts marking the pods of the apiserver at `server`.
    pub fn start(server: &str) -> FakeKubelet {
        let client = Client::new(server).expect("a valid server URL");
        let never_ready: Arc<Mutex<Vec<String>>> = Arc::default();
        let images = never_ready.clone();
        let task = tokio::spawn(async move {
            loop {
                let _ = mark_ready(&client, &images).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        FakeKubelet { task, never_ready }
    }

    /// Pods with this image stay not ready (a broken version).
    pub fn never_ready(&self, image: &str) {
        self.never_ready.lock().expect("lock").push(image.to_string());
    }
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn mark_ready(client: &Client, never_ready: &Mutex<Vec<String>>) -> anyhow::Result<()> {
    let pods = lookup("pods")?;
    for o in client.list(pods, "", &ListParams::default()).await?.items {
        let pod: Value = serde_json::from_slice(&o.json)?;
        let has_conditions = pod.pointer("/status/conditions").and_then(Value::as_array).is_some_and(|c| !c.is_empty());
        let image = pod.pointer("/spec/containers/0/image").and_then(Value::as_str).unwrap_or_default();
        let broken = never_ready.lock().expect("lock").iter().any(|i| i == image);
        if has_conditions || pod.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
        let now = k8s_openapi::jiff::Timestamp::from_second(secs)?.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        let status = json!({"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": if broken { "False" } else { "True" }, "lastTransitionTime": now}]}});
        let name = pod["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let namespace = pod["metadata"]["namespace"].as_str().unwrap_or("default").to_string();
        let _ = client.patch(pods, &namespace, &name, &status, true).await;
    }
    Ok(())
}
