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
    let values = substitutions(request, envelope.index);
    let body = match &request.content {
        Content::Raw(raw) => crlf(&fill(raw, &values, "content")?),
        Content::Parts(parts) => from_parts(parts, request, checked, envelope, &values)?,
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

/// `template` with its placeholders filled; a text without any is returned as it is.
fn fill(
    template: &str,
    values: &BTreeMap<String, serde_json::Value>,
    field: &str,
) -> Result<String, Refusal> {
    if !template.contains("{{") && !template.contains("{%") {
        return Ok(template.to_string());
    }
    let mut env = minijinja::Environment::new();
    // A tenant's template is code: bounded, so a loop cannot hold a worker.
    env.set_fuel(Some(TEMPLATE_FUEL));
    env.render_str(template, values)
        .map_err(|e| Refusal::field(field, format!("template: {e}")))
}

fn from_parts(
    parts: &ContentParts,
    request: &InjectRequest,
    checked: &Checked,
    envelope: &Envelope<'_>,
    values: &BTreeMap<String, serde_json::Value>,
) -> Result<Vec<u8>, Refusal> {
    let rcpt = &request.recipients[envelope.index];
    let to = envelope.recipient.to_string();
    let from_name = parts.from.name.clone().unwrap_or_default();
    let mut builder = MessageBuilder::new()
        .message_id(format!("{}@{}", envelope.id, envelope.hostname))
        .from((from_name, parts.from.email.clone()))
        .to((rcpt.name.clone().unwrap_or_default(), to))
        .subject(fill(&parts.subject, values, "content.subject")?);
    if let Some(reply_to) = &parts.reply_to {
        builder = builder.reply_to(reply_to.as_str());
    }
    for (name, value) in &parts.headers {
        let value = fill(value, values, &format!("content.headers.{name}"))?;
        builder = builder.header(name.clone(), Text::new(value));
    }
    if let Some(text) = &parts.text_body {
        builder = builder.text_body(fill(text, values, "content.text_body")?);
    }
    if let Some(html) = &parts.html_body {
        builder = builder.html_body(fill(html, values, "content.html_body")?);
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
