//! A webhook receiver written in Python's standard library (http.server), started by the
//! test on a loopback port: it checks each POST's `X-Hermod-Signature` (HMAC-SHA256 of
//! the body under the shared key), answers 401 to a bad one, can refuse the first N
//! batches with 503, and writes every event it accepted as one JSON line.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const RECEIVER: &str = r#"
import hashlib, hmac, json, sys, threading
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
port, key, out, refuse = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3], int(sys.argv[4])
lock = threading.Lock()
state = {"refused": 0}
class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        want = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, self.headers.get("X-Hermod-Signature", "")):
            with lock, open(out + ".bad", "a") as f:
                f.write("bad signature\n")
            self.send_response(401); self.end_headers(); return
        with lock:
            if state["refused"] < refuse:
                state["refused"] += 1
                self.send_response(503); self.end_headers(); return
            with open(out, "a") as f:
                for event in json.loads(body):
                    f.write(json.dumps(event) + "\n")
        self.send_response(204); self.end_headers()
ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"#;

/// The running receiver.
pub struct WebhookReceiver {
    child: Child,
    /// Where it writes the events it accepted, one JSON object a line.
    pub out: PathBuf,
}

impl WebhookReceiver {
    /// Starts one on `port` that checks signatures under `key`, refusing the first
    /// `refuse` batches; events go to `dir/webhook.jsonl`.
    pub fn start(dir: &Path, port: u16, key: &str, refuse: u32) -> WebhookReceiver {
        let script = dir.join("webhook_receiver.py");
        std::fs::write(&script, RECEIVER).unwrap();
        let out = dir.join("webhook.jsonl");
        let child = Command::new(super::python3())
            .arg(&script)
            .args([&port.to_string(), key])
            .arg(&out)
            .arg(refuse.to_string())
            .stdout(Stdio::null())
            .spawn()
            .expect("python3");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the webhook receiver did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        WebhookReceiver { child, out }
    }

    /// The events accepted so far.
    pub fn events(&self) -> Vec<serde_json::Value> {
        read_json_lines(&self.out)
    }

    /// Batches refused for a bad signature.
    pub fn bad_signatures(&self) -> usize {
        let mut bad = self.out.clone().into_os_string();
        bad.push(".bad");
        std::fs::read_to_string(PathBuf::from(bad))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The JSON objects of a JSON-lines file (none when it does not exist); a last line
/// still being written (no newline yet) is left for the next read.
pub fn read_json_lines(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// Waits until `events()` holds something `done` accepts; returns the last read.
pub async fn wait_events(
    mut events: impl FnMut() -> Vec<serde_json::Value>,
    done: impl Fn(&[serde_json::Value]) -> bool,
    limit: Duration,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + limit;
    loop {
        let now = events();
        if done(&now) || Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
