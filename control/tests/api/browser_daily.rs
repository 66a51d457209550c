//! The admin UI in daily operation, in headless Chromium at desktop and phone width: a broken
//! config.json on disk, the recent requests of unknown models, wide tables on a phone, server
//! messages in Chinese (the login refused, Caddy unreachable), and the Domain & TLS page.

use std::time::Duration;

use fantoccini::Locator;
use serde_json::Value;

use crate::browser::{Browser, PHONE};
use crate::helpers::{
    KEY, StackOptions, UPSTREAM_API_KEY, chat_body, eventually, free_port, spawn_stack,
    spawn_stack_with,
};

async fn choose_language(browser: &Browser, lang: &str) {
    browser
        .client
        .find(Locator::Css("#lang"))
        .await
        .expect("lang")
        .select_by_value(lang)
        .await
        .expect("select");
    browser
        .wait_js(&format!(
            "return document.documentElement.lang.startsWith('{}')",
            &lang[..2]
        ))
        .await;
}

/// A config.json with a syntax error on line 6 and secrets on the lines before it.
fn broken_file() -> String {
    format!(
        "{{\n  \"server\": {{\"adminAuth\": {{\"password\": \"on-disk-password\"}}}},\n  \"auth\": {{\"mode\": \"apiKey\", \"apiKey\": \"{UPSTREAM_API_KEY}\"}},\n  \"apiKeys\": [{{\"id\": \"team\", \"key\": \"sk-on-disk-secret\"}}],\n  \"models\": [\n    {{\"id\": \"m\" \"upstream\": \"u\"}}\n  ]\n}}\n"
    )
}

#[actix_web::test]
async fn a_broken_file_on_disk_shows_in_the_raw_editor_at_its_line_while_the_proxy_serves_on() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let stack = spawn_stack().await;
    std::fs::write(&stack.config_path, broken_file()).expect("break config.json");

    browser.open(&stack.control, "overview").await;
    // What the proxy still serves shows at once, not after the next refresh.
    let shown = browser
        .poll_js(
            "return document.getElementById('facts-proxy').textContent.includes('running')",
            Duration::from_secs(3),
        )
        .await;
    assert!(shown, "the overview does not show the running proxy");
    let title = browser.text("#issues-panel h3").await;
    assert!(title.contains("on disk is invalid"), "{title}");
    assert!(!title.contains("not saved"), "{title}");
    browser.screenshot("broken-file-overview").await;

    browser.show_settled("json").await;
    let text = browser
        .js("return document.getElementById('json-text').value")
        .await;
    let text = text.as_str().expect("text");
    assert_eq!(
        text.lines().count(),
        broken_file().lines().count(),
        "{text}"
    );
    assert!(text.contains("\"id\": \"m\" \"upstream\""), "{text}");
    for secret in ["on-disk-password", UPSTREAM_API_KEY, "sk-on-disk-secret"] {
        assert!(!text.contains(secret), "{secret} shown: {text}");
    }
    let marked = browser
        .js("return [...document.querySelectorAll('#json-gutter .err')].map(e => Number(e.textContent))")
        .await;
    assert_eq!(
        marked,
        serde_json::json!([6]),
        "the error is not marked at its line"
    );
    assert_eq!(
        browser
            .js("return document.getElementById('savebar').hidden")
            .await,
        Value::Bool(true),
        "showing the file is not an unsaved change"
    );
    browser.screenshot("broken-file-json").await;

    browser
        .client
        .set_window_size(PHONE.0, PHONE.1)
        .await
        .expect("phone");
    choose_language(&browser, "zh").await;
    let title = browser.text("#issues-panel h3").await;
    assert!(title.contains("磁盘上的 config.json 无效"), "{title}");
    browser.screenshot("broken-file-json-phone-zh").await;
    browser.close().await;
    stack.shutdown().await;
}

/// No horizontal scrolling: neither the page nor the table's wrapper is wider than it shows.
const NO_SIDEWAYS_SCROLL: &str = "const w = document.querySelector('#requests-table').closest('.table-wrap'); return document.documentElement.scrollWidth <= window.innerWidth && w.scrollWidth <= w.clientWidth + 1";

#[actix_web::test]
async fn a_request_for_an_unknown_model_shows_what_was_asked_for_and_long_ids_wrap() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let stack = spawn_stack().await;
    let asked = format!("gpt-not-configured-{}", "x".repeat(60));
    let request_id = format!("client-request-{}", "0123456789abcdef".repeat(6));
    let mut body = chat_body(false);
    body["model"] = Value::String(asked.clone());
    let res = stack
        .http
        .post(format!("{}/v1/chat/completions", stack.proxy))
        .bearer_auth(KEY)
        .header("x-request-id", &request_id)
        .json(&body)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 404);

    browser.open(&stack.control, "requests").await;
    browser
        .wait_js(
            "return document.querySelectorAll('#requests-table tbody td.request-id').length === 1",
        )
        .await;
    let row = "#requests-table tbody tr";
    assert_eq!(
        browser.text(&format!("{row} .requested-model")).await,
        asked
    );
    assert_eq!(
        browser.text(&format!("{row} td.request-id")).await,
        request_id
    );
    let message = browser.text(&format!("{row} td.wrap")).await;
    assert!(!message.is_empty(), "no message");
    assert_eq!(
        browser.js(NO_SIDEWAYS_SCROLL).await,
        Value::Bool(true),
        "the table scrolls sideways on a laptop"
    );
    browser.screenshot("requests-unknown-model").await;

    browser
        .client
        .set_window_size(PHONE.0, PHONE.1)
        .await
        .expect("phone");
    browser.wait_js(NO_SIDEWAYS_SCROLL).await;
    let labelled = browser
        .js("return getComputedStyle(document.querySelector('#requests-table td.request-id'), '::before').content")
        .await;
    assert_eq!(
        labelled,
        Value::String("\"Request id\"".into()),
        "rows are not stacked with labels"
    );
    browser.screenshot("requests-unknown-model-phone").await;
    // The closed menu casts no shadow onto the page.
    assert_eq!(
        browser
            .js("return getComputedStyle(document.getElementById('nav')).boxShadow")
            .await,
        Value::String("none".into())
    );
    // Units read in Chinese.
    choose_language(&browser, "zh").await;
    browser.show_settled("requests").await;
    let latency = browser
        .text("#requests-table tbody td[data-label='延迟']")
        .await;
    assert!(
        latency.ends_with("毫秒") || latency.ends_with("秒"),
        "{latency}"
    );
    browser.screenshot("requests-unknown-model-phone-zh").await;
    browser.close().await;
    stack.shutdown().await;
}

#[actix_web::test]
async fn messages_from_the_gateway_read_in_chinese_on_a_phone() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    // Nothing listens where control looks for the proxy's ops listener.
    let dead_ops = format!("http://127.0.0.1:{}", free_port());
    let ops_url = dead_ops.clone();
    let stack = spawn_stack_with(StackOptions {
        edit_control: Box::new(move |settings| {
            settings.proxy_ops_url = Some(ops_url.parse().expect("url"));
        }),
        ..StackOptions::default()
    })
    .await;
    browser.open(&stack.control, "tester").await;
    browser
        .client
        .set_window_size(PHONE.0, PHONE.1)
        .await
        .expect("phone");
    choose_language(&browser, "zh").await;
    browser
        .js("const s = document.getElementById('tester-form').elements.model; if (s.tagName === 'SELECT') s.append(new Option('gpt-nope', 'gpt-nope')); s.value = 'gpt-nope'; s.dispatchEvent(new Event('change', { bubbles: true }));")
        .await;
    browser.click("#tester-send").await;
    browser
        .wait_js("return document.getElementById('tester-output').classList.contains('error')")
        .await;
    let answer = browser.text("#tester-output").await;
    assert_eq!(answer, "模型 gpt-nope 不存在（未配置）");
    browser.screenshot("tester-model-not-found-phone-zh").await;

    // The proxy's ops listener does not answer: the warning says so in Chinese and names it.
    browser.show_settled("overview").await;
    let warning = browser
        .text("#warnings li[data-code='proxy_unreachable']")
        .await;
    assert!(
        warning.starts_with(&format!("代理的运维监听 {dead_ops} 没有响应")),
        "{warning}"
    );
    // The cause is worded in Chinese too; the transport's own words follow it.
    assert!(warning.contains("：连接被拒绝或无法访问"), "{warning}");
    assert!(!warning.contains("connection refused"), "{warning}");
    browser
        .screenshot("overview-proxy-unreachable-phone-zh")
        .await;
    browser.close().await;
    stack.shutdown().await;
}

/// A reverse proxy in front of control that says every request comes from a public address
/// (`X-Forwarded-For`), as Caddy does for a client on the internet. Answers with control's
/// status, headers and body.
async fn from_a_public_address(control: &str) -> (String, actix_web::dev::ServerHandle) {
    use actix_web::{HttpRequest, HttpResponse, web};

    let control = control.to_string();
    let http = reqwest::Client::new();
    let server = actix_web::HttpServer::new(move || {
        let control = control.clone();
        let http = http.clone();
        actix_web::App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
            let control = control.clone();
            let http = http.clone();
            async move {
                let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
                let method =
                    reqwest::Method::from_bytes(req.method().as_str().as_bytes()).expect("method");
                let mut forwarded = http
                    .request(method, format!("{control}{path}"))
                    .header("x-forwarded-for", "203.0.113.9")
                    .body(body.to_vec());
                for (name, value) in req.headers() {
                    if !matches!(name.as_str(), "host" | "content-length" | "connection") {
                        forwarded = forwarded.header(name.as_str(), value.as_bytes());
                    }
                }
                let answer = forwarded.send().await.expect("control answers");
                let mut response = HttpResponse::build(
                    actix_web::http::StatusCode::from_u16(answer.status().as_u16())
                        .expect("status"),
                );
                for (name, value) in answer.headers() {
                    if !matches!(
                        name.as_str(),
                        "content-length" | "transfer-encoding" | "connection"
                    ) {
                        response.insert_header((name.as_str(), value.as_bytes()));
                    }
                }
                response.body(answer.bytes().await.expect("body"))
            }
        }))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .expect("bind");
    let address = format!("http://{}", server.addrs()[0]);
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);
    (address, handle)
}

/// Opens the admin UI at `base` with the shipped credentials admin:admin, in Chinese.
async fn open_in_chinese_with_the_default_password(browser: &Browser, base: &str, page: &str) {
    let authority = base.trim_start_matches("http://");
    let url = format!("http://admin:admin@{authority}/admin/#{page}");
    browser.client.goto(&url).await.expect("navigate");
    browser
        .wait_js("return document.body.dataset.ready === 'true'")
        .await;
    browser
        .js("localStorage.setItem('gateway.lang', 'zh'); location.reload();")
        .await;
    browser
        .wait_js("return document.body.dataset.ready === 'true' && document.documentElement.lang === 'zh-CN'")
        .await;
}

#[actix_web::test]
async fn the_login_and_caddy_messages_read_in_chinese_on_a_phone() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    // The shipped password, and a Caddy admin API where nothing listens.
    let dead_caddy = format!("http://127.0.0.1:{}/", free_port());
    let caddy_url = dead_caddy.clone();
    let stack = spawn_stack_with(StackOptions {
        edit_config: Box::new(|config| {
            config["server"]["adminAuth"]["password"] = Value::from("admin");
        }),
        edit_control: Box::new(move |settings| {
            settings.caddy.admin_url = Some(caddy_url.parse().expect("url"));
        }),
        ..StackOptions::default()
    })
    .await;
    browser
        .client
        .set_window_size(PHONE.0, PHONE.1)
        .await
        .expect("phone");

    // From this machine the default password logs in, but nothing changes before it does.
    open_in_chinese_with_the_default_password(&browser, &stack.control, "keys").await;
    browser
        .type_into("#key-create input[name=id]", "early")
        .await;
    browser.click("#key-create button[type=submit]").await;
    browser
        .wait_js("return !document.getElementById('toast').hidden && document.getElementById('toast').classList.contains('bad')")
        .await;
    let toast = browser.text("#toast").await;
    assert_eq!(
        toast,
        "管理密码仍是默认的“admin”：请先修改（在“服务与管理登录”中，或 config.json 的 server.adminAuth.password）；在此之前不能进行其他更改。"
    );
    browser
        .screenshot("password-change-required-phone-zh")
        .await;

    // Caddy's admin API does not answer: the warning names it and says why, in Chinese.
    eventually("the Caddy warning", Duration::from_secs(15), || async {
        let status: Value = match stack
            .http
            .get(stack.admin_url("status"))
            .basic_auth("admin", Some("admin"))
            .send()
            .await
        {
            Ok(answer) => answer.json().await.unwrap_or_default(),
            Err(_) => return false,
        };
        status["warnings"]
            .as_array()
            .is_some_and(|w| w.iter().any(|w| w["code"] == "caddy_unreachable"))
    })
    .await;
    browser.show_settled("overview").await;
    let text = browser
        .text("#warnings li[data-code='caddy_unreachable']")
        .await;
    assert!(
        text.starts_with(&format!(
            "Caddy 的管理 API {dead_caddy} 没有响应：连接被拒绝或无法访问"
        )),
        "{text}"
    );
    assert!(text.contains("CADDY_ADMIN"), "{text}");
    assert!(!text.contains("connection refused"), "{text}");
    assert!(!text.contains("Is Caddy running"), "{text}");
    browser
        .screenshot("overview-caddy-unreachable-phone-zh")
        .await;
    browser.show_settled("tls").await;
    let facts = browser.text("#facts-tls").await;
    assert!(
        facts.contains(&format!(
            "无法访问 Caddy 的管理 API {dead_caddy}：连接被拒绝或无法访问"
        )),
        "{facts}"
    );
    assert!(!facts.contains("is not reachable"), "{facts}");

    // From a public address the default password is refused: the page says why.
    let (public, server) = from_a_public_address(&stack.control).await;
    open_in_chinese_with_the_default_password(&browser, &public, "overview").await;
    browser
        .wait_js("return !document.getElementById('login-refused').hidden")
        .await;
    assert_eq!(browser.text("#login-refused h1").await, "管理登录被拒绝");
    assert_eq!(
        browser.text("#login-refused-text").await,
        "管理密码仍是默认的“admin”，只接受来自本机或私有网络的登录：请先在 config.json 中设置 server.adminAuth.password。"
    );
    let pages_hidden = browser
        .js("return getComputedStyle(document.querySelector('.layout')).display === 'none'")
        .await;
    assert_eq!(pages_hidden, Value::Bool(true));
    browser.screenshot("default-password-remote-phone-zh").await;

    server.stop(true).await;
    browser.close().await;
    stack.shutdown().await;
}

#[actix_web::test]
async fn the_tls_page_speaks_of_the_configured_ports_and_issuer_and_a_tls_save_of_caddy() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let stack = spawn_stack_with(StackOptions {
        edit_control: Box::new(|settings| {
            settings.caddy.http_port = 8088;
            settings.caddy.tls_internal = true;
        }),
        ..StackOptions::default()
    })
    .await;
    browser.open(&stack.control, "tls").await;
    browser
        .wait_js("return document.getElementById('tls-hint').textContent.length > 0")
        .await;
    let hint = browser.text("#tls-hint").await;
    assert!(hint.contains(":8088") && hint.contains(":443"), "{hint}");
    assert!(
        hint.contains("tls internal") && !hint.contains("Let's Encrypt"),
        "{hint}"
    );
    assert!(!hint.contains(":3000"), "{hint}");

    // Turning HTTPS on changes only the Caddy site: the save says Caddy applies it.
    browser
        .type_into("[data-path='server.caddy.domain']", "gateway.test")
        .await;
    browser.click("[data-path='server.caddy.enabled']").await;
    browser.click("#save").await;
    browser
        .wait_js("return document.getElementById('toast').textContent.startsWith('Saved.')")
        .await;
    let said = browser.text("#toast").await;
    assert!(said.contains("Caddy applies"), "{said}");
    assert_eq!(stack.on_disk()["server"]["caddy"]["domain"], "gateway.test");
    // No later "the proxy applied" message replaces it.
    let replaced = browser
        .poll_js(
            "return document.getElementById('toast').textContent.includes('proxy applied')",
            Duration::from_secs(2),
        )
        .await;
    assert!(!replaced, "a TLS-only save said the proxy applied it");
    browser.screenshot("tls-internal").await;

    browser
        .client
        .set_window_size(PHONE.0, PHONE.1)
        .await
        .expect("phone");
    choose_language(&browser, "zh").await;
    browser.show_settled("tls").await;
    let hint = browser.text("#tls-hint").await;
    assert!(hint.contains(":8088") && hint.contains("内部 CA"), "{hint}");
    browser.screenshot("tls-internal-phone-zh").await;
    browser.close().await;
    stack.shutdown().await;
}
