//! TLS for PostgreSQL connections, with libpq's `sslmode` meanings: `prefer` and `require`
//! encrypt without checking the server's certificate, `verify-ca` checks that a trusted
//! authority signed it, `verify-full` also that it names the host. Trusted authorities come from
//! `sslrootcert` when given, else from the system's store.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::core::config::PgUrl;
use crate::core::error::{exit, Error, Result};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The connector for `url`'s `sslmode` (never called for `disable`).
pub fn connector(url: &PgUrl) -> Result<tokio_postgres_rustls::MakeRustlsConnect> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(url, e.to_string()))?;
    let verifier: Arc<dyn ServerCertVerifier> = match url.sslmode.as_str() {
        "verify-full" | "verify-ca" => {
            let roots = Arc::new(roots(url)?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| tls_error(url, e.to_string()))?;
            if url.sslmode == "verify-ca" {
                Arc::new(AnyName(webpki))
            } else {
                webpki
            }
        }
        _ => Arc::new(Unchecked(provider)),
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

fn tls_error(url: &PgUrl, detail: String) -> Error {
    Error::Postgres {
        target: url.redacted.clone(),
        detail: format!("TLS could not be set up: {detail}"),
        exit: exit::UNREACHABLE,
    }
}

fn roots(url: &PgUrl) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    match &url.sslrootcert {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| Error::Usage(format!(
                    "sslrootcert '{}' could not be read as PEM certificates ({e}); name a file of the authorities to trust",
                    path.display()
                )))?;
            for c in certs {
                store
                    .add(c)
                    .map_err(|e| tls_error(url, format!("{}: {e}", path.display())))?;
            }
        }
        None => {
            for c in rustls_native_certs::load_native_certs().certs {
                // A system store may hold certificates rustls cannot use; the others still count.
                let _ = store.add(c);
            }
        }
    }
    if store.is_empty() {
        return Err(tls_error(
            url,
            format!(
                "sslmode={} needs trusted authorities and none were found: add sslrootcert=FILE to the URL",
                url.sslmode
            ),
        ));
    }
    Ok(store)
}

/// `prefer` and `require`: the channel is encrypted, the certificate is not checked (libpq's
/// meaning of these modes), but the handshake's signatures are.
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted authority; the name in it is not compared.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
