//! DSNs that come back later: a receiver that accepted a message and failed it afterwards
//! sends a delivery status notification (RFC 3464), from the null sender, to the sender,
//! which may be a domain hermod receives for. Such a report names the message by the
//! headers it returns: the `Received: ... by HOST (hermod) with ... id QUEUEID` line this
//! node wrote. Each failed recipient it lists (at most [`MAX_FAILURES`]) becomes an `OOB`
//! event with its class, tied to the original queue id. Anyone can send such a report:
//! the events say what a report claimed, bounded per report.

use mail_parser::{MessageParser, MimeHeaders};

use crate::core::bounce_class::BounceClass;
use crate::events::bounce_rules::BounceRules;
use crate::protocol::status::EnhancedCode;

/// One failed recipient of a returned DSN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnedFailure {
    /// The queue id of the message it is about.
    pub queue_id: String,
    /// The recipient (`Final-Recipient`, or `Original-Recipient`).
    pub recipient: String,
    /// `Status:`.
    pub code: EnhancedCode,
    /// `Diagnostic-Code:` (or the status alone).
    pub diagnostic: String,
    /// The MTA that reported it.
    pub reporting_mta: String,
    /// Its class.
    pub class: BounceClass,
}

/// The longest report read: DSNs are small, and a peer's bytes are hostile.
const MAX_REPORT: usize = 1024 * 1024;

/// Failed recipients taken from one report: a forged report cannot flood the event log.
pub const MAX_FAILURES: usize = 100;

/// Whether `message` (its header section, at least) says it is a delivery status report:
/// a cheap look before the parse, which only such a message pays.
pub fn looks_like_dsn(message: &[u8]) -> bool {
    let head = &message[..message.len().min(16 * 1024)];
    let head = match head.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(end) => &head[..end],
        None => head,
    };
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    text.contains("multipart/report") && text.contains("delivery-status")
}

/// The failed recipients of a returned DSN about a message hermod sent, classified by
/// `rules`; none for any other message, or for a report `own_mta` wrote itself.
pub fn failures(message: &[u8], own_mta: &str, rules: &BounceRules) -> Vec<ReturnedFailure> {
    if message.len() > MAX_REPORT || !looks_like_dsn(message) {
        return Vec::new();
    }
    let Some(parsed) = MessageParser::default().parse(message) else {
        return Vec::new();
    };
    // In the body: the report's own header section carries the Received line hermod
    // wrote when the report itself arrived.
    let body = match message.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(end) => &message[end..],
        None => return Vec::new(),
    };
    let Some(queue_id) = original_queue_id(&String::from_utf8_lossy(body), own_mta) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for part in parsed.parts.iter() {
        let is_status = part.content_type().is_some_and(|ct| {
            ct.ctype().eq_ignore_ascii_case("message")
                && ct.subtype().is_some_and(|s| {
                    s.eq_ignore_ascii_case("delivery-status")
                        || s.eq_ignore_ascii_case("global-delivery-status")
                })
        });
        if !is_status {
            continue;
        }
        let body = String::from_utf8_lossy(part.contents());
        let mut groups = fields_groups(&body).into_iter();
        let reporting_mta = groups
            .next()
            .and_then(|g| field(&g, "reporting-mta"))
            .map(|v| v.split(';').next_back().unwrap_or("").trim().to_string())
            .unwrap_or_default();
        if !own_mta.is_empty() && reporting_mta.eq_ignore_ascii_case(own_mta) {
            return Vec::new();
        }
        for group in groups {
            if out.len() == MAX_FAILURES {
                break;
            }
            let action = field(&group, "action").unwrap_or_default();
            if !action.eq_ignore_ascii_case("failed") && !action.eq_ignore_ascii_case("delayed") {
                continue;
            }
            let Some(recipient) = field(&group, "final-recipient")
                .or_else(|| field(&group, "original-recipient"))
                .map(|v| v.split(';').next_back().unwrap_or("").trim().to_string())
            else {
                continue;
            };
            let code = field(&group, "status")
                .and_then(|s| s.split_whitespace().next().and_then(|c| c.parse().ok()))
                .unwrap_or(EnhancedCode::new(5, 0, 0));
            let diagnostic = field(&group, "diagnostic-code")
                .map(|d| {
                    d.split_once(';')
                        .map_or(d.as_str(), |(_, t)| t)
                        .trim()
                        .to_string()
                })
                .unwrap_or_else(|| code.to_string());
            let class = rules.classify(code, &diagnostic).class;
            out.push(ReturnedFailure {
                queue_id: queue_id.clone(),
                recipient: bounded(&recipient, 320),
                code,
                diagnostic: bounded(&diagnostic, 1000),
                reporting_mta: bounded(&reporting_mta, 255),
                class,
            });
        }
    }
    out
}

/// hermod's queue id in the returned headers: the `Received:` line `own_mta` wrote (a
/// hermod bounce's `X-Hermod-Queue-ID` names the reporting node's message, not ours).
fn original_queue_id(text: &str, own_mta: &str) -> Option<String> {
    let marker = format!("by {own_mta} (hermod) with ");
    let at = text.find(&marker)? + marker.len();
    let rest = text[at..].split_once(" id ")?.1;
    let id: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    (!id.is_empty()).then_some(id)
}

/// The field groups of a delivery-status body (per-message first, then one per
/// recipient), folded lines joined.
fn fields_groups(body: &str) -> Vec<Vec<(String, String)>> {
    let mut groups = Vec::new();
    let mut group: Vec<(String, String)> = Vec::new();
    for line in body.lines() {
        if line.trim().is_empty() {
            if !group.is_empty() {
                groups.push(std::mem::take(&mut group));
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = group.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            group.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    if !group.is_empty() {
        groups.push(group);
    }
    groups
}

fn field(group: &[(String, String)], name: &str) -> Option<String> {
    group
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

fn bounded(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dsn(reporting: &str) -> String {
        format!(
            "From: MAILER-DAEMON@mx.remote.test\r\nTo: bounces@relay.test\r\nSubject: Undelivered\r\nMIME-Version: 1.0\r\n\
Received: from mx.remote.test by relay.test (hermod) with ESMTP id 0aTheReportItself;\r\n\tMon, 7 Dec 2026 10:00:00 +0000\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nSorry.\r\n\
--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; {reporting}\r\n\r\n\
Final-Recipient: rfc822; gone@remote.test\r\nAction: failed\r\nStatus: 5.2.1\r\nDiagnostic-Code: smtp; 550 5.2.1 mailbox\r\n disabled\r\n\r\n\
Final-Recipient: rfc822; ok@remote.test\r\nAction: delivered\r\nStatus: 2.0.0\r\n\r\n\
--b\r\nContent-Type: text/rfc822-headers\r\n\r\nReceived: from app (app [127.0.0.1])\r\n\tby relay.test (hermod) with ESMTPS id 0a1B2c3D4e5F6g;\r\n\tMon, 7 Dec 2026 10:00:00 +0000\r\nSubject: hello\r\n\r\n--b--\r\n"
        )
    }

    #[test]
    fn a_returned_dsn_names_the_original_and_its_failed_recipients() {
        let found = failures(
            dsn("mx.remote.test").as_bytes(),
            "relay.test",
            &BounceRules::shipped(),
        );
        assert_eq!(found.len(), 1, "{found:?}");
        let f = &found[0];
        assert_eq!(f.queue_id, "0a1B2c3D4e5F6g");
        assert_eq!(f.recipient, "gone@remote.test");
        assert_eq!(f.code, EnhancedCode::new(5, 2, 1));
        assert_eq!(f.diagnostic, "550 5.2.1 mailbox disabled");
        assert_eq!(f.class, BounceClass::InactiveMailbox);
        assert_eq!(f.reporting_mta, "mx.remote.test");
    }

    #[test]
    fn another_nodes_received_line_is_not_ours() {
        assert!(
            failures(
                dsn("mx.remote.test").as_bytes(),
                "other.test",
                &BounceRules::shipped()
            )
            .is_empty()
        );
    }

    #[test]
    fn our_own_bounces_and_plain_mail_are_not_returned_dsns() {
        assert!(
            failures(
                dsn("relay.test").as_bytes(),
                "relay.test",
                &BounceRules::shipped()
            )
            .is_empty()
        );
        assert!(
            failures(
                b"Subject: hi\r\n\r\nmultipart/report delivery-status\r\n",
                "relay.test",
                &BounceRules::shipped()
            )
            .is_empty()
        );
    }
}
