//! `hermod spool check`: reads every record of a stopped hermod's spool and names what is
//! damaged — an envelope that does not parse or is not under a queue id, a message whose
//! data or body file is missing, data no envelope refers to, a delivery event that does
//! not parse — and with `repair` takes the damaged records out (a message that cannot be
//! read back is one hermod already skips with an error at every start).

use super::SledSpool;
use crate::core::id::QueueId;
use crate::store::envelope::Envelope;
use crate::store::spool::SpoolError;

/// What a check found.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SpoolCheck {
    /// Messages whose envelope and data read back whole.
    pub messages: usize,
    /// Records that did not, each with why.
    pub damaged: Vec<Damage>,
    /// Delivery events kept (in the events tree).
    pub events: usize,
    /// Whether the damaged records were taken out.
    pub repaired: bool,
}

/// One damaged record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Damage {
    /// The record: a queue id, or the raw key in hex.
    pub record: String,
    /// What is wrong with it.
    pub problem: String,
}

impl SledSpool {
    /// Reads every record; with `repair`, removes the damaged ones and flushes.
    pub fn check(&self, repair: bool) -> Result<SpoolCheck, SpoolError> {
        let mut report = SpoolCheck {
            repaired: repair,
            ..SpoolCheck::default()
        };
        let mut doomed_envelopes = Vec::new();
        for entry in self.envelopes.iter() {
            let (key, value) = entry?;
            let Some(id) = QueueId::from_key(&key) else {
                report.damaged.push(damage(
                    &key,
                    "an envelope under a key that is not a queue id",
                ));
                doomed_envelopes.push(key.to_vec());
                continue;
            };
            let problem = match serde_json::from_slice::<Envelope>(&value) {
                Err(e) => Some(format!("the envelope does not parse: {e}")),
                Ok(envelope) => self.missing_data(id, &envelope)?,
            };
            match problem {
                Some(problem) => {
                    report.damaged.push(Damage {
                        record: id.to_string(),
                        problem,
                    });
                    doomed_envelopes.push(key.to_vec());
                }
                None => report.messages += 1,
            }
        }
        let mut orphans = Vec::new();
        for key in self.data.iter().keys() {
            let key = key?;
            if !self.envelopes.contains_key(&key)? {
                report
                    .damaged
                    .push(damage(&key, "message data no envelope refers to"));
                orphans.push(key.to_vec());
            }
        }
        let events = self.db.open_tree("events")?;
        let mut bad_events = Vec::new();
        for entry in events.iter() {
            let (key, value) = entry?;
            report.events += 1;
            if serde_json::from_slice::<serde_json::Value>(&value).is_err() {
                report
                    .damaged
                    .push(damage(&key, "a delivery event that does not parse"));
                bad_events.push(key.to_vec());
            }
        }
        if repair {
            for key in doomed_envelopes {
                match QueueId::from_key(&key) {
                    Some(id) => self.raw_remove(id)?,
                    None => {
                        self.envelopes.remove(key)?;
                    }
                }
            }
            for key in orphans {
                self.data.remove(key)?;
            }
            for key in bad_events {
                events.remove(key)?;
            }
            self.raw_flush()?;
            let doomed =
                std::mem::take(&mut *self.doomed_bodies.lock().unwrap_or_else(|e| e.into_inner()));
            self.delete_doomed_bodies(doomed);
        }
        Ok(report)
    }

    /// Why message `id`'s data cannot be read back, if it cannot.
    fn missing_data(&self, id: QueueId, envelope: &Envelope) -> Result<Option<String>, SpoolError> {
        if !self.data.contains_key(id.to_key())? {
            return Ok(Some("its message data is missing".into()));
        }
        if envelope.body_file && !self.bodies.path_of(id).exists() {
            return Ok(Some(format!(
                "its body file {} is missing",
                self.bodies.path_of(id).display()
            )));
        }
        Ok(None)
    }
}

fn damage(key: &[u8], problem: &str) -> Damage {
    Damage {
        record: key.iter().map(|b| format!("{b:02x}")).collect(),
        problem: problem.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::envelope::sample;
    use crate::store::spool::Spool;

    #[test]
    fn damaged_records_are_named_and_repair_takes_them_out() {
        let dir = tempfile::tempdir().unwrap();
        let spool = SledSpool::open(dir.path()).unwrap();
        spool.insert(QueueId(1), &sample(5), b"hello").unwrap();
        spool.insert(QueueId(2), &sample(5), b"world").unwrap();
        spool
            .envelopes
            .insert(QueueId(3).to_key(), &b"{not json"[..])
            .unwrap();
        spool.data.insert(QueueId(3).to_key(), &b"x"[..]).unwrap();
        spool.data.remove(QueueId(2).to_key()).unwrap();
        spool
            .data
            .insert(QueueId(9).to_key(), &b"orphan"[..])
            .unwrap();
        let report = spool.check(false).unwrap();
        assert_eq!(report.messages, 1);
        let problems: Vec<&str> = report.damaged.iter().map(|d| d.problem.as_str()).collect();
        assert_eq!(problems.len(), 3, "{report:?}");
        assert!(
            problems[0].contains("message data is missing"),
            "{problems:?}"
        );
        assert!(problems[1].contains("does not parse"), "{problems:?}");
        assert!(
            problems[2].contains("no envelope refers to"),
            "{problems:?}"
        );
        assert_eq!(
            spool.check(false).unwrap().damaged.len(),
            3,
            "a check alone changes nothing"
        );
        let repaired = spool.check(true).unwrap();
        assert!(repaired.repaired);
        let after = spool.check(false).unwrap();
        assert_eq!((after.messages, after.damaged.len()), (1, 0));
        assert!(spool.data(QueueId(1), false).unwrap().is_some());
    }
}
