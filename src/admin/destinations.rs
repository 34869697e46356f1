//! The queue by destination, for `/stats` and the status page: per recipient domain, the
//! recipients and messages waiting, the oldest one's age and the last deferral reason.
//! Counted from a scan of the spool (so it includes mail put away until its retry),
//! kept for [`FRESH_FOR`] so that a status page polling every few seconds does not
//! rescan a large queue each time; the largest [`TOP`] domains are named, the rest sum
//! up as `"(other)"`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hermod_actors::store::spool::{RecipientStatus, Spool, SpoolError};

/// How long a count is reused.
pub const FRESH_FOR: Duration = Duration::from_secs(5);
/// Domains listed by name.
pub const TOP: usize = 20;

/// The last count, and when it was made; and the destinations the per-destination
/// gauges were last published for.
#[derive(Default)]
pub struct Cache(
    Mutex<Option<(Instant, serde_json::Value)>>,
    Mutex<HashSet<String>>,
);

#[derive(Default)]
struct Destination {
    recipients: usize,
    messages: usize,
    oldest_arrival: Option<u64>,
    last_reply: Option<String>,
}

impl Cache {
    /// The queue by destination, counted again when the last count is older than
    /// [`FRESH_FOR`]. Blocking: call it off the async threads.
    pub fn get(&self, spool: &Arc<dyn Spool>) -> Result<serde_json::Value, SpoolError> {
        let mut cached = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, value)) = cached.as_ref()
            && at.elapsed() < FRESH_FOR
        {
            return Ok(value.clone());
        }
        let value = count(spool.as_ref())?;
        *cached = Some((Instant::now(), value.clone()));
        Ok(value)
    }
}

impl Cache {
    /// Sets the per-destination gauges from a count (`rows` from [`Cache::get`]); a
    /// destination that left the count is set to zero, so no stale value lingers. The
    /// labels are bounded: the [`TOP`] largest domains and `(other)`.
    pub fn publish_gauges(&self, rows: &serde_json::Value) {
        let mut published = self.1.lock().unwrap_or_else(|e| e.into_inner());
        let mut now_published = HashSet::new();
        for row in rows.as_array().into_iter().flatten() {
            let Some(domain) = row["domain"].as_str() else {
                continue;
            };
            let recipients = row["recipients"].as_f64().unwrap_or(0.0);
            let oldest = row["oldest_age_s"].as_f64().unwrap_or(0.0);
            metrics::gauge!("queue_destination_recipients", "destination" => domain.to_string())
                .set(recipients);
            metrics::gauge!("queue_destination_oldest_age_seconds", "destination" => domain.to_string())
                .set(oldest);
            now_published.insert(domain.to_string());
        }
        for gone in published.difference(&now_published) {
            metrics::gauge!("queue_destination_recipients", "destination" => gone.clone()).set(0.0);
            metrics::gauge!("queue_destination_oldest_age_seconds", "destination" => gone.clone())
                .set(0.0);
        }
        *published = now_published;
    }
}

/// Help texts of the metrics published here, for the Prometheus exporter.
pub fn describe_metrics() {
    metrics::describe_gauge!(
        "queue_destination_recipients",
        "Recipients waiting per destination domain (the 20 largest, the rest as (other)), counted at scrape time."
    );
    metrics::describe_gauge!(
        "queue_destination_oldest_age_seconds",
        metrics::Unit::Seconds,
        "Age of the oldest message waiting per destination domain (the 20 largest, the rest as (other))."
    );
}

fn count(spool: &dyn Spool) -> Result<serde_json::Value, SpoolError> {
    let now = super::unix_now();
    let mut by_domain: HashMap<String, Destination> = HashMap::new();
    spool.scan(None, &mut |_, envelope| {
        let mut seen: Vec<&str> = Vec::new();
        for rcpt in &envelope.recipients {
            let reply = match &rcpt.status {
                RecipientStatus::Pending => None,
                RecipientStatus::Deferred { last_reply, .. } => Some(last_reply),
                _ => continue,
            };
            let d = by_domain.entry(rcpt.domain.clone()).or_default();
            d.recipients += 1;
            if !seen.contains(&rcpt.domain.as_str()) {
                seen.push(&rcpt.domain);
                d.messages += 1;
            }
            d.oldest_arrival = Some(
                d.oldest_arrival
                    .map_or(envelope.arrival, |a| a.min(envelope.arrival)),
            );
            if let Some(reply) = reply {
                d.last_reply = Some(reply.clone());
            }
        }
        true
    })?;
    let mut domains: Vec<(String, Destination)> = by_domain.into_iter().collect();
    domains.sort_by(|a, b| b.1.recipients.cmp(&a.1.recipients).then(a.0.cmp(&b.0)));
    let mut rows: Vec<serde_json::Value> = Vec::new();
    let mut other = Destination::default();
    for (i, (domain, d)) in domains.into_iter().enumerate() {
        if i < TOP {
            rows.push(row(&domain, &d, now));
        } else {
            other.recipients += d.recipients;
            other.messages += d.messages;
            other.oldest_arrival = match (other.oldest_arrival, d.oldest_arrival) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
    }
    if other.recipients > 0 {
        rows.push(row("(other)", &other, now));
    }
    Ok(serde_json::Value::Array(rows))
}

fn row(domain: &str, d: &Destination, now: u64) -> serde_json::Value {
    serde_json::json!({
        "domain": domain,
        "recipients": d.recipients,
        "messages": d.messages,
        "oldest_age_s": d.oldest_arrival.map(|a| now.saturating_sub(a)),
        "last_reply": d.last_reply,
    })
}
