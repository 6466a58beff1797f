//! Rows of persistent volumes and their claims.

use super::{AGE, Cell, Column, NAME, age_of, items, name, quantity, text};
use jiff::Timestamp;
use serde_json::Value;

/// The persistent volume table's columns.
pub(super) const PV_COLUMNS: &[Column] = &[
    NAME,
    Column::string("Capacity", "capacity is the description of the persistent volume's resources and capacity."),
    Column::string("Access Modes", "accessModes contains all ways the volume can be mounted."),
    Column::string("Reclaim Policy", "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim."),
    Column::string("Status", "phase indicates if a volume is available, bound to a claim, or released by a claim."),
    Column::string("Claim", "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim."),
    Column::string("StorageClass", "StorageClass of the pv"),
    Column::string("VolumeAttributesClass", "VolumeAttributesClass of the pv"),
    Column::string("Reason", "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI."),
    AGE,
    Column::string("VolumeMode", "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state.").wide(),
];

/// The persistent volume claim table's columns.
pub(super) const PVC_COLUMNS: &[Column] = &[
    NAME,
    Column::string("Status", "phase represents the current phase of PersistentVolumeClaim."),
    Column::string("Volume", "volumeName is the binding reference to the PersistentVolume backing this claim."),
    Column::string("Capacity", "capacity represents the actual resources of the underlying volume."),
    Column::string("Access Modes", "accessModes contains the actual access modes the volume backing the PVC has."),
    Column::string("StorageClass", "StorageClass of the pvc"),
    Column::string("VolumeAttributesClass", "VolumeAttributesClass of the pvc"),
    AGE,
    Column::string("VolumeMode", "volumeMode defines what type of volume is required by the claim.").wide(),
];

/// `RWO,ROX`: access modes abbreviated, in kubectl's fixed order, once each
/// (`GetAccessModesAsString`).
fn access_modes(modes: &Value) -> String {
    let modes: Vec<&str> = items(modes).iter().map(text).collect();
    [("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"), ("ReadWriteOncePod", "RWOP")]
        .iter()
        .filter(|(mode, _)| modes.contains(mode))
        .map(|(_, short)| *short)
        .collect::<Vec<_>>()
        .join(",")
}

/// The storage class: the beta annotation, else `spec.storageClassName`.
fn storage_class(object: &Value) -> &str {
    match text(&object["metadata"]["annotations"]["volume.beta.kubernetes.io/storage-class"]) {
        "" => text(&object["spec"]["storageClassName"]),
        class => class,
    }
}

/// The phase, or `Terminating` once the object is being deleted.
fn phase(object: &Value, unset: &'static str) -> String {
    if object["metadata"]["deletionTimestamp"].is_string() {
        return "Terminating".into();
    }
    match text(&object["status"]["phase"]) {
        "" => unset.into(),
        phase => phase.into(),
    }
}

/// A string field, or `<unset>`.
fn or_unset(v: &Value) -> String {
    v.as_str().unwrap_or("<unset>").to_string()
}

/// The cells of a persistent volume.
pub(super) fn pv(pv: &Value, now: Timestamp) -> Vec<Cell> {
    let spec = &pv["spec"];
    let claim = &spec["claimRef"];
    let claim = if claim.is_object() {
        format!("{}/{}", text(&claim["namespace"]), text(&claim["name"]))
    } else {
        String::new()
    };
    let reclaim = match text(&spec["persistentVolumeReclaimPolicy"]) {
        "" => "Retain",
        policy => policy,
    };
    vec![
        name(pv),
        quantity(&spec["capacity"]["storage"]).into(),
        access_modes(&spec["accessModes"]).into(),
        reclaim.into(),
        phase(pv, "Pending").into(),
        claim.into(),
        storage_class(pv).into(),
        or_unset(&spec["volumeAttributesClassName"]).into(),
        text(&pv["status"]["reason"]).into(),
        age_of(pv, now),
        or_unset(&spec["volumeMode"]).into(),
    ]
}

/// The cells of a persistent volume claim: capacity and access modes only once bound.
pub(super) fn pvc(pvc: &Value, now: Timestamp) -> Vec<Cell> {
    let (spec, status) = (&pvc["spec"], &pvc["status"]);
    let volume = text(&spec["volumeName"]);
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (quantity(&status["capacity"]["storage"]), access_modes(&status["accessModes"]))
    };
    vec![
        name(pvc),
        phase(pvc, "Pending").into(),
        volume.into(),
        capacity.into(),
        modes.into(),
        storage_class(pvc).into(),
        or_unset(&spec["volumeAttributesClassName"]).into(),
        age_of(pvc, now),
        or_unset(&spec["volumeMode"]).into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn strings(cells: &[Cell]) -> Vec<String> {
        cells.iter().map(Cell::to_string).collect()
    }

    #[test]
    fn access_modes_are_abbreviated_in_a_fixed_order() {
        assert_eq!(
            access_modes(&json!(["ReadWriteMany", "ReadWriteOnce", "ReadOnlyMany", "ReadWriteOnce"])),
            "RWO,ROX,RWX"
        );
    }

    #[test]
    fn pv_row_shows_capacity_claim_and_class() {
        let pv_obj = json!({
            "metadata": {"name": "pv1"},
            "spec": {"capacity": {"storage": "1024Mi"}, "accessModes": ["ReadWriteOnce"],
                     "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "fast", "volumeMode": "Filesystem",
                     "claimRef": {"namespace": "default", "name": "data"}},
            "status": {"phase": "Bound"},
        });
        assert_eq!(
            strings(&pv(&pv_obj, Timestamp::UNIX_EPOCH)),
            ["pv1", "1Gi", "RWO", "Delete", "Bound", "default/data", "fast", "<unset>", "", "<unknown>", "Filesystem"]
        );
    }

    #[test]
    fn pvc_row_shows_capacity_once_bound() {
        let pending = json!({"metadata": {"name": "data"}, "spec": {"storageClassName": "fast"}});
        assert_eq!(strings(&pvc(&pending, Timestamp::UNIX_EPOCH))[..6], ["data", "Pending", "", "", "", "fast"]);
        let bound = json!({"metadata": {"name": "data", "deletionTimestamp": "2024-01-01T00:00:00Z"},
                           "spec": {"volumeName": "pv1"},
                           "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}});
        assert_eq!(strings(&pvc(&bound, Timestamp::UNIX_EPOCH))[..5], ["data", "Terminating", "pv1", "1Gi", "RWO"]);
    }
}
