//! What a client on the internet can try against the listener, and what it gets: slow
//! clients are cut at whole-phase deadlines, a recipient flood is cut and logged once,
//! and commands hidden behind a bare LF or inside an unreadable BDAT never run.

mod common;

use std::time::{Duration, Instant};

use common::client::Client;
use common::hermod::Hermod;

async fn hermod(dir: &std::path::Path, smtp: &str) -> Hermod {
    let config = format!(
        "[smtp]\nhostname = \"mx.hermod.test\"\n{smtp}\n[relay]\ndomains = [\"relay.test\"]\nnetworks = [\"192.0.2.0/24\"]\n[delivery]\nrelayhost = \"[127.0.0.1]:1\"\n[queue]\nretry_interval = \"1h\"\n"
    );
    Hermod::start(dir, &config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_client_is_cut_at_the_command_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let h = hermod(dir.path(), "command_timeout = \"2s\"").await;
    let (reader, mut writer) = tokio::net::TcpStream::connect(h.addr)
        .await
        .unwrap()
        .into_split();
    let start = Instant::now();
    let reading = tokio::spawn(read_all(reader));
    use tokio::io::AsyncWriteExt;
    writer.write_all(b"EHLO client.test\r\n").await.unwrap();
    // One byte every 300 ms: each read used to restart the timeout.
    for b in b"NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP".iter() {
        if writer.write_all(&[*b]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        if reading.is_finished() {
            break;
        }
    }
    let transcript = reading.await.unwrap();
    assert!(
        transcript.ends_with("421 4.4.2 Command timeout, closing connection\r\n"),
        "{transcript}"
    );
    let took = start.elapsed();
    assert!(took < Duration::from_secs(10), "cut after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_data_is_cut_at_the_data_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let h = hermod(dir.path(), "data_timeout = \"2s\"").await;
    let (reader, mut writer) = tokio::net::TcpStream::connect(h.addr)
        .await
        .unwrap()
        .into_split();
    let reading = tokio::spawn(read_all(reader));
    use tokio::io::AsyncWriteExt;
    writer
        .write_all(
            b"EHLO client.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u@relay.test>\r\nDATA\r\n",
        )
        .await
        .unwrap();
    let start = Instant::now();
    // A complete short line every 300 ms: each one used to restart the timeout.
    for _ in 0..30 {
        if writer.write_all(b"x\r\n").await.is_err() || reading.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let transcript = reading.await.unwrap();
    assert!(
        transcript.ends_with("421 4.4.2 Data timeout, closing connection\r\n"),
        "{transcript}"
    );
    let took = start.elapsed();
    assert!(took < Duration::from_secs(8), "cut after {took:?}");
    assert!(
        h.wait_log("message accepted", Duration::ZERO)
            .await
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipient_flood_is_cut_and_logged_once_with_a_count() {
    let dir = tempfile::tempdir().unwrap();
    let h = hermod(dir.path(), "max_recipients = 2\nmax_errors = 10").await;
    let mut c = Client::connect(h.addr).await;
    let mut burst = b"MAIL FROM:<a@b.test>\r\n".to_vec();
    for i in 0..1000 {
        burst.extend_from_slice(format!("RCPT TO:<u{i}@relay.test>\r\n").as_bytes());
    }
    c.send(&burst).await;
    let mut refused = 0;
    let last = loop {
        let reply = c.reply().await;
        if reply.starts_with("452 4.5.3") {
            refused += 1;
        } else if !reply.starts_with("250") {
            break reply;
        }
    };
    assert_eq!(last, "421 4.7.0 Too many errors, closing connection");
    assert_eq!(refused, 10);
    let summary = h
        .wait_log("rejected repeatedly in one session", Duration::from_secs(5))
        .await
        .expect("summary line");
    assert!(summary.contains("too_many_recipients"), "{summary}");
    assert!(summary.contains("count=10"), "{summary}");
    let lines = h
        .logs()
        .iter()
        .filter(|l| l.contains("too_many_recipients"))
        .count();
    assert_eq!(lines, 2, "one line at the first refusal, one summary");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_after_a_bare_lf_never_runs() {
    let dir = tempfile::tempdir().unwrap();
    let h = hermod(dir.path(), "").await;
    let mut c = Client::connect(h.addr).await;
    c.send(b"NOOP\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u@relay.test>\r\n")
        .await;
    assert_eq!(
        c.reply().await,
        "500 5.5.2 Bare LF in command; lines must end with CRLF, closing connection"
    );
    assert!(c.is_closed().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bdat_payload_with_an_unreadable_size_is_never_read_as_commands() {
    let dir = tempfile::tempdir().unwrap();
    let h = hermod(dir.path(), "").await;
    let mut c = Client::connect(h.addr).await;
    assert!(c.cmd("MAIL FROM:<a@b.test>").await.starts_with("250"));
    assert!(c.cmd("RCPT TO:<u@relay.test>").await.starts_with("250"));
    c.send(b"BDAT 99999999999999999999999 LAST\r\nRCPT TO:<evil@relay.test>\r\nBDAT 5 LAST\r\nhi\r\n\r\n")
        .await;
    assert_eq!(
        c.reply().await,
        "501 5.5.4 Syntax: BDAT chunk-size [LAST]; unreadable chunk size, closing connection"
    );
    assert!(c.is_closed().await);
    assert!(
        h.wait_log("message accepted", Duration::from_millis(500))
            .await
            .is_none()
    );
}

async fn read_all(mut reader: tokio::net::tcp::OwnedReadHalf) -> String {
    use tokio::io::AsyncReadExt;
    let mut all = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), reader.read_to_end(&mut all)).await;
    String::from_utf8_lossy(&all).into_owned()
}
