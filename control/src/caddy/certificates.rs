//! The certificates Caddy keeps in its storage (`<data dir>/caddy/certificates/<issuer>/<name>/
//! <name>.crt`): names, issuer and validity, read from the files. Blocking. Never reads a
//! private key.

use std::path::Path;

use serde::Serialize;
use x509_parser::extensions::GeneralName;
use x509_parser::pem::parse_x509_pem;

#[derive(Debug, Clone, Serialize)]
pub struct CertificateInfo {
    /// DNS names (subject alternative names, or the common name).
    pub names: Vec<String>,
    pub issuer: String,
    /// The issuer directory in Caddy's storage, e.g. `acme-v02.api.letsencrypt.org-directory`
    /// or `local` for Caddy's internal CA.
    pub issuer_key: String,
    pub not_before_ms: i64,
    pub not_after_ms: i64,
    pub file: String,
}

/// Every readable certificate under `storage_dir`, soonest expiry first.
pub fn list(storage_dir: &Path) -> Vec<CertificateInfo> {
    let mut found = Vec::new();
    let Ok(issuers) = std::fs::read_dir(storage_dir.join("certificates")) else {
        return found;
    };
    for issuer in issuers.flatten() {
        let issuer_key = issuer.file_name().to_string_lossy().into_owned();
        let Ok(names) = std::fs::read_dir(issuer.path()) else {
            continue;
        };
        for name in names.flatten() {
            let Ok(files) = std::fs::read_dir(name.path()) else {
                continue;
            };
            for file in files.flatten() {
                let path = file.path();
                if path.extension().and_then(|e| e.to_str()) != Some("crt") {
                    continue;
                }
                match std::fs::read(&path) {
                    Ok(pem) => {
                        if let Some(info) = describe(&pem, &issuer_key, &path) {
                            found.push(info);
                        }
                    }
                    Err(err) => {
                        tracing::debug!(error = %err, path = %path.display(), "certificate not readable")
                    }
                }
            }
        }
    }
    found.sort_by_key(|c| c.not_after_ms);
    found
}

/// The leaf (first) certificate of a PEM chain.
pub fn describe(pem: &[u8], issuer_key: &str, path: &Path) -> Option<CertificateInfo> {
    let (_, pem) = parse_x509_pem(pem).ok()?;
    let cert = pem.parse_x509().ok()?;
    let mut names: Vec<String> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(name) => Some((*name).to_string()),
                    GeneralName::IPAddress(bytes) => ip_text(bytes),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty()
        && let Some(cn) = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
    {
        names.push(cn.to_string());
    }
    let issuer = cert
        .issuer()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string)
        .or_else(|| {
            cert.issuer()
                .iter_organization()
                .next()
                .and_then(|o| o.as_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_else(|| cert.issuer().to_string());
    Some(CertificateInfo {
        names,
        issuer,
        issuer_key: issuer_key.to_string(),
        not_before_ms: cert.validity().not_before.timestamp() * 1000,
        not_after_ms: cert.validity().not_after.timestamp() * 1000,
        file: path.display().to_string(),
    })
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes)
            .ok()
            .map(|b| std::net::IpAddr::from(b).to_string()),
        16 => <[u8; 16]>::try_from(bytes)
            .ok()
            .map(|b| std::net::IpAddr::from(b).to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_or_missing_storage_has_no_certificates() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(list(dir.path()).is_empty());
        assert!(list(&dir.path().join("missing")).is_empty());
    }

    #[test]
    fn garbage_is_skipped() {
        assert!(describe(b"not a certificate", "local", Path::new("x.crt")).is_none());
    }
}
