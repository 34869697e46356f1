//! The spool's free-space reserve (`queue.min_free_space`, like Postfix's
//! `queue_minfree`). A watcher thread reads the file system's free space every second;
//! below the reserve, MAIL FROM is refused with `452 4.3.1 Insufficient system storage`
//! before the client sends any data, while delivery goes on and frees space. Mail is
//! taken again by itself once space returns. Sessions read one atomic flag: no system
//! call on the SMTP path.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// What the watcher last saw of the spool's file system.
#[derive(Debug, Default)]
pub struct DiskSpace {
    low: AtomicBool,
    free: AtomicU64,
}

impl DiskSpace {
    /// Whether free space is below the reserve (new mail is refused).
    pub fn is_low(&self) -> bool {
        self.low.load(Ordering::Relaxed)
    }

    /// Bytes available to hermod at the last check.
    pub fn free_bytes(&self) -> u64 {
        self.free.load(Ordering::Relaxed)
    }

    /// Reads the free space of the file system holding `dir` and updates the flag;
    /// returns whether the flag changed.
    pub fn check(&self, dir: &Path, reserve: u64) -> std::io::Result<bool> {
        let stat = rustix::fs::statvfs(dir).map_err(std::io::Error::from)?;
        let free = stat.f_bavail.saturating_mul(stat.f_frsize);
        self.free.store(free, Ordering::Relaxed);
        metrics::gauge!("queue_spool_free_bytes").set(free as f64);
        let low = free < reserve;
        let was = self.low.swap(low, Ordering::Relaxed);
        if low != was {
            if low {
                tracing::warn!(free_bytes = free, min_free_space = reserve, dir = %dir.display(),
                    "spool free space below queue.min_free_space; refusing new mail with 452 4.3.1 until space returns");
                metrics::counter!("queue_low_space_total").increment(1);
            } else {
                tracing::info!(
                    free_bytes = free,
                    min_free_space = reserve,
                    "spool free space back above queue.min_free_space; taking mail again"
                );
            }
        }
        Ok(low != was)
    }

    /// Checks at once, then every `every` on a thread of its own, for the life of the
    /// process. A reserve of 0 turns the check off.
    pub fn watch(self: &Arc<Self>, dir: PathBuf, reserve: u64, every: Duration) {
        if reserve == 0 {
            return;
        }
        if let Err(e) = self.check(&dir, reserve) {
            tracing::warn!(error = %e, dir = %dir.display(), "cannot read the spool's free space");
        }
        let space = self.clone();
        let spawned = std::thread::Builder::new()
            .name("disk-space".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(every);
                    if let Err(e) = space.check(&dir, reserve) {
                        tracing::debug!(error = %e, "cannot read the spool's free space");
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the free-space watcher");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserve_larger_than_the_disk_is_low_and_zero_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let space = DiskSpace::default();
        assert!(space.check(dir.path(), u64::MAX).unwrap());
        assert!(space.is_low());
        assert!(space.free_bytes() > 0);
        assert!(space.check(dir.path(), 0).unwrap());
        assert!(!space.is_low());
    }
}
