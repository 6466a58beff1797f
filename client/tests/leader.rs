//! Leader election against a real apiserver: of two candidates on one Lease
//! exactly one leads; the other takes over at once when the leader releases
//! the Lease on shutdown, and only after expiry when the leader vanishes.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use rkube_client::{Api, Client, LeaderElector};
use rkube_testkit::{TestApiserver, wait_for};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);

struct Candidate {
    leading: watch::Receiver<bool>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Candidate {
    fn start(url: &str, identity: &str, lease: Duration, renew: Duration, retry: Duration) -> anyhow::Result<Self> {
        let elector = LeaderElector::new(Client::new(url)?, "default", "lock", identity, lease, renew, retry)?;
        let leading = elector.leading();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(elector.run(shutdown.clone()));
        Ok(Candidate { leading, shutdown, task })
    }

    fn leads(&self) -> bool {
        *self.leading.borrow()
    }
}

/// Sets the returned flag if both candidates ever lead at the same time.
fn watch_for_two_leaders(a: &Candidate, b: &Candidate) -> Arc<AtomicBool> {
    let both = Arc::new(AtomicBool::new(false));
    let (mut a, mut b, flag) = (a.leading.clone(), b.leading.clone(), both.clone());
    tokio::spawn(async move {
        loop {
            if *a.borrow_and_update() && *b.borrow_and_update() {
                flag.store(true, Ordering::SeqCst);
            }
            tokio::select! {
                r = a.changed() => if r.is_err() { return },
                r = b.changed() => if r.is_err() { return },
            }
        }
    });
    both
}

async fn lease_spec(api: &Api<Lease>) -> anyhow::Result<LeaseSpec> {
    Ok(api.get("lock").await?.spec.unwrap_or_default())
}

#[tokio::test]
async fn exactly_one_candidate_leads_and_the_other_takes_over_when_it_releases() -> anyhow::Result<()> {
    let server = TestApiserver::start().await?;
    let leases: Api<Lease> = Api::namespaced(Client::new(&server.url())?, "default");
    let (lease, renew, retry) = (Duration::from_secs(5), Duration::from_secs(3), Duration::from_millis(200));
    let a = Candidate::start(&server.url(), "a", lease, renew, retry)?;
    let b = Candidate::start(&server.url(), "b", lease, renew, retry)?;
    let two_leaders = watch_for_two_leaders(&a, &b);

    wait_for(WAIT, || async { a.leads() || b.leads() }).await?;
    let (mut leader, mut follower, leader_id, follower_id) =
        if a.leads() { (a, b, "a", "b") } else { (b, a, "b", "a") };
    let spec = lease_spec(&leases).await?;
    assert_eq!(spec.holder_identity.as_deref(), Some(leader_id));
    assert_eq!(spec.lease_transitions, Some(0));
    assert_eq!(spec.lease_duration_seconds, Some(5));

    // The leader renews: the Lease keeps changing and the follower keeps waiting.
    let renewed = spec.renew_time.clone();
    wait_for(WAIT, || async { lease_spec(&leases).await.is_ok_and(|s| s.renew_time > renewed) }).await?;
    assert!(!follower.leads());

    let stopped = Instant::now();
    leader.shutdown.cancel();
    (&mut leader.task).await?;
    assert!(!leader.leads());
    wait_for(WAIT, || async { follower.leads() }).await?;
    assert!(
        stopped.elapsed() < lease,
        "took over after {:?}: the lease was released, not left to expire",
        stopped.elapsed()
    );
    let spec = lease_spec(&leases).await?;
    assert_eq!(spec.holder_identity.as_deref(), Some(follower_id));
    assert_eq!(spec.lease_transitions, Some(1));
    assert!(!two_leaders.load(Ordering::SeqCst), "two candidates led at once");

    // The last candidate releases the Lease on shutdown.
    follower.shutdown.cancel();
    (&mut follower.task).await?;
    let spec = lease_spec(&leases).await?;
    assert_eq!(spec.holder_identity, None);
    assert_eq!(spec.lease_transitions, Some(1));
    Ok(())
}

#[tokio::test]
async fn a_vanished_leader_is_replaced_only_after_its_lease_expires() -> anyhow::Result<()> {
    let server = TestApiserver::start().await?;
    let leases: Api<Lease> = Api::namespaced(Client::new(&server.url())?, "default");
    let (lease, renew, retry) = (Duration::from_secs(2), Duration::from_secs(1), Duration::from_millis(100));
    let mut a = Candidate::start(&server.url(), "a", lease, renew, retry)?;
    wait_for(WAIT, || async { a.leads() }).await?;
    let b = Candidate::start(&server.url(), "b", lease, renew, retry)?;

    // Wait until b has seen a renewal, then make a vanish without releasing.
    let seen = lease_spec(&leases).await?.renew_time;
    wait_for(WAIT, || async { lease_spec(&leases).await.is_ok_and(|s| s.renew_time > seen) }).await?;
    assert!(!b.leads());
    a.task.abort();
    let vanished = Instant::now();
    assert!((&mut a.task).await.is_err_and(|e| e.is_cancelled()));
    assert!(!a.leads(), "a dropped elector no longer claims to lead");
    assert_eq!(lease_spec(&leases).await?.holder_identity.as_deref(), Some("a"), "not released");

    wait_for(WAIT, || async { b.leads() }).await?;
    let waited = vanished.elapsed();
    assert!(waited >= lease - retry * 2, "took over after {waited:?}, before the lease could expire");
    let spec = lease_spec(&leases).await?;
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_transitions, Some(1));
    b.shutdown.cancel();
    Ok(())
}
