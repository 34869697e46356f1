//! One delivery event as destinations receive it: a JSON object naming what happened
//! (`type`), to which message and recipient, through which next hop, with the reply, its
//! bounce class, the tenant and the header fields the sender marked for tracking. Built
//! by the stage that saw the outcome, appended to the event log by the commit thread, and
//! given its `id` (node and sequence number, so a receiver can drop a duplicate) when it
//! is sent.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::core::bounce_class::BounceClass;
use crate::store::envelope::Envelope;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// A message was accepted and is on disk (one event per message).
    Reception,
    /// A recipient was accepted by its next hop.
    Delivery,
    /// A recipient was deferred; it will be tried again.
    TransientFailure,
    /// A recipient failed for good on a next hop's reply (or hermod's own, such as a
    /// domain with no mail server).
    Bounce,
    /// hermod gave up on a recipient: the message outlived `queue.max_lifetime` or its
    /// attempts.
    Expiration,
    /// An operator deleted, held, released or bounced a message.
    AdminAction,
    /// A DSN that came back later for a message hermod sent (out of band).
    #[serde(rename = "OOB")]
    Oob,
    /// A traffic-shaping rule acted on a site after a reply to this message (`action`
    /// says what and for how long, `next_hop` names the site, `reply` the reply).
    ShapingAction,
}

/// One event, as a destination gets it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// `node-sequence`, unique across the fleet; given when the event is sent.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// Unix time in milliseconds.
    pub timestamp: u64,
    /// The node (its host name) that saw it.
    pub node: String,
    /// The message's queue id.
    pub queue_id: String,
    /// MAIL FROM of the message (empty for the null sender).
    pub sender: String,
    /// The recipient the event is about (every recipient for a `Reception`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    /// The recipients of a `Reception`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    /// The next hop that answered (`host[ip]:port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_hop: Option<String>,
    /// The reply (a next hop's, or hermod's own reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    /// The reply's enhanced status code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The failure's class (failures only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounce_class: Option<BounceClass>,
    /// Delivery attempts of the recipient so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// The message's size in octets.
    pub size: usize,
    /// The tenant: the user the client authenticated as, or the injection API's tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The operator's action (`delete`, `hold`, `release`, `bounce`) of an `AdminAction`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The header fields marked for tracking (`events.headers`), as the sender wrote them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
}

impl Event {
    /// An event of `kind` about message `queue_id` with `envelope`, the other fields
    /// empty: the caller fills what it knows.
    pub fn about(kind: EventKind, node: &str, queue_id: &str, envelope: &Envelope) -> Self {
        Event {
            id: String::new(),
            kind,
            timestamp: now_millis(),
            node: node.to_string(),
            queue_id: queue_id.to_string(),
            sender: envelope.sender.clone(),
            recipient: None,
            recipients: Vec::new(),
            next_hop: None,
            reply: None,
            code: None,
            bounce_class: None,
            attempts: None,
            size: envelope.size,
            tenant: envelope.user.clone(),
            action: None,
            headers: envelope.tracking.clone(),
        }
    }

    /// The event as the event log keeps it.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The event as a destination gets it: the stored object with its id, `node-seq`,
    /// put in front; `None` for bytes that are not a stored event's object. Spliced, not
    /// parsed again: the senders run on the arbiter that serves sessions.
    pub fn for_sending(stored: &[u8], node: &str, seq: u64) -> Option<Vec<u8>> {
        let rest = stored.strip_prefix(b"{\"type\":")?;
        let mut out = Vec::with_capacity(stored.len() + node.len() + 32);
        out.extend_from_slice(b"{\"id\":");
        serde_json::to_writer(&mut out, &format!("{node}-{seq}")).ok()?;
        out.extend_from_slice(b",\"type\":");
        out.extend_from_slice(rest);
        Some(out)
    }
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// At most this many tracked header fields are copied from one message, each value cut
/// to [`MAX_TRACKED_VALUE`] octets: a sender's header is not a way to grow every event.
pub const MAX_TRACKED: usize = 16;
/// The longest tracked header value kept.
pub const MAX_TRACKED_VALUE: usize = 256;

/// The header fields named in `wanted` (compared without case) from the header section
/// of `message`, unfolded and bounded.
pub fn tracked_headers(message: &[u8], wanted: &[String]) -> Vec<(String, String)> {
    if wanted.is_empty() {
        return Vec::new();
    }
    let head = match message.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(end) => &message[..end + 2],
        None => message,
    };
    let text = String::from_utf8_lossy(head);
    let mut found: Vec<(String, String)> = Vec::new();
    let mut current: Option<(usize, String)> = None;
    let finish = |current: &mut Option<(usize, String)>, found: &mut Vec<(String, String)>| {
        if let Some((i, value)) = current.take()
            && found.len() < MAX_TRACKED
        {
            let value: String = value
                .trim()
                .chars()
                .filter(|c| !c.is_control())
                .take(MAX_TRACKED_VALUE)
                .collect();
            found.push((wanted[i].clone(), value));
        }
    };
    for line in text.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = current.as_mut()
                && value.len() < MAX_TRACKED_VALUE * 4
            {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        finish(&mut current, &mut found);
        if let Some((name, value)) = line.split_once(':')
            && let Some(i) = wanted
                .iter()
                .position(|w| w.eq_ignore_ascii_case(name.trim()))
        {
            current = Some((i, value.to_string()));
        }
    }
    finish(&mut current, &mut found);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracked_headers_are_found_unfolded_and_bounded() {
        let message = b"Subject: hi\r\nx-campaign-id: spring\r\n sale\r\nX-Evil: a\x01b\r\n\r\nX-Campaign-Id: body\r\n";
        let wanted = vec!["X-Campaign-Id".to_string(), "X-Evil".to_string()];
        let found = tracked_headers(message, &wanted);
        assert_eq!(
            found,
            vec![
                ("X-Campaign-Id".to_string(), "spring sale".to_string()),
                ("X-Evil".to_string(), "ab".to_string())
            ]
        );
        let long = format!("X-Campaign-Id: {}\r\n\r\n", "a".repeat(10_000));
        assert_eq!(
            tracked_headers(long.as_bytes(), &wanted)[0].1.len(),
            MAX_TRACKED_VALUE
        );
    }

    #[test]
    fn an_event_is_sent_with_its_id_in_front() {
        let event = Event::about(
            EventKind::Delivery,
            "mx.test",
            "q1",
            &crate::store::envelope::sample(9),
        );
        let sent = Event::for_sending(&event.to_bytes(), "mx.test", 42).unwrap();
        let back: Event = serde_json::from_slice(&sent).unwrap();
        assert_eq!(back.id, "mx.test-42");
        assert_eq!(
            Event {
                id: String::new(),
                ..back
            },
            event
        );
        assert!(Event::for_sending(b"{\"x\":1}", "n", 1).is_none());
    }

    #[test]
    fn the_oob_kind_is_spelt_as_senders_know_it() {
        assert_eq!(serde_json::to_string(&EventKind::Oob).unwrap(), "\"OOB\"");
    }
}
