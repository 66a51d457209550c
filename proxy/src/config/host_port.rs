//! Hosts and `host:port` pairs of the config (`server.host`, `server.ops.host`,
//! `server.caddy.upstreamHost`). A `Host` exists only once parsed: a name of letters, digits, `.`,
//! `-` and `_`, or an IPv6 address (with or without brackets, an optional `%zone`), so that it
//! names a host or an IP address, is safe in a Caddyfile as it is, and `host:port` reads back.

use std::fmt;
use std::net::Ipv6Addr;

/// A host name or IP address (IPv6 with or without brackets), trimmed and never empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Host(String);

impl Host {
    /// The trimmed `value`, or `None` when it is neither a name nor an IPv6 address.
    pub fn parse(value: &str) -> Option<Host> {
        let value = value.trim();
        let valid = match value.strip_prefix('[') {
            Some(bracketed) => bracketed.strip_suffix(']').is_some_and(is_ipv6),
            None => is_name(value) || is_ipv6(value),
        };
        valid.then(|| Host(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Letters, digits, `.`, `-` and `_`: a host name or an IPv4 address.
fn is_name(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// An IPv6 address, with an optional `%zone` of letters, digits, `.`, `-` and `_`.
fn is_ipv6(value: &str) -> bool {
    let (address, zone) = match value.split_once('%') {
        Some((address, zone)) => (address, Some(zone)),
        None => (value, None),
    };
    address.parse::<Ipv6Addr>().is_ok() && zone.is_none_or(is_name)
}

/// A host and a port. `Display` writes `host:port`, an IPv6 host in brackets (`[::1]:3000`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    host: Host,
    port: u16,
}

impl HostPort {
    pub fn new(host: Host, port: u16) -> HostPort {
        HostPort { host, port }
    }

    pub fn host(&self) -> &str {
        self.host.as_str()
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = self.host.as_str();
        if host.contains(':') && !host.starts_with('[') {
            write!(f, "[{host}]:{}", self.port)
        } else {
            write!(f, "{host}:{}", self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(host: &str, port: u16) -> String {
        HostPort::new(Host::parse(host).expect("a host"), port).to_string()
    }

    #[test]
    fn host_names_and_addresses_parse_trimmed() {
        for host in [
            "localhost",
            "gw.example.com",
            "10.0.0.5",
            "::",
            "::1",
            "[::1]",
            "a-b",
            "gateway_proxy",
            "fe80::1%eth0",
        ] {
            assert_eq!(Host::parse(host).map(|h| h.to_string()), Some(host.into()));
        }
        assert_eq!(
            Host::parse(" 127.0.0.1\n").map(|h| h.to_string()),
            Some("127.0.0.1".into())
        );
    }

    #[test]
    fn empty_hosts_and_caddyfile_syntax_are_refused() {
        for host in [
            "",
            "  ",
            "a b",
            "host {",
            "{env.HOST}",
            "a\nimport x",
            "user@host",
            "a/b",
            "\"quoted\"",
        ] {
            assert_eq!(Host::parse(host), None, "{host:?}");
        }
    }

    #[test]
    fn brackets_colons_and_zones_outside_an_ipv6_address_are_refused() {
        // None names a host; some made Caddy refuse the rendered `reverse_proxy <host>:<port>`.
        for host in [
            "a]",
            "[",
            "[a",
            "[::1",
            "::]",
            "]:[",
            "[a]",
            ":::",
            "a:b",
            "%",
            "a%b",
            "fe80::1%",
            "::1%a b",
            "[::1]%eth0",
            "[[::1]]",
            // Found by the caddyfile fuzz target.
            "8]:1",
            ":]:1",
            ":0:",
        ] {
            assert_eq!(Host::parse(host), None, "{host:?}");
        }
    }

    #[test]
    fn ipv6_hosts_are_bracketed_once() {
        assert_eq!(joined("0.0.0.0", 3000), "0.0.0.0:3000");
        assert_eq!(joined("localhost", 0), "localhost:0");
        assert_eq!(joined("::", 3000), "[::]:3000");
        assert_eq!(joined("::1", 8080), "[::1]:8080");
        assert_eq!(joined("[::1]", 8080), "[::1]:8080");
    }

    #[test]
    fn host_and_port_are_kept() {
        let pair = HostPort::new(Host::parse("::1").expect("a host"), 3100);
        assert_eq!(pair.host(), "::1");
        assert_eq!(pair.port(), 3100);
    }
}
