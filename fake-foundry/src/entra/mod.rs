//! A fake Microsoft Entra ID for tests: an App Service managed identity endpoint on plain HTTP
//! and a `login.microsoftonline.com`-style authority on HTTPS (with a certificate from a fresh
//! test CA), speaking the protocols `azure_identity` uses and issuing opaque tokens that a
//! [`TokenChecker`] validates. Never logs or echoes a secret, an assertion or a token.

mod ledger;
mod protocol;
mod state;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{App, HttpRequest, HttpResponse, HttpResponseBuilder, HttpServer, web};

pub use ledger::{JWT_TENANT, TOKEN_PREFIX, TokenChecker};
pub use protocol::{ASSERTION_TYPE, MI_API_VERSION, MI_PATH, MI_SUBJECT};
pub use state::{DEFAULT_LIFETIME_SECS, TokenFlow, TokenRequest};

use crate::ids;
use crate::tls;
use protocol::{RawRequest, Reply};
use state::EntraState;

/// Workers of the fake (they serve both listeners).
const WORKERS: usize = 2;
/// Largest token request body read; token forms are a few hundred bytes.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// A fake Microsoft Entra ID on `127.0.0.1`, serving on its own thread until dropped.
///
/// - Managed identity (App Service, API version 2019-08-01):
///   `GET {identity_endpoint}?api-version=2019-08-01&resource=…[&client_id=…]` with
///   `X-IDENTITY-HEADER: {identity_header}`. Tokens get the subject [`MI_SUBJECT`], or
///   `managed-identity:<id>` for a user-assigned identity.
/// - Client credentials: `POST {authority_host}/{tenant}/oauth2/v2.0/token` with a form carrying
///   `client_secret` (see [`FakeEntra::register_client`]) or a federated `client_assertion` (see
///   [`FakeEntra::register_federated`]). Tokens get the client id as subject.
pub struct FakeEntra {
    state: Arc<EntraState>,
    http_addr: SocketAddr,
    https_addr: SocketAddr,
    ca_pem: String,
    server: ServerHandle,
}

impl FakeEntra {
    /// Generates a test CA, binds a plain and a TLS listener on `127.0.0.1:0` (the TLS one also
    /// on `[::1]` with the same port when it is free there, since `localhost` may resolve to
    /// either) and serves them on a dedicated thread with its own actix `System`.
    ///
    /// # Panics
    /// If a port cannot be bound, the certificates cannot be generated or the server thread
    /// cannot start.
    pub async fn start() -> FakeEntra {
        let plain = TcpListener::bind(("127.0.0.1", 0)).expect("fake-entra: bind 127.0.0.1:0");
        let tls = TcpListener::bind(("127.0.0.1", 0)).expect("fake-entra: bind 127.0.0.1:0");
        let http_addr = plain
            .local_addr()
            .expect("fake-entra: a bound listener has a local address");
        let https_addr = tls
            .local_addr()
            .expect("fake-entra: a bound listener has a local address");
        // Best effort: without it, clients resolving `localhost` to ::1 first fall back to
        // 127.0.0.1 after a refused connection.
        let tls_v6 = TcpListener::bind(("::1", https_addr.port())).ok();
        let pki =
            tls::localhost_pki("fake-entra test CA").expect("fake-entra: generate the test CA");
        let state = Arc::new(EntraState::new());

        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let thread_state = Arc::clone(&state);
        let server_config = pki.server_config;
        std::thread::Builder::new()
            .name(format!("fake-entra-{}", https_addr.port()))
            .spawn(move || {
                actix_rt::System::new().block_on(async move {
                    let server = match serve(thread_state, plain, tls, tls_v6, server_config) {
                        Ok(server) => server,
                        Err(e) => {
                            // The receiver is still waiting in `start`.
                            let _ = started_tx.send(Err(e));
                            return;
                        }
                    };
                    if started_tx.send(Ok(server.handle())).is_ok() {
                        // Errors while running only matter to the requests they fail.
                        let _ = server.await;
                    }
                });
            })
            .expect("fake-entra: spawn the server thread");
        let server = started_rx
            .await
            .expect("fake-entra: the server thread reports before exiting")
            .expect("fake-entra: start the server");
        FakeEntra {
            state,
            http_addr,
            https_addr,
            ca_pem: pki.ca_pem,
            server,
        }
    }

    /// `https://localhost:PORT`: the authority host (`AZURE_AUTHORITY_HOST`, or a custom cloud's
    /// `authority_host`). The certificate is valid for `localhost` and `127.0.0.1`.
    pub fn authority_host(&self) -> String {
        format!("https://localhost:{}", self.https_addr.port())
    }

    /// `https://localhost:PORT/{tenant_id}/oauth2/v2.0/token`
    pub fn token_endpoint(&self, tenant_id: &str) -> String {
        format!("{}/{tenant_id}/oauth2/v2.0/token", self.authority_host())
    }

    /// `http://127.0.0.1:PORT/msi/token`: the managed identity endpoint (`IDENTITY_ENDPOINT`).
    pub fn identity_endpoint(&self) -> String {
        format!("http://{}{MI_PATH}", self.http_addr)
    }

    /// The secret the managed identity endpoint requires in `X-IDENTITY-HEADER`
    /// (`IDENTITY_HEADER`).
    pub fn identity_header(&self) -> String {
        self.state.identity_header.clone()
    }

    /// The `client_id` the managed identity endpoint reports for the system-assigned identity.
    pub fn system_identity_client_id(&self) -> String {
        self.state.system_client_id.clone()
    }

    /// PEM of the test CA that signed the HTTPS certificate (for `SSL_CERT_FILE` or a client's
    /// extra roots).
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// Token requests received on either endpoint, refused ones included, counted on arrival.
    pub fn token_requests(&self) -> usize {
        self.state.received()
    }

    /// Token requests received that named `client_id` (the form's `client_id`, or a managed
    /// identity request's user-assigned id) or would have made a token with that subject (so
    /// `"managed-identity"` counts system-assigned managed identity requests).
    pub fn token_requests_for(&self, client_id: &str) -> usize {
        self.state.received_for(client_id)
    }

    /// Every token request answered, in order, with its outcome.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.state.requests()
    }

    /// When `true`, every token request gets a 503 with an Entra error body (`AADSTS90033`).
    /// Note that `azure_identity`'s default retry policy retries a 503 for up to a minute.
    pub fn set_down(&self, down: bool) {
        self.state.set_down(down);
    }

    /// Waits this long before answering each token request (on either endpoint).
    pub fn set_delay_ms(&self, ms: u64) {
        self.state.set_delay_ms(ms);
    }

    /// Lifetime of tokens issued from now on ([`DEFAULT_LIFETIME_SECS`] unless set). Note that
    /// `azure_identity`'s cache refreshes a token that expires within 300 seconds on every call.
    pub fn set_lifetime_secs(&self, secs: u64) {
        self.state.set_lifetime_secs(secs);
    }

    /// Issues JWT-shaped tokens from now on (unsigned, with `aud`, `iss`, `iat`, `nbf` and
    /// `exp`), as Azurite's `--oauth basic` mode requires.
    pub fn issue_jwt_tokens(&self) {
        self.state.ledger.set_jwt(true);
    }

    /// Registers a service principal that may use client credentials with `client_secret`.
    /// A client may hold several secrets.
    pub fn register_client(&self, tenant_id: &str, client_id: &str, client_secret: &str) {
        self.state
            .register_secret(tenant_id, client_id, client_secret);
    }

    /// Registers a federated credential: `client_assertion` (e.g. the content of the file
    /// `AZURE_FEDERATED_TOKEN_FILE` names) is accepted for `client_id`. Matched as an opaque
    /// string; a client may hold several.
    pub fn register_federated(&self, tenant_id: &str, client_id: &str, assertion: &str) {
        self.state
            .register_assertion(tenant_id, client_id, assertion);
    }

    /// Mints a token for `subject` without a request (what a fake `az account get-access-token`
    /// prints), valid for the current lifetime and for any audience. Returns the token and its
    /// expiry in Unix seconds. Not counted as a token request.
    pub fn issue_token(&self, subject: &str) -> (String, u64) {
        let issued = self
            .state
            .ledger
            .issue(subject, None, self.state.lifetime());
        let expires_on = issued.expires_on();
        (issued.token, expires_on)
    }

    /// A handle that validates bearer tokens against this fake (see
    /// [`crate::FakeFoundry::set_token_checker`]).
    pub fn checker(&self) -> TokenChecker {
        TokenChecker::new(Arc::clone(&self.state.ledger))
    }

    /// Every token issued so far is refused from now on, as after a key rotation.
    pub fn revoke_all(&self) {
        self.state.ledger.revoke_all();
    }
}

impl Drop for FakeEntra {
    fn drop(&mut self) {
        // Sending the stop command is enough; the server thread winds down on its own.
        drop(self.server.stop(false));
    }
}

fn serve(
    state: Arc<EntraState>,
    plain: TcpListener,
    tls: TcpListener,
    tls_v6: Option<TcpListener>,
    server_config: rustls::ServerConfig,
) -> io::Result<actix_web::dev::Server> {
    let data = web::Data::from(state);
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(MAX_FORM_BYTES))
            .default_service(web::to(handle))
    })
    .workers(WORKERS)
    .shutdown_timeout(0)
    .disable_signals()
    .listen(plain)?
    .listen_rustls_0_23(tls, server_config.clone())?;
    if let Some(tls_v6) = tls_v6 {
        server = server.listen_rustls_0_23(tls_v6, server_config)?;
    }
    Ok(server.run())
}

/// Answers every request (registered as the default service).
async fn handle(req: HttpRequest, body: web::Bytes, state: web::Data<EntraState>) -> HttpResponse {
    let headers = req.headers();
    let raw = RawRequest {
        secure: req.app_config().secure(),
        method: req.method().as_str(),
        path: req.path(),
        query: req.query_string(),
        content_type: headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        identity_header: headers.get("x-identity-header").map(|v| v.as_bytes()),
        body: &body,
    };
    let Some(incoming) = protocol::incoming(&raw, &state.identity_header) else {
        return HttpResponse::NotFound().finish();
    };
    let subject = incoming.subject();
    let keys: Vec<&str> = incoming
        .client_id()
        .into_iter()
        .chain(subject.as_deref())
        .collect();
    state.count_received(&keys);
    let delay = state.delay();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let answer = protocol::answer(&state, &incoming);
    state.log(answer.record);
    respond(answer.reply)
}

fn respond(reply: Reply) -> HttpResponse {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let request_id = HeaderValue::from_bytes(&ids::uuid_v4())
        .expect("hex digits and dashes are valid header bytes");
    HttpResponseBuilder::new(status)
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        ))
        .insert_header((
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store, no-cache"),
        ))
        .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")))
        .insert_header(("x-ms-request-id", request_id))
        .body(reply.body)
}
