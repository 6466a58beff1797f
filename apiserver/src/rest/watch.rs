//! Watches over HTTP: newline-delimited `WatchEvent`s, as kube-apiserver
//! streams them (one JSON object per line, flushed per event).

use super::query::Query;
use crate::registry::{ListOptions, Registry};
use crate::watch::{EventType, WatchEvent};
use axum::body::Bytes;
use futures::{Stream, StreamExt};
use rkube_api::{ApiError, Reason, ResourceInfo, Result};
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

/// How long a watch lasts when the client sets no `timeoutSeconds`
/// (kube-apiserver's `--min-request-timeout`).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// The watch-specific parameters of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchRequest {
    /// `sendInitialEvents`: the current objects, then a bookmark that ends
    /// them (the WatchList protocol, kubectl ≥ 1.35).
    send_initial: bool,
    /// `timeoutSeconds`, or the default.
    timeout: Duration,
}

impl WatchRequest {
    /// Reads and checks the parameters, as kube-apiserver validates them.
    pub fn from_query(q: &Query) -> Result<WatchRequest> {
        let send_initial = q.flag("sendInitialEvents")?;
        let bookmarks = q.flag("allowWatchBookmarks")?;
        if send_initial && (q.get("resourceVersionMatch") != "NotOlderThan" || !bookmarks) {
            return Err(invalid(
                "sendInitialEvents",
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan and allowWatchBookmarks to true",
            ));
        }
        let timeout = match q.int("timeoutSeconds")? {
            Some(s) if s < 0 => return Err(invalid("timeoutSeconds", "must be zero or positive")),
            Some(s) if s > 0 => Duration::from_secs(s.unsigned_abs()),
            _ => DEFAULT_TIMEOUT,
        };
        Ok(WatchRequest { send_initial, timeout })
    }
}

fn invalid(field: &str, message: &str) -> ApiError {
    ApiError::invalid(
        "ListOptions",
        "",
        vec![rkube_api::Cause { kind: "FieldValueInvalid".into(), field: field.into(), message: message.into() }],
    )
}

/// The event stream of a watch. Errors before the first event (a bad
/// selector) are returned; a resourceVersion too old to watch from becomes
/// one `ERROR` event, as kube-apiserver sends it.
pub async fn stream(
    registry: Arc<Registry>,
    info: &'static ResourceInfo,
    view: super::View,
    namespace: String,
    opts: ListOptions,
    req: WatchRequest,
    out: super::Output,
) -> Result<impl Stream<Item = std::result::Result<Bytes, Infallible>> + Send + 'static> {
    let mut encoder = Encoder { info, view, out, columns_sent: false };
    let mut head: Vec<Bytes> = Vec::new();
    let mut opts = opts;
    if req.send_initial {
        let list = registry
            .list(info, &namespace, &ListOptions { limit: 0, continue_token: String::new(), ..opts.clone() })
            .await?;
        for o in &list.items {
            head.push(encoder.event("ADDED", &o.json));
        }
        let shown = view.map_or(info, |v| &v.info);
        let end = json!({
            "kind": shown.kind,
            "apiVersion": shown.api_version,
            "metadata": {"resourceVersion": list.rv.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}},
        });
        head.push(line("BOOKMARK", &serde_json::to_vec(&end).expect("a Value always serializes")));
        opts.resource_version = list.rv.to_string();
    }
    let live = match registry.watch(info, &namespace, &opts).await {
        Ok(live) => live.boxed(),
        Err(e) if e.reason == Reason::Expired => futures::stream::iter([Err(e)]).boxed(),
        Err(e) => return Err(e),
    };
    // An error ends the stream after its ERROR event.
    let live = live
        .scan(false, |ended, ev: Result<WatchEvent>| {
            if *ended {
                return std::future::ready(None);
            }
            *ended = ev.is_err();
            std::future::ready(Some(ev))
        })
        .map(move |ev| {
            Ok(match ev {
                Ok(ev) => encoder.event(type_name(ev.kind), &ev.json),
                Err(e) => line("ERROR", &e.to_status_json()),
            })
        });
    let events = futures::stream::iter(head.into_iter().map(Ok)).chain(live);
    Ok(events.take_until(tokio::time::sleep(req.timeout)))
}

fn type_name(kind: EventType) -> &'static str {
    match kind {
        EventType::Added => "ADDED",
        EventType::Modified => "MODIFIED",
        EventType::Deleted => "DELETED",
    }
}

/// `{"type":…,"object":…}\n` around an object's JSON.
fn line(kind: &str, object: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(object.len() + 32);
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"object\":");
    out.extend_from_slice(object);
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

/// Turns events into lines: the object itself, or a one-row Table whose
/// column definitions come with the first event only (as kube-apiserver
/// sends them).
struct Encoder {
    info: &'static ResourceInfo,
    /// The client's version, when it is not the stored one.
    view: super::View,
    out: super::Output,
    columns_sent: bool,
}

impl Encoder {
    fn event(&mut self, kind: &str, json: &Bytes) -> Bytes {
        let super::Output::Table(include) = self.out else {
            return line(kind, &super::view_out(self.view, json));
        };
        let object: Value = serde_json::from_slice(json).unwrap_or(Value::Null);
        let rv = object.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or_default().to_string();
        let table = super::table(self.info, std::slice::from_ref(&object), &rv, "", include, !self.columns_sent);
        self.columns_sent = true;
        line(kind, &table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_list_needs_its_companions_and_timeouts_are_read() {
        let ok = Query::parse(
            "watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=30",
        );
        assert_eq!(
            WatchRequest::from_query(&ok).unwrap(),
            WatchRequest { send_initial: true, timeout: Duration::from_secs(30) }
        );
        let e = WatchRequest::from_query(&Query::parse("watch=1&sendInitialEvents=true")).unwrap_err();
        assert_eq!(e.code(), 422);
        assert_eq!(WatchRequest::from_query(&Query::parse("watch=true")).unwrap().timeout, DEFAULT_TIMEOUT);
        assert_eq!(WatchRequest::from_query(&Query::parse("timeoutSeconds=-1")).unwrap_err().code(), 422);
    }

    #[test]
    fn events_are_one_json_object_per_line() {
        let l = line("ADDED", br#"{"kind":"Pod","metadata":{"name":"p"}}"#);
        assert!(l.ends_with(b"\n"));
        let v: Value = serde_json::from_slice(&l).unwrap();
        assert_eq!(v["type"], "ADDED");
        assert_eq!(v["object"]["metadata"]["name"], "p");
    }
}
