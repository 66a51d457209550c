use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

async fn model_ids(app: &TestApp) -> Vec<String> {
    let body: Value = app
        .http
        .get(app.url("/v1/models"))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    body["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_string())
        .collect()
}

async fn wait_for_model(app: &TestApp, id: &str) {
    let what = format!("model {id} to be listed");
    eventually(&what, Duration::from_secs(5), || async {
        model_ids(app).await.iter().any(|m| m == id)
    })
    .await;
}

#[actix_web::test]
async fn a_hand_edit_written_in_place_is_applied() {
    let app = spawn_app().await;
    let mut config = base_config(&app.fake);
    config["models"]
        .as_array_mut()
        .expect("models")
        .push(json!({"id": "added", "upstream": "fake"}));
    std::fs::write(
        &app.config_path,
        serde_json::to_vec_pretty(&config).expect("json"),
    )
    .expect("write");
    wait_for_model(&app, "added").await;
    let status = app.ops_json("/status").await;
    assert_eq!(status["config"]["generation"], 2);
}

#[actix_web::test]
async fn an_atomic_rename_is_applied() {
    let app = spawn_app().await;
    let mut config = base_config(&app.fake);
    config["apiKeys"][0]["status"] = json!("disabled");
    write_json(&app.config_path, &config);
    eventually(
        "the disabled key to be refused",
        Duration::from_secs(5),
        || async { app.chat(chat_body(false)).await.status() == 401 },
    )
    .await;
}

#[actix_web::test]
async fn an_invalid_edit_is_refused_and_the_last_good_config_keeps_serving() {
    let app = spawn_app().await;
    let mut config = base_config(&app.fake);
    config["models"][0]["upstream"] = json!("nowhere");
    write_json(&app.config_path, &config);
    eventually(
        "the invalid file to be reported",
        Duration::from_secs(5),
        || async { app.ops_json("/status").await["config"]["rejected"].is_object() },
    )
    .await;
    let status = app.ops_json("/status").await;
    assert_eq!(
        status["config"]["rejected"]["issues"][0]["path"],
        "models[0].upstream"
    );
    assert_eq!(status["config"]["generation"], 1);
    assert_eq!(app.chat(chat_body(false)).await.status(), 200);

    std::fs::write(&app.config_path, b"{ not json").expect("write");
    eventually(
        "the broken file to be reported",
        Duration::from_secs(5),
        || async {
            app.ops_json("/status").await["config"]["rejected"]["issues"][0]["path"] == "(root)"
        },
    )
    .await;
    assert_eq!(app.chat(chat_body(false)).await.status(), 200);
}

#[actix_web::test]
async fn polling_alone_picks_up_a_change() {
    let app = spawn_app_with(Default::default(), |_| {}, &[("CONFIG_WATCH", "poll")]).await;
    let mut config = base_config(&app.fake);
    config["models"]
        .as_array_mut()
        .expect("models")
        .push(json!({"id": "polled", "upstream": "fake"}));
    write_json(&app.config_path, &config);
    wait_for_model(&app, "polled").await;
}

async fn rejected_message(app: &TestApp) -> String {
    let status = app.ops_json("/status").await;
    status["config"]["rejected"]["issues"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn wait_for_rejection(app: &TestApp, fragment: &str) {
    let what = format!("a refusal saying \"{fragment}\"");
    eventually(&what, Duration::from_secs(5), || async {
        rejected_message(app).await.contains(fragment)
    })
    .await;
}

#[cfg(unix)]
#[actix_web::test]
async fn a_device_a_fifo_or_an_oversized_file_is_refused_and_a_later_edit_still_applies() {
    let app = spawn_app().await;
    let path = app.config_path.clone();

    std::fs::remove_file(&path).expect("remove");
    std::os::unix::fs::symlink("/dev/zero", &path).expect("symlink");
    wait_for_rejection(&app, "the file is a device, not a regular file").await;
    assert_eq!(app.chat(chat_body(false)).await.status(), 200);

    std::fs::remove_file(&path).expect("remove");
    let made = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    wait_for_rejection(&app, "the file is a FIFO, not a regular file").await;

    std::fs::remove_file(&path).expect("remove");
    let mut large = base_config(&app.fake);
    large["notes"] = json!("x".repeat(2 * 1024 * 1024));
    std::fs::write(&path, serde_json::to_vec(&large).expect("json")).expect("write");
    wait_for_rejection(&app, "larger than the limit of 1048576 bytes").await;
    let status = app.ops_json("/status").await;
    assert_eq!(status["config"]["rejected"]["sha256"], "");
    assert_eq!(status["config"]["generation"], 1);
    assert_eq!(app.chat(chat_body(false)).await.status(), 200);

    let mut config = base_config(&app.fake);
    config["models"]
        .as_array_mut()
        .expect("models")
        .push(json!({"id": "after", "upstream": "fake"}));
    write_json(&path, &config);
    wait_for_model(&app, "after").await;
    assert!(app.ops_json("/status").await["config"]["rejected"].is_null());
}

#[actix_web::test]
async fn a_missing_file_or_a_directory_is_reported_until_the_file_is_back() {
    let app = spawn_app().await;
    let path = app.config_path.clone();
    let original = std::fs::read(&path).expect("read");

    std::fs::remove_file(&path).expect("remove");
    wait_for_rejection(&app, "the file does not exist").await;
    assert_eq!(app.chat(chat_body(false)).await.status(), 200);

    std::fs::create_dir(&path).expect("mkdir");
    wait_for_rejection(&app, "the file is a directory, not a regular file").await;
    assert_eq!(app.ops_json("/status").await["config"]["generation"], 1);

    std::fs::remove_dir(&path).expect("rmdir");
    std::fs::write(&path, &original).expect("write");
    eventually(
        "the refusal to be cleared",
        Duration::from_secs(5),
        || async { app.ops_json("/status").await["config"]["rejected"].is_null() },
    )
    .await;
    assert_eq!(app.ops_json("/status").await["config"]["generation"], 1);
}
