//! Session timeouts as deadlines for a whole phase, not for each read: a client that
//! sends one byte every few seconds must not hold a connection slot for ever. A command
//! line must be complete within `command_timeout` of the previous one (the first within
//! `greeting_timeout` of the banner); message data must be complete within
//! `data_timeout` of the DATA reply, or — for a large message — keep at least
//! `min_data_rate` bytes per second on average. Pure: time comes in as a parameter.

use std::time::{Duration, Instant};

/// Which timeout applies now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// From the banner until the first complete command line.
    Greeting,
    /// Waiting for a complete command line.
    Command,
    /// Reading message content (DATA or a BDAT chunk).
    Data,
}

impl Stage {
    /// The name used in logs and the `smtp_timeouts_total{stage}` metric.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Greeting => "greeting",
            Stage::Command => "command",
            Stage::Data => "data",
        }
    }
}

/// The limits a [`PhaseDeadline`] applies, from `[smtp]`.
#[derive(Debug, Clone, Copy)]
pub struct PhaseLimits {
    /// Banner to first complete command.
    pub greeting: Duration,
    /// One complete command line.
    pub command: Duration,
    /// The whole message content, unless it keeps `min_data_rate`.
    pub data: Duration,
    /// Bytes per second a message past `data` must average (0: no extension).
    pub min_data_rate: u64,
}

/// The deadline of the phase a session is in.
#[derive(Debug, Clone)]
pub struct PhaseDeadline {
    stage: Stage,
    since: Instant,
    data_bytes: u64,
}

impl PhaseDeadline {
    /// A session that has just sent its banner.
    pub fn new(now: Instant) -> Self {
        PhaseDeadline {
            stage: Stage::Greeting,
            since: now,
            data_bytes: 0,
        }
    }

    /// The stage now.
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// Tells where the protocol is after it consumed input: `stage` now, and whether it
    /// completed a command line. A new stage or a complete command starts a new phase;
    /// data lines do not (the data deadline covers the whole message).
    pub fn observe(&mut self, in_data: bool, command_done: bool, now: Instant) {
        let stage = match (in_data, self.stage) {
            (true, _) => Stage::Data,
            (false, Stage::Greeting) if !command_done => Stage::Greeting,
            (false, _) => Stage::Command,
        };
        if stage != self.stage || (command_done && stage != Stage::Data) {
            self.stage = stage;
            self.since = now;
            self.data_bytes = 0;
        }
    }

    /// Counts bytes read; in the data stage they extend the deadline at `min_data_rate`.
    pub fn received(&mut self, bytes: usize) {
        if self.stage == Stage::Data {
            self.data_bytes = self.data_bytes.saturating_add(bytes as u64);
        }
    }

    /// When the current phase must be complete.
    pub fn deadline(&self, limits: &PhaseLimits) -> Instant {
        let allowed = match self.stage {
            Stage::Greeting => limits.greeting,
            Stage::Command => limits.command,
            Stage::Data if limits.min_data_rate == 0 => limits.data,
            Stage::Data => limits
                .data
                .max(Duration::from_secs(self.data_bytes / limits.min_data_rate)),
        };
        self.since + allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: PhaseLimits = PhaseLimits {
        greeting: Duration::from_secs(30),
        command: Duration::from_secs(300),
        data: Duration::from_secs(600),
        min_data_rate: 1000,
    };

    #[test]
    fn trickled_bytes_do_not_move_a_command_deadline() {
        let t0 = Instant::now();
        let mut d = PhaseDeadline::new(t0);
        d.observe(false, true, t0 + Duration::from_secs(1));
        let deadline = d.deadline(&LIMITS);
        for s in 2..200 {
            // One byte every second, never a complete line.
            d.received(1);
            d.observe(false, false, t0 + Duration::from_secs(s));
        }
        assert_eq!(d.stage(), Stage::Command);
        assert_eq!(d.deadline(&LIMITS), deadline);
        assert_eq!(deadline, t0 + Duration::from_secs(301));
    }

    #[test]
    fn greeting_lasts_until_the_first_complete_command() {
        let t0 = Instant::now();
        let mut d = PhaseDeadline::new(t0);
        d.received(3);
        d.observe(false, false, t0 + Duration::from_secs(10));
        assert_eq!(d.stage(), Stage::Greeting);
        assert_eq!(d.deadline(&LIMITS), t0 + Duration::from_secs(30));
        d.observe(false, true, t0 + Duration::from_secs(20));
        assert_eq!(d.stage(), Stage::Command);
        assert_eq!(d.deadline(&LIMITS), t0 + Duration::from_secs(320));
    }

    #[test]
    fn data_lines_do_not_move_the_data_deadline() {
        let t0 = Instant::now();
        let mut d = PhaseDeadline::new(t0);
        d.observe(true, true, t0);
        for s in 1..100 {
            d.received(10);
            d.observe(true, true, t0 + Duration::from_secs(s));
        }
        assert_eq!(d.deadline(&LIMITS), t0 + Duration::from_secs(600));
    }

    #[test]
    fn a_large_message_at_the_minimum_rate_gets_more_time() {
        let t0 = Instant::now();
        let mut d = PhaseDeadline::new(t0);
        d.observe(true, true, t0);
        d.received(24_000_000);
        assert_eq!(d.deadline(&LIMITS), t0 + Duration::from_secs(24_000));
        d.observe(false, true, t0 + Duration::from_secs(700));
        assert_eq!(d.stage(), Stage::Command);
        assert_eq!(
            d.deadline(&LIMITS),
            t0 + Duration::from_secs(700) + LIMITS.command
        );
    }
}
