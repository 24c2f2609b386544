//! The pages' own style sheet and scripts, compiled into the binary: nothing to install, nothing
//! fetched from another site.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Each file with its content type.
const FILES: &[(&str, &str, &str)] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../static/app.css"),
    ),
    (
        "wallet.js",
        "text/javascript; charset=utf-8",
        include_str!("../../static/wallet.js"),
    ),
    (
        "label.js",
        "text/javascript; charset=utf-8",
        include_str!("../../static/label.js"),
    ),
    (
        "claim.js",
        "text/javascript; charset=utf-8",
        include_str!("../../static/claim.js"),
    ),
    (
        "developer.js",
        "text/javascript; charset=utf-8",
        include_str!("../../static/developer.js"),
    ),
    (
        "models.js",
        "text/javascript; charset=utf-8",
        include_str!("../../static/models.js"),
    ),
    (
        "verify.js",
        "text/javascript; charset=utf-8",
        include_str!("../../static/verify.js"),
    ),
];

/// `GET /static/{file}`: one of [`FILES`], cached for an hour.
pub async fn asset(Path(file): Path<String>) -> Response {
    match FILES.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}
