//! Entra ID token sources, one per `auth.mode`, built on `azure_identity`. A fresh credential
//! object is built for every fetch so that the crate's own cache never hands back a token this
//! gateway has decided to replace. Errors name the mode and cause, never a secret or a token.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::{ClientOptions, RetryOptions, Transport};
use azure_identity::{
    AzureCliCredential, AzureCliCredentialOptions, ClientAssertionCredentialOptions,
    ClientSecretCredential, ClientSecretCredentialOptions, ManagedIdentityCredential,
    ManagedIdentityCredentialOptions, UserAssignedId, WorkloadIdentityCredential,
    WorkloadIdentityCredentialOptions,
};

use super::http::TokenHttpClient;
use crate::config::{
    self, AuthMode, ClientSecret, DefaultChain, EntraAuth, EntraIdentity, ServicePrincipal,
};

/// A token as the cache keeps it.
pub struct EntraToken {
    pub token: String,
    pub expires_at: SystemTime,
}

/// The links of the `default` chain, in the order they are tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    EnvironmentSecret,
    WorkloadIdentity,
    ManagedIdentity,
    AzureCli,
}

impl Link {
    const CHAIN: [Link; 4] = [
        Link::EnvironmentSecret,
        Link::WorkloadIdentity,
        Link::ManagedIdentity,
        Link::AzureCli,
    ];

    fn name(self) -> &'static str {
        match self {
            Link::EnvironmentSecret => "environment client secret",
            Link::WorkloadIdentity => "workload identity",
            Link::ManagedIdentity => "managed identity",
            Link::AzureCli => "Azure CLI",
        }
    }
}

/// How long one link of the default chain may take before the next is tried (outside Azure the
/// managed-identity probe would otherwise retry for over a minute).
const CHAIN_LINK_TIMEOUT: Duration = Duration::from_secs(8);

pub struct EntraSource {
    auth: EntraAuth,
    /// The link of the default chain that last worked; tried first next time.
    chosen: Mutex<Option<Link>>,
}

impl EntraSource {
    pub fn new(auth: EntraAuth) -> EntraSource {
        EntraSource {
            auth,
            chosen: Mutex::new(None),
        }
    }

    pub fn mode(&self) -> AuthMode {
        self.auth.identity.mode()
    }

    /// Fetches a new token for `auth.scope`.
    pub async fn fetch(&self) -> Result<EntraToken, String> {
        match &self.auth.identity {
            EntraIdentity::ServicePrincipal(ServicePrincipal::ClientSecret(client)) => {
                self.token_from(self.client_secret(client)?).await
            }
            EntraIdentity::ServicePrincipal(ServicePrincipal::DefaultChain(chain))
            | EntraIdentity::Default(chain) => self.fetch_default_chain(chain).await,
            EntraIdentity::ManagedIdentity { client_id } => {
                self.token_from(self.managed_identity(client_id.as_deref())?)
                    .await
            }
            EntraIdentity::WorkloadIdentity {
                tenant_id,
                client_id,
            } => {
                self.token_from(self.workload_identity(tenant_id.as_deref(), client_id.as_deref())?)
                    .await
            }
            EntraIdentity::AzureCli { tenant_id } => {
                self.token_from(self.azure_cli(tenant_id.as_deref())?).await
            }
        }
    }

    async fn fetch_default_chain(&self, chain: &DefaultChain) -> Result<EntraToken, String> {
        let chosen = *self.chosen.lock().unwrap_or_else(|e| e.into_inner());
        let order = chosen
            .into_iter()
            .chain(Link::CHAIN.into_iter().filter(|l| Some(*l) != chosen));
        let mut skipped = Vec::new();
        for link in order {
            let attempt = match self.link_credential(link, chain) {
                Ok(credential) => {
                    match tokio::time::timeout(CHAIN_LINK_TIMEOUT, self.token_from(credential))
                        .await
                    {
                        Ok(result) => result,
                        Err(_) => Err(format!(
                            "no answer within {} s",
                            CHAIN_LINK_TIMEOUT.as_secs()
                        )),
                    }
                }
                Err(reason) => Err(reason),
            };
            match attempt {
                Ok(token) => {
                    *self.chosen.lock().unwrap_or_else(|e| e.into_inner()) = Some(link);
                    return Ok(token);
                }
                Err(reason) => skipped.push(format!("{}: {reason}", link.name())),
            }
        }
        Err(format!(
            "no credential in the default chain worked ({})",
            skipped.join("; ")
        ))
    }

    fn link_credential(
        &self,
        link: Link,
        chain: &DefaultChain,
    ) -> Result<Arc<dyn TokenCredential>, String> {
        match link {
            Link::EnvironmentSecret => {
                let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
                let (Some(tenant_id), Some(client_id), Some(secret)) = (
                    var("AZURE_TENANT_ID"),
                    var("AZURE_CLIENT_ID"),
                    var("AZURE_CLIENT_SECRET"),
                ) else {
                    return Err(
                        "AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET are not all set"
                            .into(),
                    );
                };
                self.client_secret(&ClientSecret {
                    tenant_id,
                    client_id,
                    secret: config::Secret::new(secret),
                })
            }
            Link::WorkloadIdentity => {
                if std::env::var_os("AZURE_FEDERATED_TOKEN_FILE").is_none() {
                    return Err("AZURE_FEDERATED_TOKEN_FILE is not set".into());
                }
                self.workload_identity(chain.tenant_id.as_deref(), chain.client_id.as_deref())
            }
            Link::ManagedIdentity => {
                self.managed_identity(chain.managed_identity_client_id.as_deref())
            }
            Link::AzureCli => self.azure_cli(chain.tenant_id.as_deref()),
        }
    }

    fn client_secret(&self, client: &ClientSecret) -> Result<Arc<dyn TokenCredential>, String> {
        let credential = ClientSecretCredential::new(
            &client.tenant_id,
            client.client_id.clone(),
            Secret::new(client.secret.expose().to_string()),
            Some(ClientSecretCredentialOptions {
                client_options: self.client_options(),
            }),
        )
        .map_err(describe)?;
        Ok(credential)
    }

    /// `client_id`: a user-assigned identity; `None` for the system-assigned one.
    fn managed_identity(
        &self,
        client_id: Option<&str>,
    ) -> Result<Arc<dyn TokenCredential>, String> {
        let credential = ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
            user_assigned_id: client_id.map(|id| UserAssignedId::ClientId(id.to_string())),
            client_options: self.client_options(),
        }))
        .map_err(describe)?;
        Ok(credential)
    }

    fn workload_identity(
        &self,
        tenant_id: Option<&str>,
        client_id: Option<&str>,
    ) -> Result<Arc<dyn TokenCredential>, String> {
        let credential = WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
            credential_options: ClientAssertionCredentialOptions {
                client_options: self.client_options(),
            },
            client_id: client_id.map(str::to_string),
            tenant_id: tenant_id.map(str::to_string),
            ..Default::default()
        }))
        .map_err(describe)?;
        Ok(credential)
    }

    fn azure_cli(&self, tenant_id: Option<&str>) -> Result<Arc<dyn TokenCredential>, String> {
        let credential = AzureCliCredential::new(Some(AzureCliCredentialOptions {
            tenant_id: tenant_id.map(str::to_string),
            ..Default::default()
        }))
        .map_err(describe)?;
        Ok(credential)
    }

    fn client_options(&self) -> ClientOptions {
        let cloud = self.auth.authority_host.as_ref().map(|authority_host| {
            let mut custom = CustomConfiguration::default();
            custom.authority_host = authority_host.clone();
            Arc::new(CloudConfiguration::Custom(custom))
        });
        ClientOptions {
            transport: Some(Transport::new(TokenHttpClient::shared())),
            // The token cache retries with its own backoff; a failed call returns at once.
            retry: RetryOptions::none(),
            cloud,
            ..Default::default()
        }
    }

    async fn token_from(&self, credential: Arc<dyn TokenCredential>) -> Result<EntraToken, String> {
        let token = credential
            .get_token(&[self.auth.scope.as_str()], None)
            .await
            .map_err(describe)?;
        let expires_at = SystemTime::UNIX_EPOCH
            + Duration::from_secs(u64::try_from(token.expires_on.unix_timestamp()).unwrap_or(0));
        Ok(EntraToken {
            token: token.token.secret().to_string(),
            expires_at,
        })
    }
}

/// An azure_core error as one line for operators (logs, recent requests, the admin API's
/// verification); never sent to API clients.
fn describe(err: azure_core::Error) -> String {
    err.to_string().replace(['\n', '\r'], " ")
}
