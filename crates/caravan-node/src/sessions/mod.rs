//! Sign-in with a wallet (EIP-4361) and the sessions it opens.
//!
//! The node makes a nonce ([`Sessions::challenge`]); the wallet signs a sign-in message naming
//! it; [`Sessions::sign_in`] checks the message against the node's own configuration, each check
//! with its own refusal, and opens a session whose secret id goes back to the browser in a
//! cookie. Verifying the signature is the easy part; what stops a signature made for another
//! site, or an old one, from logging someone in is checking the rest:
//!
//! - the domain and URI name the node's configured public origin (`--public-url`), never the
//!   request's `Host` header;
//! - version 1, a chain id of a chain the node knows;
//! - the nonce was made here, is unused, and is used up atomically with the session's write
//!   (in the store, so nodes sharing a database share this);
//! - issued-at within [`CLOCK_SKEW_MS`] of the node's clock (and no older than a nonce lives),
//!   expiration and not-before respected, the message at most
//!   [`siwe::MAX_MESSAGE_BYTES`];
//! - the signature recovers to the message's address (EIP-191), or — for a contract wallet —
//!   the wallet's contract accepts it (ERC-1271) on a configured JSON-RPC chain.
//!
//! Sessions live in the store by the hash of their id (the id itself is never stored), so they
//! survive a restart; each node keeps the ones it has seen in memory and asks the store again
//! after [`SESSION_RECHECK_MS`], which bounds how long a session ended at another node sharing
//! the database still works here.

pub mod origin;
pub mod siwe;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use caravan_core::attestation::{personal_message_digest, recover};
use caravan_core::hash::{hex_lower, keccak256_parts};
use caravan_core::{Address, Hash32, Signature65};
use caravan_store::{JournalError, SessionRow, SharedJournal, SignInOp};

use crate::desk::Clock;
use origin::PublicOrigin;
use siwe::{SiweMessage, SiweParseError, Timestamp};

/// How long a nonce may wait to be signed: long enough for a wallet prompt, short enough that
/// unused ones do not pile up.
pub const NONCE_TTL_MS: u64 = 5 * 60 * 1000;
/// How long a session lasts (less if the signed message expires sooner).
pub const SESSION_TTL_MS: u64 = 7 * 24 * 60 * 60 * 1000;
/// How far a message's issued-at may be ahead of the node's clock (wallets' clocks drift).
pub const CLOCK_SKEW_MS: u64 = 2 * 60 * 1000;
/// How long a session found once is trusted before the store is asked again.
pub const SESSION_RECHECK_MS: u64 = 60 * 1000;
/// The longest signature accepted: a contract wallet's may be longer than an account's 65
/// bytes (several owners' signatures), but not without bound.
pub const MAX_SIGNATURE_BYTES: usize = 2_048;

const SESSION_PREFIX: &str = "crs_";
const SESSION_DOMAIN: &[u8] = b"caravan/session/v1";
/// The statement the node proposes for its sign-in messages.
pub const STATEMENT: &str =
    "Sign in to caravan: label, request, review and manage your keys as this account.";

/// Contract wallets' signatures (ERC-1271), checked on the chain the message names.
pub trait ContractWallets: Send + Sync {
    /// Whether the contract at `wallet` on chain `chain_id` accepts `signature` over `digest`
    /// (`isValidSignature` returning its magic value); `None` when the node has no JSON-RPC
    /// chain with that id to ask; an error when the chain could not be asked.
    fn accepts(
        &self,
        chain_id: u64,
        wallet: &Address,
        digest: &Hash32,
        signature: &[u8],
    ) -> Option<Result<bool, String>>;
}

/// What sign-in messages must say to be accepted here.
#[derive(Clone, Debug)]
pub struct SignInPolicy {
    /// The node's public origin (`--public-url`).
    pub origin: PublicOrigin,
    /// The chain ids a message may name: the chains the node settles on.
    pub chain_ids: Vec<u64>,
}

/// What a wallet needs to write a sign-in message this node accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub nonce: String,
    pub issued_at: Timestamp,
    /// When the nonce stops working: the latest a message may be signed and sent.
    pub expires_at: Timestamp,
    pub domain: String,
    pub uri: String,
    pub chain_ids: Vec<u64>,
    pub statement: String,
}

impl Challenge {
    /// The message the node expects `address` to sign for this challenge on `chain_id`. It
    /// names no expiration time: the nonce's own expiry bounds when it may be sent, and the
    /// session it opens then lasts [`SESSION_TTL_MS`] (a message that does name one opens a
    /// session that ends with it).
    pub fn message(&self, address: &Address, chain_id: u64) -> SiweMessage {
        SiweMessage {
            scheme: None,
            domain: self.domain.clone(),
            address: *address,
            address_text: address.to_checksum(),
            statement: Some(self.statement.clone()),
            uri: self.uri.clone(),
            version: "1".into(),
            chain_id,
            nonce: self.nonce.clone(),
            issued_at: self.issued_at.clone(),
            expiration_time: None,
            not_before: None,
            request_id: None,
            resources: Vec::new(),
        }
    }
}

/// A signed-in account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Session {
    pub account: Address,
    pub expires_ms: u64,
}

/// A session just opened, with its secret id — which goes to the client once, in a cookie.
pub struct OpenedSession {
    pub secret: String,
    pub session: Session,
}

impl std::fmt::Debug for OpenedSession {
    /// Never the secret: a debug print may end up in a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedSession")
            .field("secret", &"crs_…")
            .field("session", &self.session)
            .finish()
    }
}

/// Why a sign-in was refused. Each check has its own refusal, which says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("the message is not a Sign-In with Ethereum (EIP-4361) message: {0}")]
    Malformed(#[from] SiweParseError),
    #[error(
        "the message is for {given}, but this node is {expected}: a wallet signs sign-in messages for the site that asked, so sign in from {expected}"
    )]
    WrongDomain { given: String, expected: String },
    #[error(
        "the message's URI {given} is not on this node ({expected}); write a URI under {expected}"
    )]
    WrongUri { given: String, expected: String },
    #[error("the message's version is {0:?}; this node reads version 1")]
    WrongVersion(String),
    #[error(
        "the message names chain id {given}, which this node does not settle on; use one of {known:?}"
    )]
    UnknownChain { given: u64, known: Vec<u64> },
    #[error(
        "the message says it was issued at {issued_at}, {ahead_s} s ahead of this node's clock (more than the {skew_s} s allowed); check the device's clock and sign again"
    )]
    IssuedInTheFuture {
        issued_at: String,
        ahead_s: u64,
        skew_s: u64,
    },
    #[error(
        "the message was issued at {issued_at}, longer ago than a nonce lives ({ttl_s} s); ask for a new nonce (GET /v1/auth/nonce) and sign again"
    )]
    IssuedTooLongAgo { issued_at: String, ttl_s: u64 },
    #[error("the message expired at {0}; ask for a new nonce (GET /v1/auth/nonce) and sign again")]
    Expired(String),
    #[error("the message is not valid before {0}; sign one without Not Before, or wait")]
    NotYetValid(String),
    #[error(
        "the signature is not hex bytes (0x and an even number of hex digits, at most {MAX_SIGNATURE_BYTES} bytes): {0}"
    )]
    MalformedSignature(String),
    #[error(
        "the signature was not made by {address}{recovered}; sign the message exactly as sent, with {address}'s own wallet{hint}"
    )]
    WrongSigner {
        address: Address,
        recovered: String,
        hint: &'static str,
    },
    #[error(
        "{address} is a contract wallet, and chain {chain_id} could not be asked whether it accepts the signature: {why}; try again"
    )]
    ContractWalletUnavailable {
        address: Address,
        chain_id: u64,
        why: String,
    },
    #[error(
        "the nonce {0} was not made by this node, was used already, or expired; ask for a new one (GET /v1/auth/nonce) and sign again"
    )]
    UnknownNonce(String),
    #[error("storage is unavailable; nobody was signed in, retry: {0}")]
    Store(#[from] JournalError),
}

/// Why a request's session was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(
        "the session has ended or expired, or it never existed; sign in again (GET /v1/auth/nonce, then POST /v1/auth/siwe)"
    )]
    Unknown,
    #[error("storage is unavailable; retry: {0}")]
    Store(#[from] JournalError),
}

/// Sessions this node has seen, by id hash, each with when the store last confirmed it.
#[derive(Default)]
struct SessionCache {
    sessions: HashMap<Hash32, (Session, u64)>,
    /// Expired entries are dropped when the cache grows past this, which then doubles.
    prune_at: usize,
}

const FIRST_PRUNE_AT: usize = 10_000;

/// Sign-in and sessions. Cheap to share: wrap it in an `Arc`.
pub struct Sessions {
    journal: Arc<SharedJournal>,
    origin: PublicOrigin,
    /// The chain ids a message may name; they change when the operator adds a chain.
    chain_ids: RwLock<Vec<u64>>,
    clock: Clock,
    wallets: Option<Arc<dyn ContractWallets>>,
    /// Read by every request a session makes, written only on a miss: many readers at once.
    cache: RwLock<SessionCache>,
}

/// The hash a session is stored and found by.
pub fn session_hash(secret: &str) -> Hash32 {
    keccak256_parts(&[SESSION_DOMAIN, secret.as_bytes()])
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).expect("the operating system's random source works");
    hex_lower(&buffer)
}

impl Sessions {
    pub fn new(journal: Arc<SharedJournal>, policy: SignInPolicy, clock: Clock) -> Sessions {
        Sessions {
            journal,
            origin: policy.origin,
            chain_ids: RwLock::new(policy.chain_ids),
            clock,
            wallets: None,
            cache: RwLock::new(SessionCache {
                sessions: HashMap::new(),
                prune_at: FIRST_PRUNE_AT,
            }),
        }
    }

    /// Checks contract wallets' signatures (ERC-1271) through `wallets`.
    pub fn with_contract_wallets(mut self, wallets: Arc<dyn ContractWallets>) -> Sessions {
        self.wallets = Some(wallets);
        self
    }

    /// The node's public origin, which every sign-in message must name.
    pub fn origin(&self) -> &PublicOrigin {
        &self.origin
    }

    /// The chain ids a sign-in message may name.
    pub fn chain_ids(&self) -> Vec<u64> {
        self.chain_ids
            .read()
            .expect("the chain ids' lock is never poisoned")
            .clone()
    }

    /// Accepts messages naming these chain ids from now on (the node's chains changed).
    pub fn set_chain_ids(&self, chain_ids: Vec<u64>) {
        *self
            .chain_ids
            .write()
            .expect("the chain ids' lock is never poisoned") = chain_ids;
    }

    /// A fresh nonce, kept in the store for [`NONCE_TTL_MS`], with what a message must say.
    pub fn challenge(&self) -> Result<Challenge, SignInError> {
        let now = (self.clock)();
        let nonce = random_hex(16);
        let expires_ms = now + NONCE_TTL_MS;
        self.journal.sign_in(
            vec![SignInOp::IssueNonce {
                nonce: nonce.clone(),
                expires_ms,
            }],
            now,
        )?;
        Ok(Challenge {
            nonce,
            issued_at: Timestamp::from_ms(now),
            expires_at: Timestamp::from_ms(expires_ms),
            domain: self.origin.authority(),
            uri: self.origin.to_string(),
            chain_ids: self.chain_ids(),
            statement: STATEMENT.into(),
        })
    }

    /// Checks a signed sign-in message (see the module's docs) and opens a session for its
    /// account. Blocking: may ask a chain about a contract wallet, and waits until the session
    /// is durable.
    pub fn sign_in(&self, message: &str, signature: &str) -> Result<OpenedSession, SignInError> {
        let now = (self.clock)();
        let parsed = SiweMessage::parse(message)?;
        self.check_fields(&parsed, now)?;
        self.check_signature(&parsed, message, signature)?;
        let mut expires_ms = now + SESSION_TTL_MS;
        if let Some(expiration) = &parsed.expiration_time {
            expires_ms = expires_ms.min(expiration.ms);
        }
        let secret = format!("{SESSION_PREFIX}{}", random_hex(32));
        let session = Session {
            account: parsed.address,
            expires_ms,
        };
        let row = SessionRow {
            id_hash: session_hash(&secret),
            account: session.account,
            created_ms: now,
            expires_ms,
        };
        let opened = self.journal.sign_in(
            vec![SignInOp::OpenSession {
                nonce: parsed.nonce.clone(),
                session: row.clone(),
            }],
            now,
        )?;
        if opened != [true] {
            return Err(SignInError::UnknownNonce(parsed.nonce));
        }
        self.remember(row.id_hash, session, now);
        Ok(OpenedSession { secret, session })
    }

    fn check_fields(&self, message: &SiweMessage, now: u64) -> Result<(), SignInError> {
        let origin = &self.origin;
        let scheme_matches = message
            .scheme
            .as_deref()
            .is_none_or(|scheme| scheme.eq_ignore_ascii_case(origin.scheme()));
        if !scheme_matches || !origin.has_authority(&message.domain) {
            let given = match &message.scheme {
                Some(scheme) => format!("{scheme}://{}", message.domain),
                None => message.domain.clone(),
            };
            return Err(SignInError::WrongDomain {
                given,
                expected: origin.authority(),
            });
        }
        if !origin.contains(&message.uri) {
            return Err(SignInError::WrongUri {
                given: message.uri.clone(),
                expected: origin.to_string(),
            });
        }
        if message.version != "1" {
            return Err(SignInError::WrongVersion(message.version.clone()));
        }
        let known = self.chain_ids();
        if !known.contains(&message.chain_id) {
            return Err(SignInError::UnknownChain {
                given: message.chain_id,
                known,
            });
        }
        let issued = message.issued_at.ms;
        if issued > now + CLOCK_SKEW_MS {
            return Err(SignInError::IssuedInTheFuture {
                issued_at: message.issued_at.text.clone(),
                ahead_s: (issued - now) / 1000,
                skew_s: CLOCK_SKEW_MS / 1000,
            });
        }
        if issued + NONCE_TTL_MS + CLOCK_SKEW_MS < now {
            return Err(SignInError::IssuedTooLongAgo {
                issued_at: message.issued_at.text.clone(),
                ttl_s: NONCE_TTL_MS / 1000,
            });
        }
        if let Some(expiration) = &message.expiration_time
            && expiration.ms <= now
        {
            return Err(SignInError::Expired(expiration.text.clone()));
        }
        if let Some(not_before) = &message.not_before
            && not_before.ms > now + CLOCK_SKEW_MS
        {
            return Err(SignInError::NotYetValid(not_before.text.clone()));
        }
        Ok(())
    }

    fn check_signature(
        &self,
        message: &SiweMessage,
        text: &str,
        signature: &str,
    ) -> Result<(), SignInError> {
        let bytes = parse_signature(signature)?;
        let digest = personal_message_digest(text.as_bytes());
        let recovered = <[u8; 65]>::try_from(bytes.as_slice())
            .ok()
            .and_then(|raw| recover(&digest, &Signature65(raw)).ok());
        if recovered == Some(message.address) {
            return Ok(());
        }
        let contract = self.wallets.as_ref().and_then(|wallets| {
            wallets.accepts(message.chain_id, &message.address, &digest, &bytes)
        });
        match contract {
            Some(Ok(true)) => Ok(()),
            Some(Err(why)) => Err(SignInError::ContractWalletUnavailable {
                address: message.address,
                chain_id: message.chain_id,
                why,
            }),
            Some(Ok(false)) | None => Err(SignInError::WrongSigner {
                address: message.address,
                recovered: match recovered {
                    Some(signer) => format!(" (it recovers to {signer})"),
                    None => String::new(),
                },
                hint: if contract.is_none() {
                    "; a contract wallet's signature (ERC-1271) is checked only on a JSON-RPC chain this node is configured with"
                } else {
                    ""
                },
            }),
        }
    }

    /// The session whose secret id is `secret`: from memory when this node confirmed it within
    /// [`SESSION_RECHECK_MS`], else from the store.
    pub fn authenticate(&self, secret: &str) -> Result<Session, SessionError> {
        if !secret.starts_with(SESSION_PREFIX) {
            return Err(SessionError::Unknown);
        }
        let now = (self.clock)();
        let id_hash = session_hash(secret);
        let cached = self
            .cache
            .read()
            .expect("the session cache's lock is never poisoned")
            .sessions
            .get(&id_hash)
            .copied();
        if let Some((session, checked_ms)) = cached
            && session.expires_ms > now
            && now < checked_ms + SESSION_RECHECK_MS
        {
            return Ok(session);
        }
        match self.journal.session(id_hash, now)? {
            Some(row) => {
                let session = Session {
                    account: row.account,
                    expires_ms: row.expires_ms,
                };
                self.remember(id_hash, session, now);
                Ok(session)
            }
            None => {
                self.forget(&id_hash);
                Err(SessionError::Unknown)
            }
        }
    }

    /// Ends the session with this secret id, here and in the store. Ending one that is not open
    /// changes nothing.
    pub fn sign_out(&self, secret: &str) -> Result<(), SessionError> {
        let id_hash = session_hash(secret);
        self.forget(&id_hash);
        self.journal
            .sign_in(vec![SignInOp::EndSession { id_hash }], (self.clock)())?;
        Ok(())
    }

    fn remember(&self, id_hash: Hash32, session: Session, now: u64) {
        let mut cache = self
            .cache
            .write()
            .expect("the session cache's lock is never poisoned");
        cache.sessions.insert(id_hash, (session, now));
        if cache.sessions.len() > cache.prune_at {
            cache
                .sessions
                .retain(|_, (session, _)| session.expires_ms > now);
            cache.prune_at = (cache.sessions.len() * 2).max(FIRST_PRUNE_AT);
        }
    }

    fn forget(&self, id_hash: &Hash32) {
        self.cache
            .write()
            .expect("the session cache's lock is never poisoned")
            .sessions
            .remove(id_hash);
    }
}

/// A signature's bytes from `0x…` hex.
fn parse_signature(text: &str) -> Result<Vec<u8>, SignInError> {
    let bad = |why: &str| SignInError::MalformedSignature(why.to_owned());
    let digits = text
        .strip_prefix("0x")
        .ok_or_else(|| bad("it does not start with 0x"))?;
    if !digits.is_ascii() {
        return Err(bad("it holds a non-hex digit"));
    }
    if digits.len() % 2 != 0 || digits.len() / 2 > MAX_SIGNATURE_BYTES || digits.is_empty() {
        return Err(bad("its length is wrong"));
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&digits[i..i + 2], 16).map_err(|_| bad("it holds a non-hex digit"))
        })
        .collect()
}
