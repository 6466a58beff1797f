//! The [`Strategy`](crate::kinds::Strategy) of every kind: Kubernetes'
//! defaults and validation rules, one module per API area.
//!
//! Start with [`pod`]: [`default_pod_spec`] and [`validate_pod_spec`] are
//! shared by pods and every workload's pod template; [`container`],
//! [`volume`] and [`scheduling`] hold the parts of a pod spec. The other
//! modules implement the remaining kinds: [`workloads`] (controllers and
//! autoscalers), [`service`] (Services, Endpoints), [`config`] (ConfigMaps,
//! Secrets, ServiceAccounts), [`storage`] (PersistentVolumes and claims),
//! [`cluster`] (Namespaces, Nodes, Events, Leases, Bindings, limits and
//! quotas) and [`rbac`] (Roles, ClusterRoles and their bindings).

pub mod cluster;
pub mod config;
pub mod container;
pub mod pod;
pub mod rbac;
pub mod scheduling;
pub mod service;
pub mod storage;
pub mod volume;
pub mod workloads;

pub use pod::{default_pod_spec, default_pod_template, pod_qos_class, validate_pod_spec, validate_pod_template};

#[cfg(test)]
mod tests {
    use crate::kinds::{prepare_create, prepare_update};
    use crate::resource::lookup;
    use serde_json::{Value, json};

    fn create(resource: &str, obj: Value) -> Result<Value, String> {
        prepare_create(lookup(resource).expect("known resource"), &obj).map_err(|e| e.message)
    }

    #[test]
    fn create_reports_kubernetes_style_messages() {
        let e = create("pods", json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}))
            .expect_err("no image");
        assert_eq!(e, "Pod \"p\" is invalid: spec.containers[0].image: Required value");
        let e = create(
            "pods",
            json!({"metadata": {"name": "p"},
            "spec": {"restartPolicy": "Sometimes", "containers": [{"name": "c", "image": "x"}]}}),
        )
        .expect_err("bad policy");
        assert_eq!(
            e,
            "Pod \"p\" is invalid: spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""
        );
    }

    #[test]
    fn create_returns_the_defaulted_object() {
        let pod = create(
            "pods",
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}),
        )
        .expect("valid");
        assert_eq!(pod["spec"]["restartPolicy"], "Always");
        assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(pod["status"]["phase"], "Pending");
        let deploy = create("deployments", json!({"metadata": {"name": "d"}, "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}}}))
        .expect("valid");
        assert_eq!(deploy["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(
            deploy["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"],
            "/dev/termination-log"
        );
        let svc =
            create("services", json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}})).expect("valid");
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], 80);
    }

    #[test]
    fn update_refuses_moving_a_pod_to_another_node() {
        let pods = lookup("pods").expect("pods");
        let old = create(
            "pods",
            json!({"metadata": {"name": "p"}, "spec": {"nodeName": "a", "containers": [{"name": "c", "image": "x"}]}}),
        )
        .expect("valid");
        let mut new = old.clone();
        new["spec"]["nodeName"] = "b".into();
        let e = prepare_update(pods, &new, &old).expect_err("nodeName is fixed");
        assert_eq!(e.causes.len(), 1);
        assert!(e.causes[0].message.contains("pod updates may not change fields other than"), "{}", e.message);
        let mut image = old.clone();
        image["spec"]["containers"][0]["image"] = "y".into();
        assert!(prepare_update(pods, &image, &old).is_ok());
    }
}
