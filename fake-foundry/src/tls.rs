//! The test PKI of the fake HTTPS servers: a fresh certificate authority per fake and a server
//! certificate for `localhost` and `127.0.0.1` signed by it. Keys live only in memory and only for
//! tests; nothing here ever reads or trusts the system's certificate store.

use std::io;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// Names the server certificate is valid for: a DNS name and an IP address SAN.
const SERVER_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// A test CA and the rustls server configuration presenting a certificate it signed.
pub(crate) struct TestPki {
    /// The CA certificate, PEM-encoded: what a client must trust.
    pub ca_pem: String,
    /// Serves the leaf certificate (followed by the CA) with the `ring` provider.
    pub server_config: rustls::ServerConfig,
}

/// Generates a new CA and a server certificate for [`SERVER_NAMES`].
pub(crate) fn localhost_pki(ca_name: &str) -> io::Result<TestPki> {
    let ca_key = KeyPair::generate().map_err(io::Error::other)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(io::Error::other)?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, ca_name);
    ca_params
        .distinguished_name
        .push(DnType::OrganizationName, "fake-foundry tests");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(io::Error::other)?;

    let server_key = KeyPair::generate().map_err(io::Error::other)?;
    let mut server_params = CertificateParams::new(SERVER_NAMES.map(str::to_owned).to_vec())
        .map_err(io::Error::other)?;
    server_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    server_params.is_ca = IsCa::ExplicitNoCa;
    server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server_params.use_authority_key_identifier_extension = true;
    let server_cert = server_params
        .signed_by(&server_key, &ca_cert, &ca_key)
        .map_err(io::Error::other)?;

    let chain = vec![server_cert.der().clone(), ca_cert.der().clone()];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(io::Error::other)?;
    Ok(TestPki {
        ca_pem: ca_cert.pem(),
        server_config,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_certificate_is_pem_encoded() {
        let pki = localhost_pki("test CA").expect("generate the test PKI");
        assert!(pki.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    }

    #[test]
    fn each_pki_has_its_own_ca() {
        let a = localhost_pki("a").expect("generate the first PKI");
        let b = localhost_pki("b").expect("generate the second PKI");
        assert_ne!(a.ca_pem, b.ca_pem);
    }
}
