//! `GET /api/v1/namespaces/{ns}/pods/{name}/exec`: a command in a container,
//! over a WebSocket, relayed to the kubelet of the pod's node.
//!
//! The request names the command and streams in its query, as
//! `PodExecOptions`: `command` (repeated), `container`, `stdin`, `stdout`,
//! `stderr` and `tty`. It must be a WebSocket upgrade offering one of the
//! remotecommand subprotocols [`Protocol::V5`] (`v5.channel.k8s.io`, the only
//! one kubectl 1.30+ offers) or [`Protocol::V4`] (`v4.channel.k8s.io`, the
//! Python client up to v35); the best one offered is chosen and echoed in
//! `Sec-WebSocket-Protocol`.
//!
//! Every message, either way, is binary (text is accepted from clients, as
//! the Python client sends it) and starts with a channel byte:
//!
//! | channel | direction | payload |
//! |---|---|---|
//! | 0 stdin | client → server | bytes for the command's stdin |
//! | 1 stdout, 2 stderr | server → client | the command's output |
//! | 3 error | server → client | a `metav1.Status` once the command ended |
//! | 4 resize | client → server | `{"Width":80,"Height":24}` (TTY size) |
//! | 255 close (v5) | client → server | one byte, the channel the client closed: `[255, 0]` ends stdin |
//!
//! When the command exits the server sends, on channel 3,
//! `{"metadata":{},"status":"Success"}` or a `NonZeroExitCode` failure whose
//! `details.causes` carry the exit code (kubectl exits with it), then closes
//! the WebSocket. Failures after the upgrade (the kubelet refusing the exec,
//! a container that is not running) are also a `Failure` status on channel
//! 3, as kube-apiserver reports them. Failures before it (bad options, a
//! missing pod or container, no upgrade) are an HTTP `metav1.Status`.
//!
//! Not supported: the older `v1`–`v3` and `base64` channel protocols, and
//! SPDY (kubectl only falls back to it when the WebSocket upgrade fails).

use super::error_response;
use super::query::Query;
use crate::node_proxy::{NodeProxy, kubelet_error, start_for};
use axum::extract::FromRequestParts;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocketUpgrade, close_code};
use axum::http::header;
use axum::response::Response;
use bytes::Bytes;
use futures::{Sink, SinkExt, Stream, StreamExt};
use rkube_api::{ApiError, Result};
use rkube_proto::v1 as pb;
use rkube_proto::v1::exec_input::Input;
use rkube_proto::v1::exec_output::Output;
use serde::Deserialize;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::debug;

/// The channel of the command's stdin (client → server).
pub const STDIN: u8 = 0;
/// The channel of the command's stdout (server → client).
pub const STDOUT: u8 = 1;
/// The channel of the command's stderr (server → client).
pub const STDERR: u8 = 2;
/// The channel of the final `metav1.Status` (server → client).
pub const ERROR: u8 = 3;
/// The channel of terminal resizes (client → server).
pub const RESIZE: u8 = 4;
/// The channel on which a v5 client says it closed one of its channels.
pub const CLOSE: u8 = 255;

/// Messages from the client waiting for the kubelet to read them; beyond
/// this the relay stops reading the WebSocket.
const INPUT_BUFFER: usize = 16;
/// How long, after sending its close, the server waits for the client's.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// A remotecommand WebSocket subprotocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `v5.channel.k8s.io`: v4 plus the close channel (255).
    V5,
    /// `v4.channel.k8s.io`: stdin, stdout, stderr, a JSON status on the
    /// error channel, resize.
    V4,
}

impl Protocol {
    /// Every supported protocol, best first.
    pub const ALL: [Protocol; 2] = [Protocol::V5, Protocol::V4];

    /// The protocol's name in `Sec-WebSocket-Protocol`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::V5 => "v5.channel.k8s.io",
            Protocol::V4 => "v4.channel.k8s.io",
        }
    }

    /// The protocol called `name`, if it is supported.
    pub fn from_name(name: &str) -> Option<Protocol> {
        Protocol::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// What an exec request asks for (`PodExecOptions`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOptions {
    /// The command and its arguments; not run through a shell.
    pub command: Vec<String>,
    /// The container; empty means the pod's only container.
    pub container: String,
    /// The client sends stdin.
    pub stdin: bool,
    /// The client wants stdout.
    pub stdout: bool,
    /// The client wants stderr (never with a TTY, which merges it into stdout).
    pub stderr: bool,
    /// Run the command in a TTY.
    pub tty: bool,
}

impl ExecOptions {
    /// Reads the options of an exec request.
    pub fn parse(params: &Query) -> Result<ExecOptions> {
        let command = params.all("command");
        if command.is_empty() {
            return Err(ApiError::bad_request("you must specify at least one command for the container"));
        }
        let (stdin, stdout, stderr, tty) =
            (params.flag("stdin")?, params.flag("stdout")?, params.flag("stderr")?, params.flag("tty")?);
        if !stdin && !stdout && !stderr {
            return Err(ApiError::bad_request("you must specify at least 1 of stdin, stdout, stderr"));
        }
        Ok(ExecOptions {
            command,
            container: params.get("container").to_string(),
            stdin,
            stdout,
            // Like the kubelet: a TTY has no separate stderr.
            stderr: stderr && !tty,
            tty,
        })
    }

    /// The kubelet's start message for these options, in `container`.
    pub fn start(&self, namespace: &str, pod: &str, container: &str) -> pb::ExecInput {
        let start = pb::ExecStart {
            namespace: namespace.to_string(),
            pod: pod.to_string(),
            container: String::new(),
            command: self.command.clone(),
            stdin: self.stdin,
            tty: self.tty,
            size: None,
        };
        start_for(&start, container)
    }
}

/// Runs a command in a container of pod `namespace/pod` for `kubectl exec`
/// or the Python client's `stream()`: checks the request, finds the
/// container, upgrades `req` to a WebSocket and relays it to the kubelet
/// until the command ends or the client goes away. `query` is the raw query
/// string.
pub async fn exec(
    proxy: Arc<NodeProxy>,
    namespace: String,
    pod: String,
    query: &str,
    req: axum::extract::Request,
) -> Response {
    let options = match ExecOptions::parse(&Query::parse(query)) {
        Ok(o) => o,
        Err(e) => return error_response(&e),
    };
    let target = match proxy.target(&namespace, &pod, &options.container).await {
        Ok(t) => t,
        Err(e) => return error_response(&e),
    };
    let (mut parts, _body) = req.into_parts();
    let spdy = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("spdy"));
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(u) => u,
        Err(WebSocketUpgradeRejection::ConnectionNotUpgradable(_)) => {
            return error_response(&ApiError::internal("this server connection cannot be upgraded to a WebSocket"));
        }
        Err(_) if spdy => {
            return error_response(&ApiError::bad_request(format!(
                "SPDY is not supported: exec needs a WebSocket offering {} or {}",
                Protocol::V5.name(),
                Protocol::V4.name()
            )));
        }
        Err(rejection) => {
            debug!(%rejection, "exec without a WebSocket upgrade");
            return error_response(&ApiError::bad_request("Upgrade request required"));
        }
    };
    let upgrade = upgrade.protocols(Protocol::ALL.map(Protocol::name));
    let Some(protocol) = upgrade.selected_protocol().and_then(|p| p.to_str().ok()).and_then(Protocol::from_name) else {
        let offered: Vec<&str> = upgrade.requested_protocols().filter_map(|p| p.to_str().ok()).collect();
        let supported: Vec<&str> = Protocol::ALL.iter().map(|p| p.name()).collect();
        return error_response(&ApiError::bad_request(format!(
            "requested protocol(s) are not supported: [{}]; supports [{}]",
            offered.join(" "),
            supported.join(" ")
        )));
    };
    let start = options.start(&namespace, &pod, &target.container);
    let session = Session {
        protocol,
        stdin: options.stdin,
        stdout: options.stdout,
        stderr: options.stderr,
        command: options.command,
    };
    let mut kubelet = target.kubelet;
    let key = format!("{namespace}/{pod}");
    debug!(pod = %key, container = %target.container, protocol = protocol.name(), "exec");
    upgrade.on_failed_upgrade(|e| debug!(error = %e, "the exec WebSocket upgrade failed")).on_upgrade(
        move |socket| async move {
            let (ws_tx, ws_rx) = socket.split();
            let (input, input_rx) = mpsc::channel(INPUT_BUFFER);
            input.try_send(start).expect("a new channel has room for its first message");
            let connect = async move { kubelet.exec(ReceiverStream::new(input_rx)).await.map(|r| r.into_inner()) };
            relay(ws_tx, ws_rx, session, input, connect).await;
            debug!(pod = %key, "exec ended");
        },
    )
}

/// One exec's streams, as negotiated.
#[derive(Debug, Clone)]
struct Session {
    protocol: Protocol,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    command: Vec<String>,
}

/// How a relay ended.
#[derive(Debug)]
enum End {
    /// The command exited with this code.
    Exited(i32),
    /// The exec failed (or the kubelet went away).
    Failed(ApiError),
    /// The client closed the WebSocket or it broke.
    ClientGone,
}

/// Relays between a client's WebSocket (`ws_tx`, `ws_rx`) and the kubelet:
/// client messages go to `input` (whose first message, the start, is
/// already queued), and the output of the stream `connect` opens goes to
/// the client. Ends when the command does (then the status goes out on
/// channel 3 and the WebSocket is closed) or when the client goes away;
/// either way both directions are dropped, which ends the kubelet's stream.
async fn relay<W, R, C, S>(mut ws_tx: W, mut ws_rx: R, session: Session, input: mpsc::Sender<pb::ExecInput>, connect: C)
where
    W: Sink<Message, Error = axum::Error> + Unpin,
    R: Stream<Item = Result<Message, axum::Error>> + Unpin,
    C: Future<Output = Result<S, tonic::Status>>,
    S: Stream<Item = Result<pb::ExecOutput, tonic::Status>>,
{
    let end = {
        let output = pin!(pump_output(&mut ws_tx, &session, connect));
        let input = pin!(pump_input(&mut ws_rx, &session, input));
        tokio::select! {
            end = output => end,
            () = input => End::ClientGone,
        }
    };
    let status = match end {
        End::Exited(code) => exit_status(code, &session.command),
        End::Failed(e) => failure_status(&e),
        End::ClientGone => {
            // Flushes the answer to the client's close, if it sent one.
            let _ = tokio::time::timeout(CLOSE_GRACE, ws_tx.close()).await;
            return;
        }
    };
    let close = Message::Close(Some(CloseFrame { code: close_code::NORMAL, reason: "".into() }));
    if ws_tx.send(frame(ERROR, &status)).await.is_ok() && ws_tx.send(close).await.is_ok() {
        // Wait for the client's close so that the status is not lost to a
        // connection reset.
        let drained = async { while let Some(Ok(_)) = ws_rx.next().await {} };
        let _ = tokio::time::timeout(CLOSE_GRACE, drained).await;
    }
}

/// Sends the kubelet's output to the client until the command exits.
async fn pump_output<W, C, S>(ws_tx: &mut W, session: &Session, connect: C) -> End
where
    W: Sink<Message, Error = axum::Error> + Unpin,
    C: Future<Output = Result<S, tonic::Status>>,
    S: Stream<Item = Result<pb::ExecOutput, tonic::Status>>,
{
    let output = match connect.await {
        Ok(s) => s,
        Err(s) => return End::Failed(kubelet_error(s)),
    };
    let mut output = pin!(output);
    while let Some(item) = output.next().await {
        let (channel, data) = match item.map(|o| o.output) {
            Ok(Some(Output::Stdout(data))) if session.stdout => (STDOUT, data),
            Ok(Some(Output::Stderr(data))) if session.stderr => (STDERR, data),
            Ok(Some(Output::ExitCode(code))) => return End::Exited(code),
            Ok(_) => continue,
            Err(s) => return End::Failed(kubelet_error(s)),
        };
        if !data.is_empty() && ws_tx.send(frame(channel, &data)).await.is_err() {
            return End::ClientGone;
        }
    }
    End::Failed(ApiError::internal("the kubelet ended the exec stream without an exit code"))
}

/// Sends the client's stdin, resizes and stdin close to the kubelet, until
/// the client closes the WebSocket or it breaks. While the kubelet is not
/// reading, at most one more message is read from the client (to notice it
/// going away); then the client waits.
async fn pump_input<R>(ws_rx: &mut R, session: &Session, input: mpsc::Sender<pb::ExecInput>)
where
    R: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let mut held = None;
    loop {
        let message = match held.take() {
            Some(m) => m,
            None => match ws_rx.next().await {
                Some(Ok(m)) => m,
                Some(Err(_)) | None => return,
            },
        };
        let data = match message {
            Message::Binary(data) => data,
            Message::Text(text) => Bytes::from(text),
            Message::Close(_) => return,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        let forwarded = match decode(session.protocol, &data) {
            Some(Inbound::Stdin(data)) if session.stdin => Input::Stdin(data),
            Some(Inbound::StdinClosed) if session.stdin => Input::StdinClosed(true),
            Some(Inbound::Resize(size)) => Input::Resize(size),
            _ => continue,
        };
        let mut send = pin!(input.send(pb::ExecInput { input: Some(forwarded) }));
        loop {
            tokio::select! {
                // An error means the kubelet stopped reading input: the
                // output side will see the command end.
                _ = &mut send => break,
                next = ws_rx.next(), if held.is_none() => match next {
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                    Some(Ok(m)) => held = Some(m),
                },
            }
        }
    }
}

/// A message from the client, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// Bytes for the command's stdin.
    Stdin(Bytes),
    /// The terminal's new size.
    Resize(pb::TerminalSize),
    /// The client has no more stdin (v5 only).
    StdinClosed,
}

/// A resize message, as client-go's `TerminalSize` marshals it.
#[derive(Debug, Deserialize)]
struct TerminalSize {
    #[serde(rename = "Width", alias = "width")]
    width: u16,
    #[serde(rename = "Height", alias = "height")]
    height: u16,
}

/// Decodes one message from the client; `None` for what is ignored: empty
/// messages or stdin, unknown channels, resizes that are not JSON sizes, a
/// close of any channel but stdin, and channel 255 under v4.
pub fn decode(protocol: Protocol, message: &Bytes) -> Option<Inbound> {
    let (&channel, rest) = message.split_first()?;
    match channel {
        STDIN if !rest.is_empty() => Some(Inbound::Stdin(message.slice(1..))),
        RESIZE => match serde_json::from_slice::<TerminalSize>(rest) {
            Ok(size) => {
                Some(Inbound::Resize(pb::TerminalSize { width: u32::from(size.width), height: u32::from(size.height) }))
            }
            Err(e) => {
                debug!(error = %e, "ignoring a resize that is not a terminal size");
                None
            }
        },
        CLOSE if protocol == Protocol::V5 && rest == [STDIN] => Some(Inbound::StdinClosed),
        _ => None,
    }
}

/// A message to the client on `channel`.
pub fn frame(channel: u8, data: &[u8]) -> Message {
    let mut message = Vec::with_capacity(data.len() + 1);
    message.push(channel);
    message.extend_from_slice(data);
    Message::Binary(message.into())
}

/// The status that ends an exec whose command exited with `code`:
/// `Success`, or a `NonZeroExitCode` failure with the code as its
/// `ExitCode` cause, worded like the kubelet's.
pub fn exit_status(code: i32, command: &[String]) -> Vec<u8> {
    let status = if code == 0 {
        serde_json::json!({"metadata": {}, "status": "Success"})
    } else {
        serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": format!(
                "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
                command.join(" ")
            ),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        })
    };
    serde_json::to_vec(&status).expect("JSON values always serialize")
}

/// The status that ends an exec that failed before its command exited.
pub fn failure_status(e: &ApiError) -> Vec<u8> {
    let status = serde_json::json!({
        "metadata": {},
        "status": "Failure",
        "message": e.message,
        "reason": e.reason.as_str(),
        "code": e.code(),
    });
    serde_json::to_vec(&status).expect("JSON values always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rkube_api::Reason;
    use serde_json::{Value, json};

    fn parse(query: &str) -> Result<ExecOptions> {
        ExecOptions::parse(&Query::parse(query))
    }

    #[test]
    fn reads_kubectls_query_with_a_repeated_command() {
        let o = parse("command=ls&command=%2F&container=c&stderr=true&stdout=true").unwrap();
        assert_eq!(o.command, ["ls", "/"]);
        assert_eq!(o.container, "c");
        assert!(o.stdout && o.stderr && !o.stdin && !o.tty);
        let Some(Input::Start(start)) = o.start("default", "web", "c").input else { panic!("not a start") };
        assert_eq!((start.namespace.as_str(), start.pod.as_str(), start.container.as_str()), ("default", "web", "c"));
        assert_eq!(start.command, ["ls", "/"]);
    }

    #[test]
    fn a_tty_has_no_separate_stderr() {
        let o = parse("command=sh&stdin=True&stdout=True&stderr=True&tty=True").unwrap();
        assert!(o.stdin && o.stdout && o.tty && !o.stderr);
    }

    #[test]
    fn a_command_and_a_stream_are_required() {
        let e = parse("stdout=true").unwrap_err();
        assert_eq!(e.reason, Reason::BadRequest);
        assert!(e.message.contains("at least one command"), "{}", e.message);
        let e = parse("command=ls").unwrap_err();
        assert!(e.message.contains("at least 1 of stdin, stdout, stderr"), "{}", e.message);
        let e = parse("command=ls&stdout=yes").unwrap_err();
        assert!(e.message.contains("stdout"), "{}", e.message);
    }

    #[test]
    fn knows_the_v5_and_v4_protocols_best_first() {
        assert_eq!(Protocol::from_name("v5.channel.k8s.io"), Some(Protocol::V5));
        assert_eq!(Protocol::from_name("v4.channel.k8s.io"), Some(Protocol::V4));
        assert_eq!(Protocol::from_name("v3.channel.k8s.io"), None);
        assert_eq!(Protocol::ALL[0], Protocol::V5);
    }

    #[test]
    fn decodes_stdin_resize_and_stdin_close() {
        let stdin = Bytes::from_static(b"\x00ls\n");
        assert_eq!(decode(Protocol::V5, &stdin), Some(Inbound::Stdin(Bytes::from_static(b"ls\n"))));
        let resize = Bytes::from_static(b"\x04{\"Width\":120,\"Height\":40}");
        assert_eq!(decode(Protocol::V4, &resize), Some(Inbound::Resize(pb::TerminalSize { width: 120, height: 40 })));
        let close = Bytes::from_static(&[CLOSE, STDIN]);
        assert_eq!(decode(Protocol::V5, &close), Some(Inbound::StdinClosed));
        assert_eq!(decode(Protocol::V4, &close), None);
    }

    #[test]
    fn ignores_empty_unknown_and_malformed_messages() {
        for message in [&b""[..], b"\x00", b"\x04not json", b"\x07hello", b"\xff\x01"] {
            assert_eq!(decode(Protocol::V5, &Bytes::copy_from_slice(message)), None, "{message:?}");
        }
    }

    #[test]
    fn frames_carry_their_channel_first() {
        assert_eq!(frame(STDERR, b"oops"), Message::Binary(Bytes::from_static(b"\x02oops")));
    }

    #[test]
    fn exit_statuses_are_what_client_go_decodes() {
        let ok: Value = serde_json::from_slice(&exit_status(0, &["true".into()])).unwrap();
        assert_eq!(ok, json!({"metadata": {}, "status": "Success"}));
        let failed: Value =
            serde_json::from_slice(&exit_status(3, &["sh".into(), "-c".into(), "exit 3".into()])).unwrap();
        assert_eq!(
            failed,
            json!({
                "metadata": {},
                "status": "Failure",
                "message": "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3",
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
            })
        );
        let e = ApiError::bad_request("container \"app\" in pod \"web\" is not running");
        let failure: Value = serde_json::from_slice(&failure_status(&e)).unwrap();
        assert_eq!(failure["status"], "Failure");
        assert_eq!(failure["reason"], "BadRequest");
        assert_eq!(failure["message"], "container \"app\" in pod \"web\" is not running");
    }

    /// A relay between fake ends: what the test sends as the client, what the
    /// relay sent to the client, what reached the kubelet, and the kubelet's
    /// output to feed.
    struct Harness {
        client: mpsc::Sender<Result<Message, axum::Error>>,
        to_client: futures::channel::mpsc::Receiver<Message>,
        to_kubelet: mpsc::Receiver<pb::ExecInput>,
        kubelet: mpsc::Sender<Result<pb::ExecOutput, tonic::Status>>,
        relay: tokio::task::JoinHandle<()>,
    }

    fn start(protocol: Protocol, stdin: bool, connected: bool) -> Harness {
        let (client, client_rx) = mpsc::channel(8);
        let (to_client_tx, to_client) = futures::channel::mpsc::channel(8);
        let (input, to_kubelet) = mpsc::channel(INPUT_BUFFER);
        let (kubelet, output) = mpsc::channel(8);
        let session = Session { protocol, stdin, stdout: true, stderr: true, command: vec!["sh".into()] };
        let connect = async move {
            if connected { Ok(ReceiverStream::new(output)) } else { Err(tonic::Status::unavailable("no route")) }
        };
        let ws_tx = to_client_tx.sink_map_err(axum::Error::new);
        let relay = tokio::spawn(relay(ws_tx, ReceiverStream::new(client_rx), session, input, connect));
        Harness { client, to_client, to_kubelet, kubelet, relay }
    }

    fn out(output: Output) -> Result<pb::ExecOutput, tonic::Status> {
        Ok(pb::ExecOutput { output: Some(output) })
    }

    fn status_of(message: Option<Message>) -> Value {
        let Some(Message::Binary(data)) = message else { panic!("not a binary message: {message:?}") };
        assert_eq!(data[0], ERROR);
        serde_json::from_slice(&data[1..]).unwrap()
    }

    #[tokio::test]
    async fn relays_output_then_the_exit_status_then_closes() {
        let mut h = start(Protocol::V5, false, true);
        h.kubelet.send(out(Output::Stdout(Bytes::from_static(b"hello\n")))).await.unwrap();
        h.kubelet.send(out(Output::Stderr(Bytes::from_static(b"warn\n")))).await.unwrap();
        h.kubelet.send(out(Output::ExitCode(3))).await.unwrap();
        assert_eq!(h.to_client.next().await, Some(frame(STDOUT, b"hello\n")));
        assert_eq!(h.to_client.next().await, Some(frame(STDERR, b"warn\n")));
        let status = status_of(h.to_client.next().await);
        assert_eq!(status["reason"], "NonZeroExitCode");
        assert_eq!(status["details"]["causes"][0]["message"], "3");
        assert!(matches!(h.to_client.next().await, Some(Message::Close(Some(CloseFrame { code: 1000, .. })))));
        // The client answers the close; the relay ends.
        h.client.send(Ok(Message::Close(None))).await.unwrap();
        drop(h.client);
        tokio::time::timeout(Duration::from_secs(5), h.relay).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn relays_stdin_resizes_and_the_stdin_close_to_the_kubelet() {
        let mut h = start(Protocol::V5, true, true);
        h.client.send(Ok(Message::Binary(Bytes::from_static(b"\x00echo hi\n")))).await.unwrap();
        // The Python client sends text messages.
        h.client.send(Ok(Message::Text("\u{4}{\"Width\":80,\"Height\":24}".into()))).await.unwrap();
        h.client.send(Ok(Message::Binary(Bytes::from_static(&[CLOSE, STDIN])))).await.unwrap();
        let inputs: Vec<Input> = {
            let mut v = Vec::new();
            for _ in 0..3 {
                v.push(h.to_kubelet.recv().await.unwrap().input.unwrap());
            }
            v
        };
        assert_eq!(
            inputs,
            [
                Input::Stdin(Bytes::from_static(b"echo hi\n")),
                Input::Resize(pb::TerminalSize { width: 80, height: 24 }),
                Input::StdinClosed(true),
            ]
        );
        h.kubelet.send(out(Output::ExitCode(0))).await.unwrap();
        assert_eq!(status_of(h.to_client.next().await), json!({"metadata": {}, "status": "Success"}));
        drop(h.client);
        tokio::time::timeout(Duration::from_secs(5), h.relay).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn stdin_is_dropped_when_the_request_did_not_ask_for_it() {
        let mut h = start(Protocol::V4, false, true);
        h.client.send(Ok(Message::Binary(Bytes::from_static(b"\x00ignored")))).await.unwrap();
        h.client.send(Ok(Message::Binary(Bytes::from_static(b"\x04{\"Width\":1,\"Height\":2}")))).await.unwrap();
        let first = h.to_kubelet.recv().await.unwrap().input.unwrap();
        assert_eq!(first, Input::Resize(pb::TerminalSize { width: 1, height: 2 }));
    }

    #[tokio::test]
    async fn a_client_going_away_ends_the_relay_and_the_kubelets_input() {
        let mut h = start(Protocol::V5, true, true);
        drop(h.client);
        tokio::time::timeout(Duration::from_secs(5), h.relay).await.unwrap().unwrap();
        // The relay dropped its end of the kubelet's input and output.
        assert!(h.to_kubelet.recv().await.is_none());
        assert!(h.kubelet.is_closed());
    }

    #[tokio::test]
    async fn a_client_going_away_is_noticed_while_the_kubelet_reads_no_input() {
        let mut h = start(Protocol::V5, true, true);
        // Fill the kubelet's input; it reads none of it.
        for _ in 0..INPUT_BUFFER + 1 {
            h.client.send(Ok(Message::Binary(Bytes::from_static(b"\x00x")))).await.unwrap();
        }
        h.client.send(Err(axum::Error::new(std::io::Error::other("reset")))).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), h.relay).await.unwrap().unwrap();
        assert!(h.kubelet.is_closed());
        assert!(h.to_client.next().await.is_none_or(|m| matches!(m, Message::Close(_))));
    }

    #[tokio::test]
    async fn a_kubelet_that_cannot_be_reached_is_a_failure_status() {
        let mut h = start(Protocol::V5, false, false);
        let status = status_of(h.to_client.next().await);
        assert_eq!(status["status"], "Failure");
        assert_eq!(status["reason"], "ServiceUnavailable");
        assert!(status["message"].as_str().unwrap().contains("no route"), "{status}");
        assert!(matches!(h.to_client.next().await, Some(Message::Close(_))));
    }

    #[tokio::test]
    async fn a_kubelet_stream_without_an_exit_code_is_a_failure_status() {
        let mut h = start(Protocol::V4, false, true);
        drop(h.kubelet);
        let status = status_of(h.to_client.next().await);
        assert_eq!(status["reason"], "InternalError");
    }
}
