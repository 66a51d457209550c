//! Client keys in the admin UI, in headless Chromium: a key's allowed models, windows, budget
//! and expiry are edited, saved in the file's shapes and read back; an invalid window is shown at
//! its field; the use of each window and budget shows what the proxy counts, and Reset budget
//! brings a spent budget back; without config.json the page says how to create it. Both
//! languages, and a phone's width.

use std::time::Duration;

use serde_json::{Value, json};

use crate::browser::{Browser, PHONE, saved};
use crate::browser_pools::field;
use crate::helpers::{
    KEY, StackOptions, TestStack, chat_body, eventually, spawn_stack, spawn_stack_with, write_json,
};

const TEAM_A: &str = "#key-list .row.key[data-key-id='team-a']";

fn in_team_a(css: &str) -> String {
    format!("{TEAM_A} {css}")
}

impl Browser {
    /// Sets a date-time input as a person picking a date would, and says so to the page.
    async fn set_date_time(&self, css: &str, local: &str) {
        self.js(&format!(
            "const e = document.querySelector({css:?}); e.value = {local:?}; e.dispatchEvent(new Event('input', {{ bubbles: true }}));"
        ))
        .await;
    }

    /// Reloads the page and waits until it is ready again.
    pub(crate) async fn reload(&self) {
        self.js("window.beforeReload = true").await;
        self.client.refresh().await.expect("reload");
        self.wait_js(
            "return window.beforeReload === undefined && document.body.dataset.ready === 'true'",
        )
        .await;
    }
}

async fn model_status(stack: &TestStack, model: &str) -> u16 {
    let mut body = chat_body(false);
    body["model"] = json!(model);
    stack.chat(KEY, body).await.status().as_u16()
}

#[actix_web::test]
async fn an_operator_limits_a_key_and_finds_it_after_a_reload() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let stack = spawn_stack().await;
    browser.open(&stack.control, "keys").await;
    browser
        .wait_js(&format!("return !!document.querySelector(\"{TEAM_A}\")"))
        .await;

    // Models: a configured id from the list, and a pattern typed in.
    browser
        .select(&in_team_a("select.add-model"), "gpt-5-mini")
        .await;
    browser.select(&in_team_a("select.add-model"), "*").await;
    browser
        .type_into(&field("apiKeys[0].models[1]"), "gpt-5*")
        .await;
    // A request window and a token window.
    browser.click(&in_team_a("[data-action=add-window]")).await;
    browser
        .type_into(&field("apiKeys[0].limits[0].requests"), "5")
        .await;
    browser.click(&in_team_a("[data-action=add-window]")).await;
    browser
        .select(
            &in_team_a(".window[data-index='1'] select[data-role=kind]"),
            "tokens",
        )
        .await;
    browser
        .type_into(&field("apiKeys[0].limits[1].tokens"), "2000")
        .await;
    browser
        .type_into(&field("apiKeys[0].limits[1].per"), "1h30m")
        .await;
    // A budget per day.
    browser.click(&in_team_a("[data-action=add-budget]")).await;
    browser
        .type_into(&field("apiKeys[0].budget.tokens"), "50000")
        .await;
    browser.select(&field("apiKeys[0].budget.per"), "day").await;
    // An expiry, picked in the browser's time zone and kept in UTC.
    browser
        .set_date_time(&field("apiKeys[0].expiresAt"), "2027-06-30T23:59:59")
        .await;
    let expires = browser
        .js("return new Date('2027-06-30T23:59:59').toISOString().replace('.000Z', 'Z')")
        .await;
    browser.shot("keys-editing", TEAM_A).await;
    // Disabling another key saves at once and keeps these unsaved edits.
    browser
        .click("#key-list .row.key[data-key-id='team-b'] [data-action=toggle]")
        .await;
    eventually(
        "team-b to be disabled in config.json",
        Duration::from_secs(5),
        || async { stack.on_disk()["apiKeys"][1]["status"] == "disabled" },
    )
    .await;
    browser
        .wait_js("return document.querySelector(\"#key-list .row.key[data-key-id='team-b'] .badge\").textContent === 'disabled'")
        .await;
    assert_eq!(
        browser.value(&field("apiKeys[0].limits[1].per")).await,
        "1h30m"
    );
    assert!(
        browser
            .js("return !document.getElementById('savebar').hidden")
            .await
            == true
    );
    browser.click("#save").await;
    saved(&browser).await;

    let disk = stack.on_disk();
    assert_eq!(
        disk["apiKeys"][0],
        json!({
            "id": "team-a", "key": KEY, "status": "active",
            "models": ["gpt-5-mini", "gpt-5*"],
            "limits": [{"requests": 5, "per": "1m"}, {"tokens": 2000, "per": "1h30m"}],
            "budget": {"tokens": 50000, "per": "day"},
            "expiresAt": expires
        })
    );
    // The key left alone keeps its shape.
    assert_eq!(
        disk["apiKeys"][1],
        json!({"id": "team-b", "key": "sk-other-key-0123456789", "status": "disabled"})
    );
    // The proxy serves the new list.
    eventually(
        "the proxy to refuse a model outside the key's list",
        Duration::from_secs(5),
        || async { model_status(&stack, "gpt-image-1").await == 403 },
    )
    .await;

    // After a reload every field is read back from the file.
    browser.reload().await;
    for (path, expected) in [
        ("apiKeys[0].models[0]", "gpt-5-mini"),
        ("apiKeys[0].models[1]", "gpt-5*"),
        ("apiKeys[0].limits[0].requests", "5"),
        ("apiKeys[0].limits[0].per", "1m"),
        ("apiKeys[0].limits[1].tokens", "2000"),
        ("apiKeys[0].limits[1].per", "1h30m"),
        ("apiKeys[0].budget.tokens", "50000"),
        ("apiKeys[0].budget.per", "day"),
        ("apiKeys[0].expiresAt", "2027-06-30T23:59:59"),
    ] {
        assert_eq!(browser.value(&field(path)).await, expected, "{path}");
    }
    assert_eq!(
        browser
            .value(&in_team_a(".window[data-index='1'] select[data-role=kind]"))
            .await,
        "tokens"
    );
    let note = browser.text(&in_team_a(".expiry-note")).await;
    assert!(note.contains(expires.as_str().unwrap_or("?")), "{note}");
    browser.shot("keys-limited", TEAM_A).await;

    // Everything taken away again: the key is back to its first shape.
    for _ in 0..2 {
        browser
            .click(&in_team_a("[data-action=remove-model]"))
            .await;
        browser
            .click(&in_team_a("[data-action=remove-window]"))
            .await;
    }
    browser
        .click(&in_team_a("[data-action=remove-budget]"))
        .await;
    browser.click(&in_team_a("[data-action=no-expiry]")).await;
    browser.click("#save").await;
    saved(&browser).await;
    assert_eq!(
        stack.on_disk()["apiKeys"][0],
        json!({"id": "team-a", "key": KEY, "status": "active"})
    );
    browser.close().await;
    stack.shutdown().await;
}

#[actix_web::test]
async fn an_invalid_window_is_shown_at_its_field_and_nothing_is_written() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let stack = spawn_stack().await;
    let before = std::fs::read(&stack.config_path).expect("read");
    browser.open(&stack.control, "keys").await;
    browser.click(&in_team_a("[data-action=add-window]")).await;
    browser
        .type_into(&field("apiKeys[0].limits[0].per"), "500ms")
        .await;
    browser.click("#save").await;
    browser
        .wait_js("return !document.getElementById('issues-panel').hidden")
        .await;
    // The field is marked, its message on the line below the window.
    let at_field = browser
        .js(&format!(
            "const e = document.querySelector(\"{}\"); const f = e && e.closest('.field.invalid'); const m = e && e.closest('.window').querySelector(\"[data-for='apiKeys[0].limits[0].per']\"); return f && e.classList.contains('invalid') && m ? m.textContent : ''",
            field("apiKeys[0].limits[0].per")
        ))
        .await;
    assert!(
        at_field
            .as_str()
            .is_some_and(|m| m.contains("whole number of seconds")),
        "{at_field}"
    );
    browser.shot("keys-window-error", TEAM_A).await;
    // Typing again clears the mark.
    browser
        .type_into(&field("apiKeys[0].limits[0].per"), "2s")
        .await;
    browser
        .wait_js(&format!(
            "return !document.querySelector(\"{}\").closest('.window').querySelector('.field-error, .invalid')",
            field("apiKeys[0].limits[0].per")
        ))
        .await;

    // A window that counts neither requests nor tokens, written in the raw JSON: the error is
    // at the window's row, which asks what it counts; the issue list leads there.
    browser.show_settled("json").await;
    browser
        .js("const a = document.getElementById('json-text'); const c = JSON.parse(a.value); c.apiKeys[0].limits = [{per: '1m'}]; a.value = JSON.stringify(c, null, 2); a.dispatchEvent(new Event('input'));")
        .await;
    browser.click("#save").await;
    browser
        .wait_js("return document.getElementById('issues-list').textContent.includes('apiKeys[0].limits[0]')")
        .await;
    browser.click("#issues-list li").await;
    browser
        .wait_js("return !document.getElementById('page-keys').hidden")
        .await;
    let row = in_team_a(".window.invalid[data-issue-path='apiKeys[0].limits[0]'] > .field-error");
    browser
        .wait_js(&format!("return !!document.querySelector(\"{row}\")"))
        .await;
    assert!(
        browser
            .text(&row)
            .await
            .contains("give either requests or tokens"),
    );
    assert_eq!(
        browser
            .value(&in_team_a(".window[data-index='0'] select[data-role=kind]"))
            .await,
        ""
    );
    browser.shot("keys-window-kind-error", TEAM_A).await;
    assert_eq!(
        std::fs::read(&stack.config_path).expect("read"),
        before,
        "an invalid config was written"
    );
    browser.close().await;
    stack.shutdown().await;
}

/// The `data-used` of the meter at `css`, once there is one.
async fn meter_used(browser: &Browser, css: &str) -> Value {
    browser
        .wait_js(&format!(
            "return !!document.querySelector(\"{css} .meter\")"
        ))
        .await;
    browser
        .js(&format!(
            "return Number(document.querySelector(\"{css} .meter\").dataset.used)"
        ))
        .await
}

#[actix_web::test]
async fn the_use_of_windows_and_budgets_shows_and_reset_budget_brings_it_back() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let stack = spawn_stack_with(StackOptions {
        edit_config: Box::new(|config| {
            config["apiKeys"][0]["limits"] = json!([{"requests": 100, "per": "1h"}]);
            config["apiKeys"][0]["budget"] = json!({"tokens": 30, "per": "day"});
        }),
        ..StackOptions::default()
    })
    .await;
    // 18 tokens an answer: the budget is spent after two.
    eventually(
        "the budget to be spent",
        Duration::from_secs(10),
        || async { stack.chat(KEY, chat_body(false)).await.status() == 429 },
    )
    .await;
    let limits = stack.ops_json("/limits").await;
    let requests = limits["keys"][0]["windows"][0]["used"].clone();
    let spent = limits["keys"][0]["budget"]["used"].clone();
    assert!(spent.as_u64().is_some_and(|used| used >= 30), "{limits}");

    browser.open(&stack.control, "keys").await;
    let window = in_team_a(".usage[data-window='0']");
    let budget = in_team_a(".usage[data-budget]");
    assert_eq!(meter_used(&browser, &window).await, requests);
    assert_eq!(meter_used(&browser, &budget).await, spent);
    let window_text = browser.text(&window).await;
    assert!(
        window_text.contains(&format!("{requests} of 100")) && window_text.contains("resets "),
        "{window_text}"
    );
    let budget_text = browser.text(&budget).await;
    assert!(
        budget_text.contains("spent") && budget_text.contains("since "),
        "{budget_text}"
    );
    browser.shot("keys-usage", TEAM_A).await;

    // Reset budget asks first, then saves resetAt; the proxy counts from zero again.
    browser
        .click(&in_team_a("[data-action=reset-budget]"))
        .await;
    browser
        .wait_js("return document.getElementById('dialog').open")
        .await;
    browser.screenshot("keys-reset-confirm").await;
    browser.click("#dialog-actions button[value=ok]").await;
    eventually(
        "config.json to hold the budget's resetAt",
        Duration::from_secs(5),
        || async { stack.on_disk()["apiKeys"][0]["budget"]["resetAt"].is_string() },
    )
    .await;
    let disk = stack.on_disk();
    let reset_at = disk["apiKeys"][0]["budget"]["resetAt"]
        .as_str()
        .unwrap_or_default();
    assert!(
        reset_at.ends_with('Z') && reset_at.len() == 20,
        "{reset_at}"
    );
    let age = browser
        .js(&format!("return Date.now() - Date.parse({reset_at:?})"))
        .await;
    assert!(
        age.as_i64().is_some_and(|ms| (0..60_000).contains(&ms)),
        "resetAt {reset_at} is {age} ms old"
    );
    assert_eq!(
        disk["apiKeys"][0]["budget"],
        json!({"tokens": 30, "per": "day", "resetAt": reset_at})
    );
    let dropped = browser
        .poll_js(
            &format!("const m = document.querySelector(\"{budget} .meter\"); return !!m && m.dataset.used === '0'"),
            Duration::from_secs(15),
        )
        .await;
    assert!(
        dropped,
        "the budget still shows {}",
        browser.text(&budget).await
    );
    assert_eq!(stack.chat(KEY, chat_body(false)).await.status(), 200);
    assert!(
        browser
            .text(&in_team_a(".budget-usage ~ .hint"))
            .await
            .starts_with("Last reset: ")
    );
    browser.shot("keys-usage-reset", TEAM_A).await;

    // Chinese.
    browser.switch_language("zh").await;
    browser.show_settled("keys").await;
    let window_zh = browser.text(&window).await;
    assert!(window_zh.contains("重置"), "{window_zh}");
    assert!(browser.text(&in_team_a("[data-action=reset-budget]")).await == "重置预算");
    let untranslated = browser
        .js("const d = window.GATEWAY_I18N; return Object.keys(d.en).filter((k) => !(k in d.zh))")
        .await;
    assert_eq!(untranslated, json!([]));
    browser.shot("keys-usage-zh", TEAM_A).await;

    // A phone, in both languages: every control on screen.
    browser
        .client
        .set_window_size(PHONE.0, PHONE.1)
        .await
        .expect("window size");
    for lang in ["zh", "en"] {
        browser.switch_language(lang).await;
        browser.show_settled("keys").await;
        browser.assert_fits_the_window("keys").await;
        browser.shot(&format!("keys-phone-{lang}"), TEAM_A).await;
        browser
            .shot(
                &format!("keys-usage-phone-{lang}"),
                &in_team_a(".budget-usage"),
            )
            .await;
    }
    browser.close().await;
    stack.shutdown().await;
}

#[actix_web::test]
async fn without_config_json_the_page_says_how_to_create_it() {
    let Some(browser) = Browser::start().await else {
        return;
    };
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
    let control = format!("http://127.0.0.1:{}", app.port());
    let stop = app.stop_handle();
    actix_rt::spawn(async move {
        let _ = app.run_until_stopped().await;
    });

    browser.open(&control, "overview").await;
    browser
        .wait_js("return !document.getElementById('config-missing').hidden")
        .await;
    assert_eq!(
        browser
            .js("return getComputedStyle(document.querySelector('.layout')).display")
            .await,
        "none"
    );
    assert_eq!(
        browser.text("#config-missing h1").await,
        "config.json is missing"
    );
    assert!(
        browser
            .text("#config-missing")
            .await
            .contains("CONFIG_PATH")
    );
    assert_eq!(browser.text("#toast").await, "", "an error was shown");
    browser.screenshot("config-missing").await;
    browser.switch_language("zh").await;
    assert_eq!(browser.text("#config-missing h1").await, "缺少 config.json");
    browser.screenshot("config-missing-zh").await;
    browser
        .client
        .set_window_size(PHONE.0, PHONE.1)
        .await
        .expect("window size");
    for lang in ["zh", "en"] {
        browser.switch_language(lang).await;
        browser.assert_fits("#config-missing").await;
        browser
            .screenshot(&format!("config-missing-phone-{lang}"))
            .await;
    }

    // Once the file is there, the page reloads into the admin UI (here without a login, so
    // that no browser prompt stands in the way).
    browser.js("window.beforeReload = true").await;
    write_json(
        &config_path,
        &json!({"server": {"adminAuth": {"enabled": false}}}),
    );
    browser
        .wait_js(
            "return window.beforeReload === undefined && document.body.dataset.ready === 'true'",
        )
        .await;
    assert!(
        browser
            .js("return document.getElementById('config-missing').hidden")
            .await
            == true
    );
    browser
        .wait_js("return document.getElementById('banners').textContent.length > 0")
        .await;
    browser.close().await;
    stop.stop().await;
}
