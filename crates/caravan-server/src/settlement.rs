//! Settlement as the API shows it: closed epochs, an account's Merkle proofs per chain, the
//! chains a node pays on, and the chain an account chooses to be paid on (which only the
//! account itself may change).

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use caravan_node::Node;
use caravan_node::auth::{Acting, Caller};
use caravan_node::chains::PayoutChain;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{ApiError, JsonBody, blocking};
use crate::tasks::address;

fn epoch_json(record: &caravan_core::EpochRecord) -> Value {
    json!({
        "epoch": record.epoch,
        "root": record.root,
        "leaves": record.leaf_count,
        "closed_at_ms": record.at_ms,
        "event_seq": record.seq,
    })
}

#[derive(Deserialize)]
pub struct EpochsQuery {
    /// Only epochs numbered below this one.
    before: Option<u64>,
    /// How many epochs at most (the node's page size when left out).
    limit: Option<usize>,
}

/// `GET /v1/epochs[?before=N][&limit=L]`: closed epochs newest first, a page at a time; a
/// `Link: <…>; rel="next"` header asks for the next, older page while there is one.
pub async fn list_epochs(
    State(node): State<Arc<Node>>,
    query: Result<Query<EpochsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = ApiError::query(query)?;
    let page = node.earnings().closed_epochs(query.before, query.limit)?;
    let epochs: Vec<Value> = page.epochs.iter().map(epoch_json).collect();
    let mut response = axum::Json(Value::Array(epochs)).into_response();
    if let Some(older) = page.older {
        let limit = query
            .limit
            .map_or_else(String::new, |limit| format!("&limit={limit}"));
        let next = format!("</v1/epochs?before={older}{limit}>; rel=\"next\"");
        response.headers_mut().insert(
            header::LINK,
            HeaderValue::try_from(next).expect("a link of digits is a valid header value"),
        );
    }
    Ok(response)
}

fn closed_epoch(node: &Node, text: &str) -> Result<caravan_core::EpochRecord, ApiError> {
    let epoch: u64 = text.parse().map_err(|_| {
        ApiError::malformed_id(format!(
            "{text:?} is not an epoch number: epochs count from 1"
        ))
    })?;
    Ok(node.earnings().closed_epoch(epoch)?)
}

pub async fn epoch_status(
    State(node): State<Arc<Node>>,
    Path(epoch): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(epoch_json(&closed_epoch(&node, &epoch)?)))
}

/// An account's leaves in an epoch with their Merkle proofs, per chain that pays it: what a
/// wallet submits to claim.
pub async fn epoch_proofs(
    State(node): State<Arc<Node>>,
    Path((epoch, account)): Path<(String, String)>,
) -> Result<axum::Json<Value>, ApiError> {
    let desk = Arc::clone(node.desk());
    let record = closed_epoch(&node, &epoch)?;
    let account = address(&account, "account")?;
    let epoch = record.epoch;
    let proofs = blocking(move || desk.proofs(epoch, &account)).await?;
    let chains: Vec<Value> = proofs
        .iter()
        .map(|chain| {
            json!({
                "home": chain.chain == caravan_core::HOME_CHAIN,
                "chain": chain_json(node.desk().chains().of_partition(chain.chain), chain.chain),
                "root": chain.root,
                "leaves": chain.leaves.iter().map(|proven| json!({
                    "token": proven.leaf.token,
                    "cumulative": proven.leaf.cumulative.to_string(),
                    "proof": proven.proof,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    if chains.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_entitlement",
            format!("{account} has no entitlement in epoch {epoch}"),
        ));
    }
    Ok(axum::Json(
        json!({ "epoch": epoch, "account": account, "chains": chains }),
    ))
}

/// A chain as the API shows it; a share the node has no chain for shows its chain id alone
/// (home on a node given no chain directory shows `{"home": true}`).
fn chain_json(chain: Option<&PayoutChain>, partition: u64) -> Value {
    match chain {
        Some(chain) => json!(chain),
        None if partition == caravan_core::HOME_CHAIN => json!({ "home": true }),
        None => json!({ "chain_id": partition, "home": false }),
    }
}

/// Every chain, home first, with caravan's contracts there when they are deployed: where
/// payers and requesters deposit (`deposit_vault`) and where claims are paid (`distributor`).
pub async fn list_chains(State(node): State<Arc<Node>>) -> Result<axum::Json<Value>, ApiError> {
    let Some(settlement) = node.settlement() else {
        return Ok(axum::Json(json!(
            node.desk().chains().chains().collect::<Vec<_>>()
        )));
    };
    let chains = settlement.list().map_err(ApiError::internal)?;
    Ok(axum::Json(json!(
        chains
            .iter()
            .map(|info| {
                let mut chain = json!(info.chain);
                if let Some(deployment) = &info.deployment {
                    chain["distributor"] = json!(deployment.distributor);
                    chain["deposit_vault"] = json!(deployment.vault);
                }
                chain
            })
            .collect::<Vec<_>>()
    )))
}

pub async fn payout_chain(
    State(node): State<Arc<Node>>,
    Path(account): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let account = address(&account, "account")?;
    let (partition, chain) = node.desk().payout_chain(&account);
    Ok(axum::Json(json!({
        "account": account,
        "chain": chain_json(chain.as_ref(), partition),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChoosePayoutChain {
    /// The chain id to be paid on, or 0 for the node's home chain.
    chain_id: u64,
}

pub async fn choose_payout_chain(
    State(node): State<Arc<Node>>,
    Extension(caller): Extension<Caller>,
    Path(account): Path<String>,
    JsonBody(body): JsonBody<ChoosePayoutChain>,
) -> Result<axum::Json<Value>, ApiError> {
    let named = address(&account, "account")?;
    let account = caller.acting_as(Some(named), Acting::Account)?;
    let desk = Arc::clone(node.desk());
    let (partition, chain) =
        blocking(move || desk.choose_payout_chain(account, body.chain_id)).await?;
    Ok(axum::Json(json!({
        "account": account,
        "chain": chain_json(chain.as_ref(), partition),
    })))
}
