//! TLS for registry connections (rustls with ring).

use std::sync::Arc;

/// A `reqwest` client builder with the TLS registry clients use (ring,
/// the public web roots), for other HTTP clients of this workspace.
pub fn http_builder() -> reqwest::ClientBuilder {
    let tls = tls_config(None).expect("TLS with the built-in roots and ring's defaults");
    reqwest::Client::builder().tls_backend_preconfigured(tls)
}

/// TLS for registry connections: the public web roots, plus the
/// certificates in `ca_file` when given.
pub(super) fn tls_config(ca_file: Option<&std::path::Path>) -> Result<rustls::ClientConfig, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("the CA file {} holds no certificate", path.display()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| format!("a certificate in {} is unusable: {e}", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
