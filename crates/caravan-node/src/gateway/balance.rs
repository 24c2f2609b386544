//! Prepaid balances as their owners see them — what is available, what calls in flight hold,
//! and the on-chain deposits that filled them — and taking back what is not spent or escrowed.

use std::collections::BTreeMap;

use caravan_core::{AccountRef, Address, Amount, ChainDeposit, Economy, Event, Token};

use super::Gateway;
use crate::meter::InFlight;

/// A prepaid balance in one token, as its owner sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrepaidBalance {
    pub token: Token,
    /// What calls and budgets may still spend: the balance less what is held.
    pub available: Amount,
    /// What calls in flight hold.
    pub held: Amount,
    /// The deposits credited from chains in this token, in chain order.
    pub deposits: Vec<ChainDeposit>,
}

/// A withdrawal taken: the amount is the account's entitlement from now on, paid on its payout
/// chain with the next root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Withdrawal {
    pub token: Token,
    pub amount: Amount,
    /// What stays available to spend.
    pub available: Amount,
    /// The epoch whose root will first promise it.
    pub claimable_from_epoch: u64,
}

/// Why a withdrawal was not taken; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum WithdrawError {
    #[error("{0}")]
    Invalid(String),
    #[error(
        "{account} has {} available to withdraw (its prepaid balance less what calls in flight hold), less than the {} asked for",
        token.format(*available),
        token.format(*asked)
    )]
    InsufficientBalance {
        account: Address,
        token: Token,
        asked: Amount,
        available: Amount,
    },
    /// The node could not record it.
    #[error("the withdrawal could not be recorded: {0}")]
    Node(String),
}

impl Gateway {
    /// `account`'s prepaid balance in every registered token, less what calls in flight hold,
    /// with the deposits that filled it.
    pub fn balances(&self, account: &Address) -> Vec<PrepaidBalance> {
        self.meter.reading(|in_flight| {
            self.journal.read(|j| {
                let economy = j.economy();
                let mut deposits: BTreeMap<Address, Vec<ChainDeposit>> = BTreeMap::new();
                for deposit in economy.chain_deposits().filter(|d| d.account == *account) {
                    deposits
                        .entry(deposit.token)
                        .or_default()
                        .push(deposit.clone());
                }
                economy
                    .tokens()
                    .values()
                    .map(|token| {
                        let (available, held) =
                            spendable(economy, in_flight, account, &token.address);
                        PrepaidBalance {
                            token: token.clone(),
                            available,
                            held,
                            deposits: deposits.remove(&token.address).unwrap_or_default(),
                        }
                    })
                    .collect()
            })
        })
    }

    /// Takes `amount` of `token` out of `account`'s prepaid balance into its entitlement,
    /// which the next root promises on chain. Money calls in flight hold stays put, so a
    /// withdrawal never races a charge.
    pub fn withdraw(
        &self,
        account: Address,
        token: Address,
        amount: Amount,
    ) -> Result<Withdrawal, WithdrawError> {
        let (registered, next_epoch) = self.journal.read(|j| {
            let economy = j.economy();
            (economy.tokens().get(&token).cloned(), economy.next_epoch())
        });
        let token = registered.ok_or_else(|| {
            WithdrawError::Invalid(format!(
                "token {token} is not registered here; GET /v1/balance lists the tokens you hold"
            ))
        })?;
        if amount == 0 {
            return Err(WithdrawError::Invalid(
                "a withdrawal must be above zero base units".into(),
            ));
        }
        let hold = self
            .meter
            .reserve(&self.journal, account, token.address, amount)
            .map_err(|shortfall| WithdrawError::InsufficientBalance {
                account,
                token: token.clone(),
                asked: amount,
                available: shortfall.available,
            })?;
        let submitted = self.meter.settle(hold, || {
            self.journal.submit(vec![Event::Withdrawn {
                account,
                token: token.address,
                amount,
            }])
        });
        let submitted = submitted.map_err(|e| WithdrawError::Node(e.to_string()))?;
        if let Some((_, why)) = submitted.refused.first() {
            return Err(WithdrawError::Node(why.to_string()));
        }
        let (available, _) = self.meter.reading(|in_flight| {
            self.journal
                .read(|j| spendable(j.economy(), in_flight, &account, &token.address))
        });
        Ok(Withdrawal {
            token,
            amount,
            available,
            claimable_from_epoch: next_epoch,
        })
    }
}

/// What `account` may still spend of `token` (its prepaid balance less what calls in flight
/// hold), and what they hold.
fn spendable(
    economy: &Economy,
    in_flight: &InFlight<'_>,
    account: &Address,
    token: &Address,
) -> (Amount, Amount) {
    let balance = economy
        .ledger()
        .balance(&AccountRef::Payer(*account), token)
        .available();
    let held = in_flight.of(account, token);
    (balance.saturating_sub(held), held)
}
