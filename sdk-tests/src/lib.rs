//! Client conformance: the official OpenAI clients (the `openai` Python package and the `openai`
//! npm package, versions pinned in `python/requirements.txt` and `node/package.json`) run their
//! own scripts against an in-process gateway in front of the fake upstream.
//!
//! [`Gateway`] starts both, with the models the scripts use: a Responses-only deployment reached
//! through chat completions ([`RESPONSES_ONLY`]), a chat-only deployment reached through the
//! Responses API ([`CHAT_ONLY`]) and an embeddings model ([`EMBEDDING`]). [`run`] runs one script
//! as a child process with the gateway's URL, a client key and the fake's answer text in its
//! environment, and fails the test with the script's output when it exits non-zero. A client
//! that is not installed skips the test with a message, or fails it under `CI` (where `.ci/run`
//! installs both).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fake_foundry::{Behaviour, FakeFoundry};
use serde_json::{Value, json};
use test_support::fixtures::UPSTREAM_API_KEY;
use test_support::{InProcessProxy, wait_for, write_json};

/// The client key the scripts send.
pub const KEY: &str = "sk-sdk-conformance";
/// A model whose deployment answers only the Responses API, reached with chat completions.
pub const RESPONSES_ONLY: &str = "codex";
/// A model whose deployment answers only chat completions, reached with the Responses API.
pub const CHAT_ONLY: &str = "llama";
/// An embeddings model.
pub const EMBEDDING: &str = "embed";

/// How long one script may run: every client call in it has a 30 s timeout of its own.
const SCRIPT_LIMIT: Duration = Duration::from_secs(180);

/// The directory of this crate: the scripts live in `python/` and `node/` below it.
pub fn suite_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A gateway in front of the fake upstream, on free loopback ports.
pub struct Gateway {
    /// `http://127.0.0.1:PORT`, the API listener.
    pub url: String,
    pub fake: FakeFoundry,
    proxy: InProcessProxy,
    _dir: tempfile::TempDir,
}

impl Gateway {
    /// Must run on an actix system (`#[actix_rt::test]`).
    pub async fn start() -> Gateway {
        let fake = FakeFoundry::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("config.json");
        write_json(&config_path, &config(&fake));
        let proxy = InProcessProxy::start(&config_path, &[]).await;
        Gateway {
            url: proxy.address.clone(),
            fake,
            proxy,
            _dir: dir,
        }
    }

    /// The bodies the fake received on `path` (`/openai/v1/responses`, ...), in order.
    pub fn bodies_sent_to(&self, path: &str) -> Vec<Value> {
        self.fake
            .requests()
            .iter()
            .filter(|r| r.path == path)
            .map(|r| r.json())
            .collect()
    }

    pub async fn stop(self) {
        self.proxy.stop().await;
    }
}

fn config(fake: &FakeFoundry) -> Value {
    json!({
        "server": {"upstream": {"maxRetries": 0}},
        "auth": {"mode": "apiKey", "apiKey": UPSTREAM_API_KEY},
        "apiKeys": [{"id": "sdk", "key": KEY, "status": "active"}],
        "upstreams": [{"name": "fake", "baseUrl": fake.base_url()}],
        "models": [
            {"id": RESPONSES_ONLY, "upstream": "fake", "targetModel": "responses-only-codex",
             "routes": {"chat/completions": "responses"}},
            {"id": CHAT_ONLY, "upstream": "fake", "targetModel": "chat-only-llama",
             "routes": {"responses": "chat/completions"}},
            {"id": EMBEDDING, "upstream": "fake", "targetModel": "dep-embed"}
        ]
    })
}

/// One of the official clients, with the command that runs its scripts.
#[derive(Debug, Clone, Copy)]
pub enum Client {
    /// `python3 -m unittest` over `python/test_conformance.py`.
    Python,
    /// `node node/conformance.mjs`, with the package installed by `npm ci` in `node/`.
    Node,
}

impl Client {
    fn dir(self) -> PathBuf {
        match self {
            Client::Python => suite_dir().join("python"),
            Client::Node => suite_dir().join("node"),
        }
    }

    /// Why the client cannot run here, if it cannot.
    fn missing(self) -> Option<String> {
        let (program, args, install): (&str, &[&str], &str) = match self {
            Client::Python => (
                "python3",
                &["-c", "import openai"],
                "python3 -m pip install -r sdk-tests/python/requirements.txt",
            ),
            Client::Node => (
                "node",
                &["-e", "require.resolve('openai')"],
                "npm ci --prefix sdk-tests/node",
            ),
        };
        let found = Command::new(program)
            .args(args)
            .current_dir(self.dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        (!found).then(|| format!("the OpenAI {self:?} client ({install})"))
    }

    /// Whether the client is installed. Outside CI a missing client skips the test with a
    /// message; in CI it fails the test, because `.ci/run` installs it.
    pub fn available(self) -> bool {
        let Some(missing) = self.missing() else {
            return true;
        };
        if std::env::var_os("CI").is_some() {
            panic!("{missing} is required in CI but was not found; .ci/run installs it");
        }
        eprintln!("skipping: {missing} not found (install it to run this test)");
        false
    }

    fn command(self, cases: &[&str]) -> Command {
        let mut command = match self {
            Client::Python => {
                let mut command = Command::new("python3");
                command.args(["-m", "unittest", "-v"]);
                command.args(cases.iter().map(|case| format!("test_conformance.{case}")));
                command.env("PYTHONDONTWRITEBYTECODE", "1");
                command
            }
            Client::Node => {
                let mut command = Command::new("node");
                command.arg("conformance.mjs").args(cases);
                command
            }
        };
        command.current_dir(self.dir());
        command
    }
}

/// Runs `client`'s `cases` (Python: `Class` or `Class.test_name`; Node: case names) against
/// `gateway`, and returns their output; a non-zero exit fails the test with that output.
pub async fn run(gateway: &Gateway, client: Client, cases: &[&str]) -> String {
    let out = tempfile::tempdir().expect("tempdir");
    let (stdout, stderr) = (out.path().join("stdout"), out.path().join("stderr"));
    let mut command = client.command(cases);
    command
        .env("GATEWAY_URL", &gateway.url)
        .env("GATEWAY_KEY", KEY)
        .env("GATEWAY_TEXT", Behaviour::default().text)
        .env("GATEWAY_RESPONSES_ONLY_MODEL", RESPONSES_ONLY)
        .env("GATEWAY_CHAT_ONLY_MODEL", CHAT_ONLY)
        .env("GATEWAY_EMBEDDING_MODEL", EMBEDDING)
        .stdin(Stdio::null())
        .stdout(create(&stdout))
        .stderr(create(&stderr));
    let started = Instant::now();
    let child = Arc::new(Mutex::new(
        command.spawn().expect("the client's script starts"),
    ));
    let exited = wait_for("the client's script to exit", SCRIPT_LIMIT, || {
        let child = Arc::clone(&child);
        async move { lock(&child).try_wait().expect("the script's status") }
    })
    .await;
    let output = format!("{}{}", read(&stdout), read(&stderr));
    let status = match exited {
        Ok(status) => status,
        Err(timed_out) => {
            let _ = lock(&child).kill();
            panic!("{timed_out}; its output:\n{output}");
        }
    };
    assert!(
        status.success(),
        "{client:?} {cases:?} failed ({status}); its output:\n{output}"
    );
    eprintln!(
        "{client:?} {cases:?} passed in {:.1}s:\n{output}",
        started.elapsed().as_secs_f64()
    );
    output
}

fn lock(child: &Mutex<Child>) -> std::sync::MutexGuard<'_, Child> {
    child
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn create(path: &Path) -> std::fs::File {
    std::fs::File::create(path).expect("an output file")
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}
