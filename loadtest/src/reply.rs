//! SMTP replies as read from the wire: find one complete (possibly multi-line) reply in
//! a buffer without copying it.
//!
//! The client reads whatever a pipelined batch produced into one buffer and takes replies
//! off its front; anything that is not a well-formed reply is a typed error, so a
//! misbehaving server is counted by kind instead of crashing or hanging the client.

use thiserror::Error;

/// Longest reply line accepted; RFC 5321 allows 512, servers are often sloppier.
pub const MAX_LINE: usize = 8192;

/// Largest whole (multi-line) reply accepted. A long EHLO reply is about 1 KiB; a
/// server that sends continuation lines forever must end in an error, not fill memory.
pub const MAX_REPLY: usize = 64 * 1024;

/// Why bytes from the server were not a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ReplyError {
    /// A line did not start with three digits and a space or hyphen.
    #[error("malformed reply line (expected \"ddd text\" or \"ddd-text\")")]
    Malformed,
    /// The lines of a multi-line reply carried different codes.
    #[error("multi-line reply changed its code")]
    CodeMismatch,
    /// A line grew past [`MAX_LINE`] without an end.
    #[error("reply line longer than {MAX_LINE} bytes")]
    TooLong,
    /// A multi-line reply grew past [`MAX_REPLY`] without its last line.
    #[error("multi-line reply longer than {MAX_REPLY} bytes")]
    ReplyTooLong,
}

/// One complete reply found at the front of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// The three-digit reply code.
    pub code: u16,
    /// How many bytes the reply took, line ends included.
    pub len: usize,
}

/// Finds the first complete reply in `buf`; `Ok(None)` when more bytes are needed.
pub fn parse(buf: &[u8]) -> Result<Option<Found>, ReplyError> {
    let mut pos = 0;
    let mut code = None;
    loop {
        let rest = &buf[pos..];
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            return if rest.len() > MAX_LINE {
                Err(ReplyError::TooLong)
            } else if buf.len() > MAX_REPLY {
                Err(ReplyError::ReplyTooLong)
            } else {
                Ok(None)
            };
        };
        if pos + nl >= MAX_REPLY {
            return Err(ReplyError::ReplyTooLong);
        }
        let line = &rest[..nl];
        let line_code = line_code(line)?;
        if *code.get_or_insert(line_code) != line_code {
            return Err(ReplyError::CodeMismatch);
        }
        pos += nl + 1;
        if line.get(3) != Some(&b'-') {
            return Ok(Some(Found {
                code: line_code,
                len: pos,
            }));
        }
    }
}

/// The code of one reply line (without its `\n`).
fn line_code(line: &[u8]) -> Result<u16, ReplyError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let digits = line.get(..3).ok_or(ReplyError::Malformed)?;
    if !digits.iter().all(u8::is_ascii_digit) || !(b'2'..=b'5').contains(&digits[0]) {
        return Err(ReplyError::Malformed);
    }
    match line.get(3) {
        None | Some(b' ') | Some(b'-') => {}
        Some(_) => return Err(ReplyError::Malformed),
    }
    Ok(digits
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0')))
}

/// The text lines of a reply (codes and separators stripped), for EHLO keywords.
pub fn lines(reply: &[u8]) -> impl Iterator<Item = &str> {
    reply
        .split(|&b| b == b'\n')
        .filter(|l| l.len() >= 3)
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .map(|l| std::str::from_utf8(l.get(4..).unwrap_or_default()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line_reply_is_found() {
        let got = parse(b"250 2.0.0 ok\r\n354").unwrap();
        assert_eq!(got, Some(Found { code: 250, len: 14 }));
    }

    #[test]
    fn multi_line_reply_waits_for_last_line() {
        assert_eq!(parse(b"250-a\r\n250-b\r\n").unwrap(), None);
        assert_eq!(
            parse(b"250-a\r\n250 b\r\n").unwrap(),
            Some(Found { code: 250, len: 14 })
        );
    }

    #[test]
    fn bare_code_is_a_reply() {
        assert_eq!(
            parse(b"221\r\n").unwrap(),
            Some(Found { code: 221, len: 5 })
        );
    }

    #[test]
    fn garbage_is_malformed() {
        assert_eq!(parse(b"hello world\r\n"), Err(ReplyError::Malformed));
        assert_eq!(parse(b"250-a\r\n550 b\r\n"), Err(ReplyError::CodeMismatch));
        assert_eq!(parse(&[b'2'; MAX_LINE + 1]), Err(ReplyError::TooLong));
    }

    #[test]
    fn endless_multi_line_reply_is_an_error() {
        let endless = b"220-more\r\n".repeat(MAX_REPLY / 10 + 1);
        assert_eq!(parse(&endless), Err(ReplyError::ReplyTooLong));
        let partial = &endless[..endless.len() - 3];
        assert_eq!(parse(partial), Err(ReplyError::ReplyTooLong));
        let mut long_ok = b"250-x\r\n".repeat(1000);
        long_ok.extend_from_slice(b"250 end\r\n");
        assert!(matches!(parse(&long_ok), Ok(Some(_))));
    }

    #[test]
    fn lines_strip_codes() {
        let got: Vec<_> = lines(b"250-host\r\n250-PIPELINING\r\n250 SIZE 10\r\n").collect();
        assert_eq!(got, ["host", "PIPELINING", "SIZE 10"]);
    }
}
