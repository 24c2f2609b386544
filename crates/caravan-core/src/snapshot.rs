//! The whole economy as one canonical byte string.
//!
//! Its keccak-256 is the state hash two replays must agree on, and the bytes themselves are a
//! snapshot: a store can start from its latest snapshot and replay only the events after it.
//! A snapshot is a cache of the log, never a source of truth — decoding re-checks the lineage's
//! rules and the ledger's balance, and a full replay (`caravan log verify`) ignores snapshots.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use crate::address::Address;
use crate::asset::{AssetId, Manifest};
use crate::attestation::Attestation;
use crate::codec::{DecodeError, Decoder, Encoder};
use crate::economy::{Economy, EpochRecord};
use crate::event::{ChainDeposit, ChainHead, Genesis, HOME_CHAIN};
use crate::hash::{Hash32, keccak256};
use crate::ledger::{AccountRef, Balance, Ledger};
use crate::lineage::Lineage;
use crate::money::{Ppm, Token};
use crate::royalty::ServedBy;

/// Version 1 is the state of an economy where nobody chose a payout chain; version 2 adds the
/// choices and what each chosen chain pays; version 3 adds validators' attestations; version 4
/// adds the deposits credited from chains; version 5 adds when each asset was registered;
/// version 6 adds the entitlements credited since the last close outside its royalties.
/// Writing the lowest version that holds the state keeps the state hash of an economy without
/// assets unchanged; a snapshot an older caravan wrote is checked against the state encoded in
/// its own version ([`Economy::encode_state_as`]).
const SNAPSHOT_VERSION: u8 = 6;
const SNAPSHOT_VERSION_WITHOUT_CREDITS: u8 = 5;
const SNAPSHOT_VERSION_WITHOUT_REGISTRATION_TIMES: u8 = 4;
const SNAPSHOT_VERSION_WITHOUT_DEPOSITS: u8 = 3;
const SNAPSHOT_VERSION_WITHOUT_ATTESTATIONS: u8 = 2;
const SNAPSHOT_VERSION_WITHOUT_CHAINS: u8 = 1;

impl Economy {
    /// The state in canonical order: same state, same bytes, on every machine.
    pub fn encode_state(&self) -> Vec<u8> {
        self.encode_state_as(self.snapshot_version())
            .expect("the state's own version holds it")
    }

    /// The lowest snapshot version that holds the state.
    fn snapshot_version(&self) -> u8 {
        // Whenever anyone is entitled to anything, so that a layout without the credits since
        // the last close tells (in `decode_state`) that an older caravan wrote it.
        if !self.credited.is_empty() || has_entitlements(&self.ledger) {
            SNAPSHOT_VERSION
        } else if !self.lineage.is_empty() {
            SNAPSHOT_VERSION_WITHOUT_CREDITS
        } else if !self.chain_deposits.is_empty() {
            SNAPSHOT_VERSION_WITHOUT_REGISTRATION_TIMES
        } else if !self.attestations.is_empty() {
            SNAPSHOT_VERSION_WITHOUT_DEPOSITS
        } else if !(self.payout_chains.is_empty() && self.chain_credits.is_empty()) {
            SNAPSHOT_VERSION_WITHOUT_ATTESTATIONS
        } else {
            SNAPSHOT_VERSION_WITHOUT_CHAINS
        }
    }

    /// The state in the layout of snapshot `version`, as a caravan that wrote that version
    /// would encode it; when `version` predates registration times, or the credits since the
    /// last close, they are left out. `None`
    /// when the version is unknown or cannot hold the state (chains, attestations or deposits
    /// it predates).
    pub fn encode_state_as(&self, version: u8) -> Option<Vec<u8>> {
        if !(SNAPSHOT_VERSION_WITHOUT_CHAINS..=SNAPSHOT_VERSION).contains(&version)
            || self
                .snapshot_version()
                .min(SNAPSHOT_VERSION_WITHOUT_REGISTRATION_TIMES)
                > version
        {
            return None;
        }
        let with_chains = version >= SNAPSHOT_VERSION_WITHOUT_ATTESTATIONS;
        let with_attestations = version >= SNAPSHOT_VERSION_WITHOUT_DEPOSITS;
        let with_deposits = version >= SNAPSHOT_VERSION_WITHOUT_REGISTRATION_TIMES;
        let mut e = Encoder::default();
        e.u8(version).u64(self.head.next_seq).hash(&self.head.hash);
        match &self.genesis {
            None => e.u8(0),
            Some(genesis) => e
                .u8(1)
                .address(&genesis.treasury)
                .u32(genesis.protocol_fee.parts()),
        };
        e.len(self.tokens.len());
        for token in self.tokens.values() {
            e.address(&token.address)
                .str(&token.symbol)
                .u8(token.decimals);
        }
        e.len(self.lineage.len());
        for asset in self.lineage.iter() {
            asset.manifest.encode_into(&mut e);
        }
        let entries = self.ledger.sorted_entries();
        e.len(entries.len());
        for (account, token, balance) in entries {
            encode_account(&mut e, &account);
            e.address(&token).u128(balance.credits).u128(balance.debits);
        }
        let mut served: Vec<_> = self.served.iter().collect();
        served.sort_unstable_by_key(|(key, _)| **key);
        e.len(served.len());
        for ((position, token), nodes) in served {
            e.u32(*position).address(token).len(nodes.len());
            for (node, amount) in nodes {
                e.address(node).u128(*amount);
            }
        }
        e.len(self.epochs.len());
        for record in &self.epochs {
            e.u64(record.epoch)
                .hash(&record.root)
                .u64(record.seq)
                .u64(record.at_ms)
                .u64(record.leaf_count);
        }
        if with_chains {
            e.len(self.payout_chains.len());
            for (account, chain_id) in &self.payout_chains {
                e.address(account).u64(*chain_id);
            }
            e.len(self.chain_credits.len());
            for ((chain_id, account, token), amount) in &self.chain_credits {
                e.u64(*chain_id)
                    .address(account)
                    .address(token)
                    .u128(*amount);
            }
        }
        if with_attestations {
            e.len(self.attestations.len());
            for (position, attestations) in &self.attestations {
                e.u32(*position).len(attestations.len());
                for attestation in attestations {
                    attestation.encode_into(&mut e);
                }
            }
        }
        if with_deposits {
            e.len(self.chain_deposits.len());
            for deposit in self.chain_deposits.values() {
                deposit.encode_into(&mut e);
            }
        }
        if version >= SNAPSHOT_VERSION_WITHOUT_CREDITS {
            for asset in self.lineage.iter() {
                e.u64(asset.registered_ms);
            }
        }
        if version >= SNAPSHOT_VERSION {
            e.len(self.credited.len());
            for ((account, token), amount) in &self.credited {
                e.address(account).address(token).u128(*amount);
            }
        }
        Some(e.bytes)
    }

    /// A hash of the whole state. Two replays of the same log agree on it bit for bit.
    pub fn state_hash(&self) -> Hash32 {
        keccak256(&self.encode_state())
    }

    /// Rebuilds an economy from [`Economy::encode_state`] bytes, re-checking the lineage rules
    /// and that the ledger balances.
    pub fn decode_state(bytes: &[u8]) -> Result<Economy, DecodeError> {
        let mut d = Decoder::new(bytes);
        let version = d.u8()?;
        if !(SNAPSHOT_VERSION_WITHOUT_CHAINS..=SNAPSHOT_VERSION).contains(&version) {
            return Err(d.error(format!(
                "snapshot version {version}; this build reads {SNAPSHOT_VERSION}"
            )));
        }
        let head = ChainHead {
            next_seq: d.u64()?,
            hash: d.hash()?,
        };
        let genesis = match d.u8()? {
            0 => None,
            1 => {
                let treasury = d.address()?;
                let fee = d.u32()?;
                Some(Genesis {
                    treasury,
                    protocol_fee: Ppm::new(fee).map_err(|why| d.error(why))?,
                })
            }
            _ => return Err(d.error("bad genesis marker")),
        };
        let mut tokens = BTreeMap::new();
        for _ in 0..d.len(25)? {
            let token = Token {
                address: d.address()?,
                symbol: d.str()?,
                decimals: d.u8()?,
            };
            tokens.insert(token.address, token);
        }
        let mut lineage = Lineage::default();
        for _ in 0..d.len(64)? {
            let manifest = Manifest::decode_from(&mut d)?;
            lineage
                .register(manifest)
                .map_err(|why| d.error(format!("snapshot lineage is invalid: {why}")))?;
        }
        let mut entries = Vec::new();
        for _ in 0..d.len(53)? {
            let account = decode_account(&mut d)?;
            if let AccountRef::AssetRevenue(id) | AccountRef::CarryForward(id) = &account
                && lineage.position(id).is_none()
            {
                return Err(d.error(format!(
                    "snapshot holds money for asset {id}, which its lineage lacks"
                )));
            }
            entries.push((
                account,
                d.address()?,
                Balance {
                    credits: d.u128()?,
                    debits: d.u128()?,
                },
            ));
        }
        let ledger = Ledger::from_entries(entries)
            .map_err(|why| d.error(format!("snapshot ledger is invalid: {why}")))?;
        let mut served: FxHashMap<(u32, Address), ServedBy> = FxHashMap::default();
        for _ in 0..d.len(28)? {
            let position = d.u32()?;
            if position as usize >= lineage.len() {
                return Err(d.error(format!(
                    "served revenue names asset position {position}, past the lineage"
                )));
            }
            let token = d.address()?;
            let mut nodes = ServedBy::new();
            for _ in 0..d.len(36)? {
                nodes.insert(d.address()?, d.u128()?);
            }
            served.insert((position, token), nodes);
        }
        let mut epochs = Vec::new();
        for _ in 0..d.len(64)? {
            epochs.push(EpochRecord {
                epoch: d.u64()?,
                root: d.hash()?,
                seq: d.u64()?,
                at_ms: d.u64()?,
                leaf_count: d.u64()?,
            });
        }
        let mut payout_chains = BTreeMap::new();
        let mut chain_credits = BTreeMap::new();
        if version >= SNAPSHOT_VERSION_WITHOUT_ATTESTATIONS {
            for _ in 0..d.len(28)? {
                let account = d.address()?;
                let chain_id = d.u64()?;
                if chain_id == HOME_CHAIN {
                    return Err(d.error("a payout choice names the home chain, which is implied"));
                }
                payout_chains.insert(account, chain_id);
            }
            for _ in 0..d.len(64)? {
                let key = (d.u64()?, d.address()?, d.address()?);
                let amount = d.u128()?;
                let entitled = ledger
                    .balance(&AccountRef::Beneficiary(key.1), &key.2)
                    .credits;
                if amount > entitled {
                    return Err(d.error(format!(
                        "chain {} is said to pay {} {amount}, more than its entitlement {entitled}",
                        key.0, key.1
                    )));
                }
                chain_credits.insert(key, amount);
            }
        }
        let mut attestations: BTreeMap<u32, Vec<Attestation>> = BTreeMap::new();
        if version >= SNAPSHOT_VERSION_WITHOUT_DEPOSITS {
            for _ in 0..d.len(8)? {
                let position = d.u32()?;
                if position as usize >= lineage.len() {
                    return Err(d.error(format!(
                        "attestations name asset position {position}, past the lineage"
                    )));
                }
                let model = lineage.at(position).id;
                let mut list = Vec::new();
                for _ in 0..d.len(150)? {
                    let attestation = Attestation::decode_from(&mut d)?;
                    if attestation.model != model {
                        return Err(d.error("an attestation is filed under another model"));
                    }
                    list.push(attestation);
                }
                attestations.insert(position, list);
            }
        }
        let mut chain_deposits = BTreeMap::new();
        if version >= SNAPSHOT_VERSION_WITHOUT_REGISTRATION_TIMES {
            for _ in 0..d.len(ChainDeposit::ENCODED_LEN)? {
                let deposit = ChainDeposit::decode_from(&mut d)?;
                if !tokens.contains_key(&deposit.token) {
                    return Err(d.error(format!(
                        "a deposit is in token {}, which is not registered",
                        deposit.token
                    )));
                }
                if chain_deposits.insert(deposit.key(), deposit).is_some() {
                    return Err(d.error("a deposit is listed twice"));
                }
            }
        }
        if version >= SNAPSHOT_VERSION_WITHOUT_CREDITS {
            lineage.set_registration_times(
                (0..lineage.len())
                    .map(|_| d.u64())
                    .collect::<Result<Vec<_>, _>>()?,
            );
        } else if !lineage.is_empty() {
            return Err(d.error(
                "this snapshot was written before assets' registration times were kept; the log is replayed instead",
            ));
        }
        let mut credited = BTreeMap::new();
        if version >= SNAPSHOT_VERSION {
            for _ in 0..d.len(56)? {
                let key = (d.address()?, d.address()?);
                if !tokens.contains_key(&key.1) {
                    return Err(d.error(format!(
                        "a credit is in token {}, which is not registered",
                        key.1
                    )));
                }
                if credited.insert(key, d.u128()?).is_some() {
                    return Err(d.error("a credit is listed twice"));
                }
            }
        } else if has_entitlements(&ledger) {
            // What was credited since the last close is not in this layout, and the next
            // epoch's bundle must list it.
            return Err(d.error(
                "this snapshot was written before the credits between closes were kept; the log is replayed instead",
            ));
        }
        d.finish()?;
        Ok(Economy {
            genesis,
            tokens,
            lineage,
            ledger,
            served,
            epochs,
            head,
            payout_chains,
            chain_credits,
            attestations,
            chain_deposits,
            credited,
        })
    }
}

/// Whether any account was ever credited an entitlement.
fn has_entitlements(ledger: &Ledger) -> bool {
    ledger.entries().any(|((account, _), balance)| {
        matches!(account, AccountRef::Beneficiary(_)) && balance.credits > 0
    })
}

fn encode_account(e: &mut Encoder, account: &AccountRef) {
    match account {
        AccountRef::External(a) => e.u8(0).address(a),
        AccountRef::Payer(a) => e.u8(1).address(a),
        AccountRef::AssetRevenue(id) => e.u8(2).hash(&id.0),
        AccountRef::CarryForward(id) => e.u8(3).hash(&id.0),
        AccountRef::Beneficiary(a) => e.u8(4).address(a),
        AccountRef::Treasury => e.u8(5),
        AccountRef::Escrow(project) => e.u8(6).hash(project),
    };
}

fn decode_account(d: &mut Decoder<'_>) -> Result<AccountRef, DecodeError> {
    Ok(match d.u8()? {
        0 => AccountRef::External(d.address()?),
        1 => AccountRef::Payer(d.address()?),
        2 => AccountRef::AssetRevenue(AssetId(d.hash()?)),
        3 => AccountRef::CarryForward(AssetId(d.hash()?)),
        4 => AccountRef::Beneficiary(d.address()?),
        5 => AccountRef::Treasury,
        6 => AccountRef::Escrow(d.hash()?),
        tag => return Err(d.error(format!("unknown account kind {tag}"))),
    })
}
