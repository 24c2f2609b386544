//! Operator work over HTTP, for the accounts the node runs with `--operator`: registering tokens,
//! closing epochs while the node serves, adding chains, choosing home and posting roots.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use caravan_core::{Address, Token};
use caravan_node::Node;
use caravan_node::operator::OperatorError;
use caravan_node::settlement::{ChainsError, PostOutcome, RpcConfig};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{ApiError, JsonBody, blocking};

impl From<OperatorError> for ApiError {
    fn from(error: OperatorError) -> ApiError {
        match &error {
            OperatorError::Refused(_) => ApiError::new(StatusCode::CONFLICT, "refused", error),
            OperatorError::Store(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage", error)
            }
            OperatorError::NoChains => ApiError::new(StatusCode::CONFLICT, "no_chains", error),
            OperatorError::NotClosed(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_epoch", error)
            }
            OperatorError::Chain(ChainsError::Invalid(_)) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", error)
            }
            OperatorError::Chain(ChainsError::Unknown(_)) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_chain", error)
            }
            OperatorError::Chain(ChainsError::Conflict(_)) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", error)
            }
            OperatorError::Chain(ChainsError::Chain(_)) => {
                ApiError::new(StatusCode::BAD_GATEWAY, "chain", error)
            }
            OperatorError::Chain(ChainsError::Node(_)) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", error)
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterToken {
    address: Address,
    symbol: String,
    decimals: u8,
}

pub async fn register_token(
    State(node): State<Arc<Node>>,
    JsonBody(body): JsonBody<RegisterToken>,
) -> Result<impl IntoResponse, ApiError> {
    let token = Token {
        address: body.address,
        symbol: body.symbol,
        decimals: body.decimals,
    };
    let token = blocking(move || node.register_token(token)).await?;
    Ok((StatusCode::CREATED, axum::Json(json!(token))))
}

pub async fn close_epoch(State(node): State<Arc<Node>>) -> Result<impl IntoResponse, ApiError> {
    let (outcome, bundle) = blocking(move || node.close_epoch()).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({
            "epoch": outcome.epoch,
            "root": outcome.root,
            "leaves": outcome.leaves.len(),
            "payouts": bundle.payouts.len(),
        })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddChain {
    name: String,
    url: String,
    chain_id: u64,
    /// The environment variable of the node's process that holds its signer key there.
    key_env: String,
    #[serde(default = "one_confirmation")]
    confirmations: u64,
}

fn one_confirmation() -> u64 {
    1
}

/// Adds a JSON-RPC chain: accounts may choose it and sign in on it at once.
pub async fn add_chain(
    State(node): State<Arc<Node>>,
    JsonBody(body): JsonBody<AddChain>,
) -> Result<impl IntoResponse, ApiError> {
    let config = RpcConfig {
        url: body.url,
        chain_id: body.chain_id,
        key_env: body.key_env,
        confirmations: body.confirmations,
    };
    let (chain, signer) = blocking(move || node.add_chain(&body.name, config)).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "chain": chain, "signer": signer })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChooseHome {
    name: String,
}

/// Makes a chain home, while no root is posted on it or on the current home.
pub async fn set_home_chain(
    State(node): State<Arc<Node>>,
    JsonBody(body): JsonBody<ChooseHome>,
) -> Result<axum::Json<Value>, ApiError> {
    let home = blocking(move || node.set_home_chain(&body.name)).await?;
    Ok(axum::Json(json!(home)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostRoot {
    /// A chain from `GET /v1/chains`; home when left out.
    #[serde(default)]
    chain: Option<String>,
}

/// Posts a closed epoch's root on a chain (its share of the epoch), activating it at once when
/// the chain's distributor has no delay. Posting what the chain already holds changes nothing.
pub async fn post_root(
    State(node): State<Arc<Node>>,
    Path(epoch): Path<String>,
    JsonBody(body): JsonBody<PostRoot>,
) -> Result<impl IntoResponse, ApiError> {
    let epoch: u64 = epoch.parse().map_err(|_| {
        ApiError::malformed_id(format!(
            "{epoch:?} is not an epoch number: epochs count from 1"
        ))
    })?;
    let outcome = blocking(move || node.post_epoch(epoch, body.chain.as_deref())).await?;
    Ok(match outcome {
        PostOutcome::NothingToPost { chain } => (
            StatusCode::OK,
            axum::Json(json!({
                "epoch": epoch, "chain": chain, "posted": false,
                "reason": "nobody is paid on this chain in this epoch",
            })),
        ),
        PostOutcome::AlreadyPosted {
            chain,
            active,
            pending,
        } => (
            StatusCode::OK,
            axum::Json(json!({
                "epoch": epoch, "chain": chain, "posted": false,
                "reason": "the chain already holds this epoch or a later one",
                "active": active, "pending": pending,
            })),
        ),
        PostOutcome::Posted {
            chain,
            root,
            leaves,
            published,
            delay,
        } => (
            StatusCode::CREATED,
            axum::Json(json!({
                "epoch": epoch, "chain": chain, "posted": true, "root": root, "leaves": leaves,
                "gas_used": published.posted.gas_used,
                "activated": published.activated,
                "claimable_after_s": delay,
                "promised": published.promised.iter().map(|(token, amount)| json!({
                    "token": token, "amount": amount.to_string(),
                })).collect::<Vec<_>>(),
            })),
        ),
    })
}
