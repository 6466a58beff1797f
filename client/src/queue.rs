//! A de-duplicating, rate-limited work queue for controllers (like
//! client-go's `workqueue.RateLimitingInterface`).
//!
//! Watch handlers [`add`](WorkQueue::add) keys; workers loop on
//! [`get`](WorkQueue::get), reconcile, then call [`done`](WorkQueue::done).
//! A key added while it is queued is queued once; a key added while a worker
//! processes it is queued again once that worker calls `done`, so no key is
//! ever processed by two workers at once and no change is missed. Failed keys
//! go back with [`add_rate_limited`](WorkQueue::add_rate_limited): 5 ms,
//! 10 ms, 20 ms, ... up to 1000 s per key, until [`forget`](WorkQueue::forget).

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// First delay of [`WorkQueue::add_rate_limited`] (client-go's 5 ms).
pub const DEFAULT_BASE_DELAY: Duration = Duration::from_millis(5);
/// Longest delay of [`WorkQueue::add_rate_limited`] (client-go's 1000 s).
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(1000);

struct State<T> {
    /// Keys ready for a worker, in order.
    queue: VecDeque<T>,
    /// Keys that need processing: queued, or re-added while processing.
    dirty: HashSet<T>,
    /// Keys a worker holds.
    processing: HashSet<T>,
    /// Keys waiting for [`WorkQueue::add_after`], with when they are due.
    waiting: HashMap<T, Instant>,
    /// Consecutive failures per key.
    failures: HashMap<T, u32>,
    shutting_down: bool,
}

struct Inner<T> {
    state: Mutex<State<T>>,
    /// Wakes workers blocked in `get`.
    ready: Notify,
    /// Cancelled on shutdown: ends pending `add_after` timers.
    shutdown: CancellationToken,
    base_delay: Duration,
    max_delay: Duration,
}

/// The work queue; cheap to clone, every clone is the same queue.
pub struct WorkQueue<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Clone for WorkQueue<T> {
    fn clone(&self) -> Self {
        WorkQueue { inner: self.inner.clone() }
    }
}

impl<T> fmt::Debug for WorkQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.inner.lock();
        f.debug_struct("WorkQueue")
            .field("queued", &s.queue.len())
            .field("processing", &s.processing.len())
            .field("waiting", &s.waiting.len())
            .field("shutting_down", &s.shutting_down)
            .finish()
    }
}

impl<T> Inner<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Every update below leaves the state consistent before it can panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<T: Clone + Eq + Hash + Send + 'static> Default for WorkQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Clone + Eq + Hash + Send + 'static> WorkQueue<T> {
    /// An empty queue with client-go's per-key back-off (5 ms doubling to 1000 s).
    pub fn new() -> Self {
        Self::with_rate_limit(DEFAULT_BASE_DELAY, DEFAULT_MAX_DELAY)
    }

    /// An empty queue whose per-key back-off starts at `base` and doubles up to `max`.
    pub fn with_rate_limit(base: Duration, max: Duration) -> Self {
        WorkQueue {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    dirty: HashSet::new(),
                    processing: HashSet::new(),
                    waiting: HashMap::new(),
                    failures: HashMap::new(),
                    shutting_down: false,
                }),
                ready: Notify::new(),
                shutdown: CancellationToken::new(),
                base_delay: base,
                max_delay: max,
            }),
        }
    }

    /// Queues `key` unless it is queued already; if a worker is processing
    /// it, it is queued again when the worker calls [`done`](Self::done).
    /// Ignored after [`shut_down`](Self::shut_down).
    pub fn add(&self, key: T) {
        let mut s = self.inner.lock();
        if s.shutting_down || s.dirty.contains(&key) {
            return;
        }
        s.dirty.insert(key.clone());
        if s.processing.contains(&key) {
            return;
        }
        s.queue.push_back(key);
        drop(s);
        self.inner.ready.notify_one();
    }

    /// Adds `key` once `delay` has passed. If `key` is already waiting, the
    /// earlier of the two deadlines wins. Needs a tokio runtime.
    pub fn add_after(&self, key: T, delay: Duration) {
        if delay.is_zero() {
            return self.add(key);
        }
        let due = Instant::now() + delay;
        {
            let mut s = self.inner.lock();
            if s.shutting_down || s.waiting.get(&key).is_some_and(|&at| at <= due) {
                return;
            }
            s.waiting.insert(key.clone(), due);
        }
        let queue = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = queue.inner.shutdown.cancelled() => {}
                _ = tokio::time::sleep_until(due) => {
                    let mine = {
                        let mut s = queue.inner.lock();
                        let mine = s.waiting.get(&key) == Some(&due);
                        if mine {
                            s.waiting.remove(&key);
                        }
                        mine
                    };
                    // Otherwise an earlier deadline replaced this one and has fired or will.
                    if mine {
                        queue.add(key);
                    }
                }
            }
        });
    }

    /// Adds `key` after its back-off: the base delay doubled for each failure
    /// since the last [`forget`](Self::forget), capped at the maximum.
    pub fn add_rate_limited(&self, key: T) {
        let failures = {
            let mut s = self.inner.lock();
            let n = s.failures.entry(key.clone()).or_insert(0);
            *n = n.saturating_add(1);
            *n - 1
        };
        self.add_after(key, self.backoff(failures));
    }

    fn backoff(&self, failures: u32) -> Duration {
        let (base, max) = (self.inner.base_delay, self.inner.max_delay);
        let factor = 2f64.powi(failures.min(1023) as i32);
        Duration::try_from_secs_f64(base.as_secs_f64() * factor).map_or(max, |d| d.min(max))
    }

    /// Clears `key`'s failure count (after it was processed successfully).
    pub fn forget(&self, key: &T) {
        self.inner.lock().failures.remove(key);
    }

    /// How many times `key` was rate-limited since it was last forgotten.
    pub fn num_requeues(&self, key: &T) -> u32 {
        self.inner.lock().failures.get(key).copied().unwrap_or(0)
    }

    /// The next key to process, waiting for one; None once the queue is shut
    /// down (keys still queued then are dropped). The caller owns the key
    /// until it calls [`done`](Self::done).
    pub async fn get(&self) -> Option<T> {
        loop {
            let notified = self.inner.ready.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before looking, so an add or shutdown in between wakes us.
            notified.as_mut().enable();
            {
                let mut s = self.inner.lock();
                if s.shutting_down {
                    return None;
                }
                if let Some(key) = s.queue.pop_front() {
                    s.dirty.remove(&key);
                    s.processing.insert(key.clone());
                    let more = !s.queue.is_empty();
                    drop(s);
                    if more {
                        // Pass on a wake-up this worker may have consumed.
                        self.inner.ready.notify_one();
                    }
                    return Some(key);
                }
            }
            notified.await;
        }
    }

    /// Marks `key` as processed; if it was added meanwhile, queues it again.
    pub fn done(&self, key: &T) {
        let mut s = self.inner.lock();
        if !s.processing.remove(key) {
            return;
        }
        if s.dirty.contains(key) && !s.shutting_down {
            s.queue.push_back(key.clone());
            drop(s);
            self.inner.ready.notify_one();
        }
    }

    /// The number of keys ready for a worker (not counting those being
    /// processed or waiting for a delay).
    pub fn len(&self) -> usize {
        self.inner.lock().queue.len()
    }

    /// Whether no key is ready for a worker.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops the queue: blocked and future [`get`](Self::get)s return None,
    /// adds are ignored and pending delays are dropped.
    pub fn shut_down(&self) {
        {
            let mut s = self.inner.lock();
            s.shutting_down = true;
            s.waiting.clear();
        }
        self.inner.shutdown.cancel();
        self.inner.ready.notify_waiters();
    }

    /// Whether [`shut_down`](Self::shut_down) was called.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.lock().shutting_down
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const SHORT: Duration = Duration::from_millis(50);

    async fn get_now(q: &WorkQueue<&'static str>) -> Option<&'static str> {
        tokio::time::timeout(SHORT, q.get()).await.ok().flatten()
    }

    #[tokio::test]
    async fn a_key_added_twice_while_queued_is_processed_once() {
        let q = WorkQueue::new();
        q.add("a");
        q.add("b");
        q.add("a");
        assert_eq!(q.len(), 2);
        assert_eq!(q.get().await, Some("a"));
        assert_eq!(q.get().await, Some("b"));
        assert_eq!(get_now(&q).await, None);
    }

    #[tokio::test]
    async fn a_key_added_while_processing_is_requeued_after_done_only() {
        let q = WorkQueue::new();
        q.add("a");
        assert_eq!(q.get().await, Some("a"));
        q.add("a");
        q.add("a");
        assert_eq!(q.len(), 0, "not handed to a second worker while processing");
        assert_eq!(get_now(&q).await, None);
        q.done(&"a");
        assert_eq!(q.len(), 1);
        assert_eq!(q.get().await, Some("a"));
        q.done(&"a");
        assert_eq!(get_now(&q).await, None);
    }

    #[tokio::test]
    async fn get_waits_for_an_add() {
        let q = WorkQueue::new();
        let worker = tokio::spawn({
            let q = q.clone();
            async move { q.get().await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!worker.is_finished());
        q.add("a");
        assert_eq!(worker.await.expect("worker ran"), Some("a"));
    }

    #[tokio::test]
    async fn shut_down_wakes_blocked_workers_and_ignores_later_adds() {
        let q: WorkQueue<&'static str> = WorkQueue::new();
        let workers: Vec<_> = (0..3)
            .map(|_| {
                let q = q.clone();
                tokio::spawn(async move { q.get().await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(10)).await;
        q.shut_down();
        for w in workers {
            assert_eq!(w.await.expect("worker ran"), None);
        }
        q.add("a");
        assert!(q.is_empty());
        assert_eq!(q.get().await, None);
        assert!(q.is_shutting_down());
    }

    #[tokio::test]
    async fn add_after_delivers_the_key_after_the_delay() {
        let q = WorkQueue::new();
        let start = Instant::now();
        q.add_after("a", Duration::from_millis(100));
        assert_eq!(q.len(), 0);
        assert_eq!(q.get().await, Some("a"));
        assert!(start.elapsed() >= Duration::from_millis(100));
    }

    #[tokio::test]
    async fn add_after_keeps_the_earlier_deadline_and_delivers_once() {
        let q = WorkQueue::new();
        let start = Instant::now();
        q.add_after("a", Duration::from_secs(60));
        q.add_after("a", Duration::from_millis(30));
        q.add_after("a", Duration::from_secs(30));
        assert_eq!(q.get().await, Some("a"));
        assert!(start.elapsed() < Duration::from_secs(5));
        q.done(&"a");
        assert_eq!(get_now(&q).await, None);
    }

    #[tokio::test]
    async fn rate_limited_delays_double_per_key_until_forgotten() {
        let q: WorkQueue<&'static str> = WorkQueue::new();
        let delays: Vec<Duration> = (0..5).map(|n| q.backoff(n)).collect();
        let ms = |m| Duration::from_millis(m);
        assert_eq!(delays, [ms(5), ms(10), ms(20), ms(40), ms(80)]);
        assert_eq!(q.backoff(40), DEFAULT_MAX_DELAY);
        assert_eq!(q.backoff(u32::MAX), DEFAULT_MAX_DELAY);

        q.add_rate_limited("a");
        q.add_rate_limited("a");
        q.add_rate_limited("b");
        assert_eq!(q.num_requeues(&"a"), 2);
        assert_eq!(q.num_requeues(&"b"), 1);
        q.forget(&"a");
        assert_eq!(q.num_requeues(&"a"), 0);
        assert_eq!(q.num_requeues(&"b"), 1);
    }

    #[tokio::test]
    async fn add_rate_limited_delivers_after_the_backoff() {
        let q = WorkQueue::with_rate_limit(Duration::from_millis(40), Duration::from_secs(1));
        let start = Instant::now();
        q.add_rate_limited("a");
        assert_eq!(q.get().await, Some("a"));
        assert!(start.elapsed() >= Duration::from_millis(40));
    }

    #[tokio::test]
    async fn shut_down_drops_pending_delays() {
        let q = WorkQueue::new();
        q.add_after("a", Duration::from_millis(20));
        q.shut_down();
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(q.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_workers_never_process_one_key_at_once() {
        let q: WorkQueue<u32> = WorkQueue::new();
        let active: Arc<Mutex<HashSet<u32>>> = Arc::default();
        let processed = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..8)
            .map(|_| {
                let (q, active, processed) = (q.clone(), active.clone(), processed.clone());
                tokio::spawn(async move {
                    while let Some(key) = q.get().await {
                        assert!(active.lock().expect("lock").insert(key), "key {key} processed twice at once");
                        tokio::task::yield_now().await;
                        active.lock().expect("lock").remove(&key);
                        processed.fetch_add(1, Ordering::SeqCst);
                        q.done(&key);
                    }
                })
            })
            .collect();
        for round in 0..200u32 {
            for key in 0..10 {
                q.add(key);
            }
            if round % 20 == 0 {
                tokio::task::yield_now().await;
            }
        }
        rkube_testkit::wait_for(Duration::from_secs(10), || async {
            let s = q.inner.lock();
            s.queue.is_empty() && s.processing.is_empty()
        })
        .await
        .expect("workers drain the queue");
        let n = processed.load(Ordering::SeqCst);
        assert!((10..=2000).contains(&n), "processed {n}");
        q.shut_down();
        for w in workers {
            w.await.expect("worker did not panic");
        }
    }
}
