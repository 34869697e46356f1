//! The last delivery attempts, newest first, for the status page: the first thing an
//! operator asked "did my mail go out?" looks at, without reading the log.

use std::collections::VecDeque;

/// How many attempts are kept.
const KEPT: usize = 50;

/// One delivery attempt of one recipient.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RecentDelivery {
    /// When it ended (Unix time, seconds).
    pub at: u64,
    /// The message.
    pub queue_id: String,
    /// The recipient.
    pub to: String,
    /// The next hop that answered (or `none` when none was reached).
    pub relay: String,
    /// `sent`, `deferred` or `bounced`.
    pub status: &'static str,
    /// What the next hop (or hermod) said.
    pub reply: String,
}

/// The last [`KEPT`] attempts.
#[derive(Debug, Default)]
pub struct RecentDeliveries {
    entries: VecDeque<RecentDelivery>,
}

impl RecentDeliveries {
    /// Keeps `attempt`, forgetting the oldest once [`KEPT`] are kept.
    pub fn push(&mut self, attempt: RecentDelivery) {
        if self.entries.len() == KEPT {
            self.entries.pop_back();
        }
        self.entries.push_front(attempt);
    }

    /// The attempts, newest first.
    pub fn list(&self) -> Vec<RecentDelivery> {
        self.entries.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_fifty() {
        let mut recent = RecentDeliveries::default();
        for i in 0..60 {
            recent.push(RecentDelivery {
                at: i,
                queue_id: format!("{i}"),
                to: "u@c.test".into(),
                relay: "none".into(),
                status: "sent",
                reply: "250 ok".into(),
            });
        }
        let list = recent.list();
        assert_eq!(list.len(), KEPT);
        assert_eq!((list[0].at, list[KEPT - 1].at), (59, 10));
    }
}
