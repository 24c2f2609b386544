//! Every route the node serves, each with who may call it. This one list builds the router (each
//! route behind its access rule, see [`crate::access`]), the API document's security, and the
//! test that walks every route with no, wrong and right credentials — so a route cannot be added
//! without an authorization decision.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use caravan_node::Node;
use caravan_node::keys::Scope;

pub use crate::access::RouteSpec;
use crate::access::{Access, Guard, Shape, enforce};
use crate::gateway::{calls, keys, models};
use crate::{openapi, operator, settlement, sign_in, tasks, withdrawals};

/// The largest request body the OpenAI-compatible routes accept, in bytes.
pub const MAX_GATEWAY_BODY_BYTES: usize = 2 << 20;

fn body_limit(shape: Shape) -> DefaultBodyLimit {
    DefaultBodyLimit::max(match shape {
        Shape::Api => tasks::MAX_BODY_BYTES,
        Shape::OpenAi => MAX_GATEWAY_BODY_BYTES,
    })
}

macro_rules! routes {
    ($( $method:ident $path:literal, $access:expr, $shape:ident => $handler:path; )*) => {
        /// Every route, in the API document's order.
        pub fn table() -> Vec<RouteSpec> {
            vec![$( RouteSpec {
                method: stringify!($method),
                path: $path,
                access: $access,
                shape: Shape::$shape,
            } ),*]
        }

        /// The node's HTTP API over `node` (every route of [`table`] behind its access rule)
        /// and its web pages.
        pub fn router(node: Arc<Node>) -> Router {
            let mut router = crate::web::pages();
            $(
                let guard = Guard { node: Arc::clone(&node), access: $access, shape: Shape::$shape };
                router = router.route(
                    $path,
                    axum::routing::$method($handler)
                        .route_layer(middleware::from_fn_with_state(guard, enforce))
                        .layer(body_limit(Shape::$shape)),
                );
            )*
            router.with_state(node)
        }
    };
}

/// `GET /v1/openapi.json`: the API document, with each operation's access from [`table`].
async fn api_document() -> axum::Json<serde_json::Value> {
    axum::Json(openapi::document(&table()))
}

use Access::{Account, Key, Operator, Public, Session, Signed};

routes! {
    get "/v1/openapi.json", Public, Api => api_document;
    get "/v1/auth/nonce", Public, Api => sign_in::nonce;
    post "/v1/auth/siwe", Public, Api => sign_in::sign_in;
    get "/v1/auth/session", Session, Api => sign_in::session;
    post "/v1/auth/logout", Session, Api => sign_in::sign_out;
    post "/v1/projects", Account(Scope::Requesting), Api => tasks::create_project;
    get "/v1/projects", Public, Api => tasks::list_projects;
    get "/v1/projects/{project}", Public, Api => tasks::project_status;
    post "/v1/projects/{project}/items", Account(Scope::Requesting), Api => tasks::add_items;
    post "/v1/projects/{project}/reviewers", Account(Scope::Requesting), Api => tasks::add_reviewer;
    post "/v1/projects/{project}/next", Account(Scope::Labeling), Api => tasks::next_item;
    post "/v1/projects/{project}/judgments", Account(Scope::Labeling), Api => tasks::submit;
    post "/v1/projects/{project}/reviews/next", Account(Scope::Reviewing), Api => tasks::next_review;
    post "/v1/projects/{project}/reviews", Account(Scope::Reviewing), Api => tasks::review;
    get "/v1/projects/{project}/contributors/{account}", Account(Scope::Labeling), Api => tasks::contributor_standing;
    post "/v1/projects/{project}/publish", Account(Scope::Requesting), Api => tasks::publish;
    post "/v1/projects/{project}/close", Account(Scope::Requesting), Api => tasks::close_project;
    get "/v1/projects/{project}/export", Account(Scope::Requesting), Api => tasks::export;
    get "/v1/epochs", Public, Api => settlement::list_epochs;
    post "/v1/epochs", Operator, Api => operator::close_epoch;
    get "/v1/epochs/{epoch}", Public, Api => settlement::epoch_status;
    get "/v1/epochs/{epoch}/proofs/{account}", Public, Api => settlement::epoch_proofs;
    get "/v1/chains", Public, Api => settlement::list_chains;
    post "/v1/chains", Operator, Api => operator::add_chain;
    put "/v1/chains/home", Operator, Api => operator::set_home_chain;
    post "/v1/epochs/{epoch}/roots", Operator, Api => operator::post_root;
    get "/v1/accounts/{account}/payout-chain", Public, Api => settlement::payout_chain;
    put "/v1/accounts/{account}/payout-chain", Session, Api => settlement::choose_payout_chain;
    post "/v1/tokens", Operator, Api => operator::register_token;
    get "/v1/models", Key(Scope::Models), OpenAi => models::list_models;
    get "/v1/models/{model}", Key(Scope::Models), OpenAi => models::get_model;
    post "/v1/models/{model}/attestations", Signed, OpenAi => models::attest;
    get "/v1/models/{model}/attestations", Public, OpenAi => models::list_attestations;
    post "/v1/classifications", Key(Scope::Classify), OpenAi => calls::classify;
    post "/v1/embeddings", Key(Scope::Embeddings), OpenAi => calls::embeddings;
    post "/v1/chat/completions", Key(Scope::Chat), OpenAi => calls::chat_completions;
    post "/v1/keys", Signed, OpenAi => keys::issue_key;
    get "/v1/keys", Signed, OpenAi => keys::list_keys;
    delete "/v1/keys/{id}", Signed, OpenAi => keys::revoke_key;
    get "/v1/balance", Account(Scope::Models), OpenAi => models::balance;
    get "/v1/usage", Account(Scope::Models), OpenAi => models::usage;
    post "/v1/balance/withdrawals", Session, Api => withdrawals::withdraw;
    get "/v1/node", Public, OpenAi => models::node_identity;
}
