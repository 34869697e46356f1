//! A running sink: its addresses, live stats, the done signal and shutdown.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::counters::{SinkStats, SinkSummary};
use super::shared::Shared;

/// A running sink. Dropping it stops the listeners; [`SinkHandle::shutdown`] also
/// waits for open connections and returns the summary.
pub struct SinkHandle {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    plain: Vec<SocketAddr>,
    implicit_tls: Vec<SocketAddr>,
}

impl SinkHandle {
    /// A handle with no listeners yet.
    pub(crate) fn new(shared: Arc<Shared>, stop: watch::Sender<bool>) -> Self {
        Self {
            shared,
            stop,
            tasks: Vec::new(),
            plain: Vec::new(),
            implicit_tls: Vec::new(),
        }
    }

    /// Records a bound listener address.
    pub(crate) fn add_listener(&mut self, addr: SocketAddr, implicit_tls: bool) {
        if implicit_tls {
            self.implicit_tls.push(addr)
        } else {
            self.plain.push(addr)
        }
    }

    /// Records a background task to wait for at shutdown.
    pub(crate) fn add_task(&mut self, task: JoinHandle<()>) {
        self.tasks.push(task);
    }

    /// The bound addresses of the plain (SMTP/LMTP with STARTTLS) listeners, with the
    /// real port when port 0 was asked for.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.plain.clone()
    }

    /// The bound addresses of the implicit-TLS listeners.
    pub fn tls_addrs(&self) -> Vec<SocketAddr> {
        self.implicit_tls.clone()
    }

    /// A live snapshot of the counters and the end-to-end latency so far.
    pub fn stats(&self) -> SinkStats {
        self.shared.stats()
    }

    /// A cheap function returning live stats, for a display task that outlives a borrow.
    pub fn stats_source(&self) -> impl Fn() -> SinkStats + Send + 'static {
        let shared = Arc::clone(&self.shared);
        move || shared.stats()
    }

    /// Resolves once `expect` messages arrived or `idle_exit` passed without traffic;
    /// never, if neither is configured.
    pub async fn done(&self) {
        let mut done = self.shared.done.subscribe();
        let _ = done.wait_for(|d| *d).await;
    }

    /// Waits until at least `n` messages were accepted; false if `timeout` passed first.
    /// Polls every few milliseconds: meant for tests.
    pub async fn wait_received(&self, n: u64, timeout: Duration) -> bool {
        let poll = async {
            while self.shared.counters.received.load(Ordering::Relaxed) < n {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(timeout, poll).await.is_ok()
    }

    /// Stops the listeners, lets open connections finish within the grace period,
    /// flushes the received log and returns the summary.
    pub async fn shutdown(mut self) -> SinkSummary {
        self.stop.send_replace(true);
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
        if let Some(log) = &self.shared.received_log
            && let Ok(mut w) = log.lock()
        {
            let _ = w.flush();
        }
        summary(&self.shared)
    }
}

impl Drop for SinkHandle {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// The summary from the shared counters.
fn summary(shared: &Shared) -> SinkSummary {
    let stats = shared.stats();
    let uptime_s = shared.started.elapsed().as_secs_f64();
    let first = shared.first_message_ns.load(Ordering::Relaxed);
    let last = shared.last_message_ns.load(Ordering::Relaxed);
    let elapsed_s = if stats.received >= 2 && last > first {
        (last - first) as f64 / 1e9
    } else {
        uptime_s
    };
    let rate_per_s = if elapsed_s > 0.0 {
        stats.received as f64 / elapsed_s
    } else {
        0.0
    };
    SinkSummary {
        stats,
        elapsed_s,
        uptime_s,
        rate_per_s,
        first_message_unix_s: first as f64 / 1e9,
        last_message_unix_s: last as f64 / 1e9,
    }
}

/// Signals done after `idle` without traffic (no connection accepted, no bytes read),
/// counted from start-up until the first traffic.
pub(crate) async fn watch_idle(
    shared: Arc<Shared>,
    idle: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let tick = (idle / 4).clamp(Duration::from_millis(10), Duration::from_millis(250));
    let idle_ms = idle.as_millis() as u64;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            () = super::server::stopped(&mut stop) => return,
        }
        let now = shared.started.elapsed().as_millis() as u64;
        let last = shared.last_activity_ms.load(Ordering::Relaxed);
        // Open but silent connections do not hold the sink up: a relay may keep idle
        // connections in its pool for minutes.
        if now.saturating_sub(last) >= idle_ms {
            shared.done.send_replace(true);
            return;
        }
    }
}
