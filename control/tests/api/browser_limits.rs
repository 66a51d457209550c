//! Where key limits are counted, in headless Chromium: the Redis URL and fail mode are set on
//! the server settings page, a bad URL is shown at its field, the URL's password is masked after
//! a reload and kept in config.json when the masked URL is saved back; the overview shows Redis
//! unreachable, since when, and the warning of each fail mode, in English and Chinese. The URL
//! points at a closed port: Redis is configured but never answers.

use std::time::Duration;

use fantoccini::Locator;
use serde_json::Value;

use crate::browser::{Browser, saved};
use crate::browser_pools::field;
use crate::helpers::{free_port, spawn_stack, wait_until};

const REDIS_PASSWORD: &str = "redis-secret-pw";

impl Browser {
    /// Shows the overview afresh until `script` holds (the overview refreshes every 10 s on
    /// its own; the proxy applies a saved config within a moment).
    async fn overview_until(&self, script: &str) {
        let shown = wait_until(script, Duration::from_secs(10), || async {
            self.show_settled("overview").await;
            self.js(script).await == Value::Bool(true)
        })
        .await;
        assert!(
            shown.is_ok(),
            "the overview never showed it: {script}\n{}",
            self.text("#main").await
        );
    }
}

#[actix_web::test]
async fn an_operator_counts_key_limits_in_redis_and_sees_it_unreachable() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let stack = spawn_stack().await;
    let closed_port = free_port();
    let url = format!("redis://:{REDIS_PASSWORD}@127.0.0.1:{closed_port}/0");
    let masked = format!("redis://:********@127.0.0.1:{closed_port}/0");

    browser.open(&stack.control, "overview").await;
    browser
        .overview_until(
            "return document.getElementById('facts-limits').textContent.includes('in the process')",
        )
        .await;
    assert_eq!(
        browser
            .js("return document.querySelectorAll('#warnings li[data-code^=redis]').length")
            .await,
        0
    );

    // A URL that is not a Redis URL is refused at its field.
    browser.show_settled("server").await;
    assert_eq!(browser.value(&field("limits.failMode")).await, "open");
    browser
        .type_into(&field("limits.redis"), "http://cache:6379")
        .await;
    browser.click("#save").await;
    browser
        .wait_js(&format!(
            "const e = document.querySelector(\"{}\").closest('.field'); return e.classList.contains('invalid') && e.textContent.includes('redis://')",
            field("limits.redis")
        ))
        .await;

    browser.type_into(&field("limits.redis"), &url).await;
    browser.select(&field("limits.failMode"), "closed").await;
    browser
        .type_into(&field("limits.redisTimeoutMs"), "400")
        .await;
    browser.click("#save").await;
    saved(&browser).await;
    let limits = &stack.on_disk()["limits"];
    assert_eq!(limits["redis"], url.as_str());
    assert_eq!(limits["failMode"], "closed");
    assert_eq!(limits["redisTimeoutMs"], 400);

    browser
        .overview_until(
            "return !!document.querySelector('#warnings li[data-code=redis_unreachable_closed]')",
        )
        .await;
    let facts = browser.text("#facts-limits").await;
    for shown in [
        "in Redis",
        "unreachable",
        "Since",
        "Closed: requests of keys with limits are refused",
    ] {
        assert!(facts.contains(shown), "{shown} not in {facts}");
    }
    assert!(
        browser
            .text("#warnings")
            .await
            .contains("requests of keys with limits are refused")
    );
    browser.screenshot("overview-redis-unreachable").await;

    // After a reload the URL shows its host but not its password; saved back with another
    // fail mode, config.json keeps the password.
    browser.reload().await;
    browser.show_settled("server").await;
    assert_eq!(browser.value(&field("limits.redis")).await, masked);
    let html = browser
        .js("return document.documentElement.outerHTML")
        .await;
    assert!(!html.as_str().unwrap_or_default().contains(REDIS_PASSWORD));
    browser.select(&field("limits.failMode"), "open").await;
    browser.click("#save").await;
    saved(&browser).await;
    let limits = &stack.on_disk()["limits"];
    assert_eq!(
        limits["redis"],
        url.as_str(),
        "the stored password was lost"
    );
    assert_eq!(limits["failMode"], "open");
    assert_eq!(limits["redisTimeoutMs"], 400);
    assert_eq!(browser.value(&field("limits.redis")).await, masked);
    browser.screenshot("server-limits").await;

    browser
        .overview_until(
            "return !!document.querySelector('#warnings li[data-code=redis_unreachable_open]')",
        )
        .await;
    assert!(
        browser
            .text("#warnings")
            .await
            .contains("each replica counts them on its own until it is back")
    );
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
            "return document.getElementById('warnings').textContent.includes('每个副本各自计数')",
        )
        .await;
    browser
        .wait_js("return document.getElementById('facts-limits').textContent.includes('无法访问')")
        .await;
    browser.screenshot("overview-redis-unreachable-zh").await;
    browser.close().await;
    stack.shutdown().await;
}
