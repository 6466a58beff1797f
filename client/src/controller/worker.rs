//! The worker loop every controller shares: take a key from the
//! [`WorkQueue`], reconcile it, and requeue it as the result says.
//!
//! The queue guarantees that one key is never reconciled by two workers at
//! once. The error policy: a transient error (the default) is retried with
//! the queue's per-key back-off (5 ms doubling up to the queue's maximum), so
//! a broken template or an unreachable apiserver is retried ever more slowly
//! rather than in a hot loop; a permanent error ([`ReconcileError::is_permanent`])
//! is logged and the key waits for the next change. A success clears the
//! back-off and may ask to run again later.

use crate::queue::WorkQueue;
use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What a successful reconcile asks for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing until the object (or something it depends on) changes.
    AwaitChange,
    /// Reconcile the key again after this long, even without a change.
    RequeueAfter(Duration),
}

/// How the worker loop treats a failed reconcile.
pub trait ReconcileError: Display {
    /// True when retrying cannot help until something changes (the object
    /// itself is invalid): the key is not requeued. Default: transient.
    fn is_permanent(&self) -> bool {
        false
    }

    /// True for a lost race (a write conditional on a resourceVersion that
    /// moved on): retried like any transient error, but logged at debug
    /// level, since it is part of normal operation.
    fn is_race(&self) -> bool {
        false
    }
}

impl ReconcileError for rkube_api::ApiError {
    fn is_race(&self) -> bool {
        self.reason == rkube_api::Reason::Conflict
    }
}
impl ReconcileError for &'static str {}
impl ReconcileError for String {}

/// Told about every reconcile, for metrics.
pub trait Observer: Send + Sync {
    /// `controller` reconciled one key in `elapsed`; `ok` when it succeeded.
    fn reconciled(&self, controller: &'static str, ok: bool, elapsed: Duration);
    /// `controller`'s queue holds `depth` keys.
    fn queue_depth(&self, controller: &'static str, depth: usize);
}

/// An observer that records nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoObserver;

impl Observer for NoObserver {
    fn reconciled(&self, _: &'static str, _: bool, _: Duration) {}
    fn queue_depth(&self, _: &'static str, _: usize) {}
}

/// Starts `workers` workers on `tracker` that reconcile the keys of `queue`
/// with `reconcile` until `shutdown`; the queue is shut down then. Keys are
/// usually [`ObjectKey`](crate::store::ObjectKey)s; the garbage collector keys objects by uid.
pub fn spawn_workers<T, R, Fut, E>(
    controller: &'static str,
    queue: WorkQueue<T>,
    workers: usize,
    reconcile: R,
    observer: Arc<dyn Observer>,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) where
    T: Clone + Eq + std::hash::Hash + Display + Send + Sync + 'static,
    R: Fn(T) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, E>> + Send,
    E: ReconcileError,
{
    let q = queue.clone();
    tracker.spawn(async move {
        shutdown.cancelled().await;
        q.shut_down();
    });
    for _ in 0..workers.max(1) {
        let (queue, reconcile, observer) = (queue.clone(), reconcile.clone(), observer.clone());
        tracker.spawn(async move {
            while let Some(key) = queue.get().await {
                observer.queue_depth(controller, queue.len());
                let started = Instant::now();
                let result = reconcile(key.clone()).await;
                observer.reconciled(controller, result.is_ok(), started.elapsed());
                match result {
                    Ok(action) => {
                        queue.forget(&key);
                        if let Action::RequeueAfter(delay) = action {
                            queue.add_after(key.clone(), delay);
                        }
                    }
                    Err(e) if e.is_permanent() => {
                        tracing::warn!(controller, key = %key, error = %e, "reconcile failed; waiting for a change");
                        queue.forget(&key);
                    }
                    Err(e) => {
                        let retries = queue.num_requeues(&key);
                        if e.is_race() {
                            tracing::debug!(controller, key = %key, retries, error = %e, "lost a race; retrying");
                        } else {
                            tracing::warn!(controller, key = %key, retries, error = %e, "reconcile failed; retrying");
                        }
                        queue.add_rate_limited(key.clone());
                    }
                }
                queue.done(&key);
                observer.queue_depth(controller, queue.len());
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ObjectKey;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Counts(Mutex<(u32, u32)>);

    impl Observer for Counts {
        fn reconciled(&self, _: &'static str, ok: bool, _: Duration) {
            let mut c = self.0.lock().unwrap();
            if ok { c.0 += 1 } else { c.1 += 1 }
        }
        fn queue_depth(&self, _: &'static str, _: usize) {}
    }

    struct Permanent;

    impl Display for Permanent {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("the template is invalid")
        }
    }

    impl ReconcileError for Permanent {
        fn is_permanent(&self) -> bool {
            true
        }
    }

    #[tokio::test]
    async fn failed_keys_are_retried_until_they_succeed() {
        let queue = WorkQueue::with_rate_limit(Duration::from_millis(1), Duration::from_millis(10));
        let attempts = Arc::new(Mutex::new(0u32));
        let (tracker, shutdown) = (TaskTracker::new(), CancellationToken::new());
        let (a, done) = (attempts.clone(), Arc::new(tokio::sync::Notify::new()));
        let d = done.clone();
        let reconcile = move |_key: ObjectKey| {
            let (a, d) = (a.clone(), d.clone());
            async move {
                let mut n = a.lock().unwrap();
                *n += 1;
                if *n < 3 {
                    return Err("not yet");
                }
                d.notify_one();
                Ok(Action::AwaitChange)
            }
        };
        let counts = Arc::new(Counts::default());
        spawn_workers("test", queue.clone(), 2, reconcile, counts.clone(), &tracker, shutdown.clone());
        queue.add(ObjectKey::new("", "n1"));
        tokio::time::timeout(Duration::from_secs(5), done.notified()).await.expect("succeeds on the third attempt");
        shutdown.cancel();
        tracker.close();
        tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await.expect("workers stop on shutdown");
        assert_eq!(*attempts.lock().unwrap(), 3);
        assert_eq!(queue.num_requeues(&ObjectKey::new("", "n1")), 0, "forgotten after success");
        assert_eq!(*counts.0.lock().unwrap(), (1, 2), "one success, two errors observed");
    }

    #[tokio::test]
    async fn permanent_errors_are_not_retried() {
        let queue = WorkQueue::with_rate_limit(Duration::from_millis(1), Duration::from_millis(10));
        let attempts = Arc::new(Mutex::new(0u32));
        let (tracker, shutdown) = (TaskTracker::new(), CancellationToken::new());
        let a = attempts.clone();
        let reconcile = move |_key: ObjectKey| {
            let a = a.clone();
            async move {
                *a.lock().unwrap() += 1;
                Err::<Action, _>(Permanent)
            }
        };
        spawn_workers("test", queue.clone(), 1, reconcile, Arc::new(NoObserver), &tracker, shutdown.clone());
        queue.add(ObjectKey::new("", "bad"));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(*attempts.lock().unwrap(), 1, "no retry of a permanent error");
        queue.add(ObjectKey::new("", "bad"));
        let again = async {
            while *attempts.lock().unwrap() < 2 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), again).await.expect("a new change runs it again");
        shutdown.cancel();
        tracker.close();
        tracker.wait().await;
    }
}
