//! API key management over HTTP: only the payer's own wallet may issue, list or revoke its
//! keys, each request signed as EIP-712 typed data (see [`caravan_node::keys`]).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use caravan_core::{Address, Signature65};
use caravan_node::Node;
use caravan_node::keys::{ApiKey, PayerSignature, Scope};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{OpenAiError, blocking, parse};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueBody {
    payer: Address,
    #[serde(default)]
    scopes: Option<Vec<Scope>>,
    #[serde(default)]
    expires_in_days: Option<u32>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    signed_at_ms: Option<u64>,
    #[serde(default)]
    signature: Option<Signature65>,
}

/// The payer's signature, when the request carries both of its parts.
fn payer_signature(
    signed_at_ms: Option<u64>,
    signature: Option<Signature65>,
) -> Option<PayerSignature> {
    Some(PayerSignature {
        signed_at_ms: signed_at_ms?,
        signature: signature?,
    })
}

fn key_object(key: &ApiKey) -> Value {
    json!({
        "id": key.id,
        "object": "api_key",
        "payer": key.payer,
        "scopes": key.scopes,
        "name": key.name,
        "created_ms": key.created_ms,
        "expires_ms": key.expires_ms,
    })
}

/// Issues a key for the payer that signed the request (see [`caravan_node::keys`]); the secret is in
/// this one answer only.
pub async fn issue_key(
    State(node): State<Arc<Node>>,
    body: Bytes,
) -> Result<Response, OpenAiError> {
    let parsed: IssueBody = parse(&body)?;
    let scopes = parsed.scopes.unwrap_or_else(|| Scope::GATEWAY.to_vec());
    let worker = Arc::clone(node.keys());
    let (secret, key) = blocking(move || {
        worker.issue_signed(
            parsed.payer,
            scopes,
            parsed.expires_in_days,
            parsed.name,
            payer_signature(parsed.signed_at_ms, parsed.signature).as_ref(),
        )
    })
    .await?;
    let mut object = key_object(&key);
    object["key"] = json!(secret);
    Ok((StatusCode::CREATED, axum::Json(object)).into_response())
}

/// The payer and its wallet's signature, as query parameters of a key listing or revocation.
#[derive(Deserialize)]
pub struct SignedPayerQuery {
    payer: Address,
    signed_at_ms: Option<u64>,
    signature: Option<Signature65>,
}

impl SignedPayerQuery {
    /// The query, or OpenAI's error shape saying which parameter is wrong.
    fn read(query: Result<Query<Self>, QueryRejection>) -> Result<Self, OpenAiError> {
        query.map(|Query(query)| query).map_err(|rejection| {
            OpenAiError::invalid(
                "invalid_query",
                None,
                format!(
                    "{}; send ?payer=0x…&signed_at_ms=…&signature=0x… (130 hex digits)",
                    rejection.body_text()
                ),
            )
        })
    }

    fn signed(&self) -> Option<PayerSignature> {
        payer_signature(self.signed_at_ms, self.signature)
    }
}

pub async fn list_keys(
    State(node): State<Arc<Node>>,
    query: Result<Query<SignedPayerQuery>, QueryRejection>,
) -> Result<Response, OpenAiError> {
    let query = SignedPayerQuery::read(query)?;
    let data: Vec<Value> = node
        .keys()
        .list_signed(&query.payer, query.signed().as_ref())?
        .iter()
        .map(key_object)
        .collect();
    Ok(axum::Json(json!({ "object": "list", "data": data })).into_response())
}

pub async fn revoke_key(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    query: Result<Query<SignedPayerQuery>, QueryRejection>,
) -> Result<Response, OpenAiError> {
    let query = SignedPayerQuery::read(query)?;
    let worker = Arc::clone(node.keys());
    let revoked = id.clone();
    blocking(move || worker.revoke_signed(query.payer, &revoked, query.signed().as_ref())).await?;
    Ok(axum::Json(json!({ "id": id, "object": "api_key", "revoked": true })).into_response())
}
