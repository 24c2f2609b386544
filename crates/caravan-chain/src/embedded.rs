//! An in-process EVM (revm): deploys and calls contracts with exact gas accounting, on a clock
//! the caller advances.

use alloy_primitives::{Address, B256, Bytes, Log, LogData, U256, address};
use revm::Context;
use revm::context::TxEnv;
use revm::context::result::{ExecutionResult, Output};
use revm::database::{CacheDB, EmptyDB};
use revm::handler::MainnetContext;
use revm::handler::{ExecuteCommitEvm, ExecuteEvm, MainBuilder, MainContext, MainnetEvm};
use revm::primitives::TxKind;

/// The chain id the embedded chain reports (`CHAINID`), so that accounts can name it as their
/// payout chain; no public chain uses it.
pub const EMBEDDED_CHAIN_ID: u64 = 6_513_010;

/// The account that deploys on a development chain (and sends every transaction on the embedded
/// one, which needs no keys): the first account of anvil's (and Hardhat's) default mnemonic, so
/// the first contract it deploys, the development token, has the same address on the embedded
/// chain as on a fresh anvil.
pub const DEV_DEPLOYER: Address = address!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266");

/// The most gas one transaction may use: the per-transaction cap of current Ethereum (EIP-7825).
const TX_GAS_LIMIT: u64 = 1 << 24;

/// Why a transaction did not succeed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChainError {
    /// The contract reverted; `data` is the revert payload (an ABI-encoded custom error).
    #[error("the transaction reverted ({} bytes of revert data)", data.len())]
    Reverted { data: Bytes, gas_used: u64 },
    #[error("the transaction halted: {0}")]
    Halted(String),
    #[error("the EVM refused the transaction: {0}")]
    Invalid(String),
}

/// A transaction that succeeded.
#[derive(Debug, Clone, PartialEq)]
pub struct Receipt {
    pub gas_used: u64,
    pub output: Bytes,
    pub logs: Vec<Log>,
    /// The new contract's address, for a deployment.
    pub created: Option<Address>,
}

/// A contract's log as the chain holds it now, with where it sits.
#[derive(Clone, Debug, PartialEq)]
pub struct ChainLog {
    pub block: u64,
    /// The transaction that emitted it.
    pub tx: B256,
    /// Its index among the logs of its block.
    pub log_index: u64,
    pub data: LogData,
}

/// What an [`EmbeddedEvm`] holds between transactions: every account, contract and storage
/// slot, and the clock.
pub struct ChainState {
    db: CacheDB<EmptyDB>,
    timestamp: u64,
}

/// An EVM with its state in memory.
pub struct EmbeddedEvm {
    evm: MainnetEvm<MainnetContext<CacheDB<EmptyDB>>>,
}

impl Default for EmbeddedEvm {
    fn default() -> Self {
        EmbeddedEvm::new(1_800_000_000)
    }
}

impl EmbeddedEvm {
    /// A fresh chain whose clock reads `timestamp` (seconds since the Unix epoch). Gas is free
    /// (price and base fee zero), so accounts need no ether.
    pub fn new(timestamp: u64) -> EmbeddedEvm {
        EmbeddedEvm::resume(ChainState {
            db: CacheDB::new(EmptyDB::default()),
            timestamp,
        })
    }

    /// An EVM over a state [`EmbeddedEvm::take_state`] gave.
    pub fn resume(state: ChainState) -> EmbeddedEvm {
        let ChainState { db, timestamp } = state;
        let evm = Context::mainnet()
            .with_db(db)
            .modify_block_chained(|block| {
                block.timestamp = U256::from(timestamp);
                block.basefee = 0;
                block.gas_limit = 30_000_000;
            })
            .modify_cfg_chained(|cfg| {
                cfg.disable_nonce_check = true;
                cfg.chain_id = EMBEDDED_CHAIN_ID;
            })
            .build_mainnet();
        EmbeddedEvm { evm }
    }

    /// The chain's state and clock, leaving this EVM empty: a state can be kept across threads
    /// (the EVM itself cannot) and resumed.
    pub fn take_state(&mut self) -> ChainState {
        ChainState {
            timestamp: self.timestamp(),
            db: std::mem::take(&mut self.evm.ctx.journaled_state.database),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&mut self, seconds: u64) {
        self.evm
            .ctx
            .modify_block(|block| block.timestamp += U256::from(seconds));
    }

    pub fn timestamp(&self) -> u64 {
        self.evm.ctx.block.timestamp.to::<u64>()
    }

    /// Sets the clock; it never goes back.
    pub fn set_timestamp(&mut self, timestamp: u64) {
        let timestamp = timestamp.max(self.timestamp());
        self.evm
            .ctx
            .modify_block(|block| block.timestamp = U256::from(timestamp));
    }

    /// Deploys `init_code` (creation bytecode with encoded constructor arguments) from `from`.
    pub fn deploy(&mut self, from: Address, init_code: Bytes) -> Result<Receipt, ChainError> {
        self.send(from, TxKind::Create, init_code)
    }

    /// Sends a transaction to `to` and commits its effects.
    pub fn transact(
        &mut self,
        from: Address,
        to: Address,
        data: Bytes,
    ) -> Result<Receipt, ChainError> {
        self.send(from, TxKind::Call(to), data)
    }

    /// Whether `address` holds contract code.
    pub fn has_code(&mut self, address: Address) -> bool {
        use revm::Database;
        self.evm
            .ctx
            .journaled_state
            .database
            .basic(address)
            .ok()
            .flatten()
            .is_some_and(|info| !info.is_empty_code_hash())
    }

    /// Runs a call without committing anything (a view).
    pub fn call(&mut self, from: Address, to: Address, data: Bytes) -> Result<Bytes, ChainError> {
        let tx = transaction(from, TxKind::Call(to), data)?;
        let result = self
            .evm
            .transact(tx)
            .map_err(|e| ChainError::Invalid(e.to_string()))?
            .result;
        receipt(result).map(|r| r.output)
    }

    fn send(&mut self, from: Address, kind: TxKind, data: Bytes) -> Result<Receipt, ChainError> {
        let tx = transaction(from, kind, data)?;
        let result = self
            .evm
            .transact_commit(tx)
            .map_err(|e| ChainError::Invalid(e.to_string()))?;
        receipt(result)
    }
}

fn transaction(from: Address, kind: TxKind, data: Bytes) -> Result<TxEnv, ChainError> {
    TxEnv::builder()
        .caller(from)
        .kind(kind)
        .data(data)
        .gas_limit(TX_GAS_LIMIT)
        .gas_price(0)
        .chain_id(Some(EMBEDDED_CHAIN_ID))
        .build()
        .map_err(|e| ChainError::Invalid(format!("{e:?}")))
}

fn receipt(result: ExecutionResult) -> Result<Receipt, ChainError> {
    match result {
        ExecutionResult::Success {
            gas, logs, output, ..
        } => {
            let (output, created) = match output {
                Output::Call(bytes) => (bytes, None),
                Output::Create(bytes, address) => (bytes, address),
            };
            Ok(Receipt {
                gas_used: gas.tx_gas_used(),
                output,
                logs,
                created,
            })
        }
        ExecutionResult::Revert { gas, output, .. } => Err(ChainError::Reverted {
            data: output,
            gas_used: gas.tx_gas_used(),
        }),
        ExecutionResult::Halt { reason, .. } => Err(ChainError::Halted(format!("{reason:?}"))),
    }
}
