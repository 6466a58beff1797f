//! Writing a controller's computed status with a merge patch.
//!
//! A JSON merge patch leaves keys it does not mention alone, so a count that
//! fell to zero (and is omitted, as Kubernetes omits empty fields) would
//! keep its old value. [`status_patch`] names every key the new status drops
//! with `null`, which a merge patch removes.

use serde_json::{Map, Value, json};

/// The merge patch `{"status": …}` that turns `old` (the stored status) into `new`.
pub fn status_patch(old: &Value, new: &Value) -> Value {
    let mut status: Map<String, Value> = new.as_object().cloned().unwrap_or_default();
    for key in old.as_object().into_iter().flat_map(|o| o.keys()) {
        status.entry(key.clone()).or_insert(Value::Null);
    }
    json!({ "status": status })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_keys_are_removed_and_the_rest_set() {
        let old = json!({"replicas": 3, "availableReplicas": 1, "conditions": [{"type": "X"}]});
        let new = json!({"replicas": 0});
        assert_eq!(
            status_patch(&old, &new),
            json!({"status": {"replicas": 0, "availableReplicas": null, "conditions": null}})
        );
        assert_eq!(status_patch(&Value::Null, &new), json!({"status": {"replicas": 0}}));
    }
}
