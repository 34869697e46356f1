//! An OpenTelemetry collector stand-in written in Python: `http.server` on a loopback port
//! taking OTLP/HTTP protobuf at `/v1/traces`, parsed by the OpenTelemetry project's own
//! `opentelemetry-proto` (PyPI; `.ci/run` installs it into /opt/otlp-python), each span
//! written as one JSON line with its resource's service name and the request's API key.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const RECEIVER: &str = r#"
import json, sys, threading
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest, ExportTraceServiceResponse)
port, out = int(sys.argv[1]), sys.argv[2]
lock = threading.Lock()
def value(v):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None
def attrs(kvs):
    return {kv.key: value(kv.value) for kv in kvs}
class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path != "/v1/traces" or self.headers.get("Content-Type") != "application/x-protobuf":
            self.send_response(415); self.end_headers(); return
        request = ExportTraceServiceRequest.FromString(body)
        lines = []
        for rs in request.resource_spans:
            resource = attrs(rs.resource.attributes)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    lines.append(json.dumps({
                        "service": resource.get("service.name"),
                        "host": resource.get("host.name"),
                        "api_key": self.headers.get("X-Api-Key"),
                        "trace_id": s.trace_id.hex(),
                        "span_id": s.span_id.hex(),
                        "parent_span_id": s.parent_span_id.hex(),
                        "name": s.name,
                        "kind": s.kind,
                        "start": s.start_time_unix_nano,
                        "end": s.end_time_unix_nano,
                        "attributes": attrs(s.attributes),
                        "events": [{"name": e.name, "time": e.time_unix_nano, "attributes": attrs(e.attributes)} for e in s.events],
                        "status_code": s.status.code,
                        "status_message": s.status.message,
                    }))
        with lock, open(out, "a") as f:
            for line in lines:
                f.write(line + "\n")
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"#;

/// Where `opentelemetry-proto` is installed (`.ci/run`), unless
/// `HERMOD_OTLP_PYTHONPATH` says otherwise.
fn python_path() -> String {
    std::env::var("HERMOD_OTLP_PYTHONPATH").unwrap_or_else(|_| "/opt/otlp-python".into())
}

/// The running receiver.
pub struct OtlpReceiver {
    child: Child,
    /// Where it writes the spans it took, one JSON object a line.
    pub out: PathBuf,
    /// Its traces URL.
    pub endpoint: String,
}

impl OtlpReceiver {
    /// Starts one on a free loopback port; spans go to `dir/spans.jsonl`.
    pub fn start(dir: &Path) -> OtlpReceiver {
        let check = Command::new(super::python3())
            .env("PYTHONPATH", python_path())
            .args([
                "-c",
                "import opentelemetry.proto.collector.trace.v1.trace_service_pb2",
            ])
            .output()
            .expect("python3");
        assert!(
            check.status.success(),
            "opentelemetry-proto is not importable from {} (.ci/run installs it): {}",
            python_path(),
            String::from_utf8_lossy(&check.stderr)
        );
        let port = super::free_port();
        let script = dir.join("otlp_receiver.py");
        std::fs::write(&script, RECEIVER).unwrap();
        let out = dir.join("spans.jsonl");
        let child = Command::new(super::python3())
            .env("PYTHONPATH", python_path())
            .arg(&script)
            .arg(port.to_string())
            .arg(&out)
            .stdout(Stdio::null())
            .spawn()
            .expect("python3");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the OTLP receiver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        OtlpReceiver {
            child,
            out,
            endpoint: format!("http://127.0.0.1:{port}/v1/traces"),
        }
    }

    /// The spans taken so far.
    pub fn spans(&self) -> Vec<serde_json::Value> {
        super::webhook::read_json_lines(&self.out)
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
