//! The economy: the state every event log folds into — tokens, the lineage, the ledger, what
//! each compute node served this epoch, and the closed epochs. [`Economy::append`] validates an
//! event against the state, applies it and seals it; [`Economy::replay`] does the same for a stored
//! envelope and checks the hash chain. Both paths run the same rules, so a replay reproduces the
//! state bit for bit, which [`Economy::state_hash`] lets two parties compare.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use crate::address::Address;
use crate::asset::{AssetId, AssetKind, Licence};
use crate::attestation::Attestation;
use crate::codec::DecodeError;
use crate::epoch::{
    Accrual, BUNDLE_FORMAT, ChainLeaves, Credited, EpochBundle, EpochOutcome, TreasuryFee,
    prepare_close,
};
use crate::event::{
    ChainDeposit, ChainError, ChainHead, Envelope, Event, Genesis, HOME_CHAIN, MAX_CALL_PARTS,
    MAX_TRACE_BYTES, MAX_WORK_RECORD_BYTES, MeteredCall, Usage,
};
use crate::hash::Hash32;
use crate::ledger::{AccountRef, Ledger, LedgerError, Transfer};
use crate::lineage::{Lineage, LineageError};
use crate::merkle::{Leaf, MerkleTree};
use crate::money::{Amount, Token, mul_div_rem};
use crate::royalty::{ServedBy, Validators};

/// A closed epoch as the state remembers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochRecord {
    pub epoch: u64,
    pub root: Hash32,
    /// Sequence number of the `EpochClosed` event.
    pub seq: u64,
    pub at_ms: u64,
    pub leaf_count: u64,
}

/// Why an event was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("the log must start with a genesis event that sets the treasury and protocol fee")]
    NoGenesis,
    #[error("genesis was already recorded; an economy is set up once")]
    GenesisRepeated,
    #[error("token {0} is already registered")]
    TokenExists(Address),
    #[error("token {0} is not registered; register it with its symbol and decimals first")]
    UnknownToken(Address),
    #[error("invalid token: {0}")]
    InvalidToken(String),
    #[error("asset {0} is not registered")]
    UnknownAsset(AssetId),
    #[error(transparent)]
    Lineage(#[from] LineageError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("{what} must be above zero")]
    Zero { what: &'static str },
    #[error("asset {0} is licensed for non-commercial use only; it cannot be used in paid calls")]
    NonCommercialUse(AssetId),
    #[error("asset {asset} is priced in token {expected}; usage in token {given} is not accepted")]
    WrongToken {
        asset: AssetId,
        expected: Address,
        given: Address,
    },
    #[error(
        "a work record of {0} bytes is over the limit of {MAX_WORK_RECORD_BYTES}; split it (imports go in chunks)"
    )]
    WorkRecordTooLarge(usize),
    #[error("the bounties of one work record add up to more than 2^128 base units")]
    BountiesOverflow,
    #[error("a metered call must have 1 to {MAX_CALL_PARTS} parts, got {0}")]
    CallParts(usize),
    #[error("the parts of one metered call add up to more than 2^128 base units")]
    CallOverflow,
    #[error("a call trace or access record of {0} bytes is over the limit of {MAX_TRACE_BYTES}")]
    TraceTooLarge(usize),
    #[error("asset {0} is not a model; validators attest models")]
    NotAModel(AssetId),
    #[error("the attestation is not valid: {0}")]
    BadAttestation(String),
    #[error("{account} is already paid on chain {chain_id}; nothing to change")]
    PayoutChainUnchanged { account: Address, chain_id: u64 },
    #[error(
        "the deposit in transaction {tx} (log {log_index}) on chain {chain_id} was already credited"
    )]
    DepositRepeated {
        chain_id: u64,
        tx: Hash32,
        log_index: u64,
    },
    #[error("the next epoch to close is {expected}, not {given}")]
    WrongEpoch { expected: u64, given: u64 },
    #[error(
        "replaying epoch {epoch} gives root {computed}, but the log recorded {recorded}: the log and the rules disagree"
    )]
    RootMismatch {
        epoch: u64,
        recorded: Hash32,
        computed: Hash32,
    },
}

/// Why a stored envelope cannot be replayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error("event {seq}: {source}")]
    Decode { seq: u64, source: DecodeError },
    #[error("event {seq} ({kind}) was accepted once but is refused on replay: {source}")]
    Refused {
        seq: u64,
        kind: &'static str,
        source: Box<EventError>,
    },
}

#[derive(Clone, Debug, Default)]
pub struct Economy {
    pub(crate) genesis: Option<Genesis>,
    pub(crate) tokens: BTreeMap<Address, Token>,
    pub(crate) lineage: Lineage,
    pub(crate) ledger: Ledger,
    pub(crate) served: FxHashMap<(u32, Address), ServedBy>,
    pub(crate) epochs: Vec<EpochRecord>,
    pub(crate) head: ChainHead,
    /// Accounts that chose a chain other than the home chain, and which.
    pub(crate) payout_chains: BTreeMap<Address, u64>,
    /// What each account earned while it had chosen a chain: (chain id, account, token) →
    /// cumulative. The home chain gets the rest of an account's entitlement, so an economy where
    /// nobody chose keeps this empty.
    pub(crate) chain_credits: BTreeMap<(u64, Address, Address), Amount>,
    /// Every accepted attestation, per model (lineage position), in log order.
    pub(crate) attestations: BTreeMap<u32, Vec<Attestation>>,
    /// Every deposit credited from a chain, by its key (chain id, transaction, log index).
    pub(crate) chain_deposits: BTreeMap<(u64, Hash32, u64), ChainDeposit>,
    /// Entitlement credited since the last close outside the royalties (bounties, escrow
    /// releases, withdrawals), per (account, token): the next bundle lists it (see
    /// [`crate::epoch::Credited`]).
    pub(crate) credited: BTreeMap<(Address, Address), Amount>,
}

impl Economy {
    pub fn genesis(&self) -> Option<&Genesis> {
        self.genesis.as_ref()
    }
    pub fn tokens(&self) -> &BTreeMap<Address, Token> {
        &self.tokens
    }
    pub fn token(&self, address: &Address) -> Result<&Token, EventError> {
        self.tokens
            .get(address)
            .ok_or(EventError::UnknownToken(*address))
    }
    pub fn lineage(&self) -> &Lineage {
        &self.lineage
    }
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }
    pub fn served(&self) -> &FxHashMap<(u32, Address), ServedBy> {
        &self.served
    }
    pub fn epochs(&self) -> &[EpochRecord] {
        &self.epochs
    }
    pub fn head(&self) -> ChainHead {
        self.head
    }
    /// The chain `account` is paid on from now on ([`HOME_CHAIN`] unless it chose another).
    pub fn payout_chain(&self, account: &Address) -> u64 {
        self.payout_chains
            .get(account)
            .copied()
            .unwrap_or(HOME_CHAIN)
    }
    /// Every account that chose a chain other than the home chain, and which.
    pub fn payout_chains(&self) -> &BTreeMap<Address, u64> {
        &self.payout_chains
    }
    /// Whether the deposit named by `key` (chain id, transaction, log index) was credited.
    pub fn has_chain_deposit(&self, key: &(u64, Hash32, u64)) -> bool {
        self.chain_deposits.contains_key(key)
    }
    /// Every deposit credited from a chain, ordered by chain, transaction and log.
    pub fn chain_deposits(&self) -> impl Iterator<Item = &ChainDeposit> {
        self.chain_deposits.values()
    }
    /// The number of the epoch the next close will produce (epochs count from 1).
    pub fn next_epoch(&self) -> u64 {
        self.epochs.len() as u64 + 1
    }

    /// Checks `event` against the current state without changing anything.
    pub fn check(&self, event: &Event) -> Result<(), EventError> {
        let genesis = match (&self.genesis, event) {
            (None, Event::Genesis(_)) => return Ok(()),
            (None, _) => return Err(EventError::NoGenesis),
            (Some(_), Event::Genesis(_)) => return Err(EventError::GenesisRepeated),
            (Some(genesis), _) => genesis,
        };
        match event {
            Event::Genesis(_) => unreachable!("handled above"),
            Event::TokenRegistered(token) => {
                token.validate().map_err(EventError::InvalidToken)?;
                if self.tokens.contains_key(&token.address) {
                    return Err(EventError::TokenExists(token.address));
                }
            }
            Event::AssetRegistered(manifest) => {
                if let Licence::Commercial { token, .. } = &manifest.licence {
                    self.token(token)?;
                }
                self.lineage.check(manifest)?;
            }
            Event::Deposited {
                payer,
                token,
                amount,
            } => {
                self.token(token)?;
                if *amount == 0 {
                    return Err(EventError::Zero { what: "a deposit" });
                }
                self.ledger
                    .check(&deposit_transfer(*payer, *token, *amount))?;
            }
            Event::DepositConfirmed(deposit) => {
                self.token(&deposit.token)?;
                if deposit.amount == 0 {
                    return Err(EventError::Zero { what: "a deposit" });
                }
                if self.has_chain_deposit(&deposit.key()) {
                    return Err(EventError::DepositRepeated {
                        chain_id: deposit.chain_id,
                        tx: deposit.tx,
                        log_index: deposit.log_index,
                    });
                }
                self.ledger.check(&deposit_transfer(
                    deposit.account,
                    deposit.token,
                    deposit.amount,
                ))?;
            }
            Event::Withdrawn {
                account,
                token,
                amount,
            } => {
                self.token(token)?;
                if *amount == 0 {
                    return Err(EventError::Zero {
                        what: "a withdrawal",
                    });
                }
                self.ledger
                    .check(&withdrawal_transfer(*account, *token, *amount))?;
            }
            Event::UsageRecorded(usage) => {
                self.check_usage(usage)?;
                let whole_charge = Transfer {
                    amount: usage.amount,
                    ..usage_transfers(genesis, usage)[1]
                };
                self.ledger.check(&whole_charge)?;
            }
            Event::CallMetered(call) => self.check_call(genesis, call)?,
            Event::ValidationAttested(attestation) => {
                let asset = self
                    .lineage
                    .get(&attestation.model)
                    .ok_or(EventError::UnknownAsset(attestation.model))?;
                if asset.manifest.kind != AssetKind::Model {
                    return Err(EventError::NotAModel(attestation.model));
                }
                attestation.verify().map_err(EventError::BadAttestation)?;
            }
            Event::AccessRecorded { record } => {
                if record.len() > MAX_TRACE_BYTES {
                    return Err(EventError::TraceTooLarge(record.len()));
                }
            }
            Event::WorkRecorded {
                project,
                record,
                token,
                bounties,
            } => {
                if record.len() > MAX_WORK_RECORD_BYTES {
                    return Err(EventError::WorkRecordTooLarge(record.len()));
                }
                if let Some(first) = bounties.first() {
                    self.token(token)?;
                    let mut total: Amount = 0;
                    for bounty in bounties {
                        if bounty.amount == 0 {
                            return Err(EventError::Zero { what: "a bounty" });
                        }
                        total = total
                            .checked_add(bounty.amount)
                            .ok_or(EventError::BountiesOverflow)?;
                    }
                    self.ledger.check(&Transfer {
                        from: AccountRef::Escrow(*project),
                        to: AccountRef::Beneficiary(first.contributor),
                        token: *token,
                        amount: total,
                    })?;
                }
            }
            Event::ProjectFunded { amount, .. }
            | Event::BudgetEscrowed { amount, .. }
            | Event::EscrowReleased { amount, .. } => {
                let transfer = escrow_transfer(event).expect("an escrow event");
                self.token(&transfer.token)?;
                if *amount == 0 {
                    return Err(EventError::Zero {
                        what: "an escrow amount",
                    });
                }
                self.ledger.check(&transfer)?;
            }
            Event::PayoutChainChosen { account, chain_id } => {
                if self.payout_chain(account) == *chain_id {
                    return Err(EventError::PayoutChainUnchanged {
                        account: *account,
                        chain_id: *chain_id,
                    });
                }
            }
            Event::EpochClosed { epoch, .. } => {
                if *epoch != self.next_epoch() {
                    return Err(EventError::WrongEpoch {
                        expected: self.next_epoch(),
                        given: *epoch,
                    });
                }
            }
        }
        Ok(())
    }

    /// A metered call is accepted when every part is a valid usage and the payer's balance
    /// covers all of them together.
    fn check_call(&self, genesis: &Genesis, call: &MeteredCall) -> Result<(), EventError> {
        if call.parts.is_empty() || call.parts.len() > MAX_CALL_PARTS {
            return Err(EventError::CallParts(call.parts.len()));
        }
        if call.trace.len() > MAX_TRACE_BYTES {
            return Err(EventError::TraceTooLarge(call.trace.len()));
        }
        let total = call.total().ok_or(EventError::CallOverflow)?;
        let mut first = None;
        for usage in call.usages() {
            self.check_usage(&usage)?;
            first.get_or_insert(usage);
        }
        let first = first.expect("at least one part");
        self.ledger.check(&Transfer {
            amount: total,
            ..usage_transfers(genesis, &first)[1]
        })?;
        Ok(())
    }

    fn check_usage(&self, usage: &Usage) -> Result<(), EventError> {
        self.token(&usage.token)?;
        if usage.amount == 0 {
            return Err(EventError::Zero {
                what: "a usage amount",
            });
        }
        if usage.calls == 0 {
            return Err(EventError::Zero {
                what: "a usage call count",
            });
        }
        let position = self
            .lineage
            .position(&usage.asset)
            .ok_or(EventError::UnknownAsset(usage.asset))?;
        match &self.lineage.at(position).manifest.licence {
            Licence::NonCommercial => return Err(EventError::NonCommercialUse(usage.asset)),
            Licence::Commercial { token, .. } if *token != usage.token => {
                return Err(EventError::WrongToken {
                    asset: usage.asset,
                    expected: *token,
                    given: usage.token,
                });
            }
            _ => {}
        }
        Ok(())
    }

    /// Validates and applies `event` (anything but an epoch close, which [`Economy::close_epoch`]
    /// computes), then seals it as the next envelope. On error nothing changed.
    pub fn append(&mut self, event: Event, at_ms: u64) -> Result<(Envelope, Vec<u8>), EventError> {
        assert!(
            !matches!(event, Event::EpochClosed { .. }),
            "epochs are closed with close_epoch"
        );
        self.check(&event)?;
        self.apply_checked(&event, at_ms);
        Ok(self.head.seal(event, at_ms))
    }

    /// Closes the current epoch: propagates royalties, pays the treasury, builds the cumulative
    /// Merkle tree, and seals the `EpochClosed` event. Fails only before genesis.
    pub fn close_epoch(
        &mut self,
        at_ms: u64,
    ) -> Result<(EpochOutcome, Envelope, Vec<u8>), EventError> {
        if self.genesis.is_none() {
            return Err(EventError::NoGenesis);
        }
        let outcome = self.prepare_close();
        let event = Event::EpochClosed {
            epoch: outcome.epoch,
            root: outcome.root,
        };
        let seq = self.head.next_seq;
        self.commit_close(&outcome, seq, at_ms);
        let (envelope, body) = self.head.seal(event, at_ms);
        Ok((outcome, envelope, body))
    }

    /// Applies a stored envelope: checks it follows the chain, decodes it and applies it under
    /// the same rules it was accepted with. An epoch close is recomputed and its root compared;
    /// its outcome is returned, so the bundle can be made again from the state right after it.
    pub fn replay(
        &mut self,
        seq: u64,
        at_ms: u64,
        hash: &Hash32,
        body: &[u8],
    ) -> Result<Option<EpochOutcome>, ReplayError> {
        let mut next_head = self.head;
        next_head.follow(seq, at_ms, hash, body)?;
        let event = Event::decode(body).map_err(|source| ReplayError::Decode { seq, source })?;
        let refused = |source| ReplayError::Refused {
            seq,
            kind: event.kind_name(),
            source: Box::new(source),
        };
        self.check(&event).map_err(refused)?;
        if let Event::EpochClosed { epoch, root } = &event {
            let outcome = self.prepare_close();
            if outcome.root != *root {
                return Err(refused(EventError::RootMismatch {
                    epoch: *epoch,
                    recorded: *root,
                    computed: outcome.root,
                }));
            }
            self.commit_close(&outcome, seq, at_ms);
            self.head = next_head;
            return Ok(Some(outcome));
        }
        self.apply_checked(&event, at_ms);
        self.head = next_head;
        Ok(None)
    }

    /// Charges the payer, pays the protocol fee and accrues the rest to the asset, tallying
    /// what the serving node served.
    fn apply_usage(&mut self, usage: &Usage) {
        let position = self
            .lineage
            .position(&usage.asset)
            .expect("checked before applying");
        let genesis = self.genesis.as_ref().expect("checked before applying");
        let transfers = usage_transfers(genesis, usage);
        let to_asset = transfers[1].amount;
        for transfer in transfers {
            self.ledger
                .transfer(transfer)
                .expect("checked before applying");
        }
        *self
            .served
            .entry((position, usage.token))
            .or_default()
            .entry(usage.node)
            .or_default() += to_asset;
    }

    /// Applies an event checked against the state, recorded at `at_ms`.
    fn apply_checked(&mut self, event: &Event, at_ms: u64) {
        match event {
            Event::Genesis(genesis) => self.genesis = Some(genesis.clone()),
            Event::TokenRegistered(token) => {
                self.tokens.insert(token.address, token.clone());
            }
            Event::AssetRegistered(manifest) => {
                self.lineage
                    .register_at(manifest.clone(), at_ms)
                    .expect("checked before applying");
            }
            Event::Deposited {
                payer,
                token,
                amount,
            } => {
                self.ledger
                    .transfer(deposit_transfer(*payer, *token, *amount))
                    .expect("checked before applying");
            }
            Event::DepositConfirmed(deposit) => {
                self.ledger
                    .transfer(deposit_transfer(
                        deposit.account,
                        deposit.token,
                        deposit.amount,
                    ))
                    .expect("checked before applying");
                self.chain_deposits.insert(deposit.key(), deposit.clone());
            }
            Event::Withdrawn {
                account,
                token,
                amount,
            } => self.credit(withdrawal_transfer(*account, *token, *amount)),
            Event::UsageRecorded(usage) => self.apply_usage(usage),
            Event::CallMetered(call) => call.usages().for_each(|usage| self.apply_usage(&usage)),
            Event::AccessRecorded { .. } => {}
            Event::ValidationAttested(attestation) => {
                let position = self
                    .lineage
                    .position(&attestation.model)
                    .expect("checked before applying");
                self.attestations
                    .entry(position)
                    .or_default()
                    .push(attestation.clone());
            }
            Event::WorkRecorded {
                project,
                token,
                bounties,
                ..
            } => {
                for bounty in bounties {
                    self.credit(Transfer {
                        from: AccountRef::Escrow(*project),
                        to: AccountRef::Beneficiary(bounty.contributor),
                        token: *token,
                        amount: bounty.amount,
                    });
                }
            }
            Event::ProjectFunded { .. }
            | Event::BudgetEscrowed { .. }
            | Event::EscrowReleased { .. } => {
                self.credit(escrow_transfer(event).expect("an escrow event"));
            }
            Event::PayoutChainChosen { account, chain_id } => {
                if *chain_id == HOME_CHAIN {
                    self.payout_chains.remove(account);
                } else {
                    self.payout_chains.insert(*account, *chain_id);
                }
            }
            Event::EpochClosed { .. } => unreachable!("epoch closes go through commit_close"),
        }
    }

    /// Applies a checked transfer, and when it pays an account that chose a chain other than
    /// home, counts it towards that chain.
    fn credit(&mut self, transfer: Transfer) {
        self.ledger
            .transfer(transfer)
            .expect("checked before applying");
        if let Some(key) = self.chain_credit_key(&transfer) {
            *self.chain_credits.entry(key).or_default() += transfer.amount;
        }
        if let AccountRef::Beneficiary(account) = transfer.to {
            *self.credited.entry((account, transfer.token)).or_default() += transfer.amount;
        }
    }

    /// The (chain, account, token) a transfer counts towards when it pays an account that chose
    /// a chain other than home.
    fn chain_credit_key(&self, transfer: &Transfer) -> Option<(u64, Address, Address)> {
        match transfer.to {
            AccountRef::Beneficiary(account) => self
                .payout_chains
                .get(&account)
                .map(|chain_id| (*chain_id, account, transfer.token)),
            _ => None,
        }
    }

    /// Each attested model's validators, sorted, each once.
    pub fn validators(&self) -> Validators {
        self.attestations
            .iter()
            .map(|(position, attestations)| {
                let mut accounts: Vec<Address> = attestations.iter().map(|a| a.validator).collect();
                accounts.sort_unstable();
                accounts.dedup();
                (*position, accounts)
            })
            .collect()
    }

    /// The attestations of a model, in the order they were accepted.
    pub fn attestations(&self, model: &AssetId) -> &[Attestation] {
        self.lineage
            .position(model)
            .and_then(|position| self.attestations.get(&position))
            .map_or(&[], Vec::as_slice)
    }

    fn prepare_close(&self) -> EpochOutcome {
        let treasury = self
            .genesis
            .as_ref()
            .expect("closing needs genesis")
            .treasury;
        let mut outcome = prepare_close(
            &self.lineage,
            &self.ledger,
            &self.served,
            &self.validators(),
            treasury,
            self.next_epoch(),
        );
        outcome.chains = self.chain_partitions(&outcome.transfers);
        outcome.credited = self
            .credited
            .iter()
            .map(|(&(account, token), &amount)| Credited {
                account,
                token,
                amount,
            })
            .collect();
        outcome
    }

    /// The leaves of every chain other than home after the close's `transfers`: what each
    /// account earned while it had chosen that chain, cumulative, sorted by (account, token).
    fn chain_partitions(&self, transfers: &[Transfer]) -> Vec<ChainLeaves> {
        if self.payout_chains.is_empty() && self.chain_credits.is_empty() {
            return Vec::new();
        }
        let mut credits = self.chain_credits.clone();
        for transfer in transfers {
            if let Some(key) = self.chain_credit_key(transfer) {
                *credits.entry(key).or_default() += transfer.amount;
            }
        }
        let mut chains: Vec<ChainLeaves> = Vec::new();
        for ((chain_id, account, token), cumulative) in credits {
            if chains.last().is_none_or(|c| c.chain_id != chain_id) {
                chains.push(ChainLeaves {
                    chain_id,
                    root: Hash32::ZERO,
                    leaves: Vec::new(),
                });
            }
            chains.last_mut().expect("pushed above").leaves.push(Leaf {
                account,
                token,
                cumulative,
            });
        }
        for chain in &mut chains {
            chain.root = MerkleTree::build(&chain.leaves).root();
        }
        chains
    }

    /// The self-contained bundle of an epoch this economy has just closed with `outcome`, sealed
    /// as event `event_seq` with hash `event_hash`.
    pub fn epoch_bundle(
        &self,
        outcome: &EpochOutcome,
        event_seq: u64,
        event_hash: Hash32,
        closed_at_ms: u64,
    ) -> EpochBundle {
        let lineage = &self.lineage;
        let mut needed = vec![false; lineage.len()];
        let mut stack: Vec<u32> = outcome.accruals.iter().map(|(p, _, _)| *p).collect();
        while let Some(position) = stack.pop() {
            if !std::mem::replace(&mut needed[position as usize], true) {
                stack.extend(&lineage.at(position).parent_positions);
            }
        }
        let previous_root = self
            .epochs
            .iter()
            .rev()
            .find(|r| r.epoch < outcome.epoch)
            .map(|r| r.root)
            .unwrap_or(Hash32::ZERO);
        EpochBundle {
            format: BUNDLE_FORMAT.into(),
            epoch: outcome.epoch,
            root: outcome.root,
            previous_root,
            event_seq,
            event_hash,
            closed_at_ms,
            genesis: self.genesis.clone().expect("closed epochs follow genesis"),
            tokens: self.tokens.values().cloned().collect(),
            assets: lineage
                .iter()
                .zip(&needed)
                .filter(|(_, n)| **n)
                .map(|(a, _)| a.manifest.clone())
                .collect(),
            accruals: outcome
                .accruals
                .iter()
                .map(|(p, token, amount)| Accrual {
                    asset: lineage.at(*p).id,
                    token: *token,
                    amount: *amount,
                })
                .collect(),
            served: outcome.served.clone(),
            treasury_fees: outcome
                .treasury_fees
                .iter()
                .map(|(token, amount)| TreasuryFee {
                    token: *token,
                    amount: *amount,
                })
                .collect(),
            payouts: outcome.payouts.clone(),
            credited: outcome.credited.clone(),
            leaves: outcome.leaves.clone(),
            chains: outcome.chains.clone(),
            validators: outcome
                .validators
                .iter()
                .filter(|row| {
                    lineage
                        .position(&row.asset)
                        .is_some_and(|p| needed[p as usize])
                })
                .cloned()
                .collect(),
        }
    }

    fn commit_close(&mut self, outcome: &EpochOutcome, seq: u64, at_ms: u64) {
        for transfer in &outcome.transfers {
            self.credit(*transfer);
        }
        // The close's own royalties are its payouts, not credits between closes.
        self.credited.clear();
        self.served.clear();
        self.epochs.push(EpochRecord {
            epoch: outcome.epoch,
            root: outcome.root,
            seq,
            at_ms,
            leaf_count: outcome.leaves.len() as u64,
        });
    }
}

fn deposit_transfer(payer: Address, token: Address, amount: Amount) -> Transfer {
    Transfer {
        from: AccountRef::External(payer),
        to: AccountRef::Payer(payer),
        token,
        amount,
    }
}

/// The ledger movement of a withdrawal: from the prepaid balance into the account's entitlement,
/// which the next root promises on chain.
fn withdrawal_transfer(account: Address, token: Address, amount: Amount) -> Transfer {
    Transfer {
        from: AccountRef::Payer(account),
        to: AccountRef::Beneficiary(account),
        token,
        amount,
    }
}

/// The ledger movement of a project's funding (from the requester's prepaid balance into escrow;
/// from outside, in stores written before budgets were prepaid) or release (from escrow to the
/// requester's entitlement). No protocol fee is taken on any of them, nor on bounties.
fn escrow_transfer(event: &Event) -> Option<Transfer> {
    match event {
        Event::ProjectFunded {
            project,
            requester,
            token,
            amount,
        } => Some(Transfer {
            from: AccountRef::External(*requester),
            to: AccountRef::Escrow(*project),
            token: *token,
            amount: *amount,
        }),
        Event::BudgetEscrowed {
            project,
            requester,
            token,
            amount,
        } => Some(Transfer {
            from: AccountRef::Payer(*requester),
            to: AccountRef::Escrow(*project),
            token: *token,
            amount: *amount,
        }),
        Event::EscrowReleased {
            project,
            requester,
            token,
            amount,
        } => Some(Transfer {
            from: AccountRef::Escrow(*project),
            to: AccountRef::Beneficiary(*requester),
            token: *token,
            amount: *amount,
        }),
        _ => None,
    }
}

/// The protocol fee (rounded down) to the treasury, the rest to the asset's revenue.
fn usage_transfers(genesis: &Genesis, usage: &Usage) -> [Transfer; 2] {
    let (fee, _) = mul_div_rem(
        usage.amount,
        genesis.protocol_fee.parts() as u128,
        1_000_000,
    );
    let from = AccountRef::Payer(usage.payer);
    [
        Transfer {
            from,
            to: AccountRef::Treasury,
            token: usage.token,
            amount: fee,
        },
        Transfer {
            from,
            to: AccountRef::AssetRevenue(usage.asset),
            token: usage.token,
            amount: usage.amount - fee,
        },
    ]
}
