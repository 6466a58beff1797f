//! What rkube-dns keeps of Services and EndpointSlices: lean views that
//! decode only the fields DNS answers from, so that 5000 Services cost a few
//! megabytes. Their metadata keeps the name, namespace and resourceVersion
//! (the reflector resumes from it) and, for slices, the one label that names
//! their Service; everything else (annotations such as kubectl's
//! last-applied-configuration, other labels, owner references) is dropped
//! as it is decoded.

use rkube_api::k8s::api::core::v1::Service;
use rkube_api::k8s::api::discovery::v1::EndpointSlice;
use rkube_api::k8s::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Deserializer, Serialize};

/// The label by which an EndpointSlice names its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A Service as DNS sees it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServiceView {
    /// Name and namespace.
    #[serde(deserialize_with = "identity_only")]
    pub metadata: ObjectMeta,
    /// What the names answer.
    #[serde(default)]
    pub spec: ServiceSpecView,
}

rkube_api::view_of!(ServiceView, Service);

/// The part of a Service's spec DNS answers from.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpecView {
    /// ClusterIP (default), NodePort, LoadBalancer or ExternalName.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// The virtual IP, or `None` for a headless Service.
    #[serde(default, rename = "clusterIP", skip_serializing_if = "Option::is_none")]
    pub cluster_ip: Option<String>,
    /// Every virtual IP (dual-stack), the first being `cluster_ip`.
    #[serde(default, rename = "clusterIPs", skip_serializing_if = "Vec::is_empty")]
    pub cluster_ips: Vec<String>,
    /// The DNS name an ExternalName Service aliases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_name: Option<String>,
    /// Whether endpoints that are not ready are published too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_not_ready_addresses: Option<bool>,
    /// The ports, for SRV records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortView>,
}

/// A named port of a Service or an EndpointSlice.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PortView {
    /// The port's name ("" when the Service has a single unnamed port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The port number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// TCP (default), UDP or SCTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

impl PortView {
    /// The protocol, TCP if unset.
    pub fn protocol(&self) -> &str {
        self.protocol.as_deref().unwrap_or("TCP")
    }
}

/// What a Service answers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKind<'a> {
    /// Its virtual IPs.
    ClusterIp,
    /// No virtual IP: its ready endpoints.
    Headless,
    /// A CNAME to another name.
    ExternalName(&'a str),
    /// A ClusterIP Service whose IP is not allocated yet: no records.
    Pending,
}

impl ServiceView {
    /// What the Service's name answers.
    pub fn kind(&self) -> ServiceKind<'_> {
        if self.spec.type_.as_deref() == Some("ExternalName") {
            return match self.spec.external_name.as_deref() {
                Some(name) if !name.is_empty() => ServiceKind::ExternalName(name),
                _ => ServiceKind::Pending,
            };
        }
        match self.spec.cluster_ip.as_deref() {
            Some("None") => ServiceKind::Headless,
            Some(ip) if !ip.is_empty() => ServiceKind::ClusterIp,
            _ => ServiceKind::Pending,
        }
    }

    /// The virtual IPs: `clusterIPs`, or `clusterIP` if that is empty.
    pub fn cluster_ips(&self) -> impl Iterator<Item = std::net::IpAddr> + '_ {
        let ips: Box<dyn Iterator<Item = &String>> = if self.spec.cluster_ips.is_empty() {
            Box::new(self.spec.cluster_ip.iter())
        } else {
            Box::new(self.spec.cluster_ips.iter())
        };
        ips.filter_map(|ip| ip.parse().ok())
    }
}

/// An EndpointSlice as DNS sees it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SliceView {
    /// Name, namespace and the `kubernetes.io/service-name` label.
    #[serde(deserialize_with = "identity_and_service_label")]
    pub metadata: ObjectMeta,
    /// IPv4, IPv6 or FQDN.
    #[serde(default)]
    pub address_type: String,
    /// The endpoints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<EndpointView>,
    /// The ports, for SRV records of headless Services.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortView>,
}

rkube_api::view_of!(SliceView, EndpointSlice);

/// One endpoint of a slice.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EndpointView {
    /// Its addresses (one in practice).
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Whether it is ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<ConditionsView>,
    /// Its DNS label under a headless Service (a pod's spec.hostname).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

/// The readiness of an endpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConditionsView {
    /// Ready; unset means unknown, which consumers take as ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
}

impl EndpointView {
    /// Whether the endpoint is ready (an unknown readiness counts as ready).
    pub fn is_ready(&self) -> bool {
        self.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true)
    }
}

/// Decodes metadata, keeping what identifies the object.
fn identity_only<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let meta = ObjectMeta::deserialize(d)?;
    Ok(ObjectMeta {
        name: meta.name,
        namespace: meta.namespace,
        resource_version: meta.resource_version,
        ..ObjectMeta::default()
    })
}

/// Decodes metadata, keeping what identifies the object and its Service label.
fn identity_and_service_label<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let meta = ObjectMeta::deserialize(d)?;
    let labels = meta.labels.and_then(|mut labels| {
        let service = labels.remove(SERVICE_NAME_LABEL)?;
        Some([(SERVICE_NAME_LABEL.to_string(), service)].into())
    });
    Ok(ObjectMeta {
        name: meta.name,
        namespace: meta.namespace,
        resource_version: meta.resource_version,
        labels,
        ..ObjectMeta::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_keep_only_what_dns_answers_from() {
        let svc: ServiceView = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default", "resourceVersion": "7", "labels": {"app": "web"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}"}},
            "spec": {"clusterIP": "10.254.0.9", "clusterIPs": ["10.254.0.9"], "selector": {"app": "web"},
                "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
        }))
        .unwrap();
        assert_eq!(svc.metadata.name.as_deref(), Some("web"));
        assert_eq!(svc.metadata.resource_version.as_deref(), Some("7"));
        assert!(svc.metadata.labels.is_none() && svc.metadata.annotations.is_none());
        assert_eq!(svc.kind(), ServiceKind::ClusterIp);
        assert_eq!(svc.cluster_ips().collect::<Vec<_>>(), vec![std::net::IpAddr::from([10, 254, 0, 9])]);
        assert_eq!(svc.spec.ports[0].protocol(), "TCP");

        let slice: SliceView = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-abc", "namespace": "default",
                "labels": {SERVICE_NAME_LABEL: "web", "endpointslice.kubernetes.io/managed-by": "x"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.1.0.5"], "conditions": {"ready": false}, "nodeName": "n1"},
                {"addresses": ["10.1.0.6"]}],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
        }))
        .unwrap();
        let labels = slice.metadata.labels.as_ref().unwrap();
        assert_eq!(labels.len(), 1);
        assert_eq!(labels[SERVICE_NAME_LABEL], "web");
        assert!(!slice.endpoints[0].is_ready());
        assert!(slice.endpoints[1].is_ready(), "unknown readiness counts as ready");
    }

    #[test]
    fn service_kinds() {
        let svc = |spec: serde_json::Value| -> ServiceView {
            serde_json::from_value(serde_json::json!({"metadata": {"name": "s"}, "spec": spec})).unwrap()
        };
        assert_eq!(svc(serde_json::json!({"clusterIP": "None"})).kind(), ServiceKind::Headless);
        assert_eq!(svc(serde_json::json!({})).kind(), ServiceKind::Pending);
        assert_eq!(
            svc(serde_json::json!({"type": "ExternalName", "externalName": "db.example.org"})).kind(),
            ServiceKind::ExternalName("db.example.org")
        );
    }
}
