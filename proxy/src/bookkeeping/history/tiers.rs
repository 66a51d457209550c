//! The closed buckets of the usage history in their three resolutions, and the roll-up between
//! them. A minute is sealed once it is over: its frame joins the minutes and is added at once to
//! the still open frames of its hour and its day, so each resolution always holds everything
//! sealed so far. An hour (a day) is closed once its end has passed: its frame is encoded and
//! kept. Retention drops whole buckets older than the configured time. No I/O here.

use std::collections::BTreeMap;

use super::frame::{FrameBuilder, IdMaps};
use super::histogram::DecodeError;
use super::names::Names;
use crate::config::Retention;

pub const MINUTE_MS: u64 = 60_000;
pub const HOUR_MS: u64 = 3_600_000;
pub const DAY_MS: u64 = 86_400_000;

/// One resolution of the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Minute,
    Hour,
    Day,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Minute, Tier::Hour, Tier::Day];

    pub fn ms(self) -> u64 {
        match self {
            Tier::Minute => MINUTE_MS,
            Tier::Hour => HOUR_MS,
            Tier::Day => DAY_MS,
        }
    }
}

pub fn floor(ms: u64, unit: u64) -> u64 {
    ms - ms % unit
}

/// The files the history is written to, each rewritten only when its part changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The minutes of hours still open, the minute being counted and the `/metrics` totals.
    Recent = 0,
    /// The minutes of closed hours.
    Minutes = 1,
    Hours = 2,
    Days = 3,
}

impl Part {
    pub const ALL: [Part; 4] = [Part::Recent, Part::Minutes, Part::Hours, Part::Days];

    pub fn file_name(self) -> &'static str {
        match self {
            Part::Recent => "usage-recent.bin",
            Part::Minutes => "usage-minutes.bin",
            Part::Hours => "usage-hours.bin",
            Part::Days => "usage-days.bin",
        }
    }
}

/// An encoded frame, shared with whoever reads or writes it without copying.
pub type Blob = bytes::Bytes;

#[derive(Default)]
pub struct Tiers {
    /// The names every id in the frames refers to (a copy of the hook's, caught up before use).
    pub names: Names,
    pub minutes: BTreeMap<u64, Blob>,
    pub hours: BTreeMap<u64, Blob>,
    pub days: BTreeMap<u64, Blob>,
    pub open_hours: BTreeMap<u64, FrameBuilder>,
    pub open_days: BTreeMap<u64, FrameBuilder>,
    /// The parts changed since they were last written, by `Part as usize`.
    pub dirty: [bool; 4],
}

impl Tiers {
    /// Adds the sealed frame of the minute starting at `minute` to every resolution.
    pub fn seal_minute(&mut self, minute: u64, frame: &FrameBuilder) {
        if frame.is_empty() {
            return;
        }
        add_into(&mut self.minutes, minute, frame);
        let hour = floor(minute, HOUR_MS);
        if let Some(open) = self.open_hours.get_mut(&hour) {
            open.add(frame);
            self.dirty[Part::Recent as usize] = true;
        } else if self.hours.contains_key(&hour) {
            // Only after a restart on a clock that went back: the hour was closed already.
            add_into(&mut self.hours, hour, frame);
            self.dirty[Part::Minutes as usize] = true;
            self.dirty[Part::Hours as usize] = true;
        } else {
            self.open_hours.insert(hour, frame.clone());
            self.dirty[Part::Recent as usize] = true;
        }
        let day = floor(minute, DAY_MS);
        if let Some(open) = self.open_days.get_mut(&day) {
            open.add(frame);
        } else if self.days.contains_key(&day) {
            add_into(&mut self.days, day, frame);
            self.dirty[Part::Days as usize] = true;
        } else {
            self.open_days.insert(day, frame.clone());
        }
    }

    /// Closes the hours and days that end at or before `boundary` (a minute start: every
    /// minute before it is sealed).
    pub fn close_until(&mut self, boundary: u64) {
        while let Some(entry) = self.open_hours.first_entry() {
            if *entry.key() + HOUR_MS > boundary {
                break;
            }
            let (hour, frame) = entry.remove_entry();
            add_into(&mut self.hours, hour, &frame);
            self.dirty[Part::Recent as usize] = true;
            self.dirty[Part::Minutes as usize] = true;
            self.dirty[Part::Hours as usize] = true;
        }
        while let Some(entry) = self.open_days.first_entry() {
            if *entry.key() + DAY_MS > boundary {
                break;
            }
            let (day, frame) = entry.remove_entry();
            add_into(&mut self.days, day, &frame);
            self.dirty[Part::Days as usize] = true;
        }
    }

    /// Drops the buckets older than `retention` allows at `now`.
    pub fn apply_retention(&mut self, now: u64, retention: &Retention) {
        let cutoffs = Cutoffs::at(now, retention);
        for (map, cutoff, part) in [
            (&mut self.minutes, cutoffs.minutes, Part::Minutes),
            (&mut self.hours, cutoffs.hours, Part::Hours),
            (&mut self.days, cutoffs.days, Part::Days),
        ] {
            if map
                .first_key_value()
                .is_some_and(|(start, _)| *start < cutoff)
            {
                *map = map.split_off(&cutoff);
                self.dirty[part as usize] = true;
            }
        }
    }

    /// Whether the hour a minute belongs to is still open (its minutes go to the recent part).
    pub fn hour_is_open(&self, minute: u64) -> bool {
        self.open_hours.contains_key(&floor(minute, HOUR_MS))
    }

    /// The closed frames of `tier`.
    pub fn closed(&self, tier: Tier) -> &BTreeMap<u64, Blob> {
        match tier {
            Tier::Minute => &self.minutes,
            Tier::Hour => &self.hours,
            Tier::Day => &self.days,
        }
    }

    /// The frames of `tier` still growing (none for minutes: they are sealed whole).
    pub fn open(&self, tier: Tier) -> Option<&BTreeMap<u64, FrameBuilder>> {
        match tier {
            Tier::Minute => None,
            Tier::Hour => Some(&self.open_hours),
            Tier::Day => Some(&self.open_days),
        }
    }

    /// Rebuilds what the files do not hold from the finer resolution below it: the hours that
    /// are not in the hours file from their minutes, the days that are not in the days file from
    /// their hours. Those are left open; `close_until` closes the ones that are over. So a lost
    /// or stale file costs no more than the finer data that is gone with it.
    pub fn rebuild_open(&mut self) -> Result<(), DecodeError> {
        let mut hours: BTreeMap<u64, FrameBuilder> = BTreeMap::new();
        for (minute, blob) in &self.minutes {
            let hour = floor(*minute, HOUR_MS);
            if !self.hours.contains_key(&hour) {
                hours
                    .entry(hour)
                    .or_default()
                    .add_encoded(blob, &IdMaps::IDENTITY)?;
            }
        }
        let mut days: BTreeMap<u64, FrameBuilder> = BTreeMap::new();
        for (hour, blob) in &self.hours {
            let day = floor(*hour, DAY_MS);
            if !self.days.contains_key(&day) {
                days.entry(day)
                    .or_default()
                    .add_encoded(blob, &IdMaps::IDENTITY)?;
            }
        }
        for (hour, frame) in &hours {
            let day = floor(*hour, DAY_MS);
            if !self.days.contains_key(&day) {
                days.entry(day).or_default().add(frame);
            }
        }
        self.open_hours = hours;
        self.open_days = days;
        Ok(())
    }

    /// The start of the newest minute any frame holds: the hook counts nothing before it.
    pub fn newest_minute(&self) -> Option<u64> {
        self.minutes.last_key_value().map(|(m, _)| *m)
    }

    /// Bytes held by the encoded frames and (roughly) by the open ones.
    pub fn bytes(&self) -> usize {
        let closed: usize = [&self.minutes, &self.hours, &self.days]
            .iter()
            .flat_map(|map| map.values())
            .map(|blob| blob.len())
            .sum();
        let open: usize = self
            .open_hours
            .values()
            .chain(self.open_days.values())
            .map(|frame| frame.encode().len())
            .sum();
        closed + open
    }
}

/// Where each resolution's kept data starts at some moment: buckets before it are dropped, and
/// a query reaching further back must use a coarser resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoffs {
    pub minutes: u64,
    pub hours: u64,
    pub days: u64,
}

impl Cutoffs {
    pub fn at(now: u64, retention: &Retention) -> Cutoffs {
        let back = |kept: std::time::Duration, unit: u64| {
            floor(
                now.saturating_sub(u64::try_from(kept.as_millis()).unwrap_or(u64::MAX)),
                unit,
            )
        };
        Cutoffs {
            minutes: back(retention.minutes, HOUR_MS),
            hours: back(retention.hours, HOUR_MS),
            days: retention.days.map_or(0, |kept| back(kept, DAY_MS)),
        }
    }

    pub fn of(&self, tier: Tier) -> u64 {
        match tier {
            Tier::Minute => self.minutes,
            Tier::Hour => self.hours,
            Tier::Day => self.days,
        }
    }
}

/// Adds `frame` to the encoded frame at `start` (or makes it the frame there).
pub(super) fn add_into(map: &mut BTreeMap<u64, Blob>, start: u64, frame: &FrameBuilder) {
    let blob = match map.get(&start) {
        None => frame.encode(),
        Some(existing) => {
            let mut sum = frame.clone();
            match sum.add_encoded(existing, &IdMaps::IDENTITY) {
                Ok(()) => sum.encode(),
                Err(_) => {
                    // Frames in memory were encoded by this process; this does not happen.
                    tracing::error!(
                        start,
                        "a usage frame in memory did not decode; it was replaced"
                    );
                    frame.encode()
                }
            }
        }
    };
    map.insert(start, Blob::from(blob));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bookkeeping::history::frame::{Measure, Series};
    use std::time::Duration;

    const T0: u64 = 1_733_443_200_000; // 2024-12-06T00:00:00Z

    fn one(requests: u64) -> FrameBuilder {
        let mut frame = FrameBuilder::default();
        for _ in 0..requests {
            frame.record(
                Series {
                    model: 1,
                    key: 1,
                    deployment: 1,
                },
                &Measure {
                    succeeded: true,
                    latency_us: 1000,
                    ..Measure::default()
                },
            );
        }
        frame
    }

    fn requests(blob: &[u8]) -> u64 {
        let mut frame = FrameBuilder::default();
        frame.add_encoded(blob, &IdMaps::IDENTITY).expect("decodes");
        frame.requests()
    }

    #[test]
    fn sealed_minutes_roll_up_into_their_hour_and_day() {
        let mut tiers = Tiers::default();
        tiers.seal_minute(T0, &one(1));
        tiers.seal_minute(T0 + MINUTE_MS, &one(2));
        tiers.seal_minute(T0 + HOUR_MS, &one(4));
        assert_eq!(tiers.minutes.len(), 3);
        assert_eq!(tiers.open_hours[&T0].requests(), 3);
        assert_eq!(tiers.open_hours[&(T0 + HOUR_MS)].requests(), 4);
        assert_eq!(tiers.open_days[&T0].requests(), 7);

        tiers.close_until(T0 + HOUR_MS + MINUTE_MS);
        assert_eq!(requests(&tiers.hours[&T0]), 3);
        assert!(tiers.open_hours.contains_key(&(T0 + HOUR_MS)));
        assert!(tiers.days.is_empty());

        tiers.close_until(T0 + DAY_MS);
        assert!(tiers.open_hours.is_empty());
        assert_eq!(requests(&tiers.hours[&(T0 + HOUR_MS)]), 4);
        assert_eq!(requests(&tiers.days[&T0]), 7);
    }

    #[test]
    fn a_minute_sealed_twice_adds_up() {
        let mut tiers = Tiers::default();
        tiers.seal_minute(T0, &one(1));
        tiers.seal_minute(T0, &one(2));
        assert_eq!(requests(&tiers.minutes[&T0]), 3);
        assert_eq!(tiers.open_hours[&T0].requests(), 3);
    }

    #[test]
    fn retention_drops_whole_buckets_past_the_cutoff() {
        let retention = Retention {
            minutes: Duration::from_secs(3600),
            hours: Duration::from_secs(86_400),
            days: Some(Duration::from_secs(2 * 86_400)),
        };
        let mut tiers = Tiers::default();
        for day in 0..4 {
            for hour in [0, 23] {
                tiers.seal_minute(T0 + day * DAY_MS + hour * HOUR_MS, &one(1));
            }
        }
        let now = T0 + 3 * DAY_MS + 23 * HOUR_MS + 30 * MINUTE_MS;
        tiers.close_until(floor(now, MINUTE_MS));
        tiers.dirty = [false; 4];
        tiers.apply_retention(now, &retention);
        // Minutes: from 22:00 of the last day (one hour back, whole hours).
        assert_eq!(
            tiers.minutes.keys().copied().collect::<Vec<_>>(),
            vec![T0 + 3 * DAY_MS + 23 * HOUR_MS]
        );
        // Hours: a day back, from 23:00 the day before.
        assert_eq!(
            tiers.hours.keys().copied().collect::<Vec<_>>(),
            vec![T0 + 2 * DAY_MS + 23 * HOUR_MS, T0 + 3 * DAY_MS]
        );
        // Days: two days back, from the start of that day; the last day is still open.
        assert_eq!(
            tiers.days.keys().copied().collect::<Vec<_>>(),
            vec![T0 + DAY_MS, T0 + 2 * DAY_MS]
        );
        assert_eq!(tiers.dirty, [false, true, true, true]);
    }

    #[test]
    fn what_the_files_lack_is_rebuilt_from_the_finer_resolution() {
        let mut tiers = Tiers::default();
        tiers.seal_minute(T0, &one(1));
        tiers.seal_minute(T0 + HOUR_MS, &one(2));
        tiers.close_until(T0 + HOUR_MS);
        // As loaded from files: the closed first hour and every minute, nothing open.
        let mut loaded = Tiers {
            minutes: tiers.minutes.clone(),
            hours: tiers.hours.clone(),
            ..Tiers::default()
        };
        loaded.rebuild_open().expect("rebuilds");
        assert_eq!(loaded.open_hours.len(), 1);
        assert_eq!(loaded.open_hours[&(T0 + HOUR_MS)].requests(), 2);
        assert_eq!(loaded.open_days[&T0].requests(), 3);

        // The hours file lost: rebuilt from the minutes.
        let mut no_hours = Tiers {
            minutes: tiers.minutes.clone(),
            ..Tiers::default()
        };
        no_hours.rebuild_open().expect("rebuilds");
        no_hours.close_until(T0 + 2 * HOUR_MS);
        assert_eq!(requests(&no_hours.hours[&T0]), 1);
        assert_eq!(requests(&no_hours.hours[&(T0 + HOUR_MS)]), 2);
    }
}
