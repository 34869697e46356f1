//! A load generator for HTTP injection APIs (hermod's `POST /api/inject/v1`, and the
//! KumoMTA-shaped APIs it follows): concurrent clients, each posting requests of many
//! recipients until a total of messages is reached, with the request latency, the
//! answers' status codes and the recipients accepted counted. awc (actix's HTTP client)
//! runs on an actix system of its own, on the thread the caller gives it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::latency::Latency;

/// What to send.
#[derive(Debug, Clone)]
pub struct InjectConfig {
    /// `http://host:port/api/inject/v1`.
    pub url: String,
    /// A bearer key, if the API wants one.
    pub key: Option<String>,
    /// Requests under way at once.
    pub concurrency: usize,
    /// Messages (recipients) in all.
    pub messages: u64,
    /// Recipients per request.
    pub recipients: usize,
    /// Octets of each message's body.
    pub size: usize,
    /// The envelope sender and From:.
    pub from: String,
    /// The recipients' domain (`u<request>-<n>@DOMAIN`).
    pub domain: String,
    /// How long one request may take.
    pub timeout: Duration,
}

/// What came of it.
#[derive(Debug, Default)]
pub struct InjectReport {
    /// Requests sent.
    pub requests: u64,
    /// Recipients the server listed as accepted.
    pub accepted: u64,
    /// Answers by HTTP status (`0`: no answer).
    pub statuses: BTreeMap<u16, u64>,
    /// Time from the first request to the last answer.
    pub elapsed: Duration,
    /// Request latency.
    pub latency: Latency,
    /// The first error seen, if any.
    pub first_error: Option<String>,
}

/// Runs the load; call it inside an actix system (`actix_rt::System::new().block_on`).
pub async fn run(config: InjectConfig) -> InjectReport {
    let recipients = config.recipients.max(1) as u64;
    let total_requests = config.messages.div_ceil(recipients);
    let next = Arc::new(AtomicU64::new(0));
    let body = "x".repeat(config.size.saturating_sub(2).max(1));
    let client = awc::Client::builder()
        .timeout(config.timeout)
        .connector(awc::Connector::new().limit(config.concurrency))
        .finish();
    let started = Instant::now();
    let workers = (0..config.concurrency.max(1)).map(|_| {
        let (client, next, config, body) =
            (client.clone(), next.clone(), config.clone(), body.clone());
        async move {
            let mut report = InjectReport::default();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total_requests {
                    return report;
                }
                let count = recipients.min(config.messages - n * recipients);
                let json = request_body(&config, n, count, &body);
                let mut request = client.post(&config.url).content_type("application/json");
                if let Some(key) = &config.key {
                    request = request.bearer_auth(key);
                }
                let sent = Instant::now();
                let answer = request.send_body(json).await;
                report.requests += 1;
                match answer {
                    Ok(mut response) => {
                        let status = response.status().as_u16();
                        let answer = response.body().limit(64 << 20).await.unwrap_or_default();
                        report.latency.record(sent.elapsed());
                        *report.statuses.entry(status).or_default() += 1;
                        let accepted = serde_json::from_slice::<serde_json::Value>(&answer)
                            .ok()
                            .and_then(|v| v["accepted"].as_u64())
                            .unwrap_or(0);
                        report.accepted += accepted;
                        if status != 200 && report.first_error.is_none() {
                            report.first_error = Some(format!(
                                "HTTP {status}: {}",
                                String::from_utf8_lossy(&answer)
                            ));
                        }
                    }
                    Err(e) => {
                        *report.statuses.entry(0).or_default() += 1;
                        report.first_error.get_or_insert_with(|| e.to_string());
                    }
                }
            }
        }
    });
    let reports = futures_util::future::join_all(workers).await;
    let mut all = InjectReport {
        elapsed: started.elapsed(),
        ..InjectReport::default()
    };
    for report in reports {
        all.requests += report.requests;
        all.accepted += report.accepted;
        for (status, n) in report.statuses {
            *all.statuses.entry(status).or_default() += n;
        }
        all.latency.merge(&report.latency);
        if all.first_error.is_none() {
            all.first_error = report.first_error;
        }
    }
    all
}

/// The JSON of request `n` with `count` recipients.
fn request_body(config: &InjectConfig, n: u64, count: u64, body: &str) -> String {
    let recipients: Vec<serde_json::Value> = (0..count)
        .map(|i| serde_json::json!({"email": format!("u{n}-{i}@{}", config.domain)}))
        .collect();
    let content = format!(
        "From: <{}>\r\nSubject: smtp-blaster inject {n}\r\nX-Blaster-Sent: {}\r\n\r\n{body}\r\n",
        config.from,
        crate::latency::unix_ns()
    );
    serde_json::json!({
        "envelope_sender": config.from,
        "recipients": recipients,
        "content": content,
    })
    .to_string()
}
