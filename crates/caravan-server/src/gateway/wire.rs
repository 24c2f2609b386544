//! A kept answer (a served call's answer, or its replay) as an HTTP response, naming the node.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use caravan_core::Address;
use caravan_node::gateway::answer::{NODE_HEADER, REPLAYED_HEADER};
use caravan_node::gateway::chat::FrameStream;
use caravan_node::gateway::idempotency::Stored;
use futures_util::StreamExt;

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

/// A streamed answer as a server-sent-event response, naming the node.
pub fn event_stream(frames: FrameStream, node: Address) -> Response {
    let body = Body::from_stream(frames.map(Ok::<_, std::convert::Infallible>));
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        NODE_HEADER,
        HeaderValue::try_from(node.to_string()).expect("an address is a valid header"),
    );
    response
}
