//! The nftables ruleset: the fixed skeleton of the proxy's table and the
//! chains, sets and map elements of each Service, as nft script text (what
//! `nft -f` reads, as kube-proxy's knftables writes it).
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
use rkube_api::cidr::Ipv4Cidr;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
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

    /// The match that selects NodePort traffic: to a local address (among
    /// `--nodeport-addresses` when given).
    fn nodeport_match(&self) -> &'static str {
        if self.nodeport_addresses.is_empty() {
            "fib daddr type local"
        } else {
            "fib daddr type local ip daddr @nodeport-addresses"
        }
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

/// One map element: `key comment "…" : value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// The map.
    pub map: Map,
    /// The key, e.g. `10.96.0.10 . tcp . 80`.
    pub key: String,
    /// The Service port it is for, as a comment.
    pub comment: String,
    /// The verdict, e.g. `goto service-…`.
    pub value: String,
}

/// One Service's part of the table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    /// Chains by name, with their rules.
    pub chains: BTreeMap<String, Vec<String>>,
    /// Sets by name, with their definition (`{ type …; }`).
    pub sets: BTreeMap<String, String>,
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

/// Adds the rules that pick one of `eps` (affinity first, then at random).
fn pick_endpoint(rules: &mut Vec<String>, sp: &ServicePort, base: &str, eps: &[Endpoint]) {
    if sp.affinity_timeout.is_some() {
        for ep in eps {
            rules.push(format!(
                "ip saddr @{} goto {}",
                endpoint_name("affinity", base, ep),
                endpoint_name("endpoint", base, ep)
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
        let chain = endpoint_name("endpoint", base, ep);
        if i + 1 < n {
            rules.push(format!("numgen random mod {} 0 goto {chain}", n - i));
        } else {
            rules.push(format!("goto {chain}"));
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
    let proto = sp.protocol.nft();
    let comment = sp.display_name();
    let ip_key = format!("{} . {proto} . {}", sp.cluster_ip, sp.port);
    let np_key = sp.node_port.map(|np| format!("{proto} . {np}"));
    let element =
        |map, key: &str, value: String| Element { map, key: key.to_string(), comment: comment.clone(), value };
    if sp.endpoints.is_empty() {
        r.elements.push(element(Map::NoEndpointServices, &ip_key, "goto reject-chain".into()));
        if let Some(k) = &np_key {
            r.elements.push(element(Map::NoEndpointNodeports, k, "goto reject-chain".into()));
        }
        return;
    }
    let service_chain = port_chain("service", &base);
    let mut rules = Vec::new();
    if !cfg.cluster_cidrs.is_empty() {
        rules.push(format!(
            "ip daddr {} {proto} dport {} ip saddr != @cluster-cidrs jump mark-for-masquerade",
            sp.cluster_ip, sp.port
        ));
    }
    pick_endpoint(&mut rules, sp, &base, &sp.endpoints);
    r.chains.insert(service_chain.clone(), rules);
    for ep in &sp.endpoints {
        let mut rules = vec![format!("ip saddr {} jump mark-for-masquerade", ep.ip)];
        if let Some(timeout) = sp.affinity_timeout {
            let set = endpoint_name("affinity", &base, ep);
            rules.push(format!("update @{set} {{ ip saddr }}"));
            r.sets.insert(set, format!("{{ type ipv4_addr; flags dynamic,timeout; timeout {timeout}s; }}"));
        }
        rules.push(format!("meta l4proto {proto} dnat to {}:{}", ep.ip, ep.port));
        r.chains.insert(endpoint_name("endpoint", &base, ep), rules);
    }
    r.elements.push(element(Map::ServiceIps, &ip_key, format!("goto {service_chain}")));
    let Some(np_key) = np_key else { return };
    let external_chain = port_chain("external", &base);
    let mut rules = Vec::new();
    if sp.external_local {
        // Pods and the node itself reach every endpoint; others only local
        // ones, keeping their source address.
        if !cfg.cluster_cidrs.is_empty() {
            rules.push(format!("ip saddr @cluster-cidrs goto {service_chain}"));
        }
        rules.push("fib saddr type local jump mark-for-masquerade".into());
        rules.push(format!("fib saddr type local goto {service_chain}"));
        let local = sp.local_endpoints();
        if local.is_empty() {
            rules.push("drop".into());
        } else {
            let local_chain = port_chain("local", &base);
            rules.push(format!("goto {local_chain}"));
            let mut local_rules = Vec::new();
            pick_endpoint(&mut local_rules, sp, &base, &local);
            r.chains.insert(local_chain, local_rules);
        }
    } else {
        rules.push("jump mark-for-masquerade".into());
        rules.push(format!("goto {service_chain}"));
    }
    r.chains.insert(external_chain.clone(), rules);
    r.elements.push(element(Map::ServiceNodeports, &np_key, format!("goto {external_chain}")));
}

/// An nft script being written for one table.
#[derive(Debug)]
pub struct Script<'a> {
    table: &'a str,
    /// The text so far.
    pub text: String,
}

impl<'a> Script<'a> {
    /// An empty script for `table`.
    pub fn new(table: &'a str) -> Self {
        Script { table, text: String::new() }
    }

    fn line(&mut self, args: std::fmt::Arguments<'_>) {
        self.text.write_fmt(args).expect("writing to a String cannot fail");
        self.text.push('\n');
    }

    fn add_chain(&mut self, chain: &str) {
        let t = self.table;
        self.line(format_args!("add chain ip {t} {chain}"));
    }

    fn add_rules(&mut self, chain: &str, rules: &[String]) {
        let t = self.table;
        for rule in rules {
            self.line(format_args!("add rule ip {t} {chain} {rule}"));
        }
    }

    fn add_set(&mut self, name: &str, def: &str) {
        let t = self.table;
        self.line(format_args!("add set ip {t} {name} {def}"));
    }

    fn add_element(&mut self, e: &Element) {
        let (t, map) = (self.table, e.map.name());
        self.line(format_args!("add element ip {t} {map} {{ {} comment \"{}\" : {} }}", e.key, e.comment, e.value));
    }

    /// Adds every chain, set and element of `r` to a table that has none of them.
    pub fn add_rendered(&mut self, r: &Rendered) {
        for (name, def) in &r.sets {
            self.add_set(name, def);
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
    let t = &cfg.table;
    s.line(format_args!("add table ip {t}"));
    s.line(format_args!("delete table ip {t}"));
    s.line(format_args!("add table ip {t} {{ comment \"rules for rkube-proxy\"; }}"));
    let ipp = "ipv4_addr . inet_proto . inet_service";
    for (map, ty, comment) in [
        ("service-ips", ipp, "ClusterIP traffic"),
        ("service-nodeports", "inet_proto . inet_service", "NodePort traffic"),
        ("no-endpoint-services", ipp, "rejects traffic to Service ports without endpoints"),
        ("no-endpoint-nodeports", "inet_proto . inet_service", "rejects traffic to NodePorts without endpoints"),
    ] {
        s.line(format_args!("add map ip {t} {map} {{ type {ty} : verdict; comment \"{comment}\"; }}"));
    }
    // Named sets, not `{ … }` in every Service's rules: each anonymous set
    // costs the kernel more the more sets the table has.
    if !cfg.cluster_cidrs.is_empty() {
        let list: Vec<String> = cfg.cluster_cidrs.iter().map(ToString::to_string).collect();
        s.line(format_args!("add set ip {t} cluster-cidrs {{ type ipv4_addr; flags interval; }}"));
        s.line(format_args!("add element ip {t} cluster-cidrs {{ {} }}", list.join(", ")));
    }
    if !cfg.nodeport_addresses.is_empty() {
        let list: Vec<String> = cfg.nodeport_addresses.iter().map(ToString::to_string).collect();
        s.line(format_args!("add set ip {t} nodeport-addresses {{ type ipv4_addr; flags interval; }}"));
        s.line(format_args!("add element ip {t} nodeport-addresses {{ {} }}", list.join(", ")));
    }
    for (chain, hook) in [
        ("filter-input", "type filter hook input priority -110"),
        ("filter-forward", "type filter hook forward priority -110"),
        ("filter-output", "type filter hook output priority -110"),
        ("nat-prerouting", "type nat hook prerouting priority dstnat"),
        ("nat-output", "type nat hook output priority -100"),
        ("nat-postrouting", "type nat hook postrouting priority srcnat"),
    ] {
        s.line(format_args!("add chain ip {t} {chain} {{ {hook}; policy accept; }}"));
    }
    for chain in [
        "services",
        "masquerading",
        "mark-for-masquerade",
        "reject-chain",
        "service-endpoints-check",
        "nodeport-endpoints-check",
    ] {
        s.add_chain(chain);
    }
    let nodeport = cfg.nodeport_match();
    let mut fixed: Vec<(&str, String)> = vec![
        ("filter-input", "ct state new jump nodeport-endpoints-check".into()),
        ("filter-input", "ct state new jump service-endpoints-check".into()),
        ("filter-forward", "ct state new jump service-endpoints-check".into()),
        ("filter-output", "ct state new jump service-endpoints-check".into()),
        ("filter-output", "ct state new jump nodeport-endpoints-check".into()),
        ("nat-prerouting", "jump services".into()),
        ("nat-output", "jump services".into()),
        ("nat-postrouting", "jump masquerading".into()),
        ("masquerading", format!("meta mark & {MASQUERADE_MARK:#x} == 0 return")),
        ("masquerading", format!("meta mark set meta mark ^ {MASQUERADE_MARK:#x}")),
        ("masquerading", "masquerade fully-random".into()),
        ("mark-for-masquerade", format!("meta mark set meta mark | {MASQUERADE_MARK:#x}")),
        ("reject-chain", "meta l4proto tcp reject with tcp reset".into()),
        ("reject-chain", "reject".into()),
        ("service-endpoints-check", "ip daddr . meta l4proto . th dport vmap @no-endpoint-services".into()),
        ("nodeport-endpoints-check", format!("{nodeport} meta l4proto . th dport vmap @no-endpoint-nodeports")),
        ("services", "ip daddr . meta l4proto . th dport vmap @service-ips".into()),
        ("services", format!("{nodeport} meta l4proto . th dport vmap @service-nodeports")),
    ];
    if cfg.localhost_nodeports() {
        // route_localnet lets 127.0.0.1 be DNATed out; like kube-proxy's
        // iptables mode, drop what reaches 127/8 from elsewhere un-DNATed.
        fixed.push((
            "filter-input",
            "ip saddr != 127.0.0.0/8 ip daddr 127.0.0.0/8 ct state new ct status ! dnat drop".into(),
        ));
    }
    for (chain, rule) in fixed {
        s.add_rules(chain, &[rule]);
    }
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
    if old.sets.iter().any(|(name, def)| new.sets.get(name).is_some_and(|d| d != def)) {
        return false;
    }
    let t = s.table;
    for (name, def) in new.sets.iter().filter(|(name, _)| !old.sets.contains_key(*name)) {
        s.add_set(name, def);
    }
    for name in new.chains.keys().filter(|name| !old.chains.contains_key(*name)) {
        s.add_chain(name);
    }
    let new_elements: HashMap<(Map, &str), &Element> =
        new.elements.iter().map(|e| ((e.map, e.key.as_str()), e)).collect();
    let old_elements: HashMap<(Map, &str), &Element> =
        old.elements.iter().map(|e| ((e.map, e.key.as_str()), e)).collect();
    for e in &old.elements {
        if new_elements.get(&(e.map, e.key.as_str())) != Some(&e) {
            s.line(format_args!("delete element ip {t} {} {{ {} }}", e.map.name(), e.key));
        }
    }
    for (name, rules) in &new.chains {
        match old.chains.get(name) {
            Some(old_rules) if old_rules == rules => {}
            Some(_) => {
                s.line(format_args!("flush chain ip {t} {name}"));
                s.add_rules(name, rules);
            }
            None => s.add_rules(name, rules),
        }
    }
    for e in &new.elements {
        if old_elements.get(&(e.map, e.key.as_str())) != Some(&e) {
            s.add_element(e);
        }
    }
    let stale: Vec<&String> = old.chains.keys().filter(|name| !new.chains.contains_key(*name)).collect();
    for name in &stale {
        s.line(format_args!("flush chain ip {t} {name}"));
    }
    for name in &stale {
        s.line(format_args!("delete chain ip {t} {name}"));
    }
    for name in old.sets.keys().filter(|name| !new.sets.contains_key(*name)) {
        s.line(format_args!("delete set ip {t} {name}"));
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
        s.text
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
                key: "10.96.0.10 . tcp . 80".into(),
                comment: "default/web:http".into(),
                value: format!("goto {svc}"),
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
        assert!(svc[3].starts_with("numgen random mod 2 0 goto"));
        assert!(svc[4].starts_with("goto endpoint-"));
        assert_eq!(r.chains[&e1][1], format!("update @{set1} {{ ip saddr }}"));
        assert_eq!(r.sets[&set1], "{ type ipv4_addr; flags dynamic,timeout; timeout 60s; }");
        assert_eq!(r.sets.len(), 2);
    }

    #[test]
    fn no_endpoints_rejects_on_cluster_ip_and_node_port() {
        let mut sp = web(vec![]);
        sp.node_port = Some(30080);
        let r = render(&cfg(), &[sp]);
        assert!(r.chains.is_empty());
        let got: Vec<(Map, &str, &str)> =
            r.elements.iter().map(|e| (e.map, e.key.as_str(), e.value.as_str())).collect();
        assert_eq!(
            got,
            [
                (Map::NoEndpointServices, "10.96.0.10 . tcp . 80", "goto reject-chain"),
                (Map::NoEndpointNodeports, "tcp . 30080", "goto reject-chain")
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
            key: "tcp . 30080".into(),
            comment: "default/web:http".into(),
            value: format!("goto {ext}"),
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
        assert_eq!(r.chains[&ext].last().map(String::as_str), Some("drop"));
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
