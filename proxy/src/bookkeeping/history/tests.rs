//! The history as a whole, on a clock the tests set: requests counted in their minute, sealed,
//! rolled up, kept or dropped, written and read back, and queried.

use std::time::Duration;

use super::query::{Step, UsageRequest, parse};
use super::tiers::{DAY_MS, HOUR_MS};
use super::*;
use crate::bookkeeping::stats::ErrorClass;
use crate::ops::contract::UsageCounts;

/// 2024-12-06T00:00:00Z.
const T0: u64 = 1_733_443_200_000;

fn ok<'a>(model: &'a str, key: &'a str, tokens: u64, latency_ms: u64) -> Sample<'a> {
    Sample {
        model: Some(model),
        key: Some(key),
        upstream: Some("east"),
        deployment: Some(model),
        outcome: Outcome::Succeeded,
        status: 200,
        usage: Some(Usage {
            prompt_tokens: tokens,
            completion_tokens: 2,
            total_tokens: tokens + 2,
            cached_tokens: 1,
            reasoning_tokens: 1,
        }),
        latency: Duration::from_millis(latency_ms),
        ttfb: Some(Duration::from_millis(latency_ms / 2)),
    }
}

fn refused() -> Sample<'static> {
    Sample {
        model: None,
        key: None,
        upstream: None,
        deployment: None,
        outcome: Outcome::Failed(ErrorClass::Unauthorized),
        status: 401,
        usage: None,
        latency: Duration::from_micros(300),
        ttfb: None,
    }
}

fn throttled<'a>(model: &'a str, key: &'a str) -> Sample<'a> {
    Sample {
        outcome: Outcome::Failed(ErrorClass::Upstream4xx),
        status: 429,
        usage: None,
        ..ok(model, key, 0, 10)
    }
}

fn query(history: &History, text: &str, now: u64) -> crate::ops::contract::UsagePage {
    history
        .query(&parse(text).expect("parses"), now, &Retention::default())
        .unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn totals(page: &crate::ops::contract::UsagePage) -> (u64, u64, u64) {
    (
        page.total.requests,
        page.total.prompt_tokens,
        page.total.rate_limited,
    )
}

/// The same traffic, every query: 3 requests in the first minute, 1 in the next, 1 an hour
/// later, one refused request, one 429.
fn traffic(history: &History) {
    history.record_at(T0 + 1_000, &ok("gpt-4o", "team-a", 10, 100));
    history.record_at(T0 + 59_999, &ok("gpt-4o", "team-b", 20, 200));
    history.record_at(T0 + 30_000, &refused());
    history.record_at(T0 + 60_000, &ok("o3", "team-a", 40, 400));
    history.record_at(T0 + HOUR_MS + 5, &ok("o3", "team-a", 80, 800));
    history.record_at(T0 + HOUR_MS + 6, &throttled("gpt-4o", "team-b"));
}

#[test]
fn requests_count_in_the_minute_they_end_in() {
    let history = History::in_memory();
    traffic(&history);
    let now = T0 + HOUR_MS + 10_000;
    let page = query(
        &history,
        &format!("from={T0}&to={}&step=1m", T0 + 2 * HOUR_MS),
        now,
    );
    let all = &page.series[0];
    assert_eq!(all.group, "all");
    let points: Vec<(u64, u64)> = all
        .points
        .iter()
        .map(|p| (p.t, p.counts.requests))
        .collect();
    assert_eq!(
        points,
        vec![(T0, 3), (T0 + 60_000, 1), (T0 + HOUR_MS, 2)],
        "only minutes with traffic, each request in its own minute"
    );
    assert_eq!(totals(&page), (6, 150, 1));
    assert_eq!(page.total.successes, 4);
    assert_eq!(page.total.errors["unauthorized"], 1);
    assert_eq!(page.total.errors["upstream_4xx"], 1);
    assert_eq!(page.total.errors.len(), 2);
    assert_eq!(page.total.cached_tokens, 4);
    assert_eq!(page.total.reasoning_tokens, 4);
}

#[test]
fn every_resolution_answers_the_same_totals_before_and_after_roll_up() {
    let history = History::in_memory();
    traffic(&history);
    let range = format!("from={T0}&to={}", T0 + 2 * HOUR_MS);
    let check = |now: u64| {
        for step in ["1m", "5m", "1h", "2h", "1d"] {
            let page = query(&history, &format!("{range}&step={step}"), now);
            assert_eq!(totals(&page), (6, 150, 1), "step {step} at {now}");
        }
    };
    // Nothing sealed yet: all of it is in the hook's minutes.
    check(T0 + HOUR_MS + 10_000);
    // Sealed into minutes, the first hour closed, the second open.
    history.maintain(T0 + HOUR_MS + 2 * 60_000, &Retention::default());
    check(T0 + HOUR_MS + 2 * 60_000);
    // Both hours and the day closed.
    history.maintain(T0 + DAY_MS + 60_000, &Retention::default());
    check(T0 + DAY_MS + 60_000);
    assert_eq!(history.frame_counts(), [3, 2, 1]);
    let hourly = query(&history, &format!("{range}&step=1h"), T0 + DAY_MS);
    let points: Vec<(u64, u64)> = hourly.series[0]
        .points
        .iter()
        .map(|p| (p.t, p.counts.requests))
        .collect();
    assert_eq!(points, vec![(T0, 4), (T0 + HOUR_MS, 2)]);
}

#[test]
fn groups_filters_and_their_percentiles() {
    let history = History::in_memory();
    traffic(&history);
    history.maintain(T0 + 2 * HOUR_MS, &Retention::default());
    let range = format!("from={T0}&to={}&step=1h", T0 + 2 * HOUR_MS);
    let now = T0 + 2 * HOUR_MS;

    let by_model = query(&history, &format!("{range}&group_by=model"), now);
    let groups: Vec<(&str, u64)> = by_model
        .series
        .iter()
        .map(|s| (s.group.as_str(), s.total.requests))
        .collect();
    // Most requests first, ties by name; the refused request has no model.
    assert_eq!(groups, vec![("gpt-4o", 3), ("o3", 2), ("", 1)]);
    let o3 = &by_model.series[1].total;
    assert_eq!(o3.prompt_tokens, 120);
    let p50 = o3.latency_ms.p50.expect("latency");
    assert!((400.0..=820.0).contains(&p50), "{p50}");
    assert!(o3.ttfb_ms.p99.is_some());

    let by_deployment = query(&history, &format!("{range}&group_by=deployment"), now);
    assert_eq!(by_deployment.series[0].group, "east/gpt-4o");

    let team_a = query(&history, &format!("{range}&group_by=key&key=team-a"), now);
    assert_eq!(team_a.series.len(), 1);
    assert_eq!(team_a.series[0].group, "team-a");
    assert_eq!(team_a.total.requests, 3);
    assert_eq!(team_a.total.prompt_tokens, 130);
    assert!(team_a.total.latency_ms.p50.is_some(), "per key: kept");

    // A key with a model: counters exact, no histogram to read percentiles from.
    let cross = query(&history, &format!("{range}&group_by=model&key=team-a"), now);
    let groups: Vec<(&str, u64)> = cross
        .series
        .iter()
        .map(|s| (s.group.as_str(), s.total.requests))
        .collect();
    assert_eq!(groups, vec![("o3", 2), ("gpt-4o", 1)]);
    assert_eq!(cross.total.latency_ms.p50, None);
    assert_eq!(cross.series[0].points[0].counts.ttfb_ms.p90, None);

    let filtered = query(
        &history,
        &format!("{range}&model=gpt-4o&deployment=east/gpt-4o"),
        now,
    );
    assert_eq!(totals(&filtered), (3, 30, 1));
    let nothing = query(&history, &format!("{range}&model=never-seen"), now);
    assert!(nothing.series.is_empty());
    assert_eq!(nothing.total, UsageCounts::default());
}

#[test]
fn retention_drops_old_buckets_and_queries_move_to_coarser_ones() {
    let history = History::in_memory();
    let retention = Retention {
        minutes: Duration::from_secs(3600),
        hours: Duration::from_secs(2 * 86_400),
        days: Some(Duration::from_secs(3 * 86_400)),
    };
    for day in 0..5 {
        history.record_at(T0 + day * DAY_MS + 1000, &ok("m", "k", 1, 10));
        history.maintain(T0 + day * DAY_MS + 2 * 60_000, &retention);
    }
    let now = T0 + 4 * DAY_MS + 2 * 60_000;
    history.maintain(now, &retention);
    // Minutes: the hour before now, from 23:00; hours: two days back; days: three days back.
    assert_eq!(history.frame_counts(), [1, 3, 4]);
    let request = UsageRequest {
        from: Some(T0),
        to: Some(now),
        step: Step::Auto,
        ..UsageRequest::default()
    };
    let page = history.query(&request, now, &retention).expect("answers");
    assert_eq!(page.step_ms, DAY_MS);
    // Day 0 is gone; days 1 to 3 are closed, day 4 open.
    assert_eq!(page.total.requests, 4);
    let err = history
        .query(
            &UsageRequest {
                step: Step::Every(HOUR_MS),
                ..request
            },
            now,
            &retention,
        )
        .expect_err("hours are not kept that far back");
    assert_eq!(err.code, "step_too_fine");
}

#[test]
fn the_history_survives_a_restart_and_the_minute_being_counted_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let history = History::load(dir.path(), T0);
    traffic(&history);
    history.maintain(T0 + HOUR_MS + 2 * 60_000, &Retention::default());
    // A request in the minute still being counted when the files are written.
    history.record_at(T0 + HOUR_MS + 2 * 60_000 + 1, &ok("o3", "team-c", 1000, 5));
    history
        .persist(T0 + HOUR_MS + 2 * 60_000 + 2)
        .expect("writes");
    // No day is over yet: the days file is written once one is.
    let written: Vec<bool> = file_paths(dir.path()).iter().map(|p| p.exists()).collect();
    assert_eq!(written, vec![true, true, true, false]);
    let range = format!("from={T0}&to={}", T0 + 2 * HOUR_MS);
    let before: Vec<_> = ["1m", "1h", "1d"]
        .iter()
        .map(|step| {
            query(
                &history,
                &format!("{range}&step={step}&group_by=key"),
                T0 + HOUR_MS + 3 * 60_000,
            )
        })
        .collect();
    drop(history);

    // Started again in the same minute: its new requests add to the one written.
    let again = History::load(dir.path(), T0 + HOUR_MS + 2 * 60_000 + 500);
    let after: Vec<_> = ["1m", "1h", "1d"]
        .iter()
        .map(|step| {
            query(
                &again,
                &format!("{range}&step={step}&group_by=key"),
                T0 + HOUR_MS + 3 * 60_000,
            )
        })
        .collect();
    assert_eq!(after, before);
    assert_eq!(after[0].total.prompt_tokens, 1150);
    again.record_at(T0 + HOUR_MS + 2 * 60_000 + 600, &ok("o3", "team-c", 1, 5));
    again.maintain(T0 + DAY_MS + 60_000, &Retention::default());
    again.persist(T0 + DAY_MS + 60_000).expect("writes");
    drop(again);
    let third = History::load(dir.path(), T0 + DAY_MS + 2 * 60_000);
    for step in ["1m", "1h", "1d"] {
        let page = query(
            &third,
            &format!("{range}&step={step}"),
            T0 + DAY_MS + 2 * 60_000,
        );
        assert_eq!(page.total.requests, 8, "step {step}");
        assert_eq!(page.total.prompt_tokens, 1151, "step {step}");
    }
}

#[test]
fn a_lost_hours_file_is_rebuilt_from_the_minutes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let history = History::load(dir.path(), T0);
    traffic(&history);
    history.maintain(T0 + 2 * HOUR_MS, &Retention::default());
    history.persist(T0 + 2 * HOUR_MS).expect("writes");
    drop(history);
    std::fs::write(dir.path().join("usage-hours.bin"), b"damaged").expect("write");
    let again = History::load(dir.path(), T0 + 2 * HOUR_MS);
    again.maintain(T0 + 2 * HOUR_MS, &Retention::default());
    let page = query(
        &again,
        &format!("from={T0}&to={}&step=1h", T0 + 2 * HOUR_MS),
        T0 + 2 * HOUR_MS,
    );
    assert_eq!(totals(&page), (6, 150, 1));
    assert!(
        std::fs::read_dir(dir.path())
            .expect("dir")
            .flatten()
            .any(|e| e
                .file_name()
                .to_string_lossy()
                .starts_with("usage-hours.bin.damaged-")),
        "the damaged file is kept aside"
    );
}

#[test]
fn a_clock_that_goes_back_counts_in_the_newest_open_minute() {
    let history = History::in_memory();
    history.record_at(T0 + 5 * 60_000, &ok("m", "k", 1, 1));
    history.maintain(T0 + 6 * 60_000, &Retention::default());
    history.record_at(T0 + 60_000, &ok("m", "k", 1, 1));
    let page = query(
        &history,
        &format!("from={T0}&to={}&step=1m", T0 + HOUR_MS),
        T0 + 6 * 60_000,
    );
    let ts: Vec<u64> = page.series[0].points.iter().map(|p| p.t).collect();
    assert_eq!(ts, vec![T0 + 5 * 60_000, T0 + 6 * 60_000]);
}

#[test]
fn metrics_have_the_history_bounds() {
    let history = History::in_memory();
    history.record_at(T0, &ok("gpt-4o", "k", 1, 100));
    let text = crate::ops::metrics::render_with(move |encoder| history.encode_metrics(encoder));
    assert!(
        text.contains("# TYPE gateway_request_duration_seconds histogram"),
        "{text}"
    );
    assert!(
        text.contains("gateway_request_duration_seconds_bucket{model=\"gpt-4o\",le=\"0.1\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("gateway_request_duration_seconds_bucket{model=\"gpt-4o\",le=\"0.082\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("gateway_request_duration_seconds_bucket{model=\"gpt-4o\",le=\"+Inf\"} 1")
    );
    assert!(text.contains("gateway_request_duration_seconds_count{model=\"gpt-4o\"} 1"));
    assert!(text.contains("gateway_request_duration_seconds_sum{model=\"gpt-4o\"} 0.1\n"));
    assert!(text.contains("gateway_request_ttfb_seconds_bucket{model=\"gpt-4o\",le=\"0.056\"} 1"));
    assert_eq!(
        text.matches("gateway_request_duration_seconds_bucket")
            .count(),
        BOUNDS_US.len() + 1
    );
}

#[test]
fn the_histories_of_two_replicas_add_up_with_their_open_hours() {
    let files = |history: &History, dir: &std::path::Path| -> Vec<(String, Vec<u8>)> {
        history.persist(T0 + HOUR_MS + 2 * 60_000).expect("persist");
        file_paths(dir)
            .into_iter()
            .filter_map(|path| {
                let bytes = std::fs::read(&path).ok()?;
                Some((path.file_name()?.to_string_lossy().into_owned(), bytes))
            })
            .collect()
    };
    let dir_a = tempfile::tempdir().expect("tempdir");
    let a = History::load(dir_a.path(), T0);
    traffic(&a);
    a.maintain(T0 + HOUR_MS + 2 * 60_000, &Retention::default());
    let dir_b = tempfile::tempdir().expect("tempdir");
    let b = History::load(dir_b.path(), T0);
    // Other names, in another order: ids differ between the replicas' files.
    b.record_at(T0 + 2_000, &ok("o3", "team-c", 5, 50));
    b.record_at(T0 + HOUR_MS + 7, &ok("gpt-4o", "team-b", 7, 70));
    b.maintain(T0 + HOUR_MS + 2 * 60_000, &Retention::default());

    let merged = History::merged(&[files(&a, dir_a.path()), files(&b, dir_b.path())]);
    let now = T0 + HOUR_MS + 3 * 60_000;
    let one = |history: &History, text: &str| {
        history
            .query(&parse(text).expect("parses"), now, &Retention::default())
            .expect("query")
    };
    let text = format!("from={T0}&to={}&step=1h", T0 + 2 * HOUR_MS);
    let (a_total, b_total) = (one(&a, &text).total, one(&b, &text).total);
    let all = one(&merged, &text);
    assert_eq!(all.total.requests, a_total.requests + b_total.requests);
    assert_eq!(
        all.total.prompt_tokens,
        a_total.prompt_tokens + b_total.prompt_tokens
    );
    let by_key = one(&merged, &format!("{text}&group_by=key"));
    let team_c = by_key
        .series
        .iter()
        .find(|s| s.group == "team-c")
        .expect("the second replica's key");
    assert_eq!(team_c.total.requests, 1);
    let minutes = one(
        &merged,
        &format!("from={T0}&to={}&step=1m", T0 + 2 * 60_000),
    );
    assert_eq!(
        minutes.total.requests,
        4 + 1,
        "the first two minutes of both"
    );
}
