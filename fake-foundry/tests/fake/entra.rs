//! Black-box tests of `FakeEntra`: real HTTP and HTTPS clients trusting only its test CA, and the
//! `azure_identity` credentials themselves pointed at it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{Secret, TokenCredential};
use azure_core::error::{Error, ErrorKind};
use azure_core::http::headers::{HeaderName, HeaderValue, Headers};
use azure_core::http::{
    AsyncRawResponse, Body, ClientOptions, HttpClient, Method, Request, RetryOptions, Transport,
};
use azure_identity::{
    ClientAssertionCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use fake_foundry::entra::{MI_SUBJECT, TOKEN_PREFIX, TokenFlow};
use fake_foundry::{FakeEntra, FakeFoundry};
use serde_json::{Value, json};

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "0b1e7c9a-5f0c-4a55-9a1e-3c1d2b9f4e11";
const SECRET: &str = "Xy8Q~fake.secret+/=value";
const SCOPE: &str = "https://cognitiveservices.azure.com/.default";
const RESOURCE: &str = "https://cognitiveservices.azure.com";
const CHAT_PATH: &str = "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21";

/// A client that trusts the fake's test CA and nothing else.
fn tls_client(entra: &FakeEntra) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(entra.ca_pem().as_bytes()).expect("the CA is PEM");
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("build the TLS client")
}

async fn post_form(
    client: &reqwest::Client,
    url: &str,
    pairs: &[(&str, &str)],
) -> (u16, Value, String) {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let response = client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("send the token request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("read the token response");
    let json = serde_json::from_str(&text).expect("a JSON body");
    (status, json, text)
}

fn secret_form(secret: &str) -> [(&'static str, &str); 4] {
    [
        ("client_id", CLIENT),
        ("client_secret", secret),
        ("grant_type", "client_credentials"),
        ("scope", SCOPE),
    ]
}

async fn managed_identity_get(entra: &FakeEntra, header: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .get(entra.identity_endpoint())
        .query(&[("api-version", "2019-08-01"), ("resource", RESOURCE)]);
    if let Some(header) = header {
        request = request.header("X-IDENTITY-HEADER", header);
    }
    let response = request.send().await.expect("send the identity request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

async fn chat(foundry: &FakeFoundry, token: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}{CHAT_PATH}", foundry.base_url()))
        .json(&json!({"messages": [{"role": "user", "content": "hi"}]}));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("send the chat request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

#[tokio::test]
async fn client_credentials_over_tls_issue_a_token_the_checker_accepts() {
    let entra = FakeEntra::start().await;
    entra.register_client(TENANT, CLIENT, SECRET);
    let client = tls_client(&entra);

    let (status, token, _) =
        post_form(&client, &entra.token_endpoint(TENANT), &secret_form(SECRET)).await;

    assert_eq!(status, 200);
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["expires_in"], 3600);
    assert_eq!(token["ext_expires_in"], 3600);
    let access_token = token["access_token"].as_str().expect("a string token");
    assert!(access_token.starts_with(TOKEN_PREFIX));
    assert_eq!(entra.checker().check(access_token).as_deref(), Some(CLIENT));
    assert_eq!(
        entra
            .checker()
            .requiring_audience(RESOURCE)
            .check(access_token)
            .as_deref(),
        Some(CLIENT)
    );
    assert_eq!(entra.token_requests(), 1);
    assert_eq!(entra.token_requests_for(CLIENT), 1);
    let log = entra.requests();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].flow, TokenFlow::ClientSecret);
    assert_eq!(log[0].tenant_id.as_deref(), Some(TENANT));
    assert_eq!(log[0].resource.as_deref(), Some(SCOPE));
}

#[tokio::test]
async fn a_wrong_client_secret_is_refused_like_entra_without_echoing_it() {
    let entra = FakeEntra::start().await;
    entra.register_client(TENANT, CLIENT, SECRET);

    let (status, error, text) = post_form(
        &tls_client(&entra),
        &entra.token_endpoint(TENANT),
        &secret_form("not-the-right-secret"),
    )
    .await;

    assert_eq!(status, 401);
    assert_eq!(error["error"], "invalid_client");
    assert_eq!(error["error_codes"], json!([7000215]));
    assert!(
        error["error_description"]
            .as_str()
            .is_some_and(|d| d.starts_with("AADSTS7000215: "))
    );
    assert!(!text.contains("not-the-right-secret"));
    assert_eq!(entra.token_requests(), 1);
    assert_eq!(entra.token_requests_for(CLIENT), 1);
    assert_eq!(entra.requests()[0].subject, None);
}

#[tokio::test]
async fn the_certificate_is_valid_for_localhost_and_127_0_0_1_and_only_with_the_test_ca() {
    let entra = FakeEntra::start().await;
    entra.register_client(TENANT, CLIENT, SECRET);
    let by_ip = entra
        .token_endpoint(TENANT)
        .replace("https://localhost:", "https://127.0.0.1:");

    let (status, _, _) = post_form(&tls_client(&entra), &by_ip, &secret_form(SECRET)).await;
    assert_eq!(status, 200);

    let other_ca = FakeEntra::start().await;
    let untrusting = tls_client(&other_ca);
    let refused = untrusting
        .post(entra.token_endpoint(TENANT))
        .send()
        .await
        .expect_err("a client trusting another CA fails the handshake");
    assert!(refused.is_connect(), "{refused:?}");
}

/// The ALPN protocol the HTTPS listener picks from `offered`, over a raw rustls handshake.
fn negotiated_alpn(entra: &FakeEntra, offered: &[&[u8]]) -> Option<Vec<u8>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};

    let mut roots = rustls::RootCertStore::empty();
    let ca = CertificateDer::from_pem_slice(entra.ca_pem().as_bytes()).expect("the CA is PEM");
    roots.add(ca).expect("the CA is a valid trust anchor");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = offered.iter().map(|p| p.to_vec()).collect();
    let name = ServerName::try_from("localhost").expect("a valid DNS name");
    let mut connection =
        rustls::ClientConnection::new(Arc::new(config), name).expect("a client connection");
    let port: u16 = entra
        .authority_host()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the authority host has a port");
    let mut socket = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    while connection.is_handshaking() {
        connection
            .complete_io(&mut socket)
            .expect("the TLS handshake");
    }
    connection.alpn_protocol().map(<[u8]>::to_vec)
}

#[tokio::test]
async fn the_authority_negotiates_h2_when_offered_as_login_microsoftonline_com_does() {
    let entra = FakeEntra::start().await;
    assert_eq!(
        negotiated_alpn(&entra, &[b"h2", b"http/1.1"]).as_deref(),
        Some(&b"h2"[..])
    );
    assert_eq!(
        negotiated_alpn(&entra, &[b"http/1.1"]).as_deref(),
        Some(&b"http/1.1"[..])
    );
}

#[tokio::test]
async fn the_managed_identity_endpoint_issues_tokens_only_with_the_identity_header() {
    let entra = FakeEntra::start().await;
    assert!(entra.identity_endpoint().starts_with("http://127.0.0.1:"));
    assert!(entra.identity_endpoint().ends_with("/msi/token"));

    let (status, error) = managed_identity_get(&entra, None).await;
    assert_eq!(status, 401);
    assert_eq!(error["statusCode"], 401);
    let (status, _) = managed_identity_get(&entra, Some("guess")).await;
    assert_eq!(status, 401);

    let (status, token) = managed_identity_get(&entra, Some(&entra.identity_header())).await;
    assert_eq!(status, 200);
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["resource"], RESOURCE);
    assert_eq!(
        token["client_id"].as_str(),
        Some(entra.system_identity_client_id().as_str())
    );
    let expires_on: u64 = token["expires_on"]
        .as_str()
        .expect("expires_on is a string")
        .parse()
        .expect("of Unix seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    assert!((now + 3500..=now + 3600).contains(&expires_on));
    let access_token = token["access_token"].as_str().expect("a string token");
    assert_eq!(
        entra.checker().check(access_token).as_deref(),
        Some(MI_SUBJECT)
    );
    assert_eq!(entra.token_requests(), 3);
    assert_eq!(entra.token_requests_for(MI_SUBJECT), 3);
}

#[tokio::test]
async fn a_down_entra_answers_503_on_both_endpoints_until_it_is_back() {
    let entra = FakeEntra::start().await;
    entra.register_client(TENANT, CLIENT, SECRET);
    let client = tls_client(&entra);
    entra.set_down(true);

    let (status, error, _) =
        post_form(&client, &entra.token_endpoint(TENANT), &secret_form(SECRET)).await;
    assert_eq!(status, 503);
    assert!(
        error["error_description"]
            .as_str()
            .is_some_and(|d| d.starts_with("AADSTS"))
    );
    let (status, error) = managed_identity_get(&entra, Some(&entra.identity_header())).await;
    assert_eq!(status, 503);
    assert!(error["error_codes"].is_array());

    entra.set_down(false);
    let (status, _, _) =
        post_form(&client, &entra.token_endpoint(TENANT), &secret_form(SECRET)).await;
    assert_eq!(status, 200);
    assert_eq!(entra.token_requests(), 3);
}

#[tokio::test]
async fn token_answers_wait_for_the_configured_delay_and_use_the_configured_lifetime() {
    let entra = FakeEntra::start().await;
    entra.register_client(TENANT, CLIENT, SECRET);
    entra.set_delay_ms(300);
    entra.set_lifetime_secs(600);
    let client = tls_client(&entra);

    let started = Instant::now();
    let (status, token, _) =
        post_form(&client, &entra.token_endpoint(TENANT), &secret_form(SECRET)).await;

    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(status, 200);
    assert_eq!(token["expires_in"], 600);
}

#[tokio::test]
async fn fake_foundry_accepts_issued_tokens_and_refuses_them_once_revoked() {
    let entra = FakeEntra::start().await;
    let foundry = FakeFoundry::start().await;
    foundry.set_token_checker(Some(entra.checker()));
    let (cli_token, expires_on) = entra.issue_token("cli");
    assert!(expires_on > 0);

    let (status, _) = chat(&foundry, Some(&cli_token)).await;
    assert_eq!(status, 200);
    let (status, error) = chat(&foundry, None).await;
    assert_eq!(status, 401);
    assert_eq!(error["error"]["code"], "401");
    let (status, _) = chat(&foundry, Some("fake-entra-0123456789abcdef")).await;
    assert_eq!(status, 401);

    entra.revoke_all();
    let (status, error) = chat(&foundry, Some(&cli_token)).await;
    assert_eq!(status, 401);
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Unauthorized. Access token is missing, invalid"))
    );
    let (fresh, _) = entra.issue_token("cli");
    assert_eq!(chat(&foundry, Some(&fresh)).await.0, 200);

    let subjects: Vec<Option<String>> = foundry
        .requests()
        .into_iter()
        .map(|r| r.token_subject)
        .collect();
    assert_eq!(
        subjects,
        [
            Some("cli".to_owned()),
            None,
            None,
            None,
            Some("cli".to_owned())
        ]
    );

    foundry.set_token_checker(None);
    assert_eq!(chat(&foundry, None).await.0, 200);
}

#[tokio::test]
async fn an_expired_token_is_refused_by_the_checker() {
    let entra = FakeEntra::start().await;
    entra.set_lifetime_secs(0);
    let (token, _) = entra.issue_token("cli");
    assert_eq!(entra.checker().check(&token), None);
}

// ---- azure_identity against the fake ----

/// An `azure_core` transport over reqwest trusting the fake's CA (the crate is built without
/// its own reqwest transport in this workspace).
#[derive(Debug)]
struct ReqwestTransport(reqwest::Client);

#[async_trait]
impl HttpClient for ReqwestTransport {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let method = match request.method() {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            other => {
                return Err(Error::with_message(
                    ErrorKind::Other,
                    format!("unexpected method {other:?}"),
                ));
            }
        };
        let mut builder = self.0.request(method, request.url().as_str());
        for (name, value) in request.headers().iter() {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if let Body::Bytes(bytes) = request.body() {
            builder = builder.body(bytes.clone());
        }
        let response = builder
            .send()
            .await
            .map_err(|e| Error::with_error(ErrorKind::Connection, e, "send"))?;
        let status = response.status().as_u16().into();
        let headers: HashMap<HeaderName, HeaderValue> = response
            .headers()
            .iter()
            .filter_map(|(name, value)| {
                let value = value.to_str().ok()?.to_owned();
                Some((
                    HeaderName::from(name.as_str().to_owned()),
                    HeaderValue::from(value),
                ))
            })
            .collect();
        let body = response
            .bytes()
            .await
            .map_err(|e| Error::with_error(ErrorKind::Io, e, "read"))?;
        Ok(AsyncRawResponse::from_bytes(
            status,
            Headers::from(headers),
            body,
        ))
    }
}

fn client_options(entra: &FakeEntra) -> ClientOptions {
    // `CustomConfiguration` is non-exhaustive: no struct expression.
    let mut cloud = CustomConfiguration::default();
    cloud.authority_host = entra.authority_host();
    ClientOptions {
        transport: Some(Transport::new(Arc::new(ReqwestTransport(tls_client(
            entra,
        ))))),
        retry: RetryOptions::none(),
        cloud: Some(Arc::new(CloudConfiguration::Custom(cloud))),
        ..Default::default()
    }
}

#[tokio::test]
async fn azure_identity_client_secret_credential_gets_a_token_from_the_fake() {
    let entra = FakeEntra::start().await;
    entra.register_client(TENANT, CLIENT, SECRET);
    let credential = ClientSecretCredential::new(
        TENANT,
        CLIENT.to_owned(),
        Secret::new(SECRET),
        Some(ClientSecretCredentialOptions {
            client_options: client_options(&entra),
        }),
    )
    .expect("build the credential");

    let token = credential
        .get_token(&[SCOPE], None)
        .await
        .expect("get a token");

    assert_eq!(
        entra.checker().check(token.token.secret()).as_deref(),
        Some(CLIENT)
    );
    let lifetime = token.expires_on - azure_core::time::OffsetDateTime::now_utc();
    assert!(lifetime.whole_seconds() > 3500);

    let wrong = ClientSecretCredential::new(
        TENANT,
        CLIENT.to_owned(),
        Secret::new("wrong"),
        Some(ClientSecretCredentialOptions {
            client_options: client_options(&entra),
        }),
    )
    .expect("build the credential");
    let error = wrong
        .get_token(&[SCOPE], None)
        .await
        .expect_err("a wrong secret is refused");
    assert!(error.to_string().contains("AADSTS7000215"), "{error}");
}

#[tokio::test]
async fn azure_identity_workload_identity_credential_presents_the_federated_token_file() {
    let entra = FakeEntra::start().await;
    let assertion = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2ln";
    entra.register_federated(TENANT, CLIENT, assertion);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let token_file = dir.path().join("azure-identity-token");
    std::fs::write(&token_file, assertion).expect("write the federated token file");
    let credential = WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
        credential_options: ClientAssertionCredentialOptions {
            client_options: client_options(&entra),
        },
        client_id: Some(CLIENT.to_owned()),
        tenant_id: Some(TENANT.to_owned()),
        token_file_path: Some(token_file),
    }))
    .expect("build the credential");

    let token = credential
        .get_token(&[SCOPE], None)
        .await
        .expect("get a token");

    assert_eq!(
        entra.checker().check(token.token.secret()).as_deref(),
        Some(CLIENT)
    );
    assert_eq!(entra.requests()[0].flow, TokenFlow::ClientAssertion);
}

/// Set in the child process that runs the managed identity test with the App Service
/// environment (`azure_identity` reads it from the process environment only).
const CHILD_ENV: &str = "FAKE_ENTRA_MANAGED_IDENTITY_CHILD";
const USER_ASSIGNED: &str = "uami-3f1c";

#[tokio::test]
async fn azure_identity_managed_identity_credential_speaks_the_app_service_protocol() {
    if std::env::var_os(CHILD_ENV).is_some() {
        let options = ManagedIdentityCredentialOptions {
            user_assigned_id: Some(UserAssignedId::ClientId(USER_ASSIGNED.to_owned())),
            client_options: ClientOptions {
                transport: Some(Transport::new(Arc::new(ReqwestTransport(
                    reqwest::Client::new(),
                )))),
                retry: RetryOptions::none(),
                ..Default::default()
            },
        };
        let credential = ManagedIdentityCredential::new(Some(options)).expect("App Service source");
        let token = credential
            .get_token(&[SCOPE], None)
            .await
            .expect("get a token");
        assert!(token.token.secret().starts_with(TOKEN_PREFIX));
        return;
    }

    let entra = FakeEntra::start().await;
    let exe = std::env::current_exe().expect("the test binary's path");
    let output = std::process::Command::new(exe)
        .args([
            "--exact",
            "entra::azure_identity_managed_identity_credential_speaks_the_app_service_protocol",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .env("IDENTITY_ENDPOINT", entra.identity_endpoint())
        .env("IDENTITY_HEADER", entra.identity_header())
        .output()
        .expect("run the child test");
    assert!(
        output.status.success(),
        "child failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    let log = entra.requests();
    assert_eq!(log.len(), 1, "the child asked for exactly one token");
    assert_eq!(log[0].flow, TokenFlow::ManagedIdentity);
    assert_eq!(log[0].status, 200);
    assert_eq!(log[0].client_id.as_deref(), Some(USER_ASSIGNED));
    assert_eq!(log[0].resource.as_deref(), Some(RESOURCE));
    assert_eq!(
        log[0].subject.as_deref(),
        Some(format!("{MI_SUBJECT}:{USER_ASSIGNED}").as_str())
    );
    assert_eq!(entra.token_requests_for(USER_ASSIGNED), 1);
}
