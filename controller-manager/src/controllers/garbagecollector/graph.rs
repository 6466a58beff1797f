//! The ownership graph: every watched object by uid, with its owners and
//! the uids of its dependents (Kubernetes' `GraphBuilder`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use rkube_api::ResourceInfo;
use std::collections::{HashMap, HashSet};

/// The finalizer that makes the collector delete dependents first.
pub const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer that makes the collector orphan dependents.
pub const ORPHAN: &str = "orphan";

/// One object of the graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Its uid.
    pub uid: String,
    /// Its resource.
    pub info: &'static ResourceInfo,
    /// Its namespace ("" when cluster-scoped).
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its resourceVersion when last seen.
    pub resource_version: String,
    /// Its owner references.
    pub owners: Vec<OwnerReference>,
    /// Whether it has a deletionTimestamp.
    pub deleting: bool,
    /// Its finalizers.
    pub finalizers: Vec<String>,
}

impl Node {
    /// The node for an object of `info` with `meta`.
    pub fn of(info: &'static ResourceInfo, meta: &ObjectMeta) -> Node {
        Node {
            uid: meta.uid.clone().unwrap_or_default(),
            info,
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            resource_version: meta.resource_version.clone().unwrap_or_default(),
            owners: meta.owner_references.clone().unwrap_or_default(),
            deleting: meta.deletion_timestamp.is_some(),
            finalizers: meta.finalizers.clone().unwrap_or_default(),
        }
    }

    /// Whether it carries `finalizer`.
    pub fn has_finalizer(&self, finalizer: &str) -> bool {
        self.finalizers.iter().any(|f| f == finalizer)
    }

    /// `kind namespace/name`, for logs.
    pub fn describe(&self) -> String {
        if self.namespace.is_empty() {
            format!("{} {}", self.info.kind, self.name)
        } else {
            format!("{} {}/{}", self.info.kind, self.namespace, self.name)
        }
    }
}

/// The graph.
#[derive(Debug, Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
    /// owner uid -> dependent uids (owners may be absent from `nodes`).
    dependents: HashMap<String, HashSet<String>>,
}

impl Graph {
    /// Records `node` under `uid`; returns the uids whose processing the
    /// change may affect: the object itself, the owners it gained or lost,
    /// and, when it started being deleted, its dependents.
    pub fn upsert(&mut self, uid: &str, node: Node) -> Vec<String> {
        let mut affected = vec![uid.to_string()];
        let old = self.nodes.insert(uid.to_string(), node.clone());
        let old_owners: HashSet<String> = old.iter().flat_map(|o| o.owners.iter().map(|r| r.uid.clone())).collect();
        let new_owners: HashSet<String> = node.owners.iter().map(|r| r.uid.clone()).collect();
        for gone in old_owners.difference(&new_owners) {
            self.unlink(gone, uid);
            affected.push(gone.clone());
        }
        for added in new_owners.difference(&old_owners) {
            self.dependents.entry(added.clone()).or_default().insert(uid.to_string());
            affected.push(added.clone());
        }
        if node.deleting && old.is_none_or(|o| !o.deleting || o.finalizers != node.finalizers) {
            affected.extend(self.dependents_of(uid));
        }
        affected
    }

    /// Forgets `uid`; returns the uids to process: its owners (a
    /// foreground deletion may be waiting for it) and its dependents (they
    /// may have lost their last owner).
    pub fn remove(&mut self, uid: &str) -> Vec<String> {
        let mut affected = self.dependents_of(uid);
        if let Some(old) = self.nodes.remove(uid) {
            for owner in old.owners {
                self.unlink(&owner.uid, uid);
                affected.push(owner.uid);
            }
        }
        affected
    }

    fn unlink(&mut self, owner: &str, dependent: &str) {
        if let Some(set) = self.dependents.get_mut(owner) {
            set.remove(dependent);
            if set.is_empty() {
                self.dependents.remove(owner);
            }
        }
    }

    /// The node with `uid`.
    pub fn get(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    /// The uids of the objects that name `uid` as an owner.
    pub fn dependents_of(&self, uid: &str) -> Vec<String> {
        self.dependents.get(uid).map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }

    /// Every uid in the graph.
    pub fn uids(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }

    /// How many objects the graph holds.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the graph is empty.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rkube_api::resource::for_kind;

    fn node(name: &str, owners: &[&str], deleting: bool) -> Node {
        Node {
            uid: name.into(),
            info: for_kind("v1", "Pod").unwrap(),
            namespace: "ns".into(),
            name: name.into(),
            resource_version: "1".into(),
            owners: owners.iter().map(|u| OwnerReference { uid: u.to_string(), ..Default::default() }).collect(),
            deleting,
            finalizers: Vec::new(),
        }
    }

    fn sorted(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v
    }

    #[test]
    fn dependents_follow_owner_references_as_they_change() {
        let mut g = Graph::default();
        assert_eq!(sorted(g.upsert("p1", node("p1", &["rs"], false))), ["p1", "rs"]);
        g.upsert("p2", node("p2", &["rs"], false));
        assert_eq!(sorted(g.dependents_of("rs")), ["p1", "p2"]);
        // Released: rs loses p1.
        assert_eq!(sorted(g.upsert("p1", node("p1", &[], false))), ["p1", "rs"]);
        assert_eq!(g.dependents_of("rs"), ["p2"]);
        // The owner starts being deleted: its dependents are affected.
        g.upsert("rs", node("rs", &[], false));
        assert_eq!(sorted(g.upsert("rs", node("rs", &[], true))), ["p2", "rs"]);
        // The owner goes: its dependents are to be processed.
        assert_eq!(g.remove("rs"), ["p2"]);
        assert_eq!(g.remove("p2"), ["rs"]);
        assert!(g.dependents_of("rs").is_empty());
    }
}
