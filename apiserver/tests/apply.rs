//! Server-side apply against a real etcd, through the REST API as kubectl
//! uses it: managedFields per manager, conflicts and force, fields removed
//! when their applier drops them, Update entries for other writes, and gRPC
//! writes that keep one entry however often they come.

use rkube_api::resource::lookup;
use rkube_client::Client;
use rkube_testkit::{HttpResponse, TestApiserver, http_request};
use serde_json::{Value, json};

const APPLY: (&str, &str) = ("Content-Type", "application/apply-patch+yaml");
const MERGE: (&str, &str) = ("Content-Type", "application/merge-patch+json");
const JSON: (&str, &str) = ("Content-Type", "application/json");
const WEB: &str = "/apis/apps/v1/namespaces/default/deployments/web";

/// The Deployment `web` as a YAML apply configuration.
fn web(labels: &str, replicas: Option<u32>, image: &str) -> String {
    let replicas = replicas.map(|r| format!("  replicas: {r}\n")).unwrap_or_default();
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels: {{{labels}}}\nspec:\n{replicas}  \
         selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      \
         containers:\n      - name: main\n        image: {image}\n"
    )
}

async fn call(server: &TestApiserver, method: &str, path: &str, header: (&str, &str), body: &[u8]) -> HttpResponse {
    let url = format!("{}{path}", server.url());
    http_request(method, &url, &[header], body).await.unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// The managedFields entry of `manager` with `operation`, if there is one.
fn entry(obj: &Value, manager: &str, operation: &str) -> Option<Value> {
    let list = obj["metadata"]["managedFields"].as_array()?;
    list.iter().find(|e| e["manager"] == manager && e["operation"] == operation).cloned()
}

#[track_caller]
fn ok(r: &HttpResponse) -> Value {
    assert!(matches!(r.code, 200 | 201), "{}: {}", r.code, String::from_utf8_lossy(&r.body));
    r.json()
}

#[tokio::test]
async fn apply_tracks_owners_refuses_conflicts_and_removes_dropped_fields() -> anyhow::Result<()> {
    let server = TestApiserver::start().await?;
    let apply = |manager: &str, force: bool| format!("{WEB}?fieldManager={manager}&force={force}");

    // An apply of a missing object creates it, owned by its applier.
    let r = call(
        &server,
        "PATCH",
        &apply("alice", false),
        APPLY,
        web("app: web, tier: front", Some(2), "nginx:1").as_bytes(),
    )
    .await;
    assert_eq!(r.code, 201, "an apply that creates answers Created: {}", String::from_utf8_lossy(&r.body));
    let created = r.json();
    assert_eq!(created["spec"]["replicas"], 2);
    let alice = entry(&created, "alice", "Apply").expect("alice's entry");
    assert_eq!((alice["apiVersion"].as_str(), alice["fieldsType"].as_str()), (Some("apps/v1"), Some("FieldsV1")));
    assert!(alice["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{alice}");
    let fields = &alice["fieldsV1"];
    assert_eq!(fields["f:spec"]["f:replicas"], json!({}));
    assert_eq!(fields["f:metadata"]["f:labels"]["f:tier"], json!({}));
    let main = &fields["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"main\"}"];
    assert_eq!((&main["."], &main["f:image"]), (&json!({}), &json!({})), "{fields}");
    assert!(fields["f:metadata"].get("f:name").is_none(), "{fields}");
    assert_eq!(created["metadata"]["managedFields"].as_array().map(Vec::len), Some(1));

    // The same manager changes its own field freely.
    let body = web("app: web, tier: front", Some(3), "nginx:1");
    let again = ok(&call(&server, "PATCH", &apply("alice", false), APPLY, body.as_bytes()).await);
    assert_eq!(again["spec"]["replicas"], 3);

    // Another manager with another value conflicts, and nothing changes.
    let bob = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 5\n";
    let r = call(&server, "PATCH", &apply("bob", false), APPLY, bob.as_bytes()).await;
    let status = r.json();
    assert_eq!((r.code, status["reason"].as_str()), (409, Some("Conflict")), "{status}");
    assert_eq!(status["message"], "Apply failed with 1 conflict: conflict with \"alice\": .spec.replicas");
    assert_eq!(
        status["details"]["causes"],
        json!([{"reason": "FieldManagerConflict", "message": "conflict with \"alice\"", "field": ".spec.replicas"}])
    );
    assert_eq!(ok(&call(&server, "GET", WEB, JSON, b"").await)["spec"]["replicas"], 3);

    // Forced, the field and its ownership move to bob.
    let forced = ok(&call(&server, "PATCH", &apply("bob", true), APPLY, bob.as_bytes()).await);
    assert_eq!(forced["spec"]["replicas"], 5);
    let alice = entry(&forced, "alice", "Apply").expect("alice keeps her other fields");
    assert!(alice["fieldsV1"]["f:spec"].get("f:replicas").is_none(), "{alice}");
    assert_eq!(entry(&forced, "bob", "Apply").expect("bob's entry")["fieldsV1"]["f:spec"]["f:replicas"], json!({}));

    // Alice applies without the tier label (and the replicas bob took): the
    // label goes, the replicas stay bob's.
    let dropped =
        ok(&call(&server, "PATCH", &apply("alice", false), APPLY, web("app: web", None, "nginx:1").as_bytes()).await);
    assert_eq!(dropped["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(dropped["spec"]["replicas"], 5);

    // A merge patch by another manager is recorded as its Update.
    let label = json!({"metadata": {"labels": {"team": "blue"}}}).to_string();
    let patched = ok(&call(&server, "PATCH", &format!("{WEB}?fieldManager=carol"), MERGE, label.as_bytes()).await);
    let carol = entry(&patched, "carol", "Update").expect("carol's Update entry");
    assert_eq!(carol["fieldsV1"], json!({"f:metadata": {"f:labels": {"f:team": {}}}}));

    // Apply needs a manager; force is for apply only.
    let r = call(&server, "PATCH", WEB, APPLY, bob.as_bytes()).await;
    assert_eq!((r.code, r.json()["message"].as_str()), (400, Some("fieldManager is required for apply requests")));
    let r = call(&server, "PATCH", &format!("{WEB}?fieldManager=carol&force=true"), MERGE, label.as_bytes()).await;
    assert_eq!(r.code, 400);
    Ok(())
}

#[tokio::test]
async fn other_writes_keep_one_entry_per_manager_and_may_reset_them() -> anyhow::Result<()> {
    let server = TestApiserver::start().await?;
    let path = "/api/v1/namespaces/default/configmaps";
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"k": "1"}});
    let created =
        ok(&call(&server, "POST", &format!("{path}?fieldManager=creator"), JSON, cm.to_string().as_bytes()).await);
    let creator = entry(&created, "creator", "Update").expect("the creator's entry");
    assert_eq!(creator["fieldsV1"], json!({"f:data": {"f:k": {}}}));

    // gRPC writes carry no manager: one `unknown` entry, however many writes.
    let client = Client::new(&server.url())?;
    let maps = lookup("configmaps")?;
    for v in ["2", "3", "4"] {
        client.patch(maps, "default", "cfg", &json!({"data": {"k": v}}), false).await?;
    }
    let got = ok(&call(&server, "GET", &format!("{path}/cfg"), JSON, b"").await);
    assert_eq!(got["data"]["k"], "4");
    let list = got["metadata"]["managedFields"].as_array().cloned().unwrap_or_default();
    assert_eq!(list.len(), 1, "the creator lost data.k to the gRPC writer: {list:?}");
    assert_eq!((list[0]["manager"].as_str(), list[0]["operation"].as_str()), (Some("unknown"), Some("Update")));

    // A PUT may set managedFields to [] to clear them; the PUT's own change
    // is then all that is recorded.
    let mut put = got.clone();
    put["metadata"]["managedFields"] = json!([]);
    put["data"]["other"] = "x".into();
    let reset =
        ok(&call(&server, "PUT", &format!("{path}/cfg?fieldManager=editor"), JSON, put.to_string().as_bytes()).await);
    let list = reset["metadata"]["managedFields"].as_array().cloned().unwrap_or_default();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(
        (list[0]["manager"].as_str(), &list[0]["fieldsV1"]),
        (Some("editor"), &json!({"f:data": {"f:other": {}}}))
    );
    Ok(())
}
