//! Access records: the node's facts about who may do what and how assets are served — API keys
//! issued and revoked ([`crate::keys`]), models and agents registered for serving
//! ([`crate::gateway`]). Each is an `AccessRecorded` event holding the owning service's JSON
//! (`{"type": "...", ...}`), filed in the log's access lane, so they are as durable and
//! tamper-evident as the charges they allow; each service rebuilds its tables from its own kinds
//! of record when it opens.

use caravan_core::{Event, Lane};
use caravan_store::{Journal, JournalError};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why the access records could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("stored access record {seq} cannot be read: {why}")]
    Corrupt { seq: u64, why: String },
    #[error(transparent)]
    Store(#[from] JournalError),
}

/// The event that stores `record`.
pub fn event<R: Serialize>(record: &R) -> Event {
    Event::AccessRecorded {
        record: serde_json::to_string(record).expect("access records serialise"),
    }
}

/// Every access record of the kinds `R` reads (those whose `type` is in `kinds`), in the order
/// recorded; records of other kinds belong to other services and are passed over. Reads the
/// access lane of the log, not the whole of it.
pub fn recorded<R: DeserializeOwned>(
    journal: &Journal,
    kinds: &[&str],
) -> Result<Vec<R>, AccessError> {
    let mut records = Vec::new();
    journal.for_each_in_lane(Lane::Access, 0, |row| -> Result<(), AccessError> {
        let Ok(Event::AccessRecorded { record }) = Event::decode(&row.body) else {
            return Ok(());
        };
        let corrupt = |why: String| AccessError::Corrupt { seq: row.seq, why };
        let value: serde_json::Value =
            serde_json::from_str(&record).map_err(|e| corrupt(e.to_string()))?;
        let kind = value["type"].as_str().unwrap_or_default();
        if kinds.contains(&kind) {
            records.push(serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))?);
        }
        Ok(())
    })?;
    Ok(records)
}
