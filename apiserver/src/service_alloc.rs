//! What a Service holds besides its own key: its ClusterIP, from
//! `--service-cluster-ip-range`, and its node ports, from
//! `--service-node-port-range`.
//!
//! Each is a reservation key (`/registry/serviceips/<ip>`,
//! `/registry/servicenodeports/<port>`) written in the same etcd
//! transaction as the Service — created with it, added or released when an
//! update changes them, deleted with it — so two Services never hold one
//! and nothing leaks when a write fails. Values are picked at random; a
//! pick that is taken fails the transaction and the registry tries again,
//! while a value the user asked for that is taken is refused with
//! Kubernetes' message.

use rkube_api::cidr::Ipv4Cidr;
use rkube_api::validation::causes::invalid_value;
use rkube_api::validation::invalid;
use rkube_api::{ApiError, ResourceInfo, Result};
use serde_json::Value;
use std::collections::BTreeSet;
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

    /// The first address of the range, kept for the `kubernetes` Service.
    pub fn first(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base + 1)
    }

    /// Gives a Service its ClusterIP: keeps a requested one (if in range),
    /// or picks a free-looking one.
    fn assign(&self, svc: &mut Value) -> Result<()> {
        let name = svc.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
        let spec_type = svc.pointer("/spec/type").and_then(Value::as_str).unwrap_or("ClusterIP");
        if spec_type == "ExternalName" {
            return Ok(());
        }
        let requested = svc.pointer("/spec/clusterIP").and_then(Value::as_str).unwrap_or_default().to_string();
        if requested == "None" {
            return Ok(());
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
            requested
        };
        svc["spec"]["clusterIP"] = ip.clone().into();
        svc["spec"]["clusterIPs"] = serde_json::json!([ip]);
        Ok(())
    }
}

/// The node port range.
#[derive(Debug, Clone, Copy)]
pub struct NodePorts {
    first: i32,
    last: i32,
}

impl NodePorts {
    /// Parses a range such as `30000-32767` (or `30000+2767`, as
    /// Kubernetes also accepts).
    pub fn parse(range: &str) -> std::result::Result<NodePorts, String> {
        let bad = || format!("--service-node-port-range: \"{range}\" is not a port range (expected e.g. 30000-32767)");
        let (first, last) = if let Some((a, b)) = range.split_once('-') {
            let first: i32 = a.trim().parse().map_err(|_| bad())?;
            (first, b.trim().parse::<i32>().map_err(|_| bad())?)
        } else if let Some((a, n)) = range.split_once('+') {
            let first: i32 = a.trim().parse().map_err(|_| bad())?;
            (first, first.saturating_add(n.trim().parse::<i32>().map_err(|_| bad())?))
        } else {
            return Err(bad());
        };
        if !(1..=65535).contains(&first) || !(first..=65535).contains(&last) {
            return Err(format!("--service-node-port-range: {first}-{last} must lie within 1-65535, first <= last"));
        }
        Ok(NodePorts { first, last })
    }

    /// The key that reserves node port `port`.
    pub fn key(port: i64) -> String {
        format!("/registry/servicenodeports/{port}")
    }

    fn pick(&self, avoid: &BTreeSet<i64>) -> Option<i64> {
        let size = i64::from(self.last - self.first) + 1;
        if avoid.len() as i64 >= size {
            return None;
        }
        loop {
            let p = i64::from(self.first) + fastrand::i64(0..size);
            if !avoid.contains(&p) {
                return Some(p);
            }
        }
    }
}

/// A value the user asked for: the key that reserves it, the field and
/// what Kubernetes says when it is taken.
#[derive(Debug, Clone, PartialEq)]
pub struct Requested {
    key: String,
    field: String,
    value: Value,
    taken: &'static str,
}

impl Requested {
    /// The reservation key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The error for a taken value.
    pub fn taken(&self, kind: &str, name: &str) -> ApiError {
        ApiError::invalid(kind, name, vec![invalid_value(&self.field, self.value.clone(), self.taken)])
    }
}

fn wants_node_ports(svc: &Value) -> bool {
    match svc.pointer("/spec/type").and_then(Value::as_str) {
        Some("NodePort") => true,
        Some("LoadBalancer") => svc.pointer("/spec/allocateLoadBalancerNodePorts") != Some(&Value::Bool(false)),
        _ => false,
    }
}

fn node_ports_of(svc: &Value) -> impl Iterator<Item = (usize, i64)> + '_ {
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, p)| p.get("nodePort").and_then(Value::as_i64).filter(|n| *n != 0).map(|n| (i, n)))
}

/// ClusterIPs and node ports.
#[derive(Debug, Clone, Copy)]
pub struct ServiceAllocator {
    ips: ServiceIps,
    node_ports: NodePorts,
}

impl ServiceAllocator {
    /// The allocator of the flags' ranges.
    pub fn new(ips: ServiceIps, node_ports: NodePorts) -> Self {
        ServiceAllocator { ips, node_ports }
    }

    /// The ClusterIP range.
    pub fn ips(&self) -> &ServiceIps {
        &self.ips
    }

    /// Fills in the ClusterIP and node ports `svc` lacks, keeping (and
    /// checking) those it names. Node ports are only for the types that
    /// get them.
    pub fn assign(&self, svc: &mut Value) -> Result<()> {
        self.ips.assign(svc)?;
        if !wants_node_ports(svc) {
            return Ok(());
        }
        let name = svc.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
        let mut used = BTreeSet::new();
        for (i, port) in node_ports_of(svc) {
            if !(i64::from(self.node_ports.first)..=i64::from(self.node_ports.last)).contains(&port) {
                let why = format!(
                    "provided port is not in the valid range. The range of valid ports is {}-{}",
                    self.node_ports.first, self.node_ports.last
                );
                return Err(ApiError::invalid(
                    "Service",
                    &name,
                    vec![invalid_value(format!("spec.ports[{i}].nodePort"), port, &why)],
                ));
            }
            used.insert(port);
        }
        let Some(ports) = svc.pointer_mut("/spec/ports").and_then(Value::as_array_mut) else { return Ok(()) };
        for p in ports.iter_mut() {
            if p.get("nodePort").and_then(Value::as_i64).is_some_and(|n| n != 0) {
                continue;
            }
            let Some(pick) = self.node_ports.pick(&used) else {
                return Err(ApiError::invalid(
                    "Service",
                    &name,
                    vec![invalid_value(
                        "spec.ports",
                        Value::Null,
                        "no free node port left in --service-node-port-range",
                    )],
                ));
            };
            used.insert(pick);
            p["nodePort"] = pick.into();
        }
        Ok(())
    }

    /// The reservation keys a stored object holds.
    pub fn reservations(&self, info: &ResourceInfo, obj: &Value) -> BTreeSet<String> {
        let mut keys = BTreeSet::new();
        if info.kind != "Service" {
            return keys;
        }
        if let Some(ip) =
            obj.pointer("/spec/clusterIP").and_then(Value::as_str).filter(|ip| !ip.is_empty() && *ip != "None")
        {
            keys.insert(ServiceIps::key(ip));
        }
        if wants_node_ports(obj) {
            keys.extend(node_ports_of(obj).map(|(_, port)| NodePorts::key(port)));
        }
        keys
    }

    /// The values `svc` asks for by name (before [`assign`](Self::assign))
    /// that `old` does not already hold.
    pub fn requested(&self, info: &ResourceInfo, svc: &Value, old: Option<&Value>) -> Vec<Requested> {
        if info.kind != "Service" {
            return Vec::new();
        }
        let held = old.map(|o| self.reservations(info, o)).unwrap_or_default();
        let mut out = Vec::new();
        if let Some(ip) =
            svc.pointer("/spec/clusterIP").and_then(Value::as_str).filter(|ip| !ip.is_empty() && *ip != "None")
        {
            out.push(Requested {
                key: ServiceIps::key(ip),
                field: "spec.clusterIPs".into(),
                value: Value::from(vec![ip]),
                taken: "provided IP is already allocated",
            });
        }
        if wants_node_ports(svc) {
            for (i, port) in node_ports_of(svc) {
                out.push(Requested {
                    key: NodePorts::key(port),
                    field: format!("spec.ports[{i}].nodePort"),
                    value: port.into(),
                    taken: "provided port is already allocated",
                });
            }
        }
        out.retain(|r| !held.contains(&r.key));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn allocator() -> ServiceAllocator {
        ServiceAllocator::new(ServiceIps::parse("10.254.0.0/16").unwrap(), NodePorts::parse("30000-30009").unwrap())
    }

    fn services() -> &'static ResourceInfo {
        rkube_api::resource::lookup("services").unwrap()
    }

    #[test]
    fn allocates_inside_the_range_and_keeps_requested_ips() {
        let alloc = allocator();
        for _ in 0..100 {
            let mut svc = json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}});
            alloc.assign(&mut svc).unwrap();
            let ip: Ipv4Addr = svc["spec"]["clusterIP"].as_str().unwrap().parse().unwrap();
            assert!(alloc.ips.contains(ip) && ip != Ipv4Addr::new(10, 254, 0, 1), "{ip}");
            assert_eq!(svc["spec"]["clusterIPs"], json!([ip.to_string()]));
        }
        let mut svc = json!({"metadata": {"name": "s"}, "spec": {"clusterIP": "10.254.9.9"}});
        alloc.assign(&mut svc).unwrap();
        assert_eq!(svc["spec"]["clusterIP"], "10.254.9.9");
        let mut outside = json!({"metadata": {"name": "s"}, "spec": {"clusterIP": "10.1.0.9"}});
        assert!(alloc.assign(&mut outside).is_err());
        let mut headless = json!({"metadata": {"name": "s"}, "spec": {"clusterIP": "None"}});
        alloc.assign(&mut headless).unwrap();
        assert!(alloc.reservations(services(), &headless).is_empty());
    }

    #[test]
    fn node_ports_are_picked_in_range_kept_when_named_and_refused_outside() {
        let alloc = allocator();
        let mut svc = json!({"metadata": {"name": "s"}, "spec": {"type": "NodePort",
            "ports": [{"port": 80}, {"port": 81, "nodePort": 30005}, {"port": 82}]}});
        let requested = alloc.requested(services(), &svc, None);
        assert_eq!(requested.iter().map(Requested::key).collect::<Vec<_>>(), ["/registry/servicenodeports/30005"]);
        alloc.assign(&mut svc).unwrap();
        let ports: Vec<i64> =
            svc["spec"]["ports"].as_array().unwrap().iter().map(|p| p["nodePort"].as_i64().unwrap()).collect();
        assert_eq!(ports[1], 30005);
        assert!(ports.iter().all(|p| (30000..=30009).contains(p)));
        assert_eq!(ports.iter().collect::<BTreeSet<_>>().len(), 3, "distinct: {ports:?}");
        let keys = alloc.reservations(services(), &svc);
        assert_eq!(keys.len(), 4, "an IP and three ports: {keys:?}");
        // Held ones are not asked for again.
        assert!(alloc.requested(services(), &svc, Some(&svc)).is_empty());

        let mut outside = json!({"metadata": {"name": "s"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 31000}]}});
        let e = alloc.assign(&mut outside).unwrap_err();
        assert_eq!(
            e.message,
            "Service \"s\" is invalid: spec.ports[0].nodePort: Invalid value: 31000: provided port is not in the valid range. The range of valid ports is 30000-30009"
        );
        let full: Vec<Value> = (0..11).map(|p| json!({"port": 80 + p})).collect();
        let mut too_many = json!({"metadata": {"name": "s"}, "spec": {"type": "NodePort", "ports": full}});
        assert!(alloc.assign(&mut too_many).unwrap_err().message.contains("no free node port"));
        let mut cluster_ip = json!({"metadata": {"name": "s"}, "spec": {"type": "ClusterIP", "ports": [{"port": 80}]}});
        alloc.assign(&mut cluster_ip).unwrap();
        assert_eq!(cluster_ip["spec"]["ports"][0].get("nodePort"), None);
    }

    #[test]
    fn bad_ranges_are_refused() {
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
        assert_eq!(NodePorts::parse("30000+2767").unwrap().last, 32767);
        assert_eq!(
            NodePorts::parse("30000").unwrap_err(),
            "--service-node-port-range: \"30000\" is not a port range (expected e.g. 30000-32767)"
        );
        assert!(NodePorts::parse("40000-30000").is_err());
        assert!(NodePorts::parse("0-10").is_err());
    }
}
