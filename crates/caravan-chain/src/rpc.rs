//! Any EVM chain behind a JSON-RPC endpoint, with the node's key signing its transactions.
//! Every call blocks until the node answers; a transaction returns only once it has the chain's
//! configured number of confirmations and is still in the chain after them: a transaction a
//! reorganisation removed is an error, so nothing is ever taken as done that the chain dropped.
//! Endpoints may be `http://` or `https://`; HTTPS trusts the system's certificate authorities
//! plus any the caller's HTTP client was given.

use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use alloy_primitives::{Address, Bytes};
use caravan_core::report::{certificate_hint, with_causes};

use crate::chain::{Chain, ChainFault};
use crate::embedded::{ChainError, Receipt};

/// A connected JSON-RPC chain.
pub struct RpcChain {
    runtime: tokio::runtime::Runtime,
    provider: DynProvider,
    sender: Address,
    url: String,
    confirmations: u64,
}

/// How long a transaction may take to reach its confirmations before the command gives up
/// (the transaction may still land; the chain, not this process, says whether it did).
const CONFIRMATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);
/// How often the chain's head is read while a transaction waits for its confirmations.
const CONFIRMATION_POLL: std::time::Duration = std::time::Duration::from_millis(250);

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
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ChainFault::Rpc(format!("cannot start the RPC runtime: {e}")))?;
        // Nonces come from the node for every transaction rather than a local counter: after a
        // reorganisation drops a transaction, a counter would run ahead and the next
        // transaction would wait forever behind the gap.
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .with_gas_estimation()
            .with_simple_nonce_management()
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
        })
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
        let outcome = self.runtime.block_on(async move {
            match provider.send_transaction(request).await {
                Ok(pending) => {
                    let seen = pending
                        .with_timeout(Some(CONFIRMATION_TIMEOUT))
                        .get_receipt()
                        .await
                        .map_err(|e| with_causes(&e))?;
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
                // A revert shows up when the node estimates gas: keep its data to decode.
                Err(e) => match e.as_error_resp().and_then(|r| r.as_revert_data()) {
                    Some(data) => Ok(Err(data)),
                    None => Err(with_causes(&e)),
                },
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
}
