//! The sink: an SMTP/LMTP server that accepts everything as fast as it can, counts it,
//! measures end-to-end latency from `X-Blaster-Sent`, and injects failures on request.
//!
//! Start one with [`start`], read live [`SinkStats`] from the [`SinkHandle`], and get
//! the [`SinkSummary`] from [`SinkHandle::shutdown`].
//!
//! # Layout
//!
//! - `config`: [`SinkConfig`] and the failure-injection types.
//! - `replies`: every reply text.
//! - `command`, `data`, `body`, `headers`: pure parsing (command lines, DATA
//!   unstuffing, what is kept of a message, the two headers read).
//! - `session`: the sans-IO protocol state machine.
//! - `server`: sockets, TLS upgrade, delays; `store`: message files and Message-ID log.
//! - `shared`, `counters`: state shared by all connections and its snapshots.
//! - `handle`: [`SinkHandle`], the running sink.

mod body;
mod command;
mod config;
mod counters;
mod data;
mod handle;
mod headers;
mod replies;
mod scripted;
mod server;
mod session;
mod shared;
mod store;

use std::fs::File;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

pub use config::{
    Delay, DelayError, DelayPoint, FailAt, NotFailAt, SinkConfig, TlsFiles, UnknownDelayPoint,
};
pub use counters::{SinkStats, SinkSummary};
pub use handle::SinkHandle;
pub use scripted::{NotReplyRule, ReplyRule};
use shared::Shared;

/// Connections the kernel keeps waiting for `accept` on one listener (tokio's default is
/// 1024): a relay that opens thousands of connections at once (one per destination) would
/// otherwise see some of them accepted by the kernel and never greeted.
const LISTEN_BACKLOG: u32 = 8192;

/// A listener on `addr` with room for [`LISTEN_BACKLOG`] connections waiting.
fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Binds every listener and starts serving on the current tokio runtime.
///
/// Fails if a listener cannot be bound, the store directory or received log cannot be
/// created, or the TLS certificate cannot be loaded or made.
pub async fn start(config: SinkConfig) -> std::io::Result<SinkHandle> {
    let invalid =
        |e: anyhow::Error| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{e:#}"));
    if let Some(dir) = &config.store {
        std::fs::create_dir_all(dir)?;
    }
    let received_log = match &config.received_log {
        // Truncated like send's --accepted-log, so the two lists of one run compare.
        Some(path) => Some(File::create(path)?),
        None => None,
    };
    let tls_wanted = config.starttls || !config.listen_tls.is_empty();
    let tls = if tls_wanted {
        let server =
            crate::tls::server_config(config.tls.as_ref(), &config.hostname).map_err(invalid)?;
        Some(TlsAcceptor::from(server))
    } else {
        None
    };
    let mut plain = Vec::new();
    for addr in &config.listen {
        plain.push(listen(*addr)?);
    }
    let mut implicit = Vec::new();
    for addr in &config.listen_tls {
        implicit.push(listen(*addr)?);
    }
    let connection_log = match &config.connection_log {
        Some(path) => Some(scripted::ConnectionLog::new(File::create(path)?)),
        None => None,
    };
    let mut shared = Shared::new(config, tls, received_log);
    shared.connection_log = connection_log;
    let shared = Arc::new(shared);
    let (stop, stop_rx) = watch::channel(false);
    let mut handle = SinkHandle::new(Arc::clone(&shared), stop);
    for (listener, implicit_tls) in plain
        .into_iter()
        .map(|l| (l, false))
        .chain(implicit.into_iter().map(|l| (l, true)))
    {
        handle.add_listener(listener.local_addr()?, implicit_tls);
        let task =
            server::accept_loop(listener, Arc::clone(&shared), stop_rx.clone(), implicit_tls);
        handle.add_task(tokio::spawn(task));
    }
    if let Some(idle) = shared.config.idle_exit {
        handle.add_task(tokio::spawn(handle::watch_idle(
            Arc::clone(&shared),
            idle,
            stop_rx,
        )));
    }
    Ok(handle)
}
