//! Peers' bytes in logs, headers and the operator's terminal, tried as an attacker would:
//! an AUTH user name holding `\r\n` and a fake log line, EHLO names and addresses with
//! ESC and 0x01, a next hop whose reply clears the screen, a subject with DEL and a C1
//! CSI. The attacks this stops: forged log lines (a new, real-looking line from a user
//! name), and escape sequences reaching the operator's terminal through the log, the
//! EHLO reply, the `Received:` header and `hermod queue list|show`.

mod common;

use std::time::Duration;

use common::client::Client;
use common::hermod::Hermod;

/// Whether `line` starts with the text log's RFC 3339 timestamp.
fn starts_with_timestamp(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 20
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
}

/// No raw control character (but tab) in `text`.
fn has_raw_control(text: &str) -> bool {
    text.chars()
        .any(|c| (c.is_control() && c != '\t' && c != '\n') || c == '\u{2028}' || c == '\u{2029}')
}

/// A next hop that answers every RCPT with a 450 whose text clears the screen and rings
/// the bell (Python, so no code of ours is on that side).
fn hostile_next_hop(port: u16) -> std::process::Child {
    std::process::Command::new(common::python3())
        .arg("-c")
        .arg(format!(
            r#"
import socketserver
class Hop(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(b"220 hop.test ESMTP\r\n")
        for line in self.rfile:
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                self.wfile.write(b"250 hop.test\r\n")
            elif verb == b"RCPT":
                self.wfile.write(b"450 4.2.0 \x1b[2J\x1b[31mmailbox busy\x07\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")
class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
Server(("127.0.0.1", {port}), Hop).serve_forever()
"#
        ))
        .spawn()
        .expect("python3")
}

#[tokio::test(flavor = "multi_thread")]
async fn peer_bytes_cannot_forge_log_lines_or_reach_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let hop_port = common::free_port();
    let mut hop = hostile_next_hop(hop_port);
    let config = format!(
        r#"
[smtp]
listen = [{{ address = "127.0.0.1:0", kind = "smtp", plaintext_auth = true }}]
[auth]
enabled = true
[delivery]
relayhost = "[127.0.0.1]:{hop_port}"
"#
    );
    let hermod = Hermod::start_listening(dir.path(), &config, &[]).await;
    let mut client = Client::connect(hermod.addr).await;

    // A user name that would start a new, real-looking log line and clear the screen.
    use base64::Engine as _;
    let forged = "admin\r\n2026-01-01T00:00:00Z  INFO message accepted user=admin\x1b[2J";
    let plain = base64::engine::general_purpose::STANDARD.encode(format!("\0{forged}\0guess"));
    let reply = client.cmd(&format!("AUTH PLAIN {plain}")).await;
    assert!(reply.starts_with("535 5.7.8"), "{reply}");
    let failed = hermod
        .wait_log("Authentication failed", Duration::from_secs(5))
        .await
        .expect("the failure line");
    assert!(
        failed.contains(
            "admin\\u000d\\u000a2026-01-01T00:00:00Z  INFO message accepted user=admin\\u001b[2J"
        ),
        "{failed}"
    );

    // EHLO names and addresses with control characters are refused, not echoed.
    let mut raw = Client::connect(hermod.addr).await;
    let reply = raw.cmd("EHLO evil\x1b[2J.test").await;
    assert!(reply.starts_with("501 5.5.2"), "{reply}");
    assert!(!reply.contains('\x1b'), "{reply}");
    let reply = raw.cmd("HELO a\x01b").await;
    assert!(reply.starts_with("501 5.5.2"), "{reply}");
    let reply = raw.cmd("EHLO client.test").await;
    assert!(reply.starts_with("250"), "{reply}");
    let reply = raw.cmd("MAIL FROM:<\"a\x1b[2Jb\"@example.com>").await;
    assert!(reply.starts_with("501"), "{reply}");

    // A message with a hostile subject, to a next hop with a hostile reply.
    let body = "From: a@client.test\r\nSubject: totals\x7f \u{9b}2J hidden\r\n\r\nx\r\n";
    let reply = raw
        .send_message("a@client.test", &["b@remote.test"], body.as_bytes())
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    let id = common::client::queue_id(&reply);
    let deferred = hermod
        .wait_status(&id, "deferred", Duration::from_secs(20))
        .await
        .expect("a deferral");
    assert!(deferred.contains("?[2J?[31mmailbox busy?"), "{deferred}");

    let list = hermod.command(dir.path(), &["queue", "list"]);
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(list.contains("mailbox busy"), "{list}");
    assert!(!has_raw_control(&list), "{list:?}");
    let show = hermod.command(dir.path(), &["queue", "show", &id]);
    let show = String::from_utf8_lossy(&show.stdout).into_owned();
    assert!(show.contains("totals"), "{show}");
    assert!(!has_raw_control(&show), "{show:?}");
    assert!(
        show.contains("\\u007f") && show.contains("\\u009b"),
        "{show}"
    );

    // One event, one line: every line hermod wrote starts with its timestamp, and none
    // holds a raw control character.
    for line in hermod.logs() {
        assert!(
            starts_with_timestamp(&line),
            "a line not written by the logger: {line:?}"
        );
        assert!(!has_raw_control(&line), "{line:?}");
    }
    let _ = hop.kill();
    let _ = hop.wait();
}
