//! Column alignment compatible with Go's `text/tabwriter`, which kubectl
//! uses for every table and every `describe`: text is cut into cells at tabs,
//! and a column block (consecutive lines that have a tab-terminated cell in
//! that column) is padded to its widest cell. The last cell of a line is never
//! padded, so a line without tabs ends every block above it.

/// An aligner with kubectl's settings for one kind of output.
#[derive(Debug, Clone)]
pub struct TabWriter {
    min_width: usize,
    padding: usize,
    /// Widths seen so far per column, when they are remembered across calls
    /// (kubectl's `RememberWidths`, which keeps `get -w` rows under their header).
    remembered: Option<Vec<usize>>,
}

impl TabWriter {
    /// kubectl's table settings: columns at least 6 wide, 3 spaces apart,
    /// widths remembered so later rows line up with earlier ones.
    pub fn table() -> Self {
        TabWriter { min_width: 6, padding: 3, remembered: Some(Vec::new()) }
    }

    /// kubectl's `describe` settings: 2 spaces between columns.
    pub fn describe() -> Self {
        TabWriter { min_width: 0, padding: 2, remembered: None }
    }

    /// Aligns `text` (lines of tab-separated cells).
    pub fn align(&mut self, text: &str) -> String {
        let body = text.strip_suffix('\n').unwrap_or(text);
        let trailing_newline = body.len() != text.len();
        if text.is_empty() {
            return String::new();
        }
        let lines: Vec<Vec<&str>> = body.split('\n').map(|l| l.split('\t').collect()).collect();
        let mut out = String::with_capacity(text.len() * 2);
        let mut widths = Vec::new();
        self.format(&lines, &mut widths, 0, lines.len(), &mut out);
        if !trailing_newline {
            out.pop();
        }
        out
    }

    fn format(&mut self, lines: &[Vec<&str>], widths: &mut Vec<usize>, from: usize, to: usize, out: &mut String) {
        let column = widths.len();
        let mut start = from;
        let mut this = from;
        while this < to {
            if column + 1 >= lines[this].len() {
                this += 1;
                continue;
            }
            write_lines(lines, widths, start, this, out);
            start = this;
            let mut width = self.min_width;
            while this < to && column + 1 < lines[this].len() {
                width = width.max(cell_width(lines[this][column]) + self.padding);
                this += 1;
            }
            if let Some(seen) = self.remembered.as_mut() {
                if seen.len() <= column {
                    seen.resize(column + 1, 0);
                }
                width = width.max(seen[column]);
                seen[column] = width;
            }
            widths.push(width);
            self.format(lines, widths, start, this, out);
            widths.pop();
            start = this;
        }
        write_lines(lines, widths, start, to, out);
    }
}

fn cell_width(cell: &str) -> usize {
    cell.chars().count()
}

fn write_lines(lines: &[Vec<&str>], widths: &[usize], from: usize, to: usize, out: &mut String) {
    for line in &lines[from..to] {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if j < widths.len() {
                let pad = widths[j].saturating_sub(cell_width(cell));
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_columns_are_three_apart_and_at_least_six_wide() {
        let text = "NAME\tREADY\tSTATUS\tRESTARTS\tAGE\nweb\t1/1\tRunning\t0\t5s\nredis-php\t2/2\tRunning\t0\t10m\n";
        let want = "\
NAME        READY   STATUS    RESTARTS   AGE
web         1/1     Running   0          5s
redis-php   2/2     Running   0          10m
";
        assert_eq!(TabWriter::table().align(text), want);
        assert_eq!(TabWriter::table().align("NAME\tAGE\na\t1s\n"), "NAME   AGE\na      1s\n");
    }

    #[test]
    fn a_line_without_tabs_ends_the_column_block() {
        let text = "Name:\tweb\nService Account:\tdefault\nIPs:\n  IP:\t10.1.0.2\nContainers:\n";
        let want = "\
Name:             web
Service Account:  default
IPs:
  IP:  10.1.0.2
Containers:
";
        assert_eq!(TabWriter::describe().align(text), want);
    }

    #[test]
    fn remembered_widths_keep_later_rows_aligned() {
        let mut w = TabWriter::table();
        let first = w.align("NAME\tSTATUS\nweb-server-1\tRunning\n");
        assert_eq!(first, "NAME           STATUS\nweb-server-1   Running\n");
        assert_eq!(w.align("a\tPending\n"), "a              Pending\n");
    }

    #[test]
    fn trailing_cells_are_padded_only_when_tab_terminated() {
        let text = "  Type\tStatus\n  Initialized \tTrue \n";
        assert_eq!(TabWriter::describe().align(text), "  Type          Status\n  Initialized   True \n");
    }
}
