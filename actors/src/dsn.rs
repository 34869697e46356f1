//! Delivery status notifications (RFC 3464): the bounce a sender gets when a recipient
//! fails for good or its message expires, carrying the remote server's own reply so the
//! sender can see why.

use std::time::SystemTime;

use crate::datetime;
use crate::queue_id::QueueId;

/// One failed recipient as the report lists it.
#[derive(Debug, Clone)]
pub struct FailedRecipient {
    /// The address as it was given in RCPT TO.
    pub address: String,
    /// The remote server's reply, or our own reason (expiry, DNS).
    pub diagnostic: String,
}

/// What the bounce is about.
#[derive(Debug, Clone)]
pub struct BounceRequest<'a> {
    /// Our host name (the Reporting-MTA).
    pub reporting_mta: &'a str,
    /// The original message's queue id.
    pub original_id: QueueId,
    /// The original MAIL FROM, who receives the bounce.
    pub original_sender: &'a str,
    /// When the original message arrived.
    pub arrival: SystemTime,
    /// The recipients that failed.
    pub failed: &'a [FailedRecipient],
    /// The original message (only its header section is returned).
    pub original: &'a [u8],
}

/// Builds the complete bounce message (headers and multipart/report body, CRLF line ends).
pub fn build_bounce(request: &BounceRequest<'_>, bounce_id: QueueId, now: SystemTime) -> Vec<u8> {
    let boundary = format!("{bounce_id}/{}", request.reporting_mta);
    let mta = request.reporting_mta;
    let mut out = String::with_capacity(2048);
    out.push_str(&format!(
        "From: Mail Delivery System <MAILER-DAEMON@{mta}>\r\n"
    ));
    out.push_str(&format!("To: <{}>\r\n", request.original_sender));
    out.push_str("Subject: Undelivered Mail Returned to Sender\r\n");
    out.push_str(&format!("Date: {}\r\n", datetime::rfc5322(now)));
    out.push_str(&format!("Message-ID: <{bounce_id}@{mta}>\r\n"));
    out.push_str("Auto-Submitted: auto-replied\r\n");
    out.push_str("MIME-Version: 1.0\r\n");
    out.push_str(&format!("Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"\r\n\r\n"));
    out.push_str("This is a MIME-encapsulated message.\r\n\r\n");

    out.push_str(&format!("--{boundary}\r\nContent-Description: Notification\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"));
    out.push_str(&format!(
        "This is the mail system at host {mta}.\r\n\r\nI'm sorry to have to inform you that your message (queue id {}) could not\r\nbe delivered to one or more recipients.\r\n\r\n",
        request.original_id
    ));
    for failed in request.failed {
        out.push_str(&format!(
            "<{}>: {}\r\n",
            failed.address,
            one_line(&failed.diagnostic)
        ));
    }
    out.push_str("\r\n");

    out.push_str(&format!("--{boundary}\r\nContent-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\n"));
    out.push_str(&format!("Reporting-MTA: dns; {mta}\r\n"));
    out.push_str(&format!("X-Hermod-Queue-ID: {}\r\n", request.original_id));
    out.push_str(&format!(
        "Arrival-Date: {}\r\n",
        datetime::rfc5322(request.arrival)
    ));
    for failed in request.failed {
        out.push_str("\r\n");
        out.push_str(&format!("Final-Recipient: rfc822; {}\r\n", failed.address));
        out.push_str("Action: failed\r\n");
        out.push_str(&format!("Status: {}\r\n", status_code(&failed.diagnostic)));
        out.push_str(&format!(
            "Diagnostic-Code: smtp; {}\r\n",
            one_line(&failed.diagnostic)
        ));
    }
    out.push_str("\r\n");

    out.push_str(&format!("--{boundary}\r\nContent-Description: Undelivered Message Headers\r\nContent-Type: text/rfc822-headers\r\n\r\n"));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(header_section(request.original));
    if !bytes.ends_with(b"\r\n") {
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    bytes
}

/// The header section of a message (up to the first empty line).
fn header_section(message: &[u8]) -> &[u8] {
    match message.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(end) => &message[..end + 2],
        None => message,
    }
}

/// The enhanced status code found in a reply text, or a generic permanent failure.
fn status_code(diagnostic: &str) -> String {
    diagnostic
        .split_whitespace()
        .take(3)
        .find(|word| {
            let parts: Vec<&str> = word.split('.').collect();
            parts.len() == 3
                && matches!(parts[0], "4" | "5")
                && parts[1..]
                    .iter()
                    .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        })
        .map_or_else(|| "5.0.0".to_string(), |code| format!("5{}", &code[1..]))
}

fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounce_carries_remote_reply_and_headers() {
        let failed = [FailedRecipient {
            address: "bob@far.test".into(),
            diagnostic: "550 5.1.1 <bob@far.test>: User unknown".into(),
        }];
        let request = BounceRequest {
            reporting_mta: "mx.test",
            original_id: QueueId(1),
            original_sender: "alice@near.test",
            arrival: SystemTime::UNIX_EPOCH,
            failed: &failed,
            original: b"Subject: hello\r\nFrom: alice@near.test\r\n\r\nbody\r\n",
        };
        let text =
            String::from_utf8(build_bounce(&request, QueueId(2), SystemTime::UNIX_EPOCH)).unwrap();
        assert!(text.contains("Content-Type: multipart/report; report-type=delivery-status"));
        assert!(text.contains("Status: 5.1.1\r\n"));
        assert!(text.contains("Diagnostic-Code: smtp; 550 5.1.1 <bob@far.test>: User unknown"));
        assert!(text.contains("Subject: hello\r\n"));
        assert!(!text.contains("body\r\n"));
    }

    #[test]
    fn expiry_of_a_temporary_failure_reports_a_permanent_status() {
        assert_eq!(status_code("451 4.4.1 connection refused"), "5.4.1");
        assert_eq!(status_code("connection refused"), "5.0.0");
    }
}
