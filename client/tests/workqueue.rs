//! The controller loop end to end: an informer's events enqueue keys, a pool
//! of workers drains the work queue, reads the store and writes through the
//! API. Bursts of changes to one object collapse into few reconciles, and no
//! key is ever reconciled by two workers at once.

use k8s_openapi::api::core::v1::ConfigMap;
use rkube_client::{Api, Client, Informer, ListParams, ObjectKey, Reason, WorkQueue};
use rkube_testkit::{TestApiserver, wait_for};
use serde_json::json;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const OBJECTS: usize = 20;
const UPDATES: usize = 5;

/// Stamps `reconciled=<data v>` on a ConfigMap if the stamp is stale; a
/// Conflict means the cache was stale and the key is retried with back-off.
async fn reconcile(api: &Api<ConfigMap>, informer: &Informer<ConfigMap>, key: &ObjectKey) -> rkube_client::Result<()> {
    let Some(cm) = informer.store().get(key) else { return Ok(()) };
    let v = cm.data.as_ref().and_then(|d| d.get("v")).cloned().unwrap_or_default();
    if cm.metadata.annotations.as_ref().and_then(|a| a.get("reconciled")) == Some(&v) {
        return Ok(());
    }
    let mut stamped = (*cm).clone();
    stamped.metadata.annotations.get_or_insert_default().insert("reconciled".into(), v);
    api.replace(&stamped).await.map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_reconcile_every_object_and_never_one_key_twice_at_once() -> anyhow::Result<()> {
    let server = TestApiserver::start().await?;
    let api: Api<ConfigMap> = Api::namespaced(Client::new(&server.url())?, "default");
    let shutdown = CancellationToken::new();
    let informer = Informer::spawn(api.clone(), ListParams::default(), shutdown.clone());
    let queue: WorkQueue<ObjectKey> = WorkQueue::new();

    // The event handler only enqueues keys.
    let mut events = informer.subscribe();
    let handler_queue = queue.clone();
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            if let Some(key) = ev.key() {
                handler_queue.add(key);
            }
        }
    });

    let in_progress: Arc<Mutex<HashSet<ObjectKey>>> = Arc::default();
    let overlapped = Arc::new(AtomicBool::new(false));
    let reconciles = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (api, informer, queue) = (api.clone(), informer.clone(), queue.clone());
            let (in_progress, overlapped, reconciles) = (in_progress.clone(), overlapped.clone(), reconciles.clone());
            tokio::spawn(async move {
                while let Some(key) = queue.get().await {
                    if !in_progress.lock().expect("lock").insert(key.clone()) {
                        overlapped.store(true, Ordering::SeqCst);
                    }
                    reconciles.fetch_add(1, Ordering::SeqCst);
                    let result = reconcile(&api, &informer, &key).await;
                    in_progress.lock().expect("lock").remove(&key);
                    match result {
                        Ok(()) => queue.forget(&key),
                        Err(e) if e.reason == Reason::Conflict => queue.add_rate_limited(key.clone()),
                        Err(e) => panic!("reconciling {key}: {e}"),
                    }
                    queue.done(&key);
                }
            })
        })
        .collect();

    assert!(informer.wait_until_synced().await);
    for i in 0..OBJECTS {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": format!("cm-{i}")}, "data": {"v": "0"}}))?;
        api.create(&cm).await?;
    }
    for n in 1..=UPDATES {
        for i in 0..OBJECTS {
            // Races with the workers' stamps: retry conflicts like any client.
            wait_for(Duration::from_secs(10), || async {
                api.patch(&format!("cm-{i}"), &json!({"data": {"v": n.to_string()}})).await.is_ok()
            })
            .await?;
        }
    }

    let done = UPDATES.to_string();
    wait_for(Duration::from_secs(30), || async {
        let objects = informer.store().list();
        objects.len() == OBJECTS
            && objects.iter().all(|o| {
                o.metadata.annotations.as_ref().and_then(|a| a.get("reconciled")) == Some(&done)
                    && o.data.as_ref().and_then(|d| d.get("v")) == Some(&done)
            })
    })
    .await?;
    assert!(!overlapped.load(Ordering::SeqCst), "a key was reconciled by two workers at once");
    let n = reconciles.load(Ordering::SeqCst);
    assert!(n >= OBJECTS, "every object was reconciled ({n} reconciles)");

    // Level-triggered: the API agrees with the cache.
    for o in api.list(&ListParams::default()).await?.items {
        assert_eq!(o.metadata.annotations.and_then(|mut a| a.remove("reconciled")), Some(done.clone()));
    }
    queue.shut_down();
    for w in workers {
        w.await?;
    }
    shutdown.cancel();
    Ok(())
}
