//! The Event recorder against a real apiserver: repeats of one event end up
//! as one Event whose count and lastTimestamp grow (what `kubectl describe`
//! shows as `(x5 over 2m)`), other messages get their own Events, and events
//! about nodes land in `default`.

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use rkube_client::events::{EventRecorder, EventType, object_ref};
use rkube_client::{Api, Client, ListParams};
use rkube_testkit::{TestApiserver, wait_for};
use serde_json::json;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const WAIT: Duration = Duration::from_secs(20);

async fn events(client: &Client) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(client.clone(), "default");
    api.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default()
}

#[tokio::test]
async fn repeats_bump_one_event_and_other_messages_get_their_own() -> anyhow::Result<()> {
    let apiserver = TestApiserver::start().await?;
    let client = Client::new(&apiserver.url())?;
    let pod: Pod = Api::namespaced(client.clone(), "default")
        .create(&serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}}))?)
        .await?;
    let node: Node = serde_json::from_value(json!({"metadata": {"name": "n1", "uid": "node-uid"}}))?;
    let (tracker, shutdown) = (TaskTracker::new(), CancellationToken::new());
    let recorder = EventRecorder::start(client.clone(), "test-controller", "instance-1", &tracker, shutdown.clone());

    for _ in 0..5 {
        recorder.record(&object_ref(&pod), EventType::Warning, "FailedCreate", "quota exceeded");
    }
    recorder.record_with_action(&object_ref(&pod), EventType::Normal, "Scheduled", "Binding", "assigned to n1");
    recorder.warning(&node, "CIDRNotAvailable", "no free /24");

    let settled = |events: &[Event]| {
        let failed = events.iter().find(|e| e.reason.as_deref() == Some("FailedCreate"));
        failed.is_some_and(|e| e.count == Some(5)) && events.len() == 3
    };
    wait_for(WAIT, || async { settled(&events(&client).await) }).await?;
    let all = events(&client).await;
    let failed = all.iter().find(|e| e.reason.as_deref() == Some("FailedCreate")).expect("checked above");
    assert_eq!(failed.involved_object.uid, pod.metadata.uid);
    assert_eq!(failed.type_.as_deref(), Some("Warning"));
    assert!(failed.last_timestamp >= failed.first_timestamp, "{failed:?}");
    assert_eq!(failed.reporting_component.as_deref(), Some("test-controller"));
    assert_eq!(failed.reporting_instance.as_deref(), Some("instance-1"));
    let scheduled = all.iter().find(|e| e.reason.as_deref() == Some("Scheduled")).expect("checked above");
    assert_eq!((scheduled.action.as_deref(), scheduled.count), (Some("Binding"), Some(1)));
    let exhausted = all.iter().find(|e| e.reason.as_deref() == Some("CIDRNotAvailable")).expect("checked above");
    assert_eq!(exhausted.involved_object.kind.as_deref(), Some("Node"));
    assert_eq!(exhausted.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(recorder.dropped(), 0);

    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
    Ok(())
}
