//! Aggregates that travel through differential dataflow as the "diff" of an update.
//!
//! Carrying counters in the diff lets an arrangement consolidate them for free and lets a
//! window retract them exactly: the retraction is the same aggregate, negated.

use differential_dataflow::difference::{Abelian, IsZero, Monoid, Semigroup};
use serde::{Deserialize, Serialize};

/// Connection counters summed over a group of flow records.
///
/// Signed so that a window's retraction can carry the same counters, negated.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct FlowStats {
    /// Number of connections.
    pub count: i64,
    /// Bytes from originator to responder.
    pub bytes_out: i64,
    /// Bytes from responder back to originator.
    pub bytes_in: i64,
    /// Packets in both directions.
    pub packets: i64,
    /// Number of connections counted as failed (in the views: any status but established).
    pub failed: i64,
}

impl FlowStats {
    /// The counters of a single connection. Counters beyond `i64::MAX` saturate, which no
    /// real flow reaches (that would be 9 EB).
    pub fn one(bytes_out: u64, bytes_in: u64, packets: u64, failed: bool) -> Self {
        FlowStats {
            count: 1,
            bytes_out: saturate(bytes_out),
            bytes_in: saturate(bytes_in),
            packets: saturate(packets),
            failed: i64::from(failed),
        }
    }
}

fn saturate(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl IsZero for FlowStats {
    fn is_zero(&self) -> bool {
        *self == FlowStats::default()
    }
}

impl Semigroup for FlowStats {
    fn plus_equals(&mut self, rhs: &Self) {
        // Wrapping keeps insert-then-retract exact even in the (unreachable) overflow case.
        self.count = self.count.wrapping_add(rhs.count);
        self.bytes_out = self.bytes_out.wrapping_add(rhs.bytes_out);
        self.bytes_in = self.bytes_in.wrapping_add(rhs.bytes_in);
        self.packets = self.packets.wrapping_add(rhs.packets);
        self.failed = self.failed.wrapping_add(rhs.failed);
    }
}

impl Monoid for FlowStats {
    fn zero() -> Self {
        FlowStats::default()
    }
}

impl Abelian for FlowStats {
    fn negate(&mut self) {
        self.count = self.count.wrapping_neg();
        self.bytes_out = self.bytes_out.wrapping_neg();
        self.bytes_in = self.bytes_in.wrapping_neg();
        self.packets = self.packets.wrapping_neg();
        self.failed = self.failed.wrapping_neg();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retraction_cancels() {
        let mut a = FlowStats::one(10, 20, 3, true);
        a.plus_equals(&FlowStats::one(1, 2, 1, false));
        let mut neg = a;
        neg.negate();
        a.plus_equals(&neg);
        assert!(a.is_zero());
    }
}
