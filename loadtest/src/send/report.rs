//! Counting a run: each connection keeps a private [`Tally`] (no sharing on the hot
//! path), and the tallies are merged into one [`Report`] at the end.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::outcome::{ErrorKind, Outcome};
use crate::latency::{Latency, Percentiles};

/// Counts kept by one connection worker.
#[derive(Debug, Clone)]
pub(crate) struct Tally {
    pub(crate) sent: u64,
    pub(crate) accepted: u64,
    pub(crate) temp_failed: u64,
    pub(crate) perm_failed: u64,
    errors: [u64; ErrorKind::ALL.len()],
    codes: BTreeMap<u16, u64>,
    pub(crate) latency: Latency,
    pub(crate) lag: Latency,
    pub(crate) late: u64,
    pub(crate) recipients_accepted: u64,
    pub(crate) recipients_refused: u64,
    pub(crate) bytes: u64,
    pub(crate) connections: u64,
    /// Messages finished per second of the run: (accepted, not accepted).
    timeline: Vec<(u64, u64)>,
    last_finish: Option<Instant>,
    start: Instant,
}

/// Lateness past which a scheduled message counts as late. Well above the timer's
/// 1 ms tick, so only a sender that truly fell behind (all connections busy) counts.
const LATE: Duration = Duration::from_millis(10);

impl Tally {
    /// An empty tally for a run that started at `start`.
    pub(crate) fn new(start: Instant) -> Self {
        Self {
            sent: 0,
            accepted: 0,
            temp_failed: 0,
            perm_failed: 0,
            errors: [0; ErrorKind::ALL.len()],
            codes: BTreeMap::new(),
            latency: Latency::new(),
            lag: Latency::new(),
            late: 0,
            recipients_accepted: 0,
            recipients_refused: 0,
            bytes: 0,
            connections: 0,
            timeline: Vec::new(),
            last_finish: None,
            start,
        }
    }

    /// Counts one reply code.
    pub(crate) fn code(&mut self, code: u16) {
        *self.codes.entry(code).or_default() += 1;
    }

    /// Counts how late a scheduled message started.
    pub(crate) fn started(&mut self, due: Instant, now: Instant) {
        let lag = now.saturating_duration_since(due);
        self.lag.record(lag);
        if lag > LATE {
            self.late += 1;
        }
    }

    /// Counts one finished message whose clock started at `origin`.
    pub(crate) fn finish(&mut self, outcome: Outcome, origin: Instant, now: Instant) {
        self.sent += 1;
        self.last_finish = Some(self.last_finish.map_or(now, |t| t.max(now)));
        let latency = now.saturating_duration_since(origin);
        let second = now.saturating_duration_since(self.start).as_secs() as usize;
        if self.timeline.len() <= second {
            self.timeline.resize(second + 1, (0, 0));
        }
        match outcome {
            Outcome::Accepted => {
                self.accepted += 1;
                self.latency.record(latency);
                self.timeline[second].0 += 1;
            }
            Outcome::TempFailed => self.temp_failed += 1,
            Outcome::PermFailed => self.perm_failed += 1,
            Outcome::Error(kind) => {
                if let Some(i) = ErrorKind::ALL.iter().position(|k| *k == kind) {
                    self.errors[i] += 1;
                }
            }
        }
        if outcome != Outcome::Accepted {
            self.timeline[second].1 += 1;
        }
    }

    /// Adds another worker's tally.
    pub(crate) fn merge(&mut self, other: &Tally) {
        self.sent += other.sent;
        self.accepted += other.accepted;
        self.temp_failed += other.temp_failed;
        self.perm_failed += other.perm_failed;
        for (mine, theirs) in self.errors.iter_mut().zip(other.errors) {
            *mine += theirs;
        }
        for (code, n) in &other.codes {
            *self.codes.entry(*code).or_default() += n;
        }
        self.latency.merge(&other.latency);
        self.lag.merge(&other.lag);
        self.late += other.late;
        self.recipients_accepted += other.recipients_accepted;
        self.recipients_refused += other.recipients_refused;
        self.bytes += other.bytes;
        self.connections += other.connections;
        self.last_finish = match (self.last_finish, other.last_finish) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if self.timeline.len() < other.timeline.len() {
            self.timeline.resize(other.timeline.len(), (0, 0));
        }
        for (i, (a, f)) in other.timeline.iter().enumerate() {
            self.timeline[i].0 += a;
            self.timeline[i].1 += f;
        }
    }

    /// When the last message finished.
    pub(crate) fn last_finish(&self) -> Option<Instant> {
        self.last_finish
    }

    /// The report, given how long the run took.
    pub(crate) fn report(&self, elapsed: Duration, open_loop: Option<f64>) -> Report {
        let elapsed_s = elapsed.as_secs_f64();
        let per_s = |n: u64| {
            if elapsed_s > 0.0 {
                n as f64 / elapsed_s
            } else {
                0.0
            }
        };
        let errors_by_kind = ErrorKind::ALL
            .iter()
            .zip(self.errors)
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| (k.name().to_string(), n))
            .collect();
        Report {
            sent: self.sent,
            accepted: self.accepted,
            temp_failed: self.temp_failed,
            perm_failed: self.perm_failed,
            errors: self.errors.iter().sum(),
            errors_by_kind,
            elapsed_s,
            rate_per_s: per_s(self.accepted),
            sent_per_s: per_s(self.sent),
            latency_ms: self.latency.percentiles(),
            reply_codes: self
                .codes
                .iter()
                .map(|(c, n)| (c.to_string(), *n))
                .collect(),
            recipients_accepted: self.recipients_accepted,
            recipients_refused: self.recipients_refused,
            bytes: self.bytes,
            connections: self.connections,
            schedule: open_loop.map(|rate| Schedule {
                rate_per_s: rate,
                late: self.late,
                behind_ms: self.lag.percentiles(),
            }),
            timeline: self
                .timeline
                .iter()
                .enumerate()
                .map(|(second, (accepted, failed))| Second {
                    second: second as u64,
                    accepted: *accepted,
                    failed: *failed,
                })
                .collect(),
            latency_cdf: self.latency.cdf(),
        }
    }
}

/// The result of a send run, written by `--json`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Messages attempted (each has exactly one outcome below).
    pub sent: u64,
    /// Messages accepted after the data.
    pub accepted: u64,
    /// Messages refused with a 4xx (or 421).
    pub temp_failed: u64,
    /// Messages refused with a 5xx.
    pub perm_failed: u64,
    /// Messages lost to a broken exchange.
    pub errors: u64,
    /// `errors` by kind (`timeout`, `reset`, `malformed_reply`, ...).
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Seconds from start to the last finished message.
    pub elapsed_s: f64,
    /// Accepted messages per second.
    pub rate_per_s: f64,
    /// Finished messages (any outcome) per second.
    pub sent_per_s: f64,
    /// Latency of accepted messages: from due time (open loop) or from when the
    /// connection took the message (closed loop), to the final reply.
    pub latency_ms: Percentiles,
    /// How many replies of each code arrived (all commands).
    pub reply_codes: BTreeMap<String, u64>,
    /// Recipients accepted at RCPT.
    pub recipients_accepted: u64,
    /// Recipients refused at RCPT.
    pub recipients_refused: u64,
    /// Message bytes written (DATA form or BDAT chunks).
    pub bytes: u64,
    /// Connections opened.
    pub connections: u64,
    /// Open loop only: how far behind schedule messages started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// Per-second counts, for plots.
    pub timeline: Vec<Second>,
    /// `(latency ms, share at or below)` of accepted messages.
    #[serde(skip)]
    pub latency_cdf: Vec<(f64, f64)>,
}

/// How an open-loop run kept to its schedule.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Schedule {
    /// The asked-for rate.
    pub rate_per_s: f64,
    /// Messages that started more than 10 ms after they were due (every connection
    /// was still busy: the server is not keeping up with the rate).
    pub late: u64,
    /// How far behind their due time messages started.
    pub behind_ms: Percentiles,
}

/// One second of the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Second {
    /// Seconds since the start.
    pub second: u64,
    /// Messages accepted in that second.
    pub accepted: u64,
    /// Messages that ended otherwise in that second.
    pub failed: u64,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "sent {} in {:.2} s: accepted {} ({:.0}/s), temp-failed {}, perm-failed {}, errors {}",
            self.sent,
            self.elapsed_s,
            self.accepted,
            self.rate_per_s,
            self.temp_failed,
            self.perm_failed,
            self.errors
        )?;
        writeln!(f, "latency: {}", self.latency_ms)?;
        if let Some(s) = &self.schedule {
            writeln!(
                f,
                "schedule {:.0}/s: {} late by > 10 ms; behind by p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                s.rate_per_s, s.late, s.behind_ms.p50, s.behind_ms.p99, s.behind_ms.max
            )?;
        }
        let codes: Vec<String> = self
            .reply_codes
            .iter()
            .map(|(c, n)| format!("{c}: {n}"))
            .collect();
        writeln!(f, "replies: {}", codes.join(", "))?;
        if !self.errors_by_kind.is_empty() {
            let kinds: Vec<String> = self
                .errors_by_kind
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect();
            writeln!(f, "errors: {}", kinds.join(", "))?;
        }
        write!(
            f,
            "connections: {}, bytes: {}",
            self.connections, self.bytes
        )
    }
}
