//! `GET <admin>/api/usage`: the proxy's usage history (`/usage` on its ops listener) for the
//! statistics charts, the overview's sparklines and each key's month (in blob mode the UI reads
//! every replica's, `usage/merged`, instead). Control checks and bounds
//! the query (known parameters, each once, of bounded length) and passes the proxy's answer,
//! JSON or CSV, on as it came; the proxy judges ranges and steps. Never forwards anything the
//! operator sent beyond those parameters.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::AppState;
use crate::errors::AdminError;

/// The longest `from` / `to` (an RFC 3339 time or epoch milliseconds).
const TIME_LIMIT: usize = 40;
/// The longest `step` (`auto`, `5m`, `1h30m`).
const STEP_LIMIT: usize = 16;
/// The longest model, key or deployment id filtered on.
const ID_LIMIT: usize = 256;

/// The codes of the proxy's `/usage` refusals (its `400`s and `503 usage_history_off`),
/// passed on as it answered them (and given alike by `usage/merged`); a client words each
/// from its code.
pub const PASSED_ON_CODES: &[&str] = &[
    "unknown_parameter",
    "duplicate_parameter",
    "invalid_group_by",
    "invalid_format",
    "invalid_time",
    "invalid_step",
    "invalid_range",
    "step_too_fine",
    "too_many_points",
    "usage_history_off",
];

pub async fn usage(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, AdminError> {
    let query =
        usage_query(req.query_string(), accepts_csv(&req)).map_err(AdminError::BadRequest)?;
    let config = state.store.last_good();
    let answer = state.ops.usage(&config, &query).await?;
    let status = actix_web::http::StatusCode::from_u16(answer.status)
        .map_err(|e| AdminError::Internal("passing on the usage answer", e.into()))?;
    let mut response = HttpResponse::build(status);
    response.content_type(
        answer
            .content_type
            .unwrap_or_else(|| "application/json".to_string()),
    );
    if let Some(disposition) = answer.content_disposition {
        response.insert_header((header::CONTENT_DISPOSITION, disposition));
    }
    Ok(response.body(answer.body))
}

/// Whether the caller's `Accept` header names CSV.
pub(super) fn accepts_csv(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/csv"))
}

/// The parameters to send to the proxy's `/usage`, in the order given: each known one at most
/// once, empty ones left out (no filter), `format=csv` added when the caller accepts CSV and
/// chose no format. Errors say which parameter is wrong and why.
fn usage_query(query: &str, accepts_csv: bool) -> Result<Vec<(&'static str, String)>, String> {
    let mut out: Vec<(&'static str, String)> = Vec::new();
    let mut seen: Vec<&'static str> = Vec::new();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let known = known_parameter(&name).ok_or_else(|| {
            format!(
                "unknown parameter \"{}\": use from, to, step, group_by, model, key, deployment or format",
                shortened(&name)
            )
        })?;
        if seen.contains(&known) {
            return Err(format!("the parameter \"{known}\" is given more than once"));
        }
        seen.push(known);
        if value.is_empty() {
            continue;
        }
        check_value(known, &value)?;
        out.push((known, value.into_owned()));
    }
    if accepts_csv && !seen.contains(&"format") {
        out.push(("format", "csv".to_string()));
    }
    Ok(out)
}

fn known_parameter(name: &str) -> Option<&'static str> {
    [
        "from",
        "to",
        "step",
        "group_by",
        "model",
        "key",
        "deployment",
        "format",
    ]
    .into_iter()
    .find(|known| *known == name)
}

fn check_value(name: &str, value: &str) -> Result<(), String> {
    let fits = |limit: usize, allowed: fn(char) -> bool| {
        value.len() <= limit && value.chars().all(allowed)
    };
    let ok = match name {
        "from" | "to" => fits(TIME_LIMIT, |c| {
            c.is_ascii_alphanumeric() || matches!(c, '-' | ':' | '.' | '+')
        }),
        "step" => fits(STEP_LIMIT, |c| c.is_ascii_alphanumeric()),
        "group_by" => matches!(value, "model" | "key" | "deployment"),
        "format" => matches!(value, "json" | "csv"),
        _ => fits(ID_LIMIT, |c| !c.is_control()),
    };
    if ok {
        return Ok(());
    }
    Err(match name {
        "from" | "to" => format!(
            "{name} must be an RFC 3339 time (2025-01-31T12:00:00Z) or Unix milliseconds, at most {TIME_LIMIT} characters"
        ),
        "step" => format!(
            "step must be \"auto\" or a duration such as 1m, 5m, 1h or 1d, at most {STEP_LIMIT} characters"
        ),
        "group_by" => "group_by must be model, key or deployment".to_string(),
        "format" => "format must be json or csv".to_string(),
        _ => {
            format!("{name} must be an id of at most {ID_LIMIT} bytes, without control characters")
        }
    })
}

/// At most 40 characters of what the operator sent, for an error message.
fn shortened(text: &str) -> String {
    let mut short: String = text.chars().take(40).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names<'a>(query: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
        query.iter().map(|(n, v)| (*n, v.as_str())).collect()
    }

    #[test]
    fn the_proxys_refusals_of_a_query_are_listed() {
        for query in [
            "since=1",
            "model=a&model=b",
            "group_by=team",
            "format=xml",
            "from=yesterday",
            "step=7s",
        ] {
            let refused = proxy::bookkeeping::history::query::parse(query)
                .err()
                .unwrap_or_else(|| panic!("{query} is refused"));
            assert!(PASSED_ON_CODES.contains(&refused.code), "{}", refused.code);
        }
    }

    #[test]
    fn known_parameters_pass_in_order_and_empty_ones_are_no_filter() {
        let query = usage_query(
            "from=2025-01-01T00%3A00%3A00%2B08%3A00&to=1733503600000&step=5m&group_by=model&model=gpt-4o&key=&format=csv",
            false,
        )
        .expect("valid");
        assert_eq!(
            names(&query),
            [
                ("from", "2025-01-01T00:00:00+08:00"),
                ("to", "1733503600000"),
                ("step", "5m"),
                ("group_by", "model"),
                ("model", "gpt-4o"),
                ("format", "csv"),
            ]
        );
    }

    #[test]
    fn an_unknown_parameter_is_named_in_the_error() {
        let err = usage_query("from=1&window=5", false).expect_err("unknown");
        assert!(err.contains("\"window\""), "{err}");
    }

    #[test]
    fn a_long_unknown_parameter_is_not_echoed_whole() {
        let name = "x".repeat(5000);
        let err = usage_query(&format!("{name}=1"), false).expect_err("unknown");
        assert!(err.len() < 200, "{}", err.len());
    }

    #[test]
    fn a_parameter_given_twice_is_refused() {
        let err = usage_query("model=a&model=b", false).expect_err("twice");
        assert!(err.contains("\"model\""), "{err}");
    }

    #[test]
    fn group_by_and_format_take_only_their_values() {
        assert!(
            usage_query("group_by=upstream", false)
                .expect_err("group_by")
                .contains("model, key or deployment")
        );
        assert!(
            usage_query("format=xml", false)
                .expect_err("format")
                .contains("json or csv")
        );
    }

    #[test]
    fn times_steps_and_ids_are_bounded() {
        assert!(usage_query(&format!("from={}", "1".repeat(41)), false).is_err());
        assert!(usage_query("to=now%3Bdrop", false).is_err());
        assert!(usage_query("step=5%20m", false).is_err());
        assert!(usage_query(&format!("key={}", "k".repeat(257)), false).is_err());
        assert!(usage_query("deployment=a%0Ab", false).is_err());
        assert!(usage_query(&format!("key={}", "k".repeat(256)), false).is_ok());
    }

    #[test]
    fn accepting_csv_asks_for_csv_unless_a_format_is_chosen() {
        let csv = usage_query("step=1h", true).expect("valid");
        assert_eq!(names(&csv), [("step", "1h"), ("format", "csv")]);
        let json = usage_query("format=json", true).expect("valid");
        assert_eq!(names(&json), [("format", "json")]);
    }
}
