//! Rows of persistent volumes and their claims.

use super::opt;
use crate::printers::age;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};

/// `RWO,ROX`: access modes as kubectl abbreviates them.
pub fn access_modes(modes: &[String]) -> String {
    modes
        .iter()
        .map(|m| match m.as_str() {
            "ReadWriteOnce" => "RWO",
            "ReadOnlyMany" => "ROX",
            "ReadWriteMany" => "RWX",
            "ReadWriteOncePod" => "RWOP",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Headers of persistent volumes.
pub fn pv_headers() -> Vec<&'static str> {
    vec!["NAME", "CAPACITY", "ACCESS MODES", "RECLAIM POLICY", "STATUS", "CLAIM", "STORAGECLASS", "REASON", "AGE"]
}

/// The cells of a persistent volume.
pub fn pv(pv: &PersistentVolume) -> Vec<String> {
    let spec = pv.spec.clone().unwrap_or_default();
    let status = pv.status.clone().unwrap_or_default();
    let capacity = spec.capacity.as_ref().and_then(|c| c.get("storage")).map(|q| q.0.clone()).unwrap_or_default();
    let claim = spec.claim_ref.as_ref().map(|c| format!("{}/{}", opt(&c.namespace), opt(&c.name))).unwrap_or_default();
    vec![
        opt(&pv.metadata.name),
        capacity,
        access_modes(spec.access_modes.as_deref().unwrap_or_default()),
        spec.persistent_volume_reclaim_policy.clone().unwrap_or_else(|| "Retain".into()),
        status.phase.clone().unwrap_or_else(|| "Pending".into()),
        claim,
        opt(&spec.storage_class_name),
        opt(&status.reason),
        age::age(pv.metadata.creation_timestamp.as_ref()),
    ]
}

/// Headers of persistent volume claims.
pub fn pvc_headers() -> Vec<&'static str> {
    vec!["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS", "AGE"]
}

/// The cells of a persistent volume claim.
pub fn pvc(pvc: &PersistentVolumeClaim) -> Vec<String> {
    let spec = pvc.spec.clone().unwrap_or_default();
    let status = pvc.status.clone().unwrap_or_default();
    let phase = status.phase.clone().unwrap_or_else(|| "Pending".into());
    let bound = !opt(&spec.volume_name).is_empty();
    let (capacity, modes) = if bound {
        (
            status.capacity.as_ref().and_then(|c| c.get("storage")).map(|q| q.0.clone()).unwrap_or_default(),
            access_modes(status.access_modes.as_deref().unwrap_or_default()),
        )
    } else {
        (String::new(), String::new())
    };
    vec![
        opt(&pvc.metadata.name),
        phase,
        opt(&spec.volume_name),
        capacity,
        modes,
        opt(&spec.storage_class_name),
        age::age(pvc.metadata.creation_timestamp.as_ref()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_modes_are_abbreviated() {
        let modes = ["ReadWriteOnce".to_string(), "ReadOnlyMany".to_string(), "ReadWriteMany".to_string()];
        assert_eq!(access_modes(&modes), "RWO,ROX,RWX");
    }
}
