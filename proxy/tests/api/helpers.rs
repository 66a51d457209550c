//! `spawn_app`: a proxy with its own temp data dir and config, in front of a fake Foundry.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fake_foundry::{Behaviour, FakeFoundry};
use proxy::settings::Settings;
use proxy::startup::{Application, StopHandle};
use serde_json::{Value, json};

pub const KEY: &str = "sk-test-key";
pub const KEY_ID: &str = "team-a";
pub const DISABLED_KEY: &str = "sk-disabled-key";
pub const UPSTREAM_API_KEY: &str = "azure-upstream-key";

pub struct TestApp {
    pub address: String,
    pub ops: String,
    pub config_path: PathBuf,
    pub dir: tempfile::TempDir,
    pub fake: FakeFoundry,
    pub http: reqwest::Client,
    pub stop: StopHandle,
    pub stopped: tokio::sync::oneshot::Receiver<()>,
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
    spawn_app_with(Behaviour::default(), |_| {}, |_| {}).await
}

pub async fn spawn_app_with_config(edit: impl FnOnce(&mut Value)) -> TestApp {
    spawn_app_with(Behaviour::default(), edit, |_| {}).await
}

pub async fn spawn_app_with(
    behaviour: Behaviour,
    edit: impl FnOnce(&mut Value),
    settings_edit: impl FnOnce(&mut Settings),
) -> TestApp {
    let fake = FakeFoundry::start_with(behaviour).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = base_config(&fake);
    edit(&mut config);
    let config_path = dir.path().join("config.json");
    write_config(&config_path, &config);
    start(fake, dir, config_path, settings_edit).await
}

/// Starts a proxy on an existing data dir (for restarts).
pub async fn start(
    fake: FakeFoundry,
    dir: tempfile::TempDir,
    config_path: PathBuf,
    settings_edit: impl FnOnce(&mut Settings),
) -> TestApp {
    let mut settings = Settings::for_config(config_path.clone());
    settings.listen = Some("127.0.0.1:0".into());
    settings.ops_listen = Some("127.0.0.1:0".into());
    settings.config_poll = Duration::from_millis(300);
    settings.shutdown_grace = Duration::from_secs(5);
    settings.workers = Some(2);
    settings_edit(&mut settings);
    let app = Application::build(settings).await.expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let ops = format!("http://127.0.0.1:{}", app.ops_port());
    let stop = app.stop_handle();
    let (tx, stopped) = tokio::sync::oneshot::channel();
    actix_rt::spawn(async move {
        app.run_until_stopped().await.expect("app runs");
        let _ = tx.send(());
    });
    TestApp {
        address,
        ops,
        config_path,
        dir,
        fake,
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("client"),
        stop,
        stopped,
    }
}

pub fn write_config(path: &std::path::Path, config: &Value) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(config).expect("json")).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
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

    /// Polls the ops stats until `check` passes or 5 s have gone by.
    pub async fn wait_for_stats(&self, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let stats = self.ops_json("/stats").await;
            if check(&stats) {
                return stats;
            }
            assert!(Instant::now() < deadline, "stats never matched: {stats:#}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn shutdown(self) -> (FakeFoundry, tempfile::TempDir, PathBuf) {
        self.stop.stop().await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.stopped).await;
        (self.fake, self.dir, self.config_path)
    }
}

/// Polls `check` every 20 ms until it holds or `limit` passes.
pub async fn wait_until<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
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

pub fn chat_body(stream: bool) -> Value {
    json!({
        "model": "gpt-5-mini",
        "messages": [{"role": "user", "content": "Say hi"}],
        "stream": stream
    })
}
