//! The ResourceQuota admission plugin (Kubernetes'
//! `apiserver/pkg/admission/plugin/resourcequota`): a create that would
//! take a namespace past one of its quotas is refused, and an admitted one
//! is charged to the quotas at once, so that concurrent creates cannot all
//! squeeze under the same limit.
//!
//! For a new object of a counted kind (every namespaced kind but Event),
//! in a namespace with quotas, each quota whose `status.hard` names
//! something the object consumes (and whose scopes the object is in) is
//! checked against `status.used`:
//!
//! - a quota on cpu or memory refuses a pod whose containers do not state
//!   them: `failed quota: <name>: must specify limits.cpu for: c`;
//! - a quota whose usage the controller has not computed yet refuses:
//!   `status unknown for quota: <name>, resources: pods`;
//! - `used + requested > hard` refuses: `exceeded quota: <name>, requested:
//!   pods=1, used: pods=4, limited: pods=4`.
//!
//! Otherwise `status.used` of every such quota is increased by what the
//! object costs, with a write conditional on the quota's resourceVersion;
//! a lost race reads the quotas again and starts over. Creates in one
//! namespace take their turn (one apiserver does not race itself), and the
//! conditional write keeps several apiservers and the resourcequota
//! controller honest. The object's usage is measured after validation and
//! defaulting, as Kubernetes does. Should the create fail after the charge,
//! the controller's next sync gives the difference back.

use super::policy_cache::PolicyCache;
use crate::registry::{ListOptions, Registry};
use k8s_openapi::api::core::v1::{Pod, ResourceQuota};
use k8s_openapi::jiff::Timestamp;
use rkube_api::quota::{self, PodFacts, Usage};
use rkube_api::resource::lookup;
use rkube_api::{ApiError, Reason, ResourceInfo, Result, kinds};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How many times a charge is tried again after losing a race.
const RETRIES: usize = 8;

/// One lock per namespace: creates there are charged one at a time.
#[derive(Debug, Default)]
pub struct NamespaceLocks {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl NamespaceLocks {
    fn get(&self, namespace: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(namespace.to_string()).or_default().clone()
    }
}

/// What an object asks of one quota.
struct Charge {
    quota: ResourceQuota,
    used: Usage,
}

/// Checks a new object against the quotas of its namespace and charges it
/// to them (not on a dry run); see the module docs.
pub async fn admit(
    registry: &Registry,
    cache: &PolicyCache,
    locks: &NamespaceLocks,
    info: &'static ResourceInfo,
    namespace: &str,
    obj: &Value,
    dry_run: bool,
) -> Result<()> {
    if !quota::is_counted(info) || cache.get(namespace).await?.is_empty() {
        return Ok(());
    }
    // Measure the object as it will be stored (defaulted, and valid).
    let measured = if info.kind == "Service" {
        obj.clone()
    } else {
        crate::codec::decode(&kinds::prepare_create_json(info, obj)?)?
    };
    let name = measured.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
    let forbidden = |why: String| ApiError::forbidden(info.plural, &name, &why);
    let usage = quota::usage(info, &measured, Timestamp::now());
    let pod: Option<Pod> = (info.kind == "Pod").then(|| serde_json::from_value(measured.clone()).ok()).flatten();
    let lock = locks.get(namespace);
    let _turn = lock.lock().await;
    let quotas_info = lookup("resourcequotas").expect("resourcequotas are in the table");
    let mut last = None;
    for _ in 0..RETRIES {
        let listed = registry.list(quotas_info, namespace, &ListOptions::default()).await?;
        let quotas: Vec<ResourceQuota> =
            listed.items.iter().filter_map(|o| serde_json::from_slice(&o.json).ok()).collect();
        let charges = check(info, &usage, pod.as_ref(), &quotas).map_err(forbidden)?;
        if dry_run {
            return Ok(());
        }
        let mut lost = false;
        for charge in charges {
            let mut q = charge.quota;
            q.status.get_or_insert_with(Default::default).used = Some(quota::to_list(&charge.used));
            let body = serde_json::to_vec(&q).map_err(|e| ApiError::internal(e.to_string()))?;
            let quota_name = q.metadata.name.clone().unwrap_or_default();
            match registry.update(quotas_info, namespace, &quota_name, &body, true, false).await {
                Ok(_) => {}
                Err(e) if matches!(e.reason, Reason::Conflict | Reason::NotFound) => {
                    last = Some(e);
                    lost = true;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        if !lost {
            return Ok(());
        }
    }
    Err(last.unwrap_or_else(|| ApiError::internal("resource quota charge failed")))
}

/// `CheckRequest` for a create: the new `status.used` of every quota the
/// object is charged to, or why it is refused.
fn check(
    info: &ResourceInfo,
    usage: &Usage,
    pod: Option<&Pod>,
    quotas: &[ResourceQuota],
) -> Result<Vec<Charge>, String> {
    let facts = pod.map(PodFacts::of);
    let mut interesting = Vec::new();
    for q in quotas {
        let name = q.metadata.name.clone().unwrap_or_default();
        let status = q.status.as_ref();
        let hard = quota::parse_list(status.and_then(|s| s.hard.as_ref()));
        let used = quota::parse_list(status.and_then(|s| s.used.as_ref()));
        let restricted = quota::matching_resources(info, hard.keys().map(String::as_str));
        if restricted.is_empty() {
            continue;
        }
        let spec = q.spec.clone().unwrap_or_default();
        let in_scope = match &facts {
            Some(f) => quota::pod_matches_scopes(&spec, f),
            None => quota::object_matches_scopes(&spec),
        };
        if !in_scope {
            continue;
        }
        if let Some(pod) = pod {
            quota::pod_constraints(&restricted, pod).map_err(|e| format!("failed quota: {name}: {e}"))?;
        }
        if restricted.iter().any(|r| !used.contains_key(r)) {
            let mut names: Vec<&str> = restricted.iter().map(String::as_str).collect();
            names.sort_unstable();
            return Err(format!("status unknown for quota: {name}, resources: {}", names.join(",")));
        }
        interesting.push((q, name, hard, used));
    }
    let mut charges = Vec::new();
    for (q, name, hard, used) in interesting {
        let requested: Usage = quota::mask(usage, hard.keys().map(String::as_str))
            .into_iter()
            .filter(|(_, v)| !v.value.is_zero())
            .collect();
        if requested.is_empty() {
            continue;
        }
        let mut new_used = used.clone();
        quota::add(&mut new_used, &requested);
        let exceeded: Vec<&str> = requested
            .keys()
            .map(String::as_str)
            .filter(|k| new_used.get(*k).map(|a| a.value) > hard.get(*k).map(|a| a.value))
            .collect();
        if !exceeded.is_empty() {
            return Err(format!(
                "exceeded quota: {name}, requested: {}, used: {}, limited: {}",
                quota::pretty(&quota::mask(&requested, exceeded.iter().copied())),
                quota::pretty(&quota::mask(&used, exceeded.iter().copied())),
                quota::pretty(&quota::mask(&hard, exceeded.iter().copied())),
            ));
        }
        charges.push(Charge { quota: q.clone(), used: new_used });
    }
    Ok(charges)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(name: &str, hard: Value, used: Value) -> ResourceQuota {
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"hard": hard},
            "status": {"hard": hard, "used": used}}))
        .unwrap()
    }

    fn pod(resources: Value) -> (Usage, Pod) {
        let v = json!({"metadata": {"name": "p5"}, "spec": {"containers": [{"name": "c", "resources": resources}]}});
        let info = lookup("pods").unwrap();
        (quota::usage(info, &v, Timestamp::now()), serde_json::from_value(v).unwrap())
    }

    #[test]
    fn the_pod_past_the_limit_is_refused_with_kubernetes_message() {
        let (usage, p) = pod(json!({}));
        let quotas = [q("compute-resources", json!({"pods": "4"}), json!({"pods": "4"}))];
        let err = check(lookup("pods").unwrap(), &usage, Some(&p), &quotas).err().unwrap();
        assert_eq!(err, "exceeded quota: compute-resources, requested: pods=1, used: pods=4, limited: pods=4");
        let quotas = [q("compute-resources", json!({"pods": "4"}), json!({"pods": "3"}))];
        let charges = check(lookup("pods").unwrap(), &usage, Some(&p), &quotas).unwrap();
        assert_eq!(quota::pretty(&charges[0].used), "pods=4");
    }

    #[test]
    fn compute_quotas_require_requests_and_count_them() {
        let quotas = [q(
            "compute",
            json!({"requests.cpu": "1", "limits.memory": "1Gi"}),
            json!({"requests.cpu": "500m", "limits.memory": "0"}),
        )];
        let (usage, p) = pod(json!({"requests": {"cpu": "100m"}}));
        let err = check(lookup("pods").unwrap(), &usage, Some(&p), &quotas).err().unwrap();
        assert_eq!(err, "failed quota: compute: must specify limits.memory for: c");
        let (usage, p) = pod(json!({"requests": {"cpu": "600m"}, "limits": {"memory": "256Mi"}}));
        let err = check(lookup("pods").unwrap(), &usage, Some(&p), &quotas).err().unwrap();
        assert_eq!(
            err,
            "exceeded quota: compute, requested: requests.cpu=600m, used: requests.cpu=500m, limited: requests.cpu=1"
        );
        let (usage, p) = pod(json!({"requests": {"cpu": "500m"}, "limits": {"memory": "256Mi"}}));
        let charges = check(lookup("pods").unwrap(), &usage, Some(&p), &quotas).unwrap();
        assert_eq!(quota::pretty(&charges[0].used), "limits.memory=256Mi,requests.cpu=1");
    }

    #[test]
    fn quotas_without_usage_refuse_and_unrelated_quotas_are_ignored() {
        let (usage, p) = pod(json!({}));
        let fresh: ResourceQuota = serde_json::from_value(json!({"metadata": {"name": "new"},
            "spec": {"hard": {"pods": "1"}}, "status": {"hard": {"pods": "1"}}}))
        .unwrap();
        let err = check(lookup("pods").unwrap(), &usage, Some(&p), &[fresh]).err().unwrap();
        assert_eq!(err, "status unknown for quota: new, resources: pods");
        let other = [q("objects", json!({"configmaps": "1"}), json!({"configmaps": "1"}))];
        assert!(check(lookup("pods").unwrap(), &usage, Some(&p), &other).unwrap().is_empty());
    }
}
