//! Runs the real `rkubectl` binary against a real apiserver (testkit: real
//! etcd, in-process apiserver) and captures what a user would see.

#![allow(dead_code)]

pub mod kubelet;
pub mod replication;

use rkube_testkit::TestApiserver;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// What one invocation printed and how it exited.
#[derive(Debug)]
pub struct Output {
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// The exit code.
    pub code: i32,
}

/// An apiserver plus a scratch directory for manifests.
pub struct Cluster {
    /// The apiserver (and its etcd).
    pub server: TestApiserver,
    dir: PathBuf,
}

/// The rkubectl command with the environment cleared of user configuration.
pub fn rkubectl(server: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rkubectl"));
    cmd.arg("--server")
        .arg(server)
        .env_remove("RKUBE_SERVER")
        .env("RKUBECONFIG", "/nonexistent/rkube-config")
        .kill_on_drop(true);
    cmd
}

/// Runs a prepared command to completion.
pub async fn output_of(mut cmd: Command, stdin: Option<&str>) -> anyhow::Result<Output> {
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    let mut input = child.stdin.take().expect("stdin is piped");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await?;
    }
    drop(input);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await??;
    Ok(Output {
        stdout: String::from_utf8(out.stdout)?,
        stderr: String::from_utf8(out.stderr)?,
        code: out.status.code().unwrap_or(-1),
    })
}

impl Cluster {
    /// Starts etcd and an apiserver.
    pub async fn start() -> anyhow::Result<Cluster> {
        let server = TestApiserver::start().await?;
        let dir = std::env::temp_dir().join(format!("rkubectl-it-{}-{}", std::process::id(), server.addr().port()));
        std::fs::create_dir_all(&dir)?;
        Ok(Cluster { server, dir })
    }

    /// Runs `rkubectl --server <url> args...`.
    pub async fn run(&self, args: &[&str]) -> anyhow::Result<Output> {
        let mut cmd = rkubectl(&self.server.url());
        cmd.args(args);
        output_of(cmd, None).await
    }

    /// Runs it with `stdin` as its standard input.
    pub async fn run_with_stdin(&self, args: &[&str], stdin: &str) -> anyhow::Result<Output> {
        let mut cmd = rkubectl(&self.server.url());
        cmd.args(args);
        output_of(cmd, Some(stdin)).await
    }

    /// Runs it and requires success.
    pub async fn ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.run(args).await?;
        anyhow::ensure!(out.code == 0, "rkubectl {args:?} failed ({}): {}{}", out.code, out.stdout, out.stderr);
        Ok(out.stdout)
    }

    /// Writes a file in the scratch directory; returns its path.
    pub fn file(&self, name: &str, content: &str) -> String {
        let path = self.dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("scratch directory");
        }
        std::fs::write(&path, content).expect("write a scratch file");
        path.display().to_string()
    }

    /// Starts a long-running rkubectl (e.g. `get -w`) whose output accumulates.
    pub fn spawn(&self, args: &[&str]) -> anyhow::Result<Running> {
        let mut cmd = rkubectl(&self.server.url());
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn()?;
        let stdout = Arc::new(Mutex::new(String::new()));
        let lines = stdout.clone();
        let pipe = child.stdout.take().expect("stdout is piped");
        tokio::spawn(async move {
            let mut reader = BufReader::new(pipe).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let mut out = lines.lock().expect("output lock");
                out.push_str(&line);
                out.push('\n');
            }
        });
        Ok(Running { child, stdout })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running rkubectl.
pub struct Running {
    child: Child,
    stdout: Arc<Mutex<String>>,
}

impl Running {
    /// What it printed so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().expect("output lock").clone()
    }

    /// Waits until its output contains `text`.
    pub async fn wait_for_output(&self, text: &str) -> anyhow::Result<()> {
        let result = rkube_testkit::wait_for(Duration::from_secs(20), || async { self.stdout().contains(text) }).await;
        result.map_err(|e| anyhow::anyhow!("{e}: waiting for {text:?}; output so far:\n{}", self.stdout()))
    }

    /// Waits until it exits by itself; returns its exit code.
    pub async fn wait(mut self) -> anyhow::Result<i32> {
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await??;
        Ok(status.code().unwrap_or(-1))
    }

    /// Stops it.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// The repository's `examples/` directory.
pub fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("examples")
}
