//! Runs `nft`, the nftables command: to look at a table (`nft -j list`)
//! and to apply a script by hand (`nft -f -`, one transaction). The proxy
//! itself programs its table over netlink ([`crate::netlink`]); this is for
//! inspection and for the tests, which check what the proxy sent against
//! what nft reads back.

use std::process::Stdio;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::{Child, ChildStdin, Command};

/// How `nft` failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `nft` could not be started.
    #[error("starting nft (is nftables installed? apt-get install nftables): {0}")]
    Spawn(#[source] std::io::Error),
    /// Talking to `nft` failed.
    #[error("writing to nft: {0}")]
    Io(#[source] std::io::Error),
    /// `nft` rejected the script; its message quotes the failing line.
    #[error("nft rejected the transaction ({status}): {stderr}")]
    Rejected {
        /// nft's exit status.
        status: std::process::ExitStatus,
        /// nft's error output (`/dev/stdin:LINE:COL: Error: … <the line>`).
        stderr: String,
    },
}

/// A result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The `nft` binary: `$RKUBE_NFT` or `nft` on the PATH.
fn nft_binary() -> String {
    std::env::var("RKUBE_NFT").unwrap_or_else(|_| "nft".into())
}

/// A transaction being streamed to `nft -f -`.
#[derive(Debug)]
pub struct Transaction {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Reads nft's error output while the script is written, so that neither side blocks.
    stderr: tokio::task::JoinHandle<String>,
    written: usize,
}

impl Transaction {
    /// Starts `nft -f -`.
    pub fn start() -> Result<Transaction> {
        let mut child = Command::new(nft_binary())
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(Error::Spawn)?;
        let stdin = child.stdin.take();
        let mut err = child.stderr.take();
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            if let Some(err) = &mut err {
                let _ = err.read_to_string(&mut text).await;
            }
            text
        });
        Ok(Transaction { child, stdin, stderr, written: 0 })
    }

    /// Sends more of the script. A write error (nft gave up early) is
    /// reported by [`Transaction::commit`] with nft's message.
    pub async fn write(&mut self, text: &str) {
        self.written += text.len();
        if let Some(stdin) = &mut self.stdin
            && stdin.write_all(text.as_bytes()).await.is_err()
        {
            self.stdin = None;
        }
    }

    /// Bytes of script written so far.
    pub fn written(&self) -> usize {
        self.written
    }

    /// Ends the script and waits for nft to apply it.
    pub async fn commit(mut self) -> Result<()> {
        if let Some(mut stdin) = self.stdin.take() {
            // A broken pipe means nft exited early: its status says why.
            let _ = stdin.shutdown().await;
        }
        let status = self.child.wait().await.map_err(Error::Io)?;
        let stderr = (&mut self.stderr).await.unwrap_or_default();
        if status.success() { Ok(()) } else { Err(Error::Rejected { status, stderr: stderr.trim().to_string() }) }
    }
}

/// Applies `script` in one transaction.
pub async fn apply(script: &str) -> Result<()> {
    let mut tx = Transaction::start()?;
    tx.write(script).await;
    tx.commit().await
}

/// Deletes `ip <table>` if it exists (`add` first makes the delete succeed
/// either way, in one transaction).
pub async fn delete_table(table: &str) -> Result<()> {
    apply(&format!("add table ip {table}\ndelete table ip {table}\n")).await
}

/// `nft -j list table ip <table>`, parsed; None when the table does not exist.
pub async fn list_table_json(table: &str) -> Result<Option<serde_json::Value>> {
    let out = Command::new(nft_binary())
        .args(["-j", "list", "table", "ip", table])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(Error::Spawn)?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("No such file or directory") {
            return Ok(None);
        }
        return Err(Error::Rejected { status: out.status, stderr: stderr.trim().to_string() });
    }
    serde_json::from_slice(&out.stdout)
        .map(Some)
        .map_err(|e| Error::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
}
