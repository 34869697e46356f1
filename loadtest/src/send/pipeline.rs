//! Messages over one open connection: commands go out in batches, replies are matched
//! to what is expected in order, and each message ends with exactly one outcome.
//!
//! With PIPELINING the end of one message and the envelope of the next share one write
//! (RFC 2920 allows DATA's content to open a command group), and with CHUNKING the whole
//! message is one write (MAIL, RCPT, BDAT LAST and the bytes), so a reused connection
//! costs one round trip per message. Without PIPELINING every command waits its turn.

use std::collections::VecDeque;
use std::io::Write;
use std::time::Instant;

use super::conn::Conn;
use super::ctx::Ctx;
use super::message::Class;
use super::outcome::{ErrorKind, Outcome};
use super::report::Tally;
use super::source::Claim;
use crate::latency::unix_ns;
use crate::rng::Rng;

/// The reply the next one in line answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Mail(u64),
    Rcpt(u64),
    Data(u64),
    /// The reply(ies) after the content (one per accepted recipient in LMTP).
    Final(u64),
    Rset,
    Quit,
}

/// A message under way on this connection.
struct Msg<'a> {
    index: u64,
    origin: Instant,
    class: &'a Class,
    mail: u16,
    rcpt_replies: usize,
    rcpt_ok: usize,
    rcpt_temp: usize,
    /// Its content has been written (so later messages may be pipelined behind it).
    content_sent: bool,
    finals: usize,
    final_ok: bool,
    final_worst: u16,
}

impl Msg<'_> {
    /// The outcome of a message refused before its content: MAIL's code, else the
    /// recipients' (temporary if any was).
    fn refused(&self) -> Outcome {
        if !(200..300).contains(&self.mail) {
            return Outcome::from_code(self.mail);
        }
        if self.rcpt_temp > 0 {
            Outcome::TempFailed
        } else {
            Outcome::PermFailed
        }
    }
}

/// One connection's message loop.
pub(crate) struct Pipeline<'a> {
    ctx: &'a Ctx,
    conn: Conn,
    tally: &'a mut Tally,
    rng: &'a mut Rng,
    expects: VecDeque<Expect>,
    /// Without PIPELINING: commands waiting for the previous reply.
    unsent: VecDeque<(Vec<u8>, Expect)>,
    msgs: VecDeque<Msg<'a>>,
    pipelining: bool,
    chunking: bool,
    started: u64,
    quit_sent: bool,
    /// A message claimed but not due yet (open loop) or left for the next connection.
    held: Option<Claim>,
}

impl<'a> Pipeline<'a> {
    /// Runs messages over `conn`, starting with `first`.
    pub(crate) fn new(
        ctx: &'a Ctx,
        conn: Conn,
        tally: &'a mut Tally,
        rng: &'a mut Rng,
        first: Claim,
    ) -> Self {
        let pipelining = ctx.config.pipelining && conn.caps.pipelining;
        let chunking = ctx.config.chunking && conn.caps.chunking;
        Self {
            ctx,
            conn,
            tally,
            rng,
            expects: VecDeque::new(),
            unsent: VecDeque::new(),
            msgs: VecDeque::new(),
            pipelining,
            chunking,
            started: 0,
            quit_sent: false,
            held: Some(first),
        }
    }

    /// Sends until this connection's share is done; returns a message claimed but not
    /// sent, for the next connection.
    pub(crate) async fn run(mut self) -> Option<Claim> {
        let quit_answered = match self.exchange().await {
            Ok(quit_answered) => quit_answered,
            Err(kind) => {
                self.abort(Outcome::Error(kind));
                false
            }
        };
        let held = self.held.take();
        self.conn.close(quit_answered).await;
        held
    }

    /// The reply loop; true when it ended with QUIT answered.
    async fn exchange(&mut self) -> Result<bool, ErrorKind> {
        loop {
            self.fill();
            self.pump();
            let Some(expect) = self.expects.pop_front() else {
                match self.held.filter(|_| !self.quit_sent) {
                    Some(claim) => {
                        self.conn.flush().await?;
                        tokio::time::sleep_until(claim.due.into()).await;
                        continue;
                    }
                    None => return Ok(false),
                }
            };
            let code = match self.conn.reply(self.tally).await {
                Ok(code) => code,
                // The server may hang up right after (or instead of) answering QUIT.
                Err(_) if expect == Expect::Quit && self.msgs.is_empty() => return Ok(false),
                Err(kind) => return Err(kind),
            };
            if code == 421 {
                self.abort(Outcome::TempFailed);
                return Ok(false);
            }
            if expect == Expect::Quit {
                return Ok(true);
            }
            self.on_reply(expect, code)?;
        }
    }

    /// Starts as many messages as the window allows, or QUIT when this connection is done.
    fn fill(&mut self) {
        let window = if self.pipelining { 2 } else { 1 };
        while !self.quit_sent
            && self.msgs.len() < window
            && self.msgs.iter().all(|m| m.content_sent)
        {
            let limit = self.ctx.config.per_connection;
            let claim = if limit > 0 && self.started >= limit {
                None
            } else {
                self.held.take().or_else(|| self.ctx.source.claim())
            };
            let Some(claim) = claim else {
                if self.msgs.is_empty() || self.pipelining {
                    self.emit(Expect::Quit, |out| out.extend_from_slice(b"QUIT\r\n"));
                    self.quit_sent = true;
                }
                return;
            };
            if claim.due > Instant::now() {
                self.held = Some(claim);
                return;
            }
            self.start(claim);
        }
    }

    /// Writes (or queues) the commands of a new message.
    fn start(&mut self, claim: Claim) {
        let now = Instant::now();
        if self.ctx.source.open_loop() {
            self.tally.started(claim.due, now);
        }
        let config = &self.ctx.config;
        let class = self.ctx.content.pick(self.rng);
        let index = claim.index;
        self.emit(Expect::Mail(index), |out| {
            let _ = write!(out, "MAIL FROM:<{}>\r\n", config.from);
        });
        for r in 0..config.recipients {
            self.emit(Expect::Rcpt(index), |out| {
                out.extend_from_slice(b"RCPT TO:<");
                recipient(config, index, r, out);
                out.extend_from_slice(b">\r\n");
            });
        }
        let mut content_sent = false;
        if self.chunking {
            let len = class.raw.bytes.len();
            self.tally.bytes += len as u64;
            self.emit(Expect::Final(index), |out| {
                let _ = write!(out, "BDAT {len} LAST\r\n");
                class.raw.render(index, unix_ns(), out);
            });
            content_sent = true;
        } else {
            self.emit(Expect::Data(index), |out| {
                out.extend_from_slice(b"DATA\r\n")
            });
        }
        self.started += 1;
        self.msgs.push_back(Msg {
            index,
            origin: claim.due,
            class,
            mail: 0,
            rcpt_replies: 0,
            rcpt_ok: 0,
            rcpt_temp: 0,
            content_sent,
            finals: 0,
            final_ok: false,
            final_worst: 0,
        });
    }

    /// Writes a command now (pipelining) or queues it behind the previous reply.
    fn emit(&mut self, expect: Expect, write: impl FnOnce(&mut Vec<u8>)) {
        if self.pipelining {
            write(&mut self.conn.wbuf);
            self.expects.push_back(expect);
        } else {
            let mut bytes = Vec::new();
            write(&mut bytes);
            self.unsent.push_back((bytes, expect));
        }
    }

    /// Without pipelining: sends the next queued command once nothing is outstanding.
    fn pump(&mut self) {
        if self.expects.is_empty()
            && let Some((bytes, expect)) = self.unsent.pop_front()
        {
            self.conn.wbuf.extend_from_slice(&bytes);
            self.expects.push_back(expect);
        }
    }

    /// Applies one reply.
    fn on_reply(&mut self, expect: Expect, code: u16) -> Result<(), ErrorKind> {
        let index = match expect {
            Expect::Mail(i) | Expect::Rcpt(i) | Expect::Data(i) | Expect::Final(i) => i,
            Expect::Rset | Expect::Quit => return Ok(()),
        };
        let Some(pos) = self.msgs.iter().position(|m| m.index == index) else {
            return Ok(());
        };
        let msg = &mut self.msgs[pos];
        let ok = (200..300).contains(&code);
        match expect {
            Expect::Mail(_) => {
                msg.mail = code;
                if !ok && !self.pipelining {
                    let outcome = msg.refused();
                    self.finish(pos, outcome, false);
                }
            }
            Expect::Rcpt(_) => self.on_rcpt_reply(pos, code),
            Expect::Data(_) => return self.on_data_reply(pos, index, code),
            Expect::Final(_) => return self.on_final_reply(pos, expect, code),
            Expect::Rset | Expect::Quit => {}
        }
        Ok(())
    }

    /// A reply to RCPT: counted; with every recipient refused (and no PIPELINING) the
    /// message ends there.
    fn on_rcpt_reply(&mut self, pos: usize, code: u16) {
        let msg = &mut self.msgs[pos];
        msg.rcpt_replies += 1;
        if (200..300).contains(&code) {
            msg.rcpt_ok += 1;
            self.tally.recipients_accepted += 1;
        } else {
            msg.rcpt_temp += usize::from((400..500).contains(&code));
            self.tally.recipients_refused += 1;
        }
        let all_refused = msg.rcpt_replies == self.ctx.config.recipients && msg.rcpt_ok == 0;
        if all_refused && !self.pipelining {
            let outcome = msg.refused();
            self.finish(pos, outcome, true);
        }
    }

    /// A reply to DATA: after 354 the content goes out (an empty one when nothing was
    /// accepted); a refusal ends the message.
    fn on_data_reply(&mut self, pos: usize, index: u64, code: u16) -> Result<(), ErrorKind> {
        let msg = &mut self.msgs[pos];
        let refused = msg.rcpt_ok == 0 || !(200..300).contains(&msg.mail);
        if code == 354 {
            msg.content_sent = true;
            let class = msg.class;
            if refused {
                // A server that says 354 with no recipient gets an empty message.
                self.emit(Expect::Final(index), |out| out.extend_from_slice(b".\r\n"));
            } else {
                self.tally.bytes += class.data.bytes.len() as u64;
                self.emit(Expect::Final(index), |out| {
                    class.data.render(index, unix_ns(), out)
                });
            }
            return Ok(());
        }
        if (200..300).contains(&code) {
            return Err(ErrorKind::UnexpectedReply);
        }
        let outcome = if refused {
            msg.refused()
        } else {
            Outcome::from_code(code)
        };
        let mail_ok = (200..300).contains(&msg.mail);
        self.finish(pos, outcome, mail_ok);
        Ok(())
    }

    /// A reply after the content (one per accepted recipient with LMTP): once all are in,
    /// the message ends accepted if any was.
    fn on_final_reply(&mut self, pos: usize, expect: Expect, code: u16) -> Result<(), ErrorKind> {
        if code == 354 {
            return Err(ErrorKind::UnexpectedReply);
        }
        let ok = (200..300).contains(&code);
        let msg = &mut self.msgs[pos];
        msg.finals += 1;
        msg.final_ok |= ok;
        if !ok && msg.final_worst < code {
            msg.final_worst = code;
        }
        let needed = if self.ctx.config.lmtp {
            msg.rcpt_ok.max(1)
        } else {
            1
        };
        if msg.finals < needed {
            self.expects.push_front(expect);
            return Ok(());
        }
        let refused = msg.rcpt_ok == 0 || !(200..300).contains(&msg.mail);
        let outcome = if refused {
            msg.refused()
        } else if msg.final_ok {
            Outcome::Accepted
        } else {
            Outcome::from_code(msg.final_worst)
        };
        let rset = refused && (200..300).contains(&msg.mail);
        self.finish(pos, outcome, rset);
        Ok(())
    }

    /// Ends a message: drops its unsent commands, counts it, RSETs if a transaction is
    /// left open.
    fn finish(&mut self, pos: usize, outcome: Outcome, rset: bool) {
        let Some(msg) = self.msgs.remove(pos) else {
            return;
        };
        self.unsent.retain(|(_, e)| !matches!(e, Expect::Rcpt(i) | Expect::Data(i) | Expect::Final(i) if *i == msg.index));
        if rset {
            self.emit(Expect::Rset, |out| out.extend_from_slice(b"RSET\r\n"));
        }
        self.count(&msg, outcome);
    }

    /// Ends every message under way with `outcome` (the connection broke or got 421).
    fn abort(&mut self, outcome: Outcome) {
        while let Some(msg) = self.msgs.pop_front() {
            self.count(&msg, outcome);
        }
    }

    /// Tallies one outcome and logs an accepted Message-ID.
    fn count(&mut self, msg: &Msg<'_>, outcome: Outcome) {
        self.tally.finish(outcome, msg.origin, Instant::now());
        let accepted = outcome == Outcome::Accepted;
        self.ctx.progress(accepted);
        if accepted
            && let Some(log) = &self.ctx.accepted_log
            && let Ok(mut w) = log.lock()
        {
            let _ = writeln!(w, "{}", self.ctx.content.message_id(msg.index));
        }
    }
}

/// Writes the `r`-th recipient of message `index`.
fn recipient(config: &super::SendConfig, index: u64, r: usize, out: &mut Vec<u8>) {
    if let Some(to) = &config.to {
        match (r, to.split_once('@')) {
            (0, _) | (_, None) => out.extend_from_slice(to.as_bytes()),
            (_, Some((local, domain))) => {
                let _ = write!(out, "{local}+{r}@{domain}");
            }
        }
        return;
    }
    let k = index * config.recipients as u64 + r as u64;
    let domain = k % config.domains.max(1) as u64;
    let _ = write!(out, "user{k}@d{domain}.{}", config.domain_suffix);
}
