//! kubectl 1.17's `RollingUpdater` (`pkg/cmd/rollingupdate/rolling_updater.go`):
//! scales a new replication controller up and the old one down, one step
//! at a time, never letting fewer than `desired - maxUnavailable` pods be
//! available nor more than `desired + maxSurge` exist, then cleans up.
//!
//! The bookkeeping lives in annotations on the controllers, so an
//! interrupted update can be resumed or rolled back by running the command
//! again: the new controller records its source (`update-source-id`) and its
//! target size (`desired-replicas`), the old one its size before the update
//! (`original-replicas`) and, for `--image`, the name of its successor
//! (`next-controller-id`).

use super::super::print;
use crate::commands::scale::{self, ScaleError};
use crate::report::usage;
use crate::resources::resource_type;
use crate::session::Session;
use rkube_api::{ApiError, Reason, ResourceInfo};
use rkube_client::{DeleteParams, ListParams};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// On the new controller: `OLD_NAME:OLD_UID`.
pub const SOURCE_ID: &str = "kubectl.kubernetes.io/update-source-id";
/// On the new controller: the size it is to reach.
pub const DESIRED_REPLICAS: &str = "kubectl.kubernetes.io/desired-replicas";
/// On the old controller: its size before the update.
pub const ORIGINAL_REPLICAS: &str = "kubectl.kubernetes.io/original-replicas";
/// On the old controller (with `--image`): the new controller's name.
pub const NEXT_CONTROLLER: &str = "kubectl.kubernetes.io/next-controller-id";

/// What happens once the new controller has every pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cleanup {
    /// Delete the old controller.
    Delete,
    /// Delete the old controller and give the new one its name.
    Rename,
}

/// How fast the update goes.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// `--update-period`: the pause between scaling up and scaling down.
    pub update_period: Duration,
    /// `--poll-interval`: between reads of a controller's status.
    pub interval: Duration,
    /// `--timeout`: how long without progress before giving up.
    pub timeout: Duration,
}

/// One update: kubectl's `RollingUpdaterConfig`.
#[derive(Debug, Clone)]
pub struct Config {
    /// The controller being replaced.
    pub old: Value,
    /// The controller taking over (created if it does not exist yet).
    pub new: Value,
    /// What to do at the end.
    pub cleanup: Cleanup,
    /// At most this many pods below the desired count (kubectl: 0).
    pub max_unavailable: i64,
    /// At most this many pods above it (kubectl: 1).
    pub max_surge: i64,
    /// Periods and timeout.
    pub timing: Timing,
}

/// The object's name.
pub fn name(rc: &Value) -> &str {
    rc.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default()
}

fn uid(rc: &Value) -> &str {
    rc.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or_default()
}

/// `spec.replicas` as kubectl's `valOrZero` reads it.
pub fn replicas(rc: &Value) -> i64 {
    rc.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0)
}

fn set_replicas(rc: &mut Value, n: i64) {
    spec_mut(rc).insert("replicas".into(), n.into());
}

/// An annotation's value.
pub fn annotation<'a>(rc: &'a Value, key: &str) -> Option<&'a str> {
    rc.pointer("/metadata/annotations").and_then(|a| a.get(key)).and_then(Value::as_str)
}

fn map_at<'a>(v: &'a mut Value, keys: &[&str]) -> &'a mut Map<String, Value> {
    let mut at = v;
    for k in keys {
        if !at.is_object() {
            *at = json!({});
        }
        let map = at.as_object_mut().expect("made an object above");
        at = map.entry(k.to_string()).or_insert_with(|| json!({}));
    }
    if !at.is_object() {
        *at = json!({});
    }
    at.as_object_mut().expect("made an object above")
}

fn spec_mut(rc: &mut Value) -> &mut Map<String, Value> {
    map_at(rc, &["spec"])
}

/// Sets an annotation.
pub fn set_annotation(rc: &mut Value, key: &str, value: &str) {
    map_at(rc, &["metadata", "annotations"]).insert(key.into(), value.into());
}

fn remove_annotation(rc: &mut Value, key: &str) {
    map_at(rc, &["metadata", "annotations"]).remove(key);
}

/// A label of the controller's selector or pod template.
pub fn set_selector_label(rc: &mut Value, key: &str, value: &str) {
    map_at(rc, &["spec", "selector"]).insert(key.into(), value.into());
}

/// A label of the controller's pod template.
pub fn set_template_label(rc: &mut Value, key: &str, value: &str) {
    map_at(rc, &["spec", "template", "metadata", "labels"]).insert(key.into(), value.into());
}

/// The controller's selector as a list selector (`a=b,c=d`).
pub fn selector_string(rc: &Value) -> String {
    let map: BTreeMap<&str, &str> = rc
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default())).collect())
        .unwrap_or_default();
    map.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// Go's `%s` of a `map[string]string`: `map[a:b c:d]`.
fn go_map(v: Option<&Value>) -> String {
    let map: BTreeMap<&str, &str> = v
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default())).collect())
        .unwrap_or_default();
    let items: Vec<String> = map.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    format!("map[{}]", items.join(" "))
}

/// Whether a pod counts as available (kubectl's `IsPodAvailable` with
/// minReadySeconds 0): not being deleted, and Ready.
fn pod_available(pod: &Value) -> bool {
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        return false;
    }
    pod.pointer("/status/conditions").and_then(Value::as_array).is_some_and(|cs| {
        cs.iter().any(|c| {
            c.get("type").and_then(Value::as_str) == Some("Ready")
                && c.get("status").and_then(Value::as_str) == Some("True")
        })
    })
}

/// The replication controllers of one namespace, with kubectl's retrying
/// read-modify-write.
#[derive(Debug, Clone)]
pub struct Controllers<'a> {
    session: &'a Session,
    info: &'static ResourceInfo,
    namespace: String,
}

impl<'a> Controllers<'a> {
    /// The controllers of the session's namespace.
    pub fn new(session: &'a Session) -> anyhow::Result<Self> {
        Ok(Controllers {
            session,
            info: resource_type("replicationcontrollers")?,
            namespace: session.namespace.clone(),
        })
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn decode(o: &rkube_proto::v1::Object) -> Result<Value, ApiError> {
        crate::commands::object_json(&o.json, &o.api_version, &o.kind)
            .map_err(|e| ApiError::internal(format!("decoding {}: {e}", o.name)))
    }

    /// Reads one.
    pub async fn get(&self, name: &str) -> Result<Value, ApiError> {
        Self::decode(&self.session.client.get(self.info, &self.namespace, name).await?)
    }

    /// Reads one, or None when it does not exist (kubectl's
    /// `LoadExistingNextReplicationController`; "" names none).
    pub async fn get_opt(&self, name: &str) -> Result<Option<Value>, ApiError> {
        if name.is_empty() {
            return Ok(None);
        }
        match self.get(name).await {
            Ok(rc) => Ok(Some(rc)),
            Err(e) if e.reason == Reason::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every controller of the namespace.
    pub async fn list(&self) -> Result<Vec<Value>, ApiError> {
        let resp = self.session.client.list(self.info, &self.namespace, &ListParams::default()).await?;
        resp.items.iter().map(Self::decode).collect()
    }

    /// Creates one from another controller's body: what the server owns
    /// (uid, version, timestamps, status) is left out.
    pub async fn create(&self, rc: &Value) -> Result<Value, ApiError> {
        let mut body = rc.clone();
        if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in ["uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "selfLink"] {
                meta.remove(k);
            }
            meta.insert("namespace".into(), self.namespace.clone().into());
        }
        if let Some(m) = body.as_object_mut() {
            m.remove("status");
        }
        let body = serde_json::to_vec(&body).expect("a Value always serializes");
        Self::decode(&self.session.client.create(self.info, &self.namespace, body).await?)
    }

    /// Replaces one (conditional on its resourceVersion, if it has one).
    pub async fn update(&self, rc: &Value) -> Result<Value, ApiError> {
        let body = serde_json::to_vec(rc).expect("a Value always serializes");
        Self::decode(&self.session.client.update(self.info, &self.namespace, name(rc), body).await?)
    }

    /// kubectl's `updateRcWithRetries`: applies `change` and writes; on a
    /// conflict, re-reads and tries again.
    pub async fn update_with_retries(&self, rc: Value, change: impl Fn(&mut Value)) -> Result<Value, ApiError> {
        let mut current = rc;
        let mut attempt = 0;
        loop {
            let mut changed = current.clone();
            change(&mut changed);
            match self.update(&changed).await {
                Ok(rc) => return Ok(rc),
                Err(e) if e.reason == Reason::Conflict && attempt < 4 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(10 * 5u64.pow(attempt))).await;
                    current = self.get(name(&current)).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Deletes one (`policy`: None for the server's default).
    pub async fn delete(&self, name: &str, policy: Option<&str>) -> Result<(), ApiError> {
        let params = DeleteParams { propagation_policy: policy.map(String::from), ..Default::default() };
        self.session.client.delete(self.info, &self.namespace, name, &params).await.map(|_| ())
    }

    /// Updates the pods `selector` selects with `change` (conflicts retried).
    pub async fn update_pods(&self, selector: &str, change: impl Fn(&mut Value)) -> Result<(), ApiError> {
        let pods = resource_type("pods").map_err(|e| ApiError::internal(e.to_string()))?;
        let lp = ListParams::default().labels(selector);
        for o in self.session.client.list(pods, &self.namespace, &lp).await?.items {
            let mut pod = Self::decode(&o)?;
            for attempt in 0..5 {
                let mut changed = pod.clone();
                change(&mut changed);
                let body = serde_json::to_vec(&changed).expect("a Value always serializes");
                match self.session.client.update(pods, &self.namespace, name(&pod), body).await {
                    Ok(_) => break,
                    Err(e) if e.reason == Reason::Conflict && attempt < 4 => {
                        pod = Self::decode(&self.session.client.get(pods, &self.namespace, name(&pod)).await?)?;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// The available pods of `old` and `new`, counted by their selectors
    /// (kubectl's `readyPods`).
    async fn available_pods(&self, old: &Value, new: &Value) -> Result<(i64, i64), ApiError> {
        let pods = resource_type("pods").map_err(|e| ApiError::internal(e.to_string()))?;
        let mut counts = [0i64; 2];
        for (i, rc) in [old, new].iter().enumerate() {
            let lp = ListParams::default().labels(&selector_string(rc));
            let items = self.session.client.list(pods, &self.namespace, &lp).await?.items;
            for o in &items {
                if pod_available(&Self::decode(o)?) {
                    counts[i] += 1;
                }
            }
        }
        Ok((counts[0], counts[1]))
    }

    /// Scales `rc` to its `spec.replicas` and waits until its controller
    /// reports that many (kubectl's `scaleAndWait`); returns it as it is then.
    async fn scale_and_wait(&self, rc: &Value, timing: &Timing) -> anyhow::Result<Value> {
        let n = replicas(rc);
        let done = async {
            scale::set_replicas(self.session, self.info, &self.namespace, name(rc), n, None).await?;
            scale::wait_for_replicas(
                self.session,
                self.info,
                &self.namespace,
                name(rc),
                n,
                timing.interval,
                timing.timeout,
            )
            .await
        };
        match done.await {
            Ok(()) => Ok(self.get(name(rc)).await?),
            Err(ScaleError::Api(e)) => Err(e.into()),
            Err(ScaleError::Precondition(m) | ScaleError::Timeout(m)) => Err(usage(m)),
        }
    }
}

/// kubectl's `RollingUpdater`.
pub struct Updater<'a> {
    rcs: &'a Controllers<'a>,
}

impl<'a> Updater<'a> {
    /// An updater over `rcs`.
    pub fn new(rcs: &'a Controllers<'a>) -> Self {
        Updater { rcs }
    }

    /// kubectl's `Update`: runs `config` to the end.
    pub async fn update(&self, config: &Config) -> anyhow::Result<()> {
        let mut old = config.old.clone();
        let timing = &config.timing;
        let source_id = format!("{}:{}", name(&old), uid(&old));
        let (mut new, existed) = self.get_or_create_target(&config.new, &source_id).await?;
        if existed {
            print(&format!("Continuing update with existing controller {}.\n", name(&new)))?;
        } else {
            print(&format!("Created {}\n", name(&new)))?;
        }
        let desired: i64 = annotation(&new, DESIRED_REPLICAS).unwrap_or_default().parse().map_err(|_| {
            usage(format!(
                "Unable to parse annotation for {}: {DESIRED_REPLICAS}={}",
                name(&new),
                annotation(&new, DESIRED_REPLICAS).unwrap_or_default()
            ))
        })?;
        if annotation(&old, ORIGINAL_REPLICAS).is_none() {
            let existing = self.rcs.get(name(&old)).await?;
            let original = replicas(&existing).to_string();
            old = self.rcs.update_with_retries(existing, |rc| set_annotation(rc, ORIGINAL_REPLICAS, &original)).await?;
        }
        let (max_surge, max_unavailable) = (config.max_surge, config.max_unavailable);
        if desired > 0 && max_unavailable == 0 && max_surge == 0 {
            return Err(usage("one of maxSurge or maxUnavailable must be specified"));
        }
        // Scaling to 0 may take every old pod down at once.
        let min_available = if desired == 0 { 0 } else { (desired - max_unavailable).max(0) };
        print(&format!(
            "Scaling up {} from {} to {desired}, scaling down {} from {} to 0 (keep {min_available} pods available, don't exceed {} pods)\n",
            name(&new),
            replicas(&new),
            name(&old),
            replicas(&old),
            desired + max_surge
        ))?;
        let mut deadline = Instant::now() + timing.timeout;
        while replicas(&new) != desired || replicas(&old) != 0 {
            let (new_before, old_before) = (replicas(&new), replicas(&old));
            new = self.scale_up(new, &old, desired, max_surge, timing).await?;
            tokio::time::sleep(timing.update_period).await;
            old = self.scale_down(&new, old, desired, min_available, timing).await?;
            if replicas(&new) != new_before || replicas(&old) != old_before {
                deadline = Instant::now() + timing.timeout;
            } else if Instant::now() > deadline {
                return Err(usage("timed out waiting for any update progress to be made"));
            }
        }
        self.cleanup(&old, &new, config).await
    }

    /// Finds the new controller (resuming an interrupted update) or creates it.
    async fn get_or_create_target(&self, controller: &Value, source_id: &str) -> anyhow::Result<(Value, bool)> {
        match self.rcs.get(name(controller)).await {
            Err(e) if e.reason == Reason::NotFound => {
                let n = replicas(controller);
                if n <= 0 {
                    return Err(usage(format!(
                        "Invalid controller spec for {}; required: > 0 replicas, actual: {n}",
                        name(controller)
                    )));
                }
                let mut rc = controller.clone();
                set_annotation(&mut rc, DESIRED_REPLICAS, &n.to_string());
                set_annotation(&mut rc, SOURCE_ID, source_id);
                set_replicas(&mut rc, 0);
                Ok((self.rcs.create(&rc).await?, false))
            }
            Err(e) => Err(e.into()),
            Ok(existing) => {
                if annotation(&existing, SOURCE_ID) != Some(source_id)
                    || annotation(&existing, DESIRED_REPLICAS).is_none()
                {
                    return Err(usage(format!(
                        "Missing/unexpected annotations for controller {}, expected {source_id} : {}",
                        name(controller),
                        go_map(existing.pointer("/metadata/annotations"))
                    )));
                }
                Ok((existing, true))
            }
        }
    }

    /// Scales the new controller up as far as the surge allows.
    async fn scale_up(
        &self,
        mut new: Value,
        old: &Value,
        desired: i64,
        max_surge: i64,
        timing: &Timing,
    ) -> anyhow::Result<Value> {
        if replicas(&new) == desired {
            return Ok(new);
        }
        let mut increment = (desired + max_surge) - (replicas(old) + replicas(&new));
        if replicas(old) == 0 {
            increment = desired - replicas(&new);
        }
        if increment <= 0 {
            return Ok(new);
        }
        let next = (replicas(&new) + increment).min(desired);
        set_replicas(&mut new, next);
        print(&format!("Scaling {} up to {next}\n", name(&new)))?;
        self.rcs.scale_and_wait(&new, timing).await
    }

    /// Scales the old controller down as far as availability allows.
    async fn scale_down(
        &self,
        new: &Value,
        mut old: Value,
        desired: i64,
        min_available: i64,
        timing: &Timing,
    ) -> anyhow::Result<Value> {
        if replicas(&old) == 0 {
            return Ok(old);
        }
        let (_, new_available) = self.rcs.available_pods(&old, new).await?;
        let all = replicas(&old) + replicas(new);
        let new_unavailable = replicas(new) - new_available;
        let decrement = all - min_available - new_unavailable;
        if decrement <= 0 {
            return Ok(old);
        }
        let mut next = (replicas(&old) - decrement).max(0);
        if replicas(new) == desired && new_available == desired {
            next = 0;
        }
        set_replicas(&mut old, next);
        print(&format!("Scaling {} down to {next}\n", name(&old)))?;
        self.rcs.scale_and_wait(&old, timing).await
    }

    /// Drops the update's annotations from the new controller, waits until it
    /// has observed its spec and has every pod, then applies the cleanup.
    async fn cleanup(&self, old: &Value, new: &Value, config: &Config) -> anyhow::Result<()> {
        let current = self.rcs.get(name(new)).await?;
        let new = self
            .rcs
            .update_with_retries(current, |rc| {
                remove_annotation(rc, SOURCE_ID);
                remove_annotation(rc, DESIRED_REPLICAS);
            })
            .await?;
        let generation = new.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
        let timing = &config.timing;
        let deadline = Instant::now() + timing.timeout;
        loop {
            tokio::time::sleep(timing.interval).await;
            let rc = self.rcs.get(name(&new)).await?;
            let observed = rc.pointer("/status/observedGeneration").and_then(Value::as_i64).unwrap_or(0);
            if observed >= generation && scale::status_replicas(&rc) == replicas(&rc) {
                break;
            }
            if Instant::now() >= deadline {
                return Err(usage("timed out waiting for the condition"));
            }
        }
        let new = self.rcs.get(name(&new)).await?;
        match config.cleanup {
            Cleanup::Delete => {
                print(&format!("Update succeeded. Deleting {}\n", name(old)))?;
                self.rcs.delete(name(old), None).await?;
            }
            Cleanup::Rename => {
                print(&format!("Update succeeded. Deleting old controller: {}\n", name(old)))?;
                self.rcs.delete(name(old), None).await?;
                print(&format!("Renaming {} to {}\n", name(&new), name(old)))?;
                rename(self.rcs, &new, name(old), timing).await?;
            }
        }
        Ok(())
    }
}

/// kubectl's `Rename`: deletes `rc` orphaning its pods, waits until it is
/// gone, and creates it again as `new_name` (its pods are adopted by the
/// same selector). kubectl polls every 5s for up to 60s; this polls at the
/// update's `--poll-interval` for up to 60s.
pub async fn rename(rcs: &Controllers<'_>, rc: &Value, new_name: &str, timing: &Timing) -> anyhow::Result<()> {
    let old_name = name(rc).to_string();
    let mut renamed = rc.clone();
    map_at(&mut renamed, &["metadata"]).insert("name".into(), new_name.into());
    match rcs.delete(&old_name, Some("Orphan")).await {
        Err(e) if e.reason != Reason::NotFound => return Err(e.into()),
        _ => {}
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match rcs.get(&old_name).await {
            Err(e) if e.reason == Reason::NotFound => break,
            Err(e) => return Err(e.into()),
            Ok(_) if Instant::now() >= deadline => return Err(usage("timed out waiting for the condition")),
            Ok(_) => tokio::time::sleep(timing.interval.min(Duration::from_secs(5))).await,
        }
    }
    rcs.create(&renamed).await?;
    Ok(())
}

/// kubectl's `AbortRollingUpdate`: turns `config` around so that the update
/// in progress runs backwards, to the old controller's original size.
pub fn abort(config: &mut Config) -> anyhow::Result<()> {
    std::mem::swap(&mut config.old, &mut config.new);
    let source = format!("{}:{}", name(&config.old), uid(&config.old));
    set_annotation(&mut config.new, SOURCE_ID, &source);
    let Some(original) = annotation(&config.new, ORIGINAL_REPLICAS).map(String::from) else {
        return Err(usage(format!("couldn't find original replica count of \"{}\"", name(&config.new))));
    };
    print(&format!("Setting \"{}\" replicas to {original}\n", name(&config.new)))?;
    set_annotation(&mut config.new, DESIRED_REPLICAS, &original);
    config.cleanup = Cleanup::Delete;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_list_sorted() {
        let rc = json!({"spec": {"selector": {"version": "v1", "name": "frontend"}}});
        assert_eq!(selector_string(&rc), "name=frontend,version=v1");
    }

    #[test]
    fn only_ready_pods_not_being_deleted_are_available() {
        let ready = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        assert!(pod_available(&ready));
        let mut deleting = ready.clone();
        deleting["metadata"] = json!({"deletionTimestamp": "2024-01-01T00:00:00Z"});
        assert!(!pod_available(&deleting));
        assert!(!pod_available(&json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}})));
        assert!(!pod_available(&json!({})));
    }

    #[test]
    fn aborting_turns_the_update_around_to_the_original_size() {
        let old = json!({"metadata": {"name": "frontend", "uid": "u1", "annotations": {ORIGINAL_REPLICAS: "3"}}});
        let new = json!({"metadata": {"name": "frontend-v2", "uid": "u2"}});
        let timing = Timing { update_period: Duration::ZERO, interval: Duration::ZERO, timeout: Duration::ZERO };
        let mut config = Config { old, new, cleanup: Cleanup::Rename, max_unavailable: 0, max_surge: 1, timing };
        abort(&mut config).expect("has the original size");
        assert_eq!(name(&config.old), "frontend-v2");
        assert_eq!(name(&config.new), "frontend");
        assert_eq!(annotation(&config.new, SOURCE_ID), Some("frontend-v2:u2"));
        assert_eq!(annotation(&config.new, DESIRED_REPLICAS), Some("3"));
        assert_eq!(config.cleanup, Cleanup::Delete);
    }

    #[test]
    fn go_maps_print_sorted() {
        assert_eq!(go_map(Some(&json!({"b": "2", "a": "1"}))), "map[a:1 b:2]");
        assert_eq!(go_map(None), "map[]");
    }
}
