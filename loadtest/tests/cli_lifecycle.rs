//! How the binaries start and stop: `sink --expect` lets smtp-source finish its QUIT,
//! `--idle-exit` is not held up by a silent connection, SIGTERM ends a sink cleanly,
//! and a second signal ends a `send` that waits on a slow server.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::cli::{BIN, Running};
use common::postfix::{SMTP_SOURCE, require};

#[test]
fn sink_expect_lets_smtp_source_quit() {
    require(SMTP_SOURCE);
    let (mut sink, addr) = Running::sink(&["--expect", "200", "--quiet"]);
    let source = Command::new(SMTP_SOURCE)
        .args(["-s", "5", "-m", "200", "-l", "512", &addr])
        .output()
        .unwrap();
    assert!(
        source.status.success(),
        "smtp-source failed: {}",
        String::from_utf8_lossy(&source.stderr)
    );
    let status = sink
        .exit_within(Duration::from_secs(10))
        .expect("sink exit");
    assert!(status.success());
}

#[test]
fn sink_expect_answers_the_last_quit() {
    let (mut sink, addr) = Running::sink(&["--expect", "1", "--quiet"]);
    let mut tcp = TcpStream::connect(&addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut replies = BufReader::new(tcp.try_clone().unwrap());
    let mut reply = |wanted: &str| {
        let mut line = String::new();
        replies.read_line(&mut line).unwrap();
        assert!(line.starts_with(wanted), "wanted {wanted}, got {line:?}");
    };
    reply("220 ");
    tcp.write_all(b"HELO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
        .unwrap();
    for code in ["250 ", "250 ", "250 ", "354 "] {
        reply(code);
    }
    tcp.write_all(b"Subject: x\r\n\r\nhi\r\n.\r\n").unwrap();
    reply("250 ");
    // The expected message is in; a client that takes a moment before QUIT still gets
    // its 221 instead of a closed connection.
    std::thread::sleep(Duration::from_millis(300));
    tcp.write_all(b"QUIT\r\n").unwrap();
    reply("221 ");
    drop(tcp);
    let status = sink
        .exit_within(Duration::from_secs(10))
        .expect("sink exit");
    assert!(status.success());
}

#[test]
fn idle_exit_is_not_held_up_by_a_silent_connection() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("sink.json");
    let json_arg = json.to_string_lossy().into_owned();
    let (mut sink, addr) = Running::sink(&["--idle-exit", "1s", "--json", &json_arg]);
    let mut silent = TcpStream::connect(&addr).unwrap();
    let mut greeting = [0u8; 64];
    let n = silent.read(&mut greeting).unwrap();
    assert!(greeting[..n].starts_with(b"220 "));
    let status = sink
        .exit_within(Duration::from_secs(10))
        .expect("the sink waited on a silent connection");
    assert!(status.success());
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(summary["connections"], 1);
}

#[test]
fn sigterm_ends_a_sink_cleanly_with_its_summary() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("sink.json");
    let json_arg = json.to_string_lossy().into_owned();
    let (mut sink, _addr) = Running::sink(&["--json", &json_arg]);
    sink.signal("-TERM");
    let status = sink
        .exit_within(Duration::from_secs(10))
        .expect("sink exit");
    assert!(status.success());
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(summary["received"], 0);
}

#[test]
fn second_signal_ends_send_without_waiting() {
    // A server that takes a whole message and then never answers it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (data_in, message_sent) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let mut write = tcp.try_clone().unwrap();
        let _ = write.write_all(b"220 stalls after the data\r\n");
        let mut lines = BufReader::new(tcp);
        let mut in_data = false;
        let mut line = String::new();
        while lines.read_line(&mut line).is_ok_and(|n| n > 0) {
            let reply: &[u8] = match (in_data, line.trim_end()) {
                (true, ".") => {
                    let _ = data_in.send(());
                    // Hold the connection open, unanswered, until the test ends.
                    std::thread::sleep(Duration::from_secs(60));
                    return;
                }
                (true, _) => b"",
                (false, "DATA") => {
                    in_data = true;
                    b"354 go\r\n"
                }
                _ => b"250 ok\r\n",
            };
            let _ = write.write_all(reply);
            line.clear();
        }
    });
    let mut send = Running(
        Command::new(BIN)
            .args(["send", &addr, "-c", "1", "-m", "10", "--quiet"])
            .spawn()
            .unwrap(),
    );
    message_sent
        .recv_timeout(Duration::from_secs(10))
        .expect("the message reached the server");
    send.signal("-TERM");
    assert!(
        send.exit_within(Duration::from_millis(700)).is_none(),
        "the first signal must wait for the message under way"
    );
    send.signal("-TERM");
    let status = send
        .exit_within(Duration::from_secs(5))
        .expect("the second signal must end send at once");
    assert_eq!(status.code(), Some(130));
}
