//! Named windows: `30m`, `2h`, `24h` by default, configurable as a list of durations.

use flowsight_operators::{Millis, TimeModel};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// One window: its name as users write it (`30m`) and its length.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSpec {
    /// The name as users write it, trimmed (`30m`): the `window` parameter of reads, and the
    /// suffix of the table of registered queries (`flows_30m`).
    pub name: String,
    /// The window's length in ms: as of T it holds the records with T − length ≤ ts < T.
    /// Positive, and in a [`Windows`] a whole number of ticks.
    pub length: Millis,
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

impl FromStr for WindowSpec {
    type Err = WindowsError;

    /// Parses `<n><unit>` with unit `ms`, `s`, `m`, `h` or `d`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let length = parse_duration_ms(s)?;
        if length == 0 {
            return Err(WindowsError(format!(
                "window {:?} must be positive",
                s.trim()
            )));
        }
        Ok(WindowSpec {
            name: s.trim().to_string(),
            length,
        })
    }
}

/// The windows of a deployment, shortest first, with distinct names and lengths.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Windows(Vec<WindowSpec>);

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
        Ok(Windows(specs))
    }

    /// Parses a comma-separated list such as `30m,2h,24h`.
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
        self.0.iter().find(|w| w.name == name)
    }

    /// The longest window: how long any record must be kept.
    pub fn longest(&self) -> &WindowSpec {
        // `new` guarantees at least one window.
        &self.0[self.0.len() - 1]
    }

    /// The shortest window, the default for reads that name none.
    pub fn shortest(&self) -> &WindowSpec {
        &self.0[0]
    }

    /// Every window, shortest first.
    pub fn iter(&self) -> impl Iterator<Item = &WindowSpec> {
        self.0.iter()
    }

    /// The windows' names, shortest first: `30m`, `2h`, `24h` by default.
    pub fn names(&self) -> Vec<&str> {
        self.0.iter().map(|w| w.name.as_str()).collect()
    }
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
}
