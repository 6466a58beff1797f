//! The service account tokens of projected volumes (Kubernetes' kubelet
//! `token.Manager`): requested through the TokenRequest API, bound to the
//! pod, kept per pod, audience and lifetime, and requested anew once 80% of
//! a token's lifetime has passed or it is 24 hours old — the pod's periodic
//! resync (10 s) rewrites the volume's `token` file with the new one.
//! Tokens are never logged.

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use rkube_client::{Api, ApiError, Client};
use std::collections::HashMap;
use std::sync::Mutex;

/// A token older than this is replaced whatever its lifetime.
const MAX_TOKEN_AGE_SECONDS: i64 = 24 * 3600;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    pod_uid: String,
    namespace: String,
    service_account: String,
    audience: String,
    expiration_seconds: i64,
}

#[derive(Clone)]
struct Cached {
    token: String,
    /// Issued at and expiry, seconds since the epoch.
    iat: i64,
    exp: i64,
}

/// The node's service account tokens.
pub struct TokenManager {
    client: Client,
    cache: Mutex<HashMap<Key, Cached>>,
}

impl std::fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenManager").field("tokens", &self.cache().len()).finish()
    }
}

/// Whether a token issued at `iat` expiring at `exp` is due for a new one at `now`.
pub fn needs_refresh(iat: i64, exp: i64, now: i64) -> bool {
    let lifetime = (exp - iat).max(0);
    now >= exp - lifetime / 5 || now >= iat + MAX_TOKEN_AGE_SECONDS
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

impl TokenManager {
    /// Requests tokens through `client`.
    pub fn new(client: Client) -> TokenManager {
        TokenManager { client, cache: Mutex::default() }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Cached>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A token of `pod`'s ServiceAccount for `audience` (empty: the
    /// apiserver's), bound to the pod: the one held while it is fresh, else
    /// a new one.
    pub async fn token(&self, pod: &Pod, audience: &str, expiration_seconds: i64) -> Result<String, ApiError> {
        let spec = pod.spec.as_ref();
        let key = Key {
            pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
            namespace: pod.metadata.namespace.clone().unwrap_or_else(|| "default".into()),
            service_account: spec
                .and_then(|s| s.service_account_name.clone())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "default".into()),
            audience: audience.to_string(),
            expiration_seconds,
        };
        if let Some(c) = self.cache().get(&key).cloned()
            && !needs_refresh(c.iat, c.exp, unix_now())
        {
            return Ok(c.token);
        }
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: if audience.is_empty() { Vec::new() } else { vec![audience.to_string()] },
                expiration_seconds: Some(expiration_seconds),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: pod.metadata.name.clone(),
                    uid: pod.metadata.uid.clone(),
                }),
            },
            ..Default::default()
        };
        let now = unix_now();
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &key.namespace);
        let answer = api.create_token(&key.service_account, &request).await?;
        let status = answer.status.ok_or_else(|| ApiError::internal("a TokenRequest answer without a status"))?;
        let exp = status.expiration_timestamp.0.as_second();
        // The lifetime granted may be shorter than asked for (a cap on the apiserver).
        let lifetime = answer.spec.expiration_seconds.unwrap_or(expiration_seconds);
        let cached = Cached { token: status.token, iat: (exp - lifetime).min(now), exp };
        tracing::debug!(pod = %key.pod_uid, service_account = %key.service_account, exp, "service account token issued");
        self.cache().insert(key, cached.clone());
        Ok(cached.token)
    }

    /// Drops the tokens of the pod with `uid` (it is gone).
    pub fn forget(&self, uid: &str) {
        self.cache().retain(|k, _| k.pod_uid != uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_renewed_after_eighty_percent_of_their_life_or_a_day() {
        let iat = 1_000_000;
        assert!(!needs_refresh(iat, iat + 3607, iat + 2885));
        assert!(needs_refresh(iat, iat + 3607, iat + 2886));
        assert!(needs_refresh(iat, iat + 3607, iat + 4000), "expired");
        let year = 365 * 24 * 3600;
        assert!(!needs_refresh(iat, iat + year, iat + MAX_TOKEN_AGE_SECONDS - 1));
        assert!(needs_refresh(iat, iat + year, iat + MAX_TOKEN_AGE_SECONDS), "a day old");
    }
}
