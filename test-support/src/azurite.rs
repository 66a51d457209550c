//! Azurite, the Azure Storage emulator (npm package `azurite`), as a child process serving the
//! Blob service on a free loopback port from a temporary directory, that a test can stop and
//! start again on the same port (Blob Storage down, then back). Plain HTTP with an account SAS
//! signed with the emulator's well-known key, or HTTPS with OAuth (`--oauth basic`) for the
//! Entra ID path.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::{free_port, wait_until_blocking};

/// The emulator's account and its published key.
pub const ACCOUNT: &str = "devstoreaccount1";
const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// HTTPS with OAuth: the certificate and key files Azurite serves with.
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Tls {
    /// A new test CA and a certificate for `127.0.0.1` and `localhost` signed by it, written
    /// to `dir`; returns the files and the CA's PEM (what a client must trust).
    pub fn generate(dir: &Path) -> (Tls, String) {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let ca_key = KeyPair::generate().expect("a CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "azurite test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("the CA");
        let key = KeyPair::generate().expect("a server key");
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()])
            .expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        params.is_ca = IsCa::ExplicitNoCa;
        let cert = params
            .signed_by(&key, &ca, &ca_key)
            .expect("the certificate");
        let tls = Tls {
            cert: dir.join("azurite-cert.pem"),
            key: dir.join("azurite-key.pem"),
        };
        std::fs::write(&tls.cert, cert.pem()).expect("write the certificate");
        std::fs::write(&tls.key, key.serialize_pem()).expect("write the key");
        (tls, ca.pem())
    }
}

pub struct Azurite {
    pub port: u16,
    binary: PathBuf,
    location: tempfile_dir::Dir,
    tls: Option<Tls>,
    child: Option<Child>,
}

impl Azurite {
    /// A running emulator over HTTP, or `None` (the test skips) where `azurite-blob` is not
    /// installed; in CI, where .ci/run installs it, its absence fails the test.
    pub fn start() -> Option<Azurite> {
        Azurite::start_with(None)
    }

    /// Over HTTPS with `tls`, accepting Entra ID-shaped bearer tokens (`--oauth basic`).
    pub fn start_with(tls: Option<Tls>) -> Option<Azurite> {
        let mut azurite = Azurite::stopped(free_port(), tls)?;
        azurite.restart();
        Some(azurite)
    }

    /// An emulator on `port` that is not started yet (Blob Storage unreachable until
    /// [`Azurite::restart`]).
    pub fn stopped(port: u16, tls: Option<Tls>) -> Option<Azurite> {
        let Some(binary) = find("azurite-blob") else {
            if std::env::var_os("CI").is_some() {
                panic!("azurite-blob is required in CI but was not found; .ci/run installs it");
            }
            eprintln!("skipping: azurite-blob not found (npm install -g azurite)");
            return None;
        };
        Some(Azurite {
            port,
            binary,
            location: tempfile_dir::Dir::new(),
            tls,
            child: None,
        })
    }

    /// `http(s)://127.0.0.1:PORT/devstoreaccount1`.
    pub fn account_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    /// An account SAS for the Blob service (read, write, delete, list, add, create), valid
    /// until 2099.
    pub fn sas(&self) -> String {
        account_sas()
    }

    /// Stops the emulator (SIGTERM, so that it saves its data for the next start; SIGKILL
    /// after 10 s).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let exited = wait_until_blocking("Azurite to stop", Duration::from_secs(10), || {
            matches!(child.try_wait(), Ok(Some(_)))
        });
        if exited.is_err() {
            let _ = child.kill();
        }
        let _ = child.wait();
    }

    /// Starts the emulator (again) on its port with its data, and waits until it accepts
    /// connections.
    pub fn restart(&mut self) {
        self.stop();
        let mut command = Command::new(&self.binary);
        command
            .args([
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                &self.port.to_string(),
            ])
            .arg("--location")
            .arg(self.location.path())
            .args([
                "--skipApiVersionCheck",
                "--loose",
                "--silent",
                "--disableTelemetry",
            ]);
        if let Some(tls) = &self.tls {
            command
                .arg("--cert")
                .arg(&tls.cert)
                .arg("--key")
                .arg(&tls.key)
                .args(["--oauth", "basic"]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("azurite-blob starts");
        self.child = Some(child);
        let port = self.port;
        if let Err(timed_out) = wait_until_blocking(
            "Azurite to accept connections",
            Duration::from_secs(30),
            || TcpStream::connect(("127.0.0.1", port)).is_ok(),
        ) {
            panic!("{timed_out}");
        }
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn account_sas() -> String {
    let (permissions, services, types, expiry, protocol, version) = (
        "rwdlac",
        "b",
        "sco",
        "2099-01-01T00:00:00Z",
        "https,http",
        "2019-12-12",
    );
    let to_sign = [
        ACCOUNT,
        permissions,
        services,
        types,
        "",
        expiry,
        "",
        protocol,
        version,
        "",
    ]
    .join("\n");
    let key = base64::engine::general_purpose::STANDARD
        .decode(ACCOUNT_KEY)
        .expect("the emulator key is base64");
    let signature =
        base64::engine::general_purpose::STANDARD.encode(hmac_sha256(&key, to_sign.as_bytes()));
    let encoded: String = url_encode(&signature);
    format!(
        "sv={version}&ss={services}&srt={types}&sp={permissions}&se={}&spr={}&sig={encoded}",
        url_encode(expiry),
        url_encode(protocol)
    )
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/local/bin"), PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A temporary directory removed on drop, without a dependency on `tempfile`.
mod tempfile_dir {
    use super::*;

    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new() -> Dir {
            let path = std::env::temp_dir().join(format!(
                "azurite-{}-{}",
                std::process::id(),
                crate::free_port()
            ));
            std::fs::create_dir_all(&path).expect("a temporary directory for Azurite");
            Dir(path)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_the_rfc_4231_vector() {
        // RFC 4231, test case 2.
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
