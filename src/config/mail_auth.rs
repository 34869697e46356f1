//! `[mail_auth]`: the SPF, DKIM and DMARC verifier actors — whether mail from outside
//! is verified, and what each failure does (refuse, mark, hold, or only record).

use std::time::Duration;

use hermod_actors::outbound::routing::parse_target;
use hermod_actors::policy::mail_auth::{
    AuthRules, DmarcRejectAction, QuarantineAction, SpfFailAction, TempErrorAction,
};

use super::section::{Key, section};
use super::{ConfigIssue, Section, longer_than_zero};

section! {
    /// `[mail_auth]`: verification of mail from clients outside `relay.networks` that did
    /// not authenticate.
    pub struct MailAuthConfig {
        /// Check SPF at MAIL FROM, DKIM and DMARC at the end of DATA, and add an
        /// `Authentication-Results:` header.
        pub verify: bool = false
            => (restart, []),
        /// The authserv-id of that header (empty: `smtp.hostname`). Incoming
        /// `Authentication-Results:` headers claiming it are removed as forged.
        pub authserv_id: String = String::new()
            => (restart, []),
        /// SPF `fail`: `"reject"` (`550 5.7.23` at MAIL FROM) or `"record"` (DMARC decides).
        pub spf_fail: SpfFailAction = SpfFailAction::Record
            => (restart, []),
        /// DMARC failure of a `p=reject` domain: `"reject"` (`550 5.7.1`), `"quarantine"` or
        /// `"record"`.
        pub dmarc_reject: DmarcRejectAction = DmarcRejectAction::Reject
            => (restart, []),
        /// DMARC failure of a `p=quarantine` domain: `"header"` (add `quarantine_header`),
        /// `"hold"` (queue on hold, for `hermod queue release`), `"transport"` (deliver every
        /// recipient to `quarantine_transport`) or `"record"`.
        pub dmarc_quarantine: QuarantineAction = QuarantineAction::Header
            => (restart, []),
        /// The header line `dmarc_quarantine = "header"` adds.
        pub quarantine_header: String = "X-Hermod-Quarantine: DMARC".into()
            => (restart, []),
        /// Where `dmarc_quarantine = "transport"` sends the message, in the transport map's
        /// syntax (`smtp:[quarantine.example.com]:25`, `lmtp:[127.0.0.1]:24`).
        pub quarantine_transport: String = String::new()
            => (restart, []),
        /// A DNS failure during SPF or DMARC (temperror): `"defer"` (`451 4.7.24` at MAIL
        /// FROM, `451 4.7.1` after DATA) or `"accept"` (recorded).
        pub temp_error: TempErrorAction = TempErrorAction::Defer
            => (restart, []),
        /// Time for each DNS query (through `delivery.dns_servers`).
        #[serde(with = "super::duration")]
        pub dns_timeout: Duration = Duration::from_secs(5)
            => (restart, []),
        /// Time a whole check gets (SPF may take 10 lookups); after it, `451 4.3.0`.
        #[serde(with = "super::duration")]
        pub deadline: Duration = Duration::from_secs(20)
            => (restart, []),
        /// Threads that make (`[dkim]`) and check DKIM signatures (hashing, RSA); 0: one
        /// per CPU.
        pub threads: usize = 0
            => (restart, []),
    }
}

impl Section for MailAuthConfig {
    const KEYS: &'static [Key] = MailAuthConfig::DECLARED;
    const NAME: &'static str = "mail_auth";

    fn check(&self, issues: &mut Vec<ConfigIssue>) {
        longer_than_zero(
            issues,
            &[
                ("mail_auth.dns_timeout", self.dns_timeout),
                ("mail_auth.deadline", self.deadline),
            ],
        );
        if self
            .authserv_id
            .contains(|c: char| c.is_whitespace() || c == ';')
        {
            issues.push(ConfigIssue::new(
                "mail_auth.authserv_id",
                format!("must be a host name, got {:?}", self.authserv_id),
            ));
        }
        if self.dmarc_quarantine == QuarantineAction::Transport
            && let Err(e) = parse_target(self.quarantine_transport.trim(), 25)
        {
            issues.push(ConfigIssue::new(
                "mail_auth.quarantine_transport",
                format!("dmarc_quarantine = \"transport\" needs a next hop here: {e}"),
            ));
        }
        let header = &self.quarantine_header;
        let valid = header.split_once(':').is_some_and(|(name, _)| {
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
        }) && !header.contains(['\r', '\n']);
        if !valid {
            issues.push(ConfigIssue::new(
                "mail_auth.quarantine_header",
                format!("must be one header line \"Name: value\", got {header:?}"),
            ));
        }
    }
}

impl MailAuthConfig {
    /// The verifiers' rules; `hostname` is the authserv-id unless one is set.
    pub fn rules(&self, hostname: &str) -> AuthRules {
        let authserv_id = if self.authserv_id.is_empty() {
            hostname
        } else {
            &self.authserv_id
        };
        AuthRules {
            authserv_id: authserv_id.to_string(),
            spf_fail: self.spf_fail,
            dmarc_reject: self.dmarc_reject,
            dmarc_quarantine: self.dmarc_quarantine,
            quarantine_header: self.quarantine_header.clone(),
            quarantine_transport: self.quarantine_transport.trim().to_string(),
            temp_error: self.temp_error,
        }
    }

    /// Threads for DKIM checks.
    pub fn threads(&self) -> usize {
        if self.threads > 0 {
            self.threads
        } else {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        }
    }
}
