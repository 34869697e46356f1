//! Accepting connections without spinning: the stream of accepted connections a
//! Listener takes as stream items, which pauses after a failed accept (out of
//! descriptors or memory) instead of retrying at once.

use std::future::Future as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use futures_util::Stream;
use tokio::net::{TcpListener, TcpStream};

use crate::protocol::security::Endpoint;

/// One accepted connection (or the error accepting it) and the rules of the address it
/// came in on.
/// With a failed accept, the pause before the next attempt.
pub(super) type Accepted = (std::io::Result<(TcpStream, SocketAddr)>, Endpoint, Duration);

/// A stream of accepted connections, so the actor takes them as stream items. When the
/// process or the system is out of descriptors (or memory), an accept fails at once for
/// as long as the condition lasts: the stream then pauses before the next attempt, 5 ms
/// at first and twice as long each time up to [`MAX_ACCEPT_PAUSE`] (as Go's net/http
/// does), instead of spinning and logging millions of lines. The connections wait in the
/// kernel's backlog and are taken as soon as descriptors free up.
pub(super) struct Incoming {
    listener: TcpListener,
    endpoint: Endpoint,
    pause: Duration,
    paused: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// The first pause after a failed accept; it doubles on each failure in a row.
const FIRST_ACCEPT_PAUSE: Duration = Duration::from_millis(5);
/// The longest pause between two accepts that fail.
pub const MAX_ACCEPT_PAUSE: Duration = Duration::from_secs(1);

impl Incoming {
    pub(super) fn new(listener: TcpListener, endpoint: Endpoint) -> Self {
        Incoming {
            listener,
            endpoint,
            pause: Duration::ZERO,
            paused: None,
        }
    }
}

impl Stream for Incoming {
    type Item = Accepted;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(paused) = &mut this.paused {
            if paused.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.paused = None;
        }
        let endpoint = this.endpoint;
        match this.listener.poll_accept(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(accepted)) => {
                this.pause = Duration::ZERO;
                Poll::Ready(Some((Ok(accepted), endpoint, Duration::ZERO)))
            }
            Poll::Ready(Err(e)) => {
                this.pause = if this.pause.is_zero() {
                    FIRST_ACCEPT_PAUSE
                } else {
                    (this.pause * 2).min(MAX_ACCEPT_PAUSE)
                };
                this.paused = Some(Box::pin(tokio::time::sleep(this.pause)));
                Poll::Ready(Some((Err(e), endpoint, this.pause)))
            }
        }
    }
}

/// How often at most a failing accept is logged; the lines between are counted.
pub(super) const ACCEPT_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(5);

/// Failed accepts since the last line logged about them.
#[derive(Default)]
pub(super) struct AcceptErrors {
    pub(super) unlogged: u64,
    pub(super) logged_at: Option<Instant>,
}

/// The name of an accept error for the metric's `reason` label.
pub(super) fn accept_error_reason(e: &std::io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(24) => "emfile",
        Some(23) => "enfile",
        Some(12) | Some(105) => "enomem",
        _ => "other",
    }
}
