//! The gateway on HTTP, in OpenAI's wire format: errors are
//! `{"error": {"message", "type", "param", "code"}}`, lists are `{"object": "list", "data": […]}`,
//! and keys come as `Authorization: Bearer …`, so OpenAI's own clients work unchanged.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use caravan_core::{AccountRef, Address, Signature65, keccak256};
use serde::Deserialize;
use serde_json::{Value, json};

use caravan_node::Node;
use caravan_node::gateway::answer;
use caravan_node::gateway::chat::ChatAnswer;
use caravan_node::gateway::embeddings::{EmbeddingInput, EncodingFormat};
use caravan_node::gateway::idempotency::{Admission, Stored, request_id};
use caravan_node::gateway::{Gateway, GatewayError, Served, ServedModel};
use caravan_node::keys::{ApiKey, KeyError, KeysError, PayerSignature, Scope};

use super::wire;

pub use caravan_node::gateway::answer::{
    NODE_HEADER, RECEIPT_HEADER, REPLAYED_HEADER, SIGNATURE_HEADER,
};

/// The gateway's routes.
pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/v1/models", get(list_models))
        .route("/v1/models/{model}", get(get_model))
        .route(
            "/v1/models/{model}/attestations",
            post(attest).get(list_attestations),
        )
        .route("/v1/classifications", post(classify))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/keys", post(issue_key).get(list_keys))
        .route("/v1/keys/{id}", delete(revoke_key))
        .route("/v1/balance", get(balance))
        .route("/v1/node", get(node_identity))
        .with_state(node)
}

/// An error in OpenAI's shape.
#[derive(Debug)]
pub struct OpenAiError {
    status: StatusCode,
    kind: &'static str,
    code: &'static str,
    param: Option<String>,
    message: String,
}

impl OpenAiError {
    fn invalid(code: &'static str, param: Option<&str>, message: impl ToString) -> OpenAiError {
        OpenAiError {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            code,
            param: param.map(str::to_owned),
            message: message.to_string(),
        }
    }

    fn with_status(mut self, status: StatusCode) -> OpenAiError {
        self.status = status;
        self
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }});
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<GatewayError> for OpenAiError {
    fn from(error: GatewayError) -> OpenAiError {
        let message = error.to_string();
        match error {
            GatewayError::Key(key) => {
                let (status, code) = match key {
                    KeyError::Missing => (StatusCode::UNAUTHORIZED, "missing_api_key"),
                    KeyError::Invalid => (StatusCode::UNAUTHORIZED, "invalid_api_key"),
                    KeyError::Expired { .. } => (StatusCode::UNAUTHORIZED, "expired_api_key"),
                    KeyError::Scope { .. } => (StatusCode::FORBIDDEN, "insufficient_scope"),
                    KeyError::Unsigned { .. } => (StatusCode::UNAUTHORIZED, "signature_required"),
                    KeyError::StaleSignature { .. } => {
                        (StatusCode::UNAUTHORIZED, "signature_expired")
                    }
                    KeyError::BadSignature(_) => (StatusCode::UNAUTHORIZED, "invalid_signature"),
                    KeyError::SignatureReused => (StatusCode::CONFLICT, "signature_reused"),
                };
                OpenAiError::invalid(code, None, message).with_status(status)
            }
            GatewayError::BadRequest(_) => OpenAiError::invalid("invalid_request", None, message),
            GatewayError::BadParam { param, .. } => {
                OpenAiError::invalid("invalid_value", Some(&param), message)
            }
            GatewayError::UnknownModel(_) => {
                OpenAiError::invalid("model_not_found", Some("model"), message)
                    .with_status(StatusCode::NOT_FOUND)
            }
            GatewayError::NotServed(_) => {
                OpenAiError::invalid("model_not_served", Some("model"), message)
            }
            GatewayError::InsufficientQuota { .. } => OpenAiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                kind: "insufficient_quota",
                code: "insufficient_quota",
                param: None,
                message,
            },
            GatewayError::Upstream { .. } => OpenAiError {
                status: StatusCode::BAD_GATEWAY,
                kind: "api_error",
                code: "upstream_error",
                param: None,
                message,
            },
            GatewayError::Refused(_) => {
                OpenAiError::invalid("refused", None, message).with_status(StatusCode::CONFLICT)
            }
            GatewayError::Store(_) => OpenAiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                kind: "api_error",
                code: "storage_unavailable",
                param: None,
                message,
            },
            GatewayError::Corrupt(_) => OpenAiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                kind: "api_error",
                code: "corrupt_record",
                param: None,
                message,
            },
        }
    }
}

impl From<KeysError> for OpenAiError {
    fn from(error: KeysError) -> OpenAiError {
        let message = error.to_string();
        match error {
            KeysError::Key(key) => GatewayError::Key(key).into(),
            KeysError::BadParam { param, .. } => {
                OpenAiError::invalid("invalid_value", Some(param), message)
            }
            KeysError::Refused(_) => {
                OpenAiError::invalid("refused", None, message).with_status(StatusCode::CONFLICT)
            }
            KeysError::Store(_) => OpenAiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                kind: "api_error",
                code: "storage_unavailable",
                param: None,
                message,
            },
            KeysError::Corrupt(_) => OpenAiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                kind: "api_error",
                code: "corrupt_record",
                param: None,
                message,
            },
        }
    }
}

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

fn authenticate(
    gateway: &Gateway,
    headers: &HeaderMap,
    scope: Scope,
) -> Result<ApiKey, OpenAiError> {
    Ok(gateway.authenticate(authorization(headers), scope)?)
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, OpenAiError> {
    serde_json::from_slice(body).map_err(|e| {
        OpenAiError::invalid(
            "invalid_json",
            None,
            format!("the request body is not what this endpoint takes: {e}"),
        )
    })
}

/// Runs blocking gateway work (which waits for durable storage) off the async threads.
async fn blocking<T: Send + 'static, E: Into<OpenAiError> + Send + 'static>(
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, OpenAiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| OpenAiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "api_error",
            code: "internal",
            param: None,
            message: format!("the request failed inside the node: {e}"),
        })?
        .map_err(Into::into)
}

fn model_object(gateway: &Gateway, model: &ServedModel) -> Value {
    json!({
        "id": model.name,
        "object": "model",
        "created": 0,
        "owned_by": "caravan",
        "asset": model.asset,
        "kind": model.kind.name(),
        "endpoint": gateway.endpoint(model),
        "price_per_call": model.price_per_call.to_string(),
        "token": model.token,
    })
}

async fn list_models(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
) -> Result<Response, OpenAiError> {
    let gateway = Arc::clone(node.gateway());
    authenticate(&gateway, &headers, Scope::Models)?;
    let data: Vec<Value> = gateway
        .models()
        .iter()
        .map(|model| model_object(&gateway, model))
        .collect();
    Ok(axum::Json(json!({ "object": "list", "data": data })).into_response())
}

async fn get_model(
    State(node): State<Arc<Node>>,
    Path(model): Path<String>,
    headers: HeaderMap,
) -> Result<Response, OpenAiError> {
    let gateway = Arc::clone(node.gateway());
    authenticate(&gateway, &headers, Scope::Models)?;
    let model = gateway.resolve(&model)?;
    Ok(axum::Json(model_object(&gateway, &model)).into_response())
}

/// A validator's signed evaluation, as posted: the model comes from the path.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttestBody {
    validator: Address,
    dataset: caravan_core::Hash32,
    metric: String,
    value_micros: u64,
    issued_at_ms: u64,
    signature: caravan_core::Signature65,
}

async fn attest(
    State(node): State<Arc<Node>>,
    Path(model): Path<String>,
    body: Bytes,
) -> Result<Response, OpenAiError> {
    let gateway = Arc::clone(node.gateway());
    let parsed: AttestBody = parse(&body)?;
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
                signature: parsed.signature,
            },
        )
    })
    .await?;
    Ok((StatusCode::CREATED, axum::Json(attestation)).into_response())
}

async fn list_attestations(
    State(node): State<Arc<Node>>,
    Path(model): Path<String>,
) -> Result<Response, OpenAiError> {
    let gateway = Arc::clone(node.gateway());
    let data = gateway.attestations(&model)?;
    Ok(axum::Json(json!({ "object": "list", "data": data })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassifyBody {
    model: String,
    /// One object of item fields, or an array of them.
    input: Value,
}

/// The request's `Idempotency-Key`, checked: 1 to 255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, OpenAiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .ok()
        .filter(|t| !t.is_empty() && t.len() <= 255 && t.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            OpenAiError::invalid(
                "invalid_idempotency_key",
                None,
                "Idempotency-Key must be 1 to 255 visible ASCII characters (a UUID is a good choice)",
            )
        })?;
    Ok(Some(text.to_owned()))
}

/// Admits a paid request under its idempotency key (if any): `Ok(None)` to run it, or the
/// response to give instead.
fn admit(
    gateway: &Gateway,
    key: &ApiKey,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Option<caravan_core::Hash32>, Option<Response>), OpenAiError> {
    let Some(idempotency) = idempotency_key(headers)? else {
        return Ok((None, None));
    };
    let request = request_id(&key.payer, &idempotency);
    let conflict = |code, message: &str| {
        OpenAiError::invalid(code, None, message).with_status(StatusCode::CONFLICT)
    };
    match gateway.admit_keyed(request, keccak256(body))? {
        Admission::Run => Ok((Some(request), None)),
        Admission::Replay(stored) => Ok((
            None,
            Some(wire::into_response(stored, gateway.node(), true)),
        )),
        Admission::InFlight => Err(conflict(
            "idempotency_in_progress",
            "a request with this Idempotency-Key is still running; retry in a moment to get its result",
        )),
        Admission::DifferentBody => Err(OpenAiError::invalid(
            "idempotency_key_reused",
            None,
            "this Idempotency-Key was used for a different request body; use a new key for a new request",
        )),
        Admission::ChargedEarlier => Err(conflict(
            "idempotency_key_charged",
            "a request with this Idempotency-Key was already served and charged, and its result was not kept (the client left before it finished, the answer was too large to keep, or the node stopped before keeping it); it will not be charged again",
        )),
    }
}

async fn classify(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OpenAiError> {
    let gateway = Arc::clone(node.gateway());
    let key = authenticate(&gateway, &headers, Scope::Classify)?;
    let parsed: ClassifyBody = parse(&body)?;
    let inputs = match parsed.input {
        Value::Array(items) => items,
        Value::Object(_) => vec![parsed.input],
        _ => {
            return Err(OpenAiError::invalid(
                "invalid_value",
                Some("input"),
                "input must be an object of item fields or an array of such objects",
            ));
        }
    };
    let (request, replay) = admit(&gateway, &key, &headers, &body)?;
    if let Some(replay) = replay {
        return Ok(replay);
    }
    let worker = Arc::clone(&gateway);
    let stored = blocking(move || {
        let served = worker.classify(&key, &parsed.model, inputs, request);
        keep_for_replay(&worker, served, request)
    })
    .await?;
    Ok(wire::into_response(stored, gateway.node(), false))
}

/// `POST /v1/embeddings` as OpenAI takes it; fields other clients send (`user`) are ignored.
#[derive(Deserialize)]
struct EmbeddingsBody {
    model: String,
    input: Value,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    dimensions: Option<u32>,
}

async fn embeddings(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OpenAiError> {
    let gateway = Arc::clone(node.gateway());
    let key = authenticate(&gateway, &headers, Scope::Embeddings)?;
    let parsed: EmbeddingsBody = parse(&body)?;
    let input: EmbeddingInput = serde_json::from_value(parsed.input).map_err(|_| {
        OpenAiError::invalid(
            "invalid_value",
            Some("input"),
            "input must be a string, an array of strings, an array of token ids, or an array of arrays of token ids",
        )
    })?;
    let format = match parsed.encoding_format.as_deref() {
        None | Some("float") => EncodingFormat::Float,
        Some("base64") => EncodingFormat::Base64,
        Some(other) => {
            return Err(OpenAiError::invalid(
                "invalid_value",
                Some("encoding_format"),
                format!("encoding_format must be \"float\" or \"base64\", not {other:?}"),
            ));
        }
    };
    let (request, replay) = admit(&gateway, &key, &headers, &body)?;
    if let Some(replay) = replay {
        return Ok(replay);
    }
    let worker = Arc::clone(&gateway);
    let stored = blocking(move || {
        let served = worker.embed(
            &key,
            &parsed.model,
            &input,
            format,
            parsed.dimensions,
            request,
        );
        keep_for_replay(&worker, served, request)
    })
    .await?;
    Ok(wire::into_response(stored, gateway.node(), false))
}

/// Keeps a served call's answer for retries under its idempotency key (or lets the key go
/// when the call failed), and returns what to send. Runs on the blocking thread, which
/// finishes even if the client goes away: a charged call's answer is never lost to a retry.
fn keep_for_replay(
    gateway: &Gateway,
    served: Result<Served, GatewayError>,
    request: Option<caravan_core::Hash32>,
) -> Result<Stored, GatewayError> {
    let stored = served.map(|served| answer::stored(&served, Bytes::from(served.body.to_string())));
    if let Some(id) = request {
        match &stored {
            Ok(stored) => gateway.keep_answer(id, stored.clone()),
            Err(_) => gateway.idempotency().abandon(id),
        }
    }
    stored
}

async fn chat_completions(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OpenAiError> {
    let gateway = Arc::clone(node.gateway());
    let key = authenticate(&gateway, &headers, Scope::Chat)?;
    let parsed: Value = parse(&body)?;
    let (request, replay) = admit(&gateway, &key, &headers, &body)?;
    if let Some(replay) = replay {
        return Ok(replay);
    }
    let node_address = gateway.node();
    Ok(
        match caravan_node::gateway::chat::chat_completions(
            gateway,
            key,
            parsed,
            body.len(),
            request,
        )
        .await?
        {
            ChatAnswer::Whole(stored) => wire::into_response(stored, node_address, false),
            ChatAnswer::Stream(frames) => wire::event_stream(frames, node_address),
        },
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueBody {
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

/// Issues a key for the payer that signed the request (see [`super::keys`]); the secret is in
/// this one answer only.
async fn issue_key(State(node): State<Arc<Node>>, body: Bytes) -> Result<Response, OpenAiError> {
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
struct SignedPayerQuery {
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

async fn list_keys(
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

async fn revoke_key(
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

/// The node's identity, which needs no key: the address its receipts are signed with, which a
/// payer's wallet also names in every key request it signs for this node.
async fn node_identity(State(node): State<Arc<Node>>) -> Response {
    axum::Json(json!({ "object": "node", "address": node.gateway().node() })).into_response()
}

async fn balance(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
) -> Result<Response, OpenAiError> {
    let gateway = Arc::clone(node.gateway());
    let key = authenticate(&gateway, &headers, Scope::Models)?;
    let balances: Vec<Value> = gateway.journal().read(|j| {
        let economy = j.economy();
        economy
            .tokens()
            .values()
            .map(|token| {
                let available = economy
                    .ledger()
                    .balance(&AccountRef::Payer(key.payer), &token.address)
                    .available();
                let held = gateway.meter().held(&key.payer, &token.address);
                json!({
                    "token": token.address,
                    "symbol": token.symbol,
                    "decimals": token.decimals,
                    "available": available.saturating_sub(held).to_string(),
                    "held": held.to_string(),
                })
            })
            .collect()
    });
    Ok(axum::Json(json!({ "payer": key.payer, "balances": balances })).into_response())
}
