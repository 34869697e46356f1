//! Transcripts, opt-in per peer (`log.transcript_peers`, as Postfix's `debug_peer_list`
//! but for the conversation itself): a session with a listed client is recorded
//! ([`Transcript`]) and, when it ends, written to `DIR/session-MS-IP.log` and to
//! `DIR/QUEUEID.log` for each message it queued; hermod's own conversation with a listed
//! next hop is appended to `DIR/QUEUEID.log` of each message it carried. `hermod queue
//! show ID --transcript` and `GET /api/queue/{id}/transcript` read them.

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

    /// A transcript of a delivery to next hop `host` at `addr`, if either is listed.
    pub fn for_next_hop(&self, host: &str, addr: SocketAddr) -> Option<Transcript> {
        (self.peers.names(host) || self.peers.names(&addr.to_string())).then(|| {
            Transcript::new(
                &format!("next hop {host} [{addr}] (hermod is the client)"),
                SystemTime::now(),
            )
        })
    }

    /// Appends what a delivery of message `id` said (`text`) to its transcript file (off
    /// the arbiter).
    pub fn append(&self, id: QueueId, text: String) {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = append(&dir, id, &text) {
                tracing::error!(queue_id = %id, dir = %dir.display(), error = %e,
                    "cannot write a session transcript");
            }
        });
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

fn append(dir: &Path, id: QueueId, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path_of(dir, id))?;
    std::io::Write::write_all(&mut file, text.as_bytes())
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
    // Appended: a delivery may have written its part already.
    for id in &transcript.queue_ids {
        append(dir, *id, transcript.text())?;
    }
    Ok(session)
}
