//! Large message bodies as files beside the spool, as Postfix keeps its queue files. A
//! body that outgrows `queue.large_message_threshold` while it is received is written to
//! a file in `incoming/` instead of memory; the Session fsyncs it before it asks the
//! Queue to store the message, and the spool renames it to `bodies/<queue id>`. Deleting
//! the message deletes the file, so the disk is given back at once (sled's own blob files
//! were never reclaimed).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::core::id::QueueId;
use crate::protocol::body_sink::{BodySink, BodySinks, IncomingBody};

/// The two directories: bodies being received, and bodies of queued messages.
#[derive(Debug)]
pub struct BodyFiles {
    incoming: PathBuf,
    bodies: PathBuf,
    next: AtomicU64,
}

impl BodyFiles {
    /// Creates `incoming/` and `bodies/` under `data_dir` and empties `incoming/` (bodies
    /// of messages that were never acknowledged: a crash or a dropped connection).
    pub fn open(data_dir: &Path) -> std::io::Result<Self> {
        let incoming = data_dir.join("incoming");
        let bodies = data_dir.join("bodies");
        std::fs::create_dir_all(&incoming)?;
        std::fs::create_dir_all(&bodies)?;
        for entry in std::fs::read_dir(&incoming)? {
            let _ = std::fs::remove_file(entry?.path());
        }
        Ok(BodyFiles {
            incoming,
            bodies,
            next: AtomicU64::new(0),
        })
    }

    /// A new file for a body being received.
    pub fn create(&self) -> std::io::Result<IncomingFile> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let path = self.incoming.join(format!("{}-{n}", std::process::id()));
        let file = File::create(&path)?;
        Ok(IncomingFile {
            file: BufWriter::with_capacity(64 * 1024, file),
            path,
            len: 0,
            kept: false,
        })
    }

    /// Where the body of message `id` lives once it is queued.
    pub fn path_of(&self, id: QueueId) -> PathBuf {
        self.bodies.join(id.to_string())
    }

    /// The directory of queued bodies (fsynced after a rename into it).
    pub fn bodies_dir(&self) -> &Path {
        &self.bodies
    }

    /// The ids of every body file queued, for removing those left without a message.
    pub fn queued_ids(&self) -> std::io::Result<Vec<(QueueId, PathBuf)>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.bodies)? {
            let entry = entry?;
            if let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse().ok())
            {
                out.push((id, entry.path()));
            }
        }
        Ok(out)
    }
}

/// A body being written to `incoming/`. Dropped without [`IncomingFile::persist`], its
/// file is deleted.
#[derive(Debug)]
pub struct IncomingFile {
    file: BufWriter<File>,
    path: PathBuf,
    len: u64,
    kept: bool,
}

impl BodySink for IncomingFile {
    /// Appends `bytes`.
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.file.write_all(bytes)?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Octets written.
    fn len(&self) -> u64 {
        self.len
    }

    /// Writes out the buffer and fsyncs the file: after this the bytes survive a crash.
    /// Blocking; the Session runs it off its arbiter thread.
    fn sync(&mut self) -> std::io::Result<()> {
        self.file.flush()?;
        self.file.get_ref().sync_data()
    }

    /// Writes out the buffer (without fsync), so that the policies can read the whole
    /// file before the message is accepted.
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }

    /// Takes `path` (in the same directory, written and closed by a policy: the message
    /// without its forged headers) in place of this file, which is deleted.
    fn replace_with(&mut self, path: PathBuf) -> std::io::Result<()> {
        let file = match std::fs::OpenOptions::new().append(true).open(&path) {
            Ok(file) => file,
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
        };
        let len = file.metadata()?.len();
        self.file.flush()?;
        let old = std::mem::replace(&mut self.path, path);
        self.file = BufWriter::with_capacity(64 * 1024, file);
        self.len = len;
        let _ = std::fs::remove_file(old);
        Ok(())
    }

    /// Where the file is while it is received.
    fn path(&self) -> &Path {
        &self.path
    }

    /// Moves the file to `to` (in the same file system) and keeps it.
    fn persist(mut self: Box<Self>, to: &Path) -> std::io::Result<()> {
        self.file.flush()?;
        std::fs::rename(&self.path, to)?;
        self.kept = true;
        Ok(())
    }
}

impl BodySinks for BodyFiles {
    fn create_sink(&self) -> std::io::Result<IncomingBody> {
        Ok(Box::new(self.create()?))
    }
}

impl Drop for IncomingFile {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
            // A cleaned copy a policy may have written (see `replace_with`).
            let _ = std::fs::remove_file(self.path.with_extension("clean"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incoming_body_is_deleted_unless_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let files = BodyFiles::open(dir.path()).unwrap();
        let mut dropped = files.create_sink().unwrap();
        dropped.write(b"abc").unwrap();
        let dropped_path = dropped.path().to_path_buf();
        assert!(dropped_path.exists());
        drop(dropped);
        assert!(!dropped_path.exists());

        let mut kept = files.create_sink().unwrap();
        kept.write(b"hello").unwrap();
        kept.sync().unwrap();
        let id = QueueId(7);
        kept.persist(&files.path_of(id)).unwrap();
        assert_eq!(std::fs::read(files.path_of(id)).unwrap(), b"hello");
        assert_eq!(files.queued_ids().unwrap()[0].0, id);
    }

    #[test]
    fn opening_empties_incoming() {
        let dir = tempfile::tempdir().unwrap();
        let files = BodyFiles::open(dir.path()).unwrap();
        let mut left = files.create_sink().unwrap();
        left.write(b"half a message").unwrap();
        let path = left.path().to_path_buf();
        std::mem::forget(left);
        assert!(path.exists());
        BodyFiles::open(dir.path()).unwrap();
        assert!(!path.exists());
    }
}
