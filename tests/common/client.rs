//! A plain SMTP client for asserting exact reply bytes: it sends what the test says, as
//! the test says it (pipelined, malformed, slow), and reads whole replies.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One client connection.
pub struct Client {
    stream: TcpStream,
    buffer: Vec<u8>,
}

const REPLY_TIMEOUT: Duration = Duration::from_secs(15);

impl Client {
    /// Connects and returns the client with the greeting it got.
    pub async fn connect_raw(addr: SocketAddr) -> (Client, String) {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let mut client = Client {
            stream,
            buffer: Vec::new(),
        };
        let greeting = client.reply().await;
        (client, greeting)
    }

    /// Over a connection the test opened itself (from another local address, say): checks
    /// the 220 greeting and says EHLO.
    pub async fn from_stream(stream: TcpStream) -> Client {
        let mut client = Client {
            stream,
            buffer: Vec::new(),
        };
        let greeting = client.reply().await;
        assert!(greeting.starts_with("220 "), "greeting: {greeting}");
        let ehlo = client.cmd("EHLO client.test").await;
        assert!(ehlo.starts_with("250"), "EHLO: {ehlo}");
        client
    }

    /// Connects, checks the 220 greeting and says EHLO.
    pub async fn connect(addr: SocketAddr) -> Client {
        let (mut client, greeting) = Self::connect_raw(addr).await;
        assert!(greeting.starts_with("220 "), "greeting: {greeting}");
        let ehlo = client.cmd("EHLO client.test").await;
        assert!(ehlo.starts_with("250"), "EHLO: {ehlo}");
        client
    }

    /// Writes raw bytes.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Sends one command line (CRLF added) and returns the reply.
    pub async fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    /// Reads one whole reply (all its lines, joined with `\n`); empty if the server
    /// closed the connection first.
    pub async fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let Some(line) = self.line().await else {
                return lines.join("\n");
            };
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return lines.join("\n");
            }
        }
    }

    async fn line(&mut self) -> Option<String> {
        loop {
            if let Some(lf) = self.buffer.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=lf).collect();
                assert!(line.ends_with(b"\r\n"), "reply line without CRLF: {line:?}");
                return Some(String::from_utf8_lossy(&line[..line.len() - 2]).into_owned());
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(REPLY_TIMEOUT, self.stream.read(&mut chunk))
                .await
                .expect("no reply within the timeout")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }

    /// Whether the server has closed the connection (reads EOF within the timeout).
    pub async fn is_closed(&mut self) -> bool {
        let mut chunk = [0u8; 256];
        matches!(
            tokio::time::timeout(REPLY_TIMEOUT, self.stream.read(&mut chunk)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }

    /// Sends a whole transaction (MAIL, RCPTs, DATA, body, end) and returns the final reply.
    /// `body` has CRLF line ends and is dot-stuffed by the caller if needed.
    pub async fn send_message(&mut self, from: &str, to: &[&str], body: &[u8]) -> String {
        let mail = self.cmd(&format!("MAIL FROM:<{from}>")).await;
        assert!(mail.starts_with("250"), "MAIL: {mail}");
        for rcpt in to {
            let reply = self.cmd(&format!("RCPT TO:<{rcpt}>")).await;
            assert!(reply.starts_with("250"), "RCPT {rcpt}: {reply}");
        }
        let data = self.cmd("DATA").await;
        assert!(data.starts_with("354"), "DATA: {data}");
        self.send(body).await;
        self.send(b".\r\n").await;
        self.reply().await
    }
}

impl Client {
    /// Sends `n` one-recipient messages from `from`, to `u0@domain`, `u1@domain`, ...;
    /// each must be queued.
    pub async fn send_numbered(&mut self, n: usize, from: &str, domain: &str) {
        for i in 0..n {
            queue_id(
                &self
                    .send_message(
                        from,
                        &[&format!("u{i}@{domain}")],
                        b"Subject: x\r\n\r\nx\r\n",
                    )
                    .await,
            );
        }
    }
}

/// The queue id in a `250 2.0.0 Ok: queued as ID` reply.
pub fn queue_id(reply: &str) -> String {
    assert!(
        reply.starts_with("250 2.0.0 Ok: queued as "),
        "not queued: {reply}"
    );
    reply.rsplit(' ').next().unwrap_or_default().to_string()
}
