//! `spawn_app`: a proxy with its own temp data dir and config, in front of a fake Foundry.
//! Waits, fixtures, the config writer and the in-process proxy come from `test_support`.

use std::path::PathBuf;
use std::time::Duration;

use fake_foundry::{Behaviour, FakeFoundry};
use serde_json::{Value, json};
use test_support::InProcessProxy;

pub use test_support::fixtures::{KEY_ID, UPSTREAM_API_KEY};
pub use test_support::{chat_body, eventually, free_port, wait_for, write_json};

pub const KEY: &str = "sk-test-key";
pub const DISABLED_KEY: &str = "sk-disabled-key";

pub struct TestApp {
    pub address: String,
    pub ops: String,
    pub config_path: PathBuf,
    pub dir: tempfile::TempDir,
    pub fake: FakeFoundry,
    pub http: reqwest::Client,
    proxy: InProcessProxy,
}

/// The config every test starts from, pointing at `fake`.
pub fn base_config(fake: &FakeFoundry) -> Value {
    json!({
        "server": {"upstream": {"maxRetries": 0, "retryBaseMs": 10, "retryMaxMs": 1000}},
        "auth": {"mode": "apiKey", "apiKey": UPSTREAM_API_KEY},
        "apiKeys": [
            {"id": KEY_ID, "key": KEY, "status": "active"},
            {"id": "team-b", "key": "sk-other-key", "status": "active"},
            {"id": "off", "key": DISABLED_KEY, "status": "disabled"}
        ],
        "upstreams": [
            {"name": "fake", "baseUrl": fake.base_url()},
            {"name": "legacy", "baseUrl": fake.base_url(),
             "routes": {"chat/completions": "/openai/deployments/{deployment}/chat/completions?api-version=2024-10-21"}},
            {"name": "todo", "baseUrl": "https://YOUR-RESOURCE-NAME.openai.azure.com"}
        ],
        "models": [
            {"id": "gpt-5-mini", "upstream": "fake", "targetModel": "dep-mini"},
            {"id": "gpt-image-1", "upstream": "fake", "targetModel": "dep-image"},
            {"id": "legacy-model", "upstream": "legacy", "targetModel": "legacy dep/1"},
            {"id": "via-responses", "upstream": "fake", "targetModel": "dep-r",
             "routes": {"chat/completions": "responses"}},
            {"id": "unset", "upstream": "todo"}
        ]
    })
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Behaviour::default(), |_| {}, &[]).await
}

pub async fn spawn_app_with_config(edit: impl FnOnce(&mut Value)) -> TestApp {
    spawn_app_with(Behaviour::default(), edit, &[]).await
}

/// A proxy whose config is the base config after `edit`, with `env` added to the test
/// settings (`BODY_LIMIT`, `CONFIG_WATCH`, `PROXY_WORKERS`).
pub async fn spawn_app_with(
    behaviour: Behaviour,
    edit: impl FnOnce(&mut Value),
    env: &[(&str, &str)],
) -> TestApp {
    let fake = FakeFoundry::start_with(behaviour).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = base_config(&fake);
    edit(&mut config);
    let config_path = dir.path().join("config.json");
    write_json(&config_path, &config);
    start(fake, dir, config_path, env).await
}

/// Starts a proxy on an existing data dir (for restarts).
pub async fn start(
    fake: FakeFoundry,
    dir: tempfile::TempDir,
    config_path: PathBuf,
    env: &[(&str, &str)],
) -> TestApp {
    let proxy = InProcessProxy::start(&config_path, env).await;
    TestApp {
        address: proxy.address.clone(),
        ops: proxy.ops.clone(),
        config_path,
        dir,
        fake,
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("client"),
        proxy,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub fn post(&self, path: &str, body: &Value) -> reqwest::RequestBuilder {
        self.http.post(self.url(path)).bearer_auth(KEY).json(body)
    }

    pub async fn chat(&self, body: Value) -> reqwest::Response {
        self.post("/v1/chat/completions", &body)
            .send()
            .await
            .expect("request")
    }

    pub async fn ops_json(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.ops))
            .send()
            .await
            .expect("ops request")
            .json()
            .await
            .expect("ops json")
    }

    /// Polls the ops stats until `check` passes (5 s).
    pub async fn wait_for_stats(&self, check: impl Fn(&Value) -> bool) -> Value {
        let matched = wait_for("the ops stats to match", Duration::from_secs(5), || async {
            let stats = self.ops_json("/stats").await;
            check(&stats).then_some(stats)
        })
        .await;
        match matched {
            Ok(stats) => stats,
            Err(timed_out) => panic!("{timed_out}: {:#}", self.ops_json("/stats").await),
        }
    }

    pub async fn shutdown(self) -> (FakeFoundry, tempfile::TempDir, PathBuf) {
        self.proxy.stop().await;
        (self.fake, self.dir, self.config_path)
    }
}

/// A scripted upstream answer: `status` with `headers` and an Azure-shaped error body.
pub fn status_reply(status: u16, headers: &[(&str, &str)]) -> fake_foundry::ScriptedReply {
    fake_foundry::ScriptedReply::Status {
        status,
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        body: fake_foundry::error_body(&status.to_string(), "try again"),
    }
}

pub async fn error_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("error json");
    assert!(
        body["error"]["message"].is_string(),
        "not OpenAI-shaped: {body}"
    );
    assert!(
        body["error"].get("type").is_some() && body["error"].get("code").is_some(),
        "{body}"
    );
    (status, body["error"].clone())
}
