//! The resourcequota controller (Kubernetes' `pkg/controller/resourcequota`):
//! keeps each ResourceQuota's `status.hard` (its `spec.hard`) and
//! `status.used` (what the objects of its namespace consume of it).
//!
//! Usage is measured with the evaluators of [`rkube_api::quota`]: `pods`
//! and the compute resources over the pods that count (not finished, not
//! deleted past their grace period; the shared pod cache), the legacy
//! counts and `count/<resource>` of Services, ConfigMaps, Secrets,
//! ReplicationControllers and PersistentVolumeClaims (shared caches), and
//! `count/<resource>` of any other kind by a live list. A quota's scopes
//! (Terminating, NotTerminating, BestEffort, NotBestEffort) select pods;
//! a scoped quota counts no other kind.
//!
//! A quota is synced when it changes, when an object of its namespace it
//! may count changes, and every `--resource-quota-sync-period` (which also
//! gives back what the admission plugin charged for a create that then
//! failed). The status is written only when it changed, conditional on the
//! quota's resourceVersion: the admission plugin charges creates to the
//! same status, and a lost race is synced again.

use crate::controllers::pod_state::{ContainerView, PodView};
use crate::controllers::{Controller, ControllerContext, Error};
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, ReplicationController, ResourceQuota, ResourceQuotaStatus, Secret, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::{Metadata, Resource};
use rkube_api::ResourceInfo;
use rkube_api::quota::{self, Amount, PodFacts, Usage};
use rkube_api::resource::{RESOURCES, lookup};
use rkube_client::controller::{Action, spawn_workers};
use rkube_client::informers::{enqueue_all, forward};
use rkube_client::leader::parse_duration;
use rkube_client::{Api, Client, ListParams, ObjectKey, Reason, Store, WorkQueue};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};

/// The controller's name in `--controllers`.
pub const NAME: &str = "resourcequota";

/// The registry entry.
pub const CONTROLLER: Controller = Controller {
    name: NAME,
    about: "keeps each ResourceQuota's status.used: what its namespace's objects consume",
    enabled_by_default: true,
    check,
    start,
};

/// The resourcequota controller's flags (kube-controller-manager's names).
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
#[command(next_help_heading = "ResourceQuota controller")]
pub struct Flags {
    /// Quotas synced at once.
    #[arg(long, env = "RKUBE_CONCURRENT_RESOURCE_QUOTA_SYNCS", default_value_t = 5)]
    pub concurrent_resource_quota_syncs: usize,
    /// How often every quota is recounted in full.
    #[arg(long, env = "RKUBE_RESOURCE_QUOTA_SYNC_PERIOD", default_value = "5m", value_parser = parse_duration)]
    pub resource_quota_sync_period: Duration,
}

fn check(flags: &crate::controllers::Flags) -> Result<(), String> {
    if flags.resourcequota.resource_quota_sync_period.is_zero() {
        return Err("--resource-quota-sync-period: must be greater than 0".into());
    }
    Ok(())
}

/// The caches the workers count from.
pub struct Context {
    client: Client,
    quotas: Store<ResourceQuota>,
    pods: Store<PodView>,
    services: Store<Service>,
    config_maps: Store<ConfigMap>,
    secrets: Store<Secret>,
    controllers: Store<ReplicationController>,
    claims: Store<PersistentVolumeClaim>,
}

/// A pod view's quota facts.
fn facts(pod: &PodView) -> PodFacts<'_> {
    let spec = pod.spec.as_ref();
    PodFacts {
        containers: spec
            .map(|s| s.containers.iter().map(|c: &ContainerView| c.resources.as_ref()).collect())
            .unwrap_or_default(),
        init_containers: spec
            .and_then(|s| s.init_containers.as_ref())
            .map(|cs| {
                cs.iter().map(|c| (c.resources.as_ref(), c.restart_policy.as_deref() == Some("Always"))).collect()
            })
            .unwrap_or_default(),
        overhead: spec.and_then(|s| s.overhead.as_ref()),
        phase: crate::controllers::pod_state::phase(pod),
        deletion: pod
            .metadata
            .deletion_timestamp
            .as_ref()
            .map(|t| (t.0, pod.metadata.deletion_grace_period_seconds.unwrap_or(0))),
        active_deadline_seconds: spec.and_then(|s| s.active_deadline_seconds),
    }
}

/// Zero for each resource, then the usage of every object in scope added.
fn sum(names: &[String], usages: impl Iterator<Item = Usage>) -> Usage {
    let mut total: Usage = names.iter().map(|n| (n.clone(), Amount::int(0))).collect();
    for u in usages {
        quota::add(&mut total, &quota::mask(&u, names.iter().map(String::as_str)));
    }
    total
}

fn usage_of<K: Serialize>(info: &ResourceInfo, obj: &K, now: Timestamp) -> Usage {
    serde_json::to_value(obj).map(|v| quota::usage(info, &v, now)).unwrap_or_default()
}

fn cached_usage<K: Serialize + Metadata<Ty = ObjectMeta>>(
    store: &Store<K>,
    info: &ResourceInfo,
    namespace: &str,
    names: &[String],
    now: Timestamp,
) -> Usage {
    sum(names, store.list_namespace(namespace).iter().map(|o| usage_of(info, o.as_ref(), now)))
}

/// The resource of a `count/<plural>[.<group>]` name.
fn counted_resource(name: &str) -> Option<&'static ResourceInfo> {
    let rest = name.strip_prefix("count/")?;
    let (plural, group) = rest.split_once('.').unwrap_or((rest, ""));
    RESOURCES.iter().find(|r| r.plural == plural && r.group == group && quota::is_counted(r))
}

/// What `q`'s namespace uses of each resource of its `spec.hard` that rkube
/// can measure.
pub async fn measure(ctx: &Context, q: &ResourceQuota, now: Timestamp) -> Result<Usage, Error> {
    let namespace = q.metadata.namespace.clone().unwrap_or_default();
    let spec = q.spec.clone().unwrap_or_default();
    let hard: Vec<String> = spec.hard.iter().flatten().map(|(k, _)| k.clone()).collect();
    let hard_names = || hard.iter().map(String::as_str);
    let mut used = Usage::new();
    let pods = lookup("pods").expect("pods are served");
    let names = quota::matching_resources(pods, hard_names());
    if !names.is_empty() {
        let in_scope: Vec<Usage> = ctx
            .pods
            .list_namespace(&namespace)
            .iter()
            .map(|p| facts(p))
            .filter(|f| quota::pod_matches_scopes(&spec, f))
            .map(|f| quota::pod_usage(&f, now))
            .collect();
        quota::add(&mut used, &sum(&names, in_scope.into_iter()));
    }
    let scoped = !quota::object_matches_scopes(&spec);
    macro_rules! cached {
        ($store:expr, $kind:ty) => {{
            let info = lookup(<$kind>::URL_PATH_SEGMENT).expect("a served kind");
            let names = quota::matching_resources(info, hard_names());
            if !names.is_empty() {
                let u = if scoped {
                    sum(&names, std::iter::empty())
                } else {
                    cached_usage(&$store, info, &namespace, &names, now)
                };
                quota::add(&mut used, &u);
            }
        }};
    }
    cached!(ctx.services, Service);
    cached!(ctx.config_maps, ConfigMap);
    cached!(ctx.secrets, Secret);
    cached!(ctx.controllers, ReplicationController);
    cached!(ctx.claims, PersistentVolumeClaim);
    let cached_kinds = ["Pod", "Service", "ConfigMap", "Secret", "ReplicationController", "PersistentVolumeClaim"];
    for name in &hard {
        let Some(info) = counted_resource(name).filter(|r| !cached_kinds.contains(&r.kind)) else { continue };
        let count = if scoped {
            0
        } else {
            let list = ctx.client.list(info, &namespace, &ListParams::default()).await.map_err(|e| {
                Error::api(&ObjectKey::new(&namespace, q.metadata.name.as_deref().unwrap_or_default()), "listing")(e)
            })?;
            list.items.len() as i64
        };
        used.insert(name.clone(), Amount::int(count));
    }
    Ok(used)
}

/// The status `q` should have, given what is used.
fn desired_status(q: &ResourceQuota, used: &Usage) -> ResourceQuotaStatus {
    let hard = quota::parse_list(q.spec.as_ref().and_then(|s| s.hard.as_ref()));
    ResourceQuotaStatus { hard: Some(quota::to_list(&hard)), used: Some(quota::to_list(used)) }
}

/// Whether two statuses say the same (quantities compared by value).
fn same(a: Option<&ResourceQuotaStatus>, b: &ResourceQuotaStatus) -> bool {
    let values = |l: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>| {
        quota::parse_list(l).into_iter().map(|(k, v)| (k, v.value)).collect::<BTreeMap<_, _>>()
    };
    a.is_some_and(|a| {
        a.hard.is_some()
            && a.used.is_some()
            && values(a.hard.as_ref()) == values(b.hard.as_ref())
            && values(a.used.as_ref()) == values(b.used.as_ref())
    })
}

/// Recounts the quota `key` and writes its status if it changed.
pub async fn reconcile(key: ObjectKey, ctx: Arc<Context>) -> Result<Action, Error> {
    let Some(q) = ctx.quotas.get(&key) else { return Ok(Action::AwaitChange) };
    if q.metadata.deletion_timestamp.is_some() {
        return Ok(Action::AwaitChange);
    }
    let used = measure(&ctx, &q, Timestamp::now()).await?;
    let status = desired_status(&q, &used);
    if same(q.status.as_ref(), &status) {
        return Ok(Action::AwaitChange);
    }
    let mut updated = (*q).clone();
    updated.status = Some(status);
    let api = Api::<ResourceQuota>::namespaced(ctx.client.clone(), &key.namespace);
    match api.replace_status(&updated).await {
        Ok(_) => debug!(controller = NAME, quota = %key, used = %quota::pretty(&used), "status updated"),
        // Admission charged a create meanwhile, or the quota went: the
        // watch brings the new version back here.
        Err(e) if matches!(e.reason, Reason::Conflict | Reason::NotFound) => {}
        Err(e) => return Err(Error::api(&key, "updating the status of")(e)),
    }
    Ok(Action::AwaitChange)
}

fn start(ctx: &ControllerContext, tracker: &TaskTracker, shutdown: CancellationToken) -> Result<(), String> {
    let flags = ctx.flags.resourcequota.clone();
    let quotas = ctx.informers.get::<ResourceQuota>();
    let pods = ctx.informers.get::<PodView>();
    let services = ctx.informers.get::<Service>();
    let config_maps = ctx.informers.get::<ConfigMap>();
    let secrets = ctx.informers.get::<Secret>();
    let controllers = ctx.informers.get::<ReplicationController>();
    let claims = ctx.informers.get::<PersistentVolumeClaim>();
    let context = Arc::new(Context {
        client: ctx.client.clone(),
        quotas: quotas.store().clone(),
        pods: pods.store().clone(),
        services: services.store().clone(),
        config_maps: config_maps.store().clone(),
        secrets: secrets.store().clone(),
        controllers: controllers.store().clone(),
        claims: claims.store().clone(),
    });
    let queue = WorkQueue::new();
    let (tracker2, observer) = (tracker.clone(), ctx.observer());
    tracker.spawn(async move {
        let synced = tokio::select! {
            _ = shutdown.cancelled() => return,
            synced = async {
                quotas.wait_until_synced().await
                    && pods.wait_until_synced().await
                    && services.wait_until_synced().await
                    && config_maps.wait_until_synced().await
                    && secrets.wait_until_synced().await
                    && controllers.wait_until_synced().await
                    && claims.wait_until_synced().await
            } => synced,
        };
        if !synced {
            return;
        }
        let resync = enqueue_all(quotas.store().clone(), queue.clone());
        forward(&quotas, queue.clone(), &tracker2, shutdown.clone(), |q: &ResourceQuota| vec![ObjectKey::of(q)], resync.clone());
        // A change to an object a quota may count: every quota of its namespace.
        let store = quotas.store().clone();
        let of_namespace = move |meta: &ObjectMeta| -> Vec<ObjectKey> {
            store.list_namespace(meta.namespace.as_deref().unwrap_or_default()).iter().map(|q| ObjectKey::of(q.as_ref())).collect()
        };
        macro_rules! recount_on {
            ($($informer:expr),*) => {$({
                let of_namespace = of_namespace.clone();
                forward(&$informer, queue.clone(), &tracker2, shutdown.clone(), move |o| of_namespace(o.metadata()), resync.clone());
            })*};
        }
        recount_on!(pods, services, config_maps, secrets, controllers, claims);
        // The full resync.
        {
            let (resync, shutdown) = (resync.clone(), shutdown.clone());
            let period = flags.resource_quota_sync_period;
            tracker2.spawn(async move {
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(period) => resync(),
                    }
                }
            });
        }
        let reconcile = move |key| reconcile(key, context.clone());
        spawn_workers(NAME, queue, flags.concurrent_resource_quota_syncs, reconcile, observer, &tracker2, shutdown);
        info!(controller = NAME, "started");
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> PodView {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn pod_views_carry_what_quota_sums() {
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {"activeDeadlineSeconds": 5,
            "initContainers": [{"name": "s", "restartPolicy": "Always", "resources": {"requests": {"cpu": "100m"}}}],
            "containers": [{"name": "c", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}}]}}));
        let f = facts(&p);
        let u = quota::pod_usage(&f, Timestamp::now());
        assert_eq!(
            quota::pretty(&u),
            "count/pods=1,cpu=350m,memory=64Mi,pods=1,requests.cpu=350m,requests.memory=64Mi"
        );
        assert_eq!(f.active_deadline_seconds, Some(5));
    }

    #[test]
    fn used_starts_at_zero_for_every_limited_resource() {
        let names = vec!["pods".to_string(), "requests.cpu".to_string()];
        let u = sum(&names, std::iter::once(Usage::from([("pods".to_string(), Amount::int(1))])));
        assert_eq!(quota::pretty(&u), "pods=1,requests.cpu=0");
        assert_eq!(counted_resource("count/deployments.apps").map(|r| r.kind), Some("Deployment"));
        assert_eq!(counted_resource("count/pods").map(|r| r.kind), Some("Pod"));
        assert!(counted_resource("count/nodes").is_none(), "cluster-scoped kinds are not counted");
    }

    #[test]
    fn status_compares_by_value() {
        let q: ResourceQuota = serde_json::from_value(json!({"metadata": {"name": "q"},
            "spec": {"hard": {"cpu": "1000m"}}, "status": {"hard": {"cpu": "1"}, "used": {"cpu": "500m"}}}))
        .unwrap();
        let used = Usage::from([("cpu".to_string(), Amount::parse("0.5").unwrap())]);
        let status = desired_status(&q, &used);
        assert!(same(q.status.as_ref(), &status));
        assert_eq!(status.hard.unwrap()["cpu"].0, "1");
    }
}
