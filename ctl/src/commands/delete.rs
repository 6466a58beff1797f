//! `delete`: by type and names, by selector or `--all`, or by the objects in
//! `-f` files; `--grace-period`, `--now`, `--force`, `--cascade`; then, with
//! `--wait` (the default), waits up to `--timeout` until the objects are gone.

use super::{list, place, print};
use crate::cli::DeleteArgs;
use crate::duration;
use crate::manifests;
use crate::printers::object::{self, Format};
use crate::report::{self, Reported, usage};
use crate::resources;
use crate::session::Session;
use rkube_api::{Reason, ResourceInfo};
use rkube_client::DeleteParams;
use std::time::{Duration, Instant};

/// One object to delete.
struct Victim {
    info: &'static ResourceInfo,
    namespace: String,
    name: String,
}

/// The grace period to send: kubectl turns `--grace-period=0` without
/// `--force` into 1 and `--now` into 1; `--force` alone means 0.
pub fn grace_period(a: &DeleteArgs) -> anyhow::Result<Option<i64>> {
    if a.now && a.grace_period >= 0 {
        return Err(usage("--now and --grace-period cannot be specified together"));
    }
    Ok(match (a.force, a.now, a.grace_period) {
        (true, _, g) if g <= 0 => Some(0),
        (true, _, g) => Some(g),
        (false, true, _) => Some(1),
        (false, false, 0) => Some(1),
        (false, false, g) if g > 0 => Some(g),
        _ => None,
    })
}

/// kubectl's `--cascade`: background, foreground or orphan; the deprecated
/// booleans map to background (true) and orphan (false) with kubectl's warning.
/// Returns the propagation policy and the warning to print, if any.
pub fn propagation(cascade: &str) -> anyhow::Result<(String, Option<String>)> {
    let boolean = match cascade {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    };
    if let Some(b) = boolean {
        let (policy, word) = if b { ("Background", "background") } else { ("Orphan", "orphan") };
        let warning =
            format!("warning: --cascade={b} is deprecated (boolean value) and can be replaced with --cascade={word}.");
        return Ok((policy.into(), Some(warning)));
    }
    let policy = match cascade {
        "background" => "Background",
        "foreground" => "Foreground",
        "orphan" => "Orphan",
        other => {
            return Err(usage(format!(
                "invalid cascade value ({other}). Must be \"background\", \"foreground\", or \"orphan\"."
            )));
        }
    };
    Ok((policy.into(), None))
}

/// Runs `delete`.
pub async fn run(s: &Session, a: &DeleteArgs) -> anyhow::Result<()> {
    let format = Format::parse(a.output.as_deref(), &[Format::Table, Format::Name])?;
    let (policy, warning) = propagation(&a.cascade)?;
    let params =
        DeleteParams { grace_period_seconds: grace_period(a)?, propagation_policy: Some(policy), ..Default::default() };
    let timeout = duration::parse(&a.timeout, "--timeout")?;
    if let Some(w) = warning {
        eprintln!("{w}");
    }
    if a.force {
        eprintln!(
            "Warning: Immediate deletion does not wait for confirmation that the running resource has been terminated. The resource may continue to run on the cluster indefinitely."
        );
    }
    let mut failed = false;
    let mut victims: Vec<Victim> = Vec::new();
    if !a.filenames.is_empty() {
        if !a.resources.is_empty() {
            return Err(usage("resource names cannot be given together with -f"));
        }
        for doc in manifests::read(&a.filenames, a.recursive)? {
            let placed = doc.value.map_err(|e| format!("error: {e}")).and_then(|v| {
                let (info, namespace) = place(s, &v, &doc.source)?;
                Ok(Victim { info, namespace, name: object::name_of(&v).to_string() })
            });
            match placed {
                Ok(v) => victims.push(v),
                Err(message) => {
                    eprintln!("{message}");
                    failed = true;
                }
            }
        }
    } else {
        let sel = resources::parse(&a.resources, "delete")?;
        if sel.targets.is_empty() {
            return Err(usage(
                "You must provide one or more resources by argument or filename.\nExample resource specifications include:\n   '-f rsrc.yaml'\n   '--filename=rsrc.json'\n   '<resource> <name>'\n   '<resource>'",
            ));
        }
        let by_selector = a.selector.is_some() || a.field_selector.is_some() || a.all;
        if sel.has_names() && by_selector {
            return Err(usage("name cannot be provided when a selector is specified"));
        }
        for t in &sel.targets {
            let ns = s.namespace_for(t.info, a.all_namespaces);
            if !t.names.is_empty() {
                victims.extend(t.names.iter().map(|n| Victim { info: t.info, namespace: ns.clone(), name: n.clone() }));
                continue;
            }
            if !by_selector {
                return Err(usage("resource(s) were provided, but no name was specified"));
            }
            for v in list(s, t.info, &ns, a.selector.as_deref(), a.field_selector.as_deref()).await? {
                let namespace = object::namespace_of(&v).to_string();
                victims.push(Victim { info: t.info, namespace, name: object::name_of(&v).to_string() });
            }
        }
        if victims.is_empty() && !sel.has_names() {
            eprintln!("No resources found");
            return Ok(());
        }
    }

    let mut pending: Vec<(Victim, String)> = Vec::new();
    for v in victims {
        match s.client.delete(v.info, &v.namespace, &v.name, &params).await {
            Ok((obj, finished)) => {
                let line = match format {
                    Format::Name => object::reference(v.info, &v.name),
                    _ => format!("{} \"{}\" deleted", object::type_name(v.info), v.name),
                };
                print(&format!("{line}\n"))?;
                if !finished && a.wait {
                    let uid = serde_json::from_slice::<serde_json::Value>(&obj.json)
                        .ok()
                        .and_then(|o| o.pointer("/metadata/uid").and_then(|u| u.as_str()).map(String::from))
                        .unwrap_or_default();
                    pending.push((v, uid));
                }
            }
            Err(e) if e.reason == Reason::NotFound && a.ignore_not_found => {}
            Err(e) if e.reason == Reason::ServiceUnavailable => return Err(e.into()),
            Err(e) => {
                eprintln!("{}", report::api_error(&e));
                failed = true;
            }
        }
    }
    if !wait_until_gone(s, &pending, timeout).await? {
        failed = true;
    }
    if failed { Err(Reported.into()) } else { Ok(()) }
}

/// Polls until every object is gone (or replaced by a new one of the same
/// name); reports those still there at the deadline.
async fn wait_until_gone(s: &Session, pending: &[(Victim, String)], timeout: Duration) -> anyhow::Result<bool> {
    let deadline = Instant::now() + timeout;
    let mut all_gone = true;
    for (v, uid) in pending {
        loop {
            let gone = match s.client.get(v.info, &v.namespace, &v.name).await {
                Err(e) if e.reason == Reason::NotFound => true,
                Err(e) => return Err(e.into()),
                Ok(o) => {
                    let now: serde_json::Value = serde_json::from_slice(&o.json)?;
                    now.pointer("/metadata/uid").and_then(|u| u.as_str()) != Some(uid.as_str())
                }
            };
            if gone {
                break;
            }
            if Instant::now() >= deadline {
                eprintln!("error: timed out waiting for the condition on {}/{}", v.info.plural, v.name);
                all_gone = false;
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(all_gone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser as _;

    fn args(extra: &[&str]) -> DeleteArgs {
        let mut argv = vec!["rkubectl", "delete", "pod", "web"];
        argv.extend_from_slice(extra);
        match Cli::parse_from(argv).command {
            Command::Delete(d) => d,
            _ => unreachable!("parsed a delete"),
        }
    }

    #[test]
    fn grace_periods_follow_kubectl() {
        assert_eq!(grace_period(&args(&[])).expect("valid"), None);
        assert_eq!(grace_period(&args(&["--grace-period=0"])).expect("valid"), Some(1));
        assert_eq!(grace_period(&args(&["--grace-period=0", "--force"])).expect("valid"), Some(0));
        assert_eq!(grace_period(&args(&["--force"])).expect("valid"), Some(0));
        assert_eq!(grace_period(&args(&["--now"])).expect("valid"), Some(1));
        assert_eq!(grace_period(&args(&["--grace-period=30"])).expect("valid"), Some(30));
        assert!(grace_period(&args(&["--now", "--grace-period=5"])).is_err());
    }

    #[test]
    fn cascade_values_map_to_propagation_policies() {
        assert_eq!(propagation("background").expect("valid"), ("Background".into(), None));
        assert_eq!(propagation("foreground").expect("valid"), ("Foreground".into(), None));
        assert_eq!(propagation("orphan").expect("valid"), ("Orphan".into(), None));
        let (policy, warning) = propagation("false").expect("valid");
        assert_eq!(policy, "Orphan");
        assert_eq!(
            warning.as_deref(),
            Some("warning: --cascade=false is deprecated (boolean value) and can be replaced with --cascade=orphan.")
        );
        assert_eq!(propagation("true").expect("valid").0, "Background");
        let e = propagation("sideways").expect_err("invalid");
        assert_eq!(
            e.to_string(),
            "invalid cascade value (sideways). Must be \"background\", \"foreground\", or \"orphan\"."
        );
    }
}
