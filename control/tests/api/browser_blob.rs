//! The admin UI of a control in blob mode, in headless Chromium, with two proxy replicas
//! copying their usage history to Azurite: the statistics charts, the overview's last hour and
//! each key's month show the sum of both replicas (checked on the data each chart was given),
//! and each says that the figures are as of each replica's last copy, with the interval.

use serde_json::Value;
use test_support::azurite::Azurite;

use crate::blob::{Control, LIMIT, blob_env, replica, seed, send_chats, store};
use crate::browser::Browser;
use crate::browser_usage::sums;
use crate::helpers::{ADMIN_PASSWORD, ADMIN_USER, KEY_ID, eventually};

/// Tokens of each of the fake's chat answers (prompt 11, completion 7).
const ANSWER_TOKENS: f64 = 18.0;

#[actix_web::test]
async fn in_blob_mode_the_charts_show_the_sum_of_every_replica() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let Some(azurite) = Azurite::start() else {
        return;
    };
    let fake = fake_foundry::FakeFoundry::start().await;
    seed(&store(&azurite), &fake).await;
    let (url, sas) = (azurite.account_url(), azurite.sas());
    let (r1, _d1) = replica(&blob_env(&url, &sas, "r1")).await;
    let (r2, _d2) = replica(&blob_env(&url, &sas, "r2")).await;
    send_chats(&r1, 2).await;
    send_chats(&r2, 3).await;
    r2.stop().await;
    let control = Control::start(&blob_env(&url, &sas, "r1"), Some(&r1.ops)).await;
    // r1 copies its history every second (`stats.flushInterval` 1s): wait for its copy.
    let http = reqwest::Client::new();
    let merged = format!("{}/admin/api/usage/merged", control.url);
    eventually("both replicas' copies", LIMIT, || async {
        let Ok(answer) = http
            .get(&merged)
            .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
            .send()
            .await
        else {
            return false;
        };
        answer.json::<Value>().await.unwrap_or_default()["total"]["requests"] == 5
    })
    .await;

    browser.open(&control.url, "stats").await;
    let requests = browser
        .chart_when(
            "usage-requests",
            "c.series[0].values.reduce((a, b) => a + b, 0) === 5",
        )
        .await;
    assert_eq!(requests["meta"]["step_ms"], 60_000);
    let tokens = browser
        .chart_when("usage-tokens", "c.meta.group_by === 'model'")
        .await;
    assert_eq!(sums(&tokens)["gpt-5-mini"], 5.0 * ANSWER_TOKENS);
    assert_eq!(browser.text("#total-requests").await, "5");
    let note = browser.text("#usage-replicas").await;
    assert!(
        note.contains("every replica") && note.contains("every 1s"),
        "{note}"
    );
    let csv = browser
        .js("return document.getElementById('usage-csv').href")
        .await;
    assert!(
        csv.as_str()
            .is_some_and(|h| h.contains("/api/usage/merged?")),
        "{csv}"
    );
    browser.screenshot("stats-usage-blob").await;

    // The overview's last hour.
    browser.open(&control.url, "overview").await;
    browser
        .wait_js("return document.getElementById('spark-value-requests')?.textContent === '5'")
        .await;
    assert!(
        !browser
            .js("return document.getElementById('sparks-replicas').hidden")
            .await
            .as_bool()
            .unwrap_or(true)
    );

    // Each key's month.
    browser.open(&control.url, "keys").await;
    let month = browser
        .chart_when(
            &format!("key-month:{KEY_ID}"),
            "c.series[1].values.reduce((a, b) => a + b, 0) === 5",
        )
        .await;
    assert_eq!(sums(&month)["tokens"], 5.0 * ANSWER_TOKENS);
    assert!(
        browser
            .text("#key-month-replicas")
            .await
            .contains("every 1s")
    );

    // The same note in Chinese.
    browser
        .js("localStorage.setItem('gateway.lang', 'zh'); location.reload();")
        .await;
    browser
        .wait_js("return document.body.dataset.ready === 'true' && document.getElementById('key-month-replicas').textContent.includes('每 1s')")
        .await;
    browser.close().await;
    control.stop().await;
    r1.stop().await;
}
