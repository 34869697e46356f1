//! `Authentication-Results:` headers already in a message: those that claim our
//! authserv-id were not written by us (we add ours only after removing them), so they
//! are forgeries meant to make a later filter trust the message (RFC 8601 §5), and go.

use std::ops::Range;

use mail_parser::MessageParser;

/// The byte ranges (whole fields, continuation lines and CRLF included) of the
/// `Authentication-Results:` fields in the header section of `message` whose authserv-id
/// is `authserv_id` (compared without regard to case). mail-parser finds the fields;
/// their values are read raw, since it does not parse this one.
pub fn forged(message: &[u8], authserv_id: &str) -> Vec<Range<usize>> {
    let parser = MessageParser::new().default_header_raw();
    let Some(parsed) = parser.parse_headers(message) else {
        return Vec::new();
    };
    parsed
        .headers()
        .iter()
        .filter(|field| field.name().eq_ignore_ascii_case("authentication-results"))
        .filter_map(|field| {
            let (start, value, end) = (
                field.offset_field as usize,
                field.offset_start as usize,
                field.offset_end as usize,
            );
            let id = authserv_id_of(message.get(value..end)?);
            (id.is_empty() || id.eq_ignore_ascii_case(authserv_id.as_bytes())).then_some(start..end)
        })
        .collect()
}

/// The authserv-id at the start of a field's value (RFC 8601 §2.2): after white space
/// and comments (nested, with `\` escapes), a token up to `;`, white space or a comment,
/// or a quoted string without its quotes. Empty when none can be read: such a field is
/// taken out too, since no filter could tell whose it is.
fn authserv_id_of(value: &[u8]) -> Vec<u8> {
    let mut i = 0;
    let mut depth = 0usize;
    while i < value.len() {
        match value[i] {
            b'\\' if depth > 0 => i += 1,
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            b' ' | b'\t' | b'\r' | b'\n' => {}
            _ if depth > 0 => {}
            _ => break,
        }
        i += 1;
    }
    let mut id = Vec::new();
    if value.get(i) == Some(&b'"') {
        i += 1;
        while i < value.len() && value[i] != b'"' {
            if value[i] == b'\\' {
                i += 1;
            }
            if let Some(&b) = value.get(i) {
                id.push(b);
            }
            i += 1;
        }
        return id;
    }
    while i < value.len() && !matches!(value[i], b';' | b' ' | b'\t' | b'\r' | b'\n' | b'(') {
        id.push(value[i]);
        i += 1;
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_fields_claiming_our_id_are_forged() {
        let message = b"Received: from x\r\n\tby y\r\nAuthentication-Results: MX.Example.test;\r\n\tspf=pass smtp.mailfrom=a@b.test\r\nauthentication-results: (comment) mx.example.test; dkim=pass\r\nAuthentication-Results: other.test; dmarc=pass\r\nSubject: hi\r\n\r\nAuthentication-Results: mx.example.test; in the body\r\n";
        let ranges = forged(message, "mx.example.test");
        assert_eq!(ranges.len(), 2);
        assert!(message[ranges[0].clone()].starts_with(b"Authentication-Results: MX.Example"));
        assert!(message[ranges[0].clone()].ends_with(b"smtp.mailfrom=a@b.test\r\n"));
        assert!(message[ranges[1].clone()].starts_with(b"authentication-results: (comment)"));
        assert!(forged(message, "example.test").is_empty());
        // An escaped parenthesis in a comment, a quoted id, and a field without an id.
        let tricky = b"Authentication-Results: (\\() mx.example.test; dmarc=pass\r\nAuthentication-Results: \"mx.example.test\"; dkim=pass\r\nAuthentication-Results: ; spf=pass\r\nAuthentication-Results: other.test; spf=pass\r\n\r\n";
        let ranges = forged(tricky, "mx.example.test");
        assert_eq!(ranges.len(), 3, "{ranges:?}");
        assert!(tricky[ranges[2].end..].starts_with(b"Authentication-Results: other.test"));
        assert!(forged(b"Subject: x\r\n\r\n", "mx.example.test").is_empty());
    }
}
