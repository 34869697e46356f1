//! Traffic-shaping automation: the actions in force (each a rule's answer to a reply,
//! on one path, until a time) and the counting of matching replies toward a rule's
//! threshold. Actions are plain values, serialised for `/api/shaping` and for the other
//! nodes of a fleet (through Redis).

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::rules::{ActionKind, Limits, Rate, Trigger};

/// One action in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// The egress source it applies to; empty: every source.
    pub source: String,
    /// The site.
    pub site: String,
    /// The rule that took it (or `operator`).
    pub rule: String,
    /// What it does.
    pub kind: ActionKind,
    /// The reply that triggered it (escaped, bounded).
    pub reason: String,
    /// When it was taken, unix seconds.
    pub since: u64,
    /// When it ends by itself, unix seconds.
    pub until: u64,
    /// How long the rule said, in seconds (`until` is rounded up from it).
    #[serde(default)]
    pub duration_s: u64,
    /// The node that took it.
    pub node: String,
}

impl Action {
    /// What identifies it: one action per rule and path, a newer one replacing it.
    pub fn id(&self) -> String {
        format!("{}|{}|{}", self.source, self.site, self.rule)
    }

    /// Whether its time is over.
    pub fn ended(&self) -> bool {
        self.until <= crate::outbound::mta_sts::unix_now()
    }

    /// Whether an action read from Redis or the file kept across a restart could have
    /// been taken by a rule (at most [`MAX_ACTION_S`] long, not taken in the future, a
    /// bounded reason): anything else is refused, never put in force.
    pub fn plausible(&self, now: u64) -> bool {
        self.since <= now.saturating_add(60)
            && self.since <= self.until
            && self.until <= now.saturating_add(MAX_ACTION_S)
            && self.reason.len() <= MAX_REASON * 4
            && self.site.len() <= 4096
            && self.rule.len() <= 256
            && self.source.len() <= 256
            && self.node.len() <= 256
            && match &self.kind {
                ActionKind::Suspend => true,
                ActionKind::Limit(limits) => {
                    limits.max_connections != Some(0)
                        && limits.max_messages_per_connection != Some(0)
                }
            }
    }
}

/// The longest an action lasts: a rule's duration is at most 7 days (the shaping file
/// refuses longer), plus a day of slack for clocks.
pub const MAX_ACTION_S: u64 = 8 * 86400;

impl Action {}

/// Longest reason kept: replies can be long, and an action is shown in one line.
pub(super) const MAX_REASON: usize = 300;

/// Most matching replies remembered per rule and path (a threshold of more is capped).
const MAX_COUNTED: usize = 1000;

/// Most (rule, path) pairs counted at once; past it every count starts again.
const MAX_COUNTERS: usize = 10_000;

/// When matching replies reach a threshold.
#[derive(Debug, Default)]
pub(super) struct Thresholds {
    seen: HashMap<String, VecDeque<u64>>,
}

impl Thresholds {
    /// Counts one matching reply of `rule` on path `id` at `now_ms`; whether the rule's
    /// trigger fires now (its counts are then reset).
    pub(super) fn fires(&mut self, id: &str, trigger: Trigger, now_ms: u64) -> bool {
        let Trigger::Threshold(Rate { count, per }) = trigger else {
            return true;
        };
        if self.seen.len() >= MAX_COUNTERS && !self.seen.contains_key(id) {
            self.seen.clear();
        }
        let seen = self.seen.entry(id.to_string()).or_default();
        let window = u64::try_from(per.as_millis()).unwrap_or(u64::MAX);
        while seen
            .front()
            .is_some_and(|&at| now_ms.saturating_sub(at) >= window)
        {
            seen.pop_front();
        }
        seen.push_back(now_ms);
        if seen.len() > MAX_COUNTED {
            seen.pop_front();
        }
        if seen.len() >= (count as usize).min(MAX_COUNTED) {
            self.seen.remove(id);
            return true;
        }
        false
    }
}

impl Serialize for Rate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The wire form of [`Limits`] inside an action.
#[derive(Serialize, Deserialize)]
struct LimitsWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_connections: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_messages_per_connection: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message_rate: Option<Rate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    connection_rate: Option<Rate>,
}

/// The wire form of [`ActionKind`].
#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum KindWire {
    Suspend,
    Limit(LimitsWire),
}

impl Serialize for ActionKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ActionKind::Suspend => KindWire::Suspend,
            ActionKind::Limit(l) => KindWire::Limit(LimitsWire {
                max_connections: l.max_connections,
                max_messages_per_connection: l.max_messages_per_connection,
                message_rate: l.message_rate,
                connection_rate: l.connection_rate,
            }),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ActionKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match KindWire::deserialize(deserializer)? {
            KindWire::Suspend => ActionKind::Suspend,
            KindWire::Limit(l) => ActionKind::Limit(Limits {
                max_connections: l.max_connections,
                max_messages_per_connection: l.max_messages_per_connection,
                message_rate: l.message_rate,
                connection_rate: l.connection_rate,
                tls: None,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_threshold_fires_at_its_count_within_the_period_only() {
        let mut thresholds = Thresholds::default();
        let trigger = Trigger::Threshold("3/min".parse().unwrap());
        assert!(!thresholds.fires("a", trigger, 0));
        assert!(!thresholds.fires("a", trigger, 1_000));
        // The first has left the window.
        assert!(!thresholds.fires("a", trigger, 60_000));
        assert!(thresholds.fires("a", trigger, 60_500));
        // Counting starts again after firing.
        assert!(!thresholds.fires("a", trigger, 60_501));
        assert!(thresholds.fires("b", Trigger::Immediate, 0));
    }

    #[test]
    fn actions_go_over_the_wire_and_back() {
        let action = Action {
            source: "ip2".into(),
            site: "google".into(),
            rule: "google-rate".into(),
            kind: ActionKind::Limit(Limits {
                message_rate: Some("1/s".parse().unwrap()),
                ..Limits::default()
            }),
            reason: "421 4.7.28 unusual rate".into(),
            since: 1,
            until: 2,
            duration_s: 1,
            node: "mx1".into(),
        };
        let json = serde_json::to_string(&action).unwrap();
        assert!(
            json.contains(r#""kind":{"type":"limit","message_rate":"1/s"}"#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Action>(&json).unwrap(), action);
        let suspend = Action {
            kind: ActionKind::Suspend,
            ..action
        };
        let json = serde_json::to_string(&suspend).unwrap();
        assert_eq!(serde_json::from_str::<Action>(&json).unwrap(), suspend);
    }
}
