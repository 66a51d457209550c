//! The overview's warnings: what the operator should act on, drawn from facts the overview
//! gathered (admin login, the config file, the proxy's status and the Redis of its key limits,
//! Caddy). A pure function: no I/O, the same facts always give the same warnings in the same
//! order.

use proxy::config::Config;
use proxy::ops::contract::{LimitsFailMode, LimitsStatus, LimitsStore, Status};
use std::collections::BTreeMap;

use serde::Serialize;

use crate::blob_backend::BlobView;
use crate::caddy::loader::LoaderStatus;
use crate::caddy::sync::RenderOutcome;
use crate::errors::AdminError;
use crate::store::{AdminCredentials, Content, OnDisk};

/// Something the operator should act on. `code` selects the UI's translated text; `message`
/// is the English text; `detail` carries names and paths.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Warning {
    pub code: &'static str,
    pub message: String,
    pub detail: Option<String>,
    /// The values in `message`, by name, for wording it from `code` in another language.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<&'static str, String>,
}

/// What the warnings are drawn from.
pub struct Facts<'a> {
    pub admin: &'a AdminCredentials,
    pub on_disk: &'a OnDisk,
    /// The config blob, in blob mode.
    pub blob: Option<&'a BlobView>,
    /// The last valid config (the file on disk when it is valid).
    pub config: &'a Config,
    /// The proxy's status, or why it could not be read.
    pub proxy: Result<&'a Status, &'a AdminError>,
    pub caddy: &'a LoaderStatus,
    /// The last rendering of the Caddyfile, if any happened.
    pub render: Option<&'a RenderOutcome>,
}

/// Every warning `code`, so that a client that words warnings in another language (the admin
/// UI) can be checked to know them all.
pub const CODES: &[&str] = &[
    "default_password",
    "login_disabled",
    "config_missing",
    "config_invalid",
    "blob_unreachable",
    "blob_pending",
    "blob_unpushed",
    "config_local_edit",
    "placeholder_upstream",
    "sample_client_key",
    "proxy_rejected",
    "proxy_unreachable",
    "redis_unreachable_open",
    "redis_unreachable_closed",
    "caddy_unreachable",
    "caddy_load_failed",
    "caddyfile_failed",
];

pub fn warnings(facts: &Facts<'_>) -> Vec<Warning> {
    let mut out = Vec::new();
    admin_login(facts.admin, &mut out);
    config_file(facts.on_disk, &mut out);
    if let Some(blob) = facts.blob {
        config_blob(blob, &mut out);
    }
    config_samples(facts.config, &mut out);
    proxy(facts.proxy, &mut out);
    caddy(facts.caddy, facts.render, &mut out);
    out
}

fn warning(code: &'static str, message: impl Into<String>, detail: Option<String>) -> Warning {
    Warning {
        code,
        message: message.into(),
        detail,
        params: BTreeMap::new(),
    }
}

impl Warning {
    fn with(mut self, name: &'static str, value: impl Into<String>) -> Warning {
        self.params.insert(name, value.into());
        self
    }
}

fn admin_login(admin: &AdminCredentials, out: &mut Vec<Warning>) {
    if admin.is_default_password() {
        out.push(warning(
            "default_password",
            "The admin password is still the default. Change server.adminAuth.password.",
            None,
        ));
    }
    if matches!(admin, AdminCredentials::Open) {
        out.push(warning(
            "login_disabled",
            "The admin login is disabled (server.adminAuth.enabled is false).",
            None,
        ));
    }
}

fn config_file(on_disk: &OnDisk, out: &mut Vec<Warning>) {
    match &on_disk.content {
        Content::Missing => out.push(warning(
            "config_missing",
            "config.json does not exist yet; saving creates it.",
            None,
        )),
        Content::Parsed {
            validated: Ok(_), ..
        } => {}
        _ => out.push(warning(
            "config_invalid",
            "config.json on disk is invalid; the proxy keeps serving the last valid config.",
            Some(joined(&on_disk.issues())),
        )),
    }
}

/// Blob mode: Blob Storage unreachable, a change waiting to be pushed, a change that could not
/// be pushed, hand edits of the local cache.
fn config_blob(blob: &BlobView, out: &mut Vec<Warning>) {
    if blob.reachable == Some(false) {
        out.push(warning(
            "blob_unreachable",
            "Blob Storage, where the config is kept, does not answer: the gateway serves its local copy, and saves are kept locally and pushed when it is back.",
            blob.error.clone(),
        ));
    }
    if blob.pending_local_change {
        out.push(warning(
            "blob_pending",
            "A change saved while Blob Storage was unreachable waits to be pushed to it.",
            None,
        ));
    }
    if let Some(latest) = blob.unpushed.first() {
        out.push(warning(
            "blob_unpushed",
            "A change saved while Blob Storage was unreachable was not pushed: the config blob changed meanwhile. It is kept in the file named here; apply it again by hand, then remove the file.",
            Some(latest.path.clone()),
        ));
    }
    if let Some(latest) = blob.local_edits.first() {
        out.push(warning(
            "config_local_edit",
            "config.json was edited by hand. In blob mode it is a copy of the config blob and hand edits are never applied; the edit is kept in the file named here. Make the change in the admin UI, then remove the file.",
            Some(latest.path.clone()),
        ));
    }
}

fn config_samples(config: &Config, out: &mut Vec<Warning>) {
    for (i, upstream) in config.upstreams.iter().enumerate() {
        if upstream.placeholder {
            out.push(
                warning(
                    "placeholder_upstream",
                    format!(
                        "Upstream \"{}\" still has the placeholder endpoint.",
                        upstream.name
                    ),
                    Some(format!("upstreams[{i}].baseUrl")),
                )
                .with("upstream", upstream.name.as_str()),
            );
        }
    }
    for (i, key) in config.client_keys.iter().enumerate() {
        if key.active && key.key.expose() == "CHANGEME" {
            out.push(
                warning(
                    "sample_client_key",
                    format!("Client key \"{}\" is the sample key CHANGEME.", key.id),
                    Some(format!("apiKeys[{i}].key")),
                )
                .with("key", key.id.as_str()),
            );
        }
    }
}

fn proxy(status: Result<&Status, &AdminError>, out: &mut Vec<Warning>) {
    match status {
        Ok(status) => {
            if let Some(rejected) = &status.config.rejected {
                out.push(warning(
                    "proxy_rejected",
                    "The proxy refused the config file and serves an older one.",
                    Some(joined(&rejected.issues)),
                ));
            }
            limits_store(&status.limits, out);
        }
        Err(err) => {
            let reason = err.to_string();
            let mut unreachable = warning("proxy_unreachable", reason.clone(), None);
            for (name, value) in err.params() {
                let value = match value {
                    serde_json::Value::String(text) => text,
                    other => other.to_string(),
                };
                unreachable = unreachable.with(name, value);
            }
            out.push(unreachable.with("reason", reason));
        }
    }
}

/// Redis is configured for the key limits but does not answer: what the proxy does meanwhile
/// depends on `limits.failMode`.
fn limits_store(limits: &LimitsStatus, out: &mut Vec<Warning>) {
    if limits.store != LimitsStore::Redis || limits.redis_reachable != Some(false) {
        return;
    }
    out.push(match limits.fail_mode {
        LimitsFailMode::Open => warning(
            "redis_unreachable_open",
            "Redis, where key limits are counted, does not answer: each replica counts them on \
             its own until it is back (limits.failMode is open).",
            None,
        ),
        LimitsFailMode::Closed => warning(
            "redis_unreachable_closed",
            "Redis, where key limits are counted, does not answer: requests of keys with limits \
             are refused until it is back (limits.failMode is closed).",
            None,
        ),
    });
}

fn caddy(loader: &LoaderStatus, render: Option<&RenderOutcome>, out: &mut Vec<Warning>) {
    let managed = loader.admin_url.is_some();
    if managed {
        if loader.reachable == Some(false) {
            let reason = loader
                .unreachable_reason
                .clone()
                .unwrap_or_else(|| "Caddy's admin API does not answer.".into());
            let mut unreachable = warning("caddy_unreachable", reason.clone(), None);
            for (name, value) in loader.unreachable_error.iter().flat_map(|err| err.params()) {
                unreachable = unreachable.with(name, value);
            }
            out.push(unreachable.with("reason", reason));
        }
        if let Some(last) = loader.last_load.as_ref().filter(|l| !l.ok) {
            out.push(warning(
                "caddy_load_failed",
                "Caddy refused the last Caddyfile; it keeps running the previous one.",
                last.error.clone(),
            ));
        }
    }
    if let Some(failed) = render.filter(|r| !r.ok) {
        out.push(warning(
            "caddyfile_failed",
            "The Caddyfile could not be rendered or written.",
            failed.error.clone(),
        ));
    }
}

/// Issues as one line: `path: message; path: message`.
fn joined(issues: &[proxy::config::ConfigIssue]) -> String {
    issues
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use proxy::config::ConfigIssue;
    use proxy::ops::contract::{ConfigStatus, RejectedConfig};
    use serde_json::{Value, json};

    use super::*;
    use crate::caddy::admin::AdminApiError;
    use crate::caddy::loader::LoadRecord;
    use crate::cause::{Cause, CauseCode};

    /// A config that raises no warning of its own.
    fn clean_config() -> Value {
        json!({
            "server": {"adminAuth": {"enabled": true, "username": "ops", "password": "long-secret"}},
            "auth": {"mode": "apiKey", "apiKey": "azure-key"},
            "apiKeys": [{"id": "team", "key": "sk-team", "status": "active"}],
            "upstreams": [{"name": "u", "baseUrl": "https://res.openai.azure.com"}],
            "models": [{"id": "m", "upstream": "u", "targetModel": "d"}]
        })
    }

    fn on_disk(value: &Value) -> OnDisk {
        let bytes = serde_json::to_vec(value).expect("json");
        let raw = proxy::config::parse_raw(&bytes).expect("raw");
        OnDisk {
            etag: "\"e\"".into(),
            sha256: Some("abc".into()),
            modified_ms: Some(1),
            content: Content::Parsed {
                validated: proxy::config::validate(raw.clone())
                    .map(Box::new)
                    .map_err(|e| e.issues()),
                raw: Box::new(raw),
            },
            unparsed_text: None,
            version: String::new(),
        }
    }

    fn config(value: &Value) -> Config {
        proxy::config::load(&serde_json::to_vec(value).expect("json")).expect("valid")
    }

    fn status(rejected: Option<RejectedConfig>) -> Status {
        Status {
            version: "1".into(),
            uptime_s: 1,
            config: ConfigStatus {
                sha256: "abc".into(),
                rejected,
                ..ConfigStatus::default()
            },
            models: 1,
            upstreams: 1,
            client_keys: 1,
            body_bytes_in_flight: 0,
            body_memory_limit: 1,
            limits: Default::default(),
        }
    }

    fn basic(password: &str) -> AdminCredentials {
        AdminCredentials::Basic {
            username: "ops".into(),
            password: password.into(),
        }
    }

    fn managed_caddy() -> LoaderStatus {
        LoaderStatus {
            admin_url: Some("http://localhost:2019".into()),
            reachable: Some(true),
            ..LoaderStatus::default()
        }
    }

    /// The warnings of the clean setup with one fact changed by `edit`.
    fn warnings_with(edit: impl FnOnce(&mut Setup)) -> Vec<Warning> {
        let mut setup = Setup::clean();
        edit(&mut setup);
        setup.warnings()
    }

    struct Setup {
        admin: AdminCredentials,
        on_disk: OnDisk,
        blob: Option<BlobView>,
        config: Config,
        proxy: Result<Status, AdminError>,
        caddy: LoaderStatus,
        render: Option<RenderOutcome>,
    }

    impl Setup {
        fn clean() -> Setup {
            Setup {
                admin: basic("long-secret"),
                on_disk: on_disk(&clean_config()),
                blob: None,
                config: config(&clean_config()),
                proxy: Ok(status(None)),
                caddy: managed_caddy(),
                render: Some(RenderOutcome {
                    at_ms: 1,
                    ok: true,
                    error: None,
                    written: true,
                    sha256: Some("c".into()),
                }),
            }
        }

        fn warnings(&self) -> Vec<Warning> {
            warnings(&Facts {
                admin: &self.admin,
                on_disk: &self.on_disk,
                blob: self.blob.as_ref(),
                config: &self.config,
                proxy: self.proxy.as_ref(),
                caddy: &self.caddy,
                render: self.render.as_ref(),
            })
        }
    }

    fn only(warnings: &[Warning]) -> &Warning {
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        &warnings[0]
    }

    #[test]
    fn a_clean_setup_has_no_warning() {
        assert_eq!(Setup::clean().warnings(), Vec::new());
    }

    #[test]
    fn the_default_admin_password_is_a_warning() {
        let warnings = warnings_with(|s| s.admin = basic("admin"));
        assert_eq!(only(&warnings).code, "default_password");
    }

    #[test]
    fn a_disabled_login_is_a_warning() {
        let warnings = warnings_with(|s| s.admin = AdminCredentials::Open);
        assert_eq!(only(&warnings).code, "login_disabled");
    }

    #[test]
    fn a_missing_config_file_is_a_warning() {
        let warnings = warnings_with(|s| s.on_disk.content = Content::Missing);
        assert_eq!(only(&warnings).code, "config_missing");
    }

    #[test]
    fn an_invalid_config_file_names_its_issues() {
        let mut broken = clean_config();
        broken["models"][0]["upstream"] = json!("nowhere");
        let warnings = warnings_with(|s| s.on_disk = on_disk(&broken));
        let warning = only(&warnings);
        assert_eq!(warning.code, "config_invalid");
        let detail = warning.detail.as_deref().unwrap_or_default();
        assert!(detail.starts_with("models[0].upstream: "), "{detail}");
    }

    #[test]
    fn an_unparseable_config_file_is_invalid() {
        let issue = ConfigIssue {
            path: "(root)".into(),
            message: "expected value".into(),
        };
        let warnings = warnings_with(|s| s.on_disk.content = Content::Unparseable(issue));
        let warning = only(&warnings);
        assert_eq!(warning.code, "config_invalid");
        assert_eq!(warning.detail.as_deref(), Some("(root): expected value"));
    }

    #[test]
    fn blob_mode_warns_of_an_unreachable_blob_a_pending_change_and_what_was_set_aside() {
        let aside = |path: &str| proxy::blob::cache::SetAside {
            path: path.into(),
            at_ms: 1,
        };
        let found = warnings_with(|s| {
            s.blob = Some(BlobView {
                reachable: Some(false),
                error: Some("connection refused".into()),
                pending_local_change: true,
                unpushed: vec![aside("/d/config.unpushed-1.json")],
                local_edits: vec![aside("/d/config.local-edit-1.json")],
                ..BlobView::default()
            })
        });
        let codes: Vec<_> = found.iter().map(|w| w.code).collect();
        assert_eq!(
            codes,
            [
                "blob_unreachable",
                "blob_pending",
                "blob_unpushed",
                "config_local_edit"
            ]
        );
        assert_eq!(
            found[2].detail.as_deref(),
            Some("/d/config.unpushed-1.json")
        );
        let reachable = warnings_with(|s| {
            s.blob = Some(BlobView {
                reachable: Some(true),
                ..BlobView::default()
            })
        });
        assert!(reachable.is_empty());
    }

    #[test]
    fn a_placeholder_upstream_is_named_with_its_path() {
        let mut sample = clean_config();
        sample["upstreams"][0]["baseUrl"] = json!("https://YOUR-RESOURCE-NAME.openai.azure.com");
        let warnings = warnings_with(|s| s.config = config(&sample));
        let warning = only(&warnings);
        assert_eq!(warning.code, "placeholder_upstream");
        assert_eq!(warning.detail.as_deref(), Some("upstreams[0].baseUrl"));
    }

    #[test]
    fn an_active_sample_client_key_is_a_warning_and_a_disabled_one_is_not() {
        let mut sample = clean_config();
        sample["apiKeys"][0]["key"] = json!("CHANGEME");
        let warnings = warnings_with(|s| s.config = config(&sample));
        let warning = only(&warnings);
        assert_eq!(warning.code, "sample_client_key");
        assert_eq!(warning.detail.as_deref(), Some("apiKeys[0].key"));

        sample["apiKeys"][0]["status"] = json!("disabled");
        assert_eq!(warnings_with(|s| s.config = config(&sample)), Vec::new());
    }

    #[test]
    fn a_config_the_proxy_refused_lists_its_issues() {
        let rejected = RejectedConfig {
            at_ms: 1,
            sha256: "def".into(),
            issues: vec![
                ConfigIssue {
                    path: "models[0].upstream".into(),
                    message: "no upstream named \"x\"".into(),
                },
                ConfigIssue {
                    path: "auth.mode".into(),
                    message: "unknown".into(),
                },
            ],
        };
        let warnings = warnings_with(|s| s.proxy = Ok(status(Some(rejected))));
        let warning = only(&warnings);
        assert_eq!(warning.code, "proxy_rejected");
        assert_eq!(
            warning.detail.as_deref(),
            Some("models[0].upstream: no upstream named \"x\"; auth.mode: unknown")
        );
    }

    #[test]
    fn an_unreachable_proxy_says_why() {
        let warnings = warnings_with(|s| {
            s.proxy = Err(AdminError::ProxyOpsUnreachable {
                url: "http://127.0.0.1:9".into(),
                from: "server.ops in config.json",
                cause: Cause::new(CauseCode::Unreachable, "tcp connect error"),
            })
        });
        let warning = only(&warnings);
        assert_eq!(warning.code, "proxy_unreachable");
        assert!(
            warning
                .message
                .contains("connection refused or unreachable: tcp connect error"),
            "{warning:?}"
        );
        // Every value of the message, by name, for the UI to word it in another language.
        let param = |name: &str| warning.params.get(name).map(String::as_str);
        assert_eq!(param("url"), Some("http://127.0.0.1:9"));
        assert_eq!(param("from"), Some("server.ops in config.json"));
        assert_eq!(param("cause_code"), Some("unreachable"));
        assert_eq!(param("cause_detail"), Some("tcp connect error"));
        assert_eq!(param("reason"), Some(warning.message.as_str()));
    }

    fn redis_status(reachable: Option<bool>, fail_mode: LimitsFailMode) -> Status {
        let mut status = status(None);
        status.limits = LimitsStatus {
            store: LimitsStore::Redis,
            redis_reachable: reachable,
            since_ms: 1,
            fail_mode,
        };
        status
    }

    #[test]
    fn an_unreachable_redis_says_what_happens_to_keys_with_limits() {
        let open = warnings_with(|s| s.proxy = Ok(redis_status(Some(false), LimitsFailMode::Open)));
        let warning = only(&open);
        assert_eq!(warning.code, "redis_unreachable_open");
        assert!(
            warning
                .message
                .contains("each replica counts them on its own until it is back"),
            "{warning:?}"
        );

        let closed =
            warnings_with(|s| s.proxy = Ok(redis_status(Some(false), LimitsFailMode::Closed)));
        let warning = only(&closed);
        assert_eq!(warning.code, "redis_unreachable_closed");
        assert!(
            warning
                .message
                .contains("requests of keys with limits are refused"),
            "{warning:?}"
        );
    }

    #[test]
    fn a_reachable_redis_or_counting_in_the_process_is_no_warning() {
        for reachable in [Some(true), None] {
            let warnings =
                warnings_with(|s| s.proxy = Ok(redis_status(reachable, LimitsFailMode::Closed)));
            assert_eq!(warnings, Vec::new(), "reachable: {reachable:?}");
        }
        let in_process = warnings_with(|s| {
            let mut status = redis_status(Some(false), LimitsFailMode::Closed);
            status.limits.store = LimitsStore::Process;
            s.proxy = Ok(status);
        });
        assert_eq!(in_process, Vec::new());
    }

    #[test]
    fn an_unreachable_caddy_is_a_warning_only_when_control_drives_it() {
        let error = AdminApiError::Unreachable {
            url: "http://localhost:2019/".into(),
            cause: Cause::new(CauseCode::Unreachable, "tcp connect error"),
        };
        let warnings = warnings_with(|s| {
            s.caddy.reachable = Some(false);
            s.caddy.unreachable_reason = Some(error.to_string());
            s.caddy.unreachable_error = Some(error.clone());
        });
        let warning = only(&warnings);
        assert_eq!(warning.code, "caddy_unreachable");
        assert_eq!(warning.message, error.to_string());
        let param = |name: &str| warning.params.get(name).map(String::as_str);
        assert_eq!(param("url"), Some("http://localhost:2019/"));
        assert_eq!(param("cause_code"), Some("unreachable"));
        assert_eq!(param("cause_detail"), Some("tcp connect error"));

        let unmanaged = warnings_with(|s| {
            s.caddy.admin_url = None;
            s.caddy.reachable = Some(false);
        });
        assert_eq!(unmanaged, Vec::new());
    }

    #[test]
    fn a_caddyfile_caddy_refused_carries_its_error() {
        let warnings = warnings_with(|s| {
            s.caddy.last_load = Some(LoadRecord {
                at_ms: 1,
                ok: false,
                took_ms: 3,
                sha256: "c".into(),
                reason: "changed",
                error: Some("adapting config: bad directive".into()),
            });
        });
        let warning = only(&warnings);
        assert_eq!(warning.code, "caddy_load_failed");
        assert_eq!(
            warning.detail.as_deref(),
            Some("adapting config: bad directive")
        );
    }

    #[test]
    fn a_caddyfile_that_could_not_be_written_is_a_warning() {
        let warnings = warnings_with(|s| {
            s.render = Some(RenderOutcome {
                at_ms: 1,
                ok: false,
                error: Some("permission denied".into()),
                written: false,
                sha256: None,
            })
        });
        let warning = only(&warnings);
        assert_eq!(warning.code, "caddyfile_failed");
        assert_eq!(warning.detail.as_deref(), Some("permission denied"));
    }

    #[test]
    fn codes_lists_every_warning() {
        let aside = |path: &str| proxy::blob::cache::SetAside {
            path: path.into(),
            at_ms: 1,
        };
        let mut samples = clean_config();
        samples["upstreams"][0]["baseUrl"] = json!("https://YOUR-RESOURCE-NAME.openai.azure.com");
        samples["apiKeys"][0]["key"] = json!("CHANGEME");
        let mut broken = clean_config();
        broken["models"][0]["upstream"] = json!("nowhere");
        let rejected = RejectedConfig {
            at_ms: 1,
            sha256: "def".into(),
            issues: Vec::new(),
        };
        let failed_load = LoadRecord {
            at_ms: 1,
            ok: false,
            took_ms: 3,
            sha256: "c".into(),
            reason: "changed",
            error: Some("adapting config: bad directive".into()),
        };
        let mut seen: Vec<&str> = Vec::new();
        let mut add = |warnings: Vec<Warning>| seen.extend(warnings.iter().map(|w| w.code));
        add(warnings_with(|s| {
            s.admin = basic("admin");
            s.on_disk = on_disk(&broken);
            s.blob = Some(BlobView {
                reachable: Some(false),
                pending_local_change: true,
                unpushed: vec![aside("/d/config.unpushed-1.json")],
                local_edits: vec![aside("/d/config.local-edit-1.json")],
                ..BlobView::default()
            });
            s.config = config(&samples);
            s.proxy = Ok(redis_status(Some(false), LimitsFailMode::Open));
            s.caddy.last_load = Some(failed_load);
            s.render = Some(RenderOutcome {
                at_ms: 1,
                ok: false,
                error: None,
                written: false,
                sha256: None,
            });
        }));
        add(warnings_with(|s| {
            s.admin = AdminCredentials::Open;
            s.on_disk.content = Content::Missing;
            s.caddy.reachable = Some(false);
            s.proxy = Err(AdminError::ProxyOpsUnreachable {
                url: "u".into(),
                from: "PROXY_OPS_LISTEN",
                cause: Cause::new(CauseCode::TimedOut, "deadline"),
            });
        }));
        add(warnings_with(|s| {
            let mut status = redis_status(Some(false), LimitsFailMode::Closed);
            status.config.rejected = Some(rejected);
            s.proxy = Ok(status);
        }));
        seen.sort_unstable();
        seen.dedup();
        let mut listed = CODES.to_vec();
        listed.sort_unstable();
        assert_eq!(seen, listed);
    }

    #[test]
    fn warnings_come_in_a_fixed_order() {
        let warnings = warnings_with(|s| {
            s.admin = AdminCredentials::Open;
            s.on_disk.content = Content::Missing;
            s.render = None;
            s.caddy.reachable = Some(false);
            s.proxy = Err(AdminError::ProxyOpsUnreachable {
                url: "u".into(),
                from: "PROXY_OPS_LISTEN",
                cause: Cause::new(CauseCode::Answered, "500 Internal Server Error"),
            });
        });
        let codes: Vec<_> = warnings.iter().map(|w| w.code).collect();
        assert_eq!(
            codes,
            [
                "login_disabled",
                "config_missing",
                "proxy_unreachable",
                "caddy_unreachable"
            ]
        );
    }
}
