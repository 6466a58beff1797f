//! The horizontalpodautoscaling controller against a real apiserver on a
//! real etcd, without kubelets (so without metrics): what it does with a
//! missing target, a target scaled to zero, a target above maxReplicas and
//! pods it has no usage for.

use anyhow::Context as _;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Event, ReplicationController};
use rkube_client::{Api, Client, ListParams};
use rkube_testkit::{TestApiserver, TestControllerManager, wait_for};
use serde_json::json;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(20);

fn hpa(name: &str, target: &str) -> anyhow::Result<HorizontalPodAutoscaler> {
    Ok(serde_json::from_value(json!({"metadata": {"name": name},
        "spec": {"scaleTargetRef": {"apiVersion": "v1", "kind": "ReplicationController", "name": target},
                 "minReplicas": 1, "maxReplicas": 3,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                     "target": {"type": "Utilization", "averageUtilization": 50}}}]}}))?)
}

fn rc(name: &str, replicas: i32) -> anyhow::Result<ReplicationController> {
    Ok(serde_json::from_value(json!({"metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"app": name}, "template": {"metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "c", "image": "rkube/toolbox:1.0",
                "resources": {"requests": {"cpu": "100m"}}}]}}}}))?)
}

/// `(status, reason, message)` of the HPA's condition `type_`.
fn condition(h: &HorizontalPodAutoscaler, type_: &str) -> Option<(String, String, String)> {
    let c = h.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == type_)?;
    Some((c.status.clone(), c.reason.clone().unwrap_or_default(), c.message.clone().unwrap_or_default()))
}

async fn wait_for_condition(
    hpas: &Api<HorizontalPodAutoscaler>,
    name: &str,
    type_: &str,
    want: (&str, &str, &str),
) -> anyhow::Result<HorizontalPodAutoscaler> {
    let matches = |h: &HorizontalPodAutoscaler| {
        condition(h, type_).is_some_and(|(s, r, m)| (s.as_str(), r.as_str()) == (want.0, want.1) && m.contains(want.2))
    };
    let result = wait_for(TIMEOUT, || async { hpas.get(name).await.is_ok_and(|h| matches(&h)) }).await;
    let now = hpas.get(name).await?;
    result.with_context(|| format!("hpa {name} never {type_}={want:?}; status {:?}", now.status))?;
    Ok(now)
}

async fn wait_for_event(client: &Client, name: &str, reason: &str, message: &str) -> anyhow::Result<()> {
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let found = || async {
        events.list(&ListParams::default()).await.is_ok_and(|l| {
            l.items.iter().any(|e| {
                e.involved_object.name.as_deref() == Some(name)
                    && e.source.as_ref().and_then(|s| s.component.as_deref()) == Some("horizontal-pod-autoscaler")
                    && e.reason.as_deref() == Some(reason)
                    && e.message.as_deref().is_some_and(|m| m.contains(message))
            })
        })
    };
    wait_for(TIMEOUT, found).await.with_context(|| format!("no {reason} event \"{message}\" about {name}"))
}

#[tokio::test]
async fn hpas_handle_missing_zero_and_oversized_targets_and_missing_metrics() -> anyhow::Result<()> {
    let apiserver = TestApiserver::start().await?;
    let client = Client::new(&apiserver.url())?;
    let _cm = TestControllerManager::start(
        &apiserver.url(),
        &[
            "--leader-elect=false",
            "--controllers=horizontalpodautoscaling",
            "--horizontal-pod-autoscaler-sync-period=1s",
        ],
    )
    .await?;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), "default");
    let rcs: Api<ReplicationController> = Api::namespaced(client.clone(), "default");

    // No target: a condition and an event, nothing else.
    hpas.create(&hpa("orphan", "nope")?).await?;
    let h = wait_for_condition(
        &hpas,
        "orphan",
        "AbleToScale",
        ("False", "FailedGetScale", "the HPA controller was unable to get the target's current scale: "),
    )
    .await?;
    assert_eq!(h.status.and_then(|s| s.observed_generation), h.metadata.generation);
    wait_for_event(&client, "orphan", "FailedGetScale", "\"nope\" not found").await?;

    // Scaled to zero by a user: left alone.
    rcs.create(&rc("off", 0)?).await?;
    hpas.create(&hpa("off", "off")?).await?;
    wait_for_condition(
        &hpas,
        "off",
        "ScalingActive",
        ("False", "ScalingDisabled", "scaling is disabled since the replica count of the target is zero"),
    )
    .await?;
    assert_eq!(rcs.get("off").await?.spec.and_then(|s| s.replicas), Some(0));

    // Above maxReplicas: brought down to it, with Kubernetes' reason.
    rcs.create(&rc("big", 5)?).await?;
    hpas.create(&hpa("big", "big")?).await?;
    wait_for(TIMEOUT, || async { rcs.get("big").await.is_ok_and(|r| r.spec.and_then(|s| s.replicas) == Some(3)) })
        .await
        .context("rc big never scaled to maxReplicas 3")?;
    wait_for_event(
        &client,
        "big",
        "SuccessfulRescale",
        "New size: 3; reason: Current number of replicas above Spec.MaxReplicas",
    )
    .await?;
    let h = wait_for_condition(&hpas, "big", "AbleToScale", ("True", "SucceededRescale", "")).await?;
    assert!(h.status.as_ref().and_then(|s| s.last_scale_time.as_ref()).is_some(), "{:?}", h.status);

    // Within bounds but no usage to read (no kubelets): no scaling, never to zero.
    rcs.create(&rc("idle", 2)?).await?;
    hpas.create(&hpa("idle", "idle")?).await?;
    wait_for_condition(
        &hpas,
        "idle",
        "ScalingActive",
        ("False", "FailedGetResourceMetric", "failed to get cpu utilization"),
    )
    .await?;
    wait_for_event(&client, "idle", "FailedComputeMetricsReplicas", "invalid metrics (1 invalid out of 1)").await?;
    assert_eq!(rcs.get("idle").await?.spec.and_then(|s| s.replicas), Some(2));
    let h = hpas.get("idle").await?;
    assert_eq!(h.status.and_then(|s| s.current_replicas), Some(2));
    Ok(())
}
