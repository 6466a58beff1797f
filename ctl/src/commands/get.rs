//! `get`: tables per kind (with `-A`, `--show-labels`, `-L`, `-o wide`),
//! or the objects as YAML, JSON or names; `-w` hands over to [`super::watch`].

use super::{json_of, list, print};
use crate::cli::GetArgs;
use crate::printers::columns;
use crate::printers::object::{self, Format};
use crate::printers::table::Layout;
use crate::printers::tabwriter::TabWriter;
use crate::report::{self, Reported, usage};
use crate::resources::{self, Selection};
use crate::session::Session;
use rkube_api::{Reason, ResourceInfo};
use serde_json::Value;

/// The formats `get` prints.
pub const GET_FORMATS: [Format; 5] = [Format::Table, Format::Wide, Format::Yaml, Format::Json, Format::Name];

/// How `get`'s tables look for `info`.
pub fn layout(a: &GetArgs, sel: &Selection, info: &ResourceInfo) -> Layout {
    Layout {
        namespace_column: a.all_namespaces && info.namespaced,
        show_labels: a.show_labels,
        label_columns: a.label_columns.clone(),
        kind_prefix: sel.several_types().then(|| object::type_name(info)),
        no_headers: a.no_headers,
    }
}

/// `No resources found in default namespace.`
pub fn nothing_found(s: &Session, sel: &Selection, all_namespaces: bool) -> String {
    if all_namespaces || sel.targets.iter().all(|t| !t.info.namespaced) {
        "No resources found".into()
    } else {
        format!("No resources found in {} namespace.", s.namespace)
    }
}

/// Checks the combinations kubectl refuses.
pub fn check_selection(sel: &Selection, a: &GetArgs) -> anyhow::Result<()> {
    if sel.targets.is_empty() {
        return Err(usage(
            "You must specify the type of resource to get. Use \"rkubectl api-resources\" for a complete list of supported resources.",
        ));
    }
    if sel.has_names() && a.all_namespaces {
        return Err(usage("a resource cannot be retrieved by name across all namespaces"));
    }
    if sel.has_names() && a.selector.is_some() {
        return Err(usage("name cannot be provided when a selector is specified"));
    }
    Ok(())
}

/// Runs `get`.
pub async fn run(s: &Session, a: &GetArgs) -> anyhow::Result<()> {
    let sel = resources::parse(&a.resources, "get")?;
    check_selection(&sel, a)?;
    let format = Format::parse(a.output.as_deref(), &GET_FORMATS)?;
    if a.watch || a.watch_only {
        return super::watch::run(s, a, &sel, format).await;
    }
    let mut errors: Vec<String> = Vec::new();
    let mut groups: Vec<(&'static ResourceInfo, Vec<Value>)> = Vec::new();
    for t in &sel.targets {
        let ns = s.namespace_for(t.info, a.all_namespaces);
        let items = if t.names.is_empty() {
            list(s, t.info, &ns, a.selector.as_deref(), a.field_selector.as_deref()).await?
        } else {
            let mut items = Vec::new();
            for name in &t.names {
                match s.client.get(t.info, &ns, name).await {
                    Ok(o) => items.push(json_of!(o)?),
                    Err(e) if e.reason == Reason::NotFound && a.ignore_not_found => {}
                    Err(e) if e.reason == Reason::ServiceUnavailable => return Err(e.into()),
                    Err(e) => errors.push(report::api_error(&e)),
                }
            }
            items
        };
        groups.push((t.info, items));
    }

    let total: usize = groups.iter().map(|(_, items)| items.len()).sum();
    if format.is_table() {
        let mut out = String::new();
        for (info, items) in &groups {
            if items.is_empty() {
                continue;
            }
            let table = columns::table(info, items, format == Format::Wide)?;
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&TabWriter::table().align(&layout(a, &sel, info).render(&table)));
        }
        print(&out)?;
        if total == 0 && !sel.has_names() {
            eprintln!("{}", nothing_found(s, &sel, a.all_namespaces));
        }
    } else {
        let mut items = Vec::new();
        let mut infos = Vec::new();
        for (info, group) in groups {
            for v in group {
                infos.push(info);
                items.push(v);
            }
        }
        let names: Vec<String> =
            items.iter().zip(&infos).map(|(v, info)| object::reference(info, object::name_of(v))).collect();
        let text = match format {
            Format::Name => names.iter().map(|n| format!("{n}\n")).collect(),
            // Named objects that were not found print no empty List.
            _ if items.is_empty() && sel.has_names() => String::new(),
            _ => object::serialize(format, &object::document(items, sel.single))?,
        };
        print(&text)?;
    }
    for e in &errors {
        eprintln!("{e}");
    }
    if errors.is_empty() { Ok(()) } else { Err(Reported.into()) }
}
