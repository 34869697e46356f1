//! What every connection worker of one run shares.

use std::fs::File;
use std::io::BufWriter;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio_rustls::TlsConnector;

use super::config::SendConfig;
use super::message::Content;
use super::source::Source;

/// Shared, read-mostly state of a run.
pub(crate) struct Ctx {
    /// The run's configuration.
    pub(crate) config: SendConfig,
    /// Pre-rendered messages.
    pub(crate) content: Content,
    /// Message counter and schedule.
    pub(crate) source: Source,
    /// TLS client, when TLS or STARTTLS is asked for.
    pub(crate) tls: Option<TlsConnector>,
    /// Accepted Message-IDs; a std mutex, held for one line.
    pub(crate) accepted_log: Option<Mutex<BufWriter<File>>>,
    /// When the run started.
    pub(crate) start: Instant,
    /// Live count of finished messages, for the progress bar.
    pub(crate) finished: AtomicU64,
    /// Live count of accepted messages, for the progress bar.
    pub(crate) accepted: AtomicU64,
    /// Connections opened so far, which picks the next server of a fleet.
    pub(crate) turns: AtomicU64,
}

impl Ctx {
    /// The servers to try for a new connection, in order: the next in turn first.
    pub(crate) fn servers_in_turn(&self) -> Vec<std::net::SocketAddr> {
        let all: Vec<std::net::SocketAddr> = std::iter::once(self.config.server)
            .chain(self.config.more_servers.iter().copied())
            .collect();
        let first = (self.turns.fetch_add(1, Ordering::Relaxed) % all.len() as u64) as usize;
        all[first..].iter().chain(&all[..first]).copied().collect()
    }
}

impl Ctx {
    /// Counts a finished message for the progress bar.
    pub(crate) fn progress(&self, accepted: bool) {
        self.finished.fetch_add(1, Ordering::Relaxed);
        if accepted {
            self.accepted.fetch_add(1, Ordering::Relaxed);
        }
    }
}
