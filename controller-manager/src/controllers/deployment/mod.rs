//! The deployment controller: a Deployment runs its pods through
//! ReplicaSets, one per pod template (named `<deployment>-<pod-template-hash>`),
//! and rolls from the old ones to the new one (Kubernetes'
//! `pkg/controller/deployment`).
//!
//! [`reconcile`] claims the ReplicaSets its selector matches, finds the one
//! whose template equals the Deployment's (ignoring the hash label) or
//! creates it with the next revision, then:
//! - **RollingUpdate**: grows the new set within `maxSurge` and shrinks the
//!   old ones while `replicas - maxUnavailable` pods stay available
//!   ([`rollout`]); a template that never becomes ready therefore stops
//!   the rollout at maxUnavailable;
//! - **Recreate**: scales every old set to 0, waits until their pods are
//!   gone, then scales the new one up;
//! - a change of `replicas` while several sets have pods is shared among
//!   them in proportion (proportional scaling); a paused Deployment only
//!   scales.
//!
//! Status: replicas, updated/ready/available/unavailableReplicas,
//! observedGeneration, the `Available` condition and the `Progressing`
//! condition with `progressDeadlineSeconds` (`ProgressDeadlineExceeded`),
//! exactly the fields `kubectl rollout status` reads. Old sets beyond
//! `revisionHistoryLimit` with no pods are deleted once a rollout completes.
//! Each change of a set's size is a `ScalingReplicaSet` event.

pub mod rollout;

use crate::controllers::template_hash::{POD_TEMPLATE_HASH, template_hash};
use crate::controllers::{Controller, ControllerContext, Error};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use rkube_api::selector::Selector;
use rkube_client::controller::{Action, claim, controller_ref, plan_claim, spawn_workers, status_patch};
use rkube_client::events::{EventRecorder, EventType, object_ref};
use rkube_client::informers::{controller_of, enqueue_all, forward, owner_keys};
use rkube_client::{Api, ApiError, DeleteParams, ObjectKey, Reason, Store, WorkQueue};
use rollout::Replicas;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

/// The controller's name in `--controllers`.
pub const NAME: &str = "deployment";

/// The registry entry.
pub const CONTROLLER: Controller = Controller {
    name: NAME,
    about: "rolls Deployments out through ReplicaSets",
    enabled_by_default: true,
    check: |_| Ok(()),
    start,
};

/// The deployment controller's flags (kube-controller-manager's names).
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
#[command(next_help_heading = "Deployment controller")]
pub struct Flags {
    /// Deployments reconciled at once.
    #[arg(long, env = "RKUBE_CONCURRENT_DEPLOYMENT_SYNCS", default_value_t = 5)]
    pub concurrent_deployment_syncs: usize,
}

/// The revision of a ReplicaSet (and of the Deployment: its newest).
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// The Deployment's replicas when the set was last sized.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// replicas + maxSurge when the set was last sized.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// Annotations of the Deployment not copied to its ReplicaSets.
const NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    DESIRED_REPLICAS,
    MAX_REPLICAS,
];
/// Kubernetes' `source.component` for the controller's events.
const COMPONENT: &str = "deployment-controller";

/// The controller's shared state.
pub struct Context {
    deployments: Store<Deployment>,
    sets: Store<ReplicaSet>,
    client: rkube_client::Client,
    recorder: Arc<EventRecorder>,
}

/// A claimed ReplicaSet with what the rollout reads of it.
#[derive(Clone)]
struct Set {
    rs: Arc<ReplicaSet>,
    revision: i64,
}

impl Set {
    fn name(&self) -> &str {
        self.rs.metadata.name.as_deref().unwrap_or_default()
    }
    fn desired(&self) -> i32 {
        self.rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }
    fn status(&self) -> k8s_openapi::api::apps::v1::ReplicaSetStatus {
        self.rs.status.clone().unwrap_or_default()
    }
    fn replicas(&self) -> Replicas {
        Replicas { name: self.name().to_string(), desired: self.desired(), available: self.available() }
    }
    fn available(&self) -> i32 {
        self.status().available_replicas.unwrap_or(0)
    }
}

fn revision_of(rs: &ReplicaSet) -> i64 {
    rs.metadata.annotations.as_ref().and_then(|a| a.get(REVISION)).and_then(|r| r.parse().ok()).unwrap_or(0)
}

/// Whether two templates are equal once the pod-template-hash label is ignored.
fn same_template(a: Option<&PodTemplateSpec>, b: &PodTemplateSpec) -> bool {
    let strip = |t: &PodTemplateSpec| {
        let mut t = t.clone();
        if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            labels.remove(POD_TEMPLATE_HASH);
        }
        serde_json::to_value(t).unwrap_or_default()
    };
    a.is_some_and(|a| strip(a) == strip(b))
}

/// One reconcile's view: the Deployment, its key, and how to write.
struct Sync<'a> {
    ctx: &'a Context,
    key: &'a ObjectKey,
    d: &'a Deployment,
    sets_api: Api<ReplicaSet>,
}

impl Sync<'_> {
    fn err(&self, action: impl Into<String>) -> impl FnOnce(ApiError) -> Error + '_ {
        Error::api(self.key, action)
    }

    fn replicas(&self) -> i32 {
        self.d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }

    fn is_recreate(&self) -> bool {
        self.d.spec.as_ref().and_then(|s| s.strategy.as_ref()).and_then(|s| s.type_.as_deref()) == Some("Recreate")
    }

    /// (maxSurge, maxUnavailable) as counts; Recreate has neither.
    fn fenceposts(&self) -> (i32, i32) {
        if self.is_recreate() {
            return (0, 0);
        }
        let ru = self.d.spec.as_ref().and_then(|s| s.strategy.as_ref()).and_then(|s| s.rolling_update.as_ref());
        let pct = IntOrString::String("25%".into());
        let surge = ru.and_then(|r| r.max_surge.clone()).unwrap_or_else(|| pct.clone());
        let unavailable = ru.and_then(|r| r.max_unavailable.clone()).unwrap_or(pct);
        rollout::fenceposts(&surge, &unavailable, self.replicas())
    }

    /// Sets `set`'s replicas (and its sizing annotations) with a write
    /// conditional on what the cache saw; a `ScalingReplicaSet` event.
    async fn scale(&self, set: &Set, to: i32) -> Result<(), Error> {
        let from = set.desired();
        let max = self.replicas() + self.fenceposts().0;
        let patch = json!({
            "metadata": {"resourceVersion": set.rs.metadata.resource_version,
                "annotations": {DESIRED_REPLICAS: self.replicas().to_string(), MAX_REPLICAS: max.to_string()}},
            "spec": {"replicas": to},
        });
        self.sets_api
            .patch(set.name(), &patch)
            .await
            .map_err(self.err(format!("scaling replica set {}", set.name())))?;
        if from != to {
            let direction = if to > from { "up" } else { "down" };
            let message = format!("Scaled {direction} replica set {} from {from} to {to}", set.name());
            self.ctx.recorder.record(&object_ref(self.d), EventType::Normal, "ScalingReplicaSet", &message);
        }
        Ok(())
    }

    /// Creates the ReplicaSet for the Deployment's current template with
    /// `replicas` and the next revision.
    async fn create_new(&self, template: &PodTemplateSpec, replicas: i32, revision: i64) -> Result<Set, Error> {
        let collision_count = self.d.status.as_ref().and_then(|s| s.collision_count);
        let hash = template_hash(template, collision_count);
        let name = format!("{}-{hash}", self.key.name);
        let mut template = template.clone();
        let meta = template.metadata.get_or_insert_with(Default::default);
        meta.labels.get_or_insert_with(BTreeMap::new).insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let labels = meta.labels.clone();
        let mut selector: LabelSelector = self.d.spec.as_ref().map(|s| s.selector.clone()).unwrap_or_default();
        selector.match_labels.get_or_insert_with(BTreeMap::new).insert(POD_TEMPLATE_HASH.into(), hash);
        let mut annotations: BTreeMap<String, String> = self.d.metadata.annotations.clone().unwrap_or_default();
        annotations.retain(|k, _| !NOT_COPIED.contains(&k.as_str()));
        annotations.insert(REVISION.into(), revision.to_string());
        annotations.insert(DESIRED_REPLICAS.into(), self.replicas().to_string());
        annotations.insert(MAX_REPLICAS.into(), (self.replicas() + self.fenceposts().0).to_string());
        let min_ready = self.d.spec.as_ref().and_then(|s| s.min_ready_seconds);
        let rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": self.key.namespace, "labels": labels,
                "annotations": annotations, "ownerReferences": [controller_ref(self.d)]},
            "spec": {"replicas": replicas, "minReadySeconds": min_ready, "selector": selector, "template": template},
        }))
        .expect("a ReplicaSet built from a valid Deployment");
        match self.sets_api.create(&rs).await {
            Ok(created) => {
                let message = format!("Scaled up replica set {name} from 0 to {replicas}");
                self.ctx.recorder.record(&object_ref(self.d), EventType::Normal, "ScalingReplicaSet", &message);
                info!(deployment = %self.key, replicaset = name, revision, "created new replica set");
                Ok(Set { rs: Arc::new(created), revision })
            }
            Err(e) if e.reason == Reason::AlreadyExists => {
                // Ours already, and the cache had not seen it yet: use it.
                let existing = self.sets_api.get_opt(&name).await.map_err(self.err("reading the new replica set"))?;
                if let Some(existing) = existing.filter(|rs| {
                    let ours =
                        controller_of(&rs.metadata).is_some_and(|r| Some(&r.uid) == self.d.metadata.uid.as_ref());
                    ours && same_template(rs.spec.as_ref().and_then(|s| s.template.as_ref()), &template)
                }) {
                    let revision = revision_of(&existing);
                    return Ok(Set { rs: Arc::new(existing), revision });
                }
                // A set of that name with another template: a hash collision.
                // Count it, so the next attempt hashes differently.
                let count = collision_count.unwrap_or(0) + 1;
                let api = Api::<Deployment>::namespaced(self.ctx.client.clone(), &self.key.namespace);
                api.patch_status(&self.key.name, &json!({"status": {"collisionCount": count}}))
                    .await
                    .map_err(self.err("recording a hash collision"))?;
                Err(Error::Api { key: self.key.clone(), action: format!("creating replica set {name}"), source: e })
            }
            Err(e) => {
                Err(Error::Api { key: self.key.clone(), action: format!("creating replica set {name}"), source: e })
            }
        }
    }
}

/// Rolls the Deployment `key` toward its template; see the module docs.
pub async fn reconcile(key: ObjectKey, ctx: Arc<Context>) -> Result<Action, Error> {
    let Some(d) = ctx.deployments.get(&key) else { return Ok(Action::AwaitChange) };
    if d.metadata.deletion_timestamp.is_some() {
        return Ok(Action::AwaitChange);
    }
    let spec = d.spec.clone().unwrap_or_default();
    let selector = Selector::from_label_selector(&spec.selector)
        .map_err(|e| Error::InvalidSelector { key: key.clone(), message: e.message })?;
    if selector.is_empty() {
        let message = "spec.selector: empty selector is invalid for deployment".to_string();
        return Err(Error::InvalidSelector { key: key.clone(), message });
    }
    let sync = Sync { ctx: &ctx, key: &key, d: &d, sets_api: Api::namespaced(ctx.client.clone(), &key.namespace) };
    let owner = controller_ref(d.as_ref());
    let plan = plan_claim(&owner, false, &selector, ctx.sets.list_namespace(&key.namespace));
    let can_adopt = if plan.adopt.is_empty() {
        false
    } else {
        let api = Api::<Deployment>::namespaced(ctx.client.clone(), &key.namespace);
        let live = api.get_opt(&key.name).await.map_err(sync.err("reading"))?;
        live.is_some_and(|l| l.metadata.uid == d.metadata.uid)
    };
    let claimed = claim(&sync.sets_api, &owner, plan, can_adopt).await.map_err(sync.err("claiming replica sets"))?;
    let mut sets: Vec<Set> = claimed.into_iter().map(|rs| Set { revision: revision_of(&rs), rs }).collect();
    // Oldest first (Kubernetes sorts by creation time, then name).
    sets.sort_by(|a, b| {
        let created = |s: &Set| s.rs.metadata.creation_timestamp.as_ref().map(|t| t.0);
        created(a).cmp(&created(b)).then_with(|| a.name().cmp(b.name()))
    });

    let template = spec.template.clone();
    let max_revision = sets.iter().map(|s| s.revision).max().unwrap_or(0);
    let new_index =
        sets.iter().position(|s| same_template(s.rs.spec.as_ref().and_then(|r| r.template.as_ref()), &template));
    let paused = spec.paused == Some(true);
    let replicas = sync.replicas();
    let (surge, max_unavailable) = sync.fenceposts();
    let mut created_new = None;
    let new = match new_index {
        Some(i) => {
            let set = sets.remove(i);
            if set.revision < max_revision {
                // An old template came back (rollout undo): it becomes the newest revision.
                let patch = json!({"metadata": {"annotations": {REVISION: (max_revision + 1).to_string()}}});
                sync.sets_api.patch(set.name(), &patch).await.map_err(sync.err("bumping the revision"))?;
            }
            Some(set)
        }
        None if paused => None,
        None => {
            let all: Vec<Replicas> = sets.iter().map(Set::replicas).collect();
            let fresh = Replicas { name: String::new(), desired: 0, available: 0 };
            let initial = if sync.is_recreate() { 0 } else { rollout::new_rs_replicas(replicas, surge, &fresh, &all) };
            let set = sync.create_new(&template, initial, max_revision + 1).await?;
            created_new = Some(set.name().to_string());
            Some(set)
        }
    };
    let old = sets;

    // A change of replicas while several sets have pods: share it out.
    let mut active: Vec<&Set> = new.iter().chain(old.iter().rev()).filter(|s| s.desired() > 0).collect();
    let scaling_event = active.iter().any(|s| {
        let annotated = s.rs.metadata.annotations.as_ref().and_then(|a| a.get(DESIRED_REPLICAS));
        annotated.is_some_and(|r| r.parse::<i32>().ok() != Some(replicas))
    });
    if scaling_event && active.len() > 1 {
        let allowed = replicas + surge;
        let sizes = rollout::scale_proportionally(&active.iter().map(|s| s.replicas()).collect::<Vec<_>>(), allowed);
        for (set, size) in active.drain(..).zip(sizes) {
            sync.scale(set, size).await?;
        }
        return Ok(Action::AwaitChange);
    }

    if !paused && let Some(new) = &new {
        if sync.is_recreate() {
            let mut old_running = false;
            for set in &old {
                if set.desired() > 0 {
                    sync.scale(set, 0).await?;
                }
                old_running |= set.status().replicas > 0 || set.desired() > 0;
            }
            if !old_running && new.desired() != replicas {
                sync.scale(new, replicas).await?;
            }
        } else {
            let all: Vec<Replicas> = std::iter::once(new).chain(old.iter()).map(Set::replicas).collect();
            let target = rollout::new_rs_replicas(replicas, surge, &new.replicas(), &all);
            if target != new.desired() {
                sync.scale(new, target).await?;
            } else {
                let olds: Vec<Replicas> = old.iter().map(Set::replicas).collect();
                for (name, size) in rollout::scale_down_old(replicas, max_unavailable, &new.replicas(), &olds) {
                    if let Some(set) = old.iter().find(|s| s.name() == name) {
                        sync.scale(set, size).await?;
                    }
                }
            }
        }
    } else if paused && let Some(new) = &new {
        // Paused: scale only, the rollout waits.
        if old.iter().all(|s| s.desired() == 0) && new.desired() != replicas {
            sync.scale(new, replicas).await?;
        }
    }

    let now = Timestamp::now();
    let (status, requeue) = status_of(&d, new.as_ref(), &old, created_new.as_deref(), max_unavailable, now);
    let current = serde_json::to_value(&d.status).unwrap_or_default();
    if status != current {
        let api = Api::<Deployment>::namespaced(ctx.client.clone(), &key.namespace);
        api.patch_status(&key.name, &status_patch(&current, &status)).await.map_err(sync.err("updating status"))?;
    }
    if status["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Progressing" && c["reason"] == NEW_RS_AVAILABLE))
    {
        cleanup(&sync, &old, spec.revision_history_limit.unwrap_or(10)).await?;
    }
    Ok(requeue.map_or(Action::AwaitChange, Action::RequeueAfter))
}

/// Deletes the oldest empty old sets beyond `limit`.
async fn cleanup(sync: &Sync<'_>, old: &[Set], limit: i32) -> Result<(), Error> {
    let mut empty: Vec<&Set> = old
        .iter()
        .filter(|s| s.desired() == 0 && s.status().replicas == 0 && s.rs.metadata.deletion_timestamp.is_none())
        .collect();
    let excess = empty.len().saturating_sub(usize::try_from(limit).unwrap_or(0));
    empty.sort_by_key(|s| s.revision);
    for set in empty.into_iter().take(excess) {
        let params = DeleteParams { uid: set.rs.metadata.uid.clone().unwrap_or_default(), ..Default::default() };
        match sync.sets_api.delete(set.name(), &params).await {
            Ok(_) => {
                info!(deployment = %sync.key, replicaset = set.name(), "deleted an old replica set beyond revisionHistoryLimit")
            }
            Err(e) if e.reason == Reason::NotFound => {}
            Err(e) => return Err(sync.err(format!("deleting old replica set {}", set.name()))(e)),
        }
    }
    Ok(())
}

/// Progressing reason: the rollout finished.
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
/// Progressing reason: no progress within progressDeadlineSeconds.
pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";

fn condition(type_: &str, status: &str, reason: &str, message: &str, now: &str, old: Option<&Value>) -> Value {
    // The transition time moves only when the status does.
    let since = old.filter(|c| c["status"] == status).map_or_else(|| json!(now), |c| c["lastTransitionTime"].clone());
    json!({"type": type_, "status": status, "lastUpdateTime": now, "lastTransitionTime": since,
        "reason": reason, "message": message})
}

/// The Deployment's status from its sets, and when to look again (the
/// progress deadline).
fn status_of(
    d: &Deployment,
    new: Option<&Set>,
    old: &[Set],
    created_new: Option<&str>,
    max_unavailable: i32,
    now: Timestamp,
) -> (Value, Option<Duration>) {
    let spec = d.spec.clone().unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1);
    let all = new.into_iter().chain(old.iter());
    let (mut total, mut ready, mut available) = (0, 0, 0);
    for s in all {
        let st = s.status();
        total += st.replicas;
        ready += st.ready_replicas.unwrap_or(0);
        available += st.available_replicas.unwrap_or(0);
    }
    let updated = new.map_or(0, |s| s.status().replicas);
    let old_status = d.status.clone().unwrap_or_default();
    let old_json = serde_json::to_value(&old_status).unwrap_or_default();
    let old_conditions: Vec<Value> = old_json["conditions"].as_array().cloned().unwrap_or_default();
    let find = |t: &str| old_conditions.iter().find(|c| c["type"] == t);
    let now_s = now.to_string();
    let new_name = new.map(|s| s.name().to_string()).unwrap_or_default();

    let available_cond = if available >= replicas - max_unavailable {
        condition(
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            &now_s,
            find("Available"),
        )
    } else {
        condition(
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            &now_s,
            find("Available"),
        )
    };
    let keep = |c: Option<&Value>, fresh: Value| match c {
        // Unchanged but for the update time: keep the old one, so a status
        // that did not change compares equal and is not written.
        Some(c)
            if c["status"] == fresh["status"] && c["reason"] == fresh["reason"] && c["message"] == fresh["message"] =>
        {
            c.clone()
        }
        _ => fresh,
    };
    let available_cond = keep(find("Available"), available_cond);

    let complete = new.is_some()
        && updated == replicas
        && available >= replicas
        && total == replicas
        && new.is_some_and(|s| s.status().available_replicas.unwrap_or(0) >= replicas);
    let progressed = updated > old_status.updated_replicas.unwrap_or(0)
        || ready > old_status.ready_replicas.unwrap_or(0)
        || available > old_status.available_replicas.unwrap_or(0)
        || total < old_status.replicas.unwrap_or(0);
    let old_progressing = find("Progressing");
    let deadline = spec.progress_deadline_seconds.unwrap_or(600);
    let mut requeue = None;
    let progressing = if spec.paused == Some(true) {
        keep(
            old_progressing,
            condition("Progressing", "Unknown", "DeploymentPaused", "Deployment is paused", &now_s, old_progressing),
        )
    } else if let Some(name) = created_new {
        condition(
            "Progressing",
            "True",
            "NewReplicaSetCreated",
            &format!("Created new replica set \"{name}\""),
            &now_s,
            old_progressing,
        )
    } else if complete {
        let message = format!("ReplicaSet \"{new_name}\" has successfully progressed.");
        keep(old_progressing, condition("Progressing", "True", NEW_RS_AVAILABLE, &message, &now_s, old_progressing))
    } else if progressed
        || old_progressing.is_none()
        || old_progressing.is_some_and(|c| c["reason"] == "DeploymentPaused")
    {
        let message = format!("ReplicaSet \"{new_name}\" is progressing.");
        let reason = if old_progressing.is_some_and(|c| c["reason"] == "DeploymentPaused") {
            "DeploymentResumed"
        } else {
            "ReplicaSetUpdated"
        };
        requeue = Some(Duration::from_secs(u64::try_from(deadline).unwrap_or(600)));
        condition("Progressing", "True", reason, &message, &now_s, old_progressing)
    } else {
        let old = old_progressing.cloned().unwrap_or_default();
        let last_update: Option<Timestamp> = old["lastUpdateTime"].as_str().and_then(|t| t.parse().ok());
        let elapsed = last_update.map_or(0, |t| now.as_second() - t.as_second());
        if old["reason"] != PROGRESS_DEADLINE_EXCEEDED && elapsed >= i64::from(deadline) {
            let message = format!("ReplicaSet \"{new_name}\" has timed out progressing.");
            condition("Progressing", "False", PROGRESS_DEADLINE_EXCEEDED, &message, &now_s, old_progressing)
        } else {
            if old["reason"] != PROGRESS_DEADLINE_EXCEEDED {
                requeue = Some(Duration::from_secs(u64::try_from(i64::from(deadline) - elapsed).unwrap_or(1).max(1)));
            }
            old
        }
    };

    let mut conditions = vec![available_cond, progressing];
    // The new set cannot create its pods: say why on the Deployment too.
    let failure = new.and_then(|s| s.status().conditions).and_then(|cs| {
        cs.into_iter().find(|c| c.type_ == crate::controllers::replicaset::REPLICA_FAILURE && c.status == "True")
    });
    if let Some(f) = failure {
        let message = f.message.unwrap_or_default();
        let fresh = condition(
            "ReplicaFailure",
            "True",
            f.reason.as_deref().unwrap_or_default(),
            &message,
            &now_s,
            find("ReplicaFailure"),
        );
        conditions.push(keep(find("ReplicaFailure"), fresh));
    }
    let mut status = json!({
        "observedGeneration": d.metadata.generation.unwrap_or(0),
        "replicas": total,
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": available,
        "unavailableReplicas": (replicas - available).max(0),
        "conditions": conditions,
    });
    if let Some(n) = old_status.collision_count {
        status["collisionCount"] = json!(n);
    }
    if let Some(map) = status.as_object_mut() {
        map.retain(|_, v| v.as_i64() != Some(0));
    }
    (status, requeue)
}

/// The Deployments a ReplicaSet event concerns: its owner, or for an
/// orphan every Deployment of its namespace whose selector matches it.
fn deployment_keys(deployments: &Store<Deployment>, rs: &ReplicaSet) -> Vec<ObjectKey> {
    owner_keys(rs, "Deployment", deployments, |d, labels| {
        let selector = d.spec.as_ref().map(|s| Selector::from_label_selector(&s.selector));
        selector.is_some_and(|s| s.is_ok_and(|s| !s.is_empty() && s.matches(labels)))
    })
}

fn start(ctx: &ControllerContext, tracker: &TaskTracker, shutdown: CancellationToken) -> Result<(), String> {
    let deployments = ctx.informers.get::<Deployment>();
    let sets = ctx.informers.get::<ReplicaSet>();
    let context = Arc::new(Context {
        deployments: deployments.store().clone(),
        sets: sets.store().clone(),
        client: ctx.client.clone(),
        recorder: ctx.recorder(COMPONENT, tracker, shutdown.clone()),
    });
    let queue = WorkQueue::new();
    let (tracker2, observer, workers) =
        (tracker.clone(), ctx.observer(), ctx.flags.deployment.concurrent_deployment_syncs);
    tracker.spawn(async move {
        let synced = tokio::select! {
            _ = shutdown.cancelled() => return,
            synced = async { deployments.wait_until_synced().await && sets.wait_until_synced().await } => synced,
        };
        if !synced {
            return;
        }
        let resync = enqueue_all(deployments.store().clone(), queue.clone());
        forward(
            &deployments,
            queue.clone(),
            &tracker2,
            shutdown.clone(),
            |d: &Deployment| vec![ObjectKey::of(d)],
            resync.clone(),
        );
        let store = deployments.store().clone();
        forward(
            &sets,
            queue.clone(),
            &tracker2,
            shutdown.clone(),
            move |rs: &ReplicaSet| deployment_keys(&store, rs),
            resync,
        );
        let reconcile = move |key| reconcile(key, context.clone());
        spawn_workers(NAME, queue, workers, reconcile, observer, &tracker2, shutdown);
        info!(controller = NAME, "started");
    });
    Ok(())
}
