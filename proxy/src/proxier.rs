//! The sync loop: Service and EndpointSlice events mark Services dirty; one
//! sync at a time (at most one per `--min-sync-period`) rewrites the dirty
//! Services' parts of the table in one nft transaction. The first sync, a
//! re-list, and any failed transaction lead to a full sync that recreates the
//! whole table, so nothing stale survives; failures are retried with back-off
//! while the kernel keeps the last good rules.

use crate::model::{EndpointSliceView, SERVICE_NAME_LABEL, ServicePort, ServiceView, service_ports};
use crate::netlink::{self, Batch};
use crate::rule::Line;
use crate::ruleset::{RuleConfig, Script, render, write_diff, write_skeleton};
use rkube_client::backoff::Backoff;
use rkube_client::metrics::{Counter, Family, Gauge, Histogram, Labels, Registry, exponential_buckets};
use rkube_client::{Event, Informer, ObjectKey};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info};

/// The proxy's metrics.
#[derive(Debug, Clone)]
pub struct ProxyMetrics {
    sync_duration: Histogram,
    syncs: Family<Labels<1>, Counter>,
    last_sync: Gauge,
    services: Gauge,
    endpoints: Gauge,
    chains: Gauge,
    rules: Gauge,
    errors: Counter,
}

impl ProxyMetrics {
    /// Registers the proxy's families on `registry`.
    pub fn register(registry: &Registry) -> ProxyMetrics {
        ProxyMetrics {
            // 1 ms to 32 s.
            sync_duration: registry.histogram(
                "rkube_proxy_sync_proxy_rules_duration_seconds",
                "Time one sync of the nftables rules took",
                exponential_buckets(0.001, 2.0, 16),
            ),
            syncs: registry.counter_family("rkube_proxy_syncs_total", "Successful syncs, by kind (full, partial)"),
            last_sync: registry.gauge(
                "rkube_proxy_sync_proxy_rules_last_timestamp_seconds",
                "When the rules were last synced successfully (Unix time)",
            ),
            services: registry.gauge("rkube_proxy_services", "Service ports programmed"),
            endpoints: registry.gauge("rkube_proxy_endpoints", "Endpoints programmed, over all Service ports"),
            chains: registry.gauge("rkube_proxy_nft_chains", "nftables chains programmed for Services"),
            rules: registry.gauge("rkube_proxy_nft_rules", "nftables rules programmed for Services"),
            errors: registry.counter("rkube_proxy_sync_errors_total", "Syncs whose nftables transaction failed"),
        }
    }
}

/// What `/healthz` and `/readyz` judge by.
#[derive(Debug)]
pub struct Health {
    inner: Mutex<HealthState>,
    timeout: Duration,
}

#[derive(Debug)]
struct HealthState {
    /// A sync has succeeded.
    synced: bool,
    /// The oldest change not yet programmed (the start, before the first sync).
    pending_since: Option<Instant>,
}

impl Health {
    /// Unhealthy once a change has waited `timeout` without a successful sync.
    pub fn new(timeout: Duration) -> Health {
        Health { inner: Mutex::new(HealthState { synced: false, pending_since: Some(Instant::now()) }), timeout }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HealthState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn changed(&self) {
        self.lock().pending_since.get_or_insert_with(Instant::now);
    }

    fn synced(&self) {
        let mut s = self.lock();
        if !s.synced {
            // The first sync: the table holds every Service, as /readyz now says.
            rkube_client::daemon::notify_ready();
        }
        s.synced = true;
        s.pending_since = None;
    }

    /// None when healthy; else why not.
    pub fn problem(&self) -> Option<String> {
        let s = self.lock();
        let waited = s.pending_since.map(|t| t.elapsed()).filter(|w| *w > self.timeout)?;
        Some(format!(
            "changes have waited {:.0}s without a successful sync of the nftables rules",
            waited.as_secs_f64()
        ))
    }

    /// Whether a sync has succeeded.
    pub fn ready(&self) -> bool {
        self.lock().synced
    }
}

/// A Service as programmed: its ports and the size of its part.
#[derive(Debug)]
struct Programmed {
    ports: Vec<ServicePort>,
    chains: usize,
    rules: usize,
}

/// Keeps the table in step with the Services and EndpointSlices.
#[derive(Debug)]
pub struct Proxier {
    cfg: RuleConfig,
    node: String,
    services: Informer<ServiceView>,
    slices: Informer<EndpointSliceView>,
    programmed: HashMap<ObjectKey, Programmed>,
    metrics: ProxyMetrics,
    health: Arc<Health>,
}

/// The sync loop's pending work.
#[derive(Debug, Default)]
struct Pending {
    dirty: HashSet<ObjectKey>,
    full: bool,
}

impl Pending {
    fn is_empty(&self) -> bool {
        !self.full && self.dirty.is_empty()
    }

    fn service(&mut self, ev: Event<ServiceView>) {
        match ev {
            Event::Applied(o) | Event::Deleted(o) => {
                self.dirty.insert(ObjectKey::of(o.as_ref()));
            }
            Event::Restarted => self.full = true,
        }
    }

    fn slice(&mut self, ev: Event<EndpointSliceView>) {
        match ev {
            Event::Applied(o) | Event::Deleted(o) => {
                let meta = &o.metadata;
                if let Some(svc) = meta.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL)) {
                    self.dirty.insert(ObjectKey::new(meta.namespace.as_deref().unwrap_or_default(), svc));
                }
            }
            Event::Restarted => self.full = true,
        }
    }
}

impl Proxier {
    /// A proxier programming `cfg.table` for node `node` from these informers.
    pub fn new(
        cfg: RuleConfig,
        node: String,
        services: Informer<ServiceView>,
        slices: Informer<EndpointSliceView>,
        metrics: ProxyMetrics,
        health: Arc<Health>,
    ) -> Proxier {
        Proxier { cfg, node, services, slices, programmed: HashMap::new(), metrics, health }
    }

    /// Syncs until `shutdown`: a full sync once both caches are filled, then
    /// the dirty Services at most once per `min_sync_period`.
    pub async fn run(mut self, min_sync_period: Duration, shutdown: CancellationToken) {
        let mut svc_events = self.services.subscribe();
        let mut slice_events = self.slices.subscribe();
        let synced = async { self.services.wait_until_synced().await && self.slices.wait_until_synced().await };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = synced => {}
        }
        let mut pending = Pending { full: true, ..Pending::default() };
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let mut last_sync: Option<Instant> = None;
        loop {
            if pending.is_empty() {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    ev = svc_events.recv() => match ev { Some(ev) => pending.service(ev), None => return },
                    ev = slice_events.recv() => match ev { Some(ev) => pending.slice(ev), None => return },
                }
                self.health.changed();
            }
            if let Some(wait) = last_sync.map(|t| (t + min_sync_period).saturating_duration_since(Instant::now()))
                && !wait.is_zero()
            {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            drain(&mut svc_events, &mut slice_events, &mut pending);
            last_sync = Some(Instant::now());
            match self.sync(&mut pending).await {
                Ok(()) => {
                    backoff.reset();
                    pending = Pending::default();
                    self.health.synced();
                }
                Err(e) => {
                    self.metrics.errors.inc();
                    let delay = backoff.next_delay();
                    error!(table = %self.cfg.table, error = %e, retry_in = ?delay, "syncing the nftables rules failed; the kernel keeps the last good rules");
                    pending.full = true;
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// One sync of what `pending` names.
    async fn sync(&mut self, pending: &mut Pending) -> netlink::Result<()> {
        let start = Instant::now();
        let kind = if pending.full { self.sync_full().await? } else { self.sync_partial(&pending.dirty).await? };
        let Some(kind) = kind else { return Ok(()) };
        let took = start.elapsed();
        let m = &self.metrics;
        m.sync_duration.observe(took.as_secs_f64());
        m.syncs.get_or_create(&[("kind", kind.into())]).inc();
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        m.last_sync.set(i64::try_from(now.as_secs()).unwrap_or(i64::MAX));
        let (mut ports, mut endpoints, mut chains, mut rules) = (0, 0, 0, 0);
        for p in self.programmed.values() {
            ports += p.ports.len();
            endpoints += p.ports.iter().map(|sp| sp.endpoints.len()).sum::<usize>();
            chains += p.chains;
            rules += p.rules;
        }
        for (gauge, n) in [(&m.services, ports), (&m.endpoints, endpoints), (&m.chains, chains), (&m.rules, rules)] {
            gauge.set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        if kind == "full" {
            info!(table = %self.cfg.table, services = self.programmed.len(), chains, rules, took = ?took, "programmed every Service");
        } else {
            debug!(table = %self.cfg.table, services = pending.dirty.len(), took = ?took, "programmed the changed Services");
        }
        Ok(())
    }

    /// The ports of the Service `key` as they should be programmed (none if
    /// it is gone).
    fn ports_of(&self, key: &ObjectKey, svc: Option<&ServiceView>) -> Vec<ServicePort> {
        let fetched;
        let svc = match svc {
            Some(s) => s,
            None => match self.services.store().get(key) {
                Some(s) => {
                    fetched = s;
                    fetched.as_ref()
                }
                None => return Vec::new(),
            },
        };
        let slices: Vec<Arc<EndpointSliceView>> = self
            .slices
            .store()
            .by_label(SERVICE_NAME_LABEL, &key.name)
            .into_iter()
            .filter(|s| s.metadata.namespace.as_deref().unwrap_or_default() == key.namespace)
            .collect();
        service_ports(svc, &slices, &self.node)
    }

    /// Recreates the whole table from the caches in one transaction.
    async fn sync_full(&mut self) -> netlink::Result<Option<&'static str>> {
        let mut batch = Batch::new();
        let mut script = Script::new(&self.cfg.table);
        write_skeleton(&self.cfg, &mut script);
        script.encode_labelled(&mut batch);
        script.ops.clear();
        let mut programmed = HashMap::new();
        // Where each Service's messages start, to quote a refused one.
        let mut starts: Vec<(usize, ObjectKey)> = Vec::new();
        for svc in self.services.store().list() {
            let key = ObjectKey::of(svc.as_ref());
            let ports = self.ports_of(&key, Some(&svc));
            if ports.is_empty() {
                continue;
            }
            let r = render(&self.cfg, &ports);
            batch.label(format!("Service {key}"));
            starts.push((batch.len(), key.clone()));
            script.add_rendered(&r);
            script.drain_into(&mut batch);
            programmed.insert(key, Programmed { chains: r.chains.len(), rules: r.rule_count(), ports });
        }
        debug!(table = %self.cfg.table, messages = batch.len(), bytes = batch.bytes(), "sending the full ruleset");
        if let Err(mut e) = apply(batch).await {
            // Name the refused message's line: render its Service again.
            if let netlink::Error::Refused { index, label, .. } = &mut e
                && let Some((start, key)) = starts.iter().rev().find(|(start, _)| start <= index)
                && let Some(p) = programmed.get(key)
            {
                let mut again = Script::new(&self.cfg.table);
                again.add_rendered(&render(&self.cfg, &p.ports));
                if let Some(op) = again.ops.get(*index - start) {
                    *label = format!(": {} (Service {key})", Line(&self.cfg.table, op));
                }
            }
            return Err(e);
        }
        programmed.shrink_to_fit();
        self.programmed = programmed;
        Ok(Some("full"))
    }

    /// Rewrites the parts of the Services in `dirty` that changed, in one
    /// transaction; None when nothing did.
    async fn sync_partial(&mut self, dirty: &HashSet<ObjectKey>) -> netlink::Result<Option<&'static str>> {
        let mut script = Script::new(&self.cfg.table);
        let mut updates = Vec::new();
        for key in dirty {
            let ports = self.ports_of(key, None);
            let old = self.programmed.get(key);
            if old.map_or(ports.is_empty(), |o| o.ports == ports) {
                continue;
            }
            let old = old.map(|o| render(&self.cfg, &o.ports)).unwrap_or_default();
            let new = render(&self.cfg, &ports);
            if !write_diff(&old, &new, &mut script) {
                info!(service = %key, "an affinity timeout changed; recreating the table");
                return self.sync_full().await;
            }
            updates.push((key.clone(), Programmed { chains: new.chains.len(), rules: new.rule_count(), ports }));
        }
        if updates.is_empty() {
            return Ok(None);
        }
        let mut batch = Batch::new();
        script.encode_labelled(&mut batch);
        apply(batch).await?;
        for (key, p) in updates {
            if p.ports.is_empty() {
                self.programmed.remove(&key);
            } else {
                self.programmed.insert(key, p);
            }
        }
        Ok(Some("partial"))
    }
}

/// Sends `batch` to the kernel as one transaction (off the async threads:
/// a full sync keeps the kernel busy for a while inside one send).
pub async fn apply(batch: Batch) -> netlink::Result<()> {
    tokio::task::spawn_blocking(move || netlink::Socket::open()?.apply(batch))
        .await
        .map_err(|e| netlink::Error::Io(std::io::Error::other(e)))?
}

/// Takes every event already queued.
fn drain(
    svc_events: &mut UnboundedReceiver<Event<ServiceView>>,
    slice_events: &mut UnboundedReceiver<Event<EndpointSliceView>>,
    pending: &mut Pending,
) {
    while let Ok(ev) = svc_events.try_recv() {
        pending.service(ev);
    }
    while let Ok(ev) = slice_events.try_recv() {
        pending.slice(ev);
    }
}
