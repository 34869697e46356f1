//! `hermod spool compact --into DIR`: a compacted copy of a stopped hermod's data
//! directory. sled reclaims the space of removed messages only slowly; a copy made by
//! exporting every tree and importing it into a new database holds only what is live.
//! The original stays as it was (nothing is swapped in place, so a crash halfway loses
//! nothing); the operator points `queue.data_dir` at the copy, or swaps the directories.

use std::path::Path;

use crate::store::spool::SpoolError;

/// What compaction made.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Compacted {
    /// sled's size on disk before, in octets.
    pub before: u64,
    /// The copy's, after.
    pub after: u64,
    /// Other files copied beside it (body files, suspensions, ...).
    pub files_copied: usize,
}

/// The files sled keeps in its directory; everything else there is hermod's own.
fn is_sleds(name: &str) -> bool {
    matches!(name, "conf" | "db" | "blobs") || name.starts_with("snap.")
}

/// Copies the spool in `from` into the new directory `into`, compacted.
pub fn compact_into(from: &Path, into: &Path) -> Result<Compacted, SpoolError> {
    let io = |what: &str, e: std::io::Error| SpoolError(format!("{what}: {e}"));
    if !from.join("db").exists() {
        return Err(SpoolError(format!("{} holds no spool", from.display())));
    }
    if into.exists()
        && std::fs::read_dir(into)
            .map_err(|e| io("reading the target", e))?
            .next()
            .is_some()
    {
        return Err(SpoolError(format!("{} is not empty", into.display())));
    }
    std::fs::create_dir_all(into).map_err(|e| io("creating the target", e))?;
    super::super::private_dir::owner_only(into)
        .map_err(|e| io("making the target owner-only", e))?;
    let source = sled::Config::new().path(from).open().map_err(|e| {
        SpoolError(format!(
            "opening {} (stop hermod first: it holds the spool): {e}",
            from.display()
        ))
    })?;
    let before = source.size_on_disk()?;
    let target = sled::Config::new().path(into).flush_every_ms(None).open()?;
    target.import(source.export());
    target.flush()?;
    let after = target.size_on_disk()?;
    drop(target);
    drop(source);
    let files_copied = copy_others(from, into).map_err(|e| io("copying the other files", e))?;
    // sled's flush does not fsync everything it wrote: the copy is synced whole, files
    // and directories, before the operator is told to swap it in.
    sync_tree(into).map_err(|e| io("syncing the target", e))?;
    Ok(Compacted {
        before,
        after,
        files_copied,
    })
}

/// Copies what is not sled's from `from` into `into`; the number of files.
fn copy_others(from: &Path, into: &Path) -> std::io::Result<usize> {
    let mut copied = 0;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if is_sleds(&name.to_string_lossy()) {
            continue;
        }
        copied += copy_tree(&entry.path(), &into.join(&name))?;
    }
    Ok(copied)
}

/// Every file and directory under `dir`, and `dir`, made durable.
fn sync_tree(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            sync_tree(&path)?;
        } else {
            std::fs::File::open(&path)?.sync_all()?;
        }
    }
    std::fs::File::open(dir)?.sync_all()
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<usize> {
    // A link is followed (a `bodies/` kept on another disk is copied whole).
    let kind = std::fs::metadata(from)?.file_type();
    if !kind.is_dir() && !kind.is_file() {
        // The admin socket: nothing to carry over.
        return Ok(0);
    }
    if kind.is_dir() {
        std::fs::create_dir_all(to)?;
        let mut copied = 0;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            copied += copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        return Ok(copied);
    }
    std::fs::copy(from, to)?;
    Ok(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::id::QueueId;
    use crate::store::envelope::sample;
    use crate::store::spool::{SledSpool, Spool};

    #[test]
    fn the_copy_holds_every_live_message_and_the_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("data");
        {
            let spool = SledSpool::open(&from).unwrap();
            let big = vec![b'x'; 64 * 1024];
            for i in 0..200 {
                spool.insert(QueueId(i), &sample(big.len()), &big).unwrap();
            }
            for i in 0..190 {
                spool.remove(QueueId(i)).unwrap();
            }
            spool.flush().unwrap();
        }
        std::fs::write(from.join("suspensions.json"), "[]").unwrap();
        let into = dir.path().join("compacted");
        // sled's own threads let go of the database a moment after it is dropped.
        let mut done = compact_into(&from, &into);
        for _ in 0..100 {
            if done.is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
            let _ = std::fs::remove_dir_all(&into);
            done = compact_into(&from, &into);
        }
        let done = done.unwrap();
        assert!(done.after < done.before, "{done:?}");
        assert!(done.files_copied >= 1);
        assert!(into.join("suspensions.json").exists());
        let copy = SledSpool::open(&into).unwrap();
        let kept = copy.recover().unwrap();
        assert_eq!(kept.len(), 10);
        assert!(copy.data(QueueId(195), false).unwrap().is_some());
        assert!(
            compact_into(&from, &into)
                .unwrap_err()
                .to_string()
                .contains("not empty")
        );
    }
}
