//! `create -f FILE|DIR|-`: every document is created on its own and reported
//! like kubectl (`pod/web created`, or the server's error naming the file);
//! one failure does not stop the rest, but the command then exits 1. Also
//! `create configmap|secret generic|namespace` from flags.

mod config;
mod data;

use super::{json_of, place, print};
use crate::cli::{CreateArgs, CreateOutput, CreateWhat, SecretKind};
use crate::manifests;
use crate::printers::object::{self, Format};
use crate::report::{self, Reported, usage};
use crate::session::Session;
use rkube_api::ResourceInfo;
use rkube_api::resource::lookup;
use serde_json::Value;

/// Runs `create`.
pub async fn run(s: &Session, a: &CreateArgs) -> anyhow::Result<()> {
    match &a.what {
        Some(CreateWhat::Configmap(c)) => submit(s, config::config_map(s, c)?, &c.output).await,
        Some(CreateWhat::Secret { kind: SecretKind::Generic(c) }) => submit(s, config::secret(s, c)?, &c.output).await,
        Some(CreateWhat::Namespace(n)) => {
            let ns = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n.name}});
            submit(s, ns, &n.output).await
        }
        None => from_files(s, a).await,
    }
}

/// What `create` prints for a created object.
fn created(format: Format, info: &ResourceInfo, obj: &Value, dry_run: bool) -> anyhow::Result<String> {
    let reference = object::reference(info, object::name_of(obj));
    Ok(match format {
        Format::Name => format!("{reference}\n"),
        Format::Yaml => object::to_yaml(obj)?,
        Format::Json => object::to_json(obj)?,
        _ if dry_run => format!("{reference} created (dry run)\n"),
        _ => format!("{reference} created\n"),
    })
}

const CREATE_FORMATS: [Format; 4] = [Format::Table, Format::Name, Format::Yaml, Format::Json];

/// Creates one object built from flags.
async fn submit(s: &Session, obj: Value, out: &CreateOutput) -> anyhow::Result<()> {
    let format = Format::parse(out.output.as_deref(), &CREATE_FORMATS)?;
    let kind = obj["kind"].as_str().expect("built objects have a kind");
    let info = lookup(kind).expect("built kinds are in the table");
    let ns = if info.namespaced { s.namespace.clone() } else { String::new() };
    match out.dry_run.as_str() {
        "none" => {}
        "client" => return print(&created(format, info, &obj, true)?),
        "server" => return Err(usage("--dry-run=server is not supported by rkube; use --dry-run=client")),
        other => {
            return Err(usage(format!(
                "Invalid dry-run value ({other}). Must be \"none\", \"server\", or \"client\"."
            )));
        }
    }
    let body = serde_json::to_vec(&obj)?;
    let created_obj = s.client.create(info, &ns, body).await?;
    print(&created(format, info, &json_of!(created_obj)?, false)?)
}

async fn from_files(s: &Session, a: &CreateArgs) -> anyhow::Result<()> {
    if a.filenames.is_empty() {
        return Err(usage(
            "must specify one of -f and -k, or a subcommand (configmap, namespace, secret generic); see rkubectl create --help",
        ));
    }
    let format = Format::parse(a.output.as_deref(), &CREATE_FORMATS)?;
    let docs = manifests::read(&a.filenames, a.recursive)?;
    if docs.is_empty() {
        return Err(usage("no objects passed to create"));
    }
    let mut failed = false;
    for doc in &docs {
        let result = async {
            let v = doc.value.clone().map_err(|e| format!("error: {e}"))?;
            let (info, ns) = place(s, &v, &doc.source)?;
            let body = serde_json::to_vec(&v).map_err(|e| format!("error: {e}"))?;
            let obj = s
                .client
                .create(info, &ns, body)
                .await
                .map_err(|e| report::api_error_in(&e, "creating", &doc.source))?;
            let value = json_of!(obj).map_err(|e| format!("error: {e}"))?;
            created(format, info, &value, false).map_err(|e| format!("error: {e}"))
        }
        .await;
        match result {
            Ok(text) => print(&text)?,
            Err(message) => {
                eprintln!("{message}");
                failed = true;
            }
        }
    }
    if failed { Err(Reported.into()) } else { Ok(()) }
}
