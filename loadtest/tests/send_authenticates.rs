//! AUTH against a sink started with credentials: the right ones deliver, wrong ones
//! are counted as `auth_failed`, none at all get 530 at MAIL; AUTH LOGIN is used
//! against a server that offers nothing else.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use smtp_blaster::send::{self, SendConfig};
use smtp_blaster::sink::{self, SinkConfig, SinkHandle};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

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

/// A server that offers only AUTH LOGIN and checks the credentials it is given.
async fn login_only_server(logins: Arc<AtomicUsize>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(login_session(tcp, Arc::clone(&logins)));
        }
    });
    addr
}

async fn login_session(tcp: TcpStream, logins: Arc<AtomicUsize>) {
    let (read, mut write) = tcp.into_split();
    let mut lines = BufReader::new(read).lines();
    let _ = write.write_all(b"220 login-only ready\r\n").await;
    let mut in_data = false;
    let mut step = 0;
    while let Ok(Some(line)) = lines.next_line().await {
        let reply: &[u8] = if in_data {
            if line != "." {
                continue;
            }
            in_data = false;
            b"250 2.0.0 queued\r\n"
        } else if step == 1 {
            step = if line == "YWxpY2U=" { 2 } else { 9 };
            b"334 UGFzc3dvcmQ6\r\n"
        } else if step == 2 || step == 9 {
            if step == 2 && line == "czNjcmV0" {
                logins.fetch_add(1, Ordering::Relaxed);
                step = 3;
                b"235 2.7.0 ok\r\n"
            } else {
                step = 0;
                b"535 5.7.8 bad credentials\r\n"
            }
        } else {
            match line
                .get(..4)
                .unwrap_or_default()
                .to_ascii_uppercase()
                .as_str()
            {
                "EHLO" => b"250-login-only\r\n250 AUTH LOGIN\r\n",
                "AUTH" if line.eq_ignore_ascii_case("AUTH LOGIN") => {
                    step = 1;
                    b"334 VXNlcm5hbWU6\r\n"
                }
                "MAIL" if step != 3 => b"530 5.7.0 authenticate first\r\n",
                "MAIL" | "RCPT" | "RSET" => b"250 ok\r\n",
                "DATA" => {
                    in_data = true;
                    b"354 go\r\n"
                }
                "QUIT" => {
                    let _ = write.write_all(b"221 bye\r\n").await;
                    return;
                }
                _ => b"502 5.5.2 not here\r\n",
            }
        };
        if write.write_all(reply).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn auth_login_is_used_when_plain_is_not_offered() {
    let logins = Arc::new(AtomicUsize::new(0));
    let server = login_only_server(Arc::clone(&logins)).await;
    let report = send::run(SendConfig {
        server,
        connections: 1,
        messages: Some(3),
        auth: Some(("alice".to_string(), "s3cret".to_string())),
        ..SendConfig::default()
    })
    .await
    .unwrap();
    assert_eq!(report.accepted, 3, "{report}");
    assert_eq!(logins.load(Ordering::Relaxed) as u64, report.connections);
}
