//! Rows of configuration and policy objects: config maps, secrets, service
//! accounts, resource quotas and limit ranges.

use super::opt;
use crate::printers::age;
use k8s_openapi::api::core::v1::{ConfigMap, LimitRange, ResourceQuota, Secret, ServiceAccount};
use rkube_api::quantity::canonical;

/// Headers of config maps.
pub fn config_map_headers() -> Vec<&'static str> {
    vec!["NAME", "DATA", "AGE"]
}

/// The cells of a config map: DATA counts text and binary keys.
pub fn config_map(cm: &ConfigMap) -> Vec<String> {
    let n = cm.data.as_ref().map_or(0, |d| d.len()) + cm.binary_data.as_ref().map_or(0, |d| d.len());
    vec![opt(&cm.metadata.name), n.to_string(), age::age(cm.metadata.creation_timestamp.as_ref())]
}

/// Headers of secrets.
pub fn secret_headers() -> Vec<&'static str> {
    vec!["NAME", "TYPE", "DATA", "AGE"]
}

/// The cells of a secret.
pub fn secret(s: &Secret) -> Vec<String> {
    vec![
        opt(&s.metadata.name),
        s.type_.clone().unwrap_or_else(|| "Opaque".into()),
        s.data.as_ref().map_or(0, |d| d.len()).to_string(),
        age::age(s.metadata.creation_timestamp.as_ref()),
    ]
}

/// Headers of service accounts.
pub fn service_account_headers() -> Vec<&'static str> {
    vec!["NAME", "SECRETS", "AGE"]
}

/// The cells of a service account.
pub fn service_account(sa: &ServiceAccount) -> Vec<String> {
    vec![
        opt(&sa.metadata.name),
        sa.secrets.as_ref().map_or(0, |s| s.len()).to_string(),
        age::age(sa.metadata.creation_timestamp.as_ref()),
    ]
}

/// Headers of resource quotas.
pub fn quota_headers() -> Vec<&'static str> {
    vec!["NAME", "AGE", "REQUEST", "LIMIT"]
}

/// The cells of a resource quota, as kubectl 1.33 prints them: for each
/// resource of `spec.hard`, `used/hard` from the status (`0` while the
/// controller has not counted), `limits.*` in LIMIT, the rest in REQUEST.
pub fn quota(q: &ResourceQuota) -> Vec<String> {
    let status = q.status.as_ref();
    let shown =
        |list: Option<&std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
         name: &str| list.and_then(|l| l.get(name)).map_or("0".to_string(), |v| canonical(&v.0));
    let mut requests: Vec<String> = Vec::new();
    let mut limits: Vec<String> = Vec::new();
    for name in q.spec.as_ref().and_then(|s| s.hard.as_ref()).into_iter().flatten().map(|(k, _)| k) {
        let used = shown(status.and_then(|s| s.used.as_ref()), name);
        let hard = shown(status.and_then(|s| s.hard.as_ref()), name);
        let cell = format!("{name}: {used}/{hard}");
        if name.split('.').next() == Some("limits") && name.contains('.') {
            limits.push(cell)
        } else {
            requests.push(cell)
        }
    }
    vec![
        opt(&q.metadata.name),
        age::age(q.metadata.creation_timestamp.as_ref()),
        requests.join(", "),
        limits.join(", "),
    ]
}

/// Headers of limit ranges.
pub fn limit_range_headers() -> Vec<&'static str> {
    vec!["NAME", "CREATED AT"]
}

/// The cells of a limit range.
pub fn limit_range(l: &LimitRange) -> Vec<String> {
    vec![opt(&l.metadata.name), l.metadata.creation_timestamp.as_ref().map(|t| t.0.to_string()).unwrap_or_default()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn config_map_data_counts_text_and_binary_keys() {
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": "cm-appvars"},
            "data": {"apploglevel": "info", "appdatadir": "/var/data"},
            "binaryData": {"blob": "AAE="},
        }))
        .expect("configmap");
        assert_eq!(config_map(&cm)[..2], ["cm-appvars", "3"]);
    }

    #[test]
    fn quota_splits_requests_and_limits() {
        let q: ResourceQuota = serde_json::from_value(json!({
            "metadata": {"name": "q"},
            "spec": {"hard": {"pods": "10", "limits.cpu": "2", "requests.memory": "1Gi"}},
            "status": {"hard": {"pods": "10", "limits.cpu": "2000m", "requests.memory": "1Gi"}, "used": {"pods": "3"}},
        }))
        .expect("quota");
        let cells = quota(&q);
        assert_eq!(cells[2], "pods: 3/10, requests.memory: 0/1Gi");
        assert_eq!(cells[3], "limits.cpu: 0/2");
    }
}
