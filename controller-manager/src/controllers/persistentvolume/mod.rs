//! The PersistentVolume binder: claims meet volumes (Kubernetes'
//! `pkg/controller/volume/persistentvolume/pv_controller.go`, static
//! provisioning only).
//!
//! A claim without a volume gets the smallest Available volume that fits:
//! the same `storageClassName` and `volumeMode`, every access mode it asks
//! for, at least the storage it requests, and labels its `selector`
//! matches. A volume pre-bound to the claim (`claimRef` naming it) wins; a
//! claim naming its volume (`volumeName`) gets that one. Binding writes, in
//! Kubernetes' order, the volume's `claimRef`, the volume's phase Bound, the
//! claim's `volumeName` and the claim's status (Bound, capacity, access
//! modes); each step is idempotent, so a crash half way is finished by the
//! next pass.
//!
//! A volume whose claim is gone is Released and then reclaimed by its
//! policy: Retain keeps it (and its data) Released; Delete removes the
//! object and, for a hostPath volume, its directory, but only under
//! `--pv-hostpath-delete-root` (Kubernetes' hostPath deleter allows only
//! `/tmp`); anything else turns the volume Failed with an event. A claim
//! whose volume is gone is Lost.
//!
//! Work keys: a claim is its `namespace/name`, a volume (cluster-scoped) is
//! its name with no namespace.

use crate::controllers::{Controller, ControllerContext, Error};
use k8s_openapi::api::core::v1::{
    ObjectReference, PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimStatus, PersistentVolumeStatus,
};
use rkube_api::quantity;
use rkube_api::selector::Selector;
use rkube_client::controller::{Action, spawn_workers};
use rkube_client::events::EventRecorder;
use rkube_client::informers::{enqueue_all, forward_events};
use rkube_client::{Api, ObjectKey, Reason, Store, WorkQueue};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// The controller's name in `--controllers` (Kubernetes' name).
pub const NAME: &str = "persistentvolume-binder";

/// Set on a claim once its binding is complete.
const BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// Set on a volume and a claim this controller bound (not pre-bound by a user).
const BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";

/// The binder's flags.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "PersistentVolume binder")]
pub struct Flags {
    /// The Delete reclaim policy removes a hostPath volume's directory only
    /// when it lies under this directory (Kubernetes' hostPath deleter
    /// allows only /tmp); other hostPath volumes turn Failed.
    #[arg(long, env = "RKUBE_PV_HOSTPATH_DELETE_ROOT", default_value = "/tmp")]
    pub pv_hostpath_delete_root: PathBuf,
}

/// The registry entry.
pub const CONTROLLER: Controller = Controller {
    name: NAME,
    about: "binds PersistentVolumeClaims to PersistentVolumes and reclaims released volumes",
    enabled_by_default: true,
    check,
    start,
};

fn check(flags: &crate::controllers::Flags) -> Result<(), String> {
    let root = &flags.persistentvolume.pv_hostpath_delete_root;
    if !root.is_absolute() || root == Path::new("/") {
        return Err(format!(
            "--pv-hostpath-delete-root: {} must be an absolute directory other than /",
            root.display()
        ));
    }
    Ok(())
}

/// The state shared by the workers.
pub struct Context {
    claims: Store<PersistentVolumeClaim>,
    volumes: Store<PersistentVolume>,
    client: rkube_client::Client,
    recorder: Arc<EventRecorder>,
    delete_root: PathBuf,
}

fn claim_phase(c: &PersistentVolumeClaim) -> &str {
    c.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Pending")
}

fn volume_phase(v: &PersistentVolume) -> &str {
    v.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Pending")
}

fn volume_name(c: &PersistentVolumeClaim) -> &str {
    c.spec.as_ref().and_then(|s| s.volume_name.as_deref()).unwrap_or_default()
}

fn claim_ref(v: &PersistentVolume) -> Option<&ObjectReference> {
    v.spec.as_ref()?.claim_ref.as_ref()
}

/// Whether `r` names the claim `c` (a reference without a uid is a
/// pre-binding to whatever claim has that name).
fn refers_to(r: &ObjectReference, c: &PersistentVolumeClaim) -> bool {
    r.namespace == c.metadata.namespace
        && r.name == c.metadata.name
        && r.uid.as_deref().is_none_or(|uid| uid.is_empty() || Some(uid) == c.metadata.uid.as_deref())
}

/// Why `volume` cannot serve `claim`, or `None` when it can.
fn mismatch(claim: &PersistentVolumeClaim, volume: &PersistentVolume) -> Option<String> {
    let (cs, vs) = (claim.spec.clone().unwrap_or_default(), volume.spec.clone().unwrap_or_default());
    if cs.storage_class_name.as_deref().unwrap_or_default() != vs.storage_class_name.as_deref().unwrap_or_default() {
        return Some("storageClassName does not match".into());
    }
    let mode = |m: Option<&str>| m.unwrap_or("Filesystem").to_string();
    if mode(cs.volume_mode.as_deref()) != mode(vs.volume_mode.as_deref()) {
        return Some("volumeMode does not match".into());
    }
    let offered = vs.access_modes.unwrap_or_default();
    if let Some(m) = cs.access_modes.unwrap_or_default().iter().find(|m| !offered.contains(m)) {
        return Some(format!("access mode {m} is not offered"));
    }
    let requested = cs.resources.as_ref().and_then(|r| r.requests.as_ref()).and_then(|r| r.get("storage"));
    let capacity = vs.capacity.as_ref().and_then(|c| c.get("storage"));
    if let Some(requested) = requested {
        let fits = match (quantity::parse_k8s(requested), capacity.map(quantity::parse_k8s)) {
            (Ok(r), Some(Ok(c))) => c >= r,
            _ => false,
        };
        if !fits {
            return Some("capacity is smaller than the request".into());
        }
    }
    if let Some(selector) = &cs.selector {
        let labels = volume.metadata.labels.clone().unwrap_or_default();
        match Selector::from_label_selector(selector) {
            Ok(s) if s.matches(&labels) => {}
            Ok(_) => return Some("labels do not match the claim's selector".into()),
            Err(e) => return Some(format!("invalid selector: {}", e.message)),
        }
    }
    None
}

fn storage(v: &PersistentVolume) -> Option<quantity::Quantity> {
    let q = v.spec.as_ref()?.capacity.as_ref()?.get("storage")?;
    quantity::parse_k8s(q).ok()
}

/// The volume `claim` should bind to: one pre-bound to it, else the
/// smallest Available one that fits.
fn best_volume(claim: &PersistentVolumeClaim, volumes: &[Arc<PersistentVolume>]) -> Option<Arc<PersistentVolume>> {
    let usable = |v: &&Arc<PersistentVolume>| v.metadata.deletion_timestamp.is_none() && mismatch(claim, v).is_none();
    if let Some(v) = volumes.iter().filter(usable).find(|v| claim_ref(v).is_some_and(|r| refers_to(r, claim))) {
        return Some(v.clone());
    }
    let mut free: Vec<&Arc<PersistentVolume>> =
        volumes.iter().filter(usable).filter(|v| claim_ref(v).is_none() && volume_phase(v) == "Available").collect();
    free.sort_by(|a, b| storage(a).partial_cmp(&storage(b)).unwrap_or(std::cmp::Ordering::Equal));
    free.first().map(|v| (*v).clone())
}

/// Reconciles one claim or (with no namespace) one volume.
pub async fn reconcile(key: ObjectKey, ctx: Arc<Context>) -> Result<Action, Error> {
    if key.namespace.is_empty() {
        return reconcile_volume(&key, &ctx).await;
    }
    let Some(claim) = ctx.claims.get(&key) else { return Ok(Action::AwaitChange) };
    if claim.metadata.deletion_timestamp.is_some() {
        return Ok(Action::AwaitChange);
    }
    let wanted = volume_name(&claim);
    if wanted.is_empty() {
        let volumes = ctx.volumes.list();
        let Some(volume) = best_volume(&claim, &volumes) else {
            if claim_phase(&claim) != "Pending" {
                set_claim_status(&ctx, &key, &claim, "Pending", None).await?;
            }
            let class = claim.spec.as_ref().and_then(|s| s.storage_class_name.as_deref()).unwrap_or_default();
            let why = if class.is_empty() {
                "no persistent volumes available for this claim and no storage class is set".to_string()
            } else {
                format!("storageclass.storage.k8s.io \"{class}\" not found")
            };
            ctx.recorder.normal(&*claim, "FailedBinding", why);
            return Ok(Action::AwaitChange);
        };
        return bind(&ctx, &key, &claim, &volume).await;
    }
    let Some(volume) = ctx.volumes.get(&ObjectKey::new("", wanted)) else {
        if claim_phase(&claim) == "Bound" {
            set_claim_status(&ctx, &key, &claim, "Lost", None).await?;
            ctx.recorder.warning(
                &*claim,
                "ClaimLost",
                "Bound claim has lost its PersistentVolume. Data on the volume is lost!",
            );
        }
        return Ok(Action::AwaitChange);
    };
    match claim_ref(&volume) {
        Some(r) if !refers_to(r, &claim) => {
            let msg = format!("Two claims are bound to the same volume, this one is bound incorrectly: {wanted}");
            ctx.recorder.warning(&*claim, "ClaimMisbound", msg);
            if claim_phase(&claim) != "Lost" {
                set_claim_status(&ctx, &key, &claim, "Lost", None).await?;
            }
            Ok(Action::AwaitChange)
        }
        // Unbound, or bound (or pre-bound) to this claim: finish the binding.
        _ => bind(&ctx, &key, &claim, &volume).await,
    }
}

/// Binds `claim` and `volume` both ways, skipping the steps already done.
async fn bind(
    ctx: &Context,
    key: &ObjectKey,
    claim: &PersistentVolumeClaim,
    volume: &PersistentVolume,
) -> Result<Action, Error> {
    let volume_name = volume.metadata.name.clone().unwrap_or_default();
    let volumes = Api::<PersistentVolume>::all(ctx.client.clone());
    let mut volume = volume.clone();
    let bound_here = claim_ref(&volume).is_none_or(|r| r.uid.as_deref().unwrap_or_default().is_empty());
    if bound_here {
        let spec = volume.spec.get_or_insert_with(Default::default);
        spec.claim_ref = Some(ObjectReference {
            kind: Some("PersistentVolumeClaim".into()),
            api_version: Some("v1".into()),
            namespace: claim.metadata.namespace.clone(),
            name: claim.metadata.name.clone(),
            uid: claim.metadata.uid.clone(),
            resource_version: claim.metadata.resource_version.clone(),
            ..Default::default()
        });
        volume
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(BOUND_BY_CONTROLLER.into(), "yes".into());
        volume = volumes.replace(&volume).await.map_err(Error::api(key, format!("binding volume {volume_name}")))?;
    }
    if volume_phase(&volume) != "Bound" {
        let status = volume.status.get_or_insert_with(PersistentVolumeStatus::default);
        status.phase = Some("Bound".into());
        status.message = None;
        status.reason = None;
        volume = volumes
            .replace_status(&volume)
            .await
            .map_err(Error::api(key, format!("marking volume {volume_name} Bound")))?;
    }
    let claims = Api::<PersistentVolumeClaim>::namespaced(ctx.client.clone(), &key.namespace);
    let mut claim = claim.clone();
    let unbound = self::volume_name(&claim).is_empty();
    let annotations = claim.metadata.annotations.get_or_insert_with(Default::default);
    if unbound || !annotations.contains_key(BIND_COMPLETED) {
        annotations.insert(BIND_COMPLETED.into(), "yes".into());
        if unbound {
            annotations.insert(BOUND_BY_CONTROLLER.into(), "yes".into());
        }
        claim.spec.get_or_insert_with(Default::default).volume_name = Some(volume_name.clone());
        claim = claims.replace(&claim).await.map_err(Error::api(key, format!("binding to volume {volume_name}")))?;
    }
    if claim_phase(&claim) != "Bound" {
        set_claim_status(ctx, key, &claim, "Bound", Some(&volume)).await?;
        info!(controller = NAME, claim = %key, volume = %volume_name, "bound");
    }
    Ok(Action::AwaitChange)
}

/// Writes a claim's phase; a bound claim also reports the volume's
/// capacity and access modes.
async fn set_claim_status(
    ctx: &Context,
    key: &ObjectKey,
    claim: &PersistentVolumeClaim,
    phase: &str,
    volume: Option<&PersistentVolume>,
) -> Result<(), Error> {
    let mut claim = claim.clone();
    let status = claim.status.get_or_insert_with(PersistentVolumeClaimStatus::default);
    status.phase = Some(phase.into());
    if let Some(spec) = volume.and_then(|v| v.spec.as_ref()) {
        status.capacity = spec.capacity.clone();
        status.access_modes = spec.access_modes.clone();
    }
    let claims = Api::<PersistentVolumeClaim>::namespaced(ctx.client.clone(), &key.namespace);
    claims.replace_status(&claim).await.map_err(Error::api(key, format!("setting phase {phase}")))?;
    Ok(())
}

async fn reconcile_volume(key: &ObjectKey, ctx: &Context) -> Result<Action, Error> {
    let Some(volume) = ctx.volumes.get(key) else { return Ok(Action::AwaitChange) };
    if volume.metadata.deletion_timestamp.is_some() {
        return Ok(Action::AwaitChange);
    }
    let Some(r) = claim_ref(&volume).cloned() else {
        if volume_phase(&volume) != "Available" && volume_phase(&volume) != "Failed" {
            set_volume_phase(ctx, key, &volume, "Available", None).await?;
        }
        return Ok(Action::AwaitChange);
    };
    let uid = r.uid.clone().unwrap_or_default();
    let (namespace, name) = (r.namespace.clone().unwrap_or_default(), r.name.clone().unwrap_or_default());
    let claim_key = ObjectKey::new(&namespace, &name);
    // The cache may be behind: ask the apiserver before releasing.
    let claim = match ctx.claims.get(&claim_key) {
        Some(c) => Some((*c).clone()),
        None => match Api::<PersistentVolumeClaim>::namespaced(ctx.client.clone(), &namespace).get(&name).await {
            Ok(c) => Some(c),
            Err(e) if e.reason == Reason::NotFound => None,
            Err(e) => return Err(Error::api(key, format!("reading claim {claim_key}"))(e)),
        },
    };
    let claim_alive = claim.as_ref().is_some_and(|c| uid.is_empty() || c.metadata.uid.as_deref() == Some(&uid));
    if uid.is_empty() || claim_alive {
        // Pre-bound and waiting for its claim, or bound: the claim side binds.
        let phase = if uid.is_empty() { "Available" } else { "Bound" };
        if volume_phase(&volume) != phase {
            set_volume_phase(ctx, key, &volume, phase, None).await?;
        }
        return Ok(Action::AwaitChange);
    }
    // The claim is gone: released, then reclaimed.
    if volume_phase(&volume) != "Released" && volume_phase(&volume) != "Failed" {
        set_volume_phase(ctx, key, &volume, "Released", None).await?;
        info!(controller = NAME, volume = %key.name, claim = %claim_key, "released");
    }
    let policy = volume.spec.as_ref().and_then(|s| s.persistent_volume_reclaim_policy.as_deref()).unwrap_or("Retain");
    match policy {
        "Delete" if volume_phase(&volume) != "Failed" => delete_volume(ctx, key, &volume).await,
        "Recycle" if volume_phase(&volume) != "Failed" => {
            let msg = "the Recycle reclaim policy is not supported (deprecated in Kubernetes); use Retain or Delete";
            ctx.recorder.warning(&*volume, "VolumeFailedRecycle", msg);
            set_volume_phase(ctx, key, &volume, "Failed", Some(msg)).await?;
            Ok(Action::AwaitChange)
        }
        _ => Ok(Action::AwaitChange),
    }
}

/// The Delete reclaim policy: the hostPath directory (under the allowed
/// root only), then the object.
async fn delete_volume(ctx: &Context, key: &ObjectKey, volume: &PersistentVolume) -> Result<Action, Error> {
    let host_path = volume.spec.as_ref().and_then(|s| s.host_path.as_ref()).map(|h| PathBuf::from(&h.path));
    let refused = match &host_path {
        None => Some("only hostPath volumes can be deleted by rkube".to_string()),
        Some(p) if !under(p, &ctx.delete_root) => Some(format!(
            "host_path deleter only supports paths under {} (--pv-hostpath-delete-root), not {}",
            ctx.delete_root.display(),
            p.display()
        )),
        Some(p) => match tokio::fs::remove_dir_all(p).await {
            Ok(()) => None,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => Some(format!("removing {}: {e}", p.display())),
        },
    };
    if let Some(msg) = refused {
        warn!(controller = NAME, volume = %key.name, error = %msg, "cannot delete the volume");
        ctx.recorder.warning(volume, "VolumeFailedDelete", &msg);
        set_volume_phase(ctx, key, volume, "Failed", Some(&msg)).await?;
        return Ok(Action::AwaitChange);
    }
    let volumes = Api::<PersistentVolume>::all(ctx.client.clone());
    match volumes.delete(&key.name, &rkube_client::DeleteParams::default()).await {
        Ok(_) => info!(controller = NAME, volume = %key.name, "deleted (reclaim policy Delete)"),
        Err(e) if e.reason == Reason::NotFound => {}
        Err(e) => return Err(Error::api(key, "deleting the released volume")(e)),
    }
    Ok(Action::AwaitChange)
}

/// Whether `path` lies strictly under `root`, with no `..` to escape it.
fn under(path: &Path, root: &Path) -> bool {
    use std::path::Component;
    path.is_absolute()
        && path != root
        && path.starts_with(root)
        && !path.components().any(|c| matches!(c, Component::ParentDir | Component::CurDir))
}

async fn set_volume_phase(
    ctx: &Context,
    key: &ObjectKey,
    volume: &PersistentVolume,
    phase: &str,
    message: Option<&str>,
) -> Result<(), Error> {
    let mut volume = volume.clone();
    let status = volume.status.get_or_insert_with(PersistentVolumeStatus::default);
    status.phase = Some(phase.into());
    status.message = message.map(str::to_string);
    let volumes = Api::<PersistentVolume>::all(ctx.client.clone());
    volumes.replace_status(&volume).await.map_err(Error::api(key, format!("setting phase {phase}")))?;
    Ok(())
}

fn start(ctx: &ControllerContext, tracker: &TaskTracker, shutdown: CancellationToken) -> Result<(), String> {
    let claims = ctx.informers.get::<PersistentVolumeClaim>();
    let volumes = ctx.informers.get::<PersistentVolume>();
    let context = Arc::new(Context {
        claims: claims.store().clone(),
        volumes: volumes.store().clone(),
        client: ctx.client.clone(),
        recorder: ctx.recorder("persistentvolume-controller", tracker, shutdown.clone()),
        delete_root: ctx.flags.persistentvolume.pv_hostpath_delete_root.clone(),
    });
    let queue = WorkQueue::new();
    let (tracker2, observer) = (tracker.clone(), ctx.observer());
    tracker.spawn(async move {
        let synced = tokio::select! {
            _ = shutdown.cancelled() => return,
            synced = async { claims.wait_until_synced().await && volumes.wait_until_synced().await } => synced,
        };
        if !synced {
            return;
        }
        let (all_claims, all_volumes) =
            (enqueue_all(claims.store().clone(), queue.clone()), enqueue_all(volumes.store().clone(), queue.clone()));
        let resync = move || {
            all_claims();
            all_volumes();
        };
        // A claim: itself, and (when it goes) the volume it was bound to.
        let claim_keys = |c: &PersistentVolumeClaim, deleted: bool| {
            let mut keys = vec![ObjectKey::of(c)];
            if deleted && !volume_name(c).is_empty() {
                keys.push(ObjectKey::new("", volume_name(c)));
            }
            keys
        };
        forward_events(&claims, queue.clone(), &tracker2, shutdown.clone(), claim_keys, resync.clone());
        // A volume: itself, its claim, and every claim still waiting for one.
        let waiting = claims.store().clone();
        let volume_keys = move |v: &PersistentVolume, _deleted: bool| {
            let mut keys = vec![ObjectKey::of(v)];
            if let Some(r) = claim_ref(v) {
                keys.push(ObjectKey::new(
                    r.namespace.as_deref().unwrap_or_default(),
                    r.name.as_deref().unwrap_or_default(),
                ));
            }
            keys.extend(waiting.list().iter().filter(|c| volume_name(c).is_empty()).map(|c| ObjectKey::of(&**c)));
            keys
        };
        forward_events(&volumes, queue.clone(), &tracker2, shutdown.clone(), volume_keys, resync.clone());
        resync();
        let reconcile = move |key| reconcile(key, context.clone());
        spawn_workers(NAME, queue, 1, reconcile, observer, &tracker2, shutdown);
        info!(controller = NAME, "started");
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claim(spec: serde_json::Value) -> PersistentVolumeClaim {
        serde_json::from_value(json!({"metadata": {"name": "data", "namespace": "default", "uid": "c1"}, "spec": spec}))
            .unwrap()
    }

    fn volume(name: &str, size: &str, extra: serde_json::Value) -> Arc<PersistentVolume> {
        let mut v = json!({"metadata": {"name": name, "labels": {"speed": "fast"}},
            "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/tmp/x"}},
            "status": {"phase": "Available"}});
        if let (Some(spec), Some(more)) = (v["spec"].as_object_mut(), extra.as_object()) {
            spec.extend(more.clone());
        }
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn wants(size: &str) -> serde_json::Value {
        json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}})
    }

    fn name(v: Option<Arc<PersistentVolume>>) -> Option<String> {
        v.and_then(|v| v.metadata.name.clone())
    }

    #[test]
    fn the_smallest_fitting_available_volume_is_chosen() {
        let vs =
            [volume("big", "10Gi", json!({})), volume("small", "1Gi", json!({})), volume("tiny", "100Mi", json!({}))];
        assert_eq!(name(best_volume(&claim(wants("500Mi")), &vs)), Some("small".into()));
        assert_eq!(name(best_volume(&claim(wants("1Gi")), &vs)), Some("small".into()));
        assert_eq!(name(best_volume(&claim(wants("20Gi")), &vs)), None);
    }

    #[test]
    fn class_access_modes_selector_and_mode_must_match() {
        let c = claim(wants("1Gi"));
        assert!(
            mismatch(&c, &volume("v", "1Gi", json!({"storageClassName": "ssd"}))).unwrap().contains("storageClass")
        );
        let rwx = claim(json!({"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}}));
        assert!(mismatch(&rwx, &volume("v", "1Gi", json!({}))).unwrap().contains("ReadWriteMany"));
        let mut sel = wants("1Gi");
        sel["selector"] = json!({"matchLabels": {"speed": "slow"}});
        assert!(mismatch(&claim(sel.clone()), &volume("v", "1Gi", json!({}))).unwrap().contains("selector"));
        sel["selector"] = json!({"matchLabels": {"speed": "fast"}});
        assert_eq!(mismatch(&claim(sel), &volume("v", "1Gi", json!({}))), None);
        assert!(mismatch(&c, &volume("v", "1Gi", json!({"volumeMode": "Block"}))).unwrap().contains("volumeMode"));
    }

    #[test]
    fn a_volume_pre_bound_to_the_claim_wins_and_volumes_bound_elsewhere_are_skipped() {
        let pre = volume("pre", "5Gi", json!({"claimRef": {"namespace": "default", "name": "data"}}));
        let other = volume("other", "1Gi", json!({"claimRef": {"namespace": "default", "name": "else", "uid": "x"}}));
        let free = volume("free", "2Gi", json!({}));
        let c = claim(wants("1Gi"));
        assert_eq!(name(best_volume(&c, &[free.clone(), pre, other.clone()])), Some("pre".into()));
        assert_eq!(name(best_volume(&c, &[other, free])), Some("free".into()));
    }

    #[test]
    fn deletion_stays_under_the_root() {
        let root = Path::new("/tmp");
        assert!(under(Path::new("/tmp/pv1"), root));
        assert!(!under(Path::new("/tmp"), root));
        assert!(!under(Path::new("/var/lib/data"), root));
        assert!(!under(Path::new("/tmp/../etc"), root));
        assert!(!under(Path::new("tmp/pv1"), root));
    }
}
