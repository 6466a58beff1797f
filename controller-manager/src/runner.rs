//! The worker loop every controller shares: take a key from the
//! [`WorkQueue`], reconcile it, and requeue it as the result says.
//!
//! The queue guarantees that one key is never reconciled by two workers at
//! once. A failed reconcile is retried with the queue's per-key back-off; a
//! successful one clears the back-off and may ask to run again later.

use crate::metrics::Metrics;
use rkube_client::{ObjectKey, WorkQueue};
use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
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

/// Starts `workers` workers on `tracker` that reconcile the keys of `queue`
/// with `reconcile` until `shutdown`; the queue is shut down then.
pub fn spawn_workers<R, Fut, E>(
    controller: &'static str,
    queue: WorkQueue<ObjectKey>,
    workers: usize,
    reconcile: R,
    metrics: Arc<Metrics>,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) where
    R: Fn(ObjectKey) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, E>> + Send,
    E: Display,
{
    let q = queue.clone();
    tracker.spawn(async move {
        shutdown.cancelled().await;
        q.shut_down();
    });
    for _ in 0..workers.max(1) {
        let (queue, reconcile, metrics) = (queue.clone(), reconcile.clone(), metrics.clone());
        tracker.spawn(async move {
            while let Some(key) = queue.get().await {
                match reconcile(key.clone()).await {
                    Ok(action) => {
                        metrics.reconciled(controller, true);
                        queue.forget(&key);
                        if let Action::RequeueAfter(delay) = action {
                            queue.add_after(key.clone(), delay);
                        }
                    }
                    Err(e) => {
                        metrics.reconciled(controller, false);
                        let retries = queue.num_requeues(&key);
                        tracing::warn!(controller, key = %key, retries, error = %e, "reconcile failed; retrying");
                        queue.add_rate_limited(key.clone());
                    }
                }
                queue.done(&key);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

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
        let metrics = Arc::new(Metrics::default());
        spawn_workers("test", queue.clone(), 2, reconcile, metrics.clone(), &tracker, shutdown.clone());
        queue.add(ObjectKey::new("", "n1"));
        tokio::time::timeout(Duration::from_secs(5), done.notified()).await.expect("succeeds on the third attempt");
        shutdown.cancel();
        tracker.close();
        tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await.expect("workers stop on shutdown");
        assert_eq!(*attempts.lock().unwrap(), 3);
        assert_eq!(queue.num_requeues(&ObjectKey::new("", "n1")), 0, "forgotten after success");
        assert!(metrics.render().contains("rkube_controller_reconcile_total{controller=\"test\",result=\"error\"} 2"));
    }
}
