//! The exact economy at the centre of caravan.
//!
//! Accounts are EVM addresses, money is `u128` base units of an ERC-20 token, shares are parts per
//! million. Assets form an immutable, acyclic lineage; every economically meaningful fact is an
//! event in a hash-chained log; balances live in a double-entry ledger that is a fold over that
//! log; closing an epoch propagates royalties through the lineage and yields a cumulative Merkle
//! root that an EVM contract can verify claims against.
//!
//! This crate does no I/O, spawns no tasks and knows nothing about HTTP, SQL or chains: the same
//! inputs give the same bytes on every machine. Storage and transport live in other crates.

pub mod address;
pub mod asset;
pub mod attestation;
pub mod calendar;
pub mod codec;
pub mod economy;
pub mod epoch;
pub mod event;
pub mod hash;
pub mod ledger;
pub mod lineage;
pub mod merkle;
pub mod money;
pub mod report;
pub mod royalty;
pub mod snapshot;
pub mod terms;

pub use address::Address;
pub use asset::{
    AssetId, AssetKind, EdgeKind, Licence, Manifest, Member, ParentEdge, Role, RoleShare,
};
pub use attestation::{Attestation, Signature65};
pub use economy::{Economy, EpochRecord, EventError, ReplayError};
pub use epoch::{ChainLeaves, ChainProofs, EpochBundle, EpochOutcome, ProvenLeaf, verify_bundle};
pub use event::{
    Bounty, CallPart, ChainDeposit, ChainHead, Envelope, Event, Genesis, HOME_CHAIN, Lane,
    MAX_CALL_PARTS, MAX_TRACE_BYTES, MAX_WORK_RECORD_BYTES, MeteredCall, Spending,
    SpendingOverflow, Usage,
};
pub use hash::{Hash32, keccak256};
pub use ledger::{AccountRef, Balance, Ledger, Transfer};
pub use merkle::{Leaf, MerkleTree, verify_proof};
pub use money::{Amount, Ppm, Token};
pub use royalty::{Payout, PayoutTo};
pub use terms::{ModelShares, SharesTooLarge};

/// Serde for `u128` amounts as decimal strings: JSON numbers lose precision above 2^53 in most
/// readers, and an amount must survive every reader exactly.
pub mod serde_u128 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &u128, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&value.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u128, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(|_| {
            serde::de::Error::custom(format!("`{text}` is not a whole number of base units"))
        })
    }
}
