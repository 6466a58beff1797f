//! The live objects a command that changes existing objects works on
//! (`scale`, `rollout ...`, `set image`): named as `TYPE NAME...`,
//! `TYPE/NAME...`, by the objects in `-f` files, or by type plus `-l` /
//! `--all`, then read from the server (kubectl's builder with `Latest()`).

use super::{json_of, list, place};
use crate::manifests;
use crate::report::{self, usage};
use crate::resources;
use crate::session::Session;
use rkube_api::{Reason, ResourceInfo};
use serde_json::Value;

/// How the objects were asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<'a> {
    /// `TYPE NAME...` or `TYPE/NAME...`.
    pub resources: &'a [String],
    /// `-f` sources.
    pub filenames: &'a [String],
    /// `-R`.
    pub recursive: bool,
    /// `-l`.
    pub selector: Option<&'a str>,
    /// `--all`.
    pub all: bool,
    /// A type without names selects every object of the type (as `rollout`
    /// does); otherwise it needs `-l` or `--all` (as `scale` does).
    pub type_selects_all: bool,
    /// The command's name, for messages.
    pub command: &'a str,
}

/// What was found.
#[derive(Debug, Default)]
pub struct Found {
    /// The objects, in the order asked for.
    pub objects: Vec<(&'static ResourceInfo, Value)>,
    /// Some object could not be read; its error was printed.
    pub failed: bool,
}

/// Whether nothing at all names objects.
pub fn nothing_named(q: &Query<'_>) -> bool {
    q.resources.is_empty() && q.filenames.is_empty()
}

/// Reads the objects `q` names.
pub async fn resolve(s: &Session, q: &Query<'_>) -> anyhow::Result<Found> {
    let mut found = Found::default();
    if !q.filenames.is_empty() {
        if !q.resources.is_empty() {
            return Err(usage("resource names cannot be given together with -f"));
        }
        for doc in manifests::read(q.filenames, q.recursive)? {
            let placed = doc.value.map_err(|e| format!("error: {e}")).and_then(|v| {
                let (info, namespace) = place(s, &v, &doc.source)?;
                let name = v.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
                Ok((info, namespace, name))
            });
            match placed {
                Ok((info, namespace, name)) => fetch(s, info, &namespace, &name, &mut found).await?,
                Err(message) => {
                    eprintln!("{message}");
                    found.failed = true;
                }
            }
        }
        return Ok(found);
    }
    let sel = resources::parse(q.resources, q.command)?;
    let by_selector = q.selector.is_some() || q.all;
    if sel.has_names() && by_selector {
        return Err(usage("name cannot be provided when a selector is specified"));
    }
    for t in &sel.targets {
        if t.names.is_empty() {
            if !by_selector && !q.type_selects_all {
                return Err(usage("resource(s) were provided, but no name was specified"));
            }
            for v in list(s, t.info, &s.namespace, q.selector, None).await? {
                found.objects.push((t.info, v));
            }
            continue;
        }
        for name in &t.names {
            fetch(s, t.info, &s.namespace, name, &mut found).await?;
        }
    }
    Ok(found)
}

async fn fetch(
    s: &Session,
    info: &'static ResourceInfo,
    namespace: &str,
    name: &str,
    found: &mut Found,
) -> anyhow::Result<()> {
    match s.client.get(info, namespace, name).await {
        Ok(o) => found.objects.push((info, json_of!(o)?)),
        Err(e) if e.reason == Reason::ServiceUnavailable => return Err(e.into()),
        Err(e) => {
            eprintln!("{}", report::api_error(&e));
            found.failed = true;
        }
    }
    Ok(())
}

/// `deployments.apps`, `replicationcontrollers`: how kubectl names a resource
/// in `error: deployments.apps "web" is already paused`.
pub fn resource_string(info: &ResourceInfo) -> String {
    if info.group.is_empty() { info.plural.to_string() } else { format!("{}.{}", info.plural, info.group) }
}

/// `ReplicaSet.apps`, `ReplicationController`: Go's `GroupKind.String()`.
pub fn group_kind(info: &ResourceInfo) -> String {
    if info.group.is_empty() { info.kind.to_string() } else { format!("{}.{}", info.kind, info.group) }
}
