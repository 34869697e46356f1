//! What the engine's own integration tests share: Queue settings for tests, a message
//! as the protocol hands it over, and a stand-in that records the jobs a Delivery actor
//! would get.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use hermod_actors::delivery::Deliver;
use hermod_actors::hop_health::HopPolicy;
use hermod_actors::queue::QueueSettings;
use hermod_actors::queue_id::{QueueId, QueueIdGenerator};
use hermod_actors::smtp::address::{Mailbox, ReversePath};
use hermod_actors::smtp::command::MailOptions;
use hermod_actors::smtp::server::AcceptedMessage;

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
    }
}
