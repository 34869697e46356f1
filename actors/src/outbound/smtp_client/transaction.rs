//! One mail transaction on an open connection: [RSET,] MAIL FROM with the parameters the
//! server allows, RCPT TO each recipient, then DATA (dot-stuffed) or BDAT, pipelined when
//! the server offers PIPELINING. The results are per recipient.

use std::fmt::Write as _;

use super::{ClientError, MESSAGE_NEEDS_8BIT, MESSAGE_NEEDS_UTF8, ServerReply, SmtpConnection};
use crate::protocol::command::MailOptions;
use crate::protocol::dot_stuffer::DotStuffer;
use crate::store::message_data::MessageData;

impl SmtpConnection {
    /// Appends to `out` the MAIL FROM parameters for this server (with a leading space
    /// each): SIZE when
    /// offered, BODY=8BITMIME and SMTPUTF8 when the sender declared them and the server
    /// offers them. Without the extension, a message that really needs it fails with
    /// 5.6.3 (8-bit data, RFC 6152 §3) or 5.6.7 (UTF-8 addresses or headers, RFC 6531
    /// §3.2); one that was declared but is plain ASCII goes as it is.
    async fn mail_parameters(
        &self,
        out: &mut String,
        sender: &str,
        recipients: &[impl AsRef<str>],
        options: MailOptions,
        data: &MessageData,
    ) -> Result<(), ClientError> {
        let unreadable = |e: std::io::Error| self.spool_read_error(e);
        let unsupported = |status, extension, why| ClientError::Unsupported {
            status,
            extension,
            peer: self.peer.clone(),
            why,
        };
        if self.caps.size.is_some() {
            let _ = write!(out, " SIZE={}", data.len());
        }
        if options.eight_bit_mime {
            if self.caps.eight_bit_mime {
                out.push_str(" BODY=8BITMIME");
            } else if !data.is_ascii().await.map_err(unreadable)? {
                return Err(unsupported(MESSAGE_NEEDS_8BIT, "8BITMIME", "8-bit data"));
            }
        }
        if options.smtputf8 {
            if self.caps.smtputf8 {
                out.push_str(" SMTPUTF8");
            } else if !sender.is_ascii() || recipients.iter().any(|r| !r.as_ref().is_ascii()) {
                return Err(unsupported(
                    MESSAGE_NEEDS_UTF8,
                    "SMTPUTF8",
                    "a UTF-8 address",
                ));
            } else if !data.header_section_is_ascii().await.map_err(unreadable)? {
                return Err(unsupported(MESSAGE_NEEDS_UTF8, "SMTPUTF8", "UTF-8 headers"));
            }
        }
        Ok(())
    }

    /// The queued message could not be read (a body file vanished or a disk error).
    fn spool_read_error(&self, e: std::io::Error) -> ClientError {
        ClientError::Io {
            stage: "reading the message from the spool",
            peer: self.peer.clone(),
            reason: e.to_string(),
        }
    }

    /// Sends `data` dot-stuffed and ended with `CRLF.CRLF`, a piece at a time.
    async fn write_stuffed(&mut self, data: &MessageData) -> Result<(), ClientError> {
        let mut stuffer = DotStuffer::default();
        let mut chunks = data.chunks();
        let mut out = Vec::with_capacity(crate::store::message_data::CHUNK + 1024);
        loop {
            let chunk = chunks.next().await.map_err(|e| self.spool_read_error(e))?;
            out.clear();
            match chunk {
                Some(chunk) => stuffer.stuff(&chunk, &mut out),
                None => {
                    stuffer.finish(&mut out);
                    self.write(&out, "end of data").await?;
                    return Ok(());
                }
            }
            self.write(&out, "DATA").await?;
        }
    }

    /// Sends one message to `recipients` and returns one reply per recipient (in order).
    /// `data` has CRLF line ends and is not dot-stuffed. `options` are passed on when the
    /// server offers them; a message that needs one the server lacks is not sent
    /// ([`ClientError::Unsupported`]).
    pub async fn send(
        &mut self,
        sender: &str,
        recipients: &[impl AsRef<str>],
        options: MailOptions,
        data: &MessageData,
    ) -> Result<Vec<ServerReply>, ClientError> {
        // A reused connection is reset first; with PIPELINING the RSET rides in the same
        // write as the envelope, so reuse costs no extra round trip. The envelope is built
        // in one buffer: RSET, MAIL FROM with its parameters, each RCPT TO.
        let reset = self.transactions > 0;
        let mut envelope = String::with_capacity(96 + sender.len() + recipients.len() * 48);
        if reset && self.caps.pipelining {
            envelope.push_str("RSET\r\n");
        }
        let _ = write!(envelope, "MAIL FROM:<{sender}>");
        self.mail_parameters(&mut envelope, sender, recipients, options, data)
            .await?;
        envelope.push_str("\r\n");
        if reset && !self.caps.pipelining {
            self.expect_rset(b"RSET\r\n").await?;
        }
        self.transactions += 1;

        if self.use_chunking && self.caps.chunking && self.caps.pipelining {
            return self.send_bdat(envelope, recipients, reset, data).await;
        }
        let (mail, rcpts, data_reply) = self.send_envelope(envelope, recipients, reset).await?;
        if let Some(closing) = closing(&mail, &rcpts) {
            return Ok(closed(&closing, &rcpts, recipients.len()));
        }
        if !mail.is_positive() {
            self.end_unwanted_data(data_reply.as_ref()).await?;
            return Ok(vec![mail; recipients.len()]);
        }
        let accepted: Vec<usize> = (0..rcpts.len())
            .filter(|&i| rcpts[i].is_positive())
            .collect();
        let mut results = rcpts.clone();
        if accepted.is_empty() {
            self.end_unwanted_data(data_reply.as_ref()).await?;
            return Ok(results);
        }
        let data_reply = match data_reply {
            Some(reply) => reply,
            None => {
                self.write(b"DATA\r\n", "DATA").await?;
                self.read_reply("DATA").await?
            }
        };
        if data_reply.code != 354 {
            for &i in &accepted {
                results[i] = data_reply.clone();
            }
            return Ok(results);
        }
        self.write_stuffed(data).await?;
        self.read_final_replies("end of data", &accepted, &mut results)
            .await?;
        Ok(results)
    }

    /// Sends the envelope (`envelope` holds [RSET and] MAIL FROM) and each RCPT TO, in
    /// one write with PIPELINING (then DATA too) or one command at a time; returns the
    /// MAIL reply, the RCPT replies and, when pipelined, the DATA reply.
    async fn send_envelope(
        &mut self,
        mut envelope: String,
        recipients: &[impl AsRef<str>],
        reset: bool,
    ) -> Result<(ServerReply, Vec<ServerReply>, Option<ServerReply>), ClientError> {
        Ok(if self.caps.pipelining {
            for recipient in recipients {
                push_rcpt(&mut envelope, recipient.as_ref());
            }
            envelope.push_str("DATA\r\n");
            if reset {
                self.expect_rset(envelope.as_bytes()).await?;
            } else {
                self.write(envelope.as_bytes(), "MAIL").await?;
            }
            let mail = self.read_reply("MAIL").await?;
            let mut rcpts = Vec::with_capacity(recipients.len());
            if mail.code != 421 {
                for _ in recipients {
                    let rcpt = self.read_reply("RCPT").await?;
                    let closes = rcpt.code == 421;
                    rcpts.push(rcpt);
                    if closes {
                        return Ok((mail, rcpts, None));
                    }
                }
            }
            let data_reply = match mail.code {
                421 => None,
                _ => Some(self.read_reply("DATA").await?),
            };
            (mail, rcpts, data_reply)
        } else {
            self.write(envelope.as_bytes(), "MAIL").await?;
            let mail = self.read_reply("MAIL").await?;
            let mut rcpts = Vec::with_capacity(recipients.len());
            if mail.is_positive() {
                for recipient in recipients {
                    let mut line = String::with_capacity(16 + recipient.as_ref().len());
                    push_rcpt(&mut line, recipient.as_ref());
                    self.write(line.as_bytes(), "RCPT").await?;
                    let rcpt = self.read_reply("RCPT").await?;
                    let closes = rcpt.code == 421;
                    rcpts.push(rcpt);
                    if closes {
                        break;
                    }
                }
            }
            (mail, rcpts, None)
        })
    }

    /// One transaction in one write: [RSET] MAIL, RCPTs, `BDAT n LAST` and the data.
    async fn send_bdat(
        &mut self,
        mut envelope: String,
        recipients: &[impl AsRef<str>],
        reset: bool,
        data: &MessageData,
    ) -> Result<Vec<ServerReply>, ClientError> {
        for recipient in recipients {
            push_rcpt(&mut envelope, recipient.as_ref());
        }
        let _ = write!(envelope, "BDAT {} LAST\r\n", data.len());
        // The envelope and the first piece of data go in one write; a small message is
        // one write in all.
        let mut chunks = data.chunks();
        let mut wire = envelope.into_bytes();
        if let Some(first) = chunks.next().await.map_err(|e| self.spool_read_error(e))? {
            wire.reserve_exact(first.len());
            wire.extend_from_slice(&first);
        }
        if reset {
            // A pooled connection the server closed while idle fails here, before any
            // more of the message is sent.
            self.expect_rset(&wire).await?;
        } else {
            self.write(&wire, "MAIL").await?;
        }
        drop(wire);
        while let Some(chunk) = chunks.next().await.map_err(|e| self.spool_read_error(e))? {
            self.write(&chunk, "BDAT").await?;
        }
        let mail = self.read_reply("MAIL").await?;
        let mut results = Vec::with_capacity(recipients.len());
        if mail.code == 421 {
            return Ok(vec![mail; recipients.len()]);
        }
        for _ in recipients {
            let rcpt = self.read_reply("RCPT").await?;
            if rcpt.code == 421 {
                return Ok(closed(&rcpt, &results, recipients.len()));
            }
            results.push(rcpt);
        }
        let accepted: Vec<usize> = (0..results.len())
            .filter(|&i| results[i].is_positive())
            .collect();
        if !mail.is_positive() {
            self.read_reply("BDAT").await?;
            return Ok(vec![mail; recipients.len()]);
        }
        self.read_final_replies("BDAT", &accepted, &mut results)
            .await?;
        Ok(results)
    }

    /// The replies to the end of the message: with LMTP one per accepted recipient, with
    /// SMTP one for all of them (and one when none was accepted, as a BDAT still gets).
    async fn read_final_replies(
        &mut self,
        stage: &'static str,
        accepted: &[usize],
        results: &mut [ServerReply],
    ) -> Result<(), ClientError> {
        if self.lmtp && !accepted.is_empty() {
            for &i in accepted {
                results[i] = self.read_reply(stage).await?;
            }
        } else {
            let reply = self.read_reply(stage).await?;
            for &i in accepted {
                results[i] = reply.clone();
            }
        }
        Ok(())
    }

    /// A pipelined DATA the server accepted (354) although no transaction is open for it
    /// (MAIL or every RCPT failed): end it empty so the connection stays in step.
    async fn end_unwanted_data(
        &mut self,
        data_reply: Option<&ServerReply>,
    ) -> Result<(), ClientError> {
        if data_reply.is_some_and(|r| r.code == 354) {
            self.write(b".\r\n", "DATA").await?;
            self.read_reply("DATA").await?;
        }
        Ok(())
    }

    /// Writes `bytes` (which start with RSET) and checks the RSET reply.
    async fn expect_rset(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.write(bytes, "RSET").await?;
        let rset = self.read_reply("RSET").await?;
        if rset.is_positive() {
            Ok(())
        } else {
            Err(self.refused("RSET", rset))
        }
    }
}

/// The 421 among a pipelined envelope's replies, if the server said it is closing:
/// the transaction is over for every recipient, those it accepted before included.
fn closing(mail: &ServerReply, rcpts: &[ServerReply]) -> Option<ServerReply> {
    std::iter::once(mail)
        .chain(rcpts)
        .find(|reply| reply.code == 421)
        .cloned()
}

/// Each of `n` recipients' result once the server said 421 (`closing`): the
/// transaction is over, so those it accepted and those it did not answer get the 421;
/// those it refused keep their refusal (a 5xx still bounces).
fn closed(closing: &ServerReply, rcpts: &[ServerReply], n: usize) -> Vec<ServerReply> {
    (0..n)
        .map(|i| match rcpts.get(i) {
            Some(reply) if !reply.is_positive() && reply.code != 421 => reply.clone(),
            _ => closing.clone(),
        })
        .collect()
}

/// Appends `RCPT TO:<recipient>` and its line end to `out`.
fn push_rcpt(out: &mut String, recipient: &str) {
    out.push_str("RCPT TO:<");
    out.push_str(recipient);
    out.push_str(">\r\n");
}
