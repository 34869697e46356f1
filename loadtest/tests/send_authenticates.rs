//! AUTH against a sink started with credentials: the right ones deliver, wrong ones
//! are counted as `auth_failed`, none at all get 530 at MAIL.

use smtp_blaster::send::{self, SendConfig};
use smtp_blaster::sink::{self, SinkConfig, SinkHandle};

async fn sink_with_auth() -> SinkHandle {
    let auth = Some(("alice".to_string(), "s3cret".to_string()));
    sink::start(SinkConfig {
        auth,
        ..SinkConfig::default()
    })
    .await
    .unwrap()
}

fn config(sink: &SinkHandle, auth: Option<(&str, &str)>) -> SendConfig {
    SendConfig {
        server: sink.local_addrs()[0],
        connections: 2,
        messages: Some(20),
        per_connection: 5,
        auth: auth.map(|(u, p)| (u.to_string(), p.to_string())),
        ..SendConfig::default()
    }
}

#[tokio::test]
async fn auth_with_right_credentials_delivers() {
    let sink = sink_with_auth().await;
    let report = send::run(config(&sink, Some(("alice", "s3cret"))))
        .await
        .unwrap();
    let summary = sink.shutdown().await;
    assert_eq!(report.accepted, 20, "{report}");
    assert_eq!(summary.stats.auth_successes, report.connections);
}

#[tokio::test]
async fn auth_with_wrong_password_is_counted() {
    let sink = sink_with_auth().await;
    let report = send::run(config(&sink, Some(("alice", "wrong"))))
        .await
        .unwrap();
    let summary = sink.shutdown().await;
    assert_eq!(
        report.errors_by_kind.get("auth_failed"),
        Some(&20),
        "{report}"
    );
    assert_eq!(summary.stats.received, 0);
}

#[tokio::test]
async fn no_auth_is_refused_at_mail() {
    let sink = sink_with_auth().await;
    let report = send::run(config(&sink, None)).await.unwrap();
    sink.shutdown().await;
    assert_eq!(report.perm_failed, 20, "{report}");
    assert_eq!(report.reply_codes.get("530"), Some(&20));
}
