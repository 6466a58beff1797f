//! The keys of a config map or secret from `--from-literal=key=value`,
//! `--from-file=[key=]path` (a directory adds each regular file) and
//! `--from-env-file=path`, checked the way kubectl checks them.

use crate::cli::DataSources;
use crate::report::usage;
use std::collections::BTreeMap;
use std::path::Path;

/// The keys collected so far, each with its raw bytes.
#[derive(Debug, Default, PartialEq)]
pub struct Entries {
    /// Keys in insertion-independent (sorted) order.
    pub values: BTreeMap<String, Vec<u8>>,
}

/// `key=value` → (key, value); the value may contain `=`.
pub fn parse_literal(source: &str) -> anyhow::Result<(String, String)> {
    match source.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(usage(format!("invalid literal source {source}, expected key=value"))),
    }
}

/// `[key=]path` → (key if given, path).
pub fn parse_file_source(source: &str) -> anyhow::Result<(Option<String>, String)> {
    match source.matches('=').count() {
        0 => Ok((None, source.to_string())),
        1 if source.starts_with('=') => {
            Err(usage(format!("key name for file path {} missing", source.trim_start_matches('='))))
        }
        1 if source.ends_with('=') => {
            Err(usage(format!("file path for key name {} missing", source.trim_end_matches('='))))
        }
        1 => {
            let (k, p) = source.split_once('=').expect("one '='");
            Ok((Some(k.to_string()), p.to_string()))
        }
        _ => Err(usage("key names or file paths cannot contain '='")),
    }
}

/// Checks a config map or secret key (`[-._a-zA-Z0-9]+`).
pub fn validate_key(key: &str, kind: &str) -> anyhow::Result<()> {
    let valid = !key.is_empty()
        && key.len() <= 253
        && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && key != "."
        && key != ".."
        && !key.starts_with("..");
    if valid {
        return Ok(());
    }
    Err(usage(format!(
        "\"{key}\" is not a valid key name for a {kind}: a valid config key must consist of alphanumeric characters, \
         '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
    )))
}

impl Entries {
    fn add(&mut self, key: &str, value: Vec<u8>, kind: &str, name: &str) -> anyhow::Result<()> {
        validate_key(key, kind)?;
        if self.values.contains_key(key) {
            return Err(usage(format!(
                "cannot add key \"{key}\", another key by that name already exists in Data for {kind} \"{name}\""
            )));
        }
        self.values.insert(key.to_string(), value);
        Ok(())
    }

    fn add_file(&mut self, key: &str, path: &Path, kind: &str, name: &str) -> anyhow::Result<()> {
        let bytes = std::fs::read(path).map_err(|e| usage(format!("error reading {}: {e}", path.display())))?;
        self.add(key, bytes, kind, name)
    }

    /// Collects every source, in the order literal, file, env file, for the
    /// `kind` ("ConfigMap", "Secret") called `name`.
    pub fn collect(sources: &DataSources, kind: &str, name: &str) -> anyhow::Result<Entries> {
        let mut e = Entries::default();
        for lit in &sources.literals {
            let (k, v) = parse_literal(lit)?;
            e.add(&k, v.into_bytes(), kind, name)?;
        }
        for src in &sources.files {
            let (key, path) = parse_file_source(src)?;
            let p = Path::new(&path);
            let meta = std::fs::metadata(p).map_err(|err| usage(format!("error reading {path}: {err}")))?;
            if meta.is_dir() {
                if key.is_some() {
                    return Err(usage("cannot give a key name for a directory path"));
                }
                let mut files: Vec<_> = std::fs::read_dir(p)
                    .map_err(|err| usage(format!("error listing files in {path}: {err}")))?
                    .filter_map(|d| d.ok())
                    .filter(|d| d.file_type().is_ok_and(|t| t.is_file()))
                    .map(|d| d.path())
                    .collect();
                files.sort();
                for f in files {
                    let k = f.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
                    e.add_file(&k, &f, kind, name)?;
                }
            } else {
                let k = key.unwrap_or_else(|| p.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string());
                e.add_file(&k, p, kind, name)?;
            }
        }
        for env in &sources.env_files {
            let text = std::fs::read_to_string(env).map_err(|err| usage(format!("error reading {env}: {err}")))?;
            for (k, v) in parse_env_file(&text)? {
                e.add(&k, v.into_bytes(), kind, name)?;
            }
        }
        Ok(e)
    }

    /// The keys split as a config map stores them: UTF-8 values in `data`,
    /// the rest in `binaryData`.
    pub fn split_utf8(self) -> (BTreeMap<String, String>, BTreeMap<String, Vec<u8>>) {
        let mut text = BTreeMap::new();
        let mut binary = BTreeMap::new();
        for (k, v) in self.values {
            match String::from_utf8(v) {
                Ok(s) => {
                    text.insert(k, s);
                }
                Err(e) => {
                    binary.insert(k, e.into_bytes());
                }
            }
        }
        (text, binary)
    }
}

/// `KEY=value` lines; blank lines and `#` comments are skipped, and a bare
/// `KEY` takes its value from this process's environment.
pub fn parse_env_file(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_start_matches('\u{feff}').trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = match line.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (line.trim_end().to_string(), std::env::var(line.trim_end()).unwrap_or_default()),
        };
        if k.is_empty() || k.contains(char::is_whitespace) {
            return Err(usage(format!("line {}: invalid environment variable name \"{k}\"", i + 1)));
        }
        out.push((k, v));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_split_at_the_first_equals() {
        assert_eq!(parse_literal("k=v=w").expect("valid"), ("k".into(), "v=w".into()));
        assert_eq!(parse_literal("k=").expect("valid"), ("k".into(), String::new()));
        assert_eq!(
            parse_literal("novalue").expect_err("invalid").to_string(),
            "invalid literal source novalue, expected key=value"
        );
    }

    #[test]
    fn file_sources_may_name_their_key() {
        assert_eq!(parse_file_source("/etc/app.conf").expect("valid"), (None, "/etc/app.conf".into()));
        assert_eq!(
            parse_file_source("conf=/etc/app.conf").expect("valid"),
            (Some("conf".into()), "/etc/app.conf".into())
        );
        assert!(parse_file_source("=/etc/x").expect_err("no key").to_string().contains("key name for file path"));
        assert!(parse_file_source("k=").expect_err("no path").to_string().contains("file path for key name k"));
        assert!(parse_file_source("a=b=c").is_err());
    }

    #[test]
    fn keys_are_validated() {
        assert!(validate_key("app.log-level_2", "ConfigMap").is_ok());
        let e = validate_key("a b", "ConfigMap").expect_err("space");
        assert!(e.to_string().starts_with("\"a b\" is not a valid key name for a ConfigMap"), "{e}");
    }

    #[test]
    fn sources_collect_files_directories_and_reject_duplicates() {
        let dir = std::env::temp_dir().join(format!("rkubectl-data-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("conf.d/nested")).expect("temp dir");
        std::fs::write(dir.join("server.xml"), "<Server/>").expect("write");
        std::fs::write(dir.join("conf.d/a.properties"), "a=1").expect("write");
        std::fs::write(dir.join("conf.d/blob.bin"), [0xff, 0x00]).expect("write");
        let sources = DataSources {
            literals: vec!["loglevel=info".into()],
            files: vec![
                format!("key-serverxml={}", dir.join("server.xml").display()),
                dir.join("conf.d").display().to_string(),
            ],
            env_files: vec![],
        };
        let (text, binary) = Entries::collect(&sources, "ConfigMap", "app").expect("collects").split_utf8();
        assert_eq!(text.keys().collect::<Vec<_>>(), ["a.properties", "key-serverxml", "loglevel"]);
        assert_eq!(binary.get("blob.bin"), Some(&vec![0xff, 0x00]));
        let dup = DataSources { literals: vec!["k=1".into(), "k=2".into()], files: vec![], env_files: vec![] };
        let e = Entries::collect(&dup, "ConfigMap", "app").expect_err("duplicate");
        assert!(e.to_string().contains("another key by that name already exists"), "{e}");
        let keyed_dir =
            DataSources { literals: vec![], files: vec![format!("k={}", dir.display())], env_files: vec![] };
        assert!(Entries::collect(&keyed_dir, "ConfigMap", "app").is_err());
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn env_files_skip_comments() {
        let pairs = parse_env_file("# comment\n\nA=1\nB=two words\n").expect("valid");
        assert_eq!(pairs, [("A".to_string(), "1".to_string()), ("B".to_string(), "two words".to_string())]);
    }
}
