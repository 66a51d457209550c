//! State shared by a fake Entra's workers and its test handle: the directory of registered
//! service principals and federated credentials, the token ledger, the switches (down, delay,
//! lifetime) and the log of token requests. The log never holds a secret or an assertion.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use super::ledger::Ledger;
use crate::ids;

/// `expires_in` of issued tokens unless set otherwise: Entra's usual hour.
pub const DEFAULT_LIFETIME_SECS: u64 = 3600;

/// Which protocol a token request spoke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenFlow {
    /// `GET /msi/token` on the App Service managed identity endpoint.
    ManagedIdentity,
    /// Client credentials with a `client_secret` (a service principal).
    ClientSecret,
    /// Client credentials with a `client_assertion` (workload identity federation).
    ClientAssertion,
    /// A request to the token endpoint carrying neither credential (or not a POST).
    Other,
}

/// One token request as the fake answered it. Secrets and assertions are never kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRequest {
    pub flow: TokenFlow,
    /// The tenant in the path of the token endpoint; `None` for managed identity.
    pub tenant_id: Option<String>,
    /// The `client_id` form field, or the user-assigned identity a managed identity request
    /// named (`client_id`, `object_id`, `principal_id` or `mi_res_id`).
    pub client_id: Option<String>,
    /// The managed identity `resource`, or the client credentials `scope`.
    pub resource: Option<String>,
    /// HTTP status of the answer.
    pub status: u16,
    /// Subject of the token issued; `None` when the request was refused.
    pub subject: Option<String>,
}

/// Why the directory refused a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    UnknownTenant,
    UnknownClient,
    WrongSecret,
    WrongAssertion,
}

/// The credential a client presented.
#[derive(Clone, Copy, Debug)]
pub enum Credential<'a> {
    Secret(&'a str),
    Assertion(&'a str),
}

/// What a registered application may authenticate with.
#[derive(Debug, Default)]
struct App {
    secrets: Vec<String>,
    assertions: Vec<String>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is a single insert, push or read: a panic elsewhere leaves the data
    // consistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// State behind every [`crate::FakeEntra`] and its server workers.
#[derive(Debug)]
pub struct EntraState {
    pub ledger: Arc<Ledger>,
    /// The secret the managed identity endpoint requires in `X-IDENTITY-HEADER`.
    pub identity_header: String,
    /// `client_id` of the system-assigned managed identity.
    pub system_client_id: String,
    /// Tenant id → client id → credentials.
    directory: RwLock<HashMap<String, HashMap<String, App>>>,
    down: AtomicBool,
    delay_ms: AtomicU64,
    lifetime_secs: AtomicU64,
    received: AtomicUsize,
    received_by: Mutex<HashMap<String, usize>>,
    log: Mutex<Vec<TokenRequest>>,
}

impl Default for EntraState {
    fn default() -> Self {
        Self::new()
    }
}

impl EntraState {
    pub fn new() -> Self {
        let mut identity_header = Vec::with_capacity(32);
        ids::push_hex(&mut identity_header, 32);
        Self {
            ledger: Arc::default(),
            identity_header: String::from_utf8(identity_header).expect("hex digits are UTF-8"),
            system_client_id: String::from_utf8(ids::uuid_v4().to_vec()).expect("a UUID is ASCII"),
            directory: RwLock::default(),
            down: AtomicBool::new(false),
            delay_ms: AtomicU64::new(0),
            lifetime_secs: AtomicU64::new(DEFAULT_LIFETIME_SECS),
            received: AtomicUsize::new(0),
            received_by: Mutex::default(),
            log: Mutex::default(),
        }
    }

    pub fn register_secret(&self, tenant_id: &str, client_id: &str, secret: &str) {
        self.register(tenant_id, client_id, |app| {
            app.secrets.push(secret.to_owned());
        });
    }

    pub fn register_assertion(&self, tenant_id: &str, client_id: &str, assertion: &str) {
        self.register(tenant_id, client_id, |app| {
            app.assertions.push(assertion.to_owned());
        });
    }

    fn register(&self, tenant_id: &str, client_id: &str, add: impl FnOnce(&mut App)) {
        let mut directory = self
            .directory
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let app = directory
            .entry(tenant_id.to_owned())
            .or_default()
            .entry(client_id.to_owned())
            .or_default();
        add(app);
    }

    pub fn tenant_exists(&self, tenant_id: &str) -> bool {
        self.directory
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(tenant_id)
    }

    /// Whether `client_id` of `tenant_id` may authenticate with `credential`.
    pub fn verify(
        &self,
        tenant_id: &str,
        client_id: &str,
        credential: Credential<'_>,
    ) -> Result<(), Refusal> {
        let directory = self
            .directory
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let tenant = directory.get(tenant_id).ok_or(Refusal::UnknownTenant)?;
        let app = tenant.get(client_id).ok_or(Refusal::UnknownClient)?;
        match credential {
            Credential::Secret(secret) if app.secrets.iter().any(|s| s == secret) => Ok(()),
            Credential::Secret(_) => Err(Refusal::WrongSecret),
            Credential::Assertion(assertion) if app.assertions.iter().any(|a| a == assertion) => {
                Ok(())
            }
            Credential::Assertion(_) => Err(Refusal::WrongAssertion),
        }
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    pub fn set_delay_ms(&self, ms: u64) {
        self.delay_ms.store(ms, Ordering::SeqCst);
    }

    pub fn delay(&self) -> Duration {
        Duration::from_millis(self.delay_ms.load(Ordering::SeqCst))
    }

    pub fn set_lifetime_secs(&self, secs: u64) {
        self.lifetime_secs.store(secs, Ordering::SeqCst);
    }

    pub fn lifetime(&self) -> Duration {
        Duration::from_secs(self.lifetime_secs.load(Ordering::SeqCst))
    }

    /// Counts a token request on arrival, under each of `keys` (a client id, a subject).
    pub fn count_received(&self, keys: &[&str]) {
        self.received.fetch_add(1, Ordering::SeqCst);
        let mut received_by = lock(&self.received_by);
        for (i, key) in keys.iter().enumerate() {
            if !keys[..i].contains(key) {
                *received_by.entry((*key).to_owned()).or_default() += 1;
            }
        }
    }

    pub fn received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }

    pub fn received_for(&self, key: &str) -> usize {
        lock(&self.received_by).get(key).copied().unwrap_or(0)
    }

    pub fn log(&self, request: TokenRequest) {
        lock(&self.log).push(request);
    }

    pub fn requests(&self) -> Vec<TokenRequest> {
        lock(&self.log).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registered_secret_is_accepted_and_any_other_refused() {
        let state = EntraState::new();
        state.register_secret("tenant", "app", "s3cret");
        assert_eq!(
            state.verify("tenant", "app", Credential::Secret("s3cret")),
            Ok(())
        );
        assert_eq!(
            state.verify("tenant", "app", Credential::Secret("nope")),
            Err(Refusal::WrongSecret)
        );
        assert_eq!(
            state.verify("tenant", "app", Credential::Assertion("s3cret")),
            Err(Refusal::WrongAssertion)
        );
        assert_eq!(
            state.verify("tenant", "other", Credential::Secret("s3cret")),
            Err(Refusal::UnknownClient)
        );
        assert_eq!(
            state.verify("elsewhere", "app", Credential::Secret("s3cret")),
            Err(Refusal::UnknownTenant)
        );
    }

    #[test]
    fn a_client_may_hold_several_federated_assertions() {
        let state = EntraState::new();
        state.register_assertion("t", "wi", "jwt-1");
        state.register_assertion("t", "wi", "jwt-2");
        assert_eq!(
            state.verify("t", "wi", Credential::Assertion("jwt-1")),
            Ok(())
        );
        assert_eq!(
            state.verify("t", "wi", Credential::Assertion("jwt-2")),
            Ok(())
        );
    }

    #[test]
    fn a_request_counts_once_under_each_distinct_key() {
        let state = EntraState::new();
        state.count_received(&["app", "app"]);
        state.count_received(&["mi-client", "managed-identity:mi-client"]);
        state.count_received(&[]);
        assert_eq!(state.received(), 3);
        assert_eq!(state.received_for("app"), 1);
        assert_eq!(state.received_for("mi-client"), 1);
        assert_eq!(state.received_for("managed-identity:mi-client"), 1);
        assert_eq!(state.received_for("nobody"), 0);
    }

    #[test]
    fn each_fake_has_its_own_identity_header_secret() {
        assert_ne!(
            EntraState::new().identity_header,
            EntraState::new().identity_header
        );
    }
}
