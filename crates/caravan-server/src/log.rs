//! The access log: one line per request on standard error, when the operator asks for it
//! (`caravan serve --access-log`). It names the method, the path (never the query, where a
//! signed request's parameters travel), the status, the time taken and the account the request
//! acted as — never a header, a cookie or a body, so no API key, session id or signature can
//! reach it.

use std::time::Instant;

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use caravan_node::sessions::siwe::Timestamp;

use crate::access::Acted;

/// `router` with every request logged.
pub fn with_access_log(router: Router) -> Router {
    router.layer(middleware::from_fn(log_request))
}

async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let who = response
        .extensions()
        .get::<Acted>()
        .map_or_else(|| "-".to_owned(), |acted| acted.0.to_string());
    eprintln!(
        "{} {method} {path} {} {:.1}ms {who}",
        Timestamp::from_ms(caravan_store::now_ms()).text,
        response.status().as_u16(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    response
}
