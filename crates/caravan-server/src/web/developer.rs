//! The app developer's page: the prepaid balance calls spend (and where to deposit on chain),
//! the account's API keys, which the wallet issues and revokes by signing the EIP-712 requests
//! of `/v1/keys` (the page never holds a signing key), and snippets for the `openai` clients
//! and curl pointed at this node.

use std::sync::Arc;

use askama::Template;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use caravan_core::Address;
use caravan_core::hash::hex_lower;
use caravan_node::Node;
use caravan_node::keys::Scope;
use serde::Deserialize;
use serde_json::{Value, json};

use super::earnings::utc_minute;
use super::page::{Chrome, PageError, Viewer, render};
use crate::error::{ApiError, blocking};

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
    /// A wallet can reach it (not the embedded chain inside the node).
    pub by_wallet: bool,
}

pub struct TokenChoice {
    pub address: String,
    pub symbol: String,
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
    /// Some chain's vault is reachable from a wallet.
    can_deposit: bool,
    tokens: Vec<TokenChoice>,
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
    let vaults: Vec<VaultRow> = vaults
        .iter()
        .filter_map(|info| {
            let vault = info.deployment.as_ref()?.vault?;
            Some(VaultRow {
                chain: info.chain.name.clone(),
                chain_id: info.chain.chain_id,
                vault: caravan_core::Address(vault.into_array()).to_checksum(),
                by_wallet: info.rpc.is_some(),
            })
        })
        .collect();
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
        can_deposit: vaults.iter().any(|v| v.by_wallet),
        vaults,
        tokens: node.journal().read(|j| {
            j.economy()
                .tokens()
                .values()
                .map(|t| TokenChoice {
                    address: t.address.to_checksum(),
                    symbol: t.symbol.clone(),
                })
                .collect()
        }),
        scopes: Scope::ALL
            .iter()
            .map(|scope| ScopeChoice {
                name: scope.name(),
                checked: Scope::GATEWAY.contains(scope),
            })
            .collect(),
    }))
}

#[derive(Deserialize)]
pub struct DepositQuery {
    chain_id: u64,
    token: Address,
    amount: String,
}

/// `GET /developer/deposit?chain_id=…&token=…&amount=…`: the approval and the deposit the
/// viewer's wallet sends to put `amount` into its own prepaid balance on that chain.
pub async fn deposit_calls(
    State(node): State<Arc<Node>>,
    viewer: Viewer,
    Query(query): Query<DepositQuery>,
) -> Result<Json<Value>, ApiError> {
    let token = node
        .journal()
        .read(|j| j.economy().tokens().get(&query.token).cloned())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_token",
                format!("token {} is not registered on this node", query.token),
            )
        })?;
    let chains = node.settlement().cloned().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "no_chains",
            "this node settles on no chain, so nothing can be deposited on one",
        )
    })?;
    let account = viewer.account;
    let calls =
        blocking(move || chains.deposit_calls(query.chain_id, &token, &query.amount, account))
            .await?;
    Ok(Json(json!({
        "chain_id": format!("0x{:x}", query.chain_id),
        "calls": calls.iter().map(|(to, data)| json!({
            "to": to.to_checksum(),
            "data": format!("0x{}", hex_lower(data)),
        })).collect::<Vec<_>>(),
    })))
}
