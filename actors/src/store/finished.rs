//! The ids (queue ids as numbers) of messages removed from the spool whose removal sled could not make
//! durable: written to a file beside sled, its space taken when the spool opens, so
//! that writing it never needs a block the full disk no longer has. A removal that
//! fails (sled meets a full disk: a delete is a write in sled) would otherwise leave
//! the message in the spool, and the next start would deliver it again. The next start
//! reads the file and finishes those removals before anything is scheduled.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Mutex;

/// Room for this many ids (8 octets each): more removals than a flush interval ever
/// holds.
const CAPACITY: u64 = 128 * 1024;

/// The file, open for the life of the spool.
pub struct FinishedIds {
    file: Mutex<File>,
}

impl FinishedIds {
    /// Opens (or creates) `dir/finished`, with its space taken; returns it and the ids a
    /// previous run left in it.
    pub fn open(dir: &Path) -> std::io::Result<(Self, Vec<u64>)> {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join("finished"))?;
        let mut raw = Vec::new();
        file.read_to_end(&mut raw)?;
        let left: Vec<u64> = raw
            .chunks_exact(8)
            .map(|chunk| u64::from_be_bytes(chunk.try_into().unwrap_or([0; 8])))
            .take_while(|&id| id != 0)
            .collect();
        rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, CAPACITY * 8)
            .map_err(std::io::Error::from)?;
        Ok((
            FinishedIds {
                file: Mutex::new(file),
            },
            left,
        ))
    }

    /// Writes `ids` from the start of the file (the space is taken already) and syncs
    /// them. Ids past the capacity are not written: their messages may be delivered
    /// twice.
    pub fn record(&self, ids: &[u64]) -> std::io::Result<usize> {
        let kept = ids.len().min(CAPACITY as usize - 1);
        let mut raw: Vec<u8> = ids[..kept].iter().flat_map(|id| id.to_be_bytes()).collect();
        raw.extend_from_slice(&[0; 8]);
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&raw)?;
        file.sync_data()?;
        Ok(kept)
    }

    /// Forgets the ids (their removals are durable now).
    pub fn clear(&self) -> std::io::Result<()> {
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&[0; 8])?;
        file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_recorded_are_read_back_at_the_next_open_until_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let (finished, left) = FinishedIds::open(dir.path()).unwrap();
        assert!(left.is_empty());
        finished.record(&[7, 9]).unwrap();
        drop(finished);
        let (finished, left) = FinishedIds::open(dir.path()).unwrap();
        assert_eq!(left, [7, 9]);
        assert_eq!(
            std::fs::metadata(dir.path().join("finished"))
                .unwrap()
                .len(),
            CAPACITY * 8,
            "its space is taken at open"
        );
        finished.clear().unwrap();
        drop(finished);
        let (_, left) = FinishedIds::open(dir.path()).unwrap();
        assert!(left.is_empty());
    }
}
