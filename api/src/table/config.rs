//! Rows of configuration and policy objects: config maps, secrets, service
//! accounts and resource quotas (limit ranges get the default table).

use super::{AGE, Cell, Column, NAME, age_of, items, len_of_map, name, quantity, text};
use jiff::Timestamp;
use serde_json::Value;

/// The config map table's columns.
pub(super) const CONFIG_MAP_COLUMNS: &[Column] =
    &[NAME, Column::string("Data", "Data contains the configuration data."), AGE];

/// The secret table's columns.
pub(super) const SECRET_COLUMNS: &[Column] = &[
    NAME,
    Column::string("Type", "Used to facilitate programmatic handling of secret data."),
    Column::string("Data", "Data contains the secret data."),
    AGE,
];

/// The service account table's columns.
pub(super) const SERVICE_ACCOUNT_COLUMNS: &[Column] = &[
    NAME,
    Column::string(
        "Secrets",
        "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
    ),
    AGE,
];

/// The resource quota table's columns.
pub(super) const QUOTA_COLUMNS: &[Column] = &[
    NAME,
    Column::string("Request", "Request represents a minimum amount of cpu/memory that a container may consume."),
    Column::string(
        "Limit",
        "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the \
         node.",
    ),
    AGE,
];

/// The cells of a config map: Data counts text and binary keys.
pub(super) fn config_map(cm: &Value, now: Timestamp) -> Vec<Cell> {
    vec![name(cm), (len_of_map(&cm["data"]) + len_of_map(&cm["binaryData"])).into(), age_of(cm, now)]
}

/// The cells of a secret.
pub(super) fn secret(secret: &Value, now: Timestamp) -> Vec<Cell> {
    let kind = match text(&secret["type"]) {
        "" => "Opaque",
        kind => kind,
    };
    vec![name(secret), kind.into(), len_of_map(&secret["data"]).into(), age_of(secret, now)]
}

/// The cells of a service account.
pub(super) fn service_account(sa: &Value, now: Timestamp) -> Vec<Cell> {
    vec![name(sa), (items(&sa["secrets"]).len() as i64).into(), age_of(sa, now)]
}

/// The cells of a resource quota: for each resource of `status.hard`
/// (sorted), `name: used/hard`; `limits.*` in Limit, the rest in Request.
pub(super) fn quota(q: &Value, now: Timestamp) -> Vec<Cell> {
    let status = &q["status"];
    let mut names: Vec<&String> = status["hard"].as_object().map(|h| h.keys().collect()).unwrap_or_default();
    names.sort();
    let mut requests: Vec<String> = Vec::new();
    let mut limits: Vec<String> = Vec::new();
    for resource in names {
        let cell =
            format!("{resource}: {}/{}", quantity(&status["used"][resource]), quantity(&status["hard"][resource]));
        match resource.split_once('.') {
            Some(("limits", _)) => limits.push(cell),
            _ => requests.push(cell),
        }
    }
    vec![name(q), requests.join(", ").into(), limits.join(", ").into(), age_of(q, now)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn strings(cells: &[Cell]) -> Vec<String> {
        cells.iter().map(Cell::to_string).collect()
    }

    #[test]
    fn config_map_data_counts_text_and_binary_keys() {
        let cm = json!({
            "metadata": {"name": "cm-appvars"},
            "data": {"apploglevel": "info", "appdatadir": "/var/data"},
            "binaryData": {"blob": "AAE="},
        });
        assert_eq!(config_map(&cm, Timestamp::UNIX_EPOCH)[..2], [Cell::from("cm-appvars"), Cell::Integer(3)]);
    }

    #[test]
    fn secret_and_service_account_count_their_items() {
        let s =
            json!({"metadata": {"name": "tls"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}});
        assert_eq!(strings(&secret(&s, Timestamp::UNIX_EPOCH))[..3], ["tls", "kubernetes.io/tls", "2"]);
        let sa = json!({"metadata": {"name": "default"}, "secrets": [{"name": "default-token"}]});
        assert_eq!(service_account(&sa, Timestamp::UNIX_EPOCH)[1], Cell::Integer(1));
    }

    #[test]
    fn quota_splits_requests_and_limits() {
        let q = json!({
            "metadata": {"name": "q"},
            "spec": {"hard": {"pods": "10", "limits.cpu": "2", "requests.memory": "1Gi"}},
            "status": {"hard": {"pods": "10", "limits.cpu": "2000m", "requests.memory": "1Gi"}, "used": {"pods": "3"}},
        });
        assert_eq!(
            strings(&quota(&q, Timestamp::UNIX_EPOCH))[..3],
            ["q", "pods: 3/10, requests.memory: 0/1Gi", "limits.cpu: 0/2"]
        );
        let uncounted = json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "10"}}});
        assert_eq!(
            strings(&quota(&uncounted, Timestamp::UNIX_EPOCH))[1..3],
            ["", ""],
            "nothing until the controller counts"
        );
    }
}
