//! `POST /v1/balance/withdrawals`: the signed-in account takes back prepaid balance it has not
//! spent or escrowed; it becomes claimable on chain with the next root.

use std::sync::Arc;

use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use caravan_core::Address;
use caravan_node::Node;
use caravan_node::auth::Caller;
use caravan_node::gateway::balance::WithdrawError;
use serde::Deserialize;
use serde_json::json;

use crate::error::{ApiError, JsonBody, blocking};

impl From<WithdrawError> for ApiError {
    fn from(error: WithdrawError) -> ApiError {
        let (status, code) = match &error {
            WithdrawError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            WithdrawError::InsufficientBalance { .. } => {
                (StatusCode::PAYMENT_REQUIRED, "insufficient_balance")
            }
            WithdrawError::Node(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError::new(status, code, error)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WithdrawalRequest {
    token: Address,
    /// Base units, as a decimal string.
    #[serde(with = "caravan_core::serde_u128")]
    amount: u128,
}

pub async fn withdraw(
    State(node): State<Arc<Node>>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody<WithdrawalRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let account = caller.account;
    let taken = blocking(move || node.gateway().withdraw(account, body.token, body.amount)).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({
            "account": account,
            "token": taken.token.address,
            "symbol": taken.token.symbol,
            "amount": taken.amount.to_string(),
            "available": taken.available.to_string(),
            "claimable_from_epoch": taken.claimable_from_epoch,
        })),
    ))
}
