//! The awc client of each worker thread: pooled keep-alive connections with TCP_NODELAY and
//! rustls (system roots plus the compiled-in Mozilla roots). Rebuilt only when the transport
//! settings change; never one client per request.
//!
//! `pool.connections` bounds the keep-alive connections a worker keeps, never the requests it
//! sends: while that many are in flight on pooled connections, the next request goes out on a
//! connection of its own, closed after its answer. Nothing ever waits for a connection.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix_http::error::ParseError;
use actix_rt::net::TcpStream;
use actix_service::{Service, ServiceExt};
use actix_tls::connect::{ConnectError, ConnectInfo, Connection, Connector, Resolver};
use awc::error::{ConnectError as SendConnectError, SendRequestError};
use awc::http::Uri;

use crate::config::UpstreamSettings;

#[derive(Clone, PartialEq)]
struct TransportKey {
    connect_timeout: Duration,
    pool: crate::config::Pool,
}

/// The clients of one thread for one set of transport settings.
#[derive(Clone)]
pub struct Clients {
    /// Keep-alive connections from the pool.
    pub pooled: awc::Client,
    /// A new connection for each request, closed after it: for requests beyond the pool's
    /// connections, and for sending a request again after its pooled connection turned out to
    /// be closed. Requests on it must be sent with `force_close`.
    pub fresh: awc::Client,
}

thread_local! {
    static CLIENTS: RefCell<Option<(TransportKey, Clients)>> = const { RefCell::new(None) };
    /// Requests of this thread in flight on pooled connections.
    static POOLED_IN_FLIGHT: Rc<Cell<usize>> = Rc::new(Cell::new(0));
}

/// A request's place among the pooled connections of its thread, given back when dropped
/// (once its response body has ended, so that its connection is idle again by then).
#[derive(Debug)]
pub struct PooledLease(Rc<Cell<usize>>);

impl Drop for PooledLease {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

/// Which connection a request goes out on.
pub enum ConnectionChoice {
    /// A pooled keep-alive connection, held while the lease lives (`None`: no limit is set).
    Pooled(Option<PooledLease>),
    /// A connection of its own, closed after the answer.
    Own,
}

/// A pooled connection while fewer than `pool.connections` requests of this thread hold one,
/// else a connection of the request's own.
pub fn choose_connection(settings: &UpstreamSettings) -> ConnectionChoice {
    let limit = settings.pool.connections;
    if limit == 0 {
        return ConnectionChoice::Pooled(None);
    }
    POOLED_IN_FLIGHT.with(|in_flight| {
        if in_flight.get() >= limit {
            return ConnectionChoice::Own;
        }
        in_flight.set(in_flight.get() + 1);
        ConnectionChoice::Pooled(Some(PooledLease(in_flight.clone())))
    })
}

tokio::task_local! {
    /// Set when the exchange in scope opens a new connection.
    static OPENED: Rc<Cell<bool>>;
}

/// This thread's clients for the given settings (awc clients are bound to one thread).
pub fn clients(settings: &UpstreamSettings) -> Clients {
    let key = TransportKey {
        connect_timeout: settings.connect_timeout,
        pool: settings.pool.clone(),
    };
    CLIENTS.with(|cell| {
        let mut cell = cell.borrow_mut();
        if let Some((current, clients)) = cell.as_ref()
            && *current == key
        {
            return clients.clone();
        }
        let clients = Clients {
            pooled: build(&key, key.pool.keep_alive, key.pool.max_lifetime),
            fresh: build(&key, Duration::ZERO, Duration::ZERO),
        };
        *cell = Some((key, clients.clone()));
        clients
    })
}

/// Runs an exchange and tells whether it opened a new connection (otherwise it went out on a
/// pooled one).
pub async fn noting_new_connection<F: Future>(exchange: F) -> (F::Output, bool) {
    let opened = Rc::new(Cell::new(false));
    let output = OPENED.scope(opened.clone(), exchange).await;
    (output, opened.get())
}

/// Whether a send failed because the connection was closed before any of the response came:
/// what happens to a request written on a pooled connection that the upstream was closing.
pub fn closed_before_response(err: &SendRequestError) -> bool {
    let closed = |io: &std::io::Error| {
        use std::io::ErrorKind::*;
        matches!(
            io.kind(),
            BrokenPipe | ConnectionReset | ConnectionAborted | NotConnected | UnexpectedEof
        )
    };
    match err {
        SendRequestError::Connect(SendConnectError::Disconnected) => true,
        SendRequestError::Send(io) | SendRequestError::Response(ParseError::Io(io)) => closed(io),
        _ => false,
    }
}

fn build(key: &TransportKey, keep_alive: Duration, lifetime: Duration) -> awc::Client {
    let connector = awc::Connector::new()
        .rustls_0_23(tls_config())
        .connector(tcp_nodelay_connector())
        // awc's `timeout` covers name resolution and TCP connect, `handshake_timeout` the TLS
        // handshake: together they are the connect phase and nothing after it.
        .timeout(key.connect_timeout)
        .handshake_timeout(key.connect_timeout)
        // `pool.connections` is applied by `choose_connection`; awc's own limit would make the
        // request over it wait for a connection.
        .limit(0)
        .conn_keep_alive(keep_alive)
        .conn_lifetime(lifetime);
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
            let _ = OPENED.try_with(|opened| opened.set(true));
            if let Err(err) = conn.io_ref().set_nodelay(true) {
                tracing::debug!(error = %err, "could not set TCP_NODELAY on an upstream connection");
            }
            conn
        })
}
