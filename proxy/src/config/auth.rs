//! `auth` (and an upstream's own `auth`): how the gateway signs its calls to Azure. Parsing
//! turns the flat block of the file into one variant per mode with only the settings it uses,
//! so the credential code never looks at a field its mode ignores.

use std::fmt;

use super::issues::Checker;
use super::raw::RawAuth;
use super::secret::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum AuthMode {
    ServicePrincipal,
    ManagedIdentity,
    WorkloadIdentity,
    AzureCli,
    Default,
    ApiKey,
}

impl AuthMode {
    pub const ALL: [AuthMode; 6] = [
        AuthMode::ServicePrincipal,
        AuthMode::ManagedIdentity,
        AuthMode::WorkloadIdentity,
        AuthMode::AzureCli,
        AuthMode::Default,
        AuthMode::ApiKey,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::ServicePrincipal => "servicePrincipal",
            AuthMode::ManagedIdentity => "managedIdentity",
            AuthMode::WorkloadIdentity => "workloadIdentity",
            AuthMode::AzureCli => "azureCli",
            AuthMode::Default => "default",
            AuthMode::ApiKey => "apiKey",
        }
    }

    pub fn parse(s: &str) -> Option<AuthMode> {
        AuthMode::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

impl fmt::Display for AuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the gateway signs its calls to one upstream: an API key, or an Entra ID token. Each
/// variant carries only the settings its mode uses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AuthConfig {
    /// `mode: "apiKey"`: sent as the `api-key` header; never empty.
    ApiKey { api_key: Secret },
    /// Every other mode: an Entra ID bearer token.
    Entra(EntraAuth),
}

impl AuthConfig {
    pub fn mode(&self) -> AuthMode {
        match self {
            AuthConfig::ApiKey { .. } => AuthMode::ApiKey,
            AuthConfig::Entra(entra) => entra.identity.mode(),
        }
    }
}

/// Who asks Entra ID for a token, for which scope, from which authority.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntraAuth {
    pub identity: EntraIdentity,
    /// An absolute https URL.
    pub scope: String,
    /// Entra ID authority for the token request (an https URL without a trailing slash); `None`
    /// means `AZURE_AUTHORITY_HOST` or the public cloud (https://login.microsoftonline.com).
    pub authority_host: Option<String>,
}

/// The identity behind an Entra ID token, one variant per `auth.mode`. Optional ids are
/// trimmed and never empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EntraIdentity {
    ServicePrincipal(ServicePrincipal),
    /// `managedIdentityClientId` names a user-assigned identity; `None` is the system-assigned one.
    ManagedIdentity {
        client_id: Option<String>,
    },
    WorkloadIdentity {
        tenant_id: Option<String>,
        client_id: Option<String>,
    },
    AzureCli {
        tenant_id: Option<String>,
    },
    Default(DefaultChain),
}

impl EntraIdentity {
    pub fn mode(&self) -> AuthMode {
        match self {
            EntraIdentity::ServicePrincipal(_) => AuthMode::ServicePrincipal,
            EntraIdentity::ManagedIdentity { .. } => AuthMode::ManagedIdentity,
            EntraIdentity::WorkloadIdentity { .. } => AuthMode::WorkloadIdentity,
            EntraIdentity::AzureCli { .. } => AuthMode::AzureCli,
            EntraIdentity::Default(_) => AuthMode::Default,
        }
    }
}

/// `servicePrincipal`: tenantId, clientId and clientSecret all given, or all left empty for the
/// default credential chain (as the original fell back to).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ServicePrincipal {
    ClientSecret(ClientSecret),
    DefaultChain(DefaultChain),
}

/// An app registration's client secret; every field is non-empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientSecret {
    pub tenant_id: String,
    pub client_id: String,
    pub secret: Secret,
}

/// The settings the links of the default credential chain use.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DefaultChain {
    /// Workload identity and the Azure CLI.
    pub tenant_id: Option<String>,
    /// Workload identity.
    pub client_id: Option<String>,
    /// Managed identity: a user-assigned identity's client id.
    pub managed_identity_client_id: Option<String>,
}

/// An `auth` block at `path` (`auth`, or `upstreams[i].auth`).
pub(super) fn parse(check: &mut Checker, path: &str, a: &RawAuth) -> AuthConfig {
    let parsed = AuthMode::parse(&a.mode);
    if parsed.is_none() {
        let names: Vec<_> = AuthMode::ALL.iter().map(|m| format!("\"{m}\"")).collect();
        check.fail(
            format!("{path}.mode"),
            format!("must be one of {}, got \"{}\"", names.join(", "), a.mode),
        );
    }
    // An unknown mode is reported once; its other fields are not judged against a guess.
    let mode = parsed.unwrap_or(AuthMode::Default);
    let client_secret_fields = [&a.tenant_id, &a.client_id, &a.client_secret]
        .iter()
        .filter(|v| !v.trim().is_empty())
        .count();
    match mode {
        AuthMode::ApiKey if a.api_key.trim().is_empty() => {
            check.fail(
                format!("{path}.apiKey"),
                "is required when mode is \"apiKey\"",
            );
        }
        AuthMode::ServicePrincipal if client_secret_fields != 0 && client_secret_fields != 3 => {
            check.fail(
                path,
                "tenantId, clientId and clientSecret must be given together (or all left empty to use the default credential chain)",
            );
        }
        _ => {}
    }
    if parsed.is_some() && mode != AuthMode::ApiKey && !is_https_url(&a.scope) {
        check.fail(
            format!("{path}.scope"),
            "must be an absolute https URL such as https://cognitiveservices.azure.com/.default",
        );
    }
    let authority_host = a.authority_host.trim().trim_end_matches('/').to_string();
    if !authority_host.is_empty() && !is_https_url(&authority_host) {
        check.fail(
            format!("{path}.authorityHost"),
            "must be an https URL such as https://login.microsoftonline.us, or empty for the public cloud",
        );
    }
    let optional = |value: &str| Some(value.trim().to_string()).filter(|v| !v.is_empty());
    let default_chain = || DefaultChain {
        tenant_id: optional(&a.tenant_id),
        client_id: optional(&a.client_id),
        managed_identity_client_id: optional(&a.managed_identity_client_id),
    };
    let identity = match mode {
        AuthMode::ApiKey => {
            return AuthConfig::ApiKey {
                api_key: Secret::new(a.api_key.trim()),
            };
        }
        AuthMode::ServicePrincipal if client_secret_fields == 3 => {
            EntraIdentity::ServicePrincipal(ServicePrincipal::ClientSecret(ClientSecret {
                tenant_id: a.tenant_id.trim().to_string(),
                client_id: a.client_id.trim().to_string(),
                secret: Secret::new(a.client_secret.clone()),
            }))
        }
        AuthMode::ServicePrincipal => {
            EntraIdentity::ServicePrincipal(ServicePrincipal::DefaultChain(default_chain()))
        }
        AuthMode::ManagedIdentity => EntraIdentity::ManagedIdentity {
            client_id: optional(&a.managed_identity_client_id),
        },
        AuthMode::WorkloadIdentity => EntraIdentity::WorkloadIdentity {
            tenant_id: optional(&a.tenant_id),
            client_id: optional(&a.client_id),
        },
        AuthMode::AzureCli => EntraIdentity::AzureCli {
            tenant_id: optional(&a.tenant_id),
        },
        AuthMode::Default => EntraIdentity::Default(default_chain()),
    };
    AuthConfig::Entra(EntraAuth {
        identity,
        scope: a.scope.trim().to_string(),
        authority_host: Some(authority_host).filter(|h| !h.is_empty()),
    })
}

/// An absolute https URL with a host (token scopes and authority hosts).
fn is_https_url(value: &str) -> bool {
    url::Url::parse(value.trim()).is_ok_and(|u| u.scheme() == "https" && u.host().is_some())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{issue_paths, load_value, sample};
    use super::*;
    use serde_json::{Value, json};

    fn auth_of(auth: Value) -> AuthConfig {
        let mut v = sample();
        v["auth"] = auth;
        load_value(v).expect("valid").auth
    }

    fn entra_of(auth: Value) -> EntraAuth {
        match auth_of(auth) {
            AuthConfig::Entra(entra) => entra,
            other => panic!("not an Entra ID mode: {other:?}"),
        }
    }

    #[test]
    fn empty_auth_is_a_service_principal_falling_back_to_the_default_chain() {
        let entra = entra_of(json!({}));
        assert_eq!(entra.scope, "https://cognitiveservices.azure.com/.default");
        assert_eq!(entra.authority_host, None);
        assert_eq!(
            entra.identity,
            EntraIdentity::ServicePrincipal(ServicePrincipal::DefaultChain(DefaultChain {
                tenant_id: None,
                client_id: None,
                managed_identity_client_id: None,
            }))
        );
        assert_eq!(entra.identity.mode(), AuthMode::ServicePrincipal);
    }

    #[test]
    fn a_service_principal_with_its_three_fields_uses_its_client_secret() {
        let entra = entra_of(json!({"mode": "servicePrincipal", "tenantId": " t ",
            "clientId": "c", "clientSecret": "s", "authorityHost": "https://login.example/"}));
        assert_eq!(
            entra.identity,
            EntraIdentity::ServicePrincipal(ServicePrincipal::ClientSecret(ClientSecret {
                tenant_id: "t".into(),
                client_id: "c".into(),
                secret: Secret::new("s"),
            }))
        );
        assert_eq!(
            entra.authority_host.as_deref(),
            Some("https://login.example")
        );
    }

    #[test]
    fn each_mode_keeps_only_the_settings_it_uses() {
        let fields = json!({"tenantId": "t", "clientId": "c", "managedIdentityClientId": "m",
            "apiKey": "k"});
        let with_mode = |mode: &str| {
            let mut auth = fields.clone();
            auth["mode"] = json!(mode);
            auth
        };
        assert_eq!(
            entra_of(with_mode("managedIdentity")).identity,
            EntraIdentity::ManagedIdentity {
                client_id: Some("m".into())
            }
        );
        assert_eq!(
            entra_of(with_mode("workloadIdentity")).identity,
            EntraIdentity::WorkloadIdentity {
                tenant_id: Some("t".into()),
                client_id: Some("c".into())
            }
        );
        assert_eq!(
            entra_of(with_mode("azureCli")).identity,
            EntraIdentity::AzureCli {
                tenant_id: Some("t".into())
            }
        );
        assert_eq!(
            entra_of(with_mode("default")).identity,
            EntraIdentity::Default(DefaultChain {
                tenant_id: Some("t".into()),
                client_id: Some("c".into()),
                managed_identity_client_id: Some("m".into()),
            })
        );
        assert_eq!(
            auth_of(with_mode("apiKey")),
            AuthConfig::ApiKey {
                api_key: Secret::new("k")
            }
        );
    }

    #[test]
    fn blank_optional_ids_are_absent() {
        let entra = entra_of(json!({"mode": "managedIdentity", "managedIdentityClientId": "  "}));
        assert_eq!(
            entra.identity,
            EntraIdentity::ManagedIdentity { client_id: None }
        );
    }

    #[test]
    fn every_mode_name_parses_to_itself() {
        for mode in AuthMode::ALL {
            assert_eq!(AuthMode::parse(mode.as_str()), Some(mode));
        }
        assert_eq!(AuthMode::parse("ApiKey"), None);
    }

    #[test]
    fn api_key_mode_needs_a_key() {
        let mut v = sample();
        v["auth"] = json!({"mode": "apiKey"});
        assert_eq!(issue_paths(v), vec!["auth.apiKey"]);
    }

    #[test]
    fn unknown_auth_mode_is_refused() {
        let mut v = sample();
        v["auth"] = json!({"mode": "password"});
        assert_eq!(issue_paths(v), vec!["auth.mode"]);
    }

    #[test]
    fn partial_service_principal_is_refused() {
        let mut v = sample();
        v["auth"] = json!({"mode": "servicePrincipal", "tenantId": "t"});
        assert_eq!(issue_paths(v), vec!["auth"]);
    }

    #[test]
    fn scope_and_authority_host_must_be_https_urls() {
        let mut v = sample();
        v["auth"] = json!({"mode": "default", "scope": "cognitiveservices",
            "authorityHost": "http://login.example"});
        assert_eq!(issue_paths(v), vec!["auth.scope", "auth.authorityHost"]);
    }

    #[test]
    fn per_upstream_auth_is_validated_with_its_path() {
        let mut v = sample();
        v["upstreams"][0]["auth"] = json!({"mode": "apiKey"});
        assert_eq!(issue_paths(v), vec!["upstreams[0].auth.apiKey"]);
    }
}
