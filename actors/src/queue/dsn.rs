//! Delivery status notifications (RFC 3464): the bounce a sender gets when a recipient
//! fails for good or its message expires, carrying the remote server's own reply so the
//! sender can see why.

use std::time::SystemTime;

use crate::core::bounce_class::BounceClass;
use crate::core::id::QueueId;
use crate::protocol::datetime;
use crate::protocol::status::EnhancedCode;

/// One failed recipient as the report lists it.
#[derive(Debug, Clone)]
pub struct FailedRecipient {
    /// The address as it was given in RCPT TO.
    pub address: String,
    /// The enhanced status code the report gives (`Status:`).
    pub status: EnhancedCode,
    /// The remote server's reply, or our own reason (expiry, DNS).
    pub diagnostic: String,
    /// What kind of failure it is (the bounce rules' class), for the sender's list
    /// hygiene.
    pub class: BounceClass,
}

/// What the bounce is about.
#[derive(Debug, Clone)]
pub struct BounceRequest<'a> {
    /// Our host name (the Reporting-MTA).
    pub reporting_mta: &'a str,
    /// The original message's queue id.
    pub original_id: QueueId,
    /// The original MAIL FROM (empty when a bounce itself could not be delivered).
    pub original_sender: &'a str,
    /// Who receives this report: the original sender, or the postmaster for a bounce
    /// that could not be delivered.
    pub notify: &'a str,
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
    out.push_str(&format!("To: <{}>\r\n", request.notify));
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
        out.push_str(&folded(&format!(
            "<{}>: {} (bounce class {})",
            failed.address,
            one_line(&failed.diagnostic),
            failed.class
        )));
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
        out.push_str(&format!("Status: {}\r\n", failed.status.permanent()));
        out.push_str(&folded(&format!(
            "Diagnostic-Code: smtp; {}",
            one_line(&failed.diagnostic)
        )));
        out.push_str(&format!("X-Hermod-Bounce-Class: {}\r\n", failed.class));
    }
    out.push_str("\r\n");

    out.push_str(&format!("--{boundary}\r\nContent-Description: Undelivered Message Headers\r\nContent-Type: text/rfc822-headers\r\n\r\n"));
    let mut bytes = out.into_bytes();
    for line in header_section(request.original).split_inclusive(|&b| b == b'\n') {
        // A header line the next hop refused as too long must not sink the bounce too.
        if line.len() > MAX_LINE + 2 {
            bytes.extend_from_slice(&line[..MAX_LINE]);
            bytes.extend_from_slice(b"\r\n");
        } else {
            bytes.extend_from_slice(line);
        }
    }
    if !bytes.ends_with(b"\r\n") {
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    bytes
}

/// How much of the original message a bounce reads: its header section is what is
/// returned, and no sane header section is longer.
pub const ORIGINAL_PREFIX: usize = 256 * 1024;

/// The header section of a message (up to the first empty line).
fn header_section(message: &[u8]) -> &[u8] {
    match message.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(end) => &message[..end + 2],
        None => message,
    }
}

fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

/// The longest line hermod writes into a message, without CRLF (RFC 5322 §2.1.1).
pub const MAX_LINE: usize = 998;

/// Width at which report lines are folded (RFC 5322's recommended 78).
const FOLD_AT: usize = 78;

/// `line` folded at spaces into lines of at most [`FOLD_AT`] characters where it can
/// be, continuation lines starting with a space (header folding, and harmless in text),
/// a word too long to fit cut at [`MAX_LINE`]; CRLF-terminated.
fn folded(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + 8);
    let mut width = 0;
    for word in line.split(' ').filter(|w| !w.is_empty()) {
        let mut word = word;
        while word.len() > MAX_LINE - 1 {
            let mut cut = MAX_LINE - 1;
            while !word.is_char_boundary(cut) {
                cut -= 1;
            }
            word = &word[..cut];
        }
        if width > 0 && width + 1 + word.len() > FOLD_AT {
            out.push_str("\r\n");
            width = 0;
        }
        if width > 0 || !out.is_empty() {
            out.push(' ');
            width += 1;
        }
        out.push_str(word);
        width += word.len();
    }
    out.push_str("\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounce_carries_remote_reply_and_headers() {
        let failed = [FailedRecipient {
            address: "bob@far.test".into(),
            status: EnhancedCode::new(5, 1, 1),
            class: BounceClass::InvalidRecipient,
            diagnostic: "550 5.1.1 <bob@far.test>: User unknown".into(),
        }];
        let request = BounceRequest {
            reporting_mta: "mx.test",
            original_id: QueueId(1),
            original_sender: "alice@near.test",
            notify: "alice@near.test",
            arrival: SystemTime::UNIX_EPOCH,
            failed: &failed,
            original: b"Subject: hello\r\nFrom: alice@near.test\r\n\r\nbody\r\n",
        };
        let text =
            String::from_utf8(build_bounce(&request, QueueId(2), SystemTime::UNIX_EPOCH)).unwrap();
        assert!(text.contains("Content-Type: multipart/report; report-type=delivery-status"));
        assert!(text.contains("Status: 5.1.1\r\n"));
        assert!(text.contains("X-Hermod-Bounce-Class: InvalidRecipient\r\n"));
        let unfolded = text.replace("\r\n ", " ").replace("\r\n\t", " ");
        assert!(
            unfolded.contains("User unknown (bounce class InvalidRecipient)"),
            "{unfolded}"
        );
        assert!(text.contains("Diagnostic-Code: smtp; 550 5.1.1 <bob@far.test>: User unknown"));
        assert!(text.contains("To: <alice@near.test>\r\n"));
        assert!(text.contains("Subject: hello\r\n"));
        assert!(!text.contains("body\r\n"));
    }

    #[test]
    fn no_line_of_a_bounce_exceeds_998_octets() {
        let long_reply = format!("550 5.5.2 {}", "word ".repeat(400));
        let failed = [FailedRecipient {
            address: "bob@far.test".into(),
            status: EnhancedCode::new(5, 5, 2),
            class: BounceClass::InvalidRecipient,
            diagnostic: format!("{long_reply} {}", "x".repeat(2000)),
        }];
        let received = format!("Received: from {} (x)\r\n", "h".repeat(1500));
        let original = format!("{received}Subject: hi\r\n\r\nbody\r\n");
        let request = BounceRequest {
            reporting_mta: "mx.test",
            original_id: QueueId(1),
            original_sender: "",
            notify: "postmaster@mx.test",
            arrival: SystemTime::UNIX_EPOCH,
            failed: &failed,
            original: original.as_bytes(),
        };
        let bytes = build_bounce(&request, QueueId(2), SystemTime::UNIX_EPOCH);
        for line in bytes.split(|&b| b == b'\n') {
            assert!(line.len() <= MAX_LINE + 1, "line of {} octets", line.len());
        }
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            text.contains("\r\n word word"),
            "folded with a leading space"
        );
        assert!(text.contains("Subject: hi\r\n"));
        assert!(text.contains("To: <postmaster@mx.test>\r\n"));
    }
}
