//! Upstream models: any OpenAI-compatible server (vLLM, llama.cpp, Ollama …) registered as a
//! model asset with its prices, and chat completions forwarded to it, streamed or not.
//!
//! Pricing is a fixed price per call (the asset's licence) plus a price per million prompt and
//! completion tokens. Before forwarding, the gateway holds the most the call can cost: the
//! request body's length bounds its prompt tokens (a token is at least one byte), and
//! `max_tokens` bounds the completion (the gateway sets it to [`DEFAULT_MAX_TOKENS`] when the
//! client did not). It always asks the upstream for usage (`stream_options.include_usage`), so
//! a streamed call is metered whether or not the client asked to see usage; it strips the usage
//! chunk for clients that did not ask. When a stream ends without usage — the client went away,
//! or the upstream broke off — the call is charged for what was produced: one completion token
//! per content chunk and a quarter of the prompt's bytes as prompt tokens; dropping the upstream
//! response closes its connection, which cancels the generation.

use caravan_core::{Amount, Hash32, keccak256};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The completion bound the gateway sets when a client sends no `max_tokens`.
pub const DEFAULT_MAX_TOKENS: u64 = 4_096;

/// How long connecting to an upstream may take before the call fails (and costs nothing).
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long an upstream may stay silent — before its first byte, or between two chunks of a
/// stream — before the call fails: long enough for a loaded server's first token on a long
/// prompt, short enough that a hung server does not hold a payer's money and a connection
/// for ever. What was produced before the silence is charged, as for any broken stream.
pub const SILENCE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// A client builder with the upstream timeouts set; add trust roots before building.
pub fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(SILENCE_TIMEOUT)
}

/// An upstream server a model asset forwards to. Its canonical JSON's keccak-256 is the model
/// asset's `content`, so the asset names exactly one upstream configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// The server's OpenAI base URL, e.g. `http://127.0.0.1:8000/v1`.
    pub base_url: String,
    /// The model name the upstream knows it by.
    pub model: String,
    /// Base units per million prompt tokens.
    #[serde(with = "caravan_core::serde_u128")]
    pub prompt_per_million: Amount,
    /// Base units per million completion tokens.
    #[serde(with = "caravan_core::serde_u128")]
    pub completion_per_million: Amount,
    /// The environment variable holding the upstream's own API key, if it needs one. The key
    /// itself never enters the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
}

impl Upstream {
    /// Checks the configuration; the message says what to fix. The URL may be `http://` (a
    /// server on this machine or network) or `https://` (trusting the system's certificate
    /// authorities and the node's `--extra-ca-certs`).
    pub fn validate(&self) -> Result<(), String> {
        let url = reqwest::Url::parse(&self.base_url).map_err(|e| {
            format!(
                "upstream URL {:?} is not a URL ({e}); give the server's OpenAI base URL, such as http://127.0.0.1:8000/v1",
                self.base_url
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "upstream URL {} must start with http:// or https://",
                self.base_url
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("upstream URL {} has no host", self.base_url));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "upstream URL {} must be a base URL without ?query or #fragment (the gateway appends /chat/completions)",
                self.base_url
            ));
        }
        if self.model.trim().is_empty() {
            return Err("the upstream model name is empty".into());
        }
        Ok(())
    }

    pub fn content_hash(&self) -> Hash32 {
        keccak256(
            serde_json::to_string(self)
                .expect("an upstream serialises")
                .as_bytes(),
        )
    }

    /// The chat completions URL.
    pub fn chat_url(&self) -> String {
        format!("{}/chat/completions", self.base_url.trim_end_matches('/'))
    }

    /// What `tokens` cost at `per_million`, rounded up.
    fn tokens_cost(tokens: u64, per_million: Amount) -> Amount {
        (Amount::from(tokens) * per_million).div_ceil(1_000_000)
    }

    /// The most completion tokens `available` covers once the per-call price, `fixed` and a
    /// prompt of `prompt` tokens are paid; `None` when not even those are covered.
    pub fn completion_fits(
        &self,
        available: Amount,
        fixed: Amount,
        price_per_call: Amount,
        prompt: u64,
    ) -> Option<u64> {
        let left = available
            .checked_sub(fixed)?
            .checked_sub(price_per_call)?
            .checked_sub(Upstream::tokens_cost(prompt, self.prompt_per_million))?;
        if self.completion_per_million == 0 {
            return Some(u64::MAX);
        }
        Some(
            u64::try_from(left.saturating_mul(1_000_000) / self.completion_per_million)
                .unwrap_or(u64::MAX),
        )
    }

    /// The cost of a call with this usage, on top of the per-call price.
    pub fn cost(&self, price_per_call: Amount, usage: TokenUsage) -> Amount {
        price_per_call
            + Upstream::tokens_cost(usage.prompt, self.prompt_per_million)
            + Upstream::tokens_cost(usage.completion, self.completion_per_million)
    }
}

/// Tokens a call used.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TokenUsage {
    pub prompt: u64,
    pub completion: u64,
}

/// A chat request prepared for the upstream, with the bounds the hold is sized by.
#[derive(Debug)]
pub struct Prepared {
    pub body: Value,
    pub stream: bool,
    /// Whether the client asked to see usage in the stream.
    pub client_wants_usage: bool,
    /// The most tokens the call can use.
    pub bound: TokenUsage,
    /// The prompt tokens to charge if the upstream never says.
    pub prompt_estimate: u64,
}

/// Checks a client's chat request and rewrites it for the upstream: its model name, a
/// completion bound, and usage always on.
pub fn prepare(
    mut body: Value,
    upstream: &Upstream,
    body_bytes: usize,
) -> Result<Prepared, String> {
    let object = body
        .as_object_mut()
        .ok_or("the request body must be a JSON object")?;
    match object.get("messages") {
        Some(Value::Array(messages)) if !messages.is_empty() => {}
        _ => return Err("messages must be a non-empty array of {role, content} objects".into()),
    }
    let prompt_bytes: usize = object["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| m.get("content").map_or(0, |c| c.to_string().len()))
        .sum();
    let stream = match object.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("stream must be true or false".into()),
    };
    let client_wants_usage = object
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let asked = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|field| {
            object
                .get(*field)
                .filter(|v| !v.is_null())
                .map(|v| (field, v))
        });
    let max_tokens = match asked {
        Some((field, value)) => value
            .as_u64()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{field} must be a positive whole number"))?,
        None => {
            object.insert("max_tokens".into(), Value::from(DEFAULT_MAX_TOKENS));
            DEFAULT_MAX_TOKENS
        }
    };
    if let Some(n) = object.get("n").and_then(Value::as_u64)
        && n != 1
    {
        return Err("n must be 1: the gateway meters one completion per call".into());
    }
    object.insert("model".into(), Value::from(upstream.model.clone()));
    if stream {
        object.insert(
            "stream_options".into(),
            serde_json::json!({ "include_usage": true }),
        );
    }
    Ok(Prepared {
        body,
        stream,
        client_wants_usage,
        bound: TokenUsage {
            prompt: body_bytes as u64,
            completion: max_tokens,
        },
        prompt_estimate: prompt_bytes.div_ceil(4) as u64,
    })
}

/// The usage an OpenAI response or chunk reports, if it does.
pub fn reported_usage(value: &Value) -> Option<TokenUsage> {
    let usage = value.get("usage")?;
    Some(TokenUsage {
        prompt: usage.get("prompt_tokens")?.as_u64()?,
        completion: usage.get("completion_tokens")?.as_u64()?,
    })
}

/// Splits complete server-sent events off the front of `buffer`: each event's `data:` payload.
pub fn take_events(buffer: &mut Vec<u8>) -> Vec<String> {
    let mut events = Vec::new();
    loop {
        let text = String::from_utf8_lossy(buffer);
        let Some(end) = text.find("\n\n").or_else(|| text.find("\r\n\r\n")) else {
            break;
        };
        let separator = if text[end..].starts_with("\r\n\r\n") {
            4
        } else {
            2
        };
        let event: String = text[..end]
            .lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .map(str::trim_start)
            .collect::<Vec<_>>()
            .join("\n");
        let consumed = text[..end + separator].len();
        buffer.drain(..consumed);
        if !event.is_empty() {
            events.push(event);
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn upstream() -> Upstream {
        Upstream {
            base_url: "http://127.0.0.1:8000/v1".into(),
            model: "llama-3-8b".into(),
            prompt_per_million: 100_000,
            completion_per_million: 400_000,
            api_key_env: None,
        }
    }

    #[test]
    fn a_request_is_bounded_and_usage_is_always_asked_for() {
        let body = json!({ "model": "chat", "stream": true,
            "messages": [{ "role": "user", "content": "hello there" }] });
        let prepared = prepare(body, &upstream(), 200).unwrap();
        assert_eq!(prepared.body["model"], "llama-3-8b");
        assert_eq!(prepared.body["max_tokens"], DEFAULT_MAX_TOKENS);
        assert_eq!(prepared.body["stream_options"]["include_usage"], true);
        assert!(!prepared.client_wants_usage);
        assert_eq!(
            prepared.bound,
            TokenUsage {
                prompt: 200,
                completion: 4_096
            }
        );
        let refused = prepare(json!({ "model": "chat", "messages": [] }), &upstream(), 10);
        assert!(refused.unwrap_err().contains("messages"));
        let bad = json!({ "messages": [{ "role": "user", "content": "x" }], "max_tokens": -1 });
        assert!(
            prepare(bad, &upstream(), 10)
                .unwrap_err()
                .contains("max_tokens")
        );
    }

    #[test]
    fn cost_rounds_up_per_token_class_and_events_split_on_blank_lines() {
        let usage = TokenUsage {
            prompt: 11,
            completion: 3,
        };
        // 1000 + ceil(11 × 0.1) + ceil(3 × 0.4) = 1000 + 2 + 2.
        assert_eq!(upstream().cost(1_000, usage), 1_004);
        let mut buffer = b"data: {\"a\":1}\n\ndata: [DONE]\n\ndata: {\"b\"".to_vec();
        assert_eq!(take_events(&mut buffer), vec!["{\"a\":1}", "[DONE]"]);
        assert_eq!(buffer, b"data: {\"b\"");
        assert!(upstream().validate().is_ok());
        let at = |base_url: &str| Upstream {
            base_url: base_url.into(),
            ..upstream()
        };
        assert!(at("https://api.example.com/v1").validate().is_ok());
        assert!(
            at("ftp://api.example.com/v1")
                .validate()
                .unwrap_err()
                .contains("https://")
        );
        assert!(at("api.example.com/v1").validate().is_err());
        assert!(
            at("https://api.example.com/v1?key=1")
                .validate()
                .unwrap_err()
                .contains("query")
        );
    }
}
