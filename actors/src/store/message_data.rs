//! A queued message's bytes as the delivery side reads them. Small messages live in the
//! spool's sled tree and travel in memory; a large body lives in a file of its own beside
//! the spool and is read in pieces while it is sent, so a 24 MB message costs a few
//! hundred kilobytes of memory per delivery, not 24 MB.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;

/// How much of a body file is read (and sent) at a time.
pub const CHUNK: usize = 256 * 1024;

/// The bytes of a queued message: our Received: header and what the client sent, CRLF
/// line ends, not dot-stuffed.
#[derive(Debug, Clone)]
pub enum MessageData {
    /// All of it in memory.
    Inline(Bytes),
    /// The head in memory, the body in a file of the spool.
    File(Arc<FileBody>),
}

/// A message whose body is a spool file.
#[derive(Debug)]
pub struct FileBody {
    /// What comes before the body (our Received: header).
    pub head: Bytes,
    /// The body file.
    pub path: PathBuf,
    /// Its length in octets.
    pub body_len: u64,
}

impl MessageData {
    /// Octets in all.
    pub fn len(&self) -> u64 {
        match self {
            MessageData::Inline(bytes) => bytes.len() as u64,
            MessageData::File(file) => file.head.len() as u64 + file.body_len,
        }
    }

    /// Memory the data holds while it is sent: all of it in memory, or the head and one
    /// read buffer for a body file.
    pub fn memory_cost(&self) -> u64 {
        match self {
            MessageData::Inline(bytes) => bytes.len() as u64,
            MessageData::File(file) => (file.head.len() + CHUNK) as u64,
        }
    }

    /// Whether there are no octets at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A reader giving the bytes in order, in pieces of at most [`CHUNK`] octets.
    pub fn chunks(&self) -> Chunks {
        Chunks {
            data: self.clone(),
            head_sent: false,
            file: None,
            left: match self {
                MessageData::Inline(_) => 0,
                MessageData::File(file) => file.body_len,
            },
        }
    }

    /// Whether every octet is 7-bit (reads a body file through).
    pub async fn is_ascii(&self) -> std::io::Result<bool> {
        let mut chunks = self.chunks();
        while let Some(chunk) = chunks.next().await? {
            if !chunk.is_ascii() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Whether the header section (up to the first empty line) is 7-bit.
    pub async fn header_section_is_ascii(&self) -> std::io::Result<bool> {
        let mut chunks = self.chunks();
        // The last three octets of the previous piece, so an end of headers that spans
        // two pieces is found.
        let mut carry: Vec<u8> = Vec::new();
        while let Some(chunk) = chunks.next().await? {
            let mut window = std::mem::take(&mut carry);
            window.extend_from_slice(&chunk);
            let end = window
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map(|at| at + 4);
            let headers = &window[..end.unwrap_or(window.len())];
            if !headers.is_ascii() {
                return Ok(false);
            }
            if end.is_some() {
                return Ok(true);
            }
            carry = window[window.len().saturating_sub(3)..].to_vec();
        }
        Ok(true)
    }

    /// The first `limit` octets (or all, if fewer): enough for the header section of a
    /// bounce. Reads a body file synchronously; used off the hot path only.
    pub fn prefix(&self, limit: usize) -> std::io::Result<Vec<u8>> {
        match self {
            MessageData::Inline(bytes) => Ok(bytes[..bytes.len().min(limit)].to_vec()),
            MessageData::File(file) => {
                use std::io::Read;
                let mut out = file.head[..file.head.len().min(limit)].to_vec();
                let want = limit.saturating_sub(out.len()) as u64;
                std::fs::File::open(&file.path)?
                    .take(want)
                    .read_to_end(&mut out)?;
                Ok(out)
            }
        }
    }
}

/// Reads a [`MessageData`] in order; see [`MessageData::chunks`].
pub struct Chunks {
    data: MessageData,
    head_sent: bool,
    file: Option<tokio::fs::File>,
    /// Body octets still to read from the file.
    left: u64,
}

impl Chunks {
    /// The next piece, or `None` at the end. A body file shorter than recorded is an
    /// error, never a silently truncated message.
    pub async fn next(&mut self) -> std::io::Result<Option<Bytes>> {
        let file_body = match &self.data {
            MessageData::Inline(bytes) => {
                if self.head_sent {
                    return Ok(None);
                }
                self.head_sent = true;
                return Ok(Some(bytes.clone()));
            }
            MessageData::File(file) => file.clone(),
        };
        if !self.head_sent {
            self.head_sent = true;
            if !file_body.head.is_empty() {
                return Ok(Some(file_body.head.clone()));
            }
        }
        if self.left == 0 {
            return Ok(None);
        }
        if self.file.is_none() {
            self.file = Some(tokio::fs::File::open(&file_body.path).await?);
        }
        let Some(file) = self.file.as_mut() else {
            return Ok(None);
        };
        let want = (self.left as usize).min(CHUNK);
        let mut buffer = BytesMut::zeroed(want);
        file.read_exact(&mut buffer).await?;
        self.left -= want as u64;
        Ok(Some(buffer.freeze()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_data(dir: &std::path::Path, head: &[u8], body: &[u8]) -> MessageData {
        let path = dir.join("body");
        std::fs::write(&path, body).unwrap();
        MessageData::File(Arc::new(FileBody {
            head: Bytes::copy_from_slice(head),
            path,
            body_len: body.len() as u64,
        }))
    }

    async fn read_all(data: &MessageData) -> Vec<u8> {
        let mut out = Vec::new();
        let mut chunks = data.chunks();
        while let Some(chunk) = chunks.next().await.unwrap() {
            assert!(chunk.len() <= CHUNK.max(64));
            out.extend_from_slice(&chunk);
        }
        out
    }

    #[tokio::test]
    async fn a_file_body_reads_back_whole_in_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let body: Vec<u8> = (0..CHUNK * 2 + 17).map(|i| b'a' + (i % 26) as u8).collect();
        let data = file_data(dir.path(), b"Received: x\r\n", &body);
        assert_eq!(data.len(), 13 + body.len() as u64);
        let read = read_all(&data).await;
        assert_eq!(&read[..13], b"Received: x\r\n");
        assert_eq!(&read[13..], &body[..]);
        assert!(data.is_ascii().await.unwrap());
        assert_eq!(data.prefix(20).unwrap(), b"Received: x\r\nabcdefg");
    }

    #[tokio::test]
    async fn a_truncated_body_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let data = file_data(dir.path(), b"", b"short");
        let MessageData::File(file) = &data else {
            unreachable!()
        };
        let longer = MessageData::File(Arc::new(FileBody {
            head: Bytes::new(),
            path: file.path.clone(),
            body_len: 100,
        }));
        let mut chunks = longer.chunks();
        assert!(chunks.next().await.is_err());
    }

    #[tokio::test]
    async fn header_section_check_sees_only_the_headers() {
        let dir = tempfile::tempdir().unwrap();
        let data = file_data(
            dir.path(),
            b"Received: x\r\n",
            "Subject: a\r\n\r\nGrüße\r\n".as_bytes(),
        );
        assert!(data.header_section_is_ascii().await.unwrap());
        assert!(!data.is_ascii().await.unwrap());
        let utf8 = MessageData::Inline(Bytes::from("Subject: ä\r\n\r\nx\r\n"));
        assert!(!utf8.header_section_is_ascii().await.unwrap());
    }
}
