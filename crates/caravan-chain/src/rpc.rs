//! Any EVM chain behind a JSON-RPC endpoint, with the node's key signing its transactions.
//! Every call blocks until the node answers; a transaction returns only once it has the chain's
//! configured number of confirmations and is still in the chain after them: a transaction a
//! reorganisation removed is an error, so nothing is ever taken as done that the chain dropped.
//! Endpoints may be `http://` or `https://`; HTTPS trusts the system's certificate authorities
//! plus any the caller's HTTP client was given.
//!
//! A transaction is never left stuck behind its fees. It takes the account's next *mined*
//! nonce, so one a crashed run left waiting in the mempool is replaced rather than queued
//! behind; and while it goes unmined it is sent again every [`RESEND_AFTER`] at the same nonce
//! with fees raised by a quarter (or to the chain's current estimate, if higher), at most
//! [`MAX_FEE_RAISES`] times. Whichever of those sends is mined is the transaction's receipt;
//! the rest can never be, as they share its nonce.

use std::sync::OnceLock;
use std::time::Duration;

use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::{Filter, TransactionReceipt, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy_primitives::{Address, B256, Bytes};
use caravan_core::report::{certificate_hint, with_causes};

use crate::chain::{Chain, ChainFault, ChainLog};
use crate::embedded::{ChainError, Receipt};

/// The runtime every JSON-RPC request runs on: one for the process, never dropped. The HTTP
/// client keeps its connections in a pool, each driven by a task on the runtime that opened it;
/// with a runtime per chain opened, a connection left in the pool by a chain since dropped would
/// fail the next request that took it ("dispatch task is gone"), as a node that opens a chain
/// for every deposit round and every post would see.
fn rpc_runtime() -> Result<&'static tokio::runtime::Runtime, String> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("caravan-rpc")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the RPC runtime: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// A connected JSON-RPC chain.
pub struct RpcChain {
    runtime: &'static tokio::runtime::Runtime,
    provider: DynProvider,
    sender: Address,
    url: String,
    confirmations: u64,
    resend_after: Duration,
}

/// How long a transaction may take to reach its confirmations before the command gives up
/// (the transaction may still land; the chain, not this process, says whether it did).
const CONFIRMATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);
/// How often the chain's head is read while a transaction waits for its confirmations.
const CONFIRMATION_POLL: std::time::Duration = std::time::Duration::from_millis(250);
/// How long a sent transaction may stay unmined before it is sent again with higher fees.
pub const RESEND_AFTER: Duration = Duration::from_secs(90);
/// How many times one transaction's fees are raised, a quarter each time (nodes accept a
/// replacement only for at least a tenth more): at most about 3.8 times the first estimate, so
/// a fee spike cannot run away with the signer's funds. After the last raise it waits.
pub const MAX_FEE_RAISES: u32 = 6;

impl RpcChain {
    /// Connects to `url` through `http` (`reqwest::Client::new()` trusts the system's
    /// certificate authorities; build one with extra roots for an endpoint behind a private
    /// one), checks that it serves `chain_id`, and signs with `key` (hex private key). The key
    /// never appears in errors.
    pub fn connect(
        url: &str,
        chain_id: u64,
        key: &str,
        http: reqwest::Client,
    ) -> Result<RpcChain, ChainFault> {
        let signer: PrivateKeySigner = key.trim().parse().map_err(|_| {
            ChainFault::Rpc("the signer key is not a 32-byte hex private key".into())
        })?;
        let sender = signer.address();
        let endpoint: reqwest::Url = url
            .parse()
            .map_err(|e| ChainFault::Rpc(format!("{url:?} is not a URL: {e}")))?;
        if !matches!(endpoint.scheme(), "http" | "https") {
            return Err(ChainFault::Rpc(format!(
                "{url} is not an HTTP endpoint: give the chain's JSON-RPC URL, starting with https:// (or http:// for a local node)"
            )));
        }
        let runtime = rpc_runtime().map_err(ChainFault::Rpc)?;
        // Nonces and fees are set on each transaction by `send_until_mined`, from the node
        // rather than a local counter: after a reorganisation drops a transaction, a counter
        // would run ahead and the next transaction would wait forever behind the gap.
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .with_gas_estimation()
            .fetch_chain_id()
            .wallet(EthereumWallet::from(signer))
            .connect_reqwest(http, endpoint)
            .erased();
        let served = runtime.block_on(provider.get_chain_id()).map_err(|e| {
            let causes = with_causes(&e);
            ChainFault::Rpc(format!(
                "cannot reach {url}: {causes}{}",
                certificate_hint(&causes)
            ))
        })?;
        if served != chain_id {
            return Err(ChainFault::Rpc(format!(
                "{url} serves chain id {served}, not the configured {chain_id}; check the URL and chain id"
            )));
        }
        Ok(RpcChain {
            runtime,
            provider,
            sender,
            url: url.to_owned(),
            confirmations: 1,
            resend_after: RESEND_AFTER,
        })
    }

    /// Sends a transaction again with higher fees once it has gone `wait` without being mined
    /// (instead of [`RESEND_AFTER`]).
    pub fn with_resend_after(mut self, wait: Duration) -> RpcChain {
        self.resend_after = wait;
        self
    }

    /// Waits for `confirmations` blocks (the one holding a transaction counts as the first)
    /// before taking a transaction as done. At least 1.
    pub fn with_confirmations(mut self, confirmations: u64) -> RpcChain {
        self.confirmations = confirmations.max(1);
        self
    }

    fn fault(&self, what: &str, error: impl std::fmt::Display) -> ChainFault {
        ChainFault::Rpc(format!("{what} at {}: {error}", self.url))
    }
}

impl Chain for RpcChain {
    fn sender(&self) -> Address {
        self.sender
    }

    fn send(
        &mut self,
        _at: u64,
        to: Option<Address>,
        data: Bytes,
    ) -> Result<Result<Receipt, ChainError>, ChainFault> {
        let request = match to {
            Some(to) => TransactionRequest::default().with_to(to).with_input(data),
            None => TransactionRequest::default().with_deploy_code(data),
        }
        .with_from(self.sender);
        let provider = self.provider.clone();
        let confirmations = self.confirmations;
        let resend_after = self.resend_after;
        let outcome = self.runtime.block_on(async move {
            match send_until_mined(&provider, request, resend_after).await? {
                Ok(seen) => {
                    let included = seen.block_number.unwrap_or_default();
                    let deadline = tokio::time::Instant::now() + CONFIRMATION_TIMEOUT;
                    loop {
                        let head = provider
                            .get_block_number()
                            .await
                            .map_err(|e| with_causes(&e))?;
                        if head + 1 >= included + confirmations {
                            break;
                        }
                        if tokio::time::Instant::now() >= deadline {
                            return Err(format!(
                                "transaction {} is in block {included} but the chain has not reached {confirmations} confirmations in {} s; the chain will say later whether it stays",
                                seen.transaction_hash,
                                CONFIRMATION_TIMEOUT.as_secs()
                            ));
                        }
                        tokio::time::sleep(CONFIRMATION_POLL).await;
                    }
                    // The block that held it may have been replaced while we waited: ask
                    // again, and take the receipt the chain holds now.
                    match provider
                        .get_transaction_receipt(seen.transaction_hash)
                        .await
                    {
                        Ok(Some(now)) => Ok(Ok(now)),
                        Ok(None) => Err(format!(
                            "transaction {} was in block {included} but a reorganisation removed it; nothing was done, run the command again",
                            seen.transaction_hash
                        )),
                        Err(e) => Err(with_causes(&e)),
                    }
                }
                Err(revert) => Ok(Err(revert)),
            }
        });
        match outcome {
            Ok(Ok(receipt)) if receipt.status() => Ok(Ok(Receipt {
                gas_used: receipt.gas_used,
                output: Bytes::new(),
                logs: Vec::new(),
                created: receipt.contract_address,
            })),
            Ok(Ok(receipt)) => Ok(Err(ChainError::Reverted {
                data: Bytes::new(),
                gas_used: receipt.gas_used,
            })),
            Ok(Err(data)) => Ok(Err(ChainError::Reverted { data, gas_used: 0 })),
            Err(e) => Err(self.fault("sending a transaction", e)),
        }
    }

    fn call(&mut self, to: Address, data: Bytes) -> Result<Bytes, ChainFault> {
        let request = TransactionRequest::default().with_to(to).with_input(data);
        let provider = self.provider.clone();
        self.runtime
            .block_on(async move { provider.call(request).await })
            .map_err(|e| ChainFault::Call(format!("at {}: {}", self.url, with_causes(&e))))
    }

    fn has_code(&mut self, address: Address) -> Result<bool, ChainFault> {
        let provider = self.provider.clone();
        self.runtime
            .block_on(async move { provider.get_code_at(address).await })
            .map(|code| !code.is_empty())
            .map_err(|e| self.fault("reading code", with_causes(&e)))
    }

    fn head(&mut self) -> Result<u64, ChainFault> {
        let provider = self.provider.clone();
        self.runtime
            .block_on(async move { provider.get_block_number().await })
            .map_err(|e| self.fault("reading the head block", with_causes(&e)))
    }

    fn logs(
        &mut self,
        address: Address,
        topic: B256,
        from: u64,
        to: u64,
    ) -> Result<Vec<ChainLog>, ChainFault> {
        let filter = Filter::new()
            .address(address)
            .event_signature(topic)
            .from_block(from)
            .to_block(to);
        let provider = self.provider.clone();
        let logs = self
            .runtime
            .block_on(async move { provider.get_logs(&filter).await })
            .map_err(|e| self.fault("reading logs", with_causes(&e)))?;
        logs.into_iter()
            .filter(|log| !log.removed)
            .map(
                |log| match (log.block_number, log.transaction_hash, log.log_index) {
                    (Some(block), Some(tx), Some(log_index)) => Ok(ChainLog {
                        block,
                        tx,
                        log_index,
                        data: log.inner.data,
                    }),
                    _ => Err(self.fault(
                        "reading logs",
                        "the node answered a log without its block, transaction or index",
                    )),
                },
            )
            .collect()
    }
}

/// What a transaction offers to pay per gas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fees {
    Eip1559 {
        max_fee: u128,
        priority: u128,
    },
    /// For a chain without EIP-1559.
    Legacy {
        gas_price: u128,
    },
}

impl Fees {
    /// What the chain suggests now.
    async fn current(provider: &DynProvider) -> Result<Fees, String> {
        match provider.estimate_eip1559_fees().await {
            Ok(estimate) => Ok(Fees::Eip1559 {
                max_fee: estimate.max_fee_per_gas,
                priority: estimate.max_priority_fee_per_gas,
            }),
            Err(_) => Ok(Fees::Legacy {
                gas_price: provider
                    .get_gas_price()
                    .await
                    .map_err(|e| with_causes(&e))?,
            }),
        }
    }

    /// A quarter more than `self`, or `now` where that is higher: enough for any node to take
    /// it as a replacement, and at least what the chain currently asks.
    fn raised(self, now: Fees) -> Fees {
        let raise = |old: u128, now: u128| (old.saturating_mul(5) / 4 + 1).max(now);
        match (self, now) {
            (
                Fees::Eip1559 { max_fee, priority },
                Fees::Eip1559 {
                    max_fee: now_max,
                    priority: now_priority,
                },
            ) => {
                let priority = raise(priority, now_priority);
                Fees::Eip1559 {
                    max_fee: raise(max_fee, now_max).max(priority),
                    priority,
                }
            }
            (Fees::Legacy { gas_price }, Fees::Legacy { gas_price: now }) => Fees::Legacy {
                gas_price: raise(gas_price, now),
            },
            (old, _) => old.raised(old),
        }
    }

    fn apply(self, request: TransactionRequest) -> TransactionRequest {
        match self {
            Fees::Eip1559 { max_fee, priority } => request
                .with_max_fee_per_gas(max_fee)
                .with_max_priority_fee_per_gas(priority),
            Fees::Legacy { gas_price } => request.with_gas_price(gas_price),
        }
    }
}

/// Why a node refused to take a transaction into its mempool, as far as resending cares.
enum Refusal {
    /// Its fees are too low: for a replacement, or for the chain right now.
    FeesTooLow,
    /// Its nonce was used meanwhile.
    NonceUsed,
}

fn refusal(message: &str) -> Option<Refusal> {
    let message = message.to_ascii_lowercase();
    if message.contains("nonce too low") {
        Some(Refusal::NonceUsed)
    } else if ["underpriced", "base fee", "fee cap", "fee too low"]
        .iter()
        .any(|sign| message.contains(sign))
    {
        Some(Refusal::FeesTooLow)
    } else {
        None
    }
}

/// The account's next nonce as of the latest block: a transaction still waiting in the mempool
/// at that nonce (from a run that stopped before it was mined) is replaced, not queued behind.
async fn mined_nonce(provider: &DynProvider, sender: Address) -> Result<u64, String> {
    provider
        .get_transaction_count(sender)
        .latest()
        .await
        .map_err(|e| with_causes(&e))
}

/// The receipt of whichever of `sent` is mined, if one is.
async fn any_receipt(
    provider: &DynProvider,
    sent: &[B256],
) -> Result<Option<TransactionReceipt>, String> {
    for hash in sent {
        if let Some(receipt) = provider
            .get_transaction_receipt(*hash)
            .await
            .map_err(|e| with_causes(&e))?
        {
            return Ok(Some(receipt));
        }
    }
    Ok(None)
}

/// Sends `request` and returns its receipt once one of its sends is mined (the inner error is
/// a revert's data, seen when the node estimates gas), resending with raised fees while it
/// waits (see the module's description).
async fn send_until_mined(
    provider: &DynProvider,
    request: TransactionRequest,
    resend_after: Duration,
) -> Result<Result<TransactionReceipt, Bytes>, String> {
    let sender = request.from.unwrap_or_default();
    let deadline = tokio::time::Instant::now() + CONFIRMATION_TIMEOUT;
    let mut nonce = mined_nonce(provider, sender).await?;
    let mut fees = Fees::current(provider).await?;
    let mut raises = 0;
    let mut sent: Vec<B256> = Vec::new();
    loop {
        let attempt = fees.apply(request.clone().with_nonce(nonce));
        match provider.send_transaction(attempt).await {
            Ok(pending) => sent.push(*pending.tx_hash()),
            Err(e) => {
                // A revert shows up when the node estimates gas: keep its data to decode.
                if let Some(data) = e.as_error_resp().and_then(|r| r.as_revert_data()) {
                    return Ok(Err(data));
                }
                let causes = with_causes(&e);
                match refusal(&causes) {
                    Some(Refusal::FeesTooLow) if raises < MAX_FEE_RAISES => {
                        fees = fees.raised(Fees::current(provider).await?);
                        raises += 1;
                        continue;
                    }
                    Some(Refusal::NonceUsed) if sent.is_empty() => {
                        nonce = mined_nonce(provider, sender).await?;
                        continue;
                    }
                    // One of ours may be the transaction that used the nonce: wait for it.
                    Some(Refusal::NonceUsed) => {}
                    // An earlier send at lower fees is still waiting: keep waiting for it.
                    Some(Refusal::FeesTooLow) if !sent.is_empty() => {}
                    Some(Refusal::FeesTooLow) => {
                        return Err(format!(
                            "the node refused the transaction's fees even raised {MAX_FEE_RAISES} times ({causes}); wait for fees to calm down, then run the command again"
                        ));
                    }
                    None => return Err(causes),
                }
            }
        }
        let resend_at = tokio::time::Instant::now() + resend_after;
        loop {
            if let Some(receipt) = any_receipt(provider, &sent).await? {
                return Ok(Ok(receipt));
            }
            let mined = mined_nonce(provider, sender).await?;
            if mined > nonce {
                // Mined between the two reads, or another transaction of this key used the
                // nonce (one a stopped run left behind): then this one was never done.
                if let Some(receipt) = any_receipt(provider, &sent).await? {
                    return Ok(Ok(receipt));
                }
                nonce = mined;
                sent.clear();
                break;
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(format!(
                    "no transaction sent at nonce {nonce} was mined in {} s (sent as {}); the chain will say later whether one lands, and running the command again replaces them",
                    CONFIRMATION_TIMEOUT.as_secs(),
                    sent.iter()
                        .map(|hash| hash.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            if now >= resend_at && raises < MAX_FEE_RAISES {
                fees = fees.raised(Fees::current(provider).await?);
                raises += 1;
                break;
            }
            tokio::time::sleep(CONFIRMATION_POLL).await;
        }
    }
}

/// Asks the contract at `wallet`, on the chain behind `url`, whether it accepts `signature` over
/// `digest` (ERC-1271 `isValidSignature` returning its magic value). An account without code, a
/// revert or any other answer is `false`; only failing to reach the chain is an error (which
/// names the endpoint and why). Read-only: no key, no transaction.
pub fn contract_accepts(
    url: &str,
    http: reqwest::Client,
    wallet: Address,
    digest: B256,
    signature: &[u8],
) -> Result<bool, String> {
    use alloy_sol_types::SolCall;
    let endpoint: reqwest::Url = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let runtime = rpc_runtime()?;
    let provider = ProviderBuilder::new()
        .disable_recommended_fillers()
        .connect_reqwest(http, endpoint);
    let call = crate::contracts::IERC1271::isValidSignatureCall {
        hash: digest,
        signature: Bytes::copy_from_slice(signature),
    };
    let request = TransactionRequest::default()
        .to(wallet)
        .input(call.abi_encode().into());
    match runtime.block_on(async { provider.call(request).await }) {
        Ok(answer) => Ok(answer.len() >= 4 && answer[..4] == crate::contracts::ERC1271_MAGIC_VALUE),
        Err(alloy::transports::RpcError::ErrorResp(_)) => Ok(false),
        Err(error) => {
            let causes = with_causes(&error);
            Err(format!(
                "cannot reach {url}: {causes}{}",
                certificate_hint(&causes)
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raised_fees_are_a_quarter_higher_or_the_current_estimate() {
        let old = Fees::Eip1559 {
            max_fee: 40,
            priority: 8,
        };
        let calm = Fees::Eip1559 {
            max_fee: 30,
            priority: 2,
        };
        assert_eq!(
            old.raised(calm),
            Fees::Eip1559 {
                max_fee: 51,
                priority: 11
            }
        );
        // A spike: the estimate wins where it is higher, and the fee cap always covers the tip.
        let spike = Fees::Eip1559 {
            max_fee: 45,
            priority: 60,
        };
        assert_eq!(
            old.raised(spike),
            Fees::Eip1559 {
                max_fee: 60,
                priority: 60
            }
        );
        assert_eq!(
            Fees::Legacy { gas_price: 100 }.raised(Fees::Legacy { gas_price: 10 }),
            Fees::Legacy { gas_price: 126 }
        );
        // Every raise is over a tenth, which is what nodes ask of a replacement.
        let mut fees = Fees::Legacy { gas_price: 7 };
        for _ in 0..MAX_FEE_RAISES {
            let Fees::Legacy { gas_price: before } = fees else {
                unreachable!()
            };
            fees = fees.raised(Fees::Legacy { gas_price: 0 });
            let Fees::Legacy { gas_price: after } = fees else {
                unreachable!()
            };
            assert!(after * 10 > before * 11, "{before} → {after}");
        }
    }

    #[test]
    fn node_refusals_are_told_apart_by_their_words() {
        for message in [
            "replacement transaction underpriced",
            "server returned an error response: error code -32003: transaction underpriced",
            "max fee per gas less than block base fee",
            "Replacement transaction underpriced",
        ] {
            assert!(
                matches!(refusal(message), Some(Refusal::FeesTooLow)),
                "{message}"
            );
        }
        assert!(matches!(
            refusal("error code -32003: nonce too low"),
            Some(Refusal::NonceUsed)
        ));
        assert!(refusal("insufficient funds for gas * price + value").is_none());
    }
}
