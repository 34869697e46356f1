//! A message the intake cannot make durable before the Session's deadline is refused,
//! taken out of the real sled spool, and never handed to a Delivery actor: the client
//! that got 451 will send it again, so delivering this copy would be a duplicate.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use common::watched_spool::WatchedSpool;
use common::{JobLog, enqueue, jobs_hold, queue, settings, spool_holds, started};
use hermod_actors::core::id::{QueueId, QueueIdGenerator};
use hermod_actors::queue::{Intake, Queue};
use hermod_actors::store::spool::Spool;

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
    Arc<WatchedSpool>,
    Arc<QueueIdGenerator>,
    Jobs,
) {
    let spool = Arc::new(WatchedSpool::open(dir, delay));
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
    let (_queue, intake, spool, ids, jobs) = start(dir.path(), Duration::from_secs(2));
    let started = Instant::now();
    let answer = enqueue(&intake, &ids, Duration::from_millis(100)).await;
    let error = answer.expect_err("a commit slower than the deadline must be refused");
    assert!(error.0.contains("in time"), "{error}");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "answered at the deadline, not when the disk was done"
    );
    // Once the slow flush is over, nothing of the message is left or dispatched (the
    // removal waits for the writer thread, behind the slow flush).
    tokio::time::sleep(Duration::from_secs(2)).await;
    spool_holds(spool.as_ref(), 0).await;
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
    jobs_hold(&jobs, 1).await;
    assert_eq!(*jobs.lock().unwrap(), [id]);
    assert_eq!(spool.recover().unwrap().len(), 1);
}
