//! The cluster zone: which records a name under the cluster domain has,
//! answered from the informers' caches of Services and EndpointSlices (the
//! stores are the index: a Service by namespace/name, its slices by the
//! `kubernetes.io/service-name` label). The names, as CoreDNS' kubernetes
//! plugin answers them:
//!
//! | name | answer |
//! |---|---|
//! | `<svc>.<ns>.svc.<domain>` | A/AAAA: the ClusterIPs; a headless Service's ready endpoints; ExternalName: CNAME |
//! | `<host>.<svc>.<ns>.svc.<domain>` | A/AAAA: a headless Service's endpoint with that hostname (or dashed IP) |
//! | `_<port>._<proto>.<svc>.<ns>.svc.<domain>` | SRV: the named port, on the ClusterIP or each ready endpoint |
//! | `<svc>.<ns>.svc.<domain>` SRV | SRV: every port |
//! | `<a-b-c-d>.<ns>.pod.<domain>` | A: a.b.c.d |
//! | `<domain>` | SOA, NS |
//!
//! A name that does not exist is NXDOMAIN; a name that exists without
//! records of the asked type is NODATA; both carry the zone's SOA.

use crate::view::{PortView, SERVICE_NAME_LABEL, ServiceKind, ServiceView, SliceView};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use rkube_client::{ObjectKey, Store};
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why a zone cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    /// `--cluster-domain` is not a DNS name.
    #[error("--cluster-domain \"{domain}\" is not a valid DNS name: {source}")]
    Domain {
        /// What was given.
        domain: String,
        /// The parser's complaint.
        #[source]
        source: hickory_proto::ProtoError,
    },
}

/// The answer to one question about a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Records of the asked type, and records that help use them (the A
    /// records of SRV targets).
    Records {
        /// The answer section.
        answers: Vec<Record>,
        /// The additional section.
        additionals: Vec<Record>,
    },
    /// The name exists but has no records of that type (NOERROR, SOA in authority).
    NoData,
    /// The name does not exist (NXDOMAIN, SOA in authority).
    NxDomain,
    /// The name is outside the cluster domain: not ours to answer.
    NotInZone,
    /// The caches have not been filled yet: whether the name exists is not
    /// known (SERVFAIL, so that the client retries).
    NotSynced,
}

/// `domain` (e.g. `cluster.local`, any case, with or without the trailing
/// dot) as the zone's origin: lowercase and fully qualified.
pub fn cluster_domain(domain: &str) -> Result<Name, ZoneError> {
    let mut origin = Name::from_ascii(domain.trim_end_matches('.'))
        .map_err(|source| ZoneError::Domain { domain: domain.into(), source })?
        .to_lowercase();
    origin.set_fqdn(true);
    Ok(origin)
}

/// The cluster zone; see the module docs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Zone {
    origin: Name,
    ttl: u32,
    serial: u32,
    services: Store<ServiceView>,
    slices: Store<SliceView>,
}

impl Zone {
    /// The zone of `origin` (see [`cluster_domain`]) answering from
    /// `services` and `slices` with records that live `ttl` seconds.
    pub fn new(origin: Name, ttl: u32, services: Store<ServiceView>, slices: Store<SliceView>) -> Zone {
        // The SOA serial: when this server started, as CoreDNS uses its
        // last reload time; no secondary ever transfers this zone.
        let serial = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
        Zone { origin, ttl, serial, services, slices }
    }

    /// The cluster domain, lowercase and fully qualified.
    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// Whether both caches have been filled from a complete list.
    pub fn is_synced(&self) -> bool {
        self.services.is_synced() && self.slices.is_synced()
    }

    /// How many Services and EndpointSlices are cached.
    pub fn cache_sizes(&self) -> (usize, usize) {
        (self.services.len(), self.slices.len())
    }

    /// Whether `name` is the cluster domain or under it.
    pub fn contains(&self, name: &Name) -> bool {
        self.origin.zone_of(name)
    }

    /// The zone's SOA record (for the authority section of negative answers;
    /// its minimum, the negative-caching TTL, is the records' TTL).
    pub fn soa(&self) -> Record {
        let mname = self.own_name(&["ns", "dns"]);
        let rname = self.own_name(&["hostmaster"]);
        let soa = SOA::new(mname, rname, self.serial, 7200, 1800, 86400, self.ttl);
        Record::from_rdata(self.origin.clone(), self.ttl, RData::SOA(soa))
    }

    /// `labels` followed by the cluster domain; None if a label is not a
    /// valid DNS label (too long).
    fn name(&self, labels: &[&str]) -> Option<Name> {
        Name::from_labels(labels.iter().copied()).and_then(|n| n.append_name(&self.origin)).ok()
    }

    /// A name of the zone's own, such as `ns.dns.<domain>`.
    fn own_name(&self, labels: &[&str]) -> Name {
        self.name(labels).expect("short fixed labels under a valid domain make a valid name")
    }

    /// Answers `qtype` for `qname` (in any letter case, with or without the
    /// trailing dot). Answer records are owned by `qname` as asked.
    pub fn answer(&self, qname: &Name, qtype: RecordType) -> Answer {
        if !self.contains(qname) {
            return Answer::NotInZone;
        }
        if !self.is_synced() {
            return Answer::NotSynced;
        }
        let lower = qname.to_lowercase();
        let relative = usize::from(lower.num_labels() - self.origin.num_labels());
        let labels: Option<Vec<&str>> = lower.iter().take(relative).map(|l| std::str::from_utf8(l).ok()).collect();
        let Some(labels) = labels else { return Answer::NxDomain };
        let mut qname = qname.clone();
        qname.set_fqdn(true);
        match labels.as_slice() {
            [] => self.apex(qtype),
            ["svc"] | ["pod"] => Answer::NoData,
            [ns, "svc"] => {
                if self.services.list_namespace(ns).is_empty() {
                    Answer::NxDomain
                } else {
                    Answer::NoData
                }
            }
            [svc, ns, "svc"] => self.service(&qname, qtype, ns, svc),
            [port, proto, svc, ns, "svc"] if port.starts_with('_') && proto.starts_with('_') => {
                self.named_port(&qname, qtype, ns, svc, &port[1..], &proto[1..])
            }
            [host, svc, ns, "svc"] => self.endpoint(&qname, qtype, ns, svc, host),
            [ip, _ns, "pod"] => pod(&qname, qtype, ip, self.ttl),
            _ => Answer::NxDomain,
        }
    }

    fn apex(&self, qtype: RecordType) -> Answer {
        match qtype {
            RecordType::SOA => Answer::Records { answers: vec![self.soa()], additionals: vec![] },
            RecordType::NS => {
                let ns =
                    Record::from_rdata(self.origin.clone(), self.ttl, RData::NS(NS(self.own_name(&["ns", "dns"]))));
                Answer::Records { answers: vec![ns], additionals: vec![] }
            }
            _ => Answer::NoData,
        }
    }

    fn lookup(&self, ns: &str, svc: &str) -> Option<std::sync::Arc<ServiceView>> {
        self.services.get(&ObjectKey::new(ns, svc))
    }

    /// The ready endpoints of Service `ns/svc` (every one if it publishes
    /// not-ready addresses): (DNS label, IP), in the slices' order, each IP once.
    fn endpoints(&self, service: &ServiceView, ns: &str, svc: &str) -> Vec<(String, IpAddr)> {
        let all = service.spec.publish_not_ready_addresses == Some(true);
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for slice in self.slices.by_label(SERVICE_NAME_LABEL, svc) {
            if slice.metadata.namespace.as_deref() != Some(ns) {
                continue;
            }
            for ep in slice.endpoints.iter().filter(|ep| all || ep.is_ready()) {
                for ip in ep.addresses.iter().filter_map(|a| a.parse::<IpAddr>().ok()) {
                    if seen.insert(ip) {
                        let label = ep.hostname.clone().filter(|h| !h.is_empty()).unwrap_or_else(|| dashed(ip));
                        out.push((label, ip));
                    }
                }
            }
        }
        out
    }

    fn service(&self, qname: &Name, qtype: RecordType, ns: &str, svc: &str) -> Answer {
        let Some(service) = self.lookup(ns, svc) else { return Answer::NxDomain };
        match service.kind() {
            ServiceKind::ExternalName(target) => self.cname(qname, target),
            ServiceKind::Pending => Answer::NoData,
            ServiceKind::ClusterIp => match qtype {
                RecordType::SRV => {
                    let ports: Vec<&PortView> = service.spec.ports.iter().collect();
                    self.srv_on_cluster_ip(qname, &service, &ports, ns, svc)
                }
                _ => self.addresses(qname, qtype, service.cluster_ips()),
            },
            ServiceKind::Headless => {
                let endpoints = self.endpoints(&service, ns, svc);
                match qtype {
                    RecordType::SRV => {
                        let ports = self.slice_ports(ns, svc, |_| true);
                        self.srv_on_endpoints(qname, &endpoints, &ports, ns, svc)
                    }
                    _ => self.addresses(qname, qtype, endpoints.into_iter().map(|(_, ip)| ip)),
                }
            }
        }
    }

    /// `_<port>._<proto>.<svc>.<ns>.svc`: SRV records of the named port.
    fn named_port(&self, qname: &Name, qtype: RecordType, ns: &str, svc: &str, port: &str, proto: &str) -> Answer {
        let Some(service) = self.lookup(ns, svc) else { return Answer::NxDomain };
        let matches = |p: &PortView| {
            p.name.as_deref().unwrap_or_default().eq_ignore_ascii_case(port) && p.protocol().eq_ignore_ascii_case(proto)
        };
        let answer = match service.kind() {
            ServiceKind::ClusterIp => {
                let ports: Vec<&PortView> = service.spec.ports.iter().filter(|p| matches(p)).collect();
                if ports.is_empty() {
                    return Answer::NxDomain;
                }
                self.srv_on_cluster_ip(qname, &service, &ports, ns, svc)
            }
            ServiceKind::Headless => {
                if !service.spec.ports.iter().any(matches) {
                    return Answer::NxDomain;
                }
                let endpoints = self.endpoints(&service, ns, svc);
                let ports = self.slice_ports(ns, svc, matches);
                self.srv_on_endpoints(qname, &endpoints, &ports, ns, svc)
            }
            ServiceKind::ExternalName(_) | ServiceKind::Pending => return Answer::NxDomain,
        };
        match (qtype, answer) {
            (RecordType::SRV | RecordType::ANY, answer) => answer,
            _ => Answer::NoData,
        }
    }

    /// `<host>.<svc>.<ns>.svc`: the endpoint of a headless Service with that
    /// hostname, or with that dashed IP.
    fn endpoint(&self, qname: &Name, qtype: RecordType, ns: &str, svc: &str, host: &str) -> Answer {
        let Some(service) = self.lookup(ns, svc) else { return Answer::NxDomain };
        if service.kind() != ServiceKind::Headless {
            return Answer::NxDomain;
        }
        let ips: Vec<IpAddr> = self
            .endpoints(&service, ns, svc)
            .into_iter()
            .filter(|(label, _)| label == host)
            .map(|(_, ip)| ip)
            .collect();
        if ips.is_empty() {
            return Answer::NxDomain;
        }
        self.addresses(qname, qtype, ips.into_iter())
    }

    /// A and AAAA records of `ips` for `qname`, as `qtype` asks.
    fn addresses(&self, qname: &Name, qtype: RecordType, ips: impl Iterator<Item = IpAddr>) -> Answer {
        let answers: Vec<Record> = ips.filter_map(|ip| address_record(qname, qtype, ip, self.ttl)).collect();
        if answers.is_empty() { Answer::NoData } else { Answer::Records { answers, additionals: vec![] } }
    }

    fn cname(&self, qname: &Name, target: &str) -> Answer {
        match Name::from_ascii(target.trim_end_matches('.')) {
            Ok(mut target) => {
                target.set_fqdn(true);
                let cname = Record::from_rdata(qname.clone(), self.ttl, RData::CNAME(CNAME(target)));
                Answer::Records { answers: vec![cname], additionals: vec![] }
            }
            Err(_) => Answer::NoData,
        }
    }

    /// The named ports of the slices of `ns/svc` that `keep` keeps, each
    /// (name, protocol, number) once.
    fn slice_ports(&self, ns: &str, svc: &str, keep: impl Fn(&PortView) -> bool) -> Vec<PortView> {
        let mut seen = BTreeSet::new();
        self.slices
            .by_label(SERVICE_NAME_LABEL, svc)
            .iter()
            .filter(|s| s.metadata.namespace.as_deref() == Some(ns))
            .flat_map(|s| s.ports.clone())
            .filter(|p| keep(p) && p.port.is_some())
            .filter(|p| seen.insert((p.name.clone(), p.protocol().to_string(), p.port)))
            .collect()
    }

    /// SRV records of `ports` on the Service's own name, its ClusterIPs as additionals.
    fn srv_on_cluster_ip(
        &self,
        qname: &Name,
        service: &ServiceView,
        ports: &[&PortView],
        ns: &str,
        svc: &str,
    ) -> Answer {
        let Some(target) = self.name(&[svc, ns, "svc"]) else { return Answer::NoData };
        let answers: Vec<Record> = ports
            .iter()
            .filter_map(|p| p.port.and_then(|n| u16::try_from(n).ok()))
            .map(|port| srv(qname, 100, port, target.clone(), self.ttl))
            .collect();
        if answers.is_empty() {
            return Answer::NoData;
        }
        let additionals =
            service.cluster_ips().filter_map(|ip| address_record(&target, RecordType::ANY, ip, self.ttl)).collect();
        Answer::Records { answers, additionals }
    }

    /// SRV records of `ports` on each endpoint, their addresses as additionals.
    fn srv_on_endpoints(
        &self,
        qname: &Name,
        endpoints: &[(String, IpAddr)],
        ports: &[PortView],
        ns: &str,
        svc: &str,
    ) -> Answer {
        let weight = u16::try_from(100 / endpoints.len().max(1)).unwrap_or(1).max(1);
        let mut answers = Vec::new();
        let mut additionals = Vec::new();
        for (label, ip) in endpoints {
            let Some(target) = self.name(&[label, svc, ns, "svc"]) else { continue };
            for port in ports.iter().filter_map(|p| p.port.and_then(|n| u16::try_from(n).ok())) {
                answers.push(srv(qname, weight, port, target.clone(), self.ttl));
            }
            additionals.extend(address_record(&target, RecordType::ANY, *ip, self.ttl));
        }
        if answers.is_empty() { Answer::NoData } else { Answer::Records { answers, additionals } }
    }
}

/// `<a-b-c-d>.<ns>.pod`: the address spelled by the first label.
fn pod(qname: &Name, qtype: RecordType, label: &str, ttl: u32) -> Answer {
    let ip: Option<IpAddr> = if label.contains("--") || label.matches('-').count() > 3 {
        label.replace('-', ":").parse::<Ipv6Addr>().ok().map(IpAddr::V6)
    } else {
        label.replace('-', ".").parse::<Ipv4Addr>().ok().map(IpAddr::V4)
    };
    let Some(ip) = ip else { return Answer::NxDomain };
    match address_record(qname, qtype, ip, ttl) {
        Some(record) => Answer::Records { answers: vec![record], additionals: vec![] },
        None => Answer::NoData,
    }
}

/// An A (IPv4) or AAAA (IPv6) record of `ip` if `qtype` asks for it (ANY asks for both).
fn address_record(name: &Name, qtype: RecordType, ip: IpAddr, ttl: u32) -> Option<Record> {
    let rdata = match (qtype, ip) {
        (RecordType::A | RecordType::ANY, IpAddr::V4(v4)) => RData::A(A(v4)),
        (RecordType::AAAA | RecordType::ANY, IpAddr::V6(v6)) => RData::AAAA(AAAA(v6)),
        _ => return None,
    };
    Some(Record::from_rdata(name.clone(), ttl, rdata))
}

fn srv(qname: &Name, weight: u16, port: u16, target: Name, ttl: u32) -> Record {
    Record::from_rdata(qname.clone(), ttl, RData::SRV(SRV::new(0, weight, port, target)))
}

/// An IP as a DNS label: 10.1.0.5 → 10-1-0-5, fd00::1 → fd00--1.
fn dashed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rkube_client::Writer;
    use serde_json::json;
    use std::sync::Arc;

    struct Fixture {
        services: Writer<ServiceView>,
        slices: Writer<SliceView>,
        zone: Zone,
    }

    fn fixture() -> Fixture {
        let (services, slices) = (Writer::new(), Writer::new());
        services.mark_synced();
        slices.mark_synced();
        let zone = Zone::new(cluster_domain("cluster.local").unwrap(), 5, services.as_reader(), slices.as_reader());
        Fixture { services, slices, zone }
    }

    impl Fixture {
        fn service(&self, ns: &str, name: &str, spec: serde_json::Value) {
            let svc = json!({"metadata": {"name": name, "namespace": ns}, "spec": spec});
            self.services.apply(Arc::new(serde_json::from_value(svc).unwrap()));
        }

        fn slice(&self, ns: &str, name: &str, service: &str, endpoints: serde_json::Value, ports: serde_json::Value) {
            let slice = json!({"metadata": {"name": name, "namespace": ns, "labels": {SERVICE_NAME_LABEL: service}},
                "addressType": "IPv4", "endpoints": endpoints, "ports": ports});
            self.slices.apply(Arc::new(serde_json::from_value(slice).unwrap()));
        }

        fn ask(&self, name: &str, qtype: RecordType) -> Answer {
            self.zone.answer(&Name::from_ascii(name).unwrap(), qtype)
        }

        /// The answer's records as text, e.g. `web.default.svc.cluster.local. 5 IN A 10.254.0.9`.
        fn records(&self, name: &str, qtype: RecordType) -> Vec<String> {
            match self.ask(name, qtype) {
                Answer::Records { answers, .. } => answers.iter().map(|r| r.to_string()).collect(),
                other => panic!("{name} {qtype}: {other:?}"),
            }
        }
    }

    fn rdata(records: &[String]) -> Vec<&str> {
        records.iter().map(|r| r.rsplit_once(" IN ").map(|(_, d)| d).unwrap_or(r)).collect()
    }

    #[test]
    fn a_cluster_ip_service_answers_its_cluster_ip() {
        let f = fixture();
        f.service("default", "web", json!({"clusterIP": "10.254.0.9", "ports": [{"name": "http", "port": 80}]}));
        let records = f.records("web.default.svc.cluster.local.", RecordType::A);
        assert_eq!(records, vec!["web.default.svc.cluster.local. 5 IN A 10.254.0.9"]);
        assert_eq!(f.ask("web.default.svc.cluster.local.", RecordType::AAAA), Answer::NoData);
        assert_eq!(f.ask("nope.default.svc.cluster.local.", RecordType::A), Answer::NxDomain);
        assert_eq!(f.ask("web.other.svc.cluster.local.", RecordType::A), Answer::NxDomain);
    }

    #[test]
    fn names_match_in_any_case_with_or_without_the_trailing_dot() {
        let f = fixture();
        f.service("default", "web", json!({"clusterIP": "10.254.0.9"}));
        for name in ["WEB.Default.SVC.cluster.LOCAL.", "web.default.svc.cluster.local"] {
            let records = f.records(name, RecordType::A);
            assert_eq!(rdata(&records), vec!["A 10.254.0.9"], "{name}");
            assert!(records[0].starts_with(name.trim_end_matches('.')), "owned by the name as asked: {records:?}");
        }
    }

    #[test]
    fn search_path_expansions_that_do_not_exist_are_nxdomain() {
        // A pod in "default" resolving "web.default" tries these first.
        let f = fixture();
        f.service("default", "web", json!({"clusterIP": "10.254.0.9"}));
        for name in [
            "web.default.default.svc.cluster.local.",
            "web.default.svc.svc.cluster.local.",
            "a.b.c.d.e.f.cluster.local.",
            "anything.cluster.local.",
        ] {
            assert_eq!(f.ask(name, RecordType::A), Answer::NxDomain, "{name}");
        }
        assert_eq!(f.ask("default.svc.cluster.local.", RecordType::A), Answer::NoData, "a namespace with services");
        assert_eq!(f.ask("empty.svc.cluster.local.", RecordType::A), Answer::NxDomain);
        assert_eq!(f.ask("svc.cluster.local.", RecordType::A), Answer::NoData);
        assert_eq!(f.ask("example.org.", RecordType::A), Answer::NotInZone);
        assert_eq!(f.ask("notcluster.local.", RecordType::A), Answer::NotInZone);
    }

    #[test]
    fn the_apex_has_an_soa_and_an_ns() {
        let f = fixture();
        let soa = f.records("cluster.local.", RecordType::SOA);
        assert!(soa[0].contains("SOA ns.dns.cluster.local. hostmaster.cluster.local."), "{soa:?}");
        assert_eq!(rdata(&f.records("cluster.local.", RecordType::NS)), vec!["NS ns.dns.cluster.local."]);
        assert_eq!(f.ask("cluster.local.", RecordType::A), Answer::NoData);
    }

    #[test]
    fn a_headless_service_answers_its_ready_endpoints() {
        let f = fixture();
        f.service("default", "db", json!({"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}));
        f.slice(
            "default",
            "db-1",
            "db",
            json!([{"addresses": ["10.1.0.5"], "hostname": "db-0"},
                {"addresses": ["10.1.0.6"], "conditions": {"ready": true}},
                {"addresses": ["10.1.0.7"], "conditions": {"ready": false}}]),
            json!([{"name": "pg", "port": 5432, "protocol": "TCP"}]),
        );
        f.slice("default", "db-2", "db", json!([{"addresses": ["10.1.1.8"]}]), json!([]));
        // A slice of a same-named Service in another namespace.
        f.slice("other", "db-x", "db", json!([{"addresses": ["10.9.9.9"]}]), json!([]));
        let ips = f.records("db.default.svc.cluster.local.", RecordType::A);
        assert_eq!(rdata(&ips), vec!["A 10.1.0.5", "A 10.1.0.6", "A 10.1.1.8"]);
        assert_eq!(rdata(&f.records("db-0.db.default.svc.cluster.local.", RecordType::A)), vec!["A 10.1.0.5"]);
        assert_eq!(rdata(&f.records("10-1-0-6.db.default.svc.cluster.local.", RecordType::A)), vec!["A 10.1.0.6"]);
        assert_eq!(f.ask("10-1-0-7.db.default.svc.cluster.local.", RecordType::A), Answer::NxDomain, "not ready");
        assert_eq!(f.ask("db-9.db.default.svc.cluster.local.", RecordType::A), Answer::NxDomain);

        // Publishing not-ready addresses includes the third endpoint.
        f.service("default", "db", json!({"clusterIP": "None", "publishNotReadyAddresses": true}));
        assert_eq!(f.records("db.default.svc.cluster.local.", RecordType::A).len(), 4);
        // No ready endpoints: the name exists, without addresses.
        f.service("default", "empty", json!({"clusterIP": "None"}));
        assert_eq!(f.ask("empty.default.svc.cluster.local.", RecordType::A), Answer::NoData);
    }

    #[test]
    fn srv_records_of_named_ports() {
        let f = fixture();
        f.service(
            "default",
            "web",
            json!({"clusterIP": "10.254.0.9", "ports": [{"name": "http", "port": 80},
                {"name": "dns", "port": 53, "protocol": "UDP"}]}),
        );
        let name = "_http._tcp.web.default.svc.cluster.local.";
        let Answer::Records { answers, additionals } = f.ask(name, RecordType::SRV) else { panic!("no SRV") };
        assert_eq!(answers[0].to_string(), format!("{name} 5 IN SRV 0 100 80 web.default.svc.cluster.local."));
        assert_eq!(additionals[0].to_string(), "web.default.svc.cluster.local. 5 IN A 10.254.0.9");
        assert_eq!(
            rdata(&f.records("_DNS._UDP.web.default.svc.cluster.local.", RecordType::SRV)),
            vec!["SRV 0 100 53 web.default.svc.cluster.local."]
        );
        assert_eq!(f.ask("_http._udp.web.default.svc.cluster.local.", RecordType::SRV), Answer::NxDomain);
        assert_eq!(f.ask("_ftp._tcp.web.default.svc.cluster.local.", RecordType::SRV), Answer::NxDomain);
        assert_eq!(f.ask(name, RecordType::A), Answer::NoData);
        // SRV on the Service's name: every port.
        assert_eq!(f.records("web.default.svc.cluster.local.", RecordType::SRV).len(), 2);

        // Headless: one record per ready endpoint, targets under the Service.
        f.service("default", "db", json!({"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}));
        f.slice(
            "default",
            "db-1",
            "db",
            json!([{"addresses": ["10.1.0.5"], "hostname": "db-0"}, {"addresses": ["10.1.0.6"]}]),
            json!([{"name": "pg", "port": 5432, "protocol": "TCP"}]),
        );
        let Answer::Records { answers, additionals } = f.ask("_pg._tcp.db.default.svc.cluster.local.", RecordType::SRV)
        else {
            panic!("no SRV")
        };
        let answers: Vec<String> = answers.iter().map(|r| r.to_string()).collect();
        assert_eq!(
            rdata(&answers),
            vec![
                "SRV 0 50 5432 db-0.db.default.svc.cluster.local.",
                "SRV 0 50 5432 10-1-0-6.db.default.svc.cluster.local."
            ]
        );
        assert_eq!(additionals[1].to_string(), "10-1-0-6.db.default.svc.cluster.local. 5 IN A 10.1.0.6");
    }

    #[test]
    fn pod_names_spell_their_address() {
        let f = fixture();
        let name = "10-1-2-3.default.pod.cluster.local.";
        assert_eq!(rdata(&f.records(name, RecordType::A)), vec!["A 10.1.2.3"]);
        assert_eq!(f.ask(name, RecordType::AAAA), Answer::NoData);
        assert_eq!(rdata(&f.records("fd00--1.default.pod.cluster.local.", RecordType::AAAA)), vec!["AAAA fd00::1"]);
        assert_eq!(f.ask("10-1-2.default.pod.cluster.local.", RecordType::A), Answer::NxDomain);
        assert_eq!(f.ask("web.default.pod.cluster.local.", RecordType::A), Answer::NxDomain);
    }

    #[test]
    fn an_external_name_service_is_a_cname() {
        let f = fixture();
        f.service("default", "ext", json!({"type": "ExternalName", "externalName": "db.example.org"}));
        for qtype in [RecordType::A, RecordType::CNAME, RecordType::AAAA] {
            assert_eq!(rdata(&f.records("ext.default.svc.cluster.local.", qtype)), vec!["CNAME db.example.org."]);
        }
    }

    #[test]
    fn a_service_without_an_ip_yet_exists_without_records() {
        let f = fixture();
        f.service("default", "new", json!({"ports": [{"port": 80}]}));
        assert_eq!(f.ask("new.default.svc.cluster.local.", RecordType::A), Answer::NoData);
    }

    #[test]
    fn another_cluster_domain() {
        let (services, slices) = (Writer::<ServiceView>::new(), Writer::<SliceView>::new());
        let zone = Zone::new(cluster_domain("Corp.Example.").unwrap(), 30, services.as_reader(), slices.as_reader());
        let name = Name::from_ascii("a.b.svc.corp.example.").unwrap();
        assert_eq!(zone.answer(&name, RecordType::A), Answer::NotSynced, "nothing is known before the first list");
        services.mark_synced();
        slices.mark_synced();
        services.apply(Arc::new(
            serde_json::from_value(
                json!({"metadata": {"name": "a", "namespace": "b"}, "spec": {"clusterIP": "10.0.0.1"}}),
            )
            .unwrap(),
        ));
        let answer = zone.answer(&name, RecordType::A);
        let Answer::Records { answers, .. } = answer else { panic!("{answer:?}") };
        assert_eq!(answers[0].to_string(), "a.b.svc.corp.example. 30 IN A 10.0.0.1");
        assert_eq!(zone.answer(&Name::from_ascii("a.b.svc.cluster.local.").unwrap(), RecordType::A), Answer::NotInZone);
        assert!(cluster_domain("bad..domain").is_err());
    }
}
