//! The embedded EVM kept in a data directory: every transaction is appended (and synced) to a
//! journal before it is acknowledged, and opening the directory replays the journal. The EVM is
//! deterministic, so the replay reproduces every contract's code and storage exactly, and the
//! logs every transaction emitted.
//!
//! The embedded chain has no blocks of its own: each journaled transaction is one block,
//! numbered from 1, final once journaled (nothing reorganises it). Its hash is the keccak-256 of
//! its number and its journal line, so it names the transaction the way a real chain's hash does.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use alloy_primitives::{Address, B256, Bytes, keccak256};
use serde::{Deserialize, Serialize};

use crate::embedded::{ChainError, ChainLog, EmbeddedEvm, Receipt};

const JOURNAL: &str = "transactions.jsonl";

/// One journaled transaction: who sent what to whom, and when.
#[derive(Serialize, Deserialize)]
struct Entry {
    at: u64,
    from: Address,
    /// `None` for a deployment.
    to: Option<Address>,
    data: Bytes,
}

/// Why the chain's directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "another caravan process is using the chain in {0}; stop it or use another data directory"
    )]
    Busy(PathBuf),
    #[error(
        "{path} line {line} is not a journaled transaction ({why}); the chain's journal is damaged"
    )]
    Damaged {
        path: PathBuf,
        line: usize,
        why: String,
    },
}

/// How many bytes the journal in `dir` holds (0 when there is none): it grows with every
/// transaction, so a reader can tell the chain changed without replaying it.
pub fn journal_len(dir: &Path) -> u64 {
    std::fs::metadata(dir.join(JOURNAL)).map_or(0, |meta| meta.len())
}

/// How long opening the chain waits for another process to let it go.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// A persistent embedded chain.
pub struct PersistentEvm {
    evm: EmbeddedEvm,
    /// Held for the chain's lifetime: one process at a time appends to the journal.
    _lock: File,
    journal: File,
    path: PathBuf,
    transactions: u64,
    /// Every log the journaled transactions emitted, in order.
    logs: Vec<(Address, ChainLog)>,
}

impl PersistentEvm {
    /// Opens (or creates) the chain in `dir`, replaying its journal.
    pub fn open(dir: &Path) -> Result<PersistentEvm, StoreError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let lock_path = dir.join("chain.lock");
        let lock = File::create(&lock_path).map_err(io(&lock_path))?;
        // A node serving from the same data directory opens the chain for each operation and
        // lets it go after: wait for it a little rather than refuse at once.
        let waited = std::time::Instant::now();
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if waited.elapsed() < LOCK_PATIENCE => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(StoreError::Busy(dir.to_path_buf()));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(io(&lock_path)(e)),
            }
        }
        let path = dir.join(JOURNAL);
        let journal = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)
            .map_err(io(&path))?;
        let mut evm = EmbeddedEvm::new(0);
        let mut transactions = 0;
        let mut logs = Vec::new();
        for (n, line) in BufReader::new(&journal).lines().enumerate() {
            let line = line.map_err(io(&path))?;
            let damaged = |why: String| StoreError::Damaged {
                path: path.clone(),
                line: n + 1,
                why,
            };
            let entry: Entry = serde_json::from_str(&line).map_err(|e| damaged(e.to_string()))?;
            evm.set_timestamp(entry.at);
            // Reverted transactions were journaled too (they still move the sender's nonce), so
            // their outcome on replay is not an error.
            let outcome = match entry.to {
                Some(to) => evm.transact(entry.from, to, entry.data),
                None => evm.deploy(entry.from, entry.data),
            };
            transactions += 1;
            keep_logs(&mut logs, transactions, line.as_bytes(), &outcome);
        }
        Ok(PersistentEvm {
            evm,
            _lock: lock,
            journal,
            path,
            transactions,
            logs,
        })
    }

    /// Transactions in the journal.
    pub fn transactions(&self) -> u64 {
        self.transactions
    }

    pub fn timestamp(&self) -> u64 {
        self.evm.timestamp()
    }

    /// Runs a transaction at time `at` (the clock never goes back), journals it durably, and
    /// returns its outcome.
    pub fn send(
        &mut self,
        at: u64,
        from: Address,
        to: Option<Address>,
        data: Bytes,
    ) -> Result<Result<Receipt, ChainError>, StoreError> {
        self.evm.set_timestamp(at);
        let entry = Entry {
            at: self.evm.timestamp(),
            from,
            to,
            data: data.clone(),
        };
        let outcome = match to {
            Some(to) => self.evm.transact(from, to, data),
            None => self.evm.deploy(from, data),
        };
        let mut line = serde_json::to_string(&entry).expect("entries serialise");
        line.push('\n');
        let io = |source| StoreError::Io {
            path: self.path.clone(),
            source,
        };
        self.journal.write_all(line.as_bytes()).map_err(io)?;
        self.journal.sync_data().map_err(io)?;
        self.transactions += 1;
        keep_logs(
            &mut self.logs,
            self.transactions,
            line.trim_end().as_bytes(),
            &outcome,
        );
        Ok(outcome)
    }

    /// The logs `address` emitted with first topic `topic` in transactions `from..=to`.
    pub fn logs(&self, address: Address, topic: B256, from: u64, to: u64) -> Vec<ChainLog> {
        let start = self.logs.partition_point(|(_, log)| log.block < from);
        self.logs[start..]
            .iter()
            .take_while(|(_, log)| log.block <= to)
            .filter(|(emitter, log)| {
                *emitter == address && log.data.topics().first() == Some(&topic)
            })
            .map(|(_, log)| log.clone())
            .collect()
    }

    /// A read-only call against the current state.
    pub fn call(&mut self, to: Address, data: Bytes) -> Result<Bytes, ChainError> {
        self.evm.call(Address::ZERO, to, data)
    }

    /// Whether `address` holds code.
    pub fn has_code(&mut self, address: Address) -> bool {
        self.evm.has_code(address)
    }
}

/// Records the logs of the journaled transaction number `number` (its journal line `line`), if
/// it succeeded.
fn keep_logs(
    logs: &mut Vec<(Address, ChainLog)>,
    number: u64,
    line: &[u8],
    outcome: &Result<Receipt, ChainError>,
) {
    let Ok(receipt) = outcome else {
        return;
    };
    let tx = keccak256([number.to_be_bytes().as_slice(), line].concat());
    logs.extend(receipt.logs.iter().enumerate().map(|(index, log)| {
        (
            log.address,
            ChainLog {
                block: number,
                tx,
                log_index: index as u64,
                data: log.data.clone(),
            },
        )
    }));
}
