//! Panes: how coarsely each window keeps what it holds (docs/design.md §3).
//!
//! A window of length `W` with pane `p` holds, as of `T`, the records with
//! `from ≤ ts < T` where `from = floor_p(T − W)`: its `to` is the `as_of` (freshness stays
//! at the tick) and its `from` a pane boundary, so it spans between `W` and `W + p`. With
//! `p` equal to the tick, that is exactly `T − W ≤ ts < T`.
//!
//! Because no window's edge ever cuts a pane of its own, a window's contents can be kept
//! per (key, pane) instead of per (key, tick). The [`PaneSchedule`] says, for every tick of
//! records, at which times its group moves to a coarser bucket and when it leaves:
//!
//! * it enters at the tick (a bucket one tick long, with the records' exact first and
//!   last timestamps);
//! * when the shortest window's pane that holds it closes, it moves to that pane;
//! * when it leaves window `i`, it moves to window `i + 1`'s pane (re-bucketed as it ages);
//! * when it leaves the longest window, it is gone.
//!
//! A bucket at a level no coarser than window `w`'s pane lies wholly inside or wholly
//! outside `w` (panes nest: each divides the next), and a bucket at a coarser level only
//! holds records that have already left `w`, so a reader that sums the buckets starting at
//! or after `from` gets `w`'s contents exactly.

use serde::{Deserialize, Serialize};

use crate::time::{Millis, TimeModel};

/// One window of a schedule: its length and its pane, both in ms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    /// The window's length.
    pub window: Millis,
    /// The window's pane: its `from` is a multiple of it.
    pub pane: Millis,
}

/// Why a list of windows and panes cannot be scheduled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PaneError {
    /// No window at all.
    #[error("at least one window is needed")]
    NoWindows,
    /// A pane that is not a positive multiple of the tick.
    #[error("pane of {pane} ms is not a positive multiple of the tick ({tick} ms)")]
    NotTicks {
        /// The pane, in ms.
        pane: Millis,
        /// The tick, in ms.
        tick: Millis,
    },
    /// A pane longer than its window.
    #[error("pane of {pane} ms is longer than its window of {window} ms")]
    LongerThanWindow {
        /// The pane, in ms.
        pane: Millis,
        /// The window, in ms.
        window: Millis,
    },
    /// Panes that do not nest: a longer window's pane must be a multiple of every shorter
    /// window's, so that re-bucketing never splits a pane.
    #[error(
        "pane of {longer} ms (window of {window} ms) is not a multiple of the shorter \
         window's pane of {shorter} ms"
    )]
    NotNested {
        /// The shorter window's pane, in ms.
        shorter: Millis,
        /// The longer window's pane, in ms.
        longer: Millis,
        /// The longer window, in ms.
        window: Millis,
    },
    /// Windows too close together: a window must be at least as long as the next shorter
    /// window plus that window's pane, so that it holds everything the shorter one does.
    #[error(
        "window of {window} ms must be at least the shorter window ({shorter} ms) plus its \
         pane ({pane} ms)"
    )]
    TooClose {
        /// The shorter window, in ms.
        shorter: Millis,
        /// The shorter window's pane, in ms.
        pane: Millis,
        /// The longer window, in ms.
        window: Millis,
    },
}

/// The validated windows and panes of a deployment, shortest window first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaneSchedule {
    time: TimeModel,
    stages: Vec<Stage>,
}

/// Where a group of one tick is kept at a time: at the tick, or in a pane of this length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bucket {
    /// At the tick, with its records' exact first and last timestamps.
    Tick,
    /// In the pane of this length (ms) that contains the tick.
    Pane(Millis),
}

/// Where a group of one tick is kept from a time on: a bucket of `length` ms (one tick,
/// or a pane), or nowhere once it left the longest window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Move {
    /// To the bucket of this length that contains the tick.
    To(Millis),
    /// Out of every window.
    Gone,
}

impl PaneSchedule {
    /// Validates windows and panes against the time model; `stages` in any order.
    pub fn new(time: &TimeModel, mut stages: Vec<Stage>) -> Result<Self, PaneError> {
        if stages.is_empty() {
            return Err(PaneError::NoWindows);
        }
        stages.sort_by_key(|s| s.window);
        let tick = time.tick();
        for stage in &stages {
            if stage.pane == 0 || stage.pane % tick != 0 {
                return Err(PaneError::NotTicks {
                    pane: stage.pane,
                    tick,
                });
            }
            if stage.pane > stage.window {
                return Err(PaneError::LongerThanWindow {
                    pane: stage.pane,
                    window: stage.window,
                });
            }
        }
        for pair in stages.windows(2) {
            let (shorter, longer) = (pair[0], pair[1]);
            if longer.pane % shorter.pane != 0 {
                return Err(PaneError::NotNested {
                    shorter: shorter.pane,
                    longer: longer.pane,
                    window: longer.window,
                });
            }
            if longer.window < shorter.window.saturating_add(shorter.pane) {
                return Err(PaneError::TooClose {
                    shorter: shorter.window,
                    pane: shorter.pane,
                    window: longer.window,
                });
            }
        }
        Ok(PaneSchedule {
            time: *time,
            stages,
        })
    }

    /// The windows and their panes, shortest first.
    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// The tick, in ms.
    pub fn tick(&self) -> Millis {
        self.time.tick()
    }

    /// The time model the schedule was validated against.
    pub fn time(&self) -> TimeModel {
        self.time
    }

    /// The first timestamp window `stage` holds as of `as_of`: `floor_pane(as_of − W)`.
    pub fn window_start(&self, stage: usize, as_of: Millis) -> Millis {
        let Stage { window, pane } = self.stages[stage];
        floor(as_of.saturating_sub(window), pane)
    }

    /// The first `as_of` at which window `stage` no longer holds the tick whose own time
    /// (its end) is `own`: `ceil_pane(own) + W`.
    pub fn leaves(&self, stage: usize, own: Millis) -> Millis {
        let Stage { window, pane } = self.stages[stage];
        ceil(own, pane).saturating_add(window)
    }

    /// The longest any record is kept after its own time: a record with own time `own`
    /// leaves the longest window by `own + retention` (`ceil_pane(own) ≤ own + pane −
    /// tick`), exactly then when its own time is a pane boundary. The longest window's
    /// length for a window kept at the tick.
    pub fn retention(&self) -> Millis {
        let last = self.stages[self.stages.len() - 1];
        last.window.saturating_add(last.pane - self.tick())
    }

    /// Every move of the group of the tick starting at `tick_start`, in time order: when
    /// its pane closes, when it leaves each window but the longest (coarser each time),
    /// and when it leaves the longest. Moves to a bucket no longer than the current one
    /// are left out.
    pub fn moves(&self, tick_start: Millis) -> Vec<(Millis, Move)> {
        let own = tick_start.saturating_add(self.tick());
        let mut moves = Vec::with_capacity(self.stages.len() + 1);
        let mut length = self.tick();
        let first = self.stages[0].pane;
        if first > length {
            moves.push((ceil(own, first), Move::To(first)));
            length = first;
        }
        for (i, pair) in self.stages.windows(2).enumerate() {
            let next = pair[1].pane;
            if next > length {
                moves.push((self.leaves(i, own), Move::To(next)));
                length = next;
            }
        }
        moves.push((self.leaves(self.stages.len() - 1, own), Move::Gone));
        moves
    }
}

impl PaneSchedule {
    /// The first time after `after` at which any window's contents may change other than
    /// by records entering: a pane of the shortest window closes (its groups move into
    /// it), or some window's start, `floor_pane(T − W)`, moves on (its oldest pane leaves
    /// it, and moves to the next window's pane or out of every window).
    pub fn next_change_after(&self, after: Millis) -> Millis {
        let next_in = |offset: Millis, period: Millis| {
            // The least `offset + k·period` (k ≥ 0) after `after`.
            if after < offset {
                offset
            } else {
                let k = (after - offset) / period + 1;
                offset.saturating_add(k.saturating_mul(period))
            }
        };
        let closes = next_in(0, self.stages[0].pane);
        self.stages
            .iter()
            .map(|s| next_in(s.window, s.pane))
            .fold(closes, Millis::min)
    }

    /// The windows (by index) whose start passes groups without moving them: those whose
    /// next longer window has the same pane, so that leaving them takes a group to no
    /// coarser bucket ([`PaneSchedule::moves`] leaves such moves out). Every other
    /// window's start only passes a group at one of the group's moves.
    fn silent_exits(&self) -> impl Iterator<Item = Stage> + '_ {
        self.stages
            .windows(2)
            .filter(|pair| pair[1].pane == pair[0].pane)
            .map(|pair| pair[0])
    }

    /// Whether a silent window's start (see [`PaneSchedule::silent_exits`]) moves on at
    /// `at`: a reader that follows the groups' moves must then find the groups it passed
    /// some other way.
    pub fn silent_exit_at(&self, at: Millis) -> bool {
        self.silent_exits()
            .any(|s| at >= s.window && (at - s.window) % s.pane == 0)
    }

    /// The first time after `after` at which a silent window's start moves on, if any
    /// window is silent.
    pub fn next_silent_exit_after(&self, after: Millis) -> Option<Millis> {
        self.silent_exits()
            .map(|s| {
                if after < s.window {
                    s.window
                } else {
                    let k = (after - s.window) / s.pane + 1;
                    s.window.saturating_add(k.saturating_mul(s.pane))
                }
            })
            .min()
    }

    /// Where the tick holding `ts` is kept at `at`: at the tick until its first move, then
    /// where its latest move up to `at` took it; `None` once it left the longest window.
    pub fn bucket_at(&self, ts: Millis, at: Millis) -> Option<Bucket> {
        let mut bucket = Bucket::Tick;
        for (time, to) in self.moves(floor(ts, self.tick())) {
            if time > at {
                break;
            }
            match to {
                Move::To(length) => bucket = Bucket::Pane(length),
                Move::Gone => return None,
            }
        }
        Some(bucket)
    }
}

/// The start of the bucket of `length` that holds `ts`.
pub fn floor(ts: Millis, length: Millis) -> Millis {
    ts - ts % length
}

/// The smallest multiple of `length` at or after `ts`.
pub fn ceil(ts: Millis, length: Millis) -> Millis {
    floor(ts.saturating_add(length - 1), length)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_come_at_pane_closes_and_window_starts() {
        let time = TimeModel::new(1_000).unwrap();
        let s = PaneSchedule::new(
            &time,
            vec![
                Stage {
                    window: 10_000,
                    pane: 4_000,
                },
                Stage {
                    window: 30_000,
                    pane: 8_000,
                },
            ],
        )
        .unwrap();
        // Closes at 4 s multiples; starts move at 10 s + 4 s·k and 30 s + 8 s·k.
        let mut changes = vec![];
        let mut t = 0;
        while t < 40_000 {
            t = s.next_change_after(t);
            changes.push(t);
        }
        assert_eq!(
            changes,
            [4, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40]
                .map(|s| s * 1_000)
        );
        // Every time a move or a window's start change happens is among them.
        for tick_start in (0..20_000).step_by(1_000) {
            for (at, _) in s.moves(tick_start) {
                assert!(changes.contains(&at) || at > 40_000, "move at {at}");
            }
        }
        for stage in 0..2 {
            for as_of in 1..40_000u64 {
                if s.window_start(stage, as_of) != s.window_start(stage, as_of - 1) {
                    assert!(changes.contains(&as_of), "stage {stage} start at {as_of}");
                }
            }
        }
    }

    /// A reader that follows the groups' moves (the graph's rankings) sees every window's
    /// start pass a group at one of the group's moves, or at a silent exit the schedule
    /// names; and the silent exits are exactly where windows share a pane.
    #[test]
    fn a_window_start_passes_a_group_at_its_move_or_at_a_silent_exit() {
        let shapes: [&[(Millis, Millis)]; 4] = [
            &[(10_000, 2_000), (30_000, 6_000), (60_000, 12_000)],
            &[(10_000, 1_000), (30_000, 1_000), (60_000, 1_000)],
            &[(10_000, 3_000), (30_000, 3_000), (60_000, 6_000)],
            &[(10_000, 1_000), (30_000, 5_000)],
        ];
        for (shape, stages) in shapes.iter().enumerate() {
            let s = schedule(stages).unwrap();
            let silent: Vec<Millis> = (1..80_000).filter(|&t| s.silent_exit_at(t)).collect();
            assert_eq!(silent.is_empty(), shape == 0 || shape == 3, "shape {shape}");
            // The next silent exit after each time is the first one the scan above found.
            for after in (0..70_000).step_by(500) {
                let next = silent.iter().copied().find(|&t| t > after);
                assert_eq!(s.next_silent_exit_after(after), next, "shape {shape}");
            }
            for tick_start in (0..20_000).step_by(1_000) {
                let moves: Vec<Millis> = s.moves(tick_start).iter().map(|m| m.0).collect();
                for stage in 0..stages.len() {
                    // The first `as_of` whose window start is past the tick's records.
                    let leaves = (tick_start + 1..200_000)
                        .find(|&t| s.window_start(stage, t) > tick_start)
                        .unwrap();
                    assert!(
                        moves.contains(&leaves) || s.silent_exit_at(leaves),
                        "shape {shape} stage {stage} tick {tick_start} leaves at {leaves}"
                    );
                }
            }
        }
    }

    fn schedule(stages: &[(Millis, Millis)]) -> Result<PaneSchedule, PaneError> {
        let time = TimeModel::new(1_000).unwrap();
        PaneSchedule::new(
            &time,
            stages
                .iter()
                .map(|&(window, pane)| Stage { window, pane })
                .collect(),
        )
    }

    #[test]
    fn refuses_panes_that_cannot_work() {
        assert_eq!(schedule(&[]), Err(PaneError::NoWindows));
        assert!(matches!(
            schedule(&[(60_000, 1_500)]),
            Err(PaneError::NotTicks { .. })
        ));
        assert!(matches!(
            schedule(&[(60_000, 120_000)]),
            Err(PaneError::LongerThanWindow { .. })
        ));
        assert!(matches!(
            schedule(&[(60_000, 10_000), (600_000, 15_000)]),
            Err(PaneError::NotNested { .. })
        ));
        assert!(matches!(
            schedule(&[(60_000, 10_000), (65_000, 10_000)]),
            Err(PaneError::TooClose { .. })
        ));
        assert!(schedule(&[(600_000, 60_000), (60_000, 10_000)]).is_ok());
    }

    #[test]
    fn a_tick_pane_is_the_plain_window() {
        let s = schedule(&[(10_000, 1_000), (20_000, 1_000)]).unwrap();
        assert_eq!(s.window_start(0, 25_000), 15_000);
        assert_eq!(s.leaves(1, 3_000), 23_000);
        // Never coarser than the tick: the only move is out of the longest window.
        assert_eq!(s.moves(2_000), vec![(23_000, Move::Gone)]);
        assert_eq!(s.retention(), 20_000);
    }

    #[test]
    fn moves_coarsen_as_the_tick_ages() {
        // 30 s at 5 s panes, 2 min at 20 s panes.
        let s = schedule(&[(30_000, 5_000), (120_000, 20_000)]).unwrap();
        // The tick [12 s, 13 s): its 5-s pane closes at 15 s; it leaves the 30-s window
        // when floor_5s(T − 30 s) > 12 s, at T = 45 s; the 2-min window when
        // floor_20s(T − 120 s) > 12 s, at T = 140 s.
        assert_eq!(
            s.moves(12_000),
            vec![
                (15_000, Move::To(5_000)),
                (45_000, Move::To(20_000)),
                (140_000, Move::Gone),
            ]
        );
        assert_eq!(s.window_start(0, 44_999), 10_000);
        assert_eq!(s.window_start(0, 45_000), 15_000);
        assert_eq!(s.window_start(1, 140_000), 20_000);
    }
}
