//! Giving freed memory back to the system after a burst.
//!
//! glibc's allocator keeps what a program frees on its per-arena free lists
//! and returns pages only from the top of a heap, so a daemon that once
//! built a large answer (a list of every pod) or decoded a large one (a
//! reflector's first list) stays resident at that peak long after the
//! memory is free: the apiserver after listing 10,000 pods held 52 MiB more
//! than before. `malloc_trim(0)` hands every free page of every arena back.
//!
//! It walks and locks each arena, so it is not called on every request:
//! code that has just made a burst of garbage calls [`release_soon`], and
//! one thread trims once no burst has been reported for [`QUIET`].

use std::sync::OnceLock;
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::time::Duration;

/// How long after the last reported burst the trim runs (the burst's
/// buffers are dropped by then, and a string of bursts costs one trim).
pub const QUIET: Duration = Duration::from_secs(1);

/// Lists at least this long are worth a trim afterwards.
pub const BURST_ITEMS: usize = 1000;

static TRIMMER: OnceLock<Option<SyncSender<()>>> = OnceLock::new();

/// Asks for freed memory to go back to the system [`QUIET`] after the last
/// such request. Cheap: a send on a channel; the first call starts the
/// trimming thread.
pub fn release_soon() {
    let trimmer = TRIMMER.get_or_init(|| {
        let (tx, rx) = mpsc::sync_channel::<()>(1);
        let spawned = std::thread::Builder::new().name("rkube-trim".into()).spawn(move || {
            while rx.recv().is_ok() {
                loop {
                    match rx.recv_timeout(QUIET) {
                        Ok(()) => continue,
                        Err(RecvTimeoutError::Timeout) => break,
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
                release();
            }
        });
        // Without the thread, memory is simply not trimmed.
        spawned.ok().map(|_| tx)
    });
    if let Some(tx) = trimmer {
        // Full means a trim is already pending.
        let _ = tx.try_send(());
    }
}

/// Returns the allocator's free pages to the system now; whether any were.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release() -> bool {
    unsafe extern "C" {
        fn malloc_trim(pad: usize) -> i32;
    }
    // SAFETY: malloc_trim takes no pointers and glibc serializes it with
    // every other allocator call (it is MT-Safe).
    unsafe { malloc_trim(0) == 1 }
}

/// Other allocators (musl's, macOS') return memory themselves.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resident kilobytes of this process.
    fn rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("status");
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
        line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("a number")
    }

    #[test]
    fn freed_small_allocations_go_back_to_the_system() {
        // 64 MiB in small pieces (below the mmap threshold, so on the
        // heap), all but one in 64 freed: the holes between the live pieces
        // stay resident until trimmed.
        let mut pieces: Vec<Vec<u8>> = (0..64 * 1024).map(|i| vec![i as u8; 1000]).collect();
        let mut i = 0;
        pieces.retain(|_| {
            i += 1;
            i % 64 == 0
        });
        let before = rss_kib();
        assert!(release(), "glibc had free pages to return");
        let after = rss_kib();
        assert!(after + 32 * 1024 < before, "RSS {before} KiB -> {after} KiB: at least 32 MiB returned");
        assert_eq!(pieces.len(), 1024, "the live pieces are still there");
        assert!(pieces.iter().enumerate().all(|(i, p)| p.len() == 1000 && p[0] == ((i + 1) * 64 - 1) as u8));
    }
}
