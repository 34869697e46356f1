//! The sink's SMTP/LMTP session as a sans-IO state machine: bytes in, replies and
//! steps out. It never touches a socket or a clock (time comes in as a parameter), so
//! the connection code in `server` only moves bytes, sleeps and stores.
//!
//! One file per group of verbs extends [`Session`]: `hello` (EHLO/HELO/LHLO, STARTTLS),
//! `envelope` (MAIL, RCPT, RSET), `message` (DATA, BDAT and the final replies), `auth`.

mod auth;
mod envelope;
mod hello;
mod message;

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};

use super::body::Body;
use super::command::{self, Command};
use super::config::DelayPoint;
use super::counters::bump;
use super::data::DataReceiver;
use super::replies;
use super::shared::Shared;
use crate::rng::{self, Rng};
use rand::RngExt as _;

/// Longest command line accepted; longer ones close the connection.
const MAX_COMMAND_LINE: usize = 4096;

/// Keep this much of each message when not storing: enough for any header block.
const HEADER_KEEP: usize = 64 * 1024;

/// What the connection must do next.
#[derive(Debug)]
pub(crate) enum Step {
    /// Flush the replies in `out`, then read more input.
    NeedInput,
    /// Hold the pending replies back this long (injected delay), then feed again.
    Pause(Duration),
    /// Store or log this accepted message, then call [`Session::delivered`].
    Deliver(Delivery),
    /// Flush, then run the TLS handshake and call [`Session::tls_started`].
    StartTls,
    /// Flush and close.
    Close,
    /// Close at once without flushing (injected disconnect).
    Drop,
}

/// An accepted message that must be stored or logged before its 250 goes out.
#[derive(Debug)]
pub(crate) struct Delivery {
    /// The MAIL FROM path.
    pub(crate) mail_from: String,
    /// The MAIL FROM parameters as the client sent them (`SIZE=… BODY=8BITMIME`).
    pub(crate) mail_params: String,
    /// Recipients accepted for this message.
    pub(crate) rcpt_to: Vec<String>,
    /// The client's EHLO/HELO/LHLO name.
    pub(crate) helo: String,
    /// Whether this was LMTP.
    pub(crate) lmtp: bool,
    /// Whether the session was inside TLS.
    pub(crate) tls: bool,
    /// The whole message when storing, else empty.
    pub(crate) message: Vec<u8>,
    /// Its Message-ID header, if any.
    pub(crate) message_id: Option<String>,
}

/// What the next input bytes are.
#[derive(Debug)]
enum State {
    /// Command lines.
    Command,
    /// DATA content up to CRLF.CRLF.
    Data(DataReceiver),
    /// A BDAT chunk; `refuse` is the answer for a chunk swallowed only to stay in sync.
    Bdat {
        remaining: usize,
        last: bool,
        refuse: Option<Refusal>,
    },
    /// The AUTH PLAIN response line.
    AuthPlain,
    /// The AUTH LOGIN user name line.
    AuthLoginUser,
    /// The AUTH LOGIN password line, for this user.
    AuthLoginPass(Vec<u8>),
    /// The session is over.
    Closed,
}

/// The answer to a DATA or BDAT that has nothing to deliver.
#[derive(Debug, Clone, Copy)]
struct Refusal {
    reply: &'static [u8],
    /// Counted as a client protocol error; not when a pipelining client sent the
    /// command before it learned that every RCPT was refused (RFC 2920 section 3.1).
    client_error: bool,
}

/// Why a recipient (or message) is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Accept,
    Temp,
    Perm,
}

/// One recipient of the open transaction.
#[derive(Debug)]
struct Rcpt {
    addr: String,
    /// Failure forced by a `tempfail*`/`permfail*` local part, kept for DATA time.
    forced: Option<Verdict>,
}

/// The open mail transaction.
#[derive(Debug)]
struct Transaction {
    from: String,
    params: String,
    rcpts: Vec<Rcpt>,
    /// BDAT chunks have started arriving.
    chunking: bool,
    /// Some RCPT was refused (so an empty `rcpts` is not the client's mistake).
    rcpts_refused: bool,
}

/// Replies waiting for a store result.
#[derive(Debug)]
struct Pending {
    verdicts: Vec<Verdict>,
    accepted: u64,
    size: usize,
    sent_ns: Option<u64>,
}

/// One connection's protocol state.
pub(crate) struct Session {
    shared: Arc<Shared>,
    rng: Rng,
    state: State,
    helo: Option<String>,
    tls: bool,
    authenticated: bool,
    tx: Option<Transaction>,
    body: Body,
    pause: Option<Duration>,
    pending: Option<Pending>,
}

impl Session {
    /// A session for a new connection.
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        let rng = match shared.config.seed {
            Some(seed) => rng::seeded(
                seed ^ shared
                    .counters
                    .connections
                    .load(std::sync::atomic::Ordering::Relaxed),
            ),
            None => rng::from_entropy(),
        };
        let keep = if shared.config.store.is_some() {
            usize::MAX
        } else {
            HEADER_KEEP
        };
        let body = Body::new(keep, shared.config.max_message_size);
        Self {
            shared,
            rng,
            state: State::Command,
            helo: None,
            tls: false,
            authenticated: false,
            tx: None,
            body,
            pause: None,
            pending: None,
        }
    }

    /// Writes the greeting (possibly delayed).
    pub(crate) fn greet(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.shared.greeting);
        self.maybe_delay(DelayPoint::Greeting);
    }

    /// Takes whatever complete input there is, writing replies to `out`.
    pub(crate) fn feed(&mut self, input: &mut BytesMut, now_ns: u64, out: &mut Vec<u8>) -> Step {
        loop {
            if let Some(pause) = self.pause.take() {
                return Step::Pause(pause);
            }
            let step = match &mut self.state {
                State::Closed => return Step::Close,
                State::Data(rx) => {
                    if !rx.feed(input, &mut self.body) {
                        return Step::NeedInput;
                    }
                    self.state = State::Command;
                    self.end_of_message(now_ns, out)
                }
                State::Bdat {
                    remaining,
                    last,
                    refuse,
                } => {
                    let n = (*remaining).min(input.len());
                    self.body.append(&input[..n]);
                    input.advance(n);
                    *remaining -= n;
                    if *remaining > 0 {
                        return Step::NeedInput;
                    }
                    let (last, refuse) = (*last, *refuse);
                    self.state = State::Command;
                    self.chunk_done(last, refuse, now_ns, out)
                }
                _ => {
                    let Some(nl) = input.iter().position(|&b| b == b'\n') else {
                        if input.len() > MAX_COMMAND_LINE {
                            self.error(replies::LINE_TOO_LONG, out);
                            self.state = State::Closed;
                            return Step::Close;
                        }
                        return Step::NeedInput;
                    };
                    let line = &input[..nl];
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    let step = self.line(line, out);
                    input.advance(nl + 1);
                    step
                }
            };
            if let Some(step) = step {
                return step;
            }
        }
    }

    /// One command line (or AUTH response line).
    fn line(&mut self, line: &[u8], out: &mut Vec<u8>) -> Option<Step> {
        match std::mem::replace(&mut self.state, State::Command) {
            State::AuthPlain => return self.auth_plain_response(line, out),
            State::AuthLoginUser => return self.auth_login_user(line, out),
            State::AuthLoginPass(user) => return self.auth_login_password(&user, line, out),
            _ => {}
        }
        match command::parse(line) {
            Command::Ehlo(name) => self.hello(name, true, false, out),
            Command::Helo(name) => self.hello(name, false, false, out),
            Command::Lhlo(name) => self.hello(name, true, true, out),
            Command::Mail { from, size, params } => self.mail(from, size, params, out),
            Command::Rcpt { to } => self.rcpt(to, out),
            Command::Data => self.data(out),
            Command::Bdat { size, last } => self.bdat(size, last),
            Command::Rset => self.rset(out),
            Command::Noop => out.extend_from_slice(replies::OK),
            Command::Quit => {
                out.extend_from_slice(replies::BYE);
                self.maybe_delay(DelayPoint::Quit);
                self.state = State::Closed;
            }
            Command::StartTls => return self.starttls(out),
            Command::Auth { mechanism, initial } => return self.auth(mechanism, initial, out),
            Command::Vrfy => out.extend_from_slice(replies::VRFY),
            Command::Help => out.extend_from_slice(replies::HELP),
            Command::Syntax(reply) => self.error(reply, out),
            Command::Unknown => self.error(replies::UNKNOWN, out),
        }
        None
    }

    /// Writes an error reply caused by the client, and counts it.
    fn error(&self, reply: &[u8], out: &mut Vec<u8>) {
        bump(&self.shared.counters.protocol_errors);
        out.extend_from_slice(reply);
    }

    /// Rolls the configured delays for `point`.
    fn maybe_delay(&mut self, point: DelayPoint) {
        for delay in &self.shared.config.delays {
            if delay.point == point && rng::chance(&mut self.rng, delay.odds) {
                bump(&self.shared.counters.delays);
                *self.pause.get_or_insert(Duration::ZERO) += delay.duration;
            }
        }
    }

    /// Draws an injected verdict from the configured odds.
    fn draw(&mut self) -> Verdict {
        let (temp, perm) = (self.shared.config.tempfail, self.shared.config.permfail);
        if temp <= 0.0 && perm <= 0.0 {
            return Verdict::Accept;
        }
        let r: f64 = self.rng.random();
        if r < perm {
            Verdict::Perm
        } else if r < perm + temp {
            Verdict::Temp
        } else {
            Verdict::Accept
        }
    }
}

/// The failure a recipient's local part asks for (`tempfail*`, `permfail*`).
fn forced_verdict(addr: &str) -> Option<Verdict> {
    let local = addr.split('@').next().unwrap_or_default();
    let starts = |p: &str| {
        local
            .get(..p.len())
            .is_some_and(|l| l.eq_ignore_ascii_case(p))
    };
    if starts("tempfail") {
        Some(Verdict::Temp)
    } else if starts("permfail") {
        Some(Verdict::Perm)
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
