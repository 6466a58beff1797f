//! The statements the proxy's table is made of, typed: each prints as the
//! nft syntax `nft list` shows (so the docs, the tests and a person reading
//! the table see one language) and encodes as the nf_tables expressions the
//! kernel runs ([`crate::netlink`]), the same ones `nft` would send.
//!
//! [`Op`] is one change to the table (add a chain, add a rule, delete an
//! element…); a sync is a list of them in one transaction.

use crate::model::Protocol;
use crate::netlink::{Batch, F_APPEND, F_CREATE, Msg};
use rkube_api::cidr::Ipv4Cidr;
use std::fmt;
use std::net::Ipv4Addr;

// Attribute numbers from include/uapi/linux/netfilter/nf_tables.h.
const LIST_ELEM: u16 = 1;
const EXPR_NAME: u16 = 1;
const EXPR_DATA: u16 = 2;
const DATA_VALUE: u16 = 1;
const DATA_VERDICT: u16 = 2;
const VERDICT_CODE: u16 = 1;
const VERDICT_CHAIN: u16 = 2;
const TABLE_NAME: u16 = 1;
const TABLE_USERDATA: u16 = 6;
const CHAIN_TABLE: u16 = 1;
const CHAIN_NAME: u16 = 3;
const CHAIN_HOOK: u16 = 4;
const CHAIN_POLICY: u16 = 5;
const CHAIN_TYPE: u16 = 7;
const HOOK_HOOKNUM: u16 = 1;
const HOOK_PRIORITY: u16 = 2;
const RULE_TABLE: u16 = 1;
const RULE_CHAIN: u16 = 2;
const RULE_EXPRESSIONS: u16 = 4;
const SET_TABLE: u16 = 1;
const SET_NAME: u16 = 2;
const SET_FLAGS: u16 = 3;
const SET_KEY_TYPE: u16 = 4;
const SET_KEY_LEN: u16 = 5;
const SET_DATA_TYPE: u16 = 6;
const SET_ID: u16 = 10;
const SET_TIMEOUT: u16 = 11;
const SET_USERDATA: u16 = 13;
const ELEM_LIST_TABLE: u16 = 1;
const ELEM_LIST_SET: u16 = 2;
const ELEM_LIST_ELEMENTS: u16 = 3;
const ELEM_KEY: u16 = 1;
const ELEM_DATA: u16 = 2;
const ELEM_FLAGS: u16 = 3;
const ELEM_USERDATA: u16 = 6;

const SET_F_INTERVAL: u32 = 0x4;
const SET_F_MAP: u32 = 0x8;
const SET_F_TIMEOUT: u32 = 0x10;
const SET_F_EVAL: u32 = 0x20;
const ELEM_F_INTERVAL_END: u32 = 0x1;
const DATA_TYPE_VERDICT: u32 = 0xffff_ff00;
/// nft's datatype ids, for set keys (`ipv4_addr . inet_proto . inet_service`).
const TYPE_IPV4_ADDR: u32 = 7;
const TYPE_INET_PROTO: u32 = 12;
const TYPE_INET_SERVICE: u32 = 13;
/// libnftnl's userdata tags for comments (tables, elements: 0; sets: 7).
const UDATA_COMMENT: u8 = 0;
const UDATA_SET_COMMENT: u8 = 7;

/// Registers: the verdict, 16-byte `NFT_REG_1`, `NFT_REG_2`, and the 4-byte
/// `NFT_REG32_00` on (concatenations take one 4-byte slot per field).
const REG_VERDICT: u32 = 0;
const REG_1: u32 = 1;
const REG_2: u32 = 2;
const REG32_00: u32 = 8;

const NF_DROP: i32 = 0;
const NF_ACCEPT: u32 = 1;
const NFT_JUMP: i32 = -3;
const NFT_GOTO: i32 = -4;
const NFT_RETURN: i32 = -5;

impl Protocol {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }
}

/// Which address of the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addr {
    /// `saddr`.
    Source,
    /// `daddr`.
    Destination,
}

impl Addr {
    fn name(self) -> &'static str {
        match self {
            Addr::Source => "saddr",
            Addr::Destination => "daddr",
        }
    }

    /// The field's offset in the IPv4 header.
    fn offset(self) -> u32 {
        match self {
            Addr::Source => 12,
            Addr::Destination => 16,
        }
    }
}

/// One condition of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// `ip saddr|daddr A`.
    Ip(Addr, Ipv4Addr),
    /// `ip saddr|daddr [!=] N/L`.
    Net(Addr, Ipv4Cidr, bool),
    /// `ip saddr|daddr [!=] @set`.
    InSet(Addr, String, bool),
    /// `tcp dport P`.
    Dport(Protocol, u16),
    /// `meta l4proto tcp`.
    L4Proto(Protocol),
    /// `numgen random mod N 0`: true once in N.
    OneIn(u32),
    /// `fib saddr|daddr type local`.
    Local(Addr),
    /// `ct state new`.
    CtNew,
    /// `ct status ! dnat`.
    CtNotDnat,
    /// `meta mark & M == 0`.
    MarkClear(u32),
}

/// What a rule does when its conditions hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `jump CHAIN`.
    Jump(String),
    /// `goto CHAIN`.
    Goto(String),
    /// `return`.
    Return,
    /// `drop`.
    Drop,
    /// `ip daddr . meta l4proto . th dport vmap @MAP` (with the address) or
    /// `meta l4proto . th dport vmap @MAP`.
    Vmap {
        /// Whether the key starts with the destination address.
        daddr: bool,
        /// The verdict map.
        map: String,
    },
    /// `dnat to A:P`.
    Dnat(Ipv4Addr, u16),
    /// `masquerade fully-random`.
    Masquerade,
    /// `reject with tcp reset`.
    TcpReset,
    /// `reject` (ICMP port unreachable).
    Reject,
    /// `meta mark set meta mark | M`.
    MarkOr(u32),
    /// `meta mark set meta mark ^ M`.
    MarkXor(u32),
    /// `update @SET { ip saddr }`: refresh the source's entry.
    UpdateSource(String),
}

/// A rule: conditions, then an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// All must hold.
    pub matches: Vec<Match>,
    /// Then this.
    pub action: Action,
}

impl Rule {
    /// A rule that always does `action`.
    pub fn always(action: Action) -> Rule {
        Rule { matches: Vec::new(), action }
    }

    /// A rule doing `action` when `matches` hold.
    pub fn when(matches: impl IntoIterator<Item = Match>, action: Action) -> Rule {
        Rule { matches: matches.into_iter().collect(), action }
    }
}

impl fmt::Display for Match {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let not = |neg: bool| if neg { "!= " } else { "" };
        match self {
            Match::Ip(a, ip) => write!(f, "ip {} {ip}", a.name()),
            Match::Net(a, net, neg) => write!(f, "ip {} {}{net}", a.name(), not(*neg)),
            Match::InSet(a, set, neg) => write!(f, "ip {} {}@{set}", a.name(), not(*neg)),
            Match::Dport(p, port) => write!(f, "{} dport {port}", p.nft()),
            Match::L4Proto(p) => write!(f, "meta l4proto {}", p.nft()),
            Match::OneIn(n) => write!(f, "numgen random mod {n} 0"),
            Match::Local(a) => write!(f, "fib {} type local", a.name()),
            Match::CtNew => f.write_str("ct state new"),
            Match::CtNotDnat => f.write_str("ct status ! dnat"),
            Match::MarkClear(m) => write!(f, "meta mark & {m:#x} == 0"),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Jump(c) => write!(f, "jump {c}"),
            Action::Goto(c) => write!(f, "goto {c}"),
            Action::Return => f.write_str("return"),
            Action::Drop => f.write_str("drop"),
            Action::Vmap { daddr: true, map } => write!(f, "ip daddr . meta l4proto . th dport vmap @{map}"),
            Action::Vmap { daddr: false, map } => write!(f, "meta l4proto . th dport vmap @{map}"),
            Action::Dnat(ip, port) => write!(f, "dnat to {ip}:{port}"),
            Action::Masquerade => f.write_str("masquerade fully-random"),
            Action::TcpReset => f.write_str("reject with tcp reset"),
            Action::Reject => f.write_str("reject"),
            Action::MarkOr(m) => write!(f, "meta mark set meta mark | {m:#x}"),
            Action::MarkXor(m) => write!(f, "meta mark set meta mark ^ {m:#x}"),
            Action::UpdateSource(set) => write!(f, "update @{set} {{ ip saddr }}"),
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for m in &self.matches {
            write!(f, "{m} ")?;
        }
        write!(f, "{}", self.action)
    }
}

impl PartialEq<&str> for Rule {
    fn eq(&self, other: &&str) -> bool {
        self.to_string().as_str() == *other
    }
}

impl PartialEq<String> for Rule {
    fn eq(&self, other: &String) -> bool {
        self.to_string().as_str() == other.as_str()
    }
}

/// Expression writers, one per nf_tables expression.
mod expr {
    use super::*;

    fn expr(b: &mut Batch, name: &str, body: impl FnOnce(&mut Batch)) {
        b.open(LIST_ELEM);
        b.str_attr(EXPR_NAME, name);
        b.open(EXPR_DATA);
        body(b);
        b.close();
        b.close();
    }

    pub(super) fn data(b: &mut Batch, ty: u16, value: &[u8]) {
        b.open(ty);
        b.bytes_attr(DATA_VALUE, value);
        b.close();
    }

    pub(super) fn verdict(b: &mut Batch, ty: u16, code: i32, chain: Option<&str>) {
        b.open(ty);
        b.open(DATA_VERDICT);
        b.u32_attr(VERDICT_CODE, code as u32);
        if let Some(chain) = chain {
            b.str_attr(VERDICT_CHAIN, chain);
        }
        b.close();
        b.close();
    }

    /// Network (1) or transport (2) header bytes into `reg`.
    pub(super) fn payload(b: &mut Batch, base: u32, offset: u32, len: u32, reg: u32) {
        expr(b, "payload", |b| {
            b.u32_attr(1, reg);
            b.u32_attr(2, base);
            b.u32_attr(3, offset);
            b.u32_attr(4, len);
        });
    }

    /// `reg` == (or !=) `value`.
    pub(super) fn cmp(b: &mut Batch, reg: u32, eq: bool, value: &[u8]) {
        expr(b, "cmp", |b| {
            b.u32_attr(1, reg);
            b.u32_attr(2, if eq { 0 } else { 1 });
            data(b, 3, value);
        });
    }

    /// A meta key (mark 3, l4proto 16) into `reg`.
    pub(super) fn meta(b: &mut Batch, key: u32, reg: u32) {
        expr(b, "meta", |b| {
            b.u32_attr(1, reg);
            b.u32_attr(2, key);
        });
    }

    /// Sets the mark from `reg`.
    pub(super) fn meta_set_mark(b: &mut Batch, reg: u32) {
        expr(b, "meta", |b| {
            b.u32_attr(2, 3);
            b.u32_attr(3, reg);
        });
    }

    /// `reg = (reg & mask) ^ xor` over `mask.len()` bytes.
    pub(super) fn bitwise(b: &mut Batch, reg: u32, mask: &[u8], xor: &[u8]) {
        expr(b, "bitwise", |b| {
            b.u32_attr(1, reg);
            b.u32_attr(2, reg);
            b.u32_attr(3, mask.len() as u32);
            data(b, 4, mask);
            data(b, 5, xor);
        });
    }

    pub(super) fn immediate_verdict(b: &mut Batch, code: i32, chain: Option<&str>) {
        expr(b, "immediate", |b| {
            b.u32_attr(1, REG_VERDICT);
            verdict(b, 2, code, chain);
        });
    }

    pub(super) fn immediate(b: &mut Batch, reg: u32, value: &[u8]) {
        expr(b, "immediate", |b| {
            b.u32_attr(1, reg);
            data(b, 2, value);
        });
    }

    /// Looks `sreg` up in `set`: a match (inverted with `inv`), or with
    /// `vmap` the element's verdict.
    pub(super) fn lookup(b: &mut Batch, set: &str, sreg: u32, inv: bool, vmap: bool) {
        expr(b, "lookup", |b| {
            b.str_attr(1, set);
            b.u32_attr(2, sreg);
            if vmap {
                b.u32_attr(3, REG_VERDICT);
            }
            if inv {
                b.u32_attr(5, 1);
            }
        });
    }

    pub(super) fn numgen_random(b: &mut Batch, modulus: u32, reg: u32) {
        expr(b, "numgen", |b| {
            b.u32_attr(1, reg);
            b.u32_attr(2, modulus);
            b.u32_attr(3, 1);
            b.u32_attr(4, 0);
        });
    }

    /// The address type of the source (1) or destination (2) address.
    pub(super) fn fib_addrtype(b: &mut Batch, flags: u32, reg: u32) {
        expr(b, "fib", |b| {
            b.u32_attr(1, reg);
            b.u32_attr(2, 3);
            b.u32_attr(3, flags);
        });
    }

    /// Conntrack state (0) or status (2) into `reg`.
    pub(super) fn ct(b: &mut Batch, key: u32, reg: u32) {
        expr(b, "ct", |b| {
            b.u32_attr(1, reg);
            b.u32_attr(2, key);
        });
    }

    pub(super) fn dnat(b: &mut Batch, addr_reg: u32, proto_reg: u32) {
        expr(b, "nat", |b| {
            b.u32_attr(1, 1);
            b.u32_attr(2, u32::from(crate::netlink::FAMILY_IP));
            b.u32_attr(3, addr_reg);
            b.u32_attr(5, proto_reg);
        });
    }

    pub(super) fn masq_fully_random(b: &mut Batch) {
        // NF_NAT_RANGE_PROTO_RANDOM_FULLY
        expr(b, "masq", |b| b.u32_attr(1, 0x10));
    }

    pub(super) fn reject(b: &mut Batch, tcp_reset: bool) {
        expr(b, "reject", |b| {
            if tcp_reset {
                b.u32_attr(1, 1);
            } else {
                // ICMP port unreachable.
                b.u32_attr(1, 0);
                b.bytes_attr(2, &[3]);
            }
        });
    }

    /// `update @set { <sreg> }` (the set's own timeout).
    pub(super) fn dynset_update(b: &mut Batch, set: &str, sreg: u32) {
        expr(b, "dynset", |b| {
            b.str_attr(1, set);
            b.u32_attr(3, 1);
            b.u32_attr(4, sreg);
        });
    }
}

const NETWORK: u32 = 1;
const TRANSPORT: u32 = 2;
const META_MARK: u32 = 3;
const META_L4PROTO: u32 = 16;
const CT_STATE: u32 = 0;
const CT_STATUS: u32 = 2;
const CT_STATE_NEW: u32 = 8;
const CT_STATUS_DST_NAT: u32 = 0x20;
const RTN_LOCAL: u32 = 2;

impl Match {
    fn encode(&self, b: &mut Batch) {
        match self {
            Match::Ip(a, ip) => {
                expr::payload(b, NETWORK, a.offset(), 4, REG_1);
                expr::cmp(b, REG_1, true, &ip.octets());
            }
            Match::Net(a, net, neg) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(net.prefix())).unwrap_or(0);
                expr::payload(b, NETWORK, a.offset(), 4, REG_1);
                expr::bitwise(b, REG_1, &mask.to_be_bytes(), &[0; 4]);
                expr::cmp(b, REG_1, !neg, &net.network().octets());
            }
            Match::InSet(a, set, neg) => {
                expr::payload(b, NETWORK, a.offset(), 4, REG_1);
                expr::lookup(b, set, REG_1, *neg, false);
            }
            Match::Dport(p, port) => {
                expr::meta(b, META_L4PROTO, REG_1);
                expr::cmp(b, REG_1, true, &[p.number()]);
                expr::payload(b, TRANSPORT, 2, 2, REG_1);
                expr::cmp(b, REG_1, true, &port.to_be_bytes());
            }
            Match::L4Proto(p) => {
                expr::meta(b, META_L4PROTO, REG_1);
                expr::cmp(b, REG_1, true, &[p.number()]);
            }
            Match::OneIn(n) => {
                expr::numgen_random(b, *n, REG_1);
                expr::cmp(b, REG_1, true, &0u32.to_ne_bytes());
            }
            Match::Local(a) => {
                let flags = match a {
                    Addr::Source => 1,
                    Addr::Destination => 2,
                };
                expr::fib_addrtype(b, flags, REG_1);
                expr::cmp(b, REG_1, true, &RTN_LOCAL.to_ne_bytes());
            }
            Match::CtNew => {
                expr::ct(b, CT_STATE, REG_1);
                expr::bitwise(b, REG_1, &CT_STATE_NEW.to_ne_bytes(), &[0; 4]);
                expr::cmp(b, REG_1, false, &[0; 4]);
            }
            Match::CtNotDnat => {
                expr::ct(b, CT_STATUS, REG_1);
                expr::bitwise(b, REG_1, &CT_STATUS_DST_NAT.to_ne_bytes(), &[0; 4]);
                expr::cmp(b, REG_1, true, &[0; 4]);
            }
            Match::MarkClear(m) => {
                expr::meta(b, META_MARK, REG_1);
                expr::bitwise(b, REG_1, &m.to_ne_bytes(), &[0; 4]);
                expr::cmp(b, REG_1, true, &[0; 4]);
            }
        }
    }
}

impl Action {
    fn encode(&self, b: &mut Batch) {
        match self {
            Action::Jump(c) => expr::immediate_verdict(b, NFT_JUMP, Some(c)),
            Action::Goto(c) => expr::immediate_verdict(b, NFT_GOTO, Some(c)),
            Action::Return => expr::immediate_verdict(b, NFT_RETURN, None),
            Action::Drop => expr::immediate_verdict(b, NF_DROP, None),
            Action::Vmap { daddr, map } => {
                let mut reg = REG32_00;
                if *daddr {
                    expr::payload(b, NETWORK, Addr::Destination.offset(), 4, reg);
                    reg += 1;
                }
                expr::meta(b, META_L4PROTO, reg);
                expr::payload(b, TRANSPORT, 2, 2, reg + 1);
                expr::lookup(b, map, REG32_00, false, true);
            }
            Action::Dnat(ip, port) => {
                expr::immediate(b, REG_1, &ip.octets());
                expr::immediate(b, REG_2, &port.to_be_bytes());
                expr::dnat(b, REG_1, REG_2);
            }
            Action::Masquerade => expr::masq_fully_random(b),
            Action::TcpReset => expr::reject(b, true),
            Action::Reject => expr::reject(b, false),
            Action::MarkOr(m) => {
                expr::meta(b, META_MARK, REG_1);
                expr::bitwise(b, REG_1, &(!m).to_ne_bytes(), &m.to_ne_bytes());
                expr::meta_set_mark(b, REG_1);
            }
            Action::MarkXor(m) => {
                expr::meta(b, META_MARK, REG_1);
                expr::bitwise(b, REG_1, &u32::MAX.to_ne_bytes(), &m.to_ne_bytes());
                expr::meta_set_mark(b, REG_1);
            }
            Action::UpdateSource(set) => {
                expr::payload(b, NETWORK, Addr::Source.offset(), 4, REG_1);
                expr::dynset_update(b, set, REG_1);
            }
        }
    }
}

/// A base chain's hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hook {
    /// `filter` or `nat`.
    pub kind: &'static str,
    /// `prerouting`, `input`, `forward`, `output`, `postrouting`.
    pub hook: &'static str,
    /// Its priority.
    pub priority: i32,
}

impl Hook {
    fn number(&self) -> u32 {
        match self.hook {
            "prerouting" => 0,
            "input" => 1,
            "forward" => 2,
            "output" => 3,
            _ => 4,
        }
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let priority = match (self.hook, self.priority) {
            ("prerouting", -100) => "dstnat".to_string(),
            ("postrouting", 100) => "srcnat".to_string(),
            (_, p) => p.to_string(),
        };
        write!(f, "{{ type {} hook {} priority {priority}; policy accept; }}", self.kind, self.hook)
    }
}

/// A map's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapKey {
    /// `ipv4_addr . inet_proto . inet_service`.
    AddrProtoPort,
    /// `inet_proto . inet_service`.
    ProtoPort,
}

impl MapKey {
    fn type_name(self) -> &'static str {
        match self {
            MapKey::AddrProtoPort => "ipv4_addr . inet_proto . inet_service",
            MapKey::ProtoPort => "inet_proto . inet_service",
        }
    }
}

/// A set's kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetKind {
    /// A verdict map.
    Map(MapKey),
    /// Address ranges (`flags interval`).
    Ranges,
    /// Source addresses that expire after `timeout` seconds (affinity).
    Timeout(u32),
}

impl fmt::Display for SetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetKind::Map(k) => write!(f, "type {} : verdict;", k.type_name()),
            SetKind::Ranges => f.write_str("type ipv4_addr; flags interval;"),
            SetKind::Timeout(t) => write!(f, "type ipv4_addr; flags dynamic,timeout; timeout {t}s;"),
        }
    }
}

/// A map element's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// The ClusterIP (absent for NodePort maps).
    pub ip: Option<Ipv4Addr>,
    /// The protocol.
    pub proto: Protocol,
    /// The port.
    pub port: u16,
}

impl Key {
    fn bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(12);
        if let Some(ip) = self.ip {
            v.extend_from_slice(&ip.octets());
        }
        v.extend_from_slice(&[self.proto.number(), 0, 0, 0]);
        v.extend_from_slice(&self.port.to_be_bytes());
        v.extend_from_slice(&[0, 0]);
        v
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(ip) = self.ip {
            write!(f, "{ip} . ")?;
        }
        write!(f, "{} . {}", self.proto.nft(), self.port)
    }
}

/// One change to the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `add table` (with a comment).
    AddTable(Option<String>),
    /// `delete table`.
    DeleteTable,
    /// `add chain`, a base chain when hooked.
    AddChain(String, Option<Hook>),
    /// `flush chain`.
    FlushChain(String),
    /// `delete chain`.
    DeleteChain(String),
    /// `add rule`.
    AddRule(String, Rule),
    /// `add set` or `add map` (with a comment).
    AddSet(String, SetKind, Option<String>),
    /// `delete set`.
    DeleteSet(String),
    /// `add element` to an interval set: the ranges.
    AddRanges(String, Vec<Ipv4Cidr>),
    /// `add element` to a verdict map: key, comment, `goto` chain.
    AddElement(String, Key, String, String),
    /// `delete element` from a map.
    DeleteElement(String, Key),
}

/// An [`Op`] in a table, as a line of an nft script.
#[derive(Debug)]
pub struct Line<'a>(pub &'a str, pub &'a Op);

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0;
        match self.1 {
            Op::AddTable(None) => write!(f, "add table ip {t}"),
            Op::AddTable(Some(c)) => write!(f, "add table ip {t} {{ comment \"{c}\"; }}"),
            Op::DeleteTable => write!(f, "delete table ip {t}"),
            Op::AddChain(c, None) => write!(f, "add chain ip {t} {c}"),
            Op::AddChain(c, Some(h)) => write!(f, "add chain ip {t} {c} {h}"),
            Op::FlushChain(c) => write!(f, "flush chain ip {t} {c}"),
            Op::DeleteChain(c) => write!(f, "delete chain ip {t} {c}"),
            Op::AddRule(c, r) => write!(f, "add rule ip {t} {c} {r}"),
            Op::AddSet(s, k @ SetKind::Map(_), c) => {
                write!(f, "add map ip {t} {s} {{ {k}")?;
                if let Some(c) = c {
                    write!(f, " comment \"{c}\";")?;
                }
                f.write_str(" }")
            }
            Op::AddSet(s, k, _) => write!(f, "add set ip {t} {s} {{ {k} }}"),
            Op::DeleteSet(s) => write!(f, "delete set ip {t} {s}"),
            Op::AddRanges(s, nets) => {
                let list: Vec<String> = nets.iter().map(ToString::to_string).collect();
                write!(f, "add element ip {t} {s} {{ {} }}", list.join(", "))
            }
            Op::AddElement(m, k, c, chain) => {
                write!(f, "add element ip {t} {m} {{ {k} comment \"{c}\" : goto {chain} }}")
            }
            Op::DeleteElement(m, k) => write!(f, "delete element ip {t} {m} {{ {k} }}"),
        }
    }
}

/// A comment as libnftnl's userdata: tag, length, the text with its NUL.
fn comment(tag: u8, text: &str) -> Vec<u8> {
    let text = &text.as_bytes()[..text.len().min(254)];
    let mut v = vec![tag, u8::try_from(text.len() + 1).unwrap_or(u8::MAX)];
    v.extend_from_slice(text);
    v.push(0);
    v
}

/// Merges CIDRs into sorted, disjoint `[start, end)` ranges (`end` None:
/// up to the last address).
fn ranges(nets: &[Ipv4Cidr]) -> Vec<(u32, Option<u32>)> {
    let mut r: Vec<(u64, u64)> =
        nets.iter().map(|n| (u64::from(u32::from(n.network())), u64::from(u32::from(n.broadcast())) + 1)).collect();
    r.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (start, end) in r {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged.into_iter().map(|(s, e)| (s as u32, u32::try_from(e).ok())).collect()
}

impl Op {
    /// Writes this change to `table` as nf_tables messages.
    pub fn encode(&self, table: &str, b: &mut Batch) {
        match self {
            Op::AddTable(c) => {
                b.begin(Msg::NewTable, F_CREATE);
                b.str_attr(TABLE_NAME, table);
                if let Some(c) = c {
                    b.bytes_attr(TABLE_USERDATA, &comment(UDATA_COMMENT, c));
                }
            }
            Op::DeleteTable => {
                b.begin(Msg::DelTable, 0);
                b.str_attr(TABLE_NAME, table);
            }
            Op::AddChain(name, hook) => {
                b.begin(Msg::NewChain, F_CREATE);
                b.str_attr(CHAIN_TABLE, table);
                b.str_attr(CHAIN_NAME, name);
                if let Some(h) = hook {
                    b.open(CHAIN_HOOK);
                    b.u32_attr(HOOK_HOOKNUM, h.number());
                    b.u32_attr(HOOK_PRIORITY, h.priority as u32);
                    b.close();
                    b.u32_attr(CHAIN_POLICY, NF_ACCEPT);
                    b.str_attr(CHAIN_TYPE, h.kind);
                }
            }
            Op::FlushChain(name) => {
                b.begin(Msg::DelRule, 0);
                b.str_attr(RULE_TABLE, table);
                b.str_attr(RULE_CHAIN, name);
            }
            Op::DeleteChain(name) => {
                b.begin(Msg::DelChain, 0);
                b.str_attr(CHAIN_TABLE, table);
                b.str_attr(CHAIN_NAME, name);
            }
            Op::AddRule(chain, rule) => {
                b.begin(Msg::NewRule, F_CREATE | F_APPEND);
                b.str_attr(RULE_TABLE, table);
                b.str_attr(RULE_CHAIN, chain);
                b.open(RULE_EXPRESSIONS);
                for m in &rule.matches {
                    m.encode(b);
                }
                rule.action.encode(b);
                b.close();
            }
            Op::AddSet(name, kind, c) => {
                let id = b.next_set_id();
                b.begin(Msg::NewSet, F_CREATE);
                b.str_attr(SET_TABLE, table);
                b.str_attr(SET_NAME, name);
                match kind {
                    SetKind::Map(key) => {
                        let (ty, len) = match key {
                            MapKey::AddrProtoPort => {
                                ((TYPE_IPV4_ADDR << 12) | (TYPE_INET_PROTO << 6) | TYPE_INET_SERVICE, 12)
                            }
                            MapKey::ProtoPort => ((TYPE_INET_PROTO << 6) | TYPE_INET_SERVICE, 8),
                        };
                        b.u32_attr(SET_FLAGS, SET_F_MAP);
                        b.u32_attr(SET_KEY_TYPE, ty);
                        b.u32_attr(SET_KEY_LEN, len);
                        b.u32_attr(SET_DATA_TYPE, DATA_TYPE_VERDICT);
                    }
                    SetKind::Ranges => {
                        b.u32_attr(SET_FLAGS, SET_F_INTERVAL);
                        b.u32_attr(SET_KEY_TYPE, TYPE_IPV4_ADDR);
                        b.u32_attr(SET_KEY_LEN, 4);
                    }
                    SetKind::Timeout(t) => {
                        b.u32_attr(SET_FLAGS, SET_F_EVAL | SET_F_TIMEOUT);
                        b.u32_attr(SET_KEY_TYPE, TYPE_IPV4_ADDR);
                        b.u32_attr(SET_KEY_LEN, 4);
                        b.u64_attr(SET_TIMEOUT, u64::from(*t) * 1000);
                    }
                }
                b.u32_attr(SET_ID, id);
                if let Some(c) = c {
                    b.bytes_attr(SET_USERDATA, &comment(UDATA_SET_COMMENT, c));
                }
            }
            Op::DeleteSet(name) => {
                b.begin(Msg::DelSet, 0);
                b.str_attr(SET_TABLE, table);
                b.str_attr(SET_NAME, name);
            }
            Op::AddRanges(set, nets) => {
                b.begin(Msg::NewSetElem, F_CREATE);
                b.str_attr(ELEM_LIST_TABLE, table);
                b.str_attr(ELEM_LIST_SET, set);
                b.open(ELEM_LIST_ELEMENTS);
                for (start, end) in ranges(nets) {
                    b.open(LIST_ELEM);
                    expr::data(b, ELEM_KEY, &start.to_be_bytes());
                    b.close();
                    if let Some(end) = end {
                        b.open(LIST_ELEM);
                        expr::data(b, ELEM_KEY, &end.to_be_bytes());
                        b.u32_attr(ELEM_FLAGS, ELEM_F_INTERVAL_END);
                        b.close();
                    }
                }
                b.close();
            }
            Op::AddElement(map, key, c, chain) => {
                b.begin(Msg::NewSetElem, F_CREATE);
                b.str_attr(ELEM_LIST_TABLE, table);
                b.str_attr(ELEM_LIST_SET, map);
                b.open(ELEM_LIST_ELEMENTS);
                b.open(LIST_ELEM);
                expr::data(b, ELEM_KEY, &key.bytes());
                expr::verdict(b, ELEM_DATA, NFT_GOTO, Some(chain));
                b.bytes_attr(ELEM_USERDATA, &comment(UDATA_COMMENT, c));
                b.close();
                b.close();
            }
            Op::DeleteElement(map, key) => {
                b.begin(Msg::DelSetElem, 0);
                b.str_attr(ELEM_LIST_TABLE, table);
                b.str_attr(ELEM_LIST_SET, map);
                b.open(ELEM_LIST_ELEMENTS);
                b.open(LIST_ELEM);
                expr::data(b, ELEM_KEY, &key.bytes());
                b.close();
                b.close();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_print_as_nft_writes_them() {
        let r = Rule::when(
            [
                Match::Ip(Addr::Destination, Ipv4Addr::new(10, 96, 0, 10)),
                Match::Dport(Protocol::Tcp, 80),
                Match::InSet(Addr::Source, "cluster-cidrs".into(), true),
            ],
            Action::Jump("mark-for-masquerade".into()),
        );
        assert_eq!(
            r.to_string(),
            "ip daddr 10.96.0.10 tcp dport 80 ip saddr != @cluster-cidrs jump mark-for-masquerade"
        );
        let k = Key { ip: None, proto: Protocol::Udp, port: 53 };
        assert_eq!(k.to_string(), "udp . 53");
        assert_eq!(k.bytes(), [17, 0, 0, 0, 0, 53, 0, 0]);
    }

    #[test]
    fn ranges_merge_and_end_after_the_last_address() {
        let nets: Vec<Ipv4Cidr> =
            ["10.1.0.0/16", "10.1.2.0/24", "10.2.0.0/16", "0.0.0.0/0"].iter().map(|s| s.parse().unwrap()).collect();
        assert_eq!(ranges(&nets[..3]), [(0x0a01_0000, Some(0x0a03_0000))]);
        assert_eq!(ranges(&nets[3..]), [(0, None)]);
    }
}
