//! Signing in with a wallet (EIP-4361) over HTTP: a nonce the node made, the signed message in
//! exchange for a session cookie, who the session is, and signing out.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use caravan_core::Address;
use caravan_node::Node;
use caravan_node::auth::{Caller, Via};
use caravan_node::sessions::Session;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::access::{cleared_cookie_header, session_cookie, session_cookie_header};
use crate::error::{ApiError, JsonBody, blocking};

#[derive(Deserialize)]
pub struct NonceQuery {
    /// With it, the answer also holds the exact message for this account to sign.
    #[serde(default)]
    address: Option<Address>,
    /// The chain id the message names (the first the node knows when left out).
    #[serde(default)]
    chain_id: Option<u64>,
}

/// A nonce and everything a wallet's message must say to sign in here.
pub async fn nonce(
    State(node): State<Arc<Node>>,
    query: Result<Query<NonceQuery>, QueryRejection>,
) -> Result<axum::Json<Value>, ApiError> {
    let query = ApiError::query(query)?;
    let sessions = Arc::clone(node.sessions());
    let challenge = blocking(move || sessions.challenge()).await?;
    let mut answer = json!({
        "nonce": challenge.nonce,
        "domain": challenge.domain,
        "uri": challenge.uri,
        "version": "1",
        "chain_ids": challenge.chain_ids,
        "statement": challenge.statement,
        "issued_at": challenge.issued_at.text,
        "expires_at": challenge.expires_at.text,
        "expires_at_ms": challenge.expires_at.ms,
    });
    if let Some(address) = query.address {
        let chain_id = query
            .chain_id
            .or_else(|| challenge.chain_ids.first().copied())
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no_chain",
                    "this node settles on no chain, so no sign-in message can name one; the operator adds a chain with `caravan chain add`",
                )
            })?;
        answer["message"] = json!(challenge.message(&address, chain_id).to_string());
    }
    Ok(axum::Json(answer))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// The EIP-4361 message, exactly as signed.
    message: String,
    /// The wallet's `personal_sign` signature over it (hex).
    signature: String,
}

fn session_json(node: &Node, session: &Session) -> Value {
    json!({
        "account": session.account,
        "expires_at_ms": session.expires_ms,
        "operator": node.is_operator(&session.account),
    })
}

/// Opens a session for the message's account and sets its cookie.
pub async fn sign_in(
    State(node): State<Arc<Node>>,
    JsonBody(body): JsonBody<SignIn>,
) -> Result<Response, ApiError> {
    let sessions = Arc::clone(node.sessions());
    let opened = blocking(move || sessions.sign_in(&body.message, &body.signature)).await?;
    let now_ms = caravan_store::now_ms();
    let max_age_s = opened.session.expires_ms.saturating_sub(now_ms) / 1000;
    let secure = node.sessions().origin().is_https();
    let mut response = axum::Json(session_json(&node, &opened.session)).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie_header(&opened.secret, max_age_s, secure),
    );
    Ok(response)
}

/// Who the session is.
pub async fn session(
    State(node): State<Arc<Node>>,
    Extension(caller): Extension<Caller>,
) -> axum::Json<Value> {
    let expires_ms = match caller.via {
        Via::Session { expires_ms } => expires_ms,
        Via::Key(_) => unreachable!("the session route is guarded to take sessions only"),
    };
    axum::Json(session_json(
        &node,
        &Session {
            account: caller.account,
            expires_ms,
        },
    ))
}

/// Ends the session and clears its cookie.
pub async fn sign_out(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let secret = session_cookie(&headers).unwrap_or_default().to_owned();
    let sessions = Arc::clone(node.sessions());
    blocking(move || sessions.sign_out(&secret)).await?;
    let secure = node.sessions().origin().is_https();
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, cleared_cookie_header(secure));
    Ok(response)
}
