//! Which objects a command's arguments name, the way kubectl reads them:
//! `TYPE[,TYPE...] [NAME...]`, or `TYPE/NAME ...`, with types spelled as
//! plurals, singulars, short names or kinds (`po`, `pod`, `Pod`, `pods`).

use crate::report::usage;
use rkube_api::ResourceInfo;
use rkube_api::resource::lookup;

/// One resource type and the names asked for (none: every object, filtered
/// by the selectors).
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The resource.
    pub info: &'static ResourceInfo,
    /// The names, in the order given.
    pub names: Vec<String>,
}

/// What the arguments select.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    /// The resource types with their names, in the order given.
    pub targets: Vec<Target>,
    /// Exactly one object was named (yaml/json then print it, not a List).
    pub single: bool,
}

impl Selection {
    /// Whether any names were given.
    pub fn has_names(&self) -> bool {
        self.targets.iter().any(|t| !t.names.is_empty())
    }

    /// Whether the selection spans more than one resource type.
    pub fn several_types(&self) -> bool {
        self.targets.iter().skip(1).any(|t| t.info != self.targets[0].info)
    }
}

/// What `all` stands for, as in kubectl.
const ALL: [&str; 8] = [
    "pods",
    "replicationcontrollers",
    "services",
    "daemonsets",
    "deployments",
    "replicasets",
    "horizontalpodautoscalers",
    "jobs",
];

/// The resource a user's word names.
pub fn resource_type(word: &str) -> anyhow::Result<&'static ResourceInfo> {
    lookup(word).map_err(|_| usage(format!("the server doesn't have a resource type \"{word}\"")))
}

fn types(word: &str) -> anyhow::Result<Vec<&'static ResourceInfo>> {
    let mut out = Vec::new();
    for w in word.split(',').filter(|w| !w.is_empty()) {
        if w == "all" {
            out.extend(ALL.iter().map(|p| resource_type(p).expect("the `all` resources are in the table")));
        } else {
            out.push(resource_type(w)?);
        }
    }
    if out.is_empty() {
        return Err(usage(format!("the server doesn't have a resource type \"{word}\"")));
    }
    Ok(out)
}

/// Reads `args`; `command` names the command in messages.
pub fn parse(args: &[String], command: &str) -> anyhow::Result<Selection> {
    let Some(first) = args.first() else { return Ok(Selection::default()) };
    if args.iter().any(|a| a.contains('/')) {
        if !first.contains('/') {
            return Err(usage(format!(
                "there is no need to specify a resource type as a separate argument when passing arguments in \
                 resource/name form (e.g. 'rkubectl {command} resource/<resource_name>' instead of \
                 'rkubectl {command} resource resource/<resource_name>'"
            )));
        }
        let mut targets: Vec<Target> = Vec::new();
        for a in args {
            let Some((kind, name)) = a.split_once('/').filter(|(k, n)| !k.is_empty() && !n.is_empty()) else {
                return Err(usage(format!(
                    "arguments in resource/name form must have a single resource and name: \"{a}\""
                )));
            };
            let info = resource_type(kind)?;
            match targets.iter_mut().find(|t| t.info == info) {
                Some(t) => t.names.push(name.to_string()),
                None => targets.push(Target { info, names: vec![name.to_string()] }),
            }
        }
        let single = args.len() == 1;
        return Ok(Selection { targets, single });
    }
    let infos = types(first)?;
    let names: Vec<String> = args[1..].to_vec();
    let single = infos.len() == 1 && names.len() == 1 && !first.contains(',');
    let mut targets: Vec<Target> = Vec::new();
    for info in infos {
        if !targets.iter().any(|t| t.info == info) {
            targets.push(Target { info, names: names.clone() });
        }
    }
    Ok(Selection { targets, single })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn type_then_names() {
        let s = parse(&args(&["po", "web", "db"]), "get").expect("valid");
        assert_eq!(s.targets.len(), 1);
        assert_eq!(s.targets[0].info.plural, "pods");
        assert_eq!(s.targets[0].names, ["web", "db"]);
        assert!(!s.single);
        assert!(parse(&args(&["pod", "web"]), "get").expect("valid").single);
    }

    #[test]
    fn comma_separated_types_and_all() {
        let s = parse(&args(&["pods,svc"]), "get").expect("valid");
        let plurals: Vec<&str> = s.targets.iter().map(|t| t.info.plural).collect();
        assert_eq!(plurals, ["pods", "services"]);
        assert!(s.several_types());
        let all = parse(&args(&["all"]), "get").expect("valid");
        assert!(all.targets.iter().any(|t| t.info.plural == "deployments"));
    }

    #[test]
    fn type_slash_name_groups_by_type() {
        let s = parse(&args(&["pod/a", "svc/b", "pods/c"]), "get").expect("valid");
        assert_eq!(s.targets.len(), 2);
        assert_eq!(s.targets[0].names, ["a", "c"]);
        assert!(parse(&args(&["pod/a"]), "get").expect("valid").single);
        assert!(parse(&args(&["pod", "pod/a"]), "get").is_err());
        assert!(parse(&args(&["pod/"]), "get").is_err());
    }

    #[test]
    fn unknown_types_read_like_kubectl() {
        let e = parse(&args(&["foo"]), "get").expect_err("unknown");
        assert_eq!(e.to_string(), "the server doesn't have a resource type \"foo\"");
    }
}
