//! A message the intake cannot make durable before the Session's deadline is refused,
//! taken out of the real sled spool, and never handed to a Delivery actor: the client
//! that got 451 will send it again, so delivering this copy would be a duplicate.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use common::{JobLog, enqueue, queue, settings, started};
use hermod_actors::queue::id::{QueueId, QueueIdGenerator};
use hermod_actors::queue::{Intake, Queue};
use hermod_actors::store::body_file::IncomingBody;
use hermod_actors::store::message_data::MessageData;
use hermod_actors::store::spool::{Envelope, SledSpool, Spool, SpoolError};

/// The real sled spool, with every flush held back by `delay`: a disk that has become
/// slow (a failing device, a saturated volume).
struct SlowDisk {
    spool: SledSpool,
    delay: Duration,
}

impl Spool for SlowDisk {
    fn insert(&self, id: QueueId, envelope: &Envelope, data: &[u8]) -> Result<(), SpoolError> {
        self.spool.insert(id, envelope, data)
    }
    fn insert_with_file(
        &self,
        id: QueueId,
        envelope: &mut Envelope,
        head: &[u8],
        body: IncomingBody,
    ) -> Result<(), SpoolError> {
        self.spool.insert_with_file(id, envelope, head, body)
    }
    fn update(&self, id: QueueId, envelope: &Envelope) -> Result<(), SpoolError> {
        self.spool.update(id, envelope)
    }
    fn remove(&self, id: QueueId) -> Result<(), SpoolError> {
        self.spool.remove(id)
    }
    fn data(&self, id: QueueId, body_file: bool) -> Result<Option<MessageData>, SpoolError> {
        self.spool.data(id, body_file)
    }
    fn recover_each(&self, each: &mut dyn FnMut(QueueId, Envelope)) -> Result<usize, SpoolError> {
        self.spool.recover_each(each)
    }
    fn envelope(&self, id: QueueId) -> Result<Option<Envelope>, SpoolError> {
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
        std::thread::sleep(self.delay);
        self.spool.flush()
    }
    fn size_on_disk(&self) -> Result<u64, SpoolError> {
        self.spool.size_on_disk()
    }
}

/// The ids of the jobs handed to Delivery actors.
type Jobs = Arc<Mutex<Vec<QueueId>>>;

/// Starts a Queue over a sled spool in `dir` whose flushes take `delay`; returns it,
/// its intake, the spool, the id generator and the jobs handed out.
fn start(
    dir: &std::path::Path,
    delay: Duration,
) -> (
    Addr<Queue>,
    Intake,
    Arc<SlowDisk>,
    Arc<QueueIdGenerator>,
    Jobs,
) {
    let spool = Arc::new(SlowDisk {
        spool: SledSpool::open(dir).unwrap(),
        delay,
    });
    let ids = Arc::new(QueueIdGenerator::new());
    let jobs = Arc::new(Mutex::new(Vec::new()));
    let log = jobs.clone();
    let factory = Box::new(move |_: &_, _| JobLog(log.clone()).start().recipient());
    let (queue, intake) = started(queue(settings(), spool.clone(), ids.clone(), factory));
    (queue, intake, spool, ids, jobs)
}

#[actix::test]
async fn a_commit_past_the_deadline_is_refused_removed_and_never_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let (_queue, intake, spool, ids, jobs) = start(dir.path(), Duration::from_millis(500));
    let started = Instant::now();
    let answer = enqueue(&intake, &ids, Duration::from_millis(100)).await;
    let error = answer.expect_err("a commit slower than the deadline must be refused");
    assert!(error.0.contains("in time"), "{error}");
    assert!(
        started.elapsed() < Duration::from_millis(450),
        "answered at the deadline, not when the disk was done"
    );
    // Once the slow flush is over, nothing of the message is left or dispatched.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    spool.flush().unwrap();
    assert!(spool.recover().unwrap().is_empty());
    assert!(jobs.lock().unwrap().is_empty());
}

#[actix::test]
async fn a_message_arriving_after_its_deadline_is_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let (_queue, intake, spool, ids, jobs) = start(dir.path(), Duration::ZERO);
    let answer = enqueue(&intake, &ids, Duration::ZERO).await;
    assert!(answer.is_err());
    assert!(spool.recover().unwrap().is_empty());
    // A message with time to spare is queued and dispatched as usual.
    let id = enqueue(&intake, &ids, Duration::from_secs(10))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(*jobs.lock().unwrap(), [id]);
    assert_eq!(spool.recover().unwrap().len(), 1);
}
