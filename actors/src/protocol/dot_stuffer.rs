//! Dot-stuffing for DATA (RFC 5321 §4.5.2), sans-IO: a message streamed in pieces (a
//! body file is read 256 KiB at a time) is stuffed piece by piece, with the line start
//! carried across pieces.

/// Doubles a dot at the start of every line (RFC 5321 §4.5.2) across pieces of a
/// message, and ends it with `CRLF.CRLF`.
#[derive(Debug)]
pub struct DotStuffer {
    at_line_start: bool,
    /// The last two octets seen, to know whether the message ended with CRLF.
    tail: [u8; 2],
    seen: bool,
}

impl Default for DotStuffer {
    fn default() -> Self {
        DotStuffer {
            at_line_start: true,
            tail: [0; 2],
            seen: false,
        }
    }
}

impl DotStuffer {
    /// Appends `data`, stuffed, to `out`.
    pub fn stuff(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let mut start = 0;
        for (i, &b) in data.iter().enumerate() {
            if self.at_line_start && b == b'.' {
                out.extend_from_slice(&data[start..i]);
                out.push(b'.');
                start = i;
            }
            self.at_line_start = b == b'\n';
            self.tail = [self.tail[1], b];
        }
        self.seen |= !data.is_empty();
        out.extend_from_slice(&data[start..]);
    }

    /// Appends the end of data: a CRLF first if the message did not end with one.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.seen && self.tail != *b"\r\n" {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_doubles_leading_dots_only() {
        let mut out = Vec::new();
        let mut stuffer = DotStuffer::default();
        stuffer.stuff(b".a\r\nb.c\r\n..\r\n", &mut out);
        stuffer.finish(&mut out);
        assert_eq!(out, b"..a\r\nb.c\r\n...\r\n.\r\n");
    }

    #[test]
    fn dot_stuffing_carries_line_starts_across_pieces() {
        let mut out = Vec::new();
        let mut stuffer = DotStuffer::default();
        for piece in [&b"a\r"[..], b"\n", b".b\r\n.", b".\r\nend"] {
            stuffer.stuff(piece, &mut out);
        }
        stuffer.finish(&mut out);
        assert_eq!(out, b"a\r\n..b\r\n...\r\nend\r\n.\r\n");
    }
}
