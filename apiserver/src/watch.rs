//! Watch fan-out: one etcd watch per resource, shared by every client.
//!
//! Each resource has a [`Hub`]: a task that follows the resource's etcd prefix
//! (with previous values) and appends each change to a bounded in-memory log
//! of recent events. A client watch from resourceVersion R takes the log's
//! events after R and then follows the log as it grows, so every change is
//! delivered exactly once and in revision order. A watch from before the log's
//! floor (the apiserver restarted, or the log rolled over) is served by a
//! dedicated etcd watch from R instead; if etcd has compacted R away, the
//! answer is `Expired` and the client re-lists.
//!
//! When etcd goes away the hub retries with back-off from the last revision it
//! saw, so client watches stay open and lose nothing.

use crate::codec::{key_parts, with_resource_version};
use crate::registry::selectable_fields;
use crate::storage::Storage;
use bytes::Bytes;
use etcd_client::EventType as EtcdEventType;
use futures::Stream;
use rkube_api::selector::{FieldSelector, Selector, field_value};
use rkube_api::{ApiError, ResourceInfo, Result};
use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Bytes of event payload one hub keeps for late watchers.
const LOG_BUDGET_BYTES: usize = 4 << 20;
/// Events a hub keeps at least (if they fit twice the byte budget).
const LOG_MIN_EVENTS: usize = 256;
/// Events a hub keeps at most.
const LOG_MAX_EVENTS: usize = 2048;

/// One change to one object, as etcd reported it.
#[derive(Debug)]
pub struct Change {
    /// The resource of the object.
    pub info: &'static ResourceInfo,
    /// The revision of the change.
    pub rev: i64,
    /// The object's namespace ("" for cluster-scoped objects).
    pub namespace: String,
    /// The object's name.
    pub name: String,
    /// The object after the change (None for a deletion), resourceVersion set.
    pub new: Option<Bytes>,
    /// The object before the change (None for a creation), resourceVersion
    /// set to the change's revision, as Kubernetes reports deleted objects.
    pub prev: Option<Bytes>,
    /// What selectors see of `new`, parsed once for all watchers.
    new_selectable: OnceLock<Option<Selectable>>,
    /// What selectors see of `prev`, parsed once for all watchers.
    prev_selectable: OnceLock<Option<Selectable>>,
}

impl Change {
    /// A change of `info`'s object `namespace/name` at `rev`.
    pub fn new(
        info: &'static ResourceInfo,
        rev: i64,
        namespace: String,
        name: String,
        new: Option<Bytes>,
        prev: Option<Bytes>,
    ) -> Change {
        Change {
            info,
            rev,
            namespace,
            name,
            new,
            prev,
            new_selectable: OnceLock::new(),
            prev_selectable: OnceLock::new(),
        }
    }

    fn new_selectable(&self) -> Option<&Selectable> {
        self.new_selectable.get_or_init(|| self.new.as_ref().and_then(|b| Selectable::of(self.info, b))).as_ref()
    }

    fn prev_selectable(&self) -> Option<&Selectable> {
        self.prev_selectable.get_or_init(|| self.prev.as_ref().and_then(|b| Selectable::of(self.info, b))).as_ref()
    }

    fn size(&self) -> usize {
        self.new.as_ref().map_or(0, Bytes::len) + self.prev.as_ref().map_or(0, Bytes::len) + 64
    }
}

/// The type of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// The object appeared (or entered the watcher's selection).
    Added,
    /// The object changed and is still selected.
    Modified,
    /// The object was deleted (or left the watcher's selection).
    Deleted,
}

/// One event for one watcher.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    /// What happened.
    pub kind: EventType,
    /// The object's namespace.
    pub namespace: String,
    /// The object's name.
    pub name: String,
    /// The revision of the change.
    pub rev: i64,
    /// The object's JSON (resourceVersion set).
    pub json: Bytes,
}

/// What a watcher selects: a namespace, a label selector and a field selector.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this namespace (None: all).
    pub namespace: Option<String>,
    /// Label selector.
    pub labels: Selector,
    /// Field selector.
    pub fields: FieldSelector,
}

/// What label and field selectors look at in one object: its labels and the
/// values of its resource's selectable fields. Much smaller than the object.
#[derive(Debug, Default)]
pub struct Selectable {
    labels: BTreeMap<String, String>,
    fields: Vec<(&'static str, String)>,
}

impl Selectable {
    /// Parses an object's JSON once; None if it is not valid JSON.
    pub fn of(info: &ResourceInfo, json: &[u8]) -> Option<Selectable> {
        let v: serde_json::Value = serde_json::from_slice(json).ok()?;
        let labels = v
            .pointer("/metadata/labels")
            .and_then(serde_json::Value::as_object)
            .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
            .unwrap_or_default();
        let fields = selectable_fields(info).into_iter().map(|f| (f, field_value(&v, f))).collect();
        Some(Selectable { labels, fields })
    }

    fn field(&self, name: &str) -> &str {
        self.fields.iter().find(|(f, _)| *f == name).map_or("", |(_, v)| v.as_str())
    }
}

impl Filter {
    fn is_everything_in_namespace(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    fn matches(&self, s: &Selectable) -> bool {
        self.labels.matches(&s.labels)
            && self.fields.requirements.iter().all(|r| (s.field(&r.field) == r.value) != r.negated)
    }

    /// Whether an object (namespace + JSON) of `info` is selected.
    pub fn selects(&self, info: &ResourceInfo, namespace: &str, json: &[u8]) -> bool {
        if self.namespace.as_deref().is_some_and(|ns| ns != namespace) {
            return false;
        }
        self.is_everything_in_namespace() || Selectable::of(info, json).is_some_and(|s| self.matches(&s))
    }

    /// The event this watcher sees for a change, if any: an object entering
    /// the selection is ADDED, one leaving it is DELETED (with its old state).
    pub fn event_for(&self, c: &Change) -> Option<WatchEvent> {
        if self.namespace.as_deref().is_some_and(|ns| ns != c.namespace) {
            return None;
        }
        let everything = self.is_everything_in_namespace();
        let new_in = c.new.is_some() && (everything || c.new_selectable().is_some_and(|s| self.matches(s)));
        let old_in = c.prev.is_some() && (everything || c.prev_selectable().is_some_and(|s| self.matches(s)));
        let (kind, json) = match (old_in, new_in) {
            (false, true) => (EventType::Added, c.new.clone()?),
            (true, true) => (EventType::Modified, c.new.clone()?),
            (true, false) => (EventType::Deleted, c.prev.clone()?),
            (false, false) => return None,
        };
        Some(WatchEvent { kind, namespace: c.namespace.clone(), name: c.name.clone(), rev: c.rev, json })
    }
}

struct Log {
    events: VecDeque<Arc<Change>>,
    bytes: usize,
    /// Every change after `floor` is in `events` (or none happened).
    floor: i64,
    /// The last revision the hub has seen.
    head: i64,
}

/// The shared watch of one resource.
pub struct Hub {
    info: &'static ResourceInfo,
    storage: Storage,
    log: Mutex<Log>,
    /// Bumped (to the head revision) whenever the log grows or is reset.
    notify: watch::Sender<i64>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("resource", &self.info.plural).finish()
    }
}

impl Hub {
    /// A hub for `info`; it serves nothing from memory until [`Hub::run`] has
    /// started following etcd.
    pub fn new(info: &'static ResourceInfo, storage: Storage) -> Arc<Hub> {
        let (notify, _) = watch::channel(0);
        Arc::new(Hub {
            info,
            storage,
            log: Mutex::new(Log { events: VecDeque::new(), bytes: 0, floor: i64::MAX, head: 0 }),
            notify,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Follows the resource's etcd prefix until `shutdown`, reconnecting with
    /// back-off from the last revision seen.
    pub async fn run(self: Arc<Hub>, shutdown: CancellationToken) {
        let prefix = self.info.key_prefix();
        let mut backoff = Duration::from_millis(100);
        // Start from the current revision: everything after it is ours.
        let start = loop {
            match self.storage.current_revision().await {
                Ok(rev) => break rev,
                Err(e) => {
                    debug!(resource = self.info.plural, error = %e.message, "watch hub waiting for etcd");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        };
        {
            let mut log = self.lock();
            log.floor = start;
            log.head = start;
        }
        self.notify.send_replace(start);
        loop {
            let from = self.lock().head + 1;
            let outcome = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = self.follow(&prefix, from) => r,
            };
            match outcome {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) if e.reason == rkube_api::Reason::Expired => {
                    // History we had not seen is gone: start over from now and
                    // let every watcher re-list.
                    let now = self.storage.current_revision().await.unwrap_or(from);
                    warn!(resource = self.info.plural, "watch history compacted; watchers must re-list");
                    let mut log = self.lock();
                    log.events.clear();
                    log.bytes = 0;
                    log.floor = now;
                    log.head = now;
                    drop(log);
                    self.notify.send_replace(now);
                }
                Err(e) => {
                    debug!(resource = self.info.plural, error = %e.message, "etcd watch broke; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    async fn follow(&self, prefix: &str, from: i64) -> Result<()> {
        let mut stream = self.storage.watch(prefix, from).await?;
        info!(resource = self.info.plural, from, "following etcd");
        loop {
            let resp = match stream.message().await {
                Ok(Some(r)) => r,
                Ok(None) => return Err(ApiError::unavailable("etcd closed the watch")),
                Err(e) => return Err(ApiError::unavailable(format!("etcd watch: {e}"))),
            };
            if resp.compact_revision() > 0 {
                return Err(ApiError::expired("compacted"));
            }
            if resp.canceled() {
                return Err(ApiError::unavailable(format!("etcd canceled the watch: {}", resp.cancel_reason())));
            }
            let changes: Vec<Change> =
                resp.events().iter().filter_map(|e| to_change(&self.storage, self.info, e)).collect();
            if changes.is_empty() {
                continue;
            }
            self.append(changes);
        }
    }

    fn append(&self, changes: Vec<Change>) {
        let mut log = self.lock();
        for c in changes {
            if c.rev <= log.head {
                continue; // seen before a reconnect
            }
            log.head = c.rev;
            log.bytes += c.size();
            log.events.push_back(Arc::new(c));
        }
        // Over budget (bytes or count), evict the oldest, keeping a minimum
        // of events unless even those exceed twice the byte budget.
        while (log.events.len() > LOG_MIN_EVENTS || log.bytes > 2 * LOG_BUDGET_BYTES)
            && (log.bytes > LOG_BUDGET_BYTES || log.events.len() > LOG_MAX_EVENTS)
        {
            let Some(old) = log.events.pop_front() else { break };
            log.bytes -= old.size();
            log.floor = old.rev;
        }
        let head = log.head;
        drop(log);
        self.notify.send_replace(head);
    }

    /// The events after `after`, or None if they are no longer all in memory.
    fn since(&self, after: i64) -> Option<(Vec<Arc<Change>>, i64)> {
        let log = self.lock();
        if after < log.floor {
            return None;
        }
        let start = log.events.partition_point(|c| c.rev <= after);
        Some((log.events.range(start..).cloned().collect(), log.head))
    }

    /// Streams the changes after revision `after` that `filter` selects, into
    /// `tx`, until the receiver goes away or `shutdown`.
    pub fn subscribe(
        self: &Arc<Hub>,
        after: i64,
        filter: Filter,
        shutdown: CancellationToken,
    ) -> impl Stream<Item = Result<WatchEvent>> + Send + 'static + use<> {
        let (tx, rx) = mpsc::channel(256);
        let hub = self.clone();
        tokio::spawn(async move {
            let result = if hub.since(after).is_some() {
                hub.serve(after, &filter, &tx, &shutdown).await
            } else {
                hub.serve_from_etcd(after, &filter, &tx, &shutdown).await
            };
            if let Err(e) = result {
                let _ = tx.send(Err(e)).await;
            }
        });
        tokio_stream::wrappers::ReceiverStream::new(rx)
    }

    async fn serve(
        &self,
        mut cursor: i64,
        filter: &Filter,
        tx: &mpsc::Sender<Result<WatchEvent>>,
        shutdown: &CancellationToken,
    ) -> Result<()> {
        let mut changed = self.notify.subscribe();
        loop {
            changed.borrow_and_update();
            let Some((batch, head)) = self.since(cursor) else {
                return Err(ApiError::expired(format!(
                    "too old resource version: {cursor}: the watch fell behind the {} event history",
                    self.info.plural
                )));
            };
            for c in batch {
                cursor = c.rev;
                if let Some(ev) = filter.event_for(&c)
                    && tx.send(Ok(ev)).await.is_err()
                {
                    return Ok(());
                }
            }
            cursor = cursor.max(head);
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tx.closed() => return Ok(()),
                r = changed.changed() => if r.is_err() { return Ok(()) },
            }
        }
    }

    /// A dedicated etcd watch from `after`, for watchers older than the log.
    async fn serve_from_etcd(
        &self,
        after: i64,
        filter: &Filter,
        tx: &mpsc::Sender<Result<WatchEvent>>,
        shutdown: &CancellationToken,
    ) -> Result<()> {
        let mut stream = self.storage.watch(&self.info.key_prefix(), after + 1).await?;
        loop {
            let resp = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tx.closed() => return Ok(()),
                r = stream.message() => r,
            };
            let resp = match resp {
                Ok(Some(r)) => r,
                Ok(None) => return Err(ApiError::unavailable("etcd closed the watch")),
                Err(e) => return Err(ApiError::unavailable(format!("etcd watch: {e}"))),
            };
            if resp.compact_revision() > 0 {
                return Err(ApiError::expired(format!(
                    "too old resource version: {after} (current compacted revision: {})",
                    resp.compact_revision()
                )));
            }
            if resp.canceled() {
                return Err(ApiError::unavailable(format!("etcd canceled the watch: {}", resp.cancel_reason())));
            }
            for e in resp.events() {
                if let Some(ev) = to_change(&self.storage, self.info, e).and_then(|c| filter.event_for(&c))
                    && tx.send(Ok(ev)).await.is_err()
                {
                    return Ok(());
                }
            }
        }
    }
}

fn to_change(storage: &Storage, info: &'static ResourceInfo, e: &etcd_client::Event) -> Option<Change> {
    let kv = e.kv()?;
    let key = String::from_utf8_lossy(kv.key()).into_owned();
    let (namespace, name) = key_parts(&key, &info.key_prefix(), info.namespaced);
    let rev = kv.mod_revision();
    // A value that does not decrypt cannot be shown: it is logged (by key
    // and reason, never content) and left out, as a read of it fails.
    let open = |value: &[u8]| match storage.open(&key, value) {
        Ok(plain) => Some(with_resource_version(&plain, rev)),
        Err(err) => {
            warn!(key, error = %err.message, "a watched value does not decrypt");
            None
        }
    };
    let prev = e.prev_kv().and_then(|p| open(p.value()));
    let new = match e.event_type() {
        EtcdEventType::Put => Some(open(kv.value())?),
        EtcdEventType::Delete => None,
    };
    Some(Change::new(info, rev, namespace.to_string(), name.to_string(), new, prev))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(prev: Option<&str>, new: Option<&str>) -> Change {
        let pods = rkube_api::resource::lookup("pods").expect("pods");
        Change::new(
            pods,
            9,
            "default".into(),
            "a".into(),
            new.map(|s| Bytes::from(s.to_string())),
            prev.map(|s| Bytes::from(s.to_string())),
        )
    }

    #[test]
    fn leaving_the_selection_is_a_deletion_with_the_old_state() {
        let filter = Filter { labels: Selector::parse("app=web").expect("ok"), ..Default::default() };
        let web = r#"{"metadata":{"labels":{"app":"web"}}}"#;
        let db = r#"{"metadata":{"labels":{"app":"db"}}}"#;
        assert_eq!(filter.event_for(&change(None, Some(web))).expect("added").kind, EventType::Added);
        assert_eq!(filter.event_for(&change(Some(web), Some(web))).expect("modified").kind, EventType::Modified);
        let left = filter.event_for(&change(Some(web), Some(db))).expect("left");
        assert_eq!(left.kind, EventType::Deleted);
        assert_eq!(left.json, Bytes::from(web));
        assert_eq!(filter.event_for(&change(Some(db), Some(web))).expect("entered").kind, EventType::Added);
        assert!(filter.event_for(&change(Some(db), Some(db))).is_none());
        assert_eq!(filter.event_for(&change(Some(web), None)).expect("deleted").kind, EventType::Deleted);
    }

    #[test]
    fn namespace_filter_applies_before_selectors() {
        let filter = Filter { namespace: Some("other".into()), ..Default::default() };
        assert!(filter.event_for(&change(None, Some("{}"))).is_none());
    }
}
