//! `version`: this client's version and the server's, as `kubectl version`.

use super::print;
use crate::cli::VersionArgs;
use crate::printers::object::{self, Format};
use crate::session::Session;
use serde_json::{Value, json};

/// The Kubernetes API version rkubectl speaks, with its own version.
pub fn client_version() -> Value {
    let arch = if std::env::consts::ARCH == "x86_64" { "amd64" } else { std::env::consts::ARCH };
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": concat!("v1.33.0-rkube.", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{arch}", std::env::consts::OS),
    })
}

/// Runs `version` (`session` is None with `--client`).
pub async fn run(session: Option<&Session>, a: &VersionArgs) -> anyhow::Result<()> {
    let format = Format::parse(a.output.as_deref(), &[Format::Table, Format::Yaml, Format::Json])?;
    let client = client_version();
    let server = match session {
        Some(s) => Some(s.client.version().await),
        None => None,
    };
    if format.is_table() {
        print(&format!("Client Version: {}\n", client["gitVersion"].as_str().unwrap_or_default()))?;
        if let Some(server) = server {
            let server = server?;
            print(&format!("Server Version: {}\n", server["gitVersion"].as_str().unwrap_or_default()))?;
        }
        return Ok(());
    }
    let mut doc = json!({ "clientVersion": client });
    let mut failure = None;
    match server {
        Some(Ok(v)) => doc["serverVersion"] = v,
        Some(Err(e)) => failure = Some(e),
        None => {}
    }
    print(&object::serialize(format, &doc)?)?;
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}
