//! The queue's commit path: writing a message to sled and waiting for the group-commit
//! flush, alone and with many writers sharing flushes.
//! Run: `cargo bench --bench queue_commit`.

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hermod_actors::core::id::QueueIdGenerator;
use hermod_actors::store::committer::Committer;
use hermod_actors::store::spool::{Envelope, RecipientState, RecipientStatus, SledSpool, Spool};

fn envelope() -> Envelope {
    Envelope {
        options: Default::default(),
        body_file: false,
        held: false,
        user: None,
        route: None,
        tracking: Vec::new(),
        trace: None,
        tls_report: false,
        pool: None,
        sender: "a@b.test".into(),
        recipients: vec![RecipientState {
            address: "u@c.test".into(),
            domain: "c.test".into(),
            status: RecipientStatus::Pending,
            attempts: 0,
        }],
        arrival: 0,
        size: 1024,
        client: "127.0.0.1".into(),
    }
}

fn bench_commit(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let spool: Arc<dyn Spool> = Arc::new(SledSpool::open(dir.path()).unwrap());
    let committer = Committer::start(spool.clone());
    let ids = QueueIdGenerator::new();
    let data = bytes::Bytes::from(vec![b'x'; 1024]);
    let deadline = || std::time::Instant::now() + std::time::Duration::from_secs(60);
    let envelope = envelope();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let mut group = c.benchmark_group("queue_commit");
    group.throughput(Throughput::Elements(1));
    group.bench_function("insert_and_flush_alone", |b| {
        b.iter(|| {
            let id = ids.next_id();
            let store = committer.store(
                id,
                envelope.clone(),
                data.clone(),
                None,
                Vec::new(),
                deadline(),
            );
            runtime.block_on(store).unwrap();
            spool.remove(id).unwrap();
        })
    });
    const WRITERS: u64 = 50;
    group.throughput(Throughput::Elements(WRITERS));
    group.bench_function("insert_and_flush_50_concurrent", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let mut tasks = Vec::new();
                for _ in 0..WRITERS {
                    let id = ids.next_id();
                    let (c, e, d, at) = (
                        committer.clone(),
                        envelope.clone(),
                        data.clone(),
                        deadline(),
                    );
                    tasks.push(tokio::spawn(async move {
                        c.store(id, e, d, None, Vec::new(), at).await.map(|_| id)
                    }));
                }
                for task in tasks {
                    let id = task.await.unwrap().unwrap();
                    spool.remove(id).unwrap();
                }
            })
        })
    });
    group.finish();
}

/// The spool writer thread's own share of one message: its insert and, once delivered,
/// its removal, without the flush (which a group shares).
fn bench_spool_writes(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let spool = SledSpool::open(dir.path()).unwrap();
    let ids = QueueIdGenerator::new();
    let data = vec![b'x'; 1193];
    let envelope = envelope();
    // A queue of the size a busy relay holds: inserts run ahead of removals.
    let mut queued = std::collections::VecDeque::new();
    for _ in 0..200 {
        let id = ids.next_id();
        spool.insert(id, &envelope, &data).unwrap();
        queued.push_back(id);
    }
    let mut group = c.benchmark_group("spool_writes");
    group.throughput(Throughput::Elements(1));
    group.bench_function("insert_then_remove", |b| {
        b.iter(|| {
            let id = ids.next_id();
            spool.insert(id, &envelope, &data).unwrap();
            queued.push_back(id);
            spool.remove(queued.pop_front().unwrap()).unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, bench_commit, bench_spool_writes);
criterion_main!(benches);
