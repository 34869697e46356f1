//! A session's transcript, sans I/O: every line both ways with its time since the session
//! began (`+0.012 C: MAIL FROM:<a@b>`, `+0.013 S: 250 2.1.0 Ok`), the message data itself
//! left out (`C: [2048 octets of message data]`), AUTH secrets redacted (the initial
//! response of `AUTH PLAIN …`, and every answer to a `334` challenge), control characters
//! escaped, and the whole bounded. The Session feeds it what it read and wrote; time comes
//! in as a parameter.

use std::fmt::Write as _;
use std::time::SystemTime;

use crate::core::id::QueueId;

/// Octets a transcript keeps; past it one line says it was cut.
pub const MAX_TRANSCRIPT: usize = 256 * 1024;

/// The longest client line kept whole (a command line is at most 512 octets; a peer that
/// sends more is cut here, not buffered).
const MAX_LINE: usize = 4096;

/// One session's transcript.
#[derive(Debug)]
pub struct Transcript {
    started: SystemTime,
    text: String,
    cut: bool,
    /// A client line not ended yet.
    partial: Vec<u8>,
    /// Inside DATA: octets of message data since the 354.
    data: Option<usize>,
    /// Octets of a BDAT chunk still to come.
    chunk_left: usize,
    /// The last server reply was a 334 challenge: the next client line is a secret.
    secret_next: bool,
    /// The messages accepted in the session, each of which gets the transcript.
    pub queue_ids: Vec<QueueId>,
}

impl Transcript {
    /// A transcript of a session with `peer` that began at `now`.
    pub fn new(peer: &str, now: SystemTime) -> Self {
        let mut transcript = Transcript {
            started: now,
            text: String::new(),
            cut: false,
            partial: Vec::new(),
            data: None,
            chunk_left: 0,
            secret_next: false,
            queue_ids: Vec::new(),
        };
        let stamp = crate::protocol::datetime::rfc5322(now);
        transcript.push_raw(&format!("session with {peer}, {stamp}\n"));
        transcript
    }

    /// What the server wrote at `now`.
    pub fn server(&mut self, bytes: &[u8], now: SystemTime) {
        for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.starts_with(b"354") {
                self.data = Some(0);
            }
            self.secret_next = line.starts_with(b"334");
            self.line(now, "S", line);
        }
    }

    /// What the client wrote at `now`.
    pub fn client(&mut self, mut bytes: &[u8], now: SystemTime) {
        while !bytes.is_empty() {
            if self.chunk_left > 0 {
                let taken = self.chunk_left.min(bytes.len());
                self.chunk_left -= taken;
                bytes = &bytes[taken..];
                continue;
            }
            let Some(end) = bytes.iter().position(|&b| b == b'\n') else {
                let room = MAX_LINE.saturating_sub(self.partial.len());
                self.partial
                    .extend_from_slice(&bytes[..bytes.len().min(room)]);
                return;
            };
            let room = MAX_LINE.saturating_sub(self.partial.len());
            self.partial.extend_from_slice(&bytes[..end.min(room)]);
            bytes = &bytes[end + 1..];
            let line = std::mem::take(&mut self.partial);
            let line = line.strip_suffix(b"\r").unwrap_or(&line).to_vec();
            self.client_line(&line, now);
        }
    }

    fn client_line(&mut self, line: &[u8], now: SystemTime) {
        if let Some(octets) = self.data.as_mut() {
            if line == b"." {
                let octets = *octets;
                self.data = None;
                self.line(
                    now,
                    "C",
                    format!("[{octets} octets of message data]").as_bytes(),
                );
                self.line(now, "C", b".");
            } else {
                *octets += line.len() + 2;
            }
            return;
        }
        if std::mem::take(&mut self.secret_next) {
            self.line(now, "C", b"*** (an AUTH response, not kept)");
            return;
        }
        let upper = line.to_ascii_uppercase();
        if upper.starts_with(b"AUTH ") {
            let words: Vec<&[u8]> = line
                .split(|&b| b == b' ')
                .filter(|w| !w.is_empty())
                .collect();
            let mut kept = b"AUTH ".to_vec();
            kept.extend_from_slice(words.get(1).copied().unwrap_or_default());
            if words.len() > 2 {
                kept.extend_from_slice(b" ***");
            }
            self.line(now, "C", &kept);
            return;
        }
        if upper.starts_with(b"BDAT ") {
            let size = std::str::from_utf8(line)
                .ok()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(0);
            self.chunk_left = size;
            self.line(now, "C", line);
            self.line(
                now,
                "C",
                format!("[{size} octets of message data]").as_bytes(),
            );
            return;
        }
        self.line(now, "C", line);
    }

    fn line(&mut self, now: SystemTime, who: &str, line: &[u8]) {
        let elapsed = now.duration_since(self.started).unwrap_or_default();
        let mut text = format!("+{:.3} {who}: ", elapsed.as_secs_f64());
        for c in String::from_utf8_lossy(line).chars() {
            if c.is_control() {
                let _ = write!(text, "\\u{{{:04x}}}", c as u32);
            } else {
                text.push(c);
            }
        }
        text.push('\n');
        self.push_raw(&text);
    }

    fn push_raw(&mut self, text: &str) {
        if self.cut {
            return;
        }
        if self.text.len() + text.len() > MAX_TRANSCRIPT {
            self.cut = true;
            self.text
                .push_str("[transcript cut here: it reached 256 KiB]\n");
            return;
        }
        self.text.push_str(text);
    }

    /// The transcript so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The transcript so far, taken: what comes next starts a new text (a connection
    /// that carries one message after another gives each its part).
    pub fn take(&mut self) -> String {
        self.cut = false;
        std::mem::take(&mut self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn lines_both_ways_without_data_or_secrets() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let later = t0 + Duration::from_millis(12);
        let mut t = Transcript::new("192.0.2.7:4000", t0);
        t.server(b"220 mx ESMTP\r\n", t0);
        t.client(b"EHLO c\r\nAUTH PLAIN AGJvYgBzM2NyZXQ=\r\n", later);
        t.server(b"235 2.7.0 Authenticated\r\n", later);
        t.client(b"AUTH LOGIN\r\n", later);
        t.server(b"334 VXNlcm5hbWU6\r\n", later);
        t.client(b"Ym9i\r\n", later);
        t.server(b"334 UGFzc3dvcmQ6\r\n", later);
        t.client(b"czNjcmV0\r\nMAIL FROM:<a@b>\r\nDA", later);
        t.client(b"TA\r\n", later);
        t.server(b"354 go ahead\r\n", later);
        t.client(
            b"Subject: x\r\n\r\nsecret body\r\n.\r\nBDAT 5 LAST\r\nhel",
            later,
        );
        t.client(b"lo\x1b[2J\r\nQUIT\r\n", later);
        let text = t.text();
        assert!(text.starts_with("session with 192.0.2.7:4000, "), "{text}");
        assert!(text.contains("+0.000 S: 220 mx ESMTP\n"), "{text}");
        assert!(text.contains("+0.012 C: AUTH PLAIN ***\n"), "{text}");
        assert!(text.contains("C: AUTH LOGIN\n"), "{text}");
        assert_eq!(
            text.matches("*** (an AUTH response, not kept)").count(),
            2,
            "{text}"
        );
        assert!(
            !text.contains("czNjcmV0")
                && !text.contains("AGJvYgBzM2NyZXQ")
                && !text.contains("Ym9i"),
            "{text}"
        );
        assert!(text.contains("C: DATA\n"), "{text}");
        assert!(text.contains("C: [27 octets of message data]\n"), "{text}");
        assert!(!text.contains("secret body"), "{text}");
        assert!(
            text.contains("C: BDAT 5 LAST\n") && text.contains("C: [5 octets of message data]\n"),
            "{text}"
        );
        // The chunk's bytes are skipped, then the next command: the escape is on the
        // line after the chunk, escaped.
        assert!(text.contains("C: \\u{001b}[2J\n"), "{text}");
        assert!(text.contains("C: QUIT\n"), "{text}");
    }

    #[test]
    fn a_transcript_is_bounded() {
        let t0 = SystemTime::UNIX_EPOCH;
        let mut t = Transcript::new("p", t0);
        for _ in 0..100_000 {
            t.client(b"NOOP\r\n", t0);
        }
        assert!(t.text().len() <= MAX_TRANSCRIPT + 100);
        assert!(
            t.text()
                .ends_with("[transcript cut here: it reached 256 KiB]\n")
        );
    }
}
