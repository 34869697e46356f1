//! Mail parked for a next hop that is down, tried as an operator's bad day goes: spam
//! queued for a dead destination. The failures this stops: `hermod queue delete`, `hold`
//! and `bounce` answered `busy` for every parked message (19,994 of 20,000), even after
//! a minute, `suspend` and `flush`; and every parked message was held in memory (about
//! 800 bytes each: a million took 1.07 GB). Now parked mail is an index entry, its
//! envelope stays in the spool, and every action works on it at once; what was deleted
//! is never delivered, even after a restart with the hop back.

mod common;

use std::time::{Duration, Instant};

use common::client::{Client, queue_id};
use common::hermod::Hermod;
use common::{http, sink};

const MESSAGES: usize = 1500;

fn stats_queue(answer: &http::Answer) -> serde_json::Value {
    answer.json()["queue"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_queue_action_works_at_once_on_mail_parked_for_a_down_hop() {
    let dir = tempfile::tempdir().unwrap();
    let hop_port = common::free_port();
    let origin = sink::start(&dir.path().join("origin")).await;
    let config = format!(
        r#"
[queue]
scan_interval = "100ms"
[delivery]
connect_timeout = "1s"
dead_host_failures = 1
dead_host_backoff = "1h"
[delivery.transport]
"dest.test" = "smtp:[127.0.0.1]:{hop_port}"
"origin.test" = "smtp:[127.0.0.1]:{}"
"#,
        origin.local_addrs()[0].port()
    );
    let mut hermod = Hermod::start(dir.path(), &config).await;
    let admin = hermod.admin.unwrap();
    let mut client = Client::connect(hermod.addr).await;
    // The first message finds the hop down; the rest are parked behind it.
    let first = queue_id(
        &client
            .send_message(
                "a@origin.test",
                &["u@dest.test"],
                b"Subject: s\r\n\r\nx\r\n",
            )
            .await,
    );
    hermod
        .wait_log("next hop is down", Duration::from_secs(10))
        .await
        .expect("the hop is marked down");
    // Fifty clients at once: their messages share the spool's flushes.
    let senders: Vec<_> = (0..50)
        .map(|_| {
            let addr = hermod.addr;
            tokio::spawn(async move {
                let mut client = Client::connect(addr).await;
                client
                    .send_numbered(MESSAGES / 50, "a@origin.test", "dest.test")
                    .await;
            })
        })
        .collect();
    for sender in senders {
        sender.await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let queue = loop {
        let queue = stats_queue(&http::get(admin, "/stats").await);
        if queue["parked"].as_u64() == Some(MESSAGES as u64) || Instant::now() > deadline {
            break queue;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(queue["parked"], MESSAGES, "{queue}");
    // Parked mail is not held in memory: only its index entry.
    assert!(queue["in_memory"].as_u64().unwrap() < 20, "{queue}");

    // One message each: hold, bounce (its report goes to the sender's server).
    let list = http::get(admin, "/api/queue?domain=dest.test&limit=3")
        .await
        .json();
    let ids: Vec<String> = list["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .filter(|id| *id != first)
        .collect();
    let held = hermod.command(dir.path(), &["queue", "hold", &ids[0], "--json"]);
    let held = String::from_utf8_lossy(&held.stdout).into_owned();
    assert!(
        held.contains(&format!("\"done\":[\"{}\"]", ids[0])),
        "{held}"
    );
    let bounced = hermod.command(dir.path(), &["queue", "bounce", &ids[1], "--json"]);
    let bounced = String::from_utf8_lossy(&bounced.stdout).into_owned();
    assert!(
        bounced.contains(&format!("\"done\":[\"{}\"]", ids[1])),
        "{bounced}"
    );
    sink::wait_stored(&dir.path().join("origin"), 1, Duration::from_secs(20)).await;

    // Everything else for the dead destination, at once (postsuper -d ALL for it).
    let started = Instant::now();
    let deleted = hermod.command(
        dir.path(),
        &["queue", "delete", "--domain", "dest.test", "--json"],
    );
    let took = started.elapsed();
    let deleted: serde_json::Value = serde_json::from_slice(&deleted.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&deleted.stderr)));
    assert_eq!(deleted["busy"].as_array().unwrap().len(), 0, "{deleted}");
    assert_eq!(
        deleted["done"].as_array().unwrap().len(),
        MESSAGES,
        "{deleted}"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    let queue = loop {
        let queue = stats_queue(&http::get(admin, "/stats").await);
        if queue["messages"] == 0 || Instant::now() > deadline {
            break queue;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(queue["messages"], 0, "{queue}");
    assert_eq!(queue["parked"], 0, "{queue}");

    // The hop comes back and hermod restarts: nothing deleted is delivered.
    hermod.stop().await;
    let dest_dir = dir.path().join("dest");
    let _dest = sink::start_on(&dest_dir, hop_port).await;
    hermod.restart().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        sink::stored(&dest_dir).len(),
        0,
        "deleted mail was delivered"
    );
}
