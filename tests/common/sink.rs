//! smtp-blaster's sink as the downstream server of end-to-end tests, and a reader for
//! the messages it stored.

use std::path::Path;
use std::time::{Duration, Instant};

use smtp_blaster::sink::{self, SinkConfig, SinkHandle};

/// A stored message: its envelope and bytes.
#[derive(Debug, Clone)]
pub struct Stored {
    /// MAIL FROM as the sink got it.
    pub mail_from: String,
    /// MAIL FROM parameters as hermod sent them.
    pub mail_params: String,
    /// Accepted RCPT TOs.
    pub rcpt_to: Vec<String>,
    /// The message bytes as received (unstuffed).
    pub data: Vec<u8>,
}

/// Starts a sink on a free loopback port that keeps every message in `dir`.
pub async fn start(dir: &Path) -> SinkHandle {
    start_with(SinkConfig {
        store: Some(dir.to_path_buf()),
        starttls: false,
        ..SinkConfig::default()
    })
    .await
}

/// Starts a sink on a given loopback port (for a next hop that was down until now).
pub async fn start_on(dir: &Path, port: u16) -> SinkHandle {
    start_with(SinkConfig {
        listen: vec![std::net::SocketAddr::from(([127, 0, 0, 1], port))],
        store: Some(dir.to_path_buf()),
        starttls: false,
        ..SinkConfig::default()
    })
    .await
}

/// Starts a sink with a given config.
pub async fn start_with(config: SinkConfig) -> SinkHandle {
    std::fs::create_dir_all(config.store.as_ref().expect("tests keep messages")).expect("sink dir");
    sink::start(config).await.expect("starting sink")
}

/// The messages stored in `dir`, in arrival order.
pub fn stored(dir: &Path) -> Vec<Stored> {
    let mut seqs: Vec<u64> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json")?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    seqs.sort_unstable();
    seqs.into_iter()
        .map(|seq| {
            let envelope: serde_json::Value =
                serde_json::from_slice(&std::fs::read(dir.join(format!("{seq}.json"))).unwrap())
                    .unwrap();
            Stored {
                mail_from: envelope["mail_from"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                mail_params: envelope["mail_params"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                rcpt_to: envelope["rcpt_to"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default(),
                data: std::fs::read(dir.join(format!("{seq}.eml"))).unwrap(),
            }
        })
        .collect()
}

/// Waits until `dir` holds at least `n` messages; returns them.
pub async fn wait_stored(dir: &Path, n: usize, limit: Duration) -> Vec<Stored> {
    let deadline = Instant::now() + limit;
    loop {
        let messages = stored(dir);
        if messages.len() >= n || Instant::now() > deadline {
            return messages;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A sink on `addr` that keeps its messages in `dir` and logs its connections to
/// `dir/connections.jsonl`, answering `replies` (`--reply` rules) and holding each RCPT
/// reply back `delay_ms`.
pub async fn logging_sink(
    dir: &Path,
    addr: std::net::SocketAddr,
    replies: &[&str],
    delay_ms: u64,
) -> SinkHandle {
    std::fs::create_dir_all(dir).unwrap();
    start_with(SinkConfig {
        listen: vec![addr],
        store: Some(dir.to_path_buf()),
        starttls: false,
        connection_log: Some(dir.join("connections.jsonl")),
        replies: replies.iter().map(|r| r.parse().unwrap()).collect(),
        delays: (delay_ms > 0)
            .then(|| smtp_blaster::sink::Delay {
                point: smtp_blaster::sink::DelayPoint::Rcpt,
                duration: Duration::from_millis(delay_ms),
                odds: 1.0,
            })
            .into_iter()
            .collect(),
        ..SinkConfig::default()
    })
    .await
}

/// One connection as the sink logged it: from where, when it opened, and closed if it
/// has.
#[derive(Debug, Clone)]
pub struct Logged {
    /// The client's address.
    pub peer: String,
    /// When it opened, unix milliseconds.
    pub opened_ms: u64,
    /// When it closed, if it has.
    pub closed_ms: Option<u64>,
}

/// The connections the sink in `dir` logged (`connection_log` = `dir/connections.jsonl`),
/// in the order they opened.
pub fn connections(dir: &Path) -> Vec<Logged> {
    let text = std::fs::read_to_string(dir.join("connections.jsonl")).unwrap_or_default();
    let mut by_id: Vec<(u64, Logged)> = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let (id, at) = (v["id"].as_u64().unwrap(), v["at_ms"].as_u64().unwrap());
        match v["event"].as_str() {
            Some("open") => by_id.push((
                id,
                Logged {
                    peer: v["peer"].as_str().unwrap_or_default().to_string(),
                    opened_ms: at,
                    closed_ms: None,
                },
            )),
            _ => {
                if let Some((_, c)) = by_id.iter_mut().find(|(i, _)| *i == id) {
                    c.closed_ms = Some(at);
                }
            }
        }
    }
    by_id.into_iter().map(|(_, c)| c).collect()
}

/// The most connections open at once.
pub fn most_at_once(log: &[Logged]) -> usize {
    let mut edges: Vec<(u64, i32)> = log
        .iter()
        .flat_map(|c| [(c.opened_ms, 1), (c.closed_ms.unwrap_or(u64::MAX), -1)])
        .collect();
    // A close and an open in the same millisecond: the close first.
    edges.sort();
    let (mut open, mut most) = (0i32, 0i32);
    for (_, step) in edges {
        open += step;
        most = most.max(open);
    }
    usize::try_from(most).unwrap_or(0)
}
