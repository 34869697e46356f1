//! The spool's free-space reserve on a real small file system (a size-limited tmpfs the
//! test mounts; CI runs as root): below `queue.min_free_space` MAIL FROM is refused with
//! 452 4.3.1 before any data is sent, and mail is taken again by itself once space
//! returns; and hermod started on a disk that is full delivers its queue and refuses
//! new mail instead of not starting.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::client::{Client, queue_id};
use common::hermod::Hermod;
use common::sink;

/// The tests here run one at a time: each starts and stops servers on loopback ports
/// picked while the other runs (a port one test frees can be handed to the other).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("running mount");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (CI runs as root): {status}"
        );
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Opens a transaction every 100 ms until MAIL FROM gets a reply starting with `want`.
async fn mail_reply_until(c: &mut Client, want: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let reply = c.cmd("MAIL FROM:<a@sender.test>").await;
        if reply.starts_with("250") {
            assert_eq!(c.cmd("RSET").await, "250 2.0.0 Reset state");
        }
        if reply.starts_with(want) || Instant::now() > deadline {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_disk_refuses_mail_before_data_and_recovers_by_itself() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let fs = Tmpfs::mount(&dir.path().join("spoolfs"), "64m");
    let config_path = dir.path().join("hermod.toml");
    std::fs::write(
        &config_path,
        "[smtp]\nhostname = \"mx.hermod.test\"\n[queue]\nretry_interval = \"1h\"\nmin_free_space = 33554432\n[delivery]\nrelayhost = \"[127.0.0.1]:1\"\n",
    )
    .unwrap();
    let h = Hermod::start_with(config_path, fs.0.join("data"), &[]).await;
    let mut c = Client::connect(h.addr).await;
    assert_eq!(
        mail_reply_until(&mut c, "250", Duration::ZERO).await,
        "250 2.1.0 Sender ok"
    );

    let filler = fs.0.join("filler");
    std::fs::write(&filler, vec![0u8; 40 * 1024 * 1024]).unwrap();
    assert_eq!(
        mail_reply_until(&mut c, "452", Duration::from_secs(5)).await,
        "452 4.3.1 Insufficient system storage"
    );
    assert!(
        h.wait_log(
            "spool free space below queue.min_free_space",
            Duration::from_secs(5)
        )
        .await
        .is_some()
    );

    std::fs::remove_file(&filler).unwrap();
    assert_eq!(
        mail_reply_until(&mut c, "250", Duration::from_secs(5)).await,
        "250 2.1.0 Sender ok"
    );
    assert!(
        h.wait_log("taking mail again", Duration::from_secs(5))
            .await
            .is_some()
    );
    drop(c);
    drop(h);
}

/// Fills the file system holding `dir` to the last block.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let filler = dir.join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let block = vec![0u8; 64 * 1024];
    while file.write_all(&block).is_ok() {}
    let small = [0u8; 512];
    while file.write_all(&small).is_ok() {}
    let _ = file.sync_all();
    filler
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_on_a_full_disk_delivers_the_queue_and_refuses_new_mail() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let fs = Tmpfs::mount(&dir.path().join("spoolfs"), "48m");
    let port = common::free_port();
    let config_path = dir.path().join("hermod.toml");
    std::fs::write(
        &config_path,
        format!(
            "[smtp]\nhostname = \"mx.hermod.test\"\n[queue]\nretry_interval = \"1s\"\nscan_interval = \"100ms\"\nmin_free_space = 4194304\n[delivery]\nrelayhost = \"[127.0.0.1]:{port}\"\n"
        ),
    )
    .unwrap();
    let mut h = Hermod::start_with(config_path, fs.0.join("data"), &[]).await;
    assert!(
        fs.0.join("data").join("ballast").exists(),
        "ballast written at start"
    );
    // A message waits for its next hop, which is down.
    let mut c = Client::connect(h.addr).await;
    let id = queue_id(
        &c.send_message(
            "a@sender.test",
            &["b@dest.test"],
            b"Subject: waiting\r\n\r\nx\r\n",
        )
        .await,
    );
    drop(c);
    h.wait_status(&id, "deferred", Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("{}", h.logs().join("\n")));
    assert_eq!(h.stop().await, Some(0));

    // The disk fills up while hermod is stopped; the hop comes back.
    fill(&fs.0);
    let _sink = sink::start_on(&dir.path().join("sink"), port).await;
    h.restart().await;
    assert!(
        h.wait_log("spool disk full at start-up", Duration::from_secs(5))
            .await
            .is_some(),
        "{}",
        h.logs().join("\n")
    );
    let mut c = Client::connect(h.addr).await;
    assert_eq!(
        c.cmd("MAIL FROM:<a@sender.test>").await,
        "452 4.3.1 Insufficient system storage"
    );
    let stored = sink::wait_stored(&dir.path().join("sink"), 1, Duration::from_secs(20)).await;
    assert_eq!(stored.len(), 1, "{}", h.logs().join("\n"));
    assert_eq!(stored[0].rcpt_to, ["b@dest.test"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_inside_the_spool_refuses_mail_stops_hermod_and_loses_nothing() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let fs = Tmpfs::mount(&dir.path().join("spoolfs"), "24m");
    let config_path = dir.path().join("hermod.toml");
    // No reserve: the disk really fills under sled.
    std::fs::write(
        &config_path,
        format!(
            "[smtp]\nhostname = \"mx.hermod.test\"\n[queue]\nretry_interval = \"1h\"\nmin_free_space = 0\n[delivery]\nrelayhost = \"[127.0.0.1]:{}\"\n",
            common::free_port()
        ),
    )
    .unwrap();
    let mut h = Hermod::start_with(config_path, fs.0.join("data"), &[]).await;
    let mut c = Client::connect(h.addr).await;
    let mut acknowledged = Vec::new();
    for _ in 0..3 {
        acknowledged.push(queue_id(
            &c.send_message(
                "a@sender.test",
                &["b@dest.test"],
                b"Subject: kept\r\n\r\nx\r\n",
            )
            .await,
        ));
    }
    let filler = fill(&fs.0);
    // Messages go on being answered at once: 250 while sled still has room in the files
    // it has, then 451 for the one that finds the disk full.
    let mut refused = None;
    for _ in 0..5000 {
        let reply = c
            .send_message(
                "a@sender.test",
                &["b@dest.test"],
                b"Subject: more\r\n\r\nx\r\n",
            )
            .await;
        if reply.starts_with("250") {
            acknowledged.push(queue_id(&reply));
        } else {
            refused = Some(reply);
            break;
        }
    }
    let refused = refused.expect("the disk filled up");
    assert!(refused.starts_with("451 4.3.0"), "{refused}");
    // hermod stops by itself, with a failure exit code for its service manager.
    let code = h.wait_exit(Duration::from_secs(40)).await;
    assert!(matches!(code, Some(c) if c != 0), "exit code {code:?}");
    assert!(
        h.logs()
            .iter()
            .any(|l| l.contains("stopping: the spool's disk is full")),
        "{}",
        h.logs().join("\n")
    );
    // Space is freed; started again, it has every acknowledged message and takes mail.
    std::fs::remove_file(&filler).unwrap();
    h.restart().await;
    let recovered = h
        .wait_log("recovered messages from the spool", Duration::ZERO)
        .await
        .unwrap_or_else(|| panic!("{}", h.logs().join("\n")));
    assert!(
        recovered.contains(&format!("messages={}", acknowledged.len())),
        "{} acknowledged: {recovered}",
        acknowledged.len()
    );
    let mut c = Client::connect(h.addr).await;
    assert!(c.cmd("MAIL FROM:<a@sender.test>").await.starts_with("250"));
}

/// Free space of the file system holding `dir`, in octets.
fn free_space(dir: &Path) -> u64 {
    let out = Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0)
}

/// The reserve overrun, tried as a bad day goes: 60 KB messages at full speed from many
/// clients into a 64 MiB spool with a 16 MiB reserve while the next hop is down. Before,
/// free space fell to 6.5 MB (the reserve was sampled once a second), and removing the
/// delivered mail when the hop came back met ENOSPC in sled, which stopped hermod and
/// left delivered mail to be delivered again. Now every transaction claims its bytes
/// first: the reserve holds, the hop's return drains the queue without a full-disk error,
/// every acknowledged message arrives once, and mail is taken again by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_at_full_speed_cannot_overrun_the_reserve_and_draining_needs_no_restart() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let fs = Tmpfs::mount(&dir.path().join("spoolfs"), "64m");
    let port = common::free_port();
    let reserve: u64 = 16 << 20;
    let config_path = dir.path().join("hermod.toml");
    std::fs::write(
        &config_path,
        format!(
            "[queue]\nretry_interval = \"1s\"\nscan_interval = \"100ms\"\nmin_free_space = {reserve}\n\
             [delivery]\nrelayhost = \"[127.0.0.1]:{port}\"\nconnect_timeout = \"1s\"\ndead_host_failures = 1\ndead_host_backoff = \"1s\"\n"
        ),
    )
    .unwrap();
    let h = Hermod::start_with(config_path, fs.0.join("data"), &[]).await;
    let probe = tokio::net::TcpStream::connect(h.addr).await;
    assert!(probe.is_ok(), "{probe:?}\n{}", h.logs().join("\n"));
    drop(probe);
    // The lowest free space seen while the spool fills.
    let watching = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = {
        let (watching, spool) = (watching.clone(), fs.0.clone());
        std::thread::spawn(move || {
            let mut lowest = u64::MAX;
            while watching.load(std::sync::atomic::Ordering::Relaxed) {
                lowest = lowest.min(free_space(&spool));
                std::thread::sleep(Duration::from_millis(20));
            }
            lowest
        })
    };
    let body = format!(
        "Subject: filler\r\n\r\n{}",
        "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\r\n".repeat(820)
    );
    let senders: Vec<_> = (0..20)
        .map(|c| {
            let (addr, body) = (h.addr, body.clone());
            tokio::spawn(async move {
                let mut client = Client::connect(addr).await;
                let mut accepted = Vec::new();
                let mut refusals = 0;
                for i in 0..200 {
                    let mail = client.cmd("MAIL FROM:<a@sender.test>").await;
                    if !mail.starts_with("250") {
                        assert!(mail.starts_with("452 4.3.1"), "{mail}");
                        refusals += 1;
                        if refusals > 5 {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                    assert!(
                        client
                            .cmd(&format!("RCPT TO:<c{c}m{i}@dest.test>"))
                            .await
                            .starts_with("250")
                    );
                    assert!(client.cmd("DATA").await.starts_with("354"));
                    client.send(body.as_bytes()).await;
                    client.send(b".\r\n").await;
                    let reply = client.reply().await;
                    if reply.starts_with("250") {
                        accepted.push(format!("c{c}m{i}@dest.test"));
                    } else {
                        assert!(reply.starts_with("452 4.3.1"), "{reply}");
                    }
                }
                accepted
            })
        })
        .collect();
    let mut accepted = Vec::new();
    for sender in senders {
        accepted.extend(sender.await.unwrap());
    }
    watching.store(false, std::sync::atomic::Ordering::Relaxed);
    let lowest = watcher.join().unwrap();
    assert!(accepted.len() > 100, "only {} accepted", accepted.len());
    assert!(
        accepted.len() < 20 * 200,
        "every message was taken: the spool never reached its reserve"
    );
    assert!(
        lowest >= reserve * 3 / 4,
        "free space fell to {lowest} with a reserve of {reserve}"
    );

    // The hop comes back: everything drains, with no full-disk error and no restart.
    let sink_dir = dir.path().join("sink");
    let _sink = sink::start_on(&sink_dir, port).await;
    let stored = sink::wait_stored(&sink_dir, accepted.len(), Duration::from_secs(60)).await;
    let mut delivered: Vec<String> = stored.iter().flat_map(|m| m.rcpt_to.clone()).collect();
    delivered.sort();
    let mut expected = accepted.clone();
    expected.sort();
    assert_eq!(delivered, expected, "lost or duplicated mail");
    let listening = tokio::net::TcpStream::connect(h.addr).await;
    assert!(
        listening.is_ok(),
        "hermod no longer listens: {listening:?}\n{}",
        h.logs().join("\n")
    );
    drop(listening);
    let mut c = Client::connect(h.addr).await;
    assert_eq!(
        mail_reply_until(&mut c, "250", Duration::from_secs(10)).await,
        "250 2.1.0 Sender ok"
    );
    for line in h.logs() {
        assert!(
            !line.contains("No space left")
                && !line.contains("disk is full")
                && !line.contains("hit a full disk"),
            "{line}"
        );
    }
}

/// A removal a full disk stops, tried as a bad day goes: mail waits for a hop that is
/// down, the disk fills to the last block (no reserve), the hop comes back. Delivering
/// works (the sink is elsewhere), but removing the delivered mail is a write in sled and
/// fails, and hermod stops. Before, every message delivered but not yet removed was
/// delivered again after the restart. Now the ids of removals sled could not make
/// durable go to a file whose space was taken at start, and the next start finishes
/// them: every message arrives exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_mail_whose_removal_a_full_disk_stopped_is_not_delivered_again() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let fs = Tmpfs::mount(&dir.path().join("spoolfs"), "24m");
    let port = common::free_port();
    let config_path = dir.path().join("hermod.toml");
    std::fs::write(
        &config_path,
        format!(
            "[queue]\nretry_interval = \"1s\"\nscan_interval = \"100ms\"\nmin_free_space = 0\n\
             [delivery]\nrelayhost = \"[127.0.0.1]:{port}\"\nconnect_timeout = \"1s\"\ndead_host_failures = 1\ndead_host_backoff = \"1s\"\n"
        ),
    )
    .unwrap();
    let mut h = Hermod::start_with(config_path, fs.0.join("data"), &[]).await;
    let mut c = Client::connect(h.addr).await;
    const MESSAGES: usize = 40;
    for i in 0..MESSAGES {
        let to = format!("r{i}@dest.test");
        let reply = c
            .send_message("a@sender.test", &[&to], b"Subject: once\r\n\r\nx\r\n")
            .await;
        assert!(reply.starts_with("250"), "{reply}");
    }
    drop(c);
    h.wait_log("next hop is down", Duration::from_secs(10))
        .await
        .expect("the hop is marked down");
    let filler = fill(&fs.0);
    let sink_dir = dir.path().join("sink");
    let _sink = sink::start_on(&sink_dir, port).await;
    // Deliveries go; their removals cannot be written; hermod stops by itself.
    let code = h.wait_exit(Duration::from_secs(60)).await;
    assert!(matches!(code, Some(c) if c != 0), "exit code {code:?}");
    let first_run = sink::stored(&sink_dir).len();
    assert!(first_run > 0, "nothing was delivered before hermod stopped");
    std::fs::remove_file(&filler).unwrap();
    h.restart().await;
    let stored = sink::wait_stored(&sink_dir, MESSAGES, Duration::from_secs(30)).await;
    // A moment more for a duplicate to show up, if one were coming.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stored = if stored.len() >= MESSAGES {
        sink::stored(&sink_dir)
    } else {
        stored
    };
    let mut delivered: Vec<String> = stored.iter().flat_map(|m| m.rcpt_to.clone()).collect();
    delivered.sort();
    let mut expected: Vec<String> = (0..MESSAGES).map(|i| format!("r{i}@dest.test")).collect();
    expected.sort();
    assert_eq!(
        delivered, expected,
        "{first_run} delivered before the stop; lost or delivered twice"
    );
}
