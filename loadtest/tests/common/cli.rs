//! The `smtp-blaster` binary as a child process: a sink started on a free port, waiting
//! for an exit with a bound, signals, and a kill when a test ends early.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_smtp-blaster");

/// A running `smtp-blaster` process, killed if the test ends early.
pub struct Running(pub Child);

impl Running {
    /// Starts `smtp-blaster sink --listen 127.0.0.1:0 ARGS` and returns it with the
    /// address it printed.
    pub fn sink(args: &[&str]) -> (Self, String) {
        let mut child = Command::new(BIN)
            .args(["sink", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let addr = first
            .trim()
            .strip_prefix("listening on ")
            .expect("address line")
            .to_string();
        (Self(child), addr)
    }

    /// Waits up to `limit` for the process to exit.
    pub fn exit_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.0.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Sends a signal with kill(1), e.g. `-TERM`.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(sig)
            .arg(self.0.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
