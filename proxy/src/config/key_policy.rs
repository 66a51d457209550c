//! What a client key may do, beyond being active: the models it may use, its request and
//! token windows, its token budget per calendar day or month, and its expiry.

use std::time::{Duration, SystemTime};

use super::issues::Checker;
use super::raw::{RawBudget, RawClientKey, RawWindow};

/// A model id, exact or with `*` standing for any run of characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPattern(String);

impl ModelPattern {
    pub fn matches(&self, model: &str) -> bool {
        glob_match(self.0.as_bytes(), model.as_bytes())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `*` matches any run of bytes; everything else matches itself.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// What a window counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metered {
    Requests,
    Tokens,
}

impl Metered {
    pub fn as_str(self) -> &'static str {
        match self {
            Metered::Requests => "requests",
            Metered::Tokens => "tokens",
        }
    }
}

/// At most `limit` requests or tokens per `per`, counted in fixed windows aligned on the Unix
/// epoch (a `1m` window runs from one whole minute to the next).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    pub metered: Metered,
    pub limit: u64,
    pub per: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BudgetPeriod {
    Day,
    Month,
}

/// At most `tokens` tokens per calendar day or month (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Budget {
    pub tokens: u64,
    pub period: BudgetPeriod,
    /// Unix ms of the last reset: use before it, within the same period, no longer counts.
    pub reset_at_ms: Option<u64>,
}

/// The limits of one key: what is checked before a request and counted after it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct KeyLimits {
    pub windows: Vec<Window>,
    pub budget: Option<Budget>,
}

impl KeyLimits {
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty() && self.budget.is_none()
    }

    /// Whether tokens count against the key: a token window or a budget.
    pub fn meters_tokens(&self) -> bool {
        self.budget.is_some() || self.windows.iter().any(|w| w.metered == Metered::Tokens)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyPolicy {
    /// `None`: every model.
    pub models: Option<Vec<ModelPattern>>,
    pub limits: KeyLimits,
    pub expires_at: Option<SystemTime>,
}

impl KeyPolicy {
    pub fn allows(&self, model: &str) -> bool {
        self.models
            .as_ref()
            .is_none_or(|patterns| patterns.iter().any(|p| p.matches(model)))
    }
}

const MIN_WINDOW: Duration = Duration::from_secs(1);
const MAX_WINDOW: Duration = Duration::from_secs(366 * 86_400);

pub(super) fn parse(check: &mut Checker, path: &str, raw: &RawClientKey) -> KeyPolicy {
    let models = raw.models.as_ref().map(|models| {
        models
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                if m.trim().is_empty() {
                    check.fail(format!("{path}.models[{i}]"), "must not be empty");
                    None
                } else {
                    Some(ModelPattern(m.trim().to_string()))
                }
            })
            .collect()
    });
    let windows = raw
        .limits
        .iter()
        .enumerate()
        .filter_map(|(i, w)| window(check, &format!("{path}.limits[{i}]"), w))
        .collect();
    let budget = raw
        .budget
        .as_ref()
        .and_then(|b| budget(check, &format!("{path}.budget"), b));
    let expires_at = raw.expires_at.as_deref().and_then(|text| {
        humantime::parse_rfc3339_weak(text.trim())
            .ok()
            .filter(|_| has_offset(text.trim()))
            .or_else(|| {
                check.fail(
                    format!("{path}.expiresAt"),
                    format!("must be an RFC 3339 time with an offset, such as 2027-01-31T23:59:59Z; got \"{text}\""),
                );
                None
            })
    });
    KeyPolicy {
        models,
        limits: KeyLimits { windows, budget },
        expires_at,
    }
}

/// Whether an RFC 3339 text ends with `Z` or a `±hh:mm` offset (humantime reads only UTC).
fn has_offset(text: &str) -> bool {
    text.ends_with('Z') || text.ends_with('z') || text.ends_with("+00:00")
}

fn window(check: &mut Checker, path: &str, raw: &RawWindow) -> Option<Window> {
    let (metered, limit) = match (raw.requests, raw.tokens) {
        (Some(n), None) => (Metered::Requests, n),
        (None, Some(n)) => (Metered::Tokens, n),
        _ => {
            check.fail(path, "give either requests or tokens (one of them)");
            return None;
        }
    };
    if limit == 0 {
        check.fail(
            format!("{path}.{}", metered.as_str()),
            "must be at least 1 (disable the key to refuse everything)",
        );
        return None;
    }
    let per = duration(check, &format!("{path}.per"), &raw.per)?;
    Some(Window {
        metered,
        limit,
        per,
    })
}

fn duration(check: &mut Checker, path: &str, text: &str) -> Option<Duration> {
    match humantime::parse_duration(text.trim()) {
        Ok(d) if (MIN_WINDOW..=MAX_WINDOW).contains(&d) && d.subsec_nanos() == 0 => Some(d),
        _ => {
            check.fail(
                path,
                format!("must be a whole number of seconds from 1s to 366d, such as \"1m\", \"1h\", \"1d\" or \"90s\"; got \"{text}\""),
            );
            None
        }
    }
}

fn budget(check: &mut Checker, path: &str, raw: &RawBudget) -> Option<Budget> {
    let period = match raw.per.trim() {
        "day" => BudgetPeriod::Day,
        "month" => BudgetPeriod::Month,
        other => {
            check.fail(
                format!("{path}.per"),
                format!("must be \"day\" or \"month\", got \"{other}\""),
            );
            return None;
        }
    };
    if raw.tokens == 0 {
        check.fail(format!("{path}.tokens"), "must be at least 1");
        return None;
    }
    let reset_at_ms = match raw.reset_at.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => {
            match humantime::parse_rfc3339(text) {
                Ok(at) => Some(crate::process::clock::epoch_ms(at)),
                Err(_) => {
                    check.fail(
                    format!("{path}.resetAt"),
                    format!("must be an RFC 3339 UTC time such as 2027-01-31T23:59:59Z; got \"{text}\""),
                );
                    return None;
                }
            }
        }
    };
    Some(Budget {
        tokens: raw.tokens,
        period,
        reset_at_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{issue_paths, load_value, sample};
    use super::*;
    use serde_json::json;

    #[test]
    fn patterns_match_exactly_or_with_stars() {
        let p = |s: &str| ModelPattern(s.into());
        assert!(p("gpt-5-mini").matches("gpt-5-mini"));
        assert!(!p("gpt-5-mini").matches("gpt-5-mini-2"));
        assert!(p("gpt-5*").matches("gpt-5"));
        assert!(p("gpt-5*").matches("gpt-5-nano"));
        assert!(!p("gpt-5*").matches("gpt-4o"));
        assert!(p("*-mini").matches("o4-mini"));
        assert!(p("gpt-*-mini").matches("gpt-5-mini"));
        assert!(!p("gpt-*-mini").matches("gpt-5-nano"));
        assert!(p("*").matches(""));
        assert!(p("a*b*c").matches("aXbYbZc"));
    }

    #[test]
    fn a_key_with_every_field_parses() {
        let mut v = sample();
        v["apiKeys"][0]["models"] = json!(["gpt-5*", "o4-mini"]);
        v["apiKeys"][0]["limits"] = json!([
            {"requests": 60, "per": "1m"},
            {"tokens": 100000, "per": "1m"},
            {"tokens": 1000000, "per": "1d"}
        ]);
        v["apiKeys"][0]["budget"] = json!({"tokens": 5000000, "per": "month"});
        v["apiKeys"][0]["expiresAt"] = json!("2027-01-31T23:59:59Z");
        let config = load_value(v).expect("valid");
        let policy = &config.client_keys[0].policy;
        assert!(policy.allows("gpt-5-mini") && !policy.allows("gpt-4o"));
        assert_eq!(
            policy.limits.windows[1],
            Window {
                metered: Metered::Tokens,
                limit: 100_000,
                per: Duration::from_secs(60)
            }
        );
        assert_eq!(policy.limits.windows[2].per, Duration::from_secs(86_400));
        assert_eq!(
            policy.limits.budget,
            Some(Budget {
                tokens: 5_000_000,
                period: BudgetPeriod::Month,
                reset_at_ms: None,
            })
        );
        assert_eq!(
            policy.expires_at,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_801_439_999))
        );
    }

    #[test]
    fn a_key_without_these_fields_may_do_everything() {
        let config = load_value(sample()).expect("valid");
        let policy = &config.client_keys[0].policy;
        assert!(policy.allows("anything"));
        assert!(policy.limits.is_empty() && policy.expires_at.is_none());
    }

    #[test]
    fn each_problem_names_its_field() {
        let mut v = sample();
        v["apiKeys"][0]["models"] = json!(["ok", " "]);
        v["apiKeys"][0]["limits"] = json!([
            {"requests": 1, "tokens": 1, "per": "1m"},
            {"requests": 0, "per": "1m"},
            {"tokens": 5, "per": "soon"},
            {"tokens": 5, "per": "500ms"}
        ]);
        v["apiKeys"][0]["budget"] = json!({"tokens": 5, "per": "week"});
        v["apiKeys"][0]["expiresAt"] = json!("tomorrow");
        assert_eq!(
            issue_paths(v),
            vec![
                "apiKeys[0].models[1]",
                "apiKeys[0].limits[0]",
                "apiKeys[0].limits[1].requests",
                "apiKeys[0].limits[2].per",
                "apiKeys[0].limits[3].per",
                "apiKeys[0].budget.per",
                "apiKeys[0].expiresAt",
            ]
        );
    }
}
