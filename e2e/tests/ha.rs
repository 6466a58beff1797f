//! The highly available control plane on the multi-host test bed
//! (`deploy/testbed.sh up --ha`): a three-member etcd cluster, two
//! apiservers, controller manager and scheduler pairs, and every client
//! given both apiservers. One etcd member and one apiserver are killed with
//! -9 while rkubectl creates 200 pods: every create acknowledged is stored,
//! none twice, and the cluster keeps serving.

use rkube_e2e::TestBed;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::ops::Range;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const CREATES: usize = 200;
const WORKERS: usize = 4;
/// Creates acknowledged before the kills.
const KILL_AFTER: usize = 60;

/// A pod that no node matches, so 200 of them stay Pending and cost
/// nothing but API work. `generateName` makes each create a new object: a
/// create sent twice would show up as two pods with the same `attempt`.
fn pending_pod(attempt: usize) -> String {
    format!(
        r#"{{"apiVersion": "v1", "kind": "Pod",
  "metadata": {{"generateName": "ha-", "labels": {{"test": "ha", "attempt": "{attempt}"}}}},
  "spec": {{"nodeSelector": {{"rkube.test/nowhere": "true"}},
    "containers": [{{"name": "c", "image": "rkube/pause:3.9", "imagePullPolicy": "Never"}}]}}}}"#
    )
}

/// `rkubectl create -f -` of `body` against `server` as the user of
/// `kubeconfig`: Ok if acknowledged.
fn create(server: &str, kubeconfig: &Path, body: &str) -> Result<(), String> {
    let mut child = Command::new(rkube_e2e::bin_dir().join("rkubectl"))
        .args(["--server", server, "--kubeconfig"])
        .arg(kubeconfig)
        .args(["create", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let written = child.stdin.take().map(|mut i| i.write_all(body.as_bytes()));
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    match (written, out.status.success()) {
        (Some(Ok(())), true) => Ok(()),
        _ => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

fn kill9(pid: u32) -> anyhow::Result<()> {
    let out = Command::new("kill").args(["-9", &pid.to_string()]).output()?;
    anyhow::ensure!(out.status.success(), "kill -9 {pid}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

#[tokio::test]
async fn an_etcd_member_and_an_apiserver_killed_during_200_creates_lose_and_repeat_nothing() -> anyhow::Result<()> {
    let bed = TestBed::up_ha(1)?;
    let server = bed.server();
    let started = Instant::now();
    let acked = Arc::new(AtomicUsize::new(0));
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (server, acked, next) = (server.clone(), acked.clone(), next.clone());
            let kubeconfig = bed.kubeconfig();
            std::thread::spawn(move || {
                let mut results = Vec::new();
                loop {
                    let attempt = next.fetch_add(1, Ordering::SeqCst);
                    if attempt >= CREATES {
                        return results;
                    }
                    let sent = Instant::now();
                    let result = create(&server, &kubeconfig, &pending_pod(attempt));
                    if result.is_ok() {
                        acked.fetch_add(1, Ordering::SeqCst);
                    }
                    results.push((attempt, (sent..Instant::now(), result)));
                }
            })
        })
        .collect();

    // Mid-run: kill master's etcd member and master's apiserver, the first
    // in every client's --server list.
    bed.eventually("creates under way", Duration::from_secs(120), || Ok(acked.load(Ordering::SeqCst) >= KILL_AFTER))
        .await?;
    kill9(bed.pid("master", "etcd")?)?;
    let apiserver = bed.pid("master", "apiserver")?;
    let kill_started = Instant::now();
    kill9(apiserver)?;
    let kill_done = Instant::now();
    let killed_at = next.load(Ordering::SeqCst);

    let mut runs: BTreeMap<usize, (Range<Instant>, Result<(), String>)> = BTreeMap::new();
    for w in workers {
        runs.extend(w.join().map_err(|_| anyhow::anyhow!("a create worker panicked"))?);
    }
    let in_flight_at_kill = |a: &usize| runs[a].0.start <= kill_done && runs[a].0.end >= kill_started;
    let results: BTreeMap<usize, Result<(), String>> = runs.iter().map(|(a, (_, r))| (*a, r.clone())).collect();
    let failed: Vec<_> = results.iter().filter_map(|(a, r)| r.as_ref().err().map(|e| (a, e))).collect();
    eprintln!("{CREATES} creates in {:?}, killed at attempt {killed_at}: {failed:?}", started.elapsed());
    // Only creates in flight when the apiserver died may fail (their
    // connection broke after they were sent: not repeated, maybe stored).
    assert!(failed.len() <= WORKERS, "{} creates failed: {failed:?}", failed.len());
    let killed = bed.api_url("master");
    for (attempt, error) in &failed {
        assert!(
            error.contains(&killed) && error.contains("may or may not have been applied"),
            "a failure names the apiserver whose connection broke and says the create may be stored: {error}"
        );
        assert!(
            in_flight_at_kill(attempt),
            "attempt {attempt} failed but was not in flight when the apiserver died: {failed:?}"
        );
    }

    let pods: Value = serde_json::from_str(&bed.rkubectl(&["get", "pods", "-l", "test=ha", "-o", "json"])?)?;
    let mut stored: BTreeMap<usize, usize> = BTreeMap::new();
    for p in pods["items"].as_array().into_iter().flatten() {
        let attempt: usize = p["metadata"]["labels"]["attempt"].as_str().unwrap_or_default().parse()?;
        *stored.entry(attempt).or_default() += 1;
    }
    let twice: Vec<_> = stored.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "attempts stored more than once: {twice:?}");
    let lost: Vec<_> = results.iter().filter(|(a, r)| r.is_ok() && !stored.contains_key(a)).map(|(a, _)| a).collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");

    // The cluster keeps serving: the scheduler and controllers, whichever
    // apiserver they were on, place and run a Deployment's pod, and the
    // kubernetes Service drops the dead apiserver when its lease ends.
    let deployment = r#"{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "after"},
      "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "after"}},
        "template": {"metadata": {"labels": {"app": "after"}}, "spec": {"terminationGracePeriodSeconds": 1,
          "containers": [{"name": "c", "image": "rkube/toolbox:1.0", "imagePullPolicy": "Never",
            "command": ["sleep", "3600"]}]}}}}"#;
    create(&server, &bed.kubeconfig(), deployment).map_err(anyhow::Error::msg)?;
    bed.eventually("the deployment's pod Running", Duration::from_secs(90), || {
        let out = bed.rkubectl(&["get", "pods", "-l", "app=after", "--no-headers"])?;
        Ok(out.contains("Running"))
    })
    .await?;
    let survivor = bed.master_ip("master-2");
    bed.eventually("the kubernetes endpoints list only the live apiserver", Duration::from_secs(60), || {
        let ep: Value = serde_json::from_str(&bed.rkubectl(&["get", "endpoints", "kubernetes", "-o", "json"])?)?;
        Ok(ep["subsets"][0]["addresses"] == serde_json::json!([{"ip": survivor}]))
    })
    .await?;
    bed.down()?;
    assert_eq!(bed.leftovers()?, Vec::<String>::new());
    Ok(())
}
