//! Logging: JSON lines in production (or when `LOG_FORMAT=json`), readable text on a terminal.
//! Level from `LOG_LEVEL` or `RUST_LOG` (default info).
//!
//! A JSON line is written straight into the output buffer: tracing-subscriber's own JSON
//! formatter goes through serde and re-checks every piece as UTF-8, which made the per-request
//! line a fifth of the proxy's CPU. The lines are the same as that formatter's (flattened
//! fields, no target); events inside a span are left to it.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::IsTerminal;
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{Format, Json, JsonFields, Writer};
use tracing_subscriber::fmt::time::SystemTime as SystemClock;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::process::cli::EnvVar;

/// What the logging of both binaries reads.
pub const ENVIRONMENT: &[EnvVar] = &[
    EnvVar {
        name: "LOG_LEVEL",
        default: "`info`",
        meaning: "log filter, e.g. `debug` or `info,proxy=debug`",
    },
    EnvVar {
        name: "RUST_LOG",
        default: "unset",
        meaning: "the same, and wins over `LOG_LEVEL` when both are set",
    },
    EnvVar {
        name: "LOG_FORMAT",
        default: "`json` when stdout is not a terminal, else `text`",
        meaning: "`json` (one JSON object per line) or `text`",
    },
];

pub fn init() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| std::env::var("LOG_LEVEL").ok())
        .and_then(|spec| EnvFilter::try_new(spec).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let json = match std::env::var("LOG_FORMAT").ok().as_deref() {
        Some("json") => true,
        Some("text") => false,
        _ => !std::io::stdout().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let result = if json {
        builder
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines::default())
            .try_init()
    } else {
        builder.try_init()
    };
    // A second init (tests) keeps the first subscriber.
    let _ = result;
}

/// The JSON line format: `{"timestamp":…,"level":…,"message":…,<fields>}`.
pub struct JsonLines {
    /// tracing-subscriber's formatter with the same settings, for events inside a span.
    in_span: Format<Json, SystemClock>,
}

impl Default for JsonLines {
    fn default() -> Self {
        JsonLines {
            in_span: tracing_subscriber::fmt::format()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_target(false),
        }
    }
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if event.parent().is_some() || (event.is_contextual() && ctx.lookup_current().is_some()) {
            return self.in_span.format_event(ctx, writer, event);
        }
        write_line(&mut writer, SystemTime::now(), event)
    }
}

fn write_line(out: &mut impl fmt::Write, now: SystemTime, event: &Event<'_>) -> fmt::Result {
    thread_local! {
        static LINE: RefCell<String> = const { RefCell::new(String::new()) };
    }
    // Built in a plain String (pushes inline) and handed over in one piece. A field whose
    // formatting logs (re-entering here) gets a String of its own.
    LINE.with(|cell| {
        let mut own = String::new();
        let mut borrowed = cell.try_borrow_mut();
        let line = match borrowed.as_deref_mut() {
            Ok(line) => line,
            Err(_) => &mut own,
        };
        line.clear();
        line.push_str("{\"timestamp\":\"");
        write!(line, "{}", humantime::format_rfc3339_micros(now))?;
        line.push_str("\",\"level\":\"");
        line.push_str(level_name(*event.metadata().level()));
        line.push('"');
        event.record(&mut JsonFieldWriter { out: line });
        line.push_str("}\n");
        out.write_str(line)
    })
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => "INFO",
        Level::WARN => "WARN",
        Level::ERROR => "ERROR",
    }
}

/// Writes each field as `,"name":value`, the way `tracing_serde` serialises them.
struct JsonFieldWriter<'a> {
    out: &'a mut String,
}

impl JsonFieldWriter<'_> {
    fn name(&mut self, field: &Field) {
        self.out.push(',');
        push_json_string(self.out, field.name());
        self.out.push(':');
    }

    fn integer(&mut self, field: &Field, negative: bool, mut value: u64) {
        self.name(field);
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (value % 10) as u8;
            value /= 10;
            if value == 0 {
                break;
            }
        }
        if negative {
            self.out.push('-');
        }
        if let Ok(text) = std::str::from_utf8(&digits[at..]) {
            self.out.push_str(text);
        }
    }
}

impl Visit for JsonFieldWriter<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.name(field);
        push_json_string(self.out, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.name(field);
        self.out.push('"');
        // Writing to a String cannot fail.
        let _ = write!(JsonEscaper(self.out), "{value:?}");
        self.out.push('"');
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.integer(field, false, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.integer(field, value < 0, value.unsigned_abs());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.name(field);
        self.out.push_str(if value { "true" } else { "false" });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.name(field);
        match serde_json::Number::from_f64(value) {
            Some(number) => {
                let _ = write!(self.out, "{number}");
            }
            None => self.out.push_str("null"),
        }
    }
}

fn push_json_string(out: &mut String, value: &str) {
    out.push('"');
    escape_into(out, value);
    out.push('"');
}

/// Appends `s` escaped as the inside of a JSON string, as serde_json escapes it.
fn escape_into(out: &mut String, s: &str) {
    let bytes = s.as_bytes();
    // Most values need no escape: one pass without early exit (it vectorises) tells.
    if !bytes.iter().fold(false, |any, &b| any | needs_escape(b)) {
        out.push_str(s);
        return;
    }
    let mut start = 0;
    while let Some(offset) = bytes[start..].iter().position(|&b| needs_escape(b)) {
        let at = start + offset;
        // Escaped bytes are ASCII, so these slices end on character boundaries.
        out.push_str(&s[start..at]);
        match bytes[at] {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            other => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(other >> 4)]));
                out.push(char::from(HEX[usize::from(other & 0xf)]));
            }
        }
        start = at + 1;
    }
    out.push_str(&s[start..]);
}

fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Escapes what is formatted into it as the inside of a JSON string.
struct JsonEscaper<'a>(&'a mut String);

impl fmt::Write for JsonEscaper<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape_into(self.0, s);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    impl Captured {
        /// The lines written, with the timestamp (checked, then masked) left out.
        fn lines(&self) -> Vec<String> {
            let bytes = self.0.lock().expect("lock").clone();
            String::from_utf8(bytes)
                .expect("utf-8")
                .lines()
                .map(|line| {
                    serde_json::from_str::<serde_json::Value>(line).expect("a JSON line");
                    let prefix = "{\"timestamp\":\"";
                    assert!(line.starts_with(prefix), "{line}");
                    let stamp = &line[prefix.len()..prefix.len() + 27];
                    assert!(humantime::parse_rfc3339(stamp).is_ok(), "{stamp}");
                    format!("{prefix}{}", &line[prefix.len() + 27..])
                })
                .collect()
        }
    }

    fn emit() {
        let id = "a\"b\\c\nd\u{1}é";
        tracing::info!(
            request_id = %id,
            client.key_id = Some("bench"),
            model = None::<&str>,
            stream = false,
            status = 200u16,
            delta = -3i64,
            smallest = i64::MIN,
            largest = u64::MAX,
            zero = 0u64,
            ratio = 0.5f64,
            text = "plain",
            "request finished"
        );
        tracing::warn!(error = ?Some("x"), "a \"quoted\" message");
        let span = tracing::info_span!("outer", k = 1);
        span.in_scope(|| tracing::error!(n = 2, "inside a span"));
    }

    #[test]
    fn lines_match_tracing_subscribers_json_format() {
        let ours = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(ours.clone())
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines::default())
            .finish();
        tracing::subscriber::with_default(subscriber, emit);

        let stock = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(stock.clone())
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_target(false)
            .finish();
        tracing::subscriber::with_default(subscriber, emit);

        let ours = ours.lines();
        assert_eq!(ours.len(), 3);
        assert_eq!(ours, stock.lines());
        let first: serde_json::Value = serde_json::from_str(&ours[0]).expect("json");
        assert_eq!(first["request_id"], "a\"b\\c\nd\u{1}é");
        assert!(first.get("model").is_none());
        assert!(ours[2].contains("\"spans\":[{"), "{}", ours[2]);
    }

    #[test]
    fn strings_are_escaped_like_serde_json() {
        let text = "tab\there \"q\" back\\slash \u{0}\u{8}\u{c}\u{1f} ünï €";
        let mut out = String::new();
        push_json_string(&mut out, text);
        assert_eq!(out, serde_json::to_string(text).expect("serde"));
    }
}
