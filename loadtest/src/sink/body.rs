//! The bytes of one message being received: counted always, kept only as far as needed.
//!
//! Without a store only the header block is needed (for Message-ID and X-Blaster-Sent),
//! so a large body is counted and dropped instead of copied.

/// A message under way.
#[derive(Debug, Default)]
pub(crate) struct Body {
    kept: Vec<u8>,
    size: usize,
    keep: usize,
    limit: usize,
}

impl Body {
    /// Keeps the first `keep` bytes and flags the message once it passes `limit`.
    pub(crate) fn new(keep: usize, limit: usize) -> Self {
        Self {
            kept: Vec::new(),
            size: 0,
            keep,
            limit,
        }
    }

    /// Starts a new message, reusing the buffer.
    pub(crate) fn reset(&mut self) {
        self.kept.clear();
        self.size = 0;
    }

    /// Adds received bytes.
    pub(crate) fn append(&mut self, bytes: &[u8]) {
        self.size += bytes.len();
        let room = self.keep.saturating_sub(self.kept.len());
        if room > 0 && self.size <= self.limit {
            self.kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
    }

    /// Size of the whole message so far.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// The message passed the size limit.
    pub(crate) fn too_big(&self) -> bool {
        self.size > self.limit
    }

    /// The kept bytes (the whole message when storing).
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.kept
    }

    /// Takes the kept bytes out, leaving an empty buffer.
    pub(crate) fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.kept)
    }
}
