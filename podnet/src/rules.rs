//! The iptables rules of the pod network: which rules (pure, unit-tested)
//! and how they are added and removed idempotently.
//!
//! Two chains of rkube's own, each hooked in by one jump rule:
//!
//! | table | chain | hooked from | per node rules |
//! |---|---|---|---|
//! | filter | `RKUBE-FORWARD` | `DOCKER-USER` (first rule) | `-s <podCIDR> -d <clusterCIDR> -j ACCEPT`, `-s <clusterCIDR> -d <podCIDR> -j ACCEPT` |
//! | nat | `RKUBE-POSTROUTING` | `POSTROUTING` | `-s <podCIDR> ! -d <clusterCIDR> -j MASQUERADE` |
//!
//! Every rule carries a comment naming its node, so several nodes (kubelets)
//! on one host share the chains and each removes only its own rules; the
//! chains and jumps go with the last node's rules.

use crate::command::HostCommand;
use crate::error::Result;
use rkube_api::cidr::Ipv4Cidr;

/// The filter chain accepting pod-to-pod traffic, jumped to from `DOCKER-USER`.
pub const FORWARD_CHAIN: &str = "RKUBE-FORWARD";
/// The nat chain masquerading pod traffic that leaves the cluster CIDR,
/// jumped to from `POSTROUTING`.
pub const POSTROUTING_CHAIN: &str = "RKUBE-POSTROUTING";
/// Docker's chain for user rules: `FORWARD` jumps to it before Docker's
/// isolation chains, which would drop traffic between two bridge networks.
pub const DOCKER_USER_CHAIN: &str = "DOCKER-USER";

/// The comment on every rule of `node` (iptables allows 256 characters).
fn node_comment(node: &str) -> String {
    let node: String = node.chars().take(200).collect();
    format!("rkube pod network of node {node}")
}

/// One iptables rule: its table, chain and specification (matches and target).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `filter` or `nat`.
    pub table: &'static str,
    /// The chain the rule lives in.
    pub chain: &'static str,
    /// Matches and target, e.g. `-s 10.1.1.0/24 -d 10.1.0.0/16 -j ACCEPT`.
    pub spec: Vec<String>,
}

impl Rule {
    fn new(table: &'static str, chain: &'static str, spec: &[&str]) -> Rule {
        Rule { table, chain, spec: spec.iter().map(|s| s.to_string()).collect() }
    }

    fn command(&self, op: &[&str]) -> HostCommand {
        let head = ["-w", "-t", self.table];
        HostCommand::new("iptables", head.iter().chain(op).copied().map(String::from).chain(self.spec.iter().cloned()))
    }

    /// `iptables -C`: exits 0 when the rule exists.
    pub fn check(&self) -> HostCommand {
        self.command(&["-C", self.chain])
    }

    /// `iptables -A`: appends the rule.
    pub fn append(&self) -> HostCommand {
        self.command(&["-A", self.chain])
    }

    /// `iptables -I <chain> 1`: inserts the rule first.
    pub fn insert_first(&self) -> HostCommand {
        self.command(&["-I", self.chain, "1"])
    }

    /// `iptables -D`: deletes one copy of the rule.
    pub fn delete(&self) -> HostCommand {
        self.command(&["-D", self.chain])
    }
}

/// Where a rule goes when it is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// At the end of its chain.
    Append,
    /// First in its chain (before Docker's `-j RETURN` in `DOCKER-USER`).
    First,
}

/// One of rkube's chains and the jump that hooks it in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// `filter` or `nat`.
    pub table: &'static str,
    /// The chain's name.
    pub name: &'static str,
    /// The jump rule to it.
    pub jump: Rule,
    /// Where the jump goes.
    pub jump_position: Position,
}

/// rkube's two chains: `RKUBE-FORWARD` (filter, first in `DOCKER-USER`) and
/// `RKUBE-POSTROUTING` (nat, appended to `POSTROUTING`).
pub fn chains() -> [Chain; 2] {
    let comment = "rkube pod network (docs/pod-network.md)";
    [
        Chain {
            table: "filter",
            name: FORWARD_CHAIN,
            jump: Rule::new("filter", DOCKER_USER_CHAIN, &["-m", "comment", "--comment", comment, "-j", FORWARD_CHAIN]),
            jump_position: Position::First,
        },
        Chain {
            table: "nat",
            name: POSTROUTING_CHAIN,
            jump: Rule::new("nat", "POSTROUTING", &["-m", "comment", "--comment", comment, "-j", POSTROUTING_CHAIN]),
            jump_position: Position::Append,
        },
    ]
}

/// The rules of one node's network, in the order they are added:
/// accept forwarding from its pods to the cluster CIDR and from the cluster
/// CIDR to its pods (no NAT between pods), and masquerade its pods' traffic
/// to anything outside the cluster CIDR.
pub fn node_rules(node: &str, pod_cidr: &Ipv4Cidr, cluster_cidr: &Ipv4Cidr) -> Vec<Rule> {
    let (pod, cluster, comment) = (pod_cidr.to_string(), cluster_cidr.to_string(), node_comment(node));
    let accept = |src: &str, dst: &str| {
        Rule::new(
            "filter",
            FORWARD_CHAIN,
            &["-s", src, "-d", dst, "-m", "comment", "--comment", &comment, "-j", "ACCEPT"],
        )
    };
    vec![
        accept(&pod, &cluster),
        accept(&cluster, &pod),
        Rule::new(
            "nat",
            POSTROUTING_CHAIN,
            &["-s", &pod, "!", "-d", &cluster, "-m", "comment", "--comment", &comment, "-j", "MASQUERADE"],
        ),
    ]
}

/// `iptables -S <chain>`: lists the chain (fails if it does not exist).
fn list_chain(table: &str, chain: &str) -> HostCommand {
    HostCommand::new("iptables", ["-w", "-t", table, "-S", chain])
}

/// Creates `chain` unless it exists, then hooks it in unless it is hooked in.
pub async fn ensure_chain(chain: &Chain) -> Result<()> {
    if list_chain(chain.table, chain.name).try_run().await?.is_err() {
        let create = HostCommand::new("iptables", ["-w", "-t", chain.table, "-N", chain.name]);
        if let Err((status, stderr)) = create.try_run().await? {
            // Another kubelet on this host may have created it meanwhile.
            if !stderr.contains("already exists") {
                return Err(crate::Error::Command { command: create.to_string(), status, stderr });
            }
        }
    }
    ensure_rule(&chain.jump, chain.jump_position).await
}

/// Adds `rule` unless it exists.
pub async fn ensure_rule(rule: &Rule, position: Position) -> Result<()> {
    if rule.check().try_run().await?.is_ok() {
        return Ok(());
    }
    match position {
        Position::Append => rule.append().run().await?,
        Position::First => rule.insert_first().run().await?,
    };
    Ok(())
}

/// Deletes every copy of `rule`; a missing rule or chain is not an error.
pub async fn delete_rule(rule: &Rule) -> Result<()> {
    while rule.check().try_run().await?.is_ok() {
        rule.delete().run().await?;
    }
    Ok(())
}

/// Removes `chain` and its jump if the chain holds no rules (no node on this
/// host uses it any more).
pub async fn remove_chain_if_empty(chain: &Chain) -> Result<()> {
    let Ok(listing) = list_chain(chain.table, chain.name).try_run().await? else {
        return delete_rule(&chain.jump).await;
    };
    if listing.stdout.lines().any(|l| l.starts_with("-A ")) {
        return Ok(());
    }
    delete_rule(&chain.jump).await?;
    let remove = HostCommand::new("iptables", ["-w", "-t", chain.table, "-X", chain.name]);
    if let Err((status, stderr)) = remove.try_run().await? {
        // Another kubelet added a rule since we looked: hook the chain back in.
        ensure_rule(&chain.jump, chain.jump_position).await?;
        tracing::debug!(chain = chain.name, %status, stderr, "chain in use again; kept");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(rules: &[Rule], op: fn(&Rule) -> HostCommand) -> Vec<String> {
        rules.iter().map(|r| op(r).to_string()).collect()
    }

    #[test]
    fn node_rules_accept_pod_traffic_within_the_cluster_and_masquerade_the_rest() {
        let rules = node_rules("n1", &"10.1.1.0/24".parse().unwrap(), &"10.1.0.0/16".parse().unwrap());
        assert_eq!(
            lines(&rules, Rule::append),
            [
                "iptables -w -t filter -A RKUBE-FORWARD -s 10.1.1.0/24 -d 10.1.0.0/16 -m comment --comment 'rkube pod network of node n1' -j ACCEPT",
                "iptables -w -t filter -A RKUBE-FORWARD -s 10.1.0.0/16 -d 10.1.1.0/24 -m comment --comment 'rkube pod network of node n1' -j ACCEPT",
                "iptables -w -t nat -A RKUBE-POSTROUTING -s 10.1.1.0/24 '!' -d 10.1.0.0/16 -m comment --comment 'rkube pod network of node n1' -j MASQUERADE",
            ]
        );
        assert_eq!(
            lines(&rules[..1], Rule::delete),
            [
                "iptables -w -t filter -D RKUBE-FORWARD -s 10.1.1.0/24 -d 10.1.0.0/16 -m comment --comment 'rkube pod network of node n1' -j ACCEPT"
            ]
        );
    }

    #[test]
    fn chains_hook_in_before_docker_isolation_and_into_postrouting() {
        let [forward, nat] = chains();
        assert_eq!(
            forward.jump.insert_first().to_string(),
            "iptables -w -t filter -I DOCKER-USER 1 -m comment --comment 'rkube pod network (docs/pod-network.md)' -j RKUBE-FORWARD"
        );
        assert_eq!(
            nat.jump.append().to_string(),
            "iptables -w -t nat -A POSTROUTING -m comment --comment 'rkube pod network (docs/pod-network.md)' -j RKUBE-POSTROUTING"
        );
        assert_eq!(
            nat.jump.check().to_string(),
            "iptables -w -t nat -C POSTROUTING -m comment --comment 'rkube pod network (docs/pod-network.md)' -j RKUBE-POSTROUTING"
        );
    }

    #[test]
    fn rules_of_different_nodes_differ_so_each_node_removes_only_its_own() {
        let cluster = "10.1.0.0/16".parse().unwrap();
        let a = node_rules("a", &"10.1.1.0/24".parse().unwrap(), &cluster);
        let b = node_rules("b", &"10.1.2.0/24".parse().unwrap(), &cluster);
        assert!(a.iter().all(|r| !b.contains(r)));
        let long = "x".repeat(253);
        let rule = &node_rules(&long, &"10.1.3.0/24".parse().unwrap(), &cluster)[0];
        let comment = &rule.spec[rule.spec.iter().position(|s| s == "--comment").unwrap() + 1];
        assert!(comment.len() <= 256, "{}", comment.len());
    }
}
