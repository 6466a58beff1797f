//! `exec`: a command in a container, with stdin, a TTY and the command's exit
//! code becoming rkubectl's.

use super::logs::{default_container, pod_name};
use crate::cli::ExecArgs;
use crate::report::ExitWith;
use crate::session::Session;
use futures::StreamExt;
use rkube_proto::v1 as pb;
use std::io::Write as _;
use std::process::{Command, Stdio};
use tokio::io::AsyncReadExt;

/// The local terminal in raw mode while it lives (through `stty`, so no
/// terminal handling is linked in); restored on drop.
struct RawTerminal {
    saved: String,
}

impl RawTerminal {
    fn enter() -> Option<RawTerminal> {
        let saved = Command::new("stty").arg("-g").stdin(Stdio::inherit()).output().ok()?;
        if !saved.status.success() {
            return None;
        }
        let saved = String::from_utf8_lossy(&saved.stdout).trim().to_string();
        let ok = Command::new("stty").args(["raw", "-echo"]).stdin(Stdio::inherit()).status().ok()?.success();
        ok.then_some(RawTerminal { saved })
    }

    fn size() -> Option<pb::TerminalSize> {
        let out = Command::new("stty").arg("size").stdin(Stdio::inherit()).output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut it = text.split_whitespace().map(|n| n.parse::<u32>().ok());
        let (height, width) = (it.next()??, it.next()??);
        Some(pb::TerminalSize { width, height })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = Command::new("stty").arg(&self.saved).stdin(Stdio::inherit()).status();
    }
}

/// The pod name and the command, checked.
fn split_args<'a>(pod: &'a str, command: &[String]) -> anyhow::Result<(&'a str, Vec<String>)> {
    if command.is_empty() {
        return Err(crate::report::usage("you must specify at least one command for the container"));
    }
    Ok((pod_name(pod)?, command.to_vec()))
}

/// Runs `exec`.
pub async fn run(session: &Session, a: &ExecArgs) -> anyhow::Result<()> {
    let (pod, command) = split_args(&a.pod, &a.command)?;
    let container = default_container(session, pod, a.container.as_deref()).await?;
    let tty = a.tty && a.stdin;
    let start = pb::ExecStart {
        namespace: session.namespace.clone(),
        pod: pod.to_string(),
        container,
        command,
        stdin: a.stdin,
        tty,
        size: if tty { RawTerminal::size() } else { None },
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::exec_input::Input>(16);
    if a.stdin {
        tokio::spawn(async move {
            let mut stdin = tokio::io::stdin();
            let mut buf = vec![0u8; 8192];
            loop {
                match stdin.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(pb::exec_input::Input::StdinClosed(true)).await;
                        break;
                    }
                    Ok(n) => {
                        if tx.send(pb::exec_input::Input::Stdin(buf[..n].to_vec().into())).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
    } else {
        drop(tx);
    }
    let mut output = Box::pin(session.client.exec(start, tokio_stream::wrappers::ReceiverStream::new(rx)).await?);
    let _raw = if tty { RawTerminal::enter() } else { None };
    let mut code = 0i32;
    while let Some(msg) = output.next().await {
        match msg? {
            pb::exec_output::Output::Stdout(b) => {
                let mut out = std::io::stdout().lock();
                out.write_all(&b)?;
                out.flush()?;
            }
            pb::exec_output::Output::Stderr(b) => {
                let mut err = std::io::stderr().lock();
                err.write_all(&b)?;
                err.flush()?;
            }
            pb::exec_output::Output::ExitCode(c) => code = c,
        }
    }
    drop(_raw);
    if code != 0 {
        return Err(ExitWith(u8::try_from(code).unwrap_or(1)).into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pod_may_carry_its_type_and_a_command_is_required() {
        let cmd: Vec<String> = ["ls", "-l"].iter().map(|s| s.to_string()).collect();
        let (pod, c) = split_args("pod/web", &cmd).expect("valid");
        assert_eq!(pod, "web");
        assert_eq!(c, ["ls", "-l"]);
        assert!(split_args("web", &[]).is_err());
    }
}
