//! The sled spool against a real sled on disk: writes, flushes, reopening, body files
//! and recovery.

use super::*;
use crate::protocol::body_sink::BodySinks;

fn envelope() -> Envelope {
    crate::store::envelope::sample(3)
}

/// Opens the spool again in the same process: sled's background threads may hold the
/// directory lock for a moment after the previous handle is dropped.
fn reopen(dir: &std::path::Path) -> SledSpool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match SledSpool::open(dir) {
            Ok(spool) => return spool,
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("reopening the spool: {e}"),
        }
    }
}

#[test]
fn insert_flush_reopen_recover() {
    let dir = tempfile::tempdir().unwrap();
    {
        let spool = SledSpool::open(dir.path()).unwrap();
        spool.insert(QueueId(7), &envelope(), b"abc").unwrap();
        spool.insert(QueueId(8), &envelope(), b"def").unwrap();
        spool.remove(QueueId(8)).unwrap();
        spool.flush().unwrap();
    }
    let spool = reopen(dir.path());
    let recovered = spool.recover().unwrap();
    assert_eq!(recovered, vec![(QueueId(7), envelope())]);
    let Some(MessageData::Inline(data)) = spool.data(QueueId(7), false).unwrap() else {
        panic!("small data is inline");
    };
    assert_eq!(&data[..], b"abc");
}

#[test]
fn large_message_lives_in_a_synced_blob_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let big = vec![b'x'; 300 * 1024];
    {
        let spool = SledSpool::open(dir.path()).unwrap();
        spool.insert(QueueId(9), &envelope(), &big).unwrap();
        spool.flush().unwrap();
        let blobs = std::fs::read_dir(dir.path().join("blobs")).unwrap().count();
        assert!(blobs > 0, "sled put the message in a blob");
    }
    let spool = reopen(dir.path());
    assert_eq!(
        spool.data(QueueId(9), false).unwrap().map(|d| d.len()),
        Some(big.len() as u64)
    );
}

#[test]
fn a_body_file_is_kept_beside_sled_and_deleted_with_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let spool = SledSpool::open(dir.path()).unwrap();
    let mut body = spool.body_files().create_sink().unwrap();
    body.write(&vec![b'y'; 100_000]).unwrap();
    body.sync().unwrap();
    let mut envelope = envelope();
    spool
        .insert_with_file(QueueId(5), &mut envelope, b"Received: x\r\n", body)
        .unwrap();
    assert!(envelope.body_file);
    spool.flush().unwrap();
    let path = spool.body_files().path_of(QueueId(5));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 100_000);
    let Some(MessageData::File(file)) = spool.data(QueueId(5), envelope.body_file).unwrap() else {
        panic!("a large body stays in its file");
    };
    assert_eq!(
        (&file.head[..], file.body_len),
        (&b"Received: x\r\n"[..], 100_000)
    );
    spool.remove(QueueId(5)).unwrap();
    // Deleted only once the removal is durable: a crash before must find both.
    assert!(
        path.exists(),
        "the body file went before its removal was flushed"
    );
    spool.flush().unwrap();
    assert!(!path.exists(), "the body file goes with its message");
}

#[test]
fn recovery_deletes_body_files_no_message_refers_to() {
    let dir = tempfile::tempdir().unwrap();
    let orphan = {
        let spool = SledSpool::open(dir.path()).unwrap();
        let mut body = spool.body_files().create_sink().unwrap();
        body.write(b"left by a crash").unwrap();
        let path = spool.body_files().path_of(QueueId(6));
        body.persist(&path).unwrap();
        path
    };
    let spool = reopen(dir.path());
    assert!(spool.recover().unwrap().is_empty());
    assert!(!orphan.exists());
}

#[test]
fn a_blob_made_after_a_listing_is_synced_at_the_next_flush() {
    let dir = tempfile::tempdir().unwrap();
    let spool = SledSpool::open(dir.path()).unwrap();
    let blobs = dir.path().join("blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    // Listed long ago: a flush lists it once and remembers its time.
    let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    let times = std::fs::FileTimes::new().set_modified(long_ago);
    std::fs::File::open(&blobs)
        .unwrap()
        .set_times(times)
        .unwrap();
    spool.flush().unwrap();
    assert!(spool.blobs.names.lock().unwrap().is_empty());
    // A new file changes the directory's time: the next flush lists and syncs it. Just
    // written, sled may still be writing it: it is synced again at each flush until its
    // time has settled, and only then counted as done.
    std::fs::write(blobs.join("4242"), b"blob").unwrap();
    spool.flush().unwrap();
    assert!(spool.blobs.names.lock().unwrap().is_empty());
    std::fs::File::options()
        .write(true)
        .open(blobs.join("4242"))
        .unwrap()
        .set_times(std::fs::FileTimes::new().set_modified(long_ago))
        .unwrap();
    spool.flush().unwrap();
    assert!(
        spool
            .blobs
            .names
            .lock()
            .unwrap()
            .contains(std::ffi::OsStr::new("4242"))
    );
}
