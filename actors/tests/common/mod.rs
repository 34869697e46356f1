//! What the engine's own integration tests share: Queue settings for tests, a message
//! as the protocol hands it over, and a stand-in that records the jobs a Delivery actor
//! would get.
#![allow(dead_code)]

pub mod watched_spool;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use hermod_actors::core::id::{QueueId, QueueIdGenerator};
use hermod_actors::outbound::delivery::Deliver;
use hermod_actors::outbound::hop_health::HopPolicy;
use hermod_actors::outbound::routing::Router;
use hermod_actors::protocol::address::{Mailbox, ReversePath};
use hermod_actors::protocol::command::MailOptions;
use hermod_actors::protocol::session::AcceptedMessage;
use hermod_actors::queue::{DeliveryFactory, Intake, Queue, QueueSettings};
use hermod_actors::store::committer::Committer;
use hermod_actors::store::spool::{Spool, SpoolError};

/// Stands where a Delivery actor would: keeps every job it is given.
pub struct JobLog(pub Arc<Mutex<Vec<QueueId>>>);

impl Actor for JobLog {
    type Context = Context<Self>;
}

impl Handler<Deliver> for JobLog {
    type Result = ();
    fn handle(&mut self, job: Deliver, _: &mut Context<Self>) {
        self.0.lock().unwrap().push(job.id);
    }
}

pub fn settings() -> QueueSettings {
    QueueSettings {
        hostname: "mx.hermod.test".into(),
        retry_interval: Duration::from_secs(60),
        max_retry_interval: Duration::from_secs(600),
        max_lifetime: Duration::from_secs(86400),
        max_attempts: 0,
        scan_interval: Duration::from_millis(50),
        max_in_flight: 100,
        max_bytes_in_flight: 64 * 1024 * 1024,
        soft_bounce: false,
        bounce_rules: std::sync::Arc::new(
            hermod_actors::events::bounce_rules::BounceRules::shipped(),
        ),
        hops: HopPolicy {
            down_after: 5,
            first_backoff: Duration::from_secs(60),
            max_backoff: Duration::from_secs(600),
        },
        state_flush_interval: Duration::from_millis(50),
        postmaster: None,
    }
}

pub fn message(ids: &QueueIdGenerator) -> AcceptedMessage {
    AcceptedMessage {
        id: ids.next_id(),
        sender: ReversePath::Mailbox(Mailbox {
            local: "a".into(),
            domain: "sender.test".into(),
        }),
        recipients: vec![Mailbox {
            local: "b".into(),
            domain: "dest.test".into(),
        }],
        options: MailOptions::default(),
        data: b"Subject: t\r\n\r\nx\r\n".to_vec(),
        body_file: None,
        user: None,
        hold: false,
        route: None,
        claim: None,
        trace: None,
        tls_report: false,
    }
}

/// A Queue over `spool` with its own commit thread and no routes (every domain by MX,
/// which the factory's stand-in never resolves); not started, so recovery can run
/// first. Returns the commit thread too, for the [`Intake`].
pub fn queue(
    settings: QueueSettings,
    spool: Arc<dyn Spool>,
    ids: Arc<QueueIdGenerator>,
    factory: DeliveryFactory,
) -> (Queue, Committer) {
    let committer = Committer::start(spool.clone());
    let queue = Queue::new(settings, committer.clone(), ids, Router::default(), factory);
    (queue, committer)
}

/// Stores a new message through `intake`, as a Session does, giving it `within` before
/// the Session would give up.
pub async fn enqueue(
    intake: &Intake,
    ids: &QueueIdGenerator,
    within: Duration,
) -> Result<QueueId, SpoolError> {
    intake
        .enqueue(
            message(ids),
            "192.0.2.1".parse().unwrap(),
            std::time::Instant::now() + within,
        )
        .await
}

/// Starts a Queue made by [`queue`]; returns it and the intake Sessions would use.
pub fn started((queue, committer): (Queue, Committer)) -> (Addr<Queue>, Intake) {
    let queue = queue.start();
    let intake = Intake::new(committer, queue.clone().recipient());
    (queue, intake)
}

/// Waits until the spool holds `count` messages. Removals go to the writer thread and the
/// Queue does not wait for them: the spool has them once the writer has had its turn.
pub async fn spool_holds(spool: &dyn Spool, count: usize) {
    eventually(|| match spool.recover().unwrap().len() {
        held if held == count => Ok(()),
        held => Err(format!("the spool holds {held} messages, not {count}")),
    })
    .await
}

/// Waits until `jobs` (a [`JobLog`]'s record) holds `count` jobs: the Queue sends them
/// and does not wait for the stand-in to have taken them.
pub async fn jobs_hold(jobs: &Mutex<Vec<QueueId>>, count: usize) {
    eventually(|| match jobs.lock().unwrap().len() {
        held if held == count => Ok(()),
        held => Err(format!("{held} jobs handed out, not {count}")),
    })
    .await
}

/// Polls `check` until it passes; fails the test with its last complaint after 10 s
/// (what another thread or actor does has no other signal a test could wait on).
async fn eventually(mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match check() {
            Ok(()) => return,
            Err(why) => assert!(Instant::now() < deadline, "{why}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
