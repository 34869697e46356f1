//! Running Postfix's smtp-sink and smtp-source (Debian's postfix package; CI installs
//! it) as real peers, each bounded in time and killed by its own handle.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian puts the Postfix test tools.
pub const SMTP_SINK: &str = "/usr/sbin/smtp-sink";
/// See [`SMTP_SINK`].
pub const SMTP_SOURCE: &str = "/usr/sbin/smtp-source";

/// Fails with a clear message when the tools are missing (apt-get install postfix).
pub fn require(tool: &str) {
    assert!(
        std::path::Path::new(tool).exists(),
        "{tool} is missing: install Debian's postfix package (see .ci/run)"
    );
}

/// Whether we run as root, where smtp-sink insists on `-u`.
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// A free loopback port (bound and released; smtp-sink binds it right after).
pub fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// A running smtp-sink, killed when dropped.
pub struct PostfixSink {
    pub addr: SocketAddr,
    child: Child,
}

impl PostfixSink {
    /// Starts smtp-sink with extra flags (e.g. `-L` for LMTP) and waits until it listens.
    pub fn start(flags: &[&str]) -> Self {
        require(SMTP_SINK);
        let addr = free_addr();
        let mut cmd = Command::new(SMTP_SINK);
        if is_root() {
            cmd.args(["-u", "nobody"]);
        }
        cmd.args(flags).arg(addr.to_string()).arg("256");
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "smtp-sink did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { addr, child }
    }
}

impl Drop for PostfixSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs smtp-source to completion (at most 60 s) and returns whether it succeeded.
pub async fn smtp_source(args: &[&str], addr: SocketAddr) -> bool {
    require(SMTP_SOURCE);
    let mut child = tokio::process::Command::new(SMTP_SOURCE)
        .args(args)
        .arg(addr.to_string())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    match tokio::time::timeout(Duration::from_secs(60), child.wait()).await {
        Ok(Ok(status)) => status.success(),
        _ => false,
    }
}
