//! Out of file descriptors, tried as a bad day goes: hermod under a low `ulimit -n`
//! (prlimit) and more clients than descriptors. The failure this stops: the accept loop
//! spun on EMFILE and wrote 15 million ERROR lines (1.98 GB) in 35 s. Now it pauses
//! (growing, up to 1 s), logs at most one line per 5 s with a count, keeps serving the
//! sessions already open, and takes new clients again once descriptors free up.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Reads one reply line (the last line of a multi-line reply) within 10 s.
fn reply(reader: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return line;
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            return line;
        }
    }
}

fn greeted(stream: TcpStream) -> Option<BufReader<TcpStream>> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream);
    reply(&mut reader).starts_with("220").then_some(reader)
}

#[test]
fn running_out_of_descriptors_pauses_accepting_and_logs_little() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    std::fs::write(
        dir.path().join("hermod.toml"),
        format!("[smtp]\nlisten = [\"127.0.0.1:{port}\"]\n[admin]\nlisten = \"\"\n"),
    )
    .unwrap();
    let mut child = Command::new("prlimit")
        .args(["--nofile=96:96", "--"])
        .arg(env!("CARGO_BIN_EXE_hermod"))
        .args(["serve", "--config"])
        .arg(dir.path().join("hermod.toml"))
        .env("SMTP_DB_PATH", dir.path().join("data"))
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("prlimit (util-linux) and hermod");
    let logs = common::hermod::collect_output(&mut child);
    let started = Instant::now();
    let first = loop {
        if let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) {
            break greeted(stream).expect("a greeting before the flood");
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "hermod did not start: {:?}",
            logs.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut first = first;
    first.get_mut().write_all(b"EHLO client.test\r\n").unwrap();
    assert!(reply(&mut first).starts_with("250"));

    // More clients than descriptors: the kernel queues them; hermod takes what it can.
    let flood: Vec<TcpStream> = (0..150)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let failures: Vec<String> = logs
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("accept failed"))
        .cloned()
        .collect();
    assert!(
        !failures.is_empty(),
        "the flood never ran out of descriptors"
    );
    assert!(
        failures.len() <= 3,
        "{} lines in 3 s: {failures:?}",
        failures.len()
    );
    assert!(
        failures[0].contains("pausing new connections"),
        "{}",
        failures[0]
    );
    assert!(failures[0].contains("failures="), "{}", failures[0]);

    // The session that was open goes on.
    first.get_mut().write_all(b"NOOP\r\n").unwrap();
    let noop = reply(&mut first);
    assert!(
        noop.starts_with("250"),
        "the open session stalled: {noop:?} (empty: closed, or no answer in 10 s)\n{}",
        logs.lock().unwrap().join("\n")
    );

    // Descriptors free up: a new client is served within seconds.
    drop(flood);
    let freed = Instant::now();
    let served = loop {
        if let Ok(stream) = TcpStream::connect(("127.0.0.1", port))
            && greeted(stream).is_some()
        {
            break true;
        }
        if freed.elapsed() > Duration::from_secs(15) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(served, "no greeting after the descriptors were freed");
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
}
