//! Requests about an account's keys, signed by the account's own wallet.
//!
//! Only the payer's own wallet may issue, list or revoke its keys over HTTP: each such request is
//! signed as EIP-712 typed data under caravan's domain (`{name: "caravan", version: "1"}`), so any
//! wallet signs it with `eth_signTypedData_v4`:
//!
//! - `IssueApiKey(address payer,address node,string[] scopes,uint32 expiresInDays,string name,uint64 signedAtMs)`
//! - `ListApiKeys(address payer,address node,uint64 signedAtMs)`
//! - `RevokeApiKey(address payer,address node,string key,uint64 signedAtMs)`
//!
//! `node` is the address the node signs its receipts with (`GET /v1/node`): a request signed for
//! one node is refused by every other, so a node (or anyone who saw the request) cannot replay
//! it elsewhere to be handed a key for the payer's balance there. A signature is accepted for
//! [`SIGNATURE_WINDOW_MS`] either side of the node's clock, and a signed issue request issues
//! one key only: its digest is kept in the key's access record, so a captured request cannot be
//! replayed for a second key, also not after a restart.

use caravan_core::attestation::{address_of, recover, sign_digest, typed_data_digest, word};
use caravan_core::hash::{keccak256, keccak256_parts};
use caravan_core::{Address, Hash32, Signature65};

use super::{KeyError, Scope};

/// How far, in milliseconds, a key request's `signed_at_ms` may be from the node's clock, either
/// way: long enough for a slow wallet prompt and some clock skew, short enough that an old
/// request captured somewhere is useless.
pub const SIGNATURE_WINDOW_MS: u64 = 5 * 60 * 1000;

const ISSUE_TYPE: &str = "IssueApiKey(address payer,address node,string[] scopes,uint32 expiresInDays,string name,uint64 signedAtMs)";
const LIST_TYPE: &str = "ListApiKeys(address payer,address node,uint64 signedAtMs)";
const REVOKE_TYPE: &str = "RevokeApiKey(address payer,address node,string key,uint64 signedAtMs)";

/// What a payer asks of its keys. Its wallet signs it, as EIP-712 typed data, to prove the
/// request is the payer's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyRequest<'a> {
    /// A new key with these scopes (in the order sent), expiring `expires_in_days` after the
    /// signing time (none: never; signed as 0).
    Issue {
        scopes: &'a [Scope],
        expires_in_days: Option<u32>,
        name: &'a str,
    },
    /// The payer's live keys, without their secrets.
    List,
    /// Stop the key with this public id.
    Revoke { key: &'a str },
}

impl KeyRequest<'_> {
    /// The EIP-712 digest the payer's wallet signs for this request to `node` at `signed_at_ms`.
    pub fn digest(&self, payer: &Address, node: &Address, signed_at_ms: u64) -> Hash32 {
        let address_word = |address: &Address| {
            let mut word = [0u8; 32];
            word[12..].copy_from_slice(&address.0);
            word
        };
        let (payer_word, node_word) = (address_word(payer), address_word(node));
        let signed_at = word(signed_at_ms);
        let struct_hash = match self {
            KeyRequest::Issue {
                scopes,
                expires_in_days,
                name,
            } => {
                let scope_hashes: Vec<[u8; 32]> = scopes
                    .iter()
                    .map(|scope| keccak256(scope.name().as_bytes()).0)
                    .collect();
                let scope_parts: Vec<&[u8]> = scope_hashes.iter().map(|h| h.as_slice()).collect();
                keccak256_parts(&[
                    &keccak256(ISSUE_TYPE.as_bytes()).0,
                    &payer_word,
                    &node_word,
                    &keccak256_parts(&scope_parts).0,
                    &word(u64::from(expires_in_days.unwrap_or(0))),
                    &keccak256(name.as_bytes()).0,
                    &signed_at,
                ])
            }
            KeyRequest::List => keccak256_parts(&[
                &keccak256(LIST_TYPE.as_bytes()).0,
                &payer_word,
                &node_word,
                &signed_at,
            ]),
            KeyRequest::Revoke { key } => keccak256_parts(&[
                &keccak256(REVOKE_TYPE.as_bytes()).0,
                &payer_word,
                &node_word,
                &keccak256(key.as_bytes()).0,
                &signed_at,
            ]),
        };
        typed_data_digest(&struct_hash)
    }

    /// Signs the request to `node` with the payer's wallet key, as a wallet would.
    pub fn sign(
        &self,
        wallet: &k256::ecdsa::SigningKey,
        node: &Address,
        signed_at_ms: u64,
    ) -> PayerSignature {
        let payer = address_of(wallet.verifying_key());
        PayerSignature {
            signed_at_ms,
            signature: sign_digest(wallet, &self.digest(&payer, node, signed_at_ms)),
        }
    }

    /// Checks that `signed` is the payer's own signature on this request to `node` (the node
    /// checking it), made within [`SIGNATURE_WINDOW_MS`] of `now_ms`.
    pub fn check(
        &self,
        payer: &Address,
        node: &Address,
        signed: Option<&PayerSignature>,
        now_ms: u64,
    ) -> Result<SignedRequest, KeyError> {
        let signed = signed.ok_or(KeyError::Unsigned { payer: *payer })?;
        if signed.signed_at_ms.abs_diff(now_ms) > SIGNATURE_WINDOW_MS {
            return Err(KeyError::StaleSignature {
                signed_at_ms: signed.signed_at_ms,
                now_ms,
            });
        }
        let digest = self.digest(payer, node, signed.signed_at_ms);
        let signer = recover(&digest, &signed.signature).map_err(KeyError::BadSignature)?;
        if signer != *payer {
            return Err(KeyError::NotPayers {
                signer,
                payer: *payer,
                node: *node,
            });
        }
        Ok(SignedRequest {
            digest,
            signed_at_ms: signed.signed_at_ms,
        })
    }
}

/// A key request its payer signed, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedRequest {
    /// The EIP-712 digest that was signed.
    pub digest: Hash32,
    pub signed_at_ms: u64,
}

/// A payer's wallet signature on a [`KeyRequest`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PayerSignature {
    /// When it was signed, in milliseconds since the Unix epoch (the `signedAtMs` it signs).
    pub signed_at_ms: u64,
    pub signature: Signature65,
}

impl PayerSignature {
    /// The query string that names `payer` and carries this signature, as listing
    /// (`GET /v1/keys`) and revoking (`DELETE /v1/keys/{id}`) take it.
    pub fn query(&self, payer: &Address) -> String {
        format!(
            "payer={payer}&signed_at_ms={}&signature={}",
            self.signed_at_ms,
            self.signature.to_hex()
        )
    }
}

/// The wallet and node the key service's tests sign with (the service's tests use them too).
#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The first anvil/hardhat development key (0xf39F…2266).
    pub(in crate::keys) fn wallet() -> k256::ecdsa::SigningKey {
        let secret = caravan_core::attestation::parse_secret_key(
            "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
        )
        .unwrap();
        k256::ecdsa::SigningKey::from_bytes((&secret).into()).unwrap()
    }

    const SIGNED_AT: u64 = 1_764_000_000_000;

    /// The node the requests are signed for: the second development key's address.
    pub(in crate::keys) fn node() -> Address {
        "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
            .parse()
            .unwrap()
    }

    #[test]
    fn key_requests_are_the_typed_data_any_wallet_signs() {
        let payer = address_of(wallet().verifying_key());
        // Digests and (RFC 6979) signatures made by eth-account (Python) for the same typed
        // data, signed for node(), under the domain {name: "caravan", version: "1"}: they match
        // byte for byte.
        let vectors = [
            (
                KeyRequest::Issue {
                    scopes: &[Scope::Chat, Scope::Models],
                    expires_in_days: Some(90),
                    name: "shop backend",
                },
                "0x9dbe36a64320d0e02a307bd1cf0d11268ac0d9394bb8cced623cc2e9fa772daa",
                "0x9ec7f2c32e7aca1adf2f7575ae2b1b8723ce90e518f0b556ec2c8b2b07dc69161d465f6775ae3b6940bde80d3275ff8febd719393adca2a859d131f7c57977071c",
            ),
            (
                KeyRequest::List,
                "0x21ba8361eb9acad2feb2fd30d2ab924f8eb9883eb2ab697206bfdb1c3da9ca6b",
                "0xba29c0266b968fd7db07c44787164aab30c7bc7cc80f7ae480f4cdd6e76410043a01bece7ceb32446049a53a81c801506bb008f6a7c4caaf3a254bc338a8b1801c",
            ),
            (
                KeyRequest::Revoke {
                    key: "key_0011223344556677",
                },
                "0xc4575f2f22947b77881b3519660d2a3f3a62b3f346980ead3d0d91a0a05b33bc",
                "0x0ccbf753d6ba0b9912aa9bc4fb9104596d0b935ce75e5897870329b9e3c7cf9125c0723c3ebf31ce1b16574ba7a6e58e4316355b527ad45df45239eaffbd53f01c",
            ),
        ];
        for (request, digest, signature) in vectors {
            assert_eq!(request.digest(&payer, &node(), SIGNED_AT).to_hex(), digest);
            let signed = request.sign(&wallet(), &node(), SIGNED_AT);
            assert_eq!(signed.signature.to_hex(), signature);
            let checked = request
                .check(&payer, &node(), Some(&signed), SIGNED_AT)
                .unwrap();
            assert_eq!(checked.digest.to_hex(), digest);
        }
    }

    #[test]
    fn a_key_request_needs_the_payers_fresh_signature_on_exactly_what_was_sent() {
        let payer = address_of(wallet().verifying_key());
        let scopes = [Scope::Chat];
        let issue = KeyRequest::Issue {
            scopes: &scopes,
            expires_in_days: None,
            name: "backend",
        };
        let signed = issue.sign(&wallet(), &node(), SIGNED_AT);
        assert_eq!(
            issue.check(&payer, &node(), None, SIGNED_AT),
            Err(KeyError::Unsigned { payer })
        );
        // A request signed for one node is refused by any other, which cannot replay it to be
        // handed a key for the payer's balance there.
        let elsewhere = issue
            .check(
                &payer,
                &Address::from_label("another node"),
                Some(&signed),
                SIGNED_AT,
            )
            .unwrap_err();
        assert!(
            matches!(&elsewhere, KeyError::NotPayers { .. })
                && elsewhere.to_string().contains("another node than this one"),
            "{elsewhere}"
        );
        // Another payer, other scopes or another kind of request: the signer recovered is not
        // the payer.
        let other = Address::from_label("someone else");
        for (request, who) in [
            (issue, other),
            (
                KeyRequest::Issue {
                    scopes: &Scope::ALL,
                    expires_in_days: None,
                    name: "backend",
                },
                payer,
            ),
            (KeyRequest::List, payer),
        ] {
            let error = request
                .check(&who, &node(), Some(&signed), SIGNED_AT)
                .unwrap_err();
            assert!(
                matches!(&error, KeyError::NotPayers { .. })
                    && error.to_string().contains("not by the payer"),
                "{error}"
            );
        }
        // Five minutes either side of the node's clock, and no more.
        for now in [
            SIGNED_AT - SIGNATURE_WINDOW_MS,
            SIGNED_AT + SIGNATURE_WINDOW_MS,
        ] {
            assert!(issue.check(&payer, &node(), Some(&signed), now).is_ok());
        }
        for now in [
            SIGNED_AT - SIGNATURE_WINDOW_MS - 1,
            SIGNED_AT + SIGNATURE_WINDOW_MS + 1,
        ] {
            assert!(matches!(
                issue.check(&payer, &node(), Some(&signed), now),
                Err(KeyError::StaleSignature { .. })
            ));
        }
        let mut broken = signed;
        broken.signature.0[64] = 30;
        assert!(matches!(
            issue.check(&payer, &node(), Some(&broken), SIGNED_AT),
            Err(KeyError::BadSignature(_))
        ));
    }

    /// A key request comes from outside (a payer's wallet, over HTTP): whatever its fields,
    /// signature and time, checking it answers, never panics; only the payer's own signature
    /// of exactly those fields passes, and a changed name no longer does. `PROPTEST_CASES`
    /// sets the cases (default 256); the count is printed as `fuzzed EIP-712 key requests: N
    /// inputs`.
    #[test]
    fn any_key_request_is_checked_and_only_its_payers_signature_passes() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, TestRunner};
        let inputs = std::cell::Cell::new(0u64);
        let fields = (
            ".{0,200}",
            prop::collection::vec(prop::sample::select(Scope::ALL.to_vec()), 0..8),
            prop::option::of(any::<u32>()),
            any::<u64>(),
            prop::collection::vec(any::<u8>(), 65),
        );
        TestRunner::new(Config {
            failure_persistence: None,
            ..Config::default()
        })
        .run(
            &fields,
            |(name, chosen, expires_in_days, signed_at_ms, noise)| {
                inputs.set(inputs.get() + 1);
                let payer = address_of(wallet().verifying_key());
                let request = KeyRequest::Issue {
                    scopes: &chosen,
                    expires_in_days,
                    name: &name,
                };
                let forged = PayerSignature {
                    signed_at_ms,
                    signature: Signature65(noise.try_into().expect("65 bytes")),
                };
                prop_assert!(
                    request
                        .check(&payer, &node(), Some(&forged), signed_at_ms)
                        .is_err()
                );
                let signed = request.sign(&wallet(), &node(), signed_at_ms);
                let checked = request.check(&payer, &node(), Some(&signed), signed_at_ms);
                prop_assert_eq!(checked.map(|c| c.signed_at_ms), Ok(signed_at_ms));
                let renamed = format!("{name}!");
                let changed = KeyRequest::Issue {
                    scopes: &chosen,
                    expires_in_days,
                    name: &renamed,
                };
                let refused = changed.check(&payer, &node(), Some(&signed), signed_at_ms);
                prop_assert!(
                    matches!(refused, Err(KeyError::NotPayers { .. })),
                    "{:?}",
                    refused
                );
                Ok(())
            },
        )
        .unwrap();
        println!("fuzzed EIP-712 key requests: {} inputs", inputs.get());
    }
}
