//! The operator's spool tools on a stopped hermod, and the bug-report archive of a
//! running one: `hermod spool check` names a message whose body file is gone and
//! `--repair` takes it out (hermod then starts without the error and delivers the rest);
//! `hermod spool compact --into DIR` writes a copy hermod delivers from; `hermod diagnose`
//! archives the server's state and recent warnings, and no secret.

mod common;

use std::process::Command;
use std::time::Duration;

use common::client::Client;
use common::hermod::Hermod;
use common::sink;

/// hermod with its next hop down at `sink_port`, large bodies in files from 4096 octets.
fn config(sink_port: u16, extra: &str) -> String {
    format!(
        "[queue]\nscan_interval = \"100ms\"\nretry_interval = \"1s\"\nlarge_message_threshold = 4096\n\
[delivery]\nrelayhost = \"[127.0.0.1]:{sink_port}\"\n{extra}"
    )
}

async fn queue_two(h: &Hermod) -> (String, String) {
    let mut c = Client::connect(h.addr).await;
    let small = common::client::queue_id(
        &c.send_message(
            "a@shop.test",
            &["small@dest.test"],
            b"Subject: small\r\n\r\nhi\r\n",
        )
        .await,
    );
    let body = format!(
        "Subject: large\r\n\r\n{}",
        format!("{}\r\n", "x".repeat(70)).repeat(300)
    );
    let large = common::client::queue_id(
        &c.send_message("a@shop.test", &["large@dest.test"], body.as_bytes())
            .await,
    );
    (small, large)
}

fn hermod_cli(dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hermod"))
        .args(args)
        .arg("--config")
        .arg(dir.join("hermod.toml"))
        .env("SMTP_DB_PATH", dir.join("data"))
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_check_names_a_lost_body_and_repair_takes_it_out() {
    let dir = tempfile::tempdir().unwrap();
    let sink_port = common::free_port();
    let mut h = Hermod::start(dir.path(), &config(sink_port, "")).await;
    let (small, large) = queue_two(&h).await;
    h.stop().await;
    let (ok, text) = hermod_cli(dir.path(), &["spool", "check"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("2 messages read back whole") && text.contains("0 damaged"),
        "{text}"
    );
    // The large message's body file is lost (a disk error, an operator's rm).
    let bodies = dir.path().join("data/bodies");
    for entry in std::fs::read_dir(&bodies).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let (ok, text) = hermod_cli(dir.path(), &["spool", "check"]);
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!("{large}: its body file")) && text.contains("is missing"),
        "{text}"
    );
    let (ok, text) = hermod_cli(dir.path(), &["spool", "check", "--repair"]);
    assert!(ok && text.contains("(taken out)"), "{text}");
    let (ok, text) = hermod_cli(dir.path(), &["spool", "check", "--json"]);
    assert!(ok, "{text}");
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (
            report["messages"].as_u64(),
            report["damaged"].as_array().map(Vec::len)
        ),
        (Some(1), Some(0))
    );
    // hermod starts and delivers what is left.
    let _sink = sink::start_on(&dir.path().join("sink"), sink_port).await;
    h.restart().await;
    let stored = sink::wait_stored(&dir.path().join("sink"), 1, Duration::from_secs(20)).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].rcpt_to, ["small@dest.test"], "{small}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_copy_is_one_hermod_delivers_from() {
    let dir = tempfile::tempdir().unwrap();
    let sink_port = common::free_port();
    let mut h = Hermod::start(dir.path(), &config(sink_port, "")).await;
    queue_two(&h).await;
    // While hermod holds the spool, the tools say so.
    let (ok, text) = hermod_cli(
        dir.path(),
        &[
            "spool",
            "compact",
            "--into",
            dir.path().join("x").to_str().unwrap(),
        ],
    );
    assert!(!ok && text.contains("stop hermod first"), "{text}");
    h.stop().await;
    let copy = dir.path().join("compacted");
    let (ok, text) = hermod_cli(
        dir.path(),
        &["spool", "compact", "--into", copy.to_str().unwrap()],
    );
    assert!(ok && text.contains("compacted"), "{text}");
    let _sink = sink::start_on(&dir.path().join("sink"), sink_port).await;
    let _h = Hermod::start_with(dir.path().join("hermod.toml"), copy, &[]).await;
    let stored = sink::wait_stored(&dir.path().join("sink"), 2, Duration::from_secs(20)).await;
    assert_eq!(stored.len(), 2);
    let large = stored
        .iter()
        .find(|m| m.rcpt_to == ["large@dest.test"])
        .unwrap();
    assert!(large.data.len() > 20_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnose_archives_the_running_servers_state_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let sink_port = common::free_port();
    let h = Hermod::start_with(
        {
            let path = dir.path().join("hermod.toml");
            std::fs::write(
                &path,
                config(sink_port, "[admin]\ntoken = \"s3cret-admin-token\"\n"),
            )
            .unwrap();
            path
        },
        dir.path().join("data"),
        &[("SMTP_NOT_A_SETTING", "1")],
    )
    .await;
    queue_two(&h).await;
    let out = dir.path().join("report.tar.gz");
    let answer = h.command(dir.path(), &["diagnose", "--out", out.to_str().unwrap()]);
    assert!(
        answer.status.success(),
        "{}",
        String::from_utf8_lossy(&answer.stderr)
    );
    let unpacked = dir.path().join("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    let tar = Command::new("tar")
        .arg("-xzf")
        .arg(&out)
        .arg("-C")
        .arg(&unpacked)
        .output()
        .unwrap();
    assert!(
        tar.status.success(),
        "{}",
        String::from_utf8_lossy(&tar.stderr)
    );
    let read =
        |name: &str| std::fs::read_to_string(unpacked.join("hermod-diagnose").join(name)).unwrap();
    assert!(read("version.txt").starts_with("hermod "));
    assert!(read("configuration.txt").contains("queue.large_message_threshold = 4096"));
    assert!(
        read("stats.json").contains("\"received\""),
        "{}",
        read("stats.json")
    );
    assert!(
        read("metrics.txt").contains("queue_messages 2"),
        "{}",
        read("metrics.txt")
    );
    assert!(
        read("recent-warnings-and-errors.json").contains("SMTP_NOT_A_SETTING"),
        "{}",
        read("recent-warnings-and-errors.json")
    );
    assert!(read("disk.txt").contains("free "));
    for entry in std::fs::read_dir(unpacked.join("hermod-diagnose")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
        assert!(
            !text.contains("s3cret-admin-token"),
            "the admin token leaked into the archive"
        );
    }
}
