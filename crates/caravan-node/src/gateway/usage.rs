//! What an account spent on calls, per UTC day and per model, as app developers read it on
//! their page and from `GET /v1/usage`. It comes from the spend table the store keeps beside
//! the log (one row per payer, day, asset and token, written in the same transaction as the
//! calls), so a report costs what the account's rows for those days hold — never a scan of the
//! calls themselves.

use std::collections::BTreeMap;

use caravan_core::calendar::DAY_MS;
use caravan_core::{Address, Amount, AssetId, AssetKind, Spending, Token};
use caravan_store::JournalError;

use super::Gateway;

/// The most days one report covers (a year, leap day included).
pub const MAX_USAGE_DAYS: u32 = 366;

/// An account's spending over the last `days` UTC days, today included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageReport {
    /// The first day covered, in days since the Unix epoch (UTC).
    pub first_day: u64,
    /// How many days the report covers, the last one being today.
    pub days: u32,
    /// One entry per token the account spent in, by symbol.
    pub tokens: Vec<TokenUsage>,
}

/// Spending in one token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenUsage {
    pub token: Token,
    /// Paid calls over the whole report.
    pub calls: u64,
    pub amount: Amount,
    /// Every day of the report, oldest first, those without spending included.
    pub per_day: Vec<DayUsage>,
    /// Every asset the account's calls paid, the largest spending first.
    pub per_model: Vec<ModelUsage>,
}

/// One day's spending in one token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DayUsage {
    /// Days since the Unix epoch (UTC).
    pub day: u64,
    pub calls: u64,
    pub amount: Amount,
}

/// What the account's calls paid one asset in one token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelUsage {
    pub asset: AssetId,
    pub name: String,
    pub kind: AssetKind,
    /// Calls made to it (see [`Spending::calls`]).
    pub calls: u64,
    /// Calls whose charge included it, an agent's components included.
    pub uses: u64,
    pub amount: Amount,
}

/// Why a report was not made.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("days must be from 1 to {MAX_USAGE_DAYS}, got {0}")]
    Days(u32),
    #[error("the spend table could not be read: {0}")]
    Store(#[from] JournalError),
}

impl Gateway {
    /// What `account` spent over the last `days` UTC days up to `now_ms`, per day and per
    /// model, in each token. Counts committed calls: one whose charge is still being written
    /// shows once it is durable.
    pub fn usage(
        &self,
        account: Address,
        days: u32,
        now_ms: u64,
    ) -> Result<UsageReport, UsageError> {
        if days == 0 || days > MAX_USAGE_DAYS {
            return Err(UsageError::Days(days));
        }
        let today = now_ms / DAY_MS;
        let first_day = today.saturating_sub(u64::from(days) - 1);
        let rows = self.journal.spending(account, first_day)?;
        Ok(self.journal.read(|j| {
            let economy = j.economy();
            let mut tokens: Vec<TokenUsage> = rows_by_token(&rows, today)
                .into_iter()
                .filter_map(|(token, rows)| {
                    let token = economy.tokens().get(&token)?.clone();
                    let mut usage = TokenUsage {
                        token,
                        calls: 0,
                        amount: 0,
                        per_day: (first_day..=today)
                            .map(|day| DayUsage {
                                day,
                                calls: 0,
                                amount: 0,
                            })
                            .collect(),
                        per_model: Vec::new(),
                    };
                    let mut per_model: BTreeMap<AssetId, ModelUsage> = BTreeMap::new();
                    for spent in rows {
                        usage.calls += spent.calls;
                        usage.amount = usage.amount.saturating_add(spent.amount);
                        let day = &mut usage.per_day[(spent.day - first_day) as usize];
                        day.calls += spent.calls;
                        day.amount = day.amount.saturating_add(spent.amount);
                        let model = per_model.entry(spent.asset).or_insert_with(|| {
                            let manifest = economy
                                .lineage()
                                .get(&spent.asset)
                                .map(|asset| &asset.manifest);
                            ModelUsage {
                                asset: spent.asset,
                                name: manifest.map_or_else(
                                    || spent.asset.to_string(),
                                    |manifest| manifest.name.clone(),
                                ),
                                kind: manifest.map_or(AssetKind::Model, |manifest| manifest.kind),
                                calls: 0,
                                uses: 0,
                                amount: 0,
                            }
                        });
                        model.calls += spent.calls;
                        model.uses += spent.uses;
                        model.amount = model.amount.saturating_add(spent.amount);
                    }
                    usage.per_model = per_model.into_values().collect();
                    usage
                        .per_model
                        .sort_by(|a, b| b.amount.cmp(&a.amount).then_with(|| a.name.cmp(&b.name)));
                    Some(usage)
                })
                .collect();
            tokens.sort_by(|a, b| a.token.symbol.cmp(&b.token.symbol));
            UsageReport {
                first_day,
                days,
                tokens,
            }
        }))
    }
}

/// The rows up to `today` (a clock set back leaves later ones out), grouped by token.
fn rows_by_token(rows: &[Spending], today: u64) -> BTreeMap<Address, Vec<&Spending>> {
    let mut by_token: BTreeMap<Address, Vec<&Spending>> = BTreeMap::new();
    for spent in rows.iter().filter(|spent| spent.day <= today) {
        by_token.entry(spent.token).or_default().push(spent);
    }
    by_token
}
