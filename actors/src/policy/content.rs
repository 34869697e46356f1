//! The message the policies at the end of DATA read (DKIM signing and verification): in
//! memory, or, for a large message, read from its body file off the arbiter thread.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::protocol::check::Facts;

/// Large messages read back into memory at once, at most: spilling them to a file keeps
/// memory bounded, and their checks must not undo that. The others wait their turn (a
/// wait longer than the policy's deadline is a `451`).
const LARGE_AT_ONCE: usize = 4;

static LARGE: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(LARGE_AT_ONCE);

/// Why a large message's body file could not be read or written again: the message is
/// deferred, and the log line says this.
#[derive(Debug, thiserror::Error)]
pub enum BodyFileError {
    /// The body file could not be read (or its reading task failed).
    #[error("cannot read the body file: {0}")]
    Unreadable(std::io::Error),
    /// The copy without forged headers could not be written.
    #[error("cannot write {}: {error}", path.display())]
    Unwritable {
        /// The copy being written.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The turn among [`LARGE_AT_ONCE`] could not be had (the semaphore closed).
    #[error(transparent)]
    NoTurn(tokio::sync::AcquireError),
}

/// A task that did not finish as an I/O error, with the task's own text.
fn task_failed(error: tokio::task::JoinError) -> std::io::Error {
    std::io::Error::other(error)
}

/// A message's bytes, and for a large one its turn among [`LARGE_AT_ONCE`]: keep it as
/// long as the bytes are used.
pub struct Content {
    /// The whole message.
    pub bytes: Arc<Vec<u8>>,
    _turn: Option<tokio::sync::SemaphorePermit<'static>>,
}

/// The whole message of `facts`: `Ok(None)` before DATA; an error when its body file
/// cannot be read.
pub async fn content(facts: &Facts) -> Result<Option<Content>, BodyFileError> {
    if let Some(message) = &facts.message {
        return Ok(Some(Content {
            bytes: message.clone(),
            _turn: None,
        }));
    }
    let Some(path) = facts.body_file.clone() else {
        return Ok(None);
    };
    let turn = LARGE.acquire().await.map_err(BodyFileError::NoTurn)?;
    let read = tokio::task::spawn_blocking(move || std::fs::read(&path)).await;
    match read.map_err(task_failed).and_then(|read| read) {
        Ok(bytes) => Ok(Some(Content {
            bytes: Arc::new(bytes),
            _turn: Some(turn),
        })),
        Err(e) => Err(BodyFileError::Unreadable(e)),
    }
}

/// Octets of a large message read to find the end of its header section, at most.
const HEADER_SCAN_LIMIT: usize = 1 << 20;

/// The header section of `facts`' message, for a check that needs no body (the
/// forged-header scan of clients exempt from verification): the message itself when it
/// is in memory; for a large one, its file read up to the empty line that ends the
/// header section, so the body is not read for nothing. `Ok(None)` when there is no
/// message, or no end within [`HEADER_SCAN_LIMIT`] (then the caller reads it all).
pub async fn header_section(facts: &Facts) -> Result<Option<Arc<Vec<u8>>>, BodyFileError> {
    if let Some(message) = &facts.message {
        return Ok(Some(message.clone()));
    }
    let Some(path) = facts.body_file.clone() else {
        return Ok(None);
    };
    tokio::task::spawn_blocking(move || read_header_section(&path))
        .await
        .map_err(task_failed)
        .and_then(|read| read)
        .map(|head| head.map(Arc::new))
        .map_err(BodyFileError::Unreadable)
}

/// The start of the file at `path` up to and including the first empty line (all of it
/// if it has none); `None` if that is longer than [`HEADER_SCAN_LIMIT`].
fn read_header_section(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut head = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut chunk)?;
        if n == 0 {
            return Ok(Some(head));
        }
        // The end may straddle two reads: search from just before the new bytes.
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(&chunk[..n]);
        if let Some(at) = head[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            head.truncate(from + at + 4);
            return Ok(Some(head));
        }
        if head.len() >= HEADER_SCAN_LIMIT {
            return Ok(None);
        }
    }
}

/// Writes `content` without the byte ranges `remove` to a new file beside `path` (in
/// `incoming/`, emptied at start should it be left behind), off the arbiter thread; its
/// path.
pub async fn write_without(
    path: &Path,
    content: Arc<Vec<u8>>,
    mut remove: Vec<Range<usize>>,
) -> Result<PathBuf, BodyFileError> {
    let clean = path.with_extension("clean");
    let target = clean.clone();
    let original = path.to_path_buf();
    let written = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        remove.sort_by_key(|r| r.start);
        let mut file = std::io::BufWriter::new(std::fs::File::create(&target)?);
        let mut at = 0;
        for range in remove {
            if range.start < at || range.end > content.len() {
                continue;
            }
            file.write_all(&content[at..range.start])?;
            at = range.end;
        }
        file.write_all(&content[at..])?;
        file.flush()?;
        drop(file);
        // The session gave up on the message meanwhile (a deadline): nobody takes this one.
        if !original.exists() {
            let _ = std::fs::remove_file(&target);
            return Err(std::io::Error::other("the message is gone"));
        }
        Ok(())
    })
    .await;
    match written.map_err(task_failed).and_then(|written| written) {
        Ok(()) => Ok(clean),
        Err(error) => Err(BodyFileError::Unwritable { path: clean, error }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(dir: &Path, bytes: &[u8]) -> PathBuf {
        let path = dir.join("body");
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn the_header_section_ends_at_the_empty_line_even_across_reads() {
        let dir = tempfile::tempdir().unwrap();
        // The empty line straddles the first 64 KiB read.
        let mut header = b"X-Long: ".to_vec();
        header.resize(64 * 1024 - 6, b'a');
        header.extend_from_slice(b"\r\n\r\n");
        let mut message = header.clone();
        message.extend_from_slice(&vec![b'b'; 300_000]);
        let head = read_header_section(&file_with(dir.path(), &message)).unwrap();
        assert_eq!(head.unwrap(), header);
    }

    #[test]
    fn a_message_without_a_body_is_all_header_and_an_endless_header_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let only = b"Subject: no body\r\n".to_vec();
        let head = read_header_section(&file_with(dir.path(), &only)).unwrap();
        assert_eq!(head.unwrap(), only);
        let endless = vec![b'c'; HEADER_SCAN_LIMIT + 10];
        assert!(
            read_header_section(&file_with(dir.path(), &endless))
                .unwrap()
                .is_none()
        );
    }
}
