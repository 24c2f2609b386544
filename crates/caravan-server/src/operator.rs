//! Operator work over HTTP, for the accounts the node runs with `--operator`: registering tokens
//! and closing epochs while the node serves.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use caravan_core::{Address, Token};
use caravan_node::Node;
use caravan_node::operator::OperatorError;
use serde::Deserialize;
use serde_json::json;

use crate::error::{ApiError, JsonBody, blocking};

impl From<OperatorError> for ApiError {
    fn from(error: OperatorError) -> ApiError {
        match &error {
            OperatorError::Refused(_) => ApiError::new(StatusCode::CONFLICT, "refused", error),
            OperatorError::Store(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage", error)
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
