//! The Listener actor: owns the listening sockets and the connection counts (in total and
//! per client IP). It refuses a connection past either limit with a 421, and otherwise
//! starts a Session on one of the session arbiters (one per core), round robin.
//!
//! Receives [`SessionEnded`] from Sessions and [`Drain`] from the binary on SIGTERM.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use actix::prelude::*;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::session::{Session, SessionContext, SessionEnded};
use crate::smtp::Reply;

/// Stop accepting and ask idle sessions to close; answered with the sessions still open.
#[derive(Message, Debug)]
#[rtype(result = "usize")]
pub struct Drain;

/// How many sessions are open now.
#[derive(Message, Debug)]
#[rtype(result = "usize")]
pub struct ActiveSessions;

/// Connection limits, from `[smtp]`.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Sessions at once in total.
    pub max_connections: usize,
    /// Sessions at once from one client IP.
    pub max_per_ip: usize,
}

/// A stream of accepted connections, so the actor takes them as stream items.
struct Incoming(TcpListener);

impl Stream for Incoming {
    type Item = std::io::Result<(TcpStream, SocketAddr)>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_accept(cx).map(Some)
    }
}

/// The listener actor.
pub struct Listener {
    sockets: Vec<TcpListener>,
    limits: ConnectionLimits,
    arbiters: Vec<ArbiterHandle>,
    next_arbiter: usize,
    active: usize,
    per_ip: HashMap<IpAddr, usize>,
    session: SessionContextTemplate,
    draining: watch::Sender<bool>,
    accept_handles: Vec<SpawnHandle>,
}

/// The parts of a [`SessionContext`] known before the Listener's own address.
pub struct SessionContextTemplate {
    /// Protocol settings.
    pub settings: std::sync::Arc<crate::smtp::ServerSettings>,
    /// Timeouts.
    pub timeouts: crate::session::SessionTimeouts,
    /// The Queue.
    pub queue: Recipient<crate::queue::Enqueue>,
}

impl Listener {
    /// A listener over already-bound sockets (bound by the caller so that errors such as
    /// "address in use" surface before anything starts), spreading sessions over
    /// `arbiters`.
    pub fn new(
        sockets: Vec<TcpListener>,
        limits: ConnectionLimits,
        arbiters: Vec<ArbiterHandle>,
        session: SessionContextTemplate,
    ) -> Self {
        let (draining, _) = watch::channel(false);
        Listener {
            sockets,
            limits,
            arbiters,
            next_arbiter: 0,
            active: 0,
            per_ip: HashMap::new(),
            session,
            draining,
            accept_handles: Vec::new(),
        }
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
        for socket in self.sockets.drain(..) {
            let handle = ctx.add_stream(Incoming(socket));
            self.accept_handles.push(handle);
        }
    }
}

impl StreamHandler<std::io::Result<(TcpStream, SocketAddr)>> for Listener {
    fn handle(&mut self, item: std::io::Result<(TcpStream, SocketAddr)>, ctx: &mut Context<Self>) {
        let (stream, peer) = match item {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and friends: log, count, keep accepting.
                metrics::counter!("smtp_accept_errors_total").increment(1);
                tracing::error!(error = %e, "accept failed (check the open-files limit: ulimit -n)");
                return;
            }
        };
        let ip = peer.ip();
        let from_ip = self.per_ip.get(&ip).copied().unwrap_or(0);
        if self.active >= self.limits.max_connections {
            metrics::counter!("smtp_connections_rejected_total", "reason" => "max_connections")
                .increment(1);
            tracing::warn!(client = %peer, active = self.active, limit = self.limits.max_connections, "too many connections");
            return Self::refuse(stream, Reply::too_many_connections());
        }
        if from_ip >= self.limits.max_per_ip {
            metrics::counter!("smtp_connections_rejected_total", "reason" => "max_connections_per_ip").increment(1);
            tracing::warn!(client = %peer, from_ip, limit = self.limits.max_per_ip, "too many connections from one IP");
            return Self::refuse(stream, Reply::too_many_connections_from_ip());
        }
        self.active += 1;
        *self.per_ip.entry(ip).or_default() += 1;
        metrics::counter!("smtp_connections_total").increment(1);
        let context = SessionContext {
            settings: self.session.settings.clone(),
            timeouts: self.session.timeouts,
            queue: self.session.queue.clone(),
            listener: ctx.address().recipient(),
            draining: self.draining.subscribe(),
        };
        let _ = stream.set_nodelay(true);
        if self.arbiters.is_empty() {
            Session::new(stream, peer, context).start();
            return;
        }
        // A tokio socket belongs to the runtime that accepted it: hand the std socket
        // over and register it again on the session's arbiter.
        let std_stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(client = %peer, error = %e, "cannot hand connection to a session arbiter");
                self.release(ip);
                return;
            }
        };
        let arbiter = &self.arbiters[self.next_arbiter % self.arbiters.len()];
        self.next_arbiter = self.next_arbiter.wrapping_add(1);
        Session::start_in_arbiter(arbiter, move |_| {
            let stream = TcpStream::from_std(std_stream)
                .expect("registering a socket on its session arbiter");
            Session::new(stream, peer, context)
        });
    }

    fn finished(&mut self, _ctx: &mut Context<Self>) {}
}

impl Listener {
    fn release(&mut self, ip: IpAddr) {
        self.active = self.active.saturating_sub(1);
        if let Some(count) = self.per_ip.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }
}

impl Handler<SessionEnded> for Listener {
    type Result = ();

    fn handle(&mut self, msg: SessionEnded, _ctx: &mut Context<Self>) {
        self.release(msg.peer.ip());
    }
}

impl Handler<Drain> for Listener {
    type Result = usize;

    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) -> usize {
        for handle in self.accept_handles.drain(..) {
            ctx.cancel_future(handle);
        }
        let _ = self.draining.send(true);
        self.active
    }
}

impl Handler<ActiveSessions> for Listener {
    type Result = usize;

    fn handle(&mut self, _: ActiveSessions, _ctx: &mut Context<Self>) -> usize {
        self.active
    }
}
