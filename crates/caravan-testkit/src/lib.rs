//! Test support shared by caravan's crates. Nothing here is linked into the node.
//!
//! [`TlsFront`] puts HTTPS in front of a plain local server (anvil, a stand-in upstream), signed
//! by a certificate authority made up for the test, so tests can check that caravan reaches
//! HTTPS endpoints, trusts an operator's extra CA when told to, and refuses an unknown one.
//!
//! [`SmallDisk`] is a size-limited filesystem the test mounts, so a store on it meets a real
//! full disk.

use std::net::SocketAddr;
use std::sync::Arc;

mod small_disk;
pub use small_disk::{Ballast, SmallDisk};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// An HTTPS listener on a free loopback port that forwards each connection's decrypted bytes to
/// a plain TCP server. Its certificate names `localhost` and `127.0.0.1` and is signed by a CA
/// that exists only in this test. Stops when dropped.
pub struct TlsFront {
    port: u16,
    ca_pem: String,
    task: tokio::task::JoinHandle<()>,
}

impl TlsFront {
    /// Starts the front on the current tokio runtime, forwarding to `target`.
    pub async fn start(target: SocketAddr) -> TlsFront {
        let ca_key = KeyPair::generate().expect("a CA key");
        let mut ca_params = CertificateParams::default();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "caravan test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("a CA certificate");
        let ca_pem = ca_cert.pem();
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().expect("a server key");
        let mut server_params =
            CertificateParams::new(vec!["localhost".to_owned()]).expect("a server name");
        server_params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        let server_cert = server_params
            .signed_by(&server_key, &issuer)
            .expect("a server certificate");
        let chain = vec![CertificateDer::from(server_cert.der().to_vec())];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
        let config = ServerConfig::builder_with_provider(Arc::new(
            tokio_rustls::rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("a server TLS configuration");
        let acceptor = TlsAcceptor::from(Arc::new(config));

        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let port = listener.local_addr().expect("a bound port").port();
        let task = tokio::spawn(async move {
            while let Ok((incoming, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A client that refuses the certificate ends the handshake: nothing to forward.
                    let Ok(mut decrypted) = acceptor.accept(incoming).await else {
                        return;
                    };
                    let Ok(mut plain) = TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut decrypted, &mut plain).await;
                });
            }
        });
        TlsFront { port, ca_pem, task }
    }

    /// `https://127.0.0.1:PORT` followed by `path` (for example `/v1`).
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// The test CA's certificate, PEM-encoded: what an operator would pass as an extra CA.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}
