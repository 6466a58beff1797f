//! A short, stable name for a pod template (a Deployment's
//! `pod-template-hash`, a DaemonSet's `controller-revision-hash`), as
//! Kubernetes computes it — FNV-1a (32 bit) over the template (here its
//! canonical JSON, keys sorted) and the collision count, printed in decimal
//! and mapped onto the alphabet of `rand.SafeEncodeString` (no vowels, no
//! look-alike digits), so it never spells a word.

use k8s_openapi::api::core::v1::PodTemplateSpec;

/// The label every ReplicaSet of a Deployment and its pods carry (left out
/// of the hash, so that a set's own template hashes like its Deployment's).
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn fnv1a32(bytes: impl IntoIterator<Item = u8>, mut hash: u32) -> u32 {
    for b in bytes {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// The hash of `template` (its pod-template-hash label removed) with
/// `collision_count` mixed in.
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut template = template.clone();
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(POD_TEMPLATE_HASH);
    }
    // serde_json's map keeps keys sorted, so equal templates give equal bytes.
    let json = serde_json::to_value(&template).and_then(|v| serde_json::to_vec(&v)).unwrap_or_default();
    let mut hash = fnv1a32(json, 0x811c_9dc5);
    if let Some(n) = collision_count {
        hash = fnv1a32(n.to_le_bytes(), hash);
    }
    hash.to_string().bytes().map(|b| ALPHABET[usize::from(b) % ALPHABET.len()] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(image: &str, hash_label: Option<&str>) -> PodTemplateSpec {
        let mut labels = json!({"app": "web"});
        if let Some(h) = hash_label {
            labels[POD_TEMPLATE_HASH] = json!(h);
        }
        serde_json::from_value(json!({"metadata": {"labels": labels},
            "spec": {"containers": [{"name": "c", "image": image}]}}))
        .unwrap()
    }

    #[test]
    fn equal_templates_hash_alike_and_changes_or_collisions_do_not() {
        let a = template_hash(&template("nginx:1", None), None);
        assert_eq!(a, template_hash(&template("nginx:1", Some("whatever")), None), "the hash label is ignored");
        assert_ne!(a, template_hash(&template("nginx:2", None), None));
        assert_ne!(a, template_hash(&template("nginx:1", None), Some(1)));
        assert!(a.bytes().all(|b| ALPHABET.contains(&b)) && !a.is_empty() && a.len() <= 10, "{a}");
    }
}
