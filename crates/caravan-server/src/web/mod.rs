//! The web pages people use, served by the node itself: sign-in, the task board, the
//! labeling screen, the earnings page, the requester's console (new projects, imports,
//! reviewers, the review queue), and the explorer anyone may use without signing in. Pages are drawn on the server from compile-time-checked templates
//! (`templates/`); the few scripts they use are the node's own (`static/`), served from the
//! binary, with no build step and nothing fetched from elsewhere.
//!
//! Pages act for the signed-in viewer only ([`page::Viewer`]); every change a page makes
//! carries the session's CSRF token besides the `SameSite` cookie.

mod assets;
mod board;
mod chart;
mod developer;
mod earnings;
mod explorer;
mod item;
mod label;
mod models;
mod new_project;
pub mod page;
mod requests;
mod review;
mod sign_in;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use caravan_node::Node;

use page::Viewer;

/// `/`: the board for someone signed in, the sign-in page for anyone else.
async fn home(viewer: Option<Viewer>) -> Response {
    match viewer {
        Some(_) => Redirect::to("/tasks").into_response(),
        None => Redirect::to("/sign-in").into_response(),
    }
}

/// Every page and the files they load, over the node the router is given.
pub fn pages() -> Router<Arc<Node>> {
    Router::new()
        .route("/", get(home))
        .route("/sign-in", get(sign_in::sign_in_page))
        .route(
            "/sign-in/link",
            get(sign_in::link_page).post(sign_in::use_link),
        )
        .route("/sign-out", post(sign_in::sign_out))
        .route("/tasks", get(board::task_board))
        .route("/projects/{project}/label", get(label::label_page))
        .route("/projects/{project}/label/next", post(label::next_item))
        .route(
            "/projects/{project}/label/answer",
            post(label::submit_answer),
        )
        .route("/projects/{project}/label/skip", post(label::skip_item))
        .route("/projects/{project}/label/undo", post(label::undo_last))
        .route("/projects/{project}/label/progress", get(label::progress))
        .route("/projects/{project}/review", get(review::review_page))
        .route("/projects/{project}/review/next", post(review::next_review))
        .route("/projects/{project}/review/verdict", post(review::decide))
        .route("/earnings", get(earnings::earnings_page))
        .route(
            "/earnings/payout-chain",
            post(earnings::choose_payout_chain),
        )
        .route("/earnings/claim", post(earnings::claim_on_embedded))
        .route("/earnings/claims/{chain_id}", get(earnings::claim_calls))
        .route("/requests", get(requests::requests))
        .route(
            "/requests/new",
            get(new_project::new_project).post(new_project::create_project),
        )
        .route("/requests/{project}", get(requests::request))
        .route(
            "/requests/{project}/items",
            post(requests::upload_items).layer(DefaultBodyLimit::max(crate::tasks::MAX_BODY_BYTES)),
        )
        .route(
            "/requests/{project}/reviewers",
            post(requests::add_reviewer),
        )
        .route("/requests/{project}/publish", post(requests::publish))
        .route("/developer", get(developer::developer_page))
        .route("/developer/deposit", get(developer::deposit_calls))
        .route("/models", get(models::models_page))
        .route("/explorer", get(explorer::epochs))
        .route("/explorer/epochs/{epoch}", get(explorer::epoch))
        .route("/explorer/epochs/{epoch}/verify", post(explorer::verify))
        .route("/explorer/epochs/{epoch}/bundle", get(explorer::bundle))
        .route("/explorer/assets/{id}", get(explorer::asset))
        .route("/explorer/accounts", get(explorer::look_up))
        .route("/explorer/accounts/{address}", get(explorer::account))
        .route("/static/{file}", get(assets::asset))
}
