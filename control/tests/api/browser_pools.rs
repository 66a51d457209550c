//! Deployment pools in the admin UI, in headless Chromium: the model editor builds, reorders
//! and shrinks a pool and saves it in the file's shapes; pool errors appear at their field; the
//! live view, the overview and recent requests show a throttled deployment cooling, a failing
//! one with its circuit open, and the request's attempts, in both languages and at phone width.

use std::time::Duration;

use fake_foundry::ScriptedReply;
use fantoccini::Locator;
use serde_json::{Value, json};

use crate::browser::{Browser, PHONE, saved};
use crate::helpers::{KEY, StackOptions, chat_body, spawn_stack_with};

/// Adds the upstreams `east` and `west` (both the fake) to the test config.
fn east_and_west(config: &mut Value) {
    let base_url = config["upstreams"][0]["baseUrl"].clone();
    if let Some(upstreams) = config["upstreams"].as_array_mut() {
        upstreams.push(json!({"name": "east", "baseUrl": base_url}));
        upstreams.push(json!({"name": "west", "baseUrl": base_url}));
    }
}

pub(crate) fn field(path: &str) -> String {
    format!("[data-path='{path}']")
}

impl Browser {
    pub(crate) async fn select(&self, css: &str, value: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .expect(css)
            .select_by_value(value)
            .await
            .expect("select");
    }

    pub(crate) async fn value(&self, css: &str) -> String {
        self.js(&format!(
            "const e = document.querySelector({css:?}); return e ? e.value : null"
        ))
        .await
        .as_str()
        .unwrap_or("<missing>")
        .to_string()
    }

    /// A screenshot with `css` in the middle of the window.
    pub(crate) async fn shot(&self, name: &str, css: &str) {
        self.js(&format!(
            "document.querySelector({css:?}).scrollIntoView({{ block: 'center' }})"
        ))
        .await;
        self.screenshot(name).await;
    }

    pub(crate) async fn switch_language(&self, lang: &str) {
        self.select("#lang", lang).await;
        self.wait_js(&format!("return document.getElementById('lang').value === '{lang}' && document.documentElement.lang.startsWith('{lang}')")).await;
    }

    /// Every visible control of `page` lies inside the window, and the page does not scroll
    /// sideways.
    pub(crate) async fn assert_fits_the_window(&self, page: &str) {
        self.assert_fits(&format!("#page-{page}")).await;
    }

    /// Every visible control under `root` lies inside the window, and the page does not scroll
    /// sideways.
    pub(crate) async fn assert_fits(&self, root: &str) {
        let outside = self.js(&FITS_THE_WINDOW.replace("ROOT", root)).await;
        assert_eq!(outside, json!([]), "off-screen in {root}");
    }
}

/// The visible controls and cells under `ROOT` that reach outside the window, and whether the
/// page scrolls sideways.
const FITS_THE_WINDOW: &str = r#"
const w = document.documentElement.clientWidth;
const outside = [...document.querySelectorAll('ROOT :is(input, select, button, .badge, td, progress, pre)')]
  .filter((e) => e.getClientRects().length > 0)
  .filter((e) => { const r = e.getBoundingClientRect(); return r.left < -0.5 || r.right > w + 0.5; })
  .map((e) => e.dataset.path || e.textContent.trim().slice(0, 40) || e.tagName);
if (document.documentElement.scrollWidth > w) outside.push('page scrolls sideways');
return outside;
"#;

#[actix_web::test]
async fn an_operator_builds_a_pool_of_three_and_finds_it_after_a_reload() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let stack = spawn_stack_with(StackOptions {
        edit_config: Box::new(east_and_west),
        ..StackOptions::default()
    })
    .await;
    browser.open(&stack.control, "models").await;
    let first_model = "#model-list > .row:nth-child(1)";
    browser
        .click(&format!("{first_model} [data-action=add-deployment]"))
        .await;
    browser
        .click(&format!("{first_model} [data-action=add-deployment]"))
        .await;
    browser
        .wait_js(&format!(
            "return document.querySelectorAll('{first_model} .deployment:not(.deployment-head)').length === 3"
        ))
        .await;
    // The single deployment became the pool's first row.
    assert_eq!(
        browser
            .value(&field("models[0].deployments[0].targetModel"))
            .await,
        "dep-mini"
    );
    browser
        .select(&field("models[0].deployments[1].upstream"), "east")
        .await;
    browser
        .type_into(&field("models[0].deployments[1].targetModel"), "dep-east")
        .await;
    browser
        .type_into(&field("models[0].deployments[1].priority"), "1")
        .await;
    browser
        .type_into(&field("models[0].deployments[1].weight"), "3")
        .await;
    browser
        .select(&field("models[0].deployments[2].upstream"), "west")
        .await;
    browser
        .type_into(&field("models[0].deployments[2].targetModel"), "dep-west")
        .await;
    browser
        .type_into(&field("models[0].deployments[2].weight"), "2")
        .await;
    // West moves above east.
    browser
        .click(&format!(
            "{first_model} .deployment[data-index='2'] [data-action=up]"
        ))
        .await;
    assert_eq!(
        browser
            .value(&field("models[0].deployments[1].targetModel"))
            .await,
        "dep-west"
    );
    browser.shot("models-pool-editing", first_model).await;
    browser.click("#save").await;
    saved(&browser).await;

    let disk = stack.on_disk();
    let pool = &disk["models"][0];
    assert_eq!(
        pool["deployments"],
        // Priority 0 and weight 1 are the defaults: written only where they are not.
        json!([
            {"upstream": "fake", "targetModel": "dep-mini"},
            {"upstream": "west", "targetModel": "dep-west", "weight": 2},
            {"upstream": "east", "targetModel": "dep-east", "priority": 1, "weight": 3}
        ])
    );
    assert!(
        pool.get("upstream").is_none() && pool.get("targetModel").is_none(),
        "{pool}"
    );
    // The model left alone keeps the single-deployment shape.
    assert_eq!(disk["models"][1]["upstream"], "fake");
    assert!(disk["models"][1].get("deployments").is_none());

    // After a reload the pool is read back from the file.
    browser.js("window.beforeReload = true").await;
    browser.client.refresh().await.expect("reload");
    browser
        .wait_js(
            "return window.beforeReload === undefined && document.body.dataset.ready === 'true'",
        )
        .await;
    for (path, expected) in [
        ("models[0].deployments[1].upstream", "west"),
        ("models[0].deployments[1].weight", "2"),
        ("models[0].deployments[2].upstream", "east"),
        ("models[0].deployments[2].targetModel", "dep-east"),
        ("models[0].deployments[2].priority", "1"),
    ] {
        assert_eq!(browser.value(&field(path)).await, expected, "{path}");
    }
    // The live view lists the new deployments once the proxy serves them.
    let served = browser
        .poll_js(
            "return document.querySelector(\"#pool-live tr[data-deployment='east/dep-east'][data-state='available']\") !== null",
            Duration::from_secs(15),
        )
        .await;
    assert!(served, "the live view never showed east/dep-east");
    browser
        .shot("models-pool", &format!("{first_model} .deployments"))
        .await;

    // Down to one deployment with the default priority and weight: today's shape again.
    for _ in 0..2 {
        browser
            .click(&format!(
                "{first_model} .deployment[data-index='1'] [data-action=remove]"
            ))
            .await;
    }
    assert_eq!(
        browser.value(&field("models[0].targetModel")).await,
        "dep-mini"
    );
    browser.click("#save").await;
    saved(&browser).await;
    let single = &stack.on_disk()["models"][0];
    assert_eq!(single["upstream"], "fake");
    assert_eq!(single["targetModel"], "dep-mini");
    assert!(single.get("deployments").is_none(), "{single}");
    browser.close().await;
    stack.shutdown().await;
}

#[actix_web::test]
async fn pool_errors_are_shown_at_their_field_and_nothing_is_written() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let stack = spawn_stack_with(StackOptions {
        edit_config: Box::new(east_and_west),
        ..StackOptions::default()
    })
    .await;
    let before = std::fs::read(&stack.config_path).expect("read");
    browser.open(&stack.control, "models").await;
    let first_model = "#model-list > .row:nth-child(1)";
    for _ in 0..2 {
        browser
            .click(&format!("{first_model} [data-action=add-deployment]"))
            .await;
    }
    browser
        .select(&field("models[0].deployments[1].upstream"), "west")
        .await;
    browser
        .type_into(&field("models[0].deployments[1].targetModel"), "dep-west")
        .await;
    // The third row repeats the first.
    browser
        .select(&field("models[0].deployments[2].upstream"), "fake")
        .await;
    browser
        .type_into(&field("models[0].deployments[2].targetModel"), "dep-mini")
        .await;
    // The upstream the second row names goes away.
    browser
        .click("#upstream-list > .row:nth-child(4) .row-head button")
        .await;
    browser.click("#save").await;
    browser
        .wait_js("return !document.getElementById('issues-panel').hidden")
        .await;

    let at_field = browser
        .js(&format!(
            "const e = document.querySelector(\"{}\"); const f = e && e.closest('.field.invalid'); return f ? f.querySelector('.field-error').textContent : ''",
            field("models[0].deployments[1].upstream")
        ))
        .await;
    assert!(
        at_field
            .as_str()
            .is_some_and(|m| m.contains("no upstream named \"west\"")),
        "{at_field}"
    );
    let at_row = browser
        .text("#model-list .deployment.invalid[data-issue-path='models[0].deployments[2]'] > .field-error")
        .await;
    assert!(at_row.contains("models[0].deployments[0]"), "{at_row}");
    browser
        .shot(
            "models-pool-error",
            &format!("{} .deployments", "#model-list > .row:nth-child(1)"),
        )
        .await;
    assert_eq!(
        std::fs::read(&stack.config_path).expect("read"),
        before,
        "an invalid config was written"
    );
    browser.close().await;
    stack.shutdown().await;
}

#[actix_web::test]
async fn throttled_and_failing_deployments_show_their_state_and_the_request_its_attempts() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let stack = spawn_stack_with(StackOptions {
        edit_config: Box::new(|config| {
            config["models"][0] = json!({"id": "gpt-5-mini", "deployments": [
                {"upstream": "fake", "targetModel": "dep-a"},
                {"upstream": "fake", "targetModel": "dep-b", "priority": 1},
                {"upstream": "fake", "targetModel": "dep-c", "priority": 2}
            ]});
            config["server"]["upstream"]["failover"] =
                json!({"circuitFailures": 1, "circuitOpenMs": 120000});
        }),
        ..StackOptions::default()
    })
    .await;
    stack.fake.enqueue(ScriptedReply::Status {
        status: 429,
        headers: vec![("retry-after-ms".into(), "120000".into())],
        body: fake_foundry::error_body("429", "Rate limit is exceeded."),
    });
    stack.fake.enqueue(ScriptedReply::Status {
        status: 500,
        headers: Vec::new(),
        body: fake_foundry::error_body("InternalServerError", "Something broke."),
    });
    let answer = stack.chat(KEY, chat_body(false)).await;
    assert_eq!(answer.status(), 200, "the pool did not fail over");

    browser.open(&stack.control, "models").await;
    let cooling = "#pool-live tr[data-deployment='fake/dep-a'][data-state='cooling']";
    browser
        .wait_js(&format!(
            "return document.querySelector(\"{cooling}\") !== null"
        ))
        .await;
    let state = browser.text(&format!("{cooling} td.state")).await;
    assert!(
        state.starts_with("cooling until ") && is_clock_time(&state["cooling until ".len()..]),
        "{state}"
    );
    let counters = browser
        .js("return [...document.querySelectorAll(\"#pool-live tr[data-deployment='fake/dep-a'] td.num\")].map((td) => td.textContent)")
        .await;
    assert_eq!(counters, json!(["1", "1", "0", "1", counters[4]]));
    // The editor's row for the deployment shows the same state.
    let in_editor = browser
        .text("#model-list [data-live='fake/dep-a'] .badge")
        .await;
    assert_eq!(in_editor, state);
    let open = browser
        .text("#pool-live tr[data-deployment='fake/dep-b'][data-state='circuit_open'] td.state")
        .await;
    assert!(
        open.starts_with("circuit open until ")
            && is_clock_time(&open["circuit open until ".len()..]),
        "{open}"
    );
    assert_eq!(
        browser
            .text("#model-list [data-live='fake/dep-c'] .badge")
            .await,
        "available"
    );
    browser
        .shot("models-pool-cooling", "#model-list > .row:nth-child(1)")
        .await;
    browser.shot("models-pool-live", "#pool-live-card").await;

    // The overview lists only the deployments that are out.
    browser.show_settled("overview").await;
    let out = browser
        .js("return [...document.querySelectorAll('#pool-alerts li[data-deployment]')].map((li) => li.dataset.deployment)")
        .await;
    assert_eq!(out, json!(["fake/dep-a", "fake/dep-b"]));
    browser.screenshot("overview-pool").await;

    // Recent requests show the three attempts.
    browser.show_settled("requests").await;
    let attempts = browser
        .js("return [...document.querySelectorAll('#requests-table tr.attempts li')].map((li) => [li.dataset.deployment, li.dataset.outcome, li.querySelector('.badge').textContent])")
        .await;
    assert_eq!(
        attempts,
        json!([
            ["fake/dep-a", "throttled", "throttled · 429"],
            ["fake/dep-b", "upstream_5xx", "5xx error · 500"],
            ["fake/dep-c", "answered", "answered · 200"]
        ])
    );
    browser.screenshot("requests-attempts").await;

    // Chinese.
    browser.switch_language("zh").await;
    browser.show_settled("models").await;
    let state_zh = browser.text(&format!("{cooling} td.state")).await;
    assert!(state_zh.starts_with("冷却至 "), "{state_zh}");
    assert_eq!(browser.text("#pool-live-card h2").await, "部署实时状态");
    let untranslated = browser
        .js("const d = window.GATEWAY_I18N; return Object.keys(d.en).filter((k) => !(k in d.zh))")
        .await;
    assert_eq!(untranslated, json!([]));
    browser
        .shot("models-pool-zh", "#model-list > .row:nth-child(1)")
        .await;
    browser.shot("models-pool-live-zh", "#pool-live-card").await;
    browser.show_settled("requests").await;
    assert!(
        browser
            .text("#requests-table tr.attempts")
            .await
            .contains("被限流 · 429")
    );

    browser.switch_language("en").await;
    browser.show_settled("timeouts").await;
    browser
        .shot(
            "timeouts-failover",
            "[data-path='server.upstream.failover.circuitOpenMs']",
        )
        .await;

    // A narrow laptop window: the menu stays, the pool rows take their compact layout.
    browser
        .client
        .set_window_size(960, 800)
        .await
        .expect("window size");
    browser.show_settled("models").await;
    browser.assert_fits_the_window("models").await;
    browser
        .shot(
            "models-pool-narrow",
            "#model-list > .row:nth-child(1) .deployments",
        )
        .await;

    // A phone, in both languages: every control on screen, the live table in stacked rows.
    browser
        .client
        .set_window_size(PHONE.0, PHONE.1)
        .await
        .expect("window size");
    for lang in ["zh", "en"] {
        browser.switch_language(lang).await;
        for page in ["models", "overview", "timeouts"] {
            browser.show_settled(page).await;
            browser.assert_fits_the_window(page).await;
        }
        browser.show_settled("models").await;
        browser
            .shot(
                &format!("models-pool-phone-{lang}"),
                "#model-list > .row:nth-child(1) .deployments",
            )
            .await;
        browser
            .shot(&format!("models-pool-live-phone-{lang}"), "#pool-live")
            .await;
        browser.show_settled("overview").await;
        browser
            .shot(&format!("overview-pool-phone-{lang}"), "#card-deployments")
            .await;
        // The wide table scrolls sideways; the attempts stay in view.
        browser.show_settled("requests").await;
        browser
            .wait_js("const r = document.querySelector('#requests-table tr.attempts .attempt-list').getBoundingClientRect(); return r.left >= 0 && r.right <= document.documentElement.clientWidth")
            .await;
        browser
            .shot(
                &format!("requests-attempts-phone-{lang}"),
                "#requests-table tr.attempts",
            )
            .await;
        browser.show_settled("timeouts").await;
        browser
            .shot(
                &format!("timeouts-failover-phone-{lang}"),
                "[data-path='server.upstream.failover.cooldownMs']",
            )
            .await;
    }
    browser.show_settled("models").await;
    assert_eq!(
        browser
            .js("return getComputedStyle(document.querySelector('#pool-live thead')).display")
            .await,
        "none"
    );
    browser.close().await;
    stack.shutdown().await;
}

/// `HH:MM:SS`.
fn is_clock_time(text: &str) -> bool {
    let parts: Vec<&str> = text.split(':').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit()))
}
