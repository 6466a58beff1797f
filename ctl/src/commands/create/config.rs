//! The objects `create configmap` and `create secret generic` build from
//! their data sources.

use super::data::Entries;
use crate::cli::{CreateConfigMapArgs, CreateSecretArgs};
use crate::session::Session;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

fn meta(s: &Session, name: &str) -> ObjectMeta {
    ObjectMeta { name: Some(name.to_string()), namespace: Some(s.namespace.clone()), ..Default::default() }
}

fn with_type(mut v: Value, kind: &str) -> Value {
    if let Some(m) = v.as_object_mut() {
        m.insert("apiVersion".into(), "v1".into());
        m.insert("kind".into(), kind.into());
    }
    v
}

/// The config map of `create configmap`: UTF-8 values in `data`, others in
/// `binaryData`.
pub fn config_map(s: &Session, a: &CreateConfigMapArgs) -> anyhow::Result<Value> {
    let (text, binary) = Entries::collect(&a.sources, "ConfigMap", &a.name)?.split_utf8();
    let cm = ConfigMap {
        metadata: meta(s, &a.name),
        data: (!text.is_empty()).then_some(text),
        binary_data: (!binary.is_empty()).then(|| binary.into_iter().map(|(k, v)| (k, ByteString(v))).collect()),
        ..Default::default()
    };
    Ok(with_type(serde_json::to_value(cm)?, "ConfigMap"))
}

/// The secret of `create secret generic`.
pub fn secret(s: &Session, a: &CreateSecretArgs) -> anyhow::Result<Value> {
    let entries = Entries::collect(&a.sources, "Secret", &a.name)?;
    let secret = Secret {
        metadata: meta(s, &a.name),
        type_: Some(a.kind.clone()),
        data: (!entries.values.is_empty())
            .then(|| entries.values.into_iter().map(|(k, v)| (k, ByteString(v))).collect()),
        ..Default::default()
    };
    Ok(with_type(serde_json::to_value(secret)?, "Secret"))
}
