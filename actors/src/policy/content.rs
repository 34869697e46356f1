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

/// A message's bytes, and for a large one its turn among [`LARGE_AT_ONCE`]: keep it as
/// long as the bytes are used.
pub struct Content {
    /// The whole message.
    pub bytes: Arc<Vec<u8>>,
    _turn: Option<tokio::sync::SemaphorePermit<'static>>,
}

/// The whole message of `facts`: `Ok(None)` before DATA; an error when its body file
/// cannot be read.
pub async fn content(facts: &Facts) -> Result<Option<Content>, String> {
    if let Some(message) = &facts.message {
        return Ok(Some(Content {
            bytes: message.clone(),
            _turn: None,
        }));
    }
    let Some(path) = facts.body_file.clone() else {
        return Ok(None);
    };
    let turn = LARGE.acquire().await.map_err(|e| e.to_string())?;
    let read = tokio::task::spawn_blocking(move || std::fs::read(&path)).await;
    match read {
        Ok(Ok(bytes)) => Ok(Some(Content {
            bytes: Arc::new(bytes),
            _turn: Some(turn),
        })),
        Ok(Err(e)) => Err(format!("cannot read the body file: {e}")),
        Err(e) => Err(format!("cannot read the body file: {e}")),
    }
}

/// Writes `content` without the byte ranges `remove` to a new file beside `path` (in
/// `incoming/`, emptied at start should it be left behind), off the arbiter thread; its
/// path.
pub async fn write_without(
    path: &Path,
    content: Arc<Vec<u8>>,
    mut remove: Vec<Range<usize>>,
) -> Result<PathBuf, String> {
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
    match written {
        Ok(Ok(())) => Ok(clean),
        Ok(Err(e)) => Err(format!("cannot write {}: {e}", clean.display())),
        Err(e) => Err(format!("cannot write {}: {e}", clean.display())),
    }
}
