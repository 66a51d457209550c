//! config.json bytes → the raw types. A file that is not JSON, or holds a value of the wrong
//! type, is one `ConfigError::Syntax` naming the field path, line and column.

use super::issues::{ConfigError, ConfigIssue};
use super::raw::RawConfig;

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
    fn syntax_error_keeps_the_known_part_of_the_path() {
        let err = load(b"{\"server\": {\"port\": 1, oops}}").expect_err("invalid");
        assert_eq!(err.issues()[0].path, "server");
        let err = load(b"{ oops").expect_err("invalid");
        assert_eq!(err.issues()[0].path, "(root)");
    }
}
