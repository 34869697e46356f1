//! Delivery statuses as values: the RFC 3463 enhanced status code beside the text that
//! explains it. A Delivery actor builds one per recipient from the next hop's reply (or
//! from its own failure, with the code chosen where the failure is known); the Queue
//! stores it, and a bounce's `Status:` field is the code itself, never a word fished back
//! out of the text.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An enhanced mail system status code (RFC 3463): `class.subject.detail`, such as
/// `5.1.1` (bad destination mailbox) or `4.4.1` (no answer from host).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnhancedCode {
    /// 2 success, 4 persistent transient failure, 5 permanent failure.
    pub class: u8,
    /// What the status is about (1 address, 2 mailbox, 3 mail system, 4 network and
    /// routing, 5 protocol, 6 content, 7 security).
    pub subject: u16,
    /// The condition within the subject.
    pub detail: u16,
}

impl EnhancedCode {
    /// `class.subject.detail`.
    pub const fn new(class: u8, subject: u16, detail: u16) -> Self {
        EnhancedCode {
            class,
            subject,
            detail,
        }
    }

    /// The code a next hop put at the start of its reply text (RFC 2034), if it did and
    /// its class agrees with the reply code; else the generic `X.0.0` of the reply code.
    pub fn of_reply(code: u16, text: &str) -> Self {
        let class = (code / 100) as u8;
        text.split_whitespace()
            .next()
            .and_then(|word| word.parse::<EnhancedCode>().ok())
            .filter(|enhanced| enhanced.class == class)
            .unwrap_or(EnhancedCode::new(class, 0, 0))
    }

    /// The same condition as a permanent failure: a recipient hermod gives up on after
    /// transient failures is reported with class 5.
    pub fn permanent(self) -> Self {
        EnhancedCode { class: 5, ..self }
    }
}

impl EnhancedCode {
    /// Appends `class.subject.detail` to `out` without the formatting machinery: every
    /// reply line of every session carries one.
    pub fn write_to(self, out: &mut Vec<u8>) {
        out.push(b'0' + self.class % 10);
        for number in [self.subject, self.detail] {
            out.push(b'.');
            if number >= 100 {
                out.push(b'0' + (number / 100 % 10) as u8);
            }
            if number >= 10 {
                out.push(b'0' + (number / 10 % 10) as u8);
            }
            out.push(b'0' + (number % 10) as u8);
        }
    }
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// Why a text is not an enhanced status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an enhanced status code (class.subject.detail, class 2, 4 or 5): {0:?}")]
pub struct NotAnEnhancedCode(String);

impl FromStr for EnhancedCode {
    type Err = NotAnEnhancedCode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || NotAnEnhancedCode(s.to_string());
        let mut parts = s.split('.');
        let (Some(class), Some(subject), Some(detail), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        // RFC 3463: subject and detail are 1 to 3 digits.
        let number = |p: &str| {
            (1..=3)
                .contains(&p.len())
                .then(|| p.parse::<u16>().ok())
                .flatten()
        };
        let class = match class {
            "2" => 2,
            "4" => 4,
            "5" => 5,
            _ => return Err(bad()),
        };
        match (number(subject), number(detail)) {
            (Some(subject), Some(detail)) => Ok(EnhancedCode::new(class, subject, detail)),
            _ => Err(bad()),
        }
    }
}

impl Serialize for EnhancedCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EnhancedCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What happened to one recipient at one attempt: the code, and the text an operator
/// and the sender read (the next hop's whole reply, or hermod's own reason with the code
/// in front).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The enhanced status code.
    pub code: EnhancedCode,
    /// The reply or reason, as logged and put in a bounce's diagnostic.
    pub text: String,
}

impl Status {
    /// A next hop's reply: `code` and its text as the server sent them.
    pub fn from_reply(code: u16, text: &str) -> Self {
        Status {
            code: EnhancedCode::of_reply(code, text),
            text: format!("{code} {text}"),
        }
    }

    /// hermod's own verdict, such as `4.4.1 connect to …: refused`.
    pub fn local(code: EnhancedCode, reason: impl fmt::Display) -> Self {
        Status {
            code,
            text: format!("{code} {reason}"),
        }
    }

    /// The same status with `note` added to its text.
    pub fn noted(self, note: &str) -> Self {
        Status {
            code: self.code,
            text: format!("{} ({note})", self.text),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod wire_tests {
    use super::*;

    #[test]
    fn the_wire_form_is_the_display_form() {
        for (class, subject, detail) in
            [(2, 0, 0), (4, 7, 0), (5, 6, 11), (5, 7, 26), (4, 123, 999)]
        {
            let code = EnhancedCode::new(class, subject, detail);
            let mut out = Vec::new();
            code.write_to(&mut out);
            assert_eq!(String::from_utf8(out).unwrap(), code.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_gives_its_enhanced_code() {
        let status = Status::from_reply(550, "5.1.1 <a@b.test>: User unknown");
        assert_eq!(status.code, EnhancedCode::new(5, 1, 1));
        assert_eq!(status.text, "550 5.1.1 <a@b.test>: User unknown");
    }

    #[test]
    fn a_reply_without_one_gets_the_generic_code_of_its_class() {
        assert_eq!(
            Status::from_reply(451, "try later").code,
            EnhancedCode::new(4, 0, 0)
        );
        // A code of another class than the reply's is not believed.
        assert_eq!(
            Status::from_reply(550, "4.2.2 mailbox full").code,
            EnhancedCode::new(5, 0, 0)
        );
    }

    #[test]
    fn codes_parse_and_print_alike() {
        for text in ["5.1.10", "4.4.7", "2.0.0"] {
            assert_eq!(text.parse::<EnhancedCode>().unwrap().to_string(), text);
        }
        for bad in ["5.1", "6.1.1", "5.1.1.1", "5..1", "5.1.1000", "x.1.1"] {
            assert!(bad.parse::<EnhancedCode>().is_err(), "{bad}");
        }
    }

    #[test]
    fn giving_up_makes_a_code_permanent() {
        assert_eq!(
            EnhancedCode::new(4, 4, 1).permanent(),
            EnhancedCode::new(5, 4, 1)
        );
    }

    #[test]
    fn a_status_is_stored_with_its_code_as_text() {
        let status = Status::local(EnhancedCode::new(4, 4, 1), "connect refused");
        let json = serde_json::to_string(&status).unwrap();
        assert_eq!(json, r#"{"code":"4.4.1","text":"4.4.1 connect refused"}"#);
        assert_eq!(serde_json::from_str::<Status>(&json).unwrap(), status);
    }
}
