//! The endpoints controller: one v1 Endpoints object per Service with a
//! selector, named after it, holding the addresses of the pods it selects
//! (Kubernetes' `pkg/controller/endpoint`). Ready pods go to `addresses`,
//! the others to `notReadyAddresses`; addresses are repacked into one subset
//! per port set ([`subsets`]). The Endpoints of a deleted Service go too.

use super::{PodEndpoint, Port, ServiceIndex, is_headless, pod_endpoints, selector, unresolved_message};
use crate::controllers::pod_state::PodView;
use crate::controllers::{ControllerContext, Error};
use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rkube_client::controller::{Action, spawn_workers};
use rkube_client::events::EventRecorder;
use rkube_client::informers::{enqueue_all, forward, forward_events};
use rkube_client::{Api, DeleteParams, ObjectKey, Reason, Store, WorkQueue};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};

/// The controller's name in `--controllers`.
pub const NAME: &str = "endpoint";

/// The label Kubernetes puts on the Endpoints (and slices) of a headless
/// Service.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// What the workers share.
pub struct Context {
    services: Store<Service>,
    pods: Store<PodView>,
    endpoints: Store<Endpoints>,
    client: rkube_client::Client,
    recorder: Arc<EventRecorder>,
}

fn address(e: &PodEndpoint) -> EndpointAddress {
    EndpointAddress {
        ip: e.ip.clone(),
        hostname: e.hostname.clone(),
        node_name: e.node_name.clone(),
        target_ref: Some(e.target_ref.clone()),
    }
}

fn endpoint_port(p: &Port) -> EndpointPort {
    EndpointPort {
        name: Some(p.name.clone()).filter(|n| !n.is_empty()),
        port: p.port,
        protocol: Some(p.protocol.clone()),
        app_protocol: p.app_protocol.clone(),
    }
}

/// The subsets for `endpoints` (sorted by IP): one per distinct port set,
/// ready addresses in `addresses`, the others in `notReadyAddresses`
/// (Kubernetes' `RepackSubsets`).
pub fn subsets(endpoints: &[PodEndpoint]) -> Vec<EndpointSubset> {
    let mut by_ports: BTreeMap<&[Port], (Vec<EndpointAddress>, Vec<EndpointAddress>)> = BTreeMap::new();
    for e in endpoints {
        let (ready, not_ready) = by_ports.entry(&e.ports).or_default();
        if e.ready() { ready.push(address(e)) } else { not_ready.push(address(e)) }
    }
    by_ports
        .into_iter()
        .map(|(ports, (ready, not_ready))| EndpointSubset {
            addresses: Some(ready).filter(|a| !a.is_empty()),
            not_ready_addresses: Some(not_ready).filter(|a| !a.is_empty()),
            ports: Some(ports.iter().map(endpoint_port).collect::<Vec<_>>()).filter(|p| !p.is_empty()),
        })
        .collect()
}

/// The labels of a Service's Endpoints: the Service's, plus the headless
/// marker.
pub fn labels(svc: &Service) -> Option<BTreeMap<String, String>> {
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    if is_headless(svc) {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    } else {
        labels.remove(HEADLESS_LABEL);
    }
    Some(labels).filter(|l| !l.is_empty())
}

/// Brings the Endpoints of Service `key` in line with its pods.
pub async fn reconcile(key: ObjectKey, ctx: Arc<Context>) -> Result<Action, Error> {
    let api = Api::<Endpoints>::namespaced(ctx.client.clone(), &key.namespace);
    let existing = ctx.endpoints.get(&key);
    let Some(svc) = ctx.services.get(&key) else {
        if existing.is_some() {
            // The Services and Endpoints caches follow separate watches: a
            // user's Endpoints may arrive before its Service does. Delete
            // only what the apiserver confirms has no Service.
            let services = Api::<Service>::namespaced(ctx.client.clone(), &key.namespace);
            match services.get(&key.name).await {
                Err(e) if e.reason == Reason::NotFound => {}
                Ok(_) => return Ok(Action::AwaitChange),
                Err(e) => return Err(Error::api(&key, "reading the service of endpoints")(e)),
            }
            match api.delete(&key.name, &DeleteParams::default()).await {
                Ok(_) => debug!(controller = NAME, service = %key, "deleted the endpoints of a deleted service"),
                Err(e) if e.reason == Reason::NotFound => {}
                Err(e) => return Err(Error::api(&key, "deleting endpoints")(e)),
            }
        }
        return Ok(Action::AwaitChange);
    };
    if selector(&svc).is_none() {
        // Users write the Endpoints of a Service without a selector.
        return Ok(Action::AwaitChange);
    }
    let pods = ctx.pods.list_namespace(&key.namespace);
    let endpoints = pod_endpoints(&svc, &pods, false, |pod, sp| {
        ctx.recorder.warning(svc.as_ref(), "FailedToResolvePort", unresolved_message(pod, sp))
    });
    let (subsets, labels) = (subsets(&endpoints), labels(&svc));
    let subsets = Some(subsets).filter(|s| !s.is_empty());
    match existing {
        Some(current) if current.subsets == subsets && current.metadata.labels == labels => {}
        Some(current) => {
            let mut updated = current.as_ref().clone();
            updated.subsets = subsets;
            updated.metadata.labels = labels;
            api.replace(&updated).await.map_err(Error::api(&key, "updating endpoints"))?;
        }
        None => {
            let created = Endpoints {
                metadata: ObjectMeta {
                    name: Some(key.name.clone()),
                    namespace: Some(key.namespace.clone()),
                    labels,
                    ..Default::default()
                },
                subsets,
            };
            match api.create(&created).await {
                Ok(_) => {}
                // Written by someone else since the cache looked: the
                // watch brings it, and with it another reconcile.
                Err(e) if e.reason == Reason::AlreadyExists => return Ok(Action::AwaitChange),
                Err(e) => return Err(Error::api(&key, "creating endpoints")(e)),
            }
        }
    }
    Ok(Action::AwaitChange)
}

/// Starts the controller: Services, pods and Endpoints enqueue Service keys.
pub fn start(ctx: &ControllerContext, tracker: &TaskTracker, shutdown: CancellationToken) -> Result<(), String> {
    let workers = ctx.flags.endpoint.concurrent_endpoint_syncs;
    let services = ctx.informers.get::<Service>();
    let pods = ctx.informers.get::<PodView>();
    let endpoints = ctx.informers.get::<Endpoints>();
    let context = Arc::new(Context {
        services: services.store().clone(),
        pods: pods.store().clone(),
        endpoints: endpoints.store().clone(),
        client: ctx.client.clone(),
        recorder: ctx.recorder("endpoint-controller", tracker, shutdown.clone()),
    });
    let queue = WorkQueue::new();
    let (tracker2, observer) = (tracker.clone(), ctx.observer());
    tracker.spawn(async move {
        let synced = tokio::select! {
            _ = shutdown.cancelled() => return,
            synced = async {
                services.wait_until_synced().await && pods.wait_until_synced().await && endpoints.wait_until_synced().await
            } => synced,
        };
        if !synced {
            return;
        }
        // Resync the Services and every Endpoints (one may be left from a
        // Service deleted while this controller was away).
        let (all_services, all_endpoints) =
            (enqueue_all(services.store().clone(), queue.clone()), enqueue_all(endpoints.store().clone(), queue.clone()));
        let resync = move || {
            all_services();
            all_endpoints();
        };
        resync();
        let own = |o: &Service| vec![ObjectKey::of(o)];
        forward(&services, queue.clone(), &tracker2, shutdown.clone(), own, resync.clone());
        forward(&endpoints, queue.clone(), &tracker2, shutdown.clone(), |e: &Endpoints| vec![ObjectKey::of(e)], resync.clone());
        let (index, svcs) = (ServiceIndex::default(), services.store().clone());
        let keys = move |pod: &PodView, deleted| index.keys(&svcs, pod, deleted);
        forward_events(&pods, queue.clone(), &tracker2, shutdown.clone(), keys, resync);
        let reconcile = move |key| reconcile(key, context.clone());
        spawn_workers(NAME, queue, workers, reconcile, observer, &tracker2, shutdown);
        info!(controller = NAME, "started");
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{pod, web_service};
    use super::*;
    use serde_json::json;

    /// The endpoints watch may deliver a user's Endpoints before the
    /// services watch delivers its Service: they are kept until the
    /// apiserver says the Service is gone.
    #[tokio::test]
    async fn endpoints_of_a_service_not_cached_yet_are_kept_until_the_service_is_gone() -> anyhow::Result<()> {
        let api = rkube_testkit::TestApiserver::start().await?;
        let client = rkube_client::Client::new(&api.url())?;
        let services = Api::<Service>::namespaced(client.clone(), "default");
        let endpoints = Api::<Endpoints>::namespaced(client.clone(), "default");
        services
            .create(&serde_json::from_value(json!({"metadata": {"name": "ext"}, "spec": {"ports": [{"port": 5432}]}}))?)
            .await?;
        let user = endpoints
            .create(&serde_json::from_value(json!({"metadata": {"name": "ext"},
                "subsets": [{"addresses": [{"ip": "192.168.50.2"}], "ports": [{"port": 5432}]}]}))?)
            .await?;
        let cached = rkube_client::Writer::new();
        cached.apply(Arc::new(user));
        let (tracker, shutdown) = (TaskTracker::new(), CancellationToken::new());
        let ctx = Arc::new(Context {
            services: rkube_client::Writer::new().as_reader(),
            pods: rkube_client::Writer::new().as_reader(),
            endpoints: cached.as_reader(),
            client: client.clone(),
            recorder: EventRecorder::start(client.clone(), "test", "test", &tracker, shutdown.clone()),
        });
        let key = ObjectKey::new("default", "ext");
        reconcile(key.clone(), ctx.clone()).await?;
        endpoints.get("ext").await.expect("kept: the Service exists");
        services.delete("ext", &DeleteParams::default()).await?;
        reconcile(key, ctx).await?;
        let gone = endpoints.get("ext").await.expect_err("deleted with its Service");
        assert_eq!(gone.reason, Reason::NotFound);
        shutdown.cancel();
        Ok(())
    }

    #[test]
    fn subsets_group_addresses_by_port_set_and_readiness() {
        let svc = web_service();
        let no_http = json!({"spec": {"containers": [{"name": "c", "image": "i"}]}});
        let pods = [
            pod("b", "10.1.0.2", true, json!({})),
            pod("a", "10.1.0.1", false, json!({})),
            pod("c", "10.1.0.3", true, no_http),
        ];
        let eps = pod_endpoints(&svc, &pods, false, |_, _| {});
        let json = serde_json::to_value(subsets(&eps)).unwrap();
        assert_eq!(
            json,
            json!([
                {"addresses": [{"ip": "10.1.0.3", "nodeName": "n1",
                    "targetRef": {"kind": "Pod", "namespace": "default", "name": "c", "uid": "uid-c"}}],
                 "ports": [{"name": "admin", "port": 9000, "protocol": "TCP"}]},
                {"addresses": [{"ip": "10.1.0.2", "nodeName": "n1",
                    "targetRef": {"kind": "Pod", "namespace": "default", "name": "b", "uid": "uid-b"}}],
                 "notReadyAddresses": [{"ip": "10.1.0.1", "nodeName": "n1",
                    "targetRef": {"kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"}}],
                 "ports": [{"name": "admin", "port": 9000, "protocol": "TCP"},
                           {"name": "http", "port": 8080, "protocol": "TCP"}]}
            ])
        );
    }

    #[test]
    fn headless_services_mark_their_endpoints() {
        let mut svc = web_service();
        assert_eq!(labels(&svc), None);
        svc.spec.as_mut().unwrap().cluster_ip = Some("None".into());
        svc.metadata.labels = Some([("app".to_string(), "web".to_string())].into());
        let l = labels(&svc).unwrap();
        assert_eq!((l["app"].as_str(), l[HEADLESS_LABEL].as_str()), ("web", ""));
    }
}
