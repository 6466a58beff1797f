//! Exponential back-off with jitter, for retrying calls to the apiserver
//! without a crowd of clients retrying in lock-step; and [`KeyedBackoff`],
//! one un-jittered back-off per key for controllers that hold off a repeated
//! action on one thing (a DaemonSet's failed pod on one node).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Delays that double from `initial` up to `max`; each delay handed out is
/// jittered down to between half and all of the current step.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    step: Duration,
}

impl Backoff {
    /// Back-off from `initial`, doubling up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff { initial, max, step: initial.min(max) }
    }

    /// The next delay to wait; the one after it is twice as long (up to the cap).
    pub fn next_delay(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(self.max);
        step.mul_f64(0.5 + fastrand::f64() * 0.5)
    }

    /// Starts again from the initial delay (after a success).
    pub fn reset(&mut self) {
        self.step = self.initial.min(self.max);
    }
}

impl Default for Backoff {
    /// 100 ms doubling to 10 s.
    fn default() -> Self {
        Backoff::new(Duration::from_millis(100), Duration::from_secs(10))
    }
}

/// One back-off per key (client-go's `flowcontrol.Backoff`): a key's delay
/// starts at `initial` and doubles, up to `max`, each time it is stepped
/// with [`next`](Self::next); a key left alone for twice `max` starts over.
#[derive(Debug)]
pub struct KeyedBackoff {
    initial: Duration,
    max: Duration,
    /// key -> (when it was last stepped, its current delay).
    entries: Mutex<HashMap<String, (Instant, Duration)>>,
}

impl KeyedBackoff {
    /// Delays per key from `initial`, doubling up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        KeyedBackoff { initial, max, entries: Mutex::default() }
    }

    fn expired(&self, last: Instant, now: Instant) -> bool {
        now.saturating_duration_since(last) > self.max * 2
    }

    /// How much longer `key` must wait since it was last stepped; None when
    /// it need not wait.
    pub fn remaining(&self, key: &str, now: Instant) -> Option<Duration> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (last, delay) = *entries.get(key)?;
        let waited = now.saturating_duration_since(last);
        (waited < delay && !self.expired(last, now)).then(|| delay - waited)
    }

    /// Steps `key` at `now`: its delay starts at `initial`, or doubles. Keys
    /// idle for twice `max` are forgotten.
    pub fn next(&self, key: &str, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.retain(|_, (last, _)| !self.expired(*last, now));
        let delay = match entries.get(key) {
            Some((_, delay)) => (*delay * 2).min(self.max),
            None => self.initial.min(self.max),
        };
        entries.insert(key.to_string(), (now, delay));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_within_jitter() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        for step in [100, 200, 400, 800, 1000, 1000] {
            let d = b.next_delay();
            let step = Duration::from_millis(step);
            assert!(d >= step / 2 && d <= step, "{d:?} not within jitter of {step:?}");
        }
    }

    #[test]
    fn reset_starts_over_from_the_initial_delay() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        for _ in 0..10 {
            b.next_delay();
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn keyed_delays_double_per_key_and_expire() {
        let b = KeyedBackoff::new(Duration::from_secs(1), Duration::from_secs(4));
        let t0 = Instant::now();
        assert_eq!(b.remaining("a", t0), None, "never stepped");
        b.next("a", t0);
        assert_eq!(b.remaining("a", t0), Some(Duration::from_secs(1)));
        assert_eq!(b.remaining("b", t0), None, "another key");
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(b.remaining("a", t1), None, "waited long enough");
        b.next("a", t1);
        assert_eq!(b.remaining("a", t1 + Duration::from_millis(500)), Some(Duration::from_millis(1500)));
        let (t2, t3) = (t1 + Duration::from_secs(2), t1 + Duration::from_secs(6));
        b.next("a", t2);
        b.next("a", t3);
        assert_eq!(b.remaining("a", t3), Some(Duration::from_secs(4)), "capped");
        let later = t3 + Duration::from_secs(9);
        assert_eq!(b.remaining("a", later), None);
        b.next("a", later);
        assert_eq!(b.remaining("a", later), Some(Duration::from_secs(1)), "idle for twice the cap: starts over");
    }
}
