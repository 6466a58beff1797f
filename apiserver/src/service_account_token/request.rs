//! The TokenRequest subresource, `POST
//! /api/v1/namespaces/{ns}/serviceaccounts/{name}/token` (kube's
//! `pkg/registry/core/serviceaccount/storage/token.go`): an
//! `authentication.k8s.io/v1` TokenRequest in, the same with
//! `status.token` and `status.expirationTimestamp` out.

use super::{
    DEFAULT_EXPIRATION_SECONDS, KubernetesClaim, MAX_EXPIRATION_SECONDS, MIN_EXPIRATION_SECONDS, Ref,
    ServiceAccountTokens, TokenSpec, unix_now,
};
use crate::registry::Registry;
use k8s_openapi::api::authentication::v1::TokenRequest;
use rkube_api::resource::lookup;
use rkube_api::validation::invalid;
use rkube_api::{ApiError, Result};
use serde_json::{Value, json};

/// The kind of the subresource's body.
pub const KIND: &str = "TokenRequest";
/// Its apiVersion.
pub const API_VERSION: &str = "authentication.k8s.io/v1";

/// Issues a token for ServiceAccount `namespace/name` as `body` (a
/// TokenRequest, JSON or YAML) asks; returns the TokenRequest with its status.
pub async fn create(
    registry: &Registry,
    tokens: &ServiceAccountTokens,
    namespace: &str,
    name: &str,
    body: &[u8],
) -> Result<Value> {
    if !tokens.issues() {
        return Err(super::not_issuing());
    }
    let mut request = rkube_api::manifest::parse_object(body)?;
    let kind = request.get("kind").and_then(Value::as_str).unwrap_or(KIND);
    if kind != KIND {
        return Err(ApiError::bad_request(format!("the body's kind {kind} is not TokenRequest")));
    }
    if let Some(obj) = request.as_object_mut() {
        obj.remove("status");
    }
    let mut request: TokenRequest = serde_json::from_value(request)
        .map_err(|e| ApiError::bad_request(format!("error decoding the TokenRequest: {e}")))?;
    let spec = &mut request.spec;
    let requested = spec.expiration_seconds.unwrap_or(DEFAULT_EXPIRATION_SECONDS);
    if requested < MIN_EXPIRATION_SECONDS {
        let cause = invalid("spec.expirationSeconds", requested, "may not specify a duration less than 10 minutes");
        return Err(ApiError::invalid(KIND, name, vec![cause]));
    }
    if requested > MAX_EXPIRATION_SECONDS {
        let cause = invalid("spec.expirationSeconds", requested, "may not specify a duration larger than 2^32 seconds");
        return Err(ApiError::invalid(KIND, name, vec![cause]));
    }
    if spec.audiences.is_empty() {
        spec.audiences = tokens.audiences().to_vec();
    }
    let expiration_seconds = tokens.lifetime(requested);
    spec.expiration_seconds = Some(expiration_seconds);

    let sa = object(registry, "serviceaccounts", namespace, name).await?;
    let mut claim = KubernetesClaim {
        namespace: namespace.into(),
        serviceaccount: Ref { name: name.into(), uid: uid(&sa) },
        ..KubernetesClaim::default()
    };
    if let Some(bound) = &mut spec.bound_object_ref {
        let kind = bound.kind.clone().unwrap_or_default();
        let api_version = bound.api_version.clone().unwrap_or_else(|| "v1".into());
        let bound_name = bound.name.clone().unwrap_or_default();
        if api_version != "v1" || !matches!(kind.as_str(), "Pod" | "Secret" | "Node") {
            return Err(ApiError::bad_request(format!(
                "cannot bind token for object of type {api_version}, Kind={kind}: only v1 Pod, Secret and Node"
            )));
        }
        if bound_name.is_empty() {
            return Err(ApiError::invalid(
                KIND,
                name,
                vec![rkube_api::validation::required("spec.boundObjectRef.name")],
            ));
        }
        let (plural, ns) = match kind.as_str() {
            "Pod" => ("pods", namespace),
            "Secret" => ("secrets", namespace),
            _ => ("nodes", ""),
        };
        let target = object(registry, plural, ns, &bound_name).await?;
        let target_uid = uid(&target);
        if let Some(want) = bound.uid.as_deref().filter(|u| !u.is_empty())
            && want != target_uid
        {
            return Err(ApiError::conflict(
                plural,
                &bound_name,
                &format!(
                    "the UID in the bound object reference ({want}) does not match the UID in record. The object might have been deleted and then recreated"
                ),
            ));
        }
        bound.uid = Some(target_uid.clone());
        bound.api_version = Some(api_version);
        let r = Ref { name: bound_name.clone(), uid: target_uid };
        match kind.as_str() {
            "Pod" => {
                let runs_as = crate::service_account::service_account_of(&target);
                if runs_as != name {
                    return Err(ApiError::bad_request(format!(
                        "cannot bind token for serviceaccount \"{name}\" to pod running with different serviceaccount name."
                    )));
                }
                // The pod's node, when it has one that exists (kube's
                // ServiceAccountTokenPodNodeInfo).
                let node = target.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or_default();
                if !node.is_empty()
                    && let Ok(n) = object(registry, "nodes", "", node).await
                {
                    claim.node = Some(Ref { name: node.into(), uid: uid(&n) });
                }
                claim.pod = Some(r);
            }
            "Secret" => claim.secret = Some(r),
            _ => claim.node = Some(r),
        }
    }

    let now = unix_now();
    let token_spec = TokenSpec { kubernetes: claim, audiences: spec.audiences.clone(), expiration_seconds, now };
    let (token, exp) = tokens.issue(&token_spec)?;
    let mut out = serde_json::to_value(&request).map_err(|e| ApiError::internal(e.to_string()))?;
    out["apiVersion"] = API_VERSION.into();
    out["kind"] = KIND.into();
    out["metadata"]["name"] = name.into();
    out["metadata"]["namespace"] = namespace.into();
    out["metadata"]["creationTimestamp"] = rfc3339(now).into();
    out["status"] = json!({"token": token, "expirationTimestamp": rfc3339(exp)});
    Ok(out)
}

async fn object(registry: &Registry, plural: &str, namespace: &str, name: &str) -> Result<Value> {
    let info = lookup(plural).expect("a served resource");
    let object = registry.get(info, namespace, name).await?;
    serde_json::from_slice(&object.json).map_err(|e| ApiError::internal(format!("a stored object is not JSON: {e}")))
}

fn uid(object: &Value) -> String {
    object.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or_default().to_string()
}

fn rfc3339(seconds: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(seconds).map(|t| t.to_string()).unwrap_or_default()
}
