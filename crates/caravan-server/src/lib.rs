//! The HTTP face of a caravan node.
//!
//! [`api`] exposes the data-task desk as a JSON API whose OpenAPI document the server serves at
//! `/v1/openapi.json`; [`gateway`] serves models in OpenAI's wire format. Handlers extract typed
//! input, call one service of `caravan-node` and map its result; the rules live in
//! `caravan-tasks` and `caravan-core`.

pub mod api;
pub mod gateway;
pub mod openapi;
