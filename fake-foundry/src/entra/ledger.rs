//! The ledger of access tokens a [`crate::FakeEntra`] issued (subject, audience, expiry) and
//! [`TokenChecker`], the handle a fake upstream uses to validate bearer tokens against it. Tokens
//! are opaque random strings, or on request unsigned JWT-shaped strings carrying the claims a
//! storage emulator reads (`aud`, `iss`, `iat`, `nbf`, `exp`); nothing here ever logs or prints
//! one.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use crate::ids;

/// What every issued token starts with.
pub const TOKEN_PREFIX: &str = "fake-entra-";
/// Random hex digits after the prefix.
const TOKEN_HEX_DIGITS: usize = 32;
/// Past this many entries, issuing a token first drops the expired ones.
const PRUNE_ABOVE: usize = 4096;

/// One issued token.
#[derive(Debug)]
struct Issued {
    subject: String,
    /// The resource the token is for (a scope without `/.default`), when the request named one.
    audience: Option<String>,
    expires_at: SystemTime,
}

/// A freshly issued token.
#[derive(Debug)]
pub struct IssuedToken {
    pub token: String,
    pub expires_at: SystemTime,
}

impl IssuedToken {
    /// Expiry in whole seconds since the Unix epoch.
    pub fn expires_on(&self) -> u64 {
        unix_secs(self.expires_at)
    }
}

pub fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Every token issued and not yet revoked.
#[derive(Debug, Default)]
pub struct Ledger {
    tokens: RwLock<HashMap<String, Issued>>,
    /// Issue JWT-shaped tokens instead of opaque ones.
    jwt: AtomicBool,
}

/// The tenant named in the issuer of JWT-shaped tokens.
pub const JWT_TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

impl Ledger {
    /// Mints a token for `subject`, valid for `lifetime` from now.
    pub fn issue(&self, subject: &str, audience: Option<&str>, lifetime: Duration) -> IssuedToken {
        let now = SystemTime::now();
        let expires_at = now + lifetime;
        let mut tokens = self.tokens.write().unwrap_or_else(PoisonError::into_inner);
        if tokens.len() > PRUNE_ABOVE {
            tokens.retain(|_, issued| issued.expires_at > now);
        }
        let jwt = self.jwt.load(Ordering::SeqCst);
        loop {
            let token = if jwt {
                jwt_token(subject, audience, now, expires_at)
            } else {
                new_token()
            };
            if tokens.contains_key(&token) {
                continue;
            }
            tokens.insert(
                token.clone(),
                Issued {
                    subject: subject.to_owned(),
                    audience: audience.map(normalize_audience).map(str::to_owned),
                    expires_at,
                },
            );
            return IssuedToken { token, expires_at };
        }
    }

    /// The subject of `token` when it was issued here, is unexpired and not revoked, and (when
    /// `audience` is given) was issued for that audience or for none in particular.
    pub fn check(&self, token: &str, audience: Option<&str>) -> Option<String> {
        let tokens = self.tokens.read().unwrap_or_else(PoisonError::into_inner);
        let issued = tokens.get(token)?;
        if issued.expires_at <= SystemTime::now() {
            return None;
        }
        let audience_matches = match (audience, &issued.audience) {
            (Some(wanted), Some(actual)) => normalize_audience(wanted).eq_ignore_ascii_case(actual),
            _ => true,
        };
        if !audience_matches {
            return None;
        }
        Some(issued.subject.clone())
    }

    /// The unexpired tokens issued to `subject` for `audience` (what a service trusting this fake
    /// would accept from that subject right now).
    pub fn live(&self, subject: &str, audience: &str) -> Vec<String> {
        let now = SystemTime::now();
        let wanted = normalize_audience(audience);
        self.tokens
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(_, issued)| {
                issued.subject == subject
                    && issued.expires_at > now
                    && issued
                        .audience
                        .as_deref()
                        .is_some_and(|a| a.eq_ignore_ascii_case(wanted))
            })
            .map(|(token, _)| token.clone())
            .collect()
    }

    /// Whether tokens from now on are JWT-shaped (unsigned; the signature part is random).
    pub fn set_jwt(&self, jwt: bool) {
        self.jwt.store(jwt, Ordering::SeqCst);
    }

    /// Forgets every token issued so far: each is refused from now on.
    pub fn revoke_all(&self) {
        self.tokens
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

fn new_token() -> String {
    let mut buf = Vec::with_capacity(TOKEN_PREFIX.len() + TOKEN_HEX_DIGITS);
    buf.extend_from_slice(TOKEN_PREFIX.as_bytes());
    ids::push_hex(&mut buf, TOKEN_HEX_DIGITS);
    String::from_utf8(buf).expect("an ASCII prefix and hex digits are UTF-8")
}

/// `header.claims.random`: base64url JSON with `aud` (the resource), `iss` (an Entra ID v1
/// issuer), `sub`, `oid`, `tid`, `iat`, `nbf` and `exp`.
fn jwt_token(
    subject: &str,
    audience: Option<&str>,
    now: SystemTime,
    expires_at: SystemTime,
) -> String {
    let header = r#"{"alg":"RS256","typ":"JWT"}"#;
    let claims = serde_json::json!({
        "aud": audience.map(normalize_audience).unwrap_or("https://management.azure.com"),
        "iss": format!("https://sts.windows.net/{JWT_TENANT}/"),
        "sub": subject,
        "oid": subject,
        "tid": JWT_TENANT,
        "iat": unix_secs(now),
        "nbf": unix_secs(now),
        "exp": unix_secs(expires_at),
    });
    let mut signature = Vec::with_capacity(TOKEN_HEX_DIGITS);
    ids::push_hex(&mut signature, TOKEN_HEX_DIGITS);
    format!(
        "{}.{}.{}",
        base64url(header.as_bytes()),
        base64url(claims.to_string().as_bytes()),
        String::from_utf8_lossy(&signature)
    )
}

/// Base64url without padding.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// `https://cognitiveservices.azure.com/` and `https://cognitiveservices.azure.com` name the
/// same resource.
fn normalize_audience(audience: &str) -> &str {
    audience.trim_end_matches('/')
}

/// Validates bearer tokens against the [`crate::FakeEntra`] it came from: cheap to clone, shares
/// the fake's ledger, so a token issued or revoked later is seen at once.
#[derive(Clone)]
pub struct TokenChecker {
    ledger: Arc<Ledger>,
    audience: Option<Arc<str>>,
}

impl TokenChecker {
    pub(crate) fn new(ledger: Arc<Ledger>) -> Self {
        Self {
            ledger,
            audience: None,
        }
    }

    /// The subject of `token` (a client id, `managed-identity`, `managed-identity:<id>`, or
    /// what [`crate::FakeEntra::issue_token`] was given) when the fake issued it, it has not
    /// expired and has not been revoked; `None` otherwise.
    pub fn check(&self, token: &str) -> Option<String> {
        self.ledger.check(token, self.audience.as_deref())
    }

    /// The unexpired tokens issued to `subject` for `audience` (a resource URL, with or without
    /// `/.default`), for a fake service that must accept exactly those (a Redis whose password
    /// list follows them, say).
    pub fn live_tokens(&self, subject: &str, audience: &str) -> Vec<String> {
        self.ledger
            .live(subject, audience.trim_end_matches("/.default"))
    }

    /// A checker that also refuses tokens issued for another resource, as Azure OpenAI refuses
    /// a token whose audience is not `https://cognitiveservices.azure.com`. Tokens minted with
    /// [`crate::FakeEntra::issue_token`] name no audience and pass.
    #[must_use]
    pub fn requiring_audience(self, audience: &str) -> Self {
        Self {
            audience: Some(Arc::from(normalize_audience(audience))),
            ..self
        }
    }
}

impl fmt::Debug for TokenChecker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenChecker")
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn an_issued_token_checks_out_as_its_subject() {
        let ledger = Ledger::default();
        let issued = ledger.issue("client-a", None, HOUR);
        assert!(issued.token.starts_with(TOKEN_PREFIX));
        assert_eq!(issued.token.len(), TOKEN_PREFIX.len() + TOKEN_HEX_DIGITS);
        assert_eq!(
            ledger.check(&issued.token, None).as_deref(),
            Some("client-a")
        );
        assert_eq!(ledger.check("fake-entra-0000", None), None);
    }

    #[test]
    fn a_jwt_shaped_token_carries_its_claims_and_checks_out() {
        let ledger = Ledger::default();
        ledger.set_jwt(true);
        let issued = ledger.issue("managed-identity", Some("https://storage.azure.com/"), HOUR);
        let parts: Vec<&str> = issued.token.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(base64url(b"{\"a\":1}"), "eyJhIjoxfQ");
        assert_eq!(
            ledger.check(&issued.token, Some("https://storage.azure.com")),
            Some("managed-identity".into())
        );
    }

    #[test]
    fn tokens_are_distinct() {
        let ledger = Ledger::default();
        let a = ledger.issue("s", None, HOUR);
        let b = ledger.issue("s", None, HOUR);
        assert_ne!(a.token, b.token);
    }

    #[test]
    fn a_token_with_no_lifetime_is_already_expired() {
        let ledger = Ledger::default();
        let issued = ledger.issue("s", None, Duration::ZERO);
        assert_eq!(ledger.check(&issued.token, None), None);
    }

    #[test]
    fn revoking_refuses_every_earlier_token_but_not_later_ones() {
        let ledger = Ledger::default();
        let before = ledger.issue("s", None, HOUR);
        ledger.revoke_all();
        let after = ledger.issue("s", None, HOUR);
        assert_eq!(ledger.check(&before.token, None), None);
        assert_eq!(ledger.check(&after.token, None).as_deref(), Some("s"));
    }

    #[test]
    fn an_audience_check_ignores_a_trailing_slash_and_refuses_other_resources() {
        let ledger = Arc::new(Ledger::default());
        let cognitive = ledger.issue("s", Some("https://cognitiveservices.azure.com/"), HOUR);
        let vault = ledger.issue("s", Some("https://vault.azure.net"), HOUR);
        let anywhere = ledger.issue("cli", None, HOUR);
        let checker =
            TokenChecker::new(ledger).requiring_audience("https://cognitiveservices.azure.com");
        assert_eq!(checker.check(&cognitive.token).as_deref(), Some("s"));
        assert_eq!(checker.check(&vault.token), None);
        assert_eq!(checker.check(&anywhere.token).as_deref(), Some("cli"));
    }

    #[test]
    fn expires_on_is_in_unix_seconds() {
        let ledger = Ledger::default();
        let issued = ledger.issue("s", None, HOUR);
        let now = unix_secs(SystemTime::now());
        assert!((now + 3599..=now + 3600).contains(&issued.expires_on()));
    }
}
