//! The catalogue side of the gateway: the models this node serves, validators' attestations,
//! the node's identity and a payer's balance and spending.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use caravan_core::Address;
use caravan_core::calendar::utc_date;
use caravan_node::Node;
use caravan_node::auth::Caller;
use caravan_node::gateway::usage::{MAX_USAGE_DAYS, UsageReport};
use caravan_node::gateway::{Gateway, ServedModel};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{OpenAiError, blocking, parse};

fn model_object(gateway: &Gateway, model: &ServedModel) -> Value {
    json!({
        "id": model.name,
        "object": "model",
        "created": model.registered_ms / 1000,
        "owned_by": "caravan",
        "asset": model.asset,
        "kind": model.kind.name(),
        "endpoint": gateway.endpoint(model),
        "price_per_call": model.price_per_call.to_string(),
        "token": model.token,
    })
}

pub async fn list_models(State(node): State<Arc<Node>>) -> Result<Response, OpenAiError> {
    let gateway = Arc::clone(node.gateway());
    let data: Vec<Value> = gateway
        .models()
        .iter()
        .map(|model| model_object(&gateway, model))
        .collect();
    Ok(axum::Json(json!({ "object": "list", "data": data })).into_response())
}

pub async fn get_model(
    State(node): State<Arc<Node>>,
    Path(model): Path<String>,
) -> Result<Response, OpenAiError> {
    let gateway = Arc::clone(node.gateway());
    let model = gateway.resolve(&model)?;
    Ok(axum::Json(model_object(&gateway, &model)).into_response())
}

/// A validator's signed evaluation, as posted: the model comes from the path.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestBody {
    validator: Address,
    dataset: caravan_core::Hash32,
    metric: String,
    value_micros: u64,
    issued_at_ms: u64,
    /// The validator's signature; without it the attestation is refused as unsigned.
    #[serde(default)]
    signature: Option<caravan_core::Signature65>,
}

pub async fn attest(
    State(node): State<Arc<Node>>,
    Path(model): Path<String>,
    body: Bytes,
) -> Result<Response, OpenAiError> {
    let gateway = Arc::clone(node.gateway());
    let parsed: AttestBody = parse(&body)?;
    let signature = parsed.signature.ok_or_else(|| {
        OpenAiError::invalid(
            "signature_required",
            Some("signature"),
            "an attestation is the validator's signed word: send `signature`, the validator's EIP-712 signature over it (see the API document)",
        )
        .with_status(StatusCode::UNAUTHORIZED)
    })?;
    let worker = Arc::clone(&gateway);
    let attestation = blocking(move || {
        let asset = worker.resolve_any_model(&model)?;
        worker.attest(
            &model,
            caravan_core::Attestation {
                model: asset,
                validator: parsed.validator,
                dataset: parsed.dataset,
                metric: parsed.metric,
                value_micros: parsed.value_micros,
                issued_at_ms: parsed.issued_at_ms,
                signature,
            },
        )
    })
    .await?;
    Ok((StatusCode::CREATED, axum::Json(attestation)).into_response())
}

pub async fn list_attestations(
    State(node): State<Arc<Node>>,
    Path(model): Path<String>,
) -> Result<Response, OpenAiError> {
    let gateway = Arc::clone(node.gateway());
    let data = gateway.attestations(&model)?;
    Ok(axum::Json(json!({ "object": "list", "data": data })).into_response())
}

/// The node's identity, which needs no key: the address its receipts are signed with, which a
/// payer's wallet also names in every key request it signs for this node.
pub async fn node_identity(State(node): State<Arc<Node>>) -> Response {
    axum::Json(json!({ "object": "node", "address": node.gateway().node() })).into_response()
}

/// The caller's prepaid balances, less what calls in flight hold.
pub async fn balance(
    State(node): State<Arc<Node>>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let balances: Vec<Value> = node
        .gateway()
        .balances(&caller.account)
        .iter()
        .map(|balance| {
            json!({
                "token": balance.token.address,
                "symbol": balance.token.symbol,
                "decimals": balance.token.decimals,
                "available": balance.available.to_string(),
                "held": balance.held.to_string(),
                "deposits": balance.deposits.iter().map(|deposit| json!({
                    "chain_id": deposit.chain_id,
                    "transaction": deposit.tx,
                    "log_index": deposit.log_index,
                    "block": deposit.block,
                    "amount": deposit.amount.to_string(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    axum::Json(json!({ "payer": caller.account, "balances": balances })).into_response()
}

/// How many days `GET /v1/usage` covers when the query does not say.
pub const DEFAULT_USAGE_DAYS: u32 = 30;

#[derive(Deserialize)]
pub struct UsageQuery {
    days: Option<u32>,
}

/// `GET /v1/usage?days=N`: what the caller spent on calls over the last N UTC days (30 by
/// default), per day and per model, in each token.
pub async fn usage(
    State(node): State<Arc<Node>>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<UsageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, OpenAiError> {
    let days = query
        .map_err(|e| {
            OpenAiError::invalid(
                "invalid_days",
                Some("days"),
                format!(
                    "{}: days is a whole number from 1 to {MAX_USAGE_DAYS}",
                    e.body_text()
                ),
            )
        })?
        .0
        .days
        .unwrap_or(DEFAULT_USAGE_DAYS);
    let gateway = Arc::clone(node.gateway());
    let report =
        blocking(move || gateway.usage(caller.account, days, caravan_store::now_ms())).await?;
    Ok(axum::Json(usage_object(caller.account, &report)).into_response())
}

fn usage_object(payer: Address, report: &UsageReport) -> Value {
    json!({
        "object": "usage",
        "payer": payer,
        "first_day": utc_date(report.first_day),
        "days": report.days,
        "tokens": report.tokens.iter().map(|usage| json!({
            "token": usage.token.address,
            "symbol": usage.token.symbol,
            "decimals": usage.token.decimals,
            "calls": usage.calls,
            "amount": usage.amount.to_string(),
            "per_day": usage.per_day.iter().map(|day| json!({
                "date": utc_date(day.day),
                "calls": day.calls,
                "amount": day.amount.to_string(),
            })).collect::<Vec<_>>(),
            "per_model": usage.per_model.iter().map(|model| json!({
                "asset": model.asset,
                "name": model.name,
                "kind": model.kind.name(),
                "calls": model.calls,
                "uses": model.uses,
                "amount": model.amount.to_string(),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}
