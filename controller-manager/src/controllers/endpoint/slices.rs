//! The EndpointSlice controller (Kubernetes' `pkg/controller/endpointslice`
//! and, for Services without a selector, `endpointslicemirroring`).
//!
//! For each Service, [`desired`] groups its endpoints by port set and cuts
//! each group into slices of at most `--max-endpoints-per-slice`; a
//! Service with a selector but no endpoints keeps one empty placeholder
//! slice, as Kubernetes does. [`reconcile`] pairs the desired slices with
//! the existing ones of the same port set, updating in place, creating what
//! is missing and deleting what is left over, so a pod coming or going
//! rewrites one slice. The slices carry `kubernetes.io/service-name` and
//! `endpointslice.kubernetes.io/managed-by`, and are owned by the Service
//! (the garbage collector removes them with it; this controller also
//! deletes them at once).
//!
//! A controller acting on a cache that does not yet hold its own last
//! writes would create twice: the [`Tracker`] remembers the resourceVersion
//! of every slice it wrote until the cache has caught up, and a reconcile
//! that finds the cache behind waits for it.

use super::endpoints::labels as service_labels;
use super::{PodEndpoint, Port, ServiceIndex, is_external_name, pod_endpoints, selector};
use crate::controllers::pod_state::PodView;
use crate::controllers::{ControllerContext, Error};
use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rkube_client::controller::{Action, controller_ref, spawn_workers};
use rkube_client::informers::{enqueue_all, forward, forward_events};
use rkube_client::{Api, DeleteParams, ObjectKey, Reason, Store, WorkQueue};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

/// The controller's name in `--controllers`.
pub const NAME: &str = "endpointslice";

/// The label naming a slice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming who manages a slice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// `managed-by` of the slices of Services with a selector.
pub const MANAGED_BY_CONTROLLER: &str = "endpointslice-controller.k8s.io";
/// `managed-by` of the slices mirrored from user-written Endpoints.
pub const MANAGED_BY_MIRRORING: &str = "endpointslicemirroring-controller.k8s.io";
/// On Endpoints: do not mirror these.
pub const SKIP_MIRROR_LABEL: &str = "endpointslice.kubernetes.io/skip-mirror";

/// How long the cache may lag behind this controller's own writes before
/// it stops waiting for it.
const CACHE_LAG_LIMIT: Duration = Duration::from_secs(30);

/// One slice's worth of endpoints, before it has a name.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredSlice {
    /// The ports every endpoint of the slice has.
    pub ports: Vec<EndpointPort>,
    /// The endpoints, sorted by address.
    pub endpoints: Vec<Endpoint>,
}

fn slice_port(p: &Port) -> EndpointPort {
    EndpointPort {
        name: Some(p.name.clone()),
        port: Some(p.port),
        protocol: Some(p.protocol.clone()),
        app_protocol: p.app_protocol.clone(),
    }
}

fn slice_endpoint(e: &PodEndpoint) -> Endpoint {
    Endpoint {
        addresses: vec![e.ip.clone()],
        conditions: Some(EndpointConditions {
            ready: Some(e.ready()),
            serving: Some(e.serving),
            terminating: Some(e.terminating),
        }),
        hostname: e.hostname.clone(),
        node_name: e.node_name.clone(),
        target_ref: Some(e.target_ref.clone()),
        ..Default::default()
    }
}

/// Cuts groups of endpoints (by port set) into slices of at most `max`.
fn chunk(groups: BTreeMap<Vec<Port>, Vec<Endpoint>>, max: usize) -> Vec<DesiredSlice> {
    let mut out = Vec::new();
    for (ports, endpoints) in groups {
        let ports: Vec<EndpointPort> = ports.iter().map(slice_port).collect();
        for part in endpoints.chunks(max.max(1)) {
            out.push(DesiredSlice { ports: ports.clone(), endpoints: part.to_vec() });
        }
    }
    out
}

/// The slices of a Service with a selector: its pods' endpoints by port
/// set, or one empty placeholder.
pub fn desired(endpoints: &[PodEndpoint], max: usize) -> Vec<DesiredSlice> {
    let mut groups: BTreeMap<Vec<Port>, Vec<Endpoint>> = BTreeMap::new();
    for e in endpoints {
        groups.entry(e.ports.clone()).or_default().push(slice_endpoint(e));
    }
    let slices = chunk(groups, max);
    if slices.is_empty() { vec![DesiredSlice { ports: Vec::new(), endpoints: Vec::new() }] } else { slices }
}

/// The slices mirroring user-written Endpoints: one group per subset's
/// ports, ready addresses ready and serving, the others neither.
pub fn mirrored(endpoints: &Endpoints, max: usize) -> Vec<DesiredSlice> {
    let mut groups: BTreeMap<Vec<Port>, Vec<Endpoint>> = BTreeMap::new();
    for subset in endpoints.subsets.iter().flatten() {
        let mut ports: Vec<Port> = subset
            .ports
            .iter()
            .flatten()
            .map(|p| Port {
                name: p.name.clone().unwrap_or_default(),
                port: p.port,
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                app_protocol: p.app_protocol.clone(),
            })
            .collect();
        ports.sort();
        let group = groups.entry(ports).or_default();
        for (list, ready) in [(&subset.addresses, true), (&subset.not_ready_addresses, false)] {
            for a in list.iter().flatten().filter(|a| a.ip.parse::<std::net::Ipv4Addr>().is_ok()) {
                group.push(Endpoint {
                    addresses: vec![a.ip.clone()],
                    conditions: Some(EndpointConditions {
                        ready: Some(ready),
                        serving: Some(ready),
                        terminating: Some(false),
                    }),
                    hostname: a.hostname.clone(),
                    node_name: a.node_name.clone(),
                    target_ref: a.target_ref.clone(),
                    ..Default::default()
                });
            }
        }
        group.sort_by(|a, b| a.addresses.cmp(&b.addresses));
    }
    chunk(groups, max)
}

/// The labels of a Service's slices: the Service's own, the headless
/// marker, the service name and the manager.
fn slice_labels(svc: &Service, managed_by: &str) -> BTreeMap<String, String> {
    let mut labels = service_labels(svc).unwrap_or_default();
    labels.insert(SERVICE_NAME_LABEL.into(), svc.metadata.name.clone().unwrap_or_default());
    labels.insert(MANAGED_BY_LABEL.into(), managed_by.into());
    labels
}

fn ports_of(slice: &EndpointSlice) -> &[EndpointPort] {
    slice.ports.as_deref().unwrap_or_default()
}

/// The writes this controller made that its cache has not shown yet, per
/// Service: slice name → the resourceVersion written (None: deleted).
#[derive(Debug, Default)]
pub struct Tracker {
    written: Mutex<HashMap<ObjectKey, Writes>>,
}

/// When a Service's slices were last written, and slice name → the
/// resourceVersion written (None: deleted).
type Writes = (Instant, HashMap<String, Option<u64>>);

fn resource_version(slice: &EndpointSlice) -> Option<u64> {
    slice.metadata.resource_version.as_deref().and_then(|rv| rv.parse().ok())
}

impl Tracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectKey, Writes>> {
        self.written.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that the slice `name` of Service `key` was written at
    /// `rv` (None: deleted).
    fn wrote(&self, key: &ObjectKey, name: &str, rv: Option<u64>) {
        let mut written = self.lock();
        let entry = written.entry(key.clone()).or_insert_with(|| (Instant::now(), HashMap::new()));
        entry.0 = Instant::now();
        entry.1.insert(name.to_string(), rv);
    }

    /// Whether `slices` (Service `key`'s namespace) shows every write made
    /// for `key`; what it shows is forgotten.
    fn caught_up(&self, key: &ObjectKey, slices: &Store<EndpointSlice>) -> bool {
        let mut written = self.lock();
        let Some((since, names)) = written.get_mut(key) else { return true };
        names.retain(|name, rv| {
            let cached = slices.get(&ObjectKey::new(&key.namespace, name));
            match (rv, cached) {
                (None, None) => false,
                (None, Some(_)) => true,
                (Some(_), None) => true,
                (Some(rv), Some(s)) => resource_version(&s).is_some_and(|cached| cached < *rv),
            }
        });
        let done = names.is_empty() || since.elapsed() > CACHE_LAG_LIMIT;
        if done {
            written.remove(key);
        }
        done
    }
}

/// What the workers share.
pub struct Context {
    services: Store<Service>,
    pods: Store<PodView>,
    endpoints: Store<Endpoints>,
    slices: Store<EndpointSlice>,
    client: rkube_client::Client,
    max_per_slice: usize,
    tracker: Tracker,
}

/// The slices this controller (or its mirroring half) manages for `key`.
fn managed_slices(ctx: &Context, key: &ObjectKey) -> Vec<Arc<EndpointSlice>> {
    ctx.slices
        .by_label(SERVICE_NAME_LABEL, &key.name)
        .into_iter()
        .filter(|s| s.metadata.namespace.as_deref() == Some(key.namespace.as_str()))
        .filter(|s| {
            let by = s.metadata.labels.as_ref().and_then(|l| l.get(MANAGED_BY_LABEL)).map(String::as_str);
            matches!(by, Some(MANAGED_BY_CONTROLLER | MANAGED_BY_MIRRORING))
        })
        .collect()
}

/// Brings the EndpointSlices of Service `key` in line with its pods (or
/// its user-written Endpoints).
pub async fn reconcile(key: ObjectKey, ctx: Arc<Context>) -> Result<Action, Error> {
    if !ctx.tracker.caught_up(&key, &ctx.slices) {
        // Our own writes are on their way to the cache; their events
        // bring this Service back.
        return Ok(Action::RequeueAfter(Duration::from_secs(1)));
    }
    let api = Api::<EndpointSlice>::namespaced(ctx.client.clone(), &key.namespace);
    let existing = managed_slices(&ctx, &key);
    let svc = ctx.services.get(&key).filter(|s| !is_external_name(s));
    let (managed_by, wanted) = match &svc {
        None => (MANAGED_BY_CONTROLLER, Vec::new()),
        Some(svc) if selector(svc).is_some() => {
            let pods = ctx.pods.list_namespace(&key.namespace);
            (MANAGED_BY_CONTROLLER, desired(&pod_endpoints(svc, &pods, true, |_, _| {}), ctx.max_per_slice))
        }
        Some(_) => {
            let skip = |e: &Endpoints| {
                e.metadata.labels.as_ref().and_then(|l| l.get(SKIP_MIRROR_LABEL)).is_some_and(|v| v == "true")
            };
            let wanted = match ctx.endpoints.get(&key) {
                Some(e) if !skip(&e) => mirrored(&e, ctx.max_per_slice),
                _ => Vec::new(),
            };
            (MANAGED_BY_MIRRORING, wanted)
        }
    };
    // Pair each desired slice with an existing one of the same port set.
    let mut unused: Vec<Arc<EndpointSlice>> = existing;
    unused.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut writes: Vec<(Option<Arc<EndpointSlice>>, DesiredSlice)> = Vec::new();
    for want in wanted {
        let same_manager = |s: &EndpointSlice| {
            s.metadata.labels.as_ref().and_then(|l| l.get(MANAGED_BY_LABEL)).map(String::as_str) == Some(managed_by)
        };
        let found = unused.iter().position(|s| same_manager(s) && ports_of(s) == want.ports.as_slice());
        writes.push((found.map(|i| unused.remove(i)), want));
    }
    let Some(svc) = svc else {
        return delete_all(&ctx, &api, &key, unused).await;
    };
    let labels = slice_labels(&svc, managed_by);
    let owner = controller_ref(svc.as_ref());
    for (current, want) in writes {
        let endpoints = want.endpoints;
        let ports = Some(want.ports).filter(|p| !p.is_empty());
        match current {
            Some(cur)
                if cur.endpoints == endpoints
                    && cur.ports == ports
                    && cur.metadata.labels.as_ref() == Some(&labels)
                    && cur.metadata.owner_references.as_deref() == Some(std::slice::from_ref(&owner)) => {}
            Some(cur) => {
                let mut updated = cur.as_ref().clone();
                updated.endpoints = endpoints;
                updated.ports = ports;
                updated.metadata.labels = Some(labels.clone());
                updated.metadata.owner_references = Some(vec![owner.clone()]);
                let written = api.replace(&updated).await.map_err(Error::api(&key, "updating an endpoint slice"))?;
                ctx.tracker.wrote(&key, cur.metadata.name.as_deref().unwrap_or_default(), resource_version(&written));
            }
            None => {
                let slice = EndpointSlice {
                    metadata: ObjectMeta {
                        generate_name: Some(format!("{}-", key.name)),
                        namespace: Some(key.namespace.clone()),
                        labels: Some(labels.clone()),
                        owner_references: Some(vec![owner.clone()]),
                        ..Default::default()
                    },
                    address_type: "IPv4".into(),
                    endpoints,
                    ports,
                };
                let written = api.create(&slice).await.map_err(Error::api(&key, "creating an endpoint slice"))?;
                ctx.tracker.wrote(
                    &key,
                    written.metadata.name.as_deref().unwrap_or_default(),
                    resource_version(&written),
                );
            }
        }
    }
    delete_all(&ctx, &api, &key, unused).await
}

async fn delete_all(
    ctx: &Context,
    api: &Api<EndpointSlice>,
    key: &ObjectKey,
    slices: Vec<Arc<EndpointSlice>>,
) -> Result<Action, Error> {
    for slice in slices {
        let name = slice.metadata.name.as_deref().unwrap_or_default();
        let params = DeleteParams { uid: slice.metadata.uid.clone().unwrap_or_default(), ..Default::default() };
        match api.delete(name, &params).await {
            Ok(_) => ctx.tracker.wrote(key, name, None),
            Err(e) if matches!(e.reason, Reason::NotFound | Reason::Conflict) => {}
            Err(e) => return Err(Error::api(key, "deleting an endpoint slice")(e)),
        }
    }
    Ok(Action::AwaitChange)
}

/// Starts the controller: Services, pods, Endpoints (for mirroring) and
/// slices enqueue Service keys.
pub fn start(ctx: &ControllerContext, tracker: &TaskTracker, shutdown: CancellationToken) -> Result<(), String> {
    let workers = ctx.flags.endpoint.concurrent_service_endpoint_syncs;
    let services = ctx.informers.get::<Service>();
    let pods = ctx.informers.get::<PodView>();
    let endpoints = ctx.informers.get::<Endpoints>();
    let slices = ctx.informers.get::<EndpointSlice>();
    let context = Arc::new(Context {
        services: services.store().clone(),
        pods: pods.store().clone(),
        endpoints: endpoints.store().clone(),
        slices: slices.store().clone(),
        client: ctx.client.clone(),
        max_per_slice: ctx.flags.endpoint.max_endpoints_per_slice,
        tracker: Tracker::default(),
    });
    let queue = WorkQueue::new();
    let (tracker2, observer) = (tracker.clone(), ctx.observer());
    tracker.spawn(async move {
        let synced = tokio::select! {
            _ = shutdown.cancelled() => return,
            synced = async {
                services.wait_until_synced().await
                    && pods.wait_until_synced().await
                    && endpoints.wait_until_synced().await
                    && slices.wait_until_synced().await
            } => synced,
        };
        if !synced {
            return;
        }
        let all_services = enqueue_all(services.store().clone(), queue.clone());
        let slice_store = slices.store().clone();
        let slice_queue = queue.clone();
        let resync = move || {
            all_services();
            // Slices of Services deleted while this controller was away.
            for s in slice_store.list() {
                slice_queue.add(service_of(&s).unwrap_or_else(|| ObjectKey::of(s.as_ref())));
            }
        };
        resync();
        let own = |o: &Service| vec![ObjectKey::of(o)];
        forward(&services, queue.clone(), &tracker2, shutdown.clone(), own, resync.clone());
        let of_service = |e: &Endpoints| vec![ObjectKey::of(e)];
        forward(&endpoints, queue.clone(), &tracker2, shutdown.clone(), of_service, resync.clone());
        forward(
            &slices,
            queue.clone(),
            &tracker2,
            shutdown.clone(),
            |s: &EndpointSlice| service_of(s).into_iter().collect(),
            resync.clone(),
        );
        let (index, svcs) = (ServiceIndex::default(), services.store().clone());
        let keys = move |pod: &PodView, deleted| index.keys(&svcs, pod, deleted);
        forward_events(&pods, queue.clone(), &tracker2, shutdown.clone(), keys, resync);
        let reconcile = move |key| reconcile(key, context.clone());
        spawn_workers(NAME, queue, workers, reconcile, observer, &tracker2, shutdown);
        info!(controller = NAME, "started");
    });
    Ok(())
}

/// The Service a slice belongs to, by its label.
fn service_of(slice: &EndpointSlice) -> Option<ObjectKey> {
    let name = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
    Some(ObjectKey::new(slice.metadata.namespace.as_deref().unwrap_or_default(), name))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{pod, web_service};
    use super::*;
    use serde_json::json;

    #[test]
    fn slices_group_by_port_set_cut_at_the_limit_and_mark_conditions() {
        let svc = web_service();
        let pods: Vec<_> = (1..=5)
            .map(|i| {
                let extra =
                    if i == 5 { json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}}) } else { json!({}) };
                pod(&format!("p{i}"), &format!("10.1.0.{i}"), i != 4, extra)
            })
            .collect();
        let slices = desired(&pod_endpoints(&svc, &pods, true, |_, _| {}), 2);
        assert_eq!(slices.len(), 3);
        assert!(slices.iter().all(|s| s.ports.len() == 2 && s.endpoints.len() <= 2));
        let conditions: Vec<(String, bool, bool, bool)> = slices
            .iter()
            .flat_map(|s| &s.endpoints)
            .map(|e| {
                let c = e.conditions.as_ref().unwrap();
                (e.addresses[0].clone(), c.ready.unwrap(), c.serving.unwrap(), c.terminating.unwrap())
            })
            .collect();
        assert_eq!(
            conditions,
            [
                ("10.1.0.1".into(), true, true, false),
                ("10.1.0.2".into(), true, true, false),
                ("10.1.0.3".into(), true, true, false),
                ("10.1.0.4".into(), false, false, false),
                ("10.1.0.5".into(), false, true, true),
            ]
        );
        let port = &slices[0].ports[1];
        assert_eq!(
            (port.name.as_deref(), port.port, port.protocol.as_deref()),
            (Some("http"), Some(8080), Some("TCP"))
        );
    }

    #[test]
    fn a_service_without_endpoints_keeps_a_placeholder() {
        assert_eq!(desired(&[], 100), [DesiredSlice { ports: Vec::new(), endpoints: Vec::new() }]);
    }

    #[test]
    fn user_endpoints_are_mirrored_by_subset() {
        let e: Endpoints = serde_json::from_value(json!({"metadata": {"name": "ext", "namespace": "default"},
            "subsets": [{"addresses": [{"ip": "192.168.9.2"}, {"ip": "192.168.9.1"}],
                         "notReadyAddresses": [{"ip": "192.168.9.3"}],
                         "ports": [{"port": 5432, "protocol": "TCP"}]}]}))
        .unwrap();
        let slices = mirrored(&e, 100);
        assert_eq!(slices.len(), 1);
        let addresses: Vec<(&str, bool)> = slices[0]
            .endpoints
            .iter()
            .map(|e| (e.addresses[0].as_str(), e.conditions.as_ref().unwrap().ready.unwrap()))
            .collect();
        assert_eq!(addresses, [("192.168.9.1", true), ("192.168.9.2", true), ("192.168.9.3", false)]);
        assert_eq!(slices[0].ports[0].name.as_deref(), Some(""));
    }

    #[test]
    fn slice_labels_name_the_service_and_the_manager() {
        let mut svc = web_service();
        svc.metadata.labels = Some([("tier".to_string(), "fe".to_string())].into());
        let labels = slice_labels(&svc, MANAGED_BY_CONTROLLER);
        assert_eq!(labels[SERVICE_NAME_LABEL], "web");
        assert_eq!(labels[MANAGED_BY_LABEL], MANAGED_BY_CONTROLLER);
        assert_eq!(labels["tier"], "fe");
    }
}
