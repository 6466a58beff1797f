//! Leader election on a `coordination.k8s.io/v1` Lease, like client-go's
//! `leaderelection` package.
//!
//! Every candidate runs a [`LeaderElector`] on the same Lease. A candidate
//! takes the Lease when it is absent, released (no holder), or has not changed
//! for its `leaseDurationSeconds` as measured on the candidate's own clock
//! since it last saw it change (so clock skew between machines does not
//! matter). Every write is conditional on the resourceVersion read, so of two
//! candidates racing for the Lease exactly one wins. The leader renews every
//! `retry_period`; if it cannot renew for `renew_deadline` (shorter than the
//! lease duration, so it steps down before anyone may take over) it stops
//! leading and becomes a candidate again. On shutdown the leader releases the
//! Lease so another candidate takes over at once.
//!
//! Whether this candidate leads is published on a [`watch`] channel
//! ([`LeaderElector::leading`]): start leader-only work when it turns true and
//! stop it when it turns false.

use crate::client::{Api, Client};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use rkube_api::{ApiError, Reason, Result};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// client-go's defaults: a 15 s lease, renewed within 10 s, retried every 2 s.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);
/// See [`DEFAULT_LEASE_DURATION`].
pub const DEFAULT_RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// See [`DEFAULT_LEASE_DURATION`].
pub const DEFAULT_RETRY_PERIOD: Duration = Duration::from_secs(2);

/// The Lease as this candidate last saw it change.
struct Observed {
    lease: Lease,
    /// When (on this machine's clock) the Lease was first seen in this version.
    at: Instant,
}

/// One candidate for the leadership held by one Lease; see the module docs.
pub struct LeaderElector {
    api: Api<Lease>,
    namespace: String,
    name: String,
    identity: String,
    lease_duration: Duration,
    renew_deadline: Duration,
    retry_period: Duration,
    leading: Arc<watch::Sender<bool>>,
    observed: Option<Observed>,
}

impl std::fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElector")
            .field("lease", &format_args!("{}/{}", self.namespace, self.name))
            .field("identity", &self.identity)
            .field("leading", &*self.leading.borrow())
            .finish()
    }
}

/// Publishes "not leading" when dropped, however `run` ends.
struct NotLeadingOnDrop(Arc<watch::Sender<bool>>);

impl Drop for NotLeadingOnDrop {
    fn drop(&mut self) {
        self.0.send_replace(false);
    }
}

/// Runs `fut` unless `shutdown` comes first (None).
async fn unless_shutdown<T>(shutdown: &CancellationToken, fut: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        _ = shutdown.cancelled() => None,
        v = fut => Some(v),
    }
}

/// The current time (k8s-openapi's jiff is built without `std`, so no `Timestamp::now`).
fn now() -> MicroTime {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let micros = i64::try_from(since_epoch.as_micros()).unwrap_or(i64::MAX);
    MicroTime(Timestamp::from_microsecond(micros).unwrap_or(Timestamp::MAX))
}

impl LeaderElector {
    /// A candidate called `identity` for the Lease `namespace/name`. The
    /// durations must satisfy `lease_duration > renew_deadline > retry_period`,
    /// with a lease duration of at least one second (see the `DEFAULT_*` constants).
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        lease_duration: Duration,
        renew_deadline: Duration,
        retry_period: Duration,
    ) -> Result<LeaderElector> {
        let invalid = |why: String| Err(ApiError::bad_request(format!("leader election on lease {name}: {why}")));
        if identity.is_empty() {
            return invalid("the identity must not be empty".into());
        }
        if name.is_empty() {
            return invalid("the lease name must not be empty".into());
        }
        if lease_duration < Duration::from_secs(1) {
            return invalid(format!("the lease duration ({lease_duration:?}) must be at least 1s"));
        }
        if lease_duration <= renew_deadline {
            return invalid(format!(
                "the lease duration ({lease_duration:?}) must be greater than the renew deadline ({renew_deadline:?})"
            ));
        }
        if renew_deadline <= retry_period || retry_period.is_zero() {
            return invalid(format!(
                "the renew deadline ({renew_deadline:?}) must be greater than the retry period ({retry_period:?}), \
                 which must not be zero"
            ));
        }
        Ok(LeaderElector {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            name: name.to_string(),
            identity: identity.to_string(),
            lease_duration,
            renew_deadline,
            retry_period,
            leading: Arc::new(watch::channel(false).0),
            observed: None,
        })
    }

    /// Whether this candidate leads, now and as it changes.
    pub fn leading(&self) -> watch::Receiver<bool> {
        self.leading.subscribe()
    }

    /// This candidate's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    fn lease_seconds(&self) -> i32 {
        let d = self.lease_duration;
        i32::try_from(d.as_secs() + u64::from(d.subsec_nanos() > 0)).unwrap_or(i32::MAX)
    }

    /// Campaigns, leads and campaigns again after losing the Lease, until
    /// `shutdown`; then releases the Lease if it holds it. If this future is
    /// dropped instead, [`leading`](Self::leading) turns false but the Lease
    /// is only taken over once it expires.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let _not_leading_when_dropped = NotLeadingOnDrop(self.leading.clone());
        while self.acquire(&shutdown).await {
            info!(lease = %self.name, identity = %self.identity, "became leader");
            self.leading.send_replace(true);
            let lost = self.renew(&shutdown).await;
            self.leading.send_replace(false);
            if !lost {
                break;
            }
            warn!(lease = %self.name, identity = %self.identity, "lost leadership");
        }
        // Also when not leading: an attempt cut short by shutdown may have won.
        self.release().await;
    }

    /// Tries every `retry_period` (jittered) until this candidate holds the
    /// Lease (true) or shutdown (false).
    async fn acquire(&mut self, shutdown: &CancellationToken) -> bool {
        loop {
            let attempt = tokio::time::timeout(self.renew_deadline, self.try_acquire_or_renew());
            match unless_shutdown(shutdown, attempt).await {
                None => return false,
                Some(Ok(Ok(true))) => return true,
                Some(Ok(Ok(false))) => {}
                Some(Ok(Err(e))) => debug!(lease = %self.name, error = %e, "could not acquire the lease"),
                Some(Err(_)) => debug!(lease = %self.name, "acquiring the lease timed out"),
            }
            let pause = self.retry_period.mul_f64(1.0 + fastrand::f64() * 0.2);
            if unless_shutdown(shutdown, tokio::time::sleep(pause)).await.is_none() {
                return false;
            }
        }
    }

    /// Renews every `retry_period` until the Lease is lost (true) or shutdown (false).
    async fn renew(&mut self, shutdown: &CancellationToken) -> bool {
        let mut renewed = Instant::now();
        loop {
            if unless_shutdown(shutdown, tokio::time::sleep(self.retry_period)).await.is_none() {
                return false;
            }
            let remaining = self.renew_deadline.saturating_sub(renewed.elapsed());
            let attempt = tokio::time::timeout(remaining, self.try_acquire_or_renew());
            match unless_shutdown(shutdown, attempt).await {
                None => return false,
                Some(Ok(Ok(true))) => renewed = Instant::now(),
                Some(Ok(Ok(false))) => return true,
                Some(Ok(Err(e))) => warn!(lease = %self.name, error = %e, "could not renew the lease"),
                Some(Err(_)) => warn!(lease = %self.name, "renewing the lease timed out"),
            }
            if renewed.elapsed() >= self.renew_deadline {
                return true;
            }
        }
    }

    /// Records `lease` as seen now if it changed since last seen.
    fn observe(&mut self, lease: &Lease) {
        let changed = self.observed.as_ref().is_none_or(|o| {
            o.lease.metadata.resource_version != lease.metadata.resource_version
                || o.lease.metadata.uid != lease.metadata.uid
        });
        if changed {
            self.observed = Some(Observed { lease: lease.clone(), at: Instant::now() });
        }
    }

    /// One attempt: creates the Lease, takes it over, or renews it. Ok(false)
    /// when another candidate holds it (or won a race for it).
    async fn try_acquire_or_renew(&mut self) -> Result<bool> {
        let Some(lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    namespace: Some(self.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(self.lease_seconds()),
                    acquire_time: Some(now()),
                    renew_time: Some(now()),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&lease).await {
                Ok(created) => {
                    self.observed = Some(Observed { lease: created, at: Instant::now() });
                    Ok(true)
                }
                Err(e) if e.reason == Reason::AlreadyExists => Ok(false),
                Err(e) => Err(e),
            };
        };
        self.observe(&lease);
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.as_deref().filter(|h| !h.is_empty());
        let held_by_me = holder == Some(self.identity.as_str());
        if holder.is_some() && !held_by_me {
            let duration = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map_or(self.lease_duration, Duration::from_secs);
            let seen = self.observed.as_ref().map_or_else(Instant::now, |o| o.at);
            if seen.elapsed() < duration {
                return Ok(false);
            }
        }
        let mut next = lease.clone();
        let next_spec = next.spec.get_or_insert_with(LeaseSpec::default);
        if !held_by_me {
            next_spec.acquire_time = Some(now());
            next_spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        }
        next_spec.holder_identity = Some(self.identity.clone());
        next_spec.lease_duration_seconds = Some(self.lease_seconds());
        next_spec.renew_time = Some(now());
        match self.api.replace(&next).await {
            Ok(written) => {
                if !held_by_me {
                    info!(lease = %self.name, identity = %self.identity, previous = holder.unwrap_or(""), "took over the lease");
                }
                self.observed = Some(Observed { lease: written, at: Instant::now() });
                Ok(true)
            }
            // Someone else wrote the Lease since we read it: they won.
            Err(e) if e.reason == Reason::Conflict || e.reason == Reason::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives up the Lease if it names this candidate, so another can take it
    /// at once. It reads the Lease afresh: a renewal interrupted by shutdown
    /// may have landed after the last version this candidate saw. A Lease
    /// another candidate holds is left alone.
    async fn release(&mut self) {
        let attempt = async {
            // A conflict means the Lease changed under us: look again.
            for _ in 0..3 {
                let Some(mut lease) = self.api.get_opt(&self.name).await? else { return Ok(false) };
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
                    return Ok(false);
                }
                spec.holder_identity = None;
                spec.lease_duration_seconds = Some(1);
                spec.acquire_time = Some(now());
                spec.renew_time = Some(now());
                match self.api.replace(&lease).await {
                    Ok(_) => return Ok(true),
                    Err(e) if e.reason == Reason::Conflict => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(ApiError::conflict("leases", &self.name, "the lease kept changing"))
        };
        match tokio::time::timeout(self.renew_deadline, attempt).await {
            Ok(Ok(true)) => info!(lease = %self.name, identity = %self.identity, "released the lease"),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => warn!(lease = %self.name, error = %e, "could not release the lease"),
            Err(_) => warn!(lease = %self.name, "releasing the lease timed out"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elector(lease: u64, renew: u64, retry: u64) -> Result<LeaderElector> {
        let client = Client::new("http://127.0.0.1:1").expect("a valid URL");
        let ms = Duration::from_millis;
        LeaderElector::new(client, "default", "lock", "me", ms(lease), ms(renew), ms(retry))
    }

    #[tokio::test]
    async fn new_accepts_lease_longer_than_renew_deadline_longer_than_retry_period() {
        let e = elector(15_000, 10_000, 2_000).expect("client-go's defaults are valid");
        assert_eq!(e.lease_seconds(), 15);
        assert!(!*e.leading().borrow());
        assert_eq!(elector(1_500, 1_000, 100).expect("valid").lease_seconds(), 2, "rounded up to whole seconds");
    }

    #[tokio::test]
    async fn new_rejects_inconsistent_durations() {
        for (lease, renew, retry) in
            [(10_000, 10_000, 2_000), (15_000, 2_000, 2_000), (15_000, 10_000, 0), (500, 400, 100)]
        {
            let e = elector(lease, renew, retry).expect_err("inconsistent durations");
            assert_eq!(e.reason, Reason::BadRequest, "{}", e.message);
            assert!(e.message.contains("lease lock"), "{}", e.message);
        }
    }
}

/// The Lease timings of leader election, as flags (flatten into a daemon's
/// clap `Args`; the daemon keeps its own `--leader-elect` switch).
#[derive(Debug, Clone, clap::Args)]
pub struct LeaderElectArgs {
    /// How long the Lease is valid without renewal (other instances wait this long).
    #[arg(long = "leader-elect-lease-duration", env = "RKUBE_LEADER_ELECT_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it steps down.
    #[arg(long = "leader-elect-renew-deadline", env = "RKUBE_LEADER_ELECT_RENEW_DEADLINE", default_value = "10s", value_parser = parse_duration)]
    pub renew_deadline: Duration,
    /// How often candidates try to take, and the leader to renew, the Lease.
    #[arg(long = "leader-elect-retry-period", env = "RKUBE_LEADER_ELECT_RETRY_PERIOD", default_value = "2s", value_parser = parse_duration)]
    pub retry_period: Duration,
}

/// Parses a duration flag: a number (decimals allowed) with the unit ms, s,
/// m or h (`500ms`, `15s`, `1.5m`); a bare number means seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: f64 = number.parse().map_err(|_| format!("\"{s}\" is not a duration (e.g. 500ms, 15s, 2m)"))?;
    let seconds = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("\"{s}\" is not a duration: use the unit ms, s, m or h (e.g. 15s)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("\"{s}\": {e}"))
}

#[cfg(test)]
mod duration_tests {
    use super::*;

    #[test]
    fn durations_take_kubernetes_units() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3d").is_err());
    }
}
