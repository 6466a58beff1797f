//! Configuration objects: ConfigMaps, Secrets and ServiceAccounts. Keys must
//! be valid file names, the payload at most 1 MiB, well-known Secret types
//! carry their required keys, and `immutable` objects keep their data.

use crate::error::Cause;
use crate::kinds::Strategy;
use crate::validation::causes::{immutable, too_long};
use crate::validation::checks::formatted;
use crate::validation::{forbidden, invalid, required, syntax};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use std::collections::BTreeMap;

/// The most bytes a ConfigMap's or Secret's data may hold (1 MiB).
pub const MAX_DATA_BYTES: usize = 1024 * 1024;

/// The annotation a service-account token Secret names its account by.
const SERVICE_ACCOUNT_NAME_KEY: &str = "kubernetes.io/service-account.name";

fn keys_valid<'a>(keys: impl Iterator<Item = &'a String>, field: &str) -> Vec<Cause> {
    keys.flat_map(|k| formatted(&format!("{field}[{k}]"), k, syntax::config_key(k))).collect()
}

impl Strategy for ConfigMap {
    fn validate(&self) -> Vec<Cause> {
        let data = self.data.clone().unwrap_or_default();
        let binary = self.binary_data.clone().unwrap_or_default();
        let mut causes = Vec::new();
        for key in data.keys() {
            causes.extend(formatted(&format!("data[{key}]"), key, syntax::config_key(key)));
            if binary.contains_key(key) {
                causes.push(invalid(format!("data[{key}]"), key, "duplicate of key present in binaryData"));
            }
        }
        causes.extend(keys_valid(binary.keys(), "binaryData"));
        let size: usize =
            data.values().map(String::len).sum::<usize>() + binary.values().map(|b| b.0.len()).sum::<usize>();
        if size > MAX_DATA_BYTES {
            causes.push(too_long("", MAX_DATA_BYTES));
        }
        causes
    }

    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        let mut causes = Vec::new();
        if old.immutable == Some(true) {
            let why = "field is immutable when `immutable` is set";
            if self.immutable != Some(true) {
                causes.push(forbidden("immutable", why));
            }
            if self.data != old.data {
                causes.push(forbidden("data", why));
            }
            if self.binary_data != old.binary_data {
                causes.push(forbidden("binaryData", why));
            }
        }
        causes.extend(self.validate());
        causes
    }
}

fn has(data: &BTreeMap<String, ByteString>, key: &str) -> bool {
    data.contains_key(key)
}

impl Strategy for Secret {
    fn default_fields(&mut self) {
        if self.type_.as_deref().is_none_or(str::is_empty) {
            self.type_ = Some("Opaque".into());
        }
        // stringData is write-only: it is merged into data, winning over it.
        if let Some(strings) = self.string_data.take() {
            let data = self.data.get_or_insert_with(Default::default);
            for (k, v) in strings {
                data.insert(k, ByteString(v.into_bytes()));
            }
        }
    }

    fn validate(&self) -> Vec<Cause> {
        let data = self.data.clone().unwrap_or_default();
        let mut causes = keys_valid(data.keys(), "data");
        if data.values().map(|v| v.0.len()).sum::<usize>() > MAX_DATA_BYTES {
            causes.push(too_long("data", MAX_DATA_BYTES));
        }
        let json_key = |key: &str, causes: &mut Vec<Cause>| match data.get(key) {
            None => causes.push(required(format!("data[{key}]"))),
            Some(bytes) => {
                if let Err(e) = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&bytes.0) {
                    causes.push(invalid(format!("data[{key}]"), "<secret contents redacted>", &e.to_string()));
                }
            }
        };
        match self.type_.as_deref().unwrap_or_default() {
            "kubernetes.io/service-account-token" => {
                let named = self.metadata.annotations.as_ref().and_then(|a| a.get(SERVICE_ACCOUNT_NAME_KEY));
                if named.is_none_or(String::is_empty) {
                    causes.push(required(format!("metadata.annotations[{SERVICE_ACCOUNT_NAME_KEY}]")));
                }
            }
            "kubernetes.io/dockercfg" => json_key(".dockercfg", &mut causes),
            "kubernetes.io/dockerconfigjson" => json_key(".dockerconfigjson", &mut causes),
            "kubernetes.io/basic-auth" if !has(&data, "username") && !has(&data, "password") => {
                causes.push(required("data[username]"));
                causes.push(required("data[password]"));
            }
            "kubernetes.io/ssh-auth" if data.get("ssh-privatekey").is_none_or(|v| v.0.is_empty()) => {
                causes.push(required("data[ssh-privatekey]"));
            }
            "kubernetes.io/tls" => {
                for key in ["tls.crt", "tls.key"] {
                    if !has(&data, key) {
                        causes.push(required(format!("data[{key}]")));
                    }
                }
            }
            _ => {}
        }
        causes
    }

    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        let mut causes = Vec::new();
        if self.type_ != old.type_ {
            causes.push(immutable("type", self.type_.clone().unwrap_or_default()));
        }
        if old.immutable == Some(true) {
            let why = "field is immutable when `immutable` is set";
            if self.immutable != Some(true) {
                causes.push(forbidden("immutable", why));
            }
            if self.data != old.data {
                causes.push(forbidden("data", why));
            }
        }
        causes.extend(self.validate());
        causes
    }
}

impl Strategy for ServiceAccount {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn secret(v: Value) -> Secret {
        let mut s: Secret = serde_json::from_value(v).expect("a secret");
        s.default_fields();
        s
    }

    fn messages(causes: &[Cause]) -> Vec<String> {
        causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect()
    }

    #[test]
    fn configmap_keys_must_be_valid_and_not_repeated_in_binary_data() {
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "c"},
            "data": {"ok.key": "1", "bad/key": "2", "both": "3"}, "binaryData": {"both": "AA==", "..": "AA=="}}))
        .expect("configmap");
        let got = messages(&cm.validate());
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(
            got[0].starts_with(
                "data[bad/key]: Invalid value: \"bad/key\": a valid config key must consist of alphanumeric"
            )
        );
        assert_eq!(got[1], "data[both]: Invalid value: \"both\": duplicate of key present in binaryData");
        assert_eq!(got[2], "binaryData[..]: Invalid value: \"..\": must not be '..'");
    }

    #[test]
    fn configmap_larger_than_a_mebibyte_is_too_long() {
        let cm = ConfigMap {
            data: Some(BTreeMap::from([("big".into(), "x".repeat(MAX_DATA_BYTES + 1))])),
            ..Default::default()
        };
        assert_eq!(messages(&cm.validate()), [": Too long: must have at most 1048576 bytes"]);
    }

    #[test]
    fn immutable_configmaps_keep_their_data() {
        let old = ConfigMap {
            data: Some(BTreeMap::from([("k".into(), "v".into())])),
            immutable: Some(true),
            ..Default::default()
        };
        let mut new = old.clone();
        new.data = Some(BTreeMap::from([("k".into(), "w".into())]));
        assert_eq!(
            messages(&new.validate_update(&old)),
            ["data: Forbidden: field is immutable when `immutable` is set"]
        );
    }

    #[test]
    fn secret_defaults_to_opaque_and_merges_string_data() {
        let s = secret(json!({"metadata": {"name": "s"}, "data": {"a": "eA=="}, "stringData": {"a": "y", "b": "z"}}));
        assert_eq!(s.type_.as_deref(), Some("Opaque"));
        assert_eq!(s.string_data, None);
        let data = s.data.as_ref().expect("data");
        assert_eq!(data["a"].0, b"y");
        assert_eq!(data["b"].0, b"z");
        assert!(s.validate().is_empty());
    }

    #[test]
    fn well_known_secret_types_require_their_keys() {
        let docker = secret(json!({"metadata": {"name": "s"}, "type": "kubernetes.io/dockerconfigjson"}));
        assert_eq!(messages(&docker.validate()), ["data[.dockerconfigjson]: Required value"]);
        let bad_json = secret(json!({"metadata": {"name": "s"}, "type": "kubernetes.io/dockerconfigjson",
            "stringData": {".dockerconfigjson": "{not json"}}));
        assert!(
            messages(&bad_json.validate())[0]
                .starts_with("data[.dockerconfigjson]: Invalid value: \"<secret contents redacted>\"")
        );
        let tls =
            secret(json!({"metadata": {"name": "s"}, "type": "kubernetes.io/tls", "stringData": {"tls.crt": "c"}}));
        assert_eq!(messages(&tls.validate()), ["data[tls.key]: Required value"]);
        let token = secret(json!({"metadata": {"name": "s"}, "type": "kubernetes.io/service-account-token"}));
        assert_eq!(
            messages(&token.validate()),
            ["metadata.annotations[kubernetes.io/service-account.name]: Required value"]
        );
    }

    #[test]
    fn secret_type_is_immutable() {
        let old = secret(json!({"metadata": {"name": "s"}}));
        let new = secret(json!({"metadata": {"name": "s"}, "type": "kubernetes.io/tls",
            "stringData": {"tls.crt": "c", "tls.key": "k"}}));
        assert_eq!(
            messages(&new.validate_update(&old)),
            ["type: Invalid value: \"kubernetes.io/tls\": field is immutable"]
        );
    }
}
