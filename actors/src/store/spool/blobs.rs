//! sled keeps values over a quarter of a segment (about 128 KiB) in files under
//! `blobs/`, written without fsync. Each flush makes the new ones durable, and their
//! directory entry, before sled's log that points at them. The directory is listed only
//! when its modification time says it changed: on the fast path sled makes no blobs, and
//! a flush then costs one `stat` here, not a listing.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// The blob files already made durable, and when their directory was last listed.
#[derive(Debug, Default)]
pub(super) struct SyncedBlobs {
    /// Names of the files already fsynced.
    pub(super) names: Mutex<HashSet<OsString>>,
    /// The directory's modification time when it was last listed, if it was old enough
    /// then that a file created since must have changed it: unchanged, nothing is new.
    listed_at: Mutex<Option<SystemTime>>,
}

impl SyncedBlobs {
    /// Fsyncs the files in `dir` created since the last call, then `dir` itself.
    pub(super) fn sync_new(&self, dir: &Path) -> std::io::Result<()> {
        let modified = match std::fs::metadata(dir).and_then(|m| m.modified()) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            modified => modified?,
        };
        let mut listed_at = self.listed_at.lock().unwrap_or_else(|e| e.into_inner());
        if *listed_at == Some(modified) {
            return Ok(());
        }
        // The time read before the listing: a file created while it runs changes it.
        *listed_at = None;
        let settled = settled(modified);
        let mut synced = self.names.lock().unwrap_or_else(|e| e.into_inner());
        let mut present = HashSet::new();
        let mut new_files = false;
        // A file sled may still be writing (changed within the coarsest tick): synced
        // now and again at the next flush, until it has settled.
        let mut unsettled = false;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            if !synced.contains(&name) {
                let file_settled = match std::fs::File::open(entry.path()) {
                    Ok(file) => {
                        file.sync_all()?;
                        file.metadata()?.modified().is_ok_and(self::settled)
                    }
                    // Removed by sled between read_dir and open: nothing to make durable.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                new_files = true;
                if !file_settled {
                    unsettled = true;
                    continue;
                }
            }
            present.insert(name);
        }
        if new_files {
            std::fs::File::open(dir)?.sync_all()?;
        }
        *synced = present;
        if settled && !unsettled {
            *listed_at = Some(modified);
        }
        Ok(())
    }
}

/// Whether a directory's modification time is far enough in the past that any change
/// from now on must show: file systems keep it in coarse ticks (ext4 and XFS: the
/// kernel's tick; FAT: two seconds), so a file created in the tick of the last change
/// would leave it as it was.
fn settled(modified: SystemTime) -> bool {
    modified
        .elapsed()
        .is_ok_and(|age| age > Duration::from_secs(3))
}
