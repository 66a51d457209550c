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
