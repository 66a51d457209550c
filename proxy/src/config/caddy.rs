//! `server.caddy`: the TLS site control renders into the Caddyfile (no effect in the proxy).
//! A `DomainName` and an `EmailAddress` exist only once parsed, so the values go into the
//! Caddyfile as they are and none can add a directive.

use std::fmt;
use std::time::Duration;

use super::host_port::HostPort;
use super::issues::{Checker, DAY_MS, HOUR_MS};
use super::raw::RawCaddy;

#[derive(Debug, Clone)]
pub struct Caddy {
    pub enabled: bool,
    /// Set whenever `enabled` is true.
    pub domain: Option<DomainName>,
    pub email: Option<EmailAddress>,
    pub https_port: u16,
    /// `upstreamHost` and `upstreamPort`: where Caddy forwards API traffic.
    pub upstream: HostPort,
    pub dial_timeout: Duration,
    /// 0: no limit.
    pub response_header_timeout: Duration,
    /// 0: no keep-alive.
    pub keep_alive_timeout: Duration,
}

/// A DNS name of letters, digits and hyphens in dot-separated labels (a leading `*.` allowed),
/// lowercase.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DomainName(String);

impl DomainName {
    pub fn parse(value: &str) -> Option<DomainName> {
        is_domain_name(value).then(|| DomainName(value.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A plain address `local@domain` with no spaces, quotes, braces or other Caddyfile syntax: the
/// Caddyfile lexer reads a token that starts with `#` as a comment and one that starts with a
/// backtick as quoted, so the local part starts with neither.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(value: &str) -> Option<EmailAddress> {
        is_email(value).then(|| EmailAddress(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `server.caddy`; `None` (with the problem recorded) when its upstream host is not one.
pub(super) fn parse(check: &mut Checker, c: &RawCaddy) -> Option<Caddy> {
    let domain = if c.domain.is_empty() {
        None
    } else {
        DomainName::parse(&c.domain)
    };
    if c.enabled {
        if c.domain.trim().is_empty() {
            check.fail(
                "server.caddy.domain",
                "is required when server.caddy.enabled is true",
            );
        } else if domain.is_none() {
            check.fail(
                "server.caddy.domain",
                "must be a DNS name such as gateway.example.com (letters, digits, \"-\" and dots)",
            );
        }
    } else if !c.domain.is_empty() && domain.is_none() {
        check.fail(
            "server.caddy.domain",
            "must be a DNS name such as gateway.example.com",
        );
    }
    let email = if c.email.is_empty() {
        None
    } else {
        let email = EmailAddress::parse(&c.email);
        if email.is_none() {
            check.fail(
                "server.caddy.email",
                "must be an e-mail address such as ops@example.com, not starting with \"#\" or \"`\"",
            );
        }
        email
    };
    let https_port = check.port("server.caddy.httpsPort", c.https_port);
    let upstream_host = check.host("server.caddy.upstreamHost", &c.upstream_host);
    let upstream_port = check.port("server.caddy.upstreamPort", c.upstream_port);
    let t = &c.transport;
    let dial_timeout = check.millis(
        "server.caddy.transport.dialTimeoutMs",
        t.dial_timeout_ms,
        1,
        HOUR_MS,
    );
    let response_header_timeout = check.millis(
        "server.caddy.transport.responseHeaderTimeoutMs",
        t.response_header_timeout_ms,
        0,
        DAY_MS,
    );
    let keep_alive_timeout = check.millis(
        "server.caddy.transport.keepAliveTimeoutMs",
        t.keep_alive_timeout_ms,
        0,
        DAY_MS,
    );
    Some(Caddy {
        enabled: c.enabled,
        domain,
        email,
        https_port,
        upstream: HostPort::new(upstream_host?, upstream_port),
        dial_timeout,
        response_header_timeout,
        keep_alive_timeout,
    })
}

fn is_domain_name(s: &str) -> bool {
    let name = s.strip_prefix("*.").unwrap_or(s);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && !local.starts_with(['#', '`'])
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`|~.".contains(&b))
        && domain.contains('.')
        && is_domain_name(domain)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{issue_paths, load_value, sample};
    use super::*;
    use serde_json::json;

    #[test]
    fn caddy_domain_and_email_reject_directive_injection() {
        let mut v = sample();
        v["server"]["caddy"] = json!({
            "enabled": true,
            "domain": "example.com {\n respond 200",
            "email": "a@b.com\n}"
        });
        assert_eq!(
            issue_paths(v),
            vec!["server.caddy.domain", "server.caddy.email"]
        );
    }

    #[test]
    fn caddy_enabled_needs_a_domain() {
        let mut v = sample();
        v["server"]["caddy"] = json!({"enabled": true});
        assert_eq!(issue_paths(v), vec!["server.caddy.domain"]);
    }

    #[test]
    fn a_domain_is_checked_even_while_caddy_is_disabled() {
        let mut v = sample();
        v["server"]["caddy"] = json!({"enabled": false, "domain": "gw.example.com"});
        let config = load_value(v.clone()).expect("valid");
        assert_eq!(
            config.server.caddy.domain.map(|d| d.to_string()),
            Some("gw.example.com".into())
        );
        v["server"]["caddy"]["domain"] = json!("not a name");
        assert_eq!(issue_paths(v), vec!["server.caddy.domain"]);
    }

    #[test]
    fn caddy_values_are_parsed_into_their_types() {
        let mut v = sample();
        v["server"]["caddy"] = json!({"enabled": true, "domain": "GW.Example.com",
            "email": "ops@example.com", "upstreamHost": "::1", "upstreamPort": 3100});
        let caddy = load_value(v).expect("valid").server.caddy;
        assert_eq!(
            caddy.domain.map(|d| d.to_string()),
            Some("gw.example.com".into())
        );
        assert_eq!(
            caddy.email.map(|e| e.to_string()),
            Some("ops@example.com".into())
        );
        assert_eq!(caddy.upstream.to_string(), "[::1]:3100");
    }

    #[test]
    fn dns_names_parse_lowercase() {
        for name in ["localhost", "gw.example.com", "*.example.com", "a-1.b2.io"] {
            assert_eq!(
                DomainName::parse(name).map(|d| d.to_string()),
                Some(name.into())
            );
        }
        assert_eq!(
            DomainName::parse("GW.Example.COM").map(|d| d.to_string()),
            Some("gw.example.com".into())
        );
    }

    #[test]
    fn anything_but_a_dns_name_is_refused() {
        let long_label = format!("{}.com", "a".repeat(64));
        let long_name = format!("{}com", "abcdefghi.".repeat(26));
        for name in [
            "",
            " gw.example.com",
            "gw.example.com {\n}\nevil.com",
            "gw.example.com\timport x",
            "{env.HOME}",
            "gw.example.com:443",
            "-gw.example.com",
            "gw-.example.com",
            "gw..example.com",
            "gw.example.com.",
            "*.",
            "a.*.com",
            "gw_1.example.com",
            &long_label,
            &long_name,
        ] {
            assert_eq!(DomainName::parse(name), None, "{name:?}");
        }
    }

    #[test]
    fn plain_addresses_parse() {
        for address in [
            "ops@example.com",
            "a.b+tag@mail.example.co",
            "x@b.co",
            "a#b@example.com",
            "a`b@example.com",
            "'ops'@example.com",
            "$ops@example.com",
        ] {
            assert_eq!(
                EmailAddress::parse(address).map(|e| e.to_string()),
                Some(address.into())
            );
        }
    }

    #[test]
    fn addresses_with_caddyfile_syntax_or_without_a_domain_are_refused() {
        let long_local = format!("{}@example.com", "a".repeat(65));
        for address in [
            "",
            "ops",
            "@example.com",
            "ops@localhost",
            "ops@example.com\n\tacme_ca https://evil",
            "ops@example.com }",
            "\"ops\"@example.com",
            "o ps@example.com",
            "ops@{env.X}.com",
            "#ops@example.com",
            "`ops@example.com",
            "`ops`@example.com",
            "ops\\@example.com",
            "<<ops@example.com",
            &long_local,
        ] {
            assert_eq!(EmailAddress::parse(address), None, "{address:?}");
        }
    }
}
