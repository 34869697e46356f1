//! A sink that plays a provider: `--reply DOMAIN=REPLY` answers RCPT TO for recipients
//! of DOMAIN (or its subdomains; a whole address for that recipient only; `*` for all)
//! with REPLY instead of accepting them (a
//! 421 also closes the connection, as the large providers do), and `--connection-log`
//! records every connection (peer and local address when it opens, then its close), so a
//! test can see which source address each connection came from and when none came.

use std::fs::File;
use std::io::Write as _;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// One scripted reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyRule {
    /// Recipient domain, lowercase; a whole address (`user@domain`) matches only it;
    /// `*` matches every recipient.
    pub domain: String,
    /// The reply line, CRLF included.
    pub reply: Vec<u8>,
}

impl ReplyRule {
    /// Whether the rule answers RCPT TO `address`.
    pub fn answers(&self, address: &str) -> bool {
        if self.domain == "*" {
            return true;
        }
        if self.domain.contains('@') {
            return address
                .trim_matches(['<', '>'])
                .eq_ignore_ascii_case(&self.domain);
        }
        let domain = address
            .rsplit_once('@')
            .map_or("", |(_, d)| d)
            .trim_end_matches('>')
            .to_ascii_lowercase();
        domain == self.domain
            || domain
                .strip_suffix(&self.domain)
                .is_some_and(|head| head.ends_with('.'))
    }

    /// Whether the sink closes the connection after the reply (a 421).
    pub fn closes(&self) -> bool {
        self.reply.starts_with(b"421")
    }
}

/// Why a `--reply` is not `DOMAIN=CODE TEXT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "expected DOMAIN=CODE TEXT with a 4xx or 5xx CODE (e.g. gmail.test=421 4.7.28 slow down), got {0:?}"
)]
pub struct NotReplyRule(String);

impl FromStr for ReplyRule {
    type Err = NotReplyRule;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || NotReplyRule(s.to_string());
        let (domain, reply) = s.split_once('=').ok_or_else(bad)?;
        let code = reply.get(..3).ok_or_else(bad)?;
        let valid = matches!(code.as_bytes()[0], b'4' | b'5')
            && code.bytes().all(|b| b.is_ascii_digit())
            && reply.as_bytes().get(3).is_none_or(|&b| b == b' ')
            && !reply.contains(['\r', '\n']);
        if !valid || domain.trim().is_empty() {
            return Err(bad());
        }
        Ok(ReplyRule {
            domain: domain.trim().trim_end_matches('.').to_ascii_lowercase(),
            reply: format!("{reply}\r\n").into_bytes(),
        })
    }
}

/// The connection log: a JSON line when a connection opens and one when it closes,
/// with the same `id`.
pub(crate) struct ConnectionLog {
    file: Mutex<File>,
    next_id: AtomicU64,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl ConnectionLog {
    /// A log written to `file` (truncated).
    pub(crate) fn new(file: File) -> Self {
        ConnectionLog {
            file: Mutex::new(file),
            next_id: AtomicU64::new(1),
        }
    }

    fn write(&self, line: &serde_json::Value) {
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(file, "{line}");
    }

    /// Records a connection opening now; returns its id for [`ConnectionLog::closed`].
    pub(crate) fn opened(&self, peer: Option<SocketAddr>, local: Option<SocketAddr>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.write(&serde_json::json!({
            "id": id,
            "event": "open",
            "peer": peer.map(|a| a.to_string()),
            "local": local.map(|a| a.to_string()),
            "at_ms": unix_ms(),
        }));
        id
    }

    /// Records connection `id` closing now.
    pub(crate) fn closed(&self, id: u64) {
        self.write(&serde_json::json!({ "id": id, "event": "close", "at_ms": unix_ms() }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_rules_parse_match_domains_and_close_on_421() {
        let rule: ReplyRule = "Gmail.test=421 4.7.28 unusual rate".parse().unwrap();
        assert!(rule.answers("a@gmail.test"));
        assert!(rule.answers("a@mx.GMAIL.test"));
        assert!(!rule.answers("a@notgmail.test"));
        let one: ReplyRule = "Blocked@gmail.test=450 4.2.1 full".parse().unwrap();
        assert!(one.answers("blocked@Gmail.test") && !one.answers("other@gmail.test"));
        assert!(rule.closes());
        assert_eq!(rule.reply, b"421 4.7.28 unusual rate\r\n");
        let any: ReplyRule = "*=550 5.1.1 no".parse().unwrap();
        assert!(any.answers("x@y") && !any.closes());
        for bad in [
            "gmail.test",
            "=421 x",
            "a=250 ok",
            "a=42",
            "a=421x",
            "a=421 a\r\nb",
        ] {
            assert!(bad.parse::<ReplyRule>().is_err(), "{bad}");
        }
    }
}
