//! `server`: where the proxy's API and ops listeners bind, and the sections nested in it
//! (admin, Caddy, image compression, upstream transport), parsed in the order of the file.

use super::admin::{self, AdminAuth, AdminPath};
use super::caddy::{self, Caddy};
use super::host_port::HostPort;
use super::images::{self, ImageCompression};
use super::issues::Checker;
use super::raw::RawServer;
use super::upstream_settings::{self, UpstreamSettings};

#[derive(Debug, Clone)]
pub struct Server {
    /// `server.host` and `server.port`: where the proxy's API listener binds (by default on
    /// loopback, behind Caddy, which is where clients reach the API).
    pub listen: HostPort,
    pub admin_path: AdminPath,
    pub admin_auth: AdminAuth,
    pub caddy: Caddy,
    pub image_compression: ImageCompression,
    pub upstream: UpstreamSettings,
    /// `server.ops.host` and `server.ops.port`: the ops listener.
    pub ops: HostPort,
}

/// `server`; `None` (with the problems recorded) when a value without a stand-in is invalid.
pub(super) fn parse(check: &mut Checker, s: &RawServer) -> Option<Server> {
    let host = check.host("server.host", &s.host);
    let port = check.port("server.port", s.port);
    let admin_path = admin::parse_path(check, &s.admin_path);
    let admin_auth = admin::parse_auth(check, &s.admin_auth);
    let caddy = caddy::parse(check, &s.caddy);
    let image_compression = images::parse(check, &s.image_compression);
    let upstream = upstream_settings::parse(check, &s.upstream);
    let ops_host = check.host("server.ops.host", &s.ops.host);
    let ops_port = check.port("server.ops.port", s.ops.port);
    Some(Server {
        listen: HostPort::new(host?, port),
        admin_path: admin_path?,
        admin_auth,
        caddy: caddy?,
        image_compression,
        upstream,
        ops: HostPort::new(ops_host?, ops_port),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{issue_paths, load_value, sample};
    use serde_json::json;

    #[test]
    fn listeners_default_to_loopback_behind_caddy() {
        let config = load_value(json!({})).expect("valid");
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:3003");
        assert_eq!(config.server.ops.to_string(), "127.0.0.1:3002");
        assert_eq!(config.server.caddy.upstream.to_string(), "127.0.0.1:3003");
        let config = load_value(sample()).expect("valid");
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:3000");
    }

    #[test]
    fn numeric_ranges_are_checked() {
        let mut v = sample();
        v["server"]["port"] = json!(70000);
        v["server"]["upstream"] = json!({"maxRetries": 11, "retryStatuses": [429, 99]});
        v["server"]["imageCompression"] = json!({"quality": 1.5});
        assert_eq!(
            issue_paths(v),
            vec![
                "server.port",
                "server.imageCompression.quality",
                "server.upstream.retryStatuses[1]",
                "server.upstream.maxRetries"
            ]
        );
    }

    #[test]
    fn hosts_must_be_host_names_or_addresses() {
        let mut v = sample();
        v["server"]["host"] = json!(" ");
        v["server"]["ops"] = json!({"host": "0.0.0.0 {"});
        v["server"]["caddy"] = json!({"upstreamHost": "proxy/1"});
        let err = load_value(v).expect_err("invalid");
        assert_eq!(
            err.to_string(),
            "server.host: must not be empty; \
             server.caddy.upstreamHost: must be a host name or IP address; \
             server.ops.host: must be a host name or IP address"
        );
    }

    #[test]
    fn ipv6_listen_hosts_are_kept_as_written() {
        let mut v = sample();
        v["server"]["host"] = json!("::");
        v["server"]["ops"] = json!({"host": " [::1] ", "port": 3002});
        let config = load_value(v).expect("valid");
        assert_eq!(config.server.listen.to_string(), "[::]:3000");
        assert_eq!(config.server.ops.host(), "[::1]");
        assert_eq!(config.server.ops.to_string(), "[::1]:3002");
    }
}
