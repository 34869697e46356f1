//! The Queue holds in memory the mail it is working on, not the whole queue: a message
//! waiting for a later retry is put away (its state is in the spool) and read back when
//! due; recovery of a spool streams and loads nothing it does not need yet.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use common::watched_spool::WatchedSpool;
use common::{JobLog, enqueue, jobs_hold, queue, settings, spool_holds, started};
use hermod_actors::core::id::{QueueId, QueueIdGenerator};
use hermod_actors::outbound::delivery::{Deliver, DeliveryReport, Outcome, QueueLink};
use hermod_actors::protocol::status::Status;
use hermod_actors::queue::{GetStats, Queue, QueueStats};
use hermod_actors::store::spool::{Envelope, RecipientState, RecipientStatus, SledSpool, Spool};

/// Stands where a Delivery actor would: defers the first attempt of every message,
/// delivers the next, and keeps the ids of the jobs it got.
struct DeferOnce {
    link: QueueLink,
    jobs: Arc<Mutex<Vec<QueueId>>>,
}

impl Actor for DeferOnce {
    type Context = Context<Self>;
}

impl Handler<Deliver> for DeferOnce {
    type Result = ();
    fn handle(&mut self, job: Deliver, _: &mut Context<Self>) {
        let mut jobs = self.jobs.lock().unwrap();
        let again = jobs.contains(&job.id);
        jobs.push(job.id);
        let outcome = if again {
            Outcome::Delivered(Status::from_reply(250, "2.0.0 ok"))
        } else {
            Outcome::Deferred(Status::from_reply(451, "4.3.0 try later"))
        };
        self.link.reports.do_send(DeliveryReport {
            id: job.id,
            relay: "test".into(),
            tls: None,
            results: job
                .recipients
                .iter()
                .map(|r| (r.index, outcome.clone()))
                .collect(),
            unreachable: false,
            serial: self.link.serial,
            shaping: Vec::new(),
            held_until: None,
        });
    }
}

async fn stats_until(queue: &Addr<Queue>, done: impl Fn(&QueueStats) -> bool) -> QueueStats {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = queue.send(GetStats).await.unwrap();
        if done(&stats) {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "stats never got there: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix::test]
async fn a_message_waiting_for_its_retry_is_put_away_and_read_back_when_due() {
    let dir = tempfile::tempdir().unwrap();
    let watched = Arc::new(WatchedSpool::open(dir.path(), Duration::ZERO));
    let spool: Arc<dyn Spool> = watched.clone();
    let ids = Arc::new(QueueIdGenerator::new());
    let jobs = Arc::new(Mutex::new(Vec::new()));
    let log = jobs.clone();
    let factory = Box::new(move |_: &_, link| {
        DeferOnce {
            link,
            jobs: log.clone(),
        }
        .start()
        .recipient()
    });
    let mut queue_settings = settings();
    queue_settings.retry_interval = Duration::from_secs(2);
    let (queue, intake) = started(queue(queue_settings, spool.clone(), ids.clone(), factory));
    let id = enqueue(&intake, &ids, Duration::from_secs(10))
        .await
        .unwrap();
    // Deferred: still queued, no longer in memory.
    let waiting = stats_until(&queue, |s| s.deferred == 1 && s.in_flight == 0).await;
    assert_eq!((waiting.messages, waiting.in_memory), (1, 0), "{waiting:?}");
    // Due again: read back from the spool, retried, delivered, gone.
    let done = stats_until(&queue, |s| s.messages == 0).await;
    assert_eq!(done.in_memory, 0);
    assert_eq!(*jobs.lock().unwrap(), [id, id]);
    // The removal goes to the writer thread and the Queue does not wait for it: the spool
    // is empty once the writer has had its turn.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !spool.recover().unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the delivered message stayed in the spool"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Every spool call ran on the writer thread, none on the arbiter (this test's thread)
    // that runs the Queue: the insert, the deferral's update, the read back, the removal.
    let threads = watched.calls();
    let calls: Vec<&str> = threads.iter().map(|(call, _)| *call).collect();
    assert_eq!(calls, ["insert", "update", "envelope", "data", "remove"]);
    for (call, thread) in threads.iter() {
        assert_eq!(thread, "hermod-spool-write", "{call} ran on {thread}");
    }
}

fn envelope(status: RecipientStatus) -> Envelope {
    Envelope {
        sender: "a@sender.test".into(),
        recipients: vec![RecipientState {
            address: "b@dest.test".into(),
            domain: "dest.test".into(),
            status,
            attempts: 1,
        }],
        arrival: 1,
        size: 3,
        client: "192.0.2.1".into(),
        options: Default::default(),
        body_file: false,
        held: false,
        user: None,
        route: None,
        tracking: Vec::new(),
        trace: None,
        tls_report: false,
        pool: None,
    }
}

#[actix::test]
async fn recovery_holds_only_what_is_due_and_finishes_what_is_final() {
    let dir = tempfile::tempdir().unwrap();
    let spool: Arc<dyn Spool> = Arc::new(SledSpool::open(dir.path()).unwrap());
    let later = RecipientStatus::Deferred {
        next_attempt: u64::MAX / 2,
        last_reply: "451 later".into(),
    };
    for (n, status) in [
        (1, RecipientStatus::Pending),
        (2, later.clone()),
        (3, later),
        (4, RecipientStatus::Delivered),
    ] {
        spool
            .insert(QueueId(n), &envelope(status), b"x\r\n")
            .unwrap();
    }
    spool.flush().unwrap();
    let ids = Arc::new(QueueIdGenerator::new());
    let jobs = Arc::new(Mutex::new(Vec::new()));
    let log = jobs.clone();
    let factory = Box::new(move |_: &_, _| JobLog(log.clone()).start().recipient());
    let (mut queue, _committer) = queue(settings(), spool.clone(), ids, factory);
    assert_eq!(queue.recover(spool.as_ref()).unwrap(), 4);
    let queue = queue.start();
    // The pending one is dispatched; the two deferred ones wait on disk only; the
    // delivered one is finished and removed.
    let stats = stats_until(&queue, |s| s.in_flight == 1).await;
    assert_eq!(
        (stats.messages, stats.in_memory, stats.deferred),
        (3, 1, 2),
        "{stats:?}"
    );
    jobs_hold(&jobs, 1).await;
    assert_eq!(*jobs.lock().unwrap(), [QueueId(1)]);
    spool_holds(spool.as_ref(), 3).await;
}

#[actix::test]
async fn message_data_in_flight_is_bounded_in_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let spool: Arc<dyn Spool> = Arc::new(SledSpool::open(dir.path()).unwrap());
    let ids = Arc::new(QueueIdGenerator::new());
    let jobs = Arc::new(Mutex::new(Vec::new()));
    let log = jobs.clone();
    // Delivery that never finishes: whatever is handed over stays in flight.
    let factory = Box::new(move |_: &_, _| JobLog(log.clone()).start().recipient());
    let mut queue_settings = settings();
    queue_settings.max_bytes_in_flight = 30;
    let (queue, intake) = started(queue(queue_settings, spool.clone(), ids.clone(), factory));
    for _ in 0..3 {
        enqueue(&intake, &ids, Duration::from_secs(10))
            .await
            .unwrap();
    }
    // Each message is 17 octets. A message goes while the total is under the limit (so
    // one larger than the limit still goes alone): 0 and 17 are, 34 is not.
    let stats = stats_until(&queue, |s| s.messages == 3).await;
    jobs_hold(&jobs, 2).await;
    // And no third one follows.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(jobs.lock().unwrap().len(), 2, "{stats:?}");
    assert_eq!(queue.send(GetStats).await.unwrap().in_flight, 2);
}
