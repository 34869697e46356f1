//! `[tls_report]`: the aggregate TLS reports (RFC 8460) hermod sends the domains it
//! delivers to that ask for them (`_smtp._tls` TXT with `rua=`).

use std::sync::Arc;
use std::time::Duration;

use hermod_actors::outbound::tls_report::TlsReports;

use super::section::{Key, section};
use super::{ConfigIssue, Section};

section! {
    /// `[tls_report]`: TLS reporting (RFC 8460).
    pub struct TlsReportConfig {
        /// Count every outbound session's TLS outcome and, once a period, send each domain
        /// that publishes `_smtp._tls` its report (mail through hermod's own queue, or an
        /// HTTPS POST).
        pub enabled: bool = true
            => (restart, []),
        /// The period one report covers: a day, as RFC 8460 says (periods start at UTC
        /// midnight); shorter only for tests.
        #[serde(with = "super::duration")]
        pub interval: Duration = Duration::from_secs(86_400)
            => (restart, []),
        /// `organization-name` of the reports; empty: `smtp.hostname`.
        pub organization: String = String::new()
            => (restart, []),
        /// `contact-info` of the reports; empty: `postmaster@` `smtp.hostname`.
        pub contact: String = String::new()
            => (restart, []),
        /// The `From:` of reports sent by mail (their envelope sender is `<>`); empty:
        /// `noreply-tls-reports@` `smtp.hostname`.
        pub from: String = String::new()
            => (restart, []),
        /// HTTPS report destinations may be loopback or private addresses. Off: a domain's
        /// `rua=https://...` cannot make hermod POST into its own network.
        pub private_destinations: bool = false
            => (restart, []),
    }
}

impl Section for TlsReportConfig {
    const KEYS: &'static [Key] = TlsReportConfig::DECLARED;
    const NAME: &'static str = "tls_report";

    fn check(&self, issues: &mut Vec<ConfigIssue>) {
        if self.interval < Duration::from_secs(1) {
            issues.push(ConfigIssue::new(
                "tls_report.interval",
                "must be at least 1s",
            ));
        }
        if !self.from.is_empty() && !self.from.contains('@') {
            issues.push(ConfigIssue::new(
                "tls_report.from",
                format!("{:?} is not an address", self.from),
            ));
        }
    }
}

impl TlsReportConfig {
    /// The counts deliveries keep, in the spool's `tls_reports` tree; `None` when off.
    pub fn counts(&self, db: &sled::Db) -> anyhow::Result<Option<Arc<TlsReports>>> {
        if !self.enabled {
            return Ok(None);
        }
        let tree = db.open_tree("tls_reports")?;
        Ok(Some(Arc::new(TlsReports::new(self.interval, Some(tree)))))
    }

    /// How often the counts are saved and ended periods looked for: every 5 seconds, or
    /// a third of a shorter period.
    pub fn tick(&self) -> Duration {
        (self.interval / 3).clamp(Duration::from_millis(200), Duration::from_secs(5))
    }

    /// Who the reports come from, for a node named `hostname`.
    pub fn reporter(
        &self,
        hostname: &str,
    ) -> hermod_actors::outbound::tls_report::report::Reporter {
        let or = |value: &str, default: String| {
            if value.is_empty() {
                default
            } else {
                value.to_owned()
            }
        };
        hermod_actors::outbound::tls_report::report::Reporter {
            organization: or(&self.organization, hostname.to_owned()),
            contact: or(&self.contact, format!("postmaster@{hostname}")),
            submitter: hostname.to_owned(),
        }
    }

    /// The `From:` address of reports sent by mail.
    pub fn from_address(&self, hostname: &str) -> String {
        if self.from.is_empty() {
            format!("noreply-tls-reports@{hostname}")
        } else {
            self.from.clone()
        }
    }
}
