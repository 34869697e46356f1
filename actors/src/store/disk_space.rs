//! The spool's free-space reserve (`queue.min_free_space`, like Postfix's
//! `queue_minfree`). A watcher thread reads the file system's free space every second;
//! below the reserve, MAIL FROM is refused with `452 4.3.1 Insufficient system storage`
//! before the client sends any data, while delivery goes on and frees space. Mail is
//! taken again by itself once space returns. Sessions read one atomic flag: no system
//! call on the SMTP path.
//!
//! A [`Ballast`] file keeps a little space in hand for the day the disk fills anyway:
//! released, it lets the spool open (and the queue drain) on a disk that is full.

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
    /// process; puts `ballast` back whenever there is room for it above the reserve. A
    /// reserve of 0 turns the check off (the ballast is then only put back now).
    pub fn watch(self: &Arc<Self>, dir: PathBuf, reserve: u64, every: Duration, ballast: Ballast) {
        if reserve == 0 {
            ballast.restore_if_room(&dir, 0);
            return;
        }
        // While the ballast is missing (released on a full disk), the room it needs counts
        // as part of the reserve: mail is taken again only once both fit.
        let needed = move |ballast: &Ballast| reserve.saturating_add(ballast.missing());
        if let Err(e) = self.check(&dir, needed(&ballast)) {
            tracing::warn!(error = %e, dir = %dir.display(), "cannot read the spool's free space");
        }
        ballast.restore_if_room(&dir, reserve);
        let space = self.clone();
        let spawned = std::thread::Builder::new()
            .name("disk-space".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(every);
                    if let Err(e) = space.check(&dir, needed(&ballast)) {
                        tracing::debug!(error = %e, "cannot read the spool's free space");
                    }
                    if !space.is_low() {
                        ballast.restore_if_room(&dir, reserve);
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the free-space watcher");
        }
    }
}

/// A file of zeros in the spool directory, kept while space allows. When the disk is
/// full at start-up the spool cannot open (sled writes as it opens); deleting the
/// ballast gives it the room to open, so hermod can deliver (and free space) while new
/// mail is refused, instead of not starting at all.
#[derive(Debug, Clone)]
pub struct Ballast {
    path: PathBuf,
    size: u64,
}

impl Ballast {
    /// The size kept in hand: room for sled to open and write a few segments.
    pub const SIZE: u64 = 8 * 1024 * 1024;

    /// The ballast of the spool in `dir`.
    pub fn new(dir: &Path) -> Self {
        Ballast {
            path: dir.join("ballast"),
            size: Self::SIZE,
        }
    }

    /// Octets the ballast lacks: its size when it is not there, else 0.
    pub fn missing(&self) -> u64 {
        if self.path.exists() { 0 } else { self.size }
    }

    /// Deletes the ballast; true if there was one to delete.
    pub fn release(&self) -> bool {
        std::fs::remove_file(&self.path).is_ok()
    }

    /// Writes the ballast if it is missing and the file system has room for it above
    /// `reserve`. A failure is logged and leaves no partial file.
    pub fn restore_if_room(&self, dir: &Path, reserve: u64) {
        if self.path.exists() {
            return;
        }
        let Ok(stat) = rustix::fs::statvfs(dir) else {
            return;
        };
        let free = stat.f_bavail.saturating_mul(stat.f_frsize);
        if free < reserve.saturating_add(self.size.saturating_mul(2)) {
            return;
        }
        match self.write() {
            Ok(()) => tracing::debug!(path = %self.path.display(), "spool ballast in place"),
            Err(e) => {
                let _ = std::fs::remove_file(&self.path);
                tracing::warn!(error = %e, path = %self.path.display(), "cannot write the spool ballast");
            }
        }
    }

    fn write(&self) -> std::io::Result<()> {
        use std::io::Write;
        let partial = self.path.with_extension("new");
        let mut file = std::fs::File::create(&partial)?;
        let zeros = vec![0u8; 1024 * 1024];
        let mut left = self.size;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            file.write_all(&zeros[..n])?;
            left -= n as u64;
        }
        file.sync_all()?;
        std::fs::rename(&partial, &self.path)
    }
}

/// Help texts of the metrics recorded in this file, for the Prometheus exporter.
pub(crate) fn describe_metrics() {
    metrics::describe_gauge!(
        "queue_spool_free_bytes",
        metrics::Unit::Bytes,
        "Free bytes on the spool's file system at the last check."
    );
    metrics::describe_counter!(
        "queue_low_space_total",
        "Times free space fell below queue.min_free_space (MAIL refused with 452 4.3.1)."
    );
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

    #[test]
    fn the_ballast_is_written_when_there_is_room_and_released_on_demand() {
        let dir = tempfile::tempdir().unwrap();
        let ballast = Ballast::new(dir.path());
        assert!(!ballast.release(), "nothing to release yet");
        ballast.restore_if_room(dir.path(), u64::MAX / 4);
        assert!(
            !dir.path().join("ballast").exists(),
            "no room above the reserve"
        );
        ballast.restore_if_room(dir.path(), 0);
        let written = std::fs::metadata(dir.path().join("ballast")).unwrap().len();
        assert_eq!(written, Ballast::SIZE);
        assert!(ballast.release());
        assert!(!dir.path().join("ballast").exists());
    }
}
