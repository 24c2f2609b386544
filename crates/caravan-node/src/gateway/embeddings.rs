//! Embedding models: a sentence encoder run in-process (all-MiniLM-L6-v2 on candle), registered
//! as a model asset with its price, and `POST /v1/embeddings` in OpenAI's wire format.
//!
//! Inputs are tokenised before anything is held, so the hold is the exact cost: the per-call
//! price plus the price per million tokens the model reads. Inputs longer than the model reads
//! (256 tokens with `[CLS]` and `[SEP]`) are cut, as sentence-transformers cuts them, and only
//! the tokens read are charged and reported as usage.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use base64::Engine;
use caravan_core::{Amount, CallPart, Hash32, keccak256};
use caravan_models::SentenceEncoder;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Gateway, GatewayError, Served};
use crate::keys::ApiKey;

/// The most inputs one request may carry (OpenAI's limit).
pub const MAX_INPUTS: usize = 2_048;
/// The most tokens one request may carry, after cutting each input to what the model reads.
pub const MAX_TOKENS_PER_REQUEST: usize = 300_000;

/// A sentence encoder a model asset serves. Its canonical JSON's keccak-256 is the model
/// asset's `content`, so the asset names exactly one set of weights and one price.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderServing {
    /// The encoder, as installed (all-MiniLM-L6-v2).
    pub encoder: String,
    /// keccak-256 of its weights file: the node refuses to serve other weights under this asset.
    pub weights: Hash32,
    pub dimensions: u32,
    /// Base units per million input tokens.
    #[serde(with = "caravan_core::serde_u128")]
    pub input_per_million: Amount,
}

impl EncoderServing {
    pub fn content_hash(&self) -> Hash32 {
        keccak256(
            serde_json::to_string(self)
                .expect("an encoder serialises")
                .as_bytes(),
        )
    }

    /// What a call reading `tokens` tokens costs, on top of the per-call price (rounded up).
    pub fn cost(&self, price_per_call: Amount, tokens: u64) -> Option<Amount> {
        Amount::from(tokens)
            .checked_mul(self.input_per_million)
            .map(|t| t.div_ceil(1_000_000))
            .and_then(|t| t.checked_add(price_per_call))
    }
}

/// The node's sentence encoder, loaded from the models folder on first use (it reads ~90 MB).
/// A failed load is not kept, so installing the model fixes a running node without a restart.
pub struct EncoderSlot {
    models_dir: PathBuf,
    loaded: Mutex<Option<Arc<SentenceEncoder>>>,
}

impl EncoderSlot {
    pub fn new(models_dir: PathBuf) -> EncoderSlot {
        EncoderSlot {
            models_dir,
            loaded: Mutex::new(None),
        }
    }

    /// The encoder; `weights` names the weights the caller needs, and other weights are refused.
    pub fn get(&self, weights: &Hash32) -> Result<Arc<SentenceEncoder>, GatewayError> {
        let mut loaded = self.loaded.lock().expect("encoder slot lock");
        let encoder = match &*loaded {
            Some(encoder) => Arc::clone(encoder),
            None => {
                let encoder = Arc::new(
                    SentenceEncoder::load_installed(&self.models_dir)
                        .map_err(|e| GatewayError::NotServed(e.to_string()))?,
                );
                *loaded = Some(Arc::clone(&encoder));
                encoder
            }
        };
        if encoder.weights_hash() != *weights {
            return Err(GatewayError::NotServed(format!(
                "this node's installed encoder weights are {}, but the model needs {weights}; install the weights it was registered with",
                encoder.weights_hash()
            )));
        }
        Ok(encoder)
    }
}

/// What a client asks to embed: text, texts, token ids or lists of token ids.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenLists(Vec<Vec<u32>>),
}

impl EmbeddingInput {
    /// The token ids the model reads for each input, or which input is wrong and why.
    pub fn tokenize(&self, encoder: &SentenceEncoder) -> Result<Vec<Vec<u32>>, GatewayError> {
        let count = match self {
            EmbeddingInput::Text(_) | EmbeddingInput::Tokens(_) => 1,
            EmbeddingInput::Texts(texts) => texts.len(),
            EmbeddingInput::TokenLists(lists) => lists.len(),
        };
        if count == 0 || count > MAX_INPUTS {
            return Err(bad_input(format!(
                "send 1 to {MAX_INPUTS} inputs (a string, an array of strings, an array of token ids or an array of such arrays); got {count}"
            )));
        }
        let at = |index: usize| {
            move |e: caravan_models::EncoderError| bad_input(format!("input {index}: {e}"))
        };
        let tokens: Vec<Vec<u32>> = match self {
            EmbeddingInput::Text(text) => vec![encoder.tokenize(text).map_err(at(0))?],
            EmbeddingInput::Texts(texts) => texts
                .iter()
                .enumerate()
                .map(|(i, t)| encoder.tokenize(t).map_err(at(i)))
                .collect::<Result<_, _>>()?,
            EmbeddingInput::Tokens(ids) => vec![encoder.frame_tokens(ids).map_err(at(0))?],
            EmbeddingInput::TokenLists(lists) => lists
                .iter()
                .enumerate()
                .map(|(i, ids)| encoder.frame_tokens(ids).map_err(at(i)))
                .collect::<Result<_, _>>()?,
        };
        let total: usize = tokens.iter().map(Vec::len).sum();
        if total > MAX_TOKENS_PER_REQUEST {
            return Err(bad_input(format!(
                "the inputs hold {total} tokens; one request may hold {MAX_TOKENS_PER_REQUEST}. Split them over several requests"
            )));
        }
        Ok(tokens)
    }
}

fn bad_input(message: String) -> GatewayError {
    GatewayError::BadParam {
        param: "input".into(),
        message,
    }
}

/// How embeddings are written in the response (`encoding_format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodingFormat {
    /// A JSON array of numbers.
    Float,
    /// The little-endian float32 bytes, base64-encoded: a quarter of the size on the wire.
    Base64,
}

/// One embedding as the response carries it.
pub fn embedding_value(vector: &[f32], format: EncodingFormat) -> Value {
    match format {
        EncodingFormat::Float => json!(vector),
        EncodingFormat::Base64 => {
            let bytes: Vec<u8> = vector.iter().flat_map(|v| v.to_le_bytes()).collect();
            json!(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
    }
}

impl Gateway {
    /// Embeds `input` with an embedding model, charging the per-call price plus the tokens the
    /// model reads (known before it runs, so the hold is the exact cost). Blocking: it waits
    /// for the charge to be durable.
    pub fn embed(
        &self,
        key: &ApiKey,
        model_name: &str,
        input: &EmbeddingInput,
        format: EncodingFormat,
        dimensions: Option<u32>,
        request: Option<Hash32>,
    ) -> Result<Served, GatewayError> {
        let model = self.resolve(model_name)?;
        let serving = self.encoder(&model.asset).ok_or_else(|| {
            GatewayError::NotServed(format!(
                "model {} is not an embedding model; GET /v1/models lists each model's kind",
                model.name
            ))
        })?;
        if let Some(asked) = dimensions.filter(|d| *d != serving.dimensions) {
            return Err(GatewayError::BadParam {
                param: "dimensions".into(),
                message: format!(
                    "{} gives {} numbers per embedding and cannot shorten them; leave dimensions out or send {} (asked for {asked})",
                    model.name, serving.dimensions, serving.dimensions
                ),
            });
        }
        let encoder = self.encoder.get(&serving.weights)?;
        let tokens = input.tokenize(&encoder)?;
        let count: usize = tokens.iter().map(Vec::len).sum();
        let cost = serving
            .cost(model.price_per_call, count as u64)
            .ok_or_else(|| GatewayError::BadRequest("the call's cost overflows 2^128".into()))?;
        let hold = self.hold(key, model.token, cost)?;
        let vectors = encoder
            .embed_tokens(&tokens)
            .map_err(|e| GatewayError::NotServed(e.to_string()))?;
        let trace = json!([{ "asset": model.asset, "model": model.name, "inputs": tokens.len(), "tokens": count, "cost": cost.to_string() }]);
        let (seq, at_ms) = self.charge(
            hold,
            key,
            &model,
            vec![CallPart {
                asset: model.asset,
                amount: cost,
                calls: 1,
            }],
            trace,
            request,
        )?;
        let data: Vec<Value> = vectors
            .iter()
            .enumerate()
            .map(|(index, vector)| {
                json!({
                    "object": "embedding",
                    "index": index,
                    "embedding": embedding_value(vector, format),
                })
            })
            .collect();
        let id = format!("emb-{seq}");
        let body = json!({
            "id": id,
            "object": "list",
            "model": model.name,
            "data": data,
            "usage": { "prompt_tokens": count, "total_tokens": count },
        });
        Ok(self.receipted(body, &id, key, &model, cost, 1, at_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_embeddings_are_little_endian_float32() {
        let vector = [1.0f32, -0.5, 0.25];
        let Value::String(text) = embedding_value(&vector, EncodingFormat::Base64) else {
            panic!("base64 is a string");
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap();
        let back: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(back, vector);
        assert_eq!(
            embedding_value(&vector, EncodingFormat::Float),
            json!([1.0, -0.5, 0.25])
        );
    }

    #[test]
    fn the_price_is_per_call_plus_per_million_tokens_rounded_up() {
        let serving = EncoderServing {
            encoder: "all-MiniLM-L6-v2".into(),
            weights: Hash32([7; 32]),
            dimensions: 384,
            input_per_million: 20_000,
        };
        assert_eq!(serving.cost(100, 1_000_000), Some(20_100));
        assert_eq!(
            serving.cost(0, 1),
            Some(1),
            "a fraction of a unit rounds up"
        );
        assert_eq!(serving.cost(0, 0), Some(0));
        assert_eq!(serving.cost(Amount::MAX, 1), None);
        let input: EmbeddingInput = serde_json::from_value(json!([[1, 2], [3]])).unwrap();
        assert!(matches!(input, EmbeddingInput::TokenLists(_)));
        let input: EmbeddingInput = serde_json::from_value(json!([101, 102])).unwrap();
        assert!(matches!(input, EmbeddingInput::Tokens(_)));
        let input: EmbeddingInput = serde_json::from_value(json!(["a", "b"])).unwrap();
        assert!(matches!(input, EmbeddingInput::Texts(_)));
        assert!(serde_json::from_value::<EmbeddingInput>(json!([1, "a"])).is_err());
    }
}
