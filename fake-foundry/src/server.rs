//! Running the fake: the actix server setup shared with the binary, and [`FakeFoundry`], the
//! handle tests use to start a fake on its own thread, script it and inspect what it received.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, web};

use crate::entra::TokenChecker;
use crate::handler::{MAX_BODY_BYTES, handle};
use crate::script::{Behaviour, Queued, ScriptedReply};
use crate::state::{RecordedRequest, Shared};

/// Workers of a fake started by [`FakeFoundry::start`].
const TEST_WORKERS: usize = 2;

/// How [`serve`] runs.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub behaviour: Behaviour,
    /// Worker threads (each runs its own single-threaded runtime).
    pub workers: usize,
    /// Keep every request for [`FakeFoundry::requests`]; off for benchmarks, where the log
    /// would only grow.
    pub record_requests: bool,
    /// Stop on SIGINT / SIGTERM.
    pub handle_signals: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            behaviour: Behaviour::default(),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            record_requests: false,
            handle_signals: true,
        }
    }
}

/// Serves the fake on `listener`. Must be called inside an actix `System`; the returned server
/// runs until awaited to completion or stopped.
pub fn serve(listener: TcpListener, options: ServeOptions) -> io::Result<Server> {
    serve_shared(
        listener,
        Arc::new(Shared::new(options.behaviour, options.record_requests)),
        options.workers,
        options.handle_signals,
    )
}

fn serve_shared(
    listener: TcpListener,
    shared: Arc<Shared>,
    workers: usize,
    handle_signals: bool,
) -> io::Result<Server> {
    let data = web::Data::from(shared);
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            // The handler streams `web::Payload` and enforces MAX_BODY_BYTES itself; this sets
            // the same limit for any extractor that buffers.
            .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
            .default_service(web::to(handle))
    })
    .workers(workers.max(1))
    .backlog(4096)
    .shutdown_timeout(0)
    .listen(listener)?;
    if !handle_signals {
        server = server.disable_signals();
    }
    Ok(server.run())
}

/// A fake Azure AI Foundry / Azure OpenAI upstream on `127.0.0.1`, serving on its own thread
/// until dropped.
pub struct FakeFoundry {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: ServerHandle,
}

impl FakeFoundry {
    /// Starts a fake with the default [`Behaviour`].
    pub async fn start() -> FakeFoundry {
        Self::start_with(Behaviour::default()).await
    }

    /// Binds `127.0.0.1:0` and serves on a dedicated thread with its own actix `System`, so it
    /// works from any async runtime (actix or tokio) and from any test harness.
    ///
    /// # Panics
    /// If the port cannot be bound or the server thread cannot start.
    pub async fn start_with(behaviour: Behaviour) -> FakeFoundry {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("fake-foundry: bind 127.0.0.1:0");
        let addr = listener
            .local_addr()
            .expect("fake-foundry: a bound listener has a local address");
        let shared = Arc::new(Shared::new(behaviour, true));
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let thread_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name(format!("fake-foundry-{}", addr.port()))
            .spawn(move || {
                actix_rt::System::new().block_on(async move {
                    let server = match serve_shared(listener, thread_shared, TEST_WORKERS, false) {
                        Ok(server) => server,
                        Err(e) => {
                            // The receiver is still waiting in `start_with`.
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
            .expect("fake-foundry: spawn the server thread");
        let server = started_rx
            .await
            .expect("fake-foundry: the server thread reports before exiting")
            .expect("fake-foundry: start the server");
        FakeFoundry {
            shared,
            addr,
            server,
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every request received, in order of arrival.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests()
    }

    pub fn request_count(&self) -> usize {
        self.shared.request_count()
    }

    /// Answers the next request that reaches a known route (and passes the credential checks)
    /// with `reply` instead of the normal answer. Replies are used in the order enqueued.
    ///
    /// # Panics
    /// If a [`ScriptedReply::Status`] has an invalid status code or header.
    pub fn enqueue(&self, reply: ScriptedReply) {
        self.shared.enqueue(Queued::from_script(reply));
    }

    /// SSE response bodies created.
    pub fn streams_started(&self) -> usize {
        self.shared.streams.started()
    }

    /// SSE response bodies whose last byte was handed to the server.
    pub fn streams_completed(&self) -> usize {
        self.shared.streams.completed()
    }

    /// SSE response bodies dropped before their last byte, i.e. whose client went away. A
    /// scripted cut counts neither as completed nor as cancelled.
    pub fn streams_cancelled(&self) -> usize {
        self.shared.streams.cancelled()
    }

    /// When `Some`, requests without `Authorization: Bearer <token>` get a 401.
    pub fn set_required_bearer(&self, token: Option<String>) {
        self.shared.set_required_bearer(token);
    }

    /// When `Some`, requests must carry `Authorization: Bearer <token>` with a token the checker
    /// accepts (issued by its [`crate::FakeEntra`], unexpired, not revoked), or get Azure
    /// OpenAI's 401. The subject of each accepted token is kept in
    /// [`RecordedRequest::token_subject`]. Applies on top of [`FakeFoundry::set_required_bearer`]
    /// and [`FakeFoundry::set_required_api_key`].
    pub fn set_token_checker(&self, checker: Option<TokenChecker>) {
        self.shared.set_token_checker(checker);
    }

    /// When `Some`, requests without `api-key: <key>` get a 401.
    pub fn set_required_api_key(&self, key: Option<String>) {
        self.shared.set_required_api_key(key);
    }
}

impl Drop for FakeFoundry {
    fn drop(&mut self) {
        // The stop command is sent when `stop` is called; awaiting its completion is not needed,
        // the server thread winds down on its own.
        drop(self.server.stop(false));
    }
}
