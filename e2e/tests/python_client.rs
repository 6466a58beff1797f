//! The official Python `kubernetes` client (from PyPI, in a virtualenv under
//! the target directory) against a cluster of the real binaries:
//! `e2e/python/client_check.py` does typed CRUD, a watch, patches, the scale
//! subresource and deletes through the REST API.

use anyhow::{Context as _, bail};
use rkube_e2e::{Cluster, Options};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A virtualenv with the `kubernetes` package, made once per target directory.
fn python_with_client() -> anyhow::Result<PathBuf> {
    let venv = rkube_e2e::bin_dir().join("python-kubernetes");
    let python = venv.join("bin/python");
    let has_client = |python: &Path| {
        Command::new(python).args(["-c", "import kubernetes"]).output().is_ok_and(|o| o.status.success())
    };
    if has_client(&python) {
        return Ok(python);
    }
    let run = |cmd: &mut Command| -> anyhow::Result<()> {
        let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
        if !out.status.success() {
            bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    };
    run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    run(Command::new(venv.join("bin/pip")).args(["install", "--quiet", "kubernetes"]))?;
    Ok(python)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_client_does_crud_watch_patch_and_delete() -> anyhow::Result<()> {
    let python = python_with_client()?;
    let cluster = Cluster::start_with(Options { nodes: 1, ..Options::default() }).await?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/client_check.py");
    let out = Command::new(&python).arg(&script).arg(cluster.kubeconfig_path()?).output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || stdout.trim() != "OK" {
        bail!("{} failed:\n{stdout}{}\n{}", script.display(), String::from_utf8_lossy(&out.stderr), cluster.logs());
    }
    Ok(())
}
