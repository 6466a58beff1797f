//! `get -w` / `--watch-only`: the table (or objects) of one resource type,
//! then one row (or object) per change, aligned under the first rows.

use super::get::{layout, nothing_found};
use super::{json_of, print};
use crate::cli::GetArgs;
use crate::printers::columns;
use crate::printers::object::{self, Format};
use crate::printers::table::Layout;
use crate::printers::tabwriter::TabWriter;
use crate::report::usage;
use crate::resources::Selection;
use crate::session::Session;
use futures::StreamExt as _;
use rkube_api::ResourceInfo;
use rkube_client::{ListParams, WatchEventType};
use serde_json::Value;

/// Prints objects as they arrive, remembering whether the header is out and
/// how wide the columns are.
struct Printer {
    info: &'static ResourceInfo,
    format: Format,
    layout: Layout,
    tab: TabWriter,
    header_printed: bool,
    printed: usize,
}

impl Printer {
    fn objects(&mut self, items: &[Value]) -> anyhow::Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let text = match self.format {
            Format::Table | Format::Wide => {
                let table = columns::table(self.info, items, self.format == Format::Wide)?;
                let mut text = String::new();
                if !self.header_printed {
                    text.push_str(&self.layout.header(&table));
                    self.header_printed = true;
                }
                for row in &table.rows {
                    text.push_str(&self.layout.row(row));
                }
                self.tab.align(&text)
            }
            Format::Name => {
                items.iter().map(|v| format!("{}\n", object::reference(self.info, object::name_of(v)))).collect()
            }
            Format::Yaml => {
                let mut text = String::new();
                for v in items {
                    if self.printed > 0 {
                        text.push_str("---\n");
                    }
                    text.push_str(&object::to_yaml(v)?);
                    self.printed += 1;
                }
                text
            }
            Format::Json => {
                let mut text = String::new();
                for v in items {
                    text.push_str(&object::to_json(v)?);
                }
                text
            }
        };
        print(&text)
    }
}

/// Runs `get -w`.
pub async fn run(s: &Session, a: &GetArgs, sel: &Selection, format: Format) -> anyhow::Result<()> {
    let [target] = sel.targets.as_slice() else {
        return Err(usage("you may only specify a single resource type when watching"));
    };
    if target.names.len() > 1 {
        return Err(usage(format!(
            "watch is only supported on individual resources and resource collections, but {} resources were found",
            target.names.len()
        )));
    }
    let info = target.info;
    let ns = s.namespace_for(info, a.all_namespaces);
    let mut fields: Vec<String> = a.field_selector.iter().filter(|f| !f.is_empty()).cloned().collect();
    if let [name] = target.names.as_slice() {
        fields.push(format!("metadata.name={name}"));
    }
    let lp = ListParams::default().labels(a.selector.as_deref().unwrap_or_default()).fields(&fields.join(","));
    let listed = s.client.list(info, &ns, &lp).await?;
    let mut printer = Printer {
        info,
        format,
        layout: layout(a, sel, info),
        tab: TabWriter::table(),
        header_printed: false,
        printed: 0,
    };
    if !a.watch_only {
        let items = listed.items.iter().map(|o| json_of!(o)).collect::<anyhow::Result<Vec<_>>>()?;
        if items.is_empty() && format.is_table() {
            eprintln!("{}", nothing_found(s, sel, a.all_namespaces));
        }
        printer.objects(&items)?;
    }
    let mut events = Box::pin(s.client.watch(info, &ns, &lp, &listed.resource_version).await?);
    while let Some(ev) = events.next().await {
        let ev = ev?;
        if ev.kind == WatchEventType::Bookmark {
            continue;
        }
        printer.objects(&[json_of!(ev.object)?])?;
    }
    Ok(())
}
