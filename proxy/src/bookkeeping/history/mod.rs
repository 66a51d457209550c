//! The usage history: requests, outcomes, tokens, latency and time-to-first-byte per model,
//! client key and deployment, in time buckets: per minute, per hour and per day, each kept as
//! long as `stats.retention` says. Fed by the end-of-request hook, served by `GET /usage`,
//! persisted in the data dir.
//!
//! The hook (`record`) only adds to the current minute's frame under a short lock and does not
//! allocate once a series has been seen in that minute. Sealing finished minutes, rolling them
//! up into hours and days, retention (`maintain`) and writing files (`persist`) run on a
//! background timer. Never does I/O on the request path; never holds a lock across I/O.
//!
//! Locks: `tiers` before `live` where both are held; the hook takes `live` only.

mod codec;
mod file;
mod frame;
mod histogram;
mod names;
pub mod query;
#[cfg(test)]
mod tests;
mod tiers;
mod totals;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use prometheus_client::encoding::DescriptorEncoder;

use crate::bookkeeping::stats::Outcome;
use crate::config::Retention;
use crate::ops::contract::UsagePage;
use crate::process::clock::now_ms;
use crate::relay::usage::Usage;
use file::PartContent;
use frame::{FrameBuilder, Measure, Series};
use names::{Dimension, Names};
use query::{QueryError, Resolved, UsageRequest};
use tiers::{Blob, Cutoffs, MINUTE_MS, Part, Tier, Tiers, floor};
use totals::ModelTotals;

pub use histogram::BOUNDS_US;

/// What the hook knows of a finished request.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    pub model: Option<&'a str>,
    pub key: Option<&'a str>,
    pub upstream: Option<&'a str>,
    pub deployment: Option<&'a str>,
    pub outcome: Outcome,
    /// The status the client got (429 counts as rate limited).
    pub status: u16,
    pub usage: Option<Usage>,
    pub latency: Duration,
    /// Until the upstream's response head, when one came.
    pub ttfb: Option<Duration>,
}

impl Sample<'_> {
    fn measure(&self) -> Measure {
        let usage = self.usage.unwrap_or_default();
        Measure {
            succeeded: self.outcome == Outcome::Succeeded,
            cancelled: self.outcome == Outcome::Cancelled,
            error: match self.outcome {
                Outcome::Failed(class) => Some(class),
                _ => None,
            },
            rate_limited: self.status == 429,
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            cached_tokens: usage.cached_tokens,
            reasoning_tokens: usage.reasoning_tokens,
            latency_us: micros(self.latency),
            ttfb_us: self.ttfb.map(micros),
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// What the hook writes to: the minutes not sealed yet (normally just the current one).
#[derive(Default)]
struct Live {
    names: Names,
    /// By minute start, ascending.
    frames: Vec<(u64, FrameBuilder)>,
    /// No request counts in a minute before this one (it is sealed, or was written by an
    /// earlier process).
    floor_minute: u64,
    /// Emptied frames kept for the next minutes, so that they start with their memory.
    spare: Vec<FrameBuilder>,
    /// All-time histograms per model id, for `/metrics`.
    totals: Vec<Option<Box<ModelTotals>>>,
    /// Something was counted since the last write.
    changed: bool,
}

impl Live {
    fn frame(&mut self, minute: u64) -> &mut FrameBuilder {
        let at = match self.frames.last() {
            Some((last, _)) if *last == minute => self.frames.len() - 1,
            _ => match self.frames.binary_search_by_key(&minute, |(m, _)| *m) {
                Ok(at) => at,
                Err(at) => {
                    let frame = self.spare.pop().unwrap_or_default();
                    self.frames.insert(at, (minute, frame));
                    at
                }
            },
        };
        &mut self.frames[at].1
    }
}

pub struct History {
    live: Mutex<Live>,
    tiers: Mutex<Tiers>,
    /// Where the files are; `None` keeps the history in memory only.
    dir: Option<PathBuf>,
    /// `false`: nothing is counted and `/usage` answers that the history is off.
    enabled: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl History {
    /// A history in memory only.
    pub fn in_memory() -> History {
        History {
            live: Mutex::new(Live::default()),
            tiers: Mutex::new(Tiers::default()),
            dir: None,
            enabled: true,
        }
    }

    /// No history: counts nothing, reads and writes no file (`USAGE_HISTORY=off`).
    pub fn off() -> History {
        History {
            enabled: false,
            ..History::in_memory()
        }
    }

    /// The history kept in `dir`, read back from its files (a missing or damaged file starts
    /// that part empty; see `file::read`). Blocking I/O.
    pub fn load(dir: &Path, now: u64) -> History {
        let mut names = Names::default();
        let mut tiers = Tiers::default();
        let mut read = Part::ALL.map(|part| file::read(dir, part, &mut names, now));
        let [recent, minutes, hours, days] = &mut read;
        for (start, blob) in recent.frames.drain(..) {
            tiers.minutes.insert(start, blob);
        }
        // A minute in both files: the minutes file was written after the recent one.
        for (start, blob) in minutes.frames.drain(..) {
            tiers.minutes.insert(start, blob);
        }
        tiers.hours.extend(hours.frames.drain(..));
        tiers.days.extend(days.frames.drain(..));
        let mut totals: Vec<Option<Box<ModelTotals>>> = Vec::new();
        for (model, t) in recent.totals.drain(..) {
            let slot = model as usize;
            if totals.len() <= slot {
                totals.resize_with(slot + 1, || None);
            }
            totals[slot].get_or_insert_with(Box::default).add(&t);
        }
        if tiers.rebuild_open().is_err() {
            // Every frame was decoded once already while reading.
            tracing::error!(
                "usage history frames did not add up; the open hours and days start empty"
            );
        }
        // What was read in other ids is written again in the running process's.
        tiers.dirty = [read.iter().any(|r| r.translated); 4];
        tiers.names = names.clone();
        let live = Live {
            floor_minute: tiers.newest_minute().unwrap_or(0),
            names,
            totals,
            ..Live::default()
        };
        History {
            live: Mutex::new(live),
            tiers: Mutex::new(tiers),
            dir: Some(dir.to_path_buf()),
            enabled: true,
        }
    }

    /// Counts a finished request in the current minute.
    pub fn record(&self, sample: &Sample<'_>) {
        self.record_at(now_ms(), sample);
    }

    /// Counts a finished request at `now` (Unix ms): in its minute, or in the newest minute
    /// still open if the clock went back.
    pub fn record_at(&self, now: u64, sample: &Sample<'_>) {
        if !self.enabled {
            return;
        }
        let measure = sample.measure();
        let mut live = lock(&self.live);
        let series = Series {
            model: live.names.model(sample.model),
            key: live.names.key(sample.key),
            deployment: live.names.deployment(sample.upstream, sample.deployment),
        };
        let minute = floor(now, MINUTE_MS).max(live.floor_minute);
        live.frame(minute).record(series, &measure);
        if series.model != 0 {
            let slot = series.model as usize;
            if live.totals.len() <= slot {
                live.totals.resize_with(slot + 1, || None);
            }
            live.totals[slot]
                .get_or_insert_with(Box::default)
                .count(&measure);
        }
        live.changed = true;
    }

    /// Seals the minutes before `now`'s, closes the hours and days that are over, and drops
    /// what `retention` no longer keeps. CPU work: call off the async workers.
    pub fn maintain(&self, now: u64, retention: &Retention) {
        let minute = floor(now, MINUTE_MS);
        let mut tiers = lock(&self.tiers);
        let sealed = {
            let mut live = lock(&self.live);
            live.floor_minute = live.floor_minute.max(minute);
            let before = live.frames.partition_point(|(m, _)| *m < minute);
            let sealed: Vec<(u64, FrameBuilder)> = live.frames.drain(..before).collect();
            let since = tiers.names.len();
            tiers.names.extend(live.names.added_since(since));
            sealed
        };
        for (start, frame) in &sealed {
            tiers.seal_minute(*start, frame);
        }
        tiers.close_until(minute);
        tiers.apply_retention(now, retention);
        drop(tiers);
        if !sealed.is_empty() {
            let mut live = lock(&self.live);
            for (_, mut frame) in sealed {
                if live.spare.len() < 2 {
                    frame.clear();
                    live.spare.push(frame);
                }
            }
        }
    }

    /// Writes the parts of the history that changed since they were last written. Blocking
    /// I/O: call from a blocking thread.
    pub fn persist(&self, now: u64) -> anyhow::Result<()> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let mut tiers = lock(&self.tiers);
        let (live_frames, totals, live_changed) = {
            let mut live = lock(&self.live);
            let since = tiers.names.len();
            tiers.names.extend(live.names.added_since(since));
            let frames: Vec<(u64, FrameBuilder)> = live
                .frames
                .iter()
                .filter(|(_, f)| !f.is_empty())
                .map(|(m, f)| (*m, f.clone()))
                .collect();
            let totals: Vec<(u32, ModelTotals)> = live
                .totals
                .iter()
                .enumerate()
                .filter_map(|(id, t)| Some((id as u32, t.as_deref()?.clone())))
                .collect();
            (frames, totals, std::mem::replace(&mut live.changed, false))
        };
        let dirty = tiers.dirty;
        let write_recent = dirty[Part::Recent as usize] || live_changed;
        tiers.dirty = [false; 4];
        let names = tiers.names.clone();
        let mut contents: Vec<(Part, Vec<(u64, Blob)>)> = Vec::new();
        for part in [Part::Minutes, Part::Hours, Part::Days] {
            if !dirty[part as usize] {
                continue;
            }
            let frames = match part {
                Part::Minutes => tiers
                    .minutes
                    .iter()
                    .filter(|(m, _)| !tiers.hour_is_open(**m))
                    .map(|(m, b)| (*m, b.clone()))
                    .collect(),
                Part::Hours => tiers.hours.iter().map(|(h, b)| (*h, b.clone())).collect(),
                _ => tiers.days.iter().map(|(d, b)| (*d, b.clone())).collect(),
            };
            contents.push((part, frames));
        }
        let recent: Option<Vec<(u64, Blob)>> = write_recent.then(|| {
            tiers
                .minutes
                .iter()
                .filter(|(m, _)| tiers.hour_is_open(**m))
                .map(|(m, b)| (*m, b.clone()))
                .collect()
        });
        drop(tiers);

        let mut failed = [false; 4];
        let mut first_error = None;
        // The recent part last: a crash in between leaves a recent file older than the others,
        // which loading allows for.
        for (part, frames) in contents {
            let content = PartContent {
                part,
                written_at_ms: now,
                names: &names,
                frames,
                totals: Vec::new(),
            };
            if let Err(err) = file::write(dir, &content) {
                failed[part as usize] = true;
                first_error.get_or_insert(err);
            }
        }
        if let Some(mut frames) = recent {
            // The minutes still being counted, added to what is sealed of them already.
            for (minute, live) in live_frames {
                match frames.binary_search_by_key(&minute, |(m, _)| *m) {
                    Ok(at) => {
                        let mut sum = live;
                        if sum
                            .add_encoded(&frames[at].1, &frame::IdMaps::IDENTITY)
                            .is_ok()
                        {
                            frames[at].1 = Blob::from(sum.encode());
                        }
                    }
                    Err(at) => frames.insert(at, (minute, Blob::from(live.encode()))),
                }
            }
            let content = PartContent {
                part: Part::Recent,
                written_at_ms: now,
                names: &names,
                frames,
                totals,
            };
            if let Err(err) = file::write(dir, &content) {
                failed[Part::Recent as usize] = true;
                first_error.get_or_insert(err);
            }
        }
        if let Some(err) = first_error {
            let mut tiers = lock(&self.tiers);
            for (dirty, failed) in tiers.dirty.iter_mut().zip(failed) {
                *dirty |= failed;
            }
            drop(tiers);
            if failed[Part::Recent as usize] {
                lock(&self.live).changed = true;
            }
            return Err(err);
        }
        Ok(())
    }

    /// Answers a `/usage` query at `now`. CPU work proportional to the range: call off the
    /// async workers.
    pub fn query(
        &self,
        request: &UsageRequest,
        now: u64,
        retention: &Retention,
    ) -> Result<UsagePage, QueryError> {
        if !self.enabled {
            return Err(QueryError {
                code: "usage_history_off",
                param: None,
                message: "the usage history is turned off (USAGE_HISTORY=off)".into(),
            });
        }
        let plan = query::plan(request, now, &Cutoffs::at(now, retention))?;
        let (sources, resolved) = self.sources(request, &plan);
        query::aggregate(request, &plan, &resolved, &sources).map_err(|_| QueryError {
            code: "internal_error",
            param: None,
            message: "the usage history could not be read".into(),
        })
    }

    /// The frames a query reads, sorted by start: the closed frames of its resolution, the ones
    /// still growing, and the minutes not sealed yet, all taken at one moment.
    fn sources(&self, request: &UsageRequest, plan: &query::Plan) -> (Vec<(u64, Blob)>, Resolved) {
        let range = plan.from..plan.to;
        let mut tiers = lock(&self.tiers);
        let mut sources: Vec<(u64, Blob)> = tiers
            .closed(plan.tier)
            .range(range.clone())
            .map(|(start, blob)| (*start, blob.clone()))
            .collect();
        if let Some(open) = tiers.open(plan.tier) {
            for (start, frame) in open.range(range.clone()) {
                sources.push((*start, Blob::from(frame.encode())));
            }
        }
        {
            let live = lock(&self.live);
            let since = tiers.names.len();
            tiers.names.extend(live.names.added_since(since));
            for (minute, frame) in &live.frames {
                if range.contains(minute) && !frame.is_empty() {
                    sources.push((*minute, Blob::from(frame.encode())));
                }
            }
        }
        sources.sort_by_key(|(start, _)| *start);
        let names = &tiers.names;
        let resolved = Resolved {
            filters: std::array::from_fn(|d| {
                request.filters[d]
                    .as_deref()
                    .map(|name| names.tables[d].find(name))
            }),
            group_names: match request.group_by {
                None => Vec::new(),
                Some(group) => names
                    .table(match group {
                        crate::ops::contract::UsageGroupBy::Model => Dimension::Model,
                        crate::ops::contract::UsageGroupBy::Key => Dimension::Key,
                        crate::ops::contract::UsageGroupBy::Deployment => Dimension::Deployment,
                    })
                    .names()
                    .to_vec(),
            },
        };
        (sources, resolved)
    }

    /// Encodes the all-time latency and time-to-first-byte histograms per model.
    pub fn encode_metrics(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let (totals, models): (Vec<Option<Box<ModelTotals>>>, Vec<Arc<str>>) = {
            let live = lock(&self.live);
            (
                live.totals.clone(),
                live.names.table(Dimension::Model).names().to_vec(),
            )
        };
        totals::encode_metrics(encoder, &totals, &models)
    }

    /// Bytes the frames hold (closed ones exactly, open ones as encoded), for sizing.
    pub fn frame_bytes(&self) -> usize {
        lock(&self.tiers).bytes()
    }

    /// How many frames each resolution holds (minutes, hours, days), open ones included.
    pub fn frame_counts(&self) -> [usize; 3] {
        let tiers = lock(&self.tiers);
        Tier::ALL
            .map(|tier| tiers.closed(tier).len() + tiers.open(tier).map_or(0, |open| open.len()))
    }
}

impl History {
    /// Several replicas' histories as one, in memory, to be queried (control's view of every
    /// replica in blob mode). Each replica is its files' bytes by file name (`usage-*.bin`);
    /// they are decoded into one set of names, each replica's open hours and days closed, and
    /// the frames of the same bucket added up. A file that does not decode is left out (logged).
    pub fn merged(replicas: &[Vec<(String, Vec<u8>)>]) -> History {
        let mut names = Names::default();
        let mut merged = Tiers::default();
        for files in replicas {
            let mut tiers = Tiers::default();
            // The recent file first: a minute in both is the minutes file's.
            for part in Part::ALL {
                let Some((_, bytes)) = files.iter().find(|(name, _)| name == part.file_name())
                else {
                    continue;
                };
                let read = match file::decode(part, bytes, &mut names) {
                    Ok(read) => read,
                    Err(err) => {
                        tracing::warn!(file = part.file_name(), error = %err, "a replica's usage history file does not decode; left out");
                        continue;
                    }
                };
                match part {
                    Part::Recent | Part::Minutes => tiers.minutes.extend(read.frames),
                    Part::Hours => tiers.hours.extend(read.frames),
                    Part::Days => tiers.days.extend(read.frames),
                }
            }
            if tiers.rebuild_open().is_err() {
                tracing::warn!("a replica's usage history frames did not add up; left out");
                continue;
            }
            for (hour, frame) in std::mem::take(&mut tiers.open_hours) {
                tiers::add_into(&mut tiers.hours, hour, &frame);
            }
            for (day, frame) in std::mem::take(&mut tiers.open_days) {
                tiers::add_into(&mut tiers.days, day, &frame);
            }
            for (into, from) in [
                (&mut merged.minutes, &tiers.minutes),
                (&mut merged.hours, &tiers.hours),
                (&mut merged.days, &tiers.days),
            ] {
                for (start, blob) in from {
                    let mut frame = FrameBuilder::default();
                    if frame.add_encoded(blob, &frame::IdMaps::IDENTITY).is_ok() {
                        tiers::add_into(into, *start, &frame);
                    }
                }
            }
        }
        merged.names = names.clone();
        let live = Live {
            floor_minute: merged.newest_minute().unwrap_or(0),
            names,
            ..Live::default()
        };
        History {
            live: Mutex::new(live),
            tiers: Mutex::new(merged),
            dir: None,
            enabled: true,
        }
    }
}

/// The path of each file the history writes in `dir`.
pub fn file_paths(dir: &Path) -> Vec<PathBuf> {
    Part::ALL
        .iter()
        .map(|part| file::path_of(dir, *part))
        .collect()
}
