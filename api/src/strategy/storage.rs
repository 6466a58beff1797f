//! Persistent storage: PersistentVolumes and PersistentVolumeClaims. Their
//! defaults (reclaim policy Retain, volume mode Filesystem, phase Pending)
//! and rules (access modes, storage size, exactly one volume source, what
//! may change once created).

use super::scheduling::validate_node_selector;
use crate::error::Cause;
use crate::kinds::Strategy;
use crate::quantity;
use crate::validation::causes::{invalid_value, json, required_because};
use crate::validation::checks::{dns_subdomain, formatted, label_selector, one_of};
use crate::validation::{forbidden, invalid, not_supported, required, syntax};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, PersistentVolumeSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use serde_json::Value;

const ACCESS_MODES: &[&str] = &["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"];
const VOLUME_MODES: &[&str] = &["Block", "Filesystem"];

fn access_modes(modes: &[String], path: &str, required_msg: Option<&str>) -> Vec<Cause> {
    if modes.is_empty() {
        return vec![match required_msg {
            Some(why) => required_because(path, why),
            None => required(path),
        }];
    }
    let mut causes = Vec::new();
    for m in modes {
        if !ACCESS_MODES.contains(&m.as_str()) {
            causes.push(not_supported(path, m, ACCESS_MODES));
        }
    }
    let once_pod = modes.iter().any(|m| m == "ReadWriteOncePod");
    let others = modes.iter().any(|m| m != "ReadWriteOncePod" && ACCESS_MODES.contains(&m.as_str()));
    if once_pod && others {
        causes.push(forbidden(path, "may not use ReadWriteOncePod with other access modes"));
    }
    causes
}

/// A storage size: it must parse and be greater than zero.
fn storage_size(path: &str, q: &K8sQuantity) -> Vec<Cause> {
    match quantity::parse_k8s(q) {
        Err(why) => vec![invalid(path, &q.0, &why)],
        Ok(v) if v.is_negative() || v.is_zero() => vec![invalid(path, &q.0, "must be greater than zero")],
        Ok(_) => Vec::new(),
    }
}

/// The volume sources a PV has set, in the order Kubernetes checks them.
fn pv_sources(s: &PersistentVolumeSpec) -> Vec<&'static str> {
    [
        ("hostPath", s.host_path.is_some()),
        ("gcePersistentDisk", s.gce_persistent_disk.is_some()),
        ("awsElasticBlockStore", s.aws_elastic_block_store.is_some()),
        ("glusterfs", s.glusterfs.is_some()),
        ("flocker", s.flocker.is_some()),
        ("nfs", s.nfs.is_some()),
        ("rbd", s.rbd.is_some()),
        ("quobyte", s.quobyte.is_some()),
        ("cinder", s.cinder.is_some()),
        ("cephfs", s.cephfs.is_some()),
        ("iscsi", s.iscsi.is_some()),
        ("fc", s.fc.is_some()),
        ("flexVolume", s.flex_volume.is_some()),
        ("azureFile", s.azure_file.is_some()),
        ("vsphereVolume", s.vsphere_volume.is_some()),
        ("photonPersistentDisk", s.photon_persistent_disk.is_some()),
        ("portworxVolume", s.portworx_volume.is_some()),
        ("azureDisk", s.azure_disk.is_some()),
        ("scaleIO", s.scale_io.is_some()),
        ("local", s.local.is_some()),
        ("storageos", s.storageos.is_some()),
        ("csi", s.csi.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect()
}

/// The spec without the fields that may change after creation, as JSON.
fn pv_source_json(s: &PersistentVolumeSpec) -> Value {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    if let Some(map) = v.as_object_mut() {
        for mutable in [
            "accessModes",
            "capacity",
            "claimRef",
            "mountOptions",
            "nodeAffinity",
            "persistentVolumeReclaimPolicy",
            "storageClassName",
            "volumeAttributesClassName",
            "volumeMode",
        ] {
            map.remove(mutable);
        }
    }
    v
}

impl Strategy for PersistentVolume {
    fn default_fields(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        if spec.persistent_volume_reclaim_policy.as_deref().is_none_or(str::is_empty) {
            spec.persistent_volume_reclaim_policy = Some("Retain".into());
        }
        spec.volume_mode.get_or_insert_with(|| "Filesystem".into());
        if let Some(h) = &mut spec.host_path {
            h.type_.get_or_insert_with(String::new);
        }
        let status = self.status.get_or_insert_with(Default::default);
        if status.phase.as_deref().is_none_or(str::is_empty) {
            status.phase = Some("Pending".into());
        }
    }

    fn validate(&self) -> Vec<Cause> {
        let spec = self.spec.clone().unwrap_or_default();
        let mut causes = access_modes(spec.access_modes.as_deref().unwrap_or_default(), "spec.accessModes", None);
        let capacity = spec.capacity.clone().unwrap_or_default();
        if capacity.is_empty() {
            causes.push(required("spec.capacity"));
        } else if !capacity.contains_key("storage") || capacity.len() > 1 {
            let keys: Vec<&str> = capacity.keys().map(String::as_str).collect();
            causes.push(not_supported("spec.capacity", &keys.join(","), &["storage"]));
        }
        for (name, q) in &capacity {
            causes.extend(storage_size(&format!("spec.capacity[{name}]"), q));
        }
        if let Some(policy) = &spec.persistent_volume_reclaim_policy {
            causes.extend(one_of("spec.persistentVolumeReclaimPolicy", policy, &["Delete", "Recycle", "Retain"]));
        }
        let sources = pv_sources(&spec);
        match sources.first() {
            None => causes.push(required_because("spec", "must specify a volume type")),
            Some(first) => {
                for s in &sources[1..] {
                    causes.push(forbidden(format!("spec.{s}"), "may not specify more than 1 volume type"));
                }
                causes.extend(pv_source(&spec, first));
            }
        }
        if let Some(mode) = &spec.volume_mode {
            causes.extend(one_of("spec.volumeMode", mode, VOLUME_MODES));
        }
        if let Some(class) = spec.storage_class_name.as_deref().filter(|c| !c.is_empty()) {
            causes.extend(dns_subdomain("spec.storageClassName", class));
        }
        if let Some(affinity) = &spec.node_affinity {
            match &affinity.required {
                Some(selector) => causes.extend(validate_node_selector(selector, "spec.nodeAffinity.required")),
                None => causes
                    .push(required_because("spec.nodeAffinity.required", "must specify required node constraints")),
            }
        }
        causes
    }

    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        let mut causes = self.validate();
        let (new, old) = (self.spec.clone().unwrap_or_default(), old.spec.clone().unwrap_or_default());
        if pv_source_json(&new) != pv_source_json(&old) {
            causes.push(forbidden(
                "spec.persistentvolumesource",
                "spec.persistentvolumesource is immutable after creation",
            ));
        }
        if new.volume_mode != old.volume_mode {
            causes.push(invalid_value("spec.volumeMode", json(&new.volume_mode), "field is immutable"));
        }
        if old.node_affinity.is_some() && new.node_affinity != old.node_affinity {
            causes.push(invalid_value("spec.nodeAffinity", json(&new.node_affinity), "field is immutable"));
        }
        causes
    }
}

fn pv_source(spec: &PersistentVolumeSpec, source: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    match source {
        "hostPath" => {
            let h = spec.host_path.as_ref().expect("hostPath is set");
            if h.path.is_empty() {
                causes.push(required("spec.hostPath.path"));
            } else {
                causes.extend(formatted("spec.hostPath.path", &h.path, syntax::no_backsteps(&h.path)));
            }
        }
        "nfs" => {
            let n = spec.nfs.as_ref().expect("nfs is set");
            if n.server.is_empty() {
                causes.push(required("spec.nfs.server"));
            }
            if n.path.is_empty() {
                causes.push(required("spec.nfs.path"));
            }
            if !n.path.starts_with('/') {
                causes.push(invalid("spec.nfs.path", &n.path, "must be an absolute path"));
            }
        }
        "local" => {
            let l = spec.local.as_ref().expect("local is set");
            if l.path.is_empty() {
                causes.push(required("spec.local.path"));
            } else {
                causes.extend(formatted("spec.local.path", &l.path, syntax::no_backsteps(&l.path)));
            }
            if spec.node_affinity.is_none() {
                causes.push(required_because("spec.nodeAffinity", "Local volume requires node affinity"));
            }
        }
        "csi" => {
            let c = spec.csi.as_ref().expect("csi is set");
            if c.driver.is_empty() {
                causes.push(required("spec.csi.driver"));
            }
            if c.volume_handle.is_empty() {
                causes.push(required("spec.csi.volumeHandle"));
            }
        }
        _ => {}
    }
    causes
}

impl Strategy for PersistentVolumeClaim {
    fn default_fields(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        spec.volume_mode.get_or_insert_with(|| "Filesystem".into());
        let status = self.status.get_or_insert_with(Default::default);
        if status.phase.as_deref().is_none_or(str::is_empty) {
            status.phase = Some("Pending".into());
        }
    }

    fn validate(&self) -> Vec<Cause> {
        let spec = self.spec.clone().unwrap_or_default();
        let mut causes = access_modes(
            spec.access_modes.as_deref().unwrap_or_default(),
            "spec.accessModes",
            Some("at least 1 access mode is required"),
        );
        if let Some(selector) = &spec.selector {
            causes.extend(label_selector(selector, "spec.selector"));
        }
        let storage = spec.resources.as_ref().and_then(|r| r.requests.as_ref()).and_then(|r| r.get("storage"));
        match storage {
            None => causes.push(required("spec.resources[storage]")),
            Some(q) => causes.extend(storage_size("spec.resources[storage]", q)),
        }
        if let Some(class) = spec.storage_class_name.as_deref().filter(|c| !c.is_empty()) {
            causes.extend(dns_subdomain("spec.storageClassName", class));
        }
        if let Some(mode) = &spec.volume_mode {
            causes.extend(one_of("spec.volumeMode", mode, VOLUME_MODES));
        }
        causes
    }

    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        let mut causes = self.validate();
        let (new_spec, old_spec) = (self.spec.clone().unwrap_or_default(), old.spec.clone().unwrap_or_default());
        let mut new_clone = new_spec.clone();
        let mut old_clone = old_spec.clone();
        // The volume binder sets volumeName once.
        if old_spec.volume_name.as_deref().is_none_or(str::is_empty) {
            old_clone.volume_name.clone_from(&new_clone.volume_name);
        }
        let bound = self.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
        let storage = |s: &k8s_openapi::api::core::v1::PersistentVolumeClaimSpec| {
            s.resources.as_ref().and_then(|r| r.requests.as_ref()).and_then(|r| r.get("storage")).cloned()
        };
        if bound {
            // Bound claims may be resized: compare everything else.
            if let Some(requests) = new_clone.resources.as_mut().and_then(|r| r.requests.as_mut()) {
                match storage(&old_spec) {
                    Some(q) => requests.insert("storage".into(), q),
                    None => requests.remove("storage"),
                };
            }
            new_clone.volume_attributes_class_name.clone_from(&old_clone.volume_attributes_class_name);
        }
        if new_clone != old_clone {
            causes.push(forbidden(
                "spec",
                "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
            ));
        }
        let parse = |q: Option<K8sQuantity>| q.and_then(|q| quantity::parse_k8s(&q).ok());
        if let (Some(new), Some(old)) = (parse(storage(&new_spec)), parse(storage(&old_spec)))
            && new < old
        {
            causes.push(forbidden("spec.resources.requests.storage", "field can not be less than previous value"));
        }
        causes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;
    use serde_json::json;

    fn object<T: Strategy + DeserializeOwned>(v: Value) -> T {
        let mut o: T = serde_json::from_value(v).expect("decodes");
        o.default_fields();
        o
    }

    fn messages(causes: &[Cause]) -> Vec<String> {
        causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect()
    }

    #[test]
    fn pv_defaults_reclaim_policy_mode_and_phase() {
        let pv: PersistentVolume = object(json!({"metadata": {"name": "pv"}, "spec": {
            "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/data"}}}));
        let spec = pv.spec.as_ref().expect("spec");
        assert_eq!(spec.persistent_volume_reclaim_policy.as_deref(), Some("Retain"));
        assert_eq!(spec.volume_mode.as_deref(), Some("Filesystem"));
        assert_eq!(pv.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Pending"));
        assert!(pv.validate().is_empty(), "{:?}", pv.validate());
    }

    #[test]
    fn pv_needs_capacity_access_modes_and_one_source() {
        let pv: PersistentVolume = object(json!({"metadata": {"name": "pv"}, "spec": {}}));
        assert_eq!(
            messages(&pv.validate()),
            [
                "spec.accessModes: Required value",
                "spec.capacity: Required value",
                "spec: Required value: must specify a volume type"
            ]
        );
        let two: PersistentVolume = object(json!({"metadata": {"name": "pv"}, "spec": {
            "capacity": {"storage": "0"}, "accessModes": ["ReadWriteSometimes"],
            "hostPath": {"path": "/a"}, "nfs": {"server": "s", "path": "/b"}}}));
        assert_eq!(
            messages(&two.validate()),
            [
                "spec.accessModes: Unsupported value: \"ReadWriteSometimes\": supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\"",
                "spec.capacity[storage]: Invalid value: \"0\": must be greater than zero",
                "spec.nfs: Forbidden: may not specify more than 1 volume type",
            ]
        );
    }

    #[test]
    fn pvc_needs_access_modes_and_storage() {
        let pvc: PersistentVolumeClaim = object(json!({"metadata": {"name": "c"}, "spec": {}}));
        assert_eq!(
            messages(&pvc.validate()),
            [
                "spec.accessModes: Required value: at least 1 access mode is required",
                "spec.resources[storage]: Required value"
            ]
        );
        let ok: PersistentVolumeClaim = object(json!({"metadata": {"name": "c"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}));
        assert_eq!(ok.spec.as_ref().and_then(|s| s.volume_mode.as_deref()), Some("Filesystem"));
        assert_eq!(ok.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Pending"));
        assert!(ok.validate().is_empty());
    }

    #[test]
    fn pvc_spec_is_immutable_except_volume_name_and_bound_resize() {
        let old: PersistentVolumeClaim = object(json!({"metadata": {"name": "c"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}));
        let mut bound = old.clone();
        bound.spec.as_mut().expect("spec").volume_name = Some("pv-1".into());
        assert!(bound.validate_update(&old).is_empty());

        let mut grown = bound.clone();
        grown.status.as_mut().expect("status").phase = Some("Bound".into());
        grown
            .spec
            .as_mut()
            .and_then(|s| s.resources.as_mut())
            .and_then(|r| r.requests.as_mut())
            .expect("requests")
            .insert("storage".into(), K8sQuantity("2Gi".into()));
        assert!(grown.validate_update(&bound).is_empty(), "{:?}", grown.validate_update(&bound));
        let mut shrunk = grown.clone();
        shrunk
            .spec
            .as_mut()
            .and_then(|s| s.resources.as_mut())
            .and_then(|r| r.requests.as_mut())
            .expect("requests")
            .insert("storage".into(), K8sQuantity("1Gi".into()));
        assert_eq!(
            messages(&shrunk.validate_update(&grown)),
            ["spec.resources.requests.storage: Forbidden: field can not be less than previous value"]
        );

        let mut modes = old.clone();
        modes.spec.as_mut().expect("spec").access_modes = Some(vec!["ReadWriteMany".into()]);
        assert_eq!(
            messages(&modes.validate_update(&old)),
            [
                "spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"
            ]
        );
    }
}
