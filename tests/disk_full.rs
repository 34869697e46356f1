//! The spool's free-space reserve on a real small file system (a size-limited tmpfs the
//! test mounts; CI runs as root): below `queue.min_free_space` MAIL FROM is refused with
//! 452 4.3.1 before any data is sent, and mail is taken again by itself once space
//! returns.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::client::Client;
use common::hermod::Hermod;

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
            Duration::ZERO
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
        h.wait_log("taking mail again", Duration::from_secs(1))
            .await
            .is_some()
    );
    drop(c);
    drop(h);
}
