//! Reading the next hop's replies: one whole (possibly multi-line) reply at a time,
//! within the command timeout, recorded in the transcript when there is one.

use tokio::io::AsyncReadExt;
use tokio::time::timeout;

use super::{ClientError, ServerReply, SmtpConnection, record_reply};
use crate::protocol::reply_reader::ParsedReply;

impl SmtpConnection {
    /// Reads one (possibly multi-line) reply, its lines joined; a 421 marks the
    /// connection as closing.
    pub(super) async fn read_reply(
        &mut self,
        stage: &'static str,
    ) -> Result<ServerReply, ClientError> {
        let ParsedReply { code, mut lines } = self.read_parsed_reply(stage).await?;
        self.closing |= code == 421;
        // The usual one-line reply keeps its only line: no copy.
        let text = match lines.len() {
            1 => lines.pop().unwrap_or_default(),
            _ => lines.join(" "),
        };
        Ok(ServerReply { code, text })
    }

    /// Reads one (possibly multi-line) reply; also returns the text of each line. The
    /// command timeout bounds the whole reply, not each read: a server that trickles a
    /// byte at a time cannot hold a delivery past it.
    pub(super) async fn read_reply_lines(
        &mut self,
        stage: &'static str,
    ) -> Result<(ServerReply, Vec<String>), ClientError> {
        let ParsedReply { code, lines } = self.read_parsed_reply(stage).await?;
        let text = lines.join(" ");
        Ok((ServerReply { code, text }, lines))
    }

    /// One reply as the reader parsed it, within the command timeout.
    async fn read_parsed_reply(&mut self, stage: &'static str) -> Result<ParsedReply, ClientError> {
        match timeout(self.timeouts.command, self.read_whole_reply(stage)).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout {
                stage,
                peer: self.peer.clone(),
            }),
        }
    }

    /// Reads until one whole reply is in the buffer (recording it in the transcript).
    async fn read_whole_reply(&mut self, stage: &'static str) -> Result<ParsedReply, ClientError> {
        loop {
            match self.reader.next_reply(&mut self.buffer) {
                Ok(Some(reply)) => {
                    if let Some(transcript) = self.transcript.as_mut() {
                        record_reply(transcript, &reply);
                    }
                    return Ok(reply);
                }
                Ok(None) => {}
                Err(detail) => {
                    return Err(ClientError::Protocol {
                        stage,
                        peer: self.peer.clone(),
                        detail,
                    });
                }
            }
            self.buffer.reserve(4096);
            match self.stream.read_buf(&mut self.buffer).await {
                Ok(0) => {
                    return Err(ClientError::Io {
                        stage,
                        peer: self.peer.clone(),
                        reason: "connection closed by server".into(),
                    });
                }
                Ok(_) => {}
                Err(e) => {
                    return Err(ClientError::Io {
                        stage,
                        peer: self.peer.clone(),
                        reason: e.to_string(),
                    });
                }
            }
        }
    }
}
