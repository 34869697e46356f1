//! The DATA receiver: takes message bytes off the input until CRLF.CRLF, undoing dot
//! stuffing, without needing whole lines to be in the buffer.
//!
//! Strict on purpose: only `.` alone on a line after a CRLF ends the message, so a bare
//! LF before the dot (a client bug) does not end it early and truncate the message.

use bytes::{Buf, BytesMut};

use super::body::Body;

/// Incremental state of one DATA transfer.
#[derive(Debug)]
pub(crate) struct DataReceiver {
    /// The next byte starts a line (so a leading dot is special).
    at_line_start: bool,
    /// The bytes so far end with CRLF (or nothing came yet: DATA's own CRLF counts).
    ends_crlf: bool,
    /// The last byte taken was CR, for a CRLF split across reads.
    pending_cr: bool,
}

impl DataReceiver {
    /// A receiver positioned right after the DATA command's CRLF.
    pub(crate) fn new() -> Self {
        Self {
            at_line_start: true,
            ends_crlf: true,
            pending_cr: false,
        }
    }

    /// Moves message bytes from `input` into `body`; true once the end was taken.
    pub(crate) fn feed(&mut self, input: &mut BytesMut, body: &mut Body) -> bool {
        loop {
            if input.is_empty() {
                return false;
            }
            if self.at_line_start && input[0] == b'.' {
                if input.len() < 3 && b".\r\n".starts_with(input) {
                    return false;
                }
                if self.ends_crlf && input.starts_with(b".\r\n") {
                    input.advance(3);
                    return true;
                }
                input.advance(1);
                self.at_line_start = false;
                continue;
            }
            match input.iter().position(|&b| b == b'\n') {
                Some(nl) => {
                    self.ends_crlf = if nl > 0 {
                        input[nl - 1] == b'\r'
                    } else {
                        self.pending_cr
                    };
                    body.append(&input[..=nl]);
                    input.advance(nl + 1);
                    self.at_line_start = true;
                    self.pending_cr = false;
                }
                None => {
                    self.pending_cr = input.last() == Some(&b'\r');
                    self.ends_crlf = false;
                    self.at_line_start = false;
                    body.append(input);
                    input.clear();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receive(chunks: &[&[u8]]) -> (bool, Vec<u8>, Vec<u8>) {
        let mut rx = DataReceiver::new();
        let mut body = Body::new(usize::MAX, usize::MAX);
        let mut input = BytesMut::new();
        let mut done = false;
        for chunk in chunks {
            input.extend_from_slice(chunk);
            if rx.feed(&mut input, &mut body) {
                done = true;
                break;
            }
        }
        (done, body.bytes().to_vec(), input.to_vec())
    }

    #[test]
    fn ends_on_crlf_dot_crlf_and_keeps_the_rest() {
        let (done, body, rest) = receive(&[b"Subject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n"]);
        assert!(done);
        assert_eq!(body, b"Subject: x\r\n\r\nhi\r\n");
        assert_eq!(rest, b"QUIT\r\n");
    }

    #[test]
    fn empty_message_ends_at_once() {
        assert_eq!(receive(&[b".\r\n"]), (true, vec![], vec![]));
    }

    #[test]
    fn unstuffs_leading_dots() {
        let (done, body, _) = receive(&[b"..a\r\n...\r\n.\r\n"]);
        assert!(done);
        assert_eq!(body, b".a\r\n..\r\n");
    }

    #[test]
    fn terminator_split_across_reads() {
        let (done, body, _) = receive(&[b"a\r", b"\n", b".", b"\r", b"\n"]);
        assert!(done);
        assert_eq!(body, b"a\r\n");
    }

    #[test]
    fn bare_lf_dot_does_not_end() {
        let (done, body, _) = receive(&[b"a\n.\r\nb\r\n"]);
        assert!(!done);
        assert_eq!(body, b"a\n\r\nb\r\n");
    }
}
