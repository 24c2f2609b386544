//! The HTTP client every outgoing call is made with — to JSON-RPC chains, upstream model
//! servers and a node's API — so all of them trust the same certificate authorities: the
//! system's, plus the operator's `--extra-ca-certs`.

use crate::StoreArgs;

/// How long a JSON-RPC node or a caravan node may take to accept a connection, and then stay
/// silent, before the command gives up and says so (rather than hanging on a dead endpoint).
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
const SILENCE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// A client builder trusting the system's authorities and the PEM certificates in
/// `--extra-ca-certs`, if given, with the timeouts above. Errors name the file and what is
/// wrong with it.
pub fn http_client_builder(store: &StoreArgs) -> Result<reqwest::ClientBuilder, String> {
    let builder = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(SILENCE_TIMEOUT);
    trusting(store, builder)
}

/// The client the gateway forwards to upstream models with: their timeouts, and the same trust.
pub fn upstream_client(store: &StoreArgs) -> Result<reqwest::Client, String> {
    trusting(store, caravan_node::gateway::upstream::client_builder())?
        .build()
        .map_err(|e| format!("cannot make an HTTP client: {e}"))
}

/// `builder`, also trusting the certificate authorities in `--extra-ca-certs`.
fn trusting(
    store: &StoreArgs,
    builder: reqwest::ClientBuilder,
) -> Result<reqwest::ClientBuilder, String> {
    let Some(path) = &store.extra_ca_certs else {
        return Ok(builder);
    };
    let pem = std::fs::read(path).map_err(|e| {
        format!(
            "cannot read the extra certificate authorities in {}: {e}",
            path.display()
        )
    })?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
        format!(
            "{} is not a PEM bundle of certificates ({e}); give a file of -----BEGIN CERTIFICATE----- blocks",
            path.display()
        )
    })?;
    if certificates.is_empty() {
        return Err(format!(
            "{} holds no certificate; give a file of -----BEGIN CERTIFICATE----- blocks",
            path.display()
        ));
    }
    Ok(builder.tls_certs_merge(certificates))
}

/// [`http_client_builder`], built.
pub fn http_client(store: &StoreArgs) -> Result<reqwest::Client, String> {
    http_client_builder(store)?
        .build()
        .map_err(|e| format!("cannot make an HTTP client: {e}"))
}
