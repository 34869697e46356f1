//! A Delivery actor that panics (or otherwise stops) with jobs it has not reported
//! gives them back: the Queue defers them, its in-flight count returns to zero, and the
//! next attempt goes to a new actor.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use common::{JobLog, enqueue, queue, settings};
use hermod_actors::core::id::QueueIdGenerator;
use hermod_actors::outbound::delivery::Deliver;
use hermod_actors::queue::{FlushDeferred, GetStats};
use hermod_actors::store::spool::{SledSpool, Spool};

/// Stands where the first Delivery actor would, and panics on its first job: a bug in
/// delivery code.
struct Crashing;

impl Actor for Crashing {
    type Context = Context<Self>;
}

impl Handler<Deliver> for Crashing {
    type Result = ();
    fn handle(&mut self, job: Deliver, _: &mut Context<Self>) {
        panic!("delivery bug while sending {}", job.id);
    }
}

#[actix::test]
async fn a_delivery_actor_that_panics_gives_its_jobs_back() {
    let dir = tempfile::tempdir().unwrap();
    let spool: Arc<dyn Spool> = Arc::new(SledSpool::open(dir.path()).unwrap());
    let ids = Arc::new(QueueIdGenerator::new());
    let started = Arc::new(AtomicUsize::new(0));
    let jobs = Arc::new(Mutex::new(Vec::new()));
    let (count, log) = (started.clone(), jobs.clone());
    // The first actor for the hop crashes; the next one works.
    let factory = Box::new(move |_: &_, _| {
        if count.fetch_add(1, Ordering::SeqCst) == 0 {
            Crashing.start().recipient()
        } else {
            JobLog(log.clone()).start().recipient()
        }
    });
    let (queue, intake) = common::started(queue(settings(), spool.clone(), ids.clone(), factory));
    let id = enqueue(&intake, &ids, Duration::from_secs(10))
        .await
        .unwrap();

    // Within a few ticks the job is deferred, not left in flight.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stats = queue.send(GetStats).await.unwrap();
        if stats.in_flight == 0 && stats.deferred == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "job still held: {stats:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Its retry goes to a new, working actor.
    queue.send(FlushDeferred).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while jobs.lock().unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the retry never reached a new actor"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(*jobs.lock().unwrap(), [id]);
    assert_eq!(started.load(Ordering::SeqCst), 2);
}
