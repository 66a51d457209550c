//! The time spans limits count in: fixed windows aligned on the Unix epoch, and calendar days
//! and months in UTC. Times are Unix milliseconds.

use std::time::Duration;

use crate::config::{Budget, BudgetPeriod};

const DAY_MS: u64 = 86_400_000;

/// The window of length `per` holding `now_ms`: its start and end.
pub fn window(now_ms: u64, per: Duration) -> (u64, u64) {
    let len = (per.as_millis() as u64).max(1);
    let start = now_ms - now_ms % len;
    (start, start + len)
}

/// The calendar day or month (UTC) holding `now_ms`: its start and end.
pub fn calendar(now_ms: u64, period: BudgetPeriod) -> (u64, u64) {
    let day = now_ms / DAY_MS;
    match period {
        BudgetPeriod::Day => (day * DAY_MS, (day + 1) * DAY_MS),
        BudgetPeriod::Month => {
            let (year, month, _) = civil_from_days(day as i64);
            let start = days_from_civil(year, month, 1);
            let (next_year, next_month) = if month == 12 {
                (year + 1, 1)
            } else {
                (year, month + 1)
            };
            let end = days_from_civil(next_year, next_month, 1);
            (start as u64 * DAY_MS, end as u64 * DAY_MS)
        }
    }
}

/// The span a budget counts in at `now_ms`: its calendar day or month, starting at its last
/// reset when that falls within.
pub fn budget(now_ms: u64, budget: &Budget) -> (u64, u64) {
    let (start, end) = calendar(now_ms, budget.period);
    let start = match budget.reset_at_ms {
        Some(reset) if reset > start && reset <= now_ms => reset,
        _ => start,
    };
    (start, end)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(rfc3339: &str) -> u64 {
        humantime::parse_rfc3339(rfc3339)
            .expect("time")
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after epoch")
            .as_millis() as u64
    }

    #[test]
    fn windows_are_aligned_on_the_epoch() {
        let now = ms("2026-12-06T10:15:42.500Z");
        assert_eq!(
            window(now, Duration::from_secs(60)),
            (ms("2026-12-06T10:15:00Z"), ms("2026-12-06T10:16:00Z"))
        );
        assert_eq!(
            window(now, Duration::from_secs(2)),
            (ms("2026-12-06T10:15:42Z"), ms("2026-12-06T10:15:44Z"))
        );
    }

    #[test]
    fn days_and_months_are_utc_calendar_spans() {
        let now = ms("2028-02-29T23:59:59.999Z");
        assert_eq!(
            calendar(now, BudgetPeriod::Day),
            (ms("2028-02-29T00:00:00Z"), ms("2028-03-01T00:00:00Z"))
        );
        assert_eq!(
            calendar(now, BudgetPeriod::Month),
            (ms("2028-02-01T00:00:00Z"), ms("2028-03-01T00:00:00Z"))
        );
        assert_eq!(
            calendar(ms("2026-12-31T12:00:00Z"), BudgetPeriod::Month),
            (ms("2026-12-01T00:00:00Z"), ms("2027-01-01T00:00:00Z"))
        );
    }
}
