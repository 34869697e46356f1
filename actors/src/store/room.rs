//! The spool's room as Sessions' protocols see it ([`SpoolRoom`]): the free-space
//! reserve that [`DiskSpace`]'s watcher keeps, and the process's queue ids. Both are
//! atomics: asking costs no system call and no lock.

use std::sync::Arc;

use crate::core::disk_space::{Claim, DiskSpace};
use crate::core::id::{QueueId, QueueIdGenerator};
use crate::protocol::spool_room::SpoolRoom;

/// The spool's free space and queue ids, shared by every Session.
#[derive(Debug, Clone, Default)]
pub struct IntakeRoom {
    /// The free-space reserve.
    pub space: Arc<DiskSpace>,
    /// Where queue ids come from.
    pub ids: Arc<QueueIdGenerator>,
}

impl SpoolRoom for IntakeRoom {
    fn is_low(&self) -> bool {
        self.space.is_low()
    }

    fn try_claim(&self, bytes: u64) -> Option<Claim> {
        self.space.try_claim(bytes)
    }

    fn next_id(&self) -> QueueId {
        self.ids.next_id()
    }
}
