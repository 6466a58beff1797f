//! Object semantics against a real etcd: create/get/list/update/patch/delete,
//! resourceVersion and conflicts, generation and status, validation and bad
//! input, namespaces, graceful deletion, finalizers and binding.

use futures::StreamExt;
use rkube_api::Reason;
use rkube_api::resource::lookup;
use rkube_client::{Client, DeleteParams, ListParams};
use rkube_testkit::TestApiserver;
use serde_json::{Value, json};

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "rkube/toolbox:1.0"}]}})
}

fn body(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("serializes")
}

fn json_of(o: &rkube_proto::v1::Object) -> Value {
    serde_json::from_slice(&o.json).expect("valid JSON")
}

async fn setup() -> anyhow::Result<(TestApiserver, Client)> {
    let server = TestApiserver::start().await?;
    let client = Client::new(&server.url())?;
    Ok((server, client))
}

#[tokio::test]
async fn create_sets_identity_and_get_returns_it() -> anyhow::Result<()> {
    let (_server, client) = setup().await?;
    let pods = lookup("pods")?;
    let created = client.create(pods, "default", body(&pod("web"))).await?;
    let v = json_of(&created);
    assert_eq!(v["metadata"]["namespace"], "default");
    assert_eq!(v["metadata"]["generation"], 1);
    assert!(v["metadata"]["uid"].as_str().is_some_and(|u| u.len() == 36), "{v}");
    assert!(v["metadata"]["creationTimestamp"].as_str().is_some_and(|t| t.ends_with('Z')), "{v}");
    let rv: i64 = v["metadata"]["resourceVersion"].as_str().expect("rv").parse()?;
    assert!(rv > 0);
    assert_eq!(created.resource_version, rv.to_string());

    let got = json_of(&client.get(pods, "default", "web").await?);
    assert_eq!(got["metadata"]["uid"], v["metadata"]["uid"]);
    assert_eq!(got["metadata"]["resourceVersion"], v["metadata"]["resourceVersion"]);

    let again = client.create(pods, "default", body(&pod("web"))).await.expect_err("duplicate");
    assert_eq!(again.reason, Reason::AlreadyExists);
    assert_eq!(again.message, "pods \"web\" already exists");

    let missing = client.get(pods, "default", "nope").await.expect_err("missing");
    assert_eq!(missing.reason, Reason::NotFound);
    assert_eq!(missing.message, "pods \"nope\" not found");
    Ok(())
}

#[tokio::test]
async fn generate_name_makes_unique_names() -> anyhow::Result<()> {
    let (_server, client) = setup().await?;
    let cms = lookup("configmaps")?;
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "cfg-"}});
    let a = client.create(cms, "default", body(&cm)).await?;
    let b = client.create(cms, "default", body(&cm)).await?;
    assert!(a.name.starts_with("cfg-") && a.name.len() == 9, "{}", a.name);
    assert_ne!(a.name, b.name);
    Ok(())
}

/// The suffixes the apiserver picks after `fastrand::seed(seed)` on its
/// thread, as it picks them (kube's utilrand.String(5)).
fn suffixes(seed: u64, n: usize) -> Vec<String> {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    fastrand::seed(seed);
    (0..n).map(|_| (0..5).map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char).collect()).collect()
}

// One thread: the in-process apiserver draws its random names from the
// test's seeded generator, so the first name is known and can be taken.
#[tokio::test(flavor = "current_thread")]
async fn a_generated_name_that_is_taken_is_drawn_again() -> anyhow::Result<()> {
    let (_server, client) = setup().await?;
    let cms = lookup("configmaps")?;
    let [first, second] = <[String; 2]>::try_from(suffixes(7, 2)).expect("two");
    let taken = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("gen-{first}")}});
    client.create(cms, "default", body(&taken)).await?;

    fastrand::seed(7);
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "gen-"}});
    let created = client.create(cms, "default", body(&cm)).await?;
    assert_eq!(created.name, format!("gen-{second}"), "the taken gen-{first} was passed over");
    let names: Vec<String> =
        client.list(cms, "default", &ListParams::default()).await?.items.into_iter().map(|o| o.name).collect();
    assert!(names.contains(&format!("gen-{first}")) && names.contains(&format!("gen-{second}")), "{names:?}");
    // A name the client chose is never replaced: taken is AlreadyExists.
    let again = client.create(cms, "default", body(&taken)).await.expect_err("taken");
    assert_eq!(again.reason, Reason::AlreadyExists);
    Ok(())
}

#[tokio::test]
async fn stale_resource_version_is_a_conflict_never_a_lost_update() -> anyhow::Result<()> {
    let (_server, client) = setup().await?;
    let cms = lookup("configmaps")?;
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "1"}});
    let v1 = json_of(&client.create(cms, "default", body(&cm)).await?);

    let mut first = v1.clone();
    first["data"]["k"] = "2".into();
    let v2 = json_of(&client.update(cms, "default", "c", body(&first)).await?);
    assert_ne!(v2["metadata"]["resourceVersion"], v1["metadata"]["resourceVersion"]);

    // A second writer still holding v1 loses.
    let mut second = v1.clone();
    second["data"]["k"] = "3".into();
    let e = client.update(cms, "default", "c", body(&second)).await.expect_err("stale");
    assert_eq!(e.reason, Reason::Conflict);
    assert!(e.message.contains("the object has been modified"), "{}", e.message);
    assert_eq!(json_of(&client.get(cms, "default", "c").await?)["data"]["k"], "2");

    // Without a resourceVersion the update is unconditional.
    let mut blind = v1.clone();
    blind["metadata"].as_object_mut().expect("meta").remove("resourceVersion");
    blind["data"]["k"] = "4".into();
    client.update(cms, "default", "c", body(&blind)).await?;
    assert_eq!(json_of(&client.get(cms, "default", "c").await?)["data"]["k"], "4");

    // Concurrent unconditional patches all land.
    let mut tasks = Vec::new();
    for i in 0..10 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            client.patch(cms, "default", "c", &json!({"data": {format!("p{i}"): "x"}}), false).await
        }));
    }
    for t in tasks {
        t.await??;
    }
    let data = json_of(&client.get(cms, "default", "c").await?)["data"].clone();
    assert_eq!(data.as_object().expect("data").len(), 11, "{data}");
    Ok(())
}

#[tokio::test]
async fn status_moves_only_through_update_status_and_generation_only_with_spec() -> anyhow::Result<()> {
    let (_server, client) = setup().await?;
    let pods = lookup("pods")?;
    let created = json_of(&client.create(pods, "default", body(&pod("p"))).await?);

    // Status written on create or through update is ignored...
    let mut with_status = created.clone();
    with_status["status"]["phase"] = "Running".into();
    with_status["metadata"]["labels"]["extra"] = "yes".into();
    let updated = json_of(&client.update(pods, "default", "p", body(&with_status)).await?);
    assert_ne!(updated["status"]["phase"], "Running");
    assert_eq!(updated["metadata"]["labels"]["extra"], "yes");
    assert_eq!(updated["metadata"]["generation"], 1, "a label change is not a spec change");

    // ...and lands through UpdateStatus, which ignores spec changes.
    let mut st = updated.clone();
    st["status"]["phase"] = "Running".into();
    st["spec"]["containers"][0]["image"] = "other:2".into();
    let after = json_of(&client.update_status(pods, "default", "p", body(&st)).await?);
    assert_eq!(after["status"]["phase"], "Running");
    assert_eq!(after["spec"]["containers"][0]["image"], "rkube/toolbox:1.0");

    // A spec change bumps generation (and keeps status).
    let patched = json_of(
        &client
            .patch(pods, "default", "p", &json!({"spec": {"containers": [{"name": "c", "image": "x:2"}]}}), false)
            .await?,
    );
    assert_eq!(patched["metadata"]["generation"], 2);
    assert_eq!(patched["status"]["phase"], "Running");

    // Kinds without a status subresource refuse status writes.
    let cms = lookup("configmaps")?;
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s"}});
    client.create(cms, "default", body(&cm)).await?;
    let e = client.update_status(cms, "default", "s", body(&cm)).await.expect_err("no status");
    assert_eq!(e.reason, Reason::MethodNotAllowed);
    assert_eq!(
        client.patch(cms, "default", "s", &json!({"status": {}}), true).await.expect_err("no status").reason,
        Reason::MethodNotAllowed
    );

    // An update that changes nothing writes nothing.
    let same = json_of(&client.update(pods, "default", "p", body(&patched)).await?);
    assert_eq!(same["metadata"]["resourceVersion"], patched["metadata"]["resourceVersion"]);
    Ok(())
}

#[tokio::test]
async fn list_is_a_snapshot_with_label_and_field_selectors_and_pages() -> anyhow::Result<()> {
    let (_server, client) = setup().await?;
    let pods = lookup("pods")?;
    let nss = lookup("namespaces")?;
    client
        .create(nss, "", body(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})))
        .await?;
    for (ns, name, labels) in [
        ("default", "a", json!({"app": "web", "tier": "front"})),
        ("default", "b", json!({"app": "web", "tier": "back"})),
        ("default", "c", json!({"app": "db"})),
        ("other", "d", json!({"app": "web"})),
    ] {
        let mut p = pod(name);
        p["metadata"]["labels"] = labels;
        client.create(pods, ns, body(&p)).await?;
    }
    client.bind("default", "a", "node-1").await?;

    let names = |l: &rkube_proto::v1::ListResponse| l.items.iter().map(|o| o.name.clone()).collect::<Vec<_>>();
    let all = client.list(pods, "", &ListParams::default()).await?;
    assert_eq!(names(&all), ["a", "b", "c", "d"]);
    assert!(all.resource_version.parse::<i64>()? > 0);
    assert_eq!(all.kind, "PodList");
    let ns_only = client.list(pods, "default", &ListParams::default()).await?;
    assert_eq!(names(&ns_only), ["a", "b", "c"]);

    for (sel, want) in [
        ("app=web", vec!["a", "b", "d"]),
        ("app==web,tier!=back", vec!["a", "d"]),
        ("tier in (front,back)", vec!["a", "b"]),
        ("tier notin (front)", vec!["b", "c", "d"]),
        ("tier", vec!["a", "b"]),
        ("!tier", vec!["c", "d"]),
    ] {
        let l = client.list(pods, "", &ListParams::default().labels(sel)).await?;
        assert_eq!(names(&l), want, "{sel}");
    }
    for (sel, want) in [
        ("spec.nodeName=node-1", vec!["a"]),
        ("spec.nodeName=", vec!["b", "c", "d"]),
        ("metadata.name=c", vec!["c"]),
        ("metadata.namespace=other", vec!["d"]),
        ("metadata.name!=c,status.phase=Pending", vec!["a", "b", "d"]),
    ] {
        let l = client.list(pods, "", &ListParams::default().fields(sel)).await?;
        assert_eq!(names(&l), want, "{sel}");
    }
    let bad = client.list(pods, "", &ListParams::default().fields("spec.bogus=1")).await.expect_err("bad field");
    assert_eq!(bad.reason, Reason::BadRequest);
    assert!(bad.message.contains("spec.bogus"), "{}", bad.message);
    let bad = client.list(pods, "", &ListParams::default().labels("app in (")).await.expect_err("bad labels");
    assert_eq!(bad.reason, Reason::BadRequest);

    // Pages: all four in pages of 3 then 1, from one snapshot even if a pod
    // is added between the pages.
    let page1 = client.list(pods, "", &ListParams { limit: 3, ..Default::default() }).await?;
    assert_eq!(names(&page1), ["a", "b", "c"]);
    assert!(!page1.continue_token.is_empty());
    client.create(pods, "default", body(&pod("e"))).await?;
    let page2 = client
        .list(pods, "", &ListParams { limit: 3, continue_token: page1.continue_token.clone(), ..Default::default() })
        .await?;
    assert_eq!(names(&page2), ["d"]);
    assert!(page2.continue_token.is_empty());
    assert_eq!(page2.resource_version, page1.resource_version);
    // Pages fill up across selector misses.
    let web =
        client.list(pods, "", &ListParams { limit: 2, label_selector: "app=web".into(), ..Default::default() }).await?;
    assert_eq!(names(&web), ["a", "b"]);
    Ok(())
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field_and_nothing_is_stored() -> anyhow::Result<()> {
    let (_server, client) = setup().await?;
    let pods = lookup("pods")?;
    let cases: Vec<(Vec<u8>, Reason, &str)> = vec![
        (b"{not json".to_vec(), Reason::BadRequest, "error decoding JSON"),
        (b"kind: Pod\n  bad: [".to_vec(), Reason::BadRequest, "YAML"),
        (
            body(&json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"},
                "spec": {"containers": [{"name": "c", "imagee": "i"}]}})),
            Reason::BadRequest,
            "unknown field \"spec.containers[0].imagee\"",
        ),
        (
            body(&json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "Bad_Name"},
                "spec": {"containers": [{"name": "c", "image": "i"}]}})),
            Reason::Invalid,
            "metadata.name",
        ),
        (
            body(&json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"},
                "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": "http"}]}]}})),
            Reason::BadRequest,
            "spec.containers[0].ports[0].containerPort",
        ),
        (
            body(&json!({"apiVersion": "apps/v1", "kind": "Pod", "metadata": {"name": "x"}})),
            Reason::BadRequest,
            "apiVersion",
        ),
        (
            body(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})),
            Reason::BadRequest,
            "kind",
        ),
    ];
    for (input, reason, needle) in cases {
        let e = client.create(pods, "default", input.clone()).await.expect_err(needle);
        assert_eq!(e.reason, reason, "{needle}: {}", e.message);
        assert!(e.message.contains(needle), "{needle}: {}", e.message);
    }
    // Oversized.
    let mut big = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}});
    big["data"]["blob"] = "x".repeat(1_600_000).into();
    let e = client.create(lookup("configmaps")?, "default", body(&big)).await.expect_err("too big");
    assert_eq!(e.reason, Reason::RequestEntityTooLarge);
    // Missing namespace.
    let e = client.create(pods, "nowhere", body(&pod("p"))).await.expect_err("no namespace");
    assert_eq!(e.reason, Reason::NotFound);
    assert_eq!(e.message, "namespaces \"nowhere\" not found");
    // Nothing partial was stored, and the server still serves.
    assert!(client.list(pods, "", &ListParams::default()).await?.items.is_empty());
    assert!(client.list(lookup("configmaps")?, "", &ListParams::default()).await?.items.is_empty());
    client.create(pods, "default", body(&pod("ok"))).await?;
    Ok(())
}

#[tokio::test]
async fn system_namespaces_exist_and_lifecycle_is_enforced() -> anyhow::Result<()> {
    let (_server, client) = setup().await?;
    let nss = lookup("namespaces")?;
    let names: Vec<String> =
        client.list(nss, "", &ListParams::default()).await?.items.into_iter().map(|o| o.name).collect();
    assert_eq!(names, ["default", "kube-node-lease", "kube-public", "kube-system"]);
    let e = client.delete(nss, "", "default", &DeleteParams::default()).await.expect_err("protected");
    assert_eq!(e.reason, Reason::Forbidden);

    client
        .create(nss, "", body(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doomed"}})))
        .await?;
    client
        .create(
            lookup("configmaps")?,
            "doomed",
            body(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}})),
        )
        .await?;
    let (ns, gone) = client.delete(nss, "", "doomed", &DeleteParams::default()).await?;
    assert!(!gone, "a namespace with finalizers waits for its controller");
    assert_eq!(json_of(&ns)["status"]["phase"], "Terminating");
    let pods = lookup("pods")?;
    rkube_testkit::wait_for(std::time::Duration::from_secs(5), || {
        let client = client.clone();
        async move {
            matches!(client.create(pods, "doomed", body(&pod("late"))).await, Err(e) if e.reason == Reason::Forbidden)
        }
    })
    .await?;
    let e = client.create(pods, "doomed", body(&pod("late2"))).await.expect_err("terminating");
    assert!(e.message.contains("because it is being terminated"), "{}", e.message);
    Ok(())
}

#[tokio::test]
async fn pods_on_a_node_are_deleted_gracefully_and_finalizers_hold_deletion() -> anyhow::Result<()> {
    let (_server, client) = setup().await?;
    let pods = lookup("pods")?;
    // Never scheduled: gone at once.
    client.create(pods, "default", body(&pod("unscheduled"))).await?;
    let (_, gone) = client.delete(pods, "default", "unscheduled", &DeleteParams::default()).await?;
    assert!(gone);

    // Scheduled: marked, then finished by the kubelet with grace 0.
    client.create(pods, "default", body(&pod("running"))).await?;
    client.bind("default", "running", "n1").await?;
    let (marked, gone) = client.delete(pods, "default", "running", &DeleteParams::default()).await?;
    assert!(!gone);
    let m = json_of(&marked);
    assert_eq!(m["metadata"]["deletionGracePeriodSeconds"], 30);
    assert!(m["metadata"]["deletionTimestamp"].is_string());
    client.get(pods, "default", "running").await?;
    let now = DeleteParams { grace_period_seconds: Some(0), ..Default::default() };
    let (_, gone) = client.delete(pods, "default", "running", &now).await?;
    assert!(gone);
    assert_eq!(client.get(pods, "default", "running").await.expect_err("gone").reason, Reason::NotFound);

    // Preconditions.
    let created = client.create(pods, "default", body(&pod("pre"))).await?;
    let wrong = DeleteParams { uid: "not-the-uid".into(), ..Default::default() };
    let e = client.delete(pods, "default", "pre", &wrong).await.expect_err("uid");
    assert_eq!(e.reason, Reason::Conflict);
    let stale = DeleteParams { resource_version: "1".into(), ..Default::default() };
    assert_eq!(client.delete(pods, "default", "pre", &stale).await.expect_err("rv").reason, Reason::Conflict);
    let right = DeleteParams { resource_version: created.resource_version.clone(), ..Default::default() };
    assert!(client.delete(pods, "default", "pre", &right).await?.1);

    // Finalizers hold the object until they are removed.
    let cms = lookup("configmaps")?;
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "held", "finalizers": ["example.com/hold"]}});
    client.create(cms, "default", body(&cm)).await?;
    let (held, gone) = client.delete(cms, "default", "held", &DeleteParams::default()).await?;
    assert!(!gone);
    assert!(json_of(&held)["metadata"]["deletionTimestamp"].is_string());
    client.patch(cms, "default", "held", &json!({"metadata": {"finalizers": null}}), false).await?;
    assert_eq!(client.get(cms, "default", "held").await.expect_err("gone").reason, Reason::NotFound);

    // Orphan and Foreground deletion leave their finalizers for the garbage collector.
    client
        .create(cms, "default", body(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fg"}})))
        .await?;
    let fg = DeleteParams { propagation_policy: Some("Foreground".into()), ..Default::default() };
    let (o, gone) = client.delete(cms, "default", "fg", &fg).await?;
    assert!(!gone);
    assert_eq!(json_of(&o)["metadata"]["finalizers"], json!(["foregroundDeletion"]));
    Ok(())
}

#[tokio::test]
async fn bind_assigns_a_node_once() -> anyhow::Result<()> {
    let (_server, client) = setup().await?;
    let pods = lookup("pods")?;
    client.create(pods, "default", body(&pod("b"))).await?;
    let bound = json_of(&client.bind("default", "b", "node-a").await?);
    assert_eq!(bound["spec"]["nodeName"], "node-a");
    let cond = bound["status"]["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .find(|c| c["type"] == "PodScheduled")
        .cloned();
    assert_eq!(cond.expect("PodScheduled")["status"], "True");
    let e = client.bind("default", "b", "node-b").await.expect_err("already bound");
    assert_eq!(e.reason, Reason::Conflict);
    assert!(e.message.contains("already assigned to node \"node-a\""), "{}", e.message);
    Ok(())
}

#[tokio::test]
async fn services_get_a_cluster_ip_from_the_range_and_release_it() -> anyhow::Result<()> {
    let server = TestApiserver::start_with(|a| a.service_cluster_ip_range = "10.99.0.0/28".into()).await?;
    let client = Client::new(&server.url())?;
    let svcs = lookup("services")?;
    let svc = |name: &str, ip: &str| {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"clusterIP": ip, "selector": {"app": "web"}, "ports": [{"port": 80}]}})
    };
    let a = json_of(&client.create(svcs, "default", body(&svc("a", ""))).await?);
    let ip = a["spec"]["clusterIP"].as_str().expect("ip").to_string();
    assert!(ip.starts_with("10.99.0."), "{ip}");
    let e = client.create(svcs, "default", body(&svc("b", &ip))).await.expect_err("taken");
    assert_eq!(e.reason, Reason::Invalid);
    assert!(e.message.contains("already allocated"), "{}", e.message);
    client.delete(svcs, "default", "a", &DeleteParams::default()).await?;
    let b = json_of(&client.create(svcs, "default", body(&svc("b", &ip))).await?);
    assert_eq!(b["spec"]["clusterIP"], ip.as_str());
    let e = client.create(svcs, "default", body(&svc("c", "10.1.2.3"))).await.expect_err("out of range");
    assert_eq!(e.reason, Reason::Invalid);
    Ok(())
}

#[tokio::test]
async fn node_ports_are_allocated_kept_refused_when_taken_and_released() -> anyhow::Result<()> {
    let server = TestApiserver::start_with(|a| a.service_node_port_range = "30100-30104".into()).await?;
    let client = Client::new(&server.url())?;
    let svcs = lookup("services")?;
    let svc = |name: &str, kind: &str, node_port: Option<i64>| {
        let mut port = json!({"port": 80});
        if let Some(np) = node_port {
            port["nodePort"] = np.into();
        }
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": kind, "selector": {"app": "web"}, "ports": [port]}})
    };
    let node_port = |v: &Value| v["spec"]["ports"][0]["nodePort"].as_i64();
    // Picked from the range; an explicit free one is honoured.
    let a = json_of(&client.create(svcs, "default", body(&svc("a", "NodePort", None))).await?);
    let picked = node_port(&a).expect("a node port");
    assert!((30100..=30104).contains(&picked), "{picked}");
    let free = (30100..=30104).find(|p| *p != picked).expect("a free port");
    let b = json_of(&client.create(svcs, "default", body(&svc("b", "NodePort", Some(free)))).await?);
    assert_eq!(node_port(&b), Some(free));
    // Taken, or outside the range: refused with the field and the reason.
    let e = client.create(svcs, "default", body(&svc("c", "NodePort", Some(free)))).await.expect_err("taken");
    assert_eq!(e.reason, Reason::Invalid);
    assert_eq!(
        e.message,
        format!(
            "Service \"c\" is invalid: spec.ports[0].nodePort: Invalid value: {free}: provided port is already allocated"
        )
    );
    let e = client.create(svcs, "default", body(&svc("c", "NodePort", Some(31000)))).await.expect_err("outside");
    assert!(
        e.message.contains("provided port is not in the valid range. The range of valid ports is 30100-30104"),
        "{}",
        e.message
    );
    // An update that leaves the node port out keeps it.
    let mut update = svc("a", "NodePort", None);
    update["spec"]["ports"][0]["targetPort"] = 8080.into();
    let a2 = json_of(&client.update(svcs, "default", "a", body(&update)).await?);
    assert_eq!(node_port(&a2), Some(picked));
    // A type change to ClusterIP releases it: another Service may take it.
    let a3 = json_of(&client.update(svcs, "default", "a", body(&svc("a", "ClusterIP", None))).await?);
    assert_eq!(node_port(&a3), None);
    client.create(svcs, "default", body(&svc("d", "NodePort", Some(picked)))).await?;
    // Deleting a Service releases its port.
    client.delete(svcs, "default", "b", &DeleteParams::default()).await?;
    let e2 = json_of(&client.create(svcs, "default", body(&svc("e", "NodePort", Some(free)))).await?);
    assert_eq!(node_port(&e2), Some(free));
    // Back to NodePort: a port is picked again, never one that is held.
    let a4 = json_of(&client.update(svcs, "default", "a", body(&svc("a", "NodePort", None))).await?);
    let again = node_port(&a4).expect("a node port");
    assert!(again != picked && again != free && (30100..=30104).contains(&again), "{again}");
    // Headless Services get no IP.
    let headless = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "h"},
        "spec": {"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"port": 80}]}});
    let h = json_of(&client.create(svcs, "default", body(&headless)).await?);
    assert_eq!(h["spec"]["clusterIP"], "None");
    Ok(())
}

#[tokio::test]
async fn the_kubernetes_service_points_at_the_apiserver() -> anyhow::Result<()> {
    let server = TestApiserver::start_with(|a| a.service_cluster_ip_range = "10.98.0.0/24".into()).await?;
    let client = Client::new(&server.url())?;
    let svcs = lookup("services")?;
    let svc = rkube_testkit::wait_for(std::time::Duration::from_secs(10), || async {
        client.get(svcs, "default", "kubernetes").await.is_ok()
    })
    .await;
    assert!(svc.is_ok(), "no kubernetes service");
    let svc = json_of(&client.get(svcs, "default", "kubernetes").await?);
    assert_eq!(svc["spec"]["clusterIP"], "10.98.0.1");
    let port = server.url().rsplit(':').next().unwrap_or_default().parse::<i64>()?;
    assert_eq!(svc["spec"]["ports"], json!([{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]));
    assert_eq!(svc["metadata"]["labels"]["component"], "apiserver");
    // Bound to loopback with nothing advertised: no endpoints to give pods.
    assert_eq!(client.get(lookup("endpoints")?, "default", "kubernetes").await.unwrap_err().reason, Reason::NotFound);
    Ok(())
}

#[tokio::test]
async fn health_metrics_and_version_are_served_on_the_api_port() -> anyhow::Result<()> {
    let (server, client) = setup().await?;
    client.create(lookup("pods")?, "default", body(&pod("m"))).await?;
    for path in ["/healthz", "/readyz", "/livez"] {
        let (code, _) = rkube_testkit::http_get(&format!("{}{path}", server.url())).await?;
        assert_eq!(code, 200, "{path}");
    }
    let (_, metrics) = rkube_testkit::http_get(&format!("{}/metrics", server.url())).await?;
    assert!(metrics.contains("apiserver_request_total{verb=\"create\",resource=\"pods\",code=\"201\"} 1"), "{metrics}");
    let v = client.version().await?;
    assert_eq!(v["major"], "1");
    // A watch that is dropped does not keep the server from stopping.
    let _w = client.watch(lookup("pods")?, "", &ListParams::default(), "").await?.next().await;
    Ok(())
}

#[tokio::test]
async fn two_apiservers_share_the_kubernetes_endpoints_and_one_leaving_drops_out() -> anyhow::Result<()> {
    // Endpoints may not be loopback addresses, and an advertised address
    // must be bound: listen on every address, advertise two that nothing
    // sends to.
    let mut a = TestApiserver::start_with(|a| {
        a.bind_address = "0.0.0.0".parse().expect("an address");
        a.advertise_address = "10.99.0.2".parse().ok();
    })
    .await?;
    let b = a.peer(|a| a.advertise_address = "10.99.0.3".parse().ok()).await?;
    let client = Client::new(&b.url())?;
    let addresses = || async {
        let ep = match client.get(lookup("endpoints").expect("endpoints"), "default", "kubernetes").await {
            Ok(ep) => ep,
            Err(e) => return vec![e.message],
        };
        let ep = json_of(&ep);
        let ips = ep["subsets"][0]["addresses"].as_array().cloned().unwrap_or_default();
        ips.iter().filter_map(|a| a["ip"].as_str().map(str::to_string)).collect::<Vec<_>>()
    };
    // b's first reconcile sees a's lease: both, without flapping.
    let both = rkube_testkit::wait_for(std::time::Duration::from_secs(15), || async {
        addresses().await == ["10.99.0.2", "10.99.0.3"]
    })
    .await;
    assert!(both.is_ok(), "endpoints: {:?}", addresses().await);
    // a stops and gives up its lease: b's next reconcile drops it.
    a.stop().await?;
    let one = rkube_testkit::wait_for(master_interval(), || async { addresses().await == ["10.99.0.3"] }).await;
    assert!(one.is_ok(), "endpoints: {:?}", addresses().await);
    Ok(())
}

fn master_interval() -> std::time::Duration {
    rkube_apiserver::master::RECONCILE_INTERVAL + std::time::Duration::from_secs(5)
}
