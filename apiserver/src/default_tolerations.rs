//! The `DefaultTolerationSeconds` admission plugin (Kubernetes'
//! `plugin/pkg/admission/defaulttolerationseconds`).
//!
//! A pod that does not tolerate `node.kubernetes.io/not-ready:NoExecute`
//! (or `unreachable`) gets a toleration of it for a limited time:
//! `--default-not-ready-toleration-seconds` and
//! `--default-unreachable-toleration-seconds`, 300 s each. When its node
//! fails, the taint eviction controller then deletes it after that time
//! instead of at once, so a short kubelet outage moves no pods. A
//! toleration of the key (or of every key) with the `NoExecute` effect (or
//! every effect) counts as tolerating it, whatever its seconds.

use serde_json::{Value, json};

/// The taint of nodes that are not Ready.
const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The taint of nodes whose kubelet stopped posting.
const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// How long pods tolerate each taint by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultTolerationSeconds {
    /// `--default-not-ready-toleration-seconds`.
    pub not_ready: i64,
    /// `--default-unreachable-toleration-seconds`.
    pub unreachable: i64,
}

impl Default for DefaultTolerationSeconds {
    fn default() -> Self {
        DefaultTolerationSeconds { not_ready: 300, unreachable: 300 }
    }
}

impl DefaultTolerationSeconds {
    /// Adds the tolerations `pod` (JSON) lacks to its `spec.tolerations`.
    pub fn admit(&self, pod: &mut Value) {
        let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else { return };
        let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
        if tolerations.is_null() {
            *tolerations = json!([]);
        }
        let Some(list) = tolerations.as_array_mut() else { return };
        let tolerates = |list: &[Value], key: &str| {
            list.iter().any(|t| {
                let field = |f: &str| t.get(f).and_then(Value::as_str).unwrap_or_default();
                (field("key") == key || field("key").is_empty())
                    && (field("effect") == "NoExecute" || field("effect").is_empty())
            })
        };
        for (key, seconds) in [(NOT_READY, self.not_ready), (UNREACHABLE, self.unreachable)] {
            if !tolerates(list, key) {
                list.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute",
                    "tolerationSeconds": seconds}));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(spec: Value) -> Value {
        let mut pod = json!({"metadata": {"name": "p"}, "spec": spec});
        DefaultTolerationSeconds { not_ready: 300, unreachable: 60 }.admit(&mut pod);
        pod["spec"]["tolerations"].clone()
    }

    #[test]
    fn pods_get_both_tolerations_with_the_configured_seconds() {
        assert_eq!(
            admitted(json!({"containers": []})),
            json!([
                {"key": NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60}])
        );
        assert_eq!(admitted(json!({"tolerations": null})).as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn existing_tolerations_of_the_taints_are_kept() {
        let own = json!({"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5});
        assert_eq!(
            admitted(json!({"tolerations": [own.clone()]})),
            json!([own, {"key": NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}])
        );
        let everything = json!([{"operator": "Exists"}]);
        assert_eq!(admitted(json!({"tolerations": everything.clone()})), everything, "tolerates every taint");
        let no_schedule = json!({"key": NOT_READY, "operator": "Exists", "effect": "NoSchedule"});
        assert_eq!(admitted(json!({"tolerations": [no_schedule]})).as_array().map(Vec::len), Some(3), "another effect");
    }
}
