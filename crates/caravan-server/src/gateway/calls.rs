//! The paid calls, in OpenAI's wire format: classifications, embeddings and chat completions,
//! each authenticated by an API key (see [`crate::access`]), admitted under its
//! `Idempotency-Key`, charged once and answered with a signed receipt.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use caravan_core::keccak256;
use caravan_node::Node;
use caravan_node::auth::{Caller, Via};
use caravan_node::gateway::answer;
use caravan_node::gateway::chat::ChatAnswer;
use caravan_node::gateway::embeddings::{EmbeddingInput, EncodingFormat};
use caravan_node::gateway::idempotency::{Admission, Stored, request_id};
use caravan_node::gateway::{Gateway, GatewayError, Served};
use caravan_node::keys::ApiKey;
use serde::Deserialize;
use serde_json::Value;

use super::error::{OpenAiError, blocking, parse};
use super::wire;

/// The API key a key-guarded route's caller came with.
fn api_key(caller: Caller) -> ApiKey {
    match caller.via {
        Via::Key(key) => key,
        Via::Session { .. } => {
            unreachable!("the gateway's paid routes are guarded to take API keys only")
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifyBody {
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

pub async fn classify(
    State(node): State<Arc<Node>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OpenAiError> {
    let gateway = Arc::clone(node.gateway());
    let key = api_key(caller);
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
pub struct EmbeddingsBody {
    model: String,
    input: Value,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    dimensions: Option<u32>,
}

pub async fn embeddings(
    State(node): State<Arc<Node>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OpenAiError> {
    let gateway = Arc::clone(node.gateway());
    let key = api_key(caller);
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

pub async fn chat_completions(
    State(node): State<Arc<Node>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OpenAiError> {
    let gateway = Arc::clone(node.gateway());
    let key = api_key(caller);
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
