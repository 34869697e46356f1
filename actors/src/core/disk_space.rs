//! The spool's free-space reserve (`queue.min_free_space`, like Postfix's
//! `queue_minfree`). A watcher thread reads the file system's free space every second
//! (ten times a second once it is within twice the reserve); below the reserve, MAIL
//! FROM is refused with `452 4.3.1 Insufficient system storage` before the client sends
//! any data, while delivery goes on and frees space. Mail is taken again by itself once
//! space returns. Sessions read atomics: no system call on the SMTP path.
//!
//! A sample alone let mail at full speed overrun the reserve between two samples (free
//! space fell to 6.5 MB of a 16 MB reserve). So every transaction also [`Claim`]s the
//! bytes it will write (twice its declared SIZE, or a default, grown as its body
//! arrives), and bytes stored since the last sample are counted too: a claim that would
//! reach into the reserve is refused with the same 452. The reserve stays for the
//! spool's own writes (removals and delivery state are writes in sled).
//!
//! A [`Ballast`] file keeps a little space in hand for the day the disk fills anyway:
//! released when free space falls under half the reserve (and at a start on a full
//! disk), it gives sled room for the removals that free space; it is put back once
//! there is room again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// What the watcher last saw of the spool's file system, and the bytes claimed since.
#[derive(Debug, Default)]
pub struct DiskSpace {
    low: AtomicBool,
    free: AtomicU64,
    /// The reserve in force (with a missing ballast's room); 0: not checked.
    reserve: AtomicU64,
    /// Bytes claimed by transactions under way.
    claimed: AtomicU64,
    /// Bytes stored since the last sample (not yet in `free`).
    written: AtomicU64,
}

/// Claimed per transaction at MAIL when the client declared no SIZE.
pub const DEFAULT_CLAIM: u64 = 64 * 1024;

/// What storing `octets` of mail may cost the spool's file system: sled writes a value
/// to its log and again when it compacts.
pub fn cost_of(octets: u64) -> u64 {
    octets.saturating_mul(2).saturating_add(4096)
}

impl DiskSpace {
    /// Whether free space is below the reserve (new mail is refused).
    pub fn is_low(&self) -> bool {
        self.low.load(Ordering::Relaxed)
    }

    /// Claims `bytes` for a transaction: `None` when they would reach into the reserve
    /// (counting what other transactions claimed and what was stored since the last
    /// sample). With no reserve, every claim is granted.
    pub fn try_claim(self: &Arc<Self>, bytes: u64) -> Option<Claim> {
        let mut claim = Claim {
            space: self.clone(),
            bytes: 0,
            on_disk: false,
        };
        claim.grow_to(bytes).then_some(claim)
    }

    /// Bytes left above the reserve, after claims and unsampled writes.
    fn room(&self) -> u64 {
        self.free
            .load(Ordering::Relaxed)
            .saturating_sub(self.written.load(Ordering::Relaxed))
            .saturating_sub(self.reserve.load(Ordering::Relaxed))
    }

    /// Bytes available to hermod at the last check.
    pub fn free_bytes(&self) -> u64 {
        self.free.load(Ordering::Relaxed)
    }

    /// Reads the free space of the file system holding `dir` and updates the flag;
    /// returns whether the flag changed.
    pub fn check(&self, dir: &Path, reserve: u64) -> std::io::Result<bool> {
        self.check_with(dir, reserve, 0)
    }

    /// [`DiskSpace::check`], counting `reusable` bytes inside the spool's own files
    /// (freed by removals, written again before the files grow) as free.
    pub fn check_with(&self, dir: &Path, reserve: u64, reusable: u64) -> std::io::Result<bool> {
        // What was stored before the sample is in it; what comes after counts anew.
        let written = self.written.swap(0, Ordering::AcqRel);
        let stat = match rustix::fs::statvfs(dir) {
            Ok(stat) => stat,
            Err(e) => {
                self.written.fetch_add(written, Ordering::AcqRel);
                return Err(e.into());
            }
        };
        let on_disk = stat.f_bavail.saturating_mul(stat.f_frsize);
        metrics::gauge!("queue_spool_free_bytes").set(on_disk as f64);
        let free = on_disk.saturating_add(reusable);
        self.free.store(free, Ordering::Relaxed);
        self.reserve.store(reserve, Ordering::Relaxed);
        let claimed = self.claimed.load(Ordering::Relaxed);
        let low = free.saturating_sub(claimed) < reserve;
        let was = self.low.swap(low, Ordering::Relaxed);
        if low != was {
            if low {
                tracing::warn!(free_bytes = free, reusable_bytes = reusable, claimed_bytes = claimed, min_free_space = reserve, dir = %dir.display(),
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
    /// `reusable` says how many bytes the spool's own files hold free.
    pub fn watch(
        self: &Arc<Self>,
        dir: PathBuf,
        reserve: u64,
        every: Duration,
        ballast: Ballast,
        reusable: Box<dyn Fn() -> u64 + Send>,
    ) {
        if reserve == 0 {
            ballast.restore_if_room(&dir, 0);
            return;
        }
        // While the ballast is missing (released on a full disk), the room it needs counts
        // as part of the reserve: mail is taken again only once both fit.
        let needed = move |ballast: &Ballast| reserve.saturating_add(ballast.missing());
        if let Err(e) = self.check_with(&dir, needed(&ballast), reusable()) {
            tracing::warn!(error = %e, dir = %dir.display(), "cannot read the spool's free space");
        }
        ballast.restore_if_room(&dir, reserve);
        let space = self.clone();
        let spawned = std::thread::Builder::new()
            .name("disk-space".into())
            .spawn(move || {
                loop {
                    // Near the reserve, a sample ten times as often.
                    let near = space.free_bytes() < reserve.saturating_mul(2);
                    std::thread::sleep(if near { every.min(NEAR_INTERVAL) } else { every });
                    if let Err(e) = space.check_with(&dir, needed(&ballast), reusable()) {
                        tracing::debug!(error = %e, "cannot read the spool's free space");
                    }
                    if space.free_bytes() < reserve / 2 && ballast.release() {
                        tracing::warn!(free_bytes = space.free_bytes(), min_free_space = reserve,
                            "spool free space under half of queue.min_free_space: released the spool ballast so that removals and delivery state can still be written");
                        metrics::counter!("queue_ballast_released_total").increment(1);
                    } else if !space.is_low() {
                        ballast.restore_if_room(&dir, reserve);
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the free-space watcher");
        }
    }
}

/// How often free space is read once it is within twice the reserve.
const NEAR_INTERVAL: Duration = Duration::from_millis(100);

/// Bytes a transaction will write, counted against the reserve until they are stored
/// (then they count as written until the next sample) or the transaction ends.
#[derive(Debug)]
pub struct Claim {
    space: Arc<DiskSpace>,
    bytes: u64,
    /// The bytes are on disk already (a body file): they count as written when the
    /// claim goes, whatever becomes of the message.
    on_disk: bool,
}

impl Claim {
    /// Bytes claimed.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Claims up to `total` bytes in all; `false` (and nothing more claimed) when that
    /// would reach into the reserve.
    pub fn grow_to(&mut self, total: u64) -> bool {
        if total <= self.bytes {
            return true;
        }
        let more = total - self.bytes;
        let space = &self.space;
        if space.reserve.load(Ordering::Relaxed) == 0 {
            self.bytes = total;
            space.claimed.fetch_add(more, Ordering::AcqRel);
            return true;
        }
        let granted = space
            .claimed
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |claimed| {
                (claimed.saturating_add(more) <= space.room()).then_some(claimed + more)
            })
            .is_ok();
        if granted {
            self.bytes = total;
        } else {
            metrics::counter!("queue_space_claims_refused_total").increment(1);
        }
        granted
    }

    /// The bytes are stored: they count as written until the next sample.
    pub fn stored(mut self) {
        self.on_disk = true;
    }

    /// A claim for bytes written to disk as they arrive (a body file).
    pub fn on_disk(mut self) -> Self {
        self.on_disk = true;
        self
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.space.claimed.fetch_sub(self.bytes, Ordering::AcqRel);
        if self.on_disk {
            self.space.written.fetch_add(self.bytes, Ordering::AcqRel);
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
        "queue_space_claims_refused_total",
        "Transactions (or growing bodies) refused with 452 4.3.1 because their bytes would have reached into queue.min_free_space."
    );
    metrics::describe_counter!(
        "queue_ballast_released_total",
        "Times the spool ballast was released because free space fell under half of queue.min_free_space."
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

    /// Claims count against the reserve before anything is written, and stored bytes
    /// count until the next sample: the reserve cannot be overrun between samples.
    #[test]
    fn claims_and_unsampled_writes_keep_the_reserve() {
        let dir = tempfile::tempdir().unwrap();
        let space = Arc::new(DiskSpace::default());
        // As a sample of 10 MiB free with an 8 MiB reserve would leave them.
        space.free.store(10 << 20, Ordering::Relaxed);
        space.reserve.store(8 << 20, Ordering::Relaxed);
        let room: u64 = 2 << 20;
        let first = space.try_claim(room / 2).expect("half the room");
        assert!(space.try_claim(room).is_none(), "more than is left");
        let mut second = space.try_claim(room / 4).expect("a quarter");
        assert!(!second.grow_to(room), "growing past the room");
        first.stored();
        // Stored, not yet sampled: still counted.
        assert!(space.try_claim(room / 2).is_none());
        drop(second);
        // With no reserve every claim is granted.
        space.check(dir.path(), 0).unwrap();
        assert!(space.try_claim(u64::MAX / 2).is_some());
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
