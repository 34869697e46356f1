//! Incremental receivers for message content: DATA (dot-stuffed, ended by CRLF.CRLF) and
//! BDAT chunks (RFC 3030). They take bytes as they arrive and never look at a clock.
//!
//! Line endings are strict, as the SMTP-smuggling defence needs: a message ends only on
//! `<CRLF>.<CRLF>`; a bare LF or bare CR anywhere taints the message, which is then
//! refused whole when it ends (the receiver keeps reading to the real end so the
//! connection stays in step with the client).

use bytes::{Buf, BytesMut};

use super::reply::Reply;

/// The most a receiver allocates ahead of bytes actually received.
pub const MAX_PREALLOCATION: usize = 64 * 1024;

/// What went wrong with a message body; the first problem found is the one reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyProblem {
    /// A bare LF or CR.
    BareLineEnding,
    /// A NUL octet: never legal in mail (RFC 5322 §2.3), and a classic way to make two
    /// programs read one message differently.
    Nul,
    /// A line longer than the limit.
    LineTooLong,
    /// More bytes than the size limit.
    TooBig,
}

impl BodyProblem {
    /// The reply that refuses the message.
    pub fn reply(self, max_size: usize) -> Reply {
        match self {
            BodyProblem::BareLineEnding => Reply::bare_line_ending_data(),
            BodyProblem::Nul => Reply::nul_in_data(),
            BodyProblem::LineTooLong => Reply::line_too_long(),
            BodyProblem::TooBig => Reply::message_too_big(max_size),
        }
    }
}

/// Limits a receiver enforces.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Maximum message size in octets (after dot-unstuffing).
    pub max_size: usize,
    /// Maximum line length in octets, without the CRLF.
    pub max_line: usize,
}

/// Receives a DATA body.
#[derive(Debug)]
pub struct DataReceiver {
    limits: BodyLimits,
    body: Vec<u8>,
    problem: Option<BodyProblem>,
    /// Whether the previous line ended in a proper CRLF (the DATA command's own CRLF
    /// counts): only then can a "." line end the message.
    after_crlf: bool,
    /// Inside an overlong line whose bytes are being skipped up to its LF.
    skipping_long_line: bool,
}

/// The outcome of a finished body.
pub type BodyResult = Result<Vec<u8>, BodyProblem>;

impl DataReceiver {
    /// Starts a body with the given limits; `capacity_hint` (the client's SIZE=) sizes the
    /// buffer up front, but never past [`MAX_PREALLOCATION`]: a client's word is not
    /// memory it has sent.
    pub fn new(limits: BodyLimits, capacity_hint: usize) -> Self {
        DataReceiver {
            limits,
            body: Vec::with_capacity(capacity_hint.clamp(1024, MAX_PREALLOCATION)),
            problem: None,
            after_crlf: true,
            skipping_long_line: false,
        }
    }

    fn flag(&mut self, problem: BodyProblem) {
        self.problem.get_or_insert(problem);
    }

    /// Consumes complete lines from `input`. Returns `Some` once the end marker has been
    /// read; bytes after it stay in `input` (pipelined commands).
    pub fn feed(&mut self, input: &mut BytesMut) -> Option<BodyResult> {
        loop {
            let Some(lf) = input.iter().position(|&b| b == b'\n') else {
                if input.len() > self.limits.max_line + 2 {
                    // An overlong line without its end yet: drop what we have, keep going.
                    self.flag(BodyProblem::LineTooLong);
                    self.skipping_long_line = true;
                    let keep = usize::from(input.last() == Some(&b'\r'));
                    input.advance(input.len() - keep);
                }
                return None;
            };
            let line = &input[..=lf];
            let crlf = lf > 0 && line[lf - 1] == b'\r';
            let content_len = if crlf { lf - 1 } else { lf };
            if lf > self.limits.max_line + 2 {
                // The verdict a line gets when its start alone is too long (it arrived in
                // pieces): too long, whatever else it holds.
                self.flag(BodyProblem::LineTooLong);
                self.skipping_long_line = true;
            }
            if self.skipping_long_line {
                self.skipping_long_line = false;
                if !crlf {
                    self.flag(BodyProblem::BareLineEnding);
                }
                self.after_crlf = crlf;
                input.advance(lf + 1);
                continue;
            }
            if self.after_crlf && crlf && content_len == 1 && line[0] == b'.' {
                input.advance(lf + 1);
                return Some(match self.problem {
                    Some(problem) => Err(problem),
                    None => Ok(std::mem::take(&mut self.body)),
                });
            }
            if !crlf || line[..content_len].contains(&b'\r') {
                self.flag(BodyProblem::BareLineEnding);
            }
            if line[..content_len].contains(&0) {
                self.flag(BodyProblem::Nul);
            }
            if content_len > self.limits.max_line {
                self.flag(BodyProblem::LineTooLong);
            }
            self.after_crlf = crlf;
            let start = usize::from(line[0] == b'.');
            if self.problem.is_none() {
                if self.body.len() + (lf + 1 - start) > self.limits.max_size {
                    self.flag(BodyProblem::TooBig);
                    self.body = Vec::new();
                } else {
                    self.body.extend_from_slice(&line[start..]);
                }
            }
            input.advance(lf + 1);
        }
    }
}

/// Receives a message sent in BDAT chunks; each chunk is an exact number of octets.
#[derive(Debug)]
pub struct BdatReceiver {
    limits: BodyLimits,
    body: Vec<u8>,
    too_big: bool,
    /// Octets of the current chunk still to read.
    remaining: usize,
}

impl BdatReceiver {
    /// Starts a BDAT message.
    pub fn new(limits: BodyLimits) -> Self {
        BdatReceiver {
            limits,
            body: Vec::new(),
            too_big: false,
            remaining: 0,
        }
    }

    /// Begins a chunk of `size` octets.
    pub fn begin_chunk(&mut self, size: usize) {
        self.remaining = size;
        if self.body.len().saturating_add(size) > self.limits.max_size {
            self.too_big = true;
            self.body = Vec::new();
        } else {
            self.body.reserve(size.min(MAX_PREALLOCATION));
        }
    }

    /// Octets received so far.
    pub fn len(&self) -> usize {
        self.body.len()
    }

    /// Whether nothing has been received yet.
    pub fn is_empty(&self) -> bool {
        self.body.is_empty()
    }

    /// Consumes chunk bytes; returns true when the current chunk is complete.
    pub fn feed(&mut self, input: &mut BytesMut) -> bool {
        let n = self.remaining.min(input.len());
        if !self.too_big {
            self.body.extend_from_slice(&input[..n]);
        }
        input.advance(n);
        self.remaining -= n;
        self.remaining == 0
    }

    /// Ends the message after the LAST chunk, checking line endings and line lengths of
    /// the whole body (a CR may end one chunk and its LF start the next).
    pub fn finish(self) -> BodyResult {
        if self.too_big {
            return Err(BodyProblem::TooBig);
        }
        check_lines(&self.body, self.limits.max_line)?;
        let mut body = self.body;
        if !body.is_empty() && !body.ends_with(b"\r\n") {
            body.extend_from_slice(b"\r\n");
        }
        Ok(body)
    }
}

/// Checks that every line of `body` ends in CRLF, has no bare CR, and fits `max_line`.
fn check_lines(body: &[u8], max_line: usize) -> Result<(), BodyProblem> {
    let mut line_start = 0;
    let mut too_long = false;
    for (i, &b) in body.iter().enumerate() {
        match b {
            b'\n' => {
                if i == 0 || body[i - 1] != b'\r' {
                    return Err(BodyProblem::BareLineEnding);
                }
                too_long |= i - 1 - line_start > max_line;
                line_start = i + 1;
            }
            b'\r' if body.get(i + 1) != Some(&b'\n') => return Err(BodyProblem::BareLineEnding),
            0 => return Err(BodyProblem::Nul),
            _ => {}
        }
    }
    too_long |= body.len() - line_start > max_line;
    if too_long {
        Err(BodyProblem::LineTooLong)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: BodyLimits = BodyLimits {
        max_size: 1 << 20,
        max_line: 1000,
    };

    fn run(input: &[u8]) -> (Option<BodyResult>, Vec<u8>) {
        let mut rx = DataReceiver::new(LIMITS, 0);
        let mut buf = BytesMut::from(input);
        let result = rx.feed(&mut buf);
        (result, buf.to_vec())
    }

    #[test]
    fn ends_on_crlf_dot_crlf_and_unstuffs() {
        let (result, rest) = run(b"Subject: x\r\n\r\n..leading dot\r\n.\r\nQUIT\r\n");
        assert_eq!(
            result,
            Some(Ok(b"Subject: x\r\n\r\n.leading dot\r\n".to_vec()))
        );
        assert_eq!(rest, b"QUIT\r\n");
    }

    #[test]
    fn smuggling_sequences_never_end_the_message() {
        for seq in [
            &b"a\n.\nb\r\n"[..],
            b"a\r.\rb\r\n",
            b"a\n.\r\nb\r\n",
            b"a\r\n.\nb\r\n",
            b"a\r\n.\rb\r\n",
        ] {
            let mut input = seq.to_vec();
            input.extend_from_slice(b"MAIL FROM:<x@y.test>\r\n");
            let (result, _) = run(&input);
            assert_eq!(
                result,
                None,
                "{:?} ended the message",
                String::from_utf8_lossy(seq)
            );
            input.extend_from_slice(b".\r\n");
            let (result, _) = run(&input);
            assert_eq!(
                result,
                Some(Err(BodyProblem::BareLineEnding)),
                "{:?}",
                String::from_utf8_lossy(seq)
            );
        }
    }

    #[test]
    fn nul_in_data_is_refused_at_the_end() {
        let (result, rest) = run(b"Subject: x\r\n\r\na\0b\r\n.\r\nQUIT\r\n");
        assert_eq!(result, Some(Err(BodyProblem::Nul)));
        assert_eq!(rest, b"QUIT\r\n");
        let mut rx = BdatReceiver::new(LIMITS);
        rx.begin_chunk(5);
        assert!(rx.feed(&mut BytesMut::from(&b"a\0b\r\n"[..])));
        assert_eq!(rx.finish(), Err(BodyProblem::Nul));
    }

    #[test]
    fn byte_at_a_time_gives_the_same_body() {
        let msg = b"a\r\n..b\r\n\r\n.c\r\n.\r\n";
        let mut rx = DataReceiver::new(LIMITS, 0);
        let mut buf = BytesMut::new();
        let mut result = None;
        for &b in msg {
            buf.extend_from_slice(&[b]);
            if let Some(r) = rx.feed(&mut buf) {
                result = Some(r);
            }
        }
        assert_eq!(result, Some(Ok(b"a\r\n.b\r\n\r\nc\r\n".to_vec())));
    }

    #[test]
    fn oversize_is_refused_at_the_end() {
        let mut rx = DataReceiver::new(
            BodyLimits {
                max_size: 10,
                max_line: 1000,
            },
            0,
        );
        let mut buf = BytesMut::from(&b"0123456789\r\nabc\r\n.\r\n"[..]);
        assert_eq!(rx.feed(&mut buf), Some(Err(BodyProblem::TooBig)));
    }

    #[test]
    fn long_line_is_refused_even_split_across_reads() {
        let mut rx = DataReceiver::new(
            BodyLimits {
                max_size: 1 << 20,
                max_line: 10,
            },
            0,
        );
        let mut buf = BytesMut::from(&[b'x'; 50][..]);
        assert_eq!(rx.feed(&mut buf), None);
        assert!(buf.len() <= 1);
        buf.extend_from_slice(b"xx\r\n.\r\n");
        assert_eq!(rx.feed(&mut buf), Some(Err(BodyProblem::LineTooLong)));
    }

    #[test]
    fn bdat_huge_chunk_size_is_too_big_not_a_panic() {
        let mut rx = BdatReceiver::new(LIMITS);
        rx.begin_chunk(10);
        assert!(rx.feed(&mut BytesMut::from(&b"0123456789"[..])));
        rx.begin_chunk(usize::MAX);
        assert!(!rx.feed(&mut BytesMut::from(&b"abc"[..])));
        assert_eq!(rx.finish(), Err(BodyProblem::TooBig));
    }

    #[test]
    fn bdat_checks_line_endings_across_chunks() {
        let mut rx = BdatReceiver::new(LIMITS);
        rx.begin_chunk(3);
        assert!(rx.feed(&mut BytesMut::from(&b"ab\r"[..])));
        rx.begin_chunk(4);
        assert!(rx.feed(&mut BytesMut::from(&b"\ncd\n"[..])));
        assert_eq!(rx.finish(), Err(BodyProblem::BareLineEnding));
    }
}
