//! `api-resources`: the resource types rkube serves, as kubectl lists them.

use super::print;
use crate::cli::ApiResourcesArgs;
use crate::printers::object::Format;
use crate::printers::tabwriter::TabWriter;
use rkube_api::ResourceInfo;
use rkube_api::resource::RESOURCES;

/// The verbs every rkube resource supports.
const VERBS: &str = "[create delete get list patch update watch]";

/// The resources to list: core first, then by group, each by name.
pub fn selected(a: &ApiResourcesArgs) -> Vec<&'static ResourceInfo> {
    let mut list: Vec<&'static ResourceInfo> = RESOURCES
        .iter()
        .filter(|r| a.namespaced.is_none_or(|n| r.namespaced == n))
        .filter(|r| a.api_group.as_deref().is_none_or(|g| r.group == g))
        .collect();
    list.sort_by_key(|r| (r.group, r.plural));
    list
}

/// The table of resources.
pub fn table(list: &[&ResourceInfo], wide: bool, headers: bool) -> String {
    let mut text = String::new();
    if headers {
        text.push_str("NAME\tSHORTNAMES\tAPIVERSION\tNAMESPACED\tKIND");
        text.push_str(if wide { "\tVERBS\n" } else { "\n" });
    }
    for r in list {
        text.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}",
            r.plural,
            r.short_names.join(","),
            r.api_version,
            r.namespaced,
            r.kind
        ));
        if wide {
            text.push('\t');
            text.push_str(VERBS);
        }
        text.push('\n');
    }
    TabWriter::table().align(&text)
}

/// Runs `api-resources`.
pub fn run(a: &ApiResourcesArgs) -> anyhow::Result<()> {
    let format = Format::parse(a.output.as_deref(), &[Format::Table, Format::Wide, Format::Name])?;
    let list = selected(a);
    if format == Format::Name {
        let names: String = list
            .iter()
            .map(|r| if r.group.is_empty() { format!("{}\n", r.plural) } else { format!("{}.{}\n", r.plural, r.group) })
            .collect();
        return print(&names);
    }
    print(&table(&list, format == Format::Wide, !a.no_headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_resources_come_first_with_short_names() {
        let a = ApiResourcesArgs { namespaced: None, api_group: None, output: None, no_headers: false };
        let text = table(&selected(&a), false, true);
        let mut lines = text.lines();
        assert!(lines.next().expect("header").starts_with("NAME "));
        assert!(lines.next().expect("first").starts_with("configmaps "));
        assert!(
            text.contains(
                "replicationcontrollers     rc           v1                             true         ReplicationController"
            ),
            "{text}"
        );
        let cluster = ApiResourcesArgs { namespaced: Some(false), ..a };
        assert!(selected(&cluster).iter().all(|r| !r.namespaced));
    }
}
