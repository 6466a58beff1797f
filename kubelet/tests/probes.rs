//! Probes against a real apiserver and the real Docker engine: an exec
//! liveness probe restarts its container, an httpGet readiness probe
//! follows the file httpd serves, and a startup probe holds back a
//! tcpSocket readiness probe until something listens.

mod support;

use k8s_openapi::api::core::v1::{ContainerStatus, Event, Pod};
use rkube_client::{Api, ListParams};
use serde_json::json;
use std::time::Duration;
use support::{Harness, TOOLBOX};

const START: Duration = Duration::from_secs(60);

fn status_of(p: &Pod, name: &str) -> ContainerStatus {
    let statuses = p.status.as_ref().and_then(|s| s.container_statuses.clone()).unwrap_or_default();
    statuses.into_iter().find(|s| s.name == name).unwrap_or_default()
}

fn condition(p: &Pod, type_: &str) -> String {
    let conditions = p.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
    conditions.into_iter().find(|c| c.type_ == type_).map(|c| c.status).unwrap_or_default()
}

fn running(p: &Pod, name: &str) -> bool {
    status_of(p, name).state.is_some_and(|s| s.running.is_some())
}

fn uid(p: &Pod) -> String {
    p.metadata.uid.clone().unwrap_or_default()
}

/// (reason, message) of the events about pod `name`.
async fn events(h: &Harness, name: &str) -> anyhow::Result<Vec<(String, String)>> {
    let api: Api<Event> = Api::namespaced(h.client.clone(), "default");
    Ok(api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name))
        .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_exec_liveness_probe_restarts_the_container() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.run_pod(json!({"metadata": {"name": "live"}, "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
        "name": "app", "image": TOOLBOX,
        "command": ["sh", "-c", "touch /tmp/healthy; sleep 4; rm /tmp/healthy; sleep 3600"],
        "livenessProbe": {"exec": {"command": ["cat", "/tmp/healthy"]},
            "periodSeconds": 1, "failureThreshold": 2}}]}}))
        .await?;
    let pod = h.wait_pod("live", START, |p| running(p, "app")).await?;
    assert_eq!(status_of(&pod, "app").restart_count, 0);
    assert!(status_of(&pod, "app").ready, "a container without a readiness probe is ready once it runs");

    let pod = h.wait_pod("live", START, |p| status_of(p, "app").restart_count >= 1 && running(p, "app")).await?;
    let last = status_of(&pod, "app").last_state.and_then(|s| s.terminated).unwrap_or_default();
    assert_eq!(last.exit_code, 137, "the unhealthy container was killed");
    let events = events(&h, "live").await?;
    assert!(
        events
            .iter()
            .any(|(r, m)| r == "Unhealthy" && m.starts_with("Liveness probe failed: cat: can't open '/tmp/healthy'")),
        "{events:?}"
    );
    assert!(
        events.iter().any(|(r, m)| r == "Killing" && m == "Container app failed liveness probe, will be restarted"),
        "{events:?}"
    );
    h.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_readiness_probe_follows_what_the_server_serves() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let created = h
        .run_pod(json!({"metadata": {"name": "web"}, "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "server", "image": TOOLBOX,
            "command": ["sh", "-c", "mkdir -p /www && echo ok > /www/ready && exec httpd -f -p 8080 -h /www"],
            "ports": [{"name": "http", "containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": "/ready", "port": "http",
                "httpHeaders": [{"name": "X-Probe", "value": "rkube"}]},
                "periodSeconds": 1, "failureThreshold": 1}}]}}))
        .await?;
    let pod = h.wait_pod("web", START, |p| condition(p, "Ready") == "True").await?;
    assert!(status_of(&pod, "server").ready);
    assert_eq!(condition(&pod, "ContainersReady"), "True");

    let id = h.container_id(&uid(&created), "server").await?;
    h.exec(&id, &["rm", "/www/ready"]).await?;
    let pod = h.wait_pod("web", Duration::from_secs(20), |p| condition(p, "Ready") == "False").await?;
    let server = status_of(&pod, "server");
    assert!(!server.ready && running(&pod, "server"), "an unready container keeps running");
    assert_eq!(server.restart_count, 0, "readiness never restarts a container");
    assert_eq!(condition(&pod, "ContainersReady"), "False");
    let events = events(&h, "web").await?;
    assert!(
        events
            .iter()
            .any(|(r, m)| r == "Unhealthy" && m == "Readiness probe failed: HTTP probe failed with statuscode: 404"),
        "{events:?}"
    );

    h.exec(&id, &["sh", "-c", "echo ok > /www/ready"]).await?;
    h.wait_pod("web", Duration::from_secs(20), |p| condition(p, "Ready") == "True").await?;
    h.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_startup_probe_holds_back_a_tcp_readiness_probe_until_the_port_listens() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let tcp = |period: i32, failures: i32| json!({"tcpSocket": {"port": 9000}, "periodSeconds": period, "failureThreshold": failures});
    h.run_pod(json!({"metadata": {"name": "slow"}, "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
        "name": "app", "image": TOOLBOX,
        "command": ["sh", "-c", "sleep 4; exec nc -ll -p 9000 -e true"],
        "startupProbe": tcp(1, 30),
        "readinessProbe": tcp(1, 1)}]}}))
        .await?;
    let pod = h.wait_pod("slow", START, |p| running(p, "app")).await?;
    let app = status_of(&pod, "app");
    assert_eq!((app.started, app.ready), (Some(false), false), "nothing listens yet");
    assert_eq!(condition(&pod, "Ready"), "False");

    let pod = h.wait_pod("slow", Duration::from_secs(30), |p| status_of(p, "app").ready).await?;
    let app = status_of(&pod, "app");
    assert_eq!((app.started, app.restart_count), (Some(true), 0));
    assert_eq!(condition(&pod, "Ready"), "True");
    h.shutdown().await
}
