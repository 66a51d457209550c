//! Admin login, throttling, cross-site protection and what is served where.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{
    ADMIN_PASSWORD, ADMIN_USER, StackOptions, eventually, spawn_stack, spawn_stack_with, write_json,
};

#[actix_web::test]
async fn the_admin_api_without_credentials_asks_for_basic_auth() {
    let stack = spawn_stack().await;
    let response = stack
        .http
        .get(stack.admin_url("config"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap_or_default()
        .to_string();
    assert!(challenge.starts_with("Basic realm="), "{challenge}");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "unauthorized");
    stack.shutdown().await;
}

#[actix_web::test]
async fn a_wrong_password_is_refused_and_the_right_one_accepted() {
    let stack = spawn_stack().await;
    let wrong = stack
        .http
        .get(stack.admin_url("session"))
        .basic_auth(ADMIN_USER, Some("nope"))
        .send()
        .await
        .expect("request");
    assert_eq!(wrong.status(), 401);
    let prefix = stack
        .http
        .get(stack.admin_url("session"))
        .basic_auth(ADMIN_USER, Some(&ADMIN_PASSWORD[..5]))
        .send()
        .await
        .expect("request");
    assert_eq!(prefix.status(), 401);
    let right = stack.get("session").send().await.expect("request");
    assert_eq!(right.status(), 200);
    let session: Value = right.json().await.expect("json");
    assert_eq!(session["user"], ADMIN_USER);
    assert_eq!(session["default_password"], false);
    assert_eq!(session["persistence"], "file");
    stack.shutdown().await;
}

#[actix_web::test]
async fn repeated_failures_lock_the_address_out_until_the_lockout_ends() {
    let stack = spawn_stack().await;
    let attempt = |password: &'static str| {
        stack
            .http
            .get(stack.admin_url("session"))
            .basic_auth(ADMIN_USER, Some(password))
            .header("x-forwarded-for", "203.0.113.7")
            .send()
    };
    for _ in 0..3 {
        assert_eq!(attempt("guess").await.expect("request").status(), 401);
    }
    let locked = attempt("guess").await.expect("request");
    assert_eq!(locked.status(), 429);
    assert!(locked.headers().contains_key("retry-after"));
    // Even the right password is refused while locked out: guessing cannot go on.
    assert_eq!(
        attempt(ADMIN_PASSWORD).await.expect("request").status(),
        429
    );
    // Another address is not affected.
    let other = stack
        .http
        .get(stack.admin_url("session"))
        .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
        .header("x-forwarded-for", "198.51.100.1")
        .send()
        .await
        .expect("request");
    assert_eq!(other.status(), 200);
    eventually("the lockout to end", Duration::from_secs(5), || async {
        attempt(ADMIN_PASSWORD)
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    stack.shutdown().await;
}

#[actix_web::test]
async fn the_default_password_is_flagged_in_the_session() {
    let stack = spawn_stack_with(StackOptions {
        edit_config: Box::new(|c| c["server"]["adminAuth"]["password"] = "admin".into()),
        ..StackOptions::default()
    })
    .await;
    let session: Value = stack
        .http
        .get(stack.admin_url("session"))
        .basic_auth(ADMIN_USER, Some("admin"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(session["default_password"], true);
    stack.shutdown().await;
}

#[actix_web::test]
async fn the_ui_and_its_assets_need_the_login_and_carry_a_strict_csp() {
    let stack = spawn_stack().await;
    for path in ["/admin/", "/admin/assets/app.js"] {
        let anonymous = stack
            .http
            .get(format!("{}{path}", stack.control))
            .send()
            .await
            .expect("request");
        assert_eq!(anonymous.status(), 401, "{path}");
        let page = stack
            .http
            .get(format!("{}{path}", stack.control))
            .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
            .send()
            .await
            .expect("request");
        assert_eq!(page.status(), 200, "{path}");
        let csp = page.headers()["content-security-policy"]
            .to_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        assert_eq!(page.headers()["x-frame-options"], "DENY");
    }
    stack.shutdown().await;
}

#[actix_web::test]
async fn the_admin_path_redirects_to_its_slash_and_other_paths_are_not_found() {
    let stack = spawn_stack().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let bare = client
        .get(format!("{}/admin", stack.control))
        .send()
        .await
        .expect("request");
    assert_eq!(bare.status(), 308);
    assert_eq!(bare.headers()["location"], "/admin/");
    for path in ["/", "/v1/models", "/administrator", "/adminx/api/config"] {
        let response = stack
            .http
            .get(format!("{}{path}", stack.control))
            .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 404, "{path}");
    }
    stack.shutdown().await;
}

#[actix_web::test]
async fn a_state_changing_call_without_the_marker_header_is_refused() {
    let stack = spawn_stack().await;
    let (config, etag) = stack.config().await;
    let response = stack
        .http
        .put(stack.admin_url("config"))
        .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
        .header("if-match", &etag)
        .json(&config)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "cross_site_request");
    stack.shutdown().await;
}

#[actix_web::test]
async fn a_write_from_another_origin_or_site_is_refused() {
    let stack = spawn_stack().await;
    let (config, etag) = stack.config().await;
    for (header, value) in [
        ("origin", "https://evil.example"),
        ("sec-fetch-site", "cross-site"),
        ("origin", "null"),
    ] {
        let response = stack
            .http
            .put(stack.admin_url("config"))
            .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
            .header("x-requested-with", "test")
            .header("if-match", &etag)
            .header(header, value)
            .json(&config)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 403, "{header}: {value}");
    }
    // A same-origin write with the marker goes through.
    let ok = stack
        .write(Method::POST, "config/validate")
        .json(&config)
        .send()
        .await
        .expect("request");
    assert_eq!(ok.status(), 200);
    stack.shutdown().await;
}

#[actix_web::test]
async fn without_config_json_nobody_can_log_in_until_the_file_is_created_but_the_page_loads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("config.json");
    let mut settings = control::settings::Settings::for_config(config_path.clone());
    // As when the file cannot be created from the example (a read-only data dir).
    settings.create_missing_config = false;
    settings.listen = "127.0.0.1:0".into();
    settings.caddy.admin_url = None;
    settings.config_poll = Duration::from_millis(100);
    settings.workers = Some(1);
    let app = control::startup::Application::build(settings)
        .await
        .expect("control builds");
    let url = format!("http://127.0.0.1:{}/admin/api/session", app.port());
    let stop = app.stop_handle();
    actix_rt::spawn(async move {
        let _ = app.run_until_stopped().await;
    });
    let http = reqwest::Client::new();

    let refused = http
        .get(&url)
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .expect("request");
    assert_eq!(refused.status(), 503);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["code"], "config_missing");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("config.json does not exist"), "{message}");
    // The UI's own files are served without a login, so the page can say what to do.
    let base = url.trim_end_matches("api/session");
    for path in [
        "",
        "assets/app.js",
        "assets/i18n.js",
        "assets/charts.js",
        "assets/style.css",
        "assets/vendor/uPlot.iife.min.js",
        "assets/vendor/uPlot.min.css",
        "assets/vendor/uPlot.LICENSE",
    ] {
        let file = http
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("request");
        assert_eq!(file.status(), 200, "{path}");
    }
    let config = http
        .get(format!("{base}api/config"))
        .send()
        .await
        .expect("request");
    assert_eq!(config.status(), 503);

    write_json(
        &config_path,
        &json!({"server": {"adminAuth": {"username": "ops", "password": "first-pass"}}}),
    );
    eventually(
        "the created file to open the login",
        Duration::from_secs(5),
        || async {
            http.get(&url)
                .basic_auth("ops", Some("first-pass"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        },
    )
    .await;
    stop.stop().await;
}

#[actix_web::test]
async fn a_request_for_another_host_name_is_refused_against_dns_rebinding() {
    let stack = spawn_stack_with(StackOptions {
        edit_config: Box::new(|config| {
            config["server"]["caddy"] = json!({"domain": "gw.example.com"});
        }),
        edit_control: Box::new(|settings| {
            settings.allowed_hosts = vec!["gw.internal.example".into()];
        }),
        ..StackOptions::default()
    })
    .await;
    let session = |host: &'static str| stack.get("session").header("host", host).send();
    let refused = session("attacker.example:3001").await.expect("request");
    assert_eq!(refused.status(), 421);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["code"], "unknown_host");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("CONTROL_ALLOWED_HOSTS")),
        "{body}"
    );
    for host in [
        "gw.example.com",
        "gw.internal.example:3000",
        "localhost:3000",
    ] {
        assert_eq!(
            session(host).await.expect("request").status(),
            200,
            "{host}"
        );
    }
    // The request as sent, to 127.0.0.1.
    assert_eq!(
        stack.get("session").send().await.expect("request").status(),
        200
    );
    stack.shutdown().await;
}

#[actix_web::test]
async fn control_creates_config_json_from_the_example_and_asks_for_a_new_password_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("config.json");
    let mut settings = control::settings::Settings::for_config(config_path.clone());
    settings.listen = "127.0.0.1:0".into();
    settings.caddy.admin_url = None;
    settings.workers = Some(1);
    let app = control::startup::Application::build(settings)
        .await
        .expect("control builds");
    let control = format!("http://127.0.0.1:{}", app.port());
    let api = |path: &str| format!("{control}/admin/api/{path}");
    let stop = app.stop_handle();
    actix_rt::spawn(async move {
        let _ = app.run_until_stopped().await;
    });
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/config.example.json");
    assert_eq!(
        std::fs::read(&config_path).expect("config.json was created"),
        std::fs::read(example).expect("the example")
    );
    let http = reqwest::Client::new();
    let write = |method: Method, path: &str, password: &str| {
        http.request(method, api(path))
            .basic_auth("admin", Some(password))
            .header("x-requested-with", "test")
            .header("origin", &control)
    };

    // The shipped password: accepted from this machine and from private networks only.
    let session = |forwarded_for: &'static str| {
        http.get(api("session"))
            .basic_auth("admin", Some("admin"))
            .header("x-forwarded-for", forwarded_for)
            .send()
    };
    let refused = session("203.0.113.9").await.expect("request");
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["code"], "default_password_remote");
    let private = session("192.168.1.20").await.expect("request");
    assert_eq!(private.status(), 200);
    let body: Value = private.json().await.expect("json");
    assert_eq!(body["default_password"], true);

    // Nothing changes before the password does.
    let key = write(Method::POST, "keys", "admin")
        .json(&json!({"id": "early"}))
        .send()
        .await
        .expect("request");
    assert_eq!(key.status(), 403);
    let body: Value = key.json().await.expect("json");
    assert_eq!(body["error"]["code"], "password_change_required");
    let read: Value = http
        .get(api("config"))
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let etag = read["etag"].as_str().expect("etag").to_string();
    let mut config = read["config"].clone();
    config["models"][0]["targetModel"] = json!("my-deployment");
    let unchanged_password = write(Method::PUT, "config", "admin")
        .header("if-match", &etag)
        .json(&config)
        .send()
        .await
        .expect("request");
    assert_eq!(unchanged_password.status(), 422);
    let body: Value = unchanged_password.json().await.expect("json");
    assert_eq!(
        body["error"]["issues"][0]["path"],
        "server.adminAuth.password"
    );

    config["server"]["adminAuth"]["password"] = json!("a-password-of-my-own");
    let saved = write(Method::PUT, "config", "admin")
        .header("if-match", &etag)
        .json(&config)
        .send()
        .await
        .expect("request");
    assert_eq!(
        saved.status(),
        200,
        "{}",
        saved.text().await.unwrap_or_default()
    );
    let old = http
        .get(api("session"))
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .expect("request");
    assert_eq!(old.status(), 401);
    let key = write(Method::POST, "keys", "a-password-of-my-own")
        .json(&json!({"id": "after"}))
        .send()
        .await
        .expect("request");
    assert_eq!(
        key.status(),
        201,
        "{}",
        key.text().await.unwrap_or_default()
    );
    stop.stop().await;
}

#[test]
fn control_answers_help_and_version_without_starting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("config.json");
    let run = |arg: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_control"))
            .arg(arg)
            .env("CONFIG_PATH", &config_path)
            .env("CONTROL_LISTEN", "127.0.0.1:0")
            .output()
            .expect("runs")
    };
    let help = run("--help");
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for name in [
        "CONTROL_LISTEN",
        "PROXY_OPS_LISTEN",
        "CADDY_ADMIN",
        "LOG_LEVEL",
    ] {
        assert!(
            text.contains(&format!("  {name}\n      default: ")),
            "{name}: {text}"
        );
    }
    let version = run("-V");
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("control {}", env!("CARGO_PKG_VERSION"))
    );
    assert!(!config_path.exists(), "control started");
}
