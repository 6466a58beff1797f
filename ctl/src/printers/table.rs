//! The tables `get` prints: a header and one row per object, with the
//! columns `-A`, `--show-labels` and `-L` add around a kind's own columns.

use std::collections::BTreeMap;

/// One kind's rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    /// The kind's column headers, NAME first.
    pub headers: Vec<String>,
    /// The rows, in the order the server returned the objects.
    pub rows: Vec<Row>,
}

/// One object's row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    /// The object's namespace ("" for cluster-scoped objects).
    pub namespace: String,
    /// The object's labels (for `--show-labels` and `-L`).
    pub labels: BTreeMap<String, String>,
    /// The kind's cells, the name first.
    pub cells: Vec<String>,
}

impl Table {
    /// A table with these headers.
    pub fn new<S: ToString>(headers: &[S]) -> Self {
        Table { headers: headers.iter().map(|h| h.to_string()).collect(), rows: Vec::new() }
    }
}

/// What `get` adds to a kind's columns.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// A NAMESPACE column first (`-A`).
    pub namespace_column: bool,
    /// A LABELS column last (`--show-labels`).
    pub show_labels: bool,
    /// One column per label key (`-L key`).
    pub label_columns: Vec<String>,
    /// Names as `kind/name` (more than one kind requested).
    pub kind_prefix: Option<String>,
    /// No header line (`--no-headers`).
    pub no_headers: bool,
}

impl Layout {
    /// The header line as tab-separated cells ("" with `--no-headers`).
    pub fn header(&self, table: &Table) -> String {
        if self.no_headers {
            return String::new();
        }
        let mut cells: Vec<String> = Vec::new();
        if self.namespace_column {
            cells.push("NAMESPACE".into());
        }
        cells.extend(table.headers.iter().cloned());
        cells.extend(self.label_columns.iter().map(|k| label_header(k)));
        if self.show_labels {
            cells.push("LABELS".into());
        }
        cells.join("\t") + "\n"
    }

    /// One row as tab-separated cells.
    pub fn row(&self, row: &Row) -> String {
        let mut cells: Vec<String> = Vec::new();
        if self.namespace_column {
            cells.push(row.namespace.clone());
        }
        for (i, cell) in row.cells.iter().enumerate() {
            match (&self.kind_prefix, i) {
                (Some(kind), 0) => cells.push(format!("{kind}/{cell}")),
                _ => cells.push(cell.clone()),
            }
        }
        cells.extend(self.label_columns.iter().map(|k| row.labels.get(k).cloned().unwrap_or_default()));
        if self.show_labels {
            cells.push(format_labels(&row.labels));
        }
        cells.join("\t") + "\n"
    }

    /// The whole table as tab-separated cells.
    pub fn render(&self, table: &Table) -> String {
        let mut out = self.header(table);
        for row in &table.rows {
            out.push_str(&self.row(row));
        }
        out
    }
}

/// `-L app.kubernetes.io/name` → `NAME`, as kubectl heads label columns.
fn label_header(key: &str) -> String {
    key.rsplit('/').next().unwrap_or(key).to_uppercase()
}

/// Labels as `k=v,k2=v2` (sorted), or `<none>`.
pub fn format_labels(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "<none>".into();
    }
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::printers::tabwriter::TabWriter;

    fn pods() -> Table {
        let mut t = Table::new(&["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
        t.rows.push(Row {
            namespace: "default".into(),
            labels: BTreeMap::from([("app".into(), "web".into()), ("tier".into(), "front".into())]),
            cells: ["web", "1/1", "Running", "0", "5s"].map(String::from).to_vec(),
        });
        t
    }

    #[test]
    fn all_namespaces_and_show_labels_wrap_the_kind_columns() {
        let layout = Layout { namespace_column: true, show_labels: true, ..Default::default() };
        let text = TabWriter::table().align(&layout.render(&pods()));
        assert_eq!(
            text,
            "NAMESPACE   NAME   READY   STATUS    RESTARTS   AGE   LABELS\n\
             default     web    1/1     Running   0          5s    app=web,tier=front\n"
        );
    }

    #[test]
    fn kind_prefix_label_columns_and_no_headers() {
        let layout = Layout {
            kind_prefix: Some("pod".into()),
            label_columns: vec!["example.com/tier".into(), "missing".into()],
            ..Default::default()
        };
        let text = TabWriter::table().align(&layout.render(&pods()));
        assert_eq!(text.lines().next(), Some("NAME      READY   STATUS    RESTARTS   AGE   TIER   MISSING"));
        assert!(text.contains("pod/web"), "{text}");
        let bare = Layout { no_headers: true, ..Default::default() };
        assert_eq!(bare.render(&pods()), "web\t1/1\tRunning\t0\t5s\n");
    }

    #[test]
    fn labels_format_sorted_or_none() {
        assert_eq!(format_labels(&BTreeMap::new()), "<none>");
        let l = BTreeMap::from([("b".to_string(), "2".to_string()), ("a".to_string(), "1".to_string())]);
        assert_eq!(format_labels(&l), "a=1,b=2");
    }
}
