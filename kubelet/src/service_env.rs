//! The environment variables that tell a container where the Services of
//! its namespace are (Kubernetes' `pkg/kubelet/envvars`): for a Service
//! `redis-primary` with ClusterIP 10.254.0.11 and a first port 6379/TCP,
//! `REDIS_PRIMARY_SERVICE_HOST=10.254.0.11`,
//! `REDIS_PRIMARY_SERVICE_PORT=6379`, one `…_SERVICE_PORT_<NAME>` per named
//! port, and the Docker-link style `REDIS_PRIMARY_PORT=tcp://10.254.0.11:6379`
//! with `REDIS_PRIMARY_PORT_6379_TCP{,_PROTO,_PORT,_ADDR}` per port.
//!
//! [`service_env`] picks the Services as the kubelet's
//! `getServiceEnvVarMap` does: those of the pod's namespace when
//! `enableServiceLinks` (default true), and always the master Service
//! `kubernetes` of `default` (a Service of that name in the pod's own
//! namespace wins). Services without a ClusterIP (headless, ExternalName)
//! have none. The Services come from the process's shared Service informer
//! ([`crate::objects`]); [`crate::containers::resolve_env`] adds the
//! variables after the container's own, which win.

use k8s_openapi::api::core::v1::Service;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

/// The Services whose variables every pod gets, from namespace `default`.
pub const MASTER_SERVICES: &[&str] = &["kubernetes"];

/// Whether `svc` has a ClusterIP (not "" and not `None`).
pub fn has_cluster_ip(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()).is_some_and(|ip| !ip.is_empty() && ip != "None")
}

/// `NAME` of a Service name: upper case, `-` → `_`.
fn env_name(name: &str) -> String {
    name.replace('-', "_").to_uppercase()
}

/// `host:port`, IPv6 addresses in brackets (Go's `net.JoinHostPort`).
fn join_host_port(host: &str, port: i32) -> String {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => format!("[{host}]:{port}"),
        _ => format!("{host}:{port}"),
    }
}

/// The variables of `services`, in order (Kubernetes' `FromServices`).
pub fn from_services<'a>(services: impl IntoIterator<Item = &'a Service>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for svc in services {
        let Some(spec) = svc.spec.as_ref().filter(|_| has_cluster_ip(svc)) else { continue };
        let ports = spec.ports.as_deref().unwrap_or_default();
        let Some(first) = ports.first() else { continue };
        let ip = spec.cluster_ip.clone().unwrap_or_default();
        let prefix = env_name(svc.metadata.name.as_deref().unwrap_or_default());
        out.push((format!("{prefix}_SERVICE_HOST"), ip.clone()));
        let port_var = format!("{prefix}_SERVICE_PORT");
        out.push((port_var.clone(), first.port.to_string()));
        for p in ports {
            if let Some(name) = p.name.as_deref().filter(|n| !n.is_empty()) {
                out.push((format!("{port_var}_{}", env_name(name)), p.port.to_string()));
            }
        }
        for (i, p) in ports.iter().enumerate() {
            let protocol = p.protocol.as_deref().filter(|p| !p.is_empty()).unwrap_or("TCP");
            let (lower, upper) = (protocol.to_lowercase(), protocol.to_uppercase());
            let url = format!("{lower}://{}", join_host_port(&ip, p.port));
            if i == 0 {
                // Docker special-cases the first port.
                out.push((format!("{prefix}_PORT"), url.clone()));
            }
            let port_prefix = format!("{prefix}_PORT_{}_{upper}", p.port);
            out.push((port_prefix.clone(), url));
            out.push((format!("{port_prefix}_PROTO"), lower));
            out.push((format!("{port_prefix}_PORT"), p.port.to_string()));
            out.push((format!("{port_prefix}_ADDR"), ip.clone()));
        }
    }
    out
}

/// The Service variables of a pod in `namespace`, from `services` (any
/// namespaces): that namespace's Services if `enable_service_links`, and
/// the master Services of `default` in any case.
pub fn service_env(services: &[Arc<Service>], namespace: &str, enable_service_links: bool) -> Vec<(String, String)> {
    let mut picked: BTreeMap<&str, &Service> = BTreeMap::new();
    for svc in services.iter().filter(|s| has_cluster_ip(s)) {
        let name = svc.metadata.name.as_deref().unwrap_or_default();
        let ns = svc.metadata.namespace.as_deref().unwrap_or_default();
        if ns == namespace && enable_service_links {
            picked.insert(name, svc);
        } else if ns == "default" && MASTER_SERVICES.contains(&name) {
            picked.entry(name).or_insert(svc);
        }
    }
    from_services(picked.into_values())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(namespace: &str, name: &str, spec: serde_json::Value) -> Arc<Service> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": namespace}, "spec": spec})).unwrap(),
        )
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn two_named_ports_give_kubernetes_variables() {
        // What a Kubernetes 1.33 kubelet sets for this Service, in order.
        let web = svc(
            "prod",
            "web-front",
            json!({"clusterIP": "10.254.0.20", "ports": [
                {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
                {"name": "dns-udp", "port": 53, "protocol": "UDP"}]}),
        );
        assert_eq!(
            from_services([web.as_ref()]),
            pairs(&[
                ("WEB_FRONT_SERVICE_HOST", "10.254.0.20"),
                ("WEB_FRONT_SERVICE_PORT", "80"),
                ("WEB_FRONT_SERVICE_PORT_HTTP", "80"),
                ("WEB_FRONT_SERVICE_PORT_DNS_UDP", "53"),
                ("WEB_FRONT_PORT", "tcp://10.254.0.20:80"),
                ("WEB_FRONT_PORT_80_TCP", "tcp://10.254.0.20:80"),
                ("WEB_FRONT_PORT_80_TCP_PROTO", "tcp"),
                ("WEB_FRONT_PORT_80_TCP_PORT", "80"),
                ("WEB_FRONT_PORT_80_TCP_ADDR", "10.254.0.20"),
                ("WEB_FRONT_PORT_53_UDP", "udp://10.254.0.20:53"),
                ("WEB_FRONT_PORT_53_UDP_PROTO", "udp"),
                ("WEB_FRONT_PORT_53_UDP_PORT", "53"),
                ("WEB_FRONT_PORT_53_UDP_ADDR", "10.254.0.20"),
            ])
        );
    }

    #[test]
    fn an_unnamed_port_defaults_to_tcp_and_ipv6_gets_brackets() {
        let s = svc("prod", "db", json!({"clusterIP": "fd00::10", "ports": [{"port": 5432}]}));
        let env = from_services([s.as_ref()]);
        assert_eq!(env[1], ("DB_SERVICE_PORT".into(), "5432".into()));
        assert_eq!(env[2], ("DB_PORT".into(), "tcp://[fd00::10]:5432".into()));
        assert_eq!(env.len(), 7);
    }

    #[test]
    fn headless_and_external_name_services_have_no_variables() {
        let headless = svc("prod", "h", json!({"clusterIP": "None", "ports": [{"port": 80}]}));
        let external = svc("prod", "x", json!({"type": "ExternalName", "externalName": "example.com"}));
        assert!(from_services([headless.as_ref(), external.as_ref()]).is_empty());
    }

    #[test]
    fn pods_see_their_namespace_and_always_the_master_service() {
        let services = vec![
            svc("default", "kubernetes", json!({"clusterIP": "10.254.0.1", "ports": [{"name": "https", "port": 443}]})),
            svc("prod", "web", json!({"clusterIP": "10.254.0.20", "ports": [{"port": 80}]})),
            svc("other", "db", json!({"clusterIP": "10.254.0.30", "ports": [{"port": 5432}]})),
        ];
        let names = |env: Vec<(String, String)>| -> Vec<String> {
            env.into_iter().map(|(k, _)| k).filter(|k| k.ends_with("_SERVICE_HOST")).collect()
        };
        assert_eq!(names(service_env(&services, "prod", true)), ["KUBERNETES_SERVICE_HOST", "WEB_SERVICE_HOST"]);
        assert_eq!(names(service_env(&services, "prod", false)), ["KUBERNETES_SERVICE_HOST"]);
        let env = service_env(&services, "prod", false);
        assert!(env.contains(&("KUBERNETES_SERVICE_PORT_HTTPS".into(), "443".into())), "{env:?}");
    }

    #[test]
    fn a_kubernetes_service_of_the_pods_namespace_wins_over_the_master_service() {
        let services = vec![
            svc("default", "kubernetes", json!({"clusterIP": "10.254.0.1", "ports": [{"port": 443}]})),
            svc("prod", "kubernetes", json!({"clusterIP": "10.254.0.99", "ports": [{"port": 80}]})),
        ];
        let env = service_env(&services, "prod", true);
        assert_eq!(env[0], ("KUBERNETES_SERVICE_HOST".into(), "10.254.0.99".into()));
        let env = service_env(&services, "prod", false);
        assert_eq!(env[0], ("KUBERNETES_SERVICE_HOST".into(), "10.254.0.1".into()));
    }
}
