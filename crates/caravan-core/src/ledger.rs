//! The double-entry ledger. Every movement of money is a transfer from one account to another in
//! one token; an account's balance is its credits minus its debits. Because each transfer adds the
//! same amount to one account's credits and another's debits, the sum of all balances is zero
//! after every operation — the ledger asserts it.

use std::fmt;

use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::address::Address;
use crate::asset::AssetId;
use crate::hash::Hash32;
use crate::money::Amount;

/// Every kind of account money can sit in.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "id")]
pub enum AccountRef {
    /// The world outside caravan, per depositor. Deposits come from here, so it is the one kind
    /// of account whose balance goes negative: minus what that address has put in.
    External(Address),
    /// A payer's prepaid balance; calls are charged from it and it can never go below zero.
    Payer(Address),
    /// Revenue an asset accrued in the current epoch, emptied at epoch close.
    AssetRevenue(AssetId),
    /// Revenue of an asset too small to split this epoch, carried to the next one.
    CarryForward(AssetId),
    /// What a person is entitled to; its credits are their cumulative entitlement.
    Beneficiary(Address),
    /// Protocol fees accrued in the current epoch, paid to the treasury address at close.
    Treasury,
    /// A data project's escrowed budget, keyed by project id; bounties are paid out of it.
    Escrow(Hash32),
}

impl AccountRef {
    /// Only the outside world may be owed; every account inside caravan stays at or above zero.
    pub fn may_go_negative(&self) -> bool {
        matches!(self, AccountRef::External(_))
    }
}

impl fmt::Display for AccountRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccountRef::External(a) => write!(f, "external {a}"),
            AccountRef::Payer(a) => write!(f, "payer {a}"),
            AccountRef::AssetRevenue(id) => write!(f, "revenue of asset {}", id.0.short()),
            AccountRef::CarryForward(id) => write!(f, "carry-forward of asset {}", id.0.short()),
            AccountRef::Beneficiary(a) => write!(f, "beneficiary {a}"),
            AccountRef::Treasury => write!(f, "treasury"),
            AccountRef::Escrow(project) => write!(f, "escrow of project {}", project.short()),
        }
    }
}

/// Credits and debits of one account in one token; the balance is their difference.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Balance {
    pub credits: Amount,
    pub debits: Amount,
}

impl Balance {
    /// The balance when it is not negative.
    pub fn available(&self) -> Amount {
        self.credits.saturating_sub(self.debits)
    }
    /// Credits minus debits, which is negative only for external accounts.
    pub fn signed(&self) -> i128 {
        self.credits as i128 - self.debits as i128
    }
}

/// A movement of `amount` of `token` from `from` to `to`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Transfer {
    pub from: AccountRef,
    pub to: AccountRef,
    pub token: Address,
    pub amount: Amount,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error(
        "{account} holds {available} base units of token {token}, less than the {needed} asked for"
    )]
    InsufficientBalance {
        account: AccountRef,
        token: Address,
        available: Amount,
        needed: Amount,
    },
    #[error("a transfer of {amount} would overflow the 128-bit totals of token {token}")]
    Overflow { token: Address, amount: Amount },
}

/// All balances, keyed by account and token.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    balances: FxHashMap<(AccountRef, Address), Balance>,
    /// Sum of all credits per token, which equals the sum of all debits.
    volume: FxHashMap<Address, Amount>,
}

impl Ledger {
    pub fn balance(&self, account: &AccountRef, token: &Address) -> Balance {
        self.balances
            .get(&(*account, *token))
            .copied()
            .unwrap_or_default()
    }

    /// Whether `transfer` would succeed; nothing changes.
    pub fn check(&self, transfer: &Transfer) -> Result<(), LedgerError> {
        if !transfer.from.may_go_negative() {
            let available = self.balance(&transfer.from, &transfer.token).available();
            if available < transfer.amount {
                return Err(LedgerError::InsufficientBalance {
                    account: transfer.from,
                    token: transfer.token,
                    available,
                    needed: transfer.amount,
                });
            }
        }
        let volume = self.volume.get(&transfer.token).copied().unwrap_or(0);
        if volume.checked_add(transfer.amount).is_none() {
            return Err(LedgerError::Overflow {
                token: transfer.token,
                amount: transfer.amount,
            });
        }
        Ok(())
    }

    /// Moves money, or changes nothing and says why not.
    pub fn transfer(&mut self, transfer: Transfer) -> Result<(), LedgerError> {
        self.check(&transfer)?;
        if transfer.amount == 0 {
            return Ok(());
        }
        self.balances
            .entry((transfer.from, transfer.token))
            .or_default()
            .debits += transfer.amount;
        // Credits of one account never exceed the token's total volume, checked above.
        self.balances
            .entry((transfer.to, transfer.token))
            .or_default()
            .credits += transfer.amount;
        *self.volume.entry(transfer.token).or_default() += transfer.amount;
        Ok(())
    }

    /// Every non-empty (account, token) with its balance, sorted by account then token.
    pub fn sorted_entries(&self) -> Vec<(AccountRef, Address, Balance)> {
        let mut entries: Vec<_> = self
            .balances
            .iter()
            .map(|((account, token), balance)| (*account, *token, *balance))
            .collect();
        entries.sort_unstable_by_key(|(account, token, _)| (*account, *token));
        entries
    }

    /// Every (account, token) pair, unordered: for folds that do not need an order.
    pub fn entries(&self) -> impl Iterator<Item = (&(AccountRef, Address), &Balance)> {
        self.balances.iter()
    }

    /// Rebuilds a ledger from stored balances (a snapshot), refusing any set that does not
    /// balance: a snapshot that breaks the ledger's invariant is corrupt, not a state.
    pub fn from_entries(
        entries: impl IntoIterator<Item = (AccountRef, Address, Balance)>,
    ) -> Result<Ledger, String> {
        let mut ledger = Ledger::default();
        for (account, token, balance) in entries {
            if ledger.balances.insert((account, token), balance).is_some() {
                return Err(format!("{account} appears twice in token {token}"));
            }
            let volume = ledger.volume.entry(token).or_default();
            *volume = volume
                .checked_add(balance.credits)
                .ok_or_else(|| format!("credits of token {token} overflow"))?;
        }
        ledger.check_balanced()?;
        Ok(ledger)
    }

    /// Recomputes that the balances of every token sum to zero and that no inside account is
    /// negative. Linear in the number of accounts: for tests and `log verify`, not a hot path.
    pub fn check_balanced(&self) -> Result<(), String> {
        let mut credits: FxHashMap<Address, Amount> = FxHashMap::default();
        let mut debits: FxHashMap<Address, Amount> = FxHashMap::default();
        for ((account, token), balance) in &self.balances {
            if !account.may_go_negative() && balance.credits < balance.debits {
                return Err(format!("{account} is negative in token {token}"));
            }
            *credits.entry(*token).or_default() += balance.credits;
            *debits.entry(*token).or_default() += balance.debits;
        }
        for (token, total) in &credits {
            if debits.get(token) != Some(total) || self.volume.get(token) != Some(total) {
                return Err(format!(
                    "token {token}: credits {total}, debits {:?}, recorded volume {:?}",
                    debits.get(token),
                    self.volume.get(token)
                ));
            }
        }
        Ok(())
    }

    /// [`Ledger::check_balanced`], panicking on failure: for tests.
    pub fn assert_balanced(&self) {
        if let Err(why) = self.check_balanced() {
            panic!("ledger out of balance: {why}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_keep_the_sum_at_zero_and_refuse_overdrafts() {
        let token = Address::from_label("token");
        let alice = Address::from_label("alice");
        let mut ledger = Ledger::default();
        ledger
            .transfer(Transfer {
                from: AccountRef::External(alice),
                to: AccountRef::Payer(alice),
                token,
                amount: 100,
            })
            .unwrap();
        let overdraft = Transfer {
            from: AccountRef::Payer(alice),
            to: AccountRef::Treasury,
            token,
            amount: 101,
        };
        assert_eq!(
            ledger.transfer(overdraft),
            Err(LedgerError::InsufficientBalance {
                account: AccountRef::Payer(alice),
                token,
                available: 100,
                needed: 101
            })
        );
        ledger
            .transfer(Transfer {
                amount: 60,
                ..overdraft
            })
            .unwrap();
        assert_eq!(
            ledger
                .balance(&AccountRef::Payer(alice), &token)
                .available(),
            40
        );
        assert_eq!(
            ledger
                .balance(&AccountRef::External(alice), &token)
                .signed(),
            -100
        );
        ledger.assert_balanced();
        let sum: i128 = ledger.entries().map(|(_, b)| b.signed()).sum();
        assert_eq!(sum, 0);
    }
}
