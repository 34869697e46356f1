//! An injection request as JSON, in the shape KumoMTA's and SparkPost's users know:
//! `envelope_sender`, `recipients` (each an `email`, an optional `name` and
//! `substitutions`), request-wide `substitutions`, and `content`, either a whole RFC 5322
//! message or its parts. Checked here field by field before anything is built or queued;
//! each problem names the field (`recipients[3].email`).

use std::collections::BTreeMap;

use base64::Engine as _;
use hermod_actors::protocol::address::{self, Mailbox, ReversePath};
use serde::Deserialize;

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InjectRequest {
    /// MAIL FROM of every message; `""` is the null sender.
    pub envelope_sender: String,
    /// One message each.
    pub recipients: Vec<RecipientEntry>,
    /// What every message says.
    pub content: Content,
    /// Values for `{{ name }}` placeholders, for every recipient (a recipient's own win).
    #[serde(default)]
    pub substitutions: BTreeMap<String, serde_json::Value>,
}

/// One recipient.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipientEntry {
    /// `local@domain`.
    pub email: String,
    /// A display name for the To: header of a message built from parts.
    #[serde(default)]
    pub name: Option<String>,
    /// This recipient's placeholder values.
    #[serde(default)]
    pub substitutions: BTreeMap<String, serde_json::Value>,
}

/// The message: whole, or in parts hermod builds into MIME.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// A complete RFC 5322 message (line ends LF or CRLF).
    Raw(String),
    /// Parts.
    Parts(Box<ContentParts>),
}

/// A message in parts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContentParts {
    /// The From: header.
    pub from: NamedAddress,
    /// Subject:.
    #[serde(default)]
    pub subject: String,
    /// Reply-To:.
    #[serde(default)]
    pub reply_to: Option<String>,
    /// The text/plain part.
    #[serde(default)]
    pub text_body: Option<String>,
    /// The text/html part.
    #[serde(default)]
    pub html_body: Option<String>,
    /// More header fields (`X-Campaign-Id`, ...).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Attachments, their data in base64.
    #[serde(default)]
    pub attachments: Vec<Attachment>,
}

/// An address with an optional display name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedAddress {
    /// `local@domain`.
    pub email: String,
    /// The display name.
    #[serde(default)]
    pub name: Option<String>,
}

/// One attachment.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    /// Its MIME type (`application/pdf`).
    pub content_type: String,
    /// Its file name.
    #[serde(default)]
    pub file_name: String,
    /// Its bytes, in base64.
    pub data: String,
}

/// A request that cannot be taken, and which field is why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The HTTP status (400 unreadable, 413 too large, 422 a bad field).
    pub status: u16,
    /// The field (`recipients[2].email`), or `body`.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

impl Refusal {
    /// A 422 about `field`.
    pub fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Refusal {
            status: 422,
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// A request checked: its sender and recipients parsed, its attachments decoded.
#[derive(Debug)]
pub struct Checked {
    /// MAIL FROM.
    pub sender: ReversePath,
    /// Each recipient's mailbox, in order.
    pub recipients: Vec<Mailbox>,
    /// Decoded attachment bytes, in order.
    pub attachments: Vec<Vec<u8>>,
}

/// Checks `request` against the limits; the first problem found is the answer.
pub fn check(
    request: &InjectRequest,
    max_recipients: usize,
    hostname: &str,
) -> Result<Checked, Refusal> {
    let sender = if request.envelope_sender.is_empty() {
        ReversePath::Null
    } else {
        ReversePath::Mailbox(mailbox(
            &request.envelope_sender,
            hostname,
            "envelope_sender",
        )?)
    };
    if request.recipients.is_empty() {
        return Err(Refusal::field(
            "recipients",
            "at least one recipient is needed",
        ));
    }
    if request.recipients.len() > max_recipients {
        return Err(Refusal {
            status: 413,
            field: "recipients".into(),
            reason: format!(
                "{} recipients; at most {max_recipients} per request (http_inject.max_recipients)",
                request.recipients.len()
            ),
        });
    }
    let recipients = request
        .recipients
        .iter()
        .enumerate()
        .map(|(i, r)| {
            if r.name.as_deref().is_some_and(|n| n.contains(['\r', '\n'])) {
                return Err(Refusal::field(
                    format!("recipients[{i}].name"),
                    "a header value may not hold a line break",
                ));
            }
            mailbox(&r.email, hostname, &format!("recipients[{i}].email"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let attachments = match &request.content {
        Content::Raw(raw) => {
            if !raw.contains("\n\n") && !raw.contains("\r\n\r\n") && !raw.contains(':') {
                return Err(Refusal::field(
                    "content",
                    "not an RFC 5322 message (no header section)",
                ));
            }
            Vec::new()
        }
        Content::Parts(parts) => check_parts(parts, hostname)?,
    };
    Ok(Checked {
        sender,
        recipients,
        attachments,
    })
}

fn check_parts(parts: &ContentParts, hostname: &str) -> Result<Vec<Vec<u8>>, Refusal> {
    mailbox(&parts.from.email, hostname, "content.from.email")?;
    if parts.text_body.is_none() && parts.html_body.is_none() && parts.attachments.is_empty() {
        return Err(Refusal::field(
            "content",
            "no text_body, html_body or attachment: the message would be empty",
        ));
    }
    let one_line = |field: String, value: &str| {
        if value.contains(['\r', '\n']) {
            Err(Refusal::field(
                field,
                "a header value may not hold a line break",
            ))
        } else {
            Ok(())
        }
    };
    one_line("content.subject".into(), &parts.subject)?;
    if let Some(name) = &parts.from.name {
        one_line("content.from.name".into(), name)?;
    }
    if let Some(reply_to) = &parts.reply_to {
        mailbox(reply_to, hostname, "content.reply_to")?;
    }
    for (name, value) in &parts.headers {
        let field = format!("content.headers.{name}");
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
            return Err(Refusal::field(field, "not a header field name"));
        }
        one_line(field, value)?;
    }
    parts
        .attachments
        .iter()
        .enumerate()
        .map(|(i, a)| {
            if !is_mime_type(&a.content_type) {
                return Err(Refusal::field(
                    format!("content.attachments[{i}].content_type"),
                    "not a MIME type (type/subtype, RFC 2045 tokens; not multipart)",
                ));
            }
            one_line(format!("content.attachments[{i}].file_name"), &a.file_name)?;
            base64::engine::general_purpose::STANDARD
                .decode(a.data.trim())
                .map_err(|e| {
                    Refusal::field(
                        format!("content.attachments[{i}].data"),
                        format!("not base64: {e}"),
                    )
                })
        })
        .collect()
}

/// `type/subtype` of RFC 2045 tokens, and not a multipart (an attachment is one part).
fn is_mime_type(text: &str) -> bool {
    let token = |t: &str| {
        !t.is_empty()
            && t.len() <= 127
            && t.bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b))
    };
    match text.split_once('/') {
        Some((kind, sub)) => token(kind) && token(sub) && !kind.eq_ignore_ascii_case("multipart"),
        None => false,
    }
}

/// `local@domain` as SMTP would take it in RCPT TO.
fn mailbox(text: &str, hostname: &str, field: &str) -> Result<Mailbox, Refusal> {
    if text.contains(['<', '>']) {
        return Err(Refusal::field(field, "give the address alone, without <>"));
    }
    match address::parse_forward_path(&format!("<{text}>"), hostname) {
        Ok((mailbox, "")) if text.contains('@') => Ok(mailbox),
        Ok(_) => Err(Refusal::field(field, "address must be local@domain")),
        Err(e) => Err(Refusal::field(field, format!("{e}: {text:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: &str) -> InjectRequest {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            (
                r#"{"envelope_sender":"a@b.test","recipients":[{"email":"c@d.test"},{"email":"nope"}],"content":"Subject: x\n\nx"}"#,
                "recipients[1].email",
            ),
            (
                r#"{"envelope_sender":"a b@c","recipients":[{"email":"c@d.test"}],"content":"Subject: x\n\nx"}"#,
                "envelope_sender",
            ),
            (
                r#"{"envelope_sender":"a@b.test","recipients":[],"content":"Subject: x\n\nx"}"#,
                "recipients",
            ),
            (
                r#"{"envelope_sender":"a@b.test","recipients":[{"email":"c@d.test"}],"content":{"from":{"email":"a@b.test"},"subject":"x"}}"#,
                "content",
            ),
            (
                r#"{"envelope_sender":"a@b.test","recipients":[{"email":"c@d.test"}],"content":{"from":{"email":"a@b.test"},"subject":"x\r\nBcc: evil@x","text_body":"t"}}"#,
                "content.subject",
            ),
            (
                r#"{"envelope_sender":"a@b.test","recipients":[{"email":"c@d.test"}],"content":{"from":{"email":"a@b.test"},"text_body":"t","headers":{"X-A":"1\nBcc: e@x"}}}"#,
                "content.headers.X-A",
            ),
            (
                r#"{"envelope_sender":"a@b.test","recipients":[{"email":"c@d.test"}],"content":{"from":{"email":"a@b.test"},"attachments":[{"content_type":"application/pdf","data":"%%%"}]}}"#,
                "content.attachments[0].data",
            ),
        ];
        for (json, field) in cases {
            let refused = check(&request(json), 10, "h.test").unwrap_err();
            assert_eq!(refused.field, field, "{json}: {refused:?}");
            assert_eq!(refused.status, 422);
        }
        for bad in [
            "text",
            "multipart/mixed",
            "text/plain; x=1",
            "te xt/plain",
            "text/\"x\"",
        ] {
            assert!(!is_mime_type(bad), "{bad}");
        }
        assert!(is_mime_type("application/vnd.ms-excel"));
        let many = format!(
            r#"{{"envelope_sender":"","recipients":[{}],"content":"Subject: x\n\nx"}}"#,
            [r#"{"email":"c@d.test"}"#; 11].join(",")
        );
        assert_eq!(
            check(&request(&many), 10, "h.test").unwrap_err().status,
            413
        );
    }
}
