//! The usage history in the admin UI, in headless Chromium, with known traffic sent through the
//! in-process proxy: the statistics page charts a range (checked on the data each chart was
//! given, `window.__charts`, and on its canvas), its tables follow the range, its CSV link
//! holds the rows shown, another range asks for another step (or the one the proxy keeps that
//! far back), a range the proxy refuses says why; the overview's last-hour sparklines and
//! image counters; each key's month; at a phone's width the tables stack (the statistics' and
//! the recent requests') and every action button stays in view. Both languages.

use std::collections::BTreeMap;

use fake_foundry::ScriptedReply;
use fantoccini::Locator;
use serde_json::{Value, json};

use crate::browser::{Browser, PHONE};
use crate::browser_pools::field;
use crate::helpers::{KEY, StackOptions, TestStack, chat_body, spawn_stack, spawn_stack_with};
use crate::usage::{OTHER_KEY, history_holds};

/// Tokens of each of the fake's chat answers (prompt 11, completion 7).
const ANSWER_TOKENS: u64 = 18;

impl Browser {
    /// What chart `id` was given, once it has been given something for which `ready` (a JS
    /// expression over `c`) holds.
    pub(crate) async fn chart_when(&self, id: &str, ready: &str) -> Value {
        let script =
            format!("const c = (window.__charts || {{}})[{id:?}]; return !!c && ({ready})");
        self.wait_js(&script).await;
        self.js(&format!("return window.__charts[{id:?}]")).await
    }

    async fn canvases(&self, css: &str) -> u64 {
        self.js(&format!(
            "return document.querySelectorAll({:?}).length",
            format!("{css} canvas")
        ))
        .await
        .as_u64()
        .unwrap_or(0)
    }

    async fn choose(&self, css: &str, value: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .expect(css)
            .select_by_value(value)
            .await
            .expect("select");
    }
}

/// The sum of each series' values, by its key.
pub(crate) fn sums(chart: &Value) -> BTreeMap<String, f64> {
    chart["series"]
        .as_array()
        .expect("series")
        .iter()
        .map(|s| {
            let key = s["key"].as_str().unwrap_or("").to_string();
            let sum = s["values"]
                .as_array()
                .expect("values")
                .iter()
                .filter_map(Value::as_f64)
                .sum();
            (key, sum)
        })
        .collect()
}

/// A chart's x values are one per step over its range.
fn assert_one_point_per_step(chart: &Value, step_ms: u64) {
    let meta = &chart["meta"];
    assert_eq!(meta["step_ms"], step_ms, "{meta}");
    let from = meta["from"].as_u64().expect("from");
    let to = meta["to"].as_u64().expect("to");
    let xs = chart["x"].as_array().expect("x");
    assert_eq!(xs.len() as u64, (to - from) / step_ms, "{meta}");
    assert_eq!(xs[0], from);
    for series in chart["series"].as_array().expect("series") {
        assert_eq!(series["values"].as_array().map(Vec::len), Some(xs.len()));
    }
}

/// Three answers and a 429 for team-a, one answer for team-b.
async fn send_known_traffic(stack: &TestStack) {
    for _ in 0..3 {
        assert_eq!(stack.chat(KEY, chat_body(false)).await.status(), 200);
    }
    assert_eq!(stack.chat(OTHER_KEY, chat_body(false)).await.status(), 200);
    stack.fake.enqueue(ScriptedReply::Status {
        status: 429,
        headers: vec![("retry-after-ms".into(), "10".into())],
        body: fake_foundry::error_body("429", "Rate limit is exceeded."),
    });
    assert_eq!(stack.chat(KEY, chat_body(false)).await.status(), 429);
    history_holds(stack, 5).await;
}

/// The CSV the download link points to, fetched by the page with its admin session.
async fn download(browser: &Browser) -> Value {
    browser
        .js("const a = document.getElementById('usage-csv'); return fetch(a.href).then(async (r) => ({ status: r.status, type: r.headers.get('content-type'), disposition: r.headers.get('content-disposition'), download: a.hasAttribute('download'), href: a.href, text: await r.text() }));")
        .await
}

/// CSV rows as maps of header → field.
fn csv_rows(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .expect("a header line")
        .split(',')
        .map(str::to_string)
        .collect();
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let fields: Vec<&str> = l.split(',').collect();
            assert_eq!(fields.len(), header.len(), "{l}");
            header
                .iter()
                .cloned()
                .zip(fields.into_iter().map(str::to_string))
                .collect()
        })
        .collect()
}

fn csv_sum(rows: &[BTreeMap<String, String>], group: &str, column: &str) -> u64 {
    rows.iter()
        .filter(|r| r["group"] == group)
        .map(|r| r[column].parse::<u64>().expect(column))
        .sum()
}

#[actix_web::test]
async fn the_statistics_page_charts_a_range_and_its_csv_holds_what_is_shown() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let stack = spawn_stack().await;
    send_known_traffic(&stack).await;
    browser.open(&stack.control, "stats").await;

    let requests = browser
        .chart_when(
            "usage-requests",
            "c.series[0].values.reduce((a, b) => a + b, 0) === 5",
        )
        .await;
    assert_one_point_per_step(&requests, 60_000);
    let tokens = browser
        .chart_when("usage-tokens", "c.meta.group_by === 'model'")
        .await;
    assert_eq!(tokens["stacked"], true);
    assert_eq!(
        sums(&tokens),
        BTreeMap::from([("gpt-5-mini".to_string(), (4 * ANSWER_TOKENS) as f64)])
    );
    let errors = browser.chart_when("usage-errors", "true").await;
    let error_sums = sums(&errors);
    assert_eq!(error_sums["rate_limited"], 1.0, "{errors}");
    assert!(error_sums["errors"] >= 1.0, "{errors}");
    for id in ["usage-latency", "usage-ttfb"] {
        let chart = browser.chart_when(id, "true").await;
        let p50 = &chart["series"][0];
        assert_eq!(p50["key"], "p50");
        assert!(
            p50["values"]
                .as_array()
                .expect("values")
                .iter()
                .any(Value::is_number),
            "{id} has no p50: {chart}"
        );
    }
    for chart in ["requests", "tokens", "errors", "latency", "ttfb"] {
        assert!(
            browser.canvases(&format!("#chart-{chart}")).await > 0,
            "no canvas in #chart-{chart}"
        );
    }

    // The totals and tables follow the range, with percentiles.
    assert_eq!(browser.text("#total-requests").await, "5");
    assert_eq!(browser.text("#total-429").await, "1");
    let row = |table: &str, name: &str, col: &str| {
        format!("#{table} tr[data-name='{name}'] td[data-col='{col}']")
    };
    assert_eq!(
        browser.text(&row("stats-keys", "team-a", "requests")).await,
        "4"
    );
    assert_eq!(
        browser.text(&row("stats-keys", "team-b", "requests")).await,
        "1"
    );
    assert_eq!(
        browser
            .text(&row("stats-models", "gpt-5-mini", "tokens"))
            .await,
        (4 * ANSWER_TOKENS).to_string()
    );
    for q in ["p50", "p90", "p99"] {
        let text = browser.text(&row("stats-models", "gpt-5-mini", q)).await;
        assert!(text.ends_with(" ms") || text.ends_with(" s"), "{q}: {text}");
    }
    browser.screenshot("stats-usage").await;

    // Tokens by key: the chart and the CSV follow.
    browser
        .choose("#usage-range select[name=group]", "key")
        .await;
    let by_key = browser
        .chart_when("usage-tokens", "c.meta.group_by === 'key'")
        .await;
    assert_eq!(
        sums(&by_key),
        BTreeMap::from([
            ("team-a".to_string(), (3 * ANSWER_TOKENS) as f64),
            ("team-b".to_string(), ANSWER_TOKENS as f64),
        ])
    );
    let csv = download(&browser).await;
    assert_eq!(csv["status"], 200, "{csv}");
    assert_eq!(csv["download"], true);
    assert!(
        csv["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("text/csv"))
    );
    assert!(
        csv["disposition"]
            .as_str()
            .is_some_and(|d| d.starts_with("attachment"))
    );
    let href = csv["href"].as_str().expect("href");
    for part in ["group_by=key", "step=1m", "format=csv"] {
        assert!(href.contains(part), "{part} not in {href}");
    }
    let rows = csv_rows(csv["text"].as_str().expect("text"));
    assert_eq!(csv_sum(&rows, "team-a", "requests"), 4);
    assert_eq!(csv_sum(&rows, "team-a", "rate_limited"), 1);
    assert_eq!(csv_sum(&rows, "team-b", "requests"), 1);
    assert_eq!(
        csv_sum(&rows, "team-a", "prompt_tokens") + csv_sum(&rows, "team-a", "completion_tokens"),
        3 * ANSWER_TOKENS
    );
    assert!(rows.iter().all(|r| r["time"].ends_with('Z')));

    // A filter narrows what is shown, the CSV included.
    browser
        .choose("#usage-range select[name=key]", "team-b")
        .await;
    browser
        .chart_when(
            "usage-requests",
            "c.series[0].values.reduce((a, b) => a + b, 0) === 1",
        )
        .await;
    let filtered = download(&browser).await;
    let rows = csv_rows(filtered["text"].as_str().expect("text"));
    assert!(rows.iter().all(|r| r["group"] == "team-b"), "{filtered}");
    browser.choose("#usage-range select[name=key]", "").await;

    // Another range asks for another step.
    for (range, step_ms, step) in [
        ("24h", 300_000, "step=5m"),
        ("7d", 3_600_000, "step=60m"),
        ("month", 86_400_000, "step=1440m"),
    ] {
        browser
            .choose("#usage-range select[name=range]", range)
            .await;
        let chart = browser
            .chart_when(
                "usage-requests",
                &format!("c.meta.step_ms === {step_ms} && c.series[0].values.reduce((a, b) => a + b, 0) === 5"),
            )
            .await;
        assert_one_point_per_step(&chart, step_ms);
        let href = browser
            .js("return document.getElementById('usage-csv').href")
            .await;
        assert!(
            href.as_str().is_some_and(|h| h.contains(step)),
            "{range}: {href}"
        );
    }

    // A custom range: the page checks its order; the proxy's refusal is shown in words.
    browser
        .choose("#usage-range select[name=range]", "custom")
        .await;
    for (from, to, shown) in [
        (
            "2030-01-02T00:00",
            "2030-01-01T00:00",
            "must be before its end",
        ),
        ("1900-01-01T00:00", "1900-01-02T00:00", "cannot be shown"),
    ] {
        browser
            .js(&format!(
                "const f = document.getElementById('usage-range'); f.elements.from.value = {from:?}; f.elements.to.value = {to:?}; f.elements.to.dispatchEvent(new Event('change', {{ bubbles: true }}));"
            ))
            .await;
        browser
            .wait_js(&format!(
                "const e = document.getElementById('usage-error'); return !e.hidden && e.textContent.includes({shown:?})"
            ))
            .await;
    }
    browser.screenshot("stats-usage-refused").await;
    browser.close().await;
    stack.shutdown().await;
}

#[actix_web::test]
async fn the_overview_shows_the_last_hour_and_the_image_counters_in_both_languages() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let stack = spawn_stack().await;
    assert_eq!(stack.chat(KEY, chat_body(false)).await.status(), 200);
    let mut unknown = chat_body(false);
    unknown["model"] = json!("no-such-model");
    assert_eq!(stack.chat(KEY, unknown).await.status(), 404);
    let image = json!({"model": "gpt-5-mini", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@not*base64@@@"}}
    ]}]});
    stack.chat(KEY, image).await;
    history_holds(&stack, 3).await;

    browser.open(&stack.control, "overview").await;
    let requests = browser
        .chart_when(
            "spark-requests",
            "c.series[0].values.reduce((a, b) => a + b, 0) === 3",
        )
        .await;
    assert_one_point_per_step(&requests, 60_000);
    let errors = browser.chart_when("spark-errors", "true").await;
    let rates: Vec<f64> = errors["series"][0]["values"]
        .as_array()
        .expect("values")
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    assert!(!rates.is_empty() && rates.iter().all(|r| (0.0..=1.0).contains(r)));
    for spark in ["requests", "tokens", "errors"] {
        assert!(browser.canvases(&format!("#spark-{spark}")).await > 0);
    }
    assert_eq!(browser.text("#spark-value-requests").await, "3");
    let rate = browser.text("#spark-value-errors").await;
    assert!(rate.ends_with('%') && rate != "0%", "{rate}");
    browser
        .wait_js("return document.getElementById('images-seen') && document.getElementById('images-seen').textContent === '1'")
        .await;
    for id in ["#images-compressed", "#images-saved", "#images-time"] {
        assert!(!browser.text(id).await.is_empty(), "{id}");
    }
    browser.screenshot("overview-usage").await;

    browser.choose("#lang", "zh").await;
    browser
        .wait_js("return document.getElementById('card-lasthour').textContent.includes('最近一小时') && document.getElementById('card-images').textContent.includes('发现的图片')")
        .await;
    browser.show_settled("stats").await;
    browser
        .wait_js("return document.getElementById('chart-tokens-title').textContent === '各模型的 Tokens' && document.getElementById('usage-shown').textContent.includes('每 1 分钟一个点')")
        .await;
    let labels = browser
        .js("return window.__charts['usage-errors'].series.map((s) => s.label)")
        .await;
    assert_eq!(labels, json!(["错误", "429 次数"]));
    browser.screenshot("stats-usage-zh").await;
    browser.close().await;
    stack.shutdown().await;
}

/// Elements matching `css` that reach past the window's left or right edge.
async fn off_screen(browser: &Browser, css: &str) -> Value {
    browser
        .js(&format!(
            "return [...document.querySelectorAll({css:?})].filter((e) => e.getClientRects().length > 0).filter((e) => {{ const r = e.getBoundingClientRect(); return r.left < 0 || r.right > window.innerWidth; }}).map((e) => e.outerHTML.slice(0, 120))"
        ))
        .await
}

async fn no_sideways_scroll(browser: &Browser) {
    let widths = browser
        .js("return [document.documentElement.scrollWidth, window.innerWidth]")
        .await;
    assert!(
        widths[0].as_u64() <= widths[1].as_u64(),
        "the page scrolls sideways: {widths}"
    );
}

#[actix_web::test]
async fn at_a_phone_s_width_tables_stack_and_every_action_stays_in_view() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let stack = spawn_stack_with(StackOptions {
        edit_config: Box::new(|c| {
            c["apiKeys"][0]["budget"] = json!({"tokens": 1000000, "per": "month"});
            c["apiKeys"][0]["limits"] = json!([{"requests": 100, "per": "1m"}]);
        }),
        ..StackOptions::default()
    })
    .await;
    send_known_traffic(&stack).await;
    browser
        .client
        .set_window_size(PHONE.0, PHONE.1)
        .await
        .expect("window size");

    // Each key's month, a point a day, on its card.
    browser.open(&stack.control, "keys").await;
    let month = browser
        .chart_when(
            "key-month:team-a",
            "c.series[1].values.reduce((a, b) => a + b, 0) === 4",
        )
        .await;
    assert_eq!(month["meta"]["step_ms"], 86_400_000);
    let tokens = sums(&month)["tokens"];
    assert_eq!(tokens, (3 * ANSWER_TOKENS) as f64);
    let days = month["x"].as_array().expect("x").len();
    assert!((28..=31).contains(&days), "{days} days");
    assert!(
        browser
            .canvases("#key-list .row.key[data-key-id='team-a'] .key-month")
            .await
            > 0
    );
    assert!(
        browser
            .text("#key-list .row.key[data-key-id='team-a'] .key-month-summary")
            .await
            .starts_with("Requests 4 · Tokens 54")
    );
    let actions = "#key-list button[data-action=rename], #key-list button[data-action=toggle], #key-list button[data-action=delete], #key-list button[data-action=reset-budget], #key-list button[data-action=add-window], #key-list button[data-action=remove-window], #key-list button[data-action=remove-budget], #key-list button[data-action=no-expiry], #key-create button";
    assert!(
        browser
            .js(&format!(
                "return document.querySelectorAll({actions:?}).length"
            ))
            .await
            .as_u64()
            .is_some_and(|n| n >= 8)
    );
    assert_eq!(off_screen(&browser, actions).await, json!([]));
    no_sideways_scroll(&browser).await;
    browser
        .js(&format!(
            "document.querySelector(\"{}\").scrollIntoView()",
            field("apiKeys[0].budget.tokens")
        ))
        .await;
    browser.screenshot("keys-usage-phone").await;

    // The statistics page: tables of label-value rows, filters and the download in view.
    browser.show_settled("stats").await;
    browser
        .chart_when(
            "usage-requests",
            "c.series[0].values.reduce((a, b) => a + b, 0) === 5",
        )
        .await;
    for table in ["stats-models", "stats-keys"] {
        let layout = browser
            .js(&format!(
                "const t = document.getElementById({table:?}); return [getComputedStyle(t.tHead).display, t.getBoundingClientRect().right <= window.innerWidth]"
            ))
            .await;
        assert_eq!(layout, json!(["none", true]), "{table}");
    }
    let labels = browser
        .js("return [...document.querySelectorAll('#stats-keys tr[data-name=team-a] td')].map((td) => getComputedStyle(td, '::before').content)")
        .await;
    assert!(
        labels
            .as_array()
            .is_some_and(|l| l.iter().any(|c| c == "\"Latency p99\"")),
        "{labels}"
    );
    assert_eq!(
        off_screen(
            &browser,
            "#usage-range select, #usage-range a, #stats-auto, #stats-keys td, .chart canvas"
        )
        .await,
        json!([])
    );
    no_sideways_scroll(&browser).await;
    browser.screenshot("stats-usage-phone").await;
    browser
        .js("document.getElementById('stats-keys').scrollIntoView()")
        .await;
    browser.screenshot("stats-usage-tables-phone").await;

    // Recent requests, each a block of label-value lines.
    browser.show_settled("requests").await;
    browser
        .wait_js(
            "return document.querySelectorAll('#requests-table tbody td[data-label]').length > 0",
        )
        .await;
    assert_eq!(
        browser
            .js("return getComputedStyle(document.querySelector('#requests-table thead')).display")
            .await,
        "none"
    );
    assert_eq!(
        off_screen(&browser, "#requests-table td, #requests-filters button").await,
        json!([])
    );
    no_sideways_scroll(&browser).await;
    browser.close().await;
    stack.shutdown().await;
}

#[actix_web::test]
async fn a_range_finer_than_the_proxy_keeps_is_shown_at_the_step_it_keeps() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let stack = spawn_stack_with(StackOptions {
        edit_config: Box::new(|c| {
            c["stats"] = json!({"retention": {"minutes": "1h"}});
        }),
        ..StackOptions::default()
    })
    .await;
    assert_eq!(stack.chat(KEY, chat_body(false)).await.status(), 200);
    history_holds(&stack, 1).await;
    let refused = stack
        .get(&format!("usage?step=5m&from={}", ms_ago(24 * 3_600_000)))
        .send()
        .await
        .expect("request");
    assert_eq!(refused.status(), 400, "the proxy keeps minutes for an hour");

    browser.open(&stack.control, "stats").await;
    browser
        .choose("#usage-range select[name=range]", "24h")
        .await;
    let chart = browser
        .chart_when(
            "usage-requests",
            "c.meta.step_ms === 3600000 && c.series[0].values.reduce((a, b) => a + b, 0) === 1",
        )
        .await;
    assert_one_point_per_step(&chart, 3_600_000);
    assert!(
        browser
            .js("return document.getElementById('usage-error').hidden")
            .await
            == json!(true)
    );
    let href = browser
        .js("return document.getElementById('usage-csv').href")
        .await;
    assert!(
        href.as_str().is_some_and(|h| h.contains("step=60m")),
        "{href}"
    );
    browser.close().await;
    stack.shutdown().await;
}

/// Unix milliseconds `ms` before now.
fn ms_ago(ms: u64) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64;
    now - ms
}

#[actix_web::test]
async fn without_a_usage_history_the_pages_say_so_and_keys_show_no_month() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let stack = spawn_stack_with(StackOptions {
        proxy_env: &[("USAGE_HISTORY", "off")],
        ..StackOptions::default()
    })
    .await;
    browser.open(&stack.control, "stats").await;
    browser
        .wait_js("const e = document.getElementById('usage-error'); return !e.hidden && e.textContent.includes('USAGE_HISTORY=off') && !e.classList.contains('bad')")
        .await;
    assert_eq!(
        browser
            .js("return document.getElementById('usage-charts').hidden")
            .await,
        true
    );
    browser.show_settled("overview").await;
    assert!(
        browser
            .text("#sparks")
            .await
            .contains("keeps no usage history")
    );
    browser.show_settled("keys").await;
    assert_eq!(
        browser
            .js(
                "return [...document.querySelectorAll('#key-list .key-month')].map((e) => e.hidden)"
            )
            .await,
        json!([true, true])
    );
    assert_eq!(
        browser
            .js("return document.getElementById('key-month-error').hidden")
            .await,
        true
    );
    browser.close().await;
    stack.shutdown().await;
}
