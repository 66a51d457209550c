//! Control and proxy replicas in blob mode against Azurite, the real emulator: a save reaches
//! two proxy replicas within the poll interval; two control instances saving at once get one
//! success and one conflict; a save while Blob is down is kept locally and pushed when it is
//! back, unless the blob changed meanwhile (then it is set aside and shown, never pushed over
//! it); the statistics of two replicas are added up, and the usage history the UI charts in
//! blob mode holds every replica's once.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use control::settings::Settings as ControlSettings;
use fake_foundry::FakeFoundry;
use proxy::blob::{BlobStore, Fetched, PersistenceMode, WriteIf};
use proxy::process::env::Env;
use serde_json::{Value, json};
use test_support::azurite::Azurite;
use test_support::relay::Relay;
use test_support::{InProcessProxy, eventually};

use crate::helpers::*;

const CONFIG_BLOB: &str = "config/config.json";
const POLL_MS: u64 = 500;
pub(crate) const LIMIT: Duration = Duration::from_secs(15);

pub(crate) fn blob_env(account_url: &str, sas: &str, replica: &str) -> Vec<(String, String)> {
    vec![
        ("PERSISTENCE_MODE".into(), "blob".into()),
        ("AZURE_STORAGE_ACCOUNT_URL".into(), account_url.into()),
        ("AZURE_STORAGE_SAS_TOKEN".into(), sas.into()),
        ("BLOB_POLL_MS".into(), POLL_MS.to_string()),
        ("BLOB_RECOVERY_INTERVAL_MS".into(), "200".into()),
        ("REPLICA_NAME".into(), replica.into()),
    ]
}

fn borrowed(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn persistence(env: &[(String, String)]) -> PersistenceMode {
    proxy::blob::settings::read(&Env::from_pairs(&borrowed(env))).expect("blob settings")
}

pub(crate) fn store(azurite: &Azurite) -> BlobStore {
    match persistence(&blob_env(&azurite.account_url(), &azurite.sas(), "test")) {
        PersistenceMode::Blob(settings) => BlobStore::new(*settings).expect("store"),
        PersistenceMode::File => panic!("blob mode"),
    }
}

async fn blob_json(store: &BlobStore) -> Value {
    match store
        .fetch(CONFIG_BLOB, None, 1 << 20)
        .await
        .expect("fetch")
    {
        Fetched::Found(version) => serde_json::from_slice(&version.bytes).expect("json"),
        other => panic!("no config blob: {other:?}"),
    }
}

/// A control instance in blob mode with a data dir of its own.
pub(crate) struct Control {
    pub(crate) url: String,
    config_path: PathBuf,
    stop: control::startup::StopHandle,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Control {
    pub(crate) async fn start(env: &[(String, String)], proxy_ops: Option<&str>) -> Control {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("config.json");
        let mut settings = ControlSettings::for_config(config_path.clone());
        settings.listen = "127.0.0.1:0".into();
        settings.proxy_ops_url = proxy_ops.map(|u| u.parse().expect("url"));
        settings.caddy.admin_url = None;
        settings.workers = Some(2);
        settings.persistence = persistence(env);
        let app = control::startup::Application::build(settings)
            .await
            .expect("control builds");
        let url = format!("http://127.0.0.1:{}", app.port());
        let stop = app.stop_handle();
        actix_rt::spawn(async move {
            let _ = app.run_until_stopped().await;
        });
        Control {
            url,
            config_path,
            stop,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    fn api(&self, path: &str) -> String {
        format!("{}/admin/api/{path}", self.url)
    }

    async fn get_json(&self, path: &str) -> Value {
        self.http
            .get(self.api(path))
            .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("json")
    }

    async fn config(&self) -> (Value, String) {
        let body = self.get_json("config").await;
        (
            body["config"].clone(),
            body["etag"].as_str().expect("etag").to_string(),
        )
    }

    async fn save(&self, config: &Value, etag: &str) -> reqwest::Response {
        self.http
            .put(self.api("config"))
            .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
            .header("x-requested-with", "test")
            .header("origin", &self.url)
            .header("if-match", etag)
            .json(config)
            .send()
            .await
            .expect("PUT config")
    }

    async fn warning_codes(&self) -> Vec<String> {
        self.get_json("status").await["warnings"]
            .as_array()
            .map(|w| {
                w.iter()
                    .filter_map(|w| w["code"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) async fn stop(self) {
        self.stop.stop().await;
    }
}

/// A proxy replica in blob mode with a data dir of its own.
pub(crate) async fn replica(env: &[(String, String)]) -> (InProcessProxy, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let proxy = InProcessProxy::start(&dir.path().join("config.json"), &borrowed(env)).await;
    (proxy, dir)
}

pub(crate) async fn serves_model(proxy: &InProcessProxy, model: &str) -> bool {
    let Ok(response) = reqwest::Client::new()
        .get(format!("{}/v1/models", proxy.address))
        .bearer_auth(KEY)
        .send()
        .await
    else {
        return false;
    };
    let body: Value = response.json().await.unwrap_or(Value::Null);
    body["data"]
        .as_array()
        .is_some_and(|models| models.iter().any(|m| m["id"] == model))
}

/// Puts `base_config(fake)` in the blob, with the statistics written (and copied) every second.
pub(crate) async fn seed(store: &BlobStore, fake: &FakeFoundry) {
    let mut config = base_config(fake);
    config["stats"] = json!({"flushInterval": "1s"});
    let bytes = serde_json::to_vec_pretty(&config).expect("json");
    store
        .put(CONFIG_BLOB, &bytes, &WriteIf::Always)
        .await
        .expect("seed the blob");
}

fn with_model(config: &Value, model: &str) -> Value {
    let mut config = config.clone();
    config["models"]
        .as_array_mut()
        .expect("models")
        .push(json!({"id": model, "upstream": "fake", "targetModel": model}));
    config
}

#[actix_web::test]
async fn a_control_save_reaches_two_proxy_replicas_within_the_poll_interval() {
    let Some(azurite) = Azurite::start() else {
        return;
    };
    let fake = FakeFoundry::start().await;
    let store = store(&azurite);
    seed(&store, &fake).await;
    let (url, sas) = (azurite.account_url(), azurite.sas());
    let (r1, _d1) = replica(&blob_env(&url, &sas, "r1")).await;
    let (r2, _d2) = replica(&blob_env(&url, &sas, "r2")).await;
    let control = Control::start(&blob_env(&url, &sas, "control"), None).await;
    for proxy in [&r1, &r2] {
        eventually("the replica to serve the blob", LIMIT, || {
            serves_model(proxy, "gpt-5-mini")
        })
        .await;
    }

    let (config, etag) = control.config().await;
    let saved_at = Instant::now();
    assert_eq!(
        control
            .save(&with_model(&config, "new-model"), &etag)
            .await
            .status(),
        200
    );
    let mut reached = Vec::new();
    for proxy in [&r1, &r2] {
        eventually("the replica to apply the save", LIMIT, || {
            serves_model(proxy, "new-model")
        })
        .await;
        reached.push(saved_at.elapsed());
    }
    eprintln!("a save reached the replicas after {reached:?} (poll interval {POLL_MS} ms)");
    let bound = Duration::from_millis(POLL_MS) + Duration::from_millis(1500);
    assert!(
        reached.iter().all(|after| *after <= bound),
        "{reached:?} is over {bound:?}"
    );
    assert!(
        blob_json(&store).await["models"]
            .to_string()
            .contains("new-model")
    );
    control.stop().await;
    r1.stop().await;
    r2.stop().await;
}

#[actix_web::test]
async fn two_control_instances_saving_at_once_get_one_success_and_one_conflict() {
    let Some(azurite) = Azurite::start() else {
        return;
    };
    let fake = FakeFoundry::start().await;
    let store = store(&azurite);
    seed(&store, &fake).await;
    let (url, sas) = (azurite.account_url(), azurite.sas());
    let a = Control::start(&blob_env(&url, &sas, "a"), None).await;
    let b = Control::start(&blob_env(&url, &sas, "b"), None).await;
    let (config_a, etag_a) = a.config().await;
    let (config_b, etag_b) = b.config().await;
    assert_eq!(etag_a, etag_b);

    let (change_a, change_b) = (
        with_model(&config_a, "from-a"),
        with_model(&config_b, "from-b"),
    );
    let (saved_a, saved_b) = tokio::join!(a.save(&change_a, &etag_a), b.save(&change_b, &etag_b));
    let mut statuses = [saved_a.status().as_u16(), saved_b.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409]);
    let (winner, loser, lost_model) = if saved_a.status() == 200 {
        (&a, &b, "from-b")
    } else {
        (&b, &a, "from-a")
    };
    let conflict: Value = if saved_a.status() == 409 {
        saved_a.json().await.expect("json")
    } else {
        saved_b.json().await.expect("json")
    };
    assert_eq!(conflict["error"]["code"], "config_changed");

    // Nothing is lost: the loser reloads (the winner's change is there) and saves again.
    let (fresh, fresh_etag) = loser.config().await;
    let fresh_models = fresh["models"].to_string();
    assert!(fresh_models.contains("from-a") || fresh_models.contains("from-b"));
    assert_eq!(
        loser
            .save(&with_model(&fresh, lost_model), &fresh_etag)
            .await
            .status(),
        200
    );
    let models = blob_json(&store).await["models"].to_string();
    assert!(
        models.contains("from-a") && models.contains("from-b"),
        "{models}"
    );
    winner.get_json("config").await;
    a.stop().await;
    b.stop().await;
}

/// A control reaching `azurite` through a relay, started while Blob answers (the config it
/// then served is returned), then cut off from Blob until it says so.
async fn control_with_blob_cut(azurite: &Azurite) -> (Control, Relay, Value) {
    let relay = Relay::start(azurite.port);
    let url = format!("http://127.0.0.1:{}/devstoreaccount1", relay.port);
    let control = Control::start(&blob_env(&url, &azurite.sas(), "c"), None).await;
    let (config, _) = control.config().await;
    relay.cut();
    eventually("control to see Blob down", LIMIT, || async {
        control
            .warning_codes()
            .await
            .contains(&"blob_unreachable".to_string())
    })
    .await;
    (control, relay, config)
}

#[actix_web::test]
async fn a_save_while_blob_is_down_is_kept_locally_and_pushed_when_blob_is_back() {
    let Some(azurite) = Azurite::start() else {
        return;
    };
    let fake = FakeFoundry::start().await;
    let store = store(&azurite);
    seed(&store, &fake).await;
    let (control, relay, config) = control_with_blob_cut(&azurite).await;
    let (config_now, etag) = control.config().await;
    assert_eq!(
        config_now["models"], config["models"],
        "the local cache serves"
    );
    assert_eq!(
        control
            .save(&with_model(&config_now, "while-down"), &etag)
            .await
            .status(),
        200
    );
    assert!(
        control
            .warning_codes()
            .await
            .contains(&"blob_pending".to_string())
    );
    assert!(
        !blob_json(&store).await["models"]
            .to_string()
            .contains("while-down")
    );
    let cached: Value =
        serde_json::from_slice(&std::fs::read(&control.config_path).expect("cache")).expect("json");
    assert!(cached["models"].to_string().contains("while-down"));

    relay.restore();
    eventually("the change to be pushed", LIMIT, || async {
        blob_json(&store).await["models"]
            .to_string()
            .contains("while-down")
    })
    .await;
    eventually("the pending warning to clear", LIMIT, || async {
        let codes = control.warning_codes().await;
        !codes.contains(&"blob_pending".to_string())
            && !codes.contains(&"blob_unreachable".to_string())
    })
    .await;
    control.stop().await;
}

#[actix_web::test]
async fn a_change_saved_while_down_is_set_aside_when_the_blob_changed_meanwhile() {
    let Some(azurite) = Azurite::start() else {
        return;
    };
    let fake = FakeFoundry::start().await;
    let store = store(&azurite);
    seed(&store, &fake).await;
    let (control, relay, _) = control_with_blob_cut(&azurite).await;
    let (config, etag) = control.config().await;
    assert_eq!(
        control
            .save(&with_model(&config, "local-change"), &etag)
            .await
            .status(),
        200
    );
    // Someone else changes the blob meanwhile (another control, reaching Blob).
    let mut elsewhere = base_config(&fake);
    elsewhere["notes"] = json!({"changed": "elsewhere"});
    store
        .put(
            CONFIG_BLOB,
            &serde_json::to_vec_pretty(&elsewhere).expect("json"),
            &WriteIf::Always,
        )
        .await
        .expect("a change elsewhere");

    relay.restore();
    eventually("the conflict to be shown", LIMIT, || async {
        control
            .warning_codes()
            .await
            .contains(&"blob_unpushed".to_string())
    })
    .await;
    let blob = blob_json(&store).await;
    assert_eq!(blob["notes"]["changed"], "elsewhere", "never overwritten");
    assert!(!blob["models"].to_string().contains("local-change"));
    let status = control.get_json("status").await;
    let warning = status["warnings"]
        .as_array()
        .and_then(|w| w.iter().find(|w| w["code"] == "blob_unpushed").cloned())
        .expect("the warning");
    let kept = warning["detail"].as_str().expect("the file");
    let kept: Value = serde_json::from_slice(&std::fs::read(kept).expect("kept")).expect("json");
    assert!(
        kept["models"].to_string().contains("local-change"),
        "not lost"
    );
    let (now, _) = control.config().await;
    assert_eq!(now["notes"]["changed"], "elsewhere");
    control.stop().await;
}

#[actix_web::test]
async fn the_statistics_of_two_replicas_are_added_up() {
    let Some(azurite) = Azurite::start() else {
        return;
    };
    let TwoReplicas {
        r1,
        control,
        _dirs,
        _fake,
    } = TwoReplicas::start(&azurite, "control").await;
    let stats = control.get_json("stats").await;
    assert_eq!(stats["total"]["requests"], 5, "{stats:#}");
    assert_eq!(stats["by_model"]["gpt-5-mini"]["requests"], 5);
    let replicas = stats["replicas"].as_array().expect("replicas");
    let named = |name: &str| {
        replicas
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {replicas:?}"))
            .clone()
    };
    assert_eq!(named("r1")["live"], true);
    assert_eq!(named("r1")["requests"], 2);
    assert_eq!(named("r2")["requests"], 3);

    // The usage history of both, as one (r1 copies its history files every second).
    let now = now_ms();
    let query = format!(
        "usage/merged?from={}&to={}&step=1m&group_by=model",
        now - 3_600_000,
        now + 120_000
    );
    eventually(
        "the merged usage history to hold both replicas",
        LIMIT,
        || async { control.get_json(&query).await["total"]["requests"] == 5 },
    )
    .await;
    let usage = control.get_json(&query).await;
    assert_eq!(usage["series"][0]["group"], "gpt-5-mini");
    control.stop().await;
    r1.stop().await;
}

/// Two proxy replicas in blob mode on `azurite`: r1 has served 2 chat requests and still runs;
/// r2 served 3 and stopped (which copied its statistics and usage history to its blobs).
/// Control runs under the replica name `control_name`, reading r1's proxy.
/// Bind every field: the data dirs and the fake upstream must live as long as the test.
pub(crate) struct TwoReplicas {
    pub r1: InProcessProxy,
    pub control: Control,
    pub _dirs: [tempfile::TempDir; 2],
    pub _fake: FakeFoundry,
}

impl TwoReplicas {
    pub(crate) async fn start(azurite: &Azurite, control_name: &str) -> TwoReplicas {
        let fake = FakeFoundry::start().await;
        seed(&store(azurite), &fake).await;
        let (url, sas) = (azurite.account_url(), azurite.sas());
        let (r1, d1) = replica(&blob_env(&url, &sas, "r1")).await;
        let (r2, d2) = replica(&blob_env(&url, &sas, "r2")).await;
        send_chats(&r1, 2).await;
        send_chats(&r2, 3).await;
        r2.stop().await;
        let control = Control::start(&blob_env(&url, &sas, control_name), Some(&r1.ops)).await;
        TwoReplicas {
            r1,
            control,
            _dirs: [d1, d2],
            _fake: fake,
        }
    }
}

/// Sends `count` chat requests with the test key through `proxy`.
pub(crate) async fn send_chats(proxy: &InProcessProxy, count: usize) {
    eventually("the replica to serve", LIMIT, || {
        serves_model(proxy, "gpt-5-mini")
    })
    .await;
    let http = reqwest::Client::new();
    for _ in 0..count {
        let response = http
            .post(format!("{}/v1/chat/completions", proxy.address))
            .bearer_auth(KEY)
            .json(&chat_body(false))
            .send()
            .await
            .expect("chat");
        assert_eq!(response.status(), 200);
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

#[actix_web::test]
async fn in_blob_mode_the_ui_reads_every_replicas_usage_history_counting_each_once() {
    let Some(azurite) = Azurite::start() else {
        return;
    };
    let TwoReplicas {
        r1,
        control,
        _dirs,
        _fake,
    } = TwoReplicas::start(&azurite, "r1").await;
    let session = control.get_json("session").await;
    assert_eq!(session["persistence"], "blob", "{session}");

    // A point a day grouped by key, as the UI asks for each key's month in blob mode.
    let now = now_ms();
    let from = now - now % 86_400_000 - 30 * 86_400_000;
    let month = format!(
        "usage/merged?from={from}&to={}&step=1d&group_by=key",
        now + 60_000
    );
    eventually("both replicas in the merged history", LIMIT, || async {
        control.get_json(&month).await["total"]["requests"] == 5
    })
    .await;
    let merged = control.get_json(&month).await;
    let team_a = merged["series"]
        .as_array()
        .expect("series")
        .iter()
        .find(|s| s["group"] == KEY_ID)
        .unwrap_or_else(|| panic!("{KEY_ID} in {merged:#}"));
    assert_eq!(team_a["total"]["requests"], 5, "{merged:#}");
    assert_eq!(merged["step_ms"], 86_400_000);
    // r1's live history and its copy are the same requests: the merge is r1's two plus r2's
    // three, not r1's counted twice.
    let local = control
        .get_json(&month.replacen("usage/merged", "usage", 1))
        .await;
    assert_eq!(local["total"]["requests"], 2, "{local:#}");
    assert!(
        merged["total"]["latency_ms"]["p50"].is_number(),
        "percentiles from the added histograms: {merged:#}"
    );

    // The CSV download, as the UI links it.
    let csv = reqwest::Client::new()
        .get(control.api(&format!(
            "usage/merged?from={}&to={}&step=1m&group_by=key&format=csv",
            now - 3_600_000,
            now + 60_000
        )))
        .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
        .send()
        .await
        .expect("CSV");
    assert_eq!(csv.status(), 200);
    let disposition = csv
        .headers()
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        disposition.starts_with("attachment; filename=\"usage-"),
        "{disposition}"
    );
    let text = csv.text().await.expect("text");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let requests = header
        .iter()
        .position(|h| *h == "requests")
        .expect("requests");
    let summed: u64 = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.split(',')
                .nth(requests)
                .expect("field")
                .parse::<u64>()
                .expect("a count")
        })
        .sum();
    assert_eq!(summed, 5, "{text}");

    // A step the history cannot answer is refused naming the parameter, as `usage` passes on
    // the proxy's refusal (the UI asks again with the step the history chooses).
    let refused = reqwest::Client::new()
        .get(control.api("usage/merged?step=often"))
        .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
        .send()
        .await
        .expect("refused");
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["param"], "step", "{body}");

    // A new request on r1 reaches the merge with r1's next copy.
    send_chats(&r1, 1).await;
    eventually("r1's next copy in the merged history", LIMIT, || async {
        control.get_json(&month).await["total"]["requests"] == 6
    })
    .await;
    control.stop().await;
    r1.stop().await;
}
