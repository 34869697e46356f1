//! DKIM signing cost: RSA-2048 and Ed25519, for 1 KiB and 100 KiB messages, through the
//! same `sign` the DkimSigner actor calls. Run: `cargo bench --bench dkim`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hermod_actors::policy::dkim_sign::{SigningKey, load_key, sign};

fn key(algorithm: &'static rcgen::SignatureAlgorithm, selector: &str) -> SigningKey {
    let pem = rcgen::KeyPair::generate_for(algorithm)
        .unwrap()
        .serialize_pem();
    let (key, name) = load_key(&pem).unwrap();
    SigningKey {
        selector: selector.into(),
        key: Arc::new(key),
        algorithm: name,
    }
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

fn bench_sign(c: &mut Criterion) {
    let keys = [
        ("rsa2048", key(&rcgen::PKCS_RSA_SHA256, "s1")),
        ("ed25519", key(&rcgen::PKCS_ED25519, "e1")),
    ];
    let mut group = c.benchmark_group("dkim_sign");
    for size in [1024, 100 * 1024] {
        let message = message(size);
        group.throughput(Throughput::Bytes(message.len() as u64));
        for (name, key) in &keys {
            group.bench_with_input(BenchmarkId::new(*name, size), &message, |b, message| {
                b.iter(|| sign(black_box(message), "shop.test", std::slice::from_ref(key)).unwrap())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_sign);
criterion_main!(benches);
