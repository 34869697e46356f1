//! Large bodies live in files beside the spool: written while they arrive, fsynced
//! before the 250, read in pieces while they are sent (over BDAT and over DATA), kept
//! across a restart, and deleted with their message, so the spool returns to its
//! baseline size after large mail is delivered.

mod common;

use std::path::Path;
use std::time::Duration;

use common::client::{Client, queue_id};
use common::hermod::Hermod;
use common::sink;

/// A message of about `size` octets whose lines include leading dots (to be stuffed on
/// the wire) and 8-bit-free text, with a marker to tell messages apart.
fn large_message(marker: usize, size: usize) -> Vec<u8> {
    let mut message = format!("Subject: large {marker}\r\n\r\n").into_bytes();
    let mut i = 0;
    while message.len() < size {
        let line = match i % 5 {
            0 => format!(".dot line {i} of message {marker}\r\n"),
            1 => "..two dots\r\n".to_string(),
            _ => format!("{i:08} the quick brown fox jumps over the lazy dog {marker}\r\n"),
        };
        message.extend_from_slice(line.as_bytes());
        i += 1;
    }
    message
}

/// `message` dot-stuffed, as a client sends it after DATA.
fn stuffed(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 20);
    for line in message.split_inclusive(|&b| b == b'\n') {
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
    }
    out
}

/// The sink's copy without the Received: header hermod put in front.
fn after_received_header(data: &[u8]) -> &[u8] {
    let at = data
        .windows(9)
        .position(|w| w == b"Subject: ")
        .expect("the original header is there");
    &data[at..]
}

/// Octets under `dir`, all files counted.
fn du(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            du(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

async fn relay_large_messages(chunking: bool) {
    let dir = tempfile::tempdir().unwrap();
    let sink = sink::start(&dir.path().join("sink")).await;
    let port = sink.local_addrs()[0].port();
    let config = format!(
        "[smtp]\nhostname = \"mx.hermod.test\"\nmax_message_size = 20000000\n\
         [queue]\nscan_interval = \"100ms\"\n\
         [delivery]\nrelayhost = \"[127.0.0.1]:{port}\"\nchunking = {chunking}\n"
    );
    let h = Hermod::start(dir.path(), &config).await;
    let data_dir = dir.path().join("data");
    let baseline = du(&data_dir);
    let messages: Vec<Vec<u8>> = (0..6).map(|i| large_message(i, 3_000_000)).collect();
    let mut c = Client::connect(h.addr).await;
    for (i, message) in messages.iter().enumerate() {
        queue_id(
            &c.send_message(
                "a@sender.test",
                &[&format!("u{i}@dest.test")],
                &stuffed(message),
            )
            .await,
        );
    }
    let stored = sink::wait_stored(&dir.path().join("sink"), 6, Duration::from_secs(60)).await;
    assert_eq!(stored.len(), 6, "{}", h.logs().join("\n"));
    for copy in &stored {
        let i: usize = copy.rcpt_to[0][1..]
            .split('@')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            after_received_header(&copy.data) == messages[i].as_slice(),
            "message {i} arrived changed ({} octets, sent {})",
            copy.data.len(),
            messages[i].len()
        );
    }
    // Every body file is gone with its message, and the spool is back to its size.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while files_in(&data_dir.join("bodies")) > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(files_in(&data_dir.join("bodies")), 0);
    assert_eq!(files_in(&data_dir.join("incoming")), 0);
    let after = du(&data_dir);
    assert!(
        after < baseline + 4_000_000,
        "spool grew from {baseline} to {after} octets after 18 MB of delivered mail"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_go_through_files_and_leave_nothing_behind_over_bdat() {
    relay_large_messages(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_go_through_files_and_leave_nothing_behind_over_data() {
    relay_large_messages(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_large_body_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let config = format!(
        "[smtp]\nhostname = \"mx.hermod.test\"\nmax_message_size = 20000000\n\
         [queue]\nscan_interval = \"100ms\"\nretry_interval = \"1s\"\n\
         [delivery]\nrelayhost = \"[127.0.0.1]:{port}\"\n"
    );
    let mut h = Hermod::start(dir.path(), &config).await;
    let message = large_message(7, 2_000_000);
    let mut c = Client::connect(h.addr).await;
    let id = queue_id(
        &c.send_message("a@sender.test", &["u@dest.test"], &stuffed(&message))
            .await,
    );
    drop(c);
    h.wait_status(&id, "deferred", Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("{}", h.logs().join("\n")));
    let bodies = dir.path().join("data").join("bodies");
    assert_eq!(files_in(&bodies), 1, "the body waits in its file");
    h.kill().await;
    let _sink = sink::start_on(&dir.path().join("sink"), port).await;
    h.restart().await;
    let stored = sink::wait_stored(&dir.path().join("sink"), 1, Duration::from_secs(30)).await;
    assert_eq!(stored.len(), 1, "{}", h.logs().join("\n"));
    assert!(after_received_header(&stored[0].data) == message.as_slice());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while files_in(&bodies) > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(files_in(&bodies), 0);
}
