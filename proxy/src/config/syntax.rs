//! config.json bytes → the raw types. A file that is not JSON, or holds a value of the wrong
//! type, is one `ConfigError::Syntax` naming the field path, line and column. For a file that
//! is JSON, `every_type_error` finds all values of the wrong type in one pass, and reads the
//! rest of the file as if they were left out, so that validation can report the other problems
//! as well.

use serde_json::Value;

use super::issues::{ConfigError, ConfigIssue};
use super::raw::RawConfig;

/// At most this many values of the wrong type are reported in one pass.
const MAX_TYPE_ERRORS: usize = 100;

/// Bytes → raw types; a type error names the field path, line and column.
pub fn parse_raw(bytes: &[u8]) -> Result<RawConfig, ConfigError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let raw: RawConfig = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = readable_path(&err.path().to_string());
        let inner = err.into_inner();
        ConfigError::Syntax(ConfigIssue {
            path,
            message: inner.to_string(),
        })
    })?;
    de.end().map_err(|err| {
        ConfigError::Syntax(ConfigIssue {
            path: "(root)".into(),
            message: err.to_string(),
        })
    })?;
    Ok(raw)
}

/// Every value of the wrong type in a file that is JSON (`None` when it is not, or holds none),
/// each with its path, line and column; and the config read without them. A value inside an
/// array that has the wrong type takes the whole array out, so the array's other entries are not
/// looked at.
pub(super) fn every_type_error(bytes: &[u8]) -> Option<(RawConfig, Vec<ConfigIssue>)> {
    let mut doc: Value = serde_json::from_slice(bytes).ok()?;
    // Found in the order serde reads a `Value` (keys sorted); told in the order of the file.
    let mut found: Vec<(Option<(usize, usize)>, ConfigIssue)> = Vec::new();
    for _ in 0..MAX_TYPE_ERRORS {
        let err = match serde_path_to_error::deserialize::<_, RawConfig>(&doc) {
            Ok(_) if found.is_empty() => return None,
            Ok(raw) => {
                found.sort_by_key(|(at, _)| at.unwrap_or((usize::MAX, 0)));
                return Some((raw, found.into_iter().map(|(_, issue)| issue).collect()));
            }
            Err(err) => err,
        };
        let steps = steps(err.path());
        let path = readable_path(&err.path().to_string());
        let at = locate(bytes, &steps);
        let location = at
            .map(|(line, column)| format!(" at line {line} column {column}"))
            .unwrap_or_default();
        let issue = ConfigIssue {
            path,
            message: format!("{}{location}", err.into_inner()),
        };
        found.push((at, issue));
        if !remove(&mut doc, &steps) {
            return None;
        }
    }
    None
}

/// One step of a path: an object's key, or an array's index.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

fn steps(path: &serde_path_to_error::Path) -> Vec<Step> {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|segment| match segment {
            Segment::Map { key } => Some(Step::Key(key.clone())),
            Segment::Seq { index } => Some(Step::Index(*index)),
            Segment::Enum { .. } | Segment::Unknown => None,
        })
        .collect()
}

/// Takes the value at `steps` out of `doc`: the innermost key on the path, so a value inside an
/// array takes the whole array; false when there is nothing to take out (no progress).
fn remove(doc: &mut Value, steps: &[Step]) -> bool {
    let Some(cut) = steps.iter().rposition(|s| matches!(s, Step::Key(_))) else {
        return false;
    };
    let mut node = doc;
    for step in &steps[..cut] {
        let next = match (step, node) {
            (Step::Key(k), Value::Object(map)) => map.get_mut(k),
            (Step::Index(i), Value::Array(items)) => items.get_mut(*i),
            _ => None,
        };
        match next {
            Some(next) => node = next,
            None => return false,
        }
    }
    match (&steps[cut], node) {
        (Step::Key(k), Value::Object(map)) => map.remove(k).is_some(),
        _ => false,
    }
}

/// Line and column (1-based) where the value at `steps` starts in `bytes`, which are JSON.
fn locate(bytes: &[u8], steps: &[Step]) -> Option<(usize, usize)> {
    let mut at = skip_space(bytes, 0);
    for step in steps {
        at = match (step, bytes.get(at)?) {
            (Step::Key(key), b'{') => find_key(bytes, at, key)?,
            (Step::Index(index), b'[') => find_index(bytes, at, *index)?,
            _ => return None,
        };
    }
    let before = &bytes[..at];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&bytes[line_start..at])
        .chars()
        .count()
        + 1;
    Some((line, column))
}

fn skip_space(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    at
}

/// The start of the value of `key` in the object at `at`.
fn find_key(bytes: &[u8], at: usize, key: &str) -> Option<usize> {
    let mut at = skip_space(bytes, at + 1);
    let mut found = None;
    while bytes.get(at)? != &b'}' {
        let end = skip_value(bytes, at)?;
        let name: String = serde_json::from_slice(&bytes[at..end]).ok()?;
        at = skip_space(bytes, end);
        if bytes.get(at)? != &b':' {
            return None;
        }
        let value = skip_space(bytes, at + 1);
        // A repeated key: the last one counts, as serde reads it.
        if name == key {
            found = Some(value);
        }
        at = skip_space(bytes, skip_value(bytes, value)?);
        if bytes.get(at)? == &b',' {
            at = skip_space(bytes, at + 1);
        }
    }
    found
}

/// The start of entry `index` of the array at `at`.
fn find_index(bytes: &[u8], at: usize, index: usize) -> Option<usize> {
    let mut at = skip_space(bytes, at + 1);
    for _ in 0..index {
        at = skip_space(bytes, skip_value(bytes, at)?);
        if bytes.get(at)? != &b',' {
            return None;
        }
        at = skip_space(bytes, at + 1);
    }
    (bytes.get(at)? != &b']').then_some(at)
}

/// The end of the JSON value starting at `at`.
fn skip_value(bytes: &[u8], at: usize) -> Option<usize> {
    let mut de =
        serde_json::Deserializer::from_slice(&bytes[at..]).into_iter::<serde::de::IgnoredAny>();
    de.next()?.ok()?;
    Some(at + de.byte_offset())
}

/// serde_path_to_error writes "." for the document and "?" for a key it could not read (a
/// syntax error); the known part of the path is kept and the rest left to line and column.
fn readable_path(path: &str) -> String {
    let known: Vec<&str> = path
        .split('.')
        .take_while(|segment| !segment.is_empty() && *segment != "?")
        .collect();
    if known.is_empty() {
        "(root)".into()
    } else {
        known.join(".")
    }
}

#[cfg(test)]
mod tests {
    use super::super::load;
    use super::super::testing::{issue_paths, sample};
    use super::*;
    use serde_json::json;

    #[test]
    fn wrong_type_names_the_field_path() {
        let mut v = sample();
        v["server"]["upstream"] = json!({"maxRetries": "three"});
        assert_eq!(issue_paths(v), vec!["server.upstream.maxRetries"]);
    }

    #[test]
    fn malformed_json_is_a_syntax_error_with_line() {
        let err = load(b"{\n  \"server\": {,\n}").expect_err("invalid");
        assert!(matches!(err, ConfigError::Syntax(_)));
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn every_value_of_the_wrong_type_and_every_broken_rule_are_reported_together() {
        let text = "{\n  \"server\": {\"port\": \"3000\", \"upstream\": {\"maxRetries\": \"x\"}},\n  \"models\": [{\"id\": \"m\", \"upstream\": 7},\n             {\"id\": \"n\", \"upstream\": \"nowhere\"}]\n}";
        let err = load(text.as_bytes()).expect_err("invalid");
        let issues = err.issues();
        let paths: Vec<&str> = issues.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "server.port",
                "server.upstream.maxRetries",
                "models[0].upstream",
                "models[1].upstream"
            ],
            "{issues:?}"
        );
        assert!(
            issues[0].message.ends_with("at line 2 column 22"),
            "{issues:?}"
        );
        assert!(
            issues[2].message.ends_with("at line 3 column 38"),
            "{issues:?}"
        );
        assert!(
            issues[3].message.contains("no upstream named"),
            "{issues:?}"
        );
    }

    #[test]
    fn a_file_that_is_not_an_object_is_one_syntax_error() {
        assert!(matches!(load(b"[1, 2]"), Err(ConfigError::Syntax(_))));
        assert!(matches!(
            load(b"{\"server\": 5}"),
            Err(ConfigError::Invalid(_))
        ));
    }

    #[test]
    fn values_are_located_by_path_in_the_text() {
        let text =
            b"{\"a\": {\"b\": [1, {\"c\": \"x\"}], \"b2\": 2},\n \"a\": {\"b\": [0, {\"c\": 5}]}}";
        let at = locate(
            text,
            &[
                Step::Key("a".into()),
                Step::Key("b".into()),
                Step::Index(1),
                Step::Key("c".into()),
            ],
        );
        assert_eq!(at, Some((2, 23)), "the last of a repeated key counts");
        assert_eq!(locate(text, &[Step::Key("zz".into())]), None);
    }

    #[test]
    fn syntax_error_keeps_the_known_part_of_the_path() {
        let err = load(b"{\"server\": {\"port\": 1, oops}}").expect_err("invalid");
        assert_eq!(err.issues()[0].path, "server");
        let err = load(b"{ oops").expect_err("invalid");
        assert_eq!(err.issues()[0].path, "(root)");
    }
}
