//! The Session actor: owns one client connection — its socket and its timers — and drives
//! the sans-IO protocol ([`ServerSession`]) over it. It hands each accepted message to
//! the [`Intake`] (the commit thread makes it durable, then the Queue is told) and
//! answers 250 once it is on disk; it tells the Listener when it ends.
//!
//! Reading is buffered and the protocol consumes complete lines only, so bytes that were
//! pipelined behind a command stay in the buffer; STARTTLS drops them, as RFC 3207
//! requires, before the handshake, and the conversation goes on over TLS with the
//! protocol's state reset. On an implicit-TLS listener (465) the handshake comes first.
//! AUTH credentials are checked by the [`Authenticator`] off the arbiter.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{timeout, timeout_at};
use tokio_rustls::server::TlsStream;

use crate::core::looping_domains::LoopSnapshot;
use crate::inbound::auth::Authenticator;
use crate::inbound::session_record::{RefusalLog, Seen};
use crate::inbound::session_trace::SessionTrace;
use crate::inbound::tls::{self, ServerTls};
use crate::policy::set::PolicySet;
use crate::protocol::check::{CheckStage, Facts, Verdict};
use crate::protocol::deadline::{PhaseDeadline, PhaseLimits, Stage};
use crate::protocol::sasl::Credentials;
use crate::protocol::security::{Endpoint, TlsInfo};
use crate::protocol::session::{AcceptedMessage, AuthVerdict};
use crate::protocol::{Event, Reply, ServerSession, ServerSettings};
use crate::queue::Intake;
use crate::store::transcripts::Transcripts;

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
    /// Whole-phase deadlines for the client's input.
    pub phases: PhaseLimits,
    /// Waiting for the Queue to store a message.
    pub enqueue: Duration,
    /// Writing replies to a client that does not read them.
    pub write: Duration,
}

/// Everything a session needs besides its socket, shared by all sessions of one
/// listening address (behind an `Arc`: a new session costs no clone of its parts).
pub struct SessionContext {
    /// Protocol settings.
    pub settings: Arc<ServerSettings>,
    /// Timeouts.
    pub timeouts: SessionTimeouts,
    /// Where accepted messages go.
    pub intake: Intake,
    /// Who is told when the session ends.
    pub listener: Recipient<SessionEnded>,
    /// Turns true when the server drains (SIGTERM): idle sessions say 421 and close.
    pub draining: watch::Receiver<bool>,
    /// Each finding of relay domains that loop back to hermod, handed to the protocol.
    pub loops: watch::Receiver<LoopSnapshot>,
    /// The listening address's kind and rules.
    pub endpoint: Endpoint,
    /// The server's certificate, when TLS is configured.
    pub tls: Option<Arc<ServerTls>>,
    /// The user store and lock-out, when AUTH is on.
    pub auth: Option<Arc<Authenticator>>,
    /// The policy actors to ask at each stage.
    pub policies: PolicySet,
    /// Whose sessions are recorded, and where (`log.transcript_peers`).
    pub transcripts: Option<Arc<Transcripts>>,
}

/// The per-connection actor.
pub struct Session {
    stream: Option<TcpStream>,
    peer: SocketAddr,
    context: Arc<SessionContext>,
}

impl Session {
    /// A session for an accepted connection.
    pub fn new(stream: TcpStream, peer: SocketAddr, context: Arc<SessionContext>) -> Self {
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
    /// The 220 to STARTTLS is out: the handshake comes next.
    StartTls,
    /// The TLS handshake failed (logged where it failed).
    Handshake,
}

async fn drive(stream: TcpStream, peer: SocketAddr, cx: Arc<SessionContext>) {
    metrics::gauge!("smtp_connections_active").increment(1.0);
    let end = converse(stream, peer, &cx).await;
    metrics::gauge!("smtp_connections_active").decrement(1.0);
    match &end {
        End::Io(e) => tracing::debug!(client = %peer, error = %e, "connection lost"),
        End::Timeout(which) => tracing::info!(client = %peer, timeout = which, "session timed out"),
        other => tracing::debug!(client = %peer, end = ?other, "session ended"),
    }
}

/// One connection from the first byte to the last: in clear, then over TLS after
/// STARTTLS; or over TLS from the start on an implicit-TLS listener.
async fn converse(mut stream: TcpStream, peer: SocketAddr, cx: &SessionContext) -> End {
    let mut seen = Seen {
        refusals: RefusalLog::default(),
        transcript: cx.transcripts.as_ref().and_then(|t| t.for_peer(peer)),
        trace: SessionTrace::start(),
    };
    let mut protocol =
        ServerSession::new(cx.settings.clone(), peer.ip()).with_endpoint(cx.endpoint);
    let mut input = BytesMut::with_capacity(8192);
    let starts_in_tls = protocol.implicit_tls();
    // On an implicit-TLS listener the refusal can only be read over TLS: it comes after
    // the handshake.
    if !starts_in_tls && let Some(refusal) = connect_refusal(&mut stream, peer, cx).await {
        close(&mut stream, cx).await;
        return refusal;
    }
    let end = if starts_in_tls {
        End::StartTls
    } else {
        let end = exchange(
            &mut stream,
            peer,
            cx,
            &mut protocol,
            &mut input,
            &mut seen,
            true,
        )
        .await;
        // In clear, closing the socket (the stream is dropped on return) sends the FIN
        // that `shutdown` would: one system call a connection less.
        end
    };
    let end = match end {
        End::StartTls => match handshake(stream, peer, cx).await {
            Some((mut tls, info)) => {
                if starts_in_tls && let Some(refusal) = connect_refusal(&mut tls, peer, cx).await {
                    close(&mut tls, cx).await;
                    return refusal;
                }
                protocol.tls_started(info);
                input.clear();
                let end = exchange(
                    &mut tls,
                    peer,
                    cx,
                    &mut protocol,
                    &mut input,
                    &mut seen,
                    starts_in_tls,
                )
                .await;
                close(&mut tls, cx).await;
                end
            }
            None => End::Handshake,
        },
        other => other,
    };
    seen.refusals.finish(peer);
    if let (Some(transcripts), Some(transcript)) = (&cx.transcripts, seen.transcript.take()) {
        transcripts.keep(peer, transcript);
    }
    end
}

/// Closes the write side, bounded like any write: a TLS close_notify to a client that
/// does not read must not keep the session (and its connection slot) forever.
async fn close<S: AsyncWrite + Unpin>(stream: &mut S, cx: &SessionContext) {
    let _ = timeout(cx.timeouts.write, stream.shutdown()).await;
}

/// Asks the policies that speak at connect; a refusal is said and ends the session.
async fn connect_refusal<S: AsyncWrite + Unpin>(
    stream: &mut S,
    peer: SocketAddr,
    cx: &SessionContext,
) -> Option<End> {
    if !cx.policies.stages().contains(CheckStage::Connect) {
        return None;
    }
    let trusted = cx.settings.relay.is_trusted_client(peer.ip());
    let mut budget = cx.policies.dns_budget();
    let verdict = cx
        .policies
        .check_within(Facts::connect(peer.ip(), trusted), &mut budget)
        .await;
    let reply = verdict.refusal()?;
    metrics::counter!("smtp_connections_rejected_total", "reason" => reply.reason).increment(1);
    tracing::info!(client = %peer, reason = reply.reason, reply = %reply, "connection refused by policy");
    let _ = send(stream, reply.to_wire().as_bytes(), cx).await;
    Some(End::Protocol)
}

/// The TLS handshake, bounded by its own timeout. A failure is one log line naming the
/// client and the reason, and a count by reason.
async fn handshake(
    stream: TcpStream,
    peer: SocketAddr,
    cx: &SessionContext,
) -> Option<(TlsStream<TcpStream>, TlsInfo)> {
    let Some(server) = cx.tls.as_ref() else {
        tracing::error!(client = %peer, "TLS asked for but no certificate is loaded");
        return None;
    };
    let result = match timeout(server.handshake_timeout, server.acceptor().accept(stream)).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "handshake timed out",
        )),
    };
    match result {
        Ok(stream) => {
            let (_, conn) = stream.get_ref();
            let info = tls::negotiated(conn);
            let resumed = matches!(conn.handshake_kind(), Some(rustls::HandshakeKind::Resumed));
            metrics::counter!("smtp_tls_handshakes_total", "version" => info.version.clone(), "resumed" => if resumed { "yes" } else { "no" })
                .increment(1);
            tracing::debug!(client = %peer, version = %info.version, cipher = %info.cipher, resumed, "TLS established");
            Some((stream, info))
        }
        Err(e) => {
            let (reason, detail) = tls::failure(&e);
            metrics::counter!("smtp_tls_handshake_failures_total", "reason" => reason).increment(1);
            tracing::info!(client = %peer, reason, detail = %detail, "TLS handshake failed");
            None
        }
    }
}

/// Checks a client's credentials and logs a failure ("Authentication failed", with the
/// user and the client, never the password).
async fn authenticate(
    credentials: Credentials,
    peer: SocketAddr,
    cx: &SessionContext,
) -> AuthVerdict {
    let Some(auth) = cx.auth.as_ref() else {
        return AuthVerdict::Unavailable("no user store is open".into());
    };
    let user = credentials.user.clone();
    let outcome = auth.check(peer.ip(), credentials).await;
    let network = outcome.network;
    let result = match &outcome.verdict {
        AuthVerdict::Accepted(_) => {
            tracing::info!(client = %peer, user = %user, "authenticated");
            "success"
        }
        AuthVerdict::Rejected => {
            tracing::warn!(client = %peer, network = %network, user = %user, reason = %outcome.why, "Authentication failed");
            "failure"
        }
        AuthVerdict::LockedOut => {
            tracing::warn!(client = %peer, network = %network, user = %user, reason = %outcome.why, "Authentication failed; client locked out for too many failures");
            "locked_out"
        }
        AuthVerdict::Paced => {
            tracing::warn!(client = %peer, network = %network, user = %user, "Authentication paced: too many failed logins for this user");
            "paced"
        }
        AuthVerdict::Unavailable(_) => {
            tracing::error!(client = %peer, user = %user, error = %outcome.why, "Authentication not possible: the password check failed");
            "unavailable"
        }
    };
    metrics::counter!("smtp_auth_attempts_total", "result" => result).increment(1);
    if matches!(
        outcome.verdict,
        AuthVerdict::Rejected | AuthVerdict::LockedOut
    ) {
        metrics::counter!("smtp_auth_failures_total").increment(1);
    }
    outcome.verdict
}

#[allow(clippy::too_many_arguments)]
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    peer: SocketAddr,
    cx: &SessionContext,
    protocol: &mut ServerSession,
    input: &mut BytesMut,
    seen: &mut Seen,
    greet: bool,
) -> End {
    let mut output = Vec::with_capacity(1024);
    // The policies' DNS waits of the commands before MAIL, then of each transaction.
    let mut dns_budget = cx.policies.dns_budget();
    let mut reading = Reading::start(cx, protocol);
    if greet {
        protocol.greeting().write_to(&mut output);
    }
    // An event a verdict raised (an accepted message at DATA), handled before more input.
    let mut pending_event: Option<Event> = None;
    loop {
        let event = match pending_event.take() {
            Some(event) => Some(event),
            None => protocol.feed(input, &mut output, SystemTime::now()),
        };
        let closing = match event {
            Some(Event::Enqueue(message)) => {
                take(message, peer, cx, protocol, seen)
                    .await
                    .write_to(&mut output);
                continue;
            }
            Some(Event::Check(facts)) => {
                let (stage, asked) = (facts.stage, SystemTime::now());
                if stage == CheckStage::Mail {
                    // A new transaction: a new DNS budget.
                    dns_budget = cx.policies.dns_budget();
                }
                let verdict = cx.policies.check_within(facts, &mut dns_budget).await;
                seen.checked(protocol, stage, asked, &verdict);
                // A 421 ends the session (RFC 5321 §3.8).
                let ends =
                    matches!(&verdict, Verdict::Defer(r) | Verdict::Reject(r) if r.code == 421);
                pending_event = protocol.check_verdict(verdict, &mut output);
                if !ends {
                    continue;
                }
                Some(End::Protocol)
            }
            Some(Event::Authenticate(credentials)) => {
                let verdict = authenticate(credentials, peer, cx).await;
                match protocol.auth_verdict(verdict, &mut output) {
                    Some(Event::Close) => Some(End::Protocol),
                    _ => continue,
                }
            }
            Some(Event::Close) if output.ends_with(Reply::bye().to_wire().as_bytes()) => {
                Some(End::Quit)
            }
            Some(Event::Close) => Some(End::Protocol),
            Some(Event::StartTls) => Some(End::StartTls),
            None => None,
        };
        seen.turn(protocol, peer, &output);
        if let Some(end) = closing {
            // The last replies go out; only the handshake after STARTTLS needs them sent.
            return match (send(stream, &output, cx).await, end) {
                (Err(e), End::StartTls) => End::Io(e),
                (_, end) => end,
            };
        }
        if !output.is_empty() {
            if let Err(e) = send(stream, &output, cx).await {
                return End::Io(e);
            }
            output.clear();
        }
        if let Some(end) = reading.more(stream, input, cx, protocol, seen).await {
            return end;
        }
    }
}

/// Takes a complete message: traced (when tracing is on), queued, answered.
async fn take(
    mut message: AcceptedMessage,
    peer: SocketAddr,
    cx: &SessionContext,
    protocol: &ServerSession,
    seen: &mut Seen,
) -> Reply {
    let id = message.id;
    let trace = seen.receiving(&mut message, peer, protocol);
    let reply = enqueue(message, peer, cx).await;
    seen.queued(id, reply, trace)
}

/// Takes an accepted message into the queue (its body file made durable first) and
/// answers: `250` with the queue id once it is on disk, else why not.
async fn enqueue(mut message: AcceptedMessage, peer: SocketAddr, cx: &SessionContext) -> Reply {
    let id = message.id;
    let claim = message.claim.take();
    let deadline = Instant::now() + cx.timeouts.enqueue;
    let reply = match sync_body_file(message).await {
        // The intake answers by the deadline, one way or the other.
        Ok(message) => match cx.intake.enqueue(message, peer.ip(), deadline).await {
            Ok(_) => {
                // Its bytes are on disk: they count as written until the next free-space
                // sample sees them.
                if let Some(claim) = claim {
                    claim.stored();
                }
                Reply::queued(&id.to_string())
            }
            Err(e) => Reply::queue_unavailable(&e.to_string()),
        },
        Err(reply) => reply,
    };
    if reply.is_failure() {
        metrics::counter!("smtp_messages_rejected_total", "reason" => reply.reason).increment(1);
        tracing::warn!(client = %peer, queue_id = %id, reply = %reply, "message not queued");
    }
    reply
}

/// What a session's reads keep between them.
struct Reading {
    /// The deadline of the phase the client is in.
    phase: PhaseDeadline,
    /// Input left unconsumed after the last read: less of it later means a command line
    /// was consumed.
    unread: usize,
    /// Turns true when hermod drains.
    draining: watch::Receiver<bool>,
    /// The relay domains that loop back, handed to the protocol when a new finding comes.
    looping: watch::Receiver<LoopSnapshot>,
}

impl Reading {
    /// The reads of one exchange; the protocol gets the latest loop finding.
    fn start(cx: &SessionContext, protocol: &mut ServerSession) -> Self {
        let mut looping = cx.loops.clone();
        protocol.looping_domains(looping.borrow_and_update().clone());
        Reading {
            phase: PhaseDeadline::new(Instant::now()),
            unread: 0,
            draining: cx.draining.clone(),
            looping,
        }
    }

    /// Reads more of the client's input, within the deadline of the phase it is in; ends
    /// the session when the client closes, times out, or hermod drains between
    /// transactions. What the protocol reads next is judged on the latest loop finding.
    async fn more<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        input: &mut BytesMut,
        cx: &SessionContext,
        protocol: &mut ServerSession,
        seen: &mut Seen,
    ) -> Option<End> {
        let phase = &mut self.phase;
        let command_done = input.len() < self.unread && !protocol.in_data();
        phase.observe(protocol.in_data(), command_done, Instant::now());
        let deadline = phase.deadline(&cx.timeouts.phases);
        if input.capacity() - input.len() < 4096 {
            input.reserve(8192);
        }
        tokio::select! {
            read = timeout_at(deadline.into(), stream.read_buf(input)) => match read {
                Ok(Ok(0)) => return Some(End::ClientClosed),
                Ok(Ok(n)) => {
                    phase.received(n);
                    self.unread = input.len();
                    seen.read(&input[input.len() - n..]);
                    if self.looping.has_changed().unwrap_or(false) {
                        protocol.looping_domains(self.looping.borrow_and_update().clone());
                    }
                }
                Ok(Err(e)) => return Some(End::Io(e)),
                Err(_) => {
                    let stage = phase.stage();
                    metrics::counter!("smtp_timeouts_total", "stage" => stage.name()).increment(1);
                    let reply = match stage {
                        Stage::Greeting => Reply::greeting_timeout(),
                        Stage::Command => Reply::command_timeout(),
                        Stage::Data => Reply::data_timeout(),
                    };
                    let _ = send(stream, reply.to_wire().as_bytes(), cx).await;
                    return Some(End::Timeout(stage.name()));
                }
            },
            _ = self.draining.wait_for(|d| *d), if !protocol.in_data() && !protocol.in_transaction() => {
                let reply = Reply::shutting_down(&cx.settings.hostname);
                let _ = send(stream, reply.to_wire().as_bytes(), cx).await;
                return Some(End::Draining);
            }
        }
        None
    }
}

/// Writes replies, bounded by the command timeout: a client that pipelines commands but
/// never reads its replies fills the socket buffer, and must not hold its slot forever.
async fn send<S: AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: &[u8],
    cx: &SessionContext,
) -> std::io::Result<()> {
    // Flushed too: over TLS the last records may still sit in rustls after write_all.
    let written = async {
        stream.write_all(bytes).await?;
        stream.flush().await
    };
    match timeout(cx.timeouts.write, written).await {
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

/// Makes a large message's body file durable before the message goes to the Queue
/// (fsync, off the arbiter thread: it can take a while). A failure refuses the message.
async fn sync_body_file(mut message: AcceptedMessage) -> Result<AcceptedMessage, Reply> {
    let Some(mut file) = message.body_file.take() else {
        return Ok(message);
    };
    let synced = tokio::task::spawn_blocking(move || file.sync().map(|()| file)).await;
    match synced {
        Ok(Ok(file)) => {
            message.body_file = Some(file);
            Ok(message)
        }
        Ok(Err(e)) => {
            tracing::error!(queue_id = %message.id, error = %e, "cannot fsync the body file of a large message");
            Err(Reply::queue_unavailable(&format!(
                "fsync of the body file: {e}"
            )))
        }
        Err(e) => Err(Reply::queue_unavailable(&format!(
            "fsync of the body file: {e}"
        ))),
    }
}

/// Help texts of the metrics recorded in this file, for the Prometheus exporter.
pub(crate) fn describe_metrics() {
    metrics::describe_gauge!("smtp_connections_active", "SMTP sessions open now.");
    metrics::describe_counter!(
        "smtp_messages_rejected_total",
        "SMTP commands and messages refused, by reason (the reply table of TROUBLESHOOTING.md)."
    );
    crate::inbound::tls::describe_metrics();
    crate::inbound::auth::describe_metrics();
    metrics::describe_counter!(
        "smtp_timeouts_total",
        "Sessions closed because the client was too slow, by stage (greeting, command, data, write)."
    );
}
