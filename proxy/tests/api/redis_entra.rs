//! Key limits counted in a Redis that, like Azure Cache for Redis with Microsoft Entra
//! authentication, takes an access token as the password: a real `redis-server` whose ACL user
//! accepts exactly the unexpired tokens the fake Entra ID issued to the gateway's identity for
//! the Redis audience. The proxy runs as a process with the managed-identity environment.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fake_foundry::{FakeEntra, FakeFoundry, MI_SUBJECT, TokenChecker};
use proxy::config::REDIS_SCOPE;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::process::{Running, start_binary_with};
use crate::redis_server::RedisServer;

/// The identity's object id, the Redis user the gateway signs in as.
const OBJECT_ID: &str = "5c1d0d6e-gateway";

/// Keeps the ACL user's passwords equal to the tokens Entra ID would vouch for, as Azure Cache
/// for Redis checks them (every 100 ms: a token just issued may be refused a first time, which
/// must not cost the proxy its connection); stops when dropped.
struct TokenAcl {
    stop: Arc<AtomicBool>,
}

impl TokenAcl {
    async fn start(redis: &RedisServer, entra: &FakeEntra) -> TokenAcl {
        let mut connection = connect(redis).await;
        let stop = Arc::new(AtomicBool::new(false));
        let tokens = entra.checker();
        let running = stop.clone();
        sync_acl(&mut connection, &tokens).await;
        tokio::spawn(async move {
            while !running.load(Ordering::Relaxed) {
                sync_acl(&mut connection, &tokens).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        TokenAcl { stop }
    }
}

impl Drop for TokenAcl {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

async fn sync_acl(connection: &mut redis::aio::MultiplexedConnection, tokens: &TokenChecker) {
    let mut command = redis::cmd("ACL");
    command
        .arg("SETUSER")
        .arg(OBJECT_ID)
        .arg("reset")
        .arg("on")
        .arg("~*")
        .arg("&*")
        .arg("+@all");
    for token in tokens.live_tokens(MI_SUBJECT, REDIS_SCOPE) {
        command.arg(format!(">{token}"));
    }
    let _: redis::RedisResult<()> = command.query_async(connection).await;
}

async fn connect(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connection")
}

/// One `INFO` field of the server, as a number; for a command's statistics
/// (`cmdstat_auth`), the calls that succeeded.
async fn info_number(
    connection: &mut redis::aio::MultiplexedConnection,
    section: &str,
    field: &str,
) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query_async(connection)
        .await
        .expect("info");
    let Some(value) = info
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
    else {
        return 0;
    };
    let stat = |name: &str| -> u64 {
        value
            .split(',')
            .find_map(|pair| pair.trim().strip_prefix(name)?.strip_prefix('='))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    if value.contains("calls=") {
        stat("calls") - stat("failed_calls") - stat("rejected_calls")
    } else {
        value.trim().parse().unwrap_or(0)
    }
}

fn start_proxy(dir: &std::path::Path, entra: &FakeEntra, config: &Value) -> Running {
    let path = dir.join("config.json");
    write_json(&path, config);
    start_binary_with(
        &path,
        &[
            ("IDENTITY_ENDPOINT", entra.identity_endpoint()),
            ("IDENTITY_HEADER", entra.identity_header()),
            ("AZURE_CLIENT_ID", String::new()),
            ("AZURE_TENANT_ID", String::new()),
            ("AZURE_CLIENT_SECRET", String::new()),
            ("AZURE_FEDERATED_TOKEN_FILE", String::new()),
        ],
    )
}

async fn limits_status(http: &reqwest::Client, running: &Running) -> Value {
    let status: Value = http
        .get(format!("{}/status", running.ops))
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    status["limits"].clone()
}

#[actix_web::test]
async fn limits_sign_in_to_redis_with_entra_tokens_and_again_on_the_same_connection() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let entra = FakeEntra::start().await;
    // Short-lived tokens: the gateway's cache renews each after three quarters of its life.
    entra.set_lifetime_secs(6);
    let _acl = TokenAcl::start(&redis, &entra).await;
    let fake = FakeFoundry::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = base_config(&fake);
    config["auth"] = json!({"mode": "managedIdentity"});
    config["apiKeys"][0]["limits"] = json!([{"requests": 1000, "per": "1h"}]);
    config["limits"] = json!({
        "redis": format!("redis://{OBJECT_ID}@127.0.0.1:{}", redis.port),
        "redisAuth": "entra",
        // Not the default 250 ms: a call held up on a loaded machine would drop the connection
        // and open another, which this test counts.
        "redisTimeoutMs": 2000
    });
    let running = start_proxy(dir.path(), &entra, &config);
    let http = reqwest::Client::new();
    eventually(
        "the proxy to count in Redis",
        Duration::from_secs(20),
        || async { limits_status(&http, &running).await["redis_reachable"] == true },
    )
    .await;
    assert!(
        entra.token_requests_for(MI_SUBJECT) >= 1,
        "the token came from the managed identity endpoint"
    );
    let chat = || async {
        http.post(running.url("/v1/chat/completions"))
            .bearer_auth(KEY)
            .json(&chat_body(false))
            .send()
            .await
            .expect("chat")
    };
    let response = chat().await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ratelimit-remaining-requests"], "999");

    // Each renewed token signs the same connection in again before the old one expires.
    let watcher = tokio::sync::Mutex::new(connect(&redis).await);
    let read = |section: &'static str, field: &'static str| {
        let watcher = &watcher;
        async move { info_number(&mut *watcher.lock().await, section, field).await }
    };
    let connections = read("stats", "total_connections_received").await;
    let auths = read("commandstats", "cmdstat_auth").await;
    eventually(
        "two more sign-ins with renewed tokens (a refused one does not count)",
        Duration::from_secs(30),
        || async { read("commandstats", "cmdstat_auth").await >= auths + 2 },
    )
    .await;
    assert_eq!(
        read("stats", "total_connections_received").await,
        connections,
        "the proxy signed in again on the connection it had"
    );
    let response = chat().await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ratelimit-remaining-requests"], "998");
    assert_eq!(
        limits_status(&http, &running).await["redis_reachable"],
        true
    );
}
