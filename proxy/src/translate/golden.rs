//! Golden vectors (`golden/`): each file is one case, an input and the output it must give.
//! See `golden/README.md` for the layout.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::TranslateError;

fn dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/translate/golden")
        .join(sub)
}

/// The files of `sub` ending in `suffix`, sorted; at least one.
fn cases(sub: &str, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir(sub))
        .unwrap_or_else(|e| panic!("{sub}: {e}"))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no golden vectors in {sub}");
    files
}

fn read_json(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// Checks an error against the case's `"error"` object (`status`, `code`, `param`, and
/// `message_contains`).
fn check_error(path: &Path, error: &TranslateError, expected: &Value) {
    let name = path.display();
    assert_eq!(
        Some(u64::from(error.status())),
        expected["status"].as_u64(),
        "{name}: status of {error:?}"
    );
    assert_eq!(
        Some(error.code()),
        expected["code"].as_str(),
        "{name}: code"
    );
    assert_eq!(error.param(), expected["param"].as_str(), "{name}: param");
    if let Some(part) = expected["message_contains"].as_str() {
        assert!(
            error.message().contains(part),
            "{name}: message {:?} lacks {part:?}",
            error.message()
        );
    }
}

fn request_cases(
    sub: &str,
    translate: fn(Value) -> Result<super::TranslatedRequest, TranslateError>,
) {
    for path in cases(sub, ".json") {
        let case = read_json(&path);
        let name = path.display();
        match (translate(case["in"].clone()), case.get("error")) {
            (Ok(translated), None) => {
                let body: Value = serde_json::from_slice(&translated.body).expect("json body");
                assert!(
                    body == case["out"],
                    "{name}: got\n{}\nexpected\n{}",
                    pretty(&body),
                    pretty(&case["out"])
                );
                assert_eq!(
                    translated.stream,
                    case["in"]["stream"] == Value::Bool(true),
                    "{name}: stream"
                );
                if let Some(include_usage) = case.get("include_usage") {
                    assert_eq!(
                        Value::Bool(translated.include_usage),
                        *include_usage,
                        "{name}: include_usage"
                    );
                }
            }
            (Err(error), Some(expected)) => check_error(&path, &error, expected),
            (Ok(translated), Some(_)) => panic!(
                "{name}: expected an error, got {}",
                String::from_utf8_lossy(&translated.body)
            ),
            (Err(error), None) => panic!("{name}: unexpected error {error:?}"),
        }
    }
}

#[test]
fn chat_requests_become_responses_requests() {
    request_cases("request/chat_to_responses", super::chat_to_responses);
}

#[test]
fn responses_requests_become_chat_requests() {
    request_cases("request/responses_to_chat", super::responses_to_chat);
}

fn answer_cases(sub: &str, translate: fn(&[u8]) -> Result<Vec<u8>, TranslateError>) {
    for path in cases(sub, ".json") {
        let case = read_json(&path);
        let name = path.display();
        let input = match &case["in"] {
            Value::String(raw) => raw.as_bytes().to_vec(),
            other => serde_json::to_vec(other).expect("json"),
        };
        match (translate(&input), case.get("error")) {
            (Ok(body), None) => {
                let body: Value = serde_json::from_slice(&body).expect("json answer");
                assert!(
                    body == case["out"],
                    "{name}: got\n{}\nexpected\n{}",
                    pretty(&body),
                    pretty(&case["out"])
                );
            }
            (Err(error), Some(expected)) => check_error(&path, &error, expected),
            (Ok(body), Some(_)) => panic!(
                "{name}: expected an error, got {}",
                String::from_utf8_lossy(&body)
            ),
            (Err(error), None) => panic!("{name}: unexpected error {error:?}"),
        }
    }
}

#[test]
fn responses_answers_become_chat_completions() {
    answer_cases(
        "answer/responses_to_chat",
        super::answer::responses_to_chat_completion,
    );
}

#[test]
fn chat_completions_become_responses_answers() {
    answer_cases(
        "answer/chat_to_responses",
        super::answer::chat_completion_to_response,
    );
}

/// A stream's events: the `event:` name and the data as JSON (or the raw `[DONE]`).
fn sse_events(bytes: &[u8]) -> Vec<(Option<String>, Value)> {
    let mut frames = super::stream::Frames::default();
    let mut events = Vec::new();
    frames.feed(bytes, |frame| {
        let super::stream::Frame::Event(event) = frame else {
            panic!("oversized event");
        };
        let data = match serde_json::from_slice(event.data) {
            Ok(json) => json,
            Err(_) => Value::String(String::from_utf8_lossy(event.data).into_owned()),
        };
        events.push((event.name.map(str::to_owned), data));
    });
    assert!(!frames.mid_event(), "a stream ends with a whole event");
    events
}

/// Feeds `input` in pieces of `piece` bytes (0: whole) and returns the client's bytes.
fn translate_stream(
    make: &dyn Fn() -> super::stream::StreamTranslator,
    input: &[u8],
    piece: usize,
) -> Vec<u8> {
    let mut translator = make();
    let mut out = Vec::new();
    if piece == 0 {
        out.extend(translator.feed(input));
    } else {
        for chunk in input.chunks(piece) {
            out.extend(translator.feed(chunk));
        }
    }
    assert!(translator.finished(), "the client's stream has its end");
    out
}

fn stream_cases(sub: &str, make: &dyn Fn(&[u8]) -> super::stream::StreamTranslator) {
    for path in cases(sub, ".in.sse") {
        let name = path.display().to_string();
        let input = fs::read(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let make_one = || make(&input);
        let whole = translate_stream(&make_one, &input, 0);
        // Whatever the upstream's reads, the client gets the same bytes.
        for piece in [1, 3, 64] {
            assert!(
                translate_stream(&make_one, &input, piece) == whole,
                "{name}: output differs when fed in pieces of {piece} bytes"
            );
        }
        let expected_path = PathBuf::from(name.replace(".in.sse", ".out.sse"));
        if std::env::var_os("GOLDEN_BLESS").is_some() && !expected_path.exists() {
            fs::write(&expected_path, &whole).expect("write golden output");
        }
        let expected = fs::read(&expected_path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (got, want) = (sse_events(&whole), sse_events(&expected));
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                g == w,
                "{name}: event {i} is\n{g:?}\nexpected\n{w:?}\nwhole output:\n{}",
                String::from_utf8_lossy(&whole)
            );
        }
        assert_eq!(got.len(), want.len(), "{name}: number of events");
    }
}

#[test]
fn responses_streams_become_chat_streams() {
    stream_cases("stream/responses_to_chat", &|input| {
        super::stream::StreamTranslator::responses_to_chat(input.starts_with(b": include_usage"))
    });
}

#[test]
fn chat_streams_become_responses_streams() {
    stream_cases("stream/chat_to_responses", &|_| {
        super::stream::StreamTranslator::chat_to_responses()
    });
}
