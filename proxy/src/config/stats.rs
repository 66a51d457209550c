//! `stats`: how long the usage history keeps its minute, hour and day buckets, and how often the
//! history and stats.json are written to the data dir.

use std::time::Duration;

use super::issues::{Checker, DAY_MS, HOUR_MS};
use super::raw::RawStats;

/// How long each resolution of the usage history is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Per-minute buckets: whole hours, from 1h to 7d.
    pub minutes: Duration,
    /// Per-hour buckets: whole days, at least `minutes`.
    pub hours: Duration,
    /// Per-day buckets: whole days, at least `hours`; `None` keeps them for ever.
    pub days: Option<Duration>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            minutes: Duration::from_secs(48 * 3600),
            hours: Duration::from_secs(90 * 86_400),
            days: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub retention: Retention,
    /// How often stats.json and the usage history are written (when they changed).
    pub flush_interval: Duration,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            retention: Retention::default(),
            flush_interval: Duration::from_secs(30),
        }
    }
}

const MINUTES_MAX: Duration = Duration::from_secs(7 * 86_400);
const HOURS_MAX: Duration = Duration::from_secs(3660 * 86_400);
const DAYS_MAX: Duration = Duration::from_secs(36_600 * 86_400);
const FLUSH_MAX: Duration = Duration::from_secs(3600);

pub(super) fn parse(check: &mut Checker, raw: &RawStats) -> Stats {
    let defaults = Stats::default();
    let minutes = duration(
        check,
        "stats.retention.minutes",
        &raw.retention.minutes,
        Unit::Hour,
        MINUTES_MAX,
    );
    let hours = duration(
        check,
        "stats.retention.hours",
        &raw.retention.hours,
        Unit::Day,
        HOURS_MAX,
    );
    let days = raw
        .retention
        .days
        .as_deref()
        .map(|text| duration(check, "stats.retention.days", text, Unit::Day, DAYS_MAX));
    if let (Some(minutes), Some(hours)) = (minutes, hours)
        && hours < minutes
    {
        check.fail(
            "stats.retention.hours",
            format!(
                "must be at least stats.retention.minutes ({})",
                raw.retention.minutes.trim()
            ),
        );
    }
    if let (Some(hours), Some(Some(days))) = (hours, days)
        && days < hours
    {
        check.fail(
            "stats.retention.days",
            format!(
                "must be at least stats.retention.hours ({}), or null to keep day buckets for ever",
                raw.retention.hours.trim()
            ),
        );
    }
    let flush_interval = duration(
        check,
        "stats.flushInterval",
        &raw.flush_interval,
        Unit::Second,
        FLUSH_MAX,
    );
    Stats {
        retention: Retention {
            minutes: minutes.unwrap_or(defaults.retention.minutes),
            hours: hours.unwrap_or(defaults.retention.hours),
            days: days.flatten(),
        },
        flush_interval: flush_interval.unwrap_or(defaults.flush_interval),
    }
}

/// The whole unit a duration must be a multiple of, and its smallest value.
#[derive(Clone, Copy)]
enum Unit {
    Second,
    Hour,
    Day,
}

impl Unit {
    fn millis(self) -> u64 {
        match self {
            Unit::Second => 1000,
            Unit::Hour => HOUR_MS,
            Unit::Day => DAY_MS,
        }
    }

    fn example(self) -> &'static str {
        match self {
            Unit::Second => "\"30s\" or \"5m\"",
            Unit::Hour => "\"48h\" or \"3d\"",
            Unit::Day => "\"90d\" or \"730d\"",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Unit::Second => "seconds",
            Unit::Hour => "hours",
            Unit::Day => "days",
        }
    }
}

fn duration(
    check: &mut Checker,
    path: &str,
    text: &str,
    unit: Unit,
    max: Duration,
) -> Option<Duration> {
    let parsed = humantime::parse_duration(text.trim()).ok().filter(|d| {
        let ms = d.as_millis();
        ms > 0 && ms % u128::from(unit.millis()) == 0 && *d <= max
    });
    if parsed.is_none() {
        let max_text = humantime::format_duration(max);
        check.fail(
            path,
            format!(
                "must be a whole number of {} from {} to {max_text}, such as {}; got \"{}\"",
                unit.name(),
                humantime::format_duration(Duration::from_millis(unit.millis())),
                unit.example(),
                text
            ),
        );
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::super::testing::{issue_paths, load_value, sample};
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_keep_minutes_two_days_hours_ninety_days_and_days_for_ever() {
        let config = load_value(sample()).expect("valid");
        assert_eq!(config.stats, Stats::default());
        assert_eq!(
            config.stats.retention.minutes,
            Duration::from_secs(48 * 3600)
        );
        assert_eq!(
            config.stats.retention.hours,
            Duration::from_secs(90 * 86_400)
        );
        assert_eq!(config.stats.retention.days, None);
        assert_eq!(config.stats.flush_interval, Duration::from_secs(30));
        let written = serde_json::to_value(&config.raw).expect("json");
        assert!(written.get("stats").is_none(), "{written}");
    }

    #[test]
    fn retention_and_flush_interval_are_read() {
        let mut v = sample();
        v["stats"] = json!({"retention": {"minutes": "3d", "hours": "30d", "days": "730d"}, "flushInterval": "5s"});
        let config = load_value(v).expect("valid");
        assert_eq!(
            config.stats.retention.minutes,
            Duration::from_secs(3 * 86_400)
        );
        assert_eq!(
            config.stats.retention.hours,
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(
            config.stats.retention.days,
            Some(Duration::from_secs(730 * 86_400))
        );
        assert_eq!(config.stats.flush_interval, Duration::from_secs(5));
    }

    #[test]
    fn durations_must_be_whole_units_within_bounds() {
        let mut v = sample();
        v["stats"] = json!({"retention": {"minutes": "90m", "hours": "36h", "days": "soon"}, "flushInterval": "0s"});
        assert_eq!(
            issue_paths(v),
            vec![
                "stats.retention.minutes",
                "stats.retention.hours",
                "stats.retention.days",
                "stats.flushInterval"
            ]
        );
        let mut v = sample();
        v["stats"] = json!({"retention": {"minutes": "8d"}, "flushInterval": "2h"});
        assert_eq!(
            issue_paths(v),
            vec!["stats.retention.minutes", "stats.flushInterval"]
        );
    }

    #[test]
    fn coarser_buckets_are_kept_at_least_as_long_as_finer_ones() {
        let mut v = sample();
        v["stats"] = json!({"retention": {"minutes": "3d", "hours": "2d"}});
        assert_eq!(issue_paths(v), vec!["stats.retention.hours"]);
        let mut v = sample();
        v["stats"] = json!({"retention": {"days": "30d"}});
        assert_eq!(issue_paths(v), vec!["stats.retention.days"]);
    }

    #[test]
    fn a_number_instead_of_a_duration_names_the_field() {
        let mut v = sample();
        v["stats"] = json!({"retention": {"minutes": 48}});
        assert_eq!(issue_paths(v), vec!["stats.retention.minutes"]);
    }
}
