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
