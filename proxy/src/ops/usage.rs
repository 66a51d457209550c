//! `GET /usage`: the usage history over a range, as JSON (`UsagePage`) or as CSV for a
//! spreadsheet. The query is read and answered by `bookkeeping::history`; this is the HTTP side:
//! the format chosen by `format` or `Accept`, the answer run on the blocking pool, errors in the
//! OpenAI shape. Echoes nothing unbounded.

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use actix_web::http::StatusCode;
use actix_web::http::header::{ACCEPT, CONTENT_DISPOSITION, HeaderMap};
use actix_web::{HttpRequest, HttpResponse, web};

use super::OpsState;
use super::contract::{OpsError, OpsErrorBody, Percentiles, UsageCounts, UsagePage};
use crate::bookkeeping::history::query::{self, Format, QueryError};
use crate::process::clock::now_ms;

pub const CSV_CONTENT_TYPE: &str = "text/csv; charset=utf-8";

const CSV_HEADER: &str = "time,group,requests,successes,cancelled,errors,rate_limited,prompt_tokens,completion_tokens,cached_tokens,reasoning_tokens,latency_p50_ms,latency_p90_ms,latency_p99_ms,ttfb_p50_ms,ttfb_p90_ms,ttfb_p99_ms";

pub async fn usage(req: HttpRequest, state: web::Data<OpsState>) -> HttpResponse {
    let request = match query::parse(req.query_string()) {
        Ok(request) => request,
        Err(err) => return error_response(&err),
    };
    let format = request
        .format
        .unwrap_or_else(|| format_from_accept(req.headers()));
    let retention = state.shared.snapshot.load().config.stats.retention;
    let accounting = state.accounting.clone();
    let answer = web::block(move || accounting.history.query(&request, now_ms(), &retention)).await;
    match answer {
        Ok(Ok(page)) => match format {
            Format::Json => HttpResponse::Ok().json(page),
            Format::Csv => HttpResponse::Ok()
                .content_type(CSV_CONTENT_TYPE)
                .insert_header((CONTENT_DISPOSITION, csv_disposition(&page)))
                .body(csv(&page)),
        },
        Ok(Err(err)) => error_response(&err),
        Err(err) => {
            tracing::error!(error = %err, "the usage query failed");
            error_response(&QueryError {
                code: "internal_error",
                param: None,
                message: "the usage history could not be read".into(),
            })
        }
    }
}

/// CSV when the `Accept` header prefers `text/csv` to `application/json` (by `q`, then by
/// order), else JSON.
fn format_from_accept(headers: &HeaderMap) -> Format {
    // (q, -position) of each type's best mention.
    let mut csv: Option<(f32, isize)> = None;
    let mut json: Option<(f32, isize)> = None;
    let ranges = headers
        .get_all(ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','));
    for (position, range) in ranges.enumerate() {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let rank = (q, -(position as isize));
        let best = if media.eq_ignore_ascii_case("text/csv") {
            &mut csv
        } else if media.eq_ignore_ascii_case("application/json") {
            &mut json
        } else {
            continue;
        };
        if best.is_none_or(|b| rank.0 > b.0) {
            *best = Some(rank);
        }
    }
    match (csv, json) {
        (Some(c), _) if c.0 <= 0.0 => Format::Json,
        (Some(_), None) => Format::Csv,
        (Some(c), Some(j)) if c > j => Format::Csv,
        _ => Format::Json,
    }
}

/// A refused or failed query in the OpenAI shape, with its `code` and `param`: `400` for the
/// caller's mistakes, `503` when the history is off, `500` when it could not be read.
pub fn error_response(err: &QueryError) -> HttpResponse {
    let (status, internal) = match err.code {
        "internal_error" => (StatusCode::INTERNAL_SERVER_ERROR, true),
        "usage_history_off" => (StatusCode::SERVICE_UNAVAILABLE, true),
        _ => (StatusCode::BAD_REQUEST, false),
    };
    HttpResponse::build(status).json(OpsErrorBody {
        error: OpsError {
            message: err.message.clone(),
            kind: if internal {
                "server_error"
            } else {
                "invalid_request_error"
            }
            .into(),
            param: err.param.map(str::to_string),
            code: err.code.into(),
        },
    })
}

/// `attachment; filename="usage-<from>-<to>.csv"`: how a browser saves a page as CSV.
pub fn csv_disposition(page: &UsagePage) -> String {
    format!(
        "attachment; filename=\"usage-{}-{}.csv\"",
        compact_time(page.from),
        compact_time(page.to)
    )
}

/// `20241206T150000Z`: a time for a file name.
fn compact_time(ms: u64) -> String {
    rfc3339(ms).replace(['-', ':'], "")
}

fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// One row per point, ordered by time, then by series (most requests first).
pub fn csv(page: &UsagePage) -> String {
    let mut rows: Vec<(u64, usize, &UsageCounts)> = page
        .series
        .iter()
        .enumerate()
        .flat_map(|(i, s)| s.points.iter().map(move |p| (p.t, i, &p.counts)))
        .collect();
    rows.sort_by_key(|(t, i, _)| (*t, *i));
    let mut out = String::with_capacity(128 * (rows.len() + 1));
    out.push_str(CSV_HEADER);
    out.push_str("\r\n");
    for (t, i, c) in rows {
        let _ = write!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{}",
            rfc3339(t),
            csv_field(&page.series[i].group),
            c.requests,
            c.successes,
            c.cancelled,
            c.errors.values().sum::<u64>(),
            c.rate_limited,
            c.prompt_tokens,
            c.completion_tokens,
            c.cached_tokens,
            c.reasoning_tokens,
        );
        for p in [&c.latency_ms, &c.ttfb_ms] {
            push_percentiles(&mut out, p);
        }
        out.push_str("\r\n");
    }
    out
}

fn push_percentiles(out: &mut String, p: &Percentiles) {
    for value in [p.p50, p.p90, p.p99] {
        out.push(',');
        if let Some(value) = value {
            let _ = write!(out, "{value}");
        }
    }
}

/// A text field as RFC 4180 wants it, defused for spreadsheets: a leading `=`, `+`, `-`, `@`
/// (or tab, carriage return) would start a formula, so it gets a `'` before it.
pub fn csv_field(text: &str) -> String {
    let mut field = String::with_capacity(text.len() + 3);
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        field.push('\'');
    }
    field.push_str(text);
    if field.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::contract::{UsagePoint, UsageSeries};

    #[test]
    fn fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("gpt-4o"), "gpt-4o");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(csv_field("-1+2"), "'-1+2");
        assert_eq!(csv_field("@team"), "'@team");
        assert_eq!(csv_field("+x,y"), "\"'+x,y\"");
        assert_eq!(csv_field("line\nbreak"), "\"line\nbreak\"");
    }

    #[test]
    fn rows_are_ordered_by_time_then_series() {
        let counts = |requests| UsageCounts {
            requests,
            errors: [("timeout".to_string(), 1), ("upstream_5xx".to_string(), 2)].into(),
            latency_ms: Percentiles {
                p50: Some(120.5),
                p90: Some(250.0),
                p99: None,
            },
            ..UsageCounts::default()
        };
        let series = |group: &str, ts: &[u64]| UsageSeries {
            group: group.into(),
            points: ts
                .iter()
                .map(|t| UsagePoint {
                    t: *t,
                    counts: counts(5),
                })
                .collect(),
            total: counts(5),
        };
        let page = UsagePage {
            from: 0,
            to: 120_000,
            step_ms: 60_000,
            group_by: None,
            series: vec![series("b", &[0, 60_000]), series("=a", &[0])],
            total: counts(15),
        };
        let text = csv(&page);
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines[0], CSV_HEADER);
        assert_eq!(
            lines[1],
            "1970-01-01T00:00:00Z,b,5,0,0,3,0,0,0,0,0,120.5,250,,,,"
        );
        assert!(lines[2].starts_with("1970-01-01T00:00:00Z,'=a,5,"));
        assert!(lines[3].starts_with("1970-01-01T00:01:00Z,b,"));
        assert_eq!(lines[4], "");
        assert_eq!(compact_time(1_733_497_200_000), "20241206T150000Z");
    }

    #[test]
    fn accept_text_csv_selects_csv() {
        let mut headers = HeaderMap::new();
        assert_eq!(format_from_accept(&headers), Format::Json);
        for (accept, format) in [
            ("text/csv", Format::Csv),
            ("text/csv; charset=utf-8", Format::Csv),
            ("text/csv, application/json", Format::Csv),
            ("application/json, text/csv", Format::Json),
            ("application/json;q=0.5, text/csv", Format::Csv),
            ("application/json, text/csv;q=0.9", Format::Json),
            ("text/csv;q=0", Format::Json),
            ("text/csvx, */*", Format::Json),
        ] {
            headers.insert(ACCEPT, accept.parse().expect("value"));
            assert_eq!(format_from_accept(&headers), format, "{accept}");
        }
    }
}
