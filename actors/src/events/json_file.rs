//! The local file destination: one JSON object per line, appended and synced to disk
//! before the batch counts as delivered, rotated by size (`events.jsonl` becomes
//! `events.jsonl.1`, and so on, keeping a configured number).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures_util::future::LocalBoxFuture;

use crate::events::destination::{Destination, DestinationError};

/// Appends to one file, rotating it.
pub struct JsonFile {
    state: Arc<Mutex<FileState>>,
}

struct FileState {
    path: PathBuf,
    max_size: u64,
    keep: u32,
    file: Option<File>,
}

impl JsonFile {
    /// Lines go to `path`; past `max_size` octets it is rotated, keeping `keep` old files.
    pub fn new(path: &Path, max_size: u64, keep: u32) -> Self {
        JsonFile {
            state: Arc::new(Mutex::new(FileState {
                path: path.to_path_buf(),
                max_size: max_size.max(1),
                keep,
                file: None,
            })),
        }
    }
}

impl FileState {
    fn write(&mut self, lines: &[u8]) -> std::io::Result<()> {
        if self.file.is_none() {
            let existed = self.path.exists();
            self.file = Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
            );
            if !existed {
                // A new file is durable only once its directory entry is.
                self.sync_directory()?;
            }
        }
        let file = self.file.as_mut().expect("opened above");
        let before = file.metadata()?.len();
        if before > 0 && before + lines.len() as u64 > self.max_size {
            self.rotate()?;
            return self.write(lines);
        }
        let written = file.write_all(lines).and_then(|()| file.sync_data());
        if written.is_err() {
            // No half line before the batch's retry.
            let _ = file.set_len(before);
        }
        written
    }

    fn sync_directory(&self) -> std::io::Result<()> {
        let dir = match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file = None;
        let numbered = |n: u32| {
            let mut name = self.path.clone().into_os_string();
            name.push(format!(".{n}"));
            PathBuf::from(name)
        };
        if self.keep == 0 {
            return std::fs::remove_file(&self.path);
        }
        let _ = std::fs::remove_file(numbered(self.keep));
        for n in (1..self.keep).rev() {
            let _ = std::fs::rename(numbered(n), numbered(n + 1));
        }
        std::fs::rename(&self.path, numbered(1))?;
        self.sync_directory()
    }
}

impl Destination for JsonFile {
    fn name(&self) -> &'static str {
        "file"
    }

    fn send(&self, batch: Vec<Vec<u8>>) -> LocalBoxFuture<'static, Result<(), DestinationError>> {
        let mut lines = Vec::with_capacity(batch.iter().map(|e| e.len() + 1).sum());
        for event in &batch {
            lines.extend_from_slice(event);
            lines.push(b'\n');
        }
        let state = self.state.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
                let written = state.write(&lines);
                if written.is_err() {
                    // Opened again next time (the directory may come back).
                    state.file = None;
                }
                written
            })
            .await
            .map_err(|e| DestinationError::Write(e.to_string()))?
            .map_err(|e| DestinationError::Write(e.to_string()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::event::{Event, EventKind};
    use crate::store::envelope::sample;

    #[actix_rt::test]
    async fn lines_are_appended_and_rotated_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let file = JsonFile::new(&path, 600, 2);
        let event = Event::about(EventKind::Delivery, "n", "q", &sample(1)).to_bytes();
        for _ in 0..10 {
            file.send(vec![event.clone(), event.clone()]).await.unwrap();
        }
        let current = std::fs::read_to_string(&path).unwrap();
        let line: Event = serde_json::from_str(current.lines().next().unwrap()).unwrap();
        assert_eq!(line.kind, EventKind::Delivery);
        assert!(std::fs::metadata(&path).unwrap().len() <= 600);
        assert!(dir.path().join("events.jsonl.2").exists());
        assert!(!dir.path().join("events.jsonl.3").exists());
    }
}
