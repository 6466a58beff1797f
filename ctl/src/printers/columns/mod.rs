//! Each kind's table as rkubectl prints it: the columns and cells rkube-api
//! defines once for rkubectl and for the apiserver's server-side tables
//! ([`rkube_api::table`]), headers upper-cased as kubectl prints them, the
//! `-o wide` columns (`priority > 0`) only when asked for.
//!
//! The helpers `describe` shares with the tables take the k8s-openapi types
//! and defer to rkube-api's.

use crate::printers::table::{Row, Table};
use k8s_openapi::api::core::v1::{Endpoints, Event, Node};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::jiff::Timestamp;
use rkube_api::ResourceInfo;
use rkube_api::table;
use serde_json::Value;

/// A typed object as JSON, for rkube-api's printers.
fn json_of<T: serde::Serialize>(object: &T) -> Value {
    serde_json::to_value(object).unwrap_or_default()
}

/// A label selector as kubectl writes it: `app=web,tier in (a,b),!canary`,
/// requirements sorted by key; `<none>` when empty.
pub fn format_label_selector(ls: &LabelSelector) -> String {
    table::format_label_selector(&json_of(ls))
}

/// The roles a node's labels give it (`node-role.kubernetes.io/<role>`).
pub fn node_roles(node: &Node) -> Vec<String> {
    table::node_roles(&serde_json::json!({"metadata": {"labels": node.metadata.labels}}))
}

/// When an event was first seen, as an age.
pub fn event_first_seen(e: &Event) -> String {
    table::event_first_seen(&json_of(e), Timestamp::now())
}

/// The time an event was last seen, in seconds since the epoch (for sorting).
pub fn event_last_seen_seconds(e: &Event) -> i64 {
    table::event_last_seen(&json_of(e)).map_or(0, |t| t.as_second())
}

/// `10.1.0.2:80,10.1.0.3:80 + 2 more...`: at most three ready addresses
/// (every port's, or only those of ports named in `ports`).
pub fn format_endpoints(ep: &Endpoints, ports: Option<&[&str]>) -> String {
    table::format_endpoints(&json_of(ep), ports)
}

/// `host:port`, an IPv6 host in brackets (Go's `net.JoinHostPort`).
pub fn join_host_port(ip: &str, port: i32) -> String {
    table::join_host_port(ip, port.into())
}

/// The table of `objects`, all of the resource `info`, now; `wide` adds the
/// `-o wide` columns. Events come oldest first, as kubectl sorts them.
pub fn table(info: &ResourceInfo, objects: &[Value], wide: bool) -> anyhow::Result<Table> {
    Ok(table_at(info, objects, wide, Timestamp::now()))
}

/// [`table`] at `now`.
fn table_at(info: &ResourceInfo, objects: &[Value], wide: bool, now: Timestamp) -> Table {
    let columns = table::columns(info.kind);
    let shown: Vec<usize> = (0..columns.len()).filter(|&i| wide || columns[i].priority == 0).collect();
    let headers: Vec<String> = shown.iter().map(|&i| columns[i].name.to_uppercase()).collect();
    let mut out = Table::new(&headers);
    let mut objects: Vec<&Value> = objects.iter().collect();
    if info.kind == "Event" {
        objects.sort_by_key(|e| table::event_last_seen(e));
    }
    for object in objects {
        let metadata = &object["metadata"];
        let cells = table::cells(info.kind, object, now);
        out.rows.push(Row {
            namespace: metadata["namespace"].as_str().unwrap_or_default().to_string(),
            labels: serde_json::from_value(metadata["labels"].clone()).unwrap_or_default(),
            cells: shown.iter().map(|&i| cells[i].to_string()).collect(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::printers::table::Layout;
    use crate::printers::tabwriter::TabWriter;
    use rkube_api::resource::{RESOURCES, lookup};
    use serde_json::json;

    fn now() -> Timestamp {
        "2024-01-01T01:00:00Z".parse().expect("a time")
    }

    fn pods() -> Vec<Value> {
        vec![
            json!({"metadata": {"name": "web-1", "namespace": "default", "labels": {"app": "web"},
                                "creationTimestamp": "2024-01-01T00:55:00Z"},
                   "spec": {"nodeName": "n1", "containers": [{"name": "web"}, {"name": "log"}]},
                   "status": {"phase": "Running", "podIP": "10.1.0.7", "containerStatuses": [
                       {"name": "web", "ready": true, "restartCount": 0, "state": {"running": {}}},
                       {"name": "log", "ready": false, "restartCount": 3,
                        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                        "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-01-01T00:58:00Z"}}}]}}),
            json!({"metadata": {"name": "batch", "namespace": "jobs", "creationTimestamp": "2023-12-30T01:00:00Z",
                                "deletionTimestamp": "2024-01-01T00:59:00Z"},
                   "spec": {"containers": [{"name": "c"}]},
                   "status": {"phase": "Running", "containerStatuses": [
                       {"name": "c", "ready": true, "restartCount": 0, "state": {"running": {}}}]}}),
        ]
    }

    #[test]
    fn pod_list_prints_like_kubectl() {
        let info = lookup("pods").expect("pods");
        let t = table_at(info, &pods(), false, now());
        let text = TabWriter::table().align(&Layout::default().render(&t));
        assert_eq!(
            text,
            "NAME    READY   STATUS             RESTARTS     AGE\n\
             web-1   1/2     CrashLoopBackOff   3 (2m ago)   5m\n\
             batch   1/1     Terminating        0            2d\n"
        );
        let wide = table_at(info, &pods(), true, now());
        let layout = Layout { namespace_column: true, show_labels: true, ..Default::default() };
        let text = TabWriter::table().align(&layout.render(&wide));
        assert_eq!(
            text,
            "NAMESPACE   NAME    READY   STATUS             RESTARTS     AGE   IP         NODE     NOMINATED NODE   READINESS GATES   LABELS\n\
             default     web-1   1/2     CrashLoopBackOff   3 (2m ago)   5m    10.1.0.7   n1       <none>           <none>            app=web\n\
             jobs        batch   1/1     Terminating        0            2d    <none>     <none>   <none>           <none>            <none>\n"
        );
    }

    #[test]
    fn every_kind_has_a_table_and_wide_only_adds_columns() {
        for info in RESOURCES {
            let obj = json!({"apiVersion": info.api_version, "kind": info.kind,
                             "metadata": {"name": "x", "namespace": "default"}});
            let narrow = table_at(info, std::slice::from_ref(&obj), false, now());
            let wide = table_at(info, &[obj], true, now());
            assert_eq!(wide.rows[0].cells.len(), wide.headers.len(), "{}", info.kind);
            assert_eq!(narrow.rows[0].cells.len(), narrow.headers.len(), "{}", info.kind);
            assert!(narrow.headers.iter().all(|h| wide.headers.contains(h)), "{}", info.kind);
            if info.kind != "Event" {
                assert_eq!(narrow.headers[0], "NAME", "{}", info.kind);
                assert_eq!(narrow.rows[0].cells[0], "x", "{}", info.kind);
            }
        }
    }

    #[test]
    fn headers_are_kube_apiserver_columns_upper_cased() {
        let headers = |word: &str, wide: bool| table_at(lookup(word).expect(word), &[], wide, now()).headers.join(" ");
        assert_eq!(headers("deploy", false), "NAME READY UP-TO-DATE AVAILABLE AGE");
        assert_eq!(headers("deploy", true), "NAME READY UP-TO-DATE AVAILABLE AGE CONTAINERS IMAGES SELECTOR");
        assert_eq!(headers("svc", false), "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE");
        assert_eq!(headers("ev", false), "LAST SEEN TYPE REASON OBJECT MESSAGE");
        assert_eq!(headers("limits", false), "NAME CREATED AT");
    }

    #[test]
    fn events_are_sorted_by_when_they_were_last_seen() {
        let event = |name: &str, last: &str| {
            json!({"metadata": {"name": name}, "involvedObject": {"kind": "Pod", "name": name},
                   "lastTimestamp": last, "message": name})
        };
        let events = [event("late", "2024-01-01T00:50:00Z"), event("early", "2024-01-01T00:10:00Z")];
        let t = table_at(lookup("events").expect("events"), &events, false, now());
        assert_eq!(t.rows.iter().map(|r| r.cells[4].as_str()).collect::<Vec<_>>(), ["early", "late"]);
        assert_eq!(t.rows[0].cells[0], "50m");
    }

    #[test]
    fn describe_helpers_take_typed_objects() {
        let ls: LabelSelector = serde_json::from_value(json!({"matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}]}))
        .expect("selector");
        assert_eq!(format_label_selector(&ls), "app=web,tier in (a,b)");
        assert_eq!(format_label_selector(&LabelSelector::default()), "<none>");
        let n: Node = serde_json::from_value(json!({"metadata": {"name": "n",
            "labels": {"node-role.kubernetes.io/control-plane": ""}}}))
        .expect("node");
        assert_eq!(node_roles(&n), ["control-plane"]);
        let ep: Endpoints = serde_json::from_value(json!({"metadata": {"name": "web"},
            "subsets": [{"addresses": [{"ip": "fd00::7"}], "ports": [{"name": "http", "port": 80}]}]}))
        .expect("endpoints");
        assert_eq!(format_endpoints(&ep, Some(&["http"])), "[fd00::7]:80");
        assert_eq!(join_host_port("10.0.0.1", 53), "10.0.0.1:53");
        let e: Event = serde_json::from_value(json!({"metadata": {"name": "e"}, "involvedObject": {},
            "lastTimestamp": "2024-01-01T00:00:10Z"}))
        .expect("event");
        assert_eq!(event_last_seen_seconds(&e), 1_704_067_210);
    }
}
