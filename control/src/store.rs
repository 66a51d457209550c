//! config.json on disk: reading it with its ETag, and the only writer of it. A save validates
//! with the proxy's own schema code, refuses a stale `If-Match`, writes the config in the
//! file's own shape (`file_shape`: its keys and order, no filled-in defaults), keeps the previous
//! file as `config.json.bak` and replaces the file atomically. Saves are serialized; never leaves a
//! half-written file. In blob mode the same rules hold with the config blob as the place read
//! and written (`blob_backend`). Blocking: call from a blocking pool.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use arc_swap::ArcSwap;
use proxy::config::raw::RawConfig;
use proxy::config::{self, Config, ConfigError, ConfigIssue};
use proxy::process::atomic_file::{remove_stale_temporaries, write_atomically};
use proxy::process::clock::epoch_ms;
use proxy::process::digest::sha256_hex;
use proxy::process::regular_file::{CONFIG_FILE_LIMIT, FileError, read_regular_file};

use crate::blob_backend::BlobBackend;
use crate::errors::AdminError;
use crate::file_shape;
use crate::masking::unmask;

/// The ETag of a config file that does not exist yet.
pub const ABSENT_ETAG: &str = "\"absent\"";

/// What the admin UI's login is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminCredentials {
    /// `server.adminAuth.enabled: false`: no login.
    Open,
    Basic {
        username: String,
        password: String,
    },
    /// config.json exists but cannot be read as a config: nobody can log in until it is
    /// fixed by hand, so a damaged file never falls back to a default password.
    Locked,
    /// config.json did not exist when control started: nobody can log in until one is
    /// created by hand, so a missing file never opens the default password.
    NoConfig,
}

impl AdminCredentials {
    pub fn from_raw(raw: &RawConfig) -> AdminCredentials {
        let auth = &raw.server.admin_auth;
        if !auth.enabled {
            AdminCredentials::Open
        } else if auth.username.trim().is_empty() || auth.password.is_empty() {
            AdminCredentials::Locked
        } else {
            AdminCredentials::Basic {
                username: auth.username.clone(),
                password: auth.password.clone(),
            }
        }
    }

    /// The shipped `admin`/`admin` (or any user with password `admin`) is still in place.
    pub fn is_default_password(&self) -> bool {
        matches!(self, AdminCredentials::Basic { password, .. } if password == DEFAULT_PASSWORD)
    }
}

pub const DEFAULT_PASSWORD: &str = "admin";

/// config.json as it is on disk now.
#[derive(Debug, Clone)]
pub struct OnDisk {
    pub etag: String,
    /// SHA-256 of the bytes, as the proxy reports it for the config it serves.
    pub sha256: Option<String>,
    pub modified_ms: Option<u64>,
    pub content: Content,
    /// The file's text (lossy UTF-8, secrets not masked) when it is at most
    /// `CONFIG_FILE_LIMIT` bytes but not readable as a config; `None` otherwise.
    pub unparsed_text: Option<String>,
    /// In blob mode, the blob's ETag a save must match (empty: no blob yet).
    pub version: String,
}

#[derive(Debug, Clone)]
pub enum Content {
    Missing,
    /// Not JSON, a value of the wrong type, or not a regular file of at most
    /// `CONFIG_FILE_LIMIT` bytes: only the problem is known.
    Unparseable(ConfigIssue),
    Parsed {
        raw: Box<RawConfig>,
        /// The validated config, or every rule it breaks.
        validated: Result<Box<Config>, Vec<ConfigIssue>>,
    },
}

impl OnDisk {
    pub fn issues(&self) -> Vec<ConfigIssue> {
        match &self.content {
            Content::Missing => vec![ConfigIssue {
                path: "(file)".into(),
                message: "config.json does not exist; saving creates it".into(),
            }],
            Content::Unparseable(issue) => vec![issue.clone()],
            Content::Parsed {
                validated: Err(issues),
                ..
            } => issues.clone(),
            Content::Parsed { .. } => Vec::new(),
        }
    }

    pub fn raw(&self) -> Option<&RawConfig> {
        match &self.content {
            Content::Parsed { raw, .. } => Some(raw),
            _ => None,
        }
    }

    pub fn valid(&self) -> Option<&Config> {
        match &self.content {
            Content::Parsed {
                validated: Ok(config),
                ..
            } => Some(config),
            _ => None,
        }
    }
}

/// The outcome of a save.
#[derive(Debug, Clone)]
pub struct Saved {
    pub etag: String,
    pub sha256: String,
    pub raw: RawConfig,
    /// False when the submitted config was byte-for-byte the file already on disk.
    pub changed: bool,
}

pub struct ConfigStore {
    path: PathBuf,
    backup_path: PathBuf,
    /// The config blob, in blob mode.
    blob: Option<BlobBackend>,
    write_lock: Mutex<()>,
    /// The last valid config seen on disk (defaults until there is one).
    last_good: ArcSwap<Config>,
    last_good_sha256: ArcSwap<Option<String>>,
    credentials: ArcSwap<AdminCredentials>,
}

pub fn etag_of(bytes: &[u8]) -> String {
    format!("\"{}\"", &sha256_hex(bytes)[..32])
}

impl ConfigStore {
    /// Opens the store and reads the file once. Temporary files of saves that a kill
    /// interrupted (they may hold every secret) are removed first.
    pub fn open(path: PathBuf) -> anyhow::Result<ConfigStore> {
        ConfigStore::open_with(path, None)
    }

    /// Opens the store on `blob` (blob mode), with `path` as its local cache; `None`: on the
    /// file at `path`.
    pub fn open_with(path: PathBuf, blob: Option<BlobBackend>) -> anyhow::Result<ConfigStore> {
        let file_name = path
            .file_name()
            .context("CONFIG_PATH has no file name")?
            .to_string_lossy()
            .into_owned();
        let backup_path = path.with_file_name(format!("{file_name}.bak"));
        remove_stale_temporaries(&path);
        remove_stale_temporaries(&backup_path);
        let defaults = config::validate(RawConfig::default())
            .map_err(|e| anyhow::anyhow!("the default config is invalid: {e}"))?;
        let store = ConfigStore {
            path,
            backup_path,
            blob,
            write_lock: Mutex::new(()),
            credentials: ArcSwap::from_pointee(AdminCredentials::from_raw(&defaults.raw)),
            last_good: ArcSwap::from_pointee(defaults),
            last_good_sha256: ArcSwap::from_pointee(None),
        };
        let on_disk = store.read()?;
        match &on_disk.content {
            Content::Missing => store
                .credentials
                .store(Arc::new(AdminCredentials::NoConfig)),
            Content::Unparseable(_) => store.credentials.store(Arc::new(AdminCredentials::Locked)),
            Content::Parsed { raw, validated } => {
                store
                    .credentials
                    .store(Arc::new(AdminCredentials::from_raw(raw)));
                if let Ok(config) = validated {
                    store.adopt(config, on_disk.sha256.clone());
                }
            }
        }
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the config is kept: the file's path, or the blob's URL.
    pub fn location(&self) -> String {
        match &self.blob {
            Some(blob) => blob.describe(),
            None => self.path.display().to_string(),
        }
    }

    pub fn blob(&self) -> Option<&BlobBackend> {
        self.blob.as_ref()
    }

    pub fn backup_path(&self) -> &Path {
        &self.backup_path
    }

    /// Reads and validates the file (or the blob) as it is now.
    pub fn read(&self) -> anyhow::Result<OnDisk> {
        Ok(self.read_with_bytes()?.0)
    }

    /// The file (or the blob) as it is now, and its bytes when it could be read.
    fn read_with_bytes(&self) -> anyhow::Result<(OnDisk, Option<Vec<u8>>)> {
        if let Some(blob) = &self.blob {
            let loaded = blob.load()?;
            return Ok(match loaded.bytes {
                None => (
                    OnDisk {
                        etag: ABSENT_ETAG.into(),
                        sha256: None,
                        modified_ms: None,
                        content: Content::Missing,
                        version: loaded.version,
                        unparsed_text: None,
                    },
                    None,
                ),
                Some(bytes) => {
                    let content = parse(&bytes);
                    let on_disk = OnDisk {
                        etag: etag_of(&bytes),
                        sha256: Some(sha256_hex(&bytes)),
                        modified_ms: None,
                        unparsed_text: unparsed_text(&content, &bytes),
                        content,
                        version: loaded.version,
                    };
                    (on_disk, Some(bytes))
                }
            });
        }
        let bytes = match read_regular_file(&self.path, CONFIG_FILE_LIMIT) {
            Ok(bytes) => bytes,
            Err(FileError::Missing) => {
                let missing = OnDisk {
                    etag: ABSENT_ETAG.into(),
                    sha256: None,
                    modified_ms: None,
                    content: Content::Missing,
                    unparsed_text: None,
                    version: String::new(),
                };
                return Ok((missing, None));
            }
            // A FIFO, a device, a directory, an oversized or unreadable file: reported like a
            // file that is not JSON; a save (with this ETag) replaces it.
            Err(err) => {
                let message = err.to_string();
                let unreadable = OnDisk {
                    etag: etag_of(message.as_bytes()),
                    sha256: None,
                    modified_ms: None,
                    content: Content::Unparseable(ConfigIssue {
                        path: "(file)".into(),
                        message,
                    }),
                    unparsed_text: None,
                    version: String::new(),
                };
                return Ok((unreadable, None));
            }
        };
        let modified_ms = fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok()
            .map(epoch_ms);
        let content = parse(&bytes);
        let unparsed_text = unparsed_text(&content, &bytes);
        let on_disk = OnDisk {
            etag: etag_of(&bytes),
            sha256: Some(sha256_hex(&bytes)),
            modified_ms,
            content,
            version: String::new(),
            unparsed_text,
        };
        Ok((on_disk, Some(bytes)))
    }

    /// The last valid config seen on disk.
    pub fn last_good(&self) -> Arc<Config> {
        self.last_good.load_full()
    }

    pub fn credentials(&self) -> Arc<AdminCredentials> {
        self.credentials.load_full()
    }

    fn adopt(&self, config: &Config, sha256: Option<String>) {
        self.credentials
            .store(Arc::new(AdminCredentials::from_raw(&config.raw)));
        self.last_good.store(Arc::new(config.clone()));
        self.last_good_sha256.store(Arc::new(sha256));
    }

    /// Re-reads the file; adopts it when it is valid and differs from the last good one.
    /// Returns whether the last good config changed.
    pub fn refresh(&self) -> anyhow::Result<bool> {
        let on_disk = self.read()?;
        let Some(config) = on_disk.valid() else {
            if **self.credentials.load() == AdminCredentials::NoConfig
                && !matches!(on_disk.content, Content::Missing)
            {
                self.credentials.store(Arc::new(AdminCredentials::Locked));
            }
            return Ok(false);
        };
        if **self.last_good_sha256.load() == on_disk.sha256 {
            return Ok(false);
        }
        self.adopt(config, on_disk.sha256.clone());
        Ok(true)
    }

    /// Validates `submitted` and writes it, unless the file changed since the client read it
    /// (`if_match` is the ETag it read; `None` overwrites whatever is there). Masked secrets
    /// in `submitted` keep the values on disk.
    pub fn save(
        &self,
        mut submitted: RawConfig,
        if_match: Option<&str>,
    ) -> Result<Saved, AdminError> {
        self.locked_update(|current| {
            if let Some(expected) = if_match
                && expected != current.etag
            {
                return Err(AdminError::Conflict {
                    current_etag: current.etag.clone(),
                });
            }
            let issues = unmask(&mut submitted, current.raw());
            Ok((submitted, issues))
        })
    }

    /// Validates `submitted` as a save would, without writing it.
    pub fn check(&self, mut submitted: RawConfig) -> anyhow::Result<Vec<ConfigIssue>> {
        let current = self.read()?;
        let mut issues = unmask(&mut submitted, current.raw());
        issues.extend(default_password_issue(&submitted));
        let bytes = serialize(&normalize(submitted))?;
        if let Err(err) = config::load(&bytes) {
            issues.extend(err.issues());
        }
        Ok(issues)
    }

    /// Applies `change` to the config on disk and writes the result (client keys). The file
    /// on disk must be valid.
    pub fn update<T>(
        &self,
        change: impl FnOnce(&mut RawConfig) -> Result<T, AdminError>,
    ) -> Result<(Saved, T), AdminError> {
        let mut outcome = None;
        let saved = self.locked_update(|current| {
            let Some(config) = current.valid() else {
                return Err(AdminError::InvalidConfig(current.issues()));
            };
            let mut raw = config.raw.clone();
            outcome = Some(change(&mut raw)?);
            Ok((raw, Vec::new()))
        })?;
        let outcome = outcome.ok_or_else(|| {
            AdminError::Internal("updating the config", anyhow::anyhow!("no outcome"))
        })?;
        Ok((saved, outcome))
    }

    fn locked_update(
        &self,
        next: impl FnOnce(&OnDisk) -> Result<(RawConfig, Vec<ConfigIssue>), AdminError>,
    ) -> Result<Saved, AdminError> {
        let _guard = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
        let (current, previous) = self
            .read_with_bytes()
            .map_err(AdminError::internal("reading config.json"))?;
        let (raw, mut issues) = next(&current)?;
        let raw = normalize(raw);

        let bytes = file_shape::shaped(&raw, previous.as_deref())
            .map_err(AdminError::internal("serializing the config"))?;
        if bytes.len() > CONFIG_FILE_LIMIT {
            issues.push(ConfigIssue {
                path: "(file)".into(),
                message: format!(
                    "the config would be {} bytes as written, over the limit of {CONFIG_FILE_LIMIT} bytes",
                    bytes.len()
                ),
            });
            return Err(AdminError::InvalidConfig(issues));
        }
        issues.extend(default_password_issue(&raw));
        let validated = match config::load(&bytes) {
            Ok(validated) if issues.is_empty() => validated,
            Ok(_) => return Err(AdminError::InvalidConfig(issues)),
            Err(err) => {
                issues.extend(err.issues());
                return Err(AdminError::InvalidConfig(issues));
            }
        };
        let sha256 = sha256_hex(&bytes);
        let etag = etag_of(&bytes);
        if current.sha256.as_deref() == Some(sha256.as_str()) {
            self.adopt(&validated, Some(sha256.clone()));
            return Ok(Saved {
                etag,
                sha256,
                raw,
                changed: false,
            });
        }
        if let Some(blob) = &self.blob {
            if let Err(err) = blob.save(&bytes, &current.version) {
                return Err(match err {
                    // Another writer got there first: the client is told the blob's content now.
                    AdminError::Conflict { .. } => AdminError::Conflict {
                        current_etag: self
                            .read()
                            .map(|now| now.etag)
                            .unwrap_or_else(|_| ABSENT_ETAG.into()),
                    },
                    other => other,
                });
            }
        } else {
            if let Some(previous) = &previous {
                write_atomically(&self.backup_path, previous)
                    .map_err(AdminError::internal("writing config.json.bak"))?;
            }
            write_atomically(&self.path, &bytes)
                .map_err(AdminError::internal("writing config.json"))?;
        }
        self.adopt(&validated, Some(sha256.clone()));
        tracing::info!(sha256 = %sha256, "config.json written");
        Ok(Saved {
            etag,
            sha256,
            raw,
            changed: true,
        })
    }
}

/// The text of bytes that are not readable as a config, for showing them (masked) as they are.
fn unparsed_text(content: &Content, bytes: &[u8]) -> Option<String> {
    matches!(content, Content::Unparseable(_)).then(|| String::from_utf8_lossy(bytes).into_owned())
}

fn parse(bytes: &[u8]) -> Content {
    match config::parse_raw(bytes) {
        Err(ConfigError::Syntax(issue)) => Content::Unparseable(issue),
        Err(ConfigError::Invalid(issues)) => {
            Content::Unparseable(issues.into_iter().next().unwrap_or(ConfigIssue {
                path: "(root)".into(),
                message: "unreadable".into(),
            }))
        }
        Ok(raw) => {
            let validated = config::validate(raw.clone())
                .map(Box::new)
                .map_err(|e| e.issues());
            Content::Parsed {
                raw: Box::new(raw),
                validated,
            }
        }
    }
}

/// control never writes the shipped password: a file created from the example has it, and the
/// first save from the admin UI must replace it (a hand edit may still set anything).
fn default_password_issue(raw: &RawConfig) -> Option<ConfigIssue> {
    AdminCredentials::from_raw(raw)
        .is_default_password()
        .then(|| ConfigIssue {
            path: "server.adminAuth.password".into(),
            message: format!(
                "must not be the default \"{DEFAULT_PASSWORD}\": choose a password of your own"
            ),
        })
}

/// What control writes is explicit: a key without `status` is written as active.
fn normalize(mut raw: RawConfig) -> RawConfig {
    for key in &mut raw.client_keys {
        if key.status.is_none() {
            key.status = Some("active".into());
        }
    }
    raw
}

fn serialize(raw: &RawConfig) -> anyhow::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(raw)?;
    bytes.push(b'\n');
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn store_with(content: &serde_json::Value) -> (tempfile::TempDir, ConfigStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        fs::write(&path, content.to_string()).expect("write");
        let store = ConfigStore::open(path).expect("opens");
        (dir, store)
    }

    /// `value` as submitted, with an admin password of its own unless it sets one.
    fn raw_of(mut value: serde_json::Value) -> RawConfig {
        if value["server"]["adminAuth"]["password"].is_null() {
            value["server"]["adminAuth"]["password"] = json!("s3cret");
        }
        config::parse_raw(value.to_string().as_bytes()).expect("parses")
    }

    #[test]
    fn the_default_password_is_never_written() {
        let (_dir, store) = store_with(&json!({}));
        let before = fs::read(store.path()).expect("read");
        let submitted = json!({"server": {"adminAuth": {"password": DEFAULT_PASSWORD}}});
        let result = store.save(raw_of(submitted.clone()), None);
        let Err(AdminError::InvalidConfig(issues)) = result else {
            panic!("expected a refusal, got {result:?}");
        };
        assert_eq!(issues[0].path, "server.adminAuth.password");
        assert_eq!(fs::read(store.path()).expect("read"), before);
        assert_eq!(
            store.check(raw_of(submitted)).expect("checks")[0].path,
            "server.adminAuth.password"
        );
        let disabled = json!({"server": {"adminAuth": {"enabled": false, "password": "admin"}}});
        store
            .save(raw_of(disabled), None)
            .expect("no login, no password");
    }

    #[test]
    fn a_save_with_a_stale_etag_is_a_conflict() {
        let (_dir, store) = store_with(&json!({}));
        let result = store.save(raw_of(json!({"server": {"port": 4000}})), Some("\"stale\""));
        assert!(matches!(result, Err(AdminError::Conflict { .. })));
    }

    #[test]
    fn a_save_keeps_the_previous_file_as_backup() {
        let (_dir, store) = store_with(&json!({"server": {"port": 4000}}));
        let before = fs::read(store.path()).expect("read");
        let etag = etag_of(&before);
        let saved = store
            .save(raw_of(json!({"server": {"port": 4001}})), Some(&etag))
            .expect("saves");
        assert!(saved.changed);
        assert_eq!(fs::read(store.backup_path()).expect("backup"), before);
        let after: serde_json::Value =
            serde_json::from_slice(&fs::read(store.path()).expect("read")).expect("json");
        assert_eq!(after["server"]["port"], 4001);
    }

    #[test]
    fn an_invalid_config_is_refused_and_the_file_is_untouched() {
        let (_dir, store) = store_with(&json!({}));
        let before = fs::read(store.path()).expect("read");
        let result = store.save(
            raw_of(json!({"models": [{"id": "m", "upstream": "nope"}]})),
            None,
        );
        let Err(AdminError::InvalidConfig(issues)) = result else {
            panic!("expected invalid config, got {result:?}");
        };
        assert_eq!(issues[0].path, "models[0].upstream");
        assert_eq!(fs::read(store.path()).expect("read"), before);
    }

    #[test]
    fn unknown_keys_survive_a_save() {
        let (_dir, store) = store_with(&json!({}));
        store
            .save(
                raw_of(json!({"note": "kept", "server": {"custom": {"x": 1}}})),
                None,
            )
            .expect("saves");
        let after: serde_json::Value =
            serde_json::from_slice(&fs::read(store.path()).expect("read")).expect("json");
        assert_eq!(after["note"], "kept");
        assert_eq!(after["server"]["custom"]["x"], 1);
    }

    #[test]
    fn an_unparseable_file_locks_the_login() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        fs::write(&path, "{ not json").expect("write");
        let store = ConfigStore::open(path).expect("opens");
        assert_eq!(*store.credentials(), AdminCredentials::Locked);
    }

    #[cfg(unix)]
    #[test]
    fn a_device_or_a_fifo_in_place_of_the_file_is_reported_and_locks_the_login() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        std::os::unix::fs::symlink("/dev/zero", &path).expect("symlink");
        let store = ConfigStore::open(path.clone()).expect("opens");
        assert_eq!(*store.credentials(), AdminCredentials::Locked);
        let on_disk = store.read().expect("read");
        assert_eq!(
            on_disk.issues()[0].message,
            "the file is a device, not a regular file"
        );

        fs::remove_file(&path).expect("remove");
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .expect("mkfifo runs");
        assert!(made.success());
        let on_disk = store.read().expect("read");
        assert_eq!(
            on_disk.issues()[0].message,
            "the file is a FIFO, not a regular file"
        );
        store
            .save(raw_of(json!({})), Some(&on_disk.etag))
            .expect("a save replaces it");
        assert!(fs::metadata(&path).expect("meta").is_file());
    }

    #[test]
    fn an_oversized_file_is_reported_and_an_oversized_save_is_refused() {
        let (_dir, store) = store_with(&json!({"notes": "x".repeat(CONFIG_FILE_LIMIT)}));
        assert_eq!(
            store.read().expect("read").issues()[0].message,
            format!("the file is larger than the limit of {CONFIG_FILE_LIMIT} bytes")
        );
        let result = store.save(
            raw_of(json!({"notes": "y".repeat(CONFIG_FILE_LIMIT)})),
            None,
        );
        let Err(AdminError::InvalidConfig(issues)) = result else {
            panic!("expected a refusal, got {result:?}");
        };
        assert_eq!(issues[0].path, "(file)");
    }

    #[test]
    fn opening_removes_the_temporary_files_of_interrupted_saves() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        fs::write(&path, "{}").expect("write");
        let stale = [
            dir.path().join(".config.json.77.3.tmp"),
            dir.path().join(".config.json.bak.77.2.tmp"),
        ];
        for file in &stale {
            fs::write(file, "{\"secret\": true}").expect("write");
        }
        ConfigStore::open(path).expect("opens");
        for file in &stale {
            assert!(!file.exists(), "{} was kept", file.display());
        }
    }

    #[test]
    fn a_missing_file_reads_as_absent_and_a_save_creates_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        let store = ConfigStore::open(path.clone()).expect("opens");
        assert_eq!(*store.credentials(), AdminCredentials::NoConfig);
        assert_eq!(store.read().expect("read").etag, ABSENT_ETAG);
        store
            .save(raw_of(json!({})), Some(ABSENT_ETAG))
            .expect("saves");
        assert!(path.exists());
    }

    #[cfg(unix)]
    #[test]
    fn a_rewritten_file_keeps_its_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let (_dir, store) = store_with(&json!({}));
        fs::set_permissions(store.path(), fs::Permissions::from_mode(0o640)).expect("chmod");
        store
            .save(raw_of(json!({"server": {"port": 1234}})), None)
            .expect("saves");
        let mode = fs::metadata(store.path())
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640);
    }

    #[test]
    fn keys_without_status_are_written_as_active() {
        let (_dir, store) = store_with(&json!({}));
        store
            .save(raw_of(json!({"apiKeys": [{"id": "a", "key": "k"}]})), None)
            .expect("saves");
        let after: serde_json::Value =
            serde_json::from_slice(&fs::read(store.path()).expect("read")).expect("json");
        assert_eq!(after["apiKeys"][0]["status"], "active");
    }
}
