//! Finds the two headers the sink cares about in a message's header block.

/// What the sink reads from a message's headers.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Headers<'a> {
    /// The Message-ID value, brackets included, as the client wrote it.
    pub(crate) message_id: Option<&'a str>,
    /// `X-Blaster-Sent`: when the sender sent it, in nanoseconds since the Unix epoch.
    pub(crate) sent_ns: Option<u64>,
}

/// Scans header lines up to the first empty line.
pub(crate) fn scan(message: &[u8]) -> Headers<'_> {
    let mut found = Headers::default();
    for line in message.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if let Some(value) = value_of(line, b"message-id:") {
            found.message_id = std::str::from_utf8(value).ok();
        } else if let Some(value) = value_of(line, b"x-blaster-sent:") {
            found.sent_ns = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
        }
        if found.message_id.is_some() && found.sent_ns.is_some() {
            break;
        }
    }
    found
}

/// The trimmed value of `line` if it is the header `name` (lowercase, with colon).
fn value_of<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let head = line.get(..name.len())?;
    if !head.eq_ignore_ascii_case(name) {
        return None;
    }
    Some(line[name.len()..].trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_both_headers_in_the_header_block_only() {
        let msg =
            b"Subject: s\r\nmessage-ID: <1@x>\r\nX-Blaster-Sent: 42\r\n\r\nMessage-ID: <2@x>\r\n";
        assert_eq!(
            scan(msg),
            Headers {
                message_id: Some("<1@x>"),
                sent_ns: Some(42)
            }
        );
    }

    #[test]
    fn body_lines_are_not_headers() {
        let msg = b"Subject: s\r\n\r\nX-Blaster-Sent: 42\r\n";
        assert_eq!(scan(msg), Headers::default());
    }
}
