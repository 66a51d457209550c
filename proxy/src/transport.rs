//! The awc client of each worker thread: pooled keep-alive connections with TCP_NODELAY and
//! rustls (system roots plus the compiled-in Mozilla roots). Rebuilt only when the transport settings change; never one client per request.

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};

use actix_rt::net::TcpStream;
use actix_service::{Service, ServiceExt};
use actix_tls::connect::{ConnectError, ConnectInfo, Connection, Connector, Resolver};
use awc::http::Uri;

use crate::config::UpstreamSettings;

#[derive(Clone, PartialEq)]
struct TransportKey {
    connect_timeout: std::time::Duration,
    pool: crate::config::Pool,
}

thread_local! {
    static CLIENT: RefCell<Option<(TransportKey, awc::Client)>> = const { RefCell::new(None) };
}

/// This thread's client for the given settings (awc clients are bound to one thread).
pub fn client(settings: &UpstreamSettings) -> awc::Client {
    let key = TransportKey {
        connect_timeout: settings.connect_timeout,
        pool: settings.pool.clone(),
    };
    CLIENT.with(|cell| {
        let mut cell = cell.borrow_mut();
        if let Some((current, client)) = cell.as_ref()
            && *current == key
        {
            return client.clone();
        }
        let client = build(&key);
        *cell = Some((key, client.clone()));
        client
    })
}

fn build(key: &TransportKey) -> awc::Client {
    let connector = awc::Connector::new()
        .rustls_0_23(tls_config())
        .connector(tcp_nodelay_connector())
        // awc's `timeout` covers name resolution and TCP connect, `handshake_timeout` the TLS
        // handshake: together they are the connect phase and nothing after it.
        .timeout(key.connect_timeout)
        .handshake_timeout(key.connect_timeout)
        .limit(key.pool.connections)
        .conn_keep_alive(key.pool.keep_alive)
        .conn_lifetime(key.pool.max_lifetime);
    awc::Client::builder()
        .connector(connector)
        // Our own first-byte, idle and total timeouts apply instead of awc's 5 s default.
        .disable_timeout()
        .disable_redirects()
        .no_default_headers()
        .finish()
}

/// Loads the trusted roots (blocking file reads) so no request pays for it.
pub fn load_tls_roots() {
    tls_config();
}

/// Trusted roots: the system store (where an operator adds a corporate CA) plus the Mozilla
/// roots compiled in (so a slim image without ca-certificates still reaches Azure).
pub(crate) fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            let native = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(native.certs);
            tracing::debug!(system_roots = added, "TLS roots loaded");
            let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            Arc::new(config)
        })
        .clone()
}

fn tcp_nodelay_connector()
-> impl Service<ConnectInfo<Uri>, Response = Connection<Uri, TcpStream>, Error = ConnectError> + Clone
{
    Connector::new(Resolver::default())
        .service()
        .map(|conn: Connection<Uri, TcpStream>| {
            if let Err(err) = conn.io_ref().set_nodelay(true) {
                tracing::debug!(error = %err, "could not set TCP_NODELAY on an upstream connection");
            }
            conn
        })
}
