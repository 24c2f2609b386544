//! `POST /v1/chat/completions` for upstream models: hold the bound, forward, meter, charge once.
//!
//! A streamed answer is relayed chunk by chunk. The charge is committed when the upstream
//! finishes, before the final `data: [DONE]`, and the signed receipt travels as an SSE comment
//! (`: caravan-receipt BASE64 SIGNATURE`), which OpenAI's clients skip. If the client goes away
//! first, dropping the relay charges what was produced so far and drops the upstream response,
//! which closes its connection and so cancels the generation.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use caravan_core::report::{certificate_hint, with_causes};
use caravan_core::{CallPart, Hash32};
use futures_util::{Stream, StreamExt};
use serde_json::{Value, json};

use super::answer::{self, RECEIPT_HEADER};
use super::idempotency::Stored;
use super::upstream::{Prepared, TokenUsage, Upstream, prepare, reported_usage, take_events};
use super::{Gateway, GatewayError, ServedModel};
use crate::keys::ApiKey;
use crate::meter::Hold;

/// A chat call's answer: whole (JSON, with its receipt in headers), or a stream of
/// server-sent-event frames that ends with the receipt as a comment and `data: [DONE]`.
pub enum ChatAnswer {
    Whole(Stored),
    Stream(FrameStream),
}

/// The frames of a streamed answer, each ready to send as it is.
pub type FrameStream = Pin<Box<dyn Stream<Item = Bytes> + Send>>;

/// Forgets an idempotency key whose request ended without a charge, unless it was finished.
struct Admitted {
    gateway: Arc<Gateway>,
    request: Option<Hash32>,
}

impl Admitted {
    fn finish(mut self, response: Stored) {
        if let Some(request) = self.request.take() {
            self.gateway.keep_answer(request, response);
        }
    }
}

impl Admitted {
    /// The request was charged: whatever happens to its response, a retry is not charged again.
    fn charged(mut self) {
        if let Some(request) = self.request.take() {
            self.gateway.idempotency().charged(request);
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(request) = self.request.take() {
            self.gateway.idempotency().abandon(request);
        }
    }
}

/// What a call is charged for, and how to charge it.
struct Metering {
    /// The call's id (`chatcmpl-` and 24 hex digits), chosen when it is admitted so that every
    /// streamed chunk, the whole answer and the receipt name the same call.
    id: String,
    gateway: Arc<Gateway>,
    key: ApiKey,
    /// What the client called: a chat model, or an agent.
    called: ServedModel,
    /// The chat model that answers (the called model itself, or the agent's chat step).
    chat_model: ServedModel,
    upstream: Upstream,
    /// Parts priced before the upstream answers: an agent's own price and its classifications.
    fixed: Vec<CallPart>,
    /// The steps so far, kept with the charge.
    trace: Vec<Value>,
    hold: Hold,
    request: Option<Hash32>,
}

impl Metering {
    /// Commits the charge for `usage` (never more than was held) and signs the receipt.
    /// Blocking: waits for the charge to be durable.
    fn settle(mut self, usage: TokenUsage) -> Result<super::Served, GatewayError> {
        let fixed: caravan_core::Amount = self.fixed.iter().map(|p| p.amount).sum();
        let chat_cost = self
            .upstream
            .cost(self.chat_model.price_per_call, usage)
            .min(self.hold.amount - fixed);
        self.trace.push(
            json!({ "asset": self.chat_model.asset, "model": self.chat_model.name,
            "upstream": self.upstream.model, "prompt_tokens": usage.prompt,
            "completion_tokens": usage.completion, "cost": chat_cost.to_string() }),
        );
        let mut parts = std::mem::take(&mut self.fixed);
        parts.push(CallPart {
            asset: self.chat_model.asset,
            amount: chat_cost,
            calls: 1,
        });
        parts.retain(|part| part.amount > 0);
        let total = fixed + chat_cost;
        let (_, at_ms) = self.gateway.charge(
            self.hold,
            &self.key,
            &self.called,
            parts,
            Value::from(std::mem::take(&mut self.trace)),
            self.request,
        )?;
        Ok(self.gateway.receipted(
            json!({ "id": self.id }),
            &self.id,
            &self.key,
            &self.called,
            total,
            1,
            at_ms,
        ))
    }
}

/// A call planned before it is forwarded: which chat model answers, what is already priced, and
/// the body to send.
struct Plan {
    chat_model: ServedModel,
    fixed: Vec<CallPart>,
    trace: Vec<Value>,
    body: Value,
}

/// Plans a call to `called`: a chat model is forwarded as it is; an agent first runs its
/// classification step and puts its system message before the conversation.
fn plan(gateway: &Gateway, called: &ServedModel, mut body: Value) -> Result<Plan, GatewayError> {
    let Some(program) = gateway.agent(&called.asset) else {
        return Ok(Plan {
            chat_model: called.clone(),
            fixed: Vec::new(),
            trace: Vec::new(),
            body,
        });
    };
    let mut fixed = vec![CallPart {
        asset: called.asset,
        amount: called.price_per_call,
        calls: 1,
    }];
    let mut trace = vec![json!({ "asset": called.asset, "agent": called.name,
        "cost": called.price_per_call.to_string() })];
    let component = |asset: &caravan_core::AssetId| -> Result<ServedModel, GatewayError> {
        let model = gateway.resolve(&asset.to_string())?;
        if model.token != called.token {
            return Err(GatewayError::NotServed(format!(
                "agent {} calls {}, which is priced in another token; one call is charged in one token",
                called.name, model.name
            )));
        }
        Ok(model)
    };
    let mut label = None;
    if let Some(step) = &program.classify {
        let classifier_model = component(&step.model)?;
        let classifier = gateway.classifier(&classifier_model)?;
        let message = body["messages"]
            .as_array()
            .and_then(|messages| {
                messages
                    .iter()
                    .rev()
                    .find(|m| m["role"] == "user")
                    .and_then(|m| m["content"].as_str())
            })
            .ok_or_else(|| {
                GatewayError::BadRequest(format!(
                    "agent {} classifies the last user message, and there is none with text content",
                    called.name
                ))
            })?
            .to_owned();
        let prediction = classifier
            .predict(&json!({ step.field.as_str(): message }))
            .map_err(|e| GatewayError::NotServed(format!("agent {}: {e}", called.name)))?;
        fixed.push(CallPart {
            asset: classifier_model.asset,
            amount: classifier_model.price_per_call,
            calls: 1,
        });
        trace.push(
            json!({ "asset": classifier_model.asset, "model": classifier_model.name,
            "label": prediction.label, "confidence": prediction.confidence,
            "cost": classifier_model.price_per_call.to_string() }),
        );
        label = Some(prediction.label);
    }
    let chat_model = component(&program.chat.model)?;
    let system = program.system_message(label.as_deref());
    if let Some(messages) = body["messages"].as_array_mut()
        && !system.is_empty()
    {
        messages.insert(0, json!({ "role": "system", "content": system }));
    }
    Ok(Plan {
        chat_model,
        fixed,
        trace,
        body,
    })
}

/// A new chat call id: `chatcmpl-` and 24 random hex digits, as OpenAI's look.
fn call_id() -> String {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).expect("the operating system's random source works");
    format!(
        "chatcmpl-{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// The most bytes a `max_tokens` field adds to a request body.
const MAX_TOKENS_FIELD_BYTES: u64 = 32;

/// Serves a chat completion for an upstream model. `request` is the idempotency id, already
/// admitted by the caller.
pub async fn chat_completions(
    gateway: Arc<Gateway>,
    key: ApiKey,
    body: Value,
    body_bytes: usize,
    request: Option<Hash32>,
) -> Result<ChatAnswer, GatewayError> {
    let admitted = Admitted {
        gateway: Arc::clone(&gateway),
        request,
    };
    let name = body
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| GatewayError::BadParam {
            param: "model".into(),
            message: "model is required: the name of a model from GET /v1/models".into(),
        })?
        .to_owned();
    let called = gateway.resolve(&name)?;
    let plan = plan(&gateway, &called, body)?;
    let upstream = gateway.upstream(&plan.chat_model.asset).ok_or_else(|| {
        GatewayError::NotServed(format!(
            "model {} is a classifier, not a chat model; call POST /v1/classifications with it",
            plan.chat_model.name
        ))
    })?;
    let prepared = prepare(plan.body, &upstream, body_bytes).map_err(GatewayError::BadRequest)?;
    let fixed: caravan_core::Amount = plan.fixed.iter().map(|p| p.amount).sum();
    let bound = fixed + upstream.cost(plan.chat_model.price_per_call, prepared.bound);
    let hold = gateway
        .hold(&key, called.token, bound)
        .map_err(|refused| match refused {
            GatewayError::InsufficientQuota {
                payer,
                token,
                needed,
                available,
            } => GatewayError::ChatReserveTooLarge {
                payer,
                token,
                needed,
                available,
                completion_tokens: prepared.bound.completion,
                prompt_tokens: prepared.bound.prompt,
                // The prompt is bounded by the body's size, and a retry that sets max_tokens
                // adds up to `,"max_tokens":4294967295` to it.
                fits: upstream
                    .completion_fits(
                        available,
                        fixed,
                        plan.chat_model.price_per_call,
                        prepared.bound.prompt + MAX_TOKENS_FIELD_BYTES,
                    )
                    .filter(|tokens| *tokens < prepared.bound.completion),
            },
            other => other,
        })?;
    let upstream_failed = |why: String| GatewayError::Upstream {
        model: name.clone(),
        why,
    };
    let mut forward = gateway
        .http()
        .post(upstream.chat_url())
        .json(&prepared.body);
    if let Some(variable) = &upstream.api_key_env {
        let secret = std::env::var(variable).map_err(|_| {
            upstream_failed(format!(
                "its API key is read from the environment variable {variable}, which the node was started without"
            ))
        })?;
        forward = forward.bearer_auth(secret);
    }
    let response = forward.send().await.map_err(|e| {
        let causes = with_causes(&e);
        upstream_failed(if e.is_timeout() {
            format!(
                "{} did not answer in time ({causes}); it may be overloaded or hung",
                upstream.chat_url()
            )
        } else {
            format!(
                "cannot reach {} ({causes}); is the server running?{}",
                upstream.chat_url(),
                certificate_hint(&causes)
            )
        })
    })?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        let text: String = text.chars().take(500).collect();
        return Err(upstream_failed(format!("it answered {status}: {text}")));
    }
    let metering = Metering {
        id: call_id(),
        gateway: Arc::clone(&gateway),
        key,
        called,
        chat_model: plan.chat_model,
        upstream,
        fixed: plan.fixed,
        trace: plan.trace,
        hold,
        request,
    };
    if prepared.stream {
        return Ok(ChatAnswer::Stream(relay(
            metering,
            prepared,
            admitted,
            Box::pin(response.bytes_stream()),
        )));
    }
    let mut answer: Value = response
        .json()
        .await
        .map_err(|e| upstream_failed(format!("its answer is not JSON: {e}")))?;
    let usage = reported_usage(&answer).unwrap_or(TokenUsage {
        prompt: prepared.prompt_estimate,
        completion: answer["choices"][0]["message"]["content"]
            .as_str()
            .map_or(0, |c| c.len().div_ceil(4) as u64),
    });
    answer["model"] = json!(metering.called.name);
    let settle = move || {
        let served = metering.settle(usage)?;
        answer["id"] = served.body["id"].clone();
        let stored = answer::stored(&served, Bytes::from(answer.to_string()));
        admitted.finish(stored.clone());
        Ok::<_, GatewayError>(stored)
    };
    // The charge, the receipt and keeping the answer for a retry run to the end even if the
    // client goes away meanwhile: a charge that only queues never waits, so it runs right here
    // (nothing in it can be interrupted); one that waits for its commit runs on a blocking thread.
    let stored = if gateway.answers_before_commit() {
        settle()?
    } else {
        tokio::task::spawn_blocking(settle)
            .await
            .map_err(|e| GatewayError::Internal(format!("the charge's task failed: {e}")))??
    };
    Ok(ChatAnswer::Whole(stored))
}

type UpstreamBytes = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// The relay between the upstream's stream and the client's.
struct Relay {
    upstream: UpstreamBytes,
    buffer: Vec<u8>,
    out: VecDeque<Bytes>,
    metering: Option<Metering>,
    admitted: Option<Admitted>,
    model_name: String,
    /// The id every chunk carries, the receipt's.
    call_id: String,
    client_wants_usage: bool,
    reported: Option<TokenUsage>,
    content_chunks: u64,
    prompt_estimate: u64,
    /// Everything sent so far, kept for replay under an idempotency key.
    transcript: Vec<u8>,
    finished: bool,
}

impl Relay {
    fn usage(&self) -> TokenUsage {
        self.reported.unwrap_or(TokenUsage {
            prompt: self.prompt_estimate,
            completion: self.content_chunks,
        })
    }

    fn emit(&mut self, text: String) {
        self.transcript.extend_from_slice(text.as_bytes());
        self.out.push_back(Bytes::from(text));
    }

    /// Handles one upstream event; returns true at `[DONE]`.
    fn relay_event(&mut self, event: &str) -> bool {
        if event == "[DONE]" {
            return true;
        }
        let Ok(mut chunk) = serde_json::from_str::<Value>(event) else {
            // Not JSON: pass it through untouched.
            self.emit(format!("data: {event}\n\n"));
            return false;
        };
        if let Some(usage) = reported_usage(&chunk) {
            self.reported = Some(usage);
        }
        let has_content = chunk["choices"].as_array().into_iter().flatten().any(|c| {
            c["delta"]["content"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
        });
        self.content_chunks += u64::from(has_content);
        if chunk.get("model").is_some() {
            chunk["model"] = json!(self.model_name);
        }
        if chunk.get("id").is_some() {
            chunk["id"] = json!(self.call_id);
        }
        if !self.client_wants_usage {
            if let Some(object) = chunk.as_object_mut() {
                object.remove("usage");
            }
            if chunk["choices"].as_array().is_some_and(Vec::is_empty) {
                return false;
            }
        }
        self.emit(format!("data: {chunk}\n\n"));
        false
    }

    /// Charges the call and ends the stream with the receipt and `[DONE]`.
    async fn finish(&mut self) {
        self.finished = true;
        let Some(metering) = self.metering.take() else {
            return;
        };
        let usage = self.usage();
        // The charge and marking the request charged happen together on a blocking thread, which
        // finishes even if the client goes away meanwhile: a retry then is never charged again.
        let admitted = self.admitted.take();
        let kept = admitted
            .as_ref()
            .and_then(|a| a.request.map(|request| (Arc::clone(&a.gateway), request)));
        let settled = tokio::task::spawn_blocking(move || {
            let served = metering.settle(usage)?;
            if let Some(admitted) = admitted {
                admitted.charged();
            }
            Ok::<_, GatewayError>(served)
        });
        match settled.await {
            Ok(Ok(served)) => {
                let receipt =
                    base64::engine::general_purpose::STANDARD.encode(served.receipt.as_bytes());
                self.emit(format!(
                    ": {RECEIPT_HEADER} {receipt} {}\n\n",
                    served.signature
                ));
                self.emit("data: [DONE]\n\n".into());
                if let Some((gateway, request)) = kept {
                    gateway.keep_answer(
                        request,
                        Stored {
                            status: 200,
                            headers: vec![("content-type".into(), "text/event-stream".into())],
                            body: Bytes::from(std::mem::take(&mut self.transcript)),
                        },
                    );
                }
            }
            Ok(Err(error)) => {
                let body = json!({ "error": { "message": error.to_string(), "type": "api_error",
                    "param": null, "code": "charge_failed" } });
                self.emit(format!("data: {body}\n\n"));
            }
            Err(error) => {
                let body = json!({ "error": { "message": format!("the charge failed inside the node: {error}"),
                    "type": "api_error", "param": null, "code": "internal" } });
                self.emit(format!("data: {body}\n\n"));
            }
        }
    }

    async fn next_frame(&mut self) -> Option<Bytes> {
        loop {
            if let Some(frame) = self.out.pop_front() {
                return Some(frame);
            }
            if self.finished {
                return None;
            }
            match self.upstream.next().await {
                Some(Ok(bytes)) => {
                    self.buffer.extend_from_slice(&bytes);
                    let mut done = false;
                    for event in take_events(&mut self.buffer) {
                        done = self.relay_event(&event) || done;
                    }
                    if done {
                        self.finish().await;
                    }
                }
                Some(Err(error)) => {
                    let body = json!({ "error": { "message": format!("the upstream stream broke off: {error}"),
                        "type": "api_error", "param": null, "code": "upstream_error" } });
                    self.emit(format!("data: {body}\n\n"));
                    self.finish().await;
                }
                None => self.finish().await,
            }
        }
    }
}

impl Drop for Relay {
    /// The client went away before the end: charge what was produced. Dropping `upstream`
    /// (after this) closes the upstream connection, which stops the generation.
    fn drop(&mut self) {
        if let Some(metering) = self.metering.take() {
            let admitted = self.admitted.take();
            let usage = self.usage();
            tokio::task::spawn_blocking(move || match metering.settle(usage) {
                Ok(_) => {
                    if let Some(admitted) = admitted {
                        admitted.charged();
                    }
                }
                Err(error) => eprintln!("a stream the client left could not be charged: {error}"),
            });
        }
    }
}

/// The frames relayed from the upstream's stream, metered as they pass.
fn relay(
    metering: Metering,
    prepared: Prepared,
    admitted: Admitted,
    upstream: UpstreamBytes,
) -> FrameStream {
    let relay = Relay {
        upstream,
        buffer: Vec::new(),
        out: VecDeque::new(),
        model_name: metering.called.name.clone(),
        call_id: metering.id.clone(),
        metering: Some(metering),
        admitted: Some(admitted),
        client_wants_usage: prepared.client_wants_usage,
        reported: None,
        content_chunks: 0,
        prompt_estimate: prepared.prompt_estimate,
        transcript: Vec::new(),
        finished: false,
    };
    Box::pin(futures_util::stream::unfold(
        relay,
        |mut relay| async move { relay.next_frame().await.map(|frame| (frame, relay)) },
    ))
}
