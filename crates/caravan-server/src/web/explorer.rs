//! The explorer, open to anyone without signing in: every closed epoch (what it moved, its
//! roots, where each was posted and activated on chain, its bundle to download, and a re-check
//! of that bundle on the node), and what any address earned, from which assets, and claimed.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use caravan_core::{Address, EpochRecord};
use caravan_node::Node;
use caravan_node::earnings::{EpochDetail, PublicStatement};
use caravan_node::settlement::RootState;
use serde::Deserialize;

use super::earnings::{
    ChainView, RoyaltyView, Whose, chain_views, royalty_view, token_of, utc_minute,
};
use super::page::{Chrome, PageError, Viewer, render};
use crate::error::blocking;

fn chrome(viewer: Option<&Viewer>) -> Chrome {
    match viewer {
        Some(viewer) => Chrome::of(viewer, "explorer"),
        None => Chrome::anonymous("explorer"),
    }
}

fn epoch_number(text: &str) -> Result<u64, PageError> {
    text.parse().map_err(|_| {
        PageError::new(
            StatusCode::BAD_REQUEST,
            format!("{text:?} is not an epoch number: epochs count from 1"),
        )
    })
}

pub struct EpochRow {
    pub epoch: u64,
    pub closed: String,
    pub leaves: u64,
    pub root: String,
}

#[derive(Template)]
#[template(path = "explorer_epochs.html")]
struct EpochsPage {
    chrome: Chrome,
    epochs: Vec<EpochRow>,
}

fn epoch_row(record: &EpochRecord) -> EpochRow {
    EpochRow {
        epoch: record.epoch,
        closed: utc_minute(record.at_ms),
        leaves: record.leaf_count,
        root: record.root.to_string(),
    }
}

/// `GET /explorer`: every closed epoch, and a box to look up an address.
pub async fn epochs(State(node): State<Arc<Node>>, viewer: Option<Viewer>) -> Response {
    let epochs = node
        .earnings()
        .closed_epochs()
        .iter()
        .map(epoch_row)
        .collect();
    render(&EpochsPage {
        chrome: chrome(viewer.as_ref()),
        epochs,
    })
}

pub struct TotalsRow {
    pub symbol: String,
    pub revenue: String,
    pub paid: String,
    pub carried: String,
    pub fees: String,
}

pub struct ChainRow {
    pub name: String,
    pub chain_id: u64,
    pub root: String,
    pub posted: String,
    pub activated: String,
    pub state: String,
    pub problem: Option<String>,
}

#[derive(Template)]
#[template(path = "explorer_epoch.html")]
struct EpochPage {
    chrome: Chrome,
    epoch: u64,
    closed: String,
    event_seq: u64,
    root: String,
    previous_root: String,
    leaves: usize,
    payouts: usize,
    totals: Vec<TotalsRow>,
    chains: Vec<ChainRow>,
    verdict: Option<Verdict>,
}

/// What re-checking the bundle found.
pub struct Verdict {
    pub matched: bool,
    pub text: String,
}

fn epoch_page(node: &Node, detail: &EpochDetail, viewer: Option<&Viewer>) -> EpochPage {
    let tokens = node.journal().read(|j| j.economy().tokens().clone());
    let totals = detail
        .summary
        .totals
        .iter()
        .map(|t| {
            let token = token_of(&tokens, &t.token);
            TotalsRow {
                symbol: token.symbol.clone(),
                revenue: token.format(t.revenue),
                paid: token.format(t.paid),
                carried: token.format(t.carried),
                fees: token.format(t.fees),
            }
        })
        .collect();
    let chains = detail
        .chains
        .iter()
        .map(|post| {
            let place = |at: (u64, caravan_core::Hash32)| format!("block {}, transaction {}", at.0, at.1);
            let (posted, activated, state, problem) = match &post.posted {
                Ok(Some(root)) => (
                    place(root.posted),
                    root.activated.map_or_else(|| "not yet".to_owned(), place),
                    root.state.describe(),
                    (root.root != post.root).then(|| {
                        format!(
                            "the chain holds root {} for this epoch, not {}: the bundle and the chain disagree",
                            root.root, post.root
                        )
                    }),
                ),
                Ok(None) => (
                    "not posted".to_owned(),
                    "—".to_owned(),
                    RootState::NeverActivated.describe(),
                    None,
                ),
                Err(why) => (
                    "could not be read".to_owned(),
                    "—".to_owned(),
                    "unknown".to_owned(),
                    Some(why.clone()),
                ),
            };
            ChainRow {
                name: post.chain.name.clone(),
                chain_id: post.chain.chain_id,
                root: post.root.to_string(),
                posted,
                activated,
                state: if matches!(post.posted, Ok(None)) {
                    "—".to_owned()
                } else {
                    state
                },
                problem,
            }
        })
        .collect();
    EpochPage {
        chrome: chrome(viewer),
        epoch: detail.record.epoch,
        closed: utc_minute(detail.record.at_ms),
        event_seq: detail.record.seq,
        root: detail.summary.root.to_string(),
        previous_root: detail.summary.previous_root.to_string(),
        leaves: detail.summary.leaves,
        payouts: detail.summary.payouts,
        totals,
        chains,
        verdict: None,
    }
}

/// `GET /explorer/epochs/{epoch}`.
pub async fn epoch(
    State(node): State<Arc<Node>>,
    viewer: Option<Viewer>,
    Path(epoch): Path<String>,
) -> Result<Response, PageError> {
    let epoch = epoch_number(&epoch)?;
    let earnings = Arc::clone(node.earnings());
    let detail = blocking(move || earnings.epoch_detail(epoch)).await?;
    Ok(render(&epoch_page(&node, &detail, viewer.as_ref())))
}

/// `POST /explorer/epochs/{epoch}/verify`: the epoch page with the verdict of re-checking its
/// stored bundle on the node (a POST, so no link preview or crawler sets it off).
pub async fn verify(
    State(node): State<Arc<Node>>,
    viewer: Option<Viewer>,
    Path(epoch): Path<String>,
) -> Result<Response, PageError> {
    let epoch = epoch_number(&epoch)?;
    let earnings = Arc::clone(node.earnings());
    let (detail, checked) = blocking(move || {
        let detail = earnings.epoch_detail(epoch)?;
        Ok::<_, caravan_node::earnings::EarningsError>((detail, earnings.verify_epoch(epoch)?))
    })
    .await?;
    let mut page = epoch_page(&node, &detail, viewer.as_ref());
    page.verdict = Some(match checked {
        Ok(report) => Verdict {
            matched: true,
            text: format!(
                "Match: the root rebuilt from the bundle's {} leaves is the one recorded; its {} payouts were recomputed from its accruals and lineage{}.",
                report.leaves,
                report.payouts,
                if report.checked_against_previous {
                    format!(
                        ", and every leaf is epoch {}'s plus this epoch's payouts",
                        epoch - 1
                    )
                } else {
                    String::new()
                }
            ),
        },
        Err(why) => Verdict {
            matched: false,
            text: format!("No match: {why}."),
        },
    });
    Ok(render(&page))
}

/// `GET /explorer/epochs/{epoch}/bundle`: the bundle as stored, to download and re-check with
/// `caravan epoch verify-bundle FILE`.
pub async fn bundle(
    State(node): State<Arc<Node>>,
    Path(epoch): Path<String>,
) -> Result<Response, PageError> {
    let epoch = epoch_number(&epoch)?;
    let earnings = Arc::clone(node.earnings());
    let json = blocking(move || earnings.bundle_json(epoch)).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"epoch-{epoch}.json\""),
            ),
        ],
        json,
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct Lookup {
    #[serde(default)]
    address: String,
}

/// `GET /explorer/accounts?address=…`: the search box's answer, sent on to the account page.
pub async fn look_up(Query(lookup): Query<Lookup>) -> Result<Redirect, PageError> {
    let address: Address = lookup.address.trim().parse().map_err(|_| {
        PageError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "{:?} is not an address: give 0x and 40 hexadecimal digits",
                lookup.address
            ),
        )
    })?;
    Ok(Redirect::to(&format!("/explorer/accounts/{address}")))
}

pub struct AccountRow {
    pub epoch: u64,
    pub closed: String,
    pub royalties: String,
    pub credited: String,
}

#[derive(Template)]
#[template(path = "explorer_account.html")]
struct AccountPage {
    chrome: Chrome,
    account: String,
    rows: Vec<AccountRow>,
    royalties: Vec<RoyaltyView>,
    chains: Vec<ChainView>,
}

fn account_page(statement: &PublicStatement, viewer: Option<&Viewer>) -> AccountPage {
    let mut rows = Vec::new();
    for epoch in &statement.epochs {
        for line in &epoch.tokens {
            let token = token_of(&statement.tokens, &line.token);
            rows.push(AccountRow {
                epoch: epoch.epoch,
                closed: utc_minute(epoch.closed_at_ms),
                royalties: token.format(line.royalties),
                credited: token.format(line.credited),
            });
        }
    }
    AccountPage {
        chrome: chrome(viewer),
        account: statement.account.to_checksum(),
        rows,
        royalties: statement
            .royalties
            .iter()
            .map(|r| royalty_view(&statement.tokens, r, Whose::Public))
            .collect(),
        chains: chain_views(&statement.tokens, &statement.chains),
    }
}

/// `GET /explorer/accounts/{address}`.
pub async fn account(
    State(node): State<Arc<Node>>,
    viewer: Option<Viewer>,
    Path(address): Path<String>,
) -> Result<Response, PageError> {
    let account: Address = address.parse().map_err(|_| {
        PageError::new(
            StatusCode::BAD_REQUEST,
            format!("{address:?} is not an address: give 0x and 40 hexadecimal digits"),
        )
    })?;
    let earnings = Arc::clone(node.earnings());
    let statement = blocking(move || earnings.public_statement(account, None)).await?;
    Ok(render(&account_page(&statement, viewer.as_ref())))
}
