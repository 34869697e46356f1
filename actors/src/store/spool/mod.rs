//! The durable spool: envelopes and message data on disk, behind the small [`Spool`]
//! trait so another embedded store could stand in for sled. Writes become durable
//! through the committer thread ([`crate::store::committer`]), many to one flush.

use std::sync::Arc;

use crate::core::id::QueueId;
use crate::protocol::body_sink::IncomingBody;
use crate::store::body_file::BodyFiles;
pub use crate::store::envelope::{
    Envelope, MailOptions, RecipientIndex, RecipientState, RecipientStatus,
};
use crate::store::message_data::{FileBody, MessageData};
use blobs::SyncedBlobs;
use removals::Removals;

/// Why the spool could not do what was asked; it always becomes a 4xx for the client.
#[derive(Debug, Clone, thiserror::Error)]
#[error("spool: {0}")]
pub struct SpoolError(pub String);

impl SpoolError {
    /// The refusal of message `id`, not on disk by its Session's deadline (`when` says
    /// how far it got); logged and counted here, answered with 451 by the Session. The
    /// message is not delivered: the client's retry is the copy that counts.
    pub fn not_in_time(id: QueueId, when: &str) -> SpoolError {
        metrics::counter!("queue_enqueue_timeouts_total").increment(1);
        tracing::warn!(queue_id = %id, when, "message not queued: the queue could not store it in time; it is removed and will not be delivered");
        SpoolError("the queue could not store the message in time".into())
    }

    /// Whether the cause is a full file system (ENOSPC).
    pub fn is_disk_full(&self) -> bool {
        self.0.contains("No space left on device")
    }
}

impl From<sled::Error> for SpoolError {
    fn from(e: sled::Error) -> Self {
        SpoolError(e.to_string())
    }
}

/// A store for queued messages. `insert`, `update` and `remove` need not be durable on
/// their own; `flush` makes everything before it durable.
pub trait Spool: Send + Sync + 'static {
    /// Stores a new message.
    fn insert(&self, id: QueueId, envelope: &Envelope, data: &[u8]) -> Result<(), SpoolError>;
    /// Stores a new message whose body was received into a file (already fsynced):
    /// `head` goes before it. Sets `envelope.body_file`.
    fn insert_with_file(
        &self,
        id: QueueId,
        envelope: &mut Envelope,
        head: &[u8],
        body: IncomingBody,
    ) -> Result<(), SpoolError>;
    /// Replaces a message's envelope (recipient states changed).
    fn update(&self, id: QueueId, envelope: &Envelope) -> Result<(), SpoolError>;
    /// Deletes a message.
    fn remove(&self, id: QueueId) -> Result<(), SpoolError>;
    /// A message's data (a large body stays in its file, to be read while it is sent).
    /// `body_file` is the envelope's flag, which every caller holds already.
    fn data(&self, id: QueueId, body_file: bool) -> Result<Option<MessageData>, SpoolError>;
    /// Hands every message still in the spool to `each`, oldest first, one at a time
    /// (start-up recovery streams: a large spool is never all in memory at once).
    /// Returns how many there were.
    fn recover_each(&self, each: &mut dyn FnMut(QueueId, Envelope)) -> Result<usize, SpoolError>;
    /// Every message still in the spool, oldest first, in one list (tests, tools).
    fn recover(&self) -> Result<Vec<(QueueId, Envelope)>, SpoolError> {
        let mut out = Vec::new();
        self.recover_each(&mut |id, envelope| out.push((id, envelope)))?;
        Ok(out)
    }
    /// One message's envelope, as last written.
    fn envelope(&self, id: QueueId) -> Result<Option<Envelope>, SpoolError>;
    /// Hands envelopes to `each` in id (arrival) order, starting after `after`, until
    /// `each` returns false: a page of the queue for the operator's tools, read without
    /// holding the queue in memory.
    fn scan(
        &self,
        after: Option<QueueId>,
        each: &mut dyn FnMut(QueueId, Envelope) -> bool,
    ) -> Result<(), SpoolError>;
    /// Makes every earlier write durable.
    fn flush(&self) -> Result<(), SpoolError>;
    /// Bytes the store occupies on disk.
    fn size_on_disk(&self) -> Result<u64, SpoolError>;
    /// Bytes inside the store's files that it writes again before it grows them: space
    /// removals freed that the store keeps instead of giving it back to the file system.
    /// The free-space reserve counts it as free (else a drained spool on a full disk
    /// would refuse mail for good).
    fn reusable_bytes(&self) -> u64 {
        0
    }
}

/// sled's page cache by default. sled holds about twice its cache size in memory once
/// the spool is large (a million messages waiting): 64 MiB took hermod to 326 MB with a
/// million parked, 16 MiB to 147 MB, 8 MiB to 126 MB, at the same intake rate; draining
/// a million took as long with 8 MiB as with 16 and peaked 15 MB lower. The fast path
/// reads nothing back from the spool, and a backlog's reads come from the system's page
/// cache.
pub const DEFAULT_CACHE: u64 = 8 * 1024 * 1024;

/// The sled implementation: one tree of envelopes (JSON) and one of data, keyed by id.
pub struct SledSpool {
    db: sled::Db,
    envelopes: sled::Tree,
    data: sled::Tree,
    /// sled's log file, opened again only to fsync it: on Linux sled's own flush uses
    /// `sync_file_range`, which neither flushes the drive's write cache nor the file's
    /// size, so a `250` would not yet be durable across a power cut.
    log_file: std::fs::File,
    /// sled's blob files, made durable at each flush (`blobs.rs`).
    blobs: SyncedBlobs,
    /// The spool directory.
    dir: std::path::PathBuf,
    /// Large bodies, as files beside sled.
    bodies: Arc<BodyFiles>,
    /// A body file was renamed into `bodies/` since the last flush: its directory entry
    /// must be made durable.
    bodies_changed: std::sync::atomic::AtomicBool,
    /// Removals since the last flush that succeeded, and where their ids go when sled
    /// cannot make them durable ([`super::finished`]).
    removals: Removals,
    /// Bytes of the messages in sled (data and envelopes), for [`Spool::reusable_bytes`].
    live: std::sync::atomic::AtomicU64,
    /// Body files of removed messages, deleted only after the removal is durable: a
    /// crash before that must find the envelope *and* its body, never an envelope
    /// without a body (which looked like lost mail after kill -9).
    doomed_bodies: std::sync::Mutex<Vec<std::path::PathBuf>>,
    /// Set on the first full-disk error (see [`SledSpool::stuck_on_full_disk`]).
    stuck: tokio::sync::watch::Sender<bool>,
}

impl SledSpool {
    /// Opens (or creates) the spool in `dir`, with a page cache of [`DEFAULT_CACHE`].
    pub fn open(dir: &std::path::Path) -> Result<Self, SpoolError> {
        Self::open_with_cache(dir, DEFAULT_CACHE)
    }

    /// Opens (or creates) the spool in `dir`, with a page cache of `cache` octets
    /// (`queue.spool_cache_size`).
    pub fn open_with_cache(dir: &std::path::Path, cache: u64) -> Result<Self, SpoolError> {
        match super::private_dir::owner_only(dir) {
            Ok(Some(mode)) => tracing::warn!(dir = %dir.display(), mode = %format!("{mode:04o}"),
                "the data directory could be entered by other users; made owner-only (0700)"),
            Ok(None) => {}
            Err(e) => {
                return Err(SpoolError(format!(
                    "making {} owner-only: {e}",
                    dir.display()
                )));
            }
        }
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache)
            .flush_every_ms(None)
            .open()?;
        let envelopes = db.open_tree("envelopes")?;
        let data = db.open_tree("data")?;
        let bodies = Arc::new(BodyFiles::open(dir).map_err(|e| {
            SpoolError(format!("opening the body files in {}: {e}", dir.display()))
        })?);
        let removals = Removals::open(dir);
        let log_path = dir.join("db");
        let log_file = std::fs::File::open(&log_path)
            .map_err(|e| SpoolError(format!("opening {} for fsync: {e}", log_path.display())))?;
        Ok(SledSpool {
            db,
            envelopes,
            data,
            log_file,
            blobs: SyncedBlobs::default(),
            dir: dir.to_path_buf(),
            bodies,
            bodies_changed: Default::default(),
            doomed_bodies: Default::default(),
            removals,
            live: Default::default(),
            stuck: tokio::sync::watch::Sender::new(false),
        })
    }

    /// Turns true when a write hit a full disk. sled keeps such an error: no later
    /// write or flush of this process can succeed, even once space is freed, so the
    /// binary stops (draining) and lets its service manager start it again.
    pub fn stuck_on_full_disk(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stuck.subscribe()
    }

    /// Passes `result` through, noting the first full-disk error.
    fn watch_for_full_disk<T>(&self, result: Result<T, SpoolError>) -> Result<T, SpoolError> {
        if let Err(e) = &result
            && e.is_disk_full()
            && !self.stuck.send_replace(true)
        {
            metrics::counter!("queue_spool_disk_full_total").increment(1);
            tracing::error!(error = %e, "the spool hit a full disk; sled cannot write again in this process, so hermod stops to be restarted");
        }
        result
    }

    /// The database, for the other trees in it (the AUTH users): sled is opened once per
    /// process.
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// Where Sessions write bodies too large for memory.
    pub fn body_files(&self) -> Arc<BodyFiles> {
        self.bodies.clone()
    }

    /// Deletes body files that no queued message refers to (left by a crash between the
    /// rename of a body and the write of its envelope, or before a removal was flushed).
    fn remove_orphan_bodies(&self) {
        let Ok(files) = self.bodies.queued_ids() else {
            return;
        };
        for (id, path) in files {
            if !self.envelopes.contains_key(id.to_key()).unwrap_or(true) {
                tracing::info!(queue_id = %id, "removing a body file no queued message refers to");
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// The one field of a stored envelope a removal needs: reading only it skips building the
/// sender's and recipients' strings of every delivered message.
#[derive(serde::Deserialize)]
struct BodyFileFlag {
    #[serde(default)]
    body_file: bool,
}

fn encode(envelope: &Envelope) -> Result<Vec<u8>, SpoolError> {
    // Room for a usual envelope at once (serde_json's own start, 128 octets, grew twice).
    let mut encoded = Vec::with_capacity(512);
    serde_json::to_writer(&mut encoded, envelope).map_err(|e| SpoolError(e.to_string()))?;
    Ok(encoded)
}

/// The operations, before [`SledSpool::watch_for_full_disk`] sees their errors.
impl SledSpool {
    fn raw_insert(&self, id: QueueId, envelope: &Envelope, data: &[u8]) -> Result<(), SpoolError> {
        // Data first: recovery starts from envelopes, so an envelope never lacks its data.
        self.data.insert(id.to_key(), data)?;
        let encoded = encode(envelope)?;
        self.add_live((data.len() + encoded.len()) as u64);
        self.envelopes.insert(id.to_key(), encoded)?;
        Ok(())
    }

    fn add_live(&self, bytes: u64) {
        self.live
            .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    fn sub_live(&self, bytes: u64) {
        let _ = self.live.fetch_update(
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
            |live| Some(live.saturating_sub(bytes)),
        );
    }

    fn raw_update(&self, id: QueueId, envelope: &Envelope) -> Result<(), SpoolError> {
        self.envelopes.insert(id.to_key(), encode(envelope)?)?;
        Ok(())
    }

    fn raw_insert_with_file(
        &self,
        id: QueueId,
        envelope: &mut Envelope,
        head: &[u8],
        body: IncomingBody,
    ) -> Result<(), SpoolError> {
        envelope.body_file = true;
        // The body first, then what points at it: an envelope never lacks its body.
        body.persist(&self.bodies.path_of(id))
            .map_err(|e| SpoolError(format!("moving the body file into the spool: {e}")))?;
        self.bodies_changed
            .store(true, std::sync::atomic::Ordering::Release);
        self.data.insert(id.to_key(), head)?;
        let encoded = encode(envelope)?;
        self.add_live((head.len() + encoded.len()) as u64);
        self.envelopes.insert(id.to_key(), encoded)?;
        Ok(())
    }

    fn raw_remove(&self, id: QueueId) -> Result<(), SpoolError> {
        let envelope = self.envelopes.remove(id.to_key())?;
        let data = self.data.remove(id.to_key())?;
        self.sub_live(
            (envelope.as_ref().map_or(0, |e| e.len()) + data.as_ref().map_or(0, |d| d.len()))
                as u64,
        );
        let in_file = envelope
            .and_then(|raw| serde_json::from_slice::<BodyFileFlag>(&raw).ok())
            .is_some_and(|e| e.body_file);
        if in_file {
            self.doomed_bodies
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(self.bodies.path_of(id));
        }
        Ok(())
    }

    /// Deletes the body files of removals made durable by the flush that just ended.
    fn delete_doomed_bodies(&self, doomed: Vec<std::path::PathBuf>) {
        for path in doomed {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    tracing::error!(file = %path.display(), error = %e, "cannot delete the body file of a removed message");
                }
                _ => {}
            }
        }
    }

    fn raw_data(&self, id: QueueId, body_file: bool) -> Result<Option<MessageData>, SpoolError> {
        let Some(head) = self.data.get(id.to_key())? else {
            return Ok(None);
        };
        if !body_file {
            return Ok(Some(MessageData::Inline(bytes::Bytes::from(head.to_vec()))));
        }
        let path = self.bodies.path_of(id);
        match std::fs::metadata(&path) {
            Ok(meta) => Ok(Some(MessageData::File(Arc::new(FileBody {
                head: bytes::Bytes::from(head.to_vec()),
                path,
                body_len: meta.len(),
            })))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SpoolError(format!("reading the body file: {e}"))),
        }
    }

    fn raw_recover_each(
        &self,
        each: &mut dyn FnMut(QueueId, Envelope),
    ) -> Result<usize, SpoolError> {
        self.finish_removals()?;
        let mut count = 0;
        for entry in self.envelopes.iter() {
            let (key, value) = entry?;
            let Some(id) = QueueId::from_key(&key) else {
                continue;
            };
            match serde_json::from_slice::<Envelope>(&value) {
                Ok(envelope) => {
                    count += 1;
                    // Its data's size is about the message's (less for a body file).
                    self.add_live((value.len() + envelope.size) as u64);
                    each(id, envelope);
                }
                Err(e) => {
                    tracing::error!(queue_id = %id, error = %e, "unreadable envelope left in spool")
                }
            }
        }
        self.remove_orphan_bodies();
        Ok(count)
    }

    fn raw_scan(
        &self,
        after: Option<QueueId>,
        each: &mut dyn FnMut(QueueId, Envelope) -> bool,
    ) -> Result<(), SpoolError> {
        let entries = match after {
            Some(after) => self.envelopes.range((
                std::ops::Bound::Excluded(after.to_key().to_vec()),
                std::ops::Bound::Unbounded,
            )),
            None => self.envelopes.iter(),
        };
        for entry in entries {
            let (key, value) = entry?;
            let Some(id) = QueueId::from_key(&key) else {
                continue;
            };
            let Ok(envelope) = serde_json::from_slice(&value) else {
                continue;
            };
            if !each(id, envelope) {
                break;
            }
        }
        Ok(())
    }

    fn raw_envelope(&self, id: QueueId) -> Result<Option<Envelope>, SpoolError> {
        let Some(raw) = self.envelopes.get(id.to_key())? else {
            return Ok(None);
        };
        serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|e| SpoolError(format!("unreadable envelope of {id}: {e}")))
    }

    fn raw_flush(&self) -> Result<(), SpoolError> {
        // The removals this flush makes durable: their body files go after it.
        let doomed =
            std::mem::take(&mut *self.doomed_bodies.lock().unwrap_or_else(|e| e.into_inner()));
        let flushed = self.flush_log();
        match &flushed {
            Ok(()) => self.delete_doomed_bodies(doomed),
            Err(_) => self
                .doomed_bodies
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(doomed),
        }
        flushed
    }

    fn flush_log(&self) -> Result<(), SpoolError> {
        // Blobs and body files first: once the log that points at them is durable, they
        // must be too. (Body files were fsynced by their Session; their names are here.)
        self.blobs
            .sync_new(&self.dir.join("blobs"))
            .map_err(|e| SpoolError(format!("fsync of spool blobs: {e}")))?;
        if self
            .bodies_changed
            .swap(false, std::sync::atomic::Ordering::AcqRel)
        {
            std::fs::File::open(self.bodies.bodies_dir())
                .and_then(|dir| dir.sync_all())
                .map_err(|e| SpoolError(format!("fsync of the body file directory: {e}")))?;
        }
        self.db.flush()?;
        self.log_file
            .sync_data()
            .map_err(|e| SpoolError(format!("fsync of the spool log: {e}")))?;
        Ok(())
    }

    fn raw_size_on_disk(&self) -> Result<u64, SpoolError> {
        Ok(self.db.size_on_disk()?)
    }
}

impl Spool for SledSpool {
    fn insert(&self, id: QueueId, envelope: &Envelope, data: &[u8]) -> Result<(), SpoolError> {
        self.watch_for_full_disk(self.raw_insert(id, envelope, data))
    }

    fn insert_with_file(
        &self,
        id: QueueId,
        envelope: &mut Envelope,
        head: &[u8],
        body: IncomingBody,
    ) -> Result<(), SpoolError> {
        self.watch_for_full_disk(self.raw_insert_with_file(id, envelope, head, body))
    }

    fn update(&self, id: QueueId, envelope: &Envelope) -> Result<(), SpoolError> {
        self.watch_for_full_disk(self.raw_update(id, envelope))
    }

    fn remove(&self, id: QueueId) -> Result<(), SpoolError> {
        self.removals.note(id.0);
        let removed = self.watch_for_full_disk(self.raw_remove(id));
        if removed.is_err() {
            self.removals.not_durable();
        }
        removed
    }

    fn data(&self, id: QueueId, body_file: bool) -> Result<Option<MessageData>, SpoolError> {
        self.raw_data(id, body_file)
    }

    fn recover_each(&self, each: &mut dyn FnMut(QueueId, Envelope)) -> Result<usize, SpoolError> {
        self.raw_recover_each(each)
    }

    fn scan(
        &self,
        after: Option<QueueId>,
        each: &mut dyn FnMut(QueueId, Envelope) -> bool,
    ) -> Result<(), SpoolError> {
        self.raw_scan(after, each)
    }

    fn envelope(&self, id: QueueId) -> Result<Option<Envelope>, SpoolError> {
        self.raw_envelope(id)
    }

    fn flush(&self) -> Result<(), SpoolError> {
        let flushed = self.watch_for_full_disk(self.raw_flush());
        match &flushed {
            Ok(()) => self.removals.durable(),
            Err(_) => self.removals.not_durable(),
        }
        flushed
    }

    fn reusable_bytes(&self) -> u64 {
        // What sled holds beyond twice the live bytes (its log and compaction write a
        // value about twice) it writes again before it grows its files.
        let live = self.live.load(std::sync::atomic::Ordering::Relaxed);
        self.raw_size_on_disk()
            .unwrap_or(0)
            .saturating_sub(live.saturating_mul(2))
    }

    fn size_on_disk(&self) -> Result<u64, SpoolError> {
        self.raw_size_on_disk()
    }
}

impl SledSpool {
    /// Finishes the removals a previous run could not make durable (a full disk), before
    /// anything is recovered: those messages were delivered (or withdrawn) already.
    pub(super) fn finish_removals(&self) -> Result<(), SpoolError> {
        let left =
            std::mem::take(&mut *self.removals.left.lock().unwrap_or_else(|e| e.into_inner()));
        if left.is_empty() {
            return Ok(());
        }
        let mut finished = 0;
        for id in left.iter().copied().map(QueueId) {
            if self.envelopes.contains_key(id.to_key())? {
                self.raw_remove(id)?;
                finished += 1;
            }
        }
        self.raw_flush()?;
        tracing::info!(
            finished,
            recorded = left.len(),
            "finished the removals of messages delivered before the restart (a full disk kept them from being durable)"
        );
        if let Some(file) = &self.removals.finished
            && let Err(e) = file.clear()
        {
            tracing::warn!(error = %e, "cannot clear the file of finished removals");
        }
        Ok(())
    }
}

/// Help texts of the metrics recorded in this file, for the Prometheus exporter.
pub(crate) fn describe_metrics() {
    metrics::describe_counter!(
        "queue_enqueue_timeouts_total",
        "Messages not on disk by the session's deadline (answered 451, not delivered)."
    );
    metrics::describe_counter!(
        "queue_spool_disk_full_total",
        "Spool writes that failed because the disk was full."
    );
}

mod blobs;
pub mod check;
pub mod compact;
mod removals;
#[cfg(test)]
mod tests;
