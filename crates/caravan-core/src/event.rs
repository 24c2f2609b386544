//! The append-only event log. Every economically meaningful fact is an [`Event`]; each is sealed
//! into an [`Envelope`] with a sequence number, a timestamp and the hash of the envelope before
//! it, so changing or dropping any past event breaks every hash after it.

use serde::{Deserialize, Serialize};

use crate::address::Address;
use crate::asset::{AssetId, Manifest};
use crate::attestation::Attestation;
use crate::calendar::DAY_MS;
use crate::codec::{DecodeError, Decoder, Encoder};
use crate::hash::{Hash32, keccak256_parts};
use crate::money::{Amount, Ppm, Token};

const EVENT_DOMAIN: &[u8] = b"caravan/event/v1";

/// How an economy is set up; the first event of every log and never repeated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    /// Where protocol fees are paid.
    pub treasury: Address,
    /// Taken from every paid call before the rest accrues to the asset.
    pub protocol_fee: Ppm,
}

/// One paid use of an asset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub asset: AssetId,
    pub payer: Address,
    pub token: Address,
    /// What the payer is charged in total, in base units.
    #[serde(with = "crate::serde_u128")]
    pub amount: Amount,
    /// How many calls this record covers.
    pub calls: u32,
    /// The node that served the calls; it shares the asset's compute-node role by revenue served.
    pub node: Address,
}

/// One call through the gateway, charged once: what the payer paid for each asset the call
/// actually used (an agent and every component it called), applied together or not at all.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeteredCall {
    pub payer: Address,
    pub token: Address,
    /// The node that served the call; it shares each asset's compute-node role.
    pub node: Address,
    /// `keccak(payer ‖ Idempotency-Key)` when the client sent a key: a node that restarts
    /// finds it here and never charges the same request twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Hash32>,
    pub parts: Vec<CallPart>,
    /// What happened, as the gateway's JSON (which component was called, in order, at what
    /// cost), kept with the charge for audit.
    pub trace: String,
}

/// One asset's share of a metered call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallPart {
    pub asset: AssetId,
    #[serde(with = "crate::serde_u128")]
    pub amount: Amount,
    /// How many priced units (inputs classified, calls made) this part covers.
    pub calls: u32,
}

/// Money that arrived on a chain: a `Deposited` log of caravan's distributor, credited to the
/// account it names once its block has the chain's confirmations. `(chain_id, tx, log_index)`
/// names the log on its chain, so the economy credits each one at most once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainDeposit {
    pub chain_id: u64,
    /// The transaction that made the deposit.
    pub tx: Hash32,
    /// The log's index within its block.
    pub log_index: u64,
    /// The block that holds the transaction, for audit.
    pub block: u64,
    /// Whose prepaid balance it fills (not necessarily who sent it).
    pub account: Address,
    pub token: Address,
    #[serde(with = "crate::serde_u128")]
    pub amount: Amount,
}

impl ChainDeposit {
    /// What makes a deposit unique: its chain, its transaction and its log's index.
    pub fn key(&self) -> (u64, Hash32, u64) {
        (self.chain_id, self.tx, self.log_index)
    }

    /// Encoded bytes: what one deposit takes in an event and in a snapshot.
    pub(crate) const ENCODED_LEN: usize = 8 + 32 + 8 + 8 + 20 + 20 + 16;

    /// The deposit in the log's and the snapshot's byte layout.
    pub(crate) fn encode_into(&self, e: &mut Encoder) {
        e.u64(self.chain_id)
            .hash(&self.tx)
            .u64(self.log_index)
            .u64(self.block)
            .address(&self.account)
            .address(&self.token)
            .u128(self.amount);
    }

    pub(crate) fn decode_from(d: &mut Decoder) -> Result<ChainDeposit, DecodeError> {
        Ok(ChainDeposit {
            chain_id: d.u64()?,
            tx: d.hash()?,
            log_index: d.u64()?,
            block: d.u64()?,
            account: d.address()?,
            token: d.address()?,
            amount: d.u128()?,
        })
    }
}

/// The most parts one metered call may have (an agent and the components it called).
pub const MAX_CALL_PARTS: usize = 64;
/// The largest call trace or access record accepted, in bytes.
pub const MAX_TRACE_BYTES: usize = 64 << 10;

impl MeteredCall {
    /// The call's parts as usage records, in order.
    pub fn usages(&self) -> impl Iterator<Item = Usage> + '_ {
        self.parts.iter().map(|part| Usage {
            asset: part.asset,
            payer: self.payer,
            token: self.token,
            amount: part.amount,
            calls: part.calls,
            node: self.node,
        })
    }

    /// What the payer is charged in all, or `None` past 2^128 base units.
    pub fn total(&self) -> Option<Amount> {
        self.parts
            .iter()
            .try_fold(0 as Amount, |sum, part| sum.checked_add(part.amount))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Event {
    Genesis(Genesis),
    TokenRegistered(Token),
    AssetRegistered(Manifest),
    /// Money enters a payer's prepaid balance from outside.
    Deposited {
        payer: Address,
        token: Address,
        #[serde(with = "crate::serde_u128")]
        amount: Amount,
    },
    UsageRecorded(Usage),
    /// The epoch's royalties were propagated; `root` is the cumulative Merkle root it produced,
    /// which a replay must reproduce.
    EpochClosed {
        epoch: u64,
        root: Hash32,
    },
    /// A fact of the data-work layer (a project created, items added, a judgment submitted, a
    /// review), as that layer's own JSON, with the bounties it caused. The economy does not
    /// interpret the record; chaining it here makes work and the payments it causes one atomic,
    /// tamper-evident history: the record and its bounties are accepted together or not at all.
    WorkRecorded {
        project: Hash32,
        record: String,
        /// The project's token, which bounties are paid in.
        token: Address,
        /// Accepted judgments' bounties, out of the project's escrow.
        bounties: Vec<Bounty>,
    },
    /// A data project's budget moved into its escrow from outside caravan. Written by stores
    /// before budgets came out of prepaid balances; caravan no longer writes it (money enters
    /// only as a deposit), and it replays as it always did.
    ProjectFunded {
        project: Hash32,
        requester: Address,
        token: Address,
        #[serde(with = "crate::serde_u128")]
        amount: Amount,
    },
    /// Budget a closed project no longer needs goes back to its requester, as an entitlement
    /// claimable on chain like any other.
    EscrowReleased {
        project: Hash32,
        requester: Address,
        token: Address,
        #[serde(with = "crate::serde_u128")]
        amount: Amount,
    },
    /// An account chooses the chain its earnings are paid on from now on: a chain id, or
    /// [`HOME_CHAIN`] for the node's home chain. What it earned before stays claimable on the
    /// chain it was assigned to; cumulative amounts never move between chains.
    PayoutChainChosen {
        account: Address,
        chain_id: u64,
    },
    /// A call through the gateway, charged to the payer's prepaid balance.
    CallMetered(MeteredCall),
    /// A fact of the gateway's access control (an API key issued or revoked, an upstream or agent
    /// registered), as the gateway's
    /// own JSON. Like a work record, the economy does not interpret it; keeping it in the log
    /// makes who may spend a balance as durable and tamper-evident as the spending.
    AccessRecorded {
        record: String,
    },
    /// A validator's signed evaluation of a model; it makes the validator a member of the
    /// model's validator role.
    ValidationAttested(Attestation),
    /// A requester escrows a data project's budget out of its prepaid balance (the balance that
    /// deposits fill and calls spend); bounties are paid out of the escrow.
    BudgetEscrowed {
        project: Hash32,
        requester: Address,
        token: Address,
        #[serde(with = "crate::serde_u128")]
        amount: Amount,
    },
    /// Money that arrived on a chain is credited to an account's prepaid balance, once.
    DepositConfirmed(ChainDeposit),
    /// An account takes back prepaid balance it has not spent or escrowed: it becomes the
    /// account's entitlement, claimable on chain with the next root like any other.
    Withdrawn {
        account: Address,
        token: Address,
        #[serde(with = "crate::serde_u128")]
        amount: Amount,
    },
}

/// The chain id that stands for the node's home chain: where everyone who never chose a chain is
/// paid. The node's configuration says which chain that is; it cannot change once a home root
/// is posted.
pub const HOME_CHAIN: u64 = 0;

/// A bounty for an accepted judgment: out of the project's escrow, into the contributor's
/// entitlement (and so into the next epoch's root).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bounty {
    pub contributor: Address,
    #[serde(with = "crate::serde_u128")]
    pub amount: Amount,
    /// The judgment's number within its project, for audit.
    pub judgment: u32,
}

/// The largest work record accepted, in bytes of JSON; imports are split into records below it.
pub const MAX_WORK_RECORD_BYTES: usize = 4 << 20;

/// The lane an event is filed in. Most of a busy log is calls, which only the economy folds (and
/// it starts from a snapshot); the layers that fold some kinds of event themselves at start —
/// the work boards, the gateway's access records and its recent keyed calls — read their own
/// lane instead of every event ever stored. Stored with each event as its number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Lane {
    /// Read back only by replaying the whole log.
    Bulk = 0,
    /// `WorkRecorded`: the data-work boards.
    Work = 1,
    /// `AccessRecorded`: API keys and how models are served.
    Access = 2,
    /// `CallMetered` with a request id: what the gateway's idempotency keys remember.
    KeyedCall = 3,
}

impl Lane {
    /// The lane stored as `number`, if it names one.
    pub fn from_number(number: u8) -> Option<Lane> {
        [Lane::Bulk, Lane::Work, Lane::Access, Lane::KeyedCall]
            .into_iter()
            .find(|lane| *lane as u8 == number)
    }
}

/// What one event charged one payer for one asset on one UTC day: the unit the per-payer
/// spend tables add up (an app developer's usage page reads them, per day and per model).
/// Not part of the economy's state: a read model beside the log, rebuilt from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Spending {
    pub payer: Address,
    /// Days since the Unix epoch, UTC.
    pub day: u64,
    pub asset: AssetId,
    pub token: Address,
    /// Calls charged with this asset first (the one the app called, unless it charged
    /// nothing): summed over assets, the number of paid calls.
    pub calls: u64,
    /// Calls whose charge included this asset: an agent's components are used by its calls
    /// without being called.
    pub uses: u64,
    pub amount: Amount,
}

impl Spending {
    /// The fields spending is added up by.
    pub fn key(&self) -> (Address, u64, AssetId, Address) {
        (self.payer, self.day, self.asset, self.token)
    }

    /// Adds `more` (spending with the same key) to this: counts add up, and so does the amount,
    /// which may not pass 2^128 base units (it cannot, for spending the ledger allowed).
    pub fn add(&mut self, more: &Spending) -> Result<(), SpendingOverflow> {
        debug_assert_eq!(self.key(), more.key(), "spending adds up within one key");
        self.amount = self
            .amount
            .checked_add(more.amount)
            .ok_or(SpendingOverflow)?;
        self.calls = self.calls.saturating_add(more.calls);
        self.uses = self.uses.saturating_add(more.uses);
        Ok(())
    }
}

/// A payer's spending on one asset in one day added up past 2^128 base units.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a payer's spending on one asset in one day passes 2^128 base units")]
pub struct SpendingOverflow;

impl Event {
    /// The lane this event is filed in.
    pub fn lane(&self) -> Lane {
        match self {
            Event::WorkRecorded { .. } => Lane::Work,
            Event::AccessRecorded { .. } => Lane::Access,
            Event::CallMetered(call) if call.request.is_some() => Lane::KeyedCall,
            _ => Lane::Bulk,
        }
    }

    /// What this event, recorded at `at_ms`, charged payers: one entry per asset a paid call
    /// used (an agent's call names the agent and each component it called), the call counted
    /// once, against its first part; nothing for every other kind of event.
    pub fn spending(&self, at_ms: u64) -> impl Iterator<Item = Spending> + '_ {
        let day = at_ms / DAY_MS;
        let (usage, call) = match self {
            Event::UsageRecorded(usage) => (Some(usage), None),
            Event::CallMetered(call) => (None, Some(call)),
            _ => (None, None),
        };
        let recorded = usage.map(move |usage| Spending {
            payer: usage.payer,
            day,
            asset: usage.asset,
            token: usage.token,
            calls: u64::from(usage.calls),
            uses: u64::from(usage.calls),
            amount: usage.amount,
        });
        let metered = call.into_iter().flat_map(move |call| {
            call.parts
                .iter()
                .enumerate()
                .map(move |(index, part)| Spending {
                    payer: call.payer,
                    day,
                    asset: part.asset,
                    token: call.token,
                    calls: u64::from(index == 0),
                    uses: 1,
                    amount: part.amount,
                })
        });
        recorded.into_iter().chain(metered)
    }

    pub fn kind_name(&self) -> &'static str {
        match self {
            Event::Genesis(_) => "genesis",
            Event::TokenRegistered(_) => "token registered",
            Event::AssetRegistered(_) => "asset registered",
            Event::Deposited { .. } => "deposited",
            Event::UsageRecorded(_) => "usage recorded",
            Event::EpochClosed { .. } => "epoch closed",
            Event::WorkRecorded { .. } => "work recorded",
            Event::ProjectFunded { .. } => "project funded",
            Event::EscrowReleased { .. } => "escrow released",
            Event::PayoutChainChosen { .. } => "payout chain chosen",
            Event::CallMetered(_) => "call metered",
            Event::AccessRecorded { .. } => "access recorded",
            Event::ValidationAttested(_) => "validation attested",
            Event::BudgetEscrowed { .. } => "budget escrowed",
            Event::DepositConfirmed(_) => "deposit confirmed",
            Event::Withdrawn { .. } => "withdrawn",
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::default();
        match self {
            Event::Genesis(g) => {
                e.u8(0).address(&g.treasury).u32(g.protocol_fee.parts());
            }
            Event::TokenRegistered(t) => {
                e.u8(1).address(&t.address).str(&t.symbol).u8(t.decimals);
            }
            Event::AssetRegistered(m) => {
                e.u8(2);
                m.encode_into(&mut e);
            }
            Event::Deposited {
                payer,
                token,
                amount,
            } => {
                e.u8(3).address(payer).address(token).u128(*amount);
            }
            Event::UsageRecorded(u) => {
                e.u8(4)
                    .hash(&u.asset.0)
                    .address(&u.payer)
                    .address(&u.token)
                    .u128(u.amount)
                    .u32(u.calls)
                    .address(&u.node);
            }
            Event::EpochClosed { epoch, root } => {
                e.u8(5).u64(*epoch).hash(root);
            }
            Event::WorkRecorded {
                project,
                record,
                token,
                bounties,
            } => {
                e.u8(6).hash(project).str(record).address(token);
                e.len(bounties.len());
                for bounty in bounties {
                    e.address(&bounty.contributor)
                        .u128(bounty.amount)
                        .u32(bounty.judgment);
                }
            }
            Event::ProjectFunded {
                project,
                requester,
                token,
                amount,
            } => {
                e.u8(7)
                    .hash(project)
                    .address(requester)
                    .address(token)
                    .u128(*amount);
            }
            Event::EscrowReleased {
                project,
                requester,
                token,
                amount,
            } => {
                e.u8(8)
                    .hash(project)
                    .address(requester)
                    .address(token)
                    .u128(*amount);
            }
            Event::PayoutChainChosen { account, chain_id } => {
                e.u8(9).address(account).u64(*chain_id);
            }
            Event::CallMetered(call) => {
                e.u8(10)
                    .address(&call.payer)
                    .address(&call.token)
                    .address(&call.node);
                match &call.request {
                    Some(request) => e.u8(1).hash(request),
                    None => e.u8(0),
                };
                e.len(call.parts.len());
                for part in &call.parts {
                    e.hash(&part.asset.0).u128(part.amount).u32(part.calls);
                }
                e.str(&call.trace);
            }
            Event::AccessRecorded { record } => {
                e.u8(11).str(record);
            }
            Event::ValidationAttested(attestation) => {
                e.u8(12);
                attestation.encode_into(&mut e);
            }
            Event::BudgetEscrowed {
                project,
                requester,
                token,
                amount,
            } => {
                e.u8(13)
                    .hash(project)
                    .address(requester)
                    .address(token)
                    .u128(*amount);
            }
            Event::DepositConfirmed(deposit) => {
                e.u8(14);
                deposit.encode_into(&mut e);
            }
            Event::Withdrawn {
                account,
                token,
                amount,
            } => {
                e.u8(15).address(account).address(token).u128(*amount);
            }
        }
        e.bytes
    }

    pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
        let mut d = Decoder::new(bytes);
        let event = match d.u8()? {
            0 => {
                let treasury = d.address()?;
                let raw = d.u32()?;
                Event::Genesis(Genesis {
                    treasury,
                    protocol_fee: Ppm::new(raw).map_err(|why| d.error(why))?,
                })
            }
            1 => Event::TokenRegistered(Token {
                address: d.address()?,
                symbol: d.str()?,
                decimals: d.u8()?,
            }),
            2 => Event::AssetRegistered(Manifest::decode_from(&mut d)?),
            3 => Event::Deposited {
                payer: d.address()?,
                token: d.address()?,
                amount: d.u128()?,
            },
            4 => Event::UsageRecorded(Usage {
                asset: AssetId(d.hash()?),
                payer: d.address()?,
                token: d.address()?,
                amount: d.u128()?,
                calls: d.u32()?,
                node: d.address()?,
            }),
            5 => Event::EpochClosed {
                epoch: d.u64()?,
                root: d.hash()?,
            },
            6 => {
                let project = d.hash()?;
                let record = d.str()?;
                let token = d.address()?;
                let count = d.len(20 + 16 + 4)?;
                let mut bounties = Vec::with_capacity(count);
                for _ in 0..count {
                    bounties.push(Bounty {
                        contributor: d.address()?,
                        amount: d.u128()?,
                        judgment: d.u32()?,
                    });
                }
                Event::WorkRecorded {
                    project,
                    record,
                    token,
                    bounties,
                }
            }
            7 => Event::ProjectFunded {
                project: d.hash()?,
                requester: d.address()?,
                token: d.address()?,
                amount: d.u128()?,
            },
            8 => Event::EscrowReleased {
                project: d.hash()?,
                requester: d.address()?,
                token: d.address()?,
                amount: d.u128()?,
            },
            9 => Event::PayoutChainChosen {
                account: d.address()?,
                chain_id: d.u64()?,
            },
            10 => {
                let payer = d.address()?;
                let token = d.address()?;
                let node = d.address()?;
                let request = match d.u8()? {
                    0 => None,
                    1 => Some(d.hash()?),
                    flag => return Err(d.error(format!("request flag {flag} is not 0 or 1"))),
                };
                let count = d.len(32 + 16 + 4)?;
                let mut parts = Vec::with_capacity(count);
                for _ in 0..count {
                    parts.push(CallPart {
                        asset: AssetId(d.hash()?),
                        amount: d.u128()?,
                        calls: d.u32()?,
                    });
                }
                Event::CallMetered(MeteredCall {
                    payer,
                    token,
                    node,
                    request,
                    parts,
                    trace: d.str()?,
                })
            }
            11 => Event::AccessRecorded { record: d.str()? },
            12 => Event::ValidationAttested(Attestation::decode_from(&mut d)?),
            13 => Event::BudgetEscrowed {
                project: d.hash()?,
                requester: d.address()?,
                token: d.address()?,
                amount: d.u128()?,
            },
            14 => Event::DepositConfirmed(ChainDeposit::decode_from(&mut d)?),
            15 => Event::Withdrawn {
                account: d.address()?,
                token: d.address()?,
                amount: d.u128()?,
            },
            tag => return Err(d.error(format!("unknown event tag {tag}"))),
        };
        d.finish()?;
        Ok(event)
    }
}

/// An event sealed into the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// 0 for the first event, then one more for each event.
    pub seq: u64,
    /// When the event was accepted, milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// This envelope's hash, which commits to `seq`, `at_ms`, the previous hash and the event.
    pub hash: Hash32,
    pub event: Event,
}

/// The hash of an envelope given the hash of the one before it (zero before the first).
pub fn envelope_hash(seq: u64, at_ms: u64, previous: &Hash32, body: &[u8]) -> Hash32 {
    keccak256_parts(&[
        EVENT_DOMAIN,
        &seq.to_be_bytes(),
        &at_ms.to_be_bytes(),
        &previous.0,
        body,
    ])
}

/// The end of the log: what the next envelope must follow.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainHead {
    pub next_seq: u64,
    pub hash: Hash32,
}

impl ChainHead {
    /// Seals `event` as the next envelope and advances the head. Returns the envelope and its
    /// encoded body, which is what the store writes.
    pub fn seal(&mut self, event: Event, at_ms: u64) -> (Envelope, Vec<u8>) {
        let body = event.encode();
        let hash = envelope_hash(self.next_seq, at_ms, &self.hash, &body);
        let envelope = Envelope {
            seq: self.next_seq,
            at_ms,
            hash,
            event,
        };
        self.next_seq += 1;
        self.hash = hash;
        (envelope, body)
    }

    /// Checks that a stored envelope (`seq`, `at_ms`, `hash`, `body`) follows this head, and advances.
    pub fn follow(
        &mut self,
        seq: u64,
        at_ms: u64,
        hash: &Hash32,
        body: &[u8],
    ) -> Result<(), ChainError> {
        if seq != self.next_seq {
            return Err(ChainError::Gap {
                expected: self.next_seq,
                found: seq,
            });
        }
        let expected = envelope_hash(seq, at_ms, &self.hash, body);
        if expected != *hash {
            return Err(ChainError::HashMismatch {
                seq,
                stored: *hash,
                computed: expected,
            });
        }
        self.next_seq += 1;
        self.hash = *hash;
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("event log has a gap: expected event {expected}, found {found}")]
    Gap { expected: u64, found: u64 },
    #[error(
        "event {seq} does not match its hash (stored {stored}, computed {computed}): the log was altered or corrupted at or before this event"
    )]
    HashMismatch {
        seq: u64,
        stored: Hash32,
        computed: Hash32,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asset::tests::dataset;

    #[test]
    fn a_call_spends_once_per_asset_and_counts_once_against_its_first_part() {
        let (payer, token) = (Address::from_label("payer"), Address::from_label("token"));
        let (agent, model) = (dataset("agent", &[]).id(), dataset("model", &[]).id());
        let call = Event::CallMetered(MeteredCall {
            payer,
            token,
            node: Address::from_label("node"),
            request: None,
            parts: vec![
                CallPart {
                    asset: agent,
                    amount: 7,
                    calls: 1,
                },
                CallPart {
                    asset: model,
                    amount: 5,
                    calls: 4,
                },
            ],
            trace: String::new(),
        });
        // One millisecond before the second UTC day ends.
        let at_ms = 2 * DAY_MS - 1;
        let spent: Vec<Spending> = call.spending(at_ms).collect();
        assert_eq!(
            spent
                .iter()
                .map(|s| (s.payer, s.day, s.asset, s.token, s.calls, s.uses, s.amount))
                .collect::<Vec<_>>(),
            [
                (payer, 1, agent, token, 1, 1, 7),
                (payer, 1, model, token, 0, 1, 5)
            ]
        );
        let usage = Event::UsageRecorded(Usage {
            asset: model,
            payer,
            token,
            amount: 90,
            calls: 9,
            node: payer,
        });
        let spent: Vec<Spending> = usage.spending(2 * DAY_MS).collect();
        assert_eq!(
            (spent[0].day, spent[0].calls, spent[0].uses, spent[0].amount),
            (2, 9, 9, 90)
        );
        assert!(
            Event::Deposited {
                payer,
                token,
                amount: 5
            }
            .spending(0)
            .next()
            .is_none()
        );
    }

    fn samples() -> Vec<Event> {
        let a = Address::from_label("a");
        vec![
            Event::Genesis(Genesis {
                treasury: a,
                protocol_fee: Ppm::new(20_000).unwrap(),
            }),
            Event::TokenRegistered(Token {
                address: a,
                symbol: "USDC".into(),
                decimals: 6,
            }),
            Event::AssetRegistered(dataset("d", &[("x", 2)])),
            Event::Deposited {
                payer: a,
                token: a,
                amount: u128::MAX,
            },
            Event::UsageRecorded(Usage {
                asset: dataset("d", &[]).id(),
                payer: a,
                token: a,
                amount: 7,
                calls: 1,
                node: a,
            }),
            Event::EpochClosed {
                epoch: 3,
                root: Hash32([5; 32]),
            },
            Event::WorkRecorded {
                project: Hash32([6; 32]),
                record: "{\"type\":\"items_added\"}".into(),
                token: a,
                bounties: vec![Bounty {
                    contributor: a,
                    amount: 2,
                    judgment: u32::MAX,
                }],
            },
            Event::ProjectFunded {
                project: Hash32([6; 32]),
                requester: a,
                token: a,
                amount: 1,
            },
            Event::EscrowReleased {
                project: Hash32([6; 32]),
                requester: a,
                token: a,
                amount: 1,
            },
            Event::BudgetEscrowed {
                project: Hash32([7; 32]),
                requester: a,
                token: a,
                amount: u128::MAX,
            },
            Event::DepositConfirmed(ChainDeposit {
                chain_id: 31_337,
                tx: Hash32([8; 32]),
                log_index: u64::MAX,
                block: 12,
                account: a,
                token: a,
                amount: 5,
            }),
            Event::Withdrawn {
                account: a,
                token: a,
                amount: 3,
            },
        ]
    }

    #[test]
    fn every_event_round_trips_and_trailing_bytes_are_rejected() {
        for event in samples() {
            let bytes = event.encode();
            assert_eq!(Event::decode(&bytes).unwrap(), event);
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(
                Event::decode(&longer)
                    .unwrap_err()
                    .what
                    .contains("trailing")
            );
            assert!(Event::decode(&bytes[..bytes.len() - 1]).is_err());
        }
        assert!(
            Event::decode(&[99])
                .unwrap_err()
                .what
                .contains("unknown event tag")
        );
    }

    #[test]
    fn the_chain_detects_altered_and_missing_events() {
        let mut writer = ChainHead::default();
        let sealed: Vec<_> = samples()
            .into_iter()
            .map(|e| writer.seal(e, 1_000))
            .collect();
        let mut reader = ChainHead::default();
        for (envelope, body) in &sealed {
            reader
                .follow(envelope.seq, envelope.at_ms, &envelope.hash, body)
                .unwrap();
        }
        assert_eq!(reader, writer);

        let mut reader = ChainHead::default();
        let (first, body) = &sealed[0];
        let mut altered = body.clone();
        altered[1] ^= 1;
        assert!(matches!(
            reader.follow(first.seq, first.at_ms, &first.hash, &altered),
            Err(ChainError::HashMismatch { .. })
        ));
        let (second, body) = &sealed[1];
        assert_eq!(
            reader.follow(second.seq, second.at_ms, &second.hash, body),
            Err(ChainError::Gap {
                expected: 0,
                found: 1
            })
        );
    }
}
