//! `GET /usage` as the history answers it: the query string read into a `UsageRequest` (every
//! problem an error naming the parameter), the resolution and step chosen for the range
//! (`plan`), and the frames of that resolution added up per step and group (`aggregate`).
//!
//! Counters and tokens add up exactly for every filter and grouping. Latency and
//! time-to-first-byte percentiles come from the histograms kept per route (model × deployment)
//! and per client key; a query that combines a key with a model or deployment (as filter or
//! grouping) has no histogram to read them from, and its percentiles are `null`.

use std::sync::Arc;

use foldhash::{HashMap, HashMapExt as _};

use super::frame::{Counts, FrameSink, Hists, IdMaps, Series, decode};
use super::histogram::DecodeError;
use super::names::Dimension;
use super::tiers::{Blob, Cutoffs, DAY_MS, HOUR_MS, MINUTE_MS, Tier, floor};
use crate::bookkeeping::stats::ErrorClass;
use crate::downstream::bounded::{MAX_ID_CHARS, bounded};
use crate::ops::contract::{
    Percentiles, UsageCounts, UsageGroupBy, UsagePage, UsagePoint, UsageSeries,
};

/// Points per series `step=auto` aims at, and the most an explicit step may ask for.
pub const AUTO_POINTS: u64 = 400;
pub const MAX_POINTS: u64 = 10_000;

/// The range a query without `from` covers before `to`.
const DEFAULT_SPAN_MS: u64 = HOUR_MS;

/// The steps `auto` chooses from, finest first.
const NICE_STEPS_MS: [u64; 18] = [
    MINUTE_MS,
    2 * MINUTE_MS,
    5 * MINUTE_MS,
    10 * MINUTE_MS,
    15 * MINUTE_MS,
    30 * MINUTE_MS,
    HOUR_MS,
    2 * HOUR_MS,
    3 * HOUR_MS,
    6 * HOUR_MS,
    12 * HOUR_MS,
    DAY_MS,
    2 * DAY_MS,
    7 * DAY_MS,
    14 * DAY_MS,
    30 * DAY_MS,
    90 * DAY_MS,
    365 * DAY_MS,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Auto,
    Every(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
}

/// A `/usage` query string, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRequest {
    pub from: Option<u64>,
    pub to: Option<u64>,
    pub step: Step,
    pub group_by: Option<UsageGroupBy>,
    /// Exact model id, key id, `upstream/deployment`, by `Dimension::index`.
    pub filters: [Option<String>; 3],
    /// `None`: as the `Accept` header says.
    pub format: Option<Format>,
}

impl Default for UsageRequest {
    fn default() -> Self {
        UsageRequest {
            from: None,
            to: None,
            step: Step::Auto,
            group_by: None,
            filters: [None, None, None],
            format: None,
        }
    }
}

/// Why a query cannot be answered; the message names the parameter and what it accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct QueryError {
    pub code: &'static str,
    pub param: Option<&'static str>,
    pub message: String,
}

impl QueryError {
    fn new(code: &'static str, param: Option<&'static str>, message: String) -> QueryError {
        QueryError {
            code,
            param,
            message,
        }
    }
}

const PARAMS: [&str; 8] = [
    "from",
    "to",
    "step",
    "group_by",
    "model",
    "key",
    "deployment",
    "format",
];

/// Reads a `/usage` query string. A blank value is no value.
pub fn parse(query: &str) -> Result<UsageRequest, QueryError> {
    let mut request = UsageRequest::default();
    let mut seen = [false; PARAMS.len()];
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let Some(index) = PARAMS.iter().position(|p| *p == name) else {
            return Err(QueryError::new(
                "unknown_parameter",
                None,
                format!(
                    "unknown parameter \"{}\"; /usage takes {}",
                    bounded(&name, MAX_ID_CHARS),
                    PARAMS.join(", ")
                ),
            ));
        };
        let param = PARAMS[index];
        if std::mem::replace(&mut seen[index], true) {
            return Err(QueryError::new(
                "duplicate_parameter",
                Some(param),
                format!("{param} is given more than once"),
            ));
        }
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        match param {
            "from" => request.from = Some(time(param, value)?),
            "to" => request.to = Some(time(param, value)?),
            "step" => request.step = step(value)?,
            "group_by" => {
                request.group_by = Some(match value {
                    "model" => UsageGroupBy::Model,
                    "key" => UsageGroupBy::Key,
                    "deployment" => UsageGroupBy::Deployment,
                    other => {
                        return Err(QueryError::new(
                            "invalid_group_by",
                            Some(param),
                            format!(
                                "group_by must be model, key or deployment; got \"{}\"",
                                bounded(other, MAX_ID_CHARS)
                            ),
                        ));
                    }
                })
            }
            "model" => request.filters[Dimension::Model.index()] = Some(value.to_string()),
            "key" => request.filters[Dimension::Key.index()] = Some(value.to_string()),
            "deployment" => {
                request.filters[Dimension::Deployment.index()] = Some(value.to_string())
            }
            _ => {
                request.format = Some(match value {
                    "json" => Format::Json,
                    "csv" => Format::Csv,
                    other => {
                        return Err(QueryError::new(
                            "invalid_format",
                            Some(param),
                            format!(
                                "format must be json or csv; got \"{}\"",
                                bounded(other, MAX_ID_CHARS)
                            ),
                        ));
                    }
                })
            }
        }
    }
    Ok(request)
}

/// Unix milliseconds, or an RFC 3339 time with `Z` or an offset.
fn time(param: &'static str, text: &str) -> Result<u64, QueryError> {
    parse_time(text).ok_or_else(|| {
        QueryError::new(
            "invalid_time",
            Some(param),
            format!(
                "{param} must be an RFC 3339 time such as 2025-01-31T09:00:00Z, or Unix milliseconds; got \"{}\"",
                bounded(text, MAX_ID_CHARS)
            ),
        )
    })
}

pub fn parse_time(text: &str) -> Option<u64> {
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    let (base, offset_s) = match text.len().checked_sub(6).map(|i| text.split_at(i)) {
        Some((base, offset))
            if matches!(offset.as_bytes()[0], b'+' | b'-') && offset.as_bytes()[3] == b':' =>
        {
            let hours: i64 = offset.get(1..3)?.parse().ok()?;
            let minutes: i64 = offset.get(4..6)?.parse().ok()?;
            let sign = if offset.starts_with('-') { -1 } else { 1 };
            (format!("{base}Z"), sign * (hours * 3600 + minutes * 60))
        }
        _ => (text.to_string(), 0),
    };
    let utc = humantime::parse_rfc3339(&base).ok()?;
    let ms = i64::try_from(crate::process::clock::epoch_ms(utc)).ok()?;
    u64::try_from(ms - offset_s * 1000).ok()
}

fn step(text: &str) -> Result<Step, QueryError> {
    if text == "auto" {
        return Ok(Step::Auto);
    }
    humantime::parse_duration(text)
        .ok()
        .and_then(|d| u64::try_from(d.as_millis()).ok())
        .filter(|ms| *ms > 0 && ms % MINUTE_MS == 0)
        .map(Step::Every)
        .ok_or_else(|| {
            QueryError::new(
                "invalid_step",
                Some("step"),
                format!(
                    "step must be auto or a whole number of minutes such as 1m, 5m, 1h or 1d; got \"{}\"",
                    bounded(text, MAX_ID_CHARS)
                ),
            )
        })
}

/// Which resolution answers, at which step, over which whole steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub tier: Tier,
    pub step: u64,
    /// Aligned to the step; `to` exclusive.
    pub from: u64,
    pub to: u64,
}

/// Chooses the resolution and step for `request` at `now`, given where each resolution's kept
/// data starts.
pub fn plan(request: &UsageRequest, now: u64, cutoffs: &Cutoffs) -> Result<Plan, QueryError> {
    let to = request.to.unwrap_or(now);
    let from = request.from.unwrap_or(to.saturating_sub(DEFAULT_SPAN_MS));
    if from >= to {
        return Err(QueryError::new(
            "invalid_range",
            Some("from"),
            "from must be before to".into(),
        ));
    }
    // Day buckets are the last resort: before their cutoff nothing is kept at all.
    let covers = |tier: Tier| tier == Tier::Day || cutoffs.of(tier) <= from;
    let finest = Tier::ALL
        .into_iter()
        .find(|t| covers(*t))
        .unwrap_or(Tier::Day);
    let (tier, step) = match request.step {
        Step::Every(step) => {
            let tier = [Tier::Day, Tier::Hour, Tier::Minute]
                .into_iter()
                .find(|t| step % t.ms() == 0 && covers(*t))
                .ok_or_else(|| {
                    QueryError::new(
                        "step_too_fine",
                        Some("step"),
                        format!(
                            "step {} is finer than the usage kept for a range from {}: the finest step available there is {}, or a multiple of it",
                            duration_text(step),
                            humantime::format_rfc3339_seconds(time_of(from)),
                            duration_text(finest.ms())
                        ),
                    )
                })?;
            let points = points(from, to, step);
            if points > MAX_POINTS {
                return Err(QueryError::new(
                    "too_many_points",
                    Some("step"),
                    format!(
                        "step {} gives {points} points over this range, more than {MAX_POINTS}; choose a coarser step",
                        duration_text(step)
                    ),
                ));
            }
            (tier, step)
        }
        Step::Auto => {
            let step = NICE_STEPS_MS
                .into_iter()
                .filter(|s| s % finest.ms() == 0)
                .find(|s| points(from, to, *s) <= AUTO_POINTS)
                .unwrap_or_else(|| {
                    let span = (to - from).div_ceil(AUTO_POINTS);
                    span.div_ceil(DAY_MS) * DAY_MS
                });
            (finest, step)
        }
    };
    Ok(Plan {
        tier,
        step,
        from: floor(from, step),
        to: to.div_ceil(step).saturating_mul(step),
    })
}

fn points(from: u64, to: u64, step: u64) -> u64 {
    to.div_ceil(step) - from / step
}

fn time_of(ms: u64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)
}

/// `90m` as `1h 30m`, `1d` as `1day`: humantime's words.
fn duration_text(ms: u64) -> String {
    humantime::format_duration(std::time::Duration::from_millis(ms)).to_string()
}

/// Which histograms answer the percentiles of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Routes,
    Keys,
    /// The query combines a key with a model or deployment: no histogram holds that.
    Neither,
}

/// What a query needs to know of the names: the ids of its filters (`None` inside: a name the
/// history has never seen) and the names of the grouped dimension.
pub struct Resolved {
    pub filters: [Option<Option<u32>>; 3],
    pub group_names: Vec<Arc<str>>,
}

/// Adds up `sources` (frames of `plan.tier` and the frames still growing, each with its
/// start, sorted by start) per step and group.
pub fn aggregate(
    request: &UsageRequest,
    plan: &Plan,
    resolved: &Resolved,
    sources: &[(u64, Blob)],
) -> Result<UsagePage, DecodeError> {
    let group_by = request.group_by.map(|g| match g {
        UsageGroupBy::Model => Dimension::Model,
        UsageGroupBy::Key => Dimension::Key,
        UsageGroupBy::Deployment => Dimension::Deployment,
    });
    let involves = |d: Dimension| group_by == Some(d) || request.filters[d.index()].is_some();
    let family = match (
        involves(Dimension::Key),
        involves(Dimension::Model) || involves(Dimension::Deployment),
    ) {
        (true, true) => Family::Neither,
        (true, false) => Family::Keys,
        (false, _) => Family::Routes,
    };
    let mut aggregator = Aggregator {
        group_by,
        filters: resolved.filters,
        family,
        bucket: HashMap::new(),
        series: HashMap::new(),
    };
    // A filter naming something never counted matches nothing.
    if !resolved.filters.iter().any(|f| matches!(f, Some(None))) {
        let mut current = None;
        for (start, blob) in sources {
            if *start < plan.from || *start >= plan.to {
                continue;
            }
            let t = floor(*start, plan.step);
            if current.is_some_and(|c| c != t) {
                aggregator.close_bucket(current.unwrap_or(t));
            }
            current = Some(t);
            decode(blob, &IdMaps::IDENTITY, &mut aggregator)?;
        }
        if let Some(t) = current {
            aggregator.close_bucket(t);
        }
    }
    let with_percentiles = family != Family::Neither;
    let mut total = SeriesAcc::default();
    let mut series: Vec<(u32, SeriesAcc)> = aggregator.series.into_iter().collect();
    for (_, s) in &series {
        total.counts.add(&s.counts);
        total.hists.merge(&s.hists);
    }
    series.sort_by(|(a_id, a), (b_id, b)| {
        b.counts.requests.cmp(&a.counts.requests).then_with(|| {
            group_name(group_by, resolved, *a_id).cmp(group_name(group_by, resolved, *b_id))
        })
    });
    Ok(UsagePage {
        from: plan.from,
        to: plan.to,
        step_ms: plan.step,
        group_by: request.group_by,
        series: series
            .into_iter()
            .map(|(id, s)| UsageSeries {
                group: group_name(group_by, resolved, id).to_string(),
                total: usage_counts(&s.counts, with_percentiles.then_some(&s.hists)),
                points: s.points,
            })
            .collect(),
        total: usage_counts(&total.counts, with_percentiles.then_some(&total.hists)),
    })
}

fn group_name(group_by: Option<Dimension>, resolved: &Resolved, id: u32) -> &str {
    match group_by {
        None => "all",
        Some(_) => resolved.group_names.get(id as usize).map_or("", |n| n),
    }
}

#[derive(Default)]
struct SeriesAcc {
    points: Vec<UsagePoint>,
    counts: Counts,
    hists: Hists,
}

#[derive(Default)]
struct BucketAcc {
    counts: Counts,
    hists: Hists,
}

struct Aggregator {
    group_by: Option<Dimension>,
    filters: [Option<Option<u32>>; 3],
    family: Family,
    /// The groups of the step being added up.
    bucket: HashMap<u32, BucketAcc>,
    series: HashMap<u32, SeriesAcc>,
}

impl Aggregator {
    fn passes(&self, dimension: Dimension, id: u32) -> bool {
        match self.filters[dimension.index()] {
            None => true,
            Some(wanted) => wanted == Some(id),
        }
    }

    fn close_bucket(&mut self, t: u64) {
        let with_percentiles = self.family != Family::Neither;
        for (group, acc) in self.bucket.drain() {
            if acc.counts.requests == 0 {
                continue;
            }
            let series = self.series.entry(group).or_default();
            series.points.push(UsagePoint {
                t,
                counts: usage_counts(&acc.counts, with_percentiles.then_some(&acc.hists)),
            });
            series.counts.add(&acc.counts);
            series.hists.merge(&acc.hists);
        }
    }
}

impl FrameSink for Aggregator {
    fn cell(&mut self, series: Series, counts: &Counts) {
        if !(self.passes(Dimension::Model, series.model)
            && self.passes(Dimension::Key, series.key)
            && self.passes(Dimension::Deployment, series.deployment))
        {
            return;
        }
        let group = match self.group_by {
            None => 0,
            Some(Dimension::Model) => series.model,
            Some(Dimension::Key) => series.key,
            Some(Dimension::Deployment) => series.deployment,
        };
        self.bucket.entry(group).or_default().counts.add(counts);
    }

    fn route(&mut self, model: u32, deployment: u32) -> Option<&mut Hists> {
        if self.family != Family::Routes
            || !self.passes(Dimension::Model, model)
            || !self.passes(Dimension::Deployment, deployment)
        {
            return None;
        }
        let group = match self.group_by {
            Some(Dimension::Model) => model,
            Some(Dimension::Deployment) => deployment,
            _ => 0,
        };
        Some(&mut self.bucket.entry(group).or_default().hists)
    }

    fn key(&mut self, key: u32) -> Option<&mut Hists> {
        if self.family != Family::Keys || !self.passes(Dimension::Key, key) {
            return None;
        }
        let group = if self.group_by == Some(Dimension::Key) {
            key
        } else {
            0
        };
        Some(&mut self.bucket.entry(group).or_default().hists)
    }
}

fn usage_counts(counts: &Counts, hists: Option<&Hists>) -> UsageCounts {
    let percentiles = |h: Option<&super::histogram::Histogram>| Percentiles {
        p50: h.and_then(|h| h.quantile_ms(0.5)).map(round),
        p90: h.and_then(|h| h.quantile_ms(0.9)).map(round),
        p99: h.and_then(|h| h.quantile_ms(0.99)).map(round),
    };
    UsageCounts {
        requests: counts.requests,
        successes: counts.successes,
        cancelled: counts.cancelled,
        errors: ErrorClass::ALL
            .iter()
            .zip(counts.errors)
            .filter(|(_, n)| *n > 0)
            .map(|(class, n)| (class.as_str().to_string(), n))
            .collect(),
        rate_limited: counts.rate_limited,
        prompt_tokens: counts.prompt_tokens,
        completion_tokens: counts.completion_tokens,
        cached_tokens: counts.cached_tokens,
        reasoning_tokens: counts.reasoning_tokens,
        latency_ms: percentiles(hists.map(|h| &h.latency)),
        ttfb_ms: percentiles(hists.map(|h| &h.ttfb)),
    }
}

/// Tenths of a millisecond.
fn round(ms: f64) -> f64 {
    (ms * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::config::Retention;

    const NOW: u64 = 1_733_500_000_000;

    fn cutoffs() -> Cutoffs {
        Cutoffs::at(NOW, &Retention::default())
    }

    fn planned(query: &str) -> Result<Plan, QueryError> {
        plan(&parse(query).expect("parses"), NOW, &cutoffs())
    }

    #[test]
    fn every_parameter_is_read() {
        let request = parse(
            "from=2024-12-06T15:00:00Z&to=1733500000000&step=5m&group_by=key&model=gpt-4o&key=team%20a&deployment=east%2Fd&format=csv",
        )
        .expect("parses");
        assert_eq!(request.from, Some(1_733_497_200_000));
        assert_eq!(request.to, Some(1_733_500_000_000));
        assert_eq!(request.step, Step::Every(300_000));
        assert_eq!(request.group_by, Some(UsageGroupBy::Key));
        assert_eq!(
            request.filters,
            [
                Some("gpt-4o".to_string()),
                Some("team a".to_string()),
                Some("east/d".to_string())
            ]
        );
        assert_eq!(request.format, Some(Format::Csv));
        assert_eq!(
            parse("step=&model=").expect("blank"),
            UsageRequest::default()
        );
    }

    #[test]
    fn offsets_are_read_as_utc() {
        assert_eq!(
            parse_time("2024-12-06T17:00:00+02:00"),
            parse_time("2024-12-06T15:00:00Z")
        );
        assert_eq!(
            parse_time("2024-12-06T10:30:00.5-04:30"),
            parse_time("2024-12-06T15:00:00.5Z")
        );
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn bad_parameters_are_named() {
        let cases = [
            ("since=1", "unknown_parameter", None),
            ("model=a&model=b", "duplicate_parameter", Some("model")),
            ("from=noon", "invalid_time", Some("from")),
            ("step=30s", "invalid_step", Some("step")),
            ("step=often", "invalid_step", Some("step")),
            ("group_by=region", "invalid_group_by", Some("group_by")),
            ("format=xml", "invalid_format", Some("format")),
        ];
        for (query, code, param) in cases {
            let err = parse(query).expect_err(query);
            assert_eq!((err.code, err.param), (code, param), "{query}: {err}");
        }
        let long = format!("group_by={}", "x".repeat(10_000));
        assert!(parse(&long).expect_err("long").message.len() < 1000);
    }

    #[test]
    fn the_default_range_is_the_last_hour_at_one_minute() {
        let plan = planned("").expect("plan");
        assert_eq!(plan.tier, Tier::Minute);
        assert_eq!(plan.step, MINUTE_MS);
        assert_eq!(plan.from, floor(NOW - HOUR_MS, MINUTE_MS));
        assert_eq!(plan.to, NOW.div_ceil(MINUTE_MS) * MINUTE_MS);
    }

    #[test]
    fn auto_picks_the_finest_kept_resolution_within_400_points() {
        let day = planned(&format!("from={}&to={NOW}", NOW - DAY_MS)).expect("plan");
        assert_eq!((day.tier, day.step), (Tier::Minute, 5 * MINUTE_MS));
        let week = planned(&format!("from={}&to={NOW}", NOW - 7 * DAY_MS)).expect("plan");
        assert_eq!((week.tier, week.step), (Tier::Hour, HOUR_MS));
        let quarter = planned(&format!("from={}&to={NOW}", NOW - 90 * DAY_MS)).expect("plan");
        assert_eq!((quarter.tier, quarter.step), (Tier::Hour, 6 * HOUR_MS));
        let years = planned(&format!("from={}&to={NOW}", NOW - 3 * 365 * DAY_MS)).expect("plan");
        assert_eq!((years.tier, years.step), (Tier::Day, 7 * DAY_MS));
    }

    #[test]
    fn an_explicit_step_reads_the_coarsest_resolution_that_divides_it() {
        let hourly = planned(&format!("from={}&step=2h", NOW - DAY_MS)).expect("plan");
        assert_eq!((hourly.tier, hourly.step), (Tier::Hour, 2 * HOUR_MS));
        let daily = planned(&format!("from={}&step=1d", NOW - DAY_MS)).expect("plan");
        assert_eq!(daily.tier, Tier::Day);
        assert_eq!(daily.from % DAY_MS, 0);
        let odd = planned(&format!("from={}&step=90m", NOW - DAY_MS)).expect("plan");
        assert_eq!(odd.tier, Tier::Minute);
    }

    #[test]
    fn a_step_finer_than_what_is_kept_names_the_finest_available() {
        let err = planned(&format!("from={}&step=1m", NOW - 10 * DAY_MS)).expect_err("too fine");
        assert_eq!(err.code, "step_too_fine");
        assert!(err.message.contains("is 1h"), "{}", err.message);
        let err = planned(&format!("from={}&step=1h", NOW - 100 * DAY_MS)).expect_err("too fine");
        assert!(err.message.contains("is 1day"), "{}", err.message);
        assert!(planned(&format!("from={}&step=1m", NOW - 47 * HOUR_MS)).is_ok());
    }

    #[test]
    fn ranges_must_be_ordered_and_not_too_finely_divided() {
        let err = planned(&format!("from={NOW}&to={}", NOW - 1)).expect_err("order");
        assert_eq!(err.code, "invalid_range");
        let err =
            planned(&format!("from={}&to={NOW}&step=1m", NOW - 8 * DAY_MS)).expect_err("points");
        assert_eq!(err.code, "step_too_fine");
        let retention = Retention {
            minutes: Duration::from_secs(7 * 86_400),
            ..Retention::default()
        };
        let err = plan(
            &parse(&format!("from={}&to={NOW}&step=1m", NOW - 7 * DAY_MS)).expect("parses"),
            NOW,
            &Cutoffs::at(NOW, &retention),
        )
        .expect_err("points");
        assert_eq!(err.code, "too_many_points");
    }
}
