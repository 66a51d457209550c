//! The awc client of each worker thread: pooled keep-alive connections with TCP_NODELAY and
//! rustls. Rebuilt only when the transport settings change; never one client per request.

use std::cell::RefCell;

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
    // awc builds its TLS config from the process-wide rustls provider; ring is the one compiled
    // in. A second install (another thread got there first) is refused harmlessly.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let connector = awc::Connector::new()
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
