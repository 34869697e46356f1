//! The sans-IO SMTP server without a socket: how fast one connection's bytes become
//! replies and an accepted message. Run: `cargo bench --bench protocol`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hermod_actors::protocol::relay::RelayPolicy;
use hermod_actors::protocol::{Event, ServerSession, ServerSettings};
use hermod_actors::store::room::IntakeRoom;

fn settings() -> Arc<ServerSettings> {
    Arc::new(ServerSettings {
        hostname: "mx.bench.test".into(),
        max_message_size: 10 << 20,
        max_recipients: 100,
        max_line_length: 1000,
        max_errors: 10,
        max_received_headers: 50,
        relay: RelayPolicy::new(&[], &["127.0.0.0/8".parse().unwrap()]),
        security: Default::default(),
        checks: Default::default(),
        postmaster: None,
        room: Arc::new(IntakeRoom::default()),
        spill: None,
    })
}

/// One pipelined transaction with a 1 KiB body, as a load generator sends it.
fn transaction() -> Vec<u8> {
    let mut t =
        b"EHLO client.test\r\nMAIL FROM:<a@b.test> SIZE=1100\r\nRCPT TO:<u@c.test>\r\nDATA\r\n"
            .to_vec();
    t.extend_from_slice(b"Subject: bench\r\nMessage-ID: <1@b.test>\r\n\r\n");
    for i in 0..14 {
        t.extend_from_slice(
            format!("{i:02} .................................................................\r\n")
                .as_bytes(),
        );
    }
    t.extend_from_slice(b".\r\nQUIT\r\n");
    t
}

fn run_session(input: &[u8], settings: &Arc<ServerSettings>) -> usize {
    let mut session = ServerSession::new(settings.clone(), "127.0.0.1".parse().unwrap());
    let mut buffer = BytesMut::from(input);
    let mut out = Vec::with_capacity(512);
    let mut accepted = 0;
    loop {
        match session.feed(&mut buffer, &mut out, SystemTime::UNIX_EPOCH) {
            Some(Event::Enqueue(message)) => accepted += message.data.len(),
            Some(Event::Close | Event::StartTls | Event::Authenticate(_) | Event::Check(_))
            | None => {
                return accepted + out.len();
            }
        }
    }
}

fn bench_protocol(c: &mut Criterion) {
    let settings = settings();
    let input = transaction();
    let mut group = c.benchmark_group("protocol");
    group.throughput(Throughput::Elements(1));
    group.bench_function("session_1k_message", |b| {
        b.iter(|| run_session(black_box(&input), &settings))
    });
    let big: Vec<u8> = {
        let mut t = b"EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u@c.test>\r\nDATA\r\n".to_vec();
        for _ in 0..(1 << 20) / 78 {
            t.extend_from_slice(b"..............................................................................\r\n"[..80].as_ref());
        }
        t.extend_from_slice(b".\r\nQUIT\r\n");
        t
    };
    group.throughput(Throughput::Bytes(big.len() as u64));
    group.bench_function("data_1mib_dot_stuffed", |b| {
        b.iter(|| run_session(black_box(&big), &settings))
    });
    group.finish();
}

criterion_group!(benches, bench_protocol);
criterion_main!(benches);
