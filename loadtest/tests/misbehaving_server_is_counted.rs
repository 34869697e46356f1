//! A server that sends garbage, wrong codes, resets or stalls is counted as errors by
//! kind; the run neither panics nor hangs.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use smtp_blaster::send::{self, Report, SendConfig};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

type Behaviour = fn(TcpStream) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// Serves every connection with `behaviour`; the task ends with the test's runtime.
async fn fake_server(behaviour: Behaviour) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(behaviour(tcp));
        }
    });
    addr
}

/// Greets, answers EHLO without extensions, then answers every line with `reply`
/// (`None`: close the connection instead).
async fn scripted(tcp: TcpStream, reply: Option<&'static [u8]>) {
    let mut tcp = BufReader::new(tcp);
    let _ = tcp.get_mut().write_all(b"220 fake ready\r\n").await;
    let mut line = String::new();
    let _ = tcp.read_line(&mut line).await;
    let _ = tcp.get_mut().write_all(b"250 fake\r\n").await;
    loop {
        line.clear();
        if !matches!(tcp.read_line(&mut line).await, Ok(n) if n > 0) {
            return;
        }
        match reply {
            Some(reply) => {
                let _ = tcp.get_mut().write_all(reply).await;
            }
            None => return,
        }
    }
}

async fn run_against(behaviour: Behaviour) -> Report {
    let addr = fake_server(behaviour).await;
    let config = SendConfig {
        server: addr,
        connections: 2,
        messages: Some(6),
        command_timeout: Duration::from_secs(2),
        ..SendConfig::default()
    };
    tokio::time::timeout(Duration::from_secs(20), send::run(config))
        .await
        .expect("the run hung")
        .unwrap()
}

fn only_error(report: &Report, kind: &str) {
    assert_eq!(
        (report.sent, report.accepted, report.errors),
        (6, 0, 6),
        "{report}"
    );
    assert_eq!(report.errors_by_kind.get(kind), Some(&6), "{report}");
}

#[tokio::test]
async fn garbage_greeting_is_malformed_reply() {
    let report = run_against(|mut tcp| {
        Box::pin(async move {
            let _ = tcp.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        })
    })
    .await;
    only_error(&report, "malformed_reply");
}

#[tokio::test]
async fn wrong_code_for_data_is_unexpected_reply() {
    let report = run_against(|tcp| Box::pin(scripted(tcp, Some(b"250 sure\r\n")))).await;
    only_error(&report, "unexpected_reply");
}

#[tokio::test]
async fn reset_mid_transaction_is_closed() {
    let report = run_against(|tcp| Box::pin(scripted(tcp, None))).await;
    only_error(&report, "closed");
}

#[tokio::test]
async fn stalled_server_is_timeout() {
    let report = run_against(|tcp| {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(tcp);
        })
    })
    .await;
    only_error(&report, "timeout");
}

#[tokio::test]
async fn nothing_listening_is_connect_refused() {
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let config = SendConfig {
        server: addr,
        connections: 2,
        messages: Some(6),
        ..SendConfig::default()
    };
    let report = send::run(config).await.unwrap();
    only_error(&report, "connect_refused");
}

#[tokio::test]
async fn endless_multi_line_reply_is_malformed_not_a_hang() {
    // Continuation lines forever: no single line is too long and bytes keep coming, so
    // neither the line limit nor a per-read timeout would ever end it.
    let report = run_against(|mut tcp| {
        Box::pin(async move { while tcp.write_all(b"220-more\r\n").await.is_ok() {} })
    })
    .await;
    only_error(&report, "malformed_reply");
}

#[tokio::test]
async fn trickling_server_is_timeout() {
    // One byte every 50 ms: each read succeeds, but the reply never completes in time.
    let report = run_against(|mut tcp| {
        Box::pin(async move {
            for _ in 0..200 {
                if tcp.write_all(b"2").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    })
    .await;
    only_error(&report, "timeout");
}
