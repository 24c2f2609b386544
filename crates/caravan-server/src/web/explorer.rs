//! The explorer, open to anyone without signing in: every closed epoch (what it moved, its
//! roots, where each was posted and activated on chain, its bundle to download, and a re-check
//! of that bundle on the node), and what any address earned, from which assets, and claimed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use caravan_core::calendar::utc_minute;
use caravan_core::{Address, AssetId, EpochRecord, Licence, Token};
use caravan_node::Node;
use caravan_node::earnings::{AssetDetail, EpochDetail, GRAPH_HOPS, GraphNode, PublicStatement};
use serde::Deserialize;

use super::chart::escape;
use super::earnings::{ChainView, RoyaltyView, Whose, chain_views, royalty_view, token_of};
use super::page::{Chrome, PageError, Viewer, render};
use crate::error::{ApiError, blocking};

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
    /// The link to the next, older page, when there is one.
    older: Option<u64>,
    /// Whether this page starts below the newest epoch (so a link back to it is shown).
    paged: bool,
}

#[derive(Deserialize)]
pub struct EpochsQuery {
    /// Only epochs numbered below this one: the next page's link.
    #[serde(default)]
    before: Option<String>,
}

fn epoch_row(record: &EpochRecord) -> EpochRow {
    EpochRow {
        epoch: record.epoch,
        closed: utc_minute(record.at_ms),
        leaves: record.leaf_count,
        root: record.root.to_string(),
    }
}

/// `GET /explorer[?before=N]`: the closed epochs a page at a time, newest first, and a box to
/// look up an address.
pub async fn epochs(
    State(node): State<Arc<Node>>,
    viewer: Option<Viewer>,
    Query(query): Query<EpochsQuery>,
) -> Result<Response, PageError> {
    let before = query.before.as_deref().map(epoch_number).transpose()?;
    let page = node
        .earnings()
        .closed_epochs(before, None)
        .map_err(ApiError::from)?;
    Ok(render(&EpochsPage {
        chrome: chrome(viewer.as_ref()),
        epochs: page.epochs.iter().map(epoch_row).collect(),
        older: page.older,
        paged: before.is_some(),
    }))
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
    earners: Vec<EarnerRow>,
    earner_count: usize,
    verdict: Option<Verdict>,
}

pub struct EarnerRow {
    pub id: String,
    pub name: String,
    pub own: String,
    pub inflow: String,
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
                Ok(None) => ("not posted".to_owned(), "—".to_owned(), "—".to_owned(), None),
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
                state,
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
        earners: detail
            .earners
            .iter()
            .map(|e| {
                let token = token_of(&tokens, &e.token);
                EarnerRow {
                    id: e.asset.to_string(),
                    name: e.name.clone(),
                    own: token.format(e.own),
                    inflow: token.format(e.inflow),
                }
            })
            .collect(),
        earner_count: detail.earner_count,
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

/// The address `text` names, or a 400 that says how to write one.
fn address_of(text: &str) -> Result<Address, PageError> {
    text.parse().map_err(|_| {
        PageError::new(
            StatusCode::BAD_REQUEST,
            format!("{text:?} is not an address: give 0x and 40 hexadecimal digits"),
        )
    })
}

#[derive(Deserialize)]
pub struct Lookup {
    #[serde(default)]
    address: String,
}

/// `GET /explorer/accounts?address=…`: the search box's answer, sent on to the account page.
pub async fn look_up(Query(lookup): Query<Lookup>) -> Result<Redirect, PageError> {
    let address = address_of(lookup.address.trim())?;
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
    let account = address_of(&address)?;
    let earnings = Arc::clone(node.earnings());
    let statement = blocking(move || earnings.public_statement(account, None)).await?;
    Ok(render(&account_page(&statement, viewer.as_ref())))
}

/// The lineage around an asset as SVG: its parents' side above, its children's below, one row
/// per hop, each asset a link to its own page, each edge labelled with its kind and share. The
/// list beside it says the same in words.
fn lineage_svg(detail: &AssetDetail) -> String {
    let (width, row, box_height) = (760.0, 96.0, 44.0);
    let levels: Vec<i32> = (-GRAPH_HOPS..=GRAPH_HOPS)
        .filter(|level| detail.nodes.iter().any(|n| n.level == *level))
        .collect();
    let height = row * levels.len() as f64;
    let mut at: BTreeMap<AssetId, (f64, f64)> = BTreeMap::new();
    let mut boxes = String::new();
    for (r, level) in levels.iter().enumerate() {
        let on_row: Vec<&GraphNode> = detail.nodes.iter().filter(|n| n.level == *level).collect();
        let slot = width / on_row.len() as f64;
        let box_width = (slot - 12.0).min(200.0);
        for (i, node) in on_row.iter().enumerate() {
            let cx = slot * (i as f64 + 0.5);
            let cy = row * r as f64 + row / 2.0;
            at.insert(node.asset, (cx, cy));
            let name = escape(&node.name);
            // A long name is squeezed into its box rather than cut, so what is read out is
            // what is shown.
            let squeeze = if node.name.chars().count() as f64 * 8.0 > box_width - 10.0 {
                format!(
                    r#" textLength="{:.1}" lengthAdjust="spacingAndGlyphs""#,
                    box_width - 10.0
                )
            } else {
                String::new()
            };
            let _ = write!(
                boxes,
                r#"<a href="/explorer/assets/{id}"><rect x="{x:.1}" y="{y:.1}" width="{box_width:.1}" height="{box_height}" rx="6" class="node{current}"/><text x="{cx:.1}" y="{ty:.1}" text-anchor="middle" class="node-name"{squeeze}>{name}</text><text x="{cx:.1}" y="{ky:.1}" text-anchor="middle" class="node-kind">{kind}</text></a>"#,
                id = node.asset,
                kind = node.kind.name(),
                x = cx - box_width / 2.0,
                y = cy - box_height / 2.0,
                current = if node.level == 0 { " current" } else { "" },
                ty = cy - 3.0,
                ky = cy + 14.0,
            );
        }
    }
    let mut lines = String::new();
    for edge in &detail.edges {
        let (Some(&(x1, y1)), Some(&(x2, y2))) = (at.get(&edge.child), at.get(&edge.parent)) else {
            continue;
        };
        let (y1, y2) = (y1 - box_height / 2.0, y2 + box_height / 2.0);
        let _ = write!(
            lines,
            r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" class="edge" marker-end="url(#arrow)"/><text x="{mx:.1}" y="{my:.1}" text-anchor="middle" class="edge-label">{kind} {share}</text>"#,
            mx = (x1 + x2) / 2.0,
            my = (y1 + y2) / 2.0 + 4.0,
            kind = edge.kind.name(),
            share = edge.share,
        );
    }
    format!(
        r#"<svg class="lineage" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg" role="group" aria-labelledby="lineage-title"><title id="lineage-title">The lineage around {name}: parents above, children below</title><defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" class="arrow"/></marker></defs>{lines}{boxes}</svg>"#,
        name = escape(&detail.manifest.name),
    )
}

pub struct Neighbour {
    pub id: String,
    pub name: String,
    pub relation: String,
}

pub struct RevenueRow {
    pub epoch: u64,
    pub own: String,
    pub inflow: String,
}

pub struct BeneficiaryRow {
    pub account: String,
    pub role: String,
    pub amount: String,
}

pub struct AttestationRow {
    pub validator: String,
    pub metric: String,
    pub value: String,
    pub dataset: String,
    pub issued: String,
}

pub struct RoleRow {
    pub role: String,
    pub share: String,
    pub members: usize,
}

#[derive(Template)]
#[template(path = "explorer_asset.html")]
struct AssetPage {
    chrome: Chrome,
    id: String,
    name: String,
    kind: String,
    owner: String,
    content: String,
    licence: String,
    registered: String,
    roles: Vec<RoleRow>,
    graph: String,
    neighbours: Vec<Neighbour>,
    hidden: usize,
    revenue: Vec<RevenueRow>,
    beneficiaries: Vec<BeneficiaryRow>,
    attestations: Vec<AttestationRow>,
}

fn licence_text(licence: &Licence, tokens: &BTreeMap<Address, Token>) -> String {
    match licence {
        Licence::OpenUse => "Open use: anyone may use and derive from it, paid or not".to_owned(),
        Licence::NonCommercial => {
            "Non-commercial: no paid calls, no commercially licensed derivatives".to_owned()
        }
        Licence::Commercial {
            token,
            price_per_call,
            derivative_royalty,
        } => format!(
            "Commercial: {} per call; a derivative must give it at least {derivative_royalty}",
            token_of(tokens, token).format(*price_per_call)
        ),
    }
}

fn asset_page(detail: &AssetDetail, viewer: Option<&Viewer>) -> AssetPage {
    let name_of = |id: &AssetId| {
        detail
            .nodes
            .iter()
            .find(|n| n.asset == *id)
            .map_or_else(|| id.to_string(), |n| n.name.clone())
    };
    let mut neighbours = Vec::new();
    for edge in &detail.edges {
        if edge.child == detail.id {
            neighbours.push(Neighbour {
                id: edge.parent.to_string(),
                name: name_of(&edge.parent),
                relation: format!(
                    "parent ({}): gets {} of what this asset earns",
                    edge.kind.name(),
                    edge.share
                ),
            });
        } else if edge.parent == detail.id {
            neighbours.push(Neighbour {
                id: edge.child.to_string(),
                name: name_of(&edge.child),
                relation: format!(
                    "child ({}): sends this asset {} of what it earns",
                    edge.kind.name(),
                    edge.share
                ),
            });
        }
    }
    for node in detail.nodes.iter().filter(|n| n.level.abs() > 1) {
        neighbours.push(Neighbour {
            id: node.asset.to_string(),
            name: node.name.clone(),
            relation: format!(
                "{} hops {}",
                node.level.abs(),
                if node.level < 0 { "up" } else { "down" }
            ),
        });
    }
    let manifest = &detail.manifest;
    AssetPage {
        chrome: chrome(viewer),
        id: detail.id.to_string(),
        name: manifest.name.clone(),
        kind: manifest.kind.name().to_owned(),
        owner: manifest.owner.to_checksum(),
        content: manifest.content.to_string(),
        licence: licence_text(&manifest.licence, &detail.tokens),
        registered: if detail.registered_ms == 0 {
            "—".to_owned()
        } else {
            utc_minute(detail.registered_ms)
        },
        roles: manifest
            .roles
            .iter()
            .map(|r| RoleRow {
                role: r.role.name().to_owned(),
                share: r.share.to_string(),
                members: r.members.len(),
            })
            .collect(),
        graph: lineage_svg(detail),
        neighbours,
        hidden: detail.hidden,
        revenue: detail
            .revenue
            .iter()
            .map(|r| {
                let token = token_of(&detail.tokens, &r.token);
                RevenueRow {
                    epoch: r.epoch,
                    own: token.format(r.own),
                    inflow: token.format(r.inflow),
                }
            })
            .collect(),
        beneficiaries: detail
            .beneficiaries
            .iter()
            .map(|b| BeneficiaryRow {
                account: b.account.to_checksum(),
                role: b.role.map_or("owner", |r| r.name()).to_owned(),
                amount: token_of(&detail.tokens, &b.token).format(b.amount),
            })
            .collect(),
        attestations: detail
            .attestations
            .iter()
            .map(|a| AttestationRow {
                validator: a.validator.to_checksum(),
                metric: a.metric.clone(),
                value: format!("{}", a.value_micros as f64 / 1e6),
                dataset: a.dataset.to_string(),
                issued: utc_minute(a.issued_at_ms),
            })
            .collect(),
    }
}

/// `GET /explorer/assets/{id}`.
pub async fn asset(
    State(node): State<Arc<Node>>,
    viewer: Option<Viewer>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id: AssetId = id.parse().map_err(|_| {
        PageError::new(
            StatusCode::BAD_REQUEST,
            format!("{id:?} is not an asset id: give 0x and 64 hexadecimal digits"),
        )
    })?;
    let earnings = Arc::clone(node.earnings());
    let detail = blocking(move || earnings.asset_detail(id)).await?;
    Ok(render(&asset_page(&detail, viewer.as_ref())))
}
