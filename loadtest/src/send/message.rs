//! Message content, rendered once per size and patched per message.
//!
//! Only two headers vary (Message-ID and X-Blaster-Sent), and both are fixed-width, so
//! a message costs one copy of a ready body and two in-place digit writes.

use std::time::{SystemTime, UNIX_EPOCH};

use super::config::SendConfig;
use crate::rng::Rng;
use rand::RngExt as _;

/// Digits of the message index inside the Message-ID.
const INDEX_DIGITS: usize = 20;
/// Digits of the nanosecond timestamp in X-Blaster-Sent (enough until the year 2286).
const SENT_DIGITS: usize = 19;
/// Filler text for generated bodies: 76 characters and CRLF per line.
const FILLER: &[u8] =
    b"The quick brown fox jumps over the lazy dog, smtp-blaster filler text 0123\r\n";

/// A ready message: bytes plus where the varying digits go.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    /// DATA form: dot-stuffed and ending with `.\r\n`; BDAT form: raw bytes.
    pub(crate) bytes: Vec<u8>,
    index_at: usize,
    sent_at: usize,
}

impl Template {
    /// Appends this message to `out` with its index and send time filled in.
    pub(crate) fn render(&self, index: u64, sent_ns: u64, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&self.bytes);
        let msg = &mut out[start..];
        put_digits(&mut msg[self.index_at..self.index_at + INDEX_DIGITS], index);
        put_digits(&mut msg[self.sent_at..self.sent_at + SENT_DIGITS], sent_ns);
    }
}

/// One size class in both transfer forms.
#[derive(Debug, Clone)]
pub(crate) struct Class {
    /// For DATA.
    pub(crate) data: Template,
    /// For BDAT.
    pub(crate) raw: Template,
    weight: u32,
}

/// Every message the run can send.
#[derive(Debug, Clone)]
pub(crate) struct Content {
    classes: Vec<Class>,
    total_weight: u64,
    run_id: u64,
    id_domain: String,
}

impl Content {
    /// Renders every size class (or the template) for this run.
    pub(crate) fn new(config: &SendConfig, run_id: u64) -> Self {
        let id_domain = format!("blaster.{}", config.domain_suffix);
        let id_prefix = format!(
            "Message-ID: <{}.{run_id:016x}@{id_domain}>\r\n",
            "0".repeat(INDEX_DIGITS)
        );
        let sent = format!("X-Blaster-Sent: {}\r\n", "0".repeat(SENT_DIGITS));
        let mut head = format!("{id_prefix}{sent}");
        for (name, value) in &config.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        let classes: Vec<Class> = match &config.template {
            Some(eml) => vec![class(from_template(head.as_bytes(), eml), 1)],
            None => config
                .size
                .0
                .iter()
                .map(|&(size, weight)| class(generated(&head, config, size), weight))
                .collect(),
        };
        let total_weight = classes
            .iter()
            .map(|c| u64::from(c.weight))
            .sum::<u64>()
            .max(1);
        Self {
            classes,
            total_weight,
            run_id,
            id_domain,
        }
    }

    /// Picks a size class by weight.
    pub(crate) fn pick(&self, rng: &mut Rng) -> &Class {
        if self.classes.len() == 1 {
            return &self.classes[0];
        }
        let mut roll = rng.random_range(0..self.total_weight);
        for class in &self.classes {
            if roll < u64::from(class.weight) {
                return class;
            }
            roll -= u64::from(class.weight);
        }
        &self.classes[0]
    }

    /// The Message-ID header value of message `index`, as the accepted log lists it.
    pub(crate) fn message_id(&self, index: u64) -> String {
        format!(
            "<{index:0width$}.{:016x}@{}>",
            self.run_id,
            self.id_domain,
            width = INDEX_DIGITS
        )
    }
}

/// Both transfer forms of one message with its patch offsets.
fn class(message: Vec<u8>, weight: u32) -> Class {
    let index_at = "Message-ID: <".len();
    let sent_at = find(&message, b"X-Blaster-Sent: ").map_or(0, |i| i + "X-Blaster-Sent: ".len());
    let mut stuffed = dot_stuff(&message);
    stuffed.extend_from_slice(b".\r\n");
    Class {
        data: Template {
            bytes: stuffed,
            index_at,
            sent_at,
        },
        raw: Template {
            bytes: message,
            index_at,
            sent_at,
        },
        weight,
    }
}

/// A generated text message of about `size` bytes.
fn generated(head: &str, config: &SendConfig, size: usize) -> Vec<u8> {
    let to = match &config.to {
        Some(to) => format!("<{to}>"),
        None => "undisclosed-recipients:;".to_string(),
    };
    let mut msg = format!(
        "{head}Date: {}\r\nFrom: <{}>\r\nTo: {to}\r\nSubject: smtp-blaster test message\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n",
        rfc2822_now(),
        config.from
    )
    .into_bytes();
    while msg.len() + FILLER.len() <= size {
        msg.extend_from_slice(FILLER);
    }
    let rest = size.saturating_sub(msg.len() + 2);
    msg.extend_from_slice(&FILLER[..rest.min(FILLER.len() - 2)]);
    msg.extend_from_slice(b"\r\n");
    msg
}

/// A real message with our headers put first and its own Message-ID and
/// X-Blaster-Sent removed; line ends made CRLF.
fn from_template(head: &[u8], eml: &[u8]) -> Vec<u8> {
    let eml = crlf(eml);
    let split = find(&eml, b"\r\n\r\n").map_or(eml.len(), |i| i + 2);
    let (headers, body) = eml.split_at(split);
    let mut out = head.to_vec();
    let mut skipping = false;
    for line in headers.split_inclusive(|&b| b == b'\n') {
        let continuation = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        if !continuation {
            let lower = line.to_ascii_lowercase();
            skipping = lower.starts_with(b"message-id:") || lower.starts_with(b"x-blaster-sent:");
        }
        if !skipping {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(body);
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Bare LF → CRLF.
fn crlf(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 32);
    let mut prev = 0u8;
    for &b in input {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

/// Doubles a dot that starts a line (RFC 5321 4.5.2).
fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 8);
    for line in message.split_inclusive(|&b| b == b'\n') {
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
    }
    out
}

/// First position of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Writes `n` as zero-padded decimal filling `dst`.
fn put_digits(dst: &mut [u8], mut n: u64) {
    for d in dst.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Now as an RFC 5322 date in UTC.
fn rfc2822_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    rfc2822(secs)
}

/// An RFC 5322 date for Unix seconds, in UTC (`Tue, 14 Nov 2023 22:13:20 +0000`).
fn rfc2822(secs: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs as i64)
        .ok()
        .and_then(|at| {
            at.format(&time::format_description::well_known::Rfc2822)
                .ok()
        })
        .unwrap_or_else(|| "Thu, 01 Jan 1970 00:00:00 +0000".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::send::config::SizeSpread;

    #[test]
    fn generated_message_has_the_asked_size_and_patched_headers() {
        let config = SendConfig {
            size: SizeSpread::fixed(1024),
            ..SendConfig::default()
        };
        let content = Content::new(&config, 0xabc);
        let class = content.pick(&mut crate::rng::seeded(1));
        assert_eq!(class.raw.bytes.len(), 1024);
        let mut out = Vec::new();
        class.raw.render(42, 1_700_000_000_123_456_789, &mut out);
        let text = String::from_utf8(out).unwrap();
        let id = content.message_id(42);
        assert!(text.starts_with(&format!("Message-ID: {id}\r\n")), "{text}");
        assert!(
            text.contains("\r\nX-Blaster-Sent: 1700000000123456789\r\n"),
            "{text}"
        );
        assert!(class.data.bytes.ends_with(b"\r\n.\r\n"));
    }

    #[test]
    fn template_keeps_its_headers_but_not_its_message_id() {
        let config = SendConfig {
            template: Some(b"Subject: real\nMessage-ID: <old@x>\n\n.dotted\nbody".to_vec()),
            ..SendConfig::default()
        };
        let content = Content::new(&config, 1);
        let class = content.pick(&mut crate::rng::seeded(1));
        let raw = String::from_utf8(class.raw.bytes.clone()).unwrap();
        assert!(!raw.contains("<old@x>"), "{raw}");
        assert!(
            raw.ends_with("Subject: real\r\n\r\n.dotted\r\nbody\r\n"),
            "{raw}"
        );
        let data = String::from_utf8(class.data.bytes.clone()).unwrap();
        assert!(data.ends_with("\r\n..dotted\r\nbody\r\n.\r\n"), "{data}");
    }

    #[test]
    fn dates_are_rfc5322() {
        assert_eq!(rfc2822(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc2822(1_700_000_000), "Tue, 14 Nov 2023 22:13:20 +0000");
    }
}
