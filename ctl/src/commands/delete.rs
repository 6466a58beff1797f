//! `delete`: by type and names, by selector or `--all`, or by the objects in
//! `-f` files; `--grace-period`, `--now`, `--force`, `--cascade`; then, with
//! `--wait` (the default), waits up to `--timeout` until the objects are gone.

use super::{list, place, print};
use crate::cli::DeleteArgs;
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

/// `30s`, `2m`, `1h`, `500ms`, or plain seconds.
pub fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| usage(format!("invalid duration \"{s}\"")))?;
    Ok(match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(usage(format!("invalid duration \"{s}\""))),
    })
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

fn propagation(cascade: &str) -> anyhow::Result<Option<String>> {
    match cascade {
        "background" | "true" => Ok(Some("Background".into())),
        "foreground" => Ok(Some("Foreground".into())),
        "orphan" | "false" => Ok(Some("Orphan".into())),
        other => Err(usage(format!(
            "invalid cascade value ({other}). Must be \"background\", \"foreground\", or \"orphan\"."
        ))),
    }
}

/// Runs `delete`.
pub async fn run(s: &Session, a: &DeleteArgs) -> anyhow::Result<()> {
    let format = Format::parse(a.output.as_deref(), &[Format::Table, Format::Name])?;
    let params = DeleteParams {
        grace_period_seconds: grace_period(a)?,
        propagation_policy: propagation(&a.cascade)?,
        ..Default::default()
    };
    let timeout = parse_duration(&a.timeout)?;
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
    fn durations_parse() {
        assert_eq!(parse_duration("30s").expect("valid"), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").expect("valid"), Duration::from_secs(120));
        assert_eq!(parse_duration("10").expect("valid"), Duration::from_secs(10));
        assert!(parse_duration("soon").is_err());
    }
}
