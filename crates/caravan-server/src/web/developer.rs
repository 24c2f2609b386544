//! The app developer's page: the prepaid balance calls spend (and where to deposit on chain),
//! what calls spent per day and per model (a chart drawn here as SVG, and the same figures as
//! tables), the account's API keys, which the wallet issues and revokes by signing the EIP-712 requests
//! of `/v1/keys` (the page never holds a signing key), and snippets for the `openai` clients
//! and curl pointed at this node.

use std::fmt::Write as _;
use std::sync::Arc;

use askama::Template;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use caravan_core::Address;
use caravan_core::calendar::{utc_date, utc_minute};
use caravan_core::hash::hex_lower;
use caravan_node::Node;
use caravan_node::gateway::Gateway;
use caravan_node::gateway::usage::TokenUsage;
use caravan_node::keys::Scope;
use caravan_store::now_ms;
use serde::Deserialize;
use serde_json::{Value, json};

use super::chart::{Frame, escape};
use super::page::{Chrome, PageError, Viewer, render};
use crate::error::{ApiError, blocking};
use crate::gateway::models::DEFAULT_USAGE_DAYS;

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

/// One token's spending over the chosen days.
pub struct SpendView {
    pub symbol: String,
    pub total: String,
    pub calls: u64,
    /// The bar chart of spending per day, as SVG.
    pub chart: String,
    pub models: Vec<ModelSpendRow>,
    /// Days with calls, newest first.
    pub days: Vec<DaySpendRow>,
}

pub struct ModelSpendRow {
    pub name: String,
    pub asset: String,
    pub kind: &'static str,
    pub calls: u64,
    pub uses: u64,
    pub amount: String,
}

pub struct DaySpendRow {
    pub date: String,
    pub calls: u64,
    pub amount: String,
}

/// A choice of how many days the spend section covers.
pub struct DaysChoice {
    pub days: u32,
    pub current: bool,
}

/// The spans the page offers; `?days=` takes any other from 1 to a year too.
const DAYS_CHOICES: [u32; 3] = [7, 30, 90];

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
    /// How many days the spend section covers, and the other spans offered.
    days: u32,
    days_choices: Vec<DaysChoice>,
    spending: Vec<SpendView>,
    keys: Vec<KeyRow>,
    vaults: Vec<VaultRow>,
    /// Some chain's vault is reachable from a wallet.
    can_deposit: bool,
    tokens: Vec<TokenChoice>,
    scopes: Vec<ScopeChoice>,
    /// The model the snippets call (`MODEL` when the node serves none) and whether it is a
    /// sentence encoder, called at `/embeddings` rather than `/chat/completions`.
    snippet_model: String,
    snippet_embeds: bool,
}

#[derive(Deserialize)]
pub struct DeveloperQuery {
    days: Option<u32>,
}

/// `GET /developer?days=N` (30 days of spending unless it says).
pub async fn developer_page(
    State(node): State<Arc<Node>>,
    viewer: Viewer,
    Query(query): Query<DeveloperQuery>,
) -> Result<Response, PageError> {
    let account = viewer.account;
    let days = query.days.unwrap_or(DEFAULT_USAGE_DAYS);
    let worker = Arc::clone(&node);
    let (balances, usage, keys, vaults) = blocking(move || {
        let balances = worker.gateway().balances(&account);
        let usage = worker.gateway().usage(account, days, now_ms())?;
        let keys = worker.keys().of(&account);
        let vaults = match worker.settlement() {
            Some(chains) => chains.list()?,
            None => Vec::new(),
        };
        Ok::<_, ApiError>((balances, usage, keys, vaults))
    })
    .await?;
    let origin = node.sessions().origin();
    let (snippet_model, snippet_embeds) = snippet_model(node.gateway());
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
        days,
        days_choices: DAYS_CHOICES
            .iter()
            .map(|&choice| DaysChoice {
                days: choice,
                current: choice == days,
            })
            .collect(),
        spending: usage.tokens.iter().map(spend_view).collect(),
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
        snippet_model,
        snippet_embeds,
    }))
}

/// What the snippets call, so they run as pasted: the first chat model or agent the node
/// serves, else its first sentence encoder, else the placeholder `MODEL` at the chat route.
fn snippet_model(gateway: &Gateway) -> (String, bool) {
    let models = gateway.models();
    let at = |route: &str| {
        models
            .iter()
            .find(|model| gateway.endpoint(model) == route)
            .map(|model| model.name.clone())
    };
    match (at("/v1/chat/completions"), at("/v1/embeddings")) {
        (Some(chat), _) => (chat, false),
        (None, Some(encoder)) => (encoder, true),
        (None, None) => ("MODEL".to_owned(), false),
    }
}

fn spend_view(usage: &TokenUsage) -> SpendView {
    let token = &usage.token;
    SpendView {
        symbol: token.symbol.clone(),
        total: token.format(usage.amount),
        calls: usage.calls,
        chart: spend_chart(usage),
        models: usage
            .per_model
            .iter()
            .map(|model| ModelSpendRow {
                name: model.name.clone(),
                asset: model.asset.to_string(),
                kind: model.kind.name(),
                calls: model.calls,
                uses: model.uses,
                amount: token.format(model.amount),
            })
            .collect(),
        days: usage
            .per_day
            .iter()
            .rev()
            .filter(|day| day.calls > 0 || day.amount > 0)
            .map(|day| DaySpendRow {
                date: utc_date(day.day),
                calls: day.calls,
                amount: token.format(day.amount),
            })
            .collect(),
    }
}

/// One token's spending per day as bars, oldest on the left, today on the right, with the
/// scale's top value and the first, middle and last dates named. The tables beside it have
/// every figure.
fn spend_chart(usage: &TokenUsage) -> String {
    let token = &usage.token;
    let top = usage
        .per_day
        .iter()
        .map(|day| day.amount)
        .max()
        .unwrap_or(0)
        .max(1);
    let frame = Frame {
        width: 640.0,
        height: 220.0,
        left: 28.0,
        bottom: 32.0,
        top: 32.0,
    };
    let count = usage.per_day.len().max(1);
    let (slot, plot, base, left) = (frame.slot(count), frame.plot(), frame.base(), frame.left);
    let bar = (slot * 0.7).clamp(1.0, 40.0);
    let symbol = &token.symbol;
    let mut svg = frame.open(
        &format!("spend-{symbol}"),
        &format!("Spending per day in {symbol}"),
        "One bar per UTC day, oldest on the left; the tables below give every figure.",
        &token.format(top),
    );
    let named = [0, count / 2, count - 1];
    for (i, day) in usage.per_day.iter().enumerate() {
        let x = left + slot * i as f64 + (slot - bar) / 2.0;
        let h = plot * day.amount as f64 / top as f64;
        let date = utc_date(day.day);
        let _ = write!(
            svg,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{bar:.1}" height="{h:.1}" class="spend"><title>{date}: {amount} in {calls} call(s)</title></rect>"#,
            y = base - h,
            amount = escape(&token.format(day.amount)),
            calls = day.calls,
        );
        if named.contains(&i) && (i == 0 || i == count - 1 || count > 6) {
            let anchor = match i {
                0 => "start",
                i if i == count - 1 => "end",
                _ => "middle",
            };
            let cx = match anchor {
                "start" => x,
                "end" => x + bar,
                _ => x + bar / 2.0,
            };
            let _ = write!(
                svg,
                r#"<text x="{cx:.1}" y="{ly}" class="tick" text-anchor="{anchor}">{date}</text>"#,
                ly = frame.height - 10.0,
            );
        }
    }
    svg.push_str("</svg>");
    svg
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
