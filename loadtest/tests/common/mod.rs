//! Helpers shared by the integration tests: a raw SMTP client that asserts exact
//! reply lines, with every read bounded in time; the binary as a child process (`cli`);
//! Postfix's tools (`postfix`).

#![allow(dead_code)]

pub mod cli;
pub mod postfix;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Upper bound for any single read in a test.
pub const STEP: Duration = Duration::from_secs(10);

/// A line-oriented client over any stream.
pub struct Raw<S> {
    pub stream: BufReader<S>,
}

impl Raw<TcpStream> {
    /// Connects and reads the greeting.
    pub async fn connect(addr: SocketAddr) -> (Self, String) {
        let tcp = tokio::time::timeout(STEP, TcpStream::connect(addr))
            .await
            .unwrap()
            .unwrap();
        let mut raw = Raw {
            stream: BufReader::new(tcp),
        };
        let greeting = raw.reply().await;
        (raw, greeting)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Raw<S> {
    /// Sends bytes as they are.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.get_mut().write_all(bytes).await.unwrap();
    }

    /// Reads one whole reply (all its lines), or "" at end of stream.
    pub async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(STEP, self.stream.read_line(&mut line))
                .await
                .unwrap()
                .unwrap();
            all.push_str(&line);
            if n == 0 || line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }

    /// Sends one command line and returns the reply.
    pub async fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }
}

/// Polls until `path` exists, at most a few seconds.
pub async fn wait_for_file(path: &std::path::Path) -> bool {
    for _ in 0..500 {
        if path.exists() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}
