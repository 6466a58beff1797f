//! `scale (TYPE NAME... | TYPE/NAME... | -f FILE | TYPE -l SEL | TYPE --all)
//! --replicas=N`: sets `spec.replicas` of replication controllers, replica
//! sets and deployments through their scale subresource, as kubectl's scaler
//! does. With `--current-replicas` or `--resource-version` the new size
//! is written only if the object still has that size or version (a
//! conditional write, retried on conflict); with `--timeout` it then waits
//! until the controller reports the new size.

use super::print;
use super::targets::{self, Query};
use crate::cli::ScaleArgs;
use crate::duration;
use crate::printers::object::{self, Format};
use crate::report::{self, Reported, usage};
use crate::session::Session;
use rkube_api::{ApiError, Reason, ResourceInfo};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The kinds with a scale subresource in Kubernetes that rkube serves.
const SCALABLE: [&str; 3] = ["ReplicationController", "ReplicaSet", "Deployment"];

/// `spec.replicas`, defaulted to 1 as the API does.
pub fn spec_replicas(obj: &Value) -> i64 {
    obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)
}

/// `status.replicas`.
pub fn status_replicas(obj: &Value) -> i64 {
    obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0)
}

/// kubectl's `ScalePrecondition`: what the object must still look like.
#[derive(Debug, Clone, Default)]
pub struct Precondition {
    /// `--current-replicas` (-1: any).
    pub size: i64,
    /// `--resource-version` ("" : any).
    pub resource_version: String,
}

impl Precondition {
    /// kubectl's `PreconditionError`: `Expected replicas to be 2, was 3`.
    pub fn check(&self, obj: &Value) -> Result<(), String> {
        let current = spec_replicas(obj);
        if self.size != -1 && current != self.size {
            return Err(format!("Expected replicas to be {}, was {current}", self.size));
        }
        let rv = obj.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or_default();
        if !self.resource_version.is_empty() && rv != self.resource_version {
            return Err(format!("Expected resource version to be {}, was {rv}", self.resource_version));
        }
        Ok(())
    }
}

/// Why a scale failed.
#[derive(Debug)]
pub enum ScaleError {
    /// The precondition did not hold (its message).
    Precondition(String),
    /// The server refused.
    Api(ApiError),
    /// The object never reached the size in time (kubectl's message).
    Timeout(String),
}

impl ScaleError {
    /// The line kubectl prints.
    pub fn message(&self) -> String {
        match self {
            ScaleError::Precondition(m) | ScaleError::Timeout(m) => format!("error: {m}"),
            ScaleError::Api(e) => report::api_error(e),
        }
    }
}

fn decode(o: &rkube_proto::v1::Object, name: &str) -> Result<Value, ScaleError> {
    serde_json::from_slice(&o.json).map_err(|e| ScaleError::Api(ApiError::internal(format!("decoding {name}: {e}"))))
}

/// Writes `replicas` through the object's scale subresource, as kubectl's
/// scaler does; with a precondition, only while it holds (re-read and
/// retried when another writer got in between).
pub async fn set_replicas(
    s: &Session,
    info: &ResourceInfo,
    namespace: &str,
    name: &str,
    replicas: i64,
    precondition: Option<&Precondition>,
) -> Result<(), ScaleError> {
    for _ in 0..5 {
        let mut scale = json!({
            "apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": replicas},
        });
        if let Some(p) = precondition {
            let current = decode(&s.client.get_scale(info, namespace, name).await.map_err(ScaleError::Api)?, name)?;
            p.check(&current).map_err(ScaleError::Precondition)?;
            scale["metadata"]["resourceVersion"] =
                current.pointer("/metadata/resourceVersion").cloned().unwrap_or_default();
        }
        let body = serde_json::to_vec(&scale).expect("a Value always serializes");
        match s.client.update_scale(info, namespace, name, body).await {
            Ok(_) => return Ok(()),
            Err(e) if e.reason == Reason::Conflict && precondition.is_some() => continue,
            Err(e) => return Err(ScaleError::Api(e)),
        }
    }
    Err(ScaleError::Api(ApiError::conflict(info.plural, name, "too many concurrent writers; try again")))
}

/// kubectl's `WaitForScaleHasDesiredReplicas`: polls the Scale until the
/// controller reports `replicas` (or someone else changed the desired size).
pub async fn wait_for_replicas(
    s: &Session,
    info: &ResourceInfo,
    namespace: &str,
    name: &str,
    replicas: i64,
    interval: Duration,
    timeout: Duration,
) -> Result<(), ScaleError> {
    let deadline = Instant::now() + timeout;
    loop {
        let scale = decode(&s.client.get_scale(info, namespace, name).await.map_err(ScaleError::Api)?, name)?;
        let desired = spec_replicas(&scale);
        if desired != replicas || status_replicas(&scale) == desired {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(ScaleError::Timeout(format!("timed out waiting for \"{name}\" to be synced")));
        }
        tokio::time::sleep(interval.min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}

/// Runs `scale`.
pub async fn run(s: &Session, a: &ScaleArgs) -> anyhow::Result<()> {
    let format = Format::parse(a.output.as_deref(), &[Format::Table, Format::Name])?;
    let Some(replicas) = a.replicas else {
        return Err(usage("required flag(s) \"replicas\" not set"));
    };
    if replicas < 0 {
        return Err(usage("The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0"));
    }
    if a.current_replicas < -1 {
        return Err(usage("The --current-replicas must specify an integer of -1 or greater"));
    }
    let timeout = duration::parse(&a.timeout, "--timeout")?;
    let q = Query {
        resources: &a.resources,
        filenames: &a.filenames,
        recursive: a.recursive,
        selector: a.selector.as_deref(),
        all: a.all,
        type_selects_all: false,
        command: "scale",
    };
    if targets::nothing_named(&q) {
        return Err(usage(
            "You must provide one or more resources by argument or filename.\nExample resource specifications include:\n   '-f rsrc.yaml'\n   '--filename=rsrc.json'\n   '<resource> <name>'\n   '<resource>'",
        ));
    }
    let found = targets::resolve(s, &q).await?;
    let resource_version = a.resource_version.clone().unwrap_or_default();
    if !resource_version.is_empty() && found.objects.len() > 1 {
        return Err(usage("cannot use --resource-version with multiple resources"));
    }
    if found.objects.is_empty() {
        return if found.failed { Err(Reported.into()) } else { Err(usage("no objects passed to scale")) };
    }
    // A nil precondition is a blind write, as in kubectl.
    let precondition = (a.current_replicas != -1 || !resource_version.is_empty())
        .then(|| Precondition { size: i64::from(a.current_replicas), resource_version });
    for (info, obj) in &found.objects {
        if !SCALABLE.contains(&info.kind) {
            // kubectl asks for the scale subresource, which these kinds lack.
            eprintln!("Error from server (NotFound): the server could not find the requested resource");
            return Err(Reported.into());
        }
        let (namespace, name) = (object::namespace_of(obj), object::name_of(obj));
        let mut outcome = set_replicas(s, info, namespace, name, i64::from(replicas), precondition.as_ref()).await;
        if outcome.is_ok() && !timeout.is_zero() {
            outcome =
                wait_for_replicas(s, info, namespace, name, i64::from(replicas), Duration::from_secs(1), timeout).await;
        }
        if let Err(e) = outcome {
            eprintln!("{}", e.message());
            return Err(Reported.into());
        }
        let reference = object::reference(info, name);
        match format {
            Format::Name => print(&format!("{reference}\n"))?,
            _ => print(&format!("{reference} scaled\n"))?,
        }
    }
    if found.failed { Err(Reported.into()) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preconditions_read_like_kubectl() {
        let obj = json!({"metadata": {"resourceVersion": "7"}, "spec": {"replicas": 3}});
        let size = Precondition { size: 2, resource_version: String::new() };
        assert_eq!(size.check(&obj).expect_err("wrong size"), "Expected replicas to be 2, was 3");
        let rv = Precondition { size: -1, resource_version: "5".into() };
        assert_eq!(rv.check(&obj).expect_err("wrong version"), "Expected resource version to be 5, was 7");
        assert!(Precondition { size: 3, resource_version: "7".into() }.check(&obj).is_ok());
    }

    #[test]
    fn replicas_default_to_one() {
        assert_eq!(spec_replicas(&json!({"spec": {}})), 1);
        assert_eq!(status_replicas(&json!({})), 0);
    }
}
