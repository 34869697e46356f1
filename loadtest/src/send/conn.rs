//! One client connection: buffered replies, and the opening exchange (greeting,
//! EHLO/LHLO, STARTTLS, AUTH) that every message on it depends on.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::ctx::Ctx;
use super::outcome::{ErrorKind, Outcome};
use super::report::Tally;
use super::stream::Stream;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::{reply, tls};

/// How long closing may wait for the server's side of the close.
const CLOSE_WAIT: Duration = Duration::from_millis(200);

/// What the server offered in its EHLO/LHLO reply.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Caps {
    pub(crate) pipelining: bool,
    pub(crate) chunking: bool,
    pub(crate) starttls: bool,
    pub(crate) auth_plain: bool,
    pub(crate) auth_login: bool,
}

impl Caps {
    /// Reads the keywords of an EHLO reply.
    fn parse(reply: &[u8]) -> Self {
        let mut caps = Self::default();
        for line in reply::lines(reply).skip(1) {
            let mut words = line.split_whitespace();
            let keyword = words.next().unwrap_or_default().to_ascii_uppercase();
            match keyword.as_str() {
                "PIPELINING" => caps.pipelining = true,
                "CHUNKING" => caps.chunking = true,
                "STARTTLS" => caps.starttls = true,
                "AUTH" => {
                    for mech in words {
                        caps.auth_plain |= mech.eq_ignore_ascii_case("PLAIN");
                        caps.auth_login |= mech.eq_ignore_ascii_case("LOGIN");
                    }
                }
                _ => {}
            }
        }
        caps
    }
}

/// An open, greeted connection.
pub(crate) struct Conn {
    stream: Stream,
    rbuf: BytesMut,
    /// Commands waiting to go out; flushed in one write before the next blocking read.
    pub(crate) wbuf: Vec<u8>,
    timeout: Duration,
    /// The server's extensions.
    pub(crate) caps: Caps,
}

impl Conn {
    /// Connects and runs the opening exchange. A server that refuses us with a 4xx or
    /// 5xx (e.g. 421 past its connection limit) temp- or perm-fails the message, as it
    /// would for a mail client; anything else that breaks the opening is an error.
    pub(crate) async fn open(ctx: &Ctx, tally: &mut Tally) -> Result<Self, Outcome> {
        Self::connect(ctx, tally)
            .await
            .map_err(Outcome::Error)?
            .greeted(ctx, tally)
            .await
    }

    /// The TCP connection and, for implicit TLS, the handshake.
    async fn connect(ctx: &Ctx, tally: &mut Tally) -> Result<Self, ErrorKind> {
        let config = &ctx.config;
        // A fleet: the next server in turn, and the others if it refuses.
        let mut last = ErrorKind::ConnectFailed;
        let mut opened = None;
        for server in ctx.servers_in_turn() {
            let connect = tokio::time::timeout(config.connect_timeout, TcpStream::connect(server));
            match connect.await {
                Ok(Ok(tcp)) => {
                    opened = Some(tcp);
                    break;
                }
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    last = ErrorKind::ConnectRefused;
                }
                Ok(Err(_)) => last = ErrorKind::ConnectFailed,
                Err(_) => last = ErrorKind::ConnectTimeout,
            }
        }
        let Some(tcp) = opened else {
            return Err(last);
        };
        let _ = tcp.set_nodelay(true);
        tally.connections += 1;
        let stream = if config.tls {
            handshake(ctx, tcp).await?
        } else {
            Stream::Plain(tcp)
        };
        Ok(Conn {
            stream,
            rbuf: BytesMut::with_capacity(16 * 1024),
            wbuf: Vec::with_capacity(16 * 1024),
            timeout: config.command_timeout,
            caps: Caps::default(),
        })
    }

    /// Greeting, EHLO, STARTTLS and AUTH as configured.
    async fn greeted(mut self, ctx: &Ctx, tally: &mut Tally) -> Result<Self, Outcome> {
        let config = &ctx.config;
        let greeting = self.reply(tally).await.map_err(Outcome::Error)?;
        if greeting != 220 {
            return Err(refusal(greeting, ErrorKind::GreetingRejected));
        }
        self.hello(ctx, tally).await?;
        if config.starttls && !config.tls {
            self = self.starttls(ctx, tally).await?;
        }
        if let Some((user, pass)) = &config.auth {
            self.auth(user, pass, tally).await.map_err(Outcome::Error)?;
        }
        Ok(self)
    }

    /// EHLO (or LHLO), falling back to HELO for an old SMTP server.
    async fn hello(&mut self, ctx: &Ctx, tally: &mut Tally) -> Result<(), Outcome> {
        let verb = if ctx.config.lmtp { "LHLO" } else { "EHLO" };
        self.command(&format!("{verb} {}", ctx.config.helo));
        let (code, text) = self.reply_text(tally).await.map_err(Outcome::Error)?;
        if (200..300).contains(&code) {
            self.caps = Caps::parse(&text);
            return Ok(());
        }
        // 421 closes the session; LMTP has no HELO to fall back to.
        if ctx.config.lmtp || code == 421 {
            return Err(hello_refusal(code));
        }
        self.command(&format!("HELO {}", ctx.config.helo));
        match self.reply(tally).await.map_err(Outcome::Error)? {
            200..=299 => Ok(()),
            code => Err(hello_refusal(code)),
        }
    }

    /// STARTTLS, the handshake, and EHLO again.
    async fn starttls(mut self, ctx: &Ctx, tally: &mut Tally) -> Result<Self, Outcome> {
        let unavailable = Outcome::Error(ErrorKind::StarttlsUnavailable);
        if !self.caps.starttls {
            return Err(unavailable);
        }
        self.command("STARTTLS");
        if self.reply(tally).await.map_err(Outcome::Error)? != 220 {
            return Err(unavailable);
        }
        let Stream::Plain(tcp) = self.stream else {
            return Err(unavailable);
        };
        self.stream = handshake(ctx, tcp).await.map_err(Outcome::Error)?;
        self.rbuf.clear();
        self.hello(ctx, tally).await?;
        Ok(self)
    }

    /// AUTH PLAIN (preferred) or LOGIN.
    async fn auth(&mut self, user: &str, pass: &str, tally: &mut Tally) -> Result<(), ErrorKind> {
        if self.caps.auth_plain {
            let token = BASE64.encode(format!("\0{user}\0{pass}").as_bytes());
            self.command(&format!("AUTH PLAIN {token}"));
        } else if self.caps.auth_login {
            self.command("AUTH LOGIN");
            if self.reply(tally).await? != 334 {
                return Err(ErrorKind::AuthFailed);
            }
            self.command(&BASE64.encode(user.as_bytes()));
            if self.reply(tally).await? != 334 {
                return Err(ErrorKind::AuthFailed);
            }
            self.command(&BASE64.encode(pass.as_bytes()));
        } else {
            return Err(ErrorKind::AuthUnavailable);
        }
        match self.reply(tally).await? {
            235 => Ok(()),
            _ => Err(ErrorKind::AuthFailed),
        }
    }

    /// Queues one command line.
    pub(crate) fn command(&mut self, line: &str) {
        self.wbuf.extend_from_slice(line.as_bytes());
        self.wbuf.extend_from_slice(b"\r\n");
    }

    /// The next reply's code, flushing queued commands first if it is not here yet.
    pub(crate) async fn reply(&mut self, tally: &mut Tally) -> Result<u16, ErrorKind> {
        let found = self.next_reply().await?;
        self.rbuf.advance(found.len);
        tally.code(found.code);
        Ok(found.code)
    }

    /// The next reply with its text (for EHLO).
    async fn reply_text(&mut self, tally: &mut Tally) -> Result<(u16, Vec<u8>), ErrorKind> {
        let found = self.next_reply().await?;
        let text = self.rbuf.split_to(found.len).to_vec();
        tally.code(found.code);
        Ok((found.code, text))
    }

    /// Finds a complete reply in the buffer, reading (after a flush) as needed. The
    /// timeout covers the whole reply, so a server that trickles bytes cannot stall us.
    async fn next_reply(&mut self) -> Result<reply::Found, ErrorKind> {
        let mut deadline = None;
        loop {
            match reply::parse(&self.rbuf) {
                Ok(Some(found)) => return Ok(found),
                Ok(None) => {}
                Err(_) => return Err(ErrorKind::MalformedReply),
            }
            self.flush().await?;
            if self.rbuf.capacity() - self.rbuf.len() < 4096 {
                self.rbuf.reserve(16 * 1024);
            }
            let deadline = *deadline.get_or_insert_with(|| Instant::now() + self.timeout);
            let read = tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.rbuf));
            match read.await {
                Ok(Ok(0)) => return Err(ErrorKind::Closed),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(ErrorKind::from_io(&e)),
                Err(_) => return Err(ErrorKind::Timeout),
            }
        }
    }

    /// Writes everything queued in one write.
    pub(crate) async fn flush(&mut self) -> Result<(), ErrorKind> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let write = tokio::time::timeout(self.timeout, self.stream.write_all(&self.wbuf));
        let result = match write.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ErrorKind::from_io(&e)),
            Err(_) => Err(ErrorKind::Timeout),
        };
        self.wbuf.clear();
        result
    }

    /// Closes the socket. After a completed QUIT, waits (briefly) for the server to
    /// close first: the side that closes first keeps the TIME_WAIT state, and a
    /// connection-per-message run would otherwise run out of ephemeral ports on our
    /// side and measure its own port search instead of the server.
    pub(crate) async fn close(mut self, quit_answered: bool) {
        if quit_answered {
            let mut scratch = [0u8; 256];
            let _ = tokio::time::timeout(CLOSE_WAIT, self.stream.read(&mut scratch)).await;
        }
        let _ = tokio::time::timeout(CLOSE_WAIT, self.stream.shutdown()).await;
    }
}

/// What a refusal reply during the opening means for the message: 4xx temp-fails it,
/// 5xx perm-fails it, any other code is the given error.
fn refusal(code: u16, otherwise: ErrorKind) -> Outcome {
    match code {
        400..=499 => Outcome::TempFailed,
        500..=599 => Outcome::PermFailed,
        _ => Outcome::Error(otherwise),
    }
}

/// A refused EHLO/HELO: a 4xx (421 busy) defers the message, but a 5xx means we speak
/// the wrong protocol (SMTP to an LMTP server), which is an error to fix, not a refusal.
fn hello_refusal(code: u16) -> Outcome {
    match code {
        400..=499 => Outcome::TempFailed,
        _ => Outcome::Error(ErrorKind::HelloRejected),
    }
}

/// The client side of a TLS handshake.
async fn handshake(ctx: &Ctx, tcp: TcpStream) -> Result<Stream, ErrorKind> {
    let connector = ctx.tls.clone().ok_or(ErrorKind::TlsHandshake)?;
    let name = tls::server_name(&ctx.config.tls_name).map_err(|_| ErrorKind::TlsHandshake)?;
    let handshake = tokio::time::timeout(ctx.config.connect_timeout, connector.connect(name, tcp));
    match handshake.await {
        Ok(Ok(tls)) => Ok(Stream::Tls(Box::new(tls))),
        Ok(Err(_)) => Err(ErrorKind::TlsHandshake),
        Err(_) => Err(ErrorKind::ConnectTimeout),
    }
}
