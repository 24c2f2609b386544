//! Contract wallets' sign-in signatures (ERC-1271), checked on the JSON-RPC chains this node is
//! configured with (`caravan chain add`): a sign-in message names its chain id, and the wallet's
//! contract on that chain says whether it accepts the signature.

use caravan_core::{Address, Hash32};
use caravan_node::sessions::ContractWallets;

/// The configured JSON-RPC chains, by chain id, reached through one HTTP client.
pub struct ChainWallets {
    chains: Vec<(u64, String)>,
    http: reqwest::Client,
}

impl ChainWallets {
    /// Checks on `chains` (chain id and endpoint), through `http` (which carries the
    /// operator's trusted authorities and timeouts).
    pub fn new(chains: Vec<(u64, String)>, http: reqwest::Client) -> ChainWallets {
        ChainWallets { chains, http }
    }
}

impl ContractWallets for ChainWallets {
    fn accepts(
        &self,
        chain_id: u64,
        wallet: &Address,
        digest: &Hash32,
        signature: &[u8],
    ) -> Option<Result<bool, String>> {
        let (_, url) = self.chains.iter().find(|(id, _)| *id == chain_id)?;
        Some(caravan_chain::rpc::contract_accepts(
            url,
            self.http.clone(),
            alloy_primitives::Address::from(wallet.0),
            alloy_primitives::B256::from(digest.0),
            signature,
        ))
    }
}
