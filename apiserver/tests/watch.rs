//! Watch semantics against a real etcd: exactly once and in order from a
//! resourceVersion, the initial ADDED events, selector transitions, Expired
//! after compaction, fan-out over shared etcd watches, and resuming after
//! etcd goes away.

use futures::{Stream, StreamExt};
use rkube_api::Reason;
use rkube_api::resource::lookup;
use rkube_client::{Client, ListParams, RawEvent, WatchEventType};
use rkube_testkit::{TestApiserver, wait_for};
use serde_json::{Value, json};
use std::time::Duration;

fn cm(name: &str, labels: Value, value: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels}, "data": {"v": value}}))
    .expect("serializes")
}

async fn next_events(
    stream: &mut (impl Stream<Item = rkube_api::Result<RawEvent>> + Unpin),
    n: usize,
) -> anyhow::Result<Vec<(WatchEventType, String, String)>> {
    let mut out = Vec::new();
    while out.len() < n {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .map_err(|_| anyhow::anyhow!("timed out after {} of {n} events: {out:?}", out.len()))?
            .ok_or_else(|| anyhow::anyhow!("stream ended after {out:?}"))??;
        let v: Value = serde_json::from_slice(&ev.object.json)?;
        let value = v["data"]["v"].as_str().unwrap_or_default().to_string();
        assert_eq!(v["metadata"]["resourceVersion"].as_str(), Some(ev.object.resource_version.as_str()));
        out.push((ev.kind, ev.object.name, value));
    }
    Ok(out)
}

async fn assert_quiet(stream: &mut (impl Stream<Item = rkube_api::Result<RawEvent>> + Unpin)) {
    if let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(300), stream.next()).await {
        panic!("unexpected event {:?}", ev.map(|e| (e.kind, e.object.name)));
    }
}

#[tokio::test]
async fn watch_from_a_version_delivers_every_later_change_once_in_order() -> anyhow::Result<()> {
    let server = TestApiserver::start().await?;
    let client = Client::new(&server.url())?;
    let cms = lookup("configmaps")?;
    client.create(cms, "default", cm("before", json!({}), "0")).await?;
    let list = client.list(cms, "default", &ListParams::default()).await?;

    // Changes made before the watch starts are delivered too: from the list's version.
    client.create(cms, "default", cm("a", json!({}), "1")).await?;
    let mut w = Box::pin(client.watch(cms, "default", &ListParams::default(), &list.resource_version).await?);
    client.patch(cms, "default", "a", &json!({"data": {"v": "2"}}), false).await?;
    client.create(cms, "default", cm("b", json!({}), "3")).await?;
    client.delete(cms, "default", "a", &Default::default()).await?;
    let got = next_events(&mut w, 4).await?;
    assert_eq!(
        got,
        vec![
            (WatchEventType::Added, "a".into(), "1".into()),
            (WatchEventType::Modified, "a".into(), "2".into()),
            (WatchEventType::Added, "b".into(), "3".into()),
            (WatchEventType::Deleted, "a".into(), "2".into()),
        ]
    );
    assert_quiet(&mut w).await;

    // Many writes: every one arrives, once, in order.
    let mut w2 = Box::pin(client.watch(cms, "default", &ListParams::default(), &list.resource_version).await?);
    for i in 0..100 {
        client.patch(cms, "default", "b", &json!({"data": {"v": i.to_string()}}), false).await?;
    }
    let got = next_events(&mut w2, 104).await?;
    let tail: Vec<String> = got[4..].iter().map(|e| e.2.clone()).collect();
    let want: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    assert_eq!(tail, want);
    assert_quiet(&mut w2).await;
    Ok(())
}

#[tokio::test]
async fn watch_without_a_version_starts_with_the_current_objects() -> anyhow::Result<()> {
    let server = TestApiserver::start().await?;
    let client = Client::new(&server.url())?;
    let cms = lookup("configmaps")?;
    client.create(cms, "default", cm("x", json!({}), "1")).await?;
    client.create(cms, "default", cm("y", json!({}), "1")).await?;
    let mut w = Box::pin(client.watch(cms, "default", &ListParams::default(), "").await?);
    let got = next_events(&mut w, 2).await?;
    assert!(got.iter().all(|e| e.0 == WatchEventType::Added));
    client.create(cms, "default", cm("z", json!({}), "1")).await?;
    assert_eq!(next_events(&mut w, 1).await?[0].1, "z");
    assert_quiet(&mut w).await;
    Ok(())
}

#[tokio::test]
async fn objects_entering_and_leaving_a_selection_are_added_and_deleted() -> anyhow::Result<()> {
    let server = TestApiserver::start().await?;
    let client = Client::new(&server.url())?;
    let cms = lookup("configmaps")?;
    let start = client.list(cms, "default", &ListParams::default()).await?.resource_version;
    let mut w = Box::pin(client.watch(cms, "default", &ListParams::default().labels("app=web"), &start).await?);
    client.create(cms, "default", cm("c", json!({"app": "db"}), "1")).await?;
    client.patch(cms, "default", "c", &json!({"metadata": {"labels": {"app": "web"}}}), false).await?;
    client.patch(cms, "default", "c", &json!({"data": {"v": "2"}}), false).await?;
    client.patch(cms, "default", "c", &json!({"metadata": {"labels": {"app": "db"}}}), false).await?;
    client.patch(cms, "default", "c", &json!({"data": {"v": "3"}}), false).await?;
    let got = next_events(&mut w, 3).await?;
    let kinds: Vec<WatchEventType> = got.iter().map(|e| e.0).collect();
    assert_eq!(kinds, [WatchEventType::Added, WatchEventType::Modified, WatchEventType::Deleted]);
    assert_eq!(got[2].2, "2", "a deletion carries the last state that was selected");
    assert_quiet(&mut w).await;
    Ok(())
}

#[tokio::test]
async fn compacted_or_garbage_versions_are_refused() -> anyhow::Result<()> {
    let server = TestApiserver::start().await?;
    let client = Client::new(&server.url())?;
    let cms = lookup("configmaps")?;
    let e = client.watch(cms, "default", &ListParams::default(), "yesterday").await.err().expect("garbage");
    assert_eq!(e.reason, Reason::BadRequest);
    assert!(e.message.contains("yesterday"), "{}", e.message);

    // Restart the apiserver so its in-memory history starts after `old`, then
    // compact etcd past `old`: a watch from `old` is Expired.
    let old = client.create(cms, "default", cm("a", json!({}), "1")).await?.resource_version;
    for i in 0..5 {
        client.patch(cms, "default", "a", &json!({"data": {"v": i.to_string()}}), false).await?;
    }
    let mut etcd = etcd_client::Client::connect([server.etcd.url()], None).await?;
    let rev = etcd.get("/registry/", Some(etcd_client::GetOptions::new().with_count_only())).await?;
    etcd.compact(rev.header().expect("header").revision(), None).await?;
    let mut server = server;
    server.restart().await?;
    let client = Client::new(&server.url())?;
    let mut w = Box::pin(client.watch(cms, "default", &ListParams::default(), &old).await?);
    let e = tokio::time::timeout(Duration::from_secs(10), w.next()).await?.expect("an answer").expect_err("expired");
    assert_eq!(e.reason, Reason::Expired, "{}", e.message);
    Ok(())
}

#[tokio::test]
async fn a_watch_from_before_an_apiserver_restart_is_served_from_etcd_history() -> anyhow::Result<()> {
    let mut server = TestApiserver::start().await?;
    let client = Client::new(&server.url())?;
    let cms = lookup("configmaps")?;
    let from = client.create(cms, "default", cm("a", json!({}), "1")).await?.resource_version;
    client.patch(cms, "default", "a", &json!({"data": {"v": "2"}}), false).await?;
    server.restart().await?;
    let client = Client::new(&server.url())?;
    let mut w = Box::pin(client.watch(cms, "default", &ListParams::default(), &from).await?);
    client.patch(cms, "default", "a", &json!({"data": {"v": "3"}}), false).await?;
    let got = next_events(&mut w, 2).await?;
    assert_eq!(
        got,
        vec![(WatchEventType::Modified, "a".into(), "2".into()), (WatchEventType::Modified, "a".into(), "3".into())]
    );
    Ok(())
}

/// etcd's own count of its watchers (from its /metrics).
async fn etcd_watchers(etcd_url: &str) -> anyhow::Result<i64> {
    let (_, text) = rkube_testkit::http_get(&format!("{etcd_url}/metrics")).await?;
    text.lines()
        .find(|l| l.starts_with("etcd_debugging_mvcc_watcher_total "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as i64)
        .ok_or_else(|| anyhow::anyhow!("no watcher gauge in etcd metrics"))
}

#[tokio::test]
async fn many_watchers_share_one_etcd_watch_per_resource() -> anyhow::Result<()> {
    let server = TestApiserver::start().await?;
    let client = Client::new(&server.url())?;
    let cms = lookup("configmaps")?;
    let start = client.list(cms, "default", &ListParams::default()).await?.resource_version;
    let before = etcd_watchers(&server.etcd.url()).await?;
    let mut watches = Vec::new();
    for _ in 0..50 {
        watches.push(Box::pin(client.watch(cms, "default", &ListParams::default(), &start).await?));
    }
    client.create(cms, "default", cm("fan", json!({}), "1")).await?;
    for w in &mut watches {
        assert_eq!(next_events(w, 1).await?[0].1, "fan");
    }
    let after = etcd_watchers(&server.etcd.url()).await?;
    assert!(after - before < 5, "50 client watches opened {} etcd watches", after - before);
    Ok(())
}

#[tokio::test]
async fn etcd_outage_fails_fast_and_watches_resume_without_losing_events() -> anyhow::Result<()> {
    let mut server = TestApiserver::start().await?;
    let client = Client::new(&server.url())?;
    let cms = lookup("configmaps")?;
    let start = client.list(cms, "default", &ListParams::default()).await?.resource_version;
    let mut w = Box::pin(client.watch(cms, "default", &ListParams::default(), &start).await?);
    client.create(cms, "default", cm("a", json!({}), "1")).await?;
    assert_eq!(next_events(&mut w, 1).await?[0].1, "a");

    server.etcd.stop();
    let t = std::time::Instant::now();
    let e = client.create(cms, "default", cm("b", json!({}), "1")).await.expect_err("etcd is down");
    assert_eq!(e.reason, Reason::ServiceUnavailable, "{}", e.message);
    assert!(e.message.contains("etcd"), "{}", e.message);
    assert!(t.elapsed() < Duration::from_secs(6), "took {:?}", t.elapsed());
    let (code, _) = rkube_testkit::http_get(&format!("{}/readyz", server.url())).await?;
    assert_eq!(code, 503);

    server.etcd.restart().await?;
    wait_for(Duration::from_secs(20), || {
        let client = client.clone();
        async move { client.create(cms, "default", cm("b", json!({}), "2")).await.is_ok() }
    })
    .await?;
    client.patch(cms, "default", "b", &json!({"data": {"v": "3"}}), false).await?;
    let got = next_events(&mut w, 2).await?;
    assert_eq!(
        got,
        vec![(WatchEventType::Added, "b".into(), "2".into()), (WatchEventType::Modified, "b".into(), "3".into())]
    );
    Ok(())
}
