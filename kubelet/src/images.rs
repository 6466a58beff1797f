//! Images: references (`registry/name:tag`), pull policies, and registry
//! credentials from a pod's imagePullSecrets (`.dockerconfigjson` or the
//! older `.dockercfg`).

use crate::runtime::RegistryAuth;
use k8s_openapi::api::core::v1::Secret;
use serde_json::Value;

/// The registry that image names without one come from.
pub const DEFAULT_REGISTRY: &str = "docker.io";

/// When to pull an image (`imagePullPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull before every container start.
    Always,
    /// Pull only if the image is missing.
    IfNotPresent,
    /// Never pull; a missing image is an error.
    Never,
}

impl PullPolicy {
    /// The policy a container asks for; the apiserver defaults it, but an
    /// unset or unknown value falls back to Kubernetes' rule (`Always` for
    /// `:latest` or untagged images, `IfNotPresent` otherwise).
    pub fn of(policy: Option<&str>, image: &str) -> PullPolicy {
        match policy {
            Some("Always") => PullPolicy::Always,
            Some("IfNotPresent") => PullPolicy::IfNotPresent,
            Some("Never") => PullPolicy::Never,
            _ if tag_of(image).is_none_or(|t| t == "latest") && !image.contains('@') => PullPolicy::Always,
            _ => PullPolicy::IfNotPresent,
        }
    }
}

/// The tag of `image`, if it names one (`a/b:1.0` → `1.0`; `host:5000/b` → none).
pub fn tag_of(image: &str) -> Option<&str> {
    let name = image.split('@').next().unwrap_or(image);
    let last = name.rsplit('/').next().unwrap_or(name);
    last.split_once(':').map(|(_, t)| t)
}

/// `image` with `:latest` added when it names neither tag nor digest, so a
/// pull fetches one image and not every tag.
pub fn with_default_tag(image: &str) -> String {
    if image.contains('@') || tag_of(image).is_some() { image.to_string() } else { format!("{image}:latest") }
}

/// The registry host of `image` (`docker.io` for `busybox` or `library/busybox`).
pub fn registry_of(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            canonical_registry(first)
        }
        _ => DEFAULT_REGISTRY,
    }
}

/// A docker config key (`https://index.docker.io/v1/`, `registry:5000`)
/// reduced to its host, with Docker Hub's aliases folded into `docker.io`.
fn canonical_registry(key: &str) -> &str {
    let host = key.split_once("://").map_or(key, |(_, rest)| rest);
    let host = host.split('/').next().unwrap_or(host);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => DEFAULT_REGISTRY,
        other => other,
    }
}

/// Every credential in `secrets` for the registry `image` comes from, in
/// the order the pod lists its imagePullSecrets. Secrets that are not
/// docker configs, or do not parse, are skipped.
pub fn credentials_for(image: &str, secrets: &[Secret]) -> Vec<RegistryAuth> {
    let registry = registry_of(image);
    let mut out = Vec::new();
    for secret in secrets {
        let data = secret.data.as_ref();
        let (entries, nested) =
            match (data.and_then(|d| d.get(".dockerconfigjson")), data.and_then(|d| d.get(".dockercfg"))) {
                (Some(json), _) => (json, true),
                (None, Some(cfg)) => (cfg, false),
                (None, None) => continue,
            };
        let Ok(doc) = serde_json::from_slice::<Value>(&entries.0) else { continue };
        let auths = if nested { doc.get("auths") } else { Some(&doc) };
        let Some(auths) = auths.and_then(Value::as_object) else { continue };
        for (key, entry) in auths {
            if canonical_registry(key) != registry {
                continue;
            }
            let field = |name: &str| entry.get(name).and_then(Value::as_str).map(str::to_string);
            out.push(RegistryAuth {
                server: key.clone(),
                username: field("username"),
                password: field("password"),
                auth: field("auth"),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    #[test]
    fn untagged_and_latest_images_are_always_pulled_by_default() {
        assert_eq!(PullPolicy::of(None, "busybox"), PullPolicy::Always);
        assert_eq!(PullPolicy::of(None, "busybox:latest"), PullPolicy::Always);
        assert_eq!(PullPolicy::of(None, "busybox:1.36"), PullPolicy::IfNotPresent);
        assert_eq!(PullPolicy::of(None, "localhost:5000/busybox"), PullPolicy::Always);
        assert_eq!(PullPolicy::of(Some("Never"), "busybox"), PullPolicy::Never);
    }

    #[test]
    fn pulls_name_one_tag() {
        assert_eq!(with_default_tag("busybox"), "busybox:latest");
        assert_eq!(with_default_tag("localhost:5000/a/b"), "localhost:5000/a/b:latest");
        assert_eq!(with_default_tag("rkube/toolbox:1.0"), "rkube/toolbox:1.0");
        assert_eq!(with_default_tag("a@sha256:00"), "a@sha256:00");
    }

    #[test]
    fn registries_are_read_from_the_first_component() {
        assert_eq!(registry_of("busybox"), "docker.io");
        assert_eq!(registry_of("library/busybox"), "docker.io");
        assert_eq!(registry_of("registry.example.com/team/app:1"), "registry.example.com");
        assert_eq!(registry_of("localhost:5000/app"), "localhost:5000");
    }

    fn secret(key: &str, json: &str) -> Secret {
        Secret {
            data: Some(BTreeMap::from([(key.to_string(), ByteString(json.as_bytes().to_vec()))])),
            ..Default::default()
        }
    }

    #[test]
    fn credentials_match_the_image_registry_across_secret_formats() {
        let secrets = [
            secret(".dockerconfigjson", r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"}}}"#),
            secret(".dockercfg", r#"{"registry.example.com":{"username":"u","password":"p"}}"#),
            secret("other", "{}"),
            secret(".dockerconfigjson", "not json"),
        ];
        let hub = credentials_for("busybox", &secrets);
        assert_eq!(hub.len(), 1);
        assert_eq!(hub[0].auth.as_deref(), Some("dTpw"));
        let private = credentials_for("registry.example.com/app:1", &secrets);
        assert_eq!(private.len(), 1);
        assert_eq!((private[0].username.as_deref(), private[0].password.as_deref()), (Some("u"), Some("p")));
        assert!(credentials_for("quay.io/x", &secrets).is_empty());
    }
}
