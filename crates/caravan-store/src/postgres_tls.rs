//! Connections to PostgreSQL with TLS chosen the way libpq chooses it, by `sslmode` in the URL,
//! so a URL that works with `psql` works here, including for managed servers that require TLS:
//!
//! - `disable`: plain TCP.
//! - `prefer` (the default) and `require`: encrypted if the server offers TLS (`require`:
//!   or fail), the certificate not checked — libpq's meaning, which guards against
//!   eavesdropping but not against a server that impersonates the real one.
//! - `verify-full`: encrypted, and the certificate must be valid for the host: issued by an
//!   authority the system trusts, or by the one in `sslrootcert=FILE` (PEM) when given.
//!
//! `verify-ca` (a valid certificate for any host) is refused with what to use instead.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::backend::{StoreError, redact};

/// How the connection is secured, from the URL's `sslmode`.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Security {
    Plain,
    /// Encrypt when offered (`required`: or fail); the certificate is not checked.
    Encrypted {
        required: bool,
    },
    /// Encrypt, and check the certificate against the system's authorities or `roots` (PEM).
    Verified {
        roots: Option<String>,
    },
}

/// A connected client for `url`, secured as its `sslmode` says.
pub fn connect(url: &str) -> Result<postgres::Client, StoreError> {
    let cannot = |why: String| {
        StoreError::Io(format!(
            "cannot connect to PostgreSQL at {}: {why}",
            redact(url)
        ))
    };
    let (security, rest) = security_of(url).map_err(cannot)?;
    let connected = match &security {
        Security::Plain => postgres::Client::connect(&rest, postgres::NoTls),
        Security::Encrypted { .. } => {
            postgres::Client::connect(&rest, MakeRustlsConnect::new(unchecked_config()))
        }
        Security::Verified { roots } => {
            let config = checked_config(roots.as_deref()).map_err(cannot)?;
            postgres::Client::connect(&rest, MakeRustlsConnect::new(config))
        }
    };
    connected.map_err(|e| {
        let why = caravan_core::report::with_causes(&e);
        let hint = if matches!(security, Security::Verified { .. }) && why.contains("certificate")
        {
            "; the server's certificate is not trusted: give its authority's certificate with sslrootcert=FILE (PEM) in the URL"
        } else if why.contains("server does not support TLS") {
            "; the server does not offer TLS: use sslmode=prefer or disable, or turn on ssl in its postgresql.conf"
        } else {
            ""
        };
        cannot(format!("{why}{hint}"))
    })
}

/// The URL's security and the URL to hand the driver (which knows only disable, prefer and
/// require, and no `sslrootcert`).
fn security_of(url: &str) -> Result<(Security, String), String> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, query),
        None => (url, ""),
    };
    let mut mode = None;
    let mut roots = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("sslmode", value)) => mode = Some(value.to_owned()),
            Some(("sslrootcert", value)) => roots = Some(percent_decoded(value)?),
            _ => kept.push(pair),
        }
    }
    let (security, driver_mode) = match mode.as_deref().unwrap_or("prefer") {
        "disable" => (Security::Plain, "disable"),
        "allow" | "prefer" => (Security::Encrypted { required: false }, "prefer"),
        "require" => (Security::Encrypted { required: true }, "require"),
        "verify-full" => (
            Security::Verified {
                roots: roots.clone(),
            },
            "require",
        ),
        "verify-ca" => {
            return Err(
                "sslmode=verify-ca (a valid certificate for any host) is not supported; use sslmode=verify-full, which also checks the host name".into(),
            );
        }
        other => {
            return Err(format!(
                "sslmode={other} is not one of disable, allow, prefer, require, verify-full"
            ));
        }
    };
    if roots.is_some() && !matches!(security, Security::Verified { .. }) {
        return Err(
            "sslrootcert is only used to check the server's certificate: add sslmode=verify-full"
                .into(),
        );
    }
    kept.push(match driver_mode {
        "disable" => "sslmode=disable",
        "prefer" => "sslmode=prefer",
        _ => "sslmode=require",
    });
    Ok((security, format!("{base}?{}", kept.join("&"))))
}

/// `%XX` escapes in a URL query value, decoded (a file path may carry them).
fn percent_decoded(value: &str) -> Result<String, String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("sslrootcert={value} has a broken %-escape"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("sslrootcert={value} is not UTF-8"))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Encrypts without checking who the server is (libpq's `prefer` and `require`); the handshake
/// signatures are still checked, so the session key belongs to whoever holds the certificate.
fn unchecked_config() -> ClientConfig {
    let provider = provider();
    let verifier = Arc::new(Unchecked {
        algorithms: provider.signature_verification_algorithms,
    });
    ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("aws-lc supports the default TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth()
}

/// Checks the certificate and host name against `roots` (a PEM file) or the system's
/// authorities.
fn checked_config(roots: Option<&str>) -> Result<ClientConfig, String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("aws-lc supports the default TLS versions");
    let config = match roots {
        Some(path) => {
            let mut store = rustls::RootCertStore::empty();
            let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect())
                .map_err(|e| {
                    format!("sslrootcert={path} cannot be read as PEM certificates: {e}")
                })?;
            let (added, _) = store.add_parsable_certificates(certificates);
            if added == 0 {
                return Err(format!("sslrootcert={path} holds no usable certificate"));
            }
            builder.with_root_certificates(store).with_no_client_auth()
        }
        None => {
            let verifier = rustls_platform_verifier::Verifier::new(provider)
                .map_err(|e| format!("cannot load the system's certificate authorities: {e}"))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth()
        }
    };
    Ok(config)
}

/// Accepts any certificate, and checks the handshake signatures made with it.
#[derive(Debug)]
struct Unchecked {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_is_read_as_libpq_reads_it_and_the_driver_gets_what_it_knows() {
        let url = "postgres://app@db:5432/caravan";
        assert_eq!(
            security_of(url).unwrap(),
            (
                Security::Encrypted { required: false },
                format!("{url}?sslmode=prefer")
            )
        );
        assert_eq!(
            security_of(&format!("{url}?sslmode=disable&connect_timeout=5")).unwrap(),
            (
                Security::Plain,
                format!("{url}?connect_timeout=5&sslmode=disable")
            )
        );
        assert_eq!(
            security_of(&format!(
                "{url}?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem"
            ))
            .unwrap(),
            (
                Security::Verified {
                    roots: Some("/etc/ca.pem".into())
                },
                format!("{url}?sslmode=require")
            )
        );
        for (bad, says) in [
            ("sslmode=verify-ca", "use sslmode=verify-full"),
            ("sslmode=sometimes", "not one of"),
            ("sslrootcert=/ca.pem", "add sslmode=verify-full"),
            ("sslmode=verify-full&sslrootcert=%zz", "broken %-escape"),
        ] {
            let error = security_of(&format!("{url}?{bad}")).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }
}
