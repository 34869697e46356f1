//! The Listener actor: one per arbiter, each owning its own listening socket for every
//! SMTP address (`SO_REUSEPORT`, so the kernel spreads new connections over them). A
//! Listener admits a connection against the counts shared by all Listeners
//! ([`Admission`]: in total and per client IP), refuses it with a 421 past either limit,
//! and otherwise starts its Session on its own arbiter: no socket crosses threads and no
//! message crosses threads per connection.
//!
//! Receives [`SessionEnded`] from its Sessions, [`Drain`] from the binary on SIGTERM and
//! [`Reconfigure`] on SIGHUP (new sessions take the new settings; open ones keep theirs).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;

use crate::inbound::accept::{
    ACCEPT_ERROR_LOG_INTERVAL, AcceptErrors, Accepted, Incoming, accept_error_reason,
};
use crate::inbound::auth::Authenticator;
use crate::inbound::session::{Session, SessionContext, SessionEnded, SessionTimeouts};
use crate::inbound::tls::ServerTls;
use crate::protocol::security::Endpoint;
use crate::protocol::{Reply, ServerSettings};

/// Stop accepting; answered with the sessions still open (on every arbiter).
#[derive(Message, Debug)]
#[rtype(result = "usize")]
pub struct Drain;

/// Settings for the sessions accepted from now on (a configuration reload). Sessions
/// already open keep the settings they started with, so no connection is dropped.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Reconfigure {
    /// Protocol settings.
    pub settings: Arc<ServerSettings>,
    /// Timeouts.
    pub timeouts: SessionTimeouts,
}

/// How many sessions are open now, on every arbiter.
#[derive(Message, Debug)]
#[rtype(result = "usize")]
pub struct ActiveSessions;

/// Connection limits, from `[smtp]`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnectionLimits {
    /// Sessions at once in total.
    pub max_connections: usize,
    /// Sessions at once from one client IP.
    pub max_per_ip: usize,
}

/// The connection counts every Listener admits against. The lock is held for a counter
/// update only, never across I/O.
#[derive(Debug)]
pub struct Admission {
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    limits: ConnectionLimits,
    active: usize,
    per_ip: HashMap<IpAddr, usize>,
    /// Maintenance mode: every new connection is refused with 421 4.3.2.
    maintenance: bool,
}

/// The limits as gauges, so alerts can divide by them (`smtp_connections_active /
/// smtp_max_connections`).
fn publish(limits: &ConnectionLimits) {
    metrics::gauge!("smtp_max_connections").set(limits.max_connections as f64);
    metrics::gauge!("smtp_max_connections_per_ip").set(limits.max_per_ip as f64);
}

impl Admission {
    /// Counts starting at zero.
    pub fn new(limits: ConnectionLimits) -> Arc<Self> {
        publish(&limits);
        Arc::new(Admission {
            counts: Mutex::new(Counts {
                limits,
                ..Counts::default()
            }),
        })
    }

    /// New limits for connections admitted from now on (a configuration reload). Open
    /// sessions are never closed for it: past a lowered limit, new ones are refused until
    /// enough have ended.
    pub fn set_limits(&self, limits: ConnectionLimits) {
        publish(&limits);
        self.counts().limits = limits;
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Maintenance mode on or off: while on, new connections get `421 4.3.2`; open
    /// sessions and deliveries go on.
    pub fn set_maintenance(&self, on: bool) {
        self.counts().maintenance = on;
    }

    /// Whether maintenance mode is on.
    pub fn maintenance(&self) -> bool {
        self.counts().maintenance
    }

    /// Takes a slot for `ip`, or says why not.
    fn admit(&self, ip: IpAddr) -> Result<(), Refusal> {
        let mut counts = self.counts();
        if counts.maintenance {
            return Err(Refusal::Maintenance);
        }
        if counts.active >= counts.limits.max_connections {
            return Err(Refusal::Total(counts.active, counts.limits.max_connections));
        }
        let from_ip = counts.per_ip.get(&ip).copied().unwrap_or(0);
        if from_ip >= counts.limits.max_per_ip {
            return Err(Refusal::PerIp(from_ip, counts.limits.max_per_ip));
        }
        counts.active += 1;
        *counts.per_ip.entry(ip).or_default() += 1;
        Ok(())
    }

    /// Gives back the slot of a session from `ip`.
    fn release(&self, ip: IpAddr) {
        let mut counts = self.counts();
        counts.active = counts.active.saturating_sub(1);
        if let Some(count) = counts.per_ip.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                counts.per_ip.remove(&ip);
            }
        }
    }

    /// Sessions open now.
    pub fn active(&self) -> usize {
        self.counts().active
    }
}

/// Why a connection was not admitted: the count and the limit it reached.
enum Refusal {
    Maintenance,
    Total(usize, usize),
    PerIp(usize, usize),
}

/// Binds one listening socket for `addr` with `SO_REUSEPORT`, so that one per arbiter can
/// share the port. Binding happens before the arbiters start, so "address in use" is
/// reported at start-up; [`Listener`] calls `listen` on its own arbiter.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpSocket> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    // Linux copies TCP_NODELAY to each accepted socket: set once here, not once per
    // connection.
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    // Listening already, so that a client connecting as soon as hermod says "listening"
    // is queued, not refused while the Listener's arbiter is still starting (that
    // arbiter calls listen again, which only registers the socket with its reactor).
    rustix::net::listen(&socket, LISTEN_BACKLOG)?;
    Ok(socket)
}

/// Fails with "address in use" if anything listens on `addr` already. The sockets of
/// [`bind`] share their port through `SO_REUSEPORT`, which would also let a second
/// hermod (same user) join the first one's group and take part of its connections; a
/// probe without `SO_REUSEPORT` is refused by any listener there. Port 0 needs no probe.
pub fn ensure_free(addr: SocketAddr) -> std::io::Result<()> {
    if addr.port() == 0 {
        return Ok(());
    }
    std::net::TcpListener::bind(addr).map(drop)
}

/// A socket a Listener accepts on.
#[derive(Debug)]
pub enum ListenSocket {
    /// Bound by hermod with [`bind`]: one `SO_REUSEPORT` socket per arbiter.
    Bound(TcpSocket),
    /// Already listening, handed over by the service manager (systemd socket activation);
    /// every arbiter accepts on a duplicate of it.
    Inherited(std::net::TcpListener),
}

impl ListenSocket {
    /// Listening, on the current arbiter's reactor.
    fn listen(self) -> std::io::Result<TcpListener> {
        match self {
            ListenSocket::Bound(socket) => socket.listen(LISTEN_BACKLOG as u32),
            ListenSocket::Inherited(listener) => {
                listener.set_nonblocking(true)?;
                rustix::net::sockopt::set_tcp_nodelay(&listener, true)?;
                TcpListener::from_std(listener)
            }
        }
    }
}

/// Connections the kernel queues per listening socket before they are accepted.
const LISTEN_BACKLOG: i32 = 1024;

/// The parts of a [`SessionContext`] known before the Listener's own address.
#[derive(Clone)]
pub struct SessionContextTemplate {
    /// Protocol settings.
    pub settings: Arc<ServerSettings>,
    /// Timeouts.
    pub timeouts: SessionTimeouts,
    /// The way into the queue.
    pub intake: crate::queue::Intake,
    /// Turns true when the server drains.
    pub draining: watch::Receiver<bool>,
    /// Each finding of relay domains that loop back to hermod.
    pub loops: watch::Receiver<crate::core::looping_domains::LoopSnapshot>,
    /// The server's certificate, when TLS is configured (it reloads itself).
    pub tls: Option<Arc<ServerTls>>,
    /// The user store and lock-out, when AUTH is on.
    pub auth: Option<Arc<Authenticator>>,
    /// The policy actors.
    pub policies: crate::policy::set::PolicySet,
    /// Whose sessions are recorded, and where.
    pub transcripts: Option<Arc<crate::store::transcripts::Transcripts>>,
}

/// The listener actor of one arbiter.
pub struct Listener {
    sockets: Vec<(ListenSocket, Endpoint)>,
    admission: Arc<Admission>,
    session: SessionContextTemplate,
    /// The context of each listening address's sessions, made once the Listener's own
    /// address is known.
    contexts: Vec<(Endpoint, Arc<SessionContext>)>,
    accept_handles: Vec<SpawnHandle>,
    accept_errors: AcceptErrors,
}

impl Listener {
    /// A listener over sockets bound with [`bind`] or handed over by the service manager;
    /// start it on the arbiter whose sessions it should serve.
    pub fn new(
        sockets: Vec<(ListenSocket, Endpoint)>,
        admission: Arc<Admission>,
        session: SessionContextTemplate,
    ) -> Self {
        Listener {
            sockets,
            admission,
            session,
            contexts: Vec::new(),
            accept_handles: Vec::new(),
            accept_errors: AcceptErrors::default(),
        }
    }

    /// The sessions' context for connections to `endpoint`.
    fn context(&mut self, endpoint: Endpoint, ctx: &mut Context<Self>) -> Arc<SessionContext> {
        if let Some((_, context)) = self.contexts.iter().find(|(e, _)| *e == endpoint) {
            return context.clone();
        }
        let context = Arc::new(SessionContext {
            settings: self.session.settings.clone(),
            timeouts: self.session.timeouts,
            intake: self.session.intake.clone(),
            listener: ctx.address().recipient(),
            draining: self.session.draining.clone(),
            loops: self.session.loops.clone(),
            endpoint,
            tls: self.session.tls.clone(),
            auth: self.session.auth.clone(),
            policies: self.session.policies.clone(),
            transcripts: self.session.transcripts.clone(),
        });
        self.contexts.push((endpoint, context.clone()));
        context
    }

    /// EMFILE and friends: counted each time, logged at most once per
    /// [`ACCEPT_ERROR_LOG_INTERVAL`] with the count since the last line; the stream pauses.
    fn accept_failed(&mut self, e: &std::io::Error, pause: Duration) {
        metrics::counter!("smtp_accept_errors_total", "reason" => accept_error_reason(e))
            .increment(1);
        let errors = &mut self.accept_errors;
        errors.unlogged += 1;
        let now = Instant::now();
        if errors
            .logged_at
            .is_some_and(|at| now.duration_since(at) < ACCEPT_ERROR_LOG_INTERVAL)
        {
            return;
        }
        tracing::error!(
            error = %e,
            failures = errors.unlogged,
            pause_ms = pause.as_millis() as u64,
            "accept failed; pausing new connections (open sessions go on; check the open-files limit: ulimit -n, LimitNOFILE)"
        );
        errors.unlogged = 0;
        errors.logged_at = Some(now);
    }

    fn refuse(stream: TcpStream, reply: Reply) {
        actix::spawn(async move {
            let mut stream = stream;
            let _ = stream.write_all(reply.to_wire().as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

impl Actor for Listener {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(65536);
        for (socket, endpoint) in self.sockets.drain(..) {
            match socket.listen() {
                Ok(listener) => self
                    .accept_handles
                    .push(ctx.add_stream(Incoming::new(listener, endpoint))),
                Err(e) => tracing::error!(error = %e, "cannot listen on a bound SMTP socket"),
            }
        }
    }
}

impl StreamHandler<Accepted> for Listener {
    fn handle(&mut self, (item, endpoint, pause): Accepted, ctx: &mut Context<Self>) {
        let (stream, peer) = match item {
            Ok(accepted) => accepted,
            Err(e) => return self.accept_failed(&e, pause),
        };
        match self.admission.admit(peer.ip()) {
            Ok(()) => {}
            Err(Refusal::Maintenance) => {
                metrics::counter!("smtp_connections_rejected_total", "reason" => "maintenance")
                    .increment(1);
                tracing::debug!(client = %peer, "connection refused: maintenance mode");
                return Self::refuse(stream, Reply::maintenance());
            }
            Err(Refusal::Total(active, limit)) => {
                metrics::counter!("smtp_connections_rejected_total", "reason" => "max_connections")
                    .increment(1);
                tracing::warn!(client = %peer, active, limit, "too many connections");
                return Self::refuse(stream, Reply::too_many_connections());
            }
            Err(Refusal::PerIp(from_ip, limit)) => {
                metrics::counter!("smtp_connections_rejected_total", "reason" => "max_connections_per_ip").increment(1);
                tracing::warn!(client = %peer, from_ip, limit, "too many connections from one IP");
                return Self::refuse(stream, Reply::too_many_connections_from_ip());
            }
        }
        metrics::counter!("smtp_connections_total").increment(1);
        let context = self.context(endpoint, ctx);
        Session::new(stream, peer, context).start();
    }

    fn finished(&mut self, _ctx: &mut Context<Self>) {}
}

impl Handler<SessionEnded> for Listener {
    type Result = ();

    fn handle(&mut self, msg: SessionEnded, _ctx: &mut Context<Self>) {
        self.admission.release(msg.peer.ip());
    }
}

impl Handler<Drain> for Listener {
    type Result = usize;

    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) -> usize {
        for handle in self.accept_handles.drain(..) {
            ctx.cancel_future(handle);
        }
        self.admission.active()
    }
}

impl Handler<Reconfigure> for Listener {
    type Result = ();

    fn handle(&mut self, msg: Reconfigure, _ctx: &mut Context<Self>) {
        self.session.settings = msg.settings;
        self.session.timeouts = msg.timeouts;
        // New sessions take the new settings; those under way keep theirs.
        self.contexts.clear();
    }
}

impl Handler<ActiveSessions> for Listener {
    type Result = usize;

    fn handle(&mut self, _: ActiveSessions, _ctx: &mut Context<Self>) -> usize {
        self.admission.active()
    }
}

/// Help texts of the metrics recorded in this file, for the Prometheus exporter.
pub(crate) fn describe_metrics() {
    metrics::describe_counter!(
        "smtp_accept_errors_total",
        "Connections the listening socket failed to accept, by reason (emfile, enfile, enomem, other); the listener pauses after each."
    );
    metrics::describe_counter!(
        "smtp_connections_rejected_total",
        "Connections refused with 421 at connect, by reason (max_connections, max_connections_per_ip, maintenance)."
    );
    metrics::describe_counter!("smtp_connections_total", "SMTP connections accepted.");
    metrics::describe_gauge!(
        "smtp_max_connections",
        "Connections admitted at once, in total (smtp.max_connections); past it 421 4.7.0."
    );
    metrics::describe_gauge!(
        "smtp_max_connections_per_ip",
        "Connections admitted at once from one client address (smtp.max_connections_per_ip)."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replies go out as soon as they are written (no Nagle delay behind a pipelined
    /// group's earlier reply) because each accepted socket inherits TCP_NODELAY from the
    /// listening one, on both kinds of listening socket.
    #[tokio::test]
    async fn accepted_sockets_inherit_nodelay_from_the_listener() {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let inherited = std::net::TcpListener::bind(any).unwrap();
        for socket in [
            ListenSocket::Bound(bind(any).unwrap()),
            ListenSocket::Inherited(inherited),
        ] {
            let listener = socket.listen().unwrap();
            let addr = listener.local_addr().unwrap();
            let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (accepted, _) = listener.accept().await.unwrap();
            assert!(accepted.nodelay().unwrap());
        }
    }

    #[test]
    fn admission_counts_in_total_and_per_ip() {
        let admission = Admission::new(ConnectionLimits {
            max_connections: 3,
            max_per_ip: 2,
        });
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        assert!(admission.admit(a).is_ok());
        assert!(admission.admit(a).is_ok());
        assert!(matches!(admission.admit(a), Err(Refusal::PerIp(2, 2))));
        assert!(admission.admit(b).is_ok());
        assert!(matches!(admission.admit(b), Err(Refusal::Total(3, 3))));
        admission.release(a);
        assert!(admission.admit(b).is_ok());
        assert_eq!(admission.active(), 3);
    }

    #[test]
    fn lowered_limits_refuse_new_connections_and_keep_open_ones() {
        let admission = Admission::new(ConnectionLimits {
            max_connections: 10,
            max_per_ip: 10,
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            assert!(admission.admit(a).is_ok());
        }
        admission.set_limits(ConnectionLimits {
            max_connections: 2,
            max_per_ip: 10,
        });
        assert_eq!(admission.active(), 3);
        assert!(matches!(admission.admit(a), Err(Refusal::Total(3, 2))));
        admission.release(a);
        admission.release(a);
        assert!(admission.admit(a).is_ok());
    }
}
