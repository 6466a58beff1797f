//! Controller references: which controller owns an object, adopting orphans
//! that match a controller's selector and releasing objects that stopped
//! matching (client-go's `ControllerRefManager`).
//!
//! [`plan_claim`] decides, from the cache alone, what a controller owns,
//! what it should adopt and what it should release; [`claim`] carries the
//! adoptions and releases out with merge patches conditional on each
//! object's resourceVersion, so a racing writer makes the patch fail
//! (and the controller look again) instead of being overwritten.

use crate::client::Api;
use crate::informers::controller_of;
use k8s_openapi::Metadata;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use rkube_api::selector::Selector;
use rkube_api::{Reason, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The controller reference an object owned by `owner` carries:
/// `controller: true`, `blockOwnerDeletion: true`.
pub fn controller_ref<K: k8s_openapi::Resource + Metadata<Ty = ObjectMeta>>(owner: &K) -> OwnerReference {
    let meta = owner.metadata();
    OwnerReference {
        api_version: K::API_VERSION.to_string(),
        kind: K::KIND.to_string(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether `obj` is controlled by the object with uid `owner_uid`.
pub fn is_controlled_by<K: Metadata<Ty = ObjectMeta>>(obj: &K, owner_uid: &str) -> bool {
    controller_of(obj.metadata()).is_some_and(|r| r.uid == owner_uid)
}

/// What a controller should do with the objects of its namespace.
#[derive(Debug)]
pub struct ClaimPlan<K> {
    /// Objects it controls that match its selector: its own.
    pub owned: Vec<Arc<K>>,
    /// Orphans matching its selector, to adopt.
    pub adopt: Vec<Arc<K>>,
    /// Objects it controls that no longer match, to release.
    pub release: Vec<Arc<K>>,
}

/// Sorts `candidates` (the objects in the owner's namespace) by what the
/// owner (`owner` is its controller reference) should do with them. An owner
/// being deleted adopts nothing; objects being deleted are neither adopted
/// nor released.
pub fn plan_claim<K: Metadata<Ty = ObjectMeta>>(
    owner: &OwnerReference,
    owner_deleting: bool,
    selector: &Selector,
    candidates: impl IntoIterator<Item = Arc<K>>,
) -> ClaimPlan<K> {
    let mut plan = ClaimPlan { owned: Vec::new(), adopt: Vec::new(), release: Vec::new() };
    let empty = BTreeMap::new();
    for obj in candidates {
        let meta = obj.metadata();
        let matches = selector.matches(meta.labels.as_ref().unwrap_or(&empty));
        match controller_of(meta) {
            Some(r) if r.uid == owner.uid => {
                if matches {
                    plan.owned.push(obj);
                } else if meta.deletion_timestamp.is_none() {
                    plan.release.push(obj);
                }
            }
            Some(_) => {}
            None => {
                if matches && !owner_deleting && meta.deletion_timestamp.is_none() && !selector.is_empty() {
                    plan.adopt.push(obj);
                }
            }
        }
    }
    plan
}

/// Carries out `plan`'s adoptions (when `can_adopt`: the caller checked
/// with a live read that the owner still exists with the same uid) and
/// releases; returns the objects the owner controls afterwards. Objects that
/// changed or vanished meanwhile are skipped: the informer's next event
/// brings the controller back to them.
pub async fn claim<K>(api: &Api<K>, owner: &OwnerReference, plan: ClaimPlan<K>, can_adopt: bool) -> Result<Vec<Arc<K>>>
where
    K: k8s_openapi::Resource + Metadata<Ty = ObjectMeta> + Serialize + DeserializeOwned + Clone + Send + 'static,
{
    let ClaimPlan { mut owned, adopt, release } = plan;
    for obj in release {
        let meta = obj.metadata();
        let others: Vec<&OwnerReference> =
            meta.owner_references.iter().flatten().filter(|r| r.uid != owner.uid).collect();
        let patch = json!({"metadata": {"ownerReferences": others, "resourceVersion": meta.resource_version}});
        tolerate_races(api.patch(meta.name.as_deref().unwrap_or_default(), &patch).await)?;
    }
    if !can_adopt {
        return Ok(owned);
    }
    for obj in adopt {
        let meta = obj.metadata();
        let mut refs: Vec<OwnerReference> = meta.owner_references.clone().unwrap_or_default();
        refs.push(owner.clone());
        let patch = json!({"metadata": {"ownerReferences": refs, "resourceVersion": meta.resource_version}});
        if let Some(adopted) = tolerate_races(api.patch(meta.name.as_deref().unwrap_or_default(), &patch).await)? {
            owned.push(Arc::new(adopted));
        }
    }
    Ok(owned)
}

/// A patch that lost a race (Conflict) or whose object is gone (NotFound)
/// is skipped, not an error.
fn tolerate_races<K>(result: Result<K>) -> Result<Option<K>> {
    match result {
        Ok(k) => Ok(Some(k)),
        Err(e) if matches!(e.reason, Reason::Conflict | Reason::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn pod(name: &str, app: &str, controller_uid: Option<&str>) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                labels: Some([("app".to_string(), app.to_string())].into()),
                owner_references: controller_uid.map(|uid| {
                    vec![OwnerReference {
                        api_version: "v1".into(),
                        kind: "ReplicationController".into(),
                        name: "x".into(),
                        uid: uid.into(),
                        controller: Some(true),
                        block_owner_deletion: Some(true),
                    }]
                }),
                ..Default::default()
            },
            ..Default::default()
        })
    }

    fn names(pods: &[Arc<Pod>]) -> Vec<&str> {
        pods.iter().map(|p| p.metadata.name.as_deref().unwrap()).collect()
    }

    #[test]
    fn owns_matching_adopts_orphans_releases_strays_and_leaves_others_alone() {
        let owner = OwnerReference { uid: "me".into(), controller: Some(true), ..Default::default() };
        let selector = Selector::parse("app=web").unwrap();
        let pods = vec![
            pod("mine", "web", Some("me")),
            pod("stray", "db", Some("me")),
            pod("orphan", "web", None),
            pod("other-orphan", "db", None),
            pod("someone-elses", "web", Some("them")),
        ];
        let plan = plan_claim(&owner, false, &selector, pods.clone());
        assert_eq!(names(&plan.owned), ["mine"]);
        assert_eq!(names(&plan.adopt), ["orphan"]);
        assert_eq!(names(&plan.release), ["stray"]);
        let plan = plan_claim(&owner, true, &selector, pods);
        assert!(plan.adopt.is_empty(), "an owner being deleted adopts nothing");
    }

    #[test]
    fn terminating_orphans_are_not_adopted() {
        let owner = OwnerReference { uid: "me".into(), ..Default::default() };
        let mut p = (*pod("orphan", "web", None)).clone();
        p.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        let plan = plan_claim(&owner, false, &Selector::parse("app=web").unwrap(), [Arc::new(p)]);
        assert!(plan.adopt.is_empty());
    }
}
