//! Where delivery events go: one small trait, so a webhook, a Redis stream and a local
//! file are three files beside it, and an [`EventSender`](crate::events::sender) drives
//! any of them the same way (batches, acknowledgement, back-off).

use futures_util::future::LocalBoxFuture;

/// Why a destination did not take a batch; the sender retries it later.
#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    /// The destination could not be reached, or did not answer in time.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// It answered, but not with an acknowledgement.
    #[error("refused: {0}")]
    Refused(String),
    /// Writing locally failed.
    #[error("write failed: {0}")]
    Write(String),
}

/// A place events are delivered to.
pub trait Destination: 'static {
    /// Its name (`webhook`, `redis`, `file`): its cursor in the event log, and the
    /// `destination` label of its metrics and log lines.
    fn name(&self) -> &'static str;

    /// Delivers `batch`, each event one JSON object as its bytes (see
    /// [`crate::events::event::Event::for_sending`]); resolves `Ok` only once the
    /// destination has acknowledged every event in it (at-least-once: a batch that fails
    /// is sent again, whole).
    fn send(&self, batch: Vec<Vec<u8>>) -> LocalBoxFuture<'static, Result<(), DestinationError>>;
}
