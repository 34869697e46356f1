//! State every connection of one sink shares: settings resolved once at start, the
//! counters, the latency histogram and the done signal.

use std::fs::File;
use std::io::BufWriter;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::config::SinkConfig;
use super::counters::{Counters, SinkStats};
use super::replies;
use crate::latency::Latency;

/// One sink's shared state.
pub(crate) struct Shared {
    /// The configuration the sink was started with.
    pub(crate) config: SinkConfig,
    /// Pre-rendered greeting, so a connection costs no formatting.
    pub(crate) greeting: Vec<u8>,
    /// Pre-rendered HELO reply.
    pub(crate) helo: Vec<u8>,
    /// EHLO/LHLO reply before TLS (offers STARTTLS when possible).
    pub(crate) ehlo_plain: Vec<u8>,
    /// EHLO/LHLO reply inside TLS.
    pub(crate) ehlo_tls: Vec<u8>,
    /// TLS acceptor, made once (certificate generation takes milliseconds).
    pub(crate) tls: Option<TlsAcceptor>,
    /// Event counters.
    pub(crate) counters: Counters,
    /// Connections open now.
    pub(crate) active: AtomicU64,
    /// End-to-end latency. A std mutex: held for one record, never across an await.
    pub(crate) latency: Mutex<Latency>,
    /// Message-ID log; a std mutex for the same reason.
    pub(crate) received_log: Option<Mutex<BufWriter<File>>>,
    /// One line per connection (`--connection-log`).
    pub(crate) connection_log: Option<super::scripted::ConnectionLog>,
    /// Last store sequence number handed out.
    pub(crate) seq: AtomicU64,
    /// When the sink started, for uptime and idle tracking.
    pub(crate) started: Instant,
    /// Unix ns of the first accepted message (0 = none yet).
    pub(crate) first_message_ns: AtomicU64,
    /// Unix ns of the latest accepted message.
    pub(crate) last_message_ns: AtomicU64,
    /// Milliseconds after `started` of the latest traffic, for `idle_exit`.
    pub(crate) last_activity_ms: AtomicU64,
    /// Flips to true when `expect` or `idle_exit` says the run is over.
    pub(crate) done: watch::Sender<bool>,
    /// Flips to true when the shutdown grace is over: connections still waiting for a
    /// command answer 421 and close instead of waiting for the client's QUIT.
    pub(crate) closing: watch::Sender<bool>,
}

impl Shared {
    /// Resolves the configuration into ready-to-send replies.
    pub(crate) fn new(
        config: SinkConfig,
        tls: Option<TlsAcceptor>,
        received_log: Option<File>,
    ) -> Self {
        let host = &config.hostname;
        let offer_tls = tls.is_some() && config.starttls;
        let auth = config.auth.is_some();
        Self {
            greeting: replies::greeting(host, config.lmtp),
            helo: replies::helo(host),
            ehlo_plain: replies::ehlo(
                host,
                config.max_message_size,
                offer_tls,
                auth,
                &config.without,
            ),
            ehlo_tls: replies::ehlo(host, config.max_message_size, false, auth, &config.without),
            tls,
            counters: Counters::default(),
            active: AtomicU64::new(0),
            latency: Mutex::new(Latency::new()),
            received_log: received_log.map(|f| Mutex::new(BufWriter::new(f))),
            connection_log: None,
            seq: AtomicU64::new(0),
            started: Instant::now(),
            first_message_ns: AtomicU64::new(0),
            last_message_ns: AtomicU64::new(0),
            last_activity_ms: AtomicU64::new(0),
            done: watch::Sender::new(false),
            closing: watch::Sender::new(false),
            config,
        }
    }

    /// Whether accepted messages must go through the store/log step.
    pub(crate) fn keeps_messages(&self) -> bool {
        self.config.store.is_some() || self.received_log.is_some()
    }

    /// Counts one accepted message.
    pub(crate) fn record_message(
        &self,
        recipients: u64,
        bytes: u64,
        now_ns: u64,
        sent_ns: Option<u64>,
    ) {
        let c = &self.counters;
        c.received.fetch_add(1, Ordering::Relaxed);
        c.recipients.fetch_add(recipients, Ordering::Relaxed);
        c.bytes.fetch_add(bytes, Ordering::Relaxed);
        let _ =
            self.first_message_ns
                .compare_exchange(0, now_ns, Ordering::Relaxed, Ordering::Relaxed);
        self.last_message_ns.fetch_max(now_ns, Ordering::Relaxed);
        if let Some(sent) = sent_ns.filter(|&s| s > 0 && s <= now_ns) {
            let micros = (now_ns - sent) / 1000;
            if let Ok(mut h) = self.latency.lock() {
                h.record_micros(micros);
            }
        }
    }

    /// Notes traffic now, for `idle_exit`.
    pub(crate) fn touch(&self) {
        if self.config.idle_exit.is_some() {
            let ms = self.started.elapsed().as_millis() as u64;
            self.last_activity_ms.store(ms, Ordering::Relaxed);
        }
    }

    /// Called after replies were flushed: signals done once `expect` is reached, so the
    /// last client has its 250 before the sink stops.
    pub(crate) fn check_expect(&self) {
        if let Some(n) = self.config.expect
            && self.counters.received.load(Ordering::Relaxed) >= n
            && !*self.done.borrow()
        {
            self.done.send_replace(true);
        }
    }

    /// A snapshot of the counters and latency.
    pub(crate) fn stats(&self) -> SinkStats {
        let e2e = self
            .latency
            .lock()
            .map(|h| h.percentiles())
            .unwrap_or_default();
        self.counters
            .snapshot(self.active.load(Ordering::Relaxed), e2e)
    }
}
