//! Reading a server's replies out of received bytes, without I/O: the delivery client's
//! half of the protocol. Bytes go in; whole (possibly multi-line) replies come out, or a
//! reason the peer is not speaking SMTP. Kept apart from the socket so that it can be
//! fuzzed on buffers.

use bytes::{Buf, BytesMut};

/// The longest reply line accepted, and the most lines in one reply: a server that sends
/// more is broken, not slow.
pub const MAX_REPLY_LINE: usize = 4096;
/// See [`MAX_REPLY_LINE`].
pub const MAX_REPLY_LINES: usize = 100;

/// One whole reply: its code and the text of each line (without code and separator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedReply {
    /// The reply code, 200 to 599 (that of the last line).
    pub code: u16,
    /// Each line's text.
    pub lines: Vec<String>,
}

/// Why a peer's bytes are not SMTP replies: the connection cannot be trusted. A value, so
/// that the client's error (and a test) says which limit was crossed without reading text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MalformedReply {
    /// A line longer than [`MAX_REPLY_LINE`].
    #[error("reply line too long")]
    LineTooLong,
    /// More than [`MAX_REPLY_LINES`] lines in one reply.
    #[error("reply has too many lines")]
    TooManyLines,
    /// A line that does not start with a reply code from 200 to 599; its first 80 bytes.
    #[error("not an SMTP reply: {0:?}")]
    NoReplyCode(String),
}

/// Collects the lines of the reply being read, across reads.
#[derive(Debug, Default)]
pub struct ReplyReader {
    lines: Vec<String>,
}

impl ReplyReader {
    /// Takes the next whole reply from the front of `buffer`, consuming its bytes.
    /// `Ok(None)`: more bytes are needed (lines of a reply read so far are kept here).
    /// `Err`: what is wrong with the peer's bytes; the connection cannot be trusted.
    pub fn next_reply(
        &mut self,
        buffer: &mut BytesMut,
    ) -> Result<Option<ParsedReply>, MalformedReply> {
        loop {
            let Some(lf) = buffer.iter().position(|&b| b == b'\n') else {
                if buffer.len() > MAX_REPLY_LINE {
                    return Err(MalformedReply::LineTooLong);
                }
                return Ok(None);
            };
            if lf > MAX_REPLY_LINE {
                return Err(MalformedReply::LineTooLong);
            }
            let end = lf - usize::from(lf >= 1 && buffer[lf - 1] == b'\r');
            let line = &buffer[..end];
            let code: u16 = line
                .get(..3)
                .filter(|c| c.iter().all(u8::is_ascii_digit))
                .map(|c| c.iter().fold(0, |n, d| n * 10 + u16::from(d - b'0')))
                .filter(|c| (200..600).contains(c))
                .ok_or_else(|| {
                    MalformedReply::NoReplyCode(
                        truncate(&String::from_utf8_lossy(line)).to_string(),
                    )
                })?;
            let more = line.get(3) == Some(&b'-');
            // One allocation per line: the text after the code and separator.
            self.lines.push(printable(
                String::from_utf8_lossy(line.get(4..).unwrap_or(b"")).into_owned(),
            ));
            buffer.advance(lf + 1);
            if self.lines.len() > MAX_REPLY_LINES {
                return Err(MalformedReply::TooManyLines);
            }
            if !more {
                let lines = std::mem::take(&mut self.lines);
                return Ok(Some(ParsedReply { code, lines }));
            }
        }
    }
}

/// `text` with each control character (and U+2028, U+2029) replaced by `?`: a next
/// hop's reply text goes into logs, DSNs sent to senders and the queue listing, and no
/// control byte of its choosing may travel on.
fn printable(text: String) -> String {
    use super::text::is_unsafe;
    if text.contains(is_unsafe) {
        text.replace(is_unsafe, "?")
    } else {
        text
    }
}

/// At most 80 bytes of `line`, cut at a character boundary, for error texts.
fn truncate(line: &str) -> &str {
    let mut end = line.len().min(80);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(bytes: &[u8]) -> (Vec<ParsedReply>, Option<MalformedReply>, usize) {
        let mut buffer = BytesMut::from(bytes);
        let mut reader = ReplyReader::default();
        let mut replies = Vec::new();
        loop {
            match reader.next_reply(&mut buffer) {
                Ok(Some(reply)) => replies.push(reply),
                Ok(None) => return (replies, None, buffer.len()),
                Err(e) => return (replies, Some(e), buffer.len()),
            }
        }
    }

    #[test]
    fn control_bytes_in_a_reply_text_do_not_travel_on() {
        let (replies, error, _) = read_all(b"550-5.1.1 \x1b[2Jgone\r\n550 5.1.1 a\x07b\r\n");
        assert_eq!(error, None);
        assert_eq!(replies[0].lines, ["5.1.1 ?[2Jgone", "5.1.1 a?b"]);
    }

    #[test]
    fn multi_line_reply_is_one_reply() {
        let (replies, error, left) =
            read_all(b"250-mx.test Hello\r\n250-PIPELINING\r\n250 SIZE 100\r\n354 go\r\n");
        assert_eq!(error, None);
        assert_eq!(left, 0);
        assert_eq!(replies.len(), 2);
        assert_eq!(replies[0].code, 250);
        assert_eq!(
            replies[0].lines,
            ["mx.test Hello", "PIPELINING", "SIZE 100"]
        );
        assert_eq!(replies[1].code, 354);
    }

    #[test]
    fn a_partial_reply_waits_for_more_bytes() {
        let mut buffer = BytesMut::from(&b"250-first\r\n250 sec"[..]);
        let mut reader = ReplyReader::default();
        assert_eq!(reader.next_reply(&mut buffer), Ok(None));
        buffer.extend_from_slice(b"ond\n");
        let reply = reader.next_reply(&mut buffer).unwrap().unwrap();
        assert_eq!(reply.lines, ["first", "second"]);
    }

    #[test]
    fn garbage_and_floods_are_errors() {
        let garbage = read_all(b"hello\r\n").1.unwrap();
        assert_eq!(garbage, MalformedReply::NoReplyCode("hello".into()));
        assert_eq!(garbage.to_string(), r#"not an SMTP reply: "hello""#);
        assert!(read_all(b"600 no\r\n").1.is_some());
        assert_eq!(
            read_all(&vec![b'2'; MAX_REPLY_LINE + 1]).1,
            Some(MalformedReply::LineTooLong)
        );
        let many = "250-x\r\n".repeat(MAX_REPLY_LINES + 1);
        let flood = read_all(many.as_bytes()).1.unwrap();
        assert_eq!(flood, MalformedReply::TooManyLines);
        assert_eq!(flood.to_string(), "reply has too many lines");
    }
}
