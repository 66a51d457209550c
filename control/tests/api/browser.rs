//! The admin UI in headless Chromium, driven over WebDriver (chromedriver): log in, change
//! settings through the forms, create and use a key, watch statistics move, switch language,
//! stream through the tester, see JSON errors at their field. Saves screenshots of the pages
//! to `screenshots/` at the workspace root (git-ignored).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fake_foundry::Behaviour;
use fantoccini::elements::Element;
use fantoccini::error::CmdError;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::caddy::spawn_with_caddy;
use crate::helpers::{
    ADMIN_PASSWORD, ADMIN_USER, KEY, StackOptions, TestStack, chat_body, eventually, find_program,
    free_port, require_tool, spawn_stack, spawn_stack_with, wait_until,
};

const DESKTOP: (u32, u32) = (1280, 900);
pub(crate) const PHONE: (u32, u32) = (390, 844);

/// chromedriver and the Chromium it starts, in their own process group, killed when dropped.
pub(crate) struct Browser {
    pub(crate) client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub(crate) async fn start() -> Option<Browser> {
        let Some(driver_bin) = find_program("chromedriver", "CHROMEDRIVER", "--version") else {
            require_tool("chromedriver (apt-get install chromium-driver)");
            return None;
        };
        let Some(chromium) = ["chromium", "chromium-browser", "google-chrome"]
            .iter()
            .find_map(|name| find_program(name, "CHROMIUM", "--version"))
        else {
            require_tool("chromium (apt-get install chromium)");
            return None;
        };
        let port = free_port();
        let driver = {
            use std::os::unix::process::CommandExt as _;
            Command::new(driver_bin)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("chromedriver starts")
        };
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        eventually("chromedriver", Duration::from_secs(15), || async {
            http.get(format!("{url}/status"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await;
        let profile = tempfile::tempdir().expect("profile dir");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--no-first-run", "--lang=en-US",
                    format!("--user-data-dir={}", profile.path().display()),
                    format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
                ]
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await
            .expect("a WebDriver session");
        let browser = Browser {
            client,
            driver,
            _profile: profile,
        };
        browser
            .client
            .set_window_size(DESKTOP.0, DESKTOP.1)
            .await
            .expect("window size");
        Some(browser)
    }

    /// Opens the admin UI at `page`, logged in with HTTP Basic credentials in the URL.
    pub(crate) async fn open(&self, base: &str, page: &str) {
        let authority = base.trim_start_matches("http://");
        let url = format!("http://{ADMIN_USER}:{ADMIN_PASSWORD}@{authority}/admin/#{page}");
        self.client.goto(&url).await.expect("navigate");
        self.wait_js("return document.body.dataset.ready === 'true'")
            .await;
    }

    async fn go(&self, page: &str) {
        self.js(&format!("location.hash = '{page}'")).await;
        self.wait_js(&format!(
            "return !document.getElementById('page-{page}').hidden"
        ))
        .await;
    }

    pub(crate) async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .expect("script runs")
    }

    /// Polls a script until it returns true (10 s).
    pub(crate) async fn wait_js(&self, script: &str) {
        let ok = self.poll_js(script, Duration::from_secs(10)).await;
        assert!(ok, "never true: {script}");
    }

    pub(crate) async fn poll_js(&self, script: &str, limit: Duration) -> bool {
        wait_until(script, limit, || async {
            self.js(script).await == Value::Bool(true)
        })
        .await
        .is_ok()
    }

    /// Shows `page`, entered afresh even when it is the current one, and waits until the API
    /// calls it made have been answered and their answers rendered.
    pub(crate) async fn show_settled(&self, page: &str) {
        self.js(TRACK_API_CALLS).await;
        self.js(&format!(
            "if (location.hash === '#{page}') window.dispatchEvent(new HashChangeEvent('hashchange')); else location.hash = '{page}';"
        ))
        .await;
        self.wait_js(&format!(
            "return !document.getElementById('page-{page}').hidden && window.pendingApiCalls === 0"
        ))
        .await;
    }

    pub(crate) async fn text(&self, css: &str) -> String {
        self.js(&format!(
            "const e = document.querySelector({css:?}); return e ? e.textContent : ''"
        ))
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Clicks `css` once it is scrolled to the middle of the window, clear of the sticky top
    /// bar.
    pub(crate) async fn click(&self, css: &str) {
        self.js(&format!(
            "const e = document.querySelector({css:?}); if (e) e.scrollIntoView({{ block: 'center' }})"
        ))
        .await;
        self.on_element(css, |e| async move { e.click().await })
            .await;
    }

    pub(crate) async fn type_into(&self, css: &str, text: &str) {
        self.on_element(css, |e| async move {
            e.clear().await?;
            e.send_keys(text).await
        })
        .await;
    }

    /// Runs `action` on the element `css` finds, again on a fresh find when the page re-rendered
    /// it in between (a stale element), for up to 10 s.
    async fn on_element<F, Fut>(&self, css: &str, action: F)
    where
        F: Fn(Element) -> Fut,
        Fut: std::future::Future<Output = Result<(), CmdError>>,
    {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let element = self.client.find(Locator::Css(css)).await.expect(css);
            match action(element).await {
                Ok(()) => return,
                Err(err)
                    if err.is_stale_element_reference() && std::time::Instant::now() < deadline =>
                {
                    tokio::task::yield_now().await;
                }
                Err(err) => panic!("{css}: {err}"),
            }
        }
    }

    pub(crate) async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir).expect("screenshots dir");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
    }

    pub(crate) async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.wait();
    }
}

/// Counts the page's calls to `fetch` in `window.pendingApiCalls`: a call counts until its
/// answer's body has been read and the code awaiting that body has run (the admin UI reads
/// every API answer with `json()` or `text()`).
const TRACK_API_CALLS: &str = r#"
if (window.pendingApiCalls === undefined) {
  window.pendingApiCalls = 0;
  const settle = () => setTimeout(() => { window.pendingApiCalls -= 1; }, 0);
  const fetch = window.fetch;
  window.fetch = (...args) => {
    window.pendingApiCalls += 1;
    return fetch(...args).then((res) => {
      for (const read of ['json', 'text']) {
        const original = res[read].bind(res);
        res[read] = () => original().finally(settle);
      }
      return res;
    }, (err) => { settle(); throw err; });
  };
}
"#;

fn screenshots_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../screenshots")
}

pub(crate) async fn saved(browser: &Browser) {
    browser
        .wait_js("return document.getElementById('savebar').hidden")
        .await;
}

#[actix_web::test]
async fn an_operator_logs_in_changes_settings_and_the_proxy_follows() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let stack = spawn_stack().await;
    browser.open(&stack.control, "overview").await;
    assert!(browser.text("#user-badge").await.contains(ADMIN_USER));

    // A model added through the form is written to config.json and served by the proxy.
    browser.go("models").await;
    browser.click("#add-model").await;
    browser
        .type_into("[data-path='models[2].id']", "browser-model")
        .await;
    browser
        .type_into("[data-path='models[2].targetModel']", "dep-browser")
        .await;
    browser
        .wait_js("return !document.getElementById('savebar').hidden")
        .await;
    browser.click("#save").await;
    saved(&browser).await;
    let disk = stack.on_disk();
    assert_eq!(disk["models"][2]["id"], "browser-model");
    assert_eq!(disk["models"][2]["upstream"], "fake");
    eventually(
        "the proxy to serve the new model",
        Duration::from_secs(5),
        || async {
            let models: Value = stack
                .http
                .get(format!("{}/v1/models", stack.proxy))
                .bearer_auth(KEY)
                .send()
                .await
                .expect("models")
                .json()
                .await
                .expect("json");
            models["data"]
                .as_array()
                .is_some_and(|d| d.iter().any(|m| m["id"] == "browser-model"))
        },
    )
    .await;
    let mut body = chat_body(false);
    body["model"] = json!("browser-model");
    assert_eq!(stack.chat(KEY, body).await.status(), 200);
    let deployment = stack
        .fake
        .requests()
        .last()
        .map(|r| r.json()["model"].clone());
    assert_eq!(deployment, Some(json!("dep-browser")));
    // The toast reports when the proxy applied it.
    assert!(
        browser
            .poll_js(
                "return document.getElementById('toast').textContent.includes('applied')",
                Duration::from_secs(10)
            )
            .await
    );

    // A setting changed on another page.
    browser.go("timeouts").await;
    browser
        .type_into("[data-path='server.upstream.maxRetries']", "3")
        .await;
    browser.click("#save").await;
    saved(&browser).await;
    assert_eq!(stack.on_disk()["server"]["upstream"]["maxRetries"], 3);
    assert_eq!(
        stack.on_disk()["notes"]["owner"],
        "platform team",
        "unknown keys kept"
    );
    browser.close().await;
    stack.shutdown().await;
}

#[actix_web::test]
async fn an_operator_creates_a_key_and_uses_it() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let stack = spawn_stack().await;
    browser.open(&stack.control, "keys").await;
    browser
        .type_into("#key-create input[name=id]", "browser-key")
        .await;
    browser.click("#key-create button[type=submit]").await;
    browser
        .wait_js("return !!document.getElementById('new-key-value')")
        .await;
    let key = browser
        .js("return document.getElementById('new-key-value').value")
        .await
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(key.starts_with("sk-"), "{key}");
    browser.screenshot("keys-created").await;
    browser
        .js("document.getElementById('dialog').close()")
        .await;
    browser.wait_js("return [...document.querySelectorAll('#key-list .row.key')].some(r => r.dataset.keyId === 'browser-key')").await;
    eventually(
        "the proxy to accept the key created in the browser",
        Duration::from_secs(5),
        || async { stack.chat(&key, chat_body(false)).await.status() == 200 },
    )
    .await;
    // The page never holds the key once the dialog is gone.
    let html = browser
        .js("return document.documentElement.outerHTML")
        .await;
    assert!(!html.as_str().unwrap_or_default().contains(&key));
    browser.close().await;
    stack.shutdown().await;
}

#[actix_web::test]
async fn statistics_move_after_a_request() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let stack = spawn_stack().await;
    browser.open(&stack.control, "stats").await;
    browser
        .wait_js("return !!document.getElementById('total-requests')")
        .await;
    assert_eq!(browser.text("#total-requests").await, "0");
    assert_eq!(stack.chat(KEY, chat_body(false)).await.status(), 200);
    assert_eq!(stack.chat(KEY, chat_body(true)).await.status(), 200);
    // Auto-refresh picks the requests up without a reload.
    let moved = browser
        .poll_js(
            "return document.getElementById('total-requests').textContent === '2'",
            Duration::from_secs(15),
        )
        .await;
    assert!(
        moved,
        "statistics stayed at {}",
        browser.text("#total-requests").await
    );
    browser.wait_js("return [...document.querySelectorAll('#stats-keys tbody tr')].some(r => r.dataset.name === 'team-a')").await;
    browser.screenshot("stats").await;
    browser.close().await;
    stack.shutdown().await;
}

#[actix_web::test]
async fn the_language_switch_is_applied_and_remembered() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let stack = spawn_stack().await;
    browser.open(&stack.control, "overview").await;
    assert_eq!(browser.text("#nav a[href='#overview']").await, "Overview");
    browser
        .client
        .find(Locator::Css("#lang"))
        .await
        .expect("lang")
        .select_by_value("zh")
        .await
        .expect("select");
    browser
        .wait_js(
            "return document.querySelector(\"#nav a[href='#overview']\").textContent === '概览'",
        )
        .await;
    browser.open(&stack.control, "overview").await;
    assert_eq!(browser.text("#nav a[href='#overview']").await, "概览");
    assert_eq!(
        browser.js("return document.documentElement.lang").await,
        "zh-CN"
    );
    browser
        .wait_js("return document.querySelectorAll('#warnings li').length > 0")
        .await;
    browser.screenshot("overview-zh").await;
    browser
        .client
        .find(Locator::Css("#lang"))
        .await
        .expect("lang")
        .select_by_value("en")
        .await
        .expect("select");
    browser.wait_js("return document.querySelector(\"#nav a[href='#overview']\").textContent === 'Overview'").await;
    browser.close().await;
    stack.shutdown().await;
}

#[actix_web::test]
async fn the_tester_shows_a_stream_as_it_arrives() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let stack = spawn_stack_with(StackOptions {
        behaviour: Behaviour {
            stream_chunks: 15,
            chunk_gap_ms: 200,
            ..Behaviour::default()
        },
        ..StackOptions::default()
    })
    .await;
    browser.open(&stack.control, "tester").await;
    browser
        .type_into("#tester-form textarea[name=prompt]", "Stream please")
        .await;
    browser.click("#tester-send").await;
    // Part of the answer is on screen while the stream is still running.
    let partial = browser
        .poll_js(
            "return document.getElementById('tester-output').textContent.length > 0 && document.getElementById('tester-send').disabled",
            Duration::from_secs(10),
        )
        .await;
    assert!(partial, "no partial answer was shown while streaming");
    let during = browser.text("#tester-output").await;
    browser.screenshot("tester-streaming").await;
    browser
        .wait_js("return !document.getElementById('tester-send').disabled")
        .await;
    let after = browser.text("#tester-output").await;
    assert!(
        after.len() > during.len(),
        "during: {during:?}, after: {after:?}"
    );
    assert!(after.contains("Hello"), "{after}");
    assert!(browser.text("#tester-meta").await.contains("200"));
    browser.screenshot("tester").await;
    browser.close().await;
    stack.shutdown().await;
}

#[actix_web::test]
async fn the_json_editor_shows_a_validation_error_at_its_field() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let stack = spawn_stack().await;
    let before = std::fs::read(&stack.config_path).expect("read");
    browser.open(&stack.control, "json").await;
    browser
        .wait_js("return document.getElementById('json-text').value.includes('\"models\"')")
        .await;
    browser
        .js("const a = document.getElementById('json-text'); a.value = a.value.replace('\"upstream\": \"fake\"', '\"upstream\": \"nowhere\"'); a.dispatchEvent(new Event('input'));")
        .await;
    browser.click("#save").await;
    browser.wait_js("return document.getElementById('json-issues').textContent.includes('models[0].upstream')").await;
    let line = browser.js("const e = document.querySelector('#json-gutter .err'); return e ? Number(e.textContent) : 0").await;
    let expected = browser
        .js("return document.getElementById('json-text').value.split('\\n').findIndex(l => l.includes('nowhere')) + 1")
        .await;
    assert_eq!(
        line, expected,
        "the error is not marked at the field's line"
    );
    browser.screenshot("json-error").await;
    assert_eq!(
        std::fs::read(&stack.config_path).expect("read"),
        before,
        "an invalid config was written"
    );
    // The forms show the same error at the field.
    browser.go("models").await;
    browser.wait_js("return !!document.querySelector(\"[data-path='models[0].upstream']\").closest('.invalid')").await;
    browser.close().await;
    stack.shutdown().await;
}

async fn shoot_pages(
    browser: &Browser,
    stack: &TestStack,
    size: (u32, u32),
    suffix: &str,
    pages: &[&str],
) {
    browser
        .client
        .set_window_size(size.0, size.1)
        .await
        .expect("window size");
    browser.open(&stack.control, "overview").await;
    for page in pages {
        browser.show_settled(page).await;
        browser.screenshot(&format!("{page}{suffix}")).await;
    }
}

#[actix_web::test]
async fn screenshots_of_the_main_pages_on_a_laptop_and_a_phone() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let https_port = free_port();
    let with_caddy = spawn_with_caddy(Behaviour::default(), Some(https_port), None).await;
    let (stack, _caddy) = match with_caddy {
        Some(s) => (s.stack, Some(s.caddy)),
        None => (spawn_stack().await, None),
    };
    for stream in [false, true] {
        stack.chat(KEY, chat_body(stream)).await;
    }
    let mut unknown = chat_body(false);
    unknown["model"] = json!("gpt-4o");
    stack.chat(KEY, unknown).await;
    // Let Caddy obtain its internal certificate, so the TLS page shows one.
    let storage = stack.dir.path().join("caddy");
    let _ = wait_until(
        "Caddy's internal certificate",
        Duration::from_secs(15),
        || async { !control::caddy::certificates::list(&storage).is_empty() },
    )
    .await;
    shoot_pages(
        &browser,
        &stack,
        DESKTOP,
        "",
        &[
            "overview", "models", "keys", "auth", "images", "timeouts", "tls", "server", "stats",
            "requests", "tester", "json",
        ],
    )
    .await;
    shoot_pages(
        &browser,
        &stack,
        PHONE,
        "-phone",
        &[
            "overview", "models", "keys", "stats", "requests", "tls", "tester",
        ],
    )
    .await;
    browser
        .client
        .set_window_size(PHONE.0, PHONE.1)
        .await
        .expect("size");
    browser.click("#menu-toggle").await;
    // The menu slides in: wait until it is open and its transition has ended.
    browser
        .wait_js("const nav = document.getElementById('nav'); return document.body.classList.contains('nav-open') && getComputedStyle(nav).transform === 'none' && nav.getAnimations().length === 0")
        .await;
    browser.screenshot("menu-phone").await;
    assert!(screenshots_dir().join("overview.png").is_file());
    browser.close().await;
    stack.shutdown().await;
}
