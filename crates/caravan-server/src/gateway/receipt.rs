//! Usage receipts signed by the serving node.
//!
//! A receipt is a JSON document (call id, payer, model, what was charged, the node, the time)
//! signed with the node's secp256k1 key as an Ethereum personal message (EIP-191), so any wallet
//! library recovers the signer with `verifyMessage(receipt, signature)` and compares it with the
//! node's address, which is also the account the node is paid its compute share on.
//!
//! Every paid call signs one receipt on its answer's path, so signing uses libsecp256k1 (the
//! `secp256k1` crate), several times faster than k256; both make the same deterministic (RFC 6979,
//! low-s) signature, which a test checks.

use std::path::Path;

use caravan_core::attestation::{address_of, parse_secret_key, recover};
use caravan_core::hash::hex_lower;
use caravan_core::{Address, Hash32, Signature65, keccak256};
use k256::ecdsa::SigningKey;
use secp256k1::{Message, Secp256k1, SecretKey, SignOnly};

/// The node's signing identity.
pub struct NodeSigner {
    secret: SecretKey,
    context: Secp256k1<SignOnly>,
    address: Address,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot use the node key {path}: {why}")]
    Io { path: String, why: std::io::Error },
    #[error(
        "the node key {path} is not 64 hex digits of a secp256k1 secret key; move it away and a new one is made"
    )]
    Invalid { path: String },
}

impl NodeSigner {
    pub fn from_secret(secret: &[u8; 32]) -> Option<NodeSigner> {
        let key = SigningKey::from_bytes(secret.into()).ok()?;
        Some(NodeSigner {
            secret: SecretKey::from_byte_array(*secret).ok()?,
            context: Secp256k1::signing_only(),
            address: address_of(key.verifying_key()),
        })
    }

    /// A fresh random key.
    pub fn generate() -> NodeSigner {
        loop {
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret).expect("the operating system's random source works");
            if let Some(signer) = NodeSigner::from_secret(&secret) {
                return signer;
            }
        }
    }

    /// The key in `path` (hex), creating it (readable by the owner only) on first use.
    pub fn load_or_create(path: &Path) -> Result<NodeSigner, KeyFileError> {
        let shown = path.display().to_string();
        let io = |why| KeyFileError::Io {
            path: shown.clone(),
            why,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => parse_secret_key(&text)
                .ok()
                .and_then(|secret| NodeSigner::from_secret(&secret))
                .ok_or(KeyFileError::Invalid { path: shown }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let signer = NodeSigner::generate();
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                write_private(path, &hex_lower(&signer.secret.secret_bytes())).map_err(io)?;
                Ok(signer)
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The node's address: the account its compute share is paid to.
    pub fn address(&self) -> Address {
        self.address
    }

    /// Signs `message` as an Ethereum personal message; returns the 65-byte `r ‖ s ‖ v` as hex.
    pub fn sign(&self, message: &[u8]) -> String {
        let digest = Message::from_digest(personal_digest(message));
        let (recovery, compact) = self
            .context
            .sign_ecdsa_recoverable(digest, &self.secret)
            .serialize_compact();
        let mut bytes = [0u8; 65];
        bytes[..64].copy_from_slice(&compact);
        bytes[64] = 27 + i32::from(recovery) as u8;
        Signature65(bytes).to_hex()
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

fn personal_digest(message: &[u8]) -> [u8; 32] {
    let mut prefixed = format!("\x19Ethereum Signed Message:\n{}", message.len()).into_bytes();
    prefixed.extend_from_slice(message);
    keccak256(&prefixed).0
}

/// The address that signed `message` with `signature` (hex `r ‖ s ‖ v`, v 27/28 or 0/1), or
/// why it cannot be recovered.
pub fn recover_signer(message: &[u8], signature: &str) -> Result<Address, String> {
    let signature = Signature65::parse(signature)?;
    recover(&Hash32(personal_digest(message)), &signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_recovers_the_node_address_and_nothing_else() {
        // The first anvil/hardhat development key; its address is well known.
        let secret: [u8; 32] = [
            0xac, 0x09, 0x74, 0xbe, 0xc3, 0x9a, 0x17, 0xe3, 0x6b, 0xa4, 0xa6, 0xb4, 0xd2, 0x38,
            0xff, 0x94, 0x4b, 0xac, 0xb4, 0x78, 0xcb, 0xed, 0x5e, 0xfc, 0xae, 0x78, 0x4d, 0x7b,
            0xf4, 0xf2, 0xff, 0x80,
        ];
        let signer = NodeSigner::from_secret(&secret).unwrap();
        assert_eq!(
            signer.address().to_string(),
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
        );
        let receipt = br#"{"call":"0x01","charged":"2000"}"#;
        let signature = signer.sign(receipt);
        assert_eq!(
            recover_signer(receipt, &signature).unwrap(),
            signer.address()
        );
        let forged = br#"{"call":"0x01","charged":"1"}"#;
        assert_ne!(
            recover_signer(forged, &signature).unwrap(),
            signer.address()
        );
        assert!(recover_signer(receipt, "0x1234").is_err());

        // libsecp256k1 signs exactly as k256 (the core's signer) does.
        let key = SigningKey::from_bytes((&secret).into()).unwrap();
        let by_k256 =
            caravan_core::attestation::sign_digest(&key, &Hash32(personal_digest(receipt)));
        assert_eq!(signature, by_k256.to_hex());
    }

    #[test]
    fn the_node_key_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let first = NodeSigner::load_or_create(&path).unwrap();
        let again = NodeSigner::load_or_create(&path).unwrap();
        assert_eq!(first.address(), again.address());
        std::fs::write(&path, "not a key").unwrap();
        assert!(matches!(
            NodeSigner::load_or_create(&path),
            Err(KeyFileError::Invalid { .. })
        ));
    }
}
