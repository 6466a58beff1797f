//! ConfigMap and Secret changes reach the running pods that use them within
//! about a second, because the kubelet watches them instead of reading them
//! at its 10 s resync; and it reads them from that cache, not with a GET
//! per sync. Real apiserver and Docker.

mod support;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use rkube_client::Api;
use serde_json::json;
use std::time::{Duration, Instant};
use support::{Harness, TOOLBOX};

/// How soon an update must show in the container: well under the 10 s
/// periodic resync, which two updates in a row cannot both beat by luck.
const PROMPT: Duration = Duration::from_secs(3);

fn running(p: &Pod) -> bool {
    let s = p.status.as_ref();
    s.and_then(|s| s.phase.as_deref()) == Some("Running")
        && s.and_then(|s| s.container_statuses.as_ref()).is_some_and(|c| c.iter().all(|c| c.ready))
}

/// The apiserver's count of GET requests for `resource`, all codes.
async fn gets(h: &Harness, resource: &str) -> anyhow::Result<f64> {
    let (_, body) = rkube_testkit::http_get(&format!("{}/metrics", h.apiserver.url())).await?;
    let wanted = [r#"verb="get""#.to_string(), format!(r#"resource="{resource}""#)];
    Ok(body
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{") && wanted.iter().all(|w| l.contains(w.as_str())))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .fold(0.0, |sum, n| sum + n))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_map_and_secret_updates_reach_a_running_pods_volumes_within_seconds() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let cms: Api<ConfigMap> = Api::namespaced(h.client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), "default");
    cms.create(&serde_json::from_value(json!({"metadata": {"name": "live"}, "data": {"v": "1"}}))?).await?;
    secrets.create(&serde_json::from_value(json!({"metadata": {"name": "live"}, "data": {"v": "MQ=="}}))?).await?;
    let created = h
        .run_pod(json!({"metadata": {"name": "follower"}, "spec": {"terminationGracePeriodSeconds": 1,
            "containers": [{"name": "app", "image": TOOLBOX, "command": ["sleep", "3600"], "volumeMounts": [
                {"name": "cfg", "mountPath": "/etc/cfg"}, {"name": "sec", "mountPath": "/etc/sec"}]}],
            "volumes": [{"name": "cfg", "configMap": {"name": "live"}},
                        {"name": "sec", "secret": {"secretName": "live"}}]}}))
        .await?;
    h.wait_pod("follower", Duration::from_secs(60), running).await?;
    let app = h.container_id(created.metadata.uid.as_deref().unwrap_or_default(), "app").await?;
    assert_eq!(h.exec(&app, &["cat", "/etc/cfg/v", "/etc/sec/v"]).await?, "11");

    let gets_before = gets(&h, "configmaps").await? + gets(&h, "secrets").await?;
    let mut took = Vec::new();
    let started = Instant::now();
    cms.patch("live", &json!({"data": {"v": "2"}})).await?;
    took.push(("configMap", shows(&h, &app, "/etc/cfg/v", "2", started).await?));
    let started = Instant::now();
    secrets.patch("live", &json!({"data": {"v": "Mg=="}})).await?; // "2"
    took.push(("secret", shows(&h, &app, "/etc/sec/v", "2", started).await?));
    let started = Instant::now();
    cms.patch("live", &json!({"data": {"v": "3"}})).await?;
    took.push(("configMap again", shows(&h, &app, "/etc/cfg/v", "3", started).await?));
    eprintln!("from update to the file in the container: {took:?}");
    for (what, t) in &took {
        assert!(*t < PROMPT, "the {what} update took {t:?} to show (all: {took:?})");
    }
    let gets_after = gets(&h, "configmaps").await? + gets(&h, "secrets").await?;
    assert_eq!(gets_after, gets_before, "the syncs the updates caused read the cache, not the apiserver");
    h.shutdown().await
}

/// Waits (up to 20 s) until `file` in container `app` says `value`; how
/// long that took since `started`.
async fn shows(h: &Harness, app: &str, file: &str, value: &str, started: Instant) -> anyhow::Result<Duration> {
    rkube_testkit::wait_for(Duration::from_secs(20), || async {
        h.exec(app, &["cat", file]).await.is_ok_and(|s| s == value)
    })
    .await?;
    Ok(started.elapsed())
}
