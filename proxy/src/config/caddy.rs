//! The values of `server.caddy` that go into the Caddyfile as they are. A `DomainName` and an
//! `EmailAddress` exist only once parsed, so no config value can add a directive to it.

use std::fmt;

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

/// A plain address `local@domain` with no spaces, quotes, braces or other Caddyfile syntax.
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
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`|~.".contains(&b))
        && domain.contains('.')
        && is_domain_name(domain)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        for address in ["ops@example.com", "a.b+tag@mail.example.co", "x@b.co"] {
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
            &long_local,
        ] {
            assert_eq!(EmailAddress::parse(address), None, "{address:?}");
        }
    }
}
