//! Reading `-f` sources: files, directories (their `.yaml`, `.yml` and
//! `.json` files) and `-` for stdin, each split into its documents.

use crate::report::usage;
use rkube_api::manifest::parse_documents;
use serde_json::Value;
use std::io::Read as _;
use std::path::{Path, PathBuf};

/// One document of a source.
#[derive(Debug, Clone)]
pub struct Document {
    /// Where it came from, as messages name it (`pod.yaml`, `STDIN`).
    pub source: String,
    /// The object, or why it could not be read.
    pub value: Result<Value, String>,
}

fn is_manifest(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json"))
}

fn files_in(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| usage(format!("reading {}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            if recursive {
                files_in(&path, recursive, out)?;
            }
        } else if is_manifest(&path) {
            out.push(path);
        }
    }
    Ok(())
}

fn documents(source: &str, text: &str) -> Vec<Document> {
    parse_documents(text)
        .into_iter()
        .map(|d| Document {
            source: source.to_string(),
            value: d.map_err(|e| format!("error parsing {source}: {}", e.message)),
        })
        .collect()
}

/// Reads every `-f` source, in order.
pub fn read(filenames: &[String], recursive: bool) -> anyhow::Result<Vec<Document>> {
    let mut out = Vec::new();
    for name in filenames {
        if name == "-" {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).map_err(|e| usage(format!("reading stdin: {e}")))?;
            out.extend(documents("STDIN", &text));
            continue;
        }
        let path = Path::new(name);
        if !path.exists() {
            return Err(usage(format!("the path \"{name}\" does not exist")));
        }
        let files = if path.is_dir() {
            let mut files = Vec::new();
            files_in(path, recursive, &mut files)?;
            files
        } else {
            vec![path.to_path_buf()]
        };
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|e| usage(format!("reading {}: {e}", file.display())))?;
            out.extend(documents(&file.display().to_string(), &text));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_contribute_their_manifests_in_name_order() {
        let dir = std::env::temp_dir().join(format!("rkubectl-manifests-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).expect("temp dir");
        std::fs::write(dir.join("b.yaml"), "kind: ConfigMap\napiVersion: v1\nmetadata: {name: b}\n").expect("write");
        std::fs::write(dir.join("a.json"), r#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"a"}}"#)
            .expect("write");
        std::fs::write(dir.join("notes.txt"), "not a manifest").expect("write");
        std::fs::write(dir.join("sub/c.yml"), "kind: ConfigMap\napiVersion: v1\nmetadata: {name: c}\n").expect("write");
        let names = |docs: Vec<Document>| -> Vec<String> {
            docs.into_iter()
                .map(|d| d.value.expect("valid")["metadata"]["name"].as_str().expect("name").into())
                .collect()
        };
        let flat = read(&[dir.display().to_string()], false).expect("reads");
        assert_eq!(names(flat), ["a", "b"]);
        let deep = read(&[dir.display().to_string()], true).expect("reads");
        assert_eq!(names(deep), ["a", "b", "c"]);
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn missing_paths_are_named() {
        let e = read(&["/nonexistent/x.yaml".to_string()], false).expect_err("missing");
        assert_eq!(e.to_string(), "the path \"/nonexistent/x.yaml\" does not exist");
    }

    #[test]
    fn a_syntax_error_is_reported_in_place() {
        let docs = documents("bad.yaml", "apiVersion: v1\nkind: Pod\n---\n: : :\n  - [\n");
        assert!(docs[0].value.is_ok());
        assert!(docs[1].value.as_ref().expect_err("bad").starts_with("error parsing bad.yaml: "));
    }
}
