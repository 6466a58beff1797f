//! RBAC objects (`rbac.authorization.k8s.io/v1`): Roles and ClusterRoles,
//! RoleBindings and ClusterRoleBindings, validated as Kubernetes'
//! `pkg/apis/rbac/validation` does: rules need verbs and either resources
//! (with API groups) or non-resource URLs; a binding's `roleRef` names a
//! Role or ClusterRole of this group and never changes; subjects are Users,
//! Groups or ServiceAccounts. A ClusterRole's `aggregationRule` is kept but
//! not acted on (no controller aggregates roles).

use crate::error::Cause;
use crate::kinds::Strategy;
use crate::validation::causes::required_because;
use crate::validation::{SUBDOMAIN_MSG, invalid, is_dns1123_subdomain, not_supported, required};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject};

/// The RBAC API group, the only one a `roleRef` may name.
pub const GROUP: &str = "rbac.authorization.k8s.io";

/// `value` as Go's `%#v` prints a `[]string`: `[]string{"a", "b"}`.
fn go_strings(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

/// `field: Invalid value: []string{...}: why`.
fn invalid_strings(field: String, values: &[String], why: &str) -> Cause {
    Cause { kind: "FieldValueInvalid".into(), field, message: format!("Invalid value: {}: {why}", go_strings(values)) }
}

/// The problem with an RBAC object name (a path segment), if any.
fn rbac_name_problem(name: &str) -> Option<&'static str> {
    match name {
        "." => Some("may not be '.'"),
        ".." => Some("may not be '..'"),
        _ if name.contains('/') => Some("may not contain '/'"),
        _ if name.contains('%') => Some("may not contain '%'"),
        _ => None,
    }
}

/// The rules of a Role (`namespaced`) or ClusterRole.
pub fn validate_rules(rules: &[PolicyRule], namespaced: bool) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let path = format!("rules[{i}]");
        if rule.verbs.is_empty() {
            causes.push(required_because(format!("{path}.verbs"), "verbs must contain at least one value"));
        }
        let urls = rule.non_resource_urls.as_deref().unwrap_or_default();
        if !urls.is_empty() {
            let field = format!("{path}.nonResourceURLs");
            if namespaced {
                causes.push(invalid_strings(field.clone(), urls, "namespaced rules cannot apply to non-resource URLs"));
            }
            let has_resources = [&rule.api_groups, &rule.resources, &rule.resource_names]
                .iter()
                .any(|l| l.as_ref().is_some_and(|l| !l.is_empty()));
            if has_resources {
                causes.push(invalid_strings(
                    field,
                    urls,
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if rule.api_groups.as_ref().is_none_or(Vec::is_empty) {
            causes.push(required_because(
                format!("{path}.apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if rule.resources.as_ref().is_none_or(Vec::is_empty) {
            causes.push(required_because(
                format!("{path}.resources"),
                "resource rules must supply at least one resource",
            ));
        }
    }
    causes
}

fn default_role_ref(role_ref: &mut RoleRef) {
    if role_ref.api_group.is_empty() {
        role_ref.api_group = GROUP.into();
    }
}

/// Kubernetes' `SetDefaults_Subject`: Users and Groups are of the RBAC group.
fn default_subjects(subjects: &mut Option<Vec<Subject>>) {
    for s in subjects.iter_mut().flatten() {
        if s.api_group.as_deref().is_none_or(str::is_empty) && matches!(s.kind.as_str(), "User" | "Group") {
            s.api_group = Some(GROUP.into());
        }
    }
}

/// A binding's `roleRef`: of the RBAC group, one of `kinds`, with a name.
fn validate_role_ref(role_ref: &RoleRef, kinds: &[&str]) -> Vec<Cause> {
    let mut causes = Vec::new();
    if role_ref.api_group != GROUP {
        causes.push(not_supported("roleRef.apiGroup", &role_ref.api_group, &[GROUP]));
    }
    if !kinds.contains(&role_ref.kind.as_str()) {
        causes.push(not_supported("roleRef.kind", &role_ref.kind, kinds));
    }
    if role_ref.name.is_empty() {
        causes.push(required("roleRef.name"));
    } else if let Some(why) = rbac_name_problem(&role_ref.name) {
        causes.push(invalid("roleRef.name", &role_ref.name, why));
    }
    causes
}

/// The subjects of a RoleBinding (`namespaced`) or ClusterRoleBinding.
pub fn validate_subjects(subjects: &[Subject], namespaced: bool) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (i, s) in subjects.iter().enumerate() {
        let path = format!("subjects[{i}]");
        if s.name.is_empty() {
            causes.push(required(format!("{path}.name")));
        }
        let group = s.api_group.as_deref().unwrap_or_default();
        match s.kind.as_str() {
            "ServiceAccount" => {
                if !s.name.is_empty() && !is_dns1123_subdomain(&s.name) {
                    causes.push(invalid(format!("{path}.name"), &s.name, SUBDOMAIN_MSG));
                }
                if !group.is_empty() {
                    causes.push(not_supported(format!("{path}.apiGroup"), group, &[""]));
                }
                if !namespaced && s.namespace.as_deref().is_none_or(str::is_empty) {
                    causes.push(required(format!("{path}.namespace")));
                }
            }
            "User" | "Group" => {
                if group != GROUP {
                    causes.push(not_supported(format!("{path}.apiGroup"), group, &[GROUP]));
                }
            }
            other => causes.push(not_supported(format!("{path}.kind"), other, &["ServiceAccount", "User", "Group"])),
        }
    }
    causes
}

/// `cannot change roleRef`, with the new value as Go prints it.
fn role_ref_unchanged(new: &RoleRef, old: &RoleRef) -> Option<Cause> {
    (new != old).then(|| {
        let value = format!("rbac.RoleRef{{APIGroup:{:?}, Kind:{:?}, Name:{:?}}}", new.api_group, new.kind, new.name);
        Cause {
            kind: "FieldValueInvalid".into(),
            field: "roleRef".into(),
            message: format!("Invalid value: {value}: cannot change roleRef"),
        }
    })
}

impl Strategy for Role {
    fn validate(&self) -> Vec<Cause> {
        validate_rules(&self.rules.clone().unwrap_or_default(), true)
    }
}

impl Strategy for ClusterRole {
    fn validate(&self) -> Vec<Cause> {
        validate_rules(&self.rules.clone().unwrap_or_default(), false)
    }
}

impl Strategy for RoleBinding {
    fn default_fields(&mut self) {
        default_role_ref(&mut self.role_ref);
        default_subjects(&mut self.subjects);
    }

    fn validate(&self) -> Vec<Cause> {
        let mut causes = validate_role_ref(&self.role_ref, &["Role", "ClusterRole"]);
        causes.extend(validate_subjects(self.subjects.as_deref().unwrap_or_default(), true));
        causes
    }

    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        let mut causes = self.validate();
        causes.extend(role_ref_unchanged(&self.role_ref, &old.role_ref));
        causes
    }
}

impl Strategy for ClusterRoleBinding {
    fn default_fields(&mut self) {
        default_role_ref(&mut self.role_ref);
        default_subjects(&mut self.subjects);
    }

    fn validate(&self) -> Vec<Cause> {
        // A ClusterRoleBinding has no namespace to find a Role in.
        let mut causes = validate_role_ref(&self.role_ref, &["ClusterRole"]);
        causes.extend(validate_subjects(self.subjects.as_deref().unwrap_or_default(), false));
        causes
    }

    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        let mut causes = self.validate();
        causes.extend(role_ref_unchanged(&self.role_ref, &old.role_ref));
        causes
    }
}

#[cfg(test)]
mod tests {
    use crate::kinds::{prepare_create, prepare_update};
    use crate::resource::lookup;
    use serde_json::{Value, json};

    fn create(resource: &str, obj: Value) -> Result<Value, String> {
        prepare_create(lookup(resource).expect("known resource"), &obj).map_err(|e| e.message)
    }

    #[test]
    fn role_names_may_hold_colons_but_rules_need_verbs_and_resources() {
        let ok = create(
            "clusterroles",
            json!({"metadata": {"name": "system:node"},
                   "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]},
                             {"verbs": ["get"], "nonResourceURLs": ["/healthz", "/api/*"]}]}),
        );
        assert!(ok.is_ok(), "{ok:?}");
        let e =
            create("roles", json!({"metadata": {"name": "r", "namespace": "a"}, "rules": [{"resources": ["pods"]}]}))
                .expect_err("no verbs, no groups");
        assert_eq!(
            e,
            "Role \"r\" is invalid: [rules[0].verbs: Required value: verbs must contain at least one value, rules[0].apiGroups: Required value: resource rules must supply at least one api group]"
        );
        let e = create(
            "roles",
            json!({"metadata": {"name": "r", "namespace": "a"},
                   "rules": [{"verbs": ["get"], "nonResourceURLs": ["/metrics"], "resources": ["pods"]}]}),
        )
        .expect_err("urls in a role");
        assert!(
            e.contains("rules[0].nonResourceURLs: Invalid value: []string{\"/metrics\"}: namespaced rules cannot apply to non-resource URLs"),
            "{e}"
        );
        assert!(e.contains("rules cannot apply to both regular resources and non-resource URLs"), "{e}");
        let e = create("clusterroles", json!({"metadata": {"name": "a/b"}})).expect_err("slash");
        assert!(e.contains("metadata.name: Invalid value: \"a/b\""), "{e}");
    }

    #[test]
    fn bindings_default_api_groups_and_check_subjects() {
        let rb = create(
            "rolebindings",
            json!({"metadata": {"name": "b", "namespace": "a"},
                   "roleRef": {"kind": "ClusterRole", "name": "view", "apiGroup": ""},
                   "subjects": [{"kind": "User", "name": "jane"}, {"kind": "ServiceAccount", "name": "sa"}]}),
        )
        .expect("valid");
        assert_eq!(rb["roleRef"]["apiGroup"], "rbac.authorization.k8s.io");
        assert_eq!(rb["subjects"][0]["apiGroup"], "rbac.authorization.k8s.io");
        assert!(rb["subjects"][1].get("apiGroup").is_none_or(|g| g == ""), "{}", rb["subjects"][1]);
        let e = create(
            "clusterrolebindings",
            json!({"metadata": {"name": "b"},
                   "roleRef": {"kind": "Secret", "name": "view", "apiGroup": "rbac.authorization.k8s.io"},
                   "subjects": [{"kind": "ServiceAccount", "name": "sa"}, {"kind": "Robot", "name": "r"}]}),
        )
        .expect_err("bad kind, no namespace");
        assert!(e.contains("roleRef.kind: Unsupported value: \"Secret\": supported values: \"ClusterRole\""), "{e}");
        assert!(e.contains("subjects[0].namespace: Required value"), "{e}");
        assert!(
            e.contains(
                "subjects[1].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\""
            ),
            "{e}"
        );
    }

    #[test]
    fn role_ref_is_immutable() {
        let info = lookup("rolebindings").expect("rolebindings");
        let old = create(
            "rolebindings",
            json!({"metadata": {"name": "b", "namespace": "a"},
                   "roleRef": {"kind": "ClusterRole", "name": "view", "apiGroup": "rbac.authorization.k8s.io"}}),
        )
        .expect("valid");
        let mut new = old.clone();
        new["roleRef"]["name"] = "edit".into();
        let e = prepare_update(info, &new, &old).expect_err("roleRef changed");
        assert_eq!(e.causes.len(), 1, "{}", e.message);
        assert_eq!(e.causes[0].field, "roleRef");
        assert!(e.causes[0].message.ends_with("cannot change roleRef"), "{}", e.message);
        let mut subjects = old.clone();
        subjects["subjects"] = json!([{"kind": "Group", "name": "devs"}]);
        assert!(prepare_update(info, &subjects, &old).is_ok());
    }
}
