//! Per-key exponential back-off (Kubernetes' `flowcontrol.Backoff`), for
//! restarting crashed containers (`CrashLoopBackOff`: 10 s doubling to
//! 5 min, reset once a container ran for 10 min) and for retrying failed
//! image pulls (`ImagePullBackOff`).

use k8s_openapi::jiff::Timestamp;
use std::collections::HashMap;
use std::time::Duration;

/// First restart delay of a crashing container.
pub const CRASH_INITIAL: Duration = Duration::from_secs(10);
/// Longest restart delay.
pub const CRASH_MAX: Duration = Duration::from_secs(300);
/// A container that ran this long starts its back-off over.
pub const RESET_AFTER: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Copy)]
struct Entry {
    delay: Duration,
    updated: Timestamp,
}

/// Delays per key that double on each attempt up to a cap.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    entries: HashMap<String, Entry>,
}

impl Default for Backoff {
    /// 10 s doubling to 5 min.
    fn default() -> Self {
        Backoff::new(CRASH_INITIAL, CRASH_MAX)
    }
}

fn elapsed(since: Timestamp, now: Timestamp) -> Duration {
    Duration::try_from(now.duration_since(since)).unwrap_or(Duration::ZERO)
}

impl Backoff {
    /// Delays from `initial` doubling up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff { initial, max, entries: HashMap::new() }
    }

    /// The current delay of `key`, if it has one.
    pub fn delay(&self, key: &str) -> Option<Duration> {
        self.entries.get(key).map(|e| e.delay)
    }

    /// How long `key` must still wait after an event at `since` (a
    /// container's exit), or None if it may go ahead.
    pub fn remaining_since(&self, key: &str, since: Timestamp, now: Timestamp) -> Option<Duration> {
        let e = self.entries.get(key)?;
        e.delay.checked_sub(elapsed(since, now)).filter(|d| !d.is_zero())
    }

    /// How long `key` must still wait after its last attempt (a failed
    /// pull), or None if it may go ahead.
    pub fn remaining_since_update(&self, key: &str, now: Timestamp) -> Option<Duration> {
        let e = self.entries.get(key)?;
        self.remaining_since(key, e.updated, now)
    }

    /// Records an attempt at `now`: the first waits `initial` before the
    /// next, each further one twice as long, up to `max`.
    pub fn next(&mut self, key: &str, now: Timestamp) {
        let delay = match self.entries.get(key) {
            None => self.initial,
            Some(e) => (e.delay * 2).min(self.max),
        };
        self.entries.insert(key.to_string(), Entry { delay, updated: now });
    }

    /// Forgets `key`: its next attempt goes ahead at once.
    pub fn reset(&mut self, key: &str) {
        self.entries.remove(key);
    }

    /// Forgets every key starting with `prefix` (a pod's uid).
    pub fn forget_prefix(&mut self, prefix: &str) {
        self.entries.retain(|k, _| !k.starts_with(prefix));
    }
}

/// What to do with a container that exited and whose policy restarts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Restart it now.
    Now,
    /// Wait `remaining` more (the current back-off is `delay`).
    Wait {
        /// Time left.
        remaining: Duration,
        /// The back-off step.
        delay: Duration,
    },
}

/// Whether a crashed container may restart: at once the first time and
/// after running for [`RESET_AFTER`], else once its back-off since it
/// finished has passed.
pub fn crash_restart(
    backoff: &Backoff,
    key: &str,
    started_at: Option<Timestamp>,
    finished_at: Option<Timestamp>,
    now: Timestamp,
) -> Restart {
    if ran_long(started_at, finished_at) {
        return Restart::Now;
    }
    let finished = finished_at.unwrap_or(now);
    match backoff.remaining_since(key, finished, now) {
        Some(remaining) => Restart::Wait { remaining, delay: backoff.delay(key).unwrap_or(CRASH_INITIAL) },
        None => Restart::Now,
    }
}

/// Whether a container ran long enough for its back-off to start over.
pub fn ran_long(started_at: Option<Timestamp>, finished_at: Option<Timestamp>) -> bool {
    match (started_at, finished_at) {
        (Some(s), Some(f)) => elapsed(s, f) >= RESET_AFTER,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    #[test]
    fn first_crash_restarts_at_once_then_waits_ten_seconds() {
        let mut b = Backoff::default();
        assert_eq!(crash_restart(&b, "c", Some(t(0)), Some(t(1)), t(1)), Restart::Now);
        b.next("c", t(1));
        assert_eq!(
            crash_restart(&b, "c", Some(t(1)), Some(t(2)), t(5)),
            Restart::Wait { remaining: Duration::from_secs(7), delay: CRASH_INITIAL }
        );
        assert_eq!(crash_restart(&b, "c", Some(t(1)), Some(t(2)), t(12)), Restart::Now);
    }

    #[test]
    fn delays_double_up_to_five_minutes() {
        let mut b = Backoff::default();
        let mut seen = Vec::new();
        for i in 0..8 {
            b.next("c", t(i));
            seen.push(b.delay("c").unwrap().as_secs());
        }
        assert_eq!(seen, [10, 20, 40, 80, 160, 300, 300, 300]);
    }

    #[test]
    fn ten_minutes_of_running_resets_the_back_off() {
        let mut b = Backoff::default();
        for i in 0..5 {
            b.next("c", t(i));
        }
        assert_eq!(crash_restart(&b, "c", Some(t(0)), Some(t(600)), t(601)), Restart::Now);
        assert!(matches!(crash_restart(&b, "c", Some(t(0)), Some(t(599)), t(600)), Restart::Wait { .. }));
    }

    #[test]
    fn pull_back_off_counts_from_the_last_failure() {
        let mut b = Backoff::default();
        assert_eq!(b.remaining_since_update("img", t(0)), None);
        b.next("img", t(0));
        assert_eq!(b.remaining_since_update("img", t(4)), Some(Duration::from_secs(6)));
        assert_eq!(b.remaining_since_update("img", t(10)), None);
        b.next("img", t(10));
        assert_eq!(b.remaining_since_update("img", t(15)), Some(Duration::from_secs(15)));
    }

    #[test]
    fn forgetting_a_pod_drops_only_its_keys() {
        let mut b = Backoff::default();
        b.next("uid-1/a", t(0));
        b.next("uid-2/a", t(0));
        b.forget_prefix("uid-1/");
        assert_eq!(b.delay("uid-1/a"), None);
        assert!(b.delay("uid-2/a").is_some());
    }
}
