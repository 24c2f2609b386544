//! The app developer's page: the prepaid balance calls spend (and where to deposit on chain),
//! the account's API keys, which the wallet issues and revokes by signing the EIP-712 requests
//! of `/v1/keys` (the page never holds a signing key), and snippets for the `openai` clients
//! and curl pointed at this node.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use caravan_node::Node;
use caravan_node::keys::Scope;

use super::earnings::utc_minute;
use super::page::{Chrome, PageError, Viewer, render};
use crate::error::blocking;

pub struct BalanceRow {
    pub symbol: String,
    pub available: String,
    pub held: String,
    pub deposits: usize,
}

pub struct KeyRow {
    pub id: String,
    pub name: String,
    pub scopes: String,
    pub created: String,
    pub expires: String,
}

pub struct VaultRow {
    pub chain: String,
    pub chain_id: u64,
    pub vault: String,
}

pub struct ScopeChoice {
    pub name: &'static str,
    pub checked: bool,
}

#[derive(Template)]
#[template(path = "developer.html")]
struct DeveloperPage {
    chrome: Chrome,
    account: String,
    node: String,
    base_url: String,
    balances: Vec<BalanceRow>,
    keys: Vec<KeyRow>,
    vaults: Vec<VaultRow>,
    scopes: Vec<ScopeChoice>,
}

/// `GET /developer`.
pub async fn developer_page(
    State(node): State<Arc<Node>>,
    viewer: Viewer,
) -> Result<Response, PageError> {
    let account = viewer.account;
    let worker = Arc::clone(&node);
    let (balances, keys, vaults) = blocking(move || {
        let balances = worker.gateway().balances(&account);
        let keys = worker.keys().of(&account);
        let vaults = match worker.settlement() {
            Some(chains) => chains.list()?,
            None => Vec::new(),
        };
        Ok::<_, caravan_node::settlement::ChainsError>((balances, keys, vaults))
    })
    .await?;
    let origin = node.sessions().origin();
    Ok(render(&DeveloperPage {
        chrome: Chrome::of(&viewer, "developer"),
        account: account.to_checksum(),
        node: node.keys().node().to_checksum(),
        base_url: format!("{}://{}/v1", origin.scheme(), origin.authority()),
        balances: balances
            .iter()
            .map(|b| BalanceRow {
                symbol: b.token.symbol.clone(),
                available: b.token.format(b.available),
                held: b.token.format(b.held),
                deposits: b.deposits.len(),
            })
            .collect(),
        keys: keys
            .iter()
            .map(|k| KeyRow {
                id: k.id.clone(),
                name: if k.name.is_empty() {
                    "(no name)".to_owned()
                } else {
                    k.name.clone()
                },
                scopes: k
                    .scopes
                    .iter()
                    .map(|s| s.name())
                    .collect::<Vec<_>>()
                    .join(", "),
                created: utc_minute(k.created_ms),
                expires: k.expires_ms.map_or_else(|| "never".to_owned(), utc_minute),
            })
            .collect(),
        vaults: vaults
            .iter()
            .filter_map(|info| {
                let vault = info.deployment.as_ref()?.vault?;
                Some(VaultRow {
                    chain: info.chain.name.clone(),
                    chain_id: info.chain.chain_id,
                    vault: caravan_core::Address(vault.into_array()).to_checksum(),
                })
            })
            .collect(),
        scopes: Scope::ALL
            .iter()
            .map(|scope| ScopeChoice {
                name: scope.name(),
                checked: Scope::GATEWAY.contains(scope),
            })
            .collect(),
    }))
}
