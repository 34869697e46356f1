//! What the protocol asks of the spool while a message arrives, and the Session's store
//! answers from memory: whether there is room (the free-space reserve, claimed
//! transaction by transaction) and the queue id an accepted message gets. The protocol
//! is handed a [`SpoolRoom`] and holds no shared state of its own ([`crate::store::room`]
//! is the one the server uses).

use crate::core::disk_space::Claim;
use crate::core::id::QueueId;

/// Room in the spool and names for what goes in it.
pub trait SpoolRoom: std::fmt::Debug + Send + Sync {
    /// Whether free space is below the reserve: MAIL is refused before any data.
    fn is_low(&self) -> bool;
    /// Claims `bytes` for a transaction (grown as its body arrives); `None` when they
    /// would reach into the reserve.
    fn try_claim(&self, bytes: u64) -> Option<Claim>;
    /// A fresh queue id for an accepted message.
    fn next_id(&self) -> QueueId;
}
