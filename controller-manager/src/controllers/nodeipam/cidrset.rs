//! The cluster CIDR cut into equal node subnets, and which of them are in
//! use (like Kubernetes' `pkg/controller/nodeipam/ipam/cidrset`).
//!
//! IPv4 or IPv6; at most 2^16 subnets (the node mask may be at most 16 bits
//! longer than the cluster's). Allocation is next-fit: it continues after the
//! last subnet handed out and wraps around, so a freed subnet is reused only
//! once the others are taken, which keeps a deleted node's routes and
//! containers from meeting a new node's pods on the same subnet for as long
//! as possible.

use rkube_api::cidr::Cidr;

/// The most subnet bits: 2^16 subnets, as Kubernetes allows.
const MAX_SUBNET_BITS: u8 = 16;

/// Why a subnet could not be occupied or released.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// The text is not a CIDR block.
    #[error(transparent)]
    Malformed(#[from] rkube_api::cidr::CidrError),
    /// The block is of the other IP family, or outside the cluster CIDR.
    #[error("{cidr} is not inside the cluster CIDR {cluster}")]
    Outside {
        /// The block.
        cidr: String,
        /// The cluster CIDR.
        cluster: String,
    },
}

/// The cluster CIDR's node subnets and their use.
#[derive(Debug, Clone)]
pub struct CidrSet {
    cluster: Cidr,
    mask: u8,
    used: Vec<bool>,
    in_use: usize,
    /// Where the next allocation starts looking.
    next: usize,
}

impl CidrSet {
    /// Cuts `cluster` into subnets of prefix length `mask`. The message of
    /// an error names the flag to fix.
    pub fn new(cluster: &str, mask: u8) -> Result<CidrSet, String> {
        let cluster: Cidr = cluster.parse().map_err(|e| format!("--cluster-cidr: {e}"))?;
        let prefix = cluster.prefix();
        if mask < prefix || mask > cluster.max_prefix() {
            return Err(format!(
                "--node-cidr-mask-size={mask} must be between the cluster CIDR's prefix length ({prefix}) and {}",
                cluster.max_prefix()
            ));
        }
        if mask - prefix > MAX_SUBNET_BITS {
            return Err(format!(
                "--node-cidr-mask-size={mask} would cut --cluster-cidr={cluster} into 2^{} subnets; at most 2^{MAX_SUBNET_BITS} \
                 are supported (use a mask of at most {})",
                mask - prefix,
                prefix + MAX_SUBNET_BITS
            ));
        }
        let count = 1usize << (mask - prefix);
        Ok(CidrSet { cluster, mask, used: vec![false; count], in_use: 0, next: 0 })
    }

    /// The cluster CIDR.
    pub fn cluster(&self) -> Cidr {
        self.cluster
    }

    /// The node subnets' prefix length.
    pub fn mask(&self) -> u8 {
        self.mask
    }

    /// How many subnets there are.
    pub fn capacity(&self) -> usize {
        self.used.len()
    }

    /// How many subnets are in use.
    pub fn in_use(&self) -> usize {
        self.in_use
    }

    fn subnet(&self, index: usize) -> Cidr {
        self.cluster.subnet(self.mask, index as u128).expect("an index below capacity names a subnet")
    }

    /// Takes the next free subnet, or None when all are in use.
    pub fn allocate_next(&mut self) -> Option<Cidr> {
        let n = self.used.len();
        let index = (0..n).map(|i| (self.next + i) % n).find(|&i| !self.used[i])?;
        self.used[index] = true;
        self.in_use += 1;
        self.next = (index + 1) % n;
        Some(self.subnet(index))
    }

    /// The indices of the subnets overlapping `cidr`.
    fn indices(&self, cidr: &str) -> Result<std::ops::RangeInclusive<usize>, CidrError> {
        let block: Cidr = cidr.parse()?;
        let Some(part) = self.cluster.intersection(&block) else {
            return Err(CidrError::Outside { cidr: block.to_string(), cluster: self.cluster.to_string() });
        };
        let shift = self.cluster.max_prefix() - self.mask;
        let index = |addr| {
            let offset = self.cluster.offset_of(addr).expect("the intersection lies inside the cluster CIDR");
            usize::try_from(offset >> shift).expect("at most 2^16 subnets")
        };
        Ok(index(part.network())..=index(part.last()))
    }

    /// Marks every subnet overlapping `cidr` as used (a node's existing
    /// podCIDR). Occupying a used subnet again is fine.
    pub fn occupy(&mut self, cidr: &str) -> Result<(), CidrError> {
        for i in self.indices(cidr)? {
            if !self.used[i] {
                self.used[i] = true;
                self.in_use += 1;
            }
        }
        Ok(())
    }

    /// Marks every subnet overlapping `cidr` as free.
    pub fn release(&mut self, cidr: &str) -> Result<(), CidrError> {
        for i in self.indices(cidr)? {
            if self.used[i] {
                self.used[i] = false;
                self.in_use -= 1;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_the_cluster_cidr_into_node_subnets_in_order() {
        let mut set = CidrSet::new("10.1.0.0/16", 24).unwrap();
        assert_eq!(set.capacity(), 256);
        let first: Vec<String> = (0..3).map(|_| set.allocate_next().unwrap().to_string()).collect();
        assert_eq!(first, ["10.1.0.0/24", "10.1.1.0/24", "10.1.2.0/24"]);
        assert_eq!(set.in_use(), 3);
    }

    #[test]
    fn never_hands_out_an_occupied_subnet_and_reports_exhaustion() {
        let mut set = CidrSet::new("10.1.0.0/22", 24).unwrap();
        set.occupy("10.1.1.0/24").unwrap();
        set.occupy("10.1.1.0/24").unwrap();
        assert_eq!(set.in_use(), 1, "occupying twice counts once");
        let got: Vec<String> = std::iter::from_fn(|| set.allocate_next()).map(|c| c.to_string()).collect();
        assert_eq!(got, ["10.1.0.0/24", "10.1.2.0/24", "10.1.3.0/24"]);
        assert_eq!(set.allocate_next(), None);
        assert_eq!(set.in_use(), 4);
    }

    #[test]
    fn released_subnets_are_reused_after_the_others() {
        let mut set = CidrSet::new("10.1.0.0/22", 24).unwrap();
        let a = set.allocate_next().unwrap().to_string();
        set.allocate_next().unwrap();
        set.release(&a).unwrap();
        assert_eq!(set.allocate_next().unwrap().to_string(), "10.1.2.0/24", "next-fit moves on first");
        assert_eq!(set.allocate_next().unwrap().to_string(), "10.1.3.0/24");
        assert_eq!(set.allocate_next().unwrap().to_string(), a, "then wraps around to the freed one");
        assert_eq!(set.allocate_next(), None);
    }

    #[test]
    fn occupy_covers_every_overlapping_subnet_and_rejects_outsiders() {
        let mut set = CidrSet::new("10.1.0.0/16", 24).unwrap();
        set.occupy("10.1.4.0/23").unwrap();
        set.occupy("10.1.9.128/25").unwrap();
        assert_eq!(set.in_use(), 3);
        let err = set.occupy("10.2.0.0/24").unwrap_err();
        assert_eq!(err.to_string(), "10.2.0.0/24 is not inside the cluster CIDR 10.1.0.0/16");
        assert!(matches!(set.occupy("fd00::/64"), Err(CidrError::Outside { .. })));
        assert!(matches!(set.occupy("nonsense"), Err(CidrError::Malformed(_))));
        set.release("10.1.4.0/23").unwrap();
        assert_eq!(set.in_use(), 1);
    }

    #[test]
    fn ipv6_clusters_work_too() {
        let mut set = CidrSet::new("fd00:10::/48", 64).unwrap();
        assert_eq!(set.capacity(), 65536);
        assert_eq!(set.allocate_next().unwrap().to_string(), "fd00:10::/64");
        assert_eq!(set.allocate_next().unwrap().to_string(), "fd00:10:0:1::/64");
    }

    #[test]
    fn rejects_bad_flags_naming_them() {
        assert!(CidrSet::new("10.1.0.0", 24).unwrap_err().starts_with("--cluster-cidr: "));
        assert!(CidrSet::new("10.1.0.0/16", 8).unwrap_err().starts_with("--node-cidr-mask-size=8 must be between"));
        assert!(CidrSet::new("10.1.0.0/16", 33).is_err());
        assert!(CidrSet::new("10.0.0.0/8", 25).unwrap_err().contains("at most 2^16"));
        assert_eq!(CidrSet::new("10.1.0.5/16", 24).unwrap().cluster().to_string(), "10.1.0.0/16");
    }
}
