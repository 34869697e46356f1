//! swaks (a common hand tool) delivers to our sink with AUTH LOGIN. (Its STARTTLS
//! needs Net::SSLeay, which a `--no-install-recommends` install leaves out.)

mod common;

use std::time::Duration;

use smtp_blaster::sink::{self, SinkConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaks_authenticates_to_sink() {
    common::postfix::require("/usr/bin/swaks");
    let auth = Some(("alice".to_string(), "s3cret".to_string()));
    let sink = sink::start(SinkConfig {
        auth,
        ..SinkConfig::default()
    })
    .await
    .unwrap();
    let addr = sink.local_addrs()[0];
    let swaks = tokio::process::Command::new("/usr/bin/swaks")
        .args([
            "--server",
            &addr.ip().to_string(),
            "--port",
            &addr.port().to_string(),
        ])
        .args(["--to", "bob@example.test", "--from", "alice@example.test"])
        .args([
            "--auth",
            "LOGIN",
            "--auth-user",
            "alice",
            "--auth-password",
            "s3cret",
        ])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), swaks)
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let summary = sink.shutdown().await;
    assert_eq!(
        (summary.stats.received, summary.stats.auth_successes),
        (1, 1)
    );
}
