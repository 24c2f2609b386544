//! API keys: issued per account with scopes and an expiry, stored only as a hash.
//!
//! A key is `crv_` and 64 hex digits of randomness, shown once when it is issued. The node keeps
//! `keccak("caravan/api-key/v1" ‖ key)` in an access record in the event log, so keys survive
//! restarts, work the same on SQLite and PostgreSQL, and a revocation is as durable as an issue.
//! Nothing in a log line or error message ever contains a key.
//!
//! A key acts for its account and nothing else: a program with a key does what the account's
//! owner signed in with a wallet could, within the key's scopes. Only the account's own wallet
//! may issue, list or revoke its keys ([`request`]); [`Keys`] is the service that does it.

mod request;
mod service;

pub use request::{KeyRequest, PayerSignature, SIGNATURE_WINDOW_MS, SignedRequest};
pub use service::{KeyRecord, Keys, KeysError, MAX_KEY_NAME_BYTES};

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;

use caravan_core::hash::{hex_lower, keccak256_parts, parse_hex_exact};
use caravan_core::{Address, Hash32};
use serde::{Deserialize, Serialize};

const KEY_DOMAIN: &[u8] = b"caravan/api-key/v1";
const KEY_PREFIX: &str = "crv_";

/// What a key may be used for.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// List the models (`GET /v1/models`) and read the key's balance.
    Models,
    /// Paid chat completions.
    Chat,
    /// Paid embeddings.
    Embeddings,
    /// Paid classifications.
    Classify,
    /// Take items and submit judgments as the key's account (a contributor's script).
    Labeling,
    /// Post projects, import items, add reviewers, publish, export and close, spending the
    /// account's prepaid balance on budgets (a requester's pipeline).
    Requesting,
    /// Review work on the projects that added the key's account as a reviewer.
    Reviewing,
}

impl Scope {
    pub const ALL: [Scope; 7] = [
        Scope::Models,
        Scope::Chat,
        Scope::Embeddings,
        Scope::Classify,
        Scope::Labeling,
        Scope::Requesting,
        Scope::Reviewing,
    ];

    /// The scopes a key gets when its request names none: calling models. Acting on the task
    /// platform (and spending on budgets) is granted only when asked for by name.
    pub const GATEWAY: [Scope; 4] = [
        Scope::Models,
        Scope::Chat,
        Scope::Embeddings,
        Scope::Classify,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scope::Models => "models",
            Scope::Chat => "chat",
            Scope::Embeddings => "embeddings",
            Scope::Classify => "classify",
            Scope::Labeling => "labeling",
            Scope::Requesting => "requesting",
            Scope::Reviewing => "reviewing",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A key as the node knows it: never the secret itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// A public handle for listing and revoking: `key_` and the hash's first 8 bytes in hex.
    pub id: String,
    pub payer: Address,
    pub scopes: Vec<Scope>,
    /// Milliseconds since the Unix epoch after which the key stops working; none: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<u64>,
    pub name: String,
    pub created_ms: u64,
}

/// The hash a key is stored and looked up by.
pub fn key_hash(secret: &str) -> Hash32 {
    keccak256_parts(&[KEY_DOMAIN, secret.as_bytes()])
}

/// A new random key and its hash.
pub fn new_secret() -> (String, Hash32) {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source works");
    let secret = format!("{KEY_PREFIX}{}", hex_lower(&bytes));
    let hash = key_hash(&secret);
    (secret, hash)
}

/// The public id of the key with this hash.
pub fn key_id(hash: &Hash32) -> String {
    format!("key_{}", hex_lower(&hash.0[..KEY_ID_BYTES]))
}

/// How many of a key's hash bytes its public id shows.
const KEY_ID_BYTES: usize = 8;

/// A public key id that is not `key_` and 16 hex digits, as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a key id: ids are key_ and 16 hex digits, as `caravan key list` (GET /v1/keys) shows them"
)]
pub struct MalformedKeyId(pub String);

/// The hash bytes a public id names (`key_` and 16 hex digits, either case).
pub fn parse_key_id(id: &str) -> Result<[u8; KEY_ID_BYTES], MalformedKeyId> {
    id.strip_prefix("key_")
        .and_then(|hex| parse_hex_exact(&format!("0x{hex}")).ok())
        .ok_or_else(|| MalformedKeyId(id.to_owned()))
}

/// Why a request's key was not accepted. Messages never repeat the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "no API key: send it as `Authorization: Bearer crv_…` (a payer makes one with `caravan key issue` or POST /v1/keys)"
    )]
    Missing,
    #[error(
        "the API key is not valid: it was revoked or never issued, or it is mistyped (keys are crv_ and 64 hex digits)"
    )]
    Invalid,
    #[error("the API key {id} expired at {expired_ms} ms since the Unix epoch; create a new one")]
    Expired { id: String, expired_ms: u64 },
    #[error(
        "the API key {id} may not be used for {needed}; it allows {allowed}. Create a key with the {needed} scope"
    )]
    Scope {
        id: String,
        needed: Scope,
        allowed: String,
    },
    #[error(
        "only the payer's own wallet may manage {payer}'s keys: send `signed_at_ms` and `signature`, the payer's EIP-712 signature of the request (types in the API document), or let `caravan key` sign it with the payer's key file"
    )]
    Unsigned { payer: Address },
    #[error(
        "the request was signed at {signed_at_ms} ms since the Unix epoch, but this node's clock says {now_ms}; a signature is accepted for 5 minutes either way. Sign the request again now (and check the clock if this repeats)"
    )]
    StaleSignature { signed_at_ms: u64, now_ms: u64 },
    #[error("{0}")]
    BadSignature(String),
    #[error(
        "the signature was made by {signer}, not by the payer {payer}, or it signs other fields than were sent, or it was signed for another node than this one ({node}, as GET /v1/node says). Sign exactly the request sent, for this node, with the payer's own wallet"
    )]
    NotPayers {
        signer: Address,
        payer: Address,
        node: Address,
    },
    #[error(
        "this signed request already issued a key; a signed request issues one key only. Sign a new request (with the current time) for another key"
    )]
    SignatureReused,
}

/// Every live key, by hash, and the signed requests that issued keys lately.
///
/// A signed request is accepted only within [`SIGNATURE_WINDOW_MS`] of the node's clock, so
/// the one that issued a key created at `c` (signed at most a window before or after `c`) could
/// be sent again only until `c` plus twice the window. Until then its digest is remembered;
/// after that it is forgotten, and any request signed no later than a forgotten one may have
/// been is refused as stale, which only a clock set back could otherwise let through.
/// Remembering every digest ever grew the node's memory with each key issued.
#[derive(Default)]
pub struct KeyRing {
    keys: HashMap<Hash32, ApiKey>,
    /// Each payer's live keys, so listing and revoking read only the payer's own.
    by_payer: HashMap<Address, HashSet<Hash32>>,
    authorizations: HashSet<Hash32>,
    /// The remembered digests with their keys' creation times, in the order issued.
    authorized_in_order: VecDeque<(u64, Hash32)>,
    /// Every forgotten digest was signed at or before this time.
    forgotten_through_ms: u64,
}

impl KeyRing {
    /// A key issued (from the log, or just committed), by the signed request `authorization`
    /// when it came from one.
    pub fn issue(&mut self, hash: Hash32, key: ApiKey, authorization: Option<Hash32>) {
        if let Some(authorization) = authorization {
            self.authorizations.insert(authorization);
            self.authorized_in_order
                .push_back((key.created_ms, authorization));
        }
        self.by_payer.entry(key.payer).or_default().insert(hash);
        self.keys.insert(hash, key);
    }

    /// Whether the signed request with this digest has issued a key already (even one since
    /// revoked), as far as remembered: see [`KeyRing::may_have_forgotten`].
    pub fn authorized_before(&self, authorization: &Hash32) -> bool {
        self.authorizations.contains(authorization)
    }

    /// Whether a request signed at `signed_at_ms` may have issued a key whose digest is
    /// forgotten. Never for one signed within the window of a clock that did not go back.
    pub fn may_have_forgotten(&self, signed_at_ms: u64) -> bool {
        signed_at_ms <= self.forgotten_through_ms
    }

    /// Forgets the digests of signed requests that can no longer be accepted at `now_ms`.
    pub fn forget_stale(&mut self, now_ms: u64) {
        while let Some(&(created_ms, authorization)) = self.authorized_in_order.front() {
            if created_ms.saturating_add(2 * SIGNATURE_WINDOW_MS) >= now_ms {
                break;
            }
            self.authorized_in_order.pop_front();
            self.authorizations.remove(&authorization);
            self.forgotten_through_ms = self
                .forgotten_through_ms
                .max(created_ms + SIGNATURE_WINDOW_MS);
        }
    }

    /// A key revoked: it stops working at once.
    pub fn revoke(&mut self, hash: &Hash32) {
        let Some(key) = self.keys.remove(hash) else {
            return;
        };
        if let Some(live) = self.by_payer.get_mut(&key.payer) {
            live.remove(hash);
            if live.is_empty() {
                self.by_payer.remove(&key.payer);
            }
        }
    }

    /// The key behind an `Authorization` header value, if it is live at `now_ms` and allows
    /// `scope`.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        scope: Scope,
        now_ms: u64,
    ) -> Result<ApiKey, KeyError> {
        let secret = authorization
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or(KeyError::Missing)?;
        let key = self.keys.get(&key_hash(secret)).ok_or(KeyError::Invalid)?;
        if let Some(expired_ms) = key.expires_ms.filter(|at| *at <= now_ms) {
            return Err(KeyError::Expired {
                id: key.id.clone(),
                expired_ms,
            });
        }
        if !key.scopes.contains(&scope) {
            let allowed: Vec<&str> = key.scopes.iter().map(|s| s.name()).collect();
            return Err(KeyError::Scope {
                id: key.id.clone(),
                needed: scope,
                allowed: allowed.join(", "),
            });
        }
        Ok(key.clone())
    }

    /// The hash of the payer's live key whose public id shows these bytes.
    pub fn find(&self, payer: &Address, id: &[u8; KEY_ID_BYTES]) -> Option<Hash32> {
        self.by_payer
            .get(payer)?
            .iter()
            .find(|hash| hash.0[..KEY_ID_BYTES] == id[..])
            .copied()
    }

    /// The payer's live keys, oldest first.
    pub fn of_payer(&self, payer: &Address) -> Vec<ApiKey> {
        let Some(live) = self.by_payer.get(payer) else {
            return Vec::new();
        };
        let mut keys: Vec<ApiKey> = live
            .iter()
            .filter_map(|hash| self.keys.get(hash))
            .cloned()
            .collect();
        keys.sort_by(|a, b| a.created_ms.cmp(&b.created_ms).then(a.id.cmp(&b.id)));
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn payers_key(payer: usize, created_ms: u64) -> (Hash32, ApiKey) {
        let (_, hash) = new_secret();
        let key = ApiKey {
            id: key_id(&hash),
            payer: Address::from_label(&format!("payer {payer}")),
            scopes: vec![Scope::Chat],
            expires_ms: None,
            name: "rotated".into(),
            created_ms,
        };
        (hash, key)
    }

    #[test]
    fn a_key_id_is_key_and_sixteen_hex_digits_in_either_case() {
        let (_, hash) = new_secret();
        let id = key_id(&hash);
        assert_eq!(parse_key_id(&id).unwrap()[..], hash.0[..8]);
        let upper = format!("key_{}", id[4..].to_uppercase());
        assert_eq!(parse_key_id(&upper), parse_key_id(&id));
        for malformed in [
            "",
            "key_",
            "key_0123456789abcde",
            "key_0123456789abcdef0",
            "key_0123456789abcdeg",
            "kez_0123456789abcdef",
            "key_01234567\u{e9}9abcde",
        ] {
            assert_eq!(
                parse_key_id(malformed),
                Err(MalformedKeyId(malformed.into())),
                "{malformed:?}"
            );
        }
    }

    proptest! {
        /// Whatever keys are issued and revoked, for whichever payers, each payer lists exactly
        /// its own live keys, finds each by id, and finds none of another payer's.
        #[test]
        fn each_payer_lists_and_finds_exactly_its_own_live_keys(
            steps in proptest::collection::vec((0usize..4, any::<bool>(), any::<prop::sample::Index>()), 1..80),
        ) {
            let mut ring = KeyRing::default();
            let mut live: Vec<(Hash32, ApiKey)> = Vec::new();
            for (created_ms, (payer, revoke, pick)) in (0u64..).zip(steps) {
                if revoke && !live.is_empty() {
                    let (hash, _) = live.remove(pick.index(live.len()));
                    ring.revoke(&hash);
                    ring.revoke(&hash);
                } else {
                    let (hash, key) = payers_key(payer, created_ms);
                    ring.issue(hash, key.clone(), None);
                    live.push((hash, key));
                }
            }
            for payer in 0..4 {
                let address = Address::from_label(&format!("payer {payer}"));
                let own: Vec<ApiKey> = live
                    .iter()
                    .filter(|(_, key)| key.payer == address)
                    .map(|(_, key)| key.clone())
                    .collect();
                prop_assert_eq!(ring.of_payer(&address), own);
                for (hash, key) in &live {
                    let found = ring.find(&address, &parse_key_id(&key.id).unwrap());
                    prop_assert_eq!(found, (key.payer == address).then_some(*hash));
                }
            }
            prop_assert_eq!(ring.keys.len(), live.len());
            prop_assert!(ring.by_payer.values().all(|keys| !keys.is_empty()));
        }
    }

    fn issued(scopes: Vec<Scope>, expires_ms: Option<u64>) -> (String, KeyRing, Hash32) {
        let (secret, hash) = new_secret();
        let mut ring = KeyRing::default();
        ring.issue(
            hash,
            ApiKey {
                id: key_id(&hash),
                payer: Address::from_label("shop"),
                scopes,
                expires_ms,
                name: "backend".into(),
                created_ms: 1,
            },
            None,
        );
        (secret, ring, hash)
    }

    #[test]
    fn a_signed_request_is_remembered_while_it_could_be_sent_again() {
        let mut ring = KeyRing::default();
        let window = SIGNATURE_WINDOW_MS;
        let key = |created_ms| ApiKey {
            id: "key_0".into(),
            payer: Address::from_label("shop"),
            scopes: vec![Scope::Models],
            expires_ms: None,
            name: "rotated".into(),
            created_ms,
        };
        let (first, second) = (keccak256_parts(&[b"first"]), keccak256_parts(&[b"second"]));
        ring.issue(keccak256_parts(&[b"a"]), key(1_000_000), Some(first));
        ring.issue(keccak256_parts(&[b"b"]), key(1_060_000), Some(second));
        ring.forget_stale(1_000_000 + 2 * window);
        assert!(ring.authorized_before(&first), "still within reach");
        assert!(!ring.may_have_forgotten(1_000_000 + window));

        ring.forget_stale(1_000_001 + 2 * window);
        assert!(!ring.authorized_before(&first), "forgotten");
        assert!(ring.authorized_before(&second), "the later one is kept");
        assert!(
            ring.may_have_forgotten(1_000_000 + window),
            "the latest the first request can have been signed"
        );
        assert!(
            !ring.may_have_forgotten(1_000_001 + window),
            "a request signed within the window of the clock that forgot it is taken"
        );
        assert_eq!(ring.authorized_in_order.len(), 1);
    }

    #[test]
    fn a_key_works_for_its_scopes_until_it_expires_or_is_revoked() {
        let (secret, mut ring, hash) = issued(vec![Scope::Classify], Some(1_000));
        let bearer = format!("Bearer {secret}");
        let key = ring
            .authenticate(Some(&bearer), Scope::Classify, 999)
            .unwrap();
        assert_eq!(key.payer, Address::from_label("shop"));
        let scope = ring
            .authenticate(Some(&bearer), Scope::Chat, 999)
            .unwrap_err();
        assert!(matches!(scope, KeyError::Scope { .. }));
        assert!(matches!(
            ring.authenticate(Some(&bearer), Scope::Classify, 1_000),
            Err(KeyError::Expired { .. })
        ));
        assert_eq!(
            ring.authenticate(None, Scope::Classify, 0),
            Err(KeyError::Missing)
        );
        ring.revoke(&hash);
        let revoked = ring
            .authenticate(Some(&bearer), Scope::Classify, 0)
            .unwrap_err();
        assert_eq!(revoked, KeyError::Invalid);
        // No message ever carries the secret.
        for error in [revoked, scope] {
            assert!(!error.to_string().contains(&secret[4..]));
        }
    }
}
