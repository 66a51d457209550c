//! Entra ID upstream credentials against a fake token service speaking the real protocols: the
//! App Service managed-identity endpoint (http) and the client-credentials flow (https, test CA).
//! The proxy runs as a process so each test has its own credential environment.

use std::time::{Duration, Instant};

use fake_foundry::{FakeEntra, FakeFoundry};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::process::{Running, start_binary_with};

/// What a client is told when the gateway has no upstream credential.
const CREDENTIALS_FAILED: &str = "the gateway could not obtain credentials for the upstream";

struct EntraSetup {
    entra: FakeEntra,
    fake: FakeFoundry,
    dir: tempfile::TempDir,
    ca_file: String,
}

async fn setup() -> EntraSetup {
    let entra = FakeEntra::start().await;
    let fake = FakeFoundry::start().await;
    fake.set_token_checker(Some(entra.checker()));
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_file = dir.path().join("test-ca.pem");
    std::fs::write(&ca_file, entra.ca_pem()).expect("ca");
    EntraSetup {
        entra,
        fake,
        dir,
        ca_file: ca_file.display().to_string(),
    }
}

impl EntraSetup {
    fn config(&self, auth: Value) -> Value {
        let mut config = base_config(&self.fake);
        config["auth"] = auth;
        config
    }

    /// The proxy with `auth`, the managed-identity endpoint and the test CA in its environment.
    fn start(&self, auth: Value, extra_env: &[(&str, String)]) -> Running {
        let path = self.dir.path().join("config.json");
        write_json(&path, &self.config(auth));
        let mut env = vec![
            ("SSL_CERT_FILE", self.ca_file.clone()),
            ("IDENTITY_ENDPOINT", self.entra.identity_endpoint()),
            ("IDENTITY_HEADER", self.entra.identity_header()),
            // No `az` and no Azure variables from the machine running the tests.
            (
                "PATH",
                self.dir.path().display().to_string() + ":/usr/bin:/bin",
            ),
            ("AZURE_CLIENT_ID", String::new()),
            ("AZURE_TENANT_ID", String::new()),
            ("AZURE_CLIENT_SECRET", String::new()),
            ("AZURE_FEDERATED_TOKEN_FILE", String::new()),
        ];
        for (name, value) in extra_env {
            env.retain(|(n, _)| n != name);
            env.push((name, value.clone()));
        }
        start_binary_with(&path, &env)
    }

    fn config_path(&self) -> std::path::PathBuf {
        self.dir.path().join("config.json")
    }
}

async fn chat(http: &reqwest::Client, running: &Running, model: &str) -> reqwest::Response {
    http.post(running.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("request")
}

/// A chat request with `request_id` that is expected to fail: its status and OpenAI error.
async fn chat_traced(running: &Running, request_id: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(running.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .header("x-request-id", request_id)
        .json(&json!({"model": "gpt-5-mini", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("request");
    error_of(response).await
}

/// The error message of the "request finished" log line of `request_id`.
fn logged_error(running: &Running, request_id: &str) -> String {
    std::iter::from_fn(|| running.lines.recv_timeout(Duration::from_secs(10)).ok())
        .filter_map(|line| serde_json::from_str::<Value>(&line).ok())
        .find(|line| line["message"] == "request finished" && line["request_id"] == request_id)
        .and_then(|line| line["error.message"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no log line with the error of {request_id}"))
}

#[actix_web::test]
async fn managed_identity_tokens_sign_upstream_calls_and_are_fetched_once() {
    let s = setup().await;
    let running = s.start(json!({"mode": "managedIdentity"}), &[]);
    let http = reqwest::Client::new();
    for _ in 0..20 {
        assert_eq!(chat(&http, &running, "gpt-5-mini").await.status(), 200);
    }
    assert_eq!(s.entra.token_requests(), 1);
    let received = s.fake.requests();
    assert!(received.iter().all(|r| {
        r.token_subject
            .as_deref()
            .is_some_and(|t| t.starts_with("managed-identity"))
    }));
    assert!(received.iter().all(|r| r.header("api-key").is_none()));
}

#[actix_web::test]
async fn the_token_is_fetched_at_start_before_any_request() {
    let s = setup().await;
    let _running = s.start(json!({"mode": "managedIdentity"}), &[]);
    eventually(
        "the first token request",
        Duration::from_secs(5),
        || async { s.entra.token_requests() == 1 },
    )
    .await;
}

#[actix_web::test]
async fn a_service_principal_uses_the_client_credentials_flow_over_tls() {
    let s = setup().await;
    s.entra.register_client("tenant-a", "client-a", "secret-a");
    let running = s.start(
        json!({"mode": "servicePrincipal", "tenantId": "tenant-a", "clientId": "client-a",
               "clientSecret": "secret-a", "authorityHost": s.entra.authority_host()}),
        &[],
    );
    let http = reqwest::Client::new();
    assert_eq!(chat(&http, &running, "gpt-5-mini").await.status(), 200);
    assert_eq!(
        s.fake.requests()[0].token_subject.as_deref(),
        Some("client-a")
    );
}

#[actix_web::test]
async fn a_wrong_client_secret_is_a_clear_502_without_the_secret() {
    let s = setup().await;
    s.entra.register_client("tenant-a", "client-a", "secret-a");
    let running = s.start(
        json!({"mode": "servicePrincipal", "tenantId": "tenant-a", "clientId": "client-a",
               "clientSecret": "wrong-secret-value", "authorityHost": s.entra.authority_host()}),
        &[],
    );
    let (status, error) = chat_traced(&running, "auth-trace-1").await;
    assert_eq!(status, 502);
    assert_eq!(error["code"], "upstream_auth_failed");
    assert_eq!(
        error["message"],
        format!("{CREDENTIALS_FAILED} (request id auth-trace-1)")
    );
    assert_eq!(s.fake.request_count(), 0);

    // The operator finds the whole cause in the request's log line.
    let cause = logged_error(&running, "auth-trace-1");
    assert!(cause.contains("servicePrincipal"), "{cause}");
    assert!(cause.contains("AADSTS"), "{cause}");
    assert!(!cause.contains("wrong-secret-value"), "{cause}");
}

#[actix_web::test]
async fn workload_identity_exchanges_the_federated_token_file() {
    let s = setup().await;
    s.entra
        .register_federated("tenant-w", "client-w", "federated-assertion-1");
    let token_file = s.dir.path().join("federated-token");
    std::fs::write(&token_file, "federated-assertion-1").expect("token file");
    let running = s.start(
        json!({"mode": "workloadIdentity", "authorityHost": s.entra.authority_host()}),
        &[
            (
                "AZURE_FEDERATED_TOKEN_FILE",
                token_file.display().to_string(),
            ),
            ("AZURE_CLIENT_ID", "client-w".into()),
            ("AZURE_TENANT_ID", "tenant-w".into()),
        ],
    );
    let http = reqwest::Client::new();
    assert_eq!(chat(&http, &running, "gpt-5-mini").await.status(), 200);
    assert_eq!(
        s.fake.requests()[0].token_subject.as_deref(),
        Some("client-w")
    );
}

#[actix_web::test]
async fn azure_cli_mode_uses_the_signed_in_account() {
    let s = setup().await;
    let (token, expires_on) = s.entra.issue_token("cli");
    let az = s.dir.path().join("az");
    std::fs::write(
        &az,
        format!(
            "#!/bin/sh\nprintf '%s' '{{\"accessToken\":\"{token}\",\"expiresOn\":\"2099-01-01 00:00:00.000000\",\"expires_on\":{expires_on},\"subscription\":\"s\",\"tenant\":\"t\",\"tokenType\":\"Bearer\"}}'\n"
        ),
    )
    .expect("az script");
    std::process::Command::new("chmod")
        .args(["+x", &az.display().to_string()])
        .status()
        .expect("chmod");
    let running = s.start(json!({"mode": "azureCli"}), &[]);
    let http = reqwest::Client::new();
    assert_eq!(chat(&http, &running, "gpt-5-mini").await.status(), 200);
    assert_eq!(s.fake.requests()[0].token_subject.as_deref(), Some("cli"));
}

#[actix_web::test]
async fn the_default_chain_takes_the_first_credential_that_works() {
    let s = setup().await;
    let running = s.start(json!({"mode": "servicePrincipal"}), &[]);
    let http = reqwest::Client::new();
    assert_eq!(chat(&http, &running, "gpt-5-mini").await.status(), 200);
    assert!(
        s.fake.requests()[0]
            .token_subject
            .as_deref()
            .is_some_and(|t| t.starts_with("managed-identity"))
    );
}

#[actix_web::test]
async fn the_default_chain_reports_why_each_credential_was_skipped() {
    let s = setup().await;
    // A managed-identity endpoint that refuses connections, and no `az` on PATH.
    let closed = free_port();
    let running = s.start(
        json!({"mode": "default"}),
        &[(
            "IDENTITY_ENDPOINT",
            format!("http://127.0.0.1:{closed}/msi/token"),
        )],
    );
    let (status, error) = chat_traced(&running, "chain-trace-1").await;
    assert_eq!(status, 502);
    assert_eq!(
        error["message"],
        format!("{CREDENTIALS_FAILED} (request id chain-trace-1)")
    );
    let cause = logged_error(&running, "chain-trace-1");
    for link in [
        "environment client secret",
        "workload identity",
        "managed identity",
        "Azure CLI",
    ] {
        assert!(cause.contains(link), "{link} missing from: {cause}");
    }
}

#[actix_web::test]
async fn a_token_expiring_during_steady_traffic_is_refreshed_once_without_a_failure() {
    let s = setup().await;
    s.entra.set_lifetime_secs(6);
    let running = s.start(json!({"mode": "managedIdentity"}), &[]);
    let http = reqwest::Client::new();
    eventually(
        "the first token request",
        Duration::from_secs(5),
        || async { s.entra.token_requests() == 1 },
    )
    .await;
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut refresh_sent_at = None;
    while started.elapsed() < Duration::from_millis(4500) {
        let sent = Instant::now();
        assert_eq!(chat(&http, &running, "gpt-5-mini").await.status(), 200);
        latencies.push(sent.elapsed());
        if refresh_sent_at.is_none() && s.entra.token_requests() == 2 {
            refresh_sent_at = Some(latencies.len());
        }
    }
    assert_eq!(
        s.entra.token_requests(),
        2,
        "one refresh in 4.5 s of a 6 s token"
    );
    // Latency of the requests around the refresh against the whole run.
    let around = refresh_sent_at
        .map(|i| latencies[i.saturating_sub(20)..(i + 20).min(latencies.len())].to_vec());
    let mut sorted = latencies.clone();
    sorted.sort();
    let p99 = sorted[sorted.len() * 99 / 100];
    let around_max = around.and_then(|a| a.into_iter().max());
    eprintln!(
        "steady traffic across a refresh: {} requests, p50 {:?}, p99 {:?}, worst of the 40 around the refresh {:?}",
        sorted.len(),
        sorted[sorted.len() / 2],
        p99,
        around_max
    );
}

#[actix_web::test]
async fn a_burst_without_a_token_costs_one_token_request() {
    let s = setup().await;
    s.entra.set_delay_ms(800);
    let running = s.start(json!({"mode": "managedIdentity"}), &[]);
    let http = reqwest::Client::new();
    let burst = (0..200).map(|_| chat(&http, &running, "gpt-5-mini"));
    let responses = futures_util::future::join_all(burst).await;
    assert!(responses.iter().all(|r| r.status() == 200));
    assert_eq!(s.entra.token_requests(), 1);
}

#[actix_web::test]
async fn an_upstream_401_drops_the_token_and_retries_once_with_a_fresh_one() {
    let s = setup().await;
    let running = s.start(json!({"mode": "managedIdentity"}), &[]);
    let http = reqwest::Client::new();
    assert_eq!(chat(&http, &running, "gpt-5-mini").await.status(), 200);
    s.entra.revoke_all();
    let burst = (0..50).map(|_| chat(&http, &running, "gpt-5-mini"));
    let responses = futures_util::future::join_all(burst).await;
    assert!(responses.iter().all(|r| r.status() == 200));
    assert_eq!(
        s.entra.token_requests(),
        2,
        "one fresh token for the whole burst"
    );
}

#[actix_web::test]
async fn the_token_service_down_is_a_502_then_recovers_without_a_restart() {
    let s = setup().await;
    s.entra.set_down(true);
    let running = s.start(json!({"mode": "managedIdentity"}), &[]);
    let http = reqwest::Client::new();
    let (status, error) = error_of(chat(&http, &running, "gpt-5-mini").await).await;
    assert_eq!(status, 502);
    assert_eq!(error["code"], "upstream_auth_failed");
    let message = error["message"].as_str().expect("message");
    assert!(
        message.starts_with(&format!("{CREDENTIALS_FAILED} (request id ")),
        "{message}"
    );
    s.entra.set_down(false);
    eventually(
        "requests to succeed once the token service is back",
        Duration::from_secs(20),
        || async { chat(&http, &running, "gpt-5-mini").await.status() == 200 },
    )
    .await;
}

#[actix_web::test]
async fn two_upstreams_in_two_tenants_use_their_own_credentials() {
    let s = setup().await;
    s.entra.register_client("tenant-1", "client-1", "secret-1");
    s.entra.register_client("tenant-2", "client-2", "secret-2");
    let mut config = s.config(json!({"mode": "managedIdentity"}));
    let host = s.entra.authority_host();
    config["upstreams"][0]["auth"] = json!({"mode": "servicePrincipal", "tenantId": "tenant-1",
        "clientId": "client-1", "clientSecret": "secret-1", "authorityHost": host});
    config["upstreams"][1]["auth"] = json!({"mode": "servicePrincipal", "tenantId": "tenant-2",
        "clientId": "client-2", "clientSecret": "secret-2", "authorityHost": host});
    config["upstreams"][1]["baseUrl"] = json!(s.fake.base_url());
    let path = s.config_path();
    write_json(&path, &config);
    let running = start_binary_with(
        &path,
        &[
            ("SSL_CERT_FILE", s.ca_file.clone()),
            ("PATH", "/usr/bin:/bin".into()),
        ],
    );
    let http = reqwest::Client::new();
    assert_eq!(chat(&http, &running, "gpt-5-mini").await.status(), 200);
    assert_eq!(chat(&http, &running, "legacy-model").await.status(), 200);
    let subjects: Vec<_> = s
        .fake
        .requests()
        .into_iter()
        .map(|r| r.token_subject)
        .collect();
    assert_eq!(
        subjects,
        vec![Some("client-1".to_string()), Some("client-2".to_string())]
    );
}

#[actix_web::test]
async fn a_reload_keeps_the_token_unless_the_auth_block_changed() {
    let s = setup().await;
    s.entra.register_client("tenant-a", "client-a", "secret-a");
    s.entra.register_client("tenant-a", "client-b", "secret-b");
    let auth = json!({"mode": "servicePrincipal", "tenantId": "tenant-a", "clientId": "client-a",
                      "clientSecret": "secret-a", "authorityHost": s.entra.authority_host()});
    let running = s.start(auth.clone(), &[]);
    let http = reqwest::Client::new();
    assert_eq!(chat(&http, &running, "gpt-5-mini").await.status(), 200);
    assert_eq!(s.entra.token_requests(), 1);

    let mut config = s.config(auth.clone());
    config["models"]
        .as_array_mut()
        .expect("models")
        .push(json!({"id": "added", "upstream": "fake"}));
    write_json(&s.config_path(), &config);
    eventually(
        "the added model to be served",
        Duration::from_secs(5),
        || async { chat(&http, &running, "added").await.status() == 200 },
    )
    .await;
    assert_eq!(
        s.entra.token_requests(),
        1,
        "an unrelated edit fetched a new token"
    );

    let mut changed = auth;
    changed["clientId"] = json!("client-b");
    changed["clientSecret"] = json!("secret-b");
    let mut config = s.config(changed);
    config["models"]
        .as_array_mut()
        .expect("models")
        .push(json!({"id": "added", "upstream": "fake"}));
    write_json(&s.config_path(), &config);
    eventually(
        "the new credential to be used",
        Duration::from_secs(5),
        || async {
            chat(&http, &running, "gpt-5-mini").await.status() == 200
                && s.fake
                    .requests()
                    .last()
                    .and_then(|r| r.token_subject.clone())
                    .as_deref()
                    == Some("client-b")
        },
    )
    .await;
    assert_eq!(s.entra.token_requests_for("client-a"), 1);
}
