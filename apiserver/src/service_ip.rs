//! ClusterIP allocation from `--service-cluster-ip-range`.
//!
//! Each allocated IP is a key `/registry/serviceips/<ip>` created in the same
//! etcd transaction as its Service and deleted with it, so two Services can
//! never hold one IP and nothing leaks when a create fails.

use rkube_api::cidr::Ipv4Cidr;
use rkube_api::validation::invalid;
use rkube_api::{ApiError, ResourceInfo, Result};
use serde_json::Value;
use std::net::Ipv4Addr;

/// The service IP range.
#[derive(Debug, Clone, Copy)]
pub struct ServiceIps {
    base: u32,
    size: u32,
}

impl ServiceIps {
    /// Parses a range such as `10.254.0.0/16`.
    pub fn parse(cidr: &str) -> std::result::Result<ServiceIps, String> {
        let range: Ipv4Cidr = cidr.parse().map_err(|e| format!("--service-cluster-ip-range: {e}"))?;
        let bits = range.prefix();
        if !(8..=30).contains(&bits) {
            return Err(format!("--service-cluster-ip-range: prefix /{bits} must be between /8 and /30"));
        }
        let size = u32::try_from(range.size()).expect("a /8 or longer holds fewer than 2^32 addresses");
        Ok(ServiceIps { base: u32::from(range.network()), size })
    }

    /// The key that reserves `ip`.
    pub fn key(ip: &str) -> String {
        format!("/registry/serviceips/{ip}")
    }

    fn contains(&self, ip: Ipv4Addr) -> bool {
        let v = u32::from(ip);
        v > self.base && v < self.base + self.size - 1
    }

    /// Gives a Service its ClusterIP: keeps a requested one (if in range),
    /// or picks a free-looking one. Returns the IP to reserve, if any.
    /// `attempt` > 0 means the previous pick was taken.
    pub fn assign(&self, svc: &mut Value, attempt: usize) -> Result<Option<String>> {
        let name = svc.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
        let spec_type = svc.pointer("/spec/type").and_then(Value::as_str).unwrap_or("ClusterIP");
        if spec_type == "ExternalName" {
            return Ok(None);
        }
        let requested = svc.pointer("/spec/clusterIP").and_then(Value::as_str).unwrap_or_default().to_string();
        if requested == "None" {
            return Ok(None);
        }
        let ip = if requested.is_empty() {
            // The first host address is kept for the `kubernetes` Service.
            let offset = 2 + fastrand::u32(..self.size - 3);
            Ipv4Addr::from(self.base + offset).to_string()
        } else {
            let parsed: Ipv4Addr = requested.parse().map_err(|_| {
                ApiError::invalid(
                    "Service",
                    &name,
                    vec![invalid("spec.clusterIP", &requested, "must be a valid IP address")],
                )
            })?;
            if !self.contains(parsed) {
                return Err(ApiError::invalid(
                    "Service",
                    &name,
                    vec![invalid(
                        "spec.clusterIP",
                        &requested,
                        "provided IP is not in the valid range of the service cluster IP range",
                    )],
                ));
            }
            if attempt > 0 {
                return Err(ApiError::invalid(
                    "Service",
                    &name,
                    vec![invalid("spec.clusterIP", &requested, "provided IP is already allocated")],
                ));
            }
            requested
        };
        svc["spec"]["clusterIP"] = ip.clone().into();
        svc["spec"]["clusterIPs"] = serde_json::json!([ip.clone()]);
        Ok(Some(ip))
    }

    /// The reservation keys a stored object holds.
    pub fn reservations(&self, info: &ResourceInfo, obj: &Value) -> Vec<String> {
        if info.kind != "Service" {
            return Vec::new();
        }
        match obj.pointer("/spec/clusterIP").and_then(Value::as_str) {
            Some(ip) if !ip.is_empty() && ip != "None" => vec![ServiceIps::key(ip)],
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn allocates_inside_the_range_and_keeps_requested_ips() {
        let ips = ServiceIps::parse("10.254.0.0/16").expect("valid");
        for _ in 0..100 {
            let mut svc = json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}});
            let ip: Ipv4Addr = ips.assign(&mut svc, 0).expect("ok").expect("an ip").parse().expect("ip");
            assert!(ips.contains(ip) && ip != Ipv4Addr::new(10, 254, 0, 1), "{ip}");
            assert_eq!(svc["spec"]["clusterIP"], ip.to_string());
        }
        let mut svc = json!({"metadata": {"name": "s"}, "spec": {"clusterIP": "10.254.9.9"}});
        assert_eq!(ips.assign(&mut svc, 0).expect("ok").as_deref(), Some("10.254.9.9"));
        let mut outside = json!({"metadata": {"name": "s"}, "spec": {"clusterIP": "10.1.0.9"}});
        assert!(ips.assign(&mut outside, 0).is_err());
        let mut headless = json!({"metadata": {"name": "s"}, "spec": {"clusterIP": "None"}});
        assert_eq!(ips.assign(&mut headless, 0).expect("ok"), None);
    }

    #[test]
    fn bad_ranges_are_refused() {
        assert!(ServiceIps::parse("10.254.0.0").is_err());
        assert!(ServiceIps::parse("10.254.0.0/33").is_err());
        assert!(ServiceIps::parse("nonsense/16").is_err());
        assert_eq!(
            ServiceIps::parse("10.254.0.0").unwrap_err(),
            "--service-cluster-ip-range: \"10.254.0.0\" is not a CIDR block (expected a.b.c.d/n, e.g. 10.1.0.0/16)"
        );
        assert_eq!(
            ServiceIps::parse("10.254.0.0/31").unwrap_err(),
            "--service-cluster-ip-range: prefix /31 must be between /8 and /30"
        );
    }
}
