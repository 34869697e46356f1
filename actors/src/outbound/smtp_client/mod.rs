//! The client side of SMTP and LMTP that a Delivery actor speaks to its next hop: one
//! connection, many transactions (RSET between), pipelined when the server offers it.
//! Results are per recipient, as the Queue needs them.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::time::timeout;

use crate::outbound::connection_budget::Permit;
use crate::outbound::tls::{HopSecurity, TlsMode};
use crate::protocol::reply_reader::{ParsedReply, ReplyReader};
use crate::protocol::sasl;
use crate::protocol::security::TlsInfo;
use crate::protocol::status::EnhancedCode;
use crate::protocol::transcript::Transcript;

mod dial;
mod error;
mod reading;
mod transaction;
mod transport;

pub use dial::Dial;
pub use error::{ClientError, ServerReply, TlsFailure};
use transport::{Transport, handshake};

/// 8-bit data for a next hop without 8BITMIME (RFC 6152 §3).
const MESSAGE_NEEDS_8BIT: EnhancedCode = EnhancedCode::new(5, 6, 3);
/// UTF-8 addresses or headers for a next hop without SMTPUTF8 (RFC 6531 §3.2).
const MESSAGE_NEEDS_UTF8: EnhancedCode = EnhancedCode::new(5, 6, 7);

/// Timeouts for one connection.
#[derive(Debug, Clone, Copy)]
pub struct ClientTimeouts {
    /// TCP connect.
    pub connect: Duration,
    /// Each reply.
    pub command: Duration,
}

/// What the server offered in its EHLO reply.
#[derive(Debug, Clone, Default)]
pub struct Capabilities {
    /// PIPELINING.
    pub pipelining: bool,
    /// SIZE limit, if announced.
    pub size: Option<usize>,
    /// CHUNKING (BDAT, RFC 3030).
    pub chunking: bool,
    /// 8BITMIME (RFC 6152).
    pub eight_bit_mime: bool,
    /// SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    /// STARTTLS (RFC 3207).
    pub starttls: bool,
    /// AUTH mechanisms offered (RFC 4954), uppercase.
    pub auth: Vec<String>,
}

/// One open connection to a next hop.
pub struct SmtpConnection {
    stream: Transport,
    /// The TLS in use, if any.
    tls: Option<TlsInfo>,
    buffer: BytesMut,
    /// The reply being read (its lines so far), across reads.
    reader: ReplyReader,
    caps: Capabilities,
    lmtp: bool,
    peer: String,
    timeouts: ClientTimeouts,
    /// Transactions completed on this connection.
    pub transactions: u32,
    /// Send with BDAT when the server offers CHUNKING and PIPELINING.
    use_chunking: bool,
    /// Its place in the outbound connection budget, given back when it is dropped.
    permit: Option<Permit>,
    /// The conversation, when the next hop is in `log.transcript_peers`.
    transcript: Option<Transcript>,
    /// The host name its certificate was verified for (`verify`, or an MTA-STS policy
    /// in enforce); `None` when it was not verified that way.
    verified_for: Option<String>,
    /// The TLSA records its certificate matched, when DANE verified it.
    dane_records: Option<std::sync::Arc<[crate::outbound::dane::Tlsa]>>,
    /// The host name it was opened to, lower-case.
    host: String,
    /// Why it has no TLS after an opportunistic handshake failed and it was opened again
    /// in clear: what TLS reports tell the domain.
    tls_fallback: Option<TlsFailure>,
    /// The server answered 421: it closes the connection after that reply (RFC 5321
    /// §3.8), so nothing more is read from or sent over it.
    closing: bool,
    /// The egress source it left from, if one was chosen: a pooled connection carries
    /// only mail of a pool that has it.
    source: Option<std::sync::Arc<crate::outbound::egress::Source>>,
}

impl SmtpConnection {
    /// Connects as `security` says: TLS from the first byte for `implicit_tls`, else
    /// STARTTLS when offered (unless the mode is `none`); AUTH when the hop has
    /// credentials. An opportunistic handshake that fails is retried in clear on a new
    /// connection, logged and counted.
    #[allow(clippy::too_many_arguments)]
    pub async fn open(
        host: &str,
        dial: Dial,
        helo_name: &str,
        lmtp: bool,
        timeouts: ClientTimeouts,
        security: &HopSecurity,
        implicit_tls: bool,
    ) -> Result<Self, ClientError> {
        let first = Self::connect(
            host,
            dial,
            helo_name,
            lmtp,
            timeouts,
            security,
            implicit_tls,
        )
        .await;
        match first {
            Err(ClientError::Tls {
                retry_in_clear: true,
                ref peer,
                ref reason,
                failure,
                ..
            }) => {
                metrics::counter!("delivery_tls_failures_total", "reason" => "handshake", "then" => "plaintext_retry").increment(1);
                tracing::warn!(relay = %peer, reason = %reason, "TLS handshake with the next hop failed; retrying in plaintext on a new connection (opportunistic TLS)");
                Self::connect(
                    host,
                    dial,
                    helo_name,
                    lmtp,
                    timeouts,
                    &security.without_tls(),
                    false,
                )
                .await
                .map(|mut conn| {
                    conn.tls_fallback = Some(failure);
                    conn
                })
            }
            other => other,
        }
    }

    /// Connects, reads the greeting and says EHLO (LHLO for LMTP; HELO if EHLO is
    /// refused), then STARTTLS and AUTH as `security` says; no retry in clear.
    pub async fn connect(
        host: &str,
        dial: Dial,
        helo_name: &str,
        lmtp: bool,
        timeouts: ClientTimeouts,
        security: &HopSecurity,
        implicit_tls: bool,
    ) -> Result<Self, ClientError> {
        let addr = dial.to;
        let stream = match timeout(timeouts.connect, dial.tcp()).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                return Err(ClientError::Connect {
                    addr,
                    reason: e.to_string(),
                });
            }
            Err(_) => {
                return Err(ClientError::Connect {
                    addr,
                    reason: "timed out".into(),
                });
            }
        };
        let _ = stream.set_nodelay(true);
        let peer = format!("{host}[{}]:{}", addr.ip(), addr.port());
        let (stream, tls) = if implicit_tls {
            let (stream, info) = handshake(stream, host, &peer, security, timeouts, false).await?;
            (stream, Some(info))
        } else {
            (Transport::Plain(stream), None)
        };
        let mut conn = SmtpConnection {
            stream,
            tls,
            buffer: BytesMut::with_capacity(4096),
            reader: ReplyReader::default(),
            transcript: None,
            caps: Capabilities::default(),
            lmtp,
            peer,
            timeouts,
            transactions: 0,
            use_chunking: false,
            permit: None,
            verified_for: None,
            dane_records: None,
            host: host.trim_end_matches('.').to_ascii_lowercase(),
            tls_fallback: None,
            closing: false,
            source: None,
        };
        let greeting = conn.read_reply("greeting").await?;
        if !greeting.is_positive() {
            return Err(conn.refused("greeting", greeting));
        }
        conn.hello(helo_name).await?;
        if conn.tls.is_none() && security.mode != TlsMode::None {
            conn = conn.starttls(host, helo_name, security).await?;
        }
        let state = if conn.tls.is_some() {
            "tls"
        } else {
            "plaintext"
        };
        metrics::counter!("delivery_tls_connections_total", "state" => state).increment(1);
        if conn.tls.is_some() && security.mode == TlsMode::Verify {
            match &security.dane {
                Some(records) => conn.dane_records = Some(records.clone()),
                None => conn.verified_for = Some(host.to_ascii_lowercase()),
            }
        }
        if let Some(credentials) = &security.credentials {
            conn.authenticate(credentials, security.auth_in_clear)
                .await?;
        }
        Ok(conn)
    }

    /// EHLO (LHLO), falling back to HELO; records what the server offers.
    async fn hello(&mut self, helo_name: &str) -> Result<(), ClientError> {
        let verb = if self.lmtp { "LHLO" } else { "EHLO" };
        self.write(format!("{verb} {helo_name}\r\n").as_bytes(), "EHLO")
            .await?;
        let ehlo = self.read_reply_lines("EHLO").await?;
        if ehlo.0.is_positive() {
            self.caps = parse_capabilities(&ehlo.1);
        } else if !self.lmtp && ehlo.0.code >= 500 {
            self.write(format!("HELO {helo_name}\r\n").as_bytes(), "HELO")
                .await?;
            let helo = self.read_reply("HELO").await?;
            if !helo.is_positive() {
                return Err(self.refused("HELO", helo));
            }
            self.caps = Capabilities::default();
        } else {
            return Err(self.refused("EHLO", ehlo.0));
        }
        Ok(())
    }

    /// STARTTLS when the server offers it; without it, or when the server refuses it,
    /// the connection goes on in clear unless the mode requires TLS.
    async fn starttls(
        mut self,
        host: &str,
        helo_name: &str,
        security: &HopSecurity,
    ) -> Result<Self, ClientError> {
        let not_secured = |conn: &Self, reason: String| ClientError::Tls {
            peer: conn.peer.clone(),
            reason,
            retry_in_clear: false,
            status: TLS_NOT_AVAILABLE,
            failure: TlsFailure::StartTlsNotSupported,
        };
        if !self.caps.starttls {
            if security.mode.requires_tls() {
                metrics::counter!("delivery_tls_failures_total", "reason" => "not_offered", "then" => "deferred").increment(1);
                let reason = format!(
                    "the next hop does not offer STARTTLS, and the TLS policy is {}",
                    security.mode.name()
                );
                return Err(not_secured(&self, reason));
            }
            return Ok(self);
        }
        self.write(b"STARTTLS\r\n", "STARTTLS").await?;
        let reply = self.read_reply("STARTTLS").await?;
        if reply.code != 220 {
            if security.mode.requires_tls() {
                metrics::counter!("delivery_tls_failures_total", "reason" => "refused", "then" => "deferred").increment(1);
                let reason = format!("the next hop refused STARTTLS: {reply}");
                return Err(not_secured(&self, reason));
            }
            tracing::info!(relay = %self.peer, reply = %reply, "the next hop refused STARTTLS; going on in plaintext");
            return Ok(self);
        }
        // Whatever the server sent after its 220 came in clear: it must not be read as
        // if it came over TLS.
        self.buffer.clear();
        self.reader = ReplyReader::default();
        let Transport::Plain(tcp) = self.stream else {
            return Ok(self);
        };
        let retry = security.mode == TlsMode::Opportunistic;
        let (stream, info) =
            handshake(tcp, host, &self.peer, security, self.timeouts, retry).await?;
        self.stream = stream;
        self.tls = Some(info);
        self.hello(helo_name).await?;
        Ok(self)
    }

    /// AUTH with the hop's credentials: PLAIN if offered, else LOGIN. Never in clear
    /// unless `in_clear` allows it.
    async fn authenticate(
        &mut self,
        credentials: &sasl::Credentials,
        in_clear: bool,
    ) -> Result<(), ClientError> {
        let refuse = |conn: &Self, reason: String| {
            metrics::counter!("delivery_auth_failures_total").increment(1);
            ClientError::Auth {
                peer: conn.peer.clone(),
                reason,
            }
        };
        if self.tls.is_none() && !in_clear {
            return Err(refuse(self, "AUTH credentials are configured for this next hop, but the connection has no TLS; they are not sent in clear (set delivery.auth_in_clear to allow it)".into()));
        }
        let offered = |m: &str| self.caps.auth.iter().any(|a| a == m);
        let reply = if offered("PLAIN") {
            let token = sasl::encode(&format!("\0{}\0{}", credentials.user, credentials.password));
            self.write(format!("AUTH PLAIN {token}\r\n").as_bytes(), "AUTH")
                .await?;
            self.read_reply("AUTH").await?
        } else if offered("LOGIN") {
            self.write(b"AUTH LOGIN\r\n", "AUTH").await?;
            let mut reply = self.read_reply("AUTH").await?;
            for answer in [&credentials.user, &credentials.password] {
                if reply.code != 334 {
                    break;
                }
                self.write(format!("{}\r\n", sasl::encode(answer)).as_bytes(), "AUTH")
                    .await?;
                reply = self.read_reply("AUTH").await?;
            }
            reply
        } else {
            let reason = if self.caps.auth.is_empty() {
                "the next hop does not offer AUTH".to_string()
            } else {
                format!(
                    "the next hop offers AUTH {} but not PLAIN or LOGIN",
                    self.caps.auth.join(" ")
                )
            };
            return Err(refuse(self, reason));
        };
        if reply.code == 235 {
            return Ok(());
        }
        Err(refuse(
            self,
            format!("AUTH as {} refused: {reply}", credentials.user),
        ))
    }

    /// The TLS in use on this connection, if any.
    pub fn tls(&self) -> Option<&TlsInfo> {
        self.tls.as_ref()
    }

    /// How the session stands for TLS reports: `Ok` over TLS, else why not.
    pub fn tls_outcome(&self) -> Result<(), TlsFailure> {
        match (&self.tls, self.tls_fallback) {
            (Some(_), _) => Ok(()),
            (None, Some(failure)) => Err(failure),
            (None, None) => Err(TlsFailure::StartTlsNotSupported),
        }
    }

    /// The certificates the server presented, leaf first (none without TLS): checked
    /// again where a policy in testing mode wants to know whether they would verify.
    pub fn peer_certificates(&self) -> Option<Vec<rustls_pki_types::CertificateDer<'static>>> {
        self.stream.peer_certificates()
    }

    /// Keeps `permit` for as long as the connection lives (a new connection's place in
    /// the outbound budget).
    pub fn hold(&mut self, permit: Option<Permit>) {
        self.permit = permit;
    }

    /// Takes the connection's budget permit back (before dropping a connection whose
    /// place a new one will take).
    pub fn release_permit(&mut self) -> Option<Permit> {
        self.permit.take()
    }

    /// Sends messages with `BDAT n LAST` when the server offers CHUNKING and PIPELINING:
    /// the whole transaction then goes out in one write and comes back in one read, and
    /// the body needs no dot-stuffing.
    pub fn prefer_chunking(&mut self, on: bool) {
        self.use_chunking = on;
    }

    /// Records the conversation from now on into `transcript`.
    pub fn record(&mut self, transcript: Transcript) {
        self.transcript = Some(transcript);
    }

    /// What was recorded since the last call (`None` when nothing is recorded).
    pub fn take_transcript(&mut self) -> Option<String> {
        self.transcript.as_mut().map(Transcript::take)
    }

    /// The host name the server's certificate was verified for, if it was: whether a
    /// pooled connection meets an MTA-STS policy that applies since it was opened.
    pub fn verified_for(&self) -> Option<&str> {
        self.verified_for.as_deref()
    }

    /// The TLSA records DANE verified its certificate with, if it did.
    pub fn dane_records(&self) -> Option<&std::sync::Arc<[crate::outbound::dane::Tlsa]>> {
        self.dane_records.as_ref()
    }

    /// The host name it was opened to (an MX host), lower-case.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `host[ip]:port`, as logs show the relay.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// The server refused at `stage` with `reply`: the error names the server.
    fn refused(&self, stage: &'static str, reply: ServerReply) -> ClientError {
        ClientError::Refused {
            stage,
            peer: self.peer.clone(),
            reply,
        }
    }

    /// Says QUIT and closes, without waiting long for the answer.
    pub async fn quit(mut self) {
        if self.write(b"QUIT\r\n", "QUIT").await.is_ok() {
            let _ = timeout(Duration::from_secs(2), self.read_reply("QUIT")).await;
        }
    }

    async fn write(&mut self, bytes: &[u8], stage: &'static str) -> Result<(), ClientError> {
        if let Some(transcript) = self.transcript.as_mut() {
            transcript.client(bytes, std::time::SystemTime::now());
        }
        // Flushed too: over TLS the last records may still sit in rustls after write_all.
        let stream = &mut self.stream;
        let written = async {
            stream.write_all(bytes).await?;
            stream.flush().await
        };
        match timeout(self.timeouts.command, written).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ClientError::Io {
                stage,
                peer: self.peer.clone(),
                reason: e.to_string(),
            }),
            Err(_) => Err(ClientError::Timeout {
                stage,
                peer: self.peer.clone(),
            }),
        }
    }

    /// Records the egress source it left from.
    pub fn set_source(&mut self, source: Option<std::sync::Arc<crate::outbound::egress::Source>>) {
        self.source = source;
    }

    /// The egress source it left from, if one was chosen.
    pub fn source(&self) -> Option<&crate::outbound::egress::Source> {
        self.source.as_deref()
    }

    /// The same, shared.
    pub fn source_arc(&self) -> Option<std::sync::Arc<crate::outbound::egress::Source>> {
        self.source.clone()
    }

    /// Whether it must not carry another message: unread bytes are waiting (a server
    /// that spoke out of turn) or the server said 421 and is closing it.
    pub fn is_spent(&self) -> bool {
        self.buffer.has_remaining() || self.closing
    }
}

/// RFC 3463 4.7.4: security features not supported (TLS required, not available).
const TLS_NOT_AVAILABLE: EnhancedCode = EnhancedCode::new(4, 7, 4);
/// A reply read back into the transcript, line by line as it came.
fn record_reply(transcript: &mut Transcript, reply: &ParsedReply) {
    let last = reply.lines.len().saturating_sub(1);
    let mut wire = Vec::new();
    for (i, line) in reply.lines.iter().enumerate() {
        let sep = if i == last { ' ' } else { '-' };
        wire.extend_from_slice(format!("{}{sep}{line}\r\n", reply.code).as_bytes());
    }
    transcript.server(&wire, std::time::SystemTime::now());
}

fn parse_capabilities(lines: &[String]) -> Capabilities {
    let mut caps = Capabilities::default();
    for line in lines.iter().skip(1) {
        let mut words = line.split_whitespace();
        match words.next().map(|w| w.to_ascii_uppercase()).as_deref() {
            Some("PIPELINING") => caps.pipelining = true,
            Some("CHUNKING") => caps.chunking = true,
            Some("8BITMIME") => caps.eight_bit_mime = true,
            Some("SMTPUTF8") => caps.smtputf8 = true,
            Some("STARTTLS") => caps.starttls = true,
            Some("AUTH") => caps.auth = words.map(|w| w.to_ascii_uppercase()).collect(),
            Some("SIZE") => {
                caps.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0))
            }
            _ => {}
        }
    }
    caps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_are_read_from_ehlo_lines() {
        let lines: Vec<String> = ["mx Hello", "PIPELINING", "SIZE 1000", "8BITMIME"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let caps = parse_capabilities(&lines);
        assert!(caps.pipelining);
        assert_eq!(caps.size, Some(1000));
    }
}
