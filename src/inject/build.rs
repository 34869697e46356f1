//! Builds each recipient's message of an injection request: placeholders filled with
//! minijinja from the request's and the recipient's substitutions, a message in parts
//! made into MIME by mail-builder (no MIME written by hand), and hermod's `Received:` line
//! on top, as SMTP intake writes it (so a DSN returned later names the message).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::SystemTime;

use hermod_actors::core::id::QueueId;
use hermod_actors::protocol::address::Mailbox;
use hermod_actors::protocol::datetime;
use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::text::Text;

use super::request::{Checked, Content, ContentParts, InjectRequest, Refusal};

/// Who the message is for and where it came from, for its `Received:` line.
pub struct Envelope<'a> {
    /// The message's queue id.
    pub id: QueueId,
    /// Its recipient's place in the request.
    pub index: usize,
    /// Its recipient.
    pub recipient: &'a Mailbox,
    /// hermod's host name.
    pub hostname: &'a str,
    /// The HTTP client.
    pub client: IpAddr,
}

/// The message for recipient `envelope.index`, CRLF line ends; a refusal names the field
/// a placeholder could not be filled in, or says the message is over `max_size`.
pub fn message(
    request: &InjectRequest,
    checked: &Checked,
    envelope: &Envelope<'_>,
    max_size: usize,
) -> Result<Vec<u8>, Refusal> {
    let filler = Filler {
        values: substitutions(request, envelope.index),
        limit: max_size,
    };
    let body = match &request.content {
        Content::Raw(raw) => crlf(&filler.fill(raw, "content")?),
        Content::Parts(parts) => from_parts(parts, request, checked, envelope, &filler)?,
    };
    let received = received(envelope);
    if received.len() + body.len() > max_size {
        return Err(Refusal {
            status: 413,
            field: "content".into(),
            reason: format!(
                "the message for recipients[{}] is {} octets; at most {max_size} (smtp.max_message_size)",
                envelope.index,
                received.len() + body.len()
            ),
        });
    }
    let mut data = received.into_bytes();
    data.extend_from_slice(&body);
    Ok(data)
}

/// The request's substitutions with recipient `i`'s over them.
fn substitutions(request: &InjectRequest, i: usize) -> BTreeMap<String, serde_json::Value> {
    let mut values = request.substitutions.clone();
    values.extend(
        request.recipients[i]
            .substitutions
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    values
}

/// The instructions one template may run.
const TEMPLATE_FUEL: u64 = 100_000;

/// Fills placeholders from one recipient's values, each text bounded by the message's
/// size limit while it is rendered (a small template can expand a lot).
struct Filler {
    values: BTreeMap<String, serde_json::Value>,
    limit: usize,
}

impl Filler {
    /// `template` with its placeholders filled; a text without any is returned as it is.
    fn fill(&self, template: &str, field: &str) -> Result<String, Refusal> {
        if !template.contains("{{") && !template.contains("{%") {
            return Ok(template.to_string());
        }
        let mut env = minijinja::Environment::new();
        // A tenant's template is code: bounded, so a loop cannot hold a worker.
        env.set_fuel(Some(TEMPLATE_FUEL));
        let compiled = env
            .template_from_str(template)
            .map_err(|e| Refusal::field(field, format!("template: {e}")))?;
        let mut out = Bounded {
            bytes: Vec::new(),
            limit: self.limit,
            over: false,
        };
        match compiled.render_captured_to(&self.values, &mut out) {
            Ok(_) => Ok(String::from_utf8_lossy(&out.bytes).into_owned()),
            Err(_) if out.over => Err(Refusal {
                status: 413,
                field: field.to_string(),
                reason: format!(
                    "filled in, it is over {} octets (smtp.max_message_size)",
                    self.limit
                ),
            }),
            Err(e) => Err(Refusal::field(field, format!("template: {e}"))),
        }
    }
}

/// A buffer that refuses to grow past `limit`.
struct Bounded {
    bytes: Vec<u8>,
    limit: usize,
    over: bool,
}

impl std::io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > self.limit {
            self.over = true;
            return Err(std::io::Error::other("over the size limit"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn from_parts(
    parts: &ContentParts,
    request: &InjectRequest,
    checked: &Checked,
    envelope: &Envelope<'_>,
    filler: &Filler,
) -> Result<Vec<u8>, Refusal> {
    let rcpt = &request.recipients[envelope.index];
    let to = envelope.recipient.to_string();
    let from_name = filler.fill(
        parts.from.name.as_deref().unwrap_or(""),
        "content.from.name",
    )?;
    let to_name = filler.fill(
        rcpt.name.as_deref().unwrap_or(""),
        &format!("recipients[{}].name", envelope.index),
    )?;
    let mut builder = MessageBuilder::new()
        .message_id(format!("{}@{}", envelope.id, envelope.hostname))
        .from(named(from_name, parts.from.email.clone()))
        .to(named(to_name, to))
        .subject(filler.fill(&parts.subject, "content.subject")?);
    if let Some(reply_to) = &parts.reply_to {
        builder = builder.reply_to(reply_to.as_str());
    }
    for (name, value) in &parts.headers {
        let value = filler.fill(value, &format!("content.headers.{name}"))?;
        builder = builder.header(name.clone(), Text::new(value));
    }
    if let Some(text) = &parts.text_body {
        builder = builder.text_body(filler.fill(text, "content.text_body")?);
    }
    if let Some(html) = &parts.html_body {
        builder = builder.html_body(filler.fill(html, "content.html_body")?);
    }
    for (attachment, data) in parts.attachments.iter().zip(&checked.attachments) {
        builder = builder.attachment(
            attachment.content_type.clone(),
            attachment.file_name.clone(),
            data.clone(),
        );
    }
    builder
        .write_to_vec()
        .map_err(|e| Refusal::field("content", format!("building the message: {e}")))
}

/// `"Name" <address>`, or the bare address without a name.
fn named(name: String, address: String) -> Address<'static> {
    if name.trim().is_empty() {
        Address::from(address)
    } else {
        Address::from((name, address))
    }
}

/// Line ends made CRLF.
fn crlf(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + text.len() / 40);
    let mut previous = 0u8;
    for &b in text.as_bytes() {
        if b == b'\n' && previous != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        previous = b;
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// hermod's trace line, as the SMTP intake writes it, `with HTTP`.
fn received(envelope: &Envelope<'_>) -> String {
    format!(
        "Received: from [{}]\r\n\tby {} (hermod) with HTTP id {}\r\n\tfor <{}>;\r\n\t{}\r\n",
        envelope.client,
        envelope.hostname,
        envelope.id,
        envelope.recipient,
        datetime::rfc5322(SystemTime::now())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inject::request::check;

    fn build(json: &str, i: usize) -> Result<String, Refusal> {
        let request: InjectRequest = serde_json::from_str(json).unwrap();
        let checked = check(&request, 10, "h.test").unwrap();
        let envelope = Envelope {
            id: QueueId(7),
            index: i,
            recipient: &checked.recipients[i],
            hostname: "relay.test",
            client: IpAddr::from([127, 0, 0, 1]),
        };
        message(&request, &checked, &envelope, 100_000).map(|m| String::from_utf8(m).unwrap())
    }

    #[test]
    fn parts_become_mime_with_each_recipients_values() {
        let json = r#"{"envelope_sender":"news@shop.test","substitutions":{"shop":"Shop"},
            "recipients":[{"email":"ann@x.test","name":"Ann","substitutions":{"name":"Ann"}},{"email":"bob@x.test","substitutions":{"name":"Bob"}}],
            "content":{"from":{"email":"news@shop.test","name":"The {{ shop }}"},"subject":"Hello {{ name }}","text_body":"Hi {{ name }} from {{ shop }}",
            "html_body":"<p>Hi {{ name }}</p>","headers":{"X-Campaign-Id":"c{{ name }}"},
            "attachments":[{"content_type":"text/csv","file_name":"a.csv","data":"YSxiCg=="}]}}"#;
        let bob = build(json, 1).unwrap();
        assert!(
            bob.starts_with("Received: from [127.0.0.1]\r\n\tby relay.test (hermod) with HTTP id ")
        );
        assert!(bob.contains("Subject: Hello Bob\r\n"), "{bob}");
        assert!(
            bob.contains("From: \"The Shop\" <news@shop.test>\r\n"),
            "{bob}"
        );
        assert!(bob.contains("X-Campaign-Id: cBob\r\n"), "{bob}");
        assert!(
            bob.contains("To: <bob@x.test>\r\n") || bob.contains("To: bob@x.test\r\n"),
            "{bob}"
        );
        assert!(bob.contains("Hi Bob from Shop"));
        assert!(bob.contains("multipart/mixed") && bob.contains("multipart/alternative"));
        assert!(
            bob.contains("filename=\"a.csv\"") || bob.contains("filename=a.csv"),
            "{bob}"
        );
        let parsed = mail_parser::MessageParser::default()
            .parse(bob.as_bytes())
            .unwrap();
        assert_eq!(parsed.subject(), Some("Hello Bob"));
        assert_eq!(parsed.attachment(0).unwrap().contents(), b"a,b\n");
        assert!(build(json, 0).unwrap().contains("Subject: Hello Ann\r\n"));
    }

    #[test]
    fn raw_content_gets_crlf_and_its_placeholders_filled() {
        let json = r#"{"envelope_sender":"a@b.test","recipients":[{"email":"c@d.test","substitutions":{"code":42}}],
            "content":"From: a@b.test\nSubject: code {{ code }}\n\nYour code is {{ code }}.\n"}"#;
        let message = build(json, 0).unwrap();
        assert!(
            message.contains("\r\nSubject: code 42\r\n\r\nYour code is 42.\r\n"),
            "{message}"
        );
        assert!(!message.replace("\r\n", "").contains('\n'));
    }

    #[test]
    fn a_template_that_expands_past_the_limit_stops_there() {
        let json = r#"{"envelope_sender":"a@b.test","recipients":[{"email":"c@d.test","substitutions":{"big":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}],
            "content":{"from":{"email":"a@b.test"},"subject":"s","text_body":"{% for i in range(100000) %}{{ big }}{% endfor %}"}}"#;
        let refused = build(json, 0).unwrap_err();
        assert_eq!(
            (refused.status, refused.field.as_str()),
            (413, "content.text_body"),
            "{refused:?}"
        );
    }

    #[test]
    fn a_broken_template_names_its_field_and_a_large_message_is_413() {
        let json = r#"{"envelope_sender":"a@b.test","recipients":[{"email":"c@d.test"}],
            "content":{"from":{"email":"a@b.test"},"subject":"{{ unclosed","text_body":"x"}}"#;
        assert_eq!(build(json, 0).unwrap_err().field, "content.subject");
        let big = format!(
            r#"{{"envelope_sender":"a@b.test","recipients":[{{"email":"c@d.test"}}],"content":"Subject: x\n\n{}"}}"#,
            "x".repeat(200_000)
        );
        assert_eq!(build(&big, 0).unwrap_err().status, 413);
    }
}
