//! Creating and deleting a controller's pods (client-go's `PodControl`):
//! a pod from the controller's template, named `<owner>-<random>` through
//! `generateName`, carrying the template's labels, annotations and spec and
//! the owner's controller reference.

use crate::client::{Api, Client, DeleteParams};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use rkube_api::{Reason, Result};

/// The pod a controller creates from `template` in `namespace`, owned by
/// `owner`: `generateName` is the owner's name and a dash (shortened so the
/// generated name stays a valid name).
pub fn pod_from_template(template: &PodTemplateSpec, namespace: &str, owner: &OwnerReference) -> Pod {
    let t = template.metadata.clone().unwrap_or_default();
    let mut prefix = owner.name.clone();
    // Kubernetes keeps generated names within 63 characters: prefix + 5 random.
    prefix.truncate(57);
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{prefix}-")),
            namespace: Some(namespace.to_string()),
            labels: t.labels,
            annotations: t.annotations,
            finalizers: t.finalizers,
            owner_references: Some(vec![owner.clone()]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// Creates and deletes pods for controllers.
#[derive(Debug, Clone)]
pub struct PodControl {
    client: Client,
}

impl PodControl {
    /// Pod control writing through `client`.
    pub fn new(client: Client) -> Self {
        PodControl { client }
    }

    /// Creates `pod` (usually [`pod_from_template`], then adjusted).
    pub async fn create(&self, pod: &Pod) -> Result<Pod> {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        Api::<Pod>::namespaced(self.client.clone(), namespace).create(pod).await
    }

    /// Creates `pods` in slow-start batches of 1, 2, 4, … (Kubernetes'
    /// `slowStartBatch`), stopping after the first batch in which a create
    /// is refused, so that a template the apiserver refuses costs one
    /// request, not hundreds. Returns the result of every create attempted,
    /// in order; the pods after them were not attempted.
    pub async fn create_slow_start(&self, pods: &[Pod]) -> Vec<Result<Pod>> {
        let mut results = Vec::with_capacity(pods.len());
        let mut batch = 1;
        while results.len() < pods.len() {
            let start = results.len();
            let end = (start + batch).min(pods.len());
            let created = futures::future::join_all(pods[start..end].iter().map(|p| self.create(p))).await;
            let refused = created.iter().any(Result::is_err);
            results.extend(created);
            if refused {
                break;
            }
            batch *= 2;
        }
        results
    }

    /// Deletes pod `namespace/name` if it still has `uid` (its grace period
    /// applies). A pod already gone counts as deleted: Ok(false).
    pub async fn delete(&self, namespace: &str, name: &str, uid: &str) -> Result<bool> {
        let params = DeleteParams { uid: uid.to_string(), ..Default::default() };
        match Api::<Pod>::namespaced(self.client.clone(), namespace).delete(name, &params).await {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.reason, Reason::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};

    #[test]
    fn pods_carry_the_template_and_the_owner() {
        let template = PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some([("app".to_string(), "web".to_string())].into()),
                annotations: Some([("a".to_string(), "b".to_string())].into()),
                name: Some("ignored".into()),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container { name: "c".into(), image: Some("i".into()), ..Default::default() }],
                ..Default::default()
            }),
        };
        let owner =
            OwnerReference { kind: "ReplicaSet".into(), name: "x".repeat(70), uid: "u".into(), ..Default::default() };
        let pod = pod_from_template(&template, "ns", &owner);
        assert_eq!(pod.metadata.generate_name.as_deref(), Some(format!("{}-", "x".repeat(57)).as_str()));
        assert_eq!(pod.metadata.name, None);
        assert_eq!(pod.metadata.namespace.as_deref(), Some("ns"));
        assert_eq!(pod.metadata.labels, template.metadata.as_ref().unwrap().labels);
        assert_eq!(pod.metadata.annotations, template.metadata.as_ref().unwrap().annotations);
        assert_eq!(pod.metadata.owner_references, Some(vec![owner]));
        assert_eq!(pod.spec, template.spec);
    }
}
