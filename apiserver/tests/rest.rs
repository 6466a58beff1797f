//! The Kubernetes REST front-end against a real etcd, with bad input: bodies
//! of the wrong kind, unknown fields, wrong types, bad patches, oversized
//! bodies, and extreme values in every numeric field of DeleteOptions and of
//! pod specs. Each gets a `metav1.Status` naming the field and the problem,
//! nothing is stored, and the server goes on answering.

use rkube_testkit::{HttpResponse, TestApiserver, http_request};
use serde_json::{Value, json};

const JSON: (&str, &str) = ("Content-Type", "application/json");

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "rkube/toolbox:1.0"}]}})
}

struct Api {
    server: TestApiserver,
}

impl Api {
    async fn start() -> anyhow::Result<Api> {
        Ok(Api { server: TestApiserver::start().await? })
    }

    async fn call(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
        let url = format!("{}{path}", self.server.url());
        http_request(method, &url, headers, body).await.unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    async fn post(&self, path: &str, body: &Value) -> HttpResponse {
        self.call("POST", path, &[JSON], &serde_json::to_vec(body).unwrap()).await
    }

    async fn get(&self, path: &str) -> HttpResponse {
        self.call("GET", path, &[], b"").await
    }

    async fn pod_names(&self) -> Vec<String> {
        let list = self.get("/api/v1/namespaces/default/pods").await.json();
        let items = list["items"].as_array().cloned().unwrap_or_default();
        items.iter().filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string)).collect()
    }
}

/// A `Status` failure with `code` whose message contains every one of `words`.
#[track_caller]
fn assert_status(r: &HttpResponse, code: u16, words: &[&str]) {
    let status = r.json();
    let text = String::from_utf8_lossy(&r.body);
    assert_eq!(
        (r.code, status["kind"].as_str(), status["code"].as_u64()),
        (code, Some("Status"), Some(code.into())),
        "{text}"
    );
    let message = status["message"].as_str().unwrap_or_default();
    for w in words {
        assert!(message.contains(w), "{w:?} not in {message:?}");
    }
}

#[tokio::test]
async fn bad_bodies_get_a_status_naming_the_field_and_store_nothing() -> anyhow::Result<()> {
    let api = Api::start().await?;
    let pods = "/api/v1/namespaces/default/pods";

    // A body of the wrong kind.
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}});
    assert_status(&api.post(pods, &svc).await, 400, &["Service"]);
    // Not JSON at all, and the wrong type for a field.
    assert_status(&api.call("POST", pods, &[JSON], b"{\"kind\": ").await, 400, &[]);
    let mut wrong_type = pod("wrong-type");
    wrong_type["spec"]["containers"] = json!("c");
    let r = api.post(pods, &wrong_type).await;
    assert!(matches!(r.code, 400 | 422), "{r:?}");
    assert!(r.json()["message"].as_str().unwrap_or_default().contains("containers"), "{:?}", r.json());
    // Unknown fields: Strict refuses naming them; Warn (the default) stores without them and warns.
    let mut unknown = pod("unknown");
    unknown["spec"]["bogus"] = json!(1);
    let strict = api.post(&format!("{pods}?fieldValidation=Strict"), &unknown).await;
    assert_status(&strict, 400, &["unknown field", "spec.bogus"]);
    assert!(api.pod_names().await.is_empty());
    let warned = api.post(pods, &unknown).await;
    assert_eq!(warned.code, 201, "{warned:?}");
    assert!(warned.header("warning").iter().any(|w| w.contains("spec.bogus")), "{:?}", warned.headers);
    assert!(warned.json()["spec"].get("bogus").is_none());
    // An unknown fieldValidation value, and an unknown content type.
    let r = api.post(&format!("{pods}?fieldValidation=Loud"), &pod("x")).await;
    assert_status(&r, 400, &["fieldValidation"]);
    let r = api.call("POST", pods, &[("Content-Type", "text/csv")], b"a,b").await;
    assert_status(&r, 415, &["text/csv"]);
    // A body beyond the 3 MiB limit.
    let mut huge = pod("huge");
    huge["metadata"]["annotations"] = json!({"big": "x".repeat(4 << 20)});
    assert_status(&api.post(pods, &huge).await, 413, &["too large"]);
    // Protobuf that is not a Kubernetes object.
    let r = api.call("POST", pods, &[("Content-Type", "application/vnd.kubernetes.protobuf")], b"k8s\0\x0a\xff").await;
    assert_status(&r, 400, &[]);
    assert_eq!(api.pod_names().await, ["unknown"]);

    // Bad patches: not JSON, a JSON patch on a missing path, a test that fails, an unknown type.
    let one = format!("{pods}/unknown");
    let merge = ("Content-Type", "application/merge-patch+json");
    assert_status(&api.call("PATCH", &one, &[merge], b"{not json").await, 400, &[]);
    let json_patch = ("Content-Type", "application/json-patch+json");
    let r = api.call("PATCH", &one, &[json_patch], br#"[{"op":"remove","path":"/spec/nothing/here"}]"#).await;
    assert!(matches!(r.code, 400 | 422 | 500) && r.code != 500, "{r:?}");
    let r = api.call("PATCH", &one, &[json_patch], br#"[{"op":"test","path":"/metadata/name","value":"other"}]"#).await;
    assert!(matches!(r.code, 400 | 422), "{r:?}");
    let r = api.call("PATCH", &one, &[("Content-Type", "application/weird-patch")], b"{}").await;
    assert_status(&r, 415, &[]);
    // A strategic patch with an unknown directive.
    let smp = ("Content-Type", "application/strategic-merge-patch+json");
    let r = api.call("PATCH", &one, &[smp], br#"{"spec":{"containers":[{"name":"c","$patch":"explode"}]}}"#).await;
    assert!(matches!(r.code, 400 | 422), "{r:?}");
    // After all that the pod is as it was.
    let stored = api.get(&one).await.json();
    assert_eq!(stored["spec"]["containers"][0]["image"], "rkube/toolbox:1.0");
    assert_eq!(stored["metadata"]["resourceVersion"], warned.json()["metadata"]["resourceVersion"]);
    Ok(())
}

#[tokio::test]
async fn extreme_numbers_in_delete_options_and_pod_specs_never_break_a_request() -> anyhow::Result<()> {
    let api = Api::start().await?;
    let pods = "/api/v1/namespaces/default/pods";
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}});
    assert_eq!(api.post("/api/v1/nodes", &node).await.code, 201);
    let extremes: [Value; 9] = [
        json!(i64::MAX),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(-1),
        json!(0),
        json!(1u64 << 53),
        json!(1e300),
        json!(0.5),
        json!("30"),
    ];

    // DeleteOptions.gracePeriodSeconds on a scheduled pod (which deletes gracefully), in the body.
    for (i, grace) in extremes.iter().enumerate() {
        let name = format!("grace-{i}");
        assert_eq!(api.post(pods, &pod(&name)).await.code, 201);
        let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name}, "target": {"kind": "Node", "name": "n1"}});
        assert_eq!(api.post(&format!("{pods}/{name}/binding"), &binding).await.code, 201);
        let options = json!({"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": grace});
        let r = api.call("DELETE", &format!("{pods}/{name}"), &[JSON], &serde_json::to_vec(&options)?).await;
        match grace.as_i64() {
            Some(g) => {
                assert_eq!(r.code, 200, "grace {grace}: {r:?}");
                let deleted = r.json();
                let recorded = deleted["metadata"]["deletionGracePeriodSeconds"].as_i64().unwrap_or(0);
                // Negative means 1 s; huge values are capped; 0 deletes at once.
                let expected = match g {
                    ..0 => 1,
                    0 => 0,
                    g => g.min(1 << 32),
                };
                if g != 0 {
                    assert_eq!(recorded, expected, "grace {grace}: {deleted}");
                    assert!(deleted["metadata"]["deletionTimestamp"].is_string(), "{deleted}");
                }
            }
            None => assert_status(&r, 400, &["gracePeriodSeconds"]),
        }
    }
    // And in the query.
    assert_eq!(api.post(pods, &pod("q")).await.code, 201);
    for grace in ["9223372036854775807", "-9223372036854775808", "99999999999999999999", "1.5", "x"] {
        let r = api.call("DELETE", &format!("{pods}/q?gracePeriodSeconds={grace}&dryRun=All"), &[], b"").await;
        assert!(matches!(r.code, 200 | 400), "grace {grace}: {r:?}");
        if r.code == 400 {
            assert_status(&r, 400, &["gracePeriodSeconds"]);
        }
    }
    assert!(api.pod_names().await.contains(&"q".to_string()), "dry runs deleted nothing");

    // Every numeric field of a pod spec: stored as given or refused with its path; never a 500.
    let fields: [(&str, &str); 8] = [
        ("/spec/terminationGracePeriodSeconds", "terminationGracePeriodSeconds"),
        ("/spec/activeDeadlineSeconds", "activeDeadlineSeconds"),
        ("/spec/priority", "priority"),
        ("/spec/containers/0/ports", "containerPort"),
        ("/spec/containers/0/livenessProbe", "periodSeconds"),
        ("/spec/containers/0/readinessProbe", "initialDelaySeconds"),
        ("/spec/securityContext", "runAsUser"),
        ("/metadata/generation", "generation"),
    ];
    for (n, (path, field)) in fields.iter().enumerate() {
        for (i, v) in extremes.iter().enumerate() {
            let name = format!("spec-{n}-{i}");
            let mut p = pod(&name);
            let value = match *field {
                "containerPort" => json!([{"containerPort": v}]),
                "periodSeconds" => json!({"exec": {"command": ["true"]}, "periodSeconds": v}),
                "initialDelaySeconds" => json!({"exec": {"command": ["true"]}, "initialDelaySeconds": v}),
                "runAsUser" => json!({"runAsUser": v}),
                _ => v.clone(),
            };
            *pointer_mut(&mut p, path) = value;
            let r = api.post(pods, &p).await;
            assert!(matches!(r.code, 201 | 400 | 422), "{field}={v}: {r:?}");
            if r.code != 201 {
                let message = r.json()["message"].as_str().unwrap_or_default().to_string();
                assert!(message.contains(field), "{field}={v}: {message}");
                assert!(!api.pod_names().await.contains(&name), "refused {name} is not stored");
            }
        }
    }
    // The server still answers.
    assert_eq!(api.get("/readyz").await.code, 200);
    Ok(())
}

/// The value at a JSON pointer, created (as an object member) if missing.
fn pointer_mut<'a>(v: &'a mut Value, path: &str) -> &'a mut Value {
    path.trim_start_matches('/').split('/').fold(v, |v, key| match v {
        Value::Array(items) => &mut items[key.parse::<usize>().expect("an index")],
        _ => v.as_object_mut().expect("an object").entry(key).or_insert(Value::Null),
    })
}

#[tokio::test]
async fn older_versions_are_served_by_conversion_from_the_stored_one() -> anyhow::Result<()> {
    let api = Api::start().await?;
    // autoscaling/v1 in, autoscaling/v2 stored, either version out.
    let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1, "maxReplicas": 4, "targetCPUUtilizationPercentage": 60}});
    let created = api.post("/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers", &v1).await;
    assert_eq!(created.code, 201, "{created:?}");
    assert_eq!(created.json()["apiVersion"], "autoscaling/v1");
    assert_eq!(created.json()["spec"]["targetCPUUtilizationPercentage"], 60);
    let v2 = api.get("/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers/web").await.json();
    assert_eq!(v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 60, "{v2}");
    // A merge patch in v1 changes the v2 metric; the list in v1 shows it.
    let patch = ("Content-Type", "application/merge-patch+json");
    let path = "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers/web";
    let r = api.call("PATCH", path, &[patch], br#"{"spec":{"targetCPUUtilizationPercentage":75}}"#).await;
    assert_eq!((r.code, &r.json()["spec"]["targetCPUUtilizationPercentage"]), (200, &json!(75)), "{r:?}");
    let list = api.get("/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers").await.json();
    assert_eq!(list["apiVersion"], "autoscaling/v1");
    assert_eq!(list["kind"], "HorizontalPodAutoscalerList");
    assert_eq!(list["items"][0]["spec"]["targetCPUUtilizationPercentage"], 75, "{list}");
    let v2 = api.get("/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers/web").await.json();
    assert_eq!(v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 75, "{v2}");

    // events.k8s.io/v1 and core v1 Events are one store.
    let event = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e1"},
        "eventTime": "2026-12-05T08:00:00.000000Z", "reportingController": "example.com/ctl",
        "reportingInstance": "ctl-1", "action": "Check", "reason": "Checked", "type": "Normal",
        "regarding": {"kind": "Pod", "name": "p", "namespace": "default"}, "note": "all good"});
    let created = api.post("/apis/events.k8s.io/v1/namespaces/default/events", &event).await;
    assert_eq!(created.code, 201, "{created:?}");
    assert_eq!(created.json()["note"], "all good");
    let core = api.get("/api/v1/namespaces/default/events/e1").await.json();
    assert_eq!((core["message"].as_str(), core["involvedObject"]["name"].as_str()), (Some("all good"), Some("p")));
    assert_eq!(core["reportingComponent"], "example.com/ctl");
    let wrong = json!({"apiVersion": "apps/v1", "kind": "Event", "metadata": {"name": "e2"}});
    let r = api.post("/apis/events.k8s.io/v1/namespaces/default/events", &wrong).await;
    assert_status(&r, 400, &["apps/v1"]);
    // Discovery lists both autoscaling versions (v2 preferred) and the events group.
    let autoscaling = api.get("/apis/autoscaling").await.json();
    assert_eq!(autoscaling["preferredVersion"]["version"], "v2");
    assert_eq!(autoscaling["versions"].as_array().map(Vec::len), Some(2));
    let events = api.get("/apis/events.k8s.io/v1").await.json();
    assert_eq!(events["resources"][0]["kind"], "Event");
    Ok(())
}
