//! CIDR blocks (`10.1.0.0/16`, `fd00:10::/48`): parsing with errors that
//! say what is wrong, containment, and walking a block's addresses and
//! subnets.
//!
//! [`Cidr`] is either family (node IPAM, validation); [`Ipv4Cidr`] is for
//! what is IPv4 only (the pod network, service IPs). Both keep the network
//! normalised: `10.1.1.7/24` parses to `10.1.1.0/24`, as Go's
//! `net.ParseCIDR` does.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Why a text is not a CIDR block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// There is no `/` between an address and a prefix length.
    #[error("\"{text}\" is not a CIDR block (expected {expected})")]
    Malformed {
        /// The text.
        text: String,
        /// What a block looks like.
        expected: &'static str,
    },
    /// The part before `/` is not an address (of the family wanted).
    #[error("\"{text}\": \"{address}\" is not an {family} address")]
    Address {
        /// The text.
        text: String,
        /// The part before `/`.
        address: String,
        /// `IP` or `IPv4`.
        family: &'static str,
    },
    /// The part after `/` is not a prefix length of the address's family.
    #[error("\"{text}\": the prefix length \"{prefix}\" is not a number from 0 to {max}")]
    Prefix {
        /// The text.
        text: String,
        /// The part after `/`.
        prefix: String,
        /// The longest prefix of the address's family (32 or 128).
        max: u8,
    },
}

/// Splits `text` at `/` and reads the prefix length (digits only, at most `max`).
fn split<'a>(text: &'a str, expected: &'static str) -> Result<(&'a str, &'a str), CidrError> {
    text.split_once('/').ok_or_else(|| CidrError::Malformed { text: text.to_string(), expected })
}

fn prefix_length(text: &str, prefix: &str, max: u8) -> Result<u8, CidrError> {
    let digits = !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| prefix.parse::<u8>().ok()).flatten().filter(|p| *p <= max).ok_or_else(|| CidrError::Prefix {
        text: text.to_string(),
        prefix: prefix.to_string(),
        max,
    })
}

/// The low `bits - prefix` bits of a `bits`-wide address, all ones.
fn host_mask(bits: u8, prefix: u8) -> u128 {
    let host = u32::from(bits - prefix);
    if host == 128 { u128::MAX } else { (1u128 << host) - 1 }
}

/// A CIDR block of either family, network normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    /// The network address as a number, host bits cleared.
    addr: u128,
    /// The family's address width: 32 or 128.
    bits: u8,
    prefix: u8,
}

impl Cidr {
    /// The block `addr/prefix` (host bits of `addr` are cleared); None if
    /// `prefix` is longer than the family's addresses.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Cidr> {
        let (addr, bits) = match addr {
            IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
            IpAddr::V6(a) => (u128::from(a), 128),
        };
        (prefix <= bits).then(|| Cidr { addr: addr & !host_mask(bits, prefix), bits, prefix })
    }

    fn ip(&self, n: u128) -> IpAddr {
        if self.bits == 32 {
            IpAddr::V4(Ipv4Addr::from(u32::try_from(n).expect("an IPv4 block holds 32-bit addresses")))
        } else {
            IpAddr::V6(Ipv6Addr::from(n))
        }
    }

    fn number(&self, ip: IpAddr) -> Option<u128> {
        match ip {
            IpAddr::V4(a) if self.bits == 32 => Some(u128::from(u32::from(a))),
            IpAddr::V6(a) if self.bits == 128 => Some(u128::from(a)),
            _ => None,
        }
    }

    fn last_number(&self) -> u128 {
        self.addr | host_mask(self.bits, self.prefix)
    }

    /// The network address (`10.1.0.0` of `10.1.0.0/16`), the block's first.
    pub fn network(&self) -> IpAddr {
        self.ip(self.addr)
    }

    /// The block's last address (`10.1.255.255` of `10.1.0.0/16`).
    pub fn last(&self) -> IpAddr {
        self.ip(self.last_number())
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The longest prefix of the family: 32 or 128.
    pub fn max_prefix(&self) -> u8 {
        self.bits
    }

    /// Whether this is an IPv4 block.
    pub fn is_ipv4(&self) -> bool {
        self.bits == 32
    }

    /// Whether `ip` lies inside the block (never for the other family).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.offset_of(ip).is_some()
    }

    /// Whether `other` lies entirely inside the block.
    pub fn contains_cidr(&self, other: &Cidr) -> bool {
        other.bits == self.bits && other.prefix >= self.prefix && self.contains(other.network())
    }

    /// Whether the two blocks share any address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.contains_cidr(other) || other.contains_cidr(self)
    }

    /// The addresses both blocks hold: the smaller block, if they overlap.
    pub fn intersection(&self, other: &Cidr) -> Option<Cidr> {
        if self.contains_cidr(other) {
            Some(*other)
        } else if other.contains_cidr(self) {
            Some(*self)
        } else {
            None
        }
    }

    /// How far `ip` lies from the network address; None if outside.
    pub fn offset_of(&self, ip: IpAddr) -> Option<u128> {
        let n = self.number(ip)?;
        (n & !host_mask(self.bits, self.prefix) == self.addr).then(|| n - self.addr)
    }

    /// The address `offset` past the network address; None past the block's end.
    pub fn nth(&self, offset: u128) -> Option<IpAddr> {
        (offset <= host_mask(self.bits, self.prefix)).then(|| self.ip(self.addr + offset))
    }

    /// The `index`-th subnet of prefix length `prefix` (`10.1.2.0/24` is
    /// subnet 2 of `10.1.0.0/16`); None if `prefix` is shorter than the
    /// block's or longer than the family's, or `index` is past the last.
    pub fn subnet(&self, prefix: u8, index: u128) -> Option<Cidr> {
        if prefix < self.prefix || prefix > self.bits {
            return None;
        }
        let count_bits = u32::from(prefix - self.prefix);
        if count_bits < 128 && index >> count_bits != 0 {
            return None;
        }
        let offset = index.checked_shl(u32::from(self.bits - prefix)).unwrap_or(0);
        Some(Cidr { addr: self.addr + offset, bits: self.bits, prefix })
    }

    /// The subnets of prefix length `prefix`, in order (none if `prefix` is
    /// shorter than the block's or longer than the family's).
    pub fn subnets(&self, prefix: u8) -> impl Iterator<Item = Cidr> + use<> {
        let block = *self;
        (0u128..).map_while(move |i| block.subnet(prefix, i))
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// Parses `10.1.0.0/16` or `fd00:10::/48`.
    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let (address, prefix) = split(s, "address/length, e.g. 10.1.0.0/16 or fd00:10::/48")?;
        let ip: IpAddr = address.parse().map_err(|_| CidrError::Address {
            text: s.to_string(),
            address: address.to_string(),
            family: "IP",
        })?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = prefix_length(s, prefix, max)?;
        Ok(Cidr::new(ip, prefix).expect("prefix checked above"))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix)
    }
}

/// An IPv4 CIDR block, network normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Cidr {
    network: u32,
    prefix: u8,
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) }
}

impl Ipv4Cidr {
    /// The network `addr/prefix` (host bits of `addr` are cleared); None if
    /// `prefix` is over 32.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Option<Self> {
        (prefix <= 32).then(|| Ipv4Cidr { network: u32::from(addr) & mask(prefix), prefix })
    }

    /// The network address (`10.1.1.0` of `10.1.1.0/24`).
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network)
    }

    /// The block's last address (`10.1.1.255` of `10.1.1.0/24`).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network | !mask(self.prefix))
    }

    /// The prefix length (`24` of `10.1.1.0/24`).
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// How many addresses the block holds (`256` for a /24).
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// Whether `ip` lies inside the block.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == self.network
    }

    /// Whether `other` lies entirely inside the block.
    pub fn contains_cidr(&self, other: &Ipv4Cidr) -> bool {
        other.prefix >= self.prefix && self.contains(other.network())
    }

    /// Whether the two blocks share any address.
    pub fn overlaps(&self, other: &Ipv4Cidr) -> bool {
        self.contains_cidr(other) || other.contains_cidr(self)
    }

    /// The address `offset` past the network address; None past the block's end.
    pub fn nth(&self, offset: u32) -> Option<Ipv4Addr> {
        (u64::from(offset) < self.size()).then(|| Ipv4Addr::from(self.network + offset))
    }

    /// The first host address, a bridge's gateway (`10.1.1.1` of
    /// `10.1.1.0/24`); None for a /31 or /32, which have no room for a
    /// gateway and a pod.
    pub fn first_host(&self) -> Option<Ipv4Addr> {
        (self.prefix <= 30).then(|| Ipv4Addr::from(self.network + 1))
    }

    /// The host addresses in order: all but the network and broadcast
    /// addresses (none for a /31 or /32).
    pub fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> + use<> {
        let (first, last) =
            if self.prefix <= 30 { (self.network + 1, u32::from(self.broadcast()) - 1) } else { (1, 0) };
        (first..=last).map(Ipv4Addr::from)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = CidrError;

    /// Parses `a.b.c.d/n`.
    fn from_str(s: &str) -> Result<Self, CidrError> {
        let (address, prefix) = split(s, "a.b.c.d/n, e.g. 10.1.0.0/16")?;
        let addr: Ipv4Addr = address.parse().map_err(|_| CidrError::Address {
            text: s.to_string(),
            address: address.to_string(),
            family: "IPv4",
        })?;
        let prefix = prefix_length(s, prefix, 32)?;
        Ok(Ipv4Cidr::new(addr, prefix).expect("prefix checked above"))
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix)
    }
}

impl From<Ipv4Cidr> for Cidr {
    fn from(c: Ipv4Cidr) -> Cidr {
        Cidr { addr: u128::from(c.network), bits: 32, prefix: c.prefix }
    }
}

impl TryFrom<Cidr> for Ipv4Cidr {
    type Error = Cidr;

    /// The IPv4 block, or the IPv6 one back.
    fn try_from(c: Cidr) -> Result<Ipv4Cidr, Cidr> {
        match c.network() {
            IpAddr::V4(a) => Ok(Ipv4Cidr { network: u32::from(a), prefix: c.prefix }),
            IpAddr::V6(_) => Err(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> Ipv4Cidr {
        s.parse().unwrap()
    }

    fn any(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_normalises_host_bits() {
        assert_eq!(v4("10.1.1.7/24").to_string(), "10.1.1.0/24");
        assert_eq!(v4("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert_eq!(v4("10.250.3.4/32").to_string(), "10.250.3.4/32");
        assert_eq!(any("10.1.1.7/24").to_string(), "10.1.1.0/24");
        assert_eq!(any("fd00:10::5/48").to_string(), "fd00:10::/48");
        assert_eq!(any("::/0").to_string(), "::/0");
    }

    #[test]
    fn rejects_malformed_blocks_saying_what_is_wrong() {
        let err = |s: &str| s.parse::<Ipv4Cidr>().unwrap_err().to_string();
        assert_eq!(err("10.1.0.0"), "\"10.1.0.0\" is not a CIDR block (expected a.b.c.d/n, e.g. 10.1.0.0/16)");
        assert_eq!(err("10.1.0/16"), "\"10.1.0/16\": \"10.1.0\" is not an IPv4 address");
        assert_eq!(err("10.1.0.0/33"), "\"10.1.0.0/33\": the prefix length \"33\" is not a number from 0 to 32");
        assert_eq!(err("fd00::/64"), "\"fd00::/64\": \"fd00::\" is not an IPv4 address");
        for bad in ["10.1.0.0/", "10.1.0.0/+8", "10.1.0.0/ 8", "10.1.0.0/300"] {
            assert!(matches!(bad.parse::<Ipv4Cidr>(), Err(CidrError::Prefix { .. })), "{bad}");
        }
        let err = |s: &str| s.parse::<Cidr>().unwrap_err().to_string();
        assert_eq!(err("fd00::/129"), "\"fd00::/129\": the prefix length \"129\" is not a number from 0 to 128");
        assert_eq!(err("nonsense/16"), "\"nonsense/16\": \"nonsense\" is not an IP address");
        assert!(err("10.1.0.0").contains("expected address/length"));
    }

    #[test]
    fn containment_and_overlap() {
        let cluster = v4("10.1.0.0/16");
        assert!(cluster.contains_cidr(&v4("10.1.2.0/24")));
        assert!(!cluster.contains_cidr(&v4("10.2.2.0/24")));
        assert!(!v4("10.1.2.0/24").contains_cidr(&cluster));
        assert!(v4("10.1.2.0/24").overlaps(&cluster));
        assert!(!v4("10.1.2.0/24").overlaps(&v4("10.1.3.0/24")));
        assert!(cluster.contains("10.1.255.255".parse().unwrap()));
        assert!(!cluster.contains("10.0.255.255".parse().unwrap()));
        let cluster = any("10.1.0.0/16");
        assert!(cluster.contains_cidr(&any("10.1.4.0/23")));
        assert!(!cluster.overlaps(&any("fd00::/8")), "families never overlap");
        assert!(!cluster.contains("::1".parse().unwrap()));
        assert_eq!(cluster.intersection(&any("10.0.0.0/8")), Some(cluster));
        assert_eq!(cluster.intersection(&any("10.2.0.0/16")), None);
    }

    #[test]
    fn walks_addresses_and_subnets() {
        let c = v4("10.1.1.0/24");
        assert_eq!(c.first_host(), Some(Ipv4Addr::new(10, 1, 1, 1)));
        assert_eq!(v4("10.1.1.4/31").first_host(), None);
        assert_eq!((c.size(), c.broadcast()), (256, Ipv4Addr::new(10, 1, 1, 255)));
        assert_eq!(c.nth(255), Some(Ipv4Addr::new(10, 1, 1, 255)));
        assert_eq!(c.nth(256), None);
        let hosts: Vec<Ipv4Addr> = c.hosts().collect();
        assert_eq!(
            (hosts.len(), hosts[0], hosts[253]),
            (254, Ipv4Addr::new(10, 1, 1, 1), Ipv4Addr::new(10, 1, 1, 254))
        );
        assert_eq!(v4("10.1.1.4/31").hosts().count(), 0);
        assert_eq!(v4("255.255.255.255/32").hosts().count(), 0);
        assert_eq!(v4("0.0.0.0/0").size(), 1 << 32);

        let cluster = any("10.1.0.0/16");
        let subnets: Vec<String> = cluster.subnets(24).take(3).map(|s| s.to_string()).collect();
        assert_eq!(subnets, ["10.1.0.0/24", "10.1.1.0/24", "10.1.2.0/24"]);
        assert_eq!(cluster.subnets(24).count(), 256);
        assert_eq!(cluster.subnet(24, 256), None);
        assert_eq!(cluster.subnet(8, 0), None);
        assert_eq!(cluster.subnet(16, 0), Some(cluster));
        assert_eq!(any("fd00:10::/48").subnet(64, 1).map(|s| s.to_string()).as_deref(), Some("fd00:10:0:1::/64"));
        assert_eq!(any("::/0").subnet(1, 1).map(|s| s.to_string()).as_deref(), Some("8000::/1"));
        assert_eq!(cluster.offset_of("10.1.2.3".parse().unwrap()), Some(515));
        assert_eq!(cluster.nth(515), "10.1.2.3".parse().ok());
        assert_eq!(cluster.last().to_string(), "10.1.255.255");
    }

    #[test]
    fn converts_between_the_two() {
        let c: Cidr = v4("10.1.0.0/16").into();
        assert_eq!(c, any("10.1.0.0/16"));
        assert_eq!(Ipv4Cidr::try_from(c), Ok(v4("10.1.0.0/16")));
        assert!(Ipv4Cidr::try_from(any("fd00::/8")).is_err());
    }
}
