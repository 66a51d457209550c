//! Why a process control talks to (the proxy, Caddy) did not answer as expected: a stable
//! `code` that a client words in its own language, the transport's own text (`detail`) kept as
//! it came, and the English words the admin API's messages have always carried (`Display`).
//! Never holds a URL with credentials: reqwest's own URL is left out of the detail.

use std::fmt;

/// What went wrong, as a code, and what the transport or the answer said about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    pub code: CauseCode,
    /// The transport's error chain, the status answered, or the limit passed; `None` when
    /// there is nothing beyond the code.
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CauseCode {
    TimedOut,
    Unreachable,
    RequestFailed,
    /// Answered with a status that was not expected; `detail` is the status.
    Answered,
    /// The answer could not be read; `detail` is the transport's words for why.
    UnreadableAnswer,
    /// The answer is larger than control takes; `detail` is the limit in MiB.
    AnswerTooLarge,
}

impl CauseCode {
    pub const ALL: [CauseCode; 6] = [
        CauseCode::TimedOut,
        CauseCode::Unreachable,
        CauseCode::RequestFailed,
        CauseCode::Answered,
        CauseCode::UnreadableAnswer,
        CauseCode::AnswerTooLarge,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CauseCode::TimedOut => "timed_out",
            CauseCode::Unreachable => "unreachable",
            CauseCode::RequestFailed => "request_failed",
            CauseCode::Answered => "answered",
            CauseCode::UnreadableAnswer => "unreadable_answer",
            CauseCode::AnswerTooLarge => "answer_too_large",
        }
    }
}

impl Cause {
    pub fn new(code: CauseCode, detail: impl Into<String>) -> Cause {
        Cause {
            code,
            detail: Some(detail.into()),
        }
    }

    /// A transport error in words, without the URL reqwest repeats.
    pub fn of(err: &reqwest::Error) -> Cause {
        let code = if err.is_timeout() {
            CauseCode::TimedOut
        } else if err.is_connect() {
            CauseCode::Unreachable
        } else {
            CauseCode::RequestFailed
        };
        // The first source repeats the URL; the ones below it say what happened.
        let mut chain = Vec::new();
        let mut source = std::error::Error::source(err);
        let mut depth = 0;
        while let Some(cause) = source {
            depth += 1;
            if depth > 1 {
                chain.push(cause.to_string());
            }
            source = cause.source();
        }
        Cause {
            code,
            detail: (!chain.is_empty()).then(|| chain.join(": ")),
        }
    }

    /// An answer that could not be read, with the transport's words for why.
    pub fn unreadable(err: &reqwest::Error) -> Cause {
        Cause::new(CauseCode::UnreadableAnswer, Cause::of(err).to_string())
    }

    /// The values a client needs to word the cause itself: `cause_code` and `cause_detail`.
    pub fn params(&self) -> [(&'static str, String); 2] {
        [
            ("cause_code", self.code.as_str().to_string()),
            ("cause_detail", self.detail.clone().unwrap_or_default()),
        ]
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let detail = self.detail.as_deref().unwrap_or_default();
        let words = match self.code {
            CauseCode::TimedOut => "timed out",
            CauseCode::Unreachable => "connection refused or unreachable",
            CauseCode::RequestFailed => "request failed",
            CauseCode::Answered => return write!(f, "answered {detail}"),
            CauseCode::UnreadableAnswer => return write!(f, "unreadable answer: {detail}"),
            CauseCode::AnswerTooLarge => {
                return write!(
                    f,
                    "its answer is larger than {detail} MiB: ask for a shorter range or a coarser step"
                );
            }
        };
        match &self.detail {
            Some(detail) => write!(f, "{words}: {detail}"),
            None => f.write_str(words),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_english_words_are_those_the_api_always_gave() {
        let refused = Cause::new(CauseCode::Unreachable, "tcp connect error");
        assert_eq!(
            refused.to_string(),
            "connection refused or unreachable: tcp connect error"
        );
        let timed_out = Cause {
            code: CauseCode::TimedOut,
            detail: None,
        };
        assert_eq!(timed_out.to_string(), "timed out");
        assert_eq!(
            Cause::new(CauseCode::Answered, "500 Internal Server Error").to_string(),
            "answered 500 Internal Server Error"
        );
        assert_eq!(
            Cause::new(CauseCode::AnswerTooLarge, "8").to_string(),
            "its answer is larger than 8 MiB: ask for a shorter range or a coarser step"
        );
    }

    #[actix_web::test]
    async fn a_refused_connection_is_unreachable_with_the_transports_words() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(9);
        let err = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{port}/secret-path"))
            .send()
            .await
            .expect_err("nothing listens");
        let cause = Cause::of(&err);
        assert_eq!(cause.code, CauseCode::Unreachable);
        assert!(!cause.to_string().contains("secret-path"), "{cause}");
    }
}
