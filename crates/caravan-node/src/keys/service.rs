//! The key service: issues, lists, revokes and checks API keys, keeping each issue and
//! revocation as an access record in the log.

use std::collections::HashSet;
use std::sync::{Arc, Condvar, Mutex, RwLock};

use caravan_core::{Address, Hash32};
use caravan_store::{JournalError, SharedJournal, now_ms};
use serde::{Deserialize, Serialize};

use super::request::{KeyRequest, PayerSignature};
use super::{ApiKey, KEY_ID_BYTES, KeyError, KeyRing, Scope, key_id, new_secret, parse_key_id};
use crate::access::{self, AccessError};

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// The longest name a key may have, in bytes.
pub const MAX_KEY_NAME_BYTES: usize = 120;

/// The key service's access records, as stored (`{"type": "key_issued", ...}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum KeyRecord {
    KeyIssued {
        hash: Hash32,
        key: ApiKey,
        /// The digest of the payer's signed request that issued it (none for keys the operator
        /// issued in-process), so that signed request cannot issue another.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        authorization: Option<Hash32>,
    },
    KeyRevoked {
        hash: Hash32,
        at_ms: u64,
    },
}

impl KeyRecord {
    const KINDS: [&'static str; 2] = ["key_issued", "key_revoked"];
}

/// Why a key could not be issued, listed or revoked. Messages never repeat a key.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("{message}")]
    BadParam {
        param: &'static str,
        message: String,
    },
    #[error(
        "{payer} has no live key {id}: it was revoked already or never issued to {payer}. `caravan key list` (GET /v1/keys) lists the live ones"
    )]
    UnknownKey { payer: Address, id: String },
    /// The economy refused a key's record the service had checked: a fault in the node.
    #[error(
        "the economy refused the key's record ({0}); nothing changed. This is a fault in the node, not in the request: please report it"
    )]
    Refused(String),
    #[error("storage is unavailable; nothing changed, retry: {0}")]
    Store(#[from] JournalError),
    #[error(transparent)]
    Corrupt(#[from] AccessError),
}

/// Every account's API keys. Cheap to share: wrap it in an `Arc`.
pub struct Keys {
    journal: Arc<SharedJournal>,
    /// The node's address, which every signed key request names.
    node: Address,
    ring: RwLock<KeyRing>,
    /// The changes checked against the ring and not yet recorded, so two requests cannot both
    /// pass one check (a signed request issuing twice, or one key revoked twice) while each
    /// writes its record outside any lock, sharing group commits with the others.
    in_flight: Mutex<HashSet<Change>>,
    /// Signalled whenever a change leaves `in_flight`.
    settled: Condvar,
}

/// What a key request changes, as reserved while its record is written.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Change {
    /// An issue authorized by the signed request with this digest.
    Issue { authorization: Hash32 },
    /// The revocation of the payer's key shown as this id.
    Revoke {
        payer: Address,
        id: [u8; KEY_ID_BYTES],
    },
}

/// A change reserved in [`Keys::in_flight`]; dropping it (once the record is applied to the
/// ring, or failed) releases it and wakes whoever waits for the same change.
struct Reserved<'a> {
    keys: &'a Keys,
    change: Change,
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        self.keys
            .in_flight
            .lock()
            .expect("key change lock")
            .remove(&self.change);
        self.keys.settled.notify_all();
    }
}

impl Keys {
    /// The keys recorded in `journal`'s log, for the node at `node`.
    pub fn open(journal: Arc<SharedJournal>, node: Address) -> Result<Keys, KeysError> {
        let records: Vec<KeyRecord> = journal.read(|j| access::recorded(j, &KeyRecord::KINDS))?;
        let keys = Keys {
            journal,
            node,
            ring: RwLock::new(KeyRing::default()),
            in_flight: Mutex::new(HashSet::new()),
            settled: Condvar::new(),
        };
        records.iter().for_each(|record| keys.apply(record));
        keys.ring
            .write()
            .expect("key ring lock")
            .forget_stale(now_ms());
        Ok(keys)
    }

    fn apply(&self, record: &KeyRecord) {
        let mut ring = self.ring.write().expect("key ring lock");
        match record {
            KeyRecord::KeyIssued {
                hash,
                key,
                authorization,
            } => ring.issue(*hash, key.clone(), *authorization),
            KeyRecord::KeyRevoked { hash, .. } => ring.revoke(hash),
        }
    }

    /// Checks `change` against the ring with `check` and reserves it until the returned guard
    /// drops. A request for a change already in flight waits for it to settle and is then
    /// checked against the ring as the first one left it: a retry racing its original is
    /// refused if the original succeeded and goes ahead if it failed.
    fn reserve<T>(
        &self,
        change: Change,
        check: impl FnOnce() -> Result<T, KeysError>,
    ) -> Result<(T, Reserved<'_>), KeysError> {
        let mut in_flight = self.in_flight.lock().expect("key change lock");
        while in_flight.contains(&change) {
            in_flight = self.settled.wait(in_flight).expect("key change lock");
        }
        let checked = check()?;
        in_flight.insert(change);
        Ok((checked, Reserved { keys: self, change }))
    }

    /// The node every signed key request must name.
    pub fn node(&self) -> Address {
        self.node
    }

    /// The key behind an `Authorization` header value, if it is live and allows `scope`.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        scope: Scope,
    ) -> Result<ApiKey, KeyError> {
        self.ring
            .read()
            .expect("key ring lock")
            .authenticate(authorization, scope, now_ms())
    }

    fn record(&self, record: KeyRecord) -> Result<(), KeysError> {
        let mut submitted = self.journal.submit(vec![access::event(&record)])?;
        if let Some((_, why)) = submitted.refused.pop() {
            return Err(KeysError::Refused(why.to_string()));
        }
        self.apply(&record);
        Ok(())
    }

    /// Issues a key for `payer` on the operator's authority (in-process callers such as the
    /// demo and the benchmarks); returns the secret (shown this once) and what is stored. Over
    /// HTTP only the payer may: see [`Keys::issue_signed`].
    pub fn issue(
        &self,
        payer: Address,
        scopes: Vec<Scope>,
        expires_ms: Option<u64>,
        name: String,
    ) -> Result<(String, ApiKey), KeysError> {
        self.record_key(payer, scopes, expires_ms, name, None)
    }

    /// Issues a key the payer asked for with its wallet's signature: `scopes` in the order
    /// signed, expiring `expires_in_days` after the signing time. A signed request issues one
    /// key only. Blocking: waits until the key is durable.
    pub fn issue_signed(
        &self,
        payer: Address,
        scopes: Vec<Scope>,
        expires_in_days: Option<u32>,
        name: String,
        signed: Option<&PayerSignature>,
    ) -> Result<(String, ApiKey), KeysError> {
        if expires_in_days == Some(0) {
            return Err(KeysError::BadParam {
                param: "expires_in_days",
                message: "a key must live at least a day; leave expires_in_days out for a key that never expires".into(),
            });
        }
        let request = KeyRequest::Issue {
            scopes: &scopes,
            expires_in_days,
            name: &name,
        };
        let now = now_ms();
        let signed = request.check(&payer, &self.node, signed, now)?;
        let expires_ms = expires_in_days.map(|days| signed.signed_at_ms + u64::from(days) * DAY_MS);
        let change = Change::Issue {
            authorization: signed.digest,
        };
        let ((), _reserved) = self.reserve(change, || {
            let mut ring = self.ring.write().expect("key ring lock");
            ring.forget_stale(now);
            if ring.authorized_before(&signed.digest) {
                return Err(KeyError::SignatureReused.into());
            }
            if ring.may_have_forgotten(signed.signed_at_ms) {
                return Err(KeyError::StaleSignature {
                    signed_at_ms: signed.signed_at_ms,
                    now_ms: now,
                }
                .into());
            }
            Ok(())
        })?;
        self.record_key(payer, scopes, expires_ms, name, Some(signed.digest))
    }

    fn record_key(
        &self,
        payer: Address,
        scopes: Vec<Scope>,
        expires_ms: Option<u64>,
        name: String,
        authorization: Option<Hash32>,
    ) -> Result<(String, ApiKey), KeysError> {
        if scopes.is_empty() {
            return Err(KeysError::BadParam {
                param: "scopes",
                message: format!(
                    "a key needs at least one scope: {}",
                    Scope::ALL.map(Scope::name).join(", ")
                ),
            });
        }
        if name.len() > MAX_KEY_NAME_BYTES {
            return Err(KeysError::BadParam {
                param: "name",
                message: format!("a key's name is at most {MAX_KEY_NAME_BYTES} bytes"),
            });
        }
        let (secret, hash) = new_secret();
        let mut scopes = scopes;
        scopes.sort();
        scopes.dedup();
        let key = ApiKey {
            id: key_id(&hash),
            payer,
            scopes,
            expires_ms,
            name,
            created_ms: now_ms(),
        };
        self.record(KeyRecord::KeyIssued {
            hash,
            key: key.clone(),
            authorization,
        })?;
        Ok((secret, key))
    }

    /// Revokes the payer's key `id`, asked for with the payer's wallet signature; a revoked key
    /// stops working at once. A key is revoked once: asking again (a retry whose answer was
    /// lost, say) is [`KeysError::UnknownKey`]. Blocking: waits until the revocation is durable.
    pub fn revoke_signed(
        &self,
        payer: Address,
        id: &str,
        signed: Option<&PayerSignature>,
    ) -> Result<(), KeysError> {
        let shown = parse_key_id(id).map_err(|malformed| KeysError::BadParam {
            param: "id",
            message: malformed.to_string(),
        })?;
        KeyRequest::Revoke { key: id }.check(&payer, &self.node, signed, now_ms())?;
        let change = Change::Revoke { payer, id: shown };
        let (hash, _reserved) = self.reserve(change, || {
            self.ring
                .read()
                .expect("key ring lock")
                .find(&payer, &shown)
                .ok_or_else(|| KeysError::UnknownKey {
                    payer,
                    id: id.to_owned(),
                })
        })?;
        self.record(KeyRecord::KeyRevoked {
            hash,
            at_ms: now_ms(),
        })
    }

    /// The payer's live keys (without secrets), asked for with the payer's wallet signature.
    pub fn list_signed(
        &self,
        payer: &Address,
        signed: Option<&PayerSignature>,
    ) -> Result<Vec<ApiKey>, KeysError> {
        KeyRequest::List.check(payer, &self.node, signed, now_ms())?;
        Ok(self.of(payer))
    }

    /// The payer's live keys, oldest first.
    pub fn of(&self, payer: &Address) -> Vec<ApiKey> {
        self.ring.read().expect("key ring lock").of_payer(payer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::request::tests::{node, wallet};
    use caravan_core::attestation::address_of;
    use caravan_core::{Event, Genesis, Ppm};
    use caravan_store::{Journal, Location};

    /// A key service over a fresh store in `dir`, for the node the request tests sign for.
    fn service(dir: &std::path::Path) -> Keys {
        let mut journal = Journal::open(Location::DataDir(dir.to_owned()), &mut |_, _| {}).unwrap();
        journal
            .submit(vec![Event::Genesis(Genesis {
                treasury: Address::from_label("treasury"),
                protocol_fee: Ppm::ZERO,
            })])
            .unwrap();
        Keys::open(Arc::new(SharedJournal::new(journal)), node()).unwrap()
    }

    fn recorded(keys: &Keys) -> Vec<KeyRecord> {
        keys.journal
            .read(|j| access::recorded(j, &KeyRecord::KINDS))
            .unwrap()
    }

    /// Many copies of one signed request sent at once (a client retrying while the first is
    /// still being written) issue one key; then many revocations of that key sent at once
    /// revoke it once. Each change is written outside the service's lock, so only the
    /// reservation of what it changes stands between the copies.
    #[test]
    fn racing_copies_of_one_change_make_it_once() {
        const COPIES: usize = 8;
        let dir = tempfile::tempdir().unwrap();
        let keys = service(dir.path());
        let wallet = wallet();
        let payer = address_of(wallet.verifying_key());
        let scopes = vec![Scope::Models];
        let issue = KeyRequest::Issue {
            scopes: &scopes,
            expires_in_days: None,
            name: "shop",
        }
        .sign(&wallet, &keys.node(), now_ms());
        let issued: Vec<Result<(String, ApiKey), KeysError>> = std::thread::scope(|scope| {
            let copies: Vec<_> = (0..COPIES)
                .map(|_| {
                    scope.spawn(|| {
                        keys.issue_signed(payer, scopes.clone(), None, "shop".into(), Some(&issue))
                    })
                })
                .collect();
            copies
                .into_iter()
                .map(|copy| copy.join().unwrap())
                .collect()
        });
        let ids: Vec<String> = issued
            .iter()
            .filter_map(|outcome| outcome.as_ref().ok().map(|(_, key)| key.id.clone()))
            .collect();
        assert_eq!(ids.len(), 1, "issued {ids:?}");
        for refused in issued.iter().filter_map(|outcome| outcome.as_ref().err()) {
            assert!(
                matches!(refused, KeysError::Key(KeyError::SignatureReused)),
                "{refused}"
            );
        }
        assert_eq!(keys.of(&payer).len(), 1);

        let revoke = KeyRequest::Revoke { key: &ids[0] }.sign(&wallet, &keys.node(), now_ms());
        let revoked: Vec<Result<(), KeysError>> = std::thread::scope(|scope| {
            let copies: Vec<_> = (0..COPIES)
                .map(|_| scope.spawn(|| keys.revoke_signed(payer, &ids[0], Some(&revoke))))
                .collect();
            copies
                .into_iter()
                .map(|copy| copy.join().unwrap())
                .collect()
        });
        assert_eq!(revoked.iter().filter(|outcome| outcome.is_ok()).count(), 1);
        for refused in revoked.iter().filter_map(|outcome| outcome.as_ref().err()) {
            assert!(matches!(refused, KeysError::UnknownKey { .. }), "{refused}");
        }
        assert!(keys.of(&payer).is_empty());

        let records = recorded(&keys);
        let issues = records
            .iter()
            .filter(|record| matches!(record, KeyRecord::KeyIssued { .. }))
            .count();
        let revocations = records
            .iter()
            .filter(|record| matches!(record, KeyRecord::KeyRevoked { .. }))
            .count();
        assert_eq!((issues, revocations), (1, 1), "{records:?}");
    }

    #[test]
    fn keys_are_random_and_stored_only_as_hashes() {
        let (a, hash_a) = new_secret();
        let (b, _) = new_secret();
        assert_ne!(a, b);
        assert!(a.starts_with("crv_") && a.len() == 68);
        let record = KeyRecord::KeyIssued {
            hash: hash_a,
            key: ApiKey {
                id: key_id(&hash_a),
                payer: Address::from_label("shop"),
                scopes: Scope::ALL.to_vec(),
                expires_ms: None,
                name: String::new(),
                created_ms: 0,
            },
            authorization: None,
        };
        let stored = serde_json::to_string(&record).unwrap();
        assert!(!stored.contains(&a[4..]), "{stored}");
        assert!(stored.starts_with(r#"{"type":"key_issued""#), "{stored}");
    }
}
