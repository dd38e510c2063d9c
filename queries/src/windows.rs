//! Named windows and their panes: `30m:10s`, `2h:1m`, `24h:5m` by default, configurable as a
//! list of `<length>[:<pane>]` (docs/design.md §3).

use flowsight_operators::{Millis, PaneSchedule, Stage, TimeModel};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// The windows of the mission (30 minutes, 2 hours, a day) and the panes that keep a day
/// of traffic in bounded memory: about 24 to 30 panes per window (docs/design.md §3 says
/// why these).
pub const DEFAULT_WINDOWS: &str = "30m:1m,2h:5m,24h:1h";

/// One window: its name as users write it (`30m`), its length and its pane.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSpec {
    /// The name as users write it, trimmed, without its pane (`30m`): the `window`
    /// parameter of reads, and the suffix of the table of registered queries (`flows_30m`).
    pub name: String,
    /// The window's length in ms: as of T it holds the records with
    /// `floor_pane(T − length) ≤ ts < T`. Positive, and in a [`Windows`] a whole number of
    /// ticks.
    pub length: Millis,
    /// The window's pane in ms, as written after a colon (`30m:10s`); `None` keeps the
    /// window at the tick, so that it holds exactly `T − length ≤ ts < T`.
    #[serde(default)]
    pub pane: Option<Millis>,
}

/// An error in a duration or a window list.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WindowsError(pub String);

/// Parses a duration written `<n><unit>` with unit `ms`, `s`, `m`, `h` or `d` into
/// milliseconds; zero is allowed (windows refuse it themselves).
pub fn parse_duration_ms(s: &str) -> Result<Millis, WindowsError> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().map_err(|_| {
        WindowsError(format!(
            "duration {s:?} must look like 500ms, 5s, 30m or 2h"
        ))
    })?;
    let scale = match unit {
        // A bare zero needs no unit.
        "" if n == 0 => 1,
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(WindowsError(format!(
                "duration {s:?} has unit {unit:?}; use ms, s, m, h or d"
            )))
        }
    };
    n.checked_mul(scale)
        .ok_or_else(|| WindowsError(format!("duration {s:?} is absurdly long")))
}

impl WindowSpec {
    /// The first timestamp the window holds as of `as_of`: `floor_pane(as_of − length)`
    /// (`as_of − length` for a window kept at the tick).
    pub fn start(&self, as_of: Millis) -> Millis {
        window_start(self.length, self.pane.unwrap_or(1), as_of)
    }
}

impl FromStr for WindowSpec {
    type Err = WindowsError;

    /// Parses `<length>` or `<length>:<pane>`, each `<n><unit>` with unit `ms`, `s`, `m`,
    /// `h` or `d`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, pane) = match s.split_once(':') {
            Some((name, pane)) => (name.trim(), Some(parse_duration_ms(pane)?)),
            None => (s.trim(), None),
        };
        let length = parse_duration_ms(name)?;
        if length == 0 {
            return Err(WindowsError(format!("window {name:?} must be positive")));
        }
        if pane == Some(0) {
            return Err(WindowsError(format!("window {name:?} has a pane of 0")));
        }
        Ok(WindowSpec {
            name: name.to_string(),
            length,
            pane,
        })
    }
}

/// The windows of a deployment, shortest first, with distinct names and lengths, and the
/// schedule their panes give.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Windows {
    specs: Vec<WindowSpec>,
    schedule: PaneSchedule,
}

impl Windows {
    /// Validates a list of windows against the time model.
    pub fn new(mut specs: Vec<WindowSpec>, time: &TimeModel) -> Result<Self, WindowsError> {
        if specs.is_empty() {
            return Err(WindowsError("at least one window is needed".into()));
        }
        specs.sort_by_key(|w| w.length);
        for pair in specs.windows(2) {
            if pair[0].length == pair[1].length {
                return Err(WindowsError(format!(
                    "windows {} and {} have the same length",
                    pair[0].name, pair[1].name
                )));
            }
        }
        for w in &specs {
            time.check_window(w.length)
                .map_err(|e| WindowsError(format!("window {}: {e}", w.name)))?;
        }
        for w in &mut specs {
            w.pane = Some(w.pane.unwrap_or(time.tick()));
        }
        let stages = specs
            .iter()
            .map(|w| Stage {
                window: w.length,
                pane: w.pane.unwrap_or(time.tick()),
            })
            .collect();
        let schedule =
            PaneSchedule::new(time, stages).map_err(|e| WindowsError(format!("panes: {e}")))?;
        Ok(Windows { specs, schedule })
    }

    /// Parses a comma-separated list such as `30m:1m,2h:5m,24h:1h`.
    pub fn parse(list: &str, time: &TimeModel) -> Result<Self, WindowsError> {
        let specs = list
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(str::parse)
            .collect::<Result<Vec<WindowSpec>, _>>()?;
        Windows::new(specs, time)
    }

    /// The window with this name (`30m`), if one is configured.
    pub fn get(&self, name: &str) -> Option<&WindowSpec> {
        self.specs.iter().find(|w| w.name == name)
    }

    /// The longest window: how long any record must be kept.
    pub fn longest(&self) -> &WindowSpec {
        // `new` guarantees at least one window.
        &self.specs[self.specs.len() - 1]
    }

    /// The shortest window, the default for reads that name none.
    pub fn shortest(&self) -> &WindowSpec {
        &self.specs[0]
    }

    /// Every window, shortest first.
    pub fn iter(&self) -> impl Iterator<Item = &WindowSpec> {
        self.specs.iter()
    }

    /// The windows' names, shortest first: `30m`, `2h`, `24h` by default.
    pub fn names(&self) -> Vec<&str> {
        self.specs.iter().map(|w| w.name.as_str()).collect()
    }

    /// The schedule of every window's pane: how the views keep what they hold.
    pub fn schedule(&self) -> &PaneSchedule {
        &self.schedule
    }

    /// The pane of the window of `length` ms, in ms (the tick when none was given).
    pub fn pane(&self, length: Millis) -> Millis {
        self.schedule
            .stages()
            .iter()
            .find(|s| s.window == length)
            .map_or(self.schedule.tick(), |s| s.pane)
    }

    /// The first timestamp the window of `length` ms holds as of `as_of`:
    /// `floor_pane(as_of − length)`, a pane boundary.
    pub fn start(&self, length: Millis, as_of: Millis) -> Millis {
        window_start(length, self.pane(length), as_of)
    }

    /// How long after its own time a record may still be in a window: the longest window
    /// plus its pane less one tick.
    pub fn retention(&self) -> Millis {
        self.schedule.retention()
    }

    /// The schedule of the window of `length` ms alone, at its pane: what a registered
    /// query over that window keeps.
    pub fn schedule_of(&self, length: Millis) -> PaneSchedule {
        let stage = Stage {
            window: length,
            pane: self.pane(length),
        };
        PaneSchedule::new(&self.schedule.time(), vec![stage])
            .unwrap_or_else(|_| self.schedule.clone())
    }
}

/// The first timestamp a window of `length` ms with panes of `pane` ms holds as of `as_of`.
pub fn window_start(length: Millis, pane: Millis, as_of: Millis) -> Millis {
    flowsight_operators::panes::floor(as_of.saturating_sub(length), pane.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_default_list() {
        let t = TimeModel::new(1000).unwrap();
        let w = Windows::parse("24h,30m,2h", &t).unwrap();
        assert_eq!(w.names(), vec!["30m", "2h", "24h"]);
        assert_eq!(w.longest().length, 86_400_000);
        assert!(Windows::parse("30x", &t).is_err());
        assert!(Windows::parse("", &t).is_err());
        assert!(Windows::parse("1500ms", &t).is_err());
        assert!(Windows::parse("60m,1h", &t).is_err());
        assert!(Windows::parse("0m", &t).is_err());
    }

    #[test]
    fn parses_panes() {
        let t = TimeModel::new(1000).unwrap();
        let w = Windows::parse(DEFAULT_WINDOWS, &t).unwrap();
        assert_eq!(w.names(), vec!["30m", "2h", "24h"]);
        assert_eq!(w.pane(1_800_000), 60_000);
        assert_eq!(w.pane(86_400_000), 3_600_000);
        // 24h at 1h panes: as of 01:07:30 on day 2, the window starts at 01:00 on day 1.
        let as_of = 86_400_000 + 4_050_000;
        assert_eq!(w.start(86_400_000, as_of), 3_600_000);
        assert_eq!(w.retention(), 86_400_000 + 3_600_000 - 1_000);
        let w = Windows::parse("30m:10s,2h:1m,24h:5m", &t).unwrap();
        assert_eq!(w.pane(1_800_000), 10_000);
        // Without a pane a window is kept at the tick.
        let plain = Windows::parse("10s,20s", &t).unwrap();
        assert_eq!(plain.start(10_000, 25_000), 15_000);
        assert!(
            Windows::parse("30m:7s,2h:1m", &t).is_err(),
            "1m is not a multiple of 7s"
        );
        assert!(Windows::parse("30m:1500ms", &t).is_err(), "not whole ticks");
        assert!(
            Windows::parse("30m:1h", &t).is_err(),
            "pane longer than its window"
        );
        assert!(Windows::parse("30m:0s", &t).is_err());
    }
}
