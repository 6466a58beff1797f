//! The nftables ruleset: the fixed skeleton of the proxy's table and the
//! chains, sets and map elements of each Service, as typed changes
//! ([`crate::rule::Op`]) that print as an nft script (as kube-proxy's
//! knftables writes it) and reach the kernel over netlink.
//!
//! The layout is kube-proxy's nftables mode's (`pkg/proxy/nftables`):
//! verdict maps `service-ips` (`ipv4_addr . inet_proto . inet_service`) and
//! `service-nodeports` (`inet_proto . inet_service`) send new connections to
//! a per-Service-port chain `service-<hash>-<ns>/<name>/<proto>/<port>`,
//! which picks an endpoint chain `endpoint-<hash>-…__<ip>/<port>` with
//! `numgen random` (a cascade, see [`render`]); the endpoint chain DNATs. Services without
//! endpoints are rejected through `no-endpoint-services` /
//! `no-endpoint-nodeports` in filter chains. [`render`] gives one Service's
//! part as a [`Rendered`]; [`write_full`] the whole table in one
//! transaction; [`write_diff`] the commands that turn one Service's old
//! part into its new one, touching nothing else.

use crate::model::{Endpoint, ServicePort};
use crate::netlink::Batch;
use crate::rule::{Action, Addr, Hook, Key, Line, MapKey, Match, Op, Rule, SetKind};
use rkube_api::cidr::Ipv4Cidr;
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

/// The packet mark that asks the `masquerading` chain to SNAT (kube-proxy's).
pub const MASQUERADE_MARK: u32 = 0x4000;

/// What the rules depend on besides the Services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleConfig {
    /// The `ip` table the proxy owns.
    pub table: String,
    /// The pods' addresses: ClusterIP traffic from elsewhere is masqueraded.
    /// Empty: none is (kube-proxy's behaviour without `--cluster-cidr`).
    pub cluster_cidrs: Vec<Ipv4Cidr>,
    /// Local addresses NodePorts answer on; empty means every local address.
    pub nodeport_addresses: Vec<Ipv4Cidr>,
}

impl RuleConfig {
    /// Whether NodePorts answer on 127.0.0.1 (which needs `route_localnet`).
    pub fn localhost_nodeports(&self) -> bool {
        self.nodeport_addresses.is_empty() || self.nodeport_addresses.iter().any(|c| c.contains(Ipv4Addr::LOCALHOST))
    }

    /// The matches that select NodePort traffic: to a local address (among
    /// `--nodeport-addresses` when given).
    fn nodeport_match(&self) -> Vec<Match> {
        let mut m = vec![Match::Local(Addr::Destination)];
        if !self.nodeport_addresses.is_empty() {
            m.push(Match::InSet(Addr::Destination, "nodeport-addresses".into(), false));
        }
        m
    }
}

/// A verdict map a Service adds elements to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Map {
    /// `service-ips`: ClusterIP . proto . port → the Service port's chain.
    ServiceIps,
    /// `service-nodeports`: proto . NodePort → the external chain.
    ServiceNodeports,
    /// `no-endpoint-services`: ClusterIP . proto . port → reject.
    NoEndpointServices,
    /// `no-endpoint-nodeports`: proto . NodePort → reject.
    NoEndpointNodeports,
}

impl Map {
    /// The map's name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Map::ServiceIps => "service-ips",
            Map::ServiceNodeports => "service-nodeports",
            Map::NoEndpointServices => "no-endpoint-services",
            Map::NoEndpointNodeports => "no-endpoint-nodeports",
        }
    }
}

/// One map element: `key comment "…" : goto chain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// The map.
    pub map: Map,
    /// The key, e.g. `10.96.0.10 . tcp . 80`.
    pub key: Key,
    /// The Service port it is for, as a comment.
    pub comment: String,
    /// The chain it goes to.
    pub chain: String,
}

/// One Service's part of the table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    /// Chains by name, with their rules.
    pub chains: BTreeMap<String, Vec<Rule>>,
    /// Affinity sets by name, with their timeout in seconds.
    pub sets: BTreeMap<String, u32>,
    /// Map elements.
    pub elements: Vec<Element>,
}

impl Rendered {
    /// How many rules its chains hold.
    pub fn rule_count(&self) -> usize {
        self.chains.values().map(Vec::len).sum()
    }
}

/// FNV-1a: a stable hash for chain names (std's hasher may change between
/// Rust releases; the names must not).
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// The first 8 base32 characters of `s`'s hash, as kube-proxy prefixes its
/// chain names (the names stay unique if ever truncated).
fn hash8(s: &str) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let h = fnv1a(s);
    (0..8).map(|i| ALPHABET[((h >> (59 - 5 * i)) & 31) as usize] as char).collect()
}

/// `ns/name/proto/port` (the port's name, or its number when unnamed).
fn base_name(sp: &ServicePort) -> String {
    let port = if sp.port_name.is_empty() { sp.port.to_string() } else { sp.port_name.clone() };
    format!("{}/{}/{}/{}", sp.namespace, sp.name, sp.protocol.nft(), port)
}

/// A per-Service-port chain name: `<prefix>-<hash>-<ns>/<name>/<proto>/<port>`.
fn port_chain(prefix: &str, base: &str) -> String {
    format!("{prefix}-{}-{base}", hash8(base))
}

/// A per-endpoint name: `<prefix>-<hash>-<base>__<ip>/<port>`.
fn endpoint_name(prefix: &str, base: &str, ep: &Endpoint) -> String {
    let full = format!("{base}__{}/{}", ep.ip, ep.port);
    format!("{prefix}-{}-{full}", hash8(&full))
}

const MARK_CHAIN: &str = "mark-for-masquerade";
const CLUSTER_CIDRS: &str = "cluster-cidrs";

fn mark() -> Action {
    Action::Jump(MARK_CHAIN.into())
}

/// Adds the rules that pick one of `eps` (affinity first, then at random).
fn pick_endpoint(rules: &mut Vec<Rule>, sp: &ServicePort, base: &str, eps: &[Endpoint]) {
    if sp.affinity_timeout.is_some() {
        for ep in eps {
            rules.push(Rule::when(
                [Match::InSet(Addr::Source, endpoint_name("affinity", base, ep), false)],
                Action::Goto(endpoint_name("endpoint", base, ep)),
            ));
        }
    }
    // Endpoint i of the n left is taken with probability 1/(n-i), so each
    // gets 1/n: iptables' statistic cascade in nft. Not kube-proxy's
    // `numgen random mod N vmap { … }`: every such vmap is an anonymous map,
    // and the kernel adds anonymous maps in quadratic time (5000 Services
    // took 37 s of system time in one transaction, against 1.6 s for this).
    let n = eps.len();
    for (i, ep) in eps.iter().enumerate() {
        let chain = Action::Goto(endpoint_name("endpoint", base, ep));
        if i + 1 < n {
            rules.push(Rule::when([Match::OneIn(u32::try_from(n - i).unwrap_or(u32::MAX))], chain));
        } else {
            rules.push(Rule::always(chain));
        }
    }
}

/// The chains, sets and elements of `ports` (one Service's ports).
pub fn render(cfg: &RuleConfig, ports: &[ServicePort]) -> Rendered {
    let mut r = Rendered::default();
    for sp in ports {
        render_port(cfg, sp, &mut r);
    }
    r
}

fn render_port(cfg: &RuleConfig, sp: &ServicePort, r: &mut Rendered) {
    let base = base_name(sp);
    let proto = sp.protocol;
    let comment = sp.display_name();
    let ip_key = Key { ip: Some(sp.cluster_ip), proto, port: sp.port };
    let np_key = sp.node_port.map(|port| Key { ip: None, proto, port });
    let element = |map, key: Key, chain: String| Element { map, key, comment: comment.clone(), chain };
    if sp.endpoints.is_empty() {
        r.elements.push(element(Map::NoEndpointServices, ip_key, "reject-chain".into()));
        if let Some(k) = np_key {
            r.elements.push(element(Map::NoEndpointNodeports, k, "reject-chain".into()));
        }
        return;
    }
    let service_chain = port_chain("service", &base);
    let mut rules = Vec::new();
    if !cfg.cluster_cidrs.is_empty() {
        rules.push(Rule::when(
            [
                Match::Ip(Addr::Destination, sp.cluster_ip),
                Match::Dport(proto, sp.port),
                Match::InSet(Addr::Source, CLUSTER_CIDRS.into(), true),
            ],
            mark(),
        ));
    }
    pick_endpoint(&mut rules, sp, &base, &sp.endpoints);
    r.chains.insert(service_chain.clone(), rules);
    for ep in &sp.endpoints {
        let mut rules = vec![Rule::when([Match::Ip(Addr::Source, ep.ip)], mark())];
        if let Some(timeout) = sp.affinity_timeout {
            let set = endpoint_name("affinity", &base, ep);
            rules.push(Rule::always(Action::UpdateSource(set.clone())));
            r.sets.insert(set, timeout);
        }
        rules.push(Rule::when([Match::L4Proto(proto)], Action::Dnat(ep.ip, ep.port)));
        r.chains.insert(endpoint_name("endpoint", &base, ep), rules);
    }
    r.elements.push(element(Map::ServiceIps, ip_key, service_chain.clone()));
    let Some(np_key) = np_key else { return };
    let external_chain = port_chain("external", &base);
    let mut rules = Vec::new();
    if sp.external_local {
        // Pods and the node itself reach every endpoint; others only local
        // ones, keeping their source address.
        if !cfg.cluster_cidrs.is_empty() {
            rules.push(Rule::when(
                [Match::InSet(Addr::Source, CLUSTER_CIDRS.into(), false)],
                Action::Goto(service_chain.clone()),
            ));
        }
        rules.push(Rule::when([Match::Local(Addr::Source)], mark()));
        rules.push(Rule::when([Match::Local(Addr::Source)], Action::Goto(service_chain.clone())));
        let local = sp.local_endpoints();
        if local.is_empty() {
            rules.push(Rule::always(Action::Drop));
        } else {
            let local_chain = port_chain("local", &base);
            rules.push(Rule::always(Action::Goto(local_chain.clone())));
            let mut local_rules = Vec::new();
            pick_endpoint(&mut local_rules, sp, &base, &local);
            r.chains.insert(local_chain, local_rules);
        }
    } else {
        rules.push(Rule::always(mark()));
        rules.push(Rule::always(Action::Goto(service_chain)));
    }
    r.chains.insert(external_chain.clone(), rules);
    r.elements.push(element(Map::ServiceNodeports, np_key, external_chain));
}

/// The changes of one transaction to one table.
#[derive(Debug)]
pub struct Script<'a> {
    table: &'a str,
    /// The changes so far.
    pub ops: Vec<Op>,
}

impl<'a> Script<'a> {
    /// An empty script for `table`.
    pub fn new(table: &'a str) -> Self {
        Script { table, ops: Vec::new() }
    }

    /// The script as nft reads it (`nft -f`), a line per change.
    pub fn text(&self) -> String {
        self.ops.iter().map(|op| format!("{}\n", Line(self.table, op))).collect()
    }

    /// Writes the changes to `batch` as nf_tables messages and forgets them.
    pub fn drain_into(&mut self, batch: &mut Batch) {
        for op in self.ops.drain(..) {
            op.encode(self.table, batch);
        }
    }

    /// Writes the changes to `batch`, each labelled with its nft line (for
    /// a small script: an error then quotes the very line).
    pub fn encode_labelled(&self, batch: &mut Batch) {
        for op in &self.ops {
            batch.label(Line(self.table, op).to_string());
            op.encode(self.table, batch);
        }
    }

    fn push(&mut self, op: Op) {
        self.ops.push(op);
    }

    fn add_chain(&mut self, chain: &str) {
        self.push(Op::AddChain(chain.to_string(), None));
    }

    fn add_rules(&mut self, chain: &str, rules: &[Rule]) {
        for rule in rules {
            self.push(Op::AddRule(chain.to_string(), rule.clone()));
        }
    }

    fn add_element(&mut self, e: &Element) {
        self.push(Op::AddElement(e.map.name().into(), e.key, e.comment.clone(), e.chain.clone()));
    }

    /// Adds every chain, set and element of `r` to a table that has none of them.
    pub fn add_rendered(&mut self, r: &Rendered) {
        for (name, timeout) in &r.sets {
            self.push(Op::AddSet(name.clone(), SetKind::Timeout(*timeout), None));
        }
        for name in r.chains.keys() {
            self.add_chain(name);
        }
        for (name, rules) in &r.chains {
            self.add_rules(name, rules);
        }
        for e in &r.elements {
            self.add_element(e);
        }
    }
}

/// Writes the start of a full sync: the table deleted and created again with
/// its fixed chains, maps and sets, all in the same transaction as the
/// Services' parts (added next with [`Script::add_rendered`]).
pub fn write_skeleton(cfg: &RuleConfig, s: &mut Script<'_>) {
    s.push(Op::AddTable(None));
    s.push(Op::DeleteTable);
    s.push(Op::AddTable(Some("rules for rkube-proxy".into())));
    for (map, key, comment) in [
        ("service-ips", MapKey::AddrProtoPort, "ClusterIP traffic"),
        ("service-nodeports", MapKey::ProtoPort, "NodePort traffic"),
        ("no-endpoint-services", MapKey::AddrProtoPort, "rejects traffic to Service ports without endpoints"),
        ("no-endpoint-nodeports", MapKey::ProtoPort, "rejects traffic to NodePorts without endpoints"),
    ] {
        s.push(Op::AddSet(map.into(), SetKind::Map(key), Some(comment.into())));
    }
    // Named sets, not `{ … }` in every Service's rules: each anonymous set
    // costs the kernel more the more sets the table has.
    for (set, nets) in [(CLUSTER_CIDRS, &cfg.cluster_cidrs), ("nodeport-addresses", &cfg.nodeport_addresses)] {
        if !nets.is_empty() {
            s.push(Op::AddSet(set.into(), SetKind::Ranges, None));
            s.push(Op::AddRanges(set.into(), nets.clone()));
        }
    }
    for (chain, kind, hook, priority) in [
        ("filter-input", "filter", "input", -110),
        ("filter-forward", "filter", "forward", -110),
        ("filter-output", "filter", "output", -110),
        ("nat-prerouting", "nat", "prerouting", -100),
        ("nat-output", "nat", "output", -100),
        ("nat-postrouting", "nat", "postrouting", 100),
    ] {
        s.push(Op::AddChain(chain.into(), Some(Hook { kind, hook, priority })));
    }
    for chain in
        ["services", "masquerading", MARK_CHAIN, "reject-chain", "service-endpoints-check", "nodeport-endpoints-check"]
    {
        s.add_chain(chain);
    }
    let jump = |c: &str| Action::Jump(c.into());
    let vmap = |daddr, map: &str| Action::Vmap { daddr, map: map.into() };
    let nodeport = cfg.nodeport_match();
    let mut fixed: Vec<(&str, Rule)> = vec![
        ("filter-input", Rule::when([Match::CtNew], jump("nodeport-endpoints-check"))),
        ("filter-input", Rule::when([Match::CtNew], jump("service-endpoints-check"))),
        ("filter-forward", Rule::when([Match::CtNew], jump("service-endpoints-check"))),
        ("filter-output", Rule::when([Match::CtNew], jump("service-endpoints-check"))),
        ("filter-output", Rule::when([Match::CtNew], jump("nodeport-endpoints-check"))),
        ("nat-prerouting", Rule::always(jump("services"))),
        ("nat-output", Rule::always(jump("services"))),
        ("nat-postrouting", Rule::always(jump("masquerading"))),
        ("masquerading", Rule::when([Match::MarkClear(MASQUERADE_MARK)], Action::Return)),
        ("masquerading", Rule::always(Action::MarkXor(MASQUERADE_MARK))),
        ("masquerading", Rule::always(Action::Masquerade)),
        (MARK_CHAIN, Rule::always(Action::MarkOr(MASQUERADE_MARK))),
        ("reject-chain", Rule::when([Match::L4Proto(crate::model::Protocol::Tcp)], Action::TcpReset)),
        ("reject-chain", Rule::always(Action::Reject)),
        ("service-endpoints-check", Rule::always(vmap(true, "no-endpoint-services"))),
        ("nodeport-endpoints-check", Rule::when(nodeport.clone(), vmap(false, "no-endpoint-nodeports"))),
        ("services", Rule::always(vmap(true, "service-ips"))),
        ("services", Rule::when(nodeport, vmap(false, "service-nodeports"))),
    ];
    if cfg.localhost_nodeports() {
        // route_localnet lets 127.0.0.1 be DNATed out; like kube-proxy's
        // iptables mode, drop what reaches 127/8 from elsewhere un-DNATed.
        let loopback: Ipv4Cidr = "127.0.0.0/8".parse().expect("a valid CIDR");
        fixed.push((
            "filter-input",
            Rule::when(
                [
                    Match::Net(Addr::Source, loopback, true),
                    Match::Net(Addr::Destination, loopback, false),
                    Match::CtNew,
                    Match::CtNotDnat,
                ],
                Action::Drop,
            ),
        ));
    }
    for (chain, rule) in fixed {
        s.push(Op::AddRule(chain.into(), rule));
    }
}

/// Deletes `ip <table>` if it exists (`add` first makes the delete succeed
/// either way, in one transaction).
pub async fn delete_table(table: &str) -> crate::netlink::Result<()> {
    let mut s = Script::new(table);
    s.push(Op::AddTable(None));
    s.push(Op::DeleteTable);
    let mut batch = Batch::new();
    s.encode_labelled(&mut batch);
    crate::proxier::apply(batch).await
}

/// Writes the whole table: the skeleton, then every Service's part.
pub fn write_full<'r>(cfg: &RuleConfig, services: impl IntoIterator<Item = &'r Rendered>, s: &mut Script<'_>) {
    write_skeleton(cfg, s);
    for r in services {
        s.add_rendered(r);
    }
}

/// Writes the commands that turn one Service's `old` part into `new` in a
/// table that holds `old`; touches nothing else. Returns false (writing
/// nothing) when it cannot be done in place: an affinity set's definition
/// changed (its timeout), which takes a full sync.
pub fn write_diff(old: &Rendered, new: &Rendered, s: &mut Script<'_>) -> bool {
    if old.sets.iter().any(|(name, t)| new.sets.get(name).is_some_and(|n| n != t)) {
        return false;
    }
    for (name, timeout) in new.sets.iter().filter(|(name, _)| !old.sets.contains_key(*name)) {
        s.push(Op::AddSet(name.clone(), SetKind::Timeout(*timeout), None));
    }
    for name in new.chains.keys().filter(|name| !old.chains.contains_key(*name)) {
        s.add_chain(name);
    }
    let new_elements: HashMap<(Map, Key), &Element> = new.elements.iter().map(|e| ((e.map, e.key), e)).collect();
    let old_elements: HashMap<(Map, Key), &Element> = old.elements.iter().map(|e| ((e.map, e.key), e)).collect();
    for e in &old.elements {
        if new_elements.get(&(e.map, e.key)) != Some(&e) {
            s.push(Op::DeleteElement(e.map.name().into(), e.key));
        }
    }
    for (name, rules) in &new.chains {
        match old.chains.get(name) {
            Some(old_rules) if old_rules == rules => {}
            Some(_) => {
                s.push(Op::FlushChain(name.clone()));
                s.add_rules(name, rules);
            }
            None => s.add_rules(name, rules),
        }
    }
    for e in &new.elements {
        if old_elements.get(&(e.map, e.key)) != Some(&e) {
            s.add_element(e);
        }
    }
    let stale: Vec<&String> = old.chains.keys().filter(|name| !new.chains.contains_key(*name)).collect();
    for name in &stale {
        s.push(Op::FlushChain((*name).clone()));
    }
    for name in &stale {
        s.push(Op::DeleteChain((*name).clone()));
    }
    for name in old.sets.keys().filter(|name| !new.sets.contains_key(*name)) {
        s.push(Op::DeleteSet(name.clone()));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Protocol;

    fn cfg() -> RuleConfig {
        RuleConfig {
            table: "rkp".into(),
            cluster_cidrs: vec!["10.1.0.0/16".parse().unwrap()],
            nodeport_addresses: vec![],
        }
    }

    fn ep(last: u8, local: bool) -> Endpoint {
        Endpoint { ip: Ipv4Addr::new(10, 1, 0, last), port: 8080, local }
    }

    fn web(endpoints: Vec<Endpoint>) -> ServicePort {
        ServicePort {
            namespace: "default".into(),
            name: "web".into(),
            port_name: "http".into(),
            protocol: Protocol::Tcp,
            cluster_ip: Ipv4Addr::new(10, 96, 0, 10),
            port: 80,
            node_port: None,
            affinity_timeout: None,
            external_local: false,
            endpoints,
        }
    }

    fn script(f: impl FnOnce(&mut Script<'_>)) -> String {
        let mut s = Script::new("rkp");
        f(&mut s);
        s.text()
    }

    #[test]
    fn chain_names_follow_kube_proxy() {
        let r = render(&cfg(), &[web(vec![ep(5, false)])]);
        let names: Vec<&String> = r.chains.keys().collect();
        assert_eq!(names.len(), 2);
        assert!(names[0].starts_with("endpoint-") && names[0].ends_with("-default/web/tcp/http__10.1.0.5/8080"));
        assert!(names[1].starts_with("service-") && names[1].ends_with("-default/web/tcp/http"));
        assert_eq!(names[1].len(), "service-".len() + 8 + "-default/web/tcp/http".len());
        assert_eq!(render(&cfg(), &[web(vec![ep(5, false)])]), r, "stable");
        let mut unnamed = web(vec![]);
        unnamed.port_name.clear();
        assert_eq!(base_name(&unnamed), "default/web/tcp/80");
    }

    #[test]
    fn cluster_ip_with_three_endpoints_dnats_at_random() {
        let r = render(&cfg(), &[web(vec![ep(1, false), ep(2, false), ep(3, true)])]);
        let svc = port_chain("service", "default/web/tcp/http");
        let e = |n| endpoint_name("endpoint", "default/web/tcp/http", &ep(n, false));
        assert_eq!(
            r.chains[&svc],
            [
                "ip daddr 10.96.0.10 tcp dport 80 ip saddr != @cluster-cidrs jump mark-for-masquerade".to_string(),
                format!("numgen random mod 3 0 goto {}", e(1)),
                format!("numgen random mod 2 0 goto {}", e(2)),
                format!("goto {}", e(3)),
            ]
        );
        assert_eq!(
            r.chains[&e(2)],
            ["ip saddr 10.1.0.2 jump mark-for-masquerade", "meta l4proto tcp dnat to 10.1.0.2:8080"]
        );
        assert_eq!(r.chains.len(), 4);
        assert_eq!(r.rule_count(), 10);
        assert_eq!(
            r.elements,
            [Element {
                map: Map::ServiceIps,
                key: Key { ip: Some(Ipv4Addr::new(10, 96, 0, 10)), proto: Protocol::Tcp, port: 80 },
                comment: "default/web:http".into(),
                chain: svc.clone(),
            }]
        );
        assert!(r.sets.is_empty());
        let text = script(|s| s.add_rendered(&r));
        assert!(text.contains(&format!(
            "add element ip rkp service-ips {{ 10.96.0.10 . tcp . 80 comment \"default/web:http\" : goto {svc} }}\n"
        )));
    }

    #[test]
    fn no_cluster_cidr_no_masquerade_rule() {
        let cfg = RuleConfig { cluster_cidrs: vec![], ..cfg() };
        let r = render(&cfg, &[web(vec![ep(1, false)])]);
        assert_eq!(r.chains[&port_chain("service", "default/web/tcp/http")].len(), 1, "only the goto");
    }

    #[test]
    fn affinity_checks_sets_first_and_updates_them_in_endpoint_chains() {
        let mut sp = web(vec![ep(1, false), ep(2, false)]);
        sp.affinity_timeout = Some(60);
        let r = render(&cfg(), &[sp]);
        let base = "default/web/tcp/http";
        let set1 = endpoint_name("affinity", base, &ep(1, false));
        let e1 = endpoint_name("endpoint", base, &ep(1, false));
        let svc = &r.chains[&port_chain("service", base)];
        assert_eq!(svc[1], format!("ip saddr @{set1} goto {e1}"));
        assert!(svc[3].to_string().starts_with("numgen random mod 2 0 goto"));
        assert!(svc[4].to_string().starts_with("goto endpoint-"));
        assert_eq!(r.chains[&e1][1], format!("update @{set1} {{ ip saddr }}"));
        assert_eq!(r.sets[&set1], 60);
        let text = script(|s| s.add_rendered(&r));
        assert!(
            text.contains(&format!(
                "add set ip rkp {set1} {{ type ipv4_addr; flags dynamic,timeout; timeout 60s; }}\n"
            ))
        );
        assert_eq!(r.sets.len(), 2);
    }

    #[test]
    fn no_endpoints_rejects_on_cluster_ip_and_node_port() {
        let mut sp = web(vec![]);
        sp.node_port = Some(30080);
        let r = render(&cfg(), &[sp]);
        assert!(r.chains.is_empty());
        let got: Vec<(Map, String, &str)> =
            r.elements.iter().map(|e| (e.map, e.key.to_string(), e.chain.as_str())).collect();
        assert_eq!(
            got,
            [
                (Map::NoEndpointServices, "10.96.0.10 . tcp . 80".into(), "reject-chain"),
                (Map::NoEndpointNodeports, "tcp . 30080".into(), "reject-chain")
            ]
        );
    }

    #[test]
    fn node_port_cluster_policy_masquerades() {
        let mut sp = web(vec![ep(1, false)]);
        sp.node_port = Some(30080);
        let r = render(&cfg(), &[sp]);
        let ext = port_chain("external", "default/web/tcp/http");
        let svc = port_chain("service", "default/web/tcp/http");
        assert_eq!(r.chains[&ext], ["jump mark-for-masquerade".to_string(), format!("goto {svc}")]);
        assert!(r.elements.contains(&Element {
            map: Map::ServiceNodeports,
            key: Key { ip: None, proto: Protocol::Tcp, port: 30080 },
            comment: "default/web:http".into(),
            chain: ext.clone(),
        }));
    }

    #[test]
    fn node_port_local_policy_goes_to_local_endpoints_without_masquerade() {
        let mut sp = web(vec![ep(1, false), ep(2, true)]);
        sp.node_port = Some(30080);
        sp.external_local = true;
        let r = render(&cfg(), &[sp.clone()]);
        let base = "default/web/tcp/http";
        let (ext, svc, local) = (port_chain("external", base), port_chain("service", base), port_chain("local", base));
        assert_eq!(
            r.chains[&ext],
            [
                format!("ip saddr @cluster-cidrs goto {svc}"),
                "fib saddr type local jump mark-for-masquerade".into(),
                format!("fib saddr type local goto {svc}"),
                format!("goto {local}"),
            ]
        );
        let e2 = endpoint_name("endpoint", base, &ep(2, true));
        assert_eq!(r.chains[&local], [format!("goto {e2}")]);
        sp.endpoints = vec![ep(1, false)];
        let r = render(&cfg(), &[sp]);
        assert_eq!(r.chains[&ext].last().map(ToString::to_string).as_deref(), Some("drop"));
    }

    #[test]
    fn skeleton_has_the_hooks_maps_and_masquerade() {
        let text = script(|s| write_skeleton(&cfg(), s));
        for line in [
            "add table ip rkp\ndelete table ip rkp\nadd table ip rkp { comment \"rules for rkube-proxy\"; }\n",
            "add map ip rkp service-ips { type ipv4_addr . inet_proto . inet_service : verdict;",
            "add chain ip rkp nat-prerouting { type nat hook prerouting priority dstnat; policy accept; }\n",
            "add rule ip rkp services fib daddr type local meta l4proto . th dport vmap @service-nodeports\n",
            "add rule ip rkp masquerading masquerade fully-random\n",
            "add rule ip rkp mark-for-masquerade meta mark set meta mark | 0x4000\n",
            "add rule ip rkp filter-forward ct state new jump service-endpoints-check\n",
            "add element ip rkp cluster-cidrs { 10.1.0.0/16 }\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        let only = RuleConfig { nodeport_addresses: vec!["192.168.0.0/16".parse().unwrap()], ..cfg() };
        assert!(!only.localhost_nodeports());
        let text = script(|s| write_skeleton(&only, s));
        assert!(text.contains("add element ip rkp nodeport-addresses { 192.168.0.0/16 }\n"));
        assert!(text.contains("services fib daddr type local ip daddr @nodeport-addresses meta l4proto"));
        assert!(!text.contains("127.0.0.0/8"));
    }

    #[test]
    fn a_diff_touches_only_what_changed() {
        let old = render(&cfg(), &[web(vec![ep(1, false), ep(2, false)])]);
        let new = render(&cfg(), &[web(vec![ep(2, false), ep(3, false)])]);
        let text = script(|s| assert!(write_diff(&old, &new, s)));
        let base = "default/web/tcp/http";
        let (e1, e2, e3) = (
            endpoint_name("endpoint", base, &ep(1, false)),
            endpoint_name("endpoint", base, &ep(2, false)),
            endpoint_name("endpoint", base, &ep(3, false)),
        );
        let svc = port_chain("service", base);
        let expected = [
            format!("add chain ip rkp {e3}"),
            format!("flush chain ip rkp {svc}"),
            format!(
                "add rule ip rkp {svc} ip daddr 10.96.0.10 tcp dport 80 ip saddr != @cluster-cidrs jump mark-for-masquerade"
            ),
            format!("add rule ip rkp {svc} numgen random mod 2 0 goto {e2}"),
            format!("add rule ip rkp {svc} goto {e3}"),
            format!("add rule ip rkp {e3} ip saddr 10.1.0.3 jump mark-for-masquerade"),
            format!("add rule ip rkp {e3} meta l4proto tcp dnat to 10.1.0.3:8080"),
            format!("flush chain ip rkp {e1}"),
            format!("delete chain ip rkp {e1}"),
        ];
        // BTreeMap order puts endpoint chains before the service chain.
        let mut got: Vec<&str> = text.lines().collect();
        let mut want: Vec<&str> = expected.iter().map(String::as_str).collect();
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want, "{text}");
        assert!(!text.contains(&format!("ip rkp {e2}")), "the unchanged endpoint's chain is untouched");
        assert!(!text.contains("element"), "the ClusterIP element is unchanged");
        assert_eq!(script(|s| assert!(write_diff(&new, &new, s))), "", "no change, no commands");
    }

    #[test]
    fn a_diff_moves_elements_between_maps() {
        let old = render(&cfg(), &[web(vec![ep(1, false)])]);
        let new = render(&cfg(), &[web(vec![])]);
        let text = script(|s| assert!(write_diff(&old, &new, s)));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "delete element ip rkp service-ips { 10.96.0.10 . tcp . 80 }");
        assert!(lines[1].starts_with("add element ip rkp no-endpoint-services { 10.96.0.10 . tcp . 80 comment"));
        assert!(lines[2..].iter().all(|l| l.starts_with("flush chain") || l.starts_with("delete chain")), "{text}");
        let deleted = script(|s| assert!(write_diff(&old, &Rendered::default(), s)));
        assert!(deleted.starts_with("delete element ip rkp service-ips"));
    }

    #[test]
    fn a_changed_affinity_timeout_needs_a_full_sync() {
        let mut sp = web(vec![ep(1, false)]);
        sp.affinity_timeout = Some(60);
        let old = render(&cfg(), &[sp.clone()]);
        sp.affinity_timeout = Some(120);
        let new = render(&cfg(), &[sp]);
        assert!(!write_diff(&old, &new, &mut Script::new("rkp")));
    }
}
