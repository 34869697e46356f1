//! The I/O half of the sink: accept loops and one task per connection that moves bytes
//! between the socket and the sans-IO [`Session`], sleeps for injected delays, stores
//! messages and upgrades to TLS.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::counters::bump;
use super::replies;
use super::session::{Session, Step};
use super::shared::Shared;
use super::store;
use crate::latency::unix_ns;

/// Read buffer size; a pipelined batch of small messages fits in one read.
const READ_CHUNK: usize = 32 * 1024;

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// After the shutdown grace, how long connections get to flush, say 421 and close.
const CLOSING_TIME: Duration = Duration::from_millis(500);

/// Resolves once the sink is told to stop (at once if it already was).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Accepts connections until `stop`, then gives open ones `shutdown_grace` to finish.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    implicit_tls: bool,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    connections.spawn(connection(tcp, Arc::clone(&shared), implicit_tls));
                }
                // Out of file descriptors or similar: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            () = stopped(&mut stop) => break,
        }
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    // Let clients finish and QUIT on their own within the grace: one cut off after its
    // last 250 but before its QUIT reports a lost connection (smtp-source exits with an
    // error). Then every connection flushes what it owes, answers 421 at its next read
    // and closes, so no counted message goes without its reply; whatever is still open
    // after that (a client that stopped reading) is cut.
    wait_for_no_connections(&shared, shared.config.shutdown_grace).await;
    shared.closing.send_replace(true);
    wait_for_no_connections(&shared, CLOSING_TIME).await;
    connections.shutdown().await;
}

/// Waits until no connection is open, for at most `limit`.
async fn wait_for_no_connections(shared: &Shared, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while shared.active.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Decrements the open connection count however the connection ends.
struct ActiveGuard(Arc<Shared>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Writes a connection's line to the connection log when it ends, however it ends.
struct LoggedConnection {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for LoggedConnection {
    fn drop(&mut self) {
        if let Some(log) = &self.shared.connection_log {
            log.closed(self.id);
        }
    }
}

/// One connection, from greeting to close.
async fn connection(tcp: TcpStream, shared: Arc<Shared>, implicit_tls: bool) {
    let _ = tcp.set_nodelay(true);
    let _logged = shared.connection_log.as_ref().map(|log| LoggedConnection {
        shared: Arc::clone(&shared),
        id: log.opened(tcp.peer_addr().ok(), tcp.local_addr().ok()),
    });
    shared.touch();
    let active = shared.active.fetch_add(1, Ordering::AcqRel) + 1;
    let _guard = ActiveGuard(Arc::clone(&shared));
    if shared
        .config
        .max_connections
        .is_some_and(|max| active as usize > max)
    {
        bump(&shared.counters.rejected_connections);
        let mut tcp = tcp;
        let _ = tcp.write_all(replies::TOO_MANY_CONNECTIONS).await;
        let _ = tcp.shutdown().await;
        return;
    }
    bump(&shared.counters.connections);
    let mut conn = Connection {
        session: Session::new(Arc::clone(&shared)),
        input: BytesMut::with_capacity(READ_CHUNK),
        out: Vec::with_capacity(4096),
        closing: shared.closing.subscribe(),
        shared,
    };
    let _ = conn.run(tcp, implicit_tls).await;
}

/// How a plain-text phase ended.
enum Exit {
    Closed,
    StartTls,
}

/// Buffers and state of one connection.
struct Connection {
    session: Session,
    input: BytesMut,
    out: Vec<u8>,
    /// Set once the shutdown grace is over.
    closing: watch::Receiver<bool>,
    shared: Arc<Shared>,
}

impl Connection {
    /// Runs the session, upgrading to TLS when asked.
    async fn run(&mut self, tcp: TcpStream, implicit_tls: bool) -> io::Result<()> {
        if implicit_tls {
            let mut tls = self.handshake(tcp).await?;
            self.session.greet(&mut self.out);
            self.serve(&mut tls).await?;
            return Ok(());
        }
        let mut tcp = tcp;
        self.session.greet(&mut self.out);
        if let Exit::StartTls = self.serve(&mut tcp).await? {
            if self.shared.config.broken_tls {
                tcp.write_all(b"this is not a TLS handshake\r\n").await?;
                return Ok(());
            }
            // Anything pipelined after STARTTLS is plain text an attacker could inject.
            self.input.clear();
            let mut tls = self.handshake(tcp).await?;
            self.serve(&mut tls).await?;
        }
        Ok(())
    }

    /// The server side of a TLS handshake, counted either way.
    async fn handshake(
        &mut self,
        tcp: TcpStream,
    ) -> io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
        let acceptor = self
            .shared
            .tls
            .clone()
            .ok_or_else(|| io::Error::other("no TLS"))?;
        let result = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await;
        match result {
            Ok(Ok(tls)) => {
                bump(&self.shared.counters.tls_handshakes);
                self.session.tls_started();
                Ok(tls)
            }
            Ok(Err(e)) => {
                bump(&self.shared.counters.tls_failures);
                Err(e)
            }
            Err(_) => {
                bump(&self.shared.counters.tls_failures);
                Err(io::ErrorKind::TimedOut.into())
            }
        }
    }

    /// Feeds input to the session and carries out its steps until the phase ends.
    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
    ) -> io::Result<Exit> {
        loop {
            match self.session.feed(&mut self.input, unix_ns(), &mut self.out) {
                Step::NeedInput => {
                    if !self.out.is_empty() {
                        // Let the other ready connections run first, so replies go out
                        // in a burst and a client waiting on many sessions wakes once
                        // for several of them instead of once per reply.
                        tokio::task::yield_now().await;
                    }
                    self.flush(stream).await?;
                    if !self.read(stream).await? {
                        return Ok(Exit::Closed);
                    }
                }
                Step::Pause(pause) => {
                    tokio::time::sleep(pause).await;
                    // A held reply is traffic too: --idle-exit must not fire during it.
                    self.shared.touch();
                }
                Step::Deliver(delivery) => {
                    let stored = store::deliver(&self.shared, delivery).await;
                    self.session.delivered(stored, unix_ns(), &mut self.out);
                }
                Step::StartTls => {
                    self.flush(stream).await?;
                    return Ok(Exit::StartTls);
                }
                Step::Close => {
                    self.flush(stream).await?;
                    let _ = stream.shutdown().await;
                    return Ok(Exit::Closed);
                }
                Step::Drop => return Ok(Exit::Closed),
            }
        }
    }

    /// Writes the pending replies in one write.
    async fn flush<S: AsyncWrite + Unpin>(&mut self, stream: &mut S) -> io::Result<()> {
        if !self.out.is_empty() {
            stream.write_all(&self.out).await?;
            self.out.clear();
            self.shared.check_expect();
        }
        Ok(())
    }

    /// Reads more input; false when the client is gone or timed out.
    async fn read<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
    ) -> io::Result<bool> {
        if self.input.capacity() - self.input.len() < READ_CHUNK / 4 {
            self.input.reserve(READ_CHUNK);
        }
        let timeout = self.shared.config.command_timeout;
        let read = tokio::select! {
            biased;
            _ = self.closing.wait_for(|closing| *closing) => None,
            read = tokio::time::timeout(timeout, stream.read_buf(&mut self.input)) => Some(read),
        };
        let Some(read) = read else {
            // Everything answered so far is flushed; the client had its grace.
            let _ = stream.write_all(replies::SHUTTING_DOWN).await;
            return Ok(false);
        };
        match read {
            Ok(Ok(0)) => Ok(false),
            Ok(Ok(_)) => {
                self.shared.touch();
                Ok(true)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => {
                bump(&self.shared.counters.timeouts);
                let _ = stream.write_all(replies::TIMEOUT).await;
                Ok(false)
            }
        }
    }
}
