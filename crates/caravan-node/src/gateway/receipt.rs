//! Usage receipts signed by the serving node.
//!
//! A receipt is a JSON document (call id, payer, model, what was charged, the node, the time)
//! signed with the node's secp256k1 key as an Ethereum personal message (EIP-191), so any wallet
//! library recovers the signer with `verifyMessage(receipt, signature)` and compares it with the
//! node's address, which is also the account the node is paid its compute share on.
//!
//! Every paid call signs one receipt on its answer's path. Almost all of an ECDSA signature's
//! work — the point `k·G` and the inverse `k⁻¹` of a random nonce `k` — does not depend on the
//! message, so a signer serving calls ([`NodeSigner::with_prepared_nonces`]) has a thread of its
//! own prepare nonces ahead, and a receipt is then signed with two scalar multiplications,
//! `s = k⁻¹·(z + r·d)`. Each prepared nonce is taken off a queue and used once. When none is
//! ready, or for a signer without the thread, it signs with libsecp256k1 (the `secp256k1`
//! crate): deterministic RFC 6979 nonces, the same signature k256 makes, which a test checks.
//! Both kinds are low-s Ethereum signatures that any wallet library verifies alike.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use caravan_core::attestation::{address_of, parse_secret_key, personal_message_digest, recover};
use caravan_core::hash::hex_lower;
use caravan_core::{Address, Signature65};
use k256::ecdsa::SigningKey;
use k256::elliptic_curve::PrimeField;
use k256::elliptic_curve::ops::Reduce;
use k256::elliptic_curve::scalar::IsHigh;
use k256::{NonZeroScalar, Scalar, U256};
use secp256k1::{Message, Secp256k1, SecretKey, SignOnly};

/// How many prepared nonces a serving signer keeps ready: enough for a burst of calls.
const PREPARED_NONCES: usize = 256;
/// The thread tops the nonces up once they fall to this many, so that it wakes once per
/// `PREPARED_NONCES - REFILL_AT` signatures rather than after each one.
const REFILL_AT: usize = PREPARED_NONCES / 2;

/// The node's signing identity.
pub struct NodeSigner {
    secret: SecretKey,
    /// The same key as a k256 scalar, for signing with prepared nonces.
    scalar: NonZeroScalar,
    context: Secp256k1<SignOnly>,
    address: Address,
    /// Nonces prepared by the signer's own thread, each used once.
    prepared: Option<Arc<NoncePool>>,
}

/// Prepared nonces, shared by the signer (which takes them) and its thread (which adds them).
#[derive(Default)]
struct NoncePool {
    state: Mutex<PoolState>,
    /// Wakes the thread when the nonces run low or the signer is dropped.
    low: Condvar,
}

#[derive(Default)]
struct PoolState {
    nonces: VecDeque<PreparedNonce>,
    closed: bool,
}

impl NoncePool {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A prepared nonce, if one is ready; waking the thread when they run low.
    fn take(&self) -> Option<PreparedNonce> {
        let mut state = self.lock();
        let nonce = state.nonces.pop_front();
        if state.nonces.len() == REFILL_AT {
            self.low.notify_one();
        }
        nonce
    }

    /// The thread's work: fill up to [`PREPARED_NONCES`], sleep until they fall to
    /// [`REFILL_AT`], again — until the signer is dropped.
    fn keep_filled(&self) {
        run_only_when_idle();
        let context = Secp256k1::signing_only();
        loop {
            let nonce = PreparedNonce::new(&context);
            let mut state = self.lock();
            if state.closed {
                return;
            }
            state.nonces.push_back(nonce);
            if state.nonces.len() >= PREPARED_NONCES {
                let state = self
                    .low
                    .wait_while(state, |s| s.nonces.len() > REFILL_AT && !s.closed)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                if state.closed {
                    return;
                }
            }
        }
    }
}

/// Lowers the calling thread to `SCHED_IDLE`, so that preparing nonces never takes a core from
/// serving calls: under full load the nonces run out and receipts are signed the slower way.
#[cfg(target_os = "linux")]
fn run_only_when_idle() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler reads `param` and changes only the calling thread (pid 0); a
    // refusal leaves the thread at normal priority, which is still correct.
    unsafe {
        libc::sched_setscheduler(0, libc::SCHED_IDLE, &param);
    }
}

#[cfg(not(target_os = "linux"))]
fn run_only_when_idle() {}

impl Drop for NodeSigner {
    fn drop(&mut self) {
        if let Some(pool) = &self.prepared {
            pool.lock().closed = true;
            pool.low.notify_one();
        }
    }
}

/// The message-independent part of a signature: for a random nonce `k`, its inverse and
/// `r`, the x coordinate of `k·G` (always below the group order, so `v` recovers the key),
/// with the parity of its y coordinate.
struct PreparedNonce {
    k_inverse: Scalar,
    r: Scalar,
    odd_y: bool,
}

impl PreparedNonce {
    /// A fresh random nonce.
    fn new(context: &Secp256k1<SignOnly>) -> PreparedNonce {
        loop {
            let mut k = [0u8; 32];
            getrandom::fill(&mut k).expect("the operating system's random source works");
            // Refuses 0 and anything not below the group order.
            let Ok(nonce) = SecretKey::from_byte_array(k) else {
                continue;
            };
            let point = secp256k1::PublicKey::from_secret_key(context, &nonce).serialize();
            let x: [u8; 32] = point[1..]
                .try_into()
                .expect("a compressed point holds 32 bytes of x");
            let Some(r) = Option::<Scalar>::from(Scalar::from_repr(x.into())) else {
                continue;
            };
            if bool::from(r.is_zero()) {
                continue;
            }
            let k = Option::<Scalar>::from(Scalar::from_repr(k.into()))
                .expect("a valid secret key is below the group order");
            let k_inverse =
                Option::<Scalar>::from(k.invert()).expect("a valid secret key is not zero");
            return PreparedNonce {
                k_inverse,
                r,
                odd_y: point[0] == 0x03,
            };
        }
    }
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
            scalar: *key.as_nonzero_scalar(),
            context: Secp256k1::signing_only(),
            address: address_of(key.verifying_key()),
            prepared: None,
        })
    }

    /// Starts a thread that keeps up to [`PREPARED_NONCES`] nonces ready, so that signing on a
    /// call's path takes microseconds. The thread ends when the signer is dropped.
    pub fn with_prepared_nonces(mut self) -> NodeSigner {
        let pool = Arc::new(NoncePool::default());
        let filler = Arc::clone(&pool);
        let started = std::thread::Builder::new()
            .name("receipt nonces".into())
            .spawn(move || filler.keep_filled());
        // Without the thread every receipt is still signed, only without prepared nonces.
        if started.is_ok() {
            self.prepared = Some(pool);
        }
        self
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
        let digest = personal_message_digest(message).0;
        let nonce = self.prepared.as_ref().and_then(|pool| pool.take());
        let signature = nonce
            .and_then(|nonce| self.sign_with(nonce, &digest))
            .unwrap_or_else(|| self.sign_deterministic(&digest));
        signature.to_hex()
    }

    /// `s = k⁻¹·(z + r·d)`, made low (`s ≤ n/2`, as Ethereum requires) by negating it, which
    /// flips the parity `v` recovers with. `None` in the negligible case `s = 0`.
    fn sign_with(&self, nonce: PreparedNonce, digest: &[u8; 32]) -> Option<Signature65> {
        let z = <Scalar as Reduce<U256>>::reduce_bytes(digest.into());
        let mut s = nonce.k_inverse * (z + nonce.r * *self.scalar);
        if bool::from(s.is_zero()) {
            return None;
        }
        let mut odd_y = nonce.odd_y;
        if bool::from(s.is_high()) {
            s = -s;
            odd_y = !odd_y;
        }
        let mut bytes = [0u8; 65];
        bytes[..32].copy_from_slice(&nonce.r.to_bytes());
        bytes[32..64].copy_from_slice(&s.to_bytes());
        bytes[64] = 27 + u8::from(odd_y);
        Some(Signature65(bytes))
    }

    /// libsecp256k1's RFC 6979 signature.
    fn sign_deterministic(&self, digest: &[u8; 32]) -> Signature65 {
        let (recovery, compact) = self
            .context
            .sign_ecdsa_recoverable(Message::from_digest(*digest), &self.secret)
            .serialize_compact();
        let mut bytes = [0u8; 65];
        bytes[..64].copy_from_slice(&compact);
        bytes[64] = 27 + i32::from(recovery) as u8;
        Signature65(bytes)
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

/// The address that signed `message` with `signature` (hex `r ‖ s ‖ v`, v 27/28 or 0/1), or
/// why it cannot be recovered.
pub fn recover_signer(message: &[u8], signature: &str) -> Result<Address, String> {
    let signature = Signature65::parse(signature)?;
    recover(&personal_message_digest(message), &signature)
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
            caravan_core::attestation::sign_digest(&key, &personal_message_digest(receipt));
        assert_eq!(signature, by_k256.to_hex());
    }

    #[test]
    fn prepared_nonces_make_low_s_signatures_that_recover_the_node() {
        let signer = NodeSigner::generate();
        let context = Secp256k1::signing_only();
        let mut seen = std::collections::HashSet::new();
        let mut flipped = 0;
        for n in 0..200u32 {
            let receipt = format!(r#"{{"call":"chatcmpl-{n}","charged":"{}"}}"#, n * 7);
            let nonce = PreparedNonce::new(&context);
            let odd_before = nonce.odd_y;
            let signature = signer
                .sign_with(nonce, &personal_message_digest(receipt.as_bytes()).0)
                .unwrap();
            let bytes = signature.0;
            let s =
                Scalar::from_repr(<[u8; 32]>::try_from(&bytes[32..64]).unwrap().into()).unwrap();
            assert!(!bool::from(s.is_high()), "signature {n} is not low-s");
            assert!(bytes[64] == 27 || bytes[64] == 28);
            flipped += usize::from(u8::from(odd_before) + 27 != bytes[64]);
            assert_eq!(
                recover_signer(receipt.as_bytes(), &signature.to_hex()).unwrap(),
                signer.address(),
                "signature {n} does not recover the node"
            );
            assert!(seen.insert(bytes[..32].to_vec()), "a nonce was used twice");
        }
        // About half of the raw signatures are high-s and were negated.
        assert!((50..=150).contains(&flipped), "{flipped} of 200 negated");

        // The serving signer's receipts recover the node whether a prepared nonce was ready.
        let serving = NodeSigner::generate().with_prepared_nonces();
        for n in 0..(PREPARED_NONCES as u32 + 50) {
            let receipt = format!("receipt {n}");
            let signature = serving.sign(receipt.as_bytes());
            assert_eq!(
                recover_signer(receipt.as_bytes(), &signature).unwrap(),
                serving.address()
            );
        }
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
