//! `PERSISTENCE_MODE` and the blob settings from the environment, read alike by both binaries:
//! where the config blob is, how to authenticate, how often to look, and this replica's name.
//! A SAS is a secret: it is never logged and never shown (`Debug` hides it).

use std::time::Duration;

use url::Url;

use crate::config::{DefaultChain, EntraAuth, EntraIdentity, Secret};
use crate::process::cli::EnvVar;
use crate::process::env::Env;

/// The token scope of Azure Storage.
pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";

/// The variables of blob persistence mode, read alike by proxy and control.
pub const ENVIRONMENT: &[EnvVar] = &[
    EnvVar {
        name: "PERSISTENCE_MODE",
        default: "`file`",
        meaning: "`blob`: the config lives in Azure Blob Storage and config.json is its local cache ([scale-out.md](scale-out.md#blob-persistence-mode))",
    },
    EnvVar {
        name: "AZURE_STORAGE_ACCOUNT_URL",
        default: "required in blob mode",
        meaning: "`https://<account>.blob.core.windows.net`; a SAS may be given as its query",
    },
    EnvVar {
        name: "CONFIG_BLOB_CONTAINER",
        default: "`gateway`",
        meaning: "the container of the config blob",
    },
    EnvVar {
        name: "CONFIG_BLOB_NAME",
        default: "`config/config.json`",
        meaning: "the config blob; each replica's statistics go beside it",
    },
    EnvVar {
        name: "BLOB_AUTH_MODE",
        default: "`managedIdentity`; `sas` when a SAS is set",
        meaning: "how Blob Storage is signed in to: an Entra ID mode as in `auth.mode`, or `sas`",
    },
    EnvVar {
        name: "AZURE_STORAGE_SAS_TOKEN",
        default: "unset",
        meaning: "a SAS (without `?`), for local use and Azurite",
    },
    EnvVar {
        name: "BLOB_POLL_MS",
        default: "`5000`",
        meaning: "how often the config blob is read (conditionally, on its ETag)",
    },
    EnvVar {
        name: "BLOB_RECOVERY_INTERVAL_MS",
        default: "`30000`",
        meaning: "how often Blob Storage is tried again while it does not answer",
    },
    EnvVar {
        name: "REPLICA_NAME",
        default: "`HOSTNAME`",
        meaning: "names this replica's statistics blob",
    },
    EnvVar {
        name: "HOSTNAME",
        default: "set by the container runtime",
        meaning: "the replica's name when `REPLICA_NAME` is unset",
    },
];
pub const DEFAULT_CONTAINER: &str = "gateway";
pub const DEFAULT_CONFIG_BLOB: &str = "config/config.json";
pub const DEFAULT_POLL: Duration = Duration::from_secs(5);
pub const DEFAULT_RECOVERY: Duration = Duration::from_secs(30);
/// Looking more often than this would cost requests for nothing.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// Where the config is kept.
#[derive(Debug, Clone, Default)]
pub enum PersistenceMode {
    /// config.json in the data dir (the default).
    #[default]
    File,
    /// A blob in Azure Storage; config.json in the data dir is a local cache.
    Blob(Box<BlobSettings>),
}

#[derive(Debug, Clone)]
pub struct BlobSettings {
    /// `AZURE_STORAGE_ACCOUNT_URL` without a query (`https://<account>.blob.core.windows.net`).
    pub account_url: Url,
    /// `CONFIG_BLOB_CONTAINER`.
    pub container: String,
    /// `CONFIG_BLOB_NAME`: the config blob; statistics go beside it under `stats/`.
    pub config_blob: String,
    pub auth: BlobAuth,
    /// `BLOB_POLL_MS`: how often the blob is read (conditionally) while Blob answers.
    pub poll: Duration,
    /// `BLOB_RECOVERY_INTERVAL_MS`: how often Blob is tried again while it does not answer.
    pub recovery: Duration,
    /// `REPLICA_NAME` (else `HOSTNAME`): names this replica's statistics blob.
    pub replica: String,
}

/// How requests to Blob Storage are signed.
#[derive(Debug, Clone)]
pub enum BlobAuth {
    /// A SAS token (from `AZURE_STORAGE_SAS_TOKEN` or the account URL's query).
    Sas(Secret),
    /// An Entra ID token for `STORAGE_SCOPE` (`BLOB_AUTH_MODE`).
    Entra(EntraAuth),
}

impl BlobAuth {
    pub fn mode(&self) -> &'static str {
        match self {
            BlobAuth::Sas(_) => "sas",
            BlobAuth::Entra(entra) => entra.identity.mode().as_str(),
        }
    }
}

impl BlobSettings {
    /// The container's URL, with the SAS query when there is one.
    pub fn container_url(&self) -> Url {
        let mut url = self.account_url.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().push(&self.container);
        }
        if let BlobAuth::Sas(sas) = &self.auth {
            url.set_query(Some(sas.expose()));
        }
        url
    }

    /// The blob `name` (`/` separates its virtual directories, sent unescaped) with the SAS
    /// query when there is one.
    pub fn blob_url(&self, name: &str) -> Url {
        let mut url = self.container_url();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.extend(name.split('/'));
        }
        url
    }

    /// `<container>/<name>` under the account URL, for logs and status (never the SAS).
    pub fn describe(&self, name: &str) -> String {
        format!(
            "{}/{}/{}",
            self.account_url.as_str().trim_end_matches('/'),
            self.container,
            name
        )
    }

    /// The blob of `replica`'s statistics: `stats/<replica>.json` beside the config blob.
    pub fn stats_blob(&self, replica: &str) -> String {
        format!("{}{replica}.json", self.stats_prefix())
    }

    /// The virtual directory holding every replica's statistics.
    pub fn stats_prefix(&self) -> String {
        match self.config_blob.rsplit_once('/') {
            Some((dir, _)) => format!("{dir}/stats/"),
            None => "stats/".into(),
        }
    }
}

/// Reads `PERSISTENCE_MODE` and, for `blob`, its settings.
pub fn read(env: &Env) -> anyhow::Result<PersistenceMode> {
    let blob = env.choice("PERSISTENCE_MODE", &[("file", false), ("blob", true)])?;
    if blob != Some(true) {
        return Ok(PersistenceMode::File);
    }
    let Some(account) = env.text("AZURE_STORAGE_ACCOUNT_URL") else {
        anyhow::bail!(
            "AZURE_STORAGE_ACCOUNT_URL is required with PERSISTENCE_MODE=blob (https://<account>.blob.core.windows.net)"
        );
    };
    let mut account_url = Url::parse(&account)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "AZURE_STORAGE_ACCOUNT_URL must be an http(s) URL such as https://<account>.blob.core.windows.net"
            )
        })?;
    let query_sas = account_url.query().map(str::to_string);
    account_url.set_query(None);
    account_url.set_fragment(None);
    let sas = env
        .text("AZURE_STORAGE_SAS_TOKEN")
        .map(|t| t.trim_start_matches('?').to_string())
        .or(query_sas)
        .filter(|t| !t.is_empty());
    let container = env
        .text("CONFIG_BLOB_CONTAINER")
        .unwrap_or_else(|| DEFAULT_CONTAINER.into());
    if !valid_container_name(&container) {
        anyhow::bail!(
            "CONFIG_BLOB_CONTAINER must be 3 to 63 lowercase letters, digits and single hyphens, got {container:?}"
        );
    }
    let config_blob = env
        .text("CONFIG_BLOB_NAME")
        .unwrap_or_else(|| DEFAULT_CONFIG_BLOB.into());
    if config_blob.starts_with('/') || config_blob.ends_with('/') || config_blob.len() > 1024 {
        anyhow::bail!("CONFIG_BLOB_NAME must be a blob name such as config/config.json");
    }
    let auth = read_auth(env, sas)?;
    if matches!(auth, BlobAuth::Entra(_)) && account_url.scheme() != "https" {
        anyhow::bail!("AZURE_STORAGE_ACCOUNT_URL must use https with an Entra ID credential");
    }
    let poll = env
        .millis("BLOB_POLL_MS", MIN_INTERVAL)?
        .unwrap_or(DEFAULT_POLL);
    let recovery = env
        .millis("BLOB_RECOVERY_INTERVAL_MS", MIN_INTERVAL)?
        .unwrap_or(DEFAULT_RECOVERY);
    let replica = env
        .text("REPLICA_NAME")
        .or_else(|| env.text("HOSTNAME"))
        .unwrap_or_else(|| "replica".into());
    let replica = replica_name(&replica);
    Ok(PersistenceMode::Blob(Box::new(BlobSettings {
        account_url,
        container,
        config_blob,
        auth,
        poll,
        recovery,
        replica,
    })))
}

fn read_auth(env: &Env, sas: Option<String>) -> anyhow::Result<BlobAuth> {
    let modes = [
        ("sas", 0),
        ("managedIdentity", 1),
        ("workloadIdentity", 2),
        ("servicePrincipal", 3),
        ("azureCli", 4),
        ("default", 5),
    ];
    let mode = env
        .choice("BLOB_AUTH_MODE", &modes)?
        .unwrap_or(if sas.is_some() { 0 } else { 1 });
    let optional = |name: &str| env.text(name);
    let identity = match mode {
        0 => {
            let Some(sas) = sas else {
                anyhow::bail!(
                    "BLOB_AUTH_MODE=sas needs AZURE_STORAGE_SAS_TOKEN (or a SAS in AZURE_STORAGE_ACCOUNT_URL)"
                );
            };
            return Ok(BlobAuth::Sas(Secret::new(sas)));
        }
        1 => EntraIdentity::ManagedIdentity {
            client_id: optional("AZURE_CLIENT_ID"),
        },
        2 => EntraIdentity::WorkloadIdentity {
            tenant_id: optional("AZURE_TENANT_ID"),
            client_id: optional("AZURE_CLIENT_ID"),
        },
        3 => {
            let (Some(tenant_id), Some(client_id), Some(secret)) = (
                optional("AZURE_TENANT_ID"),
                optional("AZURE_CLIENT_ID"),
                optional("AZURE_CLIENT_SECRET"),
            ) else {
                anyhow::bail!(
                    "BLOB_AUTH_MODE=servicePrincipal needs AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET"
                );
            };
            EntraIdentity::ServicePrincipal(crate::config::ServicePrincipal::ClientSecret(
                crate::config::ClientSecret {
                    tenant_id,
                    client_id,
                    secret: Secret::new(secret),
                },
            ))
        }
        4 => EntraIdentity::AzureCli {
            tenant_id: optional("AZURE_TENANT_ID"),
        },
        _ => EntraIdentity::Default(DefaultChain {
            tenant_id: optional("AZURE_TENANT_ID"),
            client_id: optional("AZURE_CLIENT_ID"),
            managed_identity_client_id: optional("AZURE_CLIENT_ID"),
        }),
    };
    Ok(BlobAuth::Entra(EntraAuth {
        identity,
        scope: STORAGE_SCOPE.into(),
        authority_host: optional("AZURE_AUTHORITY_HOST").map(|h| h.trim_end_matches('/').into()),
    }))
}

/// Azure's container naming rule.
fn valid_container_name(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

/// A replica name usable in a blob name: letters, digits, `-`, `_` and `.`, at most 63.
fn replica_name(raw: &str) -> String {
    let cleaned: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    if cleaned.trim_matches('.').is_empty() {
        "replica".into()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(pairs: &[(&str, &str)]) -> BlobSettings {
        let mut all = vec![("PERSISTENCE_MODE", "blob")];
        all.extend_from_slice(pairs);
        match read(&Env::from_pairs(&all)).expect("valid settings") {
            PersistenceMode::Blob(settings) => *settings,
            PersistenceMode::File => panic!("blob mode expected"),
        }
    }

    #[test]
    fn file_mode_is_the_default() {
        let mode = read(&Env::from_pairs(&[])).expect("valid");
        assert!(matches!(mode, PersistenceMode::File));
    }

    #[test]
    fn managed_identity_is_the_default_credential_and_needs_https() {
        let s = blob(&[
            (
                "AZURE_STORAGE_ACCOUNT_URL",
                "https://acct.blob.core.windows.net/",
            ),
            ("REPLICA_NAME", "gw/1"),
        ]);
        assert_eq!(s.auth.mode(), "managedIdentity");
        assert_eq!(s.container, DEFAULT_CONTAINER);
        assert_eq!(
            s.blob_url("config/config.json").as_str(),
            "https://acct.blob.core.windows.net/gateway/config/config.json"
        );
        assert_eq!(s.replica, "gw-1");
        assert_eq!(s.stats_blob(&s.replica), "config/stats/gw-1.json");
        let err = read(&Env::from_pairs(&[
            ("PERSISTENCE_MODE", "blob"),
            (
                "AZURE_STORAGE_ACCOUNT_URL",
                "http://127.0.0.1:10000/devstoreaccount1",
            ),
        ]))
        .expect_err("http with a token");
        assert!(err.to_string().contains("must use https"), "{err}");
    }

    #[test]
    fn a_sas_in_the_url_is_taken_out_of_it_and_never_shown() {
        let s = blob(&[(
            "AZURE_STORAGE_ACCOUNT_URL",
            "http://127.0.0.1:10000/devstoreaccount1?sv=1&sig=secret",
        )]);
        assert_eq!(s.auth.mode(), "sas");
        assert_eq!(s.account_url.query(), None);
        assert!(!s.describe("x").contains("secret"));
        assert!(!format!("{s:?}").contains("secret"));
        assert_eq!(
            s.blob_url("config/config.json").as_str(),
            "http://127.0.0.1:10000/devstoreaccount1/gateway/config/config.json?sv=1&sig=secret"
        );
    }

    #[test]
    fn a_bad_container_name_is_refused_with_the_rule() {
        let err = read(&Env::from_pairs(&[
            ("PERSISTENCE_MODE", "blob"),
            (
                "AZURE_STORAGE_ACCOUNT_URL",
                "https://a.blob.core.windows.net",
            ),
            ("CONFIG_BLOB_CONTAINER", "Gateway"),
        ]))
        .expect_err("uppercase");
        assert!(err.to_string().starts_with("CONFIG_BLOB_CONTAINER must be"));
    }
}
