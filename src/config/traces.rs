//! `[tracing]`: one OpenTelemetry trace per message, from the connection that brought it
//! through the queue to every delivery attempt, sent over OTLP/HTTP to a collector.

use std::path::PathBuf;
use std::time::Duration;

use awc::http::header::{HeaderName, HeaderValue};

use super::section::{Key, section};
use super::{ConfigIssue, Section, at_least_one, longer_than_zero};

section! {
    /// `[tracing]`: OpenTelemetry traces of messages.
    pub struct TracingConfig {
        /// Send a trace of each message to `endpoint`.
        pub enabled: bool = false
            => (restart, ["SMTP_ENABLE_TRACING"]),
        /// `service.name` of hermod's spans (one per node or per fleet, as the collector's
        /// views want it).
        pub service_name: String = "hermod".into()
            => (restart, ["SMTP_TRACING_SERVICE_NAME"]),
        /// The collector's OTLP/HTTP traces URL (protobuf); http or https (the system's
        /// roots).
        pub endpoint: String = "http://127.0.0.1:4318/v1/traces".into()
            => (restart, ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]),
        /// The share of messages traced, 0.0 to 1.0 (by trace id, so every span of a
        /// traced message is kept and the others cost next to nothing).
        pub sample_ratio: f64 = 1.0
            => (restart, []),
        /// Time the collector gets to answer one request (an export that fails is retried,
        /// up to three times, within about twice this).
        #[serde(with = "super::duration")]
        pub timeout: Duration = Duration::from_secs(10)
            => (restart, []),
        /// Finished spans waiting for export; past it new ones are dropped (counted in
        /// `tracing_spans_dropped_total`) rather than hold memory or slow the mail.
        pub max_queue: usize = 16_384
            => (restart, []),
        /// File of header fields sent with every export (`Name: value` a line; mode 0600):
        /// a collector's API key. Empty: none.
        pub headers_file: PathBuf = PathBuf::new()
            => (restart, []),
    }
}

/// The most spans `max_queue` may hold: the batch processor allocates its queue at start.
pub const MAX_QUEUE: usize = 1 << 20;

impl Section for TracingConfig {
    const KEYS: &'static [Key] = TracingConfig::DECLARED;
    const NAME: &'static str = "tracing";

    fn check(&self, issues: &mut Vec<ConfigIssue>) {
        longer_than_zero(issues, &[("tracing.timeout", self.timeout)]);
        at_least_one(issues, &[("tracing.max_queue", self.max_queue as u64)]);
        if self.max_queue > MAX_QUEUE {
            issues.push(ConfigIssue::new(
                "tracing.max_queue",
                format!("at most {MAX_QUEUE} (the queue is allocated at start)"),
            ));
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            issues.push(ConfigIssue::new(
                "tracing.sample_ratio",
                "must be between 0.0 and 1.0",
            ));
        }
        if self.service_name.trim().is_empty() {
            issues.push(ConfigIssue::new(
                "tracing.service_name",
                "must not be empty",
            ));
        }
        match self.endpoint.parse::<awc::http::Uri>() {
            Ok(uri)
                if matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some() => {}
            _ => issues.push(ConfigIssue::new(
                "tracing.endpoint",
                format!("{:?} is not an http:// or https:// URL", self.endpoint),
            )),
        }
        if let Err(e) = self.headers() {
            issues.push(ConfigIssue::new("tracing.headers_file", e));
        }
    }
}

impl TracingConfig {
    /// The header fields of `headers_file`, none when it is not set.
    pub fn headers(&self) -> anyhow::Result<Vec<(String, String)>> {
        if self.headers_file.as_os_str().is_empty() {
            return Ok(Vec::new());
        }
        let path = &self.headers_file;
        super::secret_file::check(path)?;
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        let mut headers = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // As the HTTP client will take them: a name it would refuse is dropped there
            // without a word, and the collector would only say 401.
            let field = line.split_once(':').and_then(|(name, value)| {
                let (name, value) = (name.trim(), value.trim());
                let valid = HeaderName::from_bytes(name.as_bytes()).is_ok()
                    && HeaderValue::from_str(value).is_ok();
                valid.then(|| (name.to_ascii_lowercase(), value.to_string()))
            });
            match field {
                Some((name, _)) if headers.iter().any(|(n, _)| *n == name) => anyhow::bail!(
                    "{} line {} repeats the header field {name}",
                    path.display(),
                    n + 1
                ),
                Some(field) => headers.push(field),
                // The line may hold a secret: only its number is said.
                None => anyhow::bail!("{} line {} is not `Name: value`", path.display(), n + 1),
            }
        }
        Ok(headers)
    }
}
