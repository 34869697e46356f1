//! Delivery events at start: the event log in the spool's database, and one EventSender
//! per destination `[events]` turns on, on the main arbiter.

use std::rc::Rc;
use std::sync::Arc;

use actix::prelude::*;
use anyhow::Context as _;
use hermod_actors::events::bounce_rules::SharedBounceRules;
use hermod_actors::events::destination::Destination;
use hermod_actors::events::json_file::JsonFile;
use hermod_actors::events::redis_stream::RedisStream;
use hermod_actors::events::sender::{EventSender, SenderSettings};
use hermod_actors::events::webhook::Webhook;
use hermod_actors::queue::{Intake, IntakeEvents, Stored};
use hermod_actors::store::committer::Committer;
use hermod_actors::store::event_log::EventLog;

use crate::config::Config;

/// The event log (when some destination is on) and the bounce rules in force.
pub(super) struct Events {
    /// The log, `None` when no destination is on.
    pub log: Option<Arc<EventLog>>,
    /// The rules failures are classified by, replaced on reload.
    pub rules: SharedBounceRules,
}

impl Events {
    /// Reads the bounce rules, and if a destination is on, opens the event log in `db`
    /// and starts a sender for each destination.
    pub fn start(config: &Config, db: &sled::Db) -> anyhow::Result<Events> {
        let rules = SharedBounceRules::new(config.bounce.rules().context("bounce.rules_file")?);
        if !config.events.enabled() {
            return Ok(Events { log: None, rules });
        }
        let log = EventLog::open(db, config.events.max_backlog).context("opening the event log")?;
        let log = Arc::new(log);
        start_senders(config, &log)?;
        Ok(Events {
            log: Some(log),
            rules,
        })
    }

    /// The intake Sessions store through: `committer`, then `queue`, with the events of
    /// each message when they are kept.
    pub fn intake(
        &self,
        config: &Config,
        committer: &Committer,
        queue: Recipient<Stored>,
    ) -> Intake {
        Intake::new(committer.clone(), queue).with_events(IntakeEvents {
            node: config.smtp.hostname.clone(),
            headers: config.events.headers.clone(),
            rules: self.rules.clone(),
        })
    }
}

/// Starts a sender for each destination that is on, after naming them to the log (a
/// destination turned off no longer holds events back).
fn start_senders(config: &Config, log: &Arc<EventLog>) -> anyhow::Result<()> {
    let destinations = destinations(config)?;
    let names: Vec<String> = destinations.iter().map(|d| d.name().to_string()).collect();
    log.set_destinations(&names)
        .context("recording the event destinations")?;
    let settings = SenderSettings {
        node: config.smtp.hostname.clone(),
        batch_size: config.events.batch_size,
        max_backoff: config.events.max_backoff,
    };
    for destination in destinations {
        tracing::info!(
            destination = destination.name(),
            "delivery events are sent to this destination"
        );
        EventSender::new(log.clone(), destination, settings.clone()).start();
    }
    Ok(())
}

fn destinations(config: &Config) -> anyhow::Result<Vec<Rc<dyn Destination>>> {
    let events = &config.events;
    let mut out: Vec<Rc<dyn Destination>> = Vec::new();
    if !events.webhook_url.is_empty() {
        let ca = (!events.webhook_ca_file.as_os_str().is_empty())
            .then_some(events.webhook_ca_file.as_path());
        let tls = hermod_actors::outbound::tls::verified_client_config(ca)
            .context("events.webhook_ca_file")?;
        let secret = events
            .webhook_secret()
            .context("events.webhook_secret_file")?;
        out.push(Rc::new(Webhook::new(
            &events.webhook_url,
            secret.as_deref(),
            events.timeout,
            tls,
        )));
    }
    if !events.redis_stream.is_empty() {
        let stream = RedisStream::new(
            &config.redis.url,
            &events.redis_stream,
            events.redis_stream_max_len,
            events.timeout,
        )
        .context("events.redis_stream")?;
        out.push(Rc::new(stream));
    }
    if !events.file.as_os_str().is_empty() {
        out.push(Rc::new(JsonFile::new(
            &events.file,
            events.file_max_size,
            events.file_keep,
        )));
    }
    Ok(out)
}
