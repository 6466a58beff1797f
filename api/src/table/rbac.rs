//! Rows of RBAC bindings: the role they grant and, with `-o wide`, who they
//! grant it to (kubernetes' `printRoleBinding`, `printClusterRoleBinding`).
//! Roles and ClusterRoles have no columns of their own.

use super::{AGE, Cell, Column, NAME, age_of, items, name, text};
use jiff::Timestamp;
use serde_json::Value;

const ROLE: Column = Column::string(
    "Role",
    "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error. This field is immutable.",
);

/// The RoleBinding table's columns.
pub(super) const ROLE_BINDING_COLUMNS: &[Column] = &[
    NAME,
    ROLE,
    AGE,
    Column::string("Users", "Users in the roleBinding").wide(),
    Column::string("Groups", "Groups in the roleBinding").wide(),
    Column::string("ServiceAccounts", "ServiceAccounts in the roleBinding").wide(),
];

/// The ClusterRoleBinding table's columns.
pub(super) const CLUSTER_ROLE_BINDING_COLUMNS: &[Column] = &[
    NAME,
    ROLE,
    AGE,
    Column::string("Users", "Users in the clusterRoleBinding").wide(),
    Column::string("Groups", "Groups in the clusterRoleBinding").wide(),
    Column::string("ServiceAccounts", "ServiceAccounts in the clusterRoleBinding").wide(),
];

/// A binding's row: name, `Kind/name` of its role, age, then its users,
/// groups and service accounts (`namespace/name`), comma-separated.
pub(super) fn binding(binding: &Value, now: Timestamp) -> Vec<Cell> {
    let role = format!("{}/{}", text(&binding["roleRef"]["kind"]), text(&binding["roleRef"]["name"]));
    let (mut users, mut groups, mut accounts) = (Vec::new(), Vec::new(), Vec::new());
    for s in items(&binding["subjects"]) {
        match text(&s["kind"]) {
            "User" => users.push(text(&s["name"]).to_string()),
            "Group" => groups.push(text(&s["name"]).to_string()),
            "ServiceAccount" => accounts.push(format!("{}/{}", text(&s["namespace"]), text(&s["name"]))),
            _ => {}
        }
    }
    vec![
        name(binding),
        role.into(),
        age_of(binding, now),
        users.join(", ").into(),
        groups.join(", ").into(),
        accounts.join(", ").into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn binding_row_names_the_role_and_its_subjects() {
        let b = json!({"metadata": {"name": "view-jane", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "roleRef": {"kind": "ClusterRole", "name": "view", "apiGroup": "rbac.authorization.k8s.io"},
            "subjects": [{"kind": "User", "name": "jane"}, {"kind": "User", "name": "joe"},
                         {"kind": "Group", "name": "devs"},
                         {"kind": "ServiceAccount", "name": "ci", "namespace": "build"}]});
        let cells: Vec<String> =
            binding(&b, "2024-01-01T00:05:00Z".parse().expect("time")).iter().map(Cell::to_string).collect();
        assert_eq!(cells, ["view-jane", "ClusterRole/view", "5m", "jane, joe", "devs", "build/ci"]);
        assert_eq!(ROLE_BINDING_COLUMNS.iter().filter(|c| c.priority == 0).count(), 3);
    }
}
