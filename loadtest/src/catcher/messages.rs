//! The messages a sink stored (`<n>.eml` with its envelope in `<n>.json`) as MailHog's
//! API shows them, so tools written for MailHog read them: `ID`, `From`/`To` as
//! mailbox and domain, `Content` (headers as lists of values, body, size), `MIME` (the
//! leaf parts; each with `Decoded` text for text parts, an addition of ours), `Created`
//! and `Raw`.

use std::path::{Path, PathBuf};

use mail_parser::{MessageParser, MimeHeaders};
use serde_json::{Value, json};

/// One stored message, read from disk.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Its sequence number (the file's name), which is its `ID`.
    pub seq: u64,
    /// The envelope the sink wrote.
    pub envelope: Value,
    /// The message as received.
    pub raw: Vec<u8>,
    /// When it was stored (the envelope file's modification time).
    pub created: std::time::SystemTime,
}

/// The sequence numbers of the messages in `dir`, newest first (nothing read yet).
pub fn ids(dir: &Path) -> Vec<u64> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut seqs: Vec<u64> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".json")?.parse().ok()
        })
        .collect();
    seqs.sort_unstable_by(|a, b| b.cmp(a));
    seqs
}

/// Every message in `dir`, newest first.
pub fn list(dir: &Path) -> Vec<Stored> {
    ids(dir)
        .into_iter()
        .filter_map(|seq| read(dir, seq))
        .collect()
}

/// Message `seq` of `dir`.
pub fn read(dir: &Path, seq: u64) -> Option<Stored> {
    let json = envelope_path(dir, seq);
    let envelope = serde_json::from_slice(&std::fs::read(&json).ok()?).ok()?;
    let raw = std::fs::read(dir.join(format!("{seq}.eml"))).ok()?;
    let created = std::fs::metadata(&json).and_then(|m| m.modified()).ok()?;
    Some(Stored {
        seq,
        envelope,
        raw,
        created,
    })
}

/// Deletes message `seq`; false when there was none.
pub fn delete(dir: &Path, seq: u64) -> bool {
    let had = std::fs::remove_file(envelope_path(dir, seq)).is_ok();
    let _ = std::fs::remove_file(dir.join(format!("{seq}.eml")));
    had
}

fn envelope_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq}.json"))
}

/// Whether `message` matches a MailHog search: `kind` is `from`, `to` or `containing`.
pub fn matches(message: &Stored, kind: &str, query: &str) -> bool {
    let query = query.to_lowercase();
    let has = |text: &str| text.to_lowercase().contains(&query);
    let from = message.envelope["mail_from"].as_str().unwrap_or("");
    let to: Vec<&str> = message.envelope["rcpt_to"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let head = header_section(&message.raw);
    let header = |name: &str| {
        headers(&head)
            .into_iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .any(|(_, v)| has(&v))
    };
    match kind {
        "from" => has(from) || header("From"),
        "to" => to.iter().any(|t| has(t)) || header("To") || header("Cc"),
        _ => has(&String::from_utf8_lossy(&message.raw)),
    }
}

/// The most of a message's raw source a listing carries (the whole message is at
/// `/api/v1/messages/{id}/download`).
const SHOWN: usize = 1024 * 1024;

/// `message` in MailHog's shape.
pub fn mailhog(message: &Stored) -> Value {
    let shown = &message.raw[..message.raw.len().min(SHOWN)];
    let raw = String::from_utf8_lossy(shown).into_owned();
    let head = header_section(&message.raw);
    let body_start = (head.len() + 2).min(raw.len());
    let from = message.envelope["mail_from"].as_str().unwrap_or("");
    let to: Vec<&str> = message.envelope["rcpt_to"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let created = time::OffsetDateTime::from(message.created)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    json!({
        "ID": message.seq.to_string(),
        "From": path(from),
        "To": to.iter().map(|t| path(t)).collect::<Vec<_>>(),
        "Content": {
            "Headers": header_map(&head),
            "Body": &raw[body_start..],
            "Size": message.raw.len(),
            "MIME": Value::Null,
        },
        "Created": created,
        "MIME": mime(shown),
        "Raw": {
            "From": from,
            "To": to,
            "Data": raw,
            "Helo": message.envelope["helo"].as_str().unwrap_or(""),
        },
    })
}

/// MailHog's `{Relays, Mailbox, Domain, Params}` of an address.
fn path(address: &str) -> Value {
    let (mailbox, domain) = address.rsplit_once('@').unwrap_or((address, ""));
    json!({"Relays": Value::Null, "Mailbox": mailbox, "Domain": domain, "Params": ""})
}

/// The leaf parts of a MIME message, `null` for a single-part one.
fn mime(raw: &[u8]) -> Value {
    let Some(message) = MessageParser::default().parse(raw) else {
        return Value::Null;
    };
    if message.parts.len() <= 1 {
        return Value::Null;
    }
    let parts: Vec<Value> = message
        .parts
        .iter()
        .filter(|p| !matches!(p.body, mail_parser::PartType::Multipart(_)))
        .map(|part| {
            let start = part.raw_header_offset() as usize;
            let body = part.raw_body_offset() as usize;
            let end = (part.raw_end_offset() as usize).min(raw.len());
            let head = String::from_utf8_lossy(&raw[start.min(body)..body.min(end)]).into_owned();
            let decoded = part.text_contents().map(str::to_string);
            json!({
                "Headers": header_map(&head),
                "Body": String::from_utf8_lossy(&raw[body.min(end)..end]),
                "Size": end.saturating_sub(body),
                "MIME": Value::Null,
                "Decoded": decoded,
                "FileName": part.attachment_name(),
            })
        })
        .collect();
    json!({"Parts": parts})
}

/// The header section (without the empty line).
fn header_section(raw: &[u8]) -> String {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n"))
        .unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// Header fields, unfolded, in order.
fn headers(head: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = out.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            out.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    out
}

/// Header fields as MailHog gives them: name to the list of its values.
fn header_map(head: &str) -> Value {
    let mut map = serde_json::Map::new();
    for (name, value) in headers(head) {
        if let Value::Array(values) = map.entry(name).or_insert_with(|| Value::Array(Vec::new())) {
            values.push(Value::String(value));
        }
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path, seq: u64, from: &str, to: &str, raw: &str) {
        std::fs::write(dir.join(format!("{seq}.eml")), raw).unwrap();
        std::fs::write(
            dir.join(format!("{seq}.json")),
            json!({"mail_from": from, "rcpt_to": [to], "helo": "client.test"}).to_string(),
        )
        .unwrap();
    }

    #[test]
    fn messages_read_back_in_mailhogs_shape_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        store(
            dir.path(),
            1,
            "a@one.test",
            "b@two.test",
            "Subject: first\r\n\r\nhello\r\n",
        );
        let multipart = "Subject: second\r\nX-Long: a\r\n b\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"x\"\r\n\r\n\
--x\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9\r\n\
--x\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"r.pdf\"\r\n\r\nJVBERi0=\r\n--x--\r\n";
        store(dir.path(), 2, "c@three.test", "d@four.test", multipart);
        let all = list(dir.path());
        assert_eq!(all.iter().map(|m| m.seq).collect::<Vec<_>>(), [2, 1]);
        let second = mailhog(&all[0]);
        assert_eq!(second["ID"], "2");
        assert_eq!(second["From"]["Mailbox"], "c");
        assert_eq!(second["To"][0]["Domain"], "four.test");
        assert_eq!(second["Content"]["Headers"]["Subject"][0], "second");
        assert_eq!(second["Content"]["Headers"]["X-Long"][0], "a b");
        assert_eq!(second["Raw"]["Helo"], "client.test");
        let parts = second["MIME"]["Parts"].as_array().unwrap();
        assert_eq!(parts.len(), 2, "{second:#}");
        assert_eq!(parts[0]["Decoded"], "café");
        assert_eq!(parts[1]["FileName"], "r.pdf");
        assert_eq!(mailhog(&all[1])["MIME"], Value::Null);
        assert!(matches(&all[0], "containing", "CAF=C3"));
        assert!(matches(&all[1], "from", "one.test"));
        assert!(!matches(&all[1], "to", "four"));
        assert!(delete(dir.path(), 1));
        assert_eq!(list(dir.path()).len(), 1);
    }
}
