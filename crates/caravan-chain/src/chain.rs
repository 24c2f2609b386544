//! What settlement needs from a chain, whichever it is: send a transaction from the node's
//! account and wait for it to be confirmed, run a read-only call, look for code, and read the
//! head and a contract's logs (to follow deposits). The embedded chain kept in the data
//! directory is one; JSON-RPC chains (`rpc`) are the other.

use alloy_primitives::{Address, B256, Bytes};

pub use crate::embedded::ChainLog;
use crate::embedded::{ChainError, DEV_DEPLOYER, Receipt};
use crate::persistent::{PersistentEvm, StoreError};

/// Something went wrong with the chain itself (not a revert): its store, the network, the node.
#[derive(Debug, thiserror::Error)]
pub enum ChainFault {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Rpc(String),
    #[error("a read-only call failed: {0}")]
    Call(String),
}

pub trait Chain {
    /// The account transactions are sent from: the node's signer.
    fn sender(&self) -> Address;

    /// Sends a transaction (`to` is `None` for a deployment) and returns once it is confirmed:
    /// the outer error is the chain failing, the inner one the transaction reverting. `at` is
    /// the time the embedded chain stamps; real chains use their own clock.
    fn send(
        &mut self,
        at: u64,
        to: Option<Address>,
        data: Bytes,
    ) -> Result<Result<Receipt, ChainError>, ChainFault>;

    /// A read-only call against the latest state.
    fn call(&mut self, to: Address, data: Bytes) -> Result<Bytes, ChainFault>;

    /// Whether `address` holds contract code.
    fn has_code(&mut self, address: Address) -> Result<bool, ChainFault>;

    /// The number of the newest block.
    fn head(&mut self) -> Result<u64, ChainFault>;

    /// The logs `address` emitted with first topic `topic` in blocks `from..=to`, in chain order.
    fn logs(
        &mut self,
        address: Address,
        topic: B256,
        from: u64,
        to: u64,
    ) -> Result<Vec<ChainLog>, ChainFault>;
}

impl Chain for PersistentEvm {
    /// The development deployer: the embedded chain needs no keys, and this keeps addresses
    /// the same as on a fresh anvil.
    fn sender(&self) -> Address {
        DEV_DEPLOYER
    }

    fn send(
        &mut self,
        at: u64,
        to: Option<Address>,
        data: Bytes,
    ) -> Result<Result<Receipt, ChainError>, ChainFault> {
        let from = self.sender();
        Ok(PersistentEvm::send(self, at, from, to, data)?)
    }

    fn call(&mut self, to: Address, data: Bytes) -> Result<Bytes, ChainFault> {
        PersistentEvm::call(self, to, data).map_err(|e| ChainFault::Call(e.to_string()))
    }

    fn has_code(&mut self, address: Address) -> Result<bool, ChainFault> {
        Ok(PersistentEvm::has_code(self, address))
    }

    fn head(&mut self) -> Result<u64, ChainFault> {
        Ok(self.transactions())
    }

    fn logs(
        &mut self,
        address: Address,
        topic: B256,
        from: u64,
        to: u64,
    ) -> Result<Vec<ChainLog>, ChainFault> {
        Ok(PersistentEvm::logs(self, address, topic, from, to))
    }
}
