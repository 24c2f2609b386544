//! The embedded EVM kept in a data directory: every transaction is appended (and synced) to a
//! journal before it is acknowledged, and opening the directory replays the journal. The EVM is
//! deterministic, so the replay reproduces every contract's code and storage exactly, and the
//! logs every transaction emitted.
//!
//! The embedded chain has no blocks of its own: each journaled transaction is one block,
//! numbered from 1, final once journaled (nothing reorganises it). Its hash is the keccak-256 of
//! its number and its journal line, so it names the transaction the way a real chain's hash does.
//!
//! A node opens the chain for each operation and lets it go after, so that a command in another
//! process can use it meanwhile. Replaying the whole journal on every open made each operation
//! cost what the chain ever did (a node posting a root every ten seconds slowed its earnings
//! pages down minute by minute), so a process keeps the state it replayed, and the next open
//! replays only the transactions appended since, by this process or another.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard};
use std::time::Instant;

use alloy_primitives::{Address, B256, Bytes, keccak256};
use serde::{Deserialize, Serialize};

use crate::embedded::{ChainError, ChainLog, ChainState, EmbeddedEvm, Receipt};

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

/// A persistent embedded chain, held by one opener at a time (in this process and across
/// processes) until it is dropped.
pub struct PersistentEvm {
    replay: Replay,
    /// Set when a transaction ran in memory but may not be in the journal: the state is not
    /// kept for the next open, which replays the journal instead.
    diverged: bool,
    slot: Arc<Slot>,
    /// Held for the chain's lifetime: one process at a time appends to the journal.
    _lock: File,
    journal: File,
    path: PathBuf,
}

/// The state a journal's first `read` bytes replay to.
struct Replay {
    evm: EmbeddedEvm,
    transactions: u64,
    /// Every log the journaled transactions emitted, in order.
    logs: Vec<(Address, ChainLog)>,
    /// How many bytes of the journal the state covers.
    read: u64,
    /// The last bytes of those (up to [`TAIL`]): a journal whose bytes there differ was
    /// replaced, and is replayed from its start.
    tail: Vec<u8>,
}

/// A [`Replay`] kept between openers (its EVM cannot move between threads; its state can).
struct Kept {
    chain: ChainState,
    transactions: u64,
    logs: Vec<(Address, ChainLog)>,
    read: u64,
    tail: Vec<u8>,
}

/// How many bytes before the replayed end are compared to tell the same journal from another.
const TAIL: usize = 64;

/// One chain directory in this process: whether an opener holds it, and the state the last one
/// left.
#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
    freed: Condvar,
}

#[derive(Default)]
struct SlotState {
    held: bool,
    kept: Option<Kept>,
}

/// The chain directories this process opened, by their journal's path.
static SLOTS: LazyLock<Mutex<HashMap<PathBuf, Arc<Slot>>>> = LazyLock::new(Default::default);

/// How many directories' replayed states a process keeps: a node has one embedded chain, a
/// test process opens many.
const KEPT_SLOTS: usize = 8;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Slot {
    /// The slot of the journal at `path`, letting go of idle ones past [`KEPT_SLOTS`].
    fn of(path: &Path) -> Arc<Slot> {
        let mut slots = lock(&SLOTS);
        if !slots.contains_key(path) && slots.len() >= KEPT_SLOTS {
            slots.retain(|_, slot| Arc::strong_count(slot) > 1);
        }
        Arc::clone(slots.entry(path.to_path_buf()).or_default())
    }

    /// Waits (until `deadline`) for this process's other opener to let go, then holds the
    /// slot; returns the state the last opener left, if any, or `None` if the wait ran out.
    fn hold(&self, deadline: Instant) -> Option<Option<Kept>> {
        let mut state = lock(&self.state);
        while state.held {
            let left = deadline.checked_duration_since(Instant::now())?;
            state = self
                .freed
                .wait_timeout(state, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
        state.held = true;
        Some(state.kept.take())
    }

    fn release(&self, kept: Option<Kept>) {
        let mut state = lock(&self.state);
        state.held = false;
        state.kept = kept;
        self.freed.notify_one();
    }
}

impl Drop for PersistentEvm {
    fn drop(&mut self) {
        let kept = (!self.diverged).then(|| self.replay.keep());
        self.slot.release(kept);
    }
}

impl Replay {
    /// The state of an empty journal.
    fn empty() -> Replay {
        Replay {
            evm: EmbeddedEvm::new(0),
            transactions: 0,
            logs: Vec::new(),
            read: 0,
            tail: Vec::new(),
        }
    }

    fn resume(kept: Kept) -> Replay {
        Replay {
            evm: EmbeddedEvm::resume(kept.chain),
            transactions: kept.transactions,
            logs: kept.logs,
            read: kept.read,
            tail: kept.tail,
        }
    }

    /// What the next opener resumes from; leaves this replay empty.
    fn keep(&mut self) -> Kept {
        Kept {
            chain: self.evm.take_state(),
            transactions: self.transactions,
            logs: std::mem::take(&mut self.logs),
            read: self.read,
            tail: std::mem::take(&mut self.tail),
        }
    }

    /// Replays what `journal` holds past the state, from its start if it is not the journal
    /// the state was replayed from. Called with the cross-process lock held.
    fn catch_up(mut self, journal: &mut File, path: &Path) -> Result<Replay, StoreError> {
        let io = |source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        };
        let len = journal.metadata().map_err(io)?.len();
        if len < self.read || self.tail_differs(journal).map_err(io)? {
            self = Replay::empty();
        }
        journal.seek(SeekFrom::Start(self.read)).map_err(io)?;
        let mut reader = BufReader::new(&*journal);
        let mut line = String::new();
        loop {
            line.clear();
            let count = reader.read_line(&mut line).map_err(io)?;
            if !line.ends_with('\n') {
                break;
            }
            let entry: Entry =
                serde_json::from_str(line.trim_end()).map_err(|e| StoreError::Damaged {
                    path: path.to_path_buf(),
                    line: self.transactions as usize + 1,
                    why: e.to_string(),
                })?;
            // The outcome is the one the transaction had when it was journaled, reverted ones
            // included (they were journaled too: they still move the sender's nonce).
            let _ = self.apply(entry, line.trim_end().as_bytes());
            self.read += count as u64;
            self.remember_tail(line.as_bytes());
        }
        if len > self.read {
            // A last line without its newline is an append cut short (a full disk, a power
            // cut): its transaction was never acknowledged, so it goes, and the next one is
            // written where it began.
            journal.set_len(self.read).map_err(io)?;
        }
        Ok(self)
    }

    /// Runs the journaled transaction `entry` (its journal line `line`) on the state.
    fn apply(&mut self, entry: Entry, line: &[u8]) -> Result<Receipt, ChainError> {
        self.evm.set_timestamp(entry.at);
        let outcome = match entry.to {
            Some(to) => self.evm.transact(entry.from, to, entry.data),
            None => self.evm.deploy(entry.from, entry.data),
        };
        self.transactions += 1;
        keep_logs(&mut self.logs, self.transactions, line, &outcome);
        outcome
    }

    fn tail_differs(&self, journal: &mut File) -> std::io::Result<bool> {
        if self.read == 0 {
            return Ok(false);
        }
        let mut bytes = vec![0; self.tail.len()];
        journal.seek(SeekFrom::Start(self.read - self.tail.len() as u64))?;
        journal.read_exact(&mut bytes)?;
        Ok(bytes != self.tail)
    }

    fn remember_tail(&mut self, written: &[u8]) {
        self.tail.extend_from_slice(written);
        let excess = self.tail.len().saturating_sub(TAIL);
        self.tail.drain(..excess);
    }
}

impl PersistentEvm {
    /// Opens (or creates) the chain in `dir`, replaying what its journal gained since this
    /// process last held it (all of it the first time).
    pub fn open(dir: &Path) -> Result<PersistentEvm, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(JOURNAL);
        // A node serving from the same data directory opens the chain for each operation and
        // lets it go after: wait for it a little rather than refuse at once.
        let deadline = Instant::now() + LOCK_PATIENCE;
        let slot = Slot::of(&path);
        let kept = slot
            .hold(deadline)
            .ok_or_else(|| StoreError::Busy(dir.to_path_buf()))?;
        match lock_and_replay(dir, &path, kept, deadline) {
            Ok((lock, journal, replay)) => Ok(PersistentEvm {
                replay,
                diverged: false,
                slot,
                _lock: lock,
                journal,
                path,
            }),
            Err(error) => {
                slot.release(None);
                Err(error)
            }
        }
    }

    /// Transactions in the journal.
    pub fn transactions(&self) -> u64 {
        self.replay.transactions
    }

    pub fn timestamp(&self) -> u64 {
        self.replay.evm.timestamp()
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
        self.replay.evm.set_timestamp(at);
        let entry = Entry {
            at: self.replay.evm.timestamp(),
            from,
            to,
            data,
        };
        let mut line = serde_json::to_string(&entry).expect("entries serialise");
        line.push('\n');
        // Until the line is in the journal, the state in memory is ahead of it.
        self.diverged = true;
        let outcome = self.replay.apply(entry, line.trim_end().as_bytes());
        let io = |source| StoreError::Io {
            path: self.path.clone(),
            source,
        };
        self.journal.write_all(line.as_bytes()).map_err(io)?;
        self.journal.sync_data().map_err(io)?;
        self.replay.read += line.len() as u64;
        self.replay.remember_tail(line.as_bytes());
        self.diverged = false;
        Ok(outcome)
    }

    /// The logs `address` emitted with first topic `topic` in transactions `from..=to`.
    pub fn logs(&self, address: Address, topic: B256, from: u64, to: u64) -> Vec<ChainLog> {
        let logs = &self.replay.logs;
        let start = logs.partition_point(|(_, log)| log.block < from);
        logs[start..]
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
        self.replay.evm.call(Address::ZERO, to, data)
    }

    /// Whether `address` holds code.
    pub fn has_code(&mut self, address: Address) -> bool {
        self.replay.evm.has_code(address)
    }
}

/// Takes the cross-process lock on the chain in `dir` (waiting until `deadline`) and brings
/// `kept` up to its journal at `path`.
fn lock_and_replay(
    dir: &Path,
    path: &Path,
    kept: Option<Kept>,
    deadline: Instant,
) -> Result<(File, File, Replay), StoreError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::Io { path, source }
    };
    let lock_path = dir.join("chain.lock");
    let lock = File::create(&lock_path).map_err(io(&lock_path))?;
    loop {
        match lock.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Busy(dir.to_path_buf()));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&lock_path)(e)),
        }
    }
    let mut journal = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(path)
        .map_err(io(path))?;
    let replay = kept
        .map_or_else(Replay::empty, Replay::resume)
        .catch_up(&mut journal, path)?;
    Ok((lock, journal, replay))
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
