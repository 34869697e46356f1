//! Session transcripts, opt-in per peer (`log.transcript_peers`, as Postfix's
//! `debug_peer_list` but for the conversation itself): a session with a listed client is
//! recorded ([`Transcript`]) and, when it ends, written to `DIR/session-MS-IP.log`, and
//! to `DIR/QUEUEID.log` for each message it queued, where `hermod queue show ID
//! --transcript` and `GET /api/queue/{id}/transcript` find it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::core::id::QueueId;
use crate::core::peer_list::PeerList;
use crate::protocol::transcript::Transcript;

/// Whose sessions are recorded, and where.
#[derive(Debug)]
pub struct Transcripts {
    /// The listed peers.
    pub peers: PeerList,
    /// The directory (`queue.data_dir/transcripts`).
    pub dir: PathBuf,
}

impl Transcripts {
    /// A transcript for a session with `peer`, if it is listed.
    pub fn for_peer(&self, peer: SocketAddr) -> Option<Transcript> {
        self.peers
            .names(&peer.to_string())
            .then(|| Transcript::new(&peer.to_string(), SystemTime::now()))
    }

    /// Writes `transcript` out (off the arbiter), logging where.
    pub fn keep(&self, peer: SocketAddr, transcript: Transcript) {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || match write(&dir, peer, &transcript) {
            Ok(path) => tracing::info!(client = %peer, file = %path.display(),
                    queue_ids = transcript.queue_ids.len(), "session transcript written"),
            Err(e) => tracing::error!(client = %peer, dir = %dir.display(), error = %e,
                    "cannot write a session transcript"),
        });
    }
}

/// The transcript of message `id` in `dir`, if one was written.
pub fn path_of(dir: &Path, id: QueueId) -> PathBuf {
    dir.join(format!("{id}.log"))
}

fn write(dir: &Path, peer: SocketAddr, transcript: &Transcript) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let session = dir.join(format!("session-{millis}-{}.log", peer.ip()));
    let open = |path: &Path| {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
    };
    std::io::Write::write_all(&mut open(&session)?, transcript.text().as_bytes())?;
    for id in &transcript.queue_ids {
        std::io::Write::write_all(&mut open(&path_of(dir, *id))?, transcript.text().as_bytes())?;
    }
    Ok(session)
}
