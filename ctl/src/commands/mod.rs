//! One module per command; [`run`] dispatches. Commands write results to
//! stdout and kubectl-worded errors to stderr, and fail with
//! [`Reported`](crate::report::Reported) when some object failed after others
//! succeeded.

mod api_resources;
mod apply;
mod auth;
mod autoscale;
mod create;
mod delete;
mod describe;
mod exec;
mod expose;
mod get;
mod label;
mod logs;
mod rolling_update;
mod rollout;
mod scale;
mod set_image;
mod targets;
mod top;
mod version;
mod watch;

use crate::cli::{Cli, Command};
use crate::session::Session;
use rkube_api::ResourceInfo;
use rkube_api::resource::for_kind;
use rkube_client::ListParams;
use serde_json::Value;
use std::io::Write as _;

/// Runs the command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::ApiResources(a) => return api_resources::run(a),
        Command::Version(a) if a.client => return version::run(None, a).await,
        _ => {}
    }
    let session = Session::connect(&cli.global)?;
    match &cli.command {
        Command::Create(a) => create::run(&session, a).await,
        Command::Get(a) => get::run(&session, a).await,
        Command::Describe(a) => describe::run(&session, a).await,
        Command::Delete(a) => delete::run(&session, a).await,
        Command::Label(a) => label::run(&session, a, label::Field::Labels).await,
        Command::Annotate(a) => label::run(&session, a, label::Field::Annotations).await,
        Command::Apply(a) => apply::run(&session, a).await,
        Command::Expose(a) => expose::run(&session, a).await,
        Command::Scale(a) => scale::run(&session, a).await,
        Command::Autoscale(a) => autoscale::run(&session, a).await,
        Command::RollingUpdate(a) => rolling_update::run(&session, a).await,
        Command::Rollout(a) => rollout::run(&session, a).await,
        Command::Set(a) => match &a.what {
            crate::cli::SetWhat::Image(a) => set_image::run(&session, a).await,
        },
        Command::Logs(a) => logs::run(&session, a).await,
        Command::Exec(a) => exec::run(&session, a).await,
        Command::Top(a) => match &a.what {
            crate::cli::TopWhat::Nodes(a) => top::nodes(&session, a).await,
            crate::cli::TopWhat::Pods(a) => top::pods(&session, a).await,
        },
        Command::Version(a) => version::run(Some(&session), a).await,
        Command::ApiResources(_) => unreachable!("handled above"),
        Command::Auth(a) => match &a.what {
            crate::cli::AuthWhat::CanI(a) => auth::can_i(&session, a).await,
        },
    }
}

/// Writes `text` to stdout at once (watches must not sit in a buffer).
pub fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// An object's JSON (from the wire object's `json`), with its apiVersion and kind.
pub fn object_json(json: &[u8], api_version: &str, kind: &str) -> anyhow::Result<Value> {
    let mut v: Value = serde_json::from_slice(json)?;
    if let Some(m) = v.as_object_mut() {
        m.entry("apiVersion").or_insert_with(|| api_version.into());
        m.entry("kind").or_insert_with(|| kind.into());
    }
    Ok(v)
}

/// [`object_json`] of a wire object.
macro_rules! json_of {
    ($o:expr) => {
        $crate::commands::object_json(&$o.json, &$o.api_version, &$o.kind)
    };
}
pub(crate) use json_of;

/// Creates `made`, an object derived from `target` (`expose`'s Service,
/// `autoscale`'s HPA), in the target's namespace; with `dry_run` only fills
/// in the namespace the user named. Returns the object to print, or `None`
/// once an API error has been reported.
pub async fn create_derived(
    s: &Session,
    info: &'static ResourceInfo,
    target: &Value,
    mut made: Value,
    dry_run: bool,
) -> anyhow::Result<Option<Value>> {
    if dry_run {
        if s.namespace_explicit {
            made["metadata"]["namespace"] = s.namespace.clone().into();
        }
        return Ok(Some(made));
    }
    let ns = crate::printers::object::namespace_of(target);
    let ns = if ns.is_empty() { s.namespace.clone() } else { ns.to_string() };
    match s.client.create(info, &ns, serde_json::to_vec(&made)?).await {
        Ok(created) => Ok(Some(json_of!(created)?)),
        Err(e) => {
            eprintln!("{}", crate::report::api_error(&e));
            Ok(None)
        }
    }
}

/// Lists objects; `selector`/`fields` as the user gave them.
pub async fn list(
    s: &Session,
    info: &ResourceInfo,
    namespace: &str,
    selector: Option<&str>,
    fields: Option<&str>,
) -> anyhow::Result<Vec<Value>> {
    let lp = ListParams::default().labels(selector.unwrap_or_default()).fields(fields.unwrap_or_default());
    let resp = s.client.list(info, namespace, &lp).await?;
    resp.items.iter().map(|o| json_of!(o)).collect()
}

/// Where a manifest's object goes: its resource and namespace. Errors are
/// the full lines kubectl prints.
pub fn place(s: &Session, v: &Value, source: &str) -> Result<(&'static ResourceInfo, String), String> {
    let api_version = v.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or_default();
    let name = v.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let doc_ns = v.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default();
    let missing: Vec<&str> =
        [("apiVersion", api_version), ("kind", kind)].iter().filter(|(_, v)| v.is_empty()).map(|(f, _)| *f).collect();
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(|f| format!("{f} not set")).collect();
        let list = if list.len() == 1 { list[0].clone() } else { format!("[{}]", list.join(", ")) };
        return Err(format!("error: error validating \"{source}\": error validating data: {list}"));
    }
    let info = for_kind(api_version, kind).map_err(|e| {
        format!(
            "error: resource mapping not found for name: \"{name}\" namespace: \"{doc_ns}\" from \"{source}\": {}\nensure CRDs are installed first",
            e.message
        )
    })?;
    if !info.namespaced {
        return Ok((info, String::new()));
    }
    if !doc_ns.is_empty() && s.namespace_explicit && doc_ns != s.namespace {
        return Err(format!(
            "error: the namespace from the provided object \"{doc_ns}\" does not match the namespace \"{}\". You must pass '--namespace={doc_ns}' to perform this operation.",
            s.namespace
        ));
    }
    let ns = if doc_ns.is_empty() { s.namespace.clone() } else { doc_ns.to_string() };
    Ok((info, ns))
}
