//! Control-plane failover on a cluster of real binaries (Docker): two
//! controller managers and two schedulers side by side, one of each leading
//! through its Lease. Both leaders are killed with SIGKILL in the middle of
//! a scale-up; the standbys take over within the lease duration and the
//! ReplicationController ends with exactly the pods it asks for, all
//! Running — none lost, none duplicated.

use k8s_openapi::api::core::v1::Pod;
use rkube_client::{Api, ListParams};
use rkube_e2e::{Cluster, Options};
use std::time::{Duration, Instant};

/// Short Lease timings so the test runs quickly (Kubernetes' defaults are 15s/10s/2s).
const LEASE: &[&str] =
    &["--leader-elect-lease-duration=4s", "--leader-elect-renew-deadline=3s", "--leader-elect-retry-period=1s"];

const RC: &str = "
apiVersion: v1
kind: ReplicationController
metadata:
  name: steady
spec:
  replicas: 1
  selector: {app: steady}
  template:
    metadata:
      labels: {app: steady}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: rkube/pause:3.9
";

/// The one leader of the pair `a`, `b`, once exactly one leads.
async fn leader(cluster: &Cluster, a: &str, b: &str) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (la, lb) = (cluster.leads(a).await.unwrap_or(false), cluster.leads(b).await.unwrap_or(false));
        match (la, lb) {
            (true, false) => return Ok(a.to_string()),
            (false, true) => return Ok(b.to_string()),
            (true, true) => anyhow::bail!("both {a} and {b} lead\n{}", cluster.logs()),
            _ if Instant::now() > deadline => anyhow::bail!("neither {a} nor {b} leads\n{}", cluster.logs()),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn standbys_take_over_from_killed_leaders_and_the_pod_count_ends_exact() -> anyhow::Result<()> {
    let mut cluster = Cluster::start_with(Options {
        nodes: 2,
        controller_manager_flags: LEASE,
        scheduler_flags: LEASE,
        ..Options::default()
    })
    .await?;
    cluster.spawn_twin("controller-manager", "controller-manager-2")?;
    cluster.spawn_twin("scheduler", "scheduler-2")?;
    let cm = leader(&cluster, "controller-manager", "controller-manager-2").await?;
    let sched = leader(&cluster, "scheduler", "scheduler-2").await?;

    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "default");
    let selector = ListParams::default().labels("app=steady");
    cluster.create(RC)?;
    until(&cluster, "the first pod runs", || async { count_running(&pods, &selector).await == (1, 1) }).await?;

    // Scale up, and kill both leaders while the controllers work on it.
    cluster.rkubectl_ok(&["scale", "rc", "steady", "--replicas=6"])?;
    cluster.kill(&cm)?;
    cluster.kill(&sched)?;
    let killed = Instant::now();
    let standby = |name: &str, a: &str, b: &str| if name == a { b.to_string() } else { a.to_string() };
    let (new_cm, new_sched) =
        (standby(&cm, "controller-manager", "controller-manager-2"), standby(&sched, "scheduler", "scheduler-2"));
    until(&cluster, "the standbys lead", || async {
        cluster.leads(&new_cm).await.unwrap_or(false) && cluster.leads(&new_sched).await.unwrap_or(false)
    })
    .await?;
    let handover = killed.elapsed();
    println!("handover after SIGKILL: {handover:?} (lease 4s, retry 1s)");
    // Within the lease duration plus a few retry periods, not some other timeout.
    assert!(handover < Duration::from_secs(15), "handover took {handover:?}");

    until(&cluster, "6 pods Running", || async { count_running(&pods, &selector).await == (6, 6) }).await?;
    // And it stays exact: no duplicate the old leader started comes late.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let list = pods.list(&selector).await?.items;
    let live = list.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).count();
    assert_eq!((list.len(), live), (6, 6), "{:#?}", list.iter().map(|p| &p.metadata.name).collect::<Vec<_>>());
    Ok(())
}

/// How many pods the selector matches, and how many of them are Running.
async fn count_running(pods: &Api<Pod>, selector: &ListParams) -> (usize, usize) {
    let list = pods.list(selector).await.map(|l| l.items).unwrap_or_default();
    let running = list.iter().filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"));
    (list.len(), running.count())
}

/// Waits up to two minutes for `condition`, or fails with `what` and the logs.
async fn until<F, Fut>(cluster: &Cluster, what: &str, condition: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    rkube_testkit::wait_for(Duration::from_secs(120), condition)
        .await
        .map_err(|e| anyhow::anyhow!("{what}: {e}\n{}", cluster.logs()))
}
