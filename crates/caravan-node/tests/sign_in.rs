//! Signing in with a wallet (EIP-4361) over a real SQLite store: every check refuses on its own
//! with its own message, a nonce opens one session, sessions survive a restart and end when
//! asked or when they expire.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use caravan_core::attestation::{address_of, personal_message_digest, sign_digest};
use caravan_core::{Address, Hash32, keccak256};
use caravan_node::desk::Clock;
use caravan_node::sessions::origin::PublicOrigin;
use caravan_node::sessions::siwe::{SiweMessage, Timestamp};
use caravan_node::sessions::{
    Challenge, ContractWallets, NONCE_TTL_MS, SESSION_TTL_MS, SessionError, Sessions, SignInError,
    SignInPolicy,
};
use caravan_store::{Journal, Location, SharedJournal};
use k256::ecdsa::SigningKey;

const CHAIN: u64 = 31_337;
const START_MS: u64 = 1_764_859_039_000;

fn wallet(label: &str) -> SigningKey {
    SigningKey::from_bytes((&keccak256(label.as_bytes()).0).into()).unwrap()
}

fn address(key: &SigningKey) -> Address {
    address_of(key.verifying_key())
}

fn personal_sign(key: &SigningKey, message: &str) -> String {
    sign_digest(key, &personal_message_digest(message.as_bytes())).to_hex()
}

struct Node {
    sessions: Sessions,
    clock: Arc<AtomicU64>,
}

impl Node {
    fn open(dir: &Path) -> Node {
        Node::open_with(dir, None)
    }

    fn open_with(dir: &Path, wallets: Option<Arc<dyn ContractWallets>>) -> Node {
        let journal = Journal::open(Location::DataDir(dir.to_owned()), &mut |_, _| {}).unwrap();
        let clock = Arc::new(AtomicU64::new(START_MS));
        let reading = Arc::clone(&clock);
        let time: Clock = Arc::new(move || reading.load(Ordering::SeqCst));
        let policy = SignInPolicy {
            origin: PublicOrigin::parse("https://caravan.example").unwrap(),
            chain_ids: vec![CHAIN, 8453],
        };
        let mut sessions = Sessions::new(Arc::new(SharedJournal::new(journal)), policy, time);
        if let Some(wallets) = wallets {
            sessions = sessions.with_contract_wallets(wallets);
        }
        Node { sessions, clock }
    }

    fn advance(&self, ms: u64) {
        self.clock.fetch_add(ms, Ordering::SeqCst);
    }

    fn challenge(&self) -> Challenge {
        self.sessions.challenge().unwrap()
    }

    /// Signs the message the challenge asks for, changed by `edit`, with `key`.
    fn sign_in_as(
        &self,
        key: &SigningKey,
        edit: impl FnOnce(&mut SiweMessage),
    ) -> Result<caravan_node::sessions::OpenedSession, SignInError> {
        let mut message = self.challenge().message(&address(key), CHAIN);
        edit(&mut message);
        let text = message.to_string();
        self.sessions.sign_in(&text, &personal_sign(key, &text))
    }
}

#[test]
fn a_wallet_signs_in_and_its_session_outlives_a_restart_until_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(dir.path());
    let alice = wallet("alice");
    let challenge = node.challenge();
    assert_eq!(challenge.domain, "caravan.example");
    assert_eq!(challenge.uri, "https://caravan.example");
    assert_eq!(challenge.expires_at.ms, START_MS + NONCE_TTL_MS);
    assert!(
        challenge
            .message(&address(&alice), CHAIN)
            .expiration_time
            .is_none()
    );
    let text = challenge.message(&address(&alice), CHAIN).to_string();
    let signature = personal_sign(&alice, &text);
    let opened = node.sessions.sign_in(&text, &signature).unwrap();
    assert_eq!(opened.session.account, address(&alice));
    assert!(opened.secret.starts_with("crs_") && opened.secret.len() == 68);
    assert_eq!(opened.session.expires_ms, START_MS + SESSION_TTL_MS);
    assert_eq!(
        node.sessions.authenticate(&opened.secret).unwrap().account,
        address(&alice)
    );

    // The same signed message again: its nonce is used up.
    let replay = node.sessions.sign_in(&text, &signature).unwrap_err();
    assert!(matches!(replay, SignInError::UnknownNonce(_)), "{replay}");

    // A message that names an expiration time opens a session that ends with it; wallets that
    // send the address in lower case are read too.
    let brief = node
        .sign_in_as(&alice, |m| {
            m.expiration_time = Some(Timestamp::from_ms(START_MS + 30 * 60 * 1000));
            m.address_text = m.address_text.to_lowercase();
        })
        .unwrap();
    assert_eq!(brief.session.expires_ms, START_MS + 30 * 60 * 1000);
    let lasting = opened;

    drop(node);
    let node = Node::open(dir.path());
    node.advance(60 * 60 * 1000);
    assert_eq!(
        node.sessions.authenticate(&lasting.secret).unwrap().account,
        address(&alice),
        "a session survives a restart"
    );
    assert!(
        matches!(
            node.sessions.authenticate(&brief.secret),
            Err(SessionError::Unknown)
        ),
        "the brief session expired with its message"
    );
    node.sessions.sign_out(&lasting.secret).unwrap();
    assert!(matches!(
        node.sessions.authenticate(&lasting.secret),
        Err(SessionError::Unknown)
    ));
    for bogus in ["", "crs_", "crv_0123", &"crs_00".repeat(20)] {
        assert!(matches!(
            node.sessions.authenticate(bogus),
            Err(SessionError::Unknown)
        ));
    }
}

#[test]
fn a_session_expires_and_is_then_unknown_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(dir.path());
    let opened = node.sign_in_as(&wallet("bob"), |_| {}).unwrap();
    node.advance(SESSION_TTL_MS - 1);
    assert!(node.sessions.authenticate(&opened.secret).is_ok());
    node.advance(1);
    assert!(matches!(
        node.sessions.authenticate(&opened.secret),
        Err(SessionError::Unknown)
    ));
}

#[test]
fn every_check_refuses_on_its_own_and_says_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(dir.path());
    let carol = wallet("carol");
    let refused = |edit: fn(&mut SiweMessage)| node.sign_in_as(&carol, edit).unwrap_err();

    let error = refused(|m| m.domain = "evil.example".into());
    assert!(
        matches!(&error, SignInError::WrongDomain { given, .. } if given == "evil.example"),
        "{error}"
    );
    assert!(error.to_string().contains("sign in from caravan.example"));
    let error = refused(|m| m.domain = "caravan.example:8443".into());
    assert!(matches!(error, SignInError::WrongDomain { .. }), "{error}");
    let error = refused(|m| m.scheme = Some("http".into()));
    assert!(matches!(error, SignInError::WrongDomain { .. }), "{error}");
    let error = refused(|m| m.uri = "https://evil.example/caravan.example".into());
    assert!(matches!(error, SignInError::WrongUri { .. }), "{error}");
    let error = refused(|m| m.version = "2".into());
    assert!(matches!(error, SignInError::WrongVersion(_)), "{error}");
    let error = refused(|m| m.chain_id = 1);
    assert!(
        matches!(&error, SignInError::UnknownChain { given: 1, known } if known == &[CHAIN, 8453]),
        "{error}"
    );
    let error = refused(|m| m.issued_at = Timestamp::from_ms(START_MS + 3 * 60 * 1000));
    assert!(
        matches!(error, SignInError::IssuedInTheFuture { .. }),
        "{error}"
    );
    let error = refused(|m| m.issued_at = Timestamp::from_ms(START_MS - 60 * 60 * 1000));
    assert!(
        matches!(error, SignInError::IssuedTooLongAgo { .. }),
        "{error}"
    );
    let error = refused(|m| m.expiration_time = Some(Timestamp::from_ms(START_MS)));
    assert!(matches!(error, SignInError::Expired(_)), "{error}");
    let error = refused(|m| m.not_before = Some(Timestamp::from_ms(START_MS + 60 * 60 * 1000)));
    assert!(matches!(error, SignInError::NotYetValid(_)), "{error}");
    let error = refused(|m| m.nonce = "madeupnonce1".into());
    assert!(matches!(error, SignInError::UnknownNonce(_)), "{error}");
    let error = refused(|m| m.statement = Some("x".repeat(5_000)));
    assert!(
        matches!(&error, SignInError::Malformed(e) if e.why.contains("at most 4096")),
        "{error}"
    );

    // A signature by another wallet, or over other text, does not sign in the address named.
    let mallory = wallet("mallory");
    let text = node
        .challenge()
        .message(&address(&carol), CHAIN)
        .to_string();
    let error = node
        .sessions
        .sign_in(&text, &personal_sign(&mallory, &text))
        .unwrap_err();
    assert!(
        matches!(&error, SignInError::WrongSigner { address: a, .. } if *a == address(&carol)),
        "{error}"
    );
    assert!(
        error.to_string().contains(&address(&mallory).to_string()),
        "{error}"
    );
    let other = personal_sign(&carol, &format!("{text} "));
    assert!(matches!(
        node.sessions.sign_in(&text, &other).unwrap_err(),
        SignInError::WrongSigner { .. }
    ));
    for bad in ["", "0x", "0x123", "deadbeef", "0xzz", "0xé1"] {
        assert!(
            matches!(
                node.sessions.sign_in(&text, bad).unwrap_err(),
                SignInError::MalformedSignature(_)
            ),
            "{bad}"
        );
    }
    // None of those refusals used the nonce up: the right signature still signs carol in.
    assert!(
        node.sessions
            .sign_in(&text, &personal_sign(&carol, &text))
            .is_ok()
    );

    // A nonce expires with its challenge.
    let text = node
        .challenge()
        .message(&address(&carol), CHAIN)
        .to_string();
    node.advance(NONCE_TTL_MS);
    let late = text;
    assert!(matches!(
        node.sessions
            .sign_in(&late, &personal_sign(&carol, &late))
            .unwrap_err(),
        SignInError::UnknownNonce(_)
    ));
}

/// A contract wallet that accepts whatever one owner key signs, as a test double for the chain.
struct OwnedBy {
    wallet: Address,
    owner: Address,
}

impl ContractWallets for OwnedBy {
    fn accepts(
        &self,
        chain_id: u64,
        wallet: &Address,
        digest: &Hash32,
        signature: &[u8],
    ) -> Option<Result<bool, String>> {
        if chain_id != CHAIN {
            return None;
        }
        if *wallet != self.wallet {
            return Some(Ok(false));
        }
        let signature = caravan_core::Signature65(signature.try_into().ok()?);
        Some(Ok(caravan_core::attestation::recover(digest, &signature)
            .ok()
            == Some(self.owner)))
    }
}

#[test]
fn a_contract_wallet_signs_in_when_its_chain_accepts_the_signature() {
    let dir = tempfile::tempdir().unwrap();
    let owner = wallet("safe owner");
    let safe = Address::from_label("a multisig");
    let node = Node::open_with(
        dir.path(),
        Some(Arc::new(OwnedBy {
            wallet: safe,
            owner: address(&owner),
        })),
    );
    let text = node.challenge().message(&safe, CHAIN).to_string();
    let opened = node
        .sessions
        .sign_in(&text, &personal_sign(&owner, &text))
        .unwrap();
    assert_eq!(opened.session.account, safe);
    // Another key is refused by the contract; a chain the node cannot ask says so.
    let text = node.challenge().message(&safe, CHAIN).to_string();
    assert!(matches!(
        node.sessions
            .sign_in(&text, &personal_sign(&wallet("stranger"), &text))
            .unwrap_err(),
        SignInError::WrongSigner { .. }
    ));
    let text = node.challenge().message(&safe, 8453).to_string();
    let error = node
        .sessions
        .sign_in(&text, &personal_sign(&owner, &text))
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("checked only on a JSON-RPC chain"),
        "{error}"
    );
}

/// Sign-in messages come from outside: whatever the text and signature, the parser and the
/// node answer with a message or an error, never a panic; a message the parser takes prints
/// back to text it reads the same; and nothing but a real signature of a real challenge opens
/// a session. Inputs: arbitrary text, and a real challenge cut and with characters changed.
/// `PROPTEST_CASES` sets the cases (default 256); the count of inputs is printed as
/// `fuzzed SIWE messages: N inputs`.
#[test]
fn any_sign_in_text_gets_an_answer_and_only_a_signed_challenge_opens_a_session() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(dir.path());
    let alice = wallet("alice");
    let real = node
        .challenge()
        .message(&address(&alice), CHAIN)
        .to_string();
    let mut runner = TestRunner::new(Config {
        failure_persistence: None,
        ..Config::default()
    });
    let edits = prop::collection::vec((any::<prop::sample::Index>(), any::<char>()), 0..6);
    let inputs = prop_oneof![
        any::<String>(),
        (edits, prop::option::of(any::<prop::sample::Index>())).prop_map(move |(edits, cut)| {
            let mut chars: Vec<char> = real.chars().collect();
            for (at, c) in edits {
                let at = at.index(chars.len());
                chars[at] = c;
            }
            if let Some(cut) = cut {
                chars.truncate(cut.index(chars.len() + 1));
            }
            chars.into_iter().collect::<String>()
        }),
    ];
    let count = std::cell::Cell::new(0u64);
    runner
        .run(&(inputs, ".{0,140}"), |(text, signature)| {
            count.set(count.get() + 1);
            if let Ok(parsed) = SiweMessage::parse(&text) {
                let printed = parsed.to_string();
                prop_assert_eq!(SiweMessage::parse(&printed).ok(), Some(parsed));
            }
            prop_assert!(node.sessions.sign_in(&text, &signature).is_err());
            let signed = personal_sign(&alice, &text);
            if let Ok(opened) = node.sessions.sign_in(&text, &signed) {
                // Only a message the node issued, for this domain and chain, opens a session.
                let parsed = SiweMessage::parse(&text).expect("a session comes from a message");
                prop_assert_eq!(opened.session.account, address(&alice));
                prop_assert_eq!(parsed.domain.as_str(), "caravan.example");
            }
            Ok(())
        })
        .unwrap();
    println!("fuzzed SIWE messages: {} inputs", count.get());
}
