//! [`DeadLetterLog`]: the bounded, process-wide record of dead letters behind
//! `/v1/dead-letters` and the dead-letter counters of `/v1/status`.

use crate::dead_letter::DeadLetter;
use std::collections::{BTreeMap, VecDeque};

/// How many recent dead letters a [`DeadLetterLog::default`] keeps.
pub const DEFAULT_DEAD_LETTER_CAPACITY: usize = 1000;

/// Counts of dead letters by reason, never forgotten, and the most recent `capacity`
/// letters themselves.
#[derive(Clone, Debug)]
pub struct DeadLetterLog {
    capacity: usize,
    counts: BTreeMap<String, u64>,
    total: u64,
    recent: VecDeque<DeadLetter>,
}

impl DeadLetterLog {
    /// A log that keeps the `capacity` most recent letters (0 keeps only the counts).
    pub fn new(capacity: usize) -> Self {
        DeadLetterLog {
            capacity,
            counts: BTreeMap::new(),
            total: 0,
            // Do not reserve `capacity` up front: it may be large and mostly unused.
            recent: VecDeque::new(),
        }
    }

    /// Counts `letter` under its reason and keeps it as the newest, forgetting the oldest
    /// beyond the capacity; its exact bytes ([`DeadLetter::raw`]) are dropped.
    pub fn record(&mut self, mut letter: DeadLetter) {
        // The exact bytes are for sinks; the log keeps the (bounded) excerpt only.
        letter.raw = None;
        match self.counts.get_mut(&letter.reason) {
            Some(count) => *count = count.saturating_add(1),
            None => {
                self.counts.insert(letter.reason.clone(), 1);
            }
        }
        self.total = self.total.saturating_add(1);
        if self.capacity == 0 {
            return;
        }
        if self.recent.len() >= self.capacity {
            self.recent.pop_front();
        }
        self.recent.push_back(letter);
    }

    /// Adds counts carried over from before a restart (a checkpoint), without letters.
    pub fn add_counts(&mut self, counts: &BTreeMap<String, u64>) {
        for (reason, count) in counts {
            let entry = self.counts.entry(reason.clone()).or_insert(0);
            *entry = entry.saturating_add(*count);
            self.total = self.total.saturating_add(*count);
        }
    }

    /// Dead letters counted so far, by reason.
    pub fn counts(&self) -> &BTreeMap<String, u64> {
        &self.counts
    }

    /// All dead letters counted so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Up to `limit` of the kept letters, newest first.
    pub fn recent(&self, limit: usize) -> Vec<DeadLetter> {
        self.recent.iter().rev().take(limit).cloned().collect()
    }

    /// How many recent letters the log keeps (0: only the counts).
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

impl Default for DeadLetterLog {
    fn default() -> Self {
        DeadLetterLog::new(DEFAULT_DEAD_LETTER_CAPACITY)
    }
}

impl Extend<DeadLetter> for DeadLetterLog {
    fn extend<I: IntoIterator<Item = DeadLetter>>(&mut self, letters: I) {
        for letter in letters {
            self.record(letter);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dead_letter::Position;

    fn letter(reason: &str, offset: u64) -> DeadLetter {
        DeadLetter {
            reason: reason.into(),
            error: format!("error at {offset}"),
            position: Position {
                source: "test".into(),
                partition: 0,
                offset,
            },
            bytes: String::new(),
            raw: None,
        }
    }

    #[test]
    fn counts_everything_but_keeps_only_the_newest() {
        let mut log = DeadLetterLog::new(2);
        log.record(letter("invalid_json", 1));
        log.record(letter("missing_field", 2));
        log.record(letter("invalid_json", 3));
        assert_eq!(log.total(), 3);
        let counts: Vec<_> = log.counts().iter().map(|(r, c)| (r.as_str(), *c)).collect();
        assert_eq!(counts, [("invalid_json", 2), ("missing_field", 1)]);
        let offsets: Vec<_> = log.recent(10).iter().map(|l| l.position.offset).collect();
        assert_eq!(offsets, [3, 2]);
        assert_eq!(log.recent(1).len(), 1);
        assert_eq!(log.recent(0).len(), 0);
    }

    #[test]
    fn zero_capacity_still_counts() {
        let mut log = DeadLetterLog::new(0);
        log.extend([letter("too_large", 1), letter("too_large", 2)]);
        assert_eq!(log.total(), 2);
        assert_eq!(log.counts().get("too_large"), Some(&2));
        assert!(log.recent(10).is_empty());
    }

    #[test]
    fn default_keeps_a_thousand() {
        let mut log = DeadLetterLog::default();
        log.extend((0..1500).map(|i| letter("invalid_field", i)));
        assert_eq!(log.recent(usize::MAX).len(), DEFAULT_DEAD_LETTER_CAPACITY);
        assert_eq!(log.recent(1)[0].position.offset, 1499);
    }
}
