//! The recent TLS and ACME lines of Caddy's log file in the data dir, newest first. Reads only
//! the end of the file, however large it grows. Blocking.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value};

/// At most this much of the end of the file is read.
const TAIL_BYTES: u64 = 256 * 1024;

#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    /// Unix time in ms.
    pub ts_ms: Option<u64>,
    pub level: String,
    pub logger: String,
    pub msg: String,
    /// The line's other fields (identifiers, challenge type, error, ...).
    pub fields: Map<String, Value>,
}

/// The last `limit` lines of `path`, newest first; nothing when the file does not exist.
pub fn tail(path: &Path, limit: usize) -> std::io::Result<Vec<LogLine>> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let len = file.metadata()?.len();
    let start = len.saturating_sub(TAIL_BYTES);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::with_capacity((len - start) as usize);
    file.take(TAIL_BYTES).read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    if start > 0 && !lines.is_empty() {
        // The first line was cut by the seek.
        lines.remove(0);
    }
    Ok(lines
        .iter()
        .rev()
        .filter(|l| !l.trim().is_empty())
        .take(limit)
        .map(|l| parse_line(l))
        .collect())
}

fn parse_line(line: &str) -> LogLine {
    let Ok(Value::Object(mut fields)) = serde_json::from_str::<Value>(line) else {
        return LogLine {
            ts_ms: None,
            level: String::new(),
            logger: String::new(),
            msg: line.to_string(),
            fields: Map::new(),
        };
    };
    let mut take = |key: &str| match fields.remove(key) {
        Some(Value::String(s)) => s,
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let level = take("level");
    let logger = take("logger");
    let msg = take("msg");
    let ts_ms = fields
        .remove("ts")
        .and_then(|v| v.as_f64())
        .map(|secs| (secs * 1000.0) as u64);
    LogLine {
        ts_ms,
        level,
        logger,
        msg,
        fields,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn lines_come_newest_first_with_their_fields() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tls.log");
        let mut file = std::fs::File::create(&path).expect("create");
        writeln!(file, r#"{{"level":"info","ts":1700000000.5,"logger":"tls.obtain","msg":"acquiring lock","identifier":"gw.example.com"}}"#).expect("write");
        writeln!(file, r#"{{"level":"error","ts":1700000001.0,"logger":"tls.obtain","msg":"could not get certificate","error":"no solvers"}}"#).expect("write");
        let lines = tail(&path, 10).expect("tail");
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].level, "error");
        assert_eq!(lines[0].fields["error"], "no solvers");
        assert_eq!(lines[1].ts_ms, Some(1_700_000_000_500));
        assert_eq!(lines[1].fields["identifier"], "gw.example.com");
    }

    #[test]
    fn a_missing_file_has_no_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(
            tail(&dir.path().join("none.log"), 10)
                .expect("tail")
                .is_empty()
        );
    }

    #[test]
    fn only_the_end_of_a_large_file_is_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tls.log");
        let mut file = std::fs::File::create(&path).expect("create");
        for i in 0..20_000 {
            writeln!(
                file,
                r#"{{"level":"info","logger":"tls","msg":"line {i}"}}"#
            )
            .expect("write");
        }
        let lines = tail(&path, 5).expect("tail");
        assert_eq!(lines[0].msg, "line 19999");
        assert_eq!(lines.len(), 5);
    }
}
