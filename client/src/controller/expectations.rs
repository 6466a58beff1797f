//! What a controller is still waiting to see in its cache (client-go's
//! `ControllerExpectations`).
//!
//! A ReplicaSet controller that creates 3 pods must not count the pods again
//! before its informer has seen them, or the next reconcile creates 3 more.
//! Before writing, it records how many creations/deletions it expects for
//! its key; the pod informer's events lower the counts as they arrive; a
//! reconcile that finds the expectations unmet only updates status. A
//! write that failed is un-expected at once. Expectations older than
//! [`EXPECTATIONS_TIMEOUT`] count as met, so a lost event cannot wedge a
//! controller forever.

use crate::store::ObjectKey;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long unmet expectations hold (Kubernetes' 5 minutes).
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Clone, Copy)]
struct Pending {
    adds: i64,
    dels: i64,
    since: Instant,
}

/// Expected creations and deletions per controller key.
#[derive(Debug, Default)]
pub struct Expectations {
    pending: Mutex<HashMap<ObjectKey, Pending>>,
}

impl Expectations {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectKey, Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `key` may act on its cache: nothing is pending, or what was
    /// pending arrived, or it is older than [`EXPECTATIONS_TIMEOUT`].
    pub fn satisfied(&self, key: &ObjectKey) -> bool {
        match self.lock().get(key) {
            None => true,
            Some(p) => (p.adds <= 0 && p.dels <= 0) || p.since.elapsed() > EXPECTATIONS_TIMEOUT,
        }
    }

    /// `key` is about to create `adds` and delete `dels` objects (replacing
    /// any earlier expectations).
    pub fn expect(&self, key: &ObjectKey, adds: usize, dels: usize) {
        let pending = Pending { adds: adds as i64, dels: dels as i64, since: Instant::now() };
        self.lock().insert(key.clone(), pending);
    }

    /// An object `key` created arrived in the cache (or its creation failed).
    pub fn creation_observed(&self, key: &ObjectKey) {
        if let Some(p) = self.lock().get_mut(key) {
            p.adds -= 1;
        }
    }

    /// An object `key` deleted left the cache (or its deletion failed).
    pub fn deletion_observed(&self, key: &ObjectKey) {
        if let Some(p) = self.lock().get_mut(key) {
            p.dels -= 1;
        }
    }

    /// Forgets `key` (its controller object is gone).
    pub fn forget(&self, key: &ObjectKey) {
        self.lock().remove(key);
    }
}

/// Which owned objects' arrivals and departures were already counted
/// toward their controller's expectations. A watch reports a pod many times
/// (every status change, the deletionTimestamp, the removal); each pod's
/// creation and deletion must count once.
#[derive(Debug, Default)]
pub struct Observations {
    /// uid -> whether its deletion (deletionTimestamp or removal) was counted.
    seen: Mutex<HashMap<String, bool>>,
}

impl Observations {
    /// Counts a watch event about the object `meta` (controlled by `key`)
    /// toward `expectations`: its first sighting is a creation, its first
    /// sighting with a deletionTimestamp or its removal (`deleted`) a
    /// deletion.
    pub fn observe(&self, expectations: &Expectations, key: &ObjectKey, meta: &ObjectMeta, deleted: bool) {
        let uid = meta.uid.clone().unwrap_or_default();
        let gone = deleted || meta.deletion_timestamp.is_some();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        match seen.get(&uid).copied() {
            None => {
                expectations.creation_observed(key);
                if gone {
                    expectations.deletion_observed(key);
                }
            }
            Some(false) if gone => expectations.deletion_observed(key),
            _ => {}
        }
        if deleted {
            seen.remove(&uid);
        } else {
            seen.insert(uid, gone);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn satisfied_once_every_expected_write_is_observed() {
        let e = Expectations::default();
        let key = ObjectKey::new("ns", "rs");
        assert!(e.satisfied(&key), "nothing expected");
        e.expect(&key, 2, 1);
        assert!(!e.satisfied(&key));
        e.creation_observed(&key);
        e.creation_observed(&key);
        assert!(!e.satisfied(&key), "a deletion is still pending");
        e.deletion_observed(&key);
        assert!(e.satisfied(&key));
        e.creation_observed(&key);
        assert!(e.satisfied(&key), "extra observations do not unsettle it");
        e.expect(&key, 1, 0);
        e.forget(&key);
        assert!(e.satisfied(&key));
    }

    #[test]
    fn each_object_counts_once_as_created_and_once_as_deleted() {
        let (e, seen) = (Expectations::default(), Observations::default());
        let key = ObjectKey::new("ns", "ds");
        let mut meta = ObjectMeta { uid: Some("u1".into()), ..Default::default() };
        e.expect(&key, 1, 1);
        seen.observe(&e, &key, &meta, false);
        seen.observe(&e, &key, &meta, false);
        assert!(!e.satisfied(&key), "one creation, no deletion yet");
        meta.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        seen.observe(&e, &key, &meta, false);
        assert!(e.satisfied(&key));
        e.expect(&key, 0, 1);
        seen.observe(&e, &key, &meta, true);
        assert!(!e.satisfied(&key), "the removal of a pod already seen terminating is not a second deletion");
    }
}
