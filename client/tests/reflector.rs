//! The reflector against a real apiserver and etcd: the store mirrors what
//! is written through the API, the label index follows relabels, and the
//! store converges after etcd outages and apiserver restarts (resuming the
//! watch, or re-listing when its resourceVersion was compacted away).

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use rkube_api::selector::Selector;
use rkube_client::{Api, Client, DeleteParams, Event, Informer, ListParams, ObjectKey};
use rkube_testkit::{TestApiserver, wait_for};
use serde_json::json;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);

fn config_map(name: &str, labels: &[(&str, &str)], value: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "namespace": "default",
            "labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        },
        "data": {"v": value},
    }))
    .expect("a valid ConfigMap")
}

fn pod(name: &str, labels: &[(&str, &str)]) -> Pod {
    serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "namespace": "default",
            "labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        },
        "spec": {"containers": [{"name": "c", "image": "rkube/toolbox:1.0"}]},
    }))
    .expect("a valid Pod")
}

/// The names of the cached objects, in order.
fn names<K: k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>>(
    objects: &[Arc<K>],
) -> Vec<String> {
    objects.iter().map(|o| o.metadata().name.clone().unwrap_or_default()).collect()
}

/// The value of a cached ConfigMap's `v` key.
fn value_of(informer: &Informer<ConfigMap>, name: &str) -> Option<String> {
    informer.store().get(&ObjectKey::new("default", name))?.data.as_ref()?.get("v").cloned()
}

/// Collects a subscription's events as `Applied name` / `Deleted name` / `Restarted`.
fn record(mut rx: mpsc::UnboundedReceiver<Event<ConfigMap>>) -> Arc<Mutex<Vec<String>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let out = seen.clone();
    tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            let line = match &ev {
                Event::Applied(o) => format!("Applied {}", o.metadata.name.clone().unwrap_or_default()),
                Event::Deleted(o) => format!("Deleted {}", o.metadata.name.clone().unwrap_or_default()),
                Event::Restarted => "Restarted".to_string(),
            };
            out.lock().expect("lock").push(line);
        }
    });
    seen
}

fn seen(events: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
    events.lock().expect("lock").clone()
}

#[tokio::test]
async fn store_mirrors_configmap_creates_updates_and_deletes() -> anyhow::Result<()> {
    let server = TestApiserver::start().await?;
    let api: Api<ConfigMap> = Api::namespaced(Client::new(&server.url())?, "default");
    api.create(&config_map("before", &[], "0")).await?;

    let shutdown = CancellationToken::new();
    let informer = Informer::spawn(api.clone(), ListParams::default(), shutdown.clone());
    let events = record(informer.subscribe());
    assert!(informer.wait_until_synced().await);
    assert_eq!(names(&informer.store().list()), ["before"]);

    api.create(&config_map("a", &[], "1")).await?;
    api.create(&config_map("b", &[], "1")).await?;
    api.patch("a", &json!({"data": {"v": "2"}})).await?;
    api.delete("before", &DeleteParams::default()).await?;
    wait_for(WAIT, || async {
        names(&informer.store().list()) == ["a", "b"] && value_of(&informer, "a").as_deref() == Some("2")
    })
    .await?;

    wait_for(WAIT, || async { seen(&events).len() >= 6 }).await?;
    assert_eq!(
        seen(&events),
        ["Applied before", "Restarted", "Applied a", "Applied b", "Applied a", "Deleted before"],
        "every change once, in order"
    );

    // A late subscriber is told the current state first.
    let late = record(informer.subscribe());
    wait_for(WAIT, || async { seen(&late).len() >= 3 }).await?;
    assert_eq!(seen(&late), ["Applied a", "Applied b", "Restarted"]);
    shutdown.cancel();
    Ok(())
}

#[tokio::test]
async fn label_index_follows_pods_created_and_relabelled_through_the_api() -> anyhow::Result<()> {
    let server = TestApiserver::start().await?;
    let client = Client::new(&server.url())?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let shutdown = CancellationToken::new();
    let informer = Informer::spawn(Api::<Pod>::all(client), ListParams::default(), shutdown.clone());
    assert!(informer.wait_until_synced().await);

    pods.create(&pod("web-1", &[("app", "web"), ("tier", "fe")])).await?;
    pods.create(&pod("web-2", &[("app", "web"), ("tier", "be")])).await?;
    pods.create(&pod("db-1", &[("app", "db")])).await?;
    let store = informer.store();
    wait_for(WAIT, || async { store.len() == 3 }).await?;
    assert_eq!(names(&store.by_label("app", "web")), ["web-1", "web-2"]);
    assert_eq!(names(&store.by_label("app", "db")), ["db-1"]);
    assert_eq!(names(&store.list_namespace("default")).len(), 3);
    assert!(store.list_namespace("kube-system").is_empty());
    assert_eq!(names(&store.select(&Selector::parse("app in (web,db),tier!=be")?)), ["db-1", "web-1"]);

    pods.patch("web-2", &json!({"metadata": {"labels": {"app": "db"}}})).await?;
    wait_for(WAIT, || async { store.by_label("app", "web").len() == 1 }).await?;
    assert_eq!(names(&store.by_label("app", "web")), ["web-1"]);
    assert_eq!(names(&store.by_label("app", "db")), ["db-1", "web-2"]);
    assert_eq!(names(&store.select_namespace("default", &Selector::parse("app=db,tier")?)), ["web-2"]);
    shutdown.cancel();
    Ok(())
}

#[tokio::test]
async fn a_label_selected_reflector_drops_objects_that_leave_the_selection() -> anyhow::Result<()> {
    let server = TestApiserver::start().await?;
    let api: Api<ConfigMap> = Api::namespaced(Client::new(&server.url())?, "default");
    let shutdown = CancellationToken::new();
    let informer = Informer::spawn(api.clone(), ListParams::default().labels("app=web"), shutdown.clone());
    let events = record(informer.subscribe());
    assert!(informer.wait_until_synced().await);

    api.create(&config_map("in", &[("app", "web")], "1")).await?;
    api.create(&config_map("out", &[("app", "db")], "1")).await?;
    wait_for(WAIT, || async { informer.store().len() == 1 }).await?;
    api.patch("in", &json!({"metadata": {"labels": {"app": "db"}}})).await?;
    api.patch("out", &json!({"metadata": {"labels": {"app": "web"}}})).await?;
    wait_for(WAIT, || async { names(&informer.store().list()) == ["out"] }).await?;
    wait_for(WAIT, || async { seen(&events).len() >= 4 }).await?;
    assert_eq!(seen(&events), ["Restarted", "Applied in", "Deleted in", "Applied out"]);
    shutdown.cancel();
    Ok(())
}

#[tokio::test]
async fn store_converges_after_an_etcd_outage() -> anyhow::Result<()> {
    let mut server = TestApiserver::start().await?;
    let api: Api<ConfigMap> = Api::namespaced(Client::new(&server.url())?, "default");
    api.create(&config_map("a", &[], "1")).await?;
    let shutdown = CancellationToken::new();
    let informer = Informer::spawn(api.clone(), ListParams::default(), shutdown.clone());
    assert!(informer.wait_until_synced().await);

    server.etcd.stop();
    assert!(api.list(&ListParams::default()).await.is_err(), "etcd is really down");
    server.etcd.restart().await?;

    // Writes may fail until the apiserver has reconnected to etcd.
    wait_for(WAIT, || async { api.create(&config_map("b", &[], "1")).await.is_ok() }).await?;
    api.patch("a", &json!({"data": {"v": "2"}})).await?;
    wait_for(WAIT, || async {
        names(&informer.store().list()) == ["a", "b"] && value_of(&informer, "a").as_deref() == Some("2")
    })
    .await?;
    api.delete("b", &DeleteParams::default()).await?;
    wait_for(WAIT, || async { names(&informer.store().list()) == ["a"] }).await?;
    shutdown.cancel();
    Ok(())
}

/// A TCP proxy giving the apiserver a fixed address across restarts (the
/// testkit starts a restarted apiserver on a new port), and able to cut
/// every connection through it to simulate an outage.
struct Proxy {
    addr: SocketAddr,
    target: Arc<Mutex<Option<SocketAddr>>>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> anyhow::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let proxy = Proxy {
            addr: listener.local_addr()?,
            target: Arc::new(Mutex::new(Some(target))),
            connections: Arc::default(),
        };
        let (target, connections) = (proxy.target.clone(), proxy.connections.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                // Refused while cut: the connection is dropped at once.
                let Some(to) = *target.lock().expect("lock") else { continue };
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                connections.lock().expect("lock").push(task.abort_handle());
            }
        });
        Ok(proxy)
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Drops every connection and refuses new ones.
    fn cut(&self) {
        *self.target.lock().expect("lock") = None;
        for c in self.connections.lock().expect("lock").drain(..) {
            c.abort();
        }
    }

    /// Forwards new connections to `target`.
    fn restore(&self, target: SocketAddr) {
        *self.target.lock().expect("lock") = Some(target);
    }
}

/// Compacts etcd's history up to `revision`, so watches from before it are Expired.
async fn compact(etcd_url: &str, revision: &str) -> anyhow::Result<()> {
    let out = tokio::process::Command::new("etcdctl")
        .arg(format!("--endpoints={etcd_url}"))
        .args(["compact", revision])
        .env("ETCDCTL_API", "3")
        .output()
        .await?;
    anyhow::ensure!(out.status.success(), "etcdctl compact: {}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

/// Cuts the reflector off, changes ConfigMaps behind its back (deleting
/// "gone", changing "changed", creating "new"), optionally compacts etcd,
/// restarts the apiserver and reconnects the reflector; returns its first
/// `count` events.
async fn change_while_disconnected(compact_history: bool, count: usize) -> anyhow::Result<Vec<String>> {
    let mut server = TestApiserver::start().await?;
    let proxy = Proxy::start(server.addr()).await?;
    let direct: Api<ConfigMap> = Api::namespaced(Client::new(&server.url())?, "default");
    for name in ["keep", "gone", "changed"] {
        direct.create(&config_map(name, &[], "1")).await?;
    }
    let shutdown = CancellationToken::new();
    let via_proxy: Api<ConfigMap> = Api::namespaced(Client::new(&proxy.url())?, "default");
    let informer = Informer::spawn(via_proxy, ListParams::default(), shutdown.clone());
    let events = record(informer.subscribe());
    assert!(informer.wait_until_synced().await);
    assert_eq!(names(&informer.store().list()), ["changed", "gone", "keep"]);

    proxy.cut();
    direct.delete("gone", &DeleteParams::default()).await?;
    direct.patch("changed", &json!({"data": {"v": "2"}})).await?;
    direct.create(&config_map("new", &[], "1")).await?;
    if compact_history {
        let now = direct.list(&ListParams::default()).await?.resource_version;
        compact(&server.etcd.url(), &now).await?;
    }
    server.restart().await?;
    proxy.restore(server.addr());

    wait_for(WAIT, || async {
        names(&informer.store().list()) == ["changed", "keep", "new"]
            && value_of(&informer, "changed").as_deref() == Some("2")
    })
    .await?;
    wait_for(WAIT, || async { seen(&events).len() >= count }).await?;
    shutdown.cancel();
    Ok(seen(&events))
}

#[tokio::test]
async fn reflector_resumes_its_watch_after_an_apiserver_restart_without_relisting() -> anyhow::Result<()> {
    let events = change_while_disconnected(false, 7).await?;
    assert_eq!(
        events,
        [
            "Applied changed",
            "Applied gone",
            "Applied keep",
            "Restarted",
            "Deleted gone",
            "Applied changed",
            "Applied new"
        ],
        "the missed changes are replayed from the last resourceVersion, in order"
    );
    Ok(())
}

#[tokio::test]
async fn reflector_relists_when_its_resource_version_expired_and_reports_vanished_objects() -> anyhow::Result<()> {
    let events = change_while_disconnected(true, 8).await?;
    let after_sync = &events[4..];
    assert_eq!(&events[..4], ["Applied changed", "Applied gone", "Applied keep", "Restarted"]);
    assert_eq!(after_sync, ["Deleted gone", "Applied changed", "Applied new", "Restarted"], "a re-list, not a replay");
    Ok(())
}
