//! The spool's removals: noted as they are made, forgotten once a flush made them
//! durable, and written to [`FinishedIds`] when sled could not (a full disk), so that the
//! next start finishes them instead of delivering their messages again.

use crate::store::finished::FinishedIds;

/// The removals of one process: noted as they are made, forgotten once a flush made
/// them durable, written to [`FinishedIds`] when sled could not.
pub(super) struct Removals {
    since_flush: std::sync::Mutex<Vec<u64>>,
    pub(super) finished: Option<FinishedIds>,
    /// What the previous run could not make durable, finished at recovery.
    pub(super) left: std::sync::Mutex<Vec<u64>>,
}

impl Removals {
    pub(super) fn open(dir: &std::path::Path) -> Self {
        let (finished, left) = match FinishedIds::open(dir) {
            Ok((finished, left)) => (Some(finished), left),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e,
                    "cannot prepare the file of finished removals; a removal a full disk stops could be delivered again after a restart");
                (None, Vec::new())
            }
        };
        Removals {
            since_flush: Default::default(),
            finished,
            left: std::sync::Mutex::new(left),
        }
    }

    pub(super) fn note(&self, id: u64) {
        self.since_flush
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(id);
    }

    pub(super) fn durable(&self) {
        self.since_flush
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// sled failed: the removals since the last flush go to the file, so that the next
    /// start finishes them instead of delivering their messages again.
    pub(super) fn not_durable(&self) {
        let ids = self
            .since_flush
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(finished) = &self.finished else {
            return;
        };
        match finished.record(&ids) {
            Ok(kept) => tracing::error!(
                removals = kept,
                lost = ids.len() - kept,
                "the spool could not make removals durable; their ids are kept in data_dir/finished and the next start finishes them"
            ),
            Err(e) => tracing::error!(removals = ids.len(), error = %e,
                "the spool could not make removals durable, nor record them; their messages may be delivered again after a restart"),
        }
    }
}
