//! The config in Azure Blob Storage (`PERSISTENCE_MODE=blob`), against Azurite, the real
//! emulator, as a child process on a free port: the proxy starts from the blob, seeds a missing
//! blob from its local cache, serves the local cache while Blob is down and switches to the blob
//! once it is back, refuses hand edits of the cache, keeps the last good config when the blob
//! turns invalid, and copies its statistics and usage history to its own blobs, from which a new
//! container of the same replica takes them back.

use std::path::Path;
use std::time::Duration;

use fake_foundry::FakeFoundry;
use proxy::blob::{BlobStore, Fetched, PersistenceMode, WriteIf};
use proxy::process::env::Env;
use serde_json::{Value, json};
use test_support::azurite::Azurite;
use test_support::relay::Relay;
use test_support::{InProcessProxy, eventually, free_port, write_json};

use crate::helpers::*;

const CONFIG_BLOB: &str = "config/config.json";

/// The blob-mode environment of a proxy (or of the test's own store) on `azurite`.
fn blob_env(azurite: &Azurite, replica: &str) -> Vec<(String, String)> {
    vec![
        ("PERSISTENCE_MODE".into(), "blob".into()),
        ("AZURE_STORAGE_ACCOUNT_URL".into(), azurite.account_url()),
        ("AZURE_STORAGE_SAS_TOKEN".into(), azurite.sas()),
        ("CONFIG_BLOB_CONTAINER".into(), "gateway".into()),
        ("BLOB_POLL_MS".into(), "200".into()),
        ("BLOB_RECOVERY_INTERVAL_MS".into(), "200".into()),
        ("REPLICA_NAME".into(), replica.into()),
    ]
}

fn borrowed(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// The test's own client of the emulator, as the gateway builds it.
fn store(azurite: &Azurite) -> BlobStore {
    let env = blob_env(azurite, "test");
    let PersistenceMode::Blob(settings) =
        proxy::blob::settings::read(&Env::from_pairs(&borrowed(&env))).expect("settings")
    else {
        panic!("blob mode");
    };
    BlobStore::new(*settings).expect("store")
}

async fn put_config(store: &BlobStore, config: &Value) -> Vec<u8> {
    let bytes = serde_json::to_vec_pretty(config).expect("json");
    store
        .put(CONFIG_BLOB, &bytes, &WriteIf::Always)
        .await
        .expect("put");
    bytes
}

async fn blob_bytes(store: &BlobStore, name: &str) -> Option<Vec<u8>> {
    match store.fetch(name, None, 1 << 24).await.expect("fetch") {
        Fetched::Found(version) => Some(version.bytes),
        _ => None,
    }
}

async fn start(config_path: &Path, env: &[(String, String)]) -> InProcessProxy {
    InProcessProxy::start(config_path, &borrowed(env)).await
}

async fn ops(proxy: &InProcessProxy, path: &str) -> (u16, Value) {
    let response = reqwest::get(format!("{}{path}", proxy.ops))
        .await
        .expect("ops");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

async fn model_ids(proxy: &InProcessProxy) -> Vec<String> {
    let response = reqwest::Client::new()
        .get(format!("{}/v1/models", proxy.address))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("models");
    if response.status() != 200 {
        return Vec::new();
    }
    let body: Value = response.json().await.expect("json");
    body["data"]
        .as_array()
        .map(|models| {
            models
                .iter()
                .filter_map(|m| m["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn config_with_model(fake: &FakeFoundry, model: &str) -> Value {
    let mut config = base_config(fake);
    config["models"] = json!([{"id": model, "upstream": "fake", "targetModel": "dep"}]);
    config
}

async fn is_ready(proxy: &InProcessProxy) -> bool {
    ops(proxy, "/readyz").await.0 == 200
}

const LIMIT: Duration = Duration::from_secs(10);

#[actix_web::test]
async fn the_proxy_starts_from_the_blob_and_keeps_it_in_its_local_cache() {
    let Some(azurite) = Azurite::start() else {
        return;
    };
    let fake = FakeFoundry::start().await;
    let store = store(&azurite);
    let bytes = put_config(&store, &config_with_model(&fake, "from-blob")).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("config.json");

    let proxy = start(&config_path, &blob_env(&azurite, "r1")).await;
    eventually("the proxy to be ready", LIMIT, || is_ready(&proxy)).await;
    assert_eq!(model_ids(&proxy).await, vec!["from-blob"]);
    assert_eq!(std::fs::read(&config_path).expect("the cache"), bytes);
    let (_, status) = ops(&proxy, "/status").await;
    let blob = &status["config"]["blob"];
    assert_eq!(blob["serving_from"], "blob");
    assert_eq!(blob["reachable"], true);
    assert_eq!(blob["auth_mode"], "sas");
    assert!(
        !status.to_string().contains("sig="),
        "the SAS is never shown"
    );

    // A chat request's statistics reach this replica's blob when the proxy stops.
    let chat = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", proxy.address))
        .bearer_auth(KEY)
        .json(&json!({"model": "from-blob", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("chat");
    assert_eq!(chat.status(), 200);
    proxy.stop().await;
    let stats: Value = serde_json::from_slice(
        &blob_bytes(&store, "config/stats/r1.json")
            .await
            .expect("the replica's statistics blob"),
    )
    .expect("json");
    assert_eq!(stats["total"]["requests"], 1);

    // A new container of the same replica, with an empty data dir, takes its counters and its
    // usage history back from its blobs.
    let new_dir = tempfile::tempdir().expect("tempdir");
    let proxy = start(
        &new_dir.path().join("config.json"),
        &blob_env(&azurite, "r1"),
    )
    .await;
    eventually("the new container to be ready", LIMIT, || is_ready(&proxy)).await;
    assert_eq!(ops(&proxy, "/stats").await.1["total"]["requests"], 1);
    let (status, usage) = ops(&proxy, "/usage").await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(usage["total"]["requests"], 1, "{usage}");
    proxy.stop().await;
}

#[actix_web::test]
async fn a_missing_blob_is_created_from_the_local_config() {
    let Some(azurite) = Azurite::start() else {
        return;
    };
    let fake = FakeFoundry::start().await;
    let store = store(&azurite);
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("config.json");
    write_json(&config_path, &config_with_model(&fake, "seeded"));
    let local = std::fs::read(&config_path).expect("local");

    let proxy = start(&config_path, &blob_env(&azurite, "r1")).await;
    eventually("the proxy to be ready", LIMIT, || is_ready(&proxy)).await;
    eventually("the blob to be created", LIMIT, || async {
        blob_bytes(&store, CONFIG_BLOB).await.as_deref() == Some(local.as_slice())
    })
    .await;
    assert_eq!(model_ids(&proxy).await, vec!["seeded"]);
    proxy.stop().await;
}

#[actix_web::test]
async fn with_blob_down_at_start_the_local_cache_serves_until_blob_is_back() {
    let Some(azurite) = Azurite::start() else {
        return;
    };
    let fake = FakeFoundry::start().await;
    put_config(&store(&azurite), &config_with_model(&fake, "from-blob")).await;
    // The proxy reaches Blob through a relay that is cut: Blob Storage is unreachable for it.
    let relay = Relay::start(azurite.port);
    relay.cut();
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("config.json");
    write_json(&config_path, &config_with_model(&fake, "cached"));

    let mut env = blob_env(&azurite, "r1");
    for (name, value) in &mut env {
        if name == "AZURE_STORAGE_ACCOUNT_URL" {
            *value = format!("http://127.0.0.1:{}/devstoreaccount1", relay.port);
        }
    }
    let proxy = start(&config_path, &env).await;
    eventually("the fallback to be taken", LIMIT, || is_ready(&proxy)).await;
    assert_eq!(model_ids(&proxy).await, vec!["cached"]);
    let (_, status) = ops(&proxy, "/status").await;
    assert_eq!(status["config"]["blob"]["reachable"], false);
    assert_eq!(status["config"]["blob"]["serving_from"], "local_cache");
    assert!(status["config"]["blob"]["error"].is_string());

    relay.restore();
    eventually("the blob's config to serve", LIMIT, || async {
        model_ids(&proxy).await == ["from-blob"]
    })
    .await;
    let (_, status) = ops(&proxy, "/status").await;
    assert_eq!(status["config"]["blob"]["reachable"], true);
    assert_eq!(status["config"]["blob"]["serving_from"], "blob");
    proxy.stop().await;
}

#[actix_web::test]
async fn without_a_local_config_the_proxy_is_not_ready_until_blob_answers() {
    let port = free_port();
    let Some(mut azurite) = Azurite::stopped(port, None) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("config.json");
    let proxy = start(&config_path, &blob_env(&azurite, "r1")).await;
    let (status, body) = ops(&proxy, "/readyz").await;
    assert_eq!(status, 503);
    assert_eq!(body["ready"], false);
    assert!(matches!(
        body["reason"].as_str(),
        Some("no_config" | "blob_first_read")
    ));

    let fake = FakeFoundry::start().await;
    azurite.restart();
    // Blob answers: the proxy may first create the missing blob from the shipped example; the
    // version written here then replaces it.
    put_config(&store(&azurite), &config_with_model(&fake, "late")).await;
    eventually("the blob's config to serve", LIMIT, || async {
        model_ids(&proxy).await == ["late"]
    })
    .await;
    assert!(is_ready(&proxy).await);
    proxy.stop().await;
}

#[actix_web::test]
async fn a_hand_edit_of_the_cache_is_set_aside_and_never_applied() {
    let Some(azurite) = Azurite::start() else {
        return;
    };
    let fake = FakeFoundry::start().await;
    let store = store(&azurite);
    let blob = put_config(&store, &config_with_model(&fake, "from-blob")).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("config.json");
    let proxy = start(&config_path, &blob_env(&azurite, "r1")).await;
    eventually("the proxy to be ready", LIMIT, || is_ready(&proxy)).await;

    let edited = serde_json::to_vec(&config_with_model(&fake, "by-hand")).expect("json");
    std::fs::write(&config_path, &edited).expect("hand edit");
    eventually("the edit to be set aside", LIMIT, || async {
        ops(&proxy, "/status").await.1["config"]["blob"]["local_edits"]
            .as_array()
            .is_some_and(|edits| edits.len() == 1)
    })
    .await;
    let (_, status) = ops(&proxy, "/status").await;
    let kept = status["config"]["blob"]["local_edits"][0]["path"]
        .as_str()
        .expect("path")
        .to_string();
    assert!(kept.contains("config.local-edit-"), "{kept}");
    assert_eq!(std::fs::read(&kept).expect("kept"), edited);
    assert_eq!(std::fs::read(&config_path).expect("restored"), blob);
    assert_eq!(model_ids(&proxy).await, vec!["from-blob"]);
    proxy.stop().await;
}

#[actix_web::test]
async fn an_invalid_blob_version_is_refused_and_the_last_good_config_serves() {
    let Some(azurite) = Azurite::start() else {
        return;
    };
    let fake = FakeFoundry::start().await;
    let store = store(&azurite);
    let good = put_config(&store, &config_with_model(&fake, "good")).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("config.json");
    let proxy = start(&config_path, &blob_env(&azurite, "r1")).await;
    eventually("the proxy to be ready", LIMIT, || is_ready(&proxy)).await;

    let mut invalid = config_with_model(&fake, "bad");
    invalid["models"][0]["upstream"] = json!("nowhere");
    put_config(&store, &invalid).await;
    eventually("the version to be refused", LIMIT, || async {
        ops(&proxy, "/status").await.1["config"]["rejected"]["issues"][0]["path"]
            == "models[0].upstream"
    })
    .await;
    assert_eq!(model_ids(&proxy).await, vec!["good"]);
    assert!(is_ready(&proxy).await);
    assert_eq!(
        std::fs::read(&config_path).expect("cache"),
        good,
        "an invalid version is not cached"
    );
    proxy.stop().await;
}

/// The managed-identity path: the proxy (a process, for its own credential environment) gets an
/// Entra ID token for Azure Storage from the fake managed-identity endpoint, and Azurite in
/// OAuth mode (HTTPS) accepts it: the proxy creates the missing blob from its local config and
/// reads it back, with no SAS anywhere.
#[actix_web::test]
async fn a_managed_identity_token_reads_and_writes_the_blob() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tls, ca_pem) = test_support::azurite::Tls::generate(dir.path());
    let Some(azurite) = Azurite::start_with(Some(tls)) else {
        return;
    };
    let ca_file = dir.path().join("azurite-ca.pem");
    std::fs::write(&ca_file, ca_pem).expect("ca");
    let entra = fake_foundry::FakeEntra::start().await;
    entra.issue_jwt_tokens();
    let fake = FakeFoundry::start().await;
    let config_path = dir.path().join("config.json");
    write_json(&config_path, &config_with_model(&fake, "via-identity"));

    let env = vec![
        ("PERSISTENCE_MODE", "blob".to_string()),
        ("AZURE_STORAGE_ACCOUNT_URL", azurite.account_url()),
        ("BLOB_AUTH_MODE", "managedIdentity".into()),
        ("BLOB_POLL_MS", "200".into()),
        ("BLOB_RECOVERY_INTERVAL_MS", "200".into()),
        ("SSL_CERT_FILE", ca_file.display().to_string()),
        ("IDENTITY_ENDPOINT", entra.identity_endpoint()),
        ("IDENTITY_HEADER", entra.identity_header()),
        ("AZURE_STORAGE_SAS_TOKEN", String::new()),
        ("AZURE_CLIENT_ID", String::new()),
        ("AZURE_TENANT_ID", String::new()),
        ("AZURE_CLIENT_SECRET", String::new()),
        ("AZURE_FEDERATED_TOKEN_FILE", String::new()),
    ];
    let running = crate::process::start_binary_with(&config_path, &env);
    let http = reqwest::Client::new();
    let status = || async {
        http.get(format!("{}/status", running.ops))
            .send()
            .await
            .expect("status")
            .json::<Value>()
            .await
            .expect("json")
    };
    eventually("the blob to be created and read back", LIMIT, || async {
        let blob = &status().await["config"]["blob"];
        blob["serving_from"] == "blob" && blob["reachable"] == true && blob["etag"].is_string()
    })
    .await;
    let blob = status().await["config"]["blob"].clone();
    assert_eq!(blob["auth_mode"], "managedIdentity");
    let storage_tokens = entra
        .requests()
        .iter()
        .filter(|r| {
            r.resource
                .as_deref()
                .is_some_and(|res| res.trim_end_matches('/') == "https://storage.azure.com")
        })
        .count();
    assert_eq!(storage_tokens, 1, "one token, cached for every call");

    // Azurite does check the token: an opaque one (not a JWT) is refused.
    let opaque = fake_foundry::FakeEntra::start().await;
    let other_dir = tempfile::tempdir().expect("tempdir");
    let other_path = other_dir.path().join("config.json");
    let mut env = env;
    env.retain(|(name, _)| !name.starts_with("IDENTITY_"));
    env.push(("IDENTITY_ENDPOINT", opaque.identity_endpoint()));
    env.push(("IDENTITY_HEADER", opaque.identity_header()));
    let refused = crate::process::start_binary_with(&other_path, &env);
    eventually("Blob Storage to refuse the opaque token", LIMIT, || async {
        let blob = http
            .get(format!("{}/status", refused.ops))
            .send()
            .await
            .expect("status")
            .json::<Value>()
            .await
            .expect("json")["config"]["blob"]
            .clone();
        blob["reachable"] == false
            && blob["error"]
                .as_str()
                .is_some_and(|e| e.contains("answered 40"))
    })
    .await;
    assert!(opaque.token_requests() >= 1);
}
