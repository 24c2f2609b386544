//! Any EVM chain behind a JSON-RPC endpoint, with the node's key signing its transactions.
//! Every call blocks until the node answers; a transaction returns only once its receipt is in.

use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use alloy_primitives::{Address, Bytes};

use crate::chain::{Chain, ChainFault};
use crate::embedded::{ChainError, Receipt};

/// A connected JSON-RPC chain.
pub struct RpcChain {
    runtime: tokio::runtime::Runtime,
    provider: DynProvider,
    sender: Address,
    url: String,
}

impl RpcChain {
    /// Connects to `url`, checks that it serves `chain_id`, and signs with `key` (hex private
    /// key). The key never appears in errors.
    pub fn connect(url: &str, chain_id: u64, key: &str) -> Result<RpcChain, ChainFault> {
        let signer: PrivateKeySigner = key.trim().parse().map_err(|_| {
            ChainFault::Rpc("the signer key is not a 32-byte hex private key".into())
        })?;
        let sender = signer.address();
        let endpoint = url
            .parse()
            .map_err(|e| ChainFault::Rpc(format!("{url:?} is not a URL: {e}")))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ChainFault::Rpc(format!("cannot start the RPC runtime: {e}")))?;
        let provider = ProviderBuilder::new()
            .wallet(EthereumWallet::from(signer))
            .connect_http(endpoint)
            .erased();
        let served = runtime
            .block_on(provider.get_chain_id())
            .map_err(|e| ChainFault::Rpc(format!("cannot reach {url}: {e}")))?;
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
        })
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
        let outcome = self.runtime.block_on(async move {
            match provider.send_transaction(request).await {
                Ok(pending) => pending
                    .get_receipt()
                    .await
                    .map(Ok)
                    .map_err(|e| e.to_string()),
                // A revert shows up when the node estimates gas: keep its data to decode.
                Err(e) => match e.as_error_resp().and_then(|r| r.as_revert_data()) {
                    Some(data) => Ok(Err(data)),
                    None => Err(e.to_string()),
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
            .map_err(|e| ChainFault::Call(format!("at {}: {e}", self.url)))
    }

    fn has_code(&mut self, address: Address) -> Result<bool, ChainFault> {
        let provider = self.provider.clone();
        self.runtime
            .block_on(async move { provider.get_code_at(address).await })
            .map(|code| !code.is_empty())
            .map_err(|e| self.fault("reading code", e))
    }
}
