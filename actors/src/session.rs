//! The Session actor: owns one client connection — its socket and its timers — and drives
//! the sans-IO protocol ([`ServerSession`]) over it. It sends [`Enqueue`] to the Queue
//! and writes the Queue's answer; it tells the Listener when it ends.
//!
//! Reading is buffered and the protocol consumes complete lines only, so bytes that were
//! pipelined behind a command stay in the buffer; STARTTLS (when offered) drops them, as
//! RFC 3207 requires, before the handshake.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::prelude::*;
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::timeout;

use crate::queue::Enqueue;
use crate::smtp::{Event, Reply, ServerSession, ServerSettings};

/// Sent to the Listener when a session ends, so it can release the connection slot.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct SessionEnded {
    /// The client's address.
    pub peer: SocketAddr,
}

/// Timeouts of one session, from `[smtp]`.
#[derive(Debug, Clone, Copy)]
pub struct SessionTimeouts {
    /// Until the first command.
    pub greeting: Duration,
    /// Each further command.
    pub command: Duration,
    /// Each read of message data.
    pub data: Duration,
    /// Waiting for the Queue to store a message.
    pub enqueue: Duration,
}

/// Everything a session needs besides its socket, shared by all sessions.
#[derive(Clone)]
pub struct SessionContext {
    /// Protocol settings.
    pub settings: Arc<ServerSettings>,
    /// Timeouts.
    pub timeouts: SessionTimeouts,
    /// Where accepted messages go.
    pub queue: Recipient<Enqueue>,
    /// Who is told when the session ends.
    pub listener: Recipient<SessionEnded>,
    /// Turns true when the server drains (SIGTERM): idle sessions say 421 and close.
    pub draining: watch::Receiver<bool>,
}

/// The per-connection actor.
pub struct Session {
    stream: Option<TcpStream>,
    peer: SocketAddr,
    context: SessionContext,
}

impl Session {
    /// A session for an accepted connection.
    pub fn new(stream: TcpStream, peer: SocketAddr, context: SessionContext) -> Self {
        Session {
            stream: Some(stream),
            peer,
            context,
        }
    }
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some(stream) = self.stream.take() else {
            ctx.stop();
            return;
        };
        let driver = drive(stream, self.peer, self.context.clone());
        ctx.spawn(driver.into_actor(self).map(|_, _, ctx| ctx.stop()));
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.context
            .listener
            .do_send(SessionEnded { peer: self.peer });
    }
}

/// Why a session ended, for the log.
#[derive(Debug)]
enum End {
    Quit,
    ClientClosed,
    Timeout(&'static str),
    Draining,
    Io(std::io::Error),
    Protocol,
}

async fn drive(mut stream: TcpStream, peer: SocketAddr, cx: SessionContext) {
    metrics::gauge!("smtp_connections_active").increment(1.0);
    let end = converse(&mut stream, peer, &cx).await;
    metrics::gauge!("smtp_connections_active").decrement(1.0);
    match &end {
        End::Io(e) => tracing::debug!(client = %peer, error = %e, "connection lost"),
        End::Timeout(which) => tracing::info!(client = %peer, timeout = which, "session timed out"),
        other => tracing::debug!(client = %peer, end = ?other, "session ended"),
    }
    let _ = stream.shutdown().await;
}

async fn converse(stream: &mut TcpStream, peer: SocketAddr, cx: &SessionContext) -> End {
    let mut protocol = ServerSession::new(cx.settings.clone(), peer.ip());
    let mut input = BytesMut::with_capacity(8192);
    let mut output = Vec::with_capacity(1024);
    let mut draining = cx.draining.clone();
    let mut greeted = false;
    protocol.greeting().write_to(&mut output);
    loop {
        match protocol.feed(&mut input, &mut output, SystemTime::now()) {
            Some(Event::Enqueue(message)) => {
                let id = message.id;
                let request = Enqueue {
                    message,
                    client: peer.ip(),
                };
                let reply = match timeout(cx.timeouts.enqueue, cx.queue.send(request)).await {
                    Ok(Ok(Ok(_))) => Reply::queued(&id.to_string()),
                    Ok(Ok(Err(e))) => Reply::queue_unavailable(&e.to_string()),
                    Ok(Err(_)) => Reply::queue_unavailable("queue not running"),
                    Err(_) => Reply::queue_unavailable("timed out waiting for the queue"),
                };
                if reply.is_failure() {
                    metrics::counter!("smtp_messages_rejected_total", "reason" => reply.reason)
                        .increment(1);
                    tracing::warn!(client = %peer, queue_id = %id, reply = %reply, "message not queued");
                }
                reply.write_to(&mut output);
                continue;
            }
            Some(Event::Close) => {
                log_refusals(&mut protocol, peer);
                let _ = send(stream, &output, cx).await;
                return if output.ends_with(Reply::bye().to_wire().as_bytes()) {
                    End::Quit
                } else {
                    End::Protocol
                };
            }
            Some(Event::StartTls) => {
                // STARTTLS is offered only when TLS is configured; until then refuse.
                let _ = send(stream, &output, cx).await;
                return End::Protocol;
            }
            None => {}
        }
        log_refusals(&mut protocol, peer);
        if !output.is_empty() {
            if let Err(e) = send(stream, &output, cx).await {
                return End::Io(e);
            }
            output.clear();
        }
        let (limit, which, reply) = if protocol.in_data() {
            (cx.timeouts.data, "data", Reply::data_timeout())
        } else if !greeted {
            (cx.timeouts.greeting, "greeting", Reply::greeting_timeout())
        } else {
            (cx.timeouts.command, "command", Reply::command_timeout())
        };
        if input.capacity() - input.len() < 4096 {
            input.reserve(8192);
        }
        tokio::select! {
            read = timeout(limit, stream.read_buf(&mut input)) => match read {
                Ok(Ok(0)) => return End::ClientClosed,
                Ok(Ok(_)) => greeted = true,
                Ok(Err(e)) => return End::Io(e),
                Err(_) => {
                    metrics::counter!("smtp_timeouts_total", "stage" => which).increment(1);
                    let _ = send(stream, reply.to_wire().as_bytes(), cx).await;
                    return End::Timeout(which);
                }
            },
            _ = draining.wait_for(|d| *d), if !protocol.in_data() && !protocol.in_transaction() => {
                let reply = Reply::shutting_down(&cx.settings.hostname);
                let _ = send(stream, reply.to_wire().as_bytes(), cx).await;
                return End::Draining;
            }
        }
    }
}

/// Writes replies, bounded by the command timeout: a client that pipelines commands but
/// never reads its replies fills the socket buffer, and must not hold its slot forever.
async fn send(stream: &mut TcpStream, bytes: &[u8], cx: &SessionContext) -> std::io::Result<()> {
    match timeout(cx.timeouts.command, stream.write_all(bytes)).await {
        Ok(result) => result,
        Err(_) => {
            metrics::counter!("smtp_timeouts_total", "stage" => "write").increment(1);
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "client does not read its replies",
            ))
        }
    }
}

/// Logs each refusal the protocol wrote, with the client, and counts it by reason, so
/// "Relay access denied" or "Message size exceeds" can be found in the log by client.
fn log_refusals(protocol: &mut ServerSession, peer: SocketAddr) {
    for reply in protocol.take_refusals() {
        metrics::counter!("smtp_messages_rejected_total", "reason" => reply.reason).increment(1);
        tracing::info!(client = %peer, reason = reply.reason, reply = %reply, "rejected");
    }
}
