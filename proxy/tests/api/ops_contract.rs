//! The ops listener speaks exactly its contract (`proxy::ops::contract`): every JSON body it
//! serves reads into the contract type and writes back to the same JSON, so a field that one
//! side adds, drops or renames fails here. `/metrics` is Prometheus text, not part of it.

use std::time::Duration;

use proxy::ops::contract::{
    LimitsPage, OpsErrorBody, OpsStats, Readiness, RecentOutcome, RecentPage, RecentQuery, Status,
    UsageGroupBy, UsagePage,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::helpers::*;

/// GETs `path` from the ops listener and checks that its body survives a round trip through `T`.
async fn round_trip<T: DeserializeOwned + Serialize>(app: &TestApp, path: &str) -> T {
    let response = app
        .http
        .get(format!("{}{path}", app.ops))
        .send()
        .await
        .expect("ops request");
    assert_eq!(response.status(), 200, "{path}");
    let text = response.text().await.expect("body");
    let served: Value = serde_json::from_str(&text).expect("json");
    let typed: T = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{path} does not read as its contract type: {e}\n{text}"));
    let written = serde_json::to_value(&typed).expect("serialise");
    assert_eq!(written, served, "{path} changed in a round trip");
    typed
}

#[actix_web::test]
async fn every_ops_body_reads_into_its_contract_type_and_back_unchanged() {
    let app = spawn_app_with_config(|config| {
        config["server"]["upstream"]["pool"] = json!({"headersTimeoutMs": 1000});
        config["apiKeys"][0]["limits"] =
            json!([{"requests": 100, "per": "1h"}, {"tokens": 100000, "per": "1d"}]);
        config["apiKeys"][0]["budget"] = json!({"tokens": 1000000, "per": "month"});
        config["apiKeys"][0]["expiresAt"] = json!("2100-01-01T00:00:00Z");
    })
    .await;
    // One success with usage, one refused request, one upstream error and a body with an image,
    // so that every optional field of the records and counters holds a value somewhere.
    app.chat(chat_body(false))
        .await
        .bytes()
        .await
        .expect("body");
    app.chat(json!({"model": "nope"}))
        .await
        .bytes()
        .await
        .expect("body");
    let image = json!({"model": "gpt-5-mini", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@not*base64@@@"}}
    ]}]});
    app.chat(image).await.bytes().await.expect("body");
    app.wait_for_stats(|s| s["total"]["requests"] == 3 && s["images"]["seen"] == 1)
        .await;

    let mut broken = base_config(&app.fake);
    broken["models"][0]["upstream"] = json!("nowhere");
    write_json(&app.config_path, &broken);
    eventually(
        "the invalid config reported on /status",
        Duration::from_secs(5),
        || async { app.ops_json("/status").await["config"]["rejected"].is_object() },
    )
    .await;

    let status: Status = round_trip(&app, "/status").await;
    let rejected = status.config.rejected.expect("rejected");
    assert_eq!(rejected.issues[0].path, "models[0].upstream");
    assert_eq!(status.models, 5);
    assert_eq!(status.config.ignored_keys.len(), 1);

    let stats: OpsStats = round_trip(&app, "/stats").await;
    assert_eq!(stats.usage.total.requests, 3);
    assert_eq!(stats.images.skipped["bad_base64"], 1);

    let all: RecentPage = round_trip(&app, "/requests").await;
    assert_eq!(all.data.len(), 3);
    assert!(all.data.iter().any(|e| e.usage.is_some()));

    let query = RecentQuery {
        level: Some("error".into()),
        limit: Some(5),
        ..RecentQuery::default()
    };
    let encoded = serde_json::to_value(&query).expect("query");
    assert_eq!(encoded, json!({"level": "error", "limit": 5}));
    let errors: RecentPage = round_trip(&app, "/requests?level=error&limit=5&model=").await;
    assert_eq!(errors.data.len(), 1);
    assert_eq!(errors.data[0].outcome, RecentOutcome::Error);
    assert_eq!(errors.data[0].status, 404);

    assert!(stats.usage.budgets[KEY_ID].used > 0);

    let limits: LimitsPage = round_trip(&app, "/limits").await;
    assert_eq!(limits.keys.len(), 1);
    assert_eq!(
        limits.keys[0].windows[0].used, 2,
        "the unknown model is refused before"
    );
    assert!(limits.keys[0].budget.as_ref().is_some_and(|b| b.used > 0));

    let usage: UsagePage = round_trip(&app, "/usage?group_by=model").await;
    assert_eq!(usage.group_by, Some(UsageGroupBy::Model));
    assert_eq!(usage.total.requests, 3);
    assert!(
        usage
            .series
            .iter()
            .any(|s| s.total.latency_ms.p50.is_some())
    );
    let all: UsagePage = round_trip(&app, "/usage").await;
    assert_eq!(all.group_by, None);
    assert_eq!(all.series[0].points[0].counts.requests, all.total.requests);

    let refused = app
        .http
        .get(format!("{}/usage?step=often", app.ops))
        .send()
        .await
        .expect("ops request");
    assert_eq!(refused.status(), 400);
    let text = refused.text().await.expect("body");
    let error: OpsErrorBody = serde_json::from_str(&text).expect("the ops error shape");
    assert_eq!(error.error.param.as_deref(), Some("step"));
    assert_eq!(
        serde_json::to_value(&error).expect("json"),
        serde_json::from_str::<Value>(&text).expect("json")
    );

    let ready: Readiness = round_trip(&app, "/readyz").await;
    assert!(ready.ready);
}
