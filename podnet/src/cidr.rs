//! IPv4 CIDR blocks: parsing, containment, the gateway address.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 network in CIDR notation, normalised (host bits cleared):
/// `10.1.1.7/24` parses to `10.1.1.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Cidr {
    network: u32,
    prefix: u8,
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

    /// The prefix length (`24` of `10.1.1.0/24`).
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` lies inside this network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == self.network
    }

    /// Whether `other` lies entirely inside this network.
    pub fn contains_cidr(&self, other: &Ipv4Cidr) -> bool {
        other.prefix >= self.prefix && self.contains(other.network())
    }

    /// Whether the two networks share any address.
    pub fn overlaps(&self, other: &Ipv4Cidr) -> bool {
        self.contains_cidr(other) || other.contains_cidr(self)
    }

    /// The first host address, used as the bridge's gateway (`10.1.1.1` of
    /// `10.1.1.0/24`); None for a /31 or /32, which have no room for a
    /// gateway and a pod.
    pub fn first_host(&self) -> Option<Ipv4Addr> {
        (self.prefix <= 30).then(|| Ipv4Addr::from(self.network + 1))
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = String;

    /// Parses `a.b.c.d/n`; the message says what is wrong.
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("\"{s}\" is not a CIDR block (expected a.b.c.d/n, e.g. 10.1.0.0/16)"))?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| format!("\"{s}\": \"{addr}\" is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("\"{s}\": the prefix length \"{prefix}\" is not a number from 0 to 32"))?;
        Ok(Ipv4Cidr::new(addr, prefix).expect("prefix checked above"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Ipv4Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_normalises_host_bits() {
        assert_eq!(cidr("10.1.1.7/24").to_string(), "10.1.1.0/24");
        assert_eq!(cidr("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert_eq!(cidr("10.250.3.4/32").to_string(), "10.250.3.4/32");
    }

    #[test]
    fn rejects_malformed_blocks_with_a_reason() {
        assert!("10.1.0.0".parse::<Ipv4Cidr>().unwrap_err().contains("expected a.b.c.d/n"));
        assert!("10.1.0/16".parse::<Ipv4Cidr>().unwrap_err().contains("not an IPv4 address"));
        assert!("10.1.0.0/33".parse::<Ipv4Cidr>().unwrap_err().contains("0 to 32"));
        assert!("fd00::/64".parse::<Ipv4Cidr>().is_err());
    }

    #[test]
    fn containment_and_overlap() {
        let cluster = cidr("10.1.0.0/16");
        assert!(cluster.contains_cidr(&cidr("10.1.2.0/24")));
        assert!(!cluster.contains_cidr(&cidr("10.2.2.0/24")));
        assert!(!cidr("10.1.2.0/24").contains_cidr(&cluster));
        assert!(cidr("10.1.2.0/24").overlaps(&cluster));
        assert!(!cidr("10.1.2.0/24").overlaps(&cidr("10.1.3.0/24")));
        assert!(cluster.contains("10.1.255.255".parse().unwrap()));
        assert!(!cluster.contains("10.0.255.255".parse().unwrap()));
    }

    #[test]
    fn first_host_is_the_gateway() {
        assert_eq!(cidr("10.1.1.0/24").first_host(), Some(Ipv4Addr::new(10, 1, 1, 1)));
        assert_eq!(cidr("10.1.1.4/30").first_host(), Some(Ipv4Addr::new(10, 1, 1, 5)));
        assert_eq!(cidr("10.1.1.4/31").first_host(), None);
    }
}
