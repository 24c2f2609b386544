//! How a served call's answer travels: the headers that carry its signed receipt, and the form
//! kept for replays under an idempotency key. Shared by every endpoint that charges; the HTTP
//! server turns a kept answer into a response.

use base64::Engine;
use bytes::Bytes;

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
