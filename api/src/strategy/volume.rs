//! A pod's volumes: Kubernetes' defaults (an `emptyDir` when no source is
//! given, file modes 0644) and validation (names, exactly one source, the
//! required fields of the common sources, projected file paths).

use super::container::{default_field_ref, validate_field_ref};
use crate::error::Cause;
use crate::validation::causes::{invalid_value, required_because};
use crate::validation::checks::{dns_label, formatted, one_of};
use crate::validation::{duplicate, forbidden, invalid, required, syntax};
use k8s_openapi::api::core::v1::{DownwardAPIVolumeFile, KeyToPath, Volume};
use std::collections::BTreeSet;

/// The file mode ConfigMap, Secret, downward-API and projected volumes get
/// by default (0644).
pub const DEFAULT_FILE_MODE: i32 = 0o644;

const FILE_MODE_MSG: &str = "must be a number between 0 and 0777 (octal), both inclusive";

const DOWNWARD_VOLUME_FIELDS: &[&str] =
    &["metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace", "metadata.uid"];

/// The sources a volume has set, in the order Kubernetes checks them.
fn sources(v: &Volume) -> Vec<&'static str> {
    [
        ("emptyDir", v.empty_dir.is_some()),
        ("hostPath", v.host_path.is_some()),
        ("gitRepo", v.git_repo.is_some()),
        ("gcePersistentDisk", v.gce_persistent_disk.is_some()),
        ("awsElasticBlockStore", v.aws_elastic_block_store.is_some()),
        ("secret", v.secret.is_some()),
        ("nfs", v.nfs.is_some()),
        ("iscsi", v.iscsi.is_some()),
        ("glusterfs", v.glusterfs.is_some()),
        ("flocker", v.flocker.is_some()),
        ("persistentVolumeClaim", v.persistent_volume_claim.is_some()),
        ("rbd", v.rbd.is_some()),
        ("cinder", v.cinder.is_some()),
        ("cephfs", v.cephfs.is_some()),
        ("quobyte", v.quobyte.is_some()),
        ("downwardAPI", v.downward_api.is_some()),
        ("fc", v.fc.is_some()),
        ("flexVolume", v.flex_volume.is_some()),
        ("configMap", v.config_map.is_some()),
        ("azureFile", v.azure_file.is_some()),
        ("vsphereVolume", v.vsphere_volume.is_some()),
        ("photonPersistentDisk", v.photon_persistent_disk.is_some()),
        ("portworxVolume", v.portworx_volume.is_some()),
        ("azureDisk", v.azure_disk.is_some()),
        ("storageos", v.storageos.is_some()),
        ("projected", v.projected.is_some()),
        ("scaleIO", v.scale_io.is_some()),
        ("csi", v.csi.is_some()),
        ("ephemeral", v.ephemeral.is_some()),
        ("image", v.image.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect()
}

/// Applies the volume defaults: an `emptyDir` for a volume without a
/// source, default file modes, the hostPath type, token lifetimes.
pub(crate) fn default_volume(v: &mut Volume) {
    if sources(v).is_empty() {
        v.empty_dir = Some(Default::default());
    }
    if let Some(s) = &mut v.config_map {
        s.default_mode.get_or_insert(DEFAULT_FILE_MODE);
    }
    if let Some(s) = &mut v.secret {
        s.default_mode.get_or_insert(DEFAULT_FILE_MODE);
    }
    if let Some(s) = &mut v.downward_api {
        s.default_mode.get_or_insert(DEFAULT_FILE_MODE);
        for item in s.items.iter_mut().flatten() {
            default_downward_file(item);
        }
    }
    if let Some(p) = &mut v.projected {
        p.default_mode.get_or_insert(DEFAULT_FILE_MODE);
        for source in p.sources.iter_mut().flatten() {
            if let Some(t) = &mut source.service_account_token {
                t.expiration_seconds.get_or_insert(3600);
            }
            if let Some(d) = &mut source.downward_api {
                for item in d.items.iter_mut().flatten() {
                    default_downward_file(item);
                }
            }
        }
    }
    if let Some(h) = &mut v.host_path {
        h.type_.get_or_insert_with(String::new);
    }
}

fn default_downward_file(item: &mut DownwardAPIVolumeFile) {
    if let Some(f) = &mut item.field_ref {
        default_field_ref(f);
    }
}

/// Validates the volumes at `path` (`spec.volumes`); returns the names the
/// containers may mount.
pub(crate) fn validate_volumes(volumes: &[Volume], path: &str) -> (BTreeSet<String>, Vec<Cause>) {
    let mut causes = Vec::new();
    let mut names = BTreeSet::new();
    for (i, v) in volumes.iter().enumerate() {
        let idx = format!("{path}[{i}]");
        causes.extend(validate_source(v, &idx));
        let name_path = format!("{idx}.name");
        if v.name.is_empty() {
            causes.push(required(&name_path));
        } else {
            causes.extend(dns_label(&name_path, &v.name));
            if !names.insert(v.name.clone()) {
                causes.push(duplicate(&name_path, &v.name));
            }
        }
    }
    (names, causes)
}

fn validate_source(v: &Volume, path: &str) -> Vec<Cause> {
    let set = sources(v);
    let Some(first) = set.first() else {
        return vec![required_because(path, "must specify a volume type")];
    };
    let mut causes: Vec<Cause> =
        set[1..].iter().map(|s| forbidden(format!("{path}.{s}"), "may not specify more than 1 volume type")).collect();
    let p = |field: &str| format!("{path}.{first}.{field}");
    match *first {
        "emptyDir" => {
            let limit = v.empty_dir.as_ref().and_then(|e| e.size_limit.as_ref());
            if limit.is_some_and(|q| crate::quantity::parse_k8s(q).map_or(true, |q| q.is_negative())) {
                causes.push(forbidden(p("sizeLimit"), "SizeLimit field must be a valid resource quantity"));
            }
        }
        "hostPath" => {
            let h = v.host_path.as_ref().expect("hostPath is set");
            if h.path.is_empty() {
                causes.push(required(p("path")));
            } else {
                causes.extend(formatted(&p("path"), &h.path, syntax::no_backsteps(&h.path)));
            }
            if let Some(t) = h.type_.as_deref().filter(|t| !t.is_empty()) {
                causes.extend(one_of(
                    &p("type"),
                    t,
                    &[
                        "",
                        "BlockDevice",
                        "CharDevice",
                        "Directory",
                        "DirectoryOrCreate",
                        "File",
                        "FileOrCreate",
                        "Socket",
                    ],
                ));
            }
        }
        "secret" => {
            let s = v.secret.as_ref().expect("secret is set");
            if s.secret_name.as_deref().is_none_or(str::is_empty) {
                causes.push(required(p("secretName")));
            }
            causes.extend(file_mode(&p("defaultMode"), s.default_mode));
            causes.extend(items(s.items.as_deref().unwrap_or_default(), &p("items")));
        }
        "configMap" => {
            let c = v.config_map.as_ref().expect("configMap is set");
            if c.name.is_empty() {
                causes.push(required(p("name")));
            }
            causes.extend(file_mode(&p("defaultMode"), c.default_mode));
            causes.extend(items(c.items.as_deref().unwrap_or_default(), &p("items")));
        }
        "persistentVolumeClaim" if v.persistent_volume_claim.as_ref().is_some_and(|c| c.claim_name.is_empty()) => {
            causes.push(required(p("claimName")));
        }
        "nfs" => {
            let n = v.nfs.as_ref().expect("nfs is set");
            if n.server.is_empty() {
                causes.push(required(p("server")));
            }
            if n.path.is_empty() {
                causes.push(required(p("path")));
            }
            if !n.path.starts_with('/') {
                causes.push(invalid(p("path"), &n.path, "must be an absolute path"));
            }
        }
        "downwardAPI" => {
            let d = v.downward_api.as_ref().expect("downwardAPI is set");
            causes.extend(file_mode(&p("defaultMode"), d.default_mode));
            for (i, item) in d.items.iter().flatten().enumerate() {
                causes.extend(downward_file(item, &format!("{path}.downwardAPI.items[{i}]")));
            }
        }
        "projected" => causes.extend(projected(v, &format!("{path}.projected"))),
        "csi" if v.csi.as_ref().is_some_and(|c| c.driver.is_empty()) => causes.push(required(p("driver"))),
        "ephemeral" if v.ephemeral.as_ref().is_some_and(|e| e.volume_claim_template.is_none()) => {
            causes.push(required(p("volumeClaimTemplate")));
        }
        "image" if v.image.as_ref().is_some_and(|i| i.reference.as_deref().is_none_or(str::is_empty)) => {
            causes.push(required(p("reference")));
        }
        _ => {}
    }
    causes
}

fn projected(v: &Volume, path: &str) -> Vec<Cause> {
    let p = v.projected.as_ref().expect("projected is set");
    let mut causes = file_mode(&format!("{path}.defaultMode"), p.default_mode);
    let mut paths = BTreeSet::new();
    for (i, s) in p.sources.iter().flatten().enumerate() {
        let src = format!("{path}.sources[{i}]");
        let kinds = [
            ("secret", s.secret.is_some()),
            ("configMap", s.config_map.is_some()),
            ("downwardAPI", s.downward_api.is_some()),
            ("serviceAccountToken", s.service_account_token.is_some()),
            ("clusterTrustBundle", s.cluster_trust_bundle.is_some()),
        ];
        let set: Vec<&str> = kinds.iter().filter(|(_, on)| *on).map(|(k, _)| *k).collect();
        if set.len() > 1 {
            causes.push(forbidden(format!("{src}.{}", set[1]), "may not specify more than 1 volume type per source"));
        } else if set.is_empty() {
            causes.push(required_because(&src, "must specify exactly 1 volume type"));
        }
        let named = [
            ("secret", s.secret.as_ref().map(|x| (&x.name, x.items.as_deref()))),
            ("configMap", s.config_map.as_ref().map(|x| (&x.name, x.items.as_deref()))),
        ];
        for (kind, found) in named {
            let Some((name, list)) = found else { continue };
            if name.is_empty() {
                causes.push(required(format!("{src}.{kind}.name")));
            }
            let list = list.unwrap_or_default();
            causes.extend(items(list, &format!("{src}.{kind}.items")));
            for item in list {
                if !item.path.is_empty() && !paths.insert(item.path.clone()) {
                    causes.push(invalid(path, &item.path, "conflicting duplicate paths"));
                }
            }
        }
        if let Some(d) = &s.downward_api {
            for (j, item) in d.items.iter().flatten().enumerate() {
                causes.extend(downward_file(item, &format!("{src}.downwardAPI.items[{j}]")));
            }
        }
        if let Some(t) = &s.service_account_token {
            let p = format!("{src}.serviceAccountToken");
            if t.path.is_empty() {
                causes.push(required(format!("{p}.path")));
            } else {
                causes.extend(formatted(&format!("{p}.path"), &t.path, syntax::relative_path(&t.path)));
            }
            if let Some(secs) = t.expiration_seconds.filter(|s| *s < 600) {
                causes.push(invalid_value(
                    format!("{p}.expirationSeconds"),
                    secs,
                    "may not specify a duration less than 10 minutes",
                ));
            }
        }
    }
    causes
}

fn file_mode(path: &str, mode: Option<i32>) -> Vec<Cause> {
    match mode {
        Some(m) if !(0..=0o777).contains(&m) => vec![invalid_value(path, m, FILE_MODE_MSG)],
        _ => Vec::new(),
    }
}

/// A file path inside a volume: relative, no `..` anywhere.
fn local_path(path: &str, value: &str) -> Vec<Cause> {
    let mut problems = syntax::relative_path(value);
    if value.starts_with("..") && !value.starts_with("../") {
        problems.push("must not start with '..'".into());
    }
    formatted(path, value, problems)
}

fn items(list: &[KeyToPath], path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let idx = format!("{path}[{i}]");
        if item.key.is_empty() {
            causes.push(required(format!("{idx}.key")));
        }
        if item.path.is_empty() {
            causes.push(required(format!("{idx}.path")));
        }
        causes.extend(local_path(&format!("{idx}.path"), &item.path));
        causes.extend(file_mode(&format!("{idx}.mode"), item.mode));
    }
    causes
}

fn downward_file(item: &DownwardAPIVolumeFile, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    if item.path.is_empty() {
        causes.push(required(format!("{path}.path")));
    }
    causes.extend(local_path(&format!("{path}.path"), &item.path));
    match (&item.field_ref, &item.resource_field_ref) {
        (Some(f), None) => causes.extend(validate_field_ref(f, &format!("{path}.fieldRef"), DOWNWARD_VOLUME_FIELDS)),
        (Some(_), Some(_)) => {
            causes.push(invalid(path, "resource", "fieldRef and resourceFieldRef can not be specified simultaneously"));
        }
        (None, Some(r)) => {
            if r.container_name.as_deref().is_none_or(str::is_empty) {
                causes.push(required(format!("{path}.resourceFieldRef.containerName")));
            }
        }
        (None, None) => causes.push(required_because(path, "one of fieldRef and resourceFieldRef is required")),
    }
    causes.extend(file_mode(&format!("{path}.mode"), item.mode));
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapVolumeSource, EmptyDirVolumeSource, HostPathVolumeSource, PersistentVolumeClaimVolumeSource,
        SecretVolumeSource,
    };

    fn messages(causes: &[Cause]) -> Vec<String> {
        causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect()
    }

    #[test]
    fn a_volume_without_source_becomes_an_empty_dir_and_modes_default_to_0644() {
        let mut bare = Volume { name: "scratch".into(), ..Default::default() };
        default_volume(&mut bare);
        assert!(bare.empty_dir.is_some());
        let mut cm = Volume {
            name: "cfg".into(),
            config_map: Some(ConfigMapVolumeSource { name: "c".into(), ..Default::default() }),
            ..Default::default()
        };
        default_volume(&mut cm);
        assert_eq!(cm.config_map.expect("configMap").default_mode, Some(420));
        assert!(cm.empty_dir.is_none());
        let mut secret = Volume { name: "s".into(), secret: Some(SecretVolumeSource::default()), ..Default::default() };
        default_volume(&mut secret);
        assert_eq!(secret.secret.expect("secret").default_mode, Some(420));
    }

    #[test]
    fn volumes_need_unique_label_names_and_one_source() {
        let volumes = vec![
            Volume { name: "data".into(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Default::default() },
            Volume {
                name: "data".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                host_path: Some(HostPathVolumeSource { path: "/tmp".into(), ..Default::default() }),
                ..Default::default()
            },
            Volume { name: "Bad_Name".into(), ..Default::default() },
        ];
        let (names, causes) = validate_volumes(&volumes, "spec.volumes");
        assert!(names.contains("data"));
        let msgs = messages(&causes);
        assert_eq!(msgs[0], "spec.volumes[1].hostPath: Forbidden: may not specify more than 1 volume type");
        assert_eq!(msgs[1], "spec.volumes[1].name: Duplicate value: \"data\"");
        assert_eq!(msgs[2], "spec.volumes[2]: Required value: must specify a volume type");
        assert!(msgs[3].starts_with("spec.volumes[2].name: Invalid value: \"Bad_Name\""));
    }

    #[test]
    fn sources_require_their_names_and_relative_item_paths() {
        let volumes = vec![
            Volume { name: "a".into(), host_path: Some(HostPathVolumeSource::default()), ..Default::default() },
            Volume {
                name: "b".into(),
                config_map: Some(ConfigMapVolumeSource {
                    items: Some(vec![
                        KeyToPath { key: "".into(), path: "/abs".into(), mode: Some(0o1000) },
                        KeyToPath { key: "k".into(), path: "x/../../y".into(), mode: None },
                    ]),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Volume { name: "c".into(), secret: Some(SecretVolumeSource::default()), ..Default::default() },
            Volume {
                name: "d".into(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource::default()),
                ..Default::default()
            },
        ];
        let (_, causes) = validate_volumes(&volumes, "spec.volumes");
        assert_eq!(
            messages(&causes),
            [
                "spec.volumes[0].hostPath.path: Required value",
                "spec.volumes[1].configMap.name: Required value",
                "spec.volumes[1].configMap.items[0].key: Required value",
                "spec.volumes[1].configMap.items[0].path: Invalid value: \"/abs\": must be a relative path",
                "spec.volumes[1].configMap.items[0].mode: Invalid value: 512: must be a number between 0 and 0777 (octal), both inclusive",
                "spec.volumes[1].configMap.items[1].path: Invalid value: \"x/../../y\": must not contain '..'",
                "spec.volumes[2].secret.secretName: Required value",
                "spec.volumes[3].persistentVolumeClaim.claimName: Required value",
            ]
        );
    }
}
