//! The kubelet API through the apiserver's relay, against real Docker:
//! logs (tail, timestamps, follow, a named container, the previous
//! instance), exec (stdout, stderr, exit code, stdin) and the stats
//! summary; and the kubelet's own NotFound answers.

mod support;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use rkube_client::{Api, Client};
use rkube_proto::v1 as pb;
use rkube_proto::v1::exec_output::Output;
use serde_json::json;
use std::time::Duration;
use support::{Harness, TOOLBOX};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const START: Duration = Duration::from_secs(60);

fn running(p: &Pod) -> bool {
    let s = p.status.clone().unwrap_or_default();
    s.phase.as_deref() == Some("Running")
        && s.container_statuses
            .unwrap_or_default()
            .iter()
            .all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
}

fn logs_request(pod: &str, container: &str) -> pb::LogsRequest {
    pb::LogsRequest { namespace: "default".into(), pod: pod.into(), container: container.into(), ..Default::default() }
}

/// The whole output of a (non-following) logs call.
async fn logs(client: &Client, req: pb::LogsRequest) -> anyhow::Result<String> {
    let mut stream = Box::pin(client.logs(req).await?);
    let mut out = Vec::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(20), stream.next()).await? {
        out.extend_from_slice(&chunk?);
    }
    Ok(String::from_utf8(out)?)
}

/// Waits until the logs satisfy `pred`; returns them.
async fn wait_logs(client: &Client, req: pb::LogsRequest, pred: impl Fn(&str) -> bool) -> anyhow::Result<String> {
    let last = std::sync::Mutex::new(String::new());
    let found = rkube_testkit::wait_for(Duration::from_secs(20), || async {
        let text = logs(client, req.clone()).await.unwrap_or_default();
        let ok = pred(&text);
        *last.lock().unwrap() = text;
        ok
    })
    .await;
    let last = last.into_inner().unwrap();
    found.map_err(|e| anyhow::anyhow!("{e}; last logs: {last:?}"))?;
    Ok(last)
}

fn exec_start(pod: &str, command: &[&str], stdin: bool) -> pb::ExecStart {
    pb::ExecStart {
        namespace: "default".into(),
        pod: pod.into(),
        container: String::new(),
        command: command.iter().map(|s| s.to_string()).collect(),
        stdin,
        tty: false,
        size: None,
    }
}

/// What an exec printed and its exit code (which must come last).
#[derive(Debug, Default)]
struct Finished {
    stdout: String,
    stderr: String,
    code: Option<i32>,
}

async fn finish(output: impl Stream<Item = rkube_client::Result<Output>>) -> anyhow::Result<Finished> {
    let mut output = Box::pin(output);
    let mut f = Finished::default();
    while let Some(msg) = tokio::time::timeout(Duration::from_secs(20), output.next()).await? {
        anyhow::ensure!(f.code.is_none(), "output after the exit code: {msg:?}");
        match msg? {
            Output::Stdout(b) => f.stdout.push_str(&String::from_utf8_lossy(&b)),
            Output::Stderr(b) => f.stderr.push_str(&String::from_utf8_lossy(&b)),
            Output::ExitCode(c) => f.code = Some(c),
        }
    }
    Ok(f)
}

async fn exec(client: &Client, pod: &str, command: &[&str]) -> anyhow::Result<Finished> {
    let input = futures::stream::empty::<pb::exec_input::Input>();
    finish(client.exec(exec_start(pod, command, false), input).await?).await
}

/// The kubelet API of the harness's node, straight (not through the apiserver).
async fn kubelet(h: &Harness) -> anyhow::Result<pb::kubelet_client::KubeletClient<tonic::transport::Channel>> {
    let nodes: Api<Node> = Api::all(h.client.clone());
    let node = nodes.get(&h.node).await?;
    let port = node.status.and_then(|s| s.daemon_endpoints).and_then(|d| d.kubelet_endpoint).map_or(0, |e| e.port);
    anyhow::ensure!(port > 0 && port != i32::from(h.health.port()), "the node reports kubelet port {port}");
    Ok(pb::kubelet_client::KubeletClient::connect(format!("http://127.0.0.1:{port}")).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_tail_timestamps_and_follow_new_lines() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let script = "echo one; sleep 0.1; echo two >&2; sleep 0.1; echo three; \
                  while [ ! -f /tmp/go ]; do sleep 0.1; done; echo after; exec sleep 3600";
    h.run_pod(json!({"metadata": {"name": "echo"}, "spec": {"terminationGracePeriodSeconds": 1,
        "containers": [{"name": "app", "image": TOOLBOX, "command": ["sh", "-c", script]}]}}))
        .await?;
    h.wait_pod("echo", START, running).await?;

    let all = wait_logs(&h.client, logs_request("echo", "app"), |l| l.contains("three")).await?;
    assert_eq!(all, "one\ntwo\nthree\n", "stdout and stderr in the order written");
    let tail = logs(&h.client, pb::LogsRequest { tail_lines: Some(2), ..logs_request("echo", "") }).await?;
    assert_eq!(tail, "two\nthree\n");
    let stamped = logs(&h.client, pb::LogsRequest { timestamps: true, ..logs_request("echo", "app") }).await?;
    let lines: Vec<&str> = stamped.lines().collect();
    assert_eq!(lines.len(), 3, "{stamped}");
    for (line, word) in lines.iter().zip(["one", "two", "three"]) {
        let (stamp, rest) = line.split_once(' ').unwrap_or_default();
        assert!(stamp.parse::<k8s_openapi::jiff::Timestamp>().is_ok(), "{line:?} starts with no timestamp");
        assert_eq!(rest, word);
    }
    let recent = logs(&h.client, pb::LogsRequest { since_seconds: Some(3600), ..logs_request("echo", "app") }).await?;
    assert_eq!(recent, all);

    // Follow: the old lines, then one written after the call.
    let mut follow = Box::pin(h.client.logs(pb::LogsRequest { follow: true, ..logs_request("echo", "app") }).await?);
    let mut seen = String::new();
    while !seen.contains("three\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), follow.next()).await?.expect("the stream goes on")?;
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let touched = exec(&h.client, "echo", &["touch", "/tmp/go"]).await?;
    assert_eq!(touched.code, Some(0), "{touched:?}");
    while !seen.contains("after\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), follow.next()).await?.expect("the stream goes on")?;
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert_eq!(seen, "one\ntwo\nthree\nafter\n");
    drop(follow);

    // The kubelet itself answers NotFound, in Kubernetes' words.
    let mut direct = kubelet(&h).await?;
    let err = direct.logs(logs_request("nope", "app")).await.expect_err("no such pod");
    assert_eq!(err.code(), tonic::Code::NotFound);
    assert_eq!(err.message(), format!("pods \"nope\" not found on node {}", h.node));
    let err = direct.logs(logs_request("echo", "x")).await.expect_err("no such container");
    assert_eq!(err.code(), tonic::Code::NotFound);
    assert_eq!(err.message(), "container \"x\" in pod \"echo\" is not available");
    h.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_of_a_named_container_and_of_the_previous_instance() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.run_pod(json!({"metadata": {"name": "two"}, "spec": {"terminationGracePeriodSeconds": 1, "containers": [
        {"name": "a", "image": TOOLBOX, "command": ["sh", "-c", "echo from-a; exec sleep 3600"]},
        {"name": "b", "image": TOOLBOX, "command": ["sh", "-c", "echo from-b; exec sleep 3600"]}]}}))
        .await?;
    // The first run counts itself in an emptyDir and fails; the second stays up.
    let script = "n=$(cat /data/n 2>/dev/null || echo 0); echo run $n; echo $((n+1)) > /data/n; \
                  if [ $n -ge 1 ]; then exec sleep 3600; fi; exit 1";
    h.run_pod(json!({"metadata": {"name": "crash"}, "spec": {"terminationGracePeriodSeconds": 1,
        "containers": [{"name": "app", "image": TOOLBOX, "command": ["sh", "-c", script],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
        "volumes": [{"name": "data", "emptyDir": {}}]}}))
        .await?;

    h.wait_pod("two", START, running).await?;
    assert_eq!(wait_logs(&h.client, logs_request("two", "b"), |l| !l.is_empty()).await?, "from-b\n");
    assert_eq!(wait_logs(&h.client, logs_request("two", "a"), |l| !l.is_empty()).await?, "from-a\n");
    let err = logs(&h.client, logs_request("two", "")).await.expect_err("two containers need a name");
    assert!(err.to_string().contains("a container name must be specified for pod two"), "{err}");

    h.wait_pod("crash", START, |p| {
        running(p)
            && p.status.as_ref().and_then(|s| s.container_statuses.as_ref()).is_some_and(|c| c[0].restart_count == 1)
    })
    .await?;
    assert_eq!(wait_logs(&h.client, logs_request("crash", "app"), |l| !l.is_empty()).await?, "run 1\n");
    let previous = logs(&h.client, pb::LogsRequest { previous: true, ..logs_request("crash", "app") }).await?;
    assert_eq!(previous, "run 0\n");
    let err = logs(&h.client, pb::LogsRequest { previous: true, ..logs_request("two", "a") })
        .await
        .expect_err("a never restarted container has no previous instance");
    assert!(err.to_string().contains("previous terminated container \"a\" in pod \"two\" not found"), "{err}");
    h.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_relays_output_exit_code_and_stdin() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.run_pod(json!({"metadata": {"name": "shell"}, "spec": {"terminationGracePeriodSeconds": 1,
        "containers": [{"name": "app", "image": TOOLBOX, "command": ["sleep", "3600"]}]}}))
        .await?;
    h.wait_pod("shell", START, running).await?;

    let f = exec(&h.client, "shell", &["sh", "-c", "echo out; echo err >&2; exit 3"]).await?;
    assert_eq!((f.stdout.as_str(), f.stderr.as_str(), f.code), ("out\n", "err\n", Some(3)));

    let (tx, rx) = mpsc::channel(4);
    let mut output = Box::pin(h.client.exec(exec_start("shell", &["cat"], true), ReceiverStream::new(rx)).await?);
    tx.send(pb::exec_input::Input::Stdin("hello\n".into())).await?;
    let first = tokio::time::timeout(Duration::from_secs(10), output.next()).await?.expect("cat answers")?;
    assert_eq!(first, Output::Stdout("hello\n".into()));
    tx.send(pb::exec_input::Input::Stdin("again\n".into())).await?;
    tx.send(pb::exec_input::Input::StdinClosed(true)).await?;
    let rest = finish(output).await?;
    assert_eq!((rest.stdout.as_str(), rest.code), ("again\n", Some(0)), "closing stdin ends cat");

    // A TTY of the asked size, resized on request; stdout and stderr are one stream.
    let (tx, rx) = mpsc::channel(4);
    let start = pb::ExecStart {
        tty: true,
        size: Some(pb::TerminalSize { width: 100, height: 30 }),
        ..exec_start("shell", &["sh", "-c", "sleep 0.5; stty size; read x; stty size >&2"], true)
    };
    let mut output = Box::pin(h.client.exec(start, ReceiverStream::new(rx)).await?);
    let mut seen = String::new();
    while !seen.contains("30 100") {
        match tokio::time::timeout(Duration::from_secs(10), output.next()).await?.expect("the TTY answers")? {
            Output::Stdout(b) => seen.push_str(&String::from_utf8_lossy(&b)),
            other => anyhow::bail!("unexpected {other:?} after {seen:?}"),
        }
    }
    tx.send(pb::exec_input::Input::Resize(pb::TerminalSize { width: 120, height: 40 })).await?;
    tx.send(pb::exec_input::Input::Stdin("\n".into())).await?;
    let rest = finish(output).await?;
    assert!(rest.stdout.contains("40 120"), "{rest:?}");
    assert_eq!((rest.stderr.as_str(), rest.code), ("", Some(0)));

    // Like `docker exec`: Docker's message, then exit code 126.
    let f = exec(&h.client, "shell", &["no-such-command"]).await?;
    assert!(matches!(f.code, Some(126 | 127)), "{f:?}");
    assert!(f.stdout.contains("\"no-such-command\": executable file not found"), "{f:?}");
    h.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_summarize_the_node_and_its_pods() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.run_pod(json!({"metadata": {"name": "busy"}, "spec": {"terminationGracePeriodSeconds": 1,
        "containers": [{"name": "app", "image": TOOLBOX, "command": ["sh", "-c", "head -c 4000000 /dev/zero > /tmp/blob; exec sleep 3600"]}]}}))
        .await?;
    let pod = h.wait_pod("busy", START, running).await?;

    let stats = h.client.node_stats(&h.node).await?;
    let node = &stats["node"];
    assert_eq!(node["nodeName"], h.node.as_str());
    assert!(node["memory"]["workingSetBytes"].as_u64() > Some(0), "{node}");
    assert!(node["memory"]["availableBytes"].as_u64() > Some(0), "{node}");
    assert!(node["cpu"]["usageCoreNanoSeconds"].as_u64() > Some(0), "{node}");
    assert!(node["cpu"]["usageNanoCores"].is_u64(), "{node}");
    let pods = stats["pods"].as_array().cloned().unwrap_or_default();
    let busy = pods.iter().find(|p| p["podRef"]["name"] == "busy").expect("the pod is in the summary");
    assert_eq!(busy["podRef"], json!({"name": "busy", "namespace": "default", "uid": pod.metadata.uid}));
    assert!(busy["memory"]["workingSetBytes"].as_u64() > Some(0), "{busy}");
    assert!(busy["cpu"]["usageCoreNanoSeconds"].as_u64() > Some(0), "{busy}");
    let containers = busy["containers"].as_array().cloned().unwrap_or_default();
    assert_eq!(containers.len(), 1, "{busy}");
    assert_eq!(containers[0]["name"], "app");
    assert_eq!(containers[0]["memory"]["workingSetBytes"], busy["memory"]["workingSetBytes"]);

    // Calls that come together share one computation.
    let (a, b) = tokio::join!(h.client.node_stats(&h.node), h.client.node_stats(&h.node));
    assert_eq!(a?["node"]["cpu"], b?["node"]["cpu"]);
    h.shutdown().await
}
