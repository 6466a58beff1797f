//! `describe hpa`, as kubectl 1.33 prints an autoscaling/v2
//! HorizontalPodAutoscaler (`describeHorizontalPodAutoscalerV2`): the
//! target, each metric as `current / target`, the bounds, the behavior if
//! set, the replicas, the conditions and the events.

use super::{Related, Writer, annotations, events, labels, w};
use crate::printers::age;
use k8s_openapi::api::autoscaling::v2::{HPAScalingRules, HorizontalPodAutoscaler, MetricTarget};
use rkube_api::quantity::canonical;

fn quantity(q: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>) -> String {
    q.map_or_else(|| "<nil>".to_string(), |q| canonical(&q.0))
}

/// `current / target` of a value or average-value target.
fn value_line(target: &MetricTarget, current: Option<String>) -> String {
    let current = current.unwrap_or_else(|| "<unknown>".into());
    let goal = if target.average_value.is_some() {
        quantity(target.average_value.as_ref())
    } else {
        quantity(target.value.as_ref())
    };
    format!("{current} / {goal}")
}

fn direction(w: &mut Writer, title: &str, rules: Option<&HPAScalingRules>) {
    let Some(rules) = rules else { return };
    w!(w, 1, "{title}:\n");
    if let Some(window) = rules.stabilization_window_seconds {
        w!(w, 2, "Stabilization Window: {window} seconds\n");
    }
    let policies = rules.policies.as_deref().unwrap_or_default();
    if !policies.is_empty() {
        w!(w, 2, "Select Policy: {}\n", rules.select_policy.as_deref().unwrap_or("Max"));
        w!(w, 2, "Policies:\n");
        for p in policies {
            w!(w, 3, "- Type: {}\tValue: {}\tPeriod: {} seconds\n", p.type_, p.value, p.period_seconds);
        }
    }
}

/// The description of a horizontal pod autoscaler.
pub fn horizontal_pod_autoscaler(hpa: &HorizontalPodAutoscaler, related: &Related) -> String {
    let mut w = Writer::default();
    let spec = hpa.spec.clone().unwrap_or_default();
    let status = hpa.status.clone().unwrap_or_default();
    let meta = &hpa.metadata;
    w!(w, 0, "Name:\t{}\n", meta.name.clone().unwrap_or_default());
    w!(w, 0, "Namespace:\t{}\n", meta.namespace.clone().unwrap_or_default());
    labels(&mut w, "Labels", meta.labels.as_ref());
    annotations(&mut w, "Annotations", meta.annotations.as_ref());
    if let Some(t) = &meta.creation_timestamp {
        w!(w, 0, "CreationTimestamp:\t{}\n", age::rfc1123(t));
    }
    let target = &spec.scale_target_ref;
    w!(w, 0, "Reference:\t{}/{}\n", target.kind, target.name);
    w!(w, 0, "Metrics:\t( current / target )\n");
    let current = status.current_metrics.clone().unwrap_or_default();
    for (i, metric) in spec.metrics.iter().flatten().enumerate() {
        let status = current.get(i);
        match (metric.type_.as_str(), metric.resource.as_ref()) {
            ("Resource", Some(resource)) => {
                w!(w, 1, "resource {} on pods", resource.name);
                let now = status.and_then(|s| s.resource.as_ref()).map(|r| &r.current);
                if resource.target.average_value.is_some() {
                    let cur = now.and_then(|c| c.average_value.as_ref()).map(|q| canonical(&q.0));
                    let line = value_line(&resource.target, cur);
                    w!(w, 0, ":\t{line}\n");
                } else {
                    let cur = now.and_then(|c| {
                        Some(format!("{}% ({})", c.average_utilization?, quantity(c.average_value.as_ref())))
                    });
                    let goal = resource.target.average_utilization.map_or("<auto>".to_string(), |u| format!("{u}%"));
                    w!(w, 1, "(as a percentage of request):\t{} / {goal}\n", cur.unwrap_or_else(|| "<unknown>".into()));
                }
            }
            ("ContainerResource", _) => {
                let source = metric.container_resource.clone().unwrap_or_default();
                w!(w, 1, "resource {} of container \"{}\" on pods", source.name, source.container);
                let now = status.and_then(|s| s.container_resource.as_ref()).map(|r| r.current.clone());
                if source.target.average_value.is_some() {
                    let cur = now.and_then(|c| c.average_value).map(|q| canonical(&q.0));
                    let line = value_line(&source.target, cur);
                    w!(w, 0, ":\t{line}\n");
                } else {
                    let cur = now.and_then(|c| {
                        Some(format!("{}% ({})", c.average_utilization?, quantity(c.average_value.as_ref())))
                    });
                    let goal = source.target.average_utilization.map_or("<auto>".to_string(), |u| format!("{u}%"));
                    w!(w, 1, "(as a percentage of request):\t{} / {goal}\n", cur.unwrap_or_else(|| "<unknown>".into()));
                }
            }
            (other, _) => w!(w, 1, "<unknown metric type {other:?}>\n"),
        }
    }
    let min = spec.min_replicas.map_or("<unset>".to_string(), |m| m.to_string());
    w!(w, 0, "Min replicas:\t{min}\n");
    w!(w, 0, "Max replicas:\t{}\n", spec.max_replicas);
    if let Some(b) = &spec.behavior {
        w!(w, 0, "Behavior:\n");
        direction(&mut w, "Scale Up", b.scale_up.as_ref());
        direction(&mut w, "Scale Down", b.scale_down.as_ref());
    }
    w!(w, 0, "{} pods:\t", target.kind);
    w!(w, 0, "{} current / {} desired\n", status.current_replicas.unwrap_or(0), status.desired_replicas);
    let conditions = status.conditions.unwrap_or_default();
    if !conditions.is_empty() {
        w!(w, 0, "Conditions:\n");
        w!(w, 1, "Type\tStatus\tReason\tMessage\n");
        w!(w, 1, "----\t------\t------\t-------\n");
        for c in &conditions {
            let (reason, message) = (c.reason.clone().unwrap_or_default(), c.message.clone().unwrap_or_default());
            w!(w, 1, "{}\t{}\t{reason}\t{message}\n", c.type_, c.status);
        }
    }
    events(&mut w, related.events.as_ref());
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hpa_description_reads_like_kubectl() {
        let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2024-01-02T03:04:05Z"},
            "spec": {"scaleTargetRef": {"apiVersion": "v1", "kind": "ReplicationController", "name": "web"},
                     "minReplicas": 1, "maxReplicas": 3,
                     "metrics": [
                        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
                        {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}}],
                     "behavior": {"scaleDown": {"stabilizationWindowSeconds": 5}}},
            "status": {"currentReplicas": 2, "desiredReplicas": 3,
                       "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu",
                            "current": {"averageUtilization": 98, "averageValue": "98m"}}}],
                       "conditions": [{"type": "AbleToScale", "status": "True", "reason": "SucceededRescale",
                            "message": "the HPA controller was able to update the target scale to 3"}]},
        }))
        .expect("hpa");
        let text = horizontal_pod_autoscaler(&hpa, &Related { events: Some(Vec::new()), ..Default::default() });
        let expected = [
            "Reference:                                             ReplicationController/web\n",
            "Metrics:                                               ( current / target )\n",
            "  resource cpu on pods  (as a percentage of request):  98% (98m) / 50%\n",
            "  resource memory on pods:                             <unknown> / 100Mi\n",
            "Min replicas:                                          1\n",
            "Max replicas:                                          3\n",
            "Behavior:\n  Scale Down:\n    Stabilization Window: 5 seconds\n",
            // The behavior's lines have no tabs: a new block of columns starts after them, as in kubectl.
            "ReplicationController pods:  2 current / 3 desired\n",
            "Conditions:\n  Type         Status  Reason            Message\n",
            "  AbleToScale  True    SucceededRescale  the HPA controller was able to update the target scale to 3\n",
            "Events:        <none>\n",
        ];
        for line in expected {
            assert!(text.contains(line), "{line:?} not in\n{text}");
        }
    }
}
