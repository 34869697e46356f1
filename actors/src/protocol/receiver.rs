//! Incremental receivers for message content: DATA (dot-stuffed, ended by CRLF.CRLF) and
//! BDAT chunks (RFC 3030). They take bytes as they arrive and never look at a clock.
//!
//! Line endings are strict, as the SMTP-smuggling defence needs: a message ends only on
//! `<CRLF>.<CRLF>`; a bare LF or bare CR anywhere taints the message, which is then
//! refused whole when it ends (the receiver keeps reading to the real end so the
//! connection stays in step with the client).

use std::sync::Arc;

use bytes::{Buf, BytesMut};

use super::body_sink::{BodySinks, IncomingBody};
use super::reply::Reply;
use super::spool_room::SpoolRoom;
use crate::core::disk_space::Claim;

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
    /// The body file could not be written (a full disk): nothing of the message is kept.
    Storage,
}

impl BodyProblem {
    /// The reply that refuses the message.
    pub fn reply(self, max_size: usize) -> Reply {
        match self {
            BodyProblem::BareLineEnding => Reply::bare_line_ending_data(),
            BodyProblem::Nul => Reply::nul_in_data(),
            BodyProblem::LineTooLong => Reply::line_too_long(),
            BodyProblem::TooBig => Reply::message_too_big(max_size),
            BodyProblem::Storage => Reply::insufficient_storage(),
        }
    }
}

/// Limits a receiver enforces, and where a large body goes.
#[derive(Debug, Clone)]
pub struct BodyLimits {
    /// Maximum message size in octets (after dot-unstuffing).
    pub max_size: usize,
    /// Maximum line length in octets, without the CRLF.
    pub max_line: usize,
    /// Where a body past a size goes instead of memory (`None`: memory only).
    pub spill: Option<Spill>,
}

/// Bodies past `threshold` octets are written to a file while they arrive, so one
/// message holds at most about `threshold` octets of memory however large it is.
#[derive(Debug, Clone)]
pub struct Spill {
    /// Where the files go.
    pub files: Arc<dyn BodySinks>,
    /// Octets kept in memory before the body moves to a file.
    pub threshold: usize,
    /// The free-space reserve the file's octets are claimed against as they arrive.
    pub room: Arc<dyn SpoolRoom>,
}

/// A body file's claim grows by this much at a time.
const CLAIM_STEP: u64 = 1024 * 1024;

/// Octets of a spilled body kept in memory: its start, where the header section is
/// (for counting Received: headers).
const SAMPLE: usize = 64 * 1024;

/// A body as received: in memory, or in a file (not yet fsynced) with its first octets.
#[derive(Debug)]
pub enum ReceivedBody {
    /// The whole body.
    Memory(Vec<u8>),
    /// The body in a file; `start` holds its first octets (up to 64 KiB).
    File {
        /// The start of the body.
        start: Vec<u8>,
        /// The file.
        file: IncomingBody,
    },
}

impl ReceivedBody {
    /// The start of the body: all of it in memory, or the first 64 KiB of a file.
    pub fn start(&self) -> &[u8] {
        match self {
            ReceivedBody::Memory(body) => body,
            ReceivedBody::File { start, .. } => start,
        }
    }
}

impl PartialEq for ReceivedBody {
    /// Bodies in memory compare by content; a file body equals nothing (tests compare
    /// bodies in memory only).
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (ReceivedBody::Memory(a), ReceivedBody::Memory(b)) => a == b,
            _ => false,
        }
    }
}

/// Where a body's octets go while it arrives: memory, then past the spill threshold a
/// file (memory keeps only the start).
#[derive(Debug)]
struct BodyBuffer {
    memory: Vec<u8>,
    file: Option<IncomingBody>,
    /// The file's octets, claimed against the free-space reserve before they are
    /// written: a body that would reach into it is refused with 452 4.3.1.
    claim: Option<Claim>,
    spill: Option<Spill>,
    len: usize,
    /// The last two octets, to know whether the body ends with CRLF.
    tail: [u8; 2],
}

impl BodyBuffer {
    fn new(spill: Option<Spill>, capacity: usize) -> Self {
        BodyBuffer {
            memory: Vec::with_capacity(capacity),
            file: None,
            claim: None,
            spill,
            len: 0,
            tail: [0; 2],
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    fn ends_with_crlf(&self) -> bool {
        self.len >= 2 && self.tail == *b"\r\n"
    }

    /// Appends `bytes`; a write error of the body file is [`BodyProblem::Storage`].
    fn extend(&mut self, bytes: &[u8]) -> Result<(), BodyProblem> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.len += bytes.len();
        self.tail = match bytes {
            [.., a, b] => [*a, *b],
            [b] => [self.tail[1], *b],
            [] => self.tail,
        };
        if let Some(file) = &mut self.file {
            let len = self.len as u64;
            if let Some(claim) = &mut self.claim
                && len > claim.bytes()
                && !claim.grow_to(len + CLAIM_STEP)
            {
                return Err(BodyProblem::Storage);
            }
            return file.write(bytes).map_err(|_| BodyProblem::Storage);
        }
        match &self.spill {
            Some(spill) if self.memory.len() + bytes.len() > spill.threshold => {
                let claim = spill
                    .room
                    .try_claim(self.len as u64 + CLAIM_STEP)
                    .ok_or(BodyProblem::Storage)?;
                self.claim = Some(claim.on_disk());
                let mut file = spill
                    .files
                    .create_sink()
                    .map_err(|_| BodyProblem::Storage)?;
                file.write(&self.memory).map_err(|_| BodyProblem::Storage)?;
                file.write(bytes).map_err(|_| BodyProblem::Storage)?;
                self.file = Some(file);
                // Keep only the start, and give the rest of the buffer back.
                let keep = SAMPLE.saturating_sub(self.memory.len()).min(bytes.len());
                self.memory.extend_from_slice(&bytes[..keep]);
                self.memory.truncate(SAMPLE);
                self.memory.shrink_to_fit();
                Ok(())
            }
            _ => {
                self.memory.extend_from_slice(bytes);
                Ok(())
            }
        }
    }

    /// Drops what was received (a refused message); a body file is deleted.
    fn discard(&mut self) {
        self.memory = Vec::new();
        self.file = None;
        self.claim = None;
    }

    fn finish(self) -> ReceivedBody {
        match self.file {
            Some(file) => ReceivedBody::File {
                start: self.memory,
                file,
            },
            None => ReceivedBody::Memory(self.memory),
        }
    }
}

/// Receives a DATA body.
#[derive(Debug)]
pub struct DataReceiver {
    limits: BodyLimits,
    body: BodyBuffer,
    problem: Option<BodyProblem>,
    /// Whether the previous line ended in a proper CRLF (the DATA command's own CRLF
    /// counts): only then can a "." line end the message.
    after_crlf: bool,
    /// Inside an overlong line whose bytes are being skipped up to its LF.
    skipping_long_line: bool,
}

/// The outcome of a finished body.
pub type BodyResult = Result<ReceivedBody, BodyProblem>;

impl DataReceiver {
    /// Starts a body with the given limits; `capacity_hint` (the client's SIZE=) sizes the
    /// buffer up front, but never past [`MAX_PREALLOCATION`]: a client's word is not
    /// memory it has sent.
    pub fn new(limits: BodyLimits, capacity_hint: usize) -> Self {
        let capacity = capacity_hint.clamp(1024, MAX_PREALLOCATION);
        DataReceiver {
            body: BodyBuffer::new(limits.spill.clone(), capacity),
            limits,
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
            let Some(lf) = memchr::memchr(b'\n', input) else {
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
                let body = std::mem::replace(&mut self.body, BodyBuffer::new(None, 0));
                return Some(match self.problem {
                    Some(problem) => Err(problem),
                    None => Ok(body.finish()),
                });
            }
            // One pass for both (each is rare); then which of them it was.
            let content = &line[..content_len];
            let (cr, nul) = match memchr::memchr2(b'\r', 0, content) {
                Some(at) => (content[at..].contains(&b'\r'), content[at..].contains(&0)),
                None => (false, false),
            };
            if !crlf || cr {
                self.flag(BodyProblem::BareLineEnding);
            }
            if nul {
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
                    self.body.discard();
                } else if let Err(problem) = self.body.extend(&line[start..]) {
                    self.flag(problem);
                    self.body.discard();
                }
            } else {
                self.body.discard();
            }
            input.advance(lf + 1);
        }
    }
}

/// Receives a message sent in BDAT chunks; each chunk is an exact number of octets.
/// Line endings and lengths are checked as the octets arrive (a CR may end one chunk and
/// its LF start the next), so a body written to a file is never read back to check it.
#[derive(Debug)]
pub struct BdatReceiver {
    limits: BodyLimits,
    body: BodyBuffer,
    problem: Option<BodyProblem>,
    /// Octets of the current chunk still to read.
    remaining: usize,
    lines: LineCheck,
}

impl BdatReceiver {
    /// Starts a BDAT message.
    pub fn new(limits: BodyLimits) -> Self {
        BdatReceiver {
            body: BodyBuffer::new(limits.spill.clone(), 0),
            limits,
            problem: None,
            remaining: 0,
            lines: LineCheck::default(),
        }
    }

    /// Begins a chunk of `size` octets.
    pub fn begin_chunk(&mut self, size: usize) {
        self.remaining = size;
        if self.body.len().saturating_add(size) > self.limits.max_size {
            self.problem.get_or_insert(BodyProblem::TooBig);
            self.body.discard();
        } else if self.body.file.is_none() {
            let room = self.body.memory.capacity() - self.body.memory.len();
            self.body
                .memory
                .reserve(size.min(MAX_PREALLOCATION).saturating_sub(room));
        }
    }

    /// Octets received so far.
    pub fn len(&self) -> usize {
        self.body.len()
    }

    /// Whether nothing has been received yet.
    pub fn is_empty(&self) -> bool {
        self.body.len() == 0
    }

    /// Consumes chunk bytes; returns true when the current chunk is complete.
    pub fn feed(&mut self, input: &mut BytesMut) -> bool {
        let n = self.remaining.min(input.len());
        let bytes = &input[..n];
        if self.problem.is_none() {
            self.lines.check(bytes, self.limits.max_line);
            if let Err(problem) = self.body.extend(bytes) {
                self.problem = Some(problem);
                self.body.discard();
            }
        }
        input.advance(n);
        self.remaining -= n;
        self.remaining == 0
    }

    /// Ends the message after the LAST chunk.
    pub fn finish(mut self) -> BodyResult {
        if let Some(problem) = self.problem {
            return Err(problem);
        }
        self.lines.finish(self.limits.max_line)?;
        if self.body.len() > 0 && !self.body.ends_with_crlf() {
            self.body.extend(b"\r\n")?;
        }
        Ok(self.body.finish())
    }
}

/// Line rules checked octet by octet across chunks: every line ends in CRLF, no bare
/// CR, no NUL, none longer than the limit. The first problem is kept, except that a
/// line too long is reported only if nothing worse is found.
#[derive(Debug, Default)]
struct LineCheck {
    /// Octets of the current line so far (without CR).
    line_len: usize,
    /// The previous octet was a CR.
    after_cr: bool,
    too_long: bool,
    problem: Option<BodyProblem>,
}

impl LineCheck {
    fn check(&mut self, bytes: &[u8], max_line: usize) {
        if self.problem.is_some() {
            return;
        }
        for &b in bytes {
            if self.after_cr && b != b'\n' {
                self.problem = Some(BodyProblem::BareLineEnding);
                return;
            }
            match b {
                b'\n' => {
                    if !self.after_cr {
                        self.problem = Some(BodyProblem::BareLineEnding);
                        return;
                    }
                    self.too_long |= self.line_len > max_line;
                    self.line_len = 0;
                    self.after_cr = false;
                }
                b'\r' => self.after_cr = true,
                0 => {
                    self.problem = Some(BodyProblem::Nul);
                    return;
                }
                _ => self.line_len += 1,
            }
        }
    }

    fn finish(&self, max_line: usize) -> Result<(), BodyProblem> {
        if let Some(problem) = self.problem {
            return Err(problem);
        }
        if self.after_cr {
            return Err(BodyProblem::BareLineEnding);
        }
        if self.too_long || self.line_len > max_line {
            return Err(BodyProblem::LineTooLong);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: BodyLimits = BodyLimits {
        max_size: 1 << 20,
        max_line: 1000,
        spill: None,
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
            Some(Ok(ReceivedBody::Memory(
                b"Subject: x\r\n\r\n.leading dot\r\n".to_vec()
            )))
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
        assert_eq!(
            result,
            Some(Ok(ReceivedBody::Memory(b"a\r\n.b\r\n\r\nc\r\n".to_vec())))
        );
    }

    #[test]
    fn oversize_is_refused_at_the_end() {
        let mut rx = DataReceiver::new(
            BodyLimits {
                max_size: 10,
                max_line: 1000,
                spill: None,
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
                spill: None,
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
