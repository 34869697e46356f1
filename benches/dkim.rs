//! DKIM cost: signing and verifying with RSA-2048 and Ed25519, for 1 KiB and 100 KiB
//! messages, through the same functions the DkimSigner and DkimVerifier actors call.
//! Verification looks its key up in an in-process DNS server on loopback; after the
//! first lookup the answer comes from the resolver's cache, as it does for a busy
//! gateway. Run: `cargo bench --bench dkim`.

#[path = "../tests/common/dns.rs"]
mod dns;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hermod::cli::dkim::{Algorithm, new_key};
use hermod_actors::outbound::mx::MxResolver;
use hermod_actors::policy::dkim_sign::{SigningKey, load_key, sign};
use hermod_actors::policy::mail_auth::{authenticator, dkim_verify};

/// A signing key of `algorithm` and its TXT record.
fn key(algorithm: Algorithm, selector: &str) -> (SigningKey, String) {
    let (pair, record) = new_key(algorithm).unwrap();
    let (key, name) = load_key(&pair.serialize_pem()).unwrap();
    let key = SigningKey {
        selector: selector.into(),
        key: Arc::new(key),
        algorithm: name,
    };
    (key, record)
}

fn message(size: usize) -> Vec<u8> {
    let mut message = b"From: News <news@shop.test>\r\nTo: someone@remote.test\r\nSubject: Offers\r\nDate: Mon, 30 Nov 2026 04:00:00 +0000\r\nMessage-ID: <1@shop.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n".to_vec();
    let line =
        b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n";
    while message.len() < size {
        message.extend_from_slice(line);
    }
    message
}

const SIZES: [usize; 2] = [1024, 100 * 1024];

fn bench_dkim(c: &mut Criterion) {
    let keys = [
        ("rsa2048", key(Algorithm::Rsa2048, "s1")),
        ("ed25519", key(Algorithm::Ed25519, "e1")),
    ];
    let mut group = c.benchmark_group("dkim_sign");
    for size in SIZES {
        let message = message(size);
        group.throughput(Throughput::Bytes(message.len() as u64));
        for (name, (key, _)) in &keys {
            group.bench_with_input(BenchmarkId::new(*name, size), &message, |b, message| {
                b.iter(|| sign(black_box(message), "shop.test", std::slice::from_ref(key)).unwrap())
            });
        }
    }
    group.finish();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let zone = keys.iter().fold(
        dns::TestZone::new("shop.test."),
        |zone, (_, (key, record))| {
            zone.txt(&format!("{}._domainkey.shop.test.", key.selector), record)
        },
    );
    let server = runtime.block_on(dns::TestDns::start(vec![zone]));
    let auth = runtime.block_on(async {
        Arc::new(authenticator(
            &MxResolver::new(&[server.addr], Duration::from_secs(2)).unwrap(),
        ))
    });
    let mut group = c.benchmark_group("dkim_verify");
    for size in SIZES {
        let message = message(size);
        group.throughput(Throughput::Bytes(message.len() as u64));
        for (name, (key, _)) in &keys {
            let header = sign(&message, "shop.test", std::slice::from_ref(key)).unwrap();
            let mut signed = format!("{}\r\n", header[0]).into_bytes();
            signed.extend_from_slice(&message);
            let signed = Arc::new(signed);
            let report = runtime.block_on(dkim_verify::verify(auth.clone(), signed.clone()));
            assert_eq!(report.summary().name(), "pass", "{report:?}");
            group.bench_with_input(BenchmarkId::new(*name, size), &signed, |b, signed| {
                b.iter(|| runtime.block_on(dkim_verify::verify(auth.clone(), signed.clone())))
            });
        }
    }
    group.finish();
    runtime.block_on(server.shutdown());
}

criterion_group!(benches, bench_dkim);
criterion_main!(benches);
