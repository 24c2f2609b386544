//! The demo's people reach the node through its HTTP API, in-process: the same router, access
//! rules, handlers and errors a client meets over the network. Each signs in with its own wallet
//! (EIP-4361) and acts with the session cookie it gets, as a browser would.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use caravan_core::attestation::{address_of, personal_message_digest, sign_digest};
use caravan_node::Node;
use caravan_server::access::SESSION_COOKIE;
use k256::ecdsa::SigningKey;
use serde_json::{Value, json};
use tower::ServiceExt;

/// An in-process client of one node's API.
pub struct Api {
    app: Router,
    runtime: tokio::runtime::Runtime,
}

/// What the API answered.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The body, or an error naming the request and what the node said.
    pub fn expect(self, what: &str) -> Result<Value, String> {
        if self.status.is_success() {
            Ok(self.body)
        } else {
            Err(format!("{what}: {} {}", self.status, self.body))
        }
    }
}

impl Api {
    pub fn new(node: Arc<Node>) -> Result<Api, String> {
        Ok(Api {
            app: caravan_server::router(node),
            runtime: tokio::runtime::Builder::new_current_thread()
                .build()
                .map_err(|e| format!("cannot start a runtime: {e}"))?,
        })
    }

    /// A second client of the same node, for another thread.
    pub fn another(&self) -> Result<Api, String> {
        Ok(Api {
            app: self.app.clone(),
            runtime: tokio::runtime::Builder::new_current_thread()
                .build()
                .map_err(|e| format!("cannot start a runtime: {e}"))?,
        })
    }

    /// Sends a request, with a session's cookie when given.
    pub fn send(&self, method: &str, uri: &str, session: Option<&str>, body: Body) -> Reply {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(secret) = session {
            request = request.header(header::COOKIE, format!("{SESSION_COOKIE}={secret}"));
        }
        let request = request
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .expect("a well-formed request");
        self.runtime.block_on(async {
            let response = self.app.clone().oneshot(request).await.expect("infallible");
            let status = response.status();
            let headers = response.headers().clone();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap_or_default();
            Reply {
                status,
                headers,
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            }
        })
    }

    /// Sends `body` as JSON.
    pub fn json(&self, method: &str, uri: &str, session: Option<&str>, body: &Value) -> Reply {
        self.send(method, uri, session, Body::from(body.to_string()))
    }

    /// Signs in as the wallet's account: asks for a nonce and the message to sign, signs it as
    /// a wallet's `personal_sign` does, and returns the session the node opens.
    pub fn sign_in(&self, wallet: &SigningKey) -> Result<String, String> {
        let account = address_of(wallet.verifying_key());
        let challenge = self
            .send(
                "GET",
                &format!("/v1/auth/nonce?address={account}"),
                None,
                Body::empty(),
            )
            .expect("GET /v1/auth/nonce")?;
        let message = challenge["message"]
            .as_str()
            .ok_or("the nonce came without a message")?;
        let signature = sign_digest(wallet, &personal_message_digest(message.as_bytes()));
        let reply = self.json(
            "POST",
            "/v1/auth/siwe",
            None,
            &json!({ "message": message, "signature": signature.to_hex() }),
        );
        let cookie = reply
            .headers
            .get(header::SET_COOKIE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        reply.expect("POST /v1/auth/siwe")?;
        cookie
            .as_deref()
            .and_then(|cookie| cookie.split(';').next())
            .and_then(|pair| pair.strip_prefix(&format!("{SESSION_COOKIE}=")))
            .map(str::to_owned)
            .ok_or_else(|| "the sign-in set no session cookie".to_owned())
    }
}
