//! The earnings page: per epoch, the bounties a contributor earned and the royalties it was
//! paid (a chart drawn here as SVG, and the same figures as a table); each royalty traced to the
//! asset that paid it and the path its money took through the lineage; what each chain lets it
//! claim now, with the way to claim there; and the chain it is paid on from now on.
//!
//! A claim on a JSON-RPC chain is sent by the viewer's wallet, from the claim page's exact
//! contract call; the embedded development chain lives inside the node, where no wallet
//! reaches, so there the node submits the claim (anyone may; the money goes only to the
//! account in the leaf).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use caravan_core::calendar::utc_minute;
use caravan_core::hash::hex_lower;
use caravan_core::{Address, Amount, Role, Token};
use caravan_node::Node;
use caravan_node::earnings::{
    ChainClaims, ClaimCall, ClaimWay, EMBEDDED_CHAIN_ID, EPOCHS_SHOWN, Royalty, Statement,
    TokenClaim,
};
use serde::Deserialize;
use serde_json::json;

use super::chart::{Frame, escape};
use super::page::{Chrome, PageError, Viewer, render};
use crate::error::blocking;

#[derive(Deserialize)]
pub struct EarningsQuery {
    /// Show the closed epochs up to this one (older pages).
    #[serde(default)]
    through: Option<u64>,
    /// The chain id of a claim the node just submitted.
    #[serde(default)]
    claimed: Option<u64>,
    /// The payout chain was just changed.
    #[serde(default)]
    chosen: Option<u8>,
}

/// One row of the table: one token in one epoch.
pub struct EpochRow {
    pub epoch: String,
    pub closed: String,
    pub bounties: String,
    pub judgments: u32,
    pub royalties: String,
    pub total: String,
}

/// One step of a royalty's path as words: an asset (a link to nothing yet, its name) or an edge.
pub struct Step {
    pub text: String,
    pub edge: bool,
}

pub struct PathView {
    pub steps: Vec<Step>,
    pub share: Option<String>,
}

pub struct RoyaltyView {
    pub epoch: u64,
    pub amount: String,
    pub asset: String,
    pub asset_id: String,
    pub paths: Vec<PathView>,
    /// What the viewer was paid for there: "your 212 accepted labels", "as its developer".
    pub part: String,
    pub weight: Option<String>,
}

pub struct TokenClaimView {
    pub symbol: String,
    pub entitled: String,
    pub claimed: String,
    pub claimable: String,
    pub on_the_way: String,
    pub has_claimable: bool,
}

pub struct ChainView {
    pub name: String,
    pub chain_id: u64,
    pub home: bool,
    pub by_node: bool,
    pub status: String,
    pub problem: Option<String>,
    pub tokens: Vec<TokenClaimView>,
    pub can_claim: bool,
}

pub struct ChoiceView {
    pub chain_id: u64,
    pub label: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "earnings.html")]
struct EarningsPage {
    chrome: Chrome,
    notice: Option<String>,
    charts: Vec<String>,
    rows: Vec<EpochRow>,
    royalties: Vec<RoyaltyView>,
    chains: Vec<ChainView>,
    payout: String,
    choices: Vec<ChoiceView>,
    older: Option<u64>,
    newer: Option<u64>,
    nothing_yet: bool,
}

/// The registered token at `token`, or a stand-in named by its address.
pub fn token_of(tokens: &BTreeMap<Address, Token>, token: &Address) -> Token {
    tokens.get(token).cloned().unwrap_or_else(|| Token {
        address: *token,
        symbol: short_hex(token),
        decimals: 0,
    })
}

fn short_hex(address: &Address) -> String {
    super::page::short_address(&address.to_checksum())
}

/// The chart of one token: a pair of stacked bars per epoch (bounties below, royalties above),
/// oldest on the left, with the scale's top value named. The table beside it has every figure.
fn chart(statement: &Statement, token: &Token) -> String {
    let epochs: Vec<(u64, bool, Amount, Amount)> = statement
        .epochs
        .iter()
        .rev()
        .map(|e| {
            let line = e.tokens.iter().find(|t| t.token == token.address);
            (
                e.epoch,
                e.closed_at_ms.is_none(),
                line.map_or(0, |t| t.bounties),
                line.map_or(0, |t| t.royalties),
            )
        })
        .collect();
    let top = epochs
        .iter()
        .map(|(_, _, b, r)| b + r)
        .max()
        .unwrap_or(0)
        .max(1);
    let frame = Frame {
        width: 640.0,
        height: 240.0,
        left: 28.0,
        bottom: 32.0,
        top: 32.0,
    };
    let (plot, height, left) = (frame.plot(), frame.height, frame.left);
    let slot = frame.slot(epochs.len());
    let bar = (slot * 0.6).min(48.0);
    let symbol = &token.symbol;
    let mut svg = frame.open(
        &format!("chart-{symbol}"),
        &format!("Earnings per epoch in {symbol}"),
        "Bounties and royalties per epoch, oldest on the left; the table below gives every figure.",
        &token.format(top),
    );
    for (i, (epoch, open, bounties, royalties)) in epochs.iter().enumerate() {
        let x = left + slot * i as f64 + (slot - bar) / 2.0;
        let scale = |amount: Amount| plot * amount as f64 / top as f64;
        let (hb, hr) = (scale(*bounties), scale(*royalties));
        let base = frame.base();
        let name = if *open {
            format!("Epoch {epoch} (open)")
        } else {
            format!("Epoch {epoch}")
        };
        let _ = write!(
            svg,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{bar:.1}" height="{hb:.1}" class="bounties"><title>{name}: bounties {b}</title></rect><rect x="{x:.1}" y="{y2:.1}" width="{bar:.1}" height="{hr:.1}" class="royalties"><title>{name}: royalties {r}</title></rect><text x="{cx:.1}" y="{ly}" class="tick" text-anchor="middle">{epoch}{star}</text>"#,
            y = base - hb,
            y2 = base - hb - hr,
            b = escape(&token.format(*bounties)),
            r = escape(&token.format(*royalties)),
            cx = x + bar / 2.0,
            ly = height - 10.0,
            star = if *open { "*" } else { "" },
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Whose earnings a page shows: the viewer's own, or an address anyone looks up.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Whose {
    Own,
    Public,
}

fn part_of(royalty: &Royalty, whose: Whose) -> String {
    if let Some(labels) = royalty
        .contribution
        .as_ref()
        .and_then(|c| c.labels.as_ref())
    {
        return format!(
            "your {} accepted label{} on “{}”",
            labels.accepted,
            if labels.accepted == 1 { "" } else { "s" },
            labels.title
        );
    }
    let (possessive, person) = match whose {
        Whose::Own => ("your", "you"),
        Whose::Public => ("this address's", "this address"),
    };
    match royalty.role {
        Some(Role::DataContributor) => format!("{possessive} data in it"),
        Some(role) => format!("{person} as its {}", role.name()),
        None => format!("{person} as its owner"),
    }
}

/// A royalty in words, with its paths through the lineage.
pub fn royalty_view(
    tokens: &BTreeMap<Address, Token>,
    royalty: &Royalty,
    whose: Whose,
) -> RoyaltyView {
    let token = token_of(tokens, &royalty.token);
    let paths = royalty
        .paths
        .iter()
        .map(|path| {
            let mut steps = Vec::new();
            for hop in &path.hops {
                if let Some(edge) = hop.edge {
                    steps.push(Step {
                        text: edge.name().to_owned(),
                        edge: true,
                    });
                }
                steps.push(Step {
                    text: hop.name.clone(),
                    edge: false,
                });
            }
            PathView {
                steps,
                share: (royalty.paths.len() > 1 || path.share < 0.9995)
                    .then(|| format!("{:.1}% of it", path.share * 100.0)),
            }
        })
        .collect();
    RoyaltyView {
        epoch: royalty.epoch,
        amount: token.format(royalty.amount),
        asset: royalty.asset_name.clone(),
        asset_id: royalty.asset.to_string(),
        paths,
        part: part_of(royalty, whose),
        weight: royalty.contribution.as_ref().map(|c| {
            format!(
                "{} weight {} of {} ({:.2}% of the role)",
                match whose {
                    Whose::Own => "Your",
                    Whose::Public => "Its",
                },
                c.weight,
                c.role_weight,
                100.0 * c.weight as f64 / c.role_weight.max(1) as f64
            )
        }),
    }
}

fn token_claim_view(token: &Token, claim: &TokenClaim) -> TokenClaimView {
    TokenClaimView {
        symbol: token.symbol.clone(),
        entitled: token.format(claim.entitled),
        claimed: token.format(claim.claimed),
        claimable: token.format(claim.claimable()),
        on_the_way: token.format(claim.on_the_way()),
        has_claimable: claim.claimable() > 0,
    }
}

/// Each chain that pays an account, with where its claims stand.
pub fn chain_views(tokens: &BTreeMap<Address, Token>, chains: &[ChainClaims]) -> Vec<ChainView> {
    chains
        .iter()
        .map(|claims| {
            let (status, problem) = match &claims.position {
                Ok(Some(p)) if p.active_epoch > 0 => (
                    format!(
                        "Epoch {}'s root is active{}",
                        p.active_epoch,
                        if p.pending_epoch > p.active_epoch {
                            format!("; epoch {}'s waits out its delay", p.pending_epoch)
                        } else {
                            String::new()
                        }
                    ),
                    None,
                ),
                Ok(Some(p)) if p.pending_epoch > 0 => (
                    format!("Epoch {}'s root waits out its delay", p.pending_epoch),
                    None,
                ),
                Ok(_) => ("No root posted here yet".to_owned(), None),
                Err(why) => ("Could not be read just now".to_owned(), Some(why.clone())),
            };
            let tokens: Vec<TokenClaimView> = claims
                .tokens
                .iter()
                .map(|t| token_claim_view(&token_of(tokens, &t.token), t))
                .collect();
            ChainView {
                name: claims.chain.name.clone(),
                chain_id: claims.chain.chain_id,
                home: claims.chain.home,
                by_node: claims.way == ClaimWay::Node,
                status,
                problem,
                can_claim: tokens.iter().any(|t| t.has_claimable),
                tokens,
            }
        })
        .collect()
}

fn page_of(statement: &Statement, viewer: &Viewer, notice: Option<String>) -> EarningsPage {
    let mut symbols: Vec<Address> = statement
        .epochs
        .iter()
        .flat_map(|e| e.tokens.iter().map(|t| t.token))
        .collect();
    symbols.sort();
    symbols.dedup();
    let charts = symbols
        .iter()
        .map(|t| chart(statement, &token_of(&statement.tokens, t)))
        .collect();
    let mut rows = Vec::new();
    for epoch in &statement.epochs {
        for line in &epoch.tokens {
            let token = token_of(&statement.tokens, &line.token);
            rows.push(EpochRow {
                epoch: match epoch.closed_at_ms {
                    Some(_) => epoch.epoch.to_string(),
                    None => format!("{} (open)", epoch.epoch),
                },
                closed: epoch
                    .closed_at_ms
                    .map_or_else(|| "not yet".to_owned(), utc_minute),
                bounties: token.format(line.bounties),
                judgments: line.judgments,
                royalties: token.format(line.royalties),
                total: token.format(line.bounties + line.royalties),
            });
        }
    }
    let chains = chain_views(&statement.tokens, &statement.chains);
    let payout = match &statement.payout_chain {
        Some(chain) => format!(
            "{} (chain id {}){}",
            chain.name,
            chain.chain_id,
            if chain.home {
                ", the node's home chain"
            } else {
                ""
            }
        ),
        None => "the node's home chain".to_owned(),
    };
    let current = statement.payout_chain.as_ref().map(|c| c.chain_id);
    let choices = statement
        .choices
        .iter()
        .map(|chain| ChoiceView {
            chain_id: chain.chain_id,
            label: format!(
                "{} (chain id {}){}",
                chain.name,
                chain.chain_id,
                if chain.home { ", home" } else { "" }
            ),
            selected: current == Some(chain.chain_id),
        })
        .collect();
    let oldest = statement
        .epochs
        .iter()
        .filter(|e| e.closed_at_ms.is_some())
        .map(|e| e.epoch)
        .min();
    let newest_closed = statement
        .epochs
        .iter()
        .filter(|e| e.closed_at_ms.is_some())
        .map(|e| e.epoch)
        .max();
    EarningsPage {
        chrome: Chrome::of(viewer, "earnings"),
        notice,
        charts,
        nothing_yet: rows.is_empty(),
        rows,
        royalties: statement
            .royalties
            .iter()
            .map(|r| royalty_view(&statement.tokens, r, Whose::Own))
            .collect(),
        chains,
        payout,
        choices,
        older: oldest.filter(|o| *o > 1).map(|o| o - 1),
        newer: newest_closed
            .filter(|n| *n < statement.closed_epochs)
            .map(|n| (n + EPOCHS_SHOWN as u64).min(statement.closed_epochs)),
    }
}

/// `GET /earnings`.
pub async fn earnings_page(
    State(node): State<Arc<Node>>,
    viewer: Viewer,
    Query(query): Query<EarningsQuery>,
) -> Response {
    let earnings = Arc::clone(node.earnings());
    let account = viewer.account;
    let statement = match blocking(move || earnings.statement(account, query.through)).await {
        Ok(statement) => statement,
        Err(error) => return PageError::from(error).into_response(),
    };
    let notice = match (query.claimed, query.chosen) {
        (Some(chain_id), _) => Some(format!(
            "Your claim was sent on chain {chain_id}; the figures below are read from the chain again."
        )),
        (_, Some(_)) => Some(format!(
            "From now on your earnings are paid on {}. What you earned before stays claimable where it was.",
            statement
                .payout_chain
                .as_ref()
                .map_or("the node's home chain".to_owned(), |c| c.name.clone())
        )),
        _ => None,
    };
    render(&page_of(&statement, &viewer, notice))
}

#[derive(Deserialize)]
pub struct ChainForm {
    /// Missing is refused as a foreign form (403), like a wrong one.
    #[serde(default)]
    csrf: String,
    chain_id: u64,
}

/// `POST /earnings/payout-chain`: the chain the viewer is paid on from now on.
pub async fn choose_payout_chain(
    State(node): State<Arc<Node>>,
    viewer: Viewer,
    Form(form): Form<ChainForm>,
) -> Result<Redirect, PageError> {
    viewer.check_csrf(Some(&form.csrf))?;
    let desk = Arc::clone(node.desk());
    let account = viewer.account;
    blocking(move || desk.choose_payout_chain(account, form.chain_id)).await?;
    Ok(Redirect::to("/earnings?chosen=1"))
}

/// `POST /earnings/claim`: the node claims for the viewer on the embedded chain.
pub async fn claim_on_embedded(
    State(node): State<Arc<Node>>,
    viewer: Viewer,
    Form(form): Form<ChainForm>,
) -> Result<Redirect, PageError> {
    viewer.check_csrf(Some(&form.csrf))?;
    if form.chain_id != EMBEDDED_CHAIN_ID {
        return Err(PageError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The node claims for you only on its embedded development chain; on other chains your wallet sends the claim from the chain's claim page.",
        ));
    }
    let earnings = Arc::clone(node.earnings());
    let account = viewer.account;
    blocking(move || earnings.claim_on_embedded(account)).await?;
    Ok(Redirect::to(&format!(
        "/earnings?claimed={}",
        form.chain_id
    )))
}

pub struct CallView {
    pub symbol: String,
    pub pays: String,
    pub token: String,
    pub cumulative: String,
    pub proof: Vec<String>,
    pub calldata: String,
    pub cast: String,
}

#[derive(Template)]
#[template(path = "claim.html")]
struct ClaimPage {
    chrome: Chrome,
    chain: String,
    chain_id: u64,
    chain_hex: String,
    by_node: bool,
    account: String,
    distributor: String,
    epoch: u64,
    root: String,
    calls: Vec<CallView>,
    transactions: String,
}

fn claim_page(call: &ClaimCall, statement_tokens: &[Token], viewer: &Viewer) -> ClaimPage {
    let token_of = |address: &Address| {
        statement_tokens
            .iter()
            .find(|t| t.address == *address)
            .cloned()
            .unwrap_or(Token {
                address: *address,
                symbol: short_hex(address),
                decimals: 0,
            })
    };
    let root = call.root.to_string();
    let distributor = call.distributor.to_checksum();
    let calls: Vec<CallView> = call
        .claims
        .iter()
        .map(|claim| {
            let token = token_of(&claim.leaf.token);
            let proof: Vec<String> = claim.proof.iter().map(|h| h.to_string()).collect();
            CallView {
                symbol: token.symbol.clone(),
                pays: token.format(claim.pays),
                token: claim.leaf.token.to_checksum(),
                cumulative: claim.leaf.cumulative.to_string(),
                cast: format!(
                    "cast send {distributor} 'claim(address,address,uint256,bytes32,bytes32[])' {} {} {} {root} '[{}]'",
                    claim.leaf.account.to_checksum(),
                    claim.leaf.token.to_checksum(),
                    claim.leaf.cumulative,
                    proof.join(",")
                ),
                proof,
                calldata: format!("0x{}", hex_lower(&claim.calldata)),
            }
        })
        .collect();
    let transactions = json!(
        call.claims
            .iter()
            .filter(|c| c.pays > 0)
            .map(|c| json!({
                "to": distributor,
                "data": format!("0x{}", hex_lower(&c.calldata)),
            }))
            .collect::<Vec<_>>()
    )
    .to_string();
    ClaimPage {
        chrome: Chrome::of(viewer, "earnings"),
        chain: call.chain.name.clone(),
        chain_id: call.chain.chain_id,
        chain_hex: format!("0x{:x}", call.chain.chain_id),
        by_node: call.chain.chain_id == EMBEDDED_CHAIN_ID,
        account: viewer.account.to_checksum(),
        distributor,
        epoch: call.epoch,
        root,
        calls,
        transactions,
    }
}

/// `GET /earnings/claims/{chain_id}`: the exact contract calls that claim against the chain's
/// active root, and a button that sends them from the wallet.
pub async fn claim_calls(
    State(node): State<Arc<Node>>,
    viewer: Viewer,
    Path(chain_id): Path<String>,
) -> Result<Response, PageError> {
    let chain_id: u64 = chain_id.parse().map_err(|_| {
        PageError::new(
            StatusCode::BAD_REQUEST,
            format!("{chain_id:?} is not a chain id; the earnings page links to each chain that pays you"),
        )
    })?;
    let earnings = Arc::clone(node.earnings());
    let account = viewer.account;
    let call = blocking(move || earnings.claim_call(account, chain_id)).await?;
    let tokens: Vec<Token> = node
        .journal()
        .read(|j| j.economy().tokens().values().cloned().collect());
    Ok(render(&claim_page(&call, &tokens, &viewer)))
}
