//! The host commands podnet runs (`iptables`, `ip`), as values: the pure
//! planning functions return them, tests compare their text, and
//! [`HostCommand::run`] executes them.

use crate::error::{Error, Result};
use std::fmt;

/// One host command: a program and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCommand {
    /// The program (`iptables`, `ip`), found on `PATH`.
    pub program: &'static str,
    /// Its arguments.
    pub args: Vec<String>,
}

/// What a command printed, when it exited 0.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// Standard output.
    pub stdout: String,
}

impl HostCommand {
    /// `program` with `args`.
    pub fn new<S: Into<String>>(program: &'static str, args: impl IntoIterator<Item = S>) -> Self {
        HostCommand { program, args: args.into_iter().map(Into::into).collect() }
    }

    /// Runs the command; a non-zero exit is an [`Error::Command`] naming the
    /// command line and its stderr.
    pub async fn run(&self) -> Result<Output> {
        match self.try_run().await? {
            Ok(out) => Ok(out),
            Err((status, stderr)) => Err(Error::Command { command: self.to_string(), status, stderr }),
        }
    }

    /// Runs the command; Ok(Err((exit status, stderr))) when it exits non-zero
    /// (for probes such as `iptables -C`, where exit 1 is an answer).
    pub async fn try_run(&self) -> Result<std::result::Result<Output, (String, String)>> {
        tracing::debug!(command = %self, "running");
        let out = tokio::process::Command::new(self.program)
            .args(&self.args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|source| Error::Spawn { command: self.to_string(), source })?;
        if out.status.success() {
            Ok(Ok(Output { stdout: String::from_utf8_lossy(&out.stdout).into_owned() }))
        } else {
            let status = out.status.code().map_or_else(|| out.status.to_string(), |c| format!("exit status {c}"));
            Ok(Err((status, String::from_utf8_lossy(&out.stderr).trim().to_string())))
        }
    }
}

/// Quotes an argument the way a shell needs it (only when it needs it).
fn quote(arg: &str) -> String {
    let plain = !arg.is_empty() && arg.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@%".contains(c));
    if plain { arg.to_string() } else { format!("'{}'", arg.replace('\'', r"'\''")) }
}

impl fmt::Display for HostCommand {
    /// The command as a shell line, e.g. `iptables -w -t nat -N RKUBE-POSTROUTING`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.program)?;
        for a in &self.args {
            write!(f, " {}", quote(a))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_as_a_quoted_shell_line() {
        let c = HostCommand::new("iptables", ["-A", "X", "--comment", "rkube pod network: n1", "-s", "10.1.0.0/16"]);
        assert_eq!(c.to_string(), "iptables -A X --comment 'rkube pod network: n1' -s 10.1.0.0/16");
        assert_eq!(HostCommand::new("echo", ["it's", ""]).to_string(), r"echo 'it'\''s' ''");
    }

    #[tokio::test]
    async fn failure_names_the_command_and_its_stderr() {
        let err = HostCommand::new("sh", ["-c", "echo nope >&2; exit 3"]).run().await.unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("sh -c 'echo nope >&2; exit 3'"), "{msg}");
        assert!(msg.contains("exit status 3"), "{msg}");
        assert!(msg.contains("nope"), "{msg}");
    }

    #[tokio::test]
    async fn missing_program_is_a_spawn_error() {
        let err = HostCommand::new("rkube-no-such-program", ["x"]).run().await.unwrap_err();
        assert!(matches!(err, Error::Spawn { .. }), "{err}");
    }
}
