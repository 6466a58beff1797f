//! The `kubernetes` Service in `default`: how pods find the apiserver
//! (Kubernetes' master endpoint reconciler).
//!
//! The Service gets the first address of the service range and port 443
//! (`https`, as in Kubernetes; rkube serves plain HTTP on it until TLS
//! comes), targeting the apiserver's port. Its Endpoints hold
//! `--advertise-address`: an address of this host that pods can reach. The
//! Service has no selector, so the EndpointSlice controller mirrors the
//! Endpoints into a slice, and the proxy programs it like any other.
//! Kubelets give every pod `KUBERNETES_SERVICE_HOST`/`_PORT` from it, which
//! is how an in-cluster client (the DNS add-on) finds the API.
//!
//! [`MasterService::reconcile`] runs at start and every
//! [`RECONCILE_INTERVAL`], putting back what someone changed or deleted.
//! Several apiservers share the Endpoints as Kubernetes' lease reconciler
//! does: each renews a key under [`LEASES`] holding its address, expiring
//! [`LEASE_TTL`] after the last renewal, and the Endpoints list every
//! address with a live key, so a dead apiserver drops out by itself.

use crate::registry::Registry;
use rkube_api::resource::lookup;
use rkube_api::{ApiError, Reason, Result};
use serde_json::{Value, json};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// How often the Service and its Endpoints are checked.
pub const RECONCILE_INTERVAL: Duration = Duration::from_secs(10);

/// Where apiservers keep their addresses, one key each.
pub const LEASES: &str = "/registry/masterleases/";

/// How long an apiserver's address stays after its last renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(15);

/// The Service's name (in `default`).
pub const NAME: &str = "kubernetes";

/// What the `kubernetes` Service should be.
#[derive(Debug, Clone, Copy)]
pub struct MasterService {
    /// Its ClusterIP: the first address of the service range.
    pub cluster_ip: Ipv4Addr,
    /// The address pods reach the apiserver at, if known.
    pub advertise: Option<IpAddr>,
    /// The apiserver's port.
    pub port: u16,
}

impl MasterService {
    fn ports(&self) -> Value {
        json!([{"name": "https", "port": 443, "protocol": "TCP", "targetPort": self.port}])
    }

    fn subsets(&self, addresses: &[String]) -> Value {
        let addresses: Vec<Value> = addresses.iter().map(|ip| json!({"ip": ip})).collect();
        json!([{"addresses": addresses, "ports": [{"name": "https", "port": self.port, "protocol": "TCP"}]}])
    }

    fn lease_key(ip: IpAddr) -> String {
        format!("{LEASES}{ip}")
    }

    /// Renews this apiserver's lease; returns the addresses of every
    /// apiserver holding one, sorted.
    async fn renew(&self, registry: &Registry, ip: IpAddr) -> Result<Vec<String>> {
        let storage = registry.storage();
        storage.put_with_ttl(&Self::lease_key(ip), ip.to_string().into_bytes(), LEASE_TTL).await?;
        let (leases, _, _) = storage.list(LEASES, None, 0, 0).await?;
        let mut ips: Vec<String> =
            leases.iter().filter_map(|l| std::str::from_utf8(&l.value).ok().map(str::to_string)).collect();
        ips.sort();
        ips.dedup();
        Ok(ips)
    }

    /// Gives up this apiserver's lease (at shutdown), so the Endpoints
    /// drop it at the others' next reconcile.
    pub async fn release(&self, registry: &Registry) -> Result<()> {
        match self.advertise {
            Some(ip) => registry.storage().remove(&Self::lease_key(ip)).await,
            None => Ok(()),
        }
    }

    /// Creates or repairs the Service and its Endpoints.
    pub async fn reconcile(&self, registry: &Registry) -> Result<()> {
        let services = lookup("services").expect("services are in the table");
        match registry.get(services, "default", NAME).await {
            Ok(obj) => {
                let mut svc: Value = decode(&obj.json)?;
                if svc["spec"]["ports"] != self.ports() {
                    svc["spec"]["ports"] = self.ports();
                    registry.update(services, "default", NAME, svc.to_string().as_bytes(), false, false).await?;
                }
            }
            Err(e) if e.reason == Reason::NotFound => {
                let svc = json!({"apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": NAME, "labels": {"component": "apiserver", "provider": "kubernetes"}},
                    "spec": {"type": "ClusterIP", "clusterIP": self.cluster_ip.to_string(), "ports": self.ports(),
                        "sessionAffinity": "None"}});
                ignore_exists(registry.create(services, "default", svc.to_string().as_bytes(), false).await)?;
            }
            Err(e) => return Err(e),
        }
        let Some(ip) = self.advertise else { return Ok(()) };
        let subsets = self.subsets(&self.renew(registry, ip).await?);
        let endpoints = lookup("endpoints").expect("endpoints are in the table");
        match registry.get(endpoints, "default", NAME).await {
            Ok(obj) => {
                let mut ep: Value = decode(&obj.json)?;
                if ep["subsets"] != subsets {
                    ep["subsets"] = subsets;
                    registry.update(endpoints, "default", NAME, ep.to_string().as_bytes(), false, false).await?;
                }
            }
            Err(e) if e.reason == Reason::NotFound => {
                let ep =
                    json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": NAME}, "subsets": subsets});
                ignore_exists(registry.create(endpoints, "default", ep.to_string().as_bytes(), false).await)?;
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }
}

fn decode(json: &[u8]) -> Result<Value> {
    serde_json::from_slice(json).map_err(|e| ApiError::internal(format!("stored object does not decode: {e}")))
}

fn ignore_exists<T>(r: Result<T>) -> Result<()> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.reason == Reason::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// The address pods should use for the apiserver: `--advertise-address`,
/// or the bind address when it is a specific, non-loopback one.
pub fn advertise_address(advertise: Option<IpAddr>, bind: IpAddr) -> Option<IpAddr> {
    advertise.or_else(|| (!bind.is_loopback() && !bind.is_unspecified()).then_some(bind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_advertised_address_falls_back_to_a_specific_bind_address() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(advertise_address(Some(ip("10.250.255.1")), ip("127.0.0.1")), Some(ip("10.250.255.1")));
        assert_eq!(advertise_address(None, ip("10.1.2.3")), Some(ip("10.1.2.3")));
        assert_eq!(advertise_address(None, ip("127.0.0.1")), None);
        assert_eq!(advertise_address(None, ip("0.0.0.0")), None);
    }
}
