//! Operator work a node's operators do over HTTP (as `caravan` does on the command line):
//! registering the tokens payments may be made in, and closing epochs while the node serves.

use caravan_core::epoch::EpochBundle;
use caravan_core::{EpochOutcome, Event, Token};
use caravan_store::JournalError;

use crate::Node;

/// Why operator work was refused.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("the economy refused it: {0}")]
    Refused(String),
    #[error("storage is unavailable; nothing changed, retry: {0}")]
    Store(#[from] JournalError),
}

impl Node {
    /// Registers an ERC-20 token payments may be made in. Blocking: waits until it is durable.
    pub fn register_token(&self, token: Token) -> Result<Token, OperatorError> {
        let mut submitted = self
            .journal()
            .submit(vec![Event::TokenRegistered(token.clone())])?;
        if let Some((_, why)) = submitted.refused.pop() {
            return Err(OperatorError::Refused(why.to_string()));
        }
        Ok(token)
    }

    /// Closes the current epoch: royalties propagate through the lineage and the cumulative
    /// settlement root is recorded, with the epoch's bundle. Calls and judgments wait while it
    /// runs (one pass over assets, edges and members, not over calls).
    pub fn close_epoch(&self) -> Result<(EpochOutcome, EpochBundle), OperatorError> {
        self.journal().close_epoch().map_err(|error| match error {
            JournalError::Event(why) => OperatorError::Refused(why.to_string()),
            other => OperatorError::Store(other),
        })
    }
}
