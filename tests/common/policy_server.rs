//! MTA-STS policy hosts for the tests: every `https://mta-sts.DOMAIN/` served by one
//! Python standard-library HTTPS server with a certificate from the test CA.

// Each test binary compiles this module and uses only some of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::certs::TestCa;

/// The policy server (Python's standard library), shared with loadtest/bench_mta_sts.sh.
pub const POLICY_SERVER: &str = include_str!("../../loadtest/mta_sts_policy_server.py");

/// The HTTPS server of every `mta-sts.DOMAIN`, serving `policies/mta-sts.DOMAIN.txt`.
pub struct PolicyServer {
    child: Child,
}

impl PolicyServer {
    /// Serves the policies of `domains` on `port`, with a certificate from `ca` for each
    /// `mta-sts.DOMAIN`.
    pub fn start(dir: &Path, ca: &TestCa, port: u16, domains: &[&str]) -> PolicyServer {
        let names: Vec<String> = domains.iter().map(|d| format!("mta-sts.{d}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        PolicyServer::start_for(dir, ca, port, &names)
    }

    /// Serves on `port` with a certificate from `ca` for `names` (policy hosts, and hosts
    /// TLS reports are POSTed to: kept in `posted(dir)`).
    pub fn start_for(dir: &Path, ca: &TestCa, port: u16, names: &[&str]) -> PolicyServer {
        let cert = ca.issue(dir, "policy-host", names, false);
        let script = dir.join("policy_server.py");
        std::fs::write(&script, POLICY_SERVER).unwrap();
        let child = Command::new(super::python3())
            .arg(&script)
            .arg(port.to_string())
            .arg(&cert.cert)
            .arg(&cert.key)
            .arg(policies(dir))
            .stdout(Stdio::null())
            .spawn()
            .expect("python3");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the policy server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        PolicyServer { child }
    }
}

impl Drop for PolicyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the server keeps what was POSTed to it (`N.body`, and `N.type`: the Content-Type
/// and the path).
pub fn posted(dir: &Path) -> PathBuf {
    policies(dir).join("posted")
}

fn policies(dir: &Path) -> PathBuf {
    dir.join("policies")
}

/// Publishes `domain`'s policy (`mode`, one `mx` line each).
pub fn publish(dir: &Path, domain: &str, mode: &str, mx: &[&str]) {
    std::fs::create_dir_all(policies(dir)).unwrap();
    let mut text = format!("version: STSv1\r\nmode: {mode}\r\n");
    for host in mx {
        text.push_str(&format!("mx: {host}\r\n"));
    }
    text.push_str("max_age: 86400\r\n");
    std::fs::write(policies(dir).join(format!("mta-sts.{domain}.txt")), text).unwrap();
}
