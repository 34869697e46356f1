//! Where a body past the spill threshold goes while it arrives. The protocol writes
//! through a [`BodySink`] it is handed and never opens a file itself; the Session's
//! stores hand it one (files in `data_dir/incoming/`, [`crate::store::body_file`]).

use std::path::{Path, PathBuf};

/// A body being received into storage, from its first spilled octet until the queue
/// keeps it. Dropped without [`BodySink::persist`], what it wrote is deleted.
pub trait BodySink: std::fmt::Debug + Send {
    /// Appends `bytes`.
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()>;
    /// Octets written.
    fn len(&self) -> u64;
    /// Whether nothing was written.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Writes out what is buffered (without fsync), so the policies can read it all.
    fn flush(&mut self) -> std::io::Result<()>;
    /// Makes every octet durable (blocking: the Session runs it off its arbiter).
    fn sync(&mut self) -> std::io::Result<()>;
    /// Where the policies read it.
    fn path(&self) -> &Path;
    /// Takes `path` (written by a policy beside it: the message without its forged
    /// headers) in its place.
    fn replace_with(&mut self, path: PathBuf) -> std::io::Result<()>;
    /// Moves it to `to` (in the same file system) and keeps it.
    fn persist(self: Box<Self>, to: &Path) -> std::io::Result<()>;
}

/// A body as the protocol and the queue pass it on.
pub type IncomingBody = Box<dyn BodySink>;

/// Makes a [`BodySink`] for each body that spills.
pub trait BodySinks: std::fmt::Debug + Send + Sync {
    /// A new, empty sink.
    fn create_sink(&self) -> std::io::Result<IncomingBody>;
}
