//! host-gw routing (like flannel's host-gw backend): a route to every other
//! node's pod CIDR via that node's InternalIP, for nodes on other hosts.
//!
//! Routes are tagged with the routing protocol number [`ROUTE_PROTOCOL`], so
//! rkube finds its own routes (`ip -4 route show proto 157`) and removes the
//! ones whose node went away, without touching anyone else's. Only routes
//! inside the cluster CIDR are ever added or removed.

use crate::Peer;
use crate::command::HostCommand;
use rkube_api::cidr::{CidrError, Ipv4Cidr};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

/// The routing protocol number on rkube's routes (`proto 157` in `ip route`);
/// not one of iproute2's reserved numbers (`/etc/iproute2/rt_protos`).
pub const ROUTE_PROTOCOL: u8 = 157;

/// A route to a pod CIDR through a node's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    /// The other node's pod CIDR.
    pub dst: Ipv4Cidr,
    /// The other node's InternalIP.
    pub via: Ipv4Addr,
}

impl Route {
    /// `ip -4 route replace <dst> via <via> proto 157`.
    pub fn replace(&self) -> HostCommand {
        let (dst, via, proto) = (self.dst.to_string(), self.via.to_string(), ROUTE_PROTOCOL.to_string());
        HostCommand::new("ip", ["-4", "route", "replace", &dst, "via", &via, "proto", &proto])
    }

    /// `ip -4 route del <dst> via <via> proto 157`.
    pub fn delete(&self) -> HostCommand {
        let (dst, via, proto) = (self.dst.to_string(), self.via.to_string(), ROUTE_PROTOCOL.to_string());
        HostCommand::new("ip", ["-4", "route", "del", &dst, "via", &via, "proto", &proto])
    }
}

/// `ip -4 route show proto 157`: rkube's routes on this host.
pub fn list_routes() -> HostCommand {
    HostCommand::new("ip", ["-4", "route", "show", "proto", &ROUTE_PROTOCOL.to_string()])
}

/// `ip -o addr show`: this host's addresses.
pub fn list_addresses() -> HostCommand {
    HostCommand::new("ip", ["-o", "addr", "show"])
}

/// Parses `ip -4 route show proto 157` output; lines that are not
/// `<cidr> via <ip> ...` are ignored.
pub fn parse_routes(text: &str) -> Vec<Route> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let dst = words.next()?;
            let dst = if dst.contains('/') { dst.parse().ok()? } else { Ipv4Cidr::new(dst.parse().ok()?, 32)? };
            let mut words = words.skip_while(|w| *w != "via");
            words.next()?;
            Some(Route { dst, via: words.next()?.parse().ok()? })
        })
        .collect()
}

/// Parses `ip -o addr show` output into this host's addresses.
pub fn parse_addresses(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace().skip_while(|w| *w != "inet" && *w != "inet6");
            words.next()?;
            words.next()?.split('/').next()?.parse().ok()
        })
        .collect()
}

/// Why a peer gets no route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// The peer is this node.
    Own,
    /// The peer's InternalIP is an address of this host: its pods are on a
    /// local bridge, which the kernel already routes to.
    Local,
    /// The peer's pod CIDR is not an IPv4 CIDR.
    BadCidr(CidrError),
    /// The peer's pod CIDR is not inside the cluster CIDR.
    OutsideCluster,
    /// The peer's pod CIDR overlaps this node's.
    OverlapsOwn,
    /// The peer's InternalIP is IPv6 while pod CIDRs are IPv4.
    FamilyMismatch,
    /// Another peer (named) claims the same pod CIDR.
    Duplicate(String),
}

/// The routes this node needs, and why each other peer got none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutePlan {
    /// The routes that should exist, by destination.
    pub desired: Vec<Route>,
    /// Peers that get no route, with the reason.
    pub skipped: Vec<(String, Skip)>,
    /// The commands that turn the existing routes into the desired ones.
    pub commands: Vec<HostCommand>,
}

/// Plans host-gw routing for node `node` (pod CIDR `own`) in `cluster`:
/// one route per peer on another host, and the removal of rkube routes
/// inside the cluster CIDR that no peer accounts for. `local` are this host's
/// addresses, `existing` rkube's routes now. Routes that already exist as
/// wanted produce no command.
pub fn plan_routes(
    node: &str,
    own: &Ipv4Cidr,
    cluster: &Ipv4Cidr,
    peers: &[Peer],
    local: &[IpAddr],
    existing: &[Route],
) -> RoutePlan {
    let mut plan = RoutePlan::default();
    let mut by_dst: BTreeMap<Ipv4Cidr, (String, Ipv4Addr)> = BTreeMap::new();
    for peer in peers {
        let skip = |plan: &mut RoutePlan, why| plan.skipped.push((peer.node.clone(), why));
        if peer.node == node {
            skip(&mut plan, Skip::Own);
            continue;
        }
        let dst: Ipv4Cidr = match peer.pod_cidr.parse() {
            Ok(d) => d,
            Err(e) => {
                skip(&mut plan, Skip::BadCidr(e));
                continue;
            }
        };
        if local.contains(&peer.node_ip) {
            skip(&mut plan, Skip::Local);
            continue;
        }
        let IpAddr::V4(via) = peer.node_ip else {
            skip(&mut plan, Skip::FamilyMismatch);
            continue;
        };
        if !cluster.contains_cidr(&dst) {
            skip(&mut plan, Skip::OutsideCluster);
        } else if dst.overlaps(own) {
            skip(&mut plan, Skip::OverlapsOwn);
        } else if let Some((first, _)) = by_dst.iter().find(|(d, _)| d.overlaps(&dst)).map(|(_, v)| v) {
            skip(&mut plan, Skip::Duplicate(first.clone()));
        } else {
            by_dst.insert(dst, (peer.node.clone(), via));
        }
    }
    plan.desired = by_dst.into_iter().map(|(dst, (_, via))| Route { dst, via }).collect();
    for route in existing.iter().filter(|r| cluster.contains_cidr(&r.dst)) {
        if !plan.desired.iter().any(|d| d.dst == route.dst) {
            plan.commands.push(route.delete());
        }
    }
    for route in &plan.desired {
        if !existing.contains(route) {
            plan.commands.push(route.replace());
        }
    }
    plan
}

/// The commands that remove every rkube route inside `cluster` (when the
/// last node of that cluster on this host tears down its network).
pub fn removal_commands(cluster: &Ipv4Cidr, existing: &[Route]) -> Vec<HostCommand> {
    existing.iter().filter(|r| cluster.contains_cidr(&r.dst)).map(Route::delete).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(node: &str, cidr: &str, ip: &str) -> Peer {
        Peer { node: node.into(), pod_cidr: cidr.into(), node_ip: ip.parse().unwrap() }
    }

    fn cidr(s: &str) -> Ipv4Cidr {
        s.parse().unwrap()
    }

    fn commands(plan: &RoutePlan) -> Vec<String> {
        plan.commands.iter().map(ToString::to_string).collect()
    }

    fn local() -> Vec<IpAddr> {
        vec!["127.0.0.1".parse().unwrap(), "192.0.2.2".parse().unwrap()]
    }

    #[test]
    fn routes_other_hosts_pod_cidrs_via_their_node_ip() {
        let peers = [
            peer("n1", "10.1.1.0/24", "192.0.2.2"),
            peer("n2", "10.1.2.0/24", "192.0.2.3"),
            peer("n3", "10.1.3.0/24", "192.0.2.4"),
        ];
        let plan = plan_routes("n1", &cidr("10.1.1.0/24"), &cidr("10.1.0.0/16"), &peers, &local(), &[]);
        assert_eq!(
            commands(&plan),
            [
                "ip -4 route replace 10.1.2.0/24 via 192.0.2.3 proto 157",
                "ip -4 route replace 10.1.3.0/24 via 192.0.2.4 proto 157",
            ]
        );
        assert_eq!(plan.skipped, [("n1".to_string(), Skip::Own)]);
    }

    #[test]
    fn skips_nodes_on_this_host() {
        // Two kubelets on one machine: the other node's InternalIP is ours.
        let peers = [peer("n1", "10.1.1.0/24", "192.0.2.2"), peer("n2", "10.1.2.0/24", "192.0.2.2")];
        let plan = plan_routes("n1", &cidr("10.1.1.0/24"), &cidr("10.1.0.0/16"), &peers, &local(), &[]);
        assert!(plan.commands.is_empty(), "{:?}", plan.commands);
        assert_eq!(plan.skipped[1], ("n2".to_string(), Skip::Local));
    }

    #[test]
    fn removes_stale_routes_inside_the_cluster_only_and_keeps_correct_ones() {
        let existing = [
            Route { dst: cidr("10.1.2.0/24"), via: "192.0.2.3".parse().unwrap() },
            Route { dst: cidr("10.1.3.0/24"), via: "192.0.2.9".parse().unwrap() },
            Route { dst: cidr("10.1.4.0/24"), via: "192.0.2.5".parse().unwrap() },
            Route { dst: cidr("10.9.0.0/24"), via: "192.0.2.5".parse().unwrap() },
        ];
        let peers = [peer("n2", "10.1.2.0/24", "192.0.2.3"), peer("n3", "10.1.3.0/24", "192.0.2.4")];
        let plan = plan_routes("n1", &cidr("10.1.1.0/24"), &cidr("10.1.0.0/16"), &peers, &local(), &existing);
        assert_eq!(
            commands(&plan),
            [
                "ip -4 route del 10.1.4.0/24 via 192.0.2.5 proto 157",
                "ip -4 route replace 10.1.3.0/24 via 192.0.2.4 proto 157",
            ]
        );
    }

    #[test]
    fn refuses_cidrs_outside_the_cluster_overlapping_or_duplicated() {
        let peers = [
            peer("out", "192.168.0.0/24", "192.0.2.3"),
            peer("overlap", "10.1.1.128/25", "192.0.2.4"),
            peer("a", "10.1.5.0/24", "192.0.2.5"),
            peer("b", "10.1.5.0/24", "192.0.2.6"),
            peer("bad", "10.1.6.0", "192.0.2.7"),
            peer("v6", "10.1.7.0/24", "fd00::7"),
            peer("unset", "", "192.0.2.8"),
        ];
        let plan = plan_routes("n1", &cidr("10.1.1.0/24"), &cidr("10.1.0.0/16"), &peers, &local(), &[]);
        assert_eq!(commands(&plan), ["ip -4 route replace 10.1.5.0/24 via 192.0.2.5 proto 157"]);
        let reasons: Vec<_> = plan.skipped.iter().map(|(n, s)| (n.as_str(), s.clone())).collect();
        assert_eq!(reasons[0], ("out", Skip::OutsideCluster));
        assert_eq!(reasons[1], ("overlap", Skip::OverlapsOwn));
        assert_eq!(reasons[2], ("b", Skip::Duplicate("a".into())));
        assert!(matches!(reasons[3], ("bad", Skip::BadCidr(_))));
        assert_eq!(reasons[4], ("v6", Skip::FamilyMismatch));
        assert!(matches!(reasons[5], ("unset", Skip::BadCidr(_))));
    }

    #[test]
    fn removal_deletes_only_routes_inside_the_cluster() {
        let existing = parse_routes("10.1.2.0/24 via 192.0.2.3 dev eth0\n10.9.0.0/24 via 192.0.2.5 dev eth0\n");
        let lines: Vec<String> =
            removal_commands(&cidr("10.1.0.0/16"), &existing).iter().map(ToString::to_string).collect();
        assert_eq!(lines, ["ip -4 route del 10.1.2.0/24 via 192.0.2.3 proto 157"]);
    }

    #[test]
    fn parses_ip_route_and_ip_addr_output() {
        let routes = parse_routes(
            "10.1.2.0/24 via 192.0.2.3 dev eth0 \n10.1.3.7 via 192.0.2.4 dev eth0 onlink \ndefault dev eth0\n",
        );
        assert_eq!(
            routes,
            [
                Route { dst: cidr("10.1.2.0/24"), via: "192.0.2.3".parse().unwrap() },
                Route { dst: cidr("10.1.3.7/32"), via: "192.0.2.4".parse().unwrap() },
            ]
        );
        let addrs = parse_addresses(
            "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n\
             4: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\\       valid_lft forever\n\
             4: eth0    inet6 fd00::2/64 scope global nodad \\       valid_lft forever preferred_lft forever\n",
        );
        assert_eq!(
            addrs,
            ["127.0.0.1".parse::<IpAddr>().unwrap(), "192.0.2.2".parse().unwrap(), "fd00::2".parse().unwrap()]
        );
    }
}
