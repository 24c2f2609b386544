//! How the command line shows things: tables, amounts, progress bars and opening the store.

use std::time::Duration;

use caravan_core::{Address, Amount, Economy, Hash32, Leaf, Token};
use caravan_store::{Journal, JournalError, Location};
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{CellAlignment, ContentArrangement, Table};
use indicatif::{ProgressBar, ProgressStyle};

use crate::StoreArgs;

/// A table with a header row; columns listed in `right` are right-aligned (numbers).
pub fn table(header: &[&str], right: &[usize]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.iter().copied());
    for column in right {
        if let Some(column) = table.column_mut(*column) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

/// A progress bar of `total` steps with `label`; drawn only on a terminal.
pub fn progress(total: u64, label: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg:>18} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_message(label.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// `amount` of `token` in whole tokens, or in base units when the token is unknown.
pub fn amount(economy: &Economy, token: &Address, amount: Amount) -> String {
    match economy.tokens().get(token) {
        Some(known) => known.format(amount),
        None => format!("{amount} base units of {token}"),
    }
}

/// A leaf with its proof against `root`, as JSON ready to hand to a claim.
pub fn proof_json(leaf: &Leaf, root: &Hash32, proof: &[Hash32]) -> String {
    let json = serde_json::json!({
        "account": leaf.account,
        "token": leaf.token,
        "cumulative": leaf.cumulative.to_string(),
        "root": root,
        "proof": proof,
    });
    serde_json::to_string_pretty(&json).expect("a proof always serialises")
}

/// Opens the store named by the arguments from its latest snapshot, with a progress bar while a
/// long log replays, and a warning when a snapshot had to be passed over.
pub fn open_journal(store: &StoreArgs) -> Result<Journal, String> {
    open_with(store, Journal::open).map_err(|e| e.to_string())
}

/// Opens the store to write, or `None` when another process (a node serving from it) holds it.
pub fn open_journal_unless_served(store: &StoreArgs) -> Result<Option<Journal>, String> {
    match open_with(store, Journal::open) {
        Ok(journal) => Ok(Some(journal)),
        Err(JournalError::Store(caravan_store::StoreError::Busy(_))) => Ok(None),
        Err(error) => Err(error.to_string()),
    }
}

/// Opens the store only to read, beside a node that may be serving from it (see
/// [`Journal::open_reader`]): for commands that show and check, never for ones that write.
pub fn open_reader(store: &StoreArgs) -> Result<Journal, String> {
    open_with(store, Journal::open_reader).map_err(|e| e.to_string())
}

/// Opens the store only to read by replaying every event and checking every snapshot against
/// the replay; works beside a serving node too.
pub fn open_journal_verifying(store: &StoreArgs) -> Result<Journal, String> {
    open_with(store, Journal::open_verifying).map_err(|e| e.to_string())
}

type Opener = fn(Location, &mut dyn FnMut(u64, u64)) -> Result<Journal, JournalError>;

fn open_with(store: &StoreArgs, opener: Opener) -> Result<Journal, JournalError> {
    let location = Location::choose(store.data_dir.clone(), store.database.as_deref())?;
    let mut bar: Option<ProgressBar> = None;
    let journal = opener(location, &mut |done, total| {
        if total >= 200_000 {
            let bar = bar.get_or_insert_with(|| progress(total, "replaying log"));
            bar.set_position(done);
        }
    })?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if let Some(why) = &journal.open_report().snapshot_skipped {
        eprintln!(
            "warning: replayed the whole log because the {why}; `caravan log verify` checks the store"
        );
    }
    Ok(journal)
}

/// Parses a decimal amount of `token` (given as an address) into base units.
pub fn parse_amount(economy: &Economy, token: &Address, text: &str) -> Result<Amount, String> {
    let token: &Token = economy.token(token).map_err(|e| e.to_string())?;
    token.parse_amount(text)
}

/// The text of a file, or of standard input when the path is `-`.
pub fn read_input(path: &std::path::Path) -> Result<String, String> {
    if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| format!("cannot read standard input: {e}"))
    } else {
        std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    }
}

/// A time given in milliseconds since the Unix epoch, as `2026-11-25 14:03 UTC`.
pub fn utc_time(ms: u64) -> String {
    caravan_core::calendar::utc_minute(ms)
}

#[cfg(test)]
mod tests {
    use super::utc_time;

    #[test]
    fn times_read_as_utc_calendar_dates() {
        assert_eq!(utc_time(0), "1970-01-01 00:00 UTC");
        // 2000-02-29 (a leap day in a century year) at 23:59.
        assert_eq!(utc_time(951_868_740_000), "2000-02-29 23:59 UTC");
        assert_eq!(utc_time(1_764_000_000_000), "2025-11-24 16:00 UTC");
        assert_eq!(utc_time(4_102_444_800_000), "2100-01-01 00:00 UTC");
    }
}
