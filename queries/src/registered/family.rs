//! [`FamilySums`]: the sums of every query family that counts a group, carried as one
//! difference.
//!
//! Registered queries that keep the same projection of a record (group key, kept values,
//! summed columns) share one group per (key, values, pane); each *family* of queries (the
//! same projection, WHERE and registration time) is a slot in that group's difference. A
//! record that passes the WHERE of 90 families therefore makes one update that carries 90
//! slots, not 90 updates — the differential operators and arrangements downstream do
//! work per group, not per group and query.
//!
//! The slots are kept sorted and without zero entries, so that equal sums are equal values
//! and "no slot" is zero.

use differential_dataflow::difference::{Abelian, IsZero, Monoid, Semigroup};
use serde::{Deserialize, Serialize};

/// A family of queries within a plane: numbered in registration order, never reused.
pub type Slot = u32;

/// Per slot, a vector of `width` sums (for a group: `[COUNT(*)]` then, for each summed
/// column, its count of non-NULL values and its sum; for a kept value or a group's
/// presence: one count).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FamilySums {
    /// The slots present, ascending.
    slots: Vec<Slot>,
    /// `width` sums per slot, in the order of `slots`.
    sums: Vec<i128>,
}

impl FamilySums {
    /// The same `sums` for each of `slots` (ascending, distinct), as one record that passes
    /// those families' conditions contributes. Zero sums contribute nothing.
    pub fn uniform(slots: &[Slot], sums: &[i128]) -> FamilySums {
        if slots.is_empty() || sums.iter().all(|s| *s == 0) {
            return FamilySums::default();
        }
        debug_assert!(slots.windows(2).all(|w| w[0] < w[1]));
        let mut all = Vec::with_capacity(slots.len() * sums.len());
        for _ in slots {
            all.extend_from_slice(sums);
        }
        FamilySums {
            slots: slots.to_vec(),
            sums: all,
        }
    }

    /// Adds what [`FamilySums::uniform`] makes of `slots` and `sums`, without building
    /// it when the slots are those already held (a group's records mostly pass the same
    /// conditions).
    pub fn add_uniform(&mut self, slots: &[Slot], sums: &[i128]) {
        if self.slots.as_slice() == slots && self.width() == sums.len() {
            for chunk in self.sums.chunks_mut(sums.len()) {
                for (a, b) in chunk.iter_mut().zip(sums) {
                    *a += b;
                }
            }
            if self.sums.contains(&0) {
                self.drop_zeros(sums.len());
            }
        } else {
            self.plus_equals(&FamilySums::uniform(slots, sums));
        }
    }

    /// How many sums each slot has (0 when there is no slot).
    fn width(&self) -> usize {
        self.sums.len().checked_div(self.slots.len()).unwrap_or(0)
    }

    /// The sums of `slot`, if it has any.
    pub fn get(&self, slot: Slot) -> Option<&[i128]> {
        let at = self.slots.binary_search(&slot).ok()?;
        let width = self.width();
        Some(&self.sums[at * width..(at + 1) * width])
    }

    /// Each slot with its sums, ascending.
    pub fn iter(&self) -> impl Iterator<Item = (Slot, &[i128])> + '_ {
        let width = self.width().max(1);
        self.slots.iter().copied().zip(self.sums.chunks(width))
    }

    /// One sum per slot: `f` of its sums, slots whose `f` is zero left out.
    pub fn map(&self, mut f: impl FnMut(&[i128]) -> i128) -> FamilySums {
        let mut out = FamilySums::default();
        for (slot, sums) in self.iter() {
            let value = f(sums);
            if value != 0 {
                out.slots.push(slot);
                out.sums.push(value);
            }
        }
        out
    }

    /// The first sum of each slot (a group's or a value's record count), as a one-wide
    /// [`FamilySums`].
    pub fn counts(&self) -> FamilySums {
        self.map(|sums| sums.first().copied().unwrap_or(0))
    }

    /// 1 for each slot whose first sum is positive: the families that hold the group or
    /// the value.
    pub fn presence(&self) -> FamilySums {
        self.map(|sums| i128::from(sums.first().is_some_and(|n| *n > 0)))
    }
}

impl IsZero for FamilySums {
    fn is_zero(&self) -> bool {
        self.slots.is_empty()
    }
}

impl Semigroup for FamilySums {
    fn plus_equals(&mut self, rhs: &Self) {
        if rhs.slots.is_empty() {
            return;
        }
        if self.slots.is_empty() {
            self.clone_from(rhs);
            return;
        }
        let width = self.width();
        debug_assert_eq!(width, rhs.width(), "one plane's groups have one width");
        if self.slots == rhs.slots {
            // The common case: the same families again.
            for (a, b) in self.sums.iter_mut().zip(&rhs.sums) {
                *a += b;
            }
            if self.sums.contains(&0) {
                self.drop_zeros(width);
            }
            return;
        }
        let mut slots = Vec::with_capacity(self.slots.len() + rhs.slots.len());
        let mut sums = Vec::with_capacity(self.sums.len() + rhs.sums.len());
        let (mut i, mut j) = (0, 0);
        while i < self.slots.len() || j < rhs.slots.len() {
            let take_left =
                j == rhs.slots.len() || (i < self.slots.len() && self.slots[i] < rhs.slots[j]);
            let take_right =
                i == self.slots.len() || (j < rhs.slots.len() && rhs.slots[j] < self.slots[i]);
            if take_left {
                slots.push(self.slots[i]);
                sums.extend_from_slice(&self.sums[i * width..(i + 1) * width]);
                i += 1;
            } else if take_right {
                slots.push(rhs.slots[j]);
                sums.extend_from_slice(&rhs.sums[j * width..(j + 1) * width]);
                j += 1;
            } else {
                let left = &self.sums[i * width..(i + 1) * width];
                let right = &rhs.sums[j * width..(j + 1) * width];
                if left.iter().zip(right).any(|(a, b)| a + b != 0) {
                    slots.push(self.slots[i]);
                    sums.extend(left.iter().zip(right).map(|(a, b)| a + b));
                }
                i += 1;
                j += 1;
            }
        }
        self.slots = slots;
        self.sums = sums;
    }
}

impl FamilySums {
    /// Removes the slots whose sums are all zero.
    fn drop_zeros(&mut self, width: usize) {
        let mut kept = 0;
        for at in 0..self.slots.len() {
            let range = at * width..(at + 1) * width;
            if self.sums[range.clone()].iter().all(|s| *s == 0) {
                continue;
            }
            self.slots[kept] = self.slots[at];
            self.sums.copy_within(range, kept * width);
            kept += 1;
        }
        self.slots.truncate(kept);
        self.sums.truncate(kept * width);
    }
}

impl Monoid for FamilySums {
    fn zero() -> Self {
        FamilySums::default()
    }
}

impl Abelian for FamilySums {
    fn negate(&mut self) {
        for s in &mut self.sums {
            *s = -*s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// The sums as a map, the obvious way.
    fn as_map(f: &FamilySums) -> BTreeMap<Slot, Vec<i128>> {
        f.iter().map(|(s, v)| (s, v.to_vec())).collect()
    }

    fn add_maps(
        mut a: BTreeMap<Slot, Vec<i128>>,
        b: BTreeMap<Slot, Vec<i128>>,
    ) -> BTreeMap<Slot, Vec<i128>> {
        for (slot, sums) in b {
            let entry = a.entry(slot).or_insert_with(|| vec![0; sums.len()]);
            for (x, y) in entry.iter_mut().zip(&sums) {
                *x += y;
            }
        }
        a.retain(|_, v| v.iter().any(|x| *x != 0));
        a
    }

    fn family() -> impl Strategy<Value = FamilySums> {
        (
            proptest::collection::btree_set(0u32..6, 0..5),
            proptest::collection::vec(-2i128..3, 2),
        )
            .prop_map(|(slots, sums)| {
                let slots: Vec<Slot> = slots.into_iter().collect();
                FamilySums::uniform(&slots, &sums)
            })
    }

    proptest! {
        #[test]
        fn adding_is_adding_per_slot(parts in proptest::collection::vec(family(), 1..6)) {
            let mut total = FamilySums::zero();
            let mut expected = BTreeMap::new();
            for part in &parts {
                total.plus_equals(part);
                expected = add_maps(expected, as_map(part));
            }
            prop_assert_eq!(as_map(&total), expected.clone());
            // Canonical: no zero slot is kept, so zero is the empty value.
            prop_assert_eq!(total.is_zero(), expected.is_empty());
            let mut back = total.clone();
            let mut negated = total.clone();
            negated.negate();
            back.plus_equals(&negated);
            prop_assert!(back.is_zero());
        }
    }

    proptest! {
        #[test]
        fn adding_in_place_is_adding(
            first in family(),
            slots in proptest::collection::btree_set(0u32..6, 0..5),
            sums in proptest::collection::vec(-2i128..3, 2),
        ) {
            let slots: Vec<Slot> = slots.into_iter().collect();
            let mut in_place = first.clone();
            in_place.add_uniform(&slots, &sums);
            let mut added = first;
            added.plus_equals(&FamilySums::uniform(&slots, &sums));
            prop_assert_eq!(in_place, added);
        }
    }

    #[test]
    fn counts_and_presence_keep_the_slots_that_hold_records() {
        let mut sums = FamilySums::uniform(&[1, 4], &[3, 1, 70]);
        sums.plus_equals(&FamilySums::uniform(&[4], &[-3, -1, -70]));
        sums.plus_equals(&FamilySums::uniform(&[7], &[2, 0, 0]));
        assert_eq!(sums.get(4), None);
        assert_eq!(sums.get(1), Some(&[3, 1, 70][..]));
        assert_eq!(
            as_map(&sums.counts()),
            BTreeMap::from([(1, vec![3]), (7, vec![2])])
        );
        assert_eq!(
            as_map(&sums.presence()),
            BTreeMap::from([(1, vec![1]), (7, vec![1])])
        );
    }
}
