//! The gateway's own headers and how a served call's answer is put on the wire, shared by every
//! endpoint that charges (and by idempotent replays of their answers).

use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use caravan_core::Address;

use super::Served;
use super::idempotency::Stored;

/// The headers a served call's receipt travels in.
pub const RECEIPT_HEADER: &str = "caravan-receipt";
pub const SIGNATURE_HEADER: &str = "caravan-receipt-signature";
pub const NODE_HEADER: &str = "caravan-node";
/// Set on a response replayed for a repeated `Idempotency-Key`.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// The receipt and its signature as response headers (the receipt JSON base64-encoded).
pub fn receipt_headers(served: &Served) -> Vec<(String, String)> {
    vec![
        (
            RECEIPT_HEADER.into(),
            base64::engine::general_purpose::STANDARD.encode(served.receipt.as_bytes()),
        ),
        (SIGNATURE_HEADER.into(), served.signature.clone()),
    ]
}

/// A served call's answer with `body`, as kept for replay and sent.
pub fn stored(served: &Served, body: Bytes) -> Stored {
    Stored {
        status: 200,
        headers: receipt_headers(served),
        body,
    }
}

/// The HTTP response for a kept answer, naming the node (and whether it is a replay).
pub fn into_response(stored: Stored, node: Address, replayed: bool) -> Response {
    let mut response = (
        StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK),
        [(header::CONTENT_TYPE, "application/json")],
        stored.body,
    )
        .into_response();
    let headers = response.headers_mut();
    for (name, value) in stored.headers {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::try_from(name),
            HeaderValue::try_from(value),
        ) {
            headers.insert(name, value);
        }
    }
    headers.insert(
        NODE_HEADER,
        HeaderValue::try_from(node.to_string()).expect("an address is a valid header"),
    );
    if replayed {
        headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    response
}
