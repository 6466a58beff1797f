//! The horizontalpodautoscaling controller (Kubernetes'
//! `pkg/controller/podautoscaler/horizontal.go`): sets the replicas of an
//! HPA's target (a ReplicationController, ReplicaSet or Deployment, through
//! its scale subresource) from its pods' cpu and memory usage.
//!
//! Every `--horizontal-pod-autoscaler-sync-period`, for each
//! `autoscaling/v2` HorizontalPodAutoscaler, [`reconcile`]:
//! 1. reads the target's Scale (`spec.replicas`, `status.selector`);
//!    a target that cannot be read is a `FailedGetScale` event and an
//!    `AbleToScale=False` condition, and nothing scales;
//! 2. leaves a target scaled to zero alone (`ScalingActive=False
//!    ScalingDisabled`); brings one outside `[minReplicas, maxReplicas]`
//!    back within;
//! 3. otherwise asks each `Resource` metric (cpu or memory, `Utilization`
//!    of the pods' requests or `AverageValue`) for a replica count
//!    ([`replicas`]: the pods of the selector from the shared cache, their
//!    usage from the Resource Metrics API through [`MetricsSource`]) and
//!    takes the largest; when no metric can be computed, nothing scales;
//! 4. stabilises and limits that count ([`normalize`]) and writes it to the
//!    Scale (`SuccessfulRescale` event);
//! 5. writes the status: current and desired replicas, the current
//!    metrics, `lastScaleTime`, `observedGeneration` and the conditions
//!    `AbleToScale`, `ScalingActive` and `ScalingLimited` with Kubernetes'
//!    reasons and messages.
//!
//! An HPA is synced at most once per sync period (changes to its spec are
//! synced at once), as Kubernetes' fixed-interval queue does; the history
//! the stabilisation window reads lives in memory, per HPA.

pub mod metrics;
pub mod normalize;
pub mod replicas;

use crate::controllers::pod_state::PodView;
use crate::controllers::{Controller, ControllerContext, Error};
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::autoscaling::v2::{
    HorizontalPodAutoscaler, HorizontalPodAutoscalerCondition, HorizontalPodAutoscalerStatus, MetricSpec, MetricStatus,
    MetricValueStatus, ResourceMetricStatus,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
pub use metrics::MetricsSource;
use normalize::{Behavior, History};
use replicas::{Calculator, PodMetrics};
use rkube_api::quantity::{self, Format};
use rkube_api::selector::Selector;
use rkube_client::controller::{Action, spawn_workers, status_patch};
use rkube_client::events::{EventRecorder, EventType, object_ref};
use rkube_client::informers::{enqueue_all, forward};
use rkube_client::leader::parse_duration;
use rkube_client::{Api, Client, ObjectKey, Reason, Store, WorkQueue};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

/// The controller's name in `--controllers`.
pub const NAME: &str = "horizontalpodautoscaling";
/// The Events' source component.
const COMPONENT: &str = "horizontal-pod-autoscaler";

/// The registry entry.
pub const CONTROLLER: Controller = Controller {
    name: NAME,
    about: "scales the targets of HorizontalPodAutoscalers from their pods' cpu and memory usage",
    enabled_by_default: true,
    check,
    start,
};

/// The HPA controller's flags (kube-controller-manager's names).
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
#[command(next_help_heading = "HorizontalPodAutoscaler controller")]
pub struct Flags {
    /// HPAs synced at once.
    #[arg(long, env = "RKUBE_CONCURRENT_HORIZONTAL_POD_AUTOSCALER_SYNCS", default_value_t = 5)]
    pub concurrent_horizontal_pod_autoscaler_syncs: usize,
    /// How often each HPA is synced.
    #[arg(long, env = "RKUBE_HORIZONTAL_POD_AUTOSCALER_SYNC_PERIOD", default_value = "15s", value_parser = parse_duration)]
    pub horizontal_pod_autoscaler_sync_period: Duration,
    /// The relative difference between usage and target below which nothing
    /// scales.
    #[arg(long, env = "RKUBE_HORIZONTAL_POD_AUTOSCALER_TOLERANCE", default_value_t = 0.1)]
    pub horizontal_pod_autoscaler_tolerance: f64,
    /// How far back a scale-down looks for a higher recommendation (used
    /// when an HPA's behavior sets no scaleDown window).
    #[arg(long, env = "RKUBE_HORIZONTAL_POD_AUTOSCALER_DOWNSCALE_STABILIZATION", default_value = "5m", value_parser = parse_duration)]
    pub horizontal_pod_autoscaler_downscale_stabilization: Duration,
    /// After a pod starts, how long its cpu samples count only once a full
    /// window was measured after it turned ready.
    #[arg(long, env = "RKUBE_HORIZONTAL_POD_AUTOSCALER_CPU_INITIALIZATION_PERIOD", default_value = "5m", value_parser = parse_duration)]
    pub horizontal_pod_autoscaler_cpu_initialization_period: Duration,
    /// A pod not ready whose readiness last changed within this long of its
    /// start is taken as never ready (its cpu is ignored).
    #[arg(long, env = "RKUBE_HORIZONTAL_POD_AUTOSCALER_INITIAL_READINESS_DELAY", default_value = "30s", value_parser = parse_duration)]
    pub horizontal_pod_autoscaler_initial_readiness_delay: Duration,
}

fn check(flags: &crate::controllers::Flags) -> Result<(), String> {
    let f = &flags.horizontalpodautoscaler;
    if f.horizontal_pod_autoscaler_sync_period.is_zero() {
        return Err("--horizontal-pod-autoscaler-sync-period: must be greater than 0".into());
    }
    if !(0.0..1.0).contains(&f.horizontal_pod_autoscaler_tolerance) {
        return Err(format!(
            "--horizontal-pod-autoscaler-tolerance: {} is not in [0, 1)",
            f.horizontal_pod_autoscaler_tolerance
        ));
    }
    if f.concurrent_horizontal_pod_autoscaler_syncs == 0 {
        return Err("--concurrent-horizontal-pod-autoscaler-syncs: must be greater than 0".into());
    }
    Ok(())
}

/// When an HPA was last synced, and which version of its spec (a spec
/// change, or a new HPA under the same name, is synced at once).
#[derive(Debug, Clone)]
struct LastSync {
    at: tokio::time::Instant,
    uid: Option<String>,
    generation: Option<i64>,
}

/// What the workers share.
pub struct Context {
    client: Client,
    metrics: Arc<dyn MetricsSource>,
    hpas: Store<HorizontalPodAutoscaler>,
    pods: Store<PodView>,
    recorder: Arc<EventRecorder>,
    flags: Flags,
    histories: Mutex<HashMap<ObjectKey, History>>,
    last_sync: Mutex<HashMap<ObjectKey, LastSync>>,
}

/// A condition type.
const ABLE_TO_SCALE: &str = "AbleToScale";
const SCALING_ACTIVE: &str = "ScalingActive";
const SCALING_LIMITED: &str = "ScalingLimited";

/// Sets a condition, keeping its transition time when its status holds
/// (Kubernetes' `setConditionInList`).
fn set_condition(
    status: &mut HorizontalPodAutoscalerStatus,
    type_: &str,
    value: bool,
    reason: &str,
    message: impl Into<String>,
    now: Timestamp,
) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let i = match conditions.iter().position(|c| c.type_ == type_) {
        Some(i) => i,
        None => {
            conditions.push(HorizontalPodAutoscalerCondition { type_: type_.into(), ..Default::default() });
            conditions.len() - 1
        }
    };
    let condition = &mut conditions[i];
    let value = if value { "True" } else { "False" };
    if condition.status != value {
        condition.last_transition_time = Some(Time(now));
    }
    condition.status = value.into();
    condition.reason = Some(reason.into());
    condition.message = Some(message.into());
}

/// A condition to set later: (type, status, reason, message).
type PendingCondition = (&'static str, bool, &'static str, String);

/// An Event to record: (type, reason, message).
type PendingEvent = (EventType, &'static str, String);

/// The outcome of [`plan`]: the status to write, the rescale to make and
/// the events to record.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The new status (conditions included).
    pub status: HorizontalPodAutoscalerStatus,
    /// The replicas to write to the Scale and why, if they change.
    pub rescale: Option<(i32, String)>,
    /// Events about the HPA.
    pub events: Vec<PendingEvent>,
}

/// What [`plan`] reads besides the HPA and its Scale.
pub struct Inputs<'a> {
    /// The cached pods.
    pub pods: &'a Store<PodView>,
    /// Usage.
    pub metrics: &'a dyn MetricsSource,
    /// The flags.
    pub flags: &'a Flags,
    /// This HPA's history.
    pub history: &'a Mutex<History>,
}

impl Flags {
    fn calculator(&self) -> Calculator {
        Calculator {
            tolerance: self.horizontal_pod_autoscaler_tolerance,
            cpu_initialization_period: self.horizontal_pod_autoscaler_cpu_initialization_period,
            delay_of_initial_readiness: self.horizontal_pod_autoscaler_initial_readiness_delay,
        }
    }
}

/// The PodMetrics of one sync, read once for every metric.
struct MetricsCache<'a> {
    source: &'a dyn MetricsSource,
    namespace: &'a str,
    selector: &'a str,
    items: Option<Result<Vec<Value>, String>>,
}

impl MetricsCache<'_> {
    async fn resource(&mut self, resource: &str) -> Result<PodMetrics, String> {
        if self.items.is_none() {
            self.items = Some(self.source.pod_metrics(self.namespace, self.selector).await);
        }
        let items = self.items.as_ref().expect("just filled").as_ref().map_err(Clone::clone)?;
        metrics::resource_metrics(items, resource)
    }
}

/// One metric's proposal: replicas, the metric's description, its status.
type Proposal = (i32, String, MetricStatus);

/// The proposal of one metric, or the error and the ScalingActive condition
/// it sets (Kubernetes' `computeReplicasForMetric`).
async fn compute_metric(
    spec: &MetricSpec,
    current: i32,
    pods: &[Arc<PodView>],
    cache: &mut MetricsCache<'_>,
    calc: &Calculator,
    now: Timestamp,
) -> Result<Proposal, (String, &'static str)> {
    let source = match (spec.type_.as_str(), spec.resource.as_ref()) {
        ("Resource", Some(source)) => source,
        ("Resource", None) => {
            return Err(("invalid resource metric source: no resource set".into(), "FailedGetResourceMetric"));
        }
        (other, _) => return Err((format!("unknown metric source type \"{other}\""), "InvalidMetricSourceType")),
    };
    let resource = source.name.as_str();
    let target = &source.target;
    let failed = |e: String| (e, "FailedGetResourceMetric");
    let status = |current: MetricValueStatus| MetricStatus {
        type_: "Resource".into(),
        resource: Some(ResourceMetricStatus { name: resource.into(), current }),
        ..Default::default()
    };
    let milli = |raw: i64| Quantity(quantity::Quantity::from_millis(raw).to_canonical(Format::DecimalSI));
    if let Some(average) = &target.average_value {
        let target_milli = quantity::parse_k8s(average).map(|q| i64::try_from(q.millis()).unwrap_or(i64::MAX));
        let result = match target_milli {
            Err(e) => Err(format!("invalid average value target {:?}: {e}", average.0)),
            Ok(t) => match cache.resource(resource).await {
                Err(e) => Err(format!("unable to get metrics for resource {resource}: {e}")),
                Ok(m) => calc.raw_resource_replicas(current, t.max(1), resource, pods, &m, now),
            },
        };
        let (replicas, raw) = result.map_err(|e| failed(format!("failed to get {resource} usage: {e}")))?;
        let current = MetricValueStatus { average_value: Some(milli(raw)), ..Default::default() };
        return Ok((replicas, format!("{resource} resource"), status(current)));
    }
    let Some(utilization) = target.average_utilization else {
        return Err(failed(
            "invalid resource metric source: neither an average utilization target nor an average value (usage) target was set"
                .into(),
        ));
    };
    let result = match cache.resource(resource).await {
        Err(e) => Err(format!("unable to get metrics for resource {resource}: {e}")),
        Ok(m) => calc.resource_replicas(current, utilization.max(1), resource, pods, &m, now),
    };
    let p = result.map_err(|e| failed(format!("failed to get {resource} utilization: {e}")))?;
    let current = MetricValueStatus {
        average_utilization: Some(p.utilization),
        average_value: Some(milli(p.raw_average)),
        ..Default::default()
    };
    Ok((p.replicas, format!("{resource} resource utilization (percentage of request)"), status(current)))
}

/// The replicas the metrics ask for (the largest proposal) and which metric
/// asked, or the error; either way each metric's status (Kubernetes'
/// `computeReplicasForMetrics`).
async fn compute_metrics(
    hpa: &HorizontalPodAutoscaler,
    scale: &Scale,
    current: i32,
    inputs: &Inputs<'_>,
    conditions: &mut Vec<PendingCondition>,
    events: &mut Vec<PendingEvent>,
    now: Timestamp,
) -> (Result<(i32, String), String>, Vec<MetricStatus>) {
    let namespace = hpa.metadata.namespace.as_deref().unwrap_or_default();
    let raw_selector = scale.status.as_ref().and_then(|s| s.selector.clone()).unwrap_or_default();
    if raw_selector.is_empty() {
        let message = "selector is required".to_string();
        events.push((EventType::Warning, "SelectorRequired", message.clone()));
        conditions.push((
            SCALING_ACTIVE,
            false,
            "InvalidSelector",
            "the HPA target's scale is missing a selector".into(),
        ));
        return (Err(message), Vec::new());
    }
    let selector = match Selector::parse(&raw_selector) {
        Ok(s) => s,
        Err(e) => {
            let message = format!("couldn't convert selector into a corresponding internal selector object: {e}");
            events.push((EventType::Warning, "InvalidSelector", message.clone()));
            conditions.push((SCALING_ACTIVE, false, "InvalidSelector", message.clone()));
            return (Err(message), Vec::new());
        }
    };
    let pods = inputs.pods.select_namespace(namespace, &selector);
    let calc = inputs.flags.calculator();
    let specs = hpa.spec.as_ref().and_then(|s| s.metrics.clone()).unwrap_or_default();
    let mut cache = MetricsCache { source: inputs.metrics, namespace, selector: &raw_selector, items: None };
    let mut statuses = vec![MetricStatus::default(); specs.len()];
    let (mut replicas, mut metric) = (0, String::new());
    let mut invalid: Vec<(String, &'static str)> = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        match compute_metric(spec, current, &pods, &mut cache, &calc, now).await {
            Ok((proposal, name, status)) => {
                statuses[i] = status;
                if replicas == 0 || proposal > replicas {
                    (replicas, metric) = (proposal, name);
                }
            }
            Err((message, reason)) => {
                events.push((EventType::Warning, reason, message.clone()));
                invalid.push((message, reason));
            }
        }
    }
    if let Some((first, reason)) = invalid.first()
        && (invalid.len() >= specs.len() || replicas < current)
    {
        let message = format!("the HPA was unable to compute the replica count: {first}");
        conditions.push((SCALING_ACTIVE, false, reason, message));
        let error =
            format!("invalid metrics ({} invalid out of {}), first error is: {first}", invalid.len(), specs.len());
        return (Err(error), statuses);
    }
    if specs.is_empty() {
        return (Err("no metrics to compute a replica count from".into()), statuses);
    }
    let message = format!("the HPA was able to successfully calculate a replica count from {metric}");
    conditions.push((SCALING_ACTIVE, true, "ValidMetricFound", message));
    (Ok((replicas, metric)), statuses)
}

/// What to do for `hpa` whose target's Scale is `scale` (Kubernetes'
/// `reconcileAutoscaler`, minus the writes): the status, the rescale and
/// the events.
pub async fn plan(hpa: &HorizontalPodAutoscaler, scale: &Scale, inputs: &Inputs<'_>, now: Timestamp) -> Plan {
    let spec = hpa.spec.clone().unwrap_or_default();
    let min = spec.min_replicas.unwrap_or(1);
    let max = spec.max_replicas;
    let current = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    let mut status = hpa.status.clone().unwrap_or_default();
    status.observed_generation = hpa.metadata.generation;
    let mut events = Vec::new();
    set_condition(
        &mut status,
        ABLE_TO_SCALE,
        true,
        "SucceededGetScale",
        "the HPA controller was able to get the target's current scale",
        now,
    );
    inputs.history.lock().unwrap_or_else(|p| p.into_inner()).record_initial(current, now);
    let mut statuses = Vec::new();
    let (desired, reason) = if current == 0 && min != 0 {
        set_condition(
            &mut status,
            SCALING_ACTIVE,
            false,
            "ScalingDisabled",
            "scaling is disabled since the replica count of the target is zero",
            now,
        );
        (current, String::new())
    } else if current > max {
        (max, "Current number of replicas above Spec.MaxReplicas".to_string())
    } else if current < min {
        (min, "Current number of replicas below Spec.MinReplicas".to_string())
    } else {
        let mut conditions = Vec::new();
        let (result, metric_statuses) =
            compute_metrics(hpa, scale, current, inputs, &mut conditions, &mut events, now).await;
        for (type_, value, reason, message) in conditions {
            set_condition(&mut status, type_, value, reason, message, now);
        }
        statuses = metric_statuses;
        let (metric_desired, metric) = match result {
            Ok(r) => r,
            Err(e) => {
                events.push((EventType::Warning, "FailedComputeMetricsReplicas", e));
                status.current_replicas = Some(current);
                status.current_metrics = (!statuses.is_empty()).then_some(statuses);
                return Plan { status, rescale: None, events };
            }
        };
        let reason = if metric_desired > current {
            format!("{metric} above target")
        } else if metric_desired < current {
            "All metrics below target".to_string()
        } else {
            String::new()
        };
        let mut history = inputs.history.lock().unwrap_or_else(|p| p.into_inner());
        let normalized = match &spec.behavior {
            None => history.normalize(
                inputs.flags.horizontal_pod_autoscaler_downscale_stabilization,
                current,
                metric_desired,
                min,
                max,
                now,
            ),
            Some(b) => {
                let behavior = Behavior::of(b, inputs.flags.horizontal_pod_autoscaler_downscale_stabilization);
                history.normalize_with_behavior(&behavior, current, metric_desired, min, max, now)
            }
        };
        let (_, able_reason, able_message) = normalized.able_to_scale;
        set_condition(&mut status, ABLE_TO_SCALE, true, able_reason, able_message, now);
        let (limited, limited_reason, limited_message) = normalized.scaling_limited;
        set_condition(&mut status, SCALING_LIMITED, limited, limited_reason, limited_message, now);
        (normalized.replicas, reason)
    };
    status.current_replicas = Some(current);
    status.desired_replicas = desired;
    status.current_metrics = (!statuses.is_empty()).then_some(statuses);
    let rescale = (desired != current).then_some((desired, reason));
    Plan { status, rescale, events }
}

/// The Scale of the HPA's target, or what went wrong reading it.
async fn get_scale(
    client: &Client,
    hpa: &HorizontalPodAutoscaler,
) -> Result<(Scale, &'static rkube_api::ResourceInfo), String> {
    let target = &hpa.spec.as_ref().ok_or("the HPA has no spec")?.scale_target_ref;
    let api_version = target.api_version.as_deref().unwrap_or("v1");
    let info = rkube_api::resource::for_kind(api_version, &target.kind).map_err(|e| e.to_string())?;
    if !rkube_api::scale::has_scale(info) {
        return Err(format!("{} (kind \"{}\") has no scale subresource", info.plural, target.kind));
    }
    let namespace = hpa.metadata.namespace.as_deref().unwrap_or_default();
    let object = client.get_scale(info, namespace, &target.name).await.map_err(|e| e.to_string())?;
    let scale = rkube_client::client::decode(&object).map_err(|e| e.to_string())?;
    Ok((scale, info))
}

/// Syncs the HPA `key`: see the module docs.
pub async fn reconcile(key: ObjectKey, ctx: Arc<Context>) -> Result<Action, Error> {
    let period = ctx.flags.horizontal_pod_autoscaler_sync_period;
    let Some(hpa) = ctx.hpas.get(&key) else {
        ctx.histories.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
        ctx.last_sync.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
        return Ok(Action::AwaitChange);
    };
    if hpa.metadata.deletion_timestamp.is_some() {
        return Ok(Action::AwaitChange);
    }
    // At most one sync per period, unless the spec changed.
    {
        let mut last = ctx.last_sync.lock().unwrap_or_else(|p| p.into_inner());
        let tick = tokio::time::Instant::now();
        if let Some(l) = last.get(&key)
            && l.generation == hpa.metadata.generation
            && l.uid == hpa.metadata.uid
            && tick.duration_since(l.at) < period
        {
            return Ok(Action::RequeueAfter(period - tick.duration_since(l.at)));
        }
        let (uid, generation) = (hpa.metadata.uid.clone(), hpa.metadata.generation);
        last.insert(key.clone(), LastSync { at: tick, uid, generation });
    }
    let now = Timestamp::now();
    let reference = object_ref(hpa.as_ref());
    let api = Api::<HorizontalPodAutoscaler>::namespaced(ctx.client.clone(), &key.namespace);
    let (scale, info) = match get_scale(&ctx.client, &hpa).await {
        Ok(s) => s,
        Err(message) => {
            ctx.recorder.record(&reference, EventType::Warning, "FailedGetScale", &message);
            let mut status = hpa.status.clone().unwrap_or_default();
            status.observed_generation = hpa.metadata.generation;
            let text = format!("the HPA controller was unable to get the target's current scale: {message}");
            set_condition(&mut status, ABLE_TO_SCALE, false, "FailedGetScale", text, now);
            write_status(&api, &key, &hpa, status).await?;
            debug!(controller = NAME, hpa = %key, error = %message, "cannot read the target's scale");
            return Ok(Action::RequeueAfter(period));
        }
    };
    let history = {
        let histories = ctx.histories.lock().unwrap_or_else(|p| p.into_inner());
        Mutex::new(histories.get(&key).cloned().unwrap_or_default())
    };
    let inputs = Inputs { pods: &ctx.pods, metrics: ctx.metrics.as_ref(), flags: &ctx.flags, history: &history };
    let Plan { mut status, rescale, events } = plan(&hpa, &scale, &inputs, now).await;
    for (type_, reason, message) in events {
        ctx.recorder.record(&reference, type_, reason, &message);
    }
    if let Some((desired, reason)) = rescale {
        let current = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        let mut update = scale.clone();
        update.spec.get_or_insert_with(Default::default).replicas = Some(desired);
        let body = serde_json::to_vec(&update).expect("a Scale always serializes");
        let target = hpa.spec.as_ref().map(|s| s.scale_target_ref.name.clone()).unwrap_or_default();
        match ctx.client.update_scale(info, &key.namespace, &target, body).await {
            Ok(_) => {
                let message = format!("New size: {desired}; reason: {reason}");
                ctx.recorder.record(&reference, EventType::Normal, "SuccessfulRescale", &message);
                let text = format!("the HPA controller was able to update the target scale to {desired}");
                set_condition(&mut status, ABLE_TO_SCALE, true, "SucceededRescale", text, now);
                status.last_scale_time = Some(Time(now));
                if let Some(b) = hpa.spec.as_ref().and_then(|s| s.behavior.as_ref()) {
                    let behavior = Behavior::of(b, ctx.flags.horizontal_pod_autoscaler_downscale_stabilization);
                    history.lock().unwrap_or_else(|p| p.into_inner()).record_scale(&behavior, current, desired, now);
                }
                info!(controller = NAME, hpa = %key, from = current, to = desired, reason, "rescaled");
            }
            Err(e) => {
                let message = format!("New size: {desired}; reason: {reason}; error: {e}");
                ctx.recorder.record(&reference, EventType::Warning, "FailedRescale", &message);
                let text = format!("the HPA controller was unable to update the target scale: {e}");
                set_condition(&mut status, ABLE_TO_SCALE, false, "FailedUpdateScale", text, now);
                status.desired_replicas = current;
                warn!(controller = NAME, hpa = %key, error = %e, "rescale failed");
            }
        }
    }
    let history = history.into_inner().unwrap_or_else(|p| p.into_inner());
    ctx.histories.lock().unwrap_or_else(|p| p.into_inner()).insert(key.clone(), history);
    write_status(&api, &key, &hpa, status).await?;
    Ok(Action::RequeueAfter(period))
}

/// Writes `status` when it differs from the stored one.
async fn write_status(
    api: &Api<HorizontalPodAutoscaler>,
    key: &ObjectKey,
    hpa: &HorizontalPodAutoscaler,
    status: HorizontalPodAutoscalerStatus,
) -> Result<(), Error> {
    let current = serde_json::to_value(&hpa.status).expect("a status always serializes");
    let desired = serde_json::to_value(&status).expect("a status always serializes");
    if current == desired {
        return Ok(());
    }
    match api.patch_status(&key.name, &status_patch(&current, &desired)).await {
        Ok(_) => Ok(()),
        // Deleted meanwhile: nothing left to report on.
        Err(e) if e.reason == Reason::NotFound => Ok(()),
        Err(e) => Err(Error::api(key, "updating the status of")(e)),
    }
}

fn start(ctx: &ControllerContext, tracker: &TaskTracker, shutdown: CancellationToken) -> Result<(), String> {
    let flags = ctx.flags.horizontalpodautoscaler.clone();
    let hpas = ctx.informers.get::<HorizontalPodAutoscaler>();
    let pods = ctx.informers.get::<PodView>();
    let context = Arc::new(Context {
        client: ctx.client.clone(),
        metrics: Arc::new(ctx.client.clone()),
        hpas: hpas.store().clone(),
        pods: pods.store().clone(),
        recorder: ctx.recorder(COMPONENT, tracker, shutdown.clone()),
        flags: flags.clone(),
        histories: Mutex::default(),
        last_sync: Mutex::default(),
    });
    let queue = WorkQueue::new();
    let (tracker2, observer) = (tracker.clone(), ctx.observer());
    tracker.spawn(async move {
        let synced = tokio::select! {
            _ = shutdown.cancelled() => return,
            synced = async { hpas.wait_until_synced().await && pods.wait_until_synced().await } => synced,
        };
        if !synced {
            return;
        }
        let resync = enqueue_all(hpas.store().clone(), queue.clone());
        resync();
        forward(
            &hpas,
            queue.clone(),
            &tracker2,
            shutdown.clone(),
            |h: &HorizontalPodAutoscaler| vec![ObjectKey::of(h)],
            resync,
        );
        let reconcile = move |key| reconcile(key, context.clone());
        spawn_workers(
            NAME,
            queue,
            flags.concurrent_horizontal_pod_autoscaler_syncs,
            reconcile,
            observer,
            &tracker2,
            shutdown,
        );
        info!(controller = NAME, "started");
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::metrics::fake::FakeMetrics;
    use super::*;
    use k8s_openapi::jiff::SignedDuration;
    use rkube_client::store::Writer;
    use serde_json::json;

    fn flags() -> Flags {
        Flags {
            concurrent_horizontal_pod_autoscaler_syncs: 1,
            horizontal_pod_autoscaler_sync_period: Duration::from_secs(15),
            horizontal_pod_autoscaler_tolerance: 0.1,
            horizontal_pod_autoscaler_downscale_stabilization: Duration::from_secs(300),
            horizontal_pod_autoscaler_cpu_initialization_period: Duration::from_secs(300),
            horizontal_pod_autoscaler_initial_readiness_delay: Duration::from_secs(30),
        }
    }

    fn now() -> Timestamp {
        "2026-01-01T01:00:00Z".parse().unwrap()
    }

    fn hpa(metrics: Value) -> HorizontalPodAutoscaler {
        serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "ns", "generation": 2},
            "spec": {"scaleTargetRef": {"apiVersion": "v1", "kind": "ReplicationController", "name": "web"},
                     "minReplicas": 1, "maxReplicas": 5, "metrics": metrics}}))
        .unwrap()
    }

    fn cpu_target(percent: i32) -> Value {
        json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": percent}}}])
    }

    fn scale(replicas: i32, selector: &str) -> Scale {
        serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "ns"}, "spec": {"replicas": replicas},
            "status": {"replicas": replicas, "selector": selector}}))
        .unwrap()
    }

    fn pods(n: usize, request: Option<&str>) -> Store<PodView> {
        let writer = Writer::new();
        let started = (now() - SignedDuration::from_secs(3600)).to_string();
        for i in 0..n {
            let resources = request.map_or(json!({}), |r| json!({"requests": {"cpu": r}}));
            let pod: PodView = serde_json::from_value(json!({
                "metadata": {"name": format!("web-{i}"), "namespace": "ns", "labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "resources": resources}]},
                "status": {"phase": "Running", "startTime": started,
                           "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": started}]}}))
            .unwrap();
            writer.apply(Arc::new(pod));
        }
        writer.as_reader()
    }

    fn usage(cpu: &[&str]) -> FakeMetrics {
        let items = cpu
            .iter()
            .enumerate()
            .map(|(i, c)| {
                json!({"metadata": {"name": format!("web-{i}"), "namespace": "ns"}, "timestamp": now().to_string(),
                       "window": "10s", "containers": [{"name": "c", "usage": {"cpu": c}}]})
            })
            .collect();
        FakeMetrics { answer: std::sync::Mutex::new(Ok(items)) }
    }

    async fn run(hpa: &HorizontalPodAutoscaler, scale: &Scale, pods: &Store<PodView>, metrics: &FakeMetrics) -> Plan {
        let (flags, history) = (flags(), Mutex::new(History::default()));
        let inputs = Inputs { pods, metrics, flags: &flags, history: &history };
        plan(hpa, scale, &inputs, now()).await
    }

    fn condition<'a>(status: &'a HorizontalPodAutoscalerStatus, type_: &str) -> (&'a str, &'a str, &'a str) {
        let c = status.conditions.iter().flatten().find(|c| c.type_ == type_).expect("the condition");
        (c.status.as_str(), c.reason.as_deref().unwrap_or(""), c.message.as_deref().unwrap_or(""))
    }

    #[tokio::test]
    async fn busy_pods_scale_up_with_kubernetes_reason() {
        let plan = run(&hpa(cpu_target(50)), &scale(1, "app=web"), &pods(1, Some("100m")), &usage(&["100m"])).await;
        assert_eq!(
            plan.rescale,
            Some((2, "cpu resource utilization (percentage of request) above target".to_string()))
        );
        let s = &plan.status;
        assert_eq!((s.current_replicas, s.desired_replicas, s.observed_generation), (Some(1), 2, Some(2)));
        let metric = &s.current_metrics.as_ref().unwrap()[0];
        assert_eq!(metric.resource.as_ref().unwrap().current.average_utilization, Some(100));
        assert_eq!(metric.resource.as_ref().unwrap().current.average_value.as_ref().unwrap().0, "100m");
        assert_eq!(condition(s, "AbleToScale").1, "ReadyForNewScale");
        assert_eq!(
            condition(s, "ScalingActive"),
            (
                "True",
                "ValidMetricFound",
                "the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)"
            )
        );
        assert_eq!(condition(s, "ScalingLimited").1, "DesiredWithinRange");
        assert!(plan.events.is_empty());
    }

    #[tokio::test]
    async fn scale_up_is_capped_at_max_replicas() {
        let plan = run(&hpa(cpu_target(10)), &scale(3, "app=web"), &pods(3, Some("100m")), &usage(&["100m"; 3])).await;
        assert_eq!(plan.rescale.map(|r| r.0), Some(5));
        assert_eq!(
            condition(&plan.status, "ScalingLimited"),
            ("True", "TooManyReplicas", "the desired replica count is more than the maximum replica count")
        );
    }

    #[tokio::test]
    async fn a_missing_request_stops_scaling() {
        let plan = run(&hpa(cpu_target(50)), &scale(1, "app=web"), &pods(1, None), &usage(&["900m"])).await;
        assert!(plan.rescale.is_none());
        let (status, reason, message) = condition(&plan.status, "ScalingActive");
        assert_eq!((status, reason), ("False", "FailedGetResourceMetric"));
        assert_eq!(
            message,
            "the HPA was unable to compute the replica count: failed to get cpu utilization: missing request for cpu in container c of Pod web-0"
        );
        let reasons: Vec<_> = plan.events.iter().map(|e| e.1).collect();
        assert_eq!(reasons, ["FailedGetResourceMetric", "FailedComputeMetricsReplicas"]);
        assert!(
            plan.events[1].2.starts_with("invalid metrics (1 invalid out of 1), first error is: failed to get cpu")
        );
    }

    #[tokio::test]
    async fn no_metrics_means_no_scaling() {
        let none = FakeMetrics { answer: std::sync::Mutex::new(Ok(Vec::new())) };
        let plan = run(&hpa(cpu_target(50)), &scale(2, "app=web"), &pods(2, Some("100m")), &none).await;
        assert!(plan.rescale.is_none());
        assert_eq!(condition(&plan.status, "ScalingActive").1, "FailedGetResourceMetric");
        let failing = FakeMetrics { answer: std::sync::Mutex::new(Err("the server is unavailable".into())) };
        let plan = run(&hpa(cpu_target(50)), &scale(2, "app=web"), &pods(2, Some("100m")), &failing).await;
        assert!(plan.rescale.is_none());
        assert!(condition(&plan.status, "ScalingActive").2.contains("unable to get metrics for resource cpu"));
    }

    #[tokio::test]
    async fn a_target_scaled_to_zero_is_left_alone() {
        let plan = run(&hpa(cpu_target(50)), &scale(0, "app=web"), &pods(0, None), &usage(&[])).await;
        assert!(plan.rescale.is_none());
        assert_eq!(
            condition(&plan.status, "ScalingActive"),
            ("False", "ScalingDisabled", "scaling is disabled since the replica count of the target is zero")
        );
        assert_eq!(plan.status.desired_replicas, 0);
    }

    #[tokio::test]
    async fn replicas_outside_the_bounds_come_back_within() {
        let plan = run(&hpa(cpu_target(50)), &scale(9, "app=web"), &pods(0, None), &usage(&[])).await;
        assert_eq!(plan.rescale, Some((5, "Current number of replicas above Spec.MaxReplicas".to_string())));
    }

    #[tokio::test]
    async fn a_scale_without_selector_is_invalid() {
        let plan = run(&hpa(cpu_target(50)), &scale(1, ""), &pods(1, Some("1")), &usage(&["1"])).await;
        assert!(plan.rescale.is_none());
        assert_eq!(
            condition(&plan.status, "ScalingActive"),
            ("False", "InvalidSelector", "the HPA target's scale is missing a selector")
        );
        assert_eq!(plan.events[0].1, "SelectorRequired");
    }

    #[tokio::test]
    async fn idle_pods_scale_down_only_after_the_window() {
        let (flags, history) = (flags(), Mutex::new(History::default()));
        let (store, idle) = (pods(3, Some("100m")), usage(&["1m", "1m", "1m"]));
        let inputs = Inputs { pods: &store, metrics: &idle, flags: &flags, history: &history };
        let h = hpa(cpu_target(50));
        let first = plan(&h, &scale(3, "app=web"), &inputs, now()).await;
        assert!(first.rescale.is_none());
        assert_eq!(condition(&first.status, "AbleToScale").1, "ScaleDownStabilized");
        let later = now() + SignedDuration::from_secs(301);
        let second = plan(&h, &scale(3, "app=web"), &inputs, later).await;
        assert_eq!(second.rescale, Some((1, "All metrics below target".to_string())));
    }

    #[test]
    fn conditions_keep_their_transition_time_while_their_status_holds() {
        let mut s = HorizontalPodAutoscalerStatus::default();
        set_condition(&mut s, ABLE_TO_SCALE, true, "A", "a", now());
        let later = now() + SignedDuration::from_secs(60);
        set_condition(&mut s, ABLE_TO_SCALE, true, "B", "b", later);
        let c = &s.conditions.as_ref().unwrap()[0];
        assert_eq!((c.reason.as_deref(), c.last_transition_time.as_ref().map(|t| t.0)), (Some("B"), Some(now())));
        set_condition(&mut s, ABLE_TO_SCALE, false, "C", "c", later);
        assert_eq!(s.conditions.as_ref().unwrap()[0].last_transition_time.as_ref().map(|t| t.0), Some(later));
    }
}
