//! The real sled spool, watched: which thread ran each of its reads and writes, and, if
//! asked, every flush held back as on a slow disk (a failing device, a saturated volume).

use std::sync::Mutex;
use std::time::Duration;

use hermod_actors::core::id::QueueId;
use hermod_actors::protocol::body_sink::IncomingBody;
use hermod_actors::store::message_data::MessageData;
use hermod_actors::store::spool::{Envelope, SledSpool, Spool, SpoolError};

/// A [`SledSpool`] that notes its calls and can be slow to flush.
pub struct WatchedSpool {
    spool: SledSpool,
    flush_delay: Duration,
    calls: Mutex<Vec<(&'static str, String)>>,
}

impl WatchedSpool {
    /// Opens the spool in `dir`; flushes take `flush_delay` longer than the disk does.
    pub fn open(dir: &std::path::Path, flush_delay: Duration) -> Self {
        WatchedSpool {
            spool: SledSpool::open(dir).unwrap(),
            flush_delay,
            calls: Mutex::new(Vec::new()),
        }
    }

    /// Every insert, update, removal and read so far, with the name of the thread that
    /// made it.
    pub fn calls(&self) -> Vec<(&'static str, String)> {
        self.calls.lock().unwrap().clone()
    }

    fn note(&self, call: &'static str) {
        let thread = std::thread::current().name().unwrap_or("?").to_string();
        self.calls.lock().unwrap().push((call, thread));
    }
}

impl Spool for WatchedSpool {
    fn insert(&self, id: QueueId, envelope: &Envelope, data: &[u8]) -> Result<(), SpoolError> {
        self.note("insert");
        self.spool.insert(id, envelope, data)
    }
    fn insert_with_file(
        &self,
        id: QueueId,
        envelope: &mut Envelope,
        head: &[u8],
        body: IncomingBody,
    ) -> Result<(), SpoolError> {
        self.note("insert");
        self.spool.insert_with_file(id, envelope, head, body)
    }
    fn update(&self, id: QueueId, envelope: &Envelope) -> Result<(), SpoolError> {
        self.note("update");
        self.spool.update(id, envelope)
    }
    fn remove(&self, id: QueueId) -> Result<(), SpoolError> {
        self.note("remove");
        self.spool.remove(id)
    }
    fn data(&self, id: QueueId, body_file: bool) -> Result<Option<MessageData>, SpoolError> {
        self.note("data");
        self.spool.data(id, body_file)
    }
    fn recover_each(&self, each: &mut dyn FnMut(QueueId, Envelope)) -> Result<usize, SpoolError> {
        self.spool.recover_each(each)
    }
    fn envelope(&self, id: QueueId) -> Result<Option<Envelope>, SpoolError> {
        self.note("envelope");
        self.spool.envelope(id)
    }
    fn scan(
        &self,
        after: Option<QueueId>,
        each: &mut dyn FnMut(QueueId, Envelope) -> bool,
    ) -> Result<(), SpoolError> {
        self.spool.scan(after, each)
    }
    fn flush(&self) -> Result<(), SpoolError> {
        std::thread::sleep(self.flush_delay);
        self.spool.flush()
    }
    fn size_on_disk(&self) -> Result<u64, SpoolError> {
        self.spool.size_on_disk()
    }
}
