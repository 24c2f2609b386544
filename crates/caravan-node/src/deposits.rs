//! Money that comes in on chain. Payers and requesters deposit into caravan's vault on any chain
//! the node settles on; the node follows each chain and credits every deposit to the account it
//! names, once its block has the chain's confirmations, exactly once: the log keys each credit
//! by chain id, transaction and log index, and refuses a second.
//!
//! The follower keeps no state that matters: how far it read each chain is a file that only
//! saves reading again. A node that stops between seeing a deposit and crediting it reads the
//! block again when it starts; a deposit that a reorganisation removes before its confirmations
//! is never read at all.

use std::sync::{Arc, Mutex};

use caravan_chain::persistent::journal_len;
use caravan_core::{Address, ChainDeposit, Event};
use caravan_store::SharedJournal;

use crate::settlement::{Chains, EMBEDDED};

/// Follows every chain a node settles on and credits what was deposited there.
pub struct DepositFollower {
    chains: Arc<Chains>,
    journal: Arc<SharedJournal>,
    /// How long the embedded chain's journal was when last read: the embedded chain is only
    /// opened (which replays it) when it grew.
    embedded_seen: Mutex<Option<u64>>,
}

/// A deposit credited by one round of following.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credited {
    /// The name of the chain it arrived on.
    pub chain: String,
    pub deposit: ChainDeposit,
    /// Who sent the money.
    pub from: Address,
}

/// What one round of following did.
#[derive(Debug, Default)]
pub struct Followed {
    pub credited: Vec<Credited>,
    /// Deposits that cannot be credited until the operator acts (a token this node does not
    /// know): kept unread, so they are credited once it is registered.
    pub waiting: Vec<String>,
    /// Chains that could not be read this round, and why; they are read again next round.
    pub failures: Vec<(String, String)>,
}

impl DepositFollower {
    pub fn new(chains: Arc<Chains>, journal: Arc<SharedJournal>) -> DepositFollower {
        DepositFollower {
            chains,
            journal,
            embedded_seen: Mutex::new(None),
        }
    }

    /// Reads every chain once and credits each confirmed deposit not credited before.
    pub fn follow_once(&self) -> Followed {
        let mut followed = Followed::default();
        let chains = match self.chains.list() {
            Ok(chains) => chains,
            Err(why) => {
                followed.failures.push(("all".into(), why.to_string()));
                return followed;
            }
        };
        for info in chains {
            let name = info.chain.name.clone();
            if let Err(why) = self.follow_chain(&name, info.chain.chain_id, &mut followed) {
                followed.failures.push((name, why));
            }
        }
        followed
    }

    fn follow_chain(
        &self,
        name: &str,
        chain_id: u64,
        followed: &mut Followed,
    ) -> Result<(), String> {
        let embedded_len = (name == EMBEDDED).then(|| journal_len(&self.chains.chain_dir(name)));
        if embedded_len.is_some() && *self.embedded_seen() == embedded_len {
            return Ok(());
        }
        let from = self.chains.deposit_cursor(name);
        let Some(confirmed) = self
            .chains
            .confirmed_deposits(name, from)
            .map_err(|e| e.to_string())?
        else {
            *self.embedded_seen() = embedded_len;
            return Ok(());
        };
        let mut resume_at = confirmed.next_block;
        for seen in confirmed.deposits {
            let deposit = ChainDeposit {
                chain_id,
                tx: seen.tx,
                log_index: seen.log_index,
                block: seen.block,
                account: seen.account,
                token: seen.token,
                amount: seen.amount,
            };
            let (credited, registered) = self.journal.read(|journal| {
                let economy = journal.economy();
                (
                    economy.has_chain_deposit(&deposit.key()),
                    economy.tokens().contains_key(&deposit.token),
                )
            });
            if credited {
                continue;
            }
            if !registered {
                followed.waiting.push(format!(
                    "a deposit of {} base units of token {} for {} on {name} (transaction {}) waits until the token is registered (`caravan token register`)",
                    deposit.amount, deposit.token, deposit.account, deposit.tx
                ));
                resume_at = resume_at.min(deposit.block);
                continue;
            }
            let submitted = self
                .journal
                .submit(vec![Event::DepositConfirmed(deposit.clone())])
                .map_err(|e| format!("crediting the deposit in transaction {}: {e}", deposit.tx))?;
            if let Some((_, why)) = submitted.refused.first() {
                return Err(format!(
                    "crediting the deposit in transaction {}: {why}",
                    deposit.tx
                ));
            }
            followed.credited.push(Credited {
                chain: name.to_owned(),
                deposit,
                from: seen.from,
            });
        }
        self.chains
            .set_deposit_cursor(name, resume_at)
            .map_err(|e| e.to_string())?;
        if resume_at == confirmed.next_block {
            *self.embedded_seen() = embedded_len;
        }
        Ok(())
    }

    fn embedded_seen(&self) -> std::sync::MutexGuard<'_, Option<u64>> {
        self.embedded_seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
